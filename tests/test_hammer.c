/* test_hammer.c — Hammer's own test cases replayed through the C API, against a real protd: v6
 * (test/hammer_test.exs: check_rate, inspect_bucket, delete_bucket) and v7 (test/hammer/ets_test.exs
 * and test/hammer/ets/{fix_window,token_bucket,leaky_bucket,sliding_window}_test.exs: hit with a
 * cost, waiting for the next window, inc/get/set, get). Each Test names the Hammer file and
 * test it replays; an expectation that differs is a row of "Differences from Hammer" (prot.h,
 * README) and says which.
 *
 * Hammer's answers in prot_rate_info: {:allow, n} / {:ok, n} is 1 with n = used (fixed and
 * sliding window: the count; leaky bucket: the level) or remaining (token bucket: tokens left);
 * {:deny, n} / {:error, n} is 0 with n = limit (windows) or retry_after_ms (buckets). A bucket is
 * (operation, entity): Hammer's key is the entity of the operation "hammer".
 *
 * Time: where Hammer sleeps, this sleeps (the real clock); where Hammer pins `now` or seeds a
 * bucket's timestamp, this pins the decision's clock through rate_check_h() (the hidden form of
 * prot_rate_check_n that takes a CLOCK_MONOTONIC reading), one hour ahead so that protd's sweep
 * leaves the buckets alone.
 *
 * Part B's sliding window and counters (prot_rate_inc/get/set, PROT_RATE_SLIDING_WINDOW) are
 * replayed under HAMMER_REPLAY_SLIDING and HAMMER_REPLAY_COUNTERS, off until that part is merged.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "rate_algo.h"

#define MS 1000000ull

#define HEAD                                                                                     \
	"[segment]\nmax_keys = 4\nmax_breakers = 1\nmax_pools = 1\npool_max_slots = 1\n"         \
	"pool_max_waiters = 1\nrate_entities = 4096\nevents = 64\n\n[daemon]\ntick = 10ms\n\n"

static prot_t *P;
static pid_t PROTD;
static const char *SEG, *INI;

static void serve(void)
{
	PROTD = th_serve_head("hammer", HEAD, "", &SEG, &INI, &P);
}

static void unserve(void)
{
	th_unserve(P, PROTD);
}

TestSuite(hammer, .init = serve, .fini = unserve, .timeout = 60);

/* One of Hammer's calls and what it answered. */
struct hit {
	int r;
	uint32_t algo;
	struct prot_rate_info in;
};

/* Hammer's number for an answer (see the top of the file). */
static uint64_t hammer_n(const struct hit *h)
{
	bool bucket = h->algo == PROT_RATE_TOKEN_BUCKET || h->algo == PROT_RATE_LEAKY_BUCKET;
	if (h->r == 1)
		return h->algo == PROT_RATE_TOKEN_BUCKET ? h->in.remaining : h->in.used;
	return bucket ? h->in.retry_after_ms : h->in.limit;
}

#define ANY UINT64_MAX /* Hammer's `_` */
#define ALLOW(expr, n) expect((expr), 1, (n), #expr)
#define DENY(expr, n) expect((expr), 0, (n), #expr)

static void expect(struct hit h, int want, uint64_t n, const char *what)
{
	cr_assert_eq(h.r, want, "%s: %d, expected %s", what, h.r, want ? "allow" : "deny");
	if (n != ANY)
		cr_assert_eq(hammer_n(&h), n, "%s: %lu, expected %lu", what, (unsigned long)hammer_n(&h),
		             (unsigned long)n);
}

/* now_ns 0: the real clock; else a pinned CLOCK_MONOTONIC reading. */
static struct hit run(const struct prot_rate_limit *l, const char *key, uint64_t cost, uint64_t now_ns)
{
	struct hit h = {.algo = l->algo};
	h.r = rate_check_h(P, prot_hdr(P), "hammer", key, l, cost, now_ns, &h.in);
	cr_assert_geq(h.r, 0, "%s: %s", key, prot_strerror(h.r));
	return h;
}

/* Hammer v7 FixWindow.hit(key, scale, limit, cost) and RateLimit.check_rate(key, scale, limit, cost). */
static struct hit fw(const char *key, uint64_t scale, uint64_t limit, uint64_t cost)
{
	const struct prot_rate_limit l = {.algo = PROT_RATE_FIXED_WINDOW, .limit = limit, .window_ms = scale};
	return run(&l, key, cost, 0);
}

static struct hit fw_at(const char *key, uint64_t scale, uint64_t limit, uint64_t cost, uint64_t now)
{
	const struct prot_rate_limit l = {.algo = PROT_RATE_FIXED_WINDOW, .limit = limit, .window_ms = scale};
	return run(&l, key, cost, now);
}

/* Hammer v6 check_rate(id, scale, limit): {:ok, count} | {:error, limit}. */
static struct hit v6(const char *id, uint64_t scale, uint64_t limit)
{
	struct hit h = {.algo = PROT_RATE_FIXED_WINDOW};
	h.r = prot_rate_check(P, "hammer", id, limit, scale, &h.in);
	cr_assert_geq(h.r, 0, "%s: %s", id, prot_strerror(h.r));
	return h;
}

/* TokenBucket.hit(key, refill_rate, capacity, cost); LeakyBucket.hit(key, leak_rate, capacity, cost). */
static struct hit tb_at(const char *key, uint64_t refill, uint64_t capacity, uint64_t cost, uint64_t now)
{
	const struct prot_rate_limit l = {.algo = PROT_RATE_TOKEN_BUCKET, .refill_rate = refill,
	                                  .capacity = capacity};
	return run(&l, key, cost, now);
}

static struct hit tb(const char *key, uint64_t refill, uint64_t capacity, uint64_t cost)
{
	return tb_at(key, refill, capacity, cost, 0);
}

static struct hit lb_at(const char *key, uint64_t leak, uint64_t capacity, uint64_t cost, uint64_t now)
{
	const struct prot_rate_limit l = {.algo = PROT_RATE_LEAKY_BUCKET, .leak_rate = leak,
	                                  .capacity = capacity};
	return run(&l, key, cost, now);
}

static struct hit lb(const char *key, uint64_t leak, uint64_t capacity, uint64_t cost)
{
	return lb_at(key, leak, capacity, cost, 0);
}

/* Status of a bucket (Hammer's inspect_bucket / get). */
static struct prot_rate_info status(const struct prot_rate_limit *l, const char *key)
{
	struct prot_rate_info in;
	cr_assert_eq(prot_rate_status(P, "hammer", key, l, &in), 0);
	return in;
}

/* Hammer's windows are aligned on multiples of the scale, as these are: a replay that must not
 * straddle a boundary starts just after one (windows up to 1 s) or with 2 s left in its window. */
static void fresh_window(uint64_t scale)
{
	uint64_t now = prot_now_ns() / MS, left = scale - now % scale;
	if (scale <= 1000 || left < 2000)
		usleep((useconds_t)(left + 5) * 1000);
}

/* A pinned clock: one hour ahead, aligned on a minute (a multiple of every scale pinned here). */
static uint64_t t0(void)
{
	return (prot_now_ns() / (60000 * MS) + 61) * 60000 * MS;
}

/* ---- v6: test/hammer_test.exs ---------------------------------------------------------------- */

Test(hammer, v6_check_rate_first_access_and_in_limit)
{
	fresh_window(10000);
	ALLOW(v6("my-bucket", 10000, 10), 1); /* "returns {:ok, 1} tuple on first access" */
	ALLOW(v6("my-bucket", 10000, 10), 2); /* "returns {:ok, 4} tuple on in-limit checks" */
	ALLOW(v6("my-bucket", 10000, 10), 3);
	ALLOW(v6("my-bucket", 10000, 10), 4);
}

Test(hammer, v6_check_rate_mix_of_in_and_out_of_limit)
{
	fresh_window(10000);
	ALLOW(v6("my-bucket", 10000, 2), 1);
	ALLOW(v6("my-bucket", 10000, 2), 2);
	DENY(v6("my-bucket", 10000, 2), 2);
	DENY(v6("my-bucket", 10000, 2), 2);
}

Test(hammer, v6_check_rate_1000ms_with_a_sleep_in_the_middle)
{
	fresh_window(1000);
	ALLOW(v6("my-bucket", 1000, 2), 1);
	ALLOW(v6("my-bucket", 1000, 2), 2);
	DENY(v6("my-bucket", 1000, 2), 2);
	usleep(1000 * 1000);
	ALLOW(v6("my-bucket", 1000, 2), 1);
	ALLOW(v6("my-bucket", 1000, 2), 2);
	DENY(v6("my-bucket", 1000, 2), 2);
}

Test(hammer, v6_inspect_bucket)
{
	const struct prot_rate_limit l = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 2, .window_ms = 1000};
	fresh_window(1000);
	struct prot_rate_info in = status(&l, "my-bucket1"); /* {0, 2, _, nil, nil} */
	cr_assert_eq(in.used, 0);
	cr_assert_eq(in.remaining, 2);
	ALLOW(v6("my-bucket1", 1000, 2), 1);
	in = status(&l, "my-bucket1"); /* {1, 1, _, _, _} */
	cr_assert_eq(in.used, 1);
	cr_assert_eq(in.remaining, 1);
	ALLOW(v6("my-bucket1", 1000, 2), 2);
	ALLOW(v6("my-bucket2", 1000, 2), 1);
	in = status(&l, "my-bucket1"); /* {2, 0, _, _, _} */
	cr_assert_eq(in.used, 2);
	cr_assert_eq(in.remaining, 0);
	DENY(v6("my-bucket1", 1000, 2), 2);
	in = status(&l, "my-bucket1");
	/* Hammer: {3, 0, ms_to_next_bucket, _, _}. Difference: a denied hit is not counted. */
	cr_assert_eq(in.used, 2);
	cr_assert_eq(in.remaining, 0);
	cr_assert_lt(in.reset_after_ms, 1000, "ms_to_next_bucket < 1000");
}

Test(hammer, v6_delete_bucket)
{
	fresh_window(1000);
	ALLOW(v6("my-bucket1", 1000, 2), 1);
	ALLOW(v6("my-bucket1", 1000, 2), 2);
	DENY(v6("my-bucket1", 1000, 2), 2);
	ALLOW(v6("my-bucket2", 1000, 2), 1);
	ALLOW(v6("my-bucket2", 1000, 2), 2);
	DENY(v6("my-bucket2", 1000, 2), 2);
	cr_assert_eq(prot_rate_reset(P, "hammer", "my-bucket1"), 0); /* :ok */
	ALLOW(v6("my-bucket1", 1000, 2), 1);
	DENY(v6("my-bucket2", 1000, 2), 2);
	cr_assert_eq(prot_rate_reset(P, "hammer", "unknown-bucket"), -ENOENT); /* :error */
}

/* ---- v7: test/hammer/ets_test.exs (RateLimit.check_rate, the fixed window) --------------------- */

Test(hammer, v7_check_rate_first_in_limit_and_mix)
{
	fresh_window(600000);
	ALLOW(fw("bucket", 10000, 10, 1), 1);
	ALLOW(fw("bucket4", 600000, 10, 1), 1);
	ALLOW(fw("bucket4", 600000, 10, 1), 2);
	ALLOW(fw("bucket4", 600000, 10, 1), 3);
	ALLOW(fw("bucket4", 600000, 10, 1), 4);
	ALLOW(fw("mix", 600000, 2, 1), 1);
	ALLOW(fw("mix", 600000, 2, 1), 2);
	DENY(fw("mix", 600000, 2, 1), 2);
	DENY(fw("mix", 600000, 2, 1), 2);
}

Test(hammer, v7_check_rate_100ms_with_a_sleep_in_the_middle)
{
	fresh_window(100);
	ALLOW(fw("bucket", 100, 2, 1), 1);
	ALLOW(fw("bucket", 100, 2, 1), 2);
	DENY(fw("bucket", 100, 2, 1), 2);
	usleep(101 * 1000);
	ALLOW(fw("bucket", 100, 2, 1), 1);
	ALLOW(fw("bucket", 100, 2, 1), 2);
	DENY(fw("bucket", 100, 2, 1), 2);
}

Test(hammer, v7_check_rate_custom_and_mixed_increments)
{
	uint64_t now = t0(); /* the 1 s window must not roll inside the replay */
	ALLOW(fw_at("cost-bucket", 1000, 10, 4, now), 4);
	ALLOW(fw_at("cost-bucket", 1000, 10, 5, now), 9);
	DENY(fw_at("cost-bucket", 1000, 10, 3, now), 10);
	ALLOW(fw_at("cost-bucket2", 1000, 10, 3, now), 3);
	ALLOW(fw_at("cost-bucket2", 1000, 10, 1, now), 4);
	ALLOW(fw_at("cost-bucket2", 1000, 10, 1, now), 5);
	ALLOW(fw_at("cost-bucket2", 1000, 10, 4, now), 9);
	ALLOW(fw_at("cost-bucket2", 1000, 10, 1, now), 10);
	DENY(fw_at("cost-bucket2", 1000, 10, 2, now), 10);
}

/* ---- v7: test/hammer/ets/fix_window_test.exs ------------------------------------------------- */

Test(hammer, fix_window_after_waiting_for_the_next_window)
{
	fresh_window(100);
	ALLOW(fw("key", 100, 2, 1), 1);
	ALLOW(fw("key", 100, 2, 1), 2);
	struct hit d = fw("key", 100, 2, 1);
	DENY(d, 2);
	usleep((useconds_t)d.in.retry_after_ms * 1000);
	ALLOW(fw("key", 100, 2, 1), 1);
	ALLOW(fw("key", 100, 2, 1), 2);
	DENY(fw("key", 100, 2, 1), 2);
}

Test(hammer, fix_window_with_an_explicit_now)
{
	/* Hammer pins now = 1_000_000 ms; this pins a reading of the same phase in its 1 s window */
	uint64_t now = t0() + 1000000 * MS;
	const struct prot_rate_limit l = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 2, .window_ms = 1000};
	ALLOW(fw_at("clock-key", 1000, 2, 1, now), 1);
	ALLOW(fw_at("clock-key", 1000, 2, 1, now), 2);
	struct hit d = fw_at("clock-key", 1000, 2, 1, now);
	DENY(d, 2);
	cr_assert_eq(d.in.retry_after_ms, 1000 - (now / MS) % 1000, "scale - rem(now, scale)");
	/* Hammer's get/4 then reads 3: a denied hit is not counted (Differences from Hammer) */
	struct prot_rate_info in;
	struct rate_params rp;
	rate_params_of_limit(&l, &rp);
	cr_assert_eq(rate_status_h(prot_hdr(P), "hammer", "clock-key", &rp, now, &in), 0);
	cr_assert_eq(in.used, 2);
	ALLOW(fw_at("clock-key", 1000, 2, 1, now + 1000 * MS), 1); /* the next window is fresh */
}

#ifdef HAMMER_REPLAY_COUNTERS
Test(hammer, fix_window_inc_get_set)
{
	const struct prot_rate_limit l = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 100, .window_ms = 10000};
	uint64_t n;
	fresh_window(10000);
	cr_assert_eq(prot_rate_get(P, "hammer", "key", &l, &n), 0);
	cr_assert_eq(n, 0);
	for (uint64_t k = 1; k <= 4; k++) {
		cr_assert_eq(prot_rate_inc(P, "hammer", "key", &l, 1, &n), 0);
		cr_assert_eq(n, k);
		cr_assert_eq(prot_rate_get(P, "hammer", "key", &l, &n), 0);
		cr_assert_eq(n, k);
	}
	cr_assert_eq(prot_rate_set(P, "hammer", "key2", &l, 10), 0);
	cr_assert_eq(prot_rate_get(P, "hammer", "key2", &l, &n), 0);
	cr_assert_eq(n, 10);
}
#endif

/* ---- v7: test/hammer/ets/token_bucket_test.exs ----------------------------------------------- */

Test(hammer, token_bucket_first_access_in_limit_and_mix)
{
	ALLOW(tb("first", 10, 10, 1), 9);
	ALLOW(tb("in-limit", 2, 10, 1), 9);
	ALLOW(tb("in-limit", 2, 10, 1), 8);
	ALLOW(tb("in-limit", 2, 10, 1), 7);
	ALLOW(tb("in-limit", 2, 10, 1), 6);
	uint64_t now = t0(); /* {:deny, 1000} is exact only at the instant of the hit before */
	ALLOW(tb_at("mix", 1, 2, 1, now), 1);
	ALLOW(tb_at("mix", 1, 2, 1, now), 0);
	DENY(tb_at("mix", 1, 2, 1, now), 1000);
	DENY(tb_at("mix", 1, 2, 1, now), ANY);
}

Test(hammer, token_bucket_after_waiting_for_the_next_window)
{
	ALLOW(tb("key", 1, 2, 1), 1);
	ALLOW(tb("key", 1, 2, 1), 0);
	struct hit d = tb("key", 1, 2, 1);
	DENY(d, ANY);
	usleep((useconds_t)d.in.retry_after_ms * 1000);
	ALLOW(tb("key", 1, 2, 1), 0);
	DENY(tb("key", 1, 2, 1), ANY);
}

Test(hammer, token_bucket_keeps_the_sub_token_remainder)
{
	/* "carries the sub-token remainder", "does not reset the clock when a full bucket accrued no
	 * new tokens", "a caller paced at the nominal refill rate does not starve": Hammer seeds the
	 * stored timestamp; GCRA stores no timestamp to lose a remainder from. 60 hits 18 ms apart at
	 * 55 per second (a token every 18.18 ms) are all admitted and the level holds. */
	uint64_t now = t0();
	struct hit h = {0};
	for (int step = 1; step <= 60; step++) {
		h = tb_at("paced", 55, 10, 1, now + (uint64_t)(step - 1) * 18 * MS);
		cr_assert_eq(h.r, 1, "denied at step %d", step);
	}
	cr_assert_geq(h.in.remaining, 10 / 2);
	/* the idle bucket's surplus is discarded: after 5 s it holds its capacity, not 275 */
	ALLOW(tb_at("idle", 55, 10, 1, now), 9);
	ALLOW(tb_at("idle", 55, 10, 1, now + 5000 * MS), 9);
}

Test(hammer, token_bucket_refills_at_sub_second_granularity)
{
	ALLOW(tb("key", 100, 10, 10), 0);
	usleep(30 * 1000);
	ALLOW(tb("key", 100, 10, 1), ANY);
}

Test(hammer, token_bucket_denies_with_the_real_time_until_the_next_token)
{
	uint64_t now = t0();
	ALLOW(tb_at("key", 55, 10, 10, now), 0);
	DENY(tb_at("key", 55, 10, 1, now), 19); /* ceil(1000 / 55) */
	DENY(tb_at("key", 55, 10, 5, now), 91); /* ceil(5000 / 55) */
}

Test(hammer, token_bucket_the_deny_wait_is_long_enough)
{
	ALLOW(tb("key", 55, 10, 10), 0);
	struct hit d = tb("key", 55, 10, 3);
	DENY(d, ANY);
	usleep((useconds_t)d.in.retry_after_ms * 1000);
	ALLOW(tb("key", 55, 10, 3), ANY);
}

Test(hammer, token_bucket_the_advertised_wait_is_sufficient)
{
	static const uint64_t rates[] = {1, 2, 3, 7, 55, 100, 999, 1000000};
	static const uint64_t caps[] = {1, 10, 1000};
	uint64_t now = t0();
	char key[96];
	for (size_t r = 0; r < sizeof rates / sizeof *rates; r++)
		for (size_t c = 0; c < sizeof caps / sizeof *caps; c++) {
			const uint64_t costs[] = {1, 3, caps[c]};
			for (size_t k = 0; k < 3; k++) {
				uint64_t cost = costs[k];
				if (cost > caps[c])
					continue;
				const uint64_t levels[] = {0, cost / 2};
				for (size_t s = 0; s < 2; s++) {
					uint64_t level = levels[s];
					if (level >= cost || (s == 1 && level == 0))
						continue;
					snprintf(key, sizeof key, "sufficient:%lu:%lu:%lu:%lu", (unsigned long)rates[r],
					         (unsigned long)caps[c], (unsigned long)cost, (unsigned long)level);
					/* seed the level (Hammer inserts it over any earlier state: a cost
					 * listed twice, as capacity 1 lists 1): spend what is above it */
					int rr = prot_rate_reset(P, "hammer", key);
					cr_assert(rr == 0 || rr == -ENOENT);
					if (caps[c] > level)
						ALLOW(tb_at(key, rates[r], caps[c], caps[c] - level, now), level);
					struct hit d = tb_at(key, rates[r], caps[c], cost, now);
					DENY(d, ANY);
					cr_assert_geq(d.in.retry_after_ms, 1, "%s", key);
					struct hit a = tb_at(key, rates[r], caps[c], cost,
					                     now + d.in.retry_after_ms * MS);
					cr_assert_eq(a.r, 1, "wait of %lums was too short for %s",
					             (unsigned long)d.in.retry_after_ms, key);
				}
			}
		}
}

Test(hammer, token_bucket_costs_greater_than_one)
{
	ALLOW(tb("key", 2, 10, 3), 7);
	ALLOW(tb("key", 2, 10, 4), 3);
	DENY(tb("key", 2, 10, 4), ANY);
	ALLOW(tb("key", 2, 10, 2), 1);
}

Test(hammer, token_bucket_race_and_fresh_table)
{
	ALLOW(tb("race_key", 10, 10, 1), 9); /* a deleted entry starts over */
	cr_assert_eq(prot_rate_reset(P, "hammer", "race_key"), 0);
	ALLOW(tb("race_key", 10, 10, 1), 9);
	ALLOW(tb("fresh_key", 10, 10, 1), 9);
}

Test(hammer, token_bucket_get)
{
	const struct prot_rate_limit l = {.algo = PROT_RATE_TOKEN_BUCKET, .refill_rate = 1, .capacity = 10};
	/* Hammer's get of an unknown key: 0. Difference: status of a bucket never used reports it
	 * as a hit would find it, full. */
	cr_assert_eq(status(&l, "key").remaining, 10);
	ALLOW(tb("key", 1, 10, 4), ANY);
	cr_assert_eq(status(&l, "key").remaining, 6);
	ALLOW(tb("key", 1, 10, 3), ANY);
	cr_assert_eq(status(&l, "key").remaining, 3);
}

/* ---- v7: test/hammer/ets/leaky_bucket_test.exs ----------------------------------------------- */

Test(hammer, leaky_bucket_first_access_in_limit_and_mix)
{
	ALLOW(lb("first", 10, 10, 1), 1);
	ALLOW(lb("in-limit", 2, 10, 1), 1);
	ALLOW(lb("in-limit", 2, 10, 1), 2);
	ALLOW(lb("in-limit", 2, 10, 1), 3);
	ALLOW(lb("in-limit", 2, 10, 1), 4);
	uint64_t now = t0();
	ALLOW(lb_at("mix", 1, 2, 1, now), 1);
	ALLOW(lb_at("mix", 1, 2, 1, now), 2);
	DENY(lb_at("mix", 1, 2, 1, now), 1000);
	DENY(lb_at("mix", 1, 2, 1, now), ANY);
}

Test(hammer, leaky_bucket_after_waiting_for_the_next_window)
{
	ALLOW(lb("key", 1, 2, 1), 1);
	ALLOW(lb("key", 1, 2, 1), 2);
	struct hit d = lb("key", 1, 2, 1);
	DENY(d, ANY);
	usleep((useconds_t)d.in.retry_after_ms * 1000);
	ALLOW(lb("key", 1, 2, 1), 2);
	DENY(lb("key", 1, 2, 1), ANY);
}

Test(hammer, leaky_bucket_get)
{
	const struct prot_rate_limit l = {.algo = PROT_RATE_LEAKY_BUCKET, .leak_rate = 1, .capacity = 10};
	cr_assert_eq(status(&l, "key").used, 0);
	ALLOW(lb("key", 1, 10, 4), ANY);
	cr_assert_eq(status(&l, "key").used, 4);
	ALLOW(lb("key", 1, 10, 3), ANY);
	cr_assert_eq(status(&l, "key").used, 7);
}

/* ---- v7: test/hammer/ets/sliding_window_test.exs (part B) ------------------------------------ */

#ifdef HAMMER_REPLAY_SLIDING
static struct hit sw(const char *key, uint64_t scale, uint64_t limit)
{
	const struct prot_rate_limit l = {.algo = PROT_RATE_SLIDING_WINDOW, .limit = limit, .window_ms = scale};
	return run(&l, key, 1, 0);
}

Test(hammer, sliding_window_first_in_limit_and_mix)
{
	ALLOW(sw("first", 10000, 10), 1);
	for (uint64_t k = 1; k <= 4; k++)
		ALLOW(sw("in-limit", 600000, 10), k);
	ALLOW(sw("mix", 600000, 2), 1);
	ALLOW(sw("mix", 600000, 2), 2);
	DENY(sw("mix", 600000, 2), 2);
	DENY(sw("mix", 600000, 2), 2);
}

Test(hammer, sliding_window_after_waiting_for_the_next_window)
{
	ALLOW(sw("key", 100, 2), 1);
	ALLOW(sw("key", 100, 2), 2);
	struct hit d = sw("key", 100, 2);
	DENY(d, 2);
	usleep((useconds_t)d.in.retry_after_ms * 1000 + 1000); /* the second hit, a moment later */
	ALLOW(sw("key", 100, 2), 1);
	ALLOW(sw("key", 100, 2), 2);
	DENY(sw("key", 100, 2), 2);
}
#endif
