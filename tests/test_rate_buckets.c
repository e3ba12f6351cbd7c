/* test_rate_buckets.c — Hammer's token bucket and leaky bucket (issue 14, point 3): the INI's and
 * the API's names for them (rate_refill_rate / rate_leak_rate / rate_capacity, refill_rate /
 * leak_rate / capacity), exact across forked processes on a real protd, status in Hammer's terms
 * (tokens left, fill level), and a refill of 0: a budget that never refills, whose bucket protd's
 * sweep never frees (reset does).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "rate_algo.h"

#define MS 1000000ull

#define HEAD                                                                                     \
	"[segment]\nmax_keys = 8\nmax_breakers = 1\nmax_pools = 1\npool_max_slots = 1\n"         \
	"pool_max_waiters = 1\nrate_entities = 1024\nevents = 64\n\n[daemon]\ntick = 10ms\n\n"

struct env {
	const char *seg, *ini;
	pid_t protd;
	prot_t *p;
	_Atomic int ready;
	_Atomic uint64_t admitted, errors;
	/* what each child does: `attempts` hits of 1 on (op, "u"), with the limits of key op, or
	 * with lim when lim.algo is set (then on entity "acct") */
	int children, attempts;
	const char *op;
	struct prot_rate_limit lim;
};

static struct env *start(const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	e->protd = th_serve_head("rbk", HEAD, sections, &e->seg, &e->ini, &e->p);
	return e;
}

static int hits_child(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	atomic_fetch_add(&e->ready, 1);
	th_wait_flag(&e->ready, e->children, 5000); /* start together */
	for (int k = 0; k < e->attempts; k++) { /* every child on one bucket */
		int r = e->lim.algo ? prot_rate_check_n(e->p, e->op, "acct", &e->lim, 1, NULL)
		                    : prot_rate_check_key(e->p, e->op, "u", 1, NULL);
		if (r < 0)
			atomic_fetch_add(&e->errors, 1);
		else
			atomic_fetch_add(&e->admitted, (uint64_t)r);
	}
	return 0;
}

/* n children of hits_child, then no error among them */
static void hits(struct env *e, int n, int attempts, const char *op)
{
	e->children = n;
	e->attempts = attempts;
	e->op = op;
	th_fork_n(n, hits_child, e, 30000);
	cr_assert_eq(atomic_load(&e->errors), 0);
}

/* Key KEY's status for ENTITY as its decisions see it, charging nothing. */
static struct prot_rate_info key_status(prot_t *p, const char *key, const char *entity)
{
	struct prot_shm_header *h = prot_hdr(p);
	struct prot_key_cfg cfg;
	struct rate_params rp;
	struct prot_rate_info in;
	int idx = seg_find(h, REG_KEYS, key);
	cr_assert_geq(idx, 0, "key %s", key);
	cr_assert_eq(rate_key_cfg(h, (uint32_t)idx, &cfg), 0);
	rate_params_of_key(&cfg, &rp);
	cr_assert_eq(rate_status_h(h, key, entity, &rp, 0, &in), 0);
	return in;
}

Test(rate_buckets, token_bucket_from_the_ini_is_exact_across_processes, .timeout = 60)
{
	/* 5 tokens per second: T = 200 ms; a run of 8 x 2000 checks lasts far less than that on any
	 * machine that is not stalled for seconds, so the capacity is what is admitted */
	struct env *e = start("[key tb]\nrate_algorithm = token_bucket\nrate_refill_rate = 5\n"
	                      "rate_capacity = 40\n");
	uint64_t t0 = th_now_ms();
	hits(e, 8, 2000, "tb");
	uint64_t elapsed = th_now_ms() - t0;
	uint64_t n = atomic_load(&e->admitted);
	cr_assert_geq(n, 40, "a full bucket at first use");
	cr_assert_leq(n, 40 + elapsed / 200 + 1, "%lu admitted in %lu ms", (unsigned long)n,
	              (unsigned long)elapsed);
	struct prot_rate_info in = key_status(e->p, "tb", "u");
	cr_assert_eq(in.limit, 40, "limit is the capacity");
	cr_assert_eq(in.remaining, 0, "tokens left");
	cr_assert_eq(in.window_ms, 1000, "the refill period defaults to a second");
	cr_assert_eq(in.allowed, 0);
	cr_assert_leq(in.retry_after_ms, 200, "one token is 200 ms");
	usleep(450 * 1000);
	in = key_status(e->p, "tb", "u");
	cr_assert_geq(in.remaining, 2, "refilled continuously: 2 tokens after 450 ms");
	cr_assert_leq(in.remaining, 2 + (th_now_ms() - t0) / 200);
	th_unserve(e->p, e->protd);
}

Test(rate_buckets, leaky_bucket_reports_its_level, .timeout = 60)
{
	/* leaks 1 per second: nothing leaks during the run */
	struct env *e = start("[key lb]\nrate_algorithm = leaky_bucket\nrate_leak_rate = 1\n"
	                      "rate_capacity = 5\n");
	struct prot_rate_info in = key_status(e->p, "lb", "u");
	cr_assert_eq(in.used, 0, "a leaky bucket starts empty");
	cr_assert_eq(in.limit, 5);
	hits(e, 4, 3, "lb");
	cr_assert_eq(atomic_load(&e->admitted), 5, "12 hits, a capacity of 5");
	in = key_status(e->p, "lb", "u");
	cr_assert_eq(in.used, 5, "the fill level");
	cr_assert_eq(in.allowed, 0);
	cr_assert_gt(in.retry_after_ms, 0);
	cr_assert_leq(in.retry_after_ms, 1000, "one unit leaks per second");
	usleep((useconds_t)in.retry_after_ms * 1000 + 20000);
	cr_assert_eq(prot_rate_check_key(e->p, "lb", "u", 1, &in), 1, "one unit has leaked");
	cr_assert_eq(in.used, 5);
	th_unserve(e->p, e->protd);
}

Test(rate_buckets, a_refill_of_zero_is_a_budget_never_expired, .timeout = 60)
{
	struct env *e = start("[key budget]\nrate_algorithm = token_bucket\nrate_refill_rate = 0\n"
	                      "rate_capacity = 2\n");
	const struct prot_rate_limit l = {.algo = PROT_RATE_TOKEN_BUCKET, .refill_rate = 0, .capacity = 3};
	struct prot_rate_info in;
	e->lim = l;
	hits(e, 4, 10, "quota");
	cr_assert_eq(atomic_load(&e->admitted), 3, "40 hits on a budget of 3");
	cr_assert_eq(prot_rate_check_key(e->p, "budget", "acct", 2, &in), 1);
	cr_assert_eq(in.remaining, 0);
	cr_assert_eq(in.reset_after_ms, PROT_RATE_NEVER);
	/* far beyond the 100 ms grace plus a sweep pass of a 32-group table at a 10 ms tick: an
	 * expirable bucket would be gone */
	usleep(600 * 1000);
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "quota"), 1, "the budget's bucket is still there");
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "budget"), 1, "the key's too");
	cr_assert_eq(prot_rate_check_n(e->p, "quota", "acct", &l, 1, &in), 0, "it never refilled");
	cr_assert_eq(in.retry_after_ms, PROT_RATE_NEVER);
	cr_assert_eq(in.used, 3);
	cr_assert_eq(prot_rate_check_key(e->p, "budget", "acct", 1, &in), 0);
	cr_assert_eq(prot_rate_reset(e->p, "quota", "acct"), 0, "reset frees it");
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "quota"), 0);
	cr_assert_eq(prot_rate_check_n(e->p, "quota", "acct", &l, 3, &in), 1, "a fresh budget");
	cr_assert_eq(in.remaining, 0);
	th_unserve(e->p, e->protd);
}

Test(rate_buckets, api_validates_hammers_terms)
{
	struct env *e = start("");
	struct prot_rate_info in;
	const struct prot_rate_limit no_cap = {.algo = PROT_RATE_TOKEN_BUCKET, .refill_rate = 5};
	const struct prot_rate_limit no_leak = {.algo = PROT_RATE_LEAKY_BUCKET, .capacity = 5};
	const struct prot_rate_limit tb = {.algo = PROT_RATE_TOKEN_BUCKET, .refill_rate = 2,
	                                   .window_ms = 60000, .capacity = 4};
	cr_assert_eq(prot_rate_check_n(e->p, "v", "u", &no_cap, 1, &in), -EINVAL);
	cr_assert_eq(prot_rate_check_n(e->p, "v", "u", &no_leak, 1, &in), -EINVAL);
	cr_assert_eq(prot_rate_check_n(e->p, "v", "u", &tb, 5, &in), -PROT_ECOST, "beyond capacity");
	cr_assert_eq(prot_rate_check_n(e->p, "v", "u", &tb, 4, &in), 1);
	cr_assert_eq(prot_rate_check_n(e->p, "v", "u", &tb, 1, &in), 0);
	/* 2 per minute: a token every 30 s */
	cr_assert_gt(in.retry_after_ms, 29000);
	cr_assert_leq(in.retry_after_ms, 30000);
	cr_assert_eq(prot_rate_status(e->p, "v", "u", &tb, &in), 0);
	cr_assert_eq(in.remaining, 0);
	cr_assert_eq(in.limit, 4);
	th_unserve(e->p, e->protd);
}

/* protd --check-config on TEXT must fail with WHAT in its message. */
static void refused(const char *text, const char *what)
{
	static struct th_out out;
	const char *path = th_write_file("t.ini", "[segment]\nname = /x\n%s", text);
	const char *argv[] = {th_protd_path(), "--check-config", path, NULL};
	cr_assert_neq(th_run(&out, 10000, argv), 0, "accepted:\n%s", text);
	cr_assert(strstr(out.err, what), "expected \"%s\" in:\n%s", what, out.err);
}

Test(rate_buckets, the_ini_speaks_hammers_terms)
{
	refused("[key k]\nrate_algorithm = token_bucket\nrate_limit = 5\nrate_capacity = 5\n",
	        "token_bucket takes rate_refill_rate, not rate_limit");
	refused("[key k]\nrate_algorithm = leaky_bucket\nrate_leak_rate = 5\n",
	        "rate_capacity is missing");
	refused("[key k]\nrate_algorithm = leaky_bucket\nrate_leak_rate = 0\nrate_capacity = 5\n",
	        "rate_leak_rate");
	refused("[key k]\nrate_algorithm = token_bucket\nrate_refill_rate = 5\nrate_burst = 5\n",
	        "takes rate_capacity, not rate_burst");
	refused("[key k]\nrate_limit = 5\nrate_window = 1s\nrate_capacity = 5\n",
	        "takes rate_burst, not rate_capacity");
	refused("[key k]\nrate_algorithm = gcra\nrate_limit = 5\nrate_window = 1s\nrate_clock = realtime\n",
	        "rate_clock = realtime is for rate_algorithm = fixed_window");
	static struct th_out out;
	const char *ok = th_write_file("ok.ini", "[segment]\nname = /x\n[key a]\nrate_algorithm = "
	                                         "token_bucket\nrate_refill_rate = 0\nrate_capacity = 9\n"
	                                         "[key b]\nrate_algorithm = leaky_bucket\nrate_leak_rate = 3\n"
	                                         "rate_window = 1m\nrate_capacity = 9\n");
	const char *argv[] = {th_protd_path(), "--check-config", ok, NULL};
	cr_assert_eq(th_run(&out, 10000, argv), 0, "%s", out.err);
}
