/* test_rate_algo.c — the rate limiter's arithmetic alone (lib/rate_algo.c), without a segment or a
 * clock: which limits can be decided on (and the edges of RATE_WINDOW_MAX_MS, RATE_FW_LIMIT_MAX and
 * RATE_GCRA_TAU_MAX_NS), the parameters derived from them, and fixed-window and GCRA evaluation
 * of a bucket word at exact times: admit/deny boundaries to the nanosecond, retry-after,
 * reset-after, window rollover, costs above 1, bursts, and words near the top of their range;
 * token and leaky buckets (Hammer's numbers), a budget that never refills, calendar windows.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "rate_algo.h"

#define MS 1000000ull
#define S (1000 * MS)
#define T0 (3600 * S) /* an injected clock reading: a multiple of every window used here */

static struct rate_params params(uint32_t algo, uint64_t limit, uint64_t window_ms, uint64_t burst)
{
	struct rate_params rp;
	rate_params_make(algo, limit, window_ms, burst, &rp);
	return rp;
}

/* Charge n to *w at now; the word moves on only when admitted (as the table's CAS does). */
static bool charge(const struct rate_params *rp, uint64_t *w, uint64_t now, uint64_t n,
                   struct prot_rate_info *info)
{
	struct rate_eval e;
	rate_eval(rp, *w, now, n, &e);
	rate_info_fill(info, rp, &e);
	if (e.ok)
		*w = e.next;
	return e.ok;
}

#define INFO_EQ(in, al, u, rem, reset, retry)                                                      \
	do {                                                                                       \
		cr_assert_eq((in).allowed, (al), "allowed");                                        \
		cr_assert_eq((in).used, (u), "used %llu", (unsigned long long)(in).used);           \
		cr_assert_eq((in).remaining, (rem), "remaining %llu", (unsigned long long)(in).remaining); \
		cr_assert_eq((in).reset_after_ms, (reset), "reset %llu",                            \
		             (unsigned long long)(in).reset_after_ms);                             \
		cr_assert_eq((in).retry_after_ms, (retry), "retry %llu",                            \
		             (unsigned long long)(in).retry_after_ms);                             \
	} while (0)

/* ---- parameters ------------------------------------------------------------------------------- */

Test(rate_algo, params_fixed_window_and_the_default_algorithm)
{
	struct rate_params rp = params(PROT_RATE_FIXED_WINDOW, 5, 1000, 7);
	cr_assert_eq(rp.err, 0);
	cr_assert_eq(rp.algo, PROT_RATE_FIXED_WINDOW);
	cr_assert_eq(rp.limit, 5);
	cr_assert_eq(rp.window_ms, 1000);
	cr_assert_eq(rp.max_cost, 5, "a fixed window's burst is its limit, whatever rate_burst says");
	cr_assert_eq(rp.t_ns, 0);
	cr_assert_eq(rp.tau_ns, 0);
	rp = params(0, 5, 1000, 0);
	cr_assert_eq(rp.err, 0);
	cr_assert_eq(rp.algo, PROT_RATE_FIXED_WINDOW, "algorithm 0 is the fixed window");
	struct prot_rate_limit lim = {.limit = 9, .window_ms = 250};
	rate_params_of_limit(&lim, &rp);
	cr_assert_eq(rp.err, 0);
	cr_assert_eq(rp.algo, PROT_RATE_FIXED_WINDOW);
	cr_assert_eq(rp.limit, 9);
	cr_assert_eq(rp.window_ms, 250);
	rate_params_of_limit(NULL, &rp);
	cr_assert_eq(rp.err, -EINVAL, "no limit: nothing to decide on");
}

Test(rate_algo, params_gcra_interval_rounds_up_and_burst_defaults_to_limit)
{
	struct rate_params rp = params(PROT_RATE_GCRA, 10, 1000, 3);
	cr_assert_eq(rp.err, 0);
	cr_assert_eq(rp.t_ns, 100 * MS);
	cr_assert_eq(rp.tau_ns, 300 * MS);
	cr_assert_eq(rp.max_cost, 3);
	rp = params(PROT_RATE_GCRA, 10, 1000, 0);
	cr_assert_eq(rp.tau_ns, 1000 * MS, "burst 0 = limit");
	cr_assert_eq(rp.max_cost, 10);
	/* 3 per second: T = ceil(10^9 / 3), never more than 3 per second */
	rp = params(PROT_RATE_GCRA, 3, 1000, 0);
	cr_assert_eq(rp.t_ns, 333333334);
	cr_assert_eq(rp.tau_ns, 1000000002);
	/* GCRA counts no bits in the word: a limit above the fixed window's is fine */
	rp = params(PROT_RATE_GCRA, RATE_FW_LIMIT_MAX + 1, 1000, 0);
	cr_assert_eq(rp.err, 0);
}

Test(rate_algo, params_refuse_each_limit_at_its_edge)
{
	cr_assert_eq(params(PROT_RATE_FIXED_WINDOW, 0, 1000, 0).err, -EINVAL, "limit 0");
	cr_assert_eq(params(PROT_RATE_GCRA, 0, 1000, 0).err, -EINVAL, "limit 0");
	cr_assert_eq(params(PROT_RATE_FIXED_WINDOW, 1, 0, 0).err, -EINVAL, "window 0");
	cr_assert_eq(params(PROT_RATE_FIXED_WINDOW, 1, RATE_WINDOW_MAX_MS, 0).err, 0);
	cr_assert_eq(params(PROT_RATE_FIXED_WINDOW, 1, RATE_WINDOW_MAX_MS + 1, 0).err, -EINVAL);
	cr_assert_eq(params(PROT_RATE_GCRA, 1, RATE_WINDOW_MAX_MS + 1, 0).err, -EINVAL);
	cr_assert_eq(params(PROT_RATE_FIXED_WINDOW, RATE_FW_LIMIT_MAX, 1000, 0).err, 0);
	cr_assert_eq(params(PROT_RATE_FIXED_WINDOW, RATE_FW_LIMIT_MAX + 1, 1000, 0).err, -EINVAL);
	cr_assert_eq(params(0, RATE_FW_LIMIT_MAX + 1, 1000, 0).err, -EINVAL, "the default is a fixed window");
	cr_assert_eq(params(7, 1, 1000, 0).err, -EINVAL, "unknown algorithm");
}

Test(rate_algo, gcra_tolerance_edge_is_2_to_the_62_ns)
{
	/* 2^36 ms * 10^6 / 15625 = 2^42 ns exactly: tau = burst * 2^42 */
	struct rate_params rp = params(PROT_RATE_GCRA, 15625, RATE_WINDOW_MAX_MS, 1u << 20);
	cr_assert_eq(rp.err, 0);
	cr_assert_eq(rp.t_ns, 1ull << 42);
	cr_assert_eq(rp.tau_ns, RATE_GCRA_TAU_MAX_NS, "tau = 2^62 is allowed");
	cr_assert_eq(params(PROT_RATE_GCRA, 15625, RATE_WINDOW_MAX_MS, (1u << 20) + 1).err, -EINVAL);
	cr_assert_eq(params(PROT_RATE_GCRA, 1, 1000, UINT64_MAX).err, -EINVAL, "burst * T overflows");
}

Test(rate_algo, cost_above_the_limit_or_the_burst)
{
	struct rate_params fw = params(PROT_RATE_FIXED_WINDOW, 5, 1000, 0);
	struct rate_params g = params(PROT_RATE_GCRA, 10, 1000, 3);
	cr_assert_eq(rate_params_cost(&fw, 0), 0);
	cr_assert_eq(rate_params_cost(&fw, 5), 0);
	cr_assert_eq(rate_params_cost(&fw, 6), -PROT_ECOST);
	cr_assert_eq(rate_params_cost(&g, 3), 0);
	cr_assert_eq(rate_params_cost(&g, 4), -PROT_ECOST, "GCRA: above the burst, not the limit");
	struct rate_params bad = params(PROT_RATE_FIXED_WINDOW, 0, 1000, 0);
	cr_assert_eq(rate_params_cost(&bad, 0), -EINVAL, "invalid limits before any cost");
	cr_assert_eq(rate_params_cost(&bad, 1000), -EINVAL);
}

Test(rate_algo, limit_check_names_the_problem)
{
	char why[160] = "untouched";
	struct prot_rate_limit ok = {.algo = PROT_RATE_GCRA, .limit = 10, .window_ms = 1000, .burst = 3};
	cr_assert_eq(rate_limit_check(&ok, why, sizeof why), 0);
	cr_assert_str_eq(why, "untouched");
	static const struct {
		struct prot_rate_limit lim;
		const char *says;
	} bad[] = {
		{{.limit = 0, .window_ms = 1000}, "rate_limit must be at least 1 (rate_limit 0, rate_window "
		                                  "1000ms, rate_burst 0)"},
		{{.limit = 1, .window_ms = RATE_WINDOW_MAX_MS + 1}, "rate_window must be 1ms .. 2^36 ms"},
		{{.limit = RATE_FW_LIMIT_MAX + 1, .window_ms = 1000}, "a fixed window counts at most 2^24 - 1"},
		{{.algo = 9, .limit = 1, .window_ms = 1000}, "unknown rate algorithm"},
		{{.algo = PROT_RATE_GCRA, .limit = 15625, .window_ms = RATE_WINDOW_MAX_MS, .burst = (1u << 20) + 1},
		 "rate_burst * (rate_window / rate_limit) exceeds 2^62 ns (rate_limit 15625, rate_window "
		 "68719476736ms, rate_burst 1048577)"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(rate_limit_check(&bad[i].lim, why, sizeof why), -EINVAL, "case %zu", i);
		cr_assert(strncmp(why, bad[i].says, strlen(bad[i].says)) == 0, "case %zu: %s", i, why);
	}
}

/* ---- fixed window ----------------------------------------------------------------------------- */

Test(rate_algo, fixed_window_admits_limit_then_denies_until_the_window_ends)
{
	struct rate_params rp = params(PROT_RATE_FIXED_WINDOW, 5, 1000, 0);
	struct prot_rate_info in;
	uint64_t w = rate_word_init(rp.algo, T0);
	cr_assert_eq(w, (T0 / MS) << RATE_FW_BITS, "a fresh word: a window that ended now, count 0");
	cr_assert(charge(&rp, &w, T0, 1, &in));
	INFO_EQ(in, 1, 1, 4, 1000, 0);
	cr_assert_eq(in.limit, 5);
	cr_assert_eq(in.window_ms, 1000);
	cr_assert_eq(w, ((T0 / MS + 1000) << RATE_FW_BITS) | 1, "window end (ms) << 24 | count");
	for (int i = 0; i < 4; i++)
		cr_assert(charge(&rp, &w, T0 + 200 * MS, 1, &in));
	INFO_EQ(in, 1, 5, 0, 800, 0);
	uint64_t full = w;
	cr_assert(!charge(&rp, &w, T0 + 200 * MS, 1, &in));
	INFO_EQ(in, 0, 5, 0, 800, 800);
	cr_assert_eq(w, full, "a denial changes nothing");
	/* one nanosecond before the window ends: still denied, retry in 1 ns = 1 ms rounded up */
	cr_assert(!charge(&rp, &w, T0 + S - 1, 1, &in));
	INFO_EQ(in, 0, 5, 0, 1, 1);
	/* at the end: a fresh window */
	cr_assert(charge(&rp, &w, T0 + S, 1, &in));
	INFO_EQ(in, 1, 1, 4, 1000, 0);
}

Test(rate_algo, fixed_windows_are_aligned_and_a_running_window_is_kept)
{
	struct rate_params rp = params(PROT_RATE_FIXED_WINDOW, 5, 1000, 0);
	struct prot_rate_info in;
	/* first use in the middle of a window: it ends at the next multiple of the length */
	uint64_t w = rate_word_init(rp.algo, T0 + 500 * MS);
	cr_assert(charge(&rp, &w, T0 + 500 * MS, 1, &in));
	INFO_EQ(in, 1, 1, 4, 500, 0);
	/* a reload to 10 s windows keeps the running 1 s window and its count */
	struct rate_params ten = params(PROT_RATE_FIXED_WINDOW, 5, 10000, 0);
	cr_assert(charge(&ten, &w, T0 + 600 * MS, 1, &in));
	INFO_EQ(in, 1, 2, 3, 400, 0);
	cr_assert_eq(in.window_ms, 10000);
	/* once it has ended, the next window is a 10 s one, aligned on 10 s */
	cr_assert(charge(&ten, &w, T0 + 1500 * MS, 1, &in));
	INFO_EQ(in, 1, 1, 4, 8500, 0);
}

Test(rate_algo, fixed_window_costs_and_a_lowered_limit)
{
	struct rate_params rp = params(PROT_RATE_FIXED_WINDOW, 5, 1000, 0);
	struct prot_rate_info in;
	uint64_t w = rate_word_init(rp.algo, T0);
	cr_assert(charge(&rp, &w, T0, 3, &in));
	INFO_EQ(in, 1, 3, 2, 1000, 0);
	cr_assert(!charge(&rp, &w, T0, 3, &in), "3 + 3 > 5");
	INFO_EQ(in, 0, 3, 2, 1000, 1000);
	cr_assert(charge(&rp, &w, T0, 2, &in), "3 + 2 = 5");
	INFO_EQ(in, 1, 5, 0, 1000, 0);
	/* a reload lowers the limit below the count: nothing remains, nothing passes */
	struct rate_params three = params(PROT_RATE_FIXED_WINDOW, 3, 1000, 0);
	cr_assert(!charge(&three, &w, T0 + 10 * MS, 1, &in));
	INFO_EQ(in, 0, 5, 0, 990, 990);
	/* n = 0 describes without charging */
	struct rate_eval e;
	rate_eval(&rp, w, T0 + 10 * MS, 0, &e);
	cr_assert(e.ok);
	cr_assert_eq(e.next, w);
}

Test(rate_algo, fixed_window_words_at_the_top_of_their_range)
{
	/* the count's 24 bits: the largest limit fills them without touching the window end */
	struct rate_params rp = params(PROT_RATE_FIXED_WINDOW, RATE_FW_LIMIT_MAX, 1000, 0);
	struct prot_rate_info in;
	uint64_t end = T0 / MS + 1000, w = (end << RATE_FW_BITS) | (RATE_FW_LIMIT_MAX - 1);
	cr_assert(charge(&rp, &w, T0, 1, &in));
	cr_assert_eq(w >> RATE_FW_BITS, end);
	cr_assert_eq(w & RATE_FW_LIMIT_MAX, RATE_FW_LIMIT_MAX);
	cr_assert_eq(in.remaining, 0);
	cr_assert(!charge(&rp, &w, T0, 1, &in));
	cr_assert(charge(&rp, &w, T0 + S, RATE_FW_LIMIT_MAX, &in), "a whole window's worth at once");
	cr_assert_eq(in.used, RATE_FW_LIMIT_MAX);
	/* the longest window: 2^36 ms from a clock at 1 h ends at 2^36 ms */
	struct rate_params longest = params(PROT_RATE_FIXED_WINDOW, 1, RATE_WINDOW_MAX_MS, 0);
	w = rate_word_init(longest.algo, T0);
	cr_assert(charge(&longest, &w, T0, 1, &in));
	cr_assert_eq(w, (RATE_WINDOW_MAX_MS << RATE_FW_BITS) | 1);
	cr_assert_eq(in.reset_after_ms, RATE_WINDOW_MAX_MS - T0 / MS);
	cr_assert(!charge(&longest, &w, T0, 1, &in));
	cr_assert_eq(in.retry_after_ms, RATE_WINDOW_MAX_MS - T0 / MS);
}

/* ---- GCRA ------------------------------------------------------------------------------------- */

Test(rate_algo, gcra_burst_then_one_per_interval)
{
	struct rate_params rp = params(PROT_RATE_GCRA, 10, 1000, 3); /* T = 100 ms, tau = 300 ms */
	struct prot_rate_info in;
	uint64_t w = rate_word_init(rp.algo, T0);
	cr_assert_eq(w, T0, "a fresh word: a theoretical arrival time of now");
	cr_assert(charge(&rp, &w, T0, 1, &in));
	INFO_EQ(in, 1, 1, 2, 100, 0);
	cr_assert_eq(w, T0 + 100 * MS);
	cr_assert(charge(&rp, &w, T0, 1, &in));
	cr_assert(charge(&rp, &w, T0, 1, &in));
	INFO_EQ(in, 1, 3, 0, 300, 0);
	cr_assert(!charge(&rp, &w, T0, 1, &in), "the burst is spent");
	INFO_EQ(in, 0, 3, 0, 300, 100);
	cr_assert_eq(w, T0 + 300 * MS, "a denial changes nothing");
	/* the next unit is due exactly one interval later, not a nanosecond before */
	cr_assert(!charge(&rp, &w, T0 + 100 * MS - 1, 1, &in));
	cr_assert_eq(in.retry_after_ms, 1, "1 ns, rounded up");
	cr_assert(charge(&rp, &w, T0 + 100 * MS, 1, &in));
	INFO_EQ(in, 1, 3, 0, 300, 0);
	/* idle past the arrival time: fully available again */
	cr_assert(charge(&rp, &w, T0 + 10 * S, 3, &in), "a cost of the whole burst");
	INFO_EQ(in, 1, 3, 0, 300, 0);
	cr_assert(!charge(&rp, &w, T0 + 10 * S + 150 * MS, 3, &in), "150 ms repaid 1.5 units, not 3");
	INFO_EQ(in, 0, 2, 1, 150, 150);
	cr_assert(charge(&rp, &w, T0 + 10 * S + 150 * MS, 1, &in));
	INFO_EQ(in, 1, 3, 0, 250, 0);
}

Test(rate_algo, gcra_rounded_interval_never_exceeds_the_limit)
{
	struct rate_params rp = params(PROT_RATE_GCRA, 3, 1000, 0); /* T = 333333334 ns */
	struct prot_rate_info in;
	uint64_t w = rate_word_init(rp.algo, T0);
	for (int i = 0; i < 3; i++)
		cr_assert(charge(&rp, &w, T0, 1, &in));
	INFO_EQ(in, 1, 3, 0, 1001, 0);
	/* then one unit per T, to the nanosecond: three of them take 1000000002 ns, not 1 s */
	for (uint64_t k = 1; k <= 3; k++) {
		cr_assert(!charge(&rp, &w, T0 + k * 333333334 - 1, 1, &in), "unit %llu is early",
		          (unsigned long long)k);
		cr_assert_eq(in.retry_after_ms, 1);
		cr_assert(charge(&rp, &w, T0 + k * 333333334, 1, &in));
	}
	cr_assert_eq(w, T0 + 6 * 333333334ull);
}

Test(rate_algo, gcra_words_at_the_top_of_their_range)
{
	/* T = 2^42 ns, tau = 2^62 ns, burst 2^20: the whole burst at a clock of 2^62 ns */
	struct rate_params rp = params(PROT_RATE_GCRA, 15625, RATE_WINDOW_MAX_MS, 1u << 20);
	struct prot_rate_info in;
	uint64_t now = 1ull << 62, w = rate_word_init(rp.algo, now);
	cr_assert(charge(&rp, &w, now, 1u << 20, &in));
	cr_assert_eq(w, 1ull << 63);
	INFO_EQ(in, 1, 1u << 20, 0, 4611686018428ull, 0);
	cr_assert(!charge(&rp, &w, now, 1, &in));
	INFO_EQ(in, 0, 1u << 20, 0, 4611686018428ull, 4398047ull);
	cr_assert_eq(w, 1ull << 63);
}

/* ---- status ----------------------------------------------------------------------------------- */

Test(rate_algo, status_describes_without_charging)
{
	struct rate_params fw = params(PROT_RATE_FIXED_WINDOW, 5, 1000, 0);
	struct prot_rate_info in;
	uint64_t w = rate_word_init(fw.algo, T0);
	rate_status_info(&fw, w, T0, &in);
	INFO_EQ(in, 1, 0, 5, 1000, 0);
	cr_assert(charge(&fw, &w, T0, 5, NULL), "info may be NULL");
	rate_status_info(&fw, w, T0 + 300 * MS, &in);
	INFO_EQ(in, 0, 5, 0, 700, 700);

	struct rate_params g = params(PROT_RATE_GCRA, 10, 1000, 3);
	w = rate_word_init(g.algo, T0);
	rate_status_info(&g, w, T0, &in);
	INFO_EQ(in, 1, 0, 3, 0, 0);
	cr_assert(charge(&g, &w, T0, 3, NULL));
	rate_status_info(&g, w, T0 + 50 * MS, &in);
	INFO_EQ(in, 0, 3, 0, 250, 50);
	/* the same word under a reloaded interval: 300 ms of debt at T = 50 ms is 6 units */
	struct rate_params g20 = params(PROT_RATE_GCRA, 20, 1000, 6);
	rate_status_info(&g20, w, T0, &in);
	INFO_EQ(in, 0, 6, 0, 300, 50);
}

/* ---- token and leaky bucket, budgets, calendar windows ---------------------------------------- */

Test(rate_algo, token_and_leaky_buckets_are_gcra_with_hammers_numbers)
{
	/* refill 55 per second, capacity 10: T = ceil(10^9 / 55) ns */
	struct rate_params tb = params(PROT_RATE_TOKEN_BUCKET, 55, 0, 10);
	struct prot_rate_info in;
	cr_assert_eq(tb.err, 0);
	cr_assert_eq(tb.window_ms, 1000, "a period of 0 is a second");
	cr_assert_eq(tb.t_ns, 18181819);
	cr_assert_eq(tb.max_cost, 10, "the capacity");
	uint64_t w = rate_word_init(tb.tag, T0);
	cr_assert(charge(&tb, &w, T0, 3, &in));
	cr_assert_eq(in.remaining, 7, "tokens left");
	cr_assert_eq(in.limit, 10, "limit is the capacity");
	cr_assert(charge(&tb, &w, T0, 7, &in));
	cr_assert(!charge(&tb, &w, T0, 1, &in));
	cr_assert_eq(in.retry_after_ms, 19, "ceil(1000 / 55)");
	cr_assert(!charge(&tb, &w, T0, 5, &in));
	cr_assert_eq(in.retry_after_ms, 91, "ceil(5000 / 55)");
	cr_assert(charge(&tb, &w, T0 + 91 * MS, 5, &in), "the wait was enough");
	/* leak 2 per second, capacity 3: starts empty, the level is `used` */
	struct rate_params lb = params(PROT_RATE_LEAKY_BUCKET, 2, 0, 3);
	w = rate_word_init(lb.tag, T0);
	cr_assert(charge(&lb, &w, T0, 1, &in));
	cr_assert_eq(in.used, 1);
	cr_assert(charge(&lb, &w, T0, 2, &in));
	cr_assert_eq(in.used, 3);
	cr_assert(!charge(&lb, &w, T0, 1, &in), "level + cost may not pass the capacity");
	cr_assert_eq(in.retry_after_ms, 500, "one unit leaks in 500 ms");
	cr_assert(charge(&lb, &w, T0 + 250 * MS, 0, &in));
	cr_assert_eq(in.used, 3, "a unit half leaked is still in the bucket");
	cr_assert(charge(&lb, &w, T0 + 500 * MS, 1, &in));
	cr_assert_eq(in.used, 3);
	/* a leak rate of 0 and a capacity of 0 cannot be decided on */
	cr_assert_eq(params(PROT_RATE_LEAKY_BUCKET, 0, 0, 3).err, -EINVAL);
	cr_assert_eq(params(PROT_RATE_TOKEN_BUCKET, 5, 0, 0).err, -EINVAL);
}

Test(rate_algo, a_refill_of_zero_is_a_budget_on_a_clock_that_never_moves)
{
	struct rate_params rp = params(PROT_RATE_TOKEN_BUCKET, 0, 0, 4);
	struct prot_rate_info in;
	cr_assert_eq(rp.err, 0);
	cr_assert_eq(rp.tag, PROT_RATE_TOKEN_BUCKET | RATE_TAG_BUDGET);
	uint64_t w = rate_word_init(rp.tag, T0);
	cr_assert_eq(w, 0, "nothing spent");
	cr_assert(charge(&rp, &w, T0, 3, &in));
	cr_assert_eq(w, 3, "the word is the units spent");
	cr_assert_eq(in.remaining, 1);
	cr_assert_eq(in.reset_after_ms, PROT_RATE_NEVER);
	cr_assert(charge(&rp, &w, T0 + 3600 * S, 1, &in), "an hour later: the last unit");
	cr_assert(!charge(&rp, &w, T0 + 1000 * 3600 * S, 1, &in), "never refilled");
	cr_assert_eq(in.retry_after_ms, PROT_RATE_NEVER);
	cr_assert_eq(in.used, 4);
}

Test(rate_algo, calendar_windows_are_utc_multiples_since_the_unix_epoch)
{
	const uint64_t day = 24 * 3600 * 1000ull, week = 7 * day;
	struct rate_params d = params(PROT_RATE_FIXED_WINDOW, 5, day, 0);
	struct rate_params wk = params(PROT_RATE_FIXED_WINDOW, 5, week, 0);
	struct prot_rate_info in;
	rate_params_realtime(&d);
	rate_params_realtime(&wk);
	cr_assert_eq(d.err, 0);
	cr_assert(d.tag & RATE_TAG_REALTIME);
	cr_assert_eq(d.phase_ms, 0, "2020-01-01 is a midnight");
	/* calendar time 2026-12-01T12:00Z, as ms since RATE_EPOCH_MS */
	uint64_t unix_ms = 1796126400000ull, now = (unix_ms - RATE_EPOCH_MS) * MS;
	uint64_t w = rate_word_init(d.tag, now);
	cr_assert(charge(&d, &w, now, 1, &in));
	cr_assert_eq(in.reset_after_ms, 12 * 3600 * 1000ull, "midnight UTC");
	/* weeks roll on Thursdays 00:00 UTC (the epoch was a Thursday); 2026-12-01 is a Tuesday */
	w = rate_word_init(wk.tag, now);
	cr_assert(charge(&wk, &w, now, 1, &in));
	cr_assert_eq(in.reset_after_ms, day + 12 * 3600 * 1000ull);
	cr_assert_eq((unix_ms + in.reset_after_ms) % week, 0);
	/* only a window algorithm takes the calendar */
	struct rate_params g = params(PROT_RATE_GCRA, 5, 1000, 0);
	rate_params_realtime(&g);
	cr_assert_eq(g.err, -EINVAL);
}
