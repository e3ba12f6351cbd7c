/* test_rate_ident.c — the rate limiter as a Hammer user finds it (issue 14, part A), each point
 * with a real protd, fork()ed workers and protctl: a bucket per scale (ident), binary entities
 * (entity), status without limits, timestamps and expires_at, execute with a cost (status),
 * protctl on ad-hoc operations (tools), the configurable expiry grace and the time to free
 * (expiry), one default algorithm and one window maximum (defaults).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

#define MS 1000000ull
#define HOUR 3600000ull

static struct th_out out; /* large: static */

static const char *ini_of(uint64_t entities, const char *daemon, const char *sections)
{
	return th_write_file("protd.ini",
	                     "[segment]\nmax_keys = 8\nmax_breakers = 1\nmax_pools = 1\npool_max_slots = 1\n"
	                     "pool_max_waiters = 1\nrate_entities = %" PRIu64 "\nevents = 64\n\n"
	                     "[daemon]\ntick = 10ms\n%s\n%s",
	                     entities, daemon, sections);
}

struct env {
	const char *seg;
	pid_t protd;
	prot_t *p;
	_Atomic uint64_t admitted[8];
	_Atomic int ran;
};

static struct env *start(uint64_t entities, const char *daemon, const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	e->seg = th_segname("ident");
	e->protd = th_protd_start(ini_of(entities, daemon, sections), e->seg, NULL);
	e->p = th_open(e->seg, 2000);
	return e;
}

static void stop(struct env *e)
{
	th_unserve(e->p, e->protd);
}

#define PROTCTL(e, ...) th_protctl(&out, (e)->seg, __VA_ARGS__, NULL)

/* ms left in the current window of length w (CLOCK_MONOTONIC, as the windows are aligned) */
static uint64_t window_left(uint64_t w)
{
	uint64_t now = th_now_ms();
	return (now / w + 1) * w - now;
}

/* A run that must stay inside one window of w ms and takes less than need ms: when less than need
 * is left of the current window, wait (at most need ms) until the next one starts, rather than
 * skip the test. */
static void within_one_window(uint64_t w, uint64_t need)
{
	uint64_t left = window_left(w);
	if (left < need) {
		left += 50; /* just past the boundary */
		nanosleep(&(struct timespec){.tv_sec = (time_t)(left / 1000),
		                             .tv_nsec = (long)(left % 1000) * 1000000}, NULL);
	}
	cr_assert_geq(window_left(w), need, "the run starts with at least %" PRIu64 " ms of its window",
	              need);
}

/* ---- ident: a bucket per (operation, entity, algorithm, window) ------------------------------- */

static const struct prot_rate_limit SCALES[3] = {
	{.algo = PROT_RATE_FIXED_WINDOW, .limit = 100, .window_ms = HOUR},
	{.algo = PROT_RATE_FIXED_WINDOW, .limit = 10, .window_ms = HOUR / 2},
	{.algo = PROT_RATE_GCRA, .limit = 5, .window_ms = HOUR}, /* burst 5, T = 12 min */
};

static int scales_child(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	for (int n = 0; n < 60; n++)
		for (int s = 0; s < 3; s++) {
			int r = prot_rate_check_n(e->p, "api", "u", &SCALES[s], 1, NULL);
			if (r < 0)
				return 10 + s;
			atomic_fetch_add(&e->admitted[s], (uint64_t)r);
		}
	return 0;
}

Test(ident, two_scales_on_one_entity_are_two_exact_buckets, .timeout = 60)
{
	struct env *e = start(1024, "", "");
	within_one_window(HOUR / 2, 10000);
	th_fork_n(4, scales_child, e, 20000); /* 240 attempts on each scale */
	cr_assert_eq(atomic_load(&e->admitted[0]), 100, "1 h / 100: exact");
	cr_assert_eq(atomic_load(&e->admitted[1]), 10, "30 min / 10: exact, not locked out by the other");
	cr_assert_eq(atomic_load(&e->admitted[2]), 5, "GCRA on the same entity and window: its own");
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "api"), 3);
	/* each scale's status is its own */
	struct prot_rate_status st;
	for (int s = 0; s < 3; s++) {
		cr_assert_eq(prot_rate_status_bin(e->p, "api", "u", 1, &SCALES[s], &st), 0);
		cr_assert(st.exists);
		cr_assert_eq(st.algo, SCALES[s].algo);
		cr_assert_eq(st.info.remaining, 0, "scale %d used up", s);
	}
	/* a reset forgets every scale (Hammer's delete_buckets) */
	cr_assert_eq(prot_rate_reset(e->p, "api", "u"), 0);
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "api"), 0);
	cr_assert_eq(prot_rate_reset(e->p, "api", "u"), -ENOENT);
	stop(e);
}

/* ---- entity: any bytes up to PROT_ENTITY_MAX --------------------------------------------------- */

struct bin {
	const void *b;
	size_t n;
};

static const uint64_t ID12345 = 12345; /* little-endian: 39 30 00 00 00 00 00 00 */
static const struct bin ENTS[5] = {
	{&ID12345, 8}, {"90", 2}, {"90\0", 3}, {"", 0}, {"a\\b\n", 4},
};

static int bin_child(void *arg, int i)
{
	struct env *e = arg;
	const struct prot_rate_limit lim = {.limit = 4, .window_ms = HOUR};
	(void)i;
	for (int n = 0; n < 10; n++)
		for (int k = 0; k < 5; k++) {
			int r = prot_rate_check_bin(e->p, "bin", ENTS[k].b, ENTS[k].n, &lim, 1, NULL);
			if (r < 0)
				return 10 + k;
			atomic_fetch_add(&e->admitted[k], (uint64_t)r);
		}
	return 0;
}

Test(entity, binary_entities_are_exact_and_shown_escaped, .timeout = 60)
{
	struct env *e = start(1024, "", "");
	const struct prot_rate_limit lim = {.limit = 4, .window_ms = HOUR};
	within_one_window(HOUR, 10000);
	th_fork_n(3, bin_child, e, 20000);
	for (int k = 0; k < 5; k++)
		cr_assert_eq(atomic_load(&e->admitted[k]), 4, "entity %d is its own bucket, exact", k);
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "bin"), 5, "12345, \"90\", \"90\\0\", \"\": no collision");
	/* the string form is the binary form of its bytes */
	cr_assert_eq(prot_rate_check_n(e->p, "bin", "90", &lim, 1, NULL), 0, "\"90\" is used up");
	/* limits of the form */
	unsigned char big[PROT_ENTITY_MAX + 1] = {0};
	cr_assert_eq(prot_rate_check_bin(e->p, "bin", big, sizeof big, &lim, 1, NULL), -PROT_ETOOLONG);
	cr_assert_eq(prot_rate_check_bin(e->p, "bin", big, PROT_ENTITY_MAX, &lim, 1, NULL), 1);
	cr_assert_eq(prot_rate_check_bin(e->p, "bin", NULL, 1, &lim, 1, NULL), -EINVAL);

	/* protctl shows them escaped, text and JSON, and reads the escaped form back */
	cr_assert_eq(PROTCTL(e, "rate", "top", "--op", "bin", "10"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "90\\x00\\x00\\x00\\x00\\x00\\x00 "), "12345 escaped:\n%s", out.out);
	cr_assert(strstr(out.out, "90\\x00 "), "\"90\\0\" escaped:\n%s", out.out);
	cr_assert(strstr(out.out, "a\\\\b\\x0a "), "backslash and newline escaped:\n%s", out.out);
	cr_assert_eq(PROTCTL(e, "--json", "rate", "top", "--op", "bin"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "\"90\\\\x00\\\\x00\\\\x00\\\\x00\\\\x00\\\\x00\""), "JSON:\n%s", out.out);
	cr_assert_eq(PROTCTL(e, "rate", "show", "--op", "bin", "90\\x00"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "1 buckets"), "%s", out.out);
	cr_assert_eq(PROTCTL(e, "rate", "reset", "--op", "bin", "90\\x00"), 0, "%s", out.err);
	struct prot_rate_status st;
	cr_assert_eq(prot_rate_status_bin(e->p, "bin", "90\0", 3, &lim, &st), 0);
	cr_assert_eq(st.exists, 0, "reset by its escaped form");
	cr_assert_eq(prot_rate_status_bin(e->p, "bin", "90", 2, &lim, &st), 0);
	cr_assert_eq(st.exists, 1, "\"90\" untouched");
	cr_assert_eq(prot_rate_reset_bin(e->p, "bin", &ID12345, 8), 0);
	cr_assert_eq(prot_rate_status_bin(e->p, "bin", &ID12345, 8, &lim, &st), 0);
	cr_assert_eq(st.exists, 0);
	cr_assert_eq(PROTCTL(e, "rate", "show", "--op", "bin", "bad\\q"), 2, "a stray backslash");
	stop(e);
}

/* ---- status: by key, timestamps, expires_at; execute with a cost ------------------------------ */

static int ran_fn(void *arg)
{
	atomic_fetch_add(&((struct env *)arg)->ran, 1);
	return 42;
}

static int status_child(void *arg, int i)
{
	struct env *e = arg;
	if (i == 0)
		return prot_rate_check_key(e->p, "k", "ent", 2, NULL) == 1 ? 0 : 1;
	th_sleep_ms(50);
	const struct prot_rate_limit lim = {.limit = 5, .window_ms = HOUR}; /* the key's scale */
	int res = 0;
	if (prot_rate_execute_bin(e->p, "k", "ent", 3, &lim, 2, ran_fn, e, &res, NULL) != 0 || res != 42)
		return 2;
	/* 4 of 5 used: a cost of 2 is denied, fn does not run */
	return prot_rate_execute_bin(e->p, "k", "ent", 3, &lim, 2, ran_fn, e, &res, NULL) ==
	       -PROT_ERATELIMITED ? 0 : 3;
}

Test(status, status_key_reports_existence_timestamps_and_expires_at, .timeout = 60)
{
	struct env *e = start(1024, "", "[key k]\nrate_limit = 5\nrate_window = 1h\n[key nolimit]\n"
	                                "breaker_tolerance = 1\nbreaker_window = 1s\nbreaker_refresh = 1s\n");
	struct prot_rate_status st;
	within_one_window(HOUR, 10000);
	cr_assert_eq(prot_rate_status_key(e->p, "k", "ent", 3, &st), 0);
	cr_assert_eq(st.exists, 0);
	cr_assert_eq(st.expires_at_ms, 0, "0 for an unknown bucket");
	cr_assert_eq(st.created_ms, 0);
	cr_assert_eq(st.info.remaining, 5);
	uint64_t t0 = prot_now_ns() / MS;
	th_fork_n(2, status_child, e, 10000);
	uint64_t t1 = prot_now_ns() / MS;
	cr_assert_eq(atomic_load(&e->ran), 1, "fn ran once: the second execute was denied");
	cr_assert_eq(prot_rate_status_key(e->p, "k", "ent", 3, &st), 0);
	cr_assert_eq(st.exists, 1);
	cr_assert_eq(st.algo, PROT_RATE_FIXED_WINDOW);
	cr_assert_eq(st.info.used, 4, "2 by the key, 2 by execute's cost: one bucket");
	cr_assert_eq(st.info.remaining, 1);
	cr_assert_eq(st.expires_at_ms, (t1 / HOUR + 1) * HOUR, "the window's end");
	cr_assert_geq(st.created_ms, t0);
	cr_assert_geq(st.updated_ms, st.created_ms + 40, "updated by the later admission");
	cr_assert_leq(st.updated_ms, t1);
	/* a denial updates nothing */
	struct prot_rate_status again;
	cr_assert_eq(prot_rate_check_key(e->p, "k", "ent", 2, NULL), 0);
	cr_assert_eq(prot_rate_status_key(e->p, "k", "ent", 3, &again), 0);
	cr_assert_eq(again.updated_ms, st.updated_ms);
	cr_assert_eq(again.info.used, 4);
	/* protctl reports the same */
	cr_assert_eq(PROTCTL(e, "--json", "rate", "show", "k", "ent"), 0, "%s", out.err);
	char want[96];
	snprintf(want, sizeof want, "\"created_ms\":%" PRIu64 ",\"updated_ms\":%" PRIu64, st.created_ms,
	         st.updated_ms);
	cr_assert(strstr(out.out, want), "%s in %s", want, out.out);
	snprintf(want, sizeof want, "\"expires_at_ms\":%" PRIu64, st.expires_at_ms);
	cr_assert(strstr(out.out, want), "%s in %s", want, out.out);
	cr_assert_eq(PROTCTL(e, "rate", "show", "k", "ent"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "created ") && strstr(out.out, "updated ") &&
	          strstr(out.out, "expires at "), "%s", out.out);
	/* errors */
	cr_assert_eq(prot_rate_status_key(e->p, "nokey", "ent", 3, &st), -PROT_ENOKEY);
	cr_assert_eq(prot_rate_status_key(e->p, "nolimit", "ent", 3, &st), -EINVAL);
	cr_assert_eq(prot_rate_status_key(e->p, "k", "ent", 3, NULL), -EINVAL);
	stop(e);
}

/* ---- tools: protctl on any operation ---------------------------------------------------------- */

static int login_child(void *arg, int i)
{
	struct env *e = arg;
	const char *who = i ? "bob" : "alice";
	for (int n = 0; n < (i ? 2 : 5); n++)
		if (prot_rate_check(e->p, "login", who, 3, HOUR, NULL) < 0)
			return 1;
	return 0;
}

Test(tools, ad_hoc_operations_are_listed_shown_reset_and_ranked, .timeout = 60)
{
	struct env *e = start(1024, "", "[key api]\nrate_limit = 5\nrate_window = 1s\n");
	within_one_window(HOUR, 10000);
	th_fork_n(2, login_child, e, 10000);
	cr_assert_eq(prot_rate_check_key(e->p, "api", "x", 1, NULL), 1);

	cr_assert_eq(PROTCTL(e, "rate", "ops"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "login"), "the ad-hoc operation is listed:\n%s", out.out);
	cr_assert(strstr(out.out, "api"), "the key's too:\n%s", out.out);
	cr_assert_eq(PROTCTL(e, "--json", "rate", "ops"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "{\"name\":\"login\",\"key\":false,\"buckets\":2,\"admitted\":5,\"denied\":2}"),
	          "%s", out.out);
	cr_assert(strstr(out.out, "{\"name\":\"api\",\"key\":true,\"buckets\":1"), "%s", out.out);

	cr_assert_eq(PROTCTL(e, "rate", "show", "--op", "login"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "operation login: 2 buckets"), "%s", out.out);
	cr_assert_eq(PROTCTL(e, "--json", "rate", "show", "--op", "login", "alice"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "\"algorithm\":\"fixed_window\"") && strstr(out.out, "\"used\":3") &&
	          strstr(out.out, "\"window_ms\":3600000") && strstr(out.out, "\"denied\":2"),
	          "%s", out.out);
	cr_assert_eq(PROTCTL(e, "rate", "top", "--op", "login"), 0, "%s", out.err);
	const char *a = strstr(out.out, "alice"), *b = strstr(out.out, "bob");
	cr_assert(a && b && a < b, "alice (3) ranks above bob (2):\n%s", out.out);

	cr_assert_eq(PROTCTL(e, "rate", "reset", "--op", "login", "alice"), 0, "%s", out.err);
	cr_assert_eq(prot_rate_check(e->p, "login", "alice", 3, HOUR, NULL), 1, "alice starts over");
	cr_assert_eq(PROTCTL(e, "rate", "reset", "--op", "login", "carol"), 1, "no bucket");
	cr_assert_eq(PROTCTL(e, "rate", "show", "--op"), 2, "--op needs a NAME");
	cr_assert_eq(PROTCTL(e, "rate", "show", "--op", "nosuch"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "operation nosuch: 0 buckets"), "%s", out.out);
	stop(e);
}

/* ---- expiry: [daemon] rate_grace, freed within grace + one pass ------------------------------- */

struct probe {
	prot_t *p;
	const char *op;
	struct prot_rate_limit lim;
};

static bool gone(void *arg)
{
	struct probe *pr = arg;
	struct prot_rate_status st;
	return prot_rate_status_bin(pr->p, pr->op, "e", 1, &pr->lim, &st) == 0 && !st.exists;
}

Test(expiry, grace_is_configurable_and_an_expired_bucket_goes_within_grace_plus_a_pass, .timeout = 60)
{
	/* 4096 buckets = 128 groups = one sweep call: a pass is one tick (10 ms) */
	struct env *e = start(4096, "rate_grace = 400ms\n", "");
	struct probe pr = {e->p, "g", {.limit = 1, .window_ms = 50}};
	struct prot_rate_info in;
	cr_assert_eq(prot_rate_check_bin(e->p, "g", "e", 1, &pr.lim, 1, &in), 1);
	uint64_t end = prot_now_ns() / MS + in.reset_after_ms;
	th_sleep_ms((int)(end + 250 - th_now_ms()));
	cr_assert(!gone(&pr), "250 ms after expiry a 400 ms grace still keeps it");
	cr_assert(th_until(gone, &pr, 2000), "freed");
	uint64_t freed = th_now_ms();
	cr_assert_geq(freed, end + 400, "not before the grace");
	cr_assert_leq(freed, end + 400 + 10 + 250, "within grace + one pass (+ scheduling slack)");
	stop(e);

	/* the minimum that keeps the stale-client argument of rate_table.c */
	const char *ini = ini_of(64, "rate_grace = 5ms\n", "");
	const char *argv[] = {th_protd_path(), "--check-config", ini, NULL};
	cr_assert_neq(th_run(&out, 10000, argv), 0);
	cr_assert(strstr(out.err, "rate_grace"), "%s", out.err);
}

struct fill {
	struct env *e;
	int per_child;
};

static int fill_child(void *arg, int i)
{
	struct fill *f = arg;
	const struct prot_rate_limit lim = {.limit = 1, .window_ms = 20};
	for (int n = 0; n < f->per_child; n++) {
		uint64_t id = (uint64_t)i << 32 | (uint64_t)n;
		int r = prot_rate_check_bin(f->e->p, "fill", &id, sizeof id, &lim, 1, NULL);
		if (r < 0 && r != -PROT_ETABLEFULL)
			return 1;
	}
	return 0;
}

static bool table_empty(void *arg)
{
	struct env *e = arg;
	return atomic_load(&prot_hdr(e->p)->rate_buckets_used) == 0;
}

/* 64 Ki buckets = 2048 groups = 16 sweep calls a pass: 160 ms at the 10 ms tick. */
Test(expiry, a_full_pass_over_64ki_buckets_frees_every_expired_one, .timeout = 60)
{
	struct env *e = start(65536, "", "");
	struct fill *f = th_shared(sizeof *f);
	*f = (struct fill){e, 10000};
	uint64_t t0 = th_now_ms();
	th_fork_n(2, fill_child, f, 30000);
	uint64_t filled = th_now_ms();
	cr_assert_gt(atomic_load(&prot_hdr(e->p)->rate_buckets_used), 0);
	cr_assert(th_until(table_empty, e, 5000), "every bucket freed");
	uint64_t done = th_now_ms();
	/* the last bucket expired by filled + 20 ms; grace 100 ms; one pass 160 ms; slack 300 ms */
	cr_assert_leq(done, filled + 20 + 100 + 160 + 300, "filled in %" PRIu64 " ms, freed %" PRIu64
	              " ms after", filled - t0, done - filled);
	stop(e);
}

/* ---- defaults: one algorithm, one window maximum ---------------------------------------------- */

Test(defaults, the_ini_and_the_api_default_to_the_fixed_window, .timeout = 60)
{
	struct env *e = start(1024, "", "[key d]\nrate_limit = 3\nrate_window = 1h\n");
	struct prot_rate_status st;
	struct prot_rate_info in;
	within_one_window(HOUR, 10000);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(prot_rate_check_key(e->p, "d", "u", 1, NULL), 1);
	cr_assert_eq(prot_rate_status_key(e->p, "d", "u", 1, &st), 0);
	cr_assert_eq(st.algo, PROT_RATE_FIXED_WINDOW, "an INI key without rate_algorithm");
	/* the API's default (algo 0, prot_rate_check) on the key's name and scale is the key's bucket */
	cr_assert_eq(prot_rate_check(e->p, "d", "u", 3, HOUR, &in), 0, "the same bucket, used up");
	struct prot_rate_limit zero = {.limit = 3, .window_ms = HOUR};
	cr_assert_eq(prot_rate_check_n(e->p, "d", "u", &zero, 1, NULL), 0, "algo 0: the same");
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "d"), 1);
	cr_assert_eq(PROTCTL(e, "--json", "rate", "show", "d"), 0, "%s", out.err);
	cr_assert(strstr(out.out, "\"algorithm\":\"fixed_window\""), "%s", out.out);
	/* one window maximum: 2^36 ms for the API as for the INI (test_config checks the INI) */
	struct prot_rate_limit w = {.limit = 1, .window_ms = 1ull << 36};
	cr_assert_eq(prot_rate_check_n(e->p, "w", "u", &w, 1, NULL), 1);
	w.window_ms++;
	cr_assert_eq(prot_rate_check_n(e->p, "w", "u", &w, 1, NULL), -EINVAL);
	const char *ini = ini_of(64, "", "[key big]\nrate_limit = 1\nrate_window = 68719476736ms\n");
	const char *argv[] = {th_protd_path(), "--check-config", ini, NULL};
	cr_assert_eq(th_run(&out, 10000, argv), 0, "%s", out.err);
	stop(e);
}
