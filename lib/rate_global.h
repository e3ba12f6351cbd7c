/* rate_global.h — global limits, the segment's side (lib/rate_global.c argues the protocol): what
 * a decision on a global key's bucket reads (rate_global_clip, inline: rate_table.c's decide calls
 * it for RATE_TAG_GLOBAL buckets only), what an insertion notes (rate_global_note, ratelimit.c),
 * and the hidden functions protd's sync thread (daemon/redis_sync.c) and protctl use to find
 * global buckets, read them and write their grants. Nothing here talks to Redis.
 */
#ifndef PROT_RATE_GLOBAL_H
#define PROT_RATE_GLOBAL_H

#include "rate_sliding.h"

/* The global area of h, or NULL when the segment has none (no [redis] at its creation). */
static inline struct prot_rate_global *rate_global_area(const struct prot_shm_header *h)
{
	/* count and stride come from the private geometry, validated (RATE_GLOBAL_BYTES) at attach */
	return seg_count(h, REG_RATE_GLOBAL) ? seg_entry(h, REG_RATE_GLOBAL, 0) : NULL;
}

/* The units granted in grant word w for the window ending at end_ms (0 for another window; a
 * word of window end 0 grants every window: the local share while degraded). */
static inline uint64_t rate_grant_units(uint64_t w, uint64_t end_ms)
{
	uint64_t e = w >> RATE_FW_BITS;
	return e == end_ms || e == 0 ? w & RATE_FW_LIMIT_MAX : 0;
}

/* The units bucket r (meta m, LIVE) may count in the window ending at end_ms at calendar time
 * now_ms: what protd leased for this use of the bucket and that window, while protd keeps its
 * leases alive (grants_until_ms), plus the key's allowance. */
static inline uint64_t rate_global_cap(struct rate_ref r, uint64_t m, uint64_t end_ms,
                                       uint64_t now_ms, uint64_t allowance)
{
	struct prot_rate_global *a = rate_global_area(r.h);
	/* acquire: pairs with the sync thread's release at the end of a round (its grants precede it);
	 * a decision past it is one of a protd that stopped renewing: Redis hands its units to the
	 * fleet at lease_ttl, so they must not be spent here too */
	if (!a || now_ms >= atomic_load_explicit(&a->grants_until_ms, memory_order_acquire))
		return allowance;
	struct prot_rate_grant *g = &a->grant[rate_bucket_index(r)];
	/* acquire: pairs with protd's release of `use` after it zeroed the grant words, and of
	 * each grant word: a grant read here was written for this use, or `use` reads changed */
	uint64_t use = atomic_load_explicit(&g->use, memory_order_acquire);
	uint64_t cur = atomic_load_explicit(&g->cur, memory_order_acquire);
	uint64_t next = atomic_load_explicit(&g->next, memory_order_acquire);
	if (use != m || atomic_load_explicit(&g->use, memory_order_relaxed) != m)
		return allowance;
	/* protd never writes one window into both words (nor a wildcard into cur) */
	return ((cur >> RATE_FW_BITS) == end_ms ? cur & RATE_FW_LIMIT_MAX : rate_grant_units(next, end_ms)) +
	       allowance;
}

/* A fixed-window evaluation e (rate_algo.c) of cost on a global bucket at now (ns on the calendar
 * clock), cut to what the bucket may count: admitted only while its count stays within the lease
 * (plus the allowance). */
static inline void rate_global_clip(struct rate_ref r, uint64_t m, const struct rate_params *rp,
                                    uint64_t cost, uint64_t now, struct rate_eval *e)
{
	uint64_t cap = rate_global_cap(r, m, e->next >> RATE_FW_BITS, now / RATE_NS_MS, rp->allowance);
	uint64_t cnt = e->ok ? e->used : e->used + cost; /* the count if admitted */

	if (e->ok && cnt > cap) {
		e->ok = false;
		e->used = cnt - cost; /* the state as it stays */
		e->retry_ns = e->reset_ns;
	}
	uint64_t left = cap > e->used ? cap - e->used : 0;
	if (left < e->remaining)
		e->remaining = left;
}

/* A global key's parameters: its fixed calendar windows also spend leases (rp->err -EINVAL for
 * another algorithm or clock: protd's validator refuses those). */
PROT_HIDDEN void rate_global_params(const struct prot_key_cfg *cfg, struct rate_params *rp);

/* A decision inserted a global bucket in group gi: ask protd to lease for it (the request ring). */
PROT_HIDDEN void rate_global_note(struct prot_shm_header *h, uint32_t gi);

/* ---- protd's sync thread and protctl --------------------------------------------------------- */

/* One global bucket as the table holds it (read under an unchanged meta). */
struct rate_global_bucket {
	uint32_t index;      /* bucket index: group * 32 + slot */
	uint64_t meta;       /* the use (LIVE meta) it was read under */
	uint64_t op_hash;
	uint64_t window_ms;
	uint64_t word;       /* the fixed-window word: window end (ms) << 24 | count */
	uint64_t seen;       /* admitted + denied units so far (the demand, for chunk sizing) */
	uint8_t ent_len;
	char entity[PROT_ENTITY_MAX];
};

/* Every LIVE global bucket of group gi, passed to fn (bounded: 32 buckets). Returns how many. */
PROT_HIDDEN uint32_t rate_global_scan_group(struct prot_shm_header *h, uint32_t gi,
                                            void (*fn)(void *arg, const struct rate_global_bucket *b),
                                            void *arg);
/* Re-read bucket `index` (word and demand) if it still holds use `meta`: true and *b updated. */
PROT_HIDDEN bool rate_global_peek(struct prot_shm_header *h, uint32_t index, uint64_t meta,
                                  struct rate_global_bucket *b);
/* Drain the request ring from *tail (protd's private cursor): each requested group passed to fn,
 * at most RATE_GLOBAL_RING per call. Returns true when requests were lost (the ring overflowed,
 * or an entry was never completed): the caller then rescans the table. */
PROT_HIDDEN bool rate_global_drain(struct prot_shm_header *h, uint64_t *tail,
                                   void (*fn)(void *arg, uint32_t gi), void *arg);
/* protd: the grants of bucket `index` for its use `meta` (cur, next: grant words), and the count
 * reported (display). */
PROT_HIDDEN void rate_global_grant(struct prot_shm_header *h, uint32_t index, uint64_t meta,
                                   uint64_t cur, uint64_t next, uint64_t used);
/* The grant words of bucket `index` if they belong to `meta` (protctl): true and *g. */
PROT_HIDDEN bool rate_global_grant_of(const struct prot_shm_header *h, uint32_t index, uint64_t meta,
                                      struct prot_rate_grant *g);

#endif
