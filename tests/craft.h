/* craft.h — segments made by hand in a test, for the defects and states a real protd never
 * produces on purpose: built with seg_layout + ftruncate + mmap and stamped LIVE like protd would.
 * Static helpers for the suites that need them (test_segment, test_protctl). */
#ifndef PROT_TEST_CRAFT_H
#define PROT_TEST_CRAFT_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

static const struct seg_geometry small_geo = {
	.max_keys = 4, .max_breakers = 3, .max_pools = 2, .pool_max_slots = 8,
	.pool_max_waiters = 16, .events = 8, .rate_entities = 100,
};

struct crafted {
	struct prot_shm_header *h;
	size_t size;
};

/* Create NAME with geometry g and exactly mode `mode`. The mapping stays in the result so that
 * the test can damage it. */
static inline struct crafted craft_mode(const char *name, const struct seg_geometry *g, mode_t mode)
{
	struct crafted c;
	cr_assert_eq(seg_layout(g, NULL, &c.size), 0);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, mode);
	cr_assert(fd >= 0, "shm_open %s: %s", name, strerror(errno));
	cr_assert_eq(fchmod(fd, mode), 0);
	cr_assert_eq(ftruncate(fd, (off_t)c.size), 0);
	cr_assert_eq(seg_map(fd, c.size, false, &c.h), 0);
	close(fd);
	cr_assert_eq(seg_layout(g, c.h, &c.size), 0);
	c.h->magic = PROT_MAGIC;
	c.h->abi_version = PROT_ABI_VERSION;
	c.h->created_ns = prot_now_ns();
	cr_assert_eq(seg_take_geometry(c.h, c.size), 0);
	atomic_store(&c.h->state, SEG_STATE_LIVE);
	return c;
}

static inline struct crafted craft(const char *name)
{
	return craft_mode(name, &small_geo, 0600);
}

static inline void uncraft(struct crafted *c)
{
	seg_unmap(c->h, c->size);
}

/* Publish slot i of a named region (keys, breakers, pools) as NAME, like protd does. */
static inline void name_slot(struct prot_shm_header *h, int reg, uint32_t i, const char *name)
{
	struct prot_named *s = seg_entry(h, reg, i);
	snprintf(s->name, sizeof s->name, "%s", name);
	s->name_hash = prot_name_hash(name);
	atomic_store(&s->state, SLOT_LIVE | 1u << 8);
}

/* An anonymous MAP_SHARED segment (shared with forked children, gone with the test process) laid
 * out for g and stamped like protd does, with a fixed SipHash key: for the in-process suites that
 * drive the algorithms directly with an injected clock. */
static inline struct prot_shm_header *craft_anon(const struct seg_geometry *g)
{
	size_t size;
	cr_assert_eq(seg_layout(g, NULL, &size), 0);
	struct prot_shm_header *h;
	cr_assert_eq(seg_map(-1, size, false, &h), 0); /* anonymous and shared: forked children see it */
	cr_assert_eq(seg_layout(g, h, &size), 0);
	h->magic = PROT_MAGIC;
	h->abi_version = PROT_ABI_VERSION;
	h->created_ns = prot_now_ns();
	h->hash_key[0] = 0x0123456789abcdefULL ^ (uint64_t)getpid();
	h->hash_key[1] = 0xfedcba9876543210ULL ^ h->created_ns;
	cr_assert_eq(seg_take_geometry(h, size), 0);
	return h;
}

/* A liveness view of an anonymous segment: no fd, so no holder can be told dead (the maintenance
 * entry points then reclaim nothing, as they must when they cannot tell). */
#define ANON_VIEW(hdr) (&(struct prot_idv){ .h = (hdr), .fd = -1 })

/* Publish slot i of a named region with a config block, as protd does: name and config first
 * (config under the slot's seqlock), then LIVE with release. Every named slot keeps its config at
 * line 1. */
_Static_assert(offsetof(struct prot_key_slot, cfg) == 64 && offsetof(struct prot_breaker_slot, cfg) == 64 &&
               offsetof(struct prot_pool_slot, cfg) == 64, "config blocks sit at line 1");
static inline void publish_slot(struct prot_shm_header *h, int reg, uint32_t i, const char *name,
                                const void *cfg, size_t cfg_bytes)
{
	struct prot_named *s = seg_entry(h, reg, i);
	snprintf(s->name, sizeof s->name, "%s", name);
	s->name_hash = prot_name_hash(name);
	seq_write_begin(&s->seq);
	seq_write_words((char *)s + 64, cfg, cfg_bytes / 8);
	seq_write_end(&s->seq);
	atomic_store_explicit(&s->state, SLOT_LIVE | 1u << 8, memory_order_release);
}

/* A LIVE slot whose name fills its array without a NUL: nothing this library writes, so readers
 * must skip it and never read past it. */
static inline void unterminated_slot(struct prot_shm_header *h, int reg, uint32_t i)
{
	struct prot_named *s = seg_entry(h, reg, i);
	memset(s->name, 'z', sizeof s->name);
	atomic_store(&s->state, SLOT_LIVE);
}

#endif
