/* rate_sliding.h — the sliding window's rings (lib/rate_sliding.c) as the bucket table
 * (rate_table.c), the read-only views (rate_view.c) and the counters (rate_counter.c) call them. A
 * sliding-window bucket's word is a ring reference: the ring's generation and index. The protocol,
 * and why it is exact, is argued at the top of rate_sliding.c.
 */
#ifndef PROT_RATE_SLIDING_H
#define PROT_RATE_SLIDING_H

#include "rate_table.h"

/* A sliding-window bucket's word: ring generation << 32 | ring index. Never DEAD_WORD: an index is
 * below the ring count, itself below 2^20. */
#define RING_REF(gen, idx) ((uint64_t)(gen) << 32 | (uint32_t)(idx))
#define RING_REF_GEN(w) ((uint32_t)((w) >> 32))
#define RING_REF_IDX(w) ((uint32_t)(w))

/* A ring slot: time (us, 0: empty, SW_T_CLOSED: closed for a removal) << 16 | round & 0xffff. */
#define SW_T_BITS 48
#define SW_T_CLOSED ((1ull << SW_T_BITS) - 1)
#define SW_ROUND(s) ((s) & 0xffffu)
#define SW_T(s) ((s) >> 16)
#define SW_SLOT(t, round) ((uint64_t)(t) << 16 | ((round) & 0xffffu))

static inline _Atomic uint64_t *rate_ring_slots(struct prot_rate_ring *rg)
{
	return (_Atomic uint64_t *)(void *)(rg + 1);
}

/* rate_sliding_charge: the ring is not (or no longer) this bucket's, or it was closed for a
 * removal: the bucket must be removed and the call looked up again. Internal, never returned. */
#define RATE_SW_GONE (-100002)

/* The bucket table's index of bucket r (group * 32 + slot): what a ring's `own` word names. */
static inline uint32_t rate_bucket_index(struct rate_ref r)
{
	const struct prot_rate_group *g0 = group_at(r.h, 0);
	return (uint32_t)(r.g - g0) * RATE_GROUP_SLOTS + r.i;
}

/* 0 when a sliding window of rp's limit can run in segment h (its rings hold that many
 * admissions), else -EINVAL. Any other algorithm: 0. Inline: every decision asks. */
static inline int rate_sliding_fits(const struct prot_shm_header *h, const struct rate_params *rp)
{
	if (__builtin_expect(rp->algo != PROT_RATE_SLIDING_WINDOW, 1))
		return 0;
	return rp->limit <= seg_geo(h)->rate_ring_limit && seg_count(h, REG_RATE_RINGS) ? 0 : -EINVAL;
}

/* Take a free ring for bucket bidx under rp at time now (ns): 0 and *ref, or RATE_TABLE_FULL when
 * every ring is held. */
PROT_HIDDEN int rate_ring_take(struct prot_shm_header *h, uint32_t bidx, const struct rate_params *rp,
                               uint64_t now, uint64_t *ref);
/* Give back the ring ref held by bucket bidx (nothing if it is not held so: freed already). */
PROT_HIDDEN void rate_ring_give(struct prot_shm_header *h, uint32_t bidx, uint64_t ref);
/* Close bucket bidx's ring ref for a removal: no admission lands on it afterwards. idle_before:
 * close only if every admission it counts is older than this (ns; the sweep's expiry), 0: close
 * in any case (reset, algorithm or limit change). true when closed (or not this bucket's ring). */
PROT_HIDDEN bool rate_ring_close(struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                                 uint64_t idle_before);

/* One decision of one unit on bucket bidx's ring ref under rp (limit and window equal to the
 * ring's, else RATE_SW_GONE) at now (ns): 1 admitted, 0 denied (info filled either way),
 * RATE_SW_GONE, or -EAGAIN when the ring kept changing. */
PROT_HIDDEN int rate_sliding_charge(struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                                    const struct rate_params *rp, uint64_t now,
                                    struct prot_rate_info *info);
/* The state of the ring without charging (as rate_status_info). ref 0 / another bucket's ring: an
 * empty window. */
PROT_HIDDEN void rate_sliding_status(struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                                     const struct rate_params *rp, uint64_t now,
                                     struct prot_rate_info *out);
/* As rate_sliding_status for display (protctl, status by key): under rp, or (rp NULL) under the
 * ring's own limit and window (window_ms: the bucket's, when the ring is not its). */
PROT_HIDDEN void rate_sliding_peek(struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                                   const struct rate_params *rp, uint64_t window_ms, uint64_t now,
                                   struct prot_rate_info *out);
/* Record n (<= limit) admissions at now without the limit check (prot_rate_inc): 0 and *count =
 * admissions now in the window, RATE_SW_GONE, or -EAGAIN. */
PROT_HIDDEN int rate_sliding_add(struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                                 const struct rate_params *rp, uint64_t n, uint64_t now,
                                 uint64_t *count);
/* protd's sweep: give back up to n rings held by no live bucket for longer than grace. */
PROT_HIDDEN void rate_ring_sweep(struct prot_shm_header *h, uint64_t start, uint32_t n, uint64_t now,
                                 uint64_t grace);

#endif
