/* rate_algo.c — the rate limiter's arithmetic: which limits can be decided on, the decision
 * parameters derived from them, and GCRA and fixed-window evaluation of a bucket word. Pure: no
 * segment, no atomics, no clock read (the caller passes now). Called by rate_table.c (decide),
 * rate_view.c (status), ratelimit.c (limits -> parameters, once per decision) and, through
 * rate_limit_check() and rate_clock_problem(), by protd's configuration validator
 * (daemon/config_check.c).
 *
 * ALGORITHMS.
 *  GCRA: T = ceil(window/limit) (rounded up: never more than limit per window), tau = burst * T.
 *    Admit n if max(tat, now) + n*T - now <= tau. retry-after = that - tau. n > burst: PROT_ECOST.
 *  Token bucket (refill r per period P, capacity c) and leaky bucket (leak r per P, capacity c)
 *    are GCRA with T = ceil(P/r), tau = c * T: the debt max(tat, now) - now is the leaky bucket's
 *    level (in units of T, rounded up: a unit partly leaked is still in the bucket) and the
 *    capacity minus the token bucket's tokens (rounded down: a token partly refilled is not
 *    there yet), so Hammer's numbers follow: tokens left after a hit of n on a full bucket c - n,
 *    retry-after (deficit * P / r, rounded up to the ms). P = 0 is a second (Hammer's unit).
 *    A token bucket with r = 0 is a budget: the same arithmetic on a clock that never moves
 *    (now = 0, T = 1 ns, tau = c), so the word is the units spent; RATE_TAG_BUDGET in its kind
 *    tells the sweep never to expire it.
 *  Fixed window: windows [k*W, (k+1)*W) in CLOCK_MONOTONIC ms, the same for every process; on the
 *    calendar clock (rate_clock.c: ms since RATE_EPOCH_MS) shifted by phase = RATE_EPOCH_MS mod W
 *    so that they are UTC multiples of W since the Unix epoch. A stored window that has not ended
 *    is kept (even if W changed by a reload, or the calendar clock stepped back); an ended one
 *    starts a fresh window. limit <= 2^24-1 (the count's bits): larger is -EINVAL. n > limit:
 *    PROT_ECOST.
 *  Sliding window: its state is a ring of admission times (rate_sliding.c), not a word; here only
 *    its limits: limit <= RATE_SW_LIMIT_MAX (and the segment's rings: rate_sliding_fits), cost 1
 *    per decision (Hammer's has no increment): n > 1 is PROT_ECOST. Monotonic (or coarse) clock
 *    only: rate_clock = realtime is refused (rate_clock_problem: a ring's admission times would
 *    have to survive the calendar stepping back).
 *  window_ms <= RATE_WINDOW_MAX_MS (2^36 ms, about 2.2 years), else -EINVAL.
 *  Every such limit is listed once, in limit_problem() (constants in rate_limits.h); protd refuses
 *  a configuration that breaks one at load time through rate_limit_check().
 *  A reload that changes limits keeps every bucket's word: GCRA re-reads its TAT with the new T,
 *  the fixed window keeps its count. A bucket of another algorithm is reset on first use (by the
 *  table: rate_table.c).
 *
 * OVERFLOW. window_ms <= 2^36 keeps window_ms * 10^6 below 2^56; n <= burst keeps n * T <= tau <=
 * 2^62, so a GCRA word (at most now + tau before a charge) plus n * T stays below 2^64 while the
 * clock reads below 2^63 ns (a budget's word is at most its capacity <= 2^62). A fixed window's
 * end (ms) is shifted left by 24: it fits while the clock plus one window stays below 2^40 ms
 * (about 34 years; the calendar clock counts from 2020, so until 2054).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "rate_algo.h"

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* The limits' first problem, or NULL; for GCRA also its emission interval *t and tolerance *tau
 * (one division, shared with the decision). The one list of the limits (rate_limits.h):
 * rate_params_make() refuses on it per call, rate_limit_check() explains it to protd. */
static inline const char *limit_problem(uint32_t algo, uint64_t limit, uint64_t window_ms,
                                        uint64_t burst, uint64_t *t, uint64_t *tau)
{
	if (rate_algo_bucket(algo)) {
		if (burst == 0)
			return "rate_capacity must be at least 1";
		if (limit == 0 && algo == PROT_RATE_LEAKY_BUCKET)
			return "rate_leak_rate must be at least 1";
	} else if (limit == 0) {
		return "rate_limit must be at least 1";
	}
	if (window_ms == 0 || window_ms > RATE_WINDOW_MAX_MS)
		return "rate_window must be 1ms .. 2^36 ms";
	if (algo == PROT_RATE_FIXED_WINDOW)
		return limit > RATE_FW_LIMIT_MAX ? "a fixed window counts at most 2^24 - 1 units" : NULL;
	if (algo == PROT_RATE_SLIDING_WINDOW)
		return limit > RATE_SW_LIMIT_MAX ? "a sliding window holds at most 32768 admissions" : NULL;
	if (!rate_algo_gcra_word(algo))
		return "unknown rate algorithm";
	if (limit == 0) { /* a budget (token bucket, refill 0): one unit is one ns of a frozen clock */
		*t = 1;
		*tau = burst;
		return burst > RATE_GCRA_TAU_MAX_NS ? "rate_capacity exceeds 2^62" : NULL;
	}
	*t = div_up(window_ms * RATE_NS_MS, limit);
	if (__builtin_mul_overflow(burst, *t, tau) || *tau > RATE_GCRA_TAU_MAX_NS)
		return "rate_burst * (rate_window / rate_limit) exceeds 2^62 ns";
	return NULL;
}

/* The limits as decided on: algorithm 0 is the fixed window, a GCRA burst of 0 is the limit, a
 * token or leaky bucket's period of 0 is a second (their capacity has no default: Hammer's has
 * none either). */
struct limits {
	uint32_t algo;
	uint64_t limit, window_ms, burst;
};

static struct limits limits_of(uint32_t algo, uint64_t limit, uint64_t window_ms, uint64_t burst)
{
	struct limits l = {algo ? algo : PROT_RATE_FIXED_WINDOW, limit, window_ms, burst};
	if (rate_algo_bucket(l.algo)) {
		if (l.window_ms == 0)
			l.window_ms = 1000;
	} else if (l.burst == 0) {
		l.burst = l.limit;
	}
	return l;
}

int rate_limit_check(const struct prot_rate_limit *lim, char *why, size_t n)
{
	uint64_t t, tau;
	struct limits l = limits_of(lim->algo, lim->limit, lim->window_ms, lim->burst);
	const char *w = limit_problem(l.algo, l.limit, l.window_ms, l.burst, &t, &tau);
	if (!w)
		return 0;
	snprintf(why, n, "%s (rate_limit %" PRIu64 ", rate_window %" PRIu64 "ms, rate_burst %" PRIu64 ")",
	         w, lim->limit, lim->window_ms, lim->burst);
	return -EINVAL;
}

void rate_params_make(uint32_t algo, uint64_t limit, uint64_t window_ms, uint64_t burst,
                      struct rate_params *rp)
{
	struct limits l = limits_of(algo, limit, window_ms, burst);
	bool budget = l.algo == PROT_RATE_TOKEN_BUCKET && l.limit == 0;

	*rp = (struct rate_params){.algo = l.algo, .tag = l.algo | (budget ? RATE_TAG_BUDGET : 0),
	                           .limit = l.limit, .window_ms = l.window_ms,
	                           .max_cost = rate_algo_gcra_word(l.algo)            ? l.burst
	                                       : l.algo == PROT_RATE_SLIDING_WINDOW ? 1
	                                                                            : l.limit};
	if (__builtin_expect(limit_problem(l.algo, l.limit, l.window_ms, l.burst, &rp->t_ns,
	                                   &rp->tau_ns) != NULL, 0))
		rp->err = -EINVAL;
}

const char *rate_clock_problem(uint32_t algo)
{
	return algo == PROT_RATE_FIXED_WINDOW || algo == 0
	               ? NULL
	               : "rate_clock = realtime is for rate_algorithm = fixed_window (calendar windows)";
}

void rate_params_realtime(struct rate_params *rp)
{
	if (rate_clock_problem(rp->algo)) {
		rp->err = -EINVAL;
		return;
	}
	rp->tag |= RATE_TAG_REALTIME;
	if (rp->window_ms)
		rp->phase_ms = RATE_EPOCH_MS % rp->window_ms;
}

uint64_t rate_word_init(uint32_t tag, uint64_t now)
{
	if (tag & RATE_TAG_BUDGET)
		return 0; /* nothing spent */
	return rate_algo_gcra_word(RATE_TAG_ALGO(tag)) ? now : (now / RATE_NS_MS) << RATE_FW_BITS;
}

int rate_fw_count(const struct rate_params *rp, uint64_t w, uint64_t now, bool set, uint64_t n,
                  uint64_t *next, uint64_t *count)
{
	uint64_t end, cnt;

	fw_window(rp, w, now, &end, &cnt);
	if (n > RATE_FW_LIMIT_MAX || (set ? n : cnt + n) > RATE_FW_LIMIT_MAX)
		return -EOVERFLOW;
	cnt = set ? n : cnt + n;
	*next = end << RATE_FW_BITS | cnt;
	*count = cnt;
	return 0;
}

/* A wait in ms, rounded up; a budget's waits never end. */
static uint64_t wait_ms(const struct rate_params *rp, uint64_t ns)
{
	if (ns && (rp->tag & RATE_TAG_BUDGET))
		return PROT_RATE_NEVER;
	return div_up(ns, RATE_NS_MS);
}

void rate_info_fill(struct prot_rate_info *info, const struct rate_params *rp,
                    const struct rate_eval *e)
{
	if (!info)
		return;
	uint64_t used = e->used, remaining = e->remaining;
	if (rate_algo_gcra_word(rp->algo)) {
		used = div_up(e->reset_ns, rp->t_ns);
		remaining = e->reset_ns <= rp->tau_ns ? (rp->tau_ns - e->reset_ns) / rp->t_ns : 0;
	}
	*info = (struct prot_rate_info){
		.allowed = e->ok,
		.limit = rate_algo_bucket(rp->algo) ? rp->max_cost : rp->limit, /* buckets: capacity */
		.used = used,
		.remaining = remaining, /* 0 when a reload shrank the limit below the use */
		.window_ms = rp->window_ms,
		.reset_after_ms = wait_ms(rp, e->reset_ns),
		.retry_after_ms = wait_ms(rp, e->retry_ns),
	};
}

void rate_status_info(const struct rate_params *rp, uint64_t w, uint64_t now,
                      struct prot_rate_info *out)
{
	struct rate_eval e, one;

	rate_eval(rp, w, now, 0, &e);
	rate_eval(rp, w, now, 1, &one);
	rate_info_fill(out, rp, &e);
	out->allowed = one.ok;
	out->retry_after_ms = wait_ms(rp, one.retry_ns);
}
