/* rate_algo.h — the rate limiter's arithmetic (lib/rate_algo.c): limits -> decision parameters, and
 * (bucket word, clock, cost) -> admit or deny with what prot_rate_info reports. Pure: no segment,
 * no atomics, no clock read. Used by rate_table.c (the decision), rate_view.c (status),
 * ratelimit.c (the entry points: the one place limits are turned into parameters) and protctl;
 * tests/test_rate_algo.c unit-tests it without a segment.
 *
 * A bucket word: GCRA, token and leaky bucket: the theoretical arrival time (ns on the bucket's
 * clock; a budget that never refills: the units spent). Fixed window: window end (ms on the
 * bucket's clock) << RATE_FW_BITS | units counted in the window. The clocks are rate_clock.c's.
 * A sliding window has no word here: its state is a ring (rate_sliding.c); only its limits and
 * kind are this file's.
 */
#ifndef PROT_RATE_ALGO_H
#define PROT_RATE_ALGO_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "rate_limits.h"

#define RATE_NS_MS 1000000ull

/* A bucket's kind as its meta stores it (8 bits, rate_table.h): the algorithm, plus what changes
 * how its word reads. A bucket used with another kind starts over (rate_table.c). */
#define RATE_TAG_REALTIME 0x40u /* the word is on the calendar clock (rate_clock.c) */
#define RATE_TAG_BUDGET 0x80u   /* token bucket with refill 0: GCRA on a clock that never moves */
#define RATE_TAG_ALGO(tag) ((uint32_t)(tag) & 0x0fu)

/* Token and leaky bucket: Hammer's names for GCRA with a capacity (rate_algo.c). */
static inline bool rate_algo_bucket(uint32_t algo)
{
	return algo == PROT_RATE_TOKEN_BUCKET || algo == PROT_RATE_LEAKY_BUCKET;
}

/* Does algo's word hold a theoretical arrival time (GCRA arithmetic)? */
static inline bool rate_algo_gcra_word(uint32_t algo)
{
	return algo == PROT_RATE_GCRA || rate_algo_bucket(algo);
}

/* The one internal form of a rate limit: derived once from a key's configuration or from the
 * caller's struct prot_rate_limit, and what every decision on it reads. */
struct rate_params {
	uint32_t algo;     /* enum prot_rate_algo (0 given: fixed window) */
	uint32_t tag;      /* the bucket's kind: algo | RATE_TAG_* */
	int err;           /* 0, or -EINVAL: no decision can be taken on these limits */
	uint64_t limit, window_ms; /* token/leaky bucket: the rate, its period (0 given: 1000) */
	uint64_t max_cost; /* the most one decision may charge: limit (fixed window), burst (GCRA),
	                      capacity (token and leaky bucket), 1 (sliding window) */
	uint64_t t_ns, tau_ns; /* GCRA word: emission interval ceil(window / limit) and tolerance
	                          burst * T (a budget: 1 and its capacity) */
	uint64_t phase_ms; /* fixed window on the calendar clock: where windows start (rate_clock.c) */
	bool clock_given;  /* the decision's time was the caller's (an injected clock): never re-read
	                      (the sliding window re-reads a clock of its own that is behind the ring) */
};

/* What evaluating a word says. */
struct rate_eval {
	bool ok;
	uint64_t next; /* the word after admitting (ok) */
	uint64_t used, remaining, reset_ns, retry_ns;
};

/* Parameters from limits (algo 0: fixed window; burst 0: limit). rp->err tells whether they can be
 * decided on; the limits themselves are listed once, in rate_algo.c's limit_problem(). */
__attribute__((visibility("hidden"))) void rate_params_make(uint32_t algo, uint64_t limit,
                                                            uint64_t window_ms, uint64_t burst,
                                                            struct rate_params *rp);
/* The same from the public form; lim NULL gives err -EINVAL. */
static inline void rate_params_of_limit(const struct prot_rate_limit *lim, struct rate_params *rp)
{
	if (!lim)
		*rp = (struct rate_params){.err = -EINVAL};
	else
		rate_params_make(lim->algo, lim->limit, lim->window_ms, lim->burst, rp);
}

/* Decide rp on the calendar clock (rate_clock = realtime): rp->err becomes -EINVAL for an
 * algorithm that rate_clock_problem() refuses it for. */
__attribute__((visibility("hidden"))) void rate_params_realtime(struct rate_params *rp);

/* 0 when a decision of cost can be taken on rp; else rp->err, or -PROT_ECOST for a cost above the
 * limit (GCRA: above the burst). */
static inline int rate_params_cost(const struct rate_params *rp, uint64_t cost)
{
	if (rp->err)
		return rp->err;
	return cost > rp->max_cost ? -PROT_ECOST : 0;
}

/* A fresh word of a bucket of kind tag (an algorithm, or rp->tag) at time now (ns): fully
 * available. */
__attribute__((visibility("hidden"))) uint64_t rate_word_init(uint32_t tag, uint64_t now);


/* ---- evaluating a word: inline, since it is most of a decision's arithmetic ------------------ */

/* n = 0 describes the state without charging. */
static inline void gcra_eval(const struct rate_params *rp, uint64_t tat, uint64_t now, uint64_t n,
                      struct rate_eval *e)
{
	uint64_t base = tat > now ? tat : now;
	uint64_t next = base + n * rp->t_ns; /* n <= burst: n*T <= tau, no overflow */
	uint64_t debt = next - now;

	e->ok = debt <= rp->tau_ns;
	if (!e->ok) {
		e->retry_ns = debt - rp->tau_ns;
		debt = base - now; /* state as it stays */
	} else {
		e->retry_ns = 0;
	}
	e->next = next;
	e->reset_ns = debt; /* used and remaining follow from it, in rate_info_fill (only if asked) */
	e->used = e->remaining = 0;
}

/* The window a fixed-window word w is in at now (ns): its end (ms) and count; an ended one gives
 * the current window, empty. */
static inline void fw_window(const struct rate_params *rp, uint64_t w, uint64_t now, uint64_t *end,
                             uint64_t *cnt)
{
	uint64_t now_ms = now / RATE_NS_MS;

	*end = w >> RATE_FW_BITS;
	*cnt = w & RATE_FW_LIMIT_MAX;
	if (*end <= now_ms) { /* the window that holds now_ms: UTC-aligned on the calendar clock */
		*end = ((now_ms + rp->phase_ms) / rp->window_ms + 1) * rp->window_ms - rp->phase_ms;
		*cnt = 0;
	}
}

static inline void fw_eval(const struct rate_params *rp, uint64_t w, uint64_t now, uint64_t n,
                    struct rate_eval *e)
{
	uint64_t end, cnt;

	fw_window(rp, w, now, &end, &cnt);
	e->ok = cnt + n <= rp->limit;
	if (e->ok)
		cnt += n;
	e->next = end << RATE_FW_BITS | cnt;
	e->used = cnt;
	e->remaining = cnt <= rp->limit ? rp->limit - cnt : 0; /* a reload may lower the limit */
	e->reset_ns = end * RATE_NS_MS - now;
	e->retry_ns = e->ok ? 0 : e->reset_ns;
}

static inline void rate_eval(const struct rate_params *rp, uint64_t w, uint64_t now, uint64_t n,
                             struct rate_eval *e)
{
	if (rp->tag & RATE_TAG_BUDGET)
		gcra_eval(rp, w, 0, n, e); /* the clock of a budget never moves */
	else if (rate_algo_gcra_word(rp->algo))
		gcra_eval(rp, w, now, n, e);
	else
		fw_eval(rp, w, now, n, e);
}

/* (rate_eval above: charge n units (n <= rp->max_cost; n = 0 describes the state without charging)
 * to word w at time now (ns). Every field of *e is set.) */
/* Hammer's inc (add n) or set (make it n) on fixed-window word w at now (ns): 0 with the next
 * word and the count in the current window, or -EOVERFLOW past the word's 2^24 - 1. */
__attribute__((visibility("hidden"))) int rate_fw_count(const struct rate_params *rp, uint64_t w,
                                                        uint64_t now, bool set, uint64_t n,
                                                        uint64_t *next, uint64_t *count);

/* The decision's prot_rate_info from its evaluation (info NULL: nothing). */
__attribute__((visibility("hidden"))) void rate_info_fill(struct prot_rate_info *info,
                                                          const struct rate_params *rp,
                                                          const struct rate_eval *e);

/* Status of word w at time now, charging nothing: the state as it is, with allowed and
 * retry_after_ms saying whether one more unit would pass now. */
__attribute__((visibility("hidden"))) void rate_status_info(const struct rate_params *rp, uint64_t w,
                                                            uint64_t now, struct prot_rate_info *out);

#endif
