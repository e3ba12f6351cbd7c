/* segment.c — the segment as libprot sees it: its geometry (seg_layout), the check of an untrusted
 * mapping (seg_validate), the private geometry page (seg_map, seg_take_geometry), attaching and
 * detaching (prot_open, prot_close), the per-call accessor that notices retirement and re-attaches
 * to a successor (prot_hdr; it checks fork through lib/fork.c), and the read-only views
 * (prot_get_info, prot_list_*). Each mapping's process identity, and what fork() does to it, is
 * lib/fork.c's; names to slots are lib/resolve.c's; where a name's object lives and which pages
 * back it ([segment] huge_pages) is lib/seg_place.c's (seg_map only aligns a mapping for them).
 *
 * Concurrency argument for the handle's mappings:
 *  - p->map only ever moves forward to a newer mapping (release store under p->lock, acquire loads
 *    everywhere); older mappings stay mapped on the ->older chain until prot_close(), so a thread
 *    that loaded an old map pointer can finish its operation on memory that is still mapped (and
 *    no other segment is ever mapped at an address a thread or a memo holds: lib/resolve.c).
 *  - the fork page and the identity fds: lib/fork.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "seg_place.h"

#define SEG_MAX_SIZE (64ull << 30)      /* refuse geometries beyond 64 GiB */
#define SEG_PAGE 4096u
#define REATTACH_INTERVAL_NS 100000000u /* at most one successor probe per 100 ms per handle */

/* ---- geometry -------------------------------------------------------------------------------- */

static const uint32_t reg_stride[REG_COUNT_] = {
	[REG_KEYS] = sizeof(struct prot_key_slot),
	[REG_BREAKERS] = sizeof(struct prot_breaker_slot),
	[REG_POOLS] = sizeof(struct prot_pool_slot),
	[REG_LEASES] = sizeof(struct prot_lease_slot),
	[REG_WAITERS] = sizeof(struct prot_waiter_slot),
	[REG_RATE_GROUPS] = sizeof(struct prot_rate_group),
	[REG_EVENTS] = sizeof(struct prot_event),
	[REG_PROCS] = sizeof(struct prot_proc_slot),
	[REG_RATE_RINGS] = 0, /* RATE_RING_BYTES(rate_ring_limit): see stride_of */
	[REG_RATE_GLOBAL] = 0, /* RATE_GLOBAL_BYTES(rate_groups): see stride_of */
};

/* A region's stride for a ring limit and a number of rate groups (the rings' and the global
 * area's depend on them). */
static uint64_t stride_of(int reg, uint64_t ring_limit, uint64_t groups)
{
	if (reg == REG_RATE_GLOBAL)
		return RATE_GLOBAL_BYTES(groups);
	return reg == REG_RATE_RINGS ? RATE_RING_BYTES(ring_limit) : reg_stride[reg];
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static uint64_t pow2_ceil(uint64_t v)
{
	uint64_t r = 1;
	while (r < v)
		r <<= 1;
	return r;
}

static int geometry_counts(const struct seg_geometry *g, uint32_t count[REG_COUNT_],
                           uint32_t *groups)
{
	uint64_t leases = (uint64_t)g->max_pools * g->pool_max_slots;
	uint64_t waiters = (uint64_t)g->max_pools * g->pool_max_waiters;
	uint64_t ents = g->rate_entities > SEG_MAX_SIZE ? SEG_MAX_SIZE : g->rate_entities;
	uint64_t grp = pow2_ceil((ents + RATE_GROUP_SLOTS - 1) / RATE_GROUP_SLOTS);

	if (leases > UINT32_MAX || waiters > UINT32_MAX || grp > UINT32_MAX)
		return -PROT_ECAPACITY;
	count[REG_KEYS] = g->max_keys;
	count[REG_BREAKERS] = g->max_breakers;
	count[REG_POOLS] = g->max_pools;
	count[REG_LEASES] = (uint32_t)leases;
	count[REG_WAITERS] = (uint32_t)waiters;
	count[REG_RATE_GROUPS] = (uint32_t)grp;
	count[REG_EVENTS] = g->events;
	count[REG_PROCS] = g->max_procs ? g->max_procs : PROC_SLOTS_DEFAULT;
	if (count[REG_PROCS] > PROC_SLOTS_MAX || g->sliding_max_limit > RATE_RING_LIMIT_MAX)
		return -PROT_ECAPACITY;
	count[REG_RATE_RINGS] = g->sliding_max_limit ? g->sliding_buckets : 0;
	count[REG_RATE_GLOBAL] = g->rate_global ? 1 : 0;
	if (g->rate_global && RATE_GLOBAL_BYTES(grp) > UINT32_MAX) /* its stride is 32 bits */
		return -PROT_ECAPACITY;
	*groups = (uint32_t)grp;
	return 0;
}

int seg_layout(const struct seg_geometry *g, struct prot_shm_header *h, size_t *size)
{
	uint32_t count[REG_COUNT_], groups;
	struct prot_region reg[REG_COUNT_];
	uint64_t off = sizeof(struct prot_shm_header);
	int r = geometry_counts(g, count, &groups);

	if (r < 0)
		return r;
	for (int i = 0; i < REG_COUNT_; i++) {
		uint64_t stride = stride_of(i, g->sliding_max_limit, groups);
		uint64_t bytes = (uint64_t)count[i] * stride; /* < 2^32 * 2^18 (global: 1 * < 2^32) */
		/* Page-align the big tables so that each starts on its own pages (huge tables are
		 * touched lazily; the small ones share pages with the header). */
		off = align_up(off, bytes >= SEG_PAGE ? SEG_PAGE : PROT_CACHELINE);
		reg[i] = (struct prot_region){.off = off, .count = count[i], .stride = (uint32_t)stride};
		off += bytes;
		if (off > SEG_MAX_SIZE)
			return -PROT_ECAPACITY;
	}
	off = align_up(off, SEG_PAGE);
	if (h) {
		memcpy(h->region, reg, sizeof reg);
		h->header_size = sizeof(struct prot_shm_header);
		h->total_size = off;
		h->pool_max_slots = g->pool_max_slots;
		h->pool_max_waiters = g->pool_max_waiters;
		h->rate_group_slots = RATE_GROUP_SLOTS;
		h->rate_groups = groups;
		h->rate_ring_limit = count[REG_RATE_RINGS] ? g->sliding_max_limit : 0;
	}
	*size = off;
	return 0;
}

void seg_geometry_of(const struct prot_shm_header *h, struct seg_geometry *g)
{
	const struct seg_geo *x = seg_geo(h);
	*g = (struct seg_geometry){
		.max_keys = x->region[REG_KEYS].count,
		.max_breakers = x->region[REG_BREAKERS].count,
		.max_pools = x->region[REG_POOLS].count,
		.pool_max_slots = x->pool_max_slots,
		.pool_max_waiters = x->pool_max_waiters,
		.events = x->region[REG_EVENTS].count,
		.rate_entities = (uint64_t)x->rate_groups * RATE_GROUP_SLOTS,
		.max_procs = x->region[REG_PROCS].count,
		.sliding_buckets = x->region[REG_RATE_RINGS].count,
		.sliding_max_limit = x->rate_ring_limit,
		.rate_global = x->region[REG_RATE_GLOBAL].count,
	};
}

/* ---- validation of an untrusted mapping ------------------------------------------------------ */

static int region_ok(const struct prot_region *r, uint32_t stride, uint64_t hdr_size, size_t size)
{
	uint64_t bytes, end;

	if (r->stride != stride || r->off % PROT_CACHELINE != 0 || r->off < hdr_size)
		return 0;
	if (__builtin_mul_overflow((uint64_t)r->count, (uint64_t)r->stride, &bytes) ||
	    __builtin_add_overflow(r->off, bytes, &end))
		return 0;
	return end <= size;
}

static int regions_disjoint(const struct prot_region *reg)
{
	for (int i = 0; i < REG_COUNT_; i++)
		for (int j = i + 1; j < REG_COUNT_; j++) {
			/* region_ok() already proved off + count*stride does not overflow */
			uint64_t ai = reg[i].off, bi = ai + (uint64_t)reg[i].count * reg[i].stride;
			uint64_t aj = reg[j].off, bj = aj + (uint64_t)reg[j].count * reg[j].stride;
			if (ai < bj && aj < bi)
				return 0;
		}
	return 1;
}

static int counts_consistent(const struct prot_shm_header *h)
{
	uint32_t groups = h->rate_groups;

	if (h->rate_group_slots != RATE_GROUP_SLOTS || groups == 0 || (groups & (groups - 1)) != 0)
		return 0;
	return h->region[REG_LEASES].count == (uint64_t)h->region[REG_POOLS].count * h->pool_max_slots &&
	       h->region[REG_WAITERS].count == (uint64_t)h->region[REG_POOLS].count * h->pool_max_waiters &&
	       h->region[REG_RATE_GROUPS].count == groups && h->region[REG_PROCS].count >= 1 &&
	       h->region[REG_PROCS].count <= PROC_SLOTS_MAX && h->rate_ring_limit <= RATE_RING_LIMIT_MAX &&
	       (h->rate_ring_limit != 0 || h->region[REG_RATE_RINGS].count == 0) &&
	       h->region[REG_RATE_GLOBAL].count <= 1 &&
	       (h->region[REG_RATE_GLOBAL].count == 0 || RATE_GLOBAL_BYTES(groups) <= UINT32_MAX);
}

int seg_validate(const void *base, size_t size)
{
	const struct prot_shm_header *h = base;

	if (size < sizeof *h)
		return -PROT_ESIZE;
	if (h->magic != PROT_MAGIC)
		return -PROT_ECORRUPT;
	if (h->abi_version != PROT_ABI_VERSION)
		return -PROT_EABI;
	if (h->total_size != size)
		return -PROT_ESIZE;
	if (h->header_size != sizeof *h ||
	    atomic_load_explicit(&((struct prot_shm_header *)h)->state, memory_order_relaxed) >
	            SEG_STATE_RETIRED)
		return -PROT_ECORRUPT;
	for (int i = 0; i < REG_COUNT_; i++)
		if (!region_ok(&h->region[i], (uint32_t)stride_of(i, h->rate_ring_limit, h->rate_groups),
		               h->header_size, size))
			return -PROT_ECORRUPT;
	if (!regions_disjoint(h->region) || !counts_consistent(h))
		return -PROT_ECORRUPT;
	if (memchr(h->control_path, '\0', sizeof h->control_path) == NULL)
		return -PROT_ECORRUPT;
	return 0;
}

/* ---- the private geometry --------------------------------------------------------------------- */

/* The segment's address in a reservation of `size` bytes plus the slack: one geometry page below
 * it, and, for a segment of a huge page or more, a multiple of SEG_HUGE_PAGE (lib/seg_place.c): a
 * hugetlbfs file can be mapped nowhere else, and only such an address lets a 2 MiB page of a tmpfs
 * object (huge_pages = thp) be mapped by one PMD. */
static size_t seg_slack(size_t size)
{
	return size >= SEG_HUGE_PAGE ? SEG_GEO_BYTES + SEG_HUGE_PAGE : SEG_GEO_BYTES;
}

int seg_map(int fd, size_t size, bool rdonly, struct prot_shm_header **out)
{
	/* one reservation: the geometry page, then the segment right above it; the slack around the
	 * two is given back at once, so seg_unmap unmaps exactly the geometry page and the segment */
	size_t slack = seg_slack(size);
	char *res = mmap(NULL, slack + size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return -errno;
	uintptr_t align = slack > SEG_GEO_BYTES ? SEG_HUGE_PAGE : SEG_PAGE;
	char *base = (char *)(((uintptr_t)res + SEG_GEO_BYTES + align - 1) & ~(align - 1));
	char *lo = base - SEG_GEO_BYTES, *end = res + slack + size;
	if (lo > res)
		munmap(res, (size_t)(lo - res));
	if (end > base + size)
		munmap(base + size, (size_t)(end - (base + size)));
	int prot = rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
	void *seg = fd >= 0 ? mmap(base, size, prot, MAP_SHARED | MAP_FIXED, fd, 0)
	                    : mmap(base, size, prot, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	void *geo = seg == MAP_FAILED ? MAP_FAILED
	                              : mmap(lo, SEG_GEO_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (geo == MAP_FAILED) {
		int e = errno;
		munmap(lo, SEG_GEO_BYTES + size);
		return -e;
	}
	*out = (struct prot_shm_header *)(void *)base;
	return 0;
}

void seg_unmap(struct prot_shm_header *h, size_t size)
{
	if (h)
		munmap((char *)h - SEG_GEO_BYTES, SEG_GEO_BYTES + size);
}

/* The rate summary and operation registry (lib/rate_table.c, lib/rate_ops.c) must lie beyond
 * every region and within the segment; a segment without them, or with them anywhere else, is
 * swept whole and names no operation. */
static bool summary_ok(const struct prot_shm_header *c)
{
	uint64_t off = c->rate_summary_off, bytes = RATE_TRAILER_BYTES(c->rate_groups);
	if (off == 0 || off % PROT_CACHELINE || off > c->total_size || c->total_size - off < bytes)
		return false;
	for (int i = 0; i < REG_COUNT_; i++)
		if (off < c->region[i].off + (uint64_t)c->region[i].count * c->region[i].stride)
			return false;
	return true;
}

int seg_take_geometry(struct prot_shm_header *h, size_t size)
{
	struct seg_geo g = { 0 };
	/* one copy, then every check and every use reads the copy: a writer changing the header in
	 * the meantime changes nothing we rely on */
	for (size_t i = 0; i < sizeof g.copy / 8; i++)
		((uint64_t *)&g.copy)[i] = __atomic_load_n(&((const uint64_t *)h)[i], __ATOMIC_RELAXED);
	int r = seg_validate(&g.copy, size);
	if (r < 0)
		return r;
	memcpy(g.region, g.copy.region, sizeof g.region);
	g.pool_max_slots = g.copy.pool_max_slots;
	g.pool_max_waiters = g.copy.pool_max_waiters;
	g.rate_groups = g.copy.rate_groups;
	g.rate_ring_limit = g.copy.rate_ring_limit;
	g.rate_summary_off = summary_ok(&g.copy) ? g.copy.rate_summary_off : 0;
	g.total_size = g.copy.total_size;
	g.id = g.copy.created_ns ^ g.copy.hash_key[0];
	g.valid = 1;
	void *page = (char *)h - SEG_GEO_BYTES;
	if (mprotect(page, SEG_GEO_BYTES, PROT_READ | PROT_WRITE) < 0)
		return -errno;
	memcpy(page, &g, sizeof g);
	mprotect(page, SEG_GEO_BYTES, PROT_READ);
	return 0;
}

/* The words that never change after creation: line 0 but `state`, the geometry lines, and the
 * summary offset. A mismatch is someone else writing the header. */
uint32_t seg_tampered(const struct prot_shm_header *h)
{
	const struct seg_geo *g = seg_geo(h);
	const uint64_t *live = (const uint64_t *)h, *mine = (const uint64_t *)&g->copy;
	const size_t state_word = offsetof(struct prot_shm_header, state) / 8;
	const size_t summary_word = offsetof(struct prot_shm_header, rate_summary_off) / 8;
	uint32_t lines = 0;
	for (size_t i = 0; i < 256 / 8; i++)
		if (i != state_word && __atomic_load_n(&live[i], __ATOMIC_RELAXED) != mine[i])
			lines |= 1u << (i / 8);
	if (__atomic_load_n(&live[summary_word], __ATOMIC_RELAXED) != mine[summary_word])
		lines |= 1u << (summary_word / 8);
	return lines;
}

void seg_restore_header(struct prot_shm_header *h)
{
	const struct seg_geo *g = seg_geo(h);
	uint64_t *live = (uint64_t *)h;
	const uint64_t *mine = (const uint64_t *)&g->copy;
	const size_t state_word = offsetof(struct prot_shm_header, state) / 8;
	const size_t summary_word = offsetof(struct prot_shm_header, rate_summary_off) / 8;
	for (size_t i = 0; i < 256 / 8; i++)
		if (i != state_word)
			__atomic_store_n(&live[i], mine[i], __ATOMIC_RELAXED);
	__atomic_store_n(&live[summary_word], mine[summary_word], __ATOMIC_RELAXED);
}

/* ---- mapping ---------------------------------------------------------------------------------- */

static int open_flags(unsigned flags)
{
	return (flags & PROT_OPEN_RDONLY) ? O_RDONLY : O_RDWR;
}

static void map_free(struct prot_map *m)
{
	while (m) {
		struct prot_map *older = m->older;
		seg_unmap(m->hdr, m->size);
		if (m->fd >= 0)
			close(m->fd); /* drops the identity lock */
		free(m);
		m = older;
	}
}

/* Map the object behind fd and check it. A segment that protd is still creating (size 0, or a
 * header not yet stamped, or state INIT) is reported as PROT_ENOSEG: to the caller it does not
 * exist yet, and a retry will find it. */
static int map_fd(int fd, unsigned flags, struct prot_map **out)
{
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size == 0)
		return -PROT_ENOSEG;
	if ((uint64_t)st.st_size < sizeof(struct prot_shm_header) || (uint64_t)st.st_size > SEG_MAX_SIZE)
		return -PROT_ESIZE;
	struct prot_shm_header *h;
	r = seg_map(fd, (size_t)st.st_size, flags & PROT_OPEN_RDONLY, &h);
	if (r < 0)
		return r;
	if (h->magic == 0 && h->abi_version == 0)
		r = -PROT_ENOSEG;
	else
		r = seg_take_geometry(h, (size_t)st.st_size);
	/* acquire: pairs with protd's release store of LIVE after it filled the header */
	if (r == 0 && atomic_load_explicit(&h->state, memory_order_acquire) == SEG_STATE_INIT)
		r = -PROT_ENOSEG;
	struct prot_map *m = r == 0 ? calloc(1, sizeof *m) : NULL;
	if (r == 0 && !m)
		r = -ENOMEM;
	if (r < 0) {
		seg_unmap(h, (size_t)st.st_size);
		return r;
	}
	*m = (struct prot_map){.hdr = h, .size = (size_t)st.st_size, .dev = st.st_dev, .ino = st.st_ino,
	                       .fd = fd, .nprocs = seg_count(h, REG_PROCS)};
	if (!(flags & PROT_OPEN_RDONLY) && (r = map_claim(m)) < 0) {
		seg_unmap(h, (size_t)st.st_size);
		free(m);
		return r;
	}
	*out = m;
	return 0;
}

/* The object a name stands for, wherever it lives (lib/seg_place.c): an fd, or PROT_ENOSEG / -errno. */
static int open_named(const char *name, unsigned flags)
{
	int fd = seg_place_find(name, open_flags(flags));
	return fd == -ENOENT ? -PROT_ENOSEG : fd;
}

static int valid_name(const char *name)
{
	size_t n = strnlen(name, 64);
	return n >= 2 && n < 64 && name[0] == '/' && strchr(name + 1, '/') == NULL;
}

static void handle_free(prot_t *p)
{
	fork_untrack(p);
	free(p);
}

int prot_open(const char *name, unsigned flags, prot_t **out)
{
	struct prot_map *m;
	prot_t *p;
	int fd, r;

	if (!out)
		return -EINVAL;
	if (!name)
		name = secure_getenv("PROT_SEGMENT");
	if (!name || !*name)
		name = PROT_DEFAULT_SEGMENT;
	if (!valid_name(name) || (flags & ~(unsigned)PROT_OPEN_RDONLY))
		return -EINVAL;
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	strcpy(p->name, name);
	p->flags = flags;
	r = fork_track(p);
	if (r < 0) {
		handle_free(p);
		return r;
	}
	fd = open_named(name, flags);
	if (fd < 0) {
		r = fd;
		handle_free(p);
		return r;
	}
	r = map_fd(fd, flags, &m); /* keeps fd on success */
	if (r < 0) {
		close(fd);
		handle_free(p);
		return r;
	}
	pthread_mutex_init(&p->lock, NULL);
	atomic_init(&p->map, m);
	fork_arm(p); /* ident is complete */
	*out = p;
	return 0;
}

void prot_close(prot_t *p)
{
	if (!p)
		return;
	fork_check(p);
	pool_local_free(p);
	map_free(atomic_load_explicit(&p->map, memory_order_acquire));
	pthread_mutex_destroy(&p->lock);
	handle_free(p);
}

/* ---- retirement ------------------------------------------------------------------------------ */

/* Our segment was retired. Look (at most every 100 ms) for a successor under the same name: a
 * different object, valid and LIVE. Until one exists we keep operating on the old mapping: its
 * counters still work for every process attached to it, and refusing every call while protd
 * restarts would turn a planned restart into an outage. */
static struct prot_shm_header *reattach(prot_t *p, struct prot_shm_header *seen)
{
	struct prot_map *cur, *m;
	struct stat st;
	int fd;

	/* trylock: a caller holding p->lock (pool code) must not deadlock; it retries next call */
	if (pthread_mutex_trylock(&p->lock) != 0)
		return seen;
	cur = atomic_load_explicit(&p->map, memory_order_relaxed); /* we hold the lock: no writer */
	uint64_t now = prot_now_coarse_ns();
	if (cur->hdr != seen || now < p->next_reattach_ns)
		goto out;
	p->next_reattach_ns = now + REATTACH_INTERVAL_NS;
	fd = open_named(p->name, p->flags);
	if (fd < 0)
		goto out;
	if (fstat(fd, &st) < 0 || (st.st_dev == cur->dev && st.st_ino == cur->ino) ||
	    map_fd(fd, p->flags, &m) < 0) {
		close(fd);
		goto out;
	}
	if (atomic_load_explicit(&m->hdr->state, memory_order_relaxed) != SEG_STATE_LIVE) {
		map_free(m);
		goto out;
	}
	m->older = cur;
	/* release: the new map's fields are written before other threads load the pointer */
	atomic_store_explicit(&p->map, m, memory_order_release);
	cur = m;
out:
	pthread_mutex_unlock(&p->lock);
	return cur->hdr;
}

struct prot_shm_header *prot_hdr(prot_t *p)
{
	/* acquire: pairs with the release store in reattach() */
	struct prot_shm_header *h = atomic_load_explicit(&p->map, memory_order_acquire)->hdr;

	/* relaxed: RETIRED is a hint to look for a successor, it publishes nothing */
	if (unlikely(atomic_load_explicit(&h->state, memory_order_relaxed) == SEG_STATE_RETIRED))
		h = reattach(p, h);
	fork_check(p);
	return h;
}

/* ---- views ----------------------------------------------------------------------------------- */

enum seg_huge seg_backing_of(prot_t *p)
{
	/* acquire: pairs with the release store in reattach() */
	const struct prot_map *m = atomic_load_explicit(&p->map, memory_order_acquire);
	return seg_place_backing(m->fd, m->hdr);
}

static uint32_t live_slots(const struct prot_shm_header *h, int reg)
{
	uint32_t live = 0;

	for (uint32_t i = 0, n = seg_count(h, reg); i < n; i++) {
		struct prot_named *s = seg_entry(h, reg, i);
		live += SLOT_STATE(atomic_load_explicit(&s->state, memory_order_relaxed)) == SLOT_LIVE;
	}
	return live;
}

int prot_get_info(prot_t *p, struct prot_info *out)
{
	struct prot_shm_header *h;
	struct prot_info in = {0};

	if (!p || !out)
		return -EINVAL;
	h = prot_hdr(p);
	snprintf(in.segment, sizeof in.segment, "%s", p->name);
	in.abi_version = h->abi_version;
	in.size = seg_geo(h)->total_size;
	/* the counters below are read for display: relaxed, no ordering needed */
	/* two steps per applied change (odd while protd writes it): count changes */
	in.config_generation = (atomic_load_explicit(&h->config_gen, memory_order_relaxed) + 1) / 2;
	in.protd_pid = atomic_load_explicit(&h->protd_pid, memory_order_relaxed);
	uint64_t hb = atomic_load_explicit(&h->heartbeat_ns, memory_order_relaxed);
	uint64_t now = prot_now_ns();
	in.heartbeat_age_ms = hb == 0 ? UINT64_MAX : hb >= now ? 0 : (now - hb) / 1000000u;
	struct prot_idv v;
	prot_idv(p, h, &v);
	in.protd_alive = protd_alive(&v); /* its identity lock, not the heartbeat's age */
	in.retired = atomic_load_explicit(&h->state, memory_order_relaxed) == SEG_STATE_RETIRED;
	in.keys = live_slots(h, REG_KEYS);
	in.max_keys = seg_count(h, REG_KEYS);
	in.breakers = live_slots(h, REG_BREAKERS);
	in.max_breakers = seg_count(h, REG_BREAKERS);
	in.pools = live_slots(h, REG_POOLS);
	in.max_pools = seg_count(h, REG_POOLS);
	in.rate_buckets_used = atomic_load_explicit(&h->rate_buckets_used, memory_order_relaxed);
	in.rate_buckets_max = (uint64_t)seg_count(h, REG_RATE_GROUPS) * RATE_GROUP_SLOTS;
	*out = in;
	return 0;
}

static int list_named(prot_t *p, int reg, int (*fn)(const char *name, void *arg), void *arg)
{
	struct prot_shm_header *h;

	if (!p || !fn)
		return -EINVAL;
	h = prot_hdr(p);
	for (uint32_t i = 0, n = seg_count(h, reg); i < n; i++) {
		struct prot_named *s = seg_entry(h, reg, i);
		char name[PROT_NAME_BYTES];
		/* acquire: pairs with protd's release store of LIVE after writing the name */
		if (SLOT_STATE(atomic_load_explicit(&s->state, memory_order_acquire)) != SLOT_LIVE)
			continue;
		memcpy(name, s->name, sizeof name);
		if (memchr(name, '\0', sizeof name) == NULL || name[0] == '\0')
			continue; /* not a name this library could have written: skip, never overrun */
		if (fn(name, arg) != 0)
			break;
	}
	return 0;
}

int prot_list_keys(prot_t *p, int (*fn)(const char *name, void *arg), void *arg)
{
	return list_named(p, REG_KEYS, fn, arg);
}

int prot_list_breakers(prot_t *p, int (*fn)(const char *name, void *arg), void *arg)
{
	return list_named(p, REG_BREAKERS, fn, arg);
}

int prot_list_pools(prot_t *p, int (*fn)(const char *name, void *arg), void *arg)
{
	return list_named(p, REG_POOLS, fn, arg);
}
