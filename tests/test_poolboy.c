/* test_poolboy.c — issue 13's pool points, with a real protd and real forked processes: runtime
 * lifecycle (create, idempotent create, remove, fresh re-create, stale leases), status (idle, state
 * names, holders), size 0, prot_pool_with's PROT_EFAILED, connections (min_idle, idle_timeout,
 * max_lifetime, max_open across processes, leak detection), and poolboy's own scenarios replayed with status at each step.
 *
 * Children report through their exit code and shared memory, never through cr_assert. Every wait is
 * bounded; the processes ended are the ones the test started, by pid.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

struct env {
	pid_t protd;
	const char *seg, *ini;
	prot_t *p;
	struct th_conns conns; /* the connector's counters (th_connector); open_max for max_open */
	_Atomic int ready, go, done;
	_Atomic int child_rc;
};

static const char ini_head[] = "[segment]\nmax_keys = 4\nmax_breakers = 4\nmax_pools = 4\n"
                               "pool_max_slots = 16\npool_max_waiters = 32\nrate_entities = 64\n"
                               "events = 256\n\n[daemon]\ntick = 10ms\nreclaim_interval = 100ms\n\n";

static struct env *start(const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	e->protd = th_serve_head("poolboy", ini_head, sections, &e->seg, &e->ini, &e->p);
	return e;
}

static void stop(struct env *e)
{
	th_unserve(e->p, e->protd);
}

static void expect_status(prot_t *p, const char *pool, uint32_t in_use, uint32_t idle, uint32_t over,
                          uint32_t waiting, uint32_t state, const char *step)
{
	struct prot_pool_status st = th_pool_status(p, pool);
	cr_assert_eq(st.in_use, in_use, "%s: in_use %u, want %u", step, st.in_use, in_use);
	cr_assert_eq(st.idle, idle, "%s: idle %u, want %u", step, st.idle, idle);
	cr_assert_eq(st.overflow_in_use, over, "%s: overflow %u, want %u", step, st.overflow_in_use, over);
	cr_assert_eq(st.waiting, waiting, "%s: waiting %u, want %u", step, st.waiting, waiting);
	cr_assert_eq(st.state, state, "%s: state %u, want %u", step, st.state, state);
}

/* ---- 2. lifecycle ------------------------------------------------------------------------------ */
/* A child holds a lease of pool "tmp" and one of pool "db"; the parent removes "tmp". */
static int hold_two(void *arg, int i)
{
	(void)i;
	struct env *e = arg;
	prot_t *p = th_open(e->seg, 2000);
	prot_lease a, b;
	if (!p || prot_pool_checkout(p, "tmp", 1000, &a, NULL) || prot_pool_checkout(p, "db", 1000, &b, NULL))
		return 10;
	atomic_store(&e->ready, 1);
	if (!th_wait_flag(&e->go, 1, 10000))
		return 11;
	int r1 = prot_pool_checkin(p, &a, PROT_CHECKIN_OK); /* removed meanwhile: stale */
	int r2 = prot_pool_checkin(p, &b, PROT_CHECKIN_OK); /* the other pool: untouched */
	prot_close(p);
	return r1 == -PROT_ESTALE && r2 == 0 ? 0 : 12;
}

Test(poolboy, create_is_idempotent_remove_is_gone_recreate_is_fresh, .timeout = 60)
{
	struct env *e = start("[pool db]\nsize = 1\n");
	struct prot_pool_opts o = { .size = 2, .max_overflow = 1 };
	cr_assert_eq(prot_pool_create(e->p, "tmp", &o), 0);
	cr_assert_eq(prot_pool_create(e->p, "tmp", &o), 0, "same options: ok, state kept");
	struct prot_pool_opts other = o;
	other.size = 3;
	cr_assert_eq(prot_pool_create(e->p, "tmp", &other), -PROT_EEXIST);
	cr_assert_eq(prot_pool_create(e->p, "bad", &(struct prot_pool_opts){ .size = 99 }),
	             -PROT_EINVAL_CONFIG, "beyond pool_max_slots");
	cr_assert_eq(prot_pool_create(NULL, "x", &o), -EINVAL);
	cr_assert_eq(prot_pool_create(e->p, "x", NULL), -EINVAL);

	pid_t c = th_fork(hold_two, e, 0);
	cr_assert(th_wait_flag(&e->ready, 1, 5000));
	cr_assert_eq(th_pool_status(e->p, "tmp").in_use, 1);
	/* re-create with the same options keeps the state (the child's lease) */
	cr_assert_eq(prot_pool_create(e->p, "tmp", &o), 0);
	cr_assert_eq(th_pool_status(e->p, "tmp").in_use, 1);
	cr_assert_eq(prot_pool_remove(e->p, "tmp"), 0);
	struct prot_pool_status st;
	cr_assert_eq(prot_pool_status(e->p, "tmp", &st), -PROT_ENOPOOL, "gone");
	cr_assert_eq(prot_pool_remove(e->p, "tmp"), -PROT_ENOPOOL);
	cr_assert_eq(prot_pool_create(e->p, "tmp", &o), 0);
	st = th_pool_status(e->p, "tmp");
	cr_assert_eq(st.in_use, 0, "fresh: no leases");
	cr_assert_eq(st.checkouts, 0, "fresh: zero counters");
	cr_assert_eq(st.high_water, 0);
	atomic_store(&e->go, 1);
	int status;
	cr_assert_eq(th_wait(c, 10000, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", WEXITSTATUS(status));
	cr_assert_eq(th_pool_status(e->p, "tmp").in_use, 0, "the stale checkin touched nothing");
	cr_assert_eq(th_pool_status(e->p, "db").in_use, 0);

	/* protctl: create, show, remove */
	struct th_out out;
	cr_assert_eq(th_protctl(&out, e->seg, "pool", "create", "cli", "size=0", "max_overflow=2",
	                        "leak_threshold=1s", NULL), 0, "%s", out.err);
	cr_assert_eq(th_protctl(&out, e->seg, "pool", "create", "cli", "size=0", "max_overflow=2",
	                        "leak_threshold=1s", NULL), 0, "idempotent: %s", out.err);
	cr_assert_eq(th_protctl(&out, e->seg, "pool", "create", "cli", "size=1", NULL), 1, "other options");
	cr_assert_eq(th_protctl(&out, e->seg, "--json", "pool", "show", "cli", NULL), 0);
	cr_assert(strstr(out.out, "\"size\":0") && strstr(out.out, "\"state\":\"overflow\""), "%s", out.out);
	cr_assert_eq(th_protctl(&out, e->seg, "pool", "remove", "cli", NULL), 0, "%s", out.err);
	cr_assert_eq(th_protctl(&out, e->seg, "pool", "show", "cli", NULL), 1);
	/* a pool a key names cannot be removed */
	cr_assert_eq(prot_configure(e->p, "k", "pool=db", NULL), 0);
	cr_assert_eq(prot_pool_remove(e->p, "db"), -PROT_EINVAL_CONFIG);
	stop(e);
}

/* A waiter of a pool that is removed gets PROT_ENOPOOL, not a wait to its deadline. */
static int wait_on_removed(void *arg, int i)
{
	(void)i;
	struct env *e = arg;
	prot_t *p = th_open(e->seg, 2000);
	prot_lease l;
	if (!p)
		return 10;
	atomic_store(&e->ready, 1);
	uint64_t t0 = th_now_ms();
	int r = prot_pool_checkout(p, "tmp", 20000, &l, NULL);
	uint64_t dt = th_now_ms() - t0;
	prot_close(p);
	return r == -PROT_ENOPOOL && dt < 5000 ? 0 : 20;
}

Test(poolboy, remove_cancels_waiters, .timeout = 60)
{
	struct env *e = start("");
	cr_assert_eq(prot_pool_create(e->p, "tmp", &(struct prot_pool_opts){ .size = 1 }), 0);
	prot_lease l;
	cr_assert_eq(prot_pool_checkout(e->p, "tmp", 0, &l, NULL), 0);
	pid_t c = th_fork(wait_on_removed, e, 0);
	cr_assert(th_wait_flag(&e->ready, 1, 5000));
	cr_assert(th_pool_until(e->p, "tmp", waiting, 1, 5000), "the waiter is queued");
	cr_assert_eq(th_pool_status(e->p, "tmp").waiting, 1);
	cr_assert_eq(prot_pool_remove(e->p, "tmp"), 0);
	int status;
	cr_assert_eq(th_wait(c, 10000, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: %d", WEXITSTATUS(status));
	cr_assert_eq(prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK), -PROT_ESTALE);
	stop(e);
}

/* ---- 7. status and holders ------------------------------------------------------------------- */
static int hold_n(void *arg, int i)
{
	struct env *e = arg;
	prot_t *p = th_open(e->seg, 2000);
	prot_lease l[4];
	if (!p)
		return 10;
	for (int k = 0; k <= i; k++)
		if (prot_pool_checkout(p, "db", 2000, &l[k], NULL))
			return 11;
	atomic_fetch_add(&e->ready, 1);
	if (!th_wait_flag(&e->go, 1, 20000))
		return 12;
	prot_close(p); /* returns its leases */
	return 0;
}

Test(poolboy, status_and_holders, .timeout = 60)
{
	struct env *e = start("[pool db]\nsize = 2\nmax_overflow = 2\nleak_threshold = 300ms\n");
	expect_status(e->p, "db", 0, 2, 0, 0, PROT_POOL_READY, "empty");
	pid_t c0 = th_fork(hold_n, e, 0), c1 = th_fork(hold_n, e, 1); /* 1 and 2 leases */
	cr_assert(th_wait_flag(&e->ready, 2, 10000));
	expect_status(e->p, "db", 3, 0, 1, 0, PROT_POOL_OVERFLOW, "3 of 2+2");
	struct prot_pool_holder h[8];
	size_t n = 99;
	cr_assert_eq(prot_pool_holders(e->p, "db", h, 8, &n), 0);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		cr_assert(h[i].pid == c0 || h[i].pid == c1, "pid %d", h[i].pid);
		cr_assert_eq(h[i].leases, h[i].pid == c0 ? 1u : 2u);
	}
	size_t only = 0;
	cr_assert_eq(prot_pool_holders(e->p, "db", NULL, 0, &only), 0);
	cr_assert_eq(only, 2);
	cr_assert_eq(prot_pool_holders(e->p, "nope", h, 8, &n), -PROT_ENOPOOL);
	cr_assert_eq(prot_pool_holders(e->p, "db", NULL, 1, &n), -EINVAL);
	struct th_out out;
	char pid0[32];
	snprintf(pid0, sizeof pid0, "\"pid\":%d,\"leases\":1", (int)c0);
	cr_assert_eq(th_protctl(&out, e->seg, "--json", "pool", "show", "--holders", "db", NULL), 0, "%s", out.err);
	cr_assert(strstr(out.out, pid0) && strstr(out.out, "\"holders_total\":2"), "%s", out.out);
	/* leak detection: past 300 ms the holders are marked and an event names each pid */
	th_sleep_ms(600);
	cr_assert_eq(th_protctl(&out, e->seg, "pool", "show", "--holders", "db", NULL), 0);
	cr_assert(strstr(out.out, "LEAK"), "%s", out.out);
	cr_assert(strstr(out.out, "state           overflow"), "%s", out.out);
	cr_assert_eq(th_protctl(&out, e->seg, "--json", "events", NULL), 0);
	char ev[64];
	snprintf(ev, sizeof ev, "\"a\": %d", (int)c1);
	cr_assert(strstr(out.out, "pool_leak") && strstr(out.out, ev), "%s", out.out);
	atomic_store(&e->go, 1);
	int st;
	cr_assert_eq(th_wait(c0, 10000, &st), 0);
	cr_assert_eq(th_wait(c1, 10000, &st), 0);
	expect_status(e->p, "db", 0, 2, 0, 0, PROT_POOL_READY, "all back");
	stop(e);
}

/* ---- 8. size 0, 9. prot_pool_with ----------------------------------------------------------------- */
static int failing(void *conn, void *arg)
{
	(void)conn;
	(void)arg;
	return -7;
}

Test(poolboy, size_zero_is_overflow_only_and_with_reports_failure)
{
	struct env *e = start("[pool zero]\nsize = 0\nmax_overflow = 2\n");
	th_pool_register(e->p, "zero", &e->conns);
	expect_status(e->p, "zero", 0, 0, 0, 0, PROT_POOL_OVERFLOW, "size 0, nothing out");
	prot_lease a, b, c;
	void *conn;
	cr_assert_eq(prot_pool_checkout(e->p, "zero", 0, &a, &conn), 0);
	cr_assert_eq(prot_pool_checkout(e->p, "zero", 0, &b, &conn), 0);
	expect_status(e->p, "zero", 2, 0, 2, 0, PROT_POOL_FULL, "both overflow leases out");
	cr_assert_eq(prot_pool_checkout(e->p, "zero", 0, &c, &conn), -PROT_EPOOLFULL);
	cr_assert_eq(prot_pool_checkin(e->p, &a, PROT_CHECKIN_OK), 0);
	cr_assert_eq(prot_pool_checkin(e->p, &b, PROT_CHECKIN_OK), 0);
	cr_assert_eq(atomic_load(&e->conns.destroyed), 2, "overflow connections are dismissed at checkin");
	int res = 0;
	cr_assert_eq(prot_pool_with(e->p, "zero", 0, failing, NULL, &res), -PROT_EFAILED);
	cr_assert_eq(res, -7);
	cr_assert_eq(th_pool_status(e->p, "zero").in_use, 0);
	/* the INI refuses size + max_overflow = 0 */
	const char *bad = th_write_file("bad.ini", "%s[pool none]\nsize = 0\n", ini_head);
	struct th_out out;
	const char *argv[] = { th_protd_path(), "--check-config", bad, NULL };
	cr_assert_neq(th_run(&out, 10000, argv), 0);
	stop(e);
}

/* ---- 10. connections ------------------------------------------------------------------------------ */
Test(poolboy, min_idle_idle_timeout_max_lifetime, .timeout = 60)
{
	struct env *e = start("[pool pre]\nsize = 4\nmin_idle = 2\nidle_timeout = 200ms\n\n"
	                      "[pool life]\nsize = 2\nmax_lifetime = 200ms\n");
	th_pool_register(e->p, "pre", &e->conns);
	cr_assert_eq(atomic_load(&e->conns.created), 2, "min_idle pre-filled at registration");
	prot_lease l[4];
	void *conn;
	for (int i = 0; i < 4; i++)
		cr_assert_eq(prot_pool_checkout(e->p, "pre", 0, &l[i], &conn), 0);
	cr_assert_eq(atomic_load(&e->conns.created), 4, "two reused, two made");
	for (int i = 0; i < 4; i++)
		cr_assert_eq(prot_pool_checkin(e->p, &l[i], PROT_CHECKIN_OK), 0);
	cr_assert_eq(atomic_load(&e->conns.destroyed), 0);
	th_sleep_ms(350);
	th_pool_status(e->p, "pre"); /* a pool call: the idle check */
	cr_assert_eq(atomic_load(&e->conns.destroyed), 2, "idle beyond min_idle closed after idle_timeout");

	int made = atomic_load(&e->conns.created), gone = atomic_load(&e->conns.destroyed);
	th_pool_register(e->p, "life", &e->conns);
	cr_assert_eq(prot_pool_checkout(e->p, "life", 0, &l[0], &conn), 0);
	cr_assert_eq(atomic_load(&e->conns.created), made + 1);
	cr_assert_eq(prot_pool_checkin(e->p, &l[0], PROT_CHECKIN_OK), 0);
	cr_assert_eq(prot_pool_checkout(e->p, "life", 0, &l[0], &conn), 0);
	cr_assert_eq(atomic_load(&e->conns.created), made + 1, "young: reused");
	th_sleep_ms(300);
	cr_assert_eq(prot_pool_checkin(e->p, &l[0], PROT_CHECKIN_OK), 0);
	cr_assert_eq(atomic_load(&e->conns.destroyed), gone + 1, "past max_lifetime: recycled at checkin");
	cr_assert_eq(prot_pool_checkout(e->p, "life", 0, &l[0], &conn), 0);
	cr_assert_eq(atomic_load(&e->conns.created), made + 2, "a new one");
	cr_assert_eq(prot_pool_checkin(e->p, &l[0], PROT_CHECKIN_OK), 0);
	stop(e);
}

/* max_open: a holder keeps one idle connection and makes pool calls (status) in a bounded loop, so
 * that it answers close requests; it ends at go (prot_close closes what it still has). */
static int hold_idle(void *arg, int i)
{
	(void)i;
	struct env *e = arg;
	prot_t *p = th_open(e->seg, 2000);
	if (!p)
		return 10;
	struct prot_connector c = th_connector(&e->conns);
	prot_lease l;
	void *conn = NULL;
	if (prot_pool_register(p, "cap", &c) || prot_pool_checkout(p, "cap", 1000, &l, &conn) || !conn ||
	    prot_pool_checkin(p, &l, PROT_CHECKIN_OK))
		return 11;
	atomic_fetch_add(&e->ready, 1);
	struct prot_pool_status st;
	for (uint64_t end = th_now_ms() + 20000; atomic_load(&e->go) == 0; th_sleep_ms(2)) {
		if (th_now_ms() > end || prot_pool_status(p, "cap", &st) != 0)
			return 12;
	}
	prot_close(p);
	return 0;
}

Test(poolboy, max_open_across_processes, .timeout = 60)
{
	struct env *e = start("[pool cap]\nsize = 4\nmax_open = 2\ncheckout_timeout = 3s\n");
	pid_t h[2] = { th_fork(hold_idle, e, 0), th_fork(hold_idle, e, 1) };
	cr_assert(th_wait_flag(&e->ready, 2, 10000), "holders ready");
	struct prot_pool_status st = th_pool_status(e->p, "cap");
	cr_assert_eq(st.open, 2, "two idle connections in two processes: open %u", st.open);
	cr_assert_eq(st.max_open, 2);
	cr_assert_eq(st.in_use, 0, "no lease held: the connections are idle");

	/* a third process needs a new connection: one holder closes an idle one at its next call */
	th_pool_register(e->p, "cap", &e->conns);
	prot_lease l, l2;
	void *conn = NULL;
	uint64_t t0 = th_now_ms();
	int r = prot_pool_checkout(e->p, "cap", 3000, &l, &conn);
	uint64_t waited = th_now_ms() - t0;
	cr_assert_eq(r, 0, "checkout: %s", prot_strerror(r));
	cr_assert(conn != NULL);
	cr_assert_eq(atomic_load(&e->conns.created), 3);
	cr_assert_eq(atomic_load(&e->conns.destroyed), 1, "one idle connection closed on request");
	cr_assert_eq(th_pool_status(e->p, "cap").open, 2);
	/* no wait: max_open reached, the lease comes back */
	cr_assert_eq(prot_pool_checkout(e->p, "cap", 0, &l2, &conn), -PROT_EPOOLFULL);
	cr_assert_eq(th_pool_status(e->p, "cap").in_use, 1);
	cr_assert_eq(prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK), 0);
	cr_assert_leq(atomic_load(&e->conns.open_max), 2, "never more than max_open open: %d", atomic_load(&e->conns.open_max));
	atomic_store(&e->go, 1);
	for (int i = 0; i < 2; i++) {
		int status;
		cr_assert_eq(th_wait(h[i], 10000, &status), 0);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "holder %d: %d", i, WEXITSTATUS(status));
	}
	cr_assert_eq(th_pool_status(e->p, "cap").open, 1, "the holders closed theirs; ours is idle");

	/* a process killed with an open connection: its slot comes back by the reclaim pass */
	atomic_store(&e->ready, 0);
	atomic_store(&e->go, 0);
	pid_t k = th_fork(hold_idle, e, 2);
	cr_assert(th_wait_flag(&e->ready, 1, 10000));
	cr_assert_eq(th_pool_status(e->p, "cap").open, 2);
	th_kill9(k); /* and reaped */
	uint64_t t1 = th_now_ms();
	cr_assert(th_pool_until(e->p, "cap", open, 1, 1000), "slot of a killed process not freed within 1 s");
	uint64_t freed_ms = th_now_ms() - t1;
	cr_assert_leq(atomic_load(&e->conns.open_max), 2);
	struct th_out out;
	cr_assert_eq(th_protctl(&out, e->seg, "pool", "show", "cap", NULL), 0, "%s", out.err);
	cr_assert(strstr(out.out, "open            1 (max_open 2)"), "%s", out.out);
	cr_assert_eq(th_protctl(&out, e->seg, "--json", "pool", "show", "cap", NULL), 0);
	cr_assert(strstr(out.out, "\"max_open\":2,\"open\":1"), "%s", out.out);
	fprintf(stderr, "max_open: third checkout waited %" PRIu64 " ms; killed holder's slot freed in %" PRIu64
	        " ms (reclaim_interval 100ms); most open at once %d\n", waited, freed_ms, atomic_load(&e->conns.open_max));
	stop(e);
}

/* ---- poolboy's scenarios ----------------------------------------------------------------------- */
static int blocking_checkout(void *arg, int i)
{
	(void)i;
	struct env *e = arg;
	prot_t *p = th_open(e->seg, 2000);
	prot_lease l;
	if (!p)
		return 10;
	atomic_store(&e->ready, 1);
	int r = prot_pool_checkout(p, "boy", 10000, &l, NULL);
	if (r == 0)
		r = prot_pool_checkin(p, &l, PROT_CHECKIN_OK);
	prot_close(p);
	return r == 0 ? 0 : 30;
}

static int die_holding(void *arg, int i)
{
	(void)i;
	struct env *e = arg;
	prot_t *p = th_open(e->seg, 2000);
	prot_lease l;
	if (!p || prot_pool_checkout(p, "boy", 1000, &l, NULL))
		return 10;
	atomic_store(&e->done, 1);
	_exit(0); /* no checkin, no prot_close: poolboy's dead caller */
}

Test(poolboy, replays_poolboys_scenarios, .timeout = 60)
{
	/* poolboy_tests: pool_overflow / checkout_block / dismissal / owner death */
	struct env *e = start("[pool boy]\nsize = 2\nmax_overflow = 2\n");
	th_pool_register(e->p, "boy", &e->conns);
	prot_lease l[4];
	void *conn;
	expect_status(e->p, "boy", 0, 2, 0, 0, PROT_POOL_READY, "start: {ready,2,0,0}");
	cr_assert_eq(prot_pool_checkout(e->p, "boy", 0, &l[0], &conn), 0);
	expect_status(e->p, "boy", 1, 1, 0, 0, PROT_POOL_READY, "1 out: {ready,1,0,1}");
	cr_assert_eq(prot_pool_checkout(e->p, "boy", 0, &l[1], &conn), 0);
	expect_status(e->p, "boy", 2, 0, 0, 0, PROT_POOL_OVERFLOW, "2 out: {overflow,0,0,2}");
	cr_assert_eq(prot_pool_checkout(e->p, "boy", 0, &l[2], &conn), 0);
	expect_status(e->p, "boy", 3, 0, 1, 0, PROT_POOL_OVERFLOW, "overflow grows: {overflow,0,1,3}");
	cr_assert_eq(prot_pool_checkout(e->p, "boy", 0, &l[3], &conn), 0);
	expect_status(e->p, "boy", 4, 0, 2, 0, PROT_POOL_FULL, "full: {full,0,2,4}");
	prot_lease x;
	cr_assert_eq(prot_pool_checkout(e->p, "boy", 0, &x, &conn), -PROT_EPOOLFULL, "non-blocking: full");

	/* a blocking checkout in another process is served by a checkin */
	pid_t w = th_fork(blocking_checkout, e, 0);
	cr_assert(th_wait_flag(&e->ready, 1, 5000));
	cr_assert(th_pool_until(e->p, "boy", waiting, 1, 5000), "the waiter is queued");
	expect_status(e->p, "boy", 4, 0, 2, 1, PROT_POOL_FULL, "a waiter: {full,0,2,4}, 1 waiting");
	int destroyed = atomic_load(&e->conns.destroyed);
	cr_assert_eq(prot_pool_checkin(e->p, &l[3], PROT_CHECKIN_OK), 0);
	int st;
	cr_assert_eq(th_wait(w, 10000, &st), 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "waiter: %d", WEXITSTATUS(st));
	cr_assert_eq(atomic_load(&e->conns.destroyed), destroyed, "handed to the waiter, not dismissed");
	/* the waiter returned it: overflow shrinks */
	expect_status(e->p, "boy", 3, 0, 1, 0, PROT_POOL_OVERFLOW, "after the waiter: {overflow,0,1,3}");

	/* dismissal: an overflow checkin closes its connection (overflow_ttl = 0) */
	cr_assert_eq(prot_pool_checkin(e->p, &l[2], PROT_CHECKIN_OK), 0);
	cr_assert_eq(atomic_load(&e->conns.destroyed), destroyed + 1, "overflow worker dismissed");
	expect_status(e->p, "boy", 2, 0, 0, 0, PROT_POOL_OVERFLOW, "dismissed: {overflow,0,0,2}");
	cr_assert_eq(prot_pool_checkin(e->p, &l[1], PROT_CHECKIN_OK), 0);
	expect_status(e->p, "boy", 1, 1, 0, 0, PROT_POOL_READY, "{ready,1,0,1}");
	cr_assert_eq(atomic_load(&e->conns.destroyed), destroyed + 1, "a permanent one is kept");

	/* a dead caller's lease comes back */
	pid_t d = th_fork(die_holding, e, 0);
	cr_assert_eq(th_wait(d, 10000, &st), 0);
	cr_assert_eq(atomic_load(&e->done), 1);
	cr_assert(th_pool_until(e->p, "boy", in_use, 1, 3000), "the dead caller's lease comes back");
	expect_status(e->p, "boy", 1, 1, 0, 0, PROT_POOL_READY, "dead caller's lease returned");
	cr_assert_eq(th_pool_status(e->p, "boy").reclaims, 1);
	cr_assert_eq(prot_pool_checkin(e->p, &l[0], PROT_CHECKIN_OK), 0);
	expect_status(e->p, "boy", 0, 2, 0, 0, PROT_POOL_READY, "end: {ready,2,0,0}");
	stop(e);
}
