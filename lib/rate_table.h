/* rate_table.h — the rate limiter's private interface between its files: a bucket's identity as a
 * call builds it (ratelimit.c) and the table compares it (rate_table.c), the bucket word encoding
 * the table and the read-only views (rate_view.c) share, and the table operations the entry points
 * (ratelimit.c) and the views call. The protocol these words follow, and why it holds, is argued
 * at the top of rate_table.c.
 */
#ifndef PROT_RATE_TABLE_H
#define PROT_RATE_TABLE_H

#include "internal.h"
#include "rate_algo.h"

enum { RB_FREE = 0, RB_CLAIMED = 1, RB_LIVE = 2, RB_DEAD = 3 };

/* meta = gen << 32 | state */
#define META(gen, st) ((uint64_t)(gen) << 32 | (uint64_t)(st))
#define META_ST(m) ((uint32_t)(m) & 0xffu)
#define META_GEN(m) ((uint32_t)((m) >> 32))
#define META_WITH(m, st) (((m) & ~(uint64_t)0xff) | (st))

#define DEAD_WORD UINT64_MAX /* a bucket word being removed */

/* A bucket's scale, part of its identity: window (ms, <= RATE_WINDOW_MAX_MS < 2^56) and kind
 * (rp->tag: the algorithm and its RATE_TAG_* flags, rate_algo.h) in one word, compared as one. */
#define SCALE(kind, window_ms) ((uint64_t)(window_ms) | (uint64_t)(kind) << 56)
#define SCALE_KIND(s) ((uint32_t)((s) >> 56))
#define SCALE_WINDOW(s) ((s) & ((1ull << 56) - 1))
_Static_assert(RATE_WINDOW_MAX_MS < (1ull << 56), "a window fits its scale bits");

/* Added to rate_table_charge's result (1, 0) when the call inserted the bucket. */
#define RATE_INSERTED 2

/* rate_table_charge: the entity's group has no free bucket (internal, never returned to callers) */
#define RATE_TABLE_FULL (-100001)
/* rate_table_charge_at: the remembered bucket is no longer the identity's (internal, never
 * returned to callers: they look the identity up) */
#define RATE_STALE (-100003)

/* Where a decision found its identity's bucket: the bucket's index (group * 32 + slot) and its
 * meta word then (LIVE, with the generation of that use). What lib/rate_memo.h remembers. */
struct rate_hit {
	uint32_t bucket;
	uint64_t meta;
};

typedef uint64_t __attribute__((may_alias)) u64a;

/* Identity words as the bucket stores them (offsets pinned below). */
#define B_OP_HASH 16
#define B_ID0 32 /* op_len, ent_len, two zero bytes: a 32-bit word */
#define B_UPDATED 36
#define B_SCALE 40
#define B_ENT_HEAD 48
#define B_ENT_TAIL 72
_Static_assert(offsetof(struct prot_rate_bucket, op_hash) == B_OP_HASH, "op_hash");
_Static_assert(offsetof(struct prot_rate_bucket, op_len) == B_ID0, "op_len");
_Static_assert(offsetof(struct prot_rate_bucket, ent_len) == B_ID0 + 1, "ent_len");
_Static_assert(offsetof(struct prot_rate_bucket, updated_ms) == B_UPDATED, "updated_ms");
_Static_assert(offsetof(struct prot_rate_bucket, scale) == B_SCALE, "scale");
_Static_assert(offsetof(struct prot_rate_bucket, ent_head) == B_ENT_HEAD, "ent_head");
_Static_assert(offsetof(struct prot_rate_bucket, ent_tail) == B_ENT_TAIL, "ent_tail");
_Static_assert(offsetof(struct prot_rate_group_hdr, tags) == 8, "tags are 4 aligned words");

#define ENT_WORDS 8 /* 64 bytes: head (2 words) + tail (6 words) */

/* An operation name's hash and length, when a caller has them already (a key's own name, from the
 * per-handle memo): len 0 means not known. */
struct rate_opname {
	uint64_t hash;
	uint32_t len;
};

/* Everything a call knows about its bucket before touching the table (rate_id_make). The group,
 * tag and home slot depend on (operation, entity) only: every scale of an entity lives in one
 * group, so a reset (any scale) and a status by name search one group. */
struct rate_id {
	uint64_t op_hash;
	uint64_t ent[ENT_WORDS]; /* entity, zero-padded */
	uint64_t scale;          /* SCALE(algo, window) */
	uint64_t scale_mask;     /* ~0: match the scale; 0: any scale (reset, status by name) */
	uint32_t id0;            /* op_len | ent_len << 8 */
	uint32_t ent_words;      /* words of ent[] compared: max(2, ceil(len/8)) */
	uint32_t group;
	uint8_t tag;
	uint8_t home; /* preferred slot: most entities sit there, so it is prefetched with the group */
	uint8_t ent_len;
};

/* Where a bucket is. */
struct rate_ref {
	struct prot_shm_header *h;
	struct prot_rate_group *g;
	uint32_t i;
};

/* ---- bucket word access: identity is written with relaxed atomic stores by its claimer and read
 * with relaxed loads after an acquire of meta or of the group word, so a lookup racing a recycle
 * reads stale bytes, never a torn word; the meta re-check then rejects what it read. ----------- */

static inline u64a *bw(struct prot_rate_bucket *b, size_t off)
{
	return (u64a *)((char *)b + off);
}
static inline uint64_t ld(struct prot_rate_bucket *b, size_t off)
{
	return __atomic_load_n(bw(b, off), __ATOMIC_RELAXED);
}
static inline uint32_t ld_id0(struct prot_rate_bucket *b)
{
	return __atomic_load_n((uint32_t __attribute__((may_alias)) *)((char *)b + B_ID0),
	                       __ATOMIC_RELAXED);
}
static inline size_t ent_off(uint32_t k)
{
	return k < 2 ? B_ENT_HEAD + 8 * k : B_ENT_TAIL + 8 * (k - 2);
}

static inline struct prot_rate_group *group_at(const struct prot_shm_header *h, uint32_t gi)
{
	return seg_entry(h, REG_RATE_GROUPS, gi);
}

static inline uint64_t group_load(struct prot_rate_group *g)
{
	/* acquire: pairs with the release CAS that published each set bit */
	return atomic_load_explicit(&g->h.word, memory_order_acquire);
}

/* ---- ratelimit.c ------------------------------------------------------------------------------ */

/* The identity of (op, entity[0..el), rp's algorithm and window) in h: 0, -EINVAL (NULL or empty
 * op), -PROT_ETOOLONG. rp NULL: any scale (reset, status by name). p (may be NULL) memoises the
 * operation's hash. */
PROT_HIDDEN int rate_id_make(prot_t *p, const struct prot_shm_header *h, const char *op,
                             const void *entity, size_t el, const struct rate_params *rp,
                             struct rate_id *id);

/* ---- rate_view.c ------------------------------------------------------------------------------ */

/* id's status under rp (validated) at now_ns: 0 (exists 0 for no bucket), or -EAGAIN. */
PROT_HIDDEN int rate_view_find(struct prot_shm_header *h, const struct rate_id *id,
                               const struct rate_params *rp, uint64_t now_ns,
                               struct prot_rate_status *out);

/* ---- rate_clock.c ----------------------------------------------------------------------------- */

/* The calendar: CLOCK_REALTIME (plus the test hook's offset) in ns since RATE_EPOCH_MS, >= 1. */
PROT_HIDDEN uint64_t rate_calendar_ns(void);

/* Now on clock (RATE_CLOCK_*: the key's rate_clock), in ns on that clock's scale; mono_ns is a
 * CLOCK_MONOTONIC reading the caller has (0: none), used for the monotonic clock. The one choice
 * of clock of every window algorithm's decision. */
static inline uint64_t rate_clock_now(uint64_t clock, uint64_t mono_ns)
{
	if (clock == RATE_CLOCK_REALTIME)
		return rate_calendar_ns();
	if (clock == RATE_CLOCK_COARSE)
		return prot_now_coarse_ns();
	return mono_ns ? mono_ns : prot_now_ns();
}

/* clock (a key's rate_clock) as a decision reads it under rp: RATE_CLOCK_AUTO resolved to the
 * coarse or the monotonic clock (see rate_clock.c), any other clock as it is. */
PROT_HIDDEN uint64_t rate_clock_resolve(uint64_t clock, const struct rate_params *rp);

/* The clock the words of a bucket of kind tag (RATE_TAG_*) are on. */
static inline uint64_t rate_clock_of_tag(uint32_t tag)
{
	return tag & RATE_TAG_REALTIME ? RATE_CLOCK_REALTIME : RATE_CLOCK_MONO;
}

/* ---- rate_table.c ----------------------------------------------------------------------------- */

/* Charge cost to id's bucket (inserting it if new) at time now under rp (validated, cost <=
 * rp->max_cost). 1 admitted, 0 denied (info filled either way), plus RATE_INSERTED when this call
 * inserted the bucket; or RATE_TABLE_FULL (info untouched). p (may be NULL) names the claimer of
 * a new bucket. */
PROT_HIDDEN int rate_table_charge(struct prot_shm_header *h, prot_t *p, const struct rate_id *id,
                                  const struct rate_params *rp, uint64_t cost, uint64_t now,
                                  struct prot_rate_info *info, struct rate_hit *hit);
/* ... and where the decision was taken, in *hit (NULL: not wanted; untouched on RATE_TABLE_FULL).
 * rate_table_charge_at: the same decision on a remembered bucket (see rate_table.c), 1 or 0, or
 * RATE_STALE. */
PROT_HIDDEN int rate_table_charge_at(struct prot_shm_header *h, uint32_t bucket, uint64_t meta,
                                     const struct rate_params *rp, uint64_t cost, uint64_t now,
                                     struct prot_rate_info *info);
/* Hammer's inc (set false: add n) or set (set: make the count n) on id's bucket (inserted if new)
 * at now under rp (validated; fixed or sliding window, and set only on a fixed window): 0 and
 * *count (the count in the current window after it; RATE_INSERTED instead of 0 when this call
 * inserted the bucket), -EOVERFLOW (a fixed window counts below
 * 2^24), -EAGAIN, or RATE_TABLE_FULL. */
PROT_HIDDEN int rate_table_count(struct prot_shm_header *h, prot_t *p, const struct rate_id *id,
                                 const struct rate_params *rp, bool set, uint64_t n, uint64_t now,
                                 uint64_t *count);
/* Find id's bucket without helping (works on a read-only mapping) and snapshot its word under a
 * stable meta: 0, -ENOENT, or -EAGAIN when it kept changing. */
PROT_HIDDEN int rate_table_find(struct prot_shm_header *h, const struct rate_id *id,
                                struct rate_ref *r, uint64_t *meta, uint64_t *word);
/* Remove every bucket of id (any scale when id->any_scale): 0 (at least one), -ENOENT, -EAGAIN. */
PROT_HIDDEN int rate_table_reset(struct prot_shm_header *h, const struct rate_id *id);
/* The op_hash of key slot k's operation (its name), or 0 when the slot holds no key with rate
 * buckets (free, or a name that is not terminated within the slot: untrusted). */
PROT_HIDDEN uint64_t rate_key_op_hash(const struct prot_shm_header *h, struct prot_key_slot *k);

#endif
