/* test_crash.c — crash safety: exact identity across pid reuse, leases that cannot be forged or
 * reused, hand-offs and probes that survive the death of their holder, reclaims while protd is
 * down, and a chaos soak with kill -9. Real protd, real fork()ed processes, real signals; every
 * wait bounded. Children report through shared memory and their exit code, never cr_assert.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

struct env {
	pid_t protd;
	const char *seg, *ini;
	prot_t *p;
	/* shared with forked children */
	char segname[64];
	prot_lease lease;                /* lease bytes handed between processes */
	prot_breaker_token tok;          /* token bytes handed between processes */
	_Atomic int ready, go, done, result, errors;
	_Atomic pid_t pid;
	_Atomic uint64_t t_ms;
	_Atomic int admitted;
};

static const char ini_head[] = "[segment]\nmax_keys = 4\nmax_breakers = 4\nmax_pools = 4\n"
                               "pool_max_slots = 16\npool_max_waiters = 32\nrate_entities = 4096\n"
                               "events = 256\n\n[daemon]\ntick = 10ms\nreclaim_interval = 50ms\n\n";

static struct env *start(const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	e->protd = th_serve_head("crash", ini_head, sections, &e->seg, &e->ini, &e->p);
	snprintf(e->segname, sizeof e->segname, "%s", e->seg);
	return e;
}

static void stop(struct env *e)
{
	th_unserve(e->p, e->protd);
}

/* ---- 1. exact identity: pid reuse in a new PID namespace ---------------------------------------- */

/* In a new PID namespace: a holder checks out a lease and dies; ns_last_pid makes the next child
 * get the holder's pid; that newcomer tries the dead holder's lease bytes, then stays alive while
 * the parent checks that protd reclaimed the lease. */
static int ns_holder(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_t *p;
	if (prot_open(e->segname, 0, &p) != 0)
		return 1;
	if (prot_pool_checkout(p, "db", 1000, &e->lease, NULL) != 0)
		return 2;
	atomic_store(&e->pid, getpid());
	return 0; /* dies holding the lease */
}

static int ns_newcomer(struct env *e)
{
	prot_t *p;
	if (getpid() != atomic_load(&e->pid))
		return 10; /* pid not reused: the test cannot show what it must */
	if (prot_open(e->segname, 0, &p) != 0)
		return 11;
	prot_lease stolen = e->lease;
	atomic_store(&e->result, prot_pool_checkin(p, &stolen, PROT_CHECKIN_OK));
	atomic_store(&e->ready, 1);
	th_wait_flag(&e->go, 1, 5000); /* alive while the parent looks */
	prot_close(p);
	return 0;
}

static int ns_init(struct env *e)
{
	pid_t h = th_fork(ns_holder, e, 0);
	int st;
	if (th_wait(h, 5000, &st) != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 20;
	int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
	if (fd < 0)
		return 21;
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%d", (int)h - 1);
	if (write(fd, buf, (size_t)n) != n)
		return 22;
	close(fd);
	pid_t c = fork();
	if (c == 0)
		_exit(ns_newcomer(e));
	if (c != h)
		return 23;
	if (th_wait(c, 10000, &st) != 0 || !WIFEXITED(st))
		return 24;
	return WEXITSTATUS(st);
}

Test(crash, pid_reuse_in_a_new_pid_namespace, .timeout = 30)
{
	struct env *e = start("[pool db]\nsize = 1\nmax_overflow = 0\nreclaim_interval = 50ms\n");
	pid_t outer = fork();
	cr_assert_geq(outer, 0);
	if (outer == 0) {
		if (unshare(CLONE_NEWPID) != 0)
			_exit(77);
		pid_t init = fork(); /* pid 1 of the new namespace */
		if (init == 0)
			_exit(ns_init(e));
		int st;
		_exit(th_wait(init, 20000, &st) == 0 && WIFEXITED(st) ? WEXITSTATUS(st) : 99);
	}
	if (!th_wait_flag(&e->ready, 1, 10000)) {
		int st = 0;
		th_wait(outer, 5000, &st);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
			stop(e);
			cr_skip("unshare(CLONE_NEWPID) refused: this test needs root (CAP_SYS_ADMIN)");
		}
		cr_assert_fail("the namespace children did not get going (exit %d)", WEXITSTATUS(st));
	}
	cr_expect_eq(atomic_load(&e->result), -PROT_ESTALE,
	             "a newcomer with the dead holder's pid must not check in its lease");
	cr_expect(th_pool_until(e->p, "db", in_use, 0, 2000),
	          "the dead holder's lease is reclaimed while the newcomer lives");
	atomic_store(&e->go, 1);
	int st;
	cr_assert_eq(th_wait(outer, 10000, &st), 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "namespace child exit %d", WEXITSTATUS(st));
	prot_lease l;
	cr_expect_eq(prot_pool_checkout(e->p, "db", 0, &l, NULL), 0);
	cr_expect_eq(prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK), 0);
	stop(e);
}

/* ---- 2. leases cannot be forged or reused --------------------------------------------------------- */

Test(crash, stale_copies_double_checkins_and_garbage_are_estale)
{
	struct env *e = start("[pool db]\nsize = 1\nmax_overflow = 0\n");
	prot_lease l, copy, now;
	cr_assert_eq(prot_pool_checkout(e->p, "db", 0, &l, NULL), 0);
	copy = l;
	cr_assert_eq(prot_pool_checkin(e->p, &l, PROT_CHECKIN_BROKEN), 0);
	cr_expect_eq(prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK), -PROT_ESTALE, "a zeroed lease");
	cr_expect_eq(prot_pool_checkin(e->p, &copy, PROT_CHECKIN_OK), -PROT_ESTALE, "a double checkin");
	/* the same entry handed out again: the old copy must not release the new lease */
	cr_assert_eq(prot_pool_checkout(e->p, "db", 0, &now, NULL), 0);
	cr_expect_eq(prot_pool_checkin(e->p, &copy, PROT_CHECKIN_BROKEN), -PROT_ESTALE);
	cr_expect_eq(th_pool_status(e->p, "db").in_use, 1, "the new lease is still held");
	/* a copy 64 checkouts old */
	prot_lease old = now;
	cr_assert_eq(prot_pool_checkin(e->p, &now, PROT_CHECKIN_OK), 0);
	for (int i = 0; i < 64; i++) {
		cr_assert_eq(prot_pool_checkout(e->p, "db", 0, &now, NULL), 0);
		if (i < 63)
			cr_assert_eq(prot_pool_checkin(e->p, &now, PROT_CHECKIN_OK), 0);
	}
	cr_expect_eq(prot_pool_checkin(e->p, &old, PROT_CHECKIN_OK), -PROT_ESTALE);
	cr_expect_eq(prot_pool_checkin(e->p, &now, PROT_CHECKIN_OK), 0, "the real holder is unaffected");
	/* garbage bytes: never a crash, never a release */
	cr_assert_eq(prot_pool_checkout(e->p, "db", 0, &now, NULL), 0);
	srand(7);
	for (int i = 0; i < 10000; i++) {
		prot_lease g;
		for (int k = 0; k < 3; k++)
			g.opaque[k] = (uint64_t)rand() << 33 ^ (uint64_t)rand() << 11 ^ (uint64_t)rand();
		if (i % 3 == 0)
			g.opaque[0] = now.opaque[0]; /* the right segment, wrong rest */
		if (i % 3 == 1)
			g.opaque[1] = now.opaque[1];
		cr_assert_eq(prot_pool_checkin(e->p, &g, PROT_CHECKIN_OK), -PROT_ESTALE, "garbage %d", i);
	}
	cr_expect_eq(th_pool_status(e->p, "db").in_use, 1);
	cr_expect_eq(prot_pool_checkin(e->p, &now, PROT_CHECKIN_OK), 0);
	stop(e);
}

static int hold_and_share(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_t *p;
	if (prot_open(e->segname, 0, &p) != 0)
		return 1;
	if (prot_pool_checkout(p, "db", 1000, &e->lease, NULL) != 0)
		return 2;
	atomic_store(&e->ready, 1);
	if (!th_wait_flag(&e->go, 1, 5000))
		return 3;
	/* the other process's attempt must not have released ours */
	int r = prot_pool_checkin(p, &e->lease, PROT_CHECKIN_OK);
	prot_close(p);
	return r == 0 ? 0 : 4;
}

static int checkin_parents(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_lease l = e->lease;
	return prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK) == -PROT_ESTALE ? 0 : 1;
}

Test(crash, another_process_lease_and_a_lease_from_before_fork_are_estale)
{
	struct env *e = start("[pool db]\nsize = 2\nmax_overflow = 0\n");
	pid_t c = th_fork(hold_and_share, e, 0);
	cr_assert(th_wait_flag(&e->ready, 1, 5000));
	prot_lease foreign = e->lease;
	cr_expect_eq(prot_pool_checkin(e->p, &foreign, PROT_CHECKIN_OK), -PROT_ESTALE);
	atomic_store(&e->go, 1);
	int st;
	cr_assert_eq(th_wait(c, 5000, &st), 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "holder exit %d", WEXITSTATUS(st));
	/* a lease held by the parent, tried in a child forked afterwards */
	cr_assert_eq(prot_pool_checkout(e->p, "db", 0, &e->lease, NULL), 0);
	th_fork_n(1, checkin_parents, e, 5000);
	cr_expect_eq(th_pool_status(e->p, "db").in_use, 1);
	cr_expect_eq(prot_pool_checkin(e->p, &e->lease, PROT_CHECKIN_OK), 0);
	stop(e);
}

/* ---- 3. hand-offs never strand a lease -------------------------------------------------------------- */

struct waiter_arg {
	struct env *e;
	_Atomic int *granted; /* set to 1 when its checkout returned 0 */
	_Atomic uint64_t *at_ms;
};

static int queue_and_hold(void *arg, int i)
{
	struct env *e = arg;
	prot_lease l;
	atomic_fetch_add(&e->ready, 1);
	int r = prot_pool_checkout(e->p, "db", 5000, &l, NULL);
	if (r != 0)
		return 1;
	atomic_store(&e->t_ms, th_now_ms());
	atomic_store(&e->result, i); /* who got it */
	th_wait_flag(&e->go, 1, 5000);
	return prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK) == 0 ? 0 : 2;
}

Test(crash, a_waiter_killed_while_queued_does_not_strand_the_lease, .timeout = 30)
{
	struct env *e = start("[pool db]\nsize = 1\nmax_overflow = 0\nreclaim_interval = 50ms\n");
	prot_lease l;
	cr_assert_eq(prot_pool_checkout(e->p, "db", 0, &l, NULL), 0);
	atomic_store(&e->result, -1);
	pid_t w1 = th_fork(queue_and_hold, e, 1);
	cr_assert(th_pool_until(e->p, "db", waiting, 1, 5000));
	pid_t w2 = th_fork(queue_and_hold, e, 2);
	cr_assert(th_pool_until(e->p, "db", waiting, 2, 5000));
	th_kill9(w1);
	/* hand it to the dead head of the queue at once, before any reclaim pass saw the death */
	uint64_t t0 = th_now_ms();
	cr_assert_eq(prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK), 0);
	cr_assert(th_wait_flag(&e->result, 2, 3000), "the next live waiter never got the lease");
	uint64_t took = atomic_load(&e->t_ms) - t0;
	cr_expect_lt(took, 500, "the lease reached the live waiter %llu ms after the checkin "
	             "(reclaim interval 50 ms)", (unsigned long long)took);
	atomic_store(&e->go, 1);
	int st;
	cr_assert_eq(th_wait(w2, 5000, &st), 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_expect(th_pool_until(e->p, "db", in_use, 0, 2000));
	cr_expect_eq(th_pool_status(e->p, "db").reclaims, 1, "exactly the dead waiter's grant was reclaimed");
	stop(e);
}

Test(crash, a_stopped_waiter_is_never_robbed, .timeout = 30)
{
	struct env *e = start("[pool db]\nsize = 1\nmax_overflow = 0\nreclaim_interval = 20ms\n");
	prot_lease l;
	cr_assert_eq(prot_pool_checkout(e->p, "db", 0, &l, NULL), 0);
	atomic_store(&e->result, -1);
	pid_t w1 = th_fork(queue_and_hold, e, 1);
	cr_assert(th_pool_until(e->p, "db", waiting, 1, 5000));
	kill(w1, SIGSTOP);
	pid_t w2 = th_fork(queue_and_hold, e, 2);
	cr_assert(th_pool_until(e->p, "db", waiting, 2, 5000));
	cr_assert_eq(prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK), 0); /* to the stopped head */
	th_sleep_ms(500); /* 25 reclaim intervals */
	cr_expect_eq(atomic_load(&e->result), -1, "nobody may take the stopped waiter's lease");
	cr_expect_eq(th_pool_status(e->p, "db").reclaims, 0, "a stopped process is alive");
	kill(w1, SIGCONT);
	cr_assert(th_wait_flag(&e->result, 1, 3000));
	cr_expect_eq(atomic_load(&e->result), 1, "the stopped waiter got it once continued");
	atomic_store(&e->go, 1);
	int st;
	cr_assert_eq(th_wait(w1, 5000, &st), 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(th_wait(w2, 5000, &st), 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	stop(e);
}

/* 8 processes race checkouts with 1-2 ms deadlines against hand-offs, nobody dies. */
struct race_stats {
	_Atomic uint64_t ops, late_10ms, max_late_us, errors;
};

static int racer(void *arg, int i)
{
	struct race_stats *rs = arg;
	prot_t *p = NULL;
	(void)i;
	const char *seg = (const char *)(rs + 1);
	if (prot_open(seg, 0, &p) != 0)
		return 1;
	uint64_t end = th_now_ms() + 3000;
	while (th_now_ms() < end) {
		prot_lease l;
		int64_t tmo = 1 + (int64_t)(rs->ops % 2);
		uint64_t t0 = prot_now_ns();
		int r = prot_pool_checkout(p, "db", tmo, &l, NULL);
		uint64_t dt = prot_now_ns() - t0, late = dt > (uint64_t)tmo * 1000000 ? dt - (uint64_t)tmo * 1000000 : 0;
		if (late > 10000000)
			atomic_fetch_add(&rs->late_10ms, 1);
		uint64_t m = atomic_load(&rs->max_late_us);
		while (late / 1000 > m && !atomic_compare_exchange_weak(&rs->max_late_us, &m, late / 1000))
			;
		if (r == 0) {
			if (prot_pool_checkin(p, &l, PROT_CHECKIN_OK) != 0)
				atomic_fetch_add(&rs->errors, 1);
		} else if (r != -PROT_ECHECKOUT_TIMEOUT) {
			atomic_fetch_add(&rs->errors, 1);
		}
		atomic_fetch_add(&rs->ops, 1);
	}
	prot_close(p);
	return 0;
}

Test(crash, short_deadlines_against_handoffs_reclaim_nothing, .timeout = 60)
{
	struct env *e = start("[pool db]\nsize = 2\nmax_overflow = 0\nreclaim_interval = 10ms\n");
	struct race_stats *rs = th_shared(sizeof *rs + 64);
	snprintf((char *)(rs + 1), 64, "%s", e->seg);
	th_fork_n(8, racer, rs, 20000);
	struct prot_pool_status st = th_pool_status(e->p, "db");
	cr_log_info("%llu checkouts; %llu returned > 10 ms past their deadline; worst %llu us late",
	            (unsigned long long)rs->ops, (unsigned long long)rs->late_10ms,
	            (unsigned long long)rs->max_late_us);
	cr_expect_eq(rs->errors, 0);
	cr_expect_eq(st.reclaims, 0, "no process died: nothing may be reclaimed");
	cr_expect_eq(st.in_use, 0);
	cr_expect_eq(st.waiting, 0);
	stop(e);
}

/* ---- 4. probes belong to a holder ------------------------------------------------------------------- */

static int fn_fail(void *arg)
{
	(void)arg;
	return -1;
}

static void trip(struct env *e, const char *b)
{
	cr_assert_eq(prot_breaker_execute(e->p, b, fn_fail, NULL, NULL), -PROT_EFAILED);
	struct prot_breaker_status st;
	cr_assert_eq(prot_breaker_status(e->p, b, &st), 0);
	cr_assert_eq(st.state, PROT_BREAKER_OPEN);
}

static bool half_open(void *arg)
{
	struct env *e = arg;
	struct prot_breaker_status st;
	return prot_breaker_status(e->p, "b", &st) == 0 && st.state == PROT_BREAKER_HALF_OPEN;
}

static int take_probe_and_wait(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_t *p;
	if (prot_open(e->segname, 0, &p) != 0)
		return 1;
	if (prot_breaker_allow(p, "b", &e->tok) != 0)
		return 2;
	atomic_store(&e->ready, 1);
	th_wait_flag(&e->go, 1, 10000); /* killed before this */
	return 3;
}

static int race_for_probe(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_breaker_token t;
	atomic_fetch_add(&e->ready, 1);
	uint64_t end = th_now_ms() + 3000;
	while (th_now_ms() < end) {
		int r = prot_breaker_allow(e->p, "b", &t);
		if (r == 0) {
			atomic_store(&e->t_ms, th_now_ms());
			atomic_fetch_add(&e->admitted, 1);
			break;
		}
		th_sleep_ms(1);
	}
	atomic_fetch_add(&e->done, 1);
	th_wait_flag(&e->go, 2, 10000); /* hold it, alive, while the others try */
	return 0;
}

Test(crash, a_killed_probe_holders_permit_returns_to_exactly_one_caller, .timeout = 30)
{
	struct env *e = start("[breaker b]\ntolerance = 0\nwindow = 10s\nrefresh = 100ms\n"
	                      "half_open_probes = 1\nprobe_timeout = 60s\n");
	trip(e, "b");
	cr_assert(th_until(half_open, e, 3000));
	pid_t holder = th_fork(take_probe_and_wait, e, 0);
	cr_assert(th_wait_flag(&e->ready, 1, 5000));
	prot_breaker_token t;
	cr_assert_eq(prot_breaker_allow(e->p, "b", &t), -PROT_EBLOWN, "the one permit is held");
	atomic_store(&e->ready, 0);
	pid_t racers[6];
	for (int i = 0; i < 6; i++)
		racers[i] = th_fork(race_for_probe, e, i);
	cr_assert(th_wait_flag(&e->ready, 6, 5000));
	uint64_t t0 = th_now_ms();
	th_kill9(holder);
	cr_assert(th_wait_flag(&e->done, 6, 10000));
	uint64_t took = atomic_load(&e->t_ms) - t0;
	cr_expect_eq(atomic_load(&e->admitted), 1, "exactly one caller gets the dead holder's permit");
	cr_expect_lt(took, 3000, "permit back after %llu ms (probe timeout 60 s)", (unsigned long long)took);
	/* the dead holder's token, used by another process: stale, records nothing */
	struct prot_breaker_status before, after;
	cr_assert_eq(prot_breaker_status(e->p, "b", &before), 0);
	cr_expect_eq(prot_breaker_record(e->p, &e->tok, PROT_OUTCOME_SUCCESS, 0), -PROT_ESTALE);
	cr_expect_eq(prot_breaker_record(e->p, &e->tok, PROT_OUTCOME_FAILURE, 0), -PROT_ESTALE);
	cr_assert_eq(prot_breaker_status(e->p, "b", &after), 0);
	cr_expect_eq(after.state, PROT_BREAKER_HALF_OPEN);
	cr_expect_eq(after.successes, before.successes);
	cr_expect_eq(after.failures, before.failures);
	atomic_store(&e->go, 2);
	for (int i = 0; i < 6; i++) {
		int st;
		cr_assert_eq(th_wait(racers[i], 10000, &st), 0);
	}
	stop(e);
}

/* A live holder's token used from another process is stale too. */
static int record_foreign(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_breaker_token t = e->tok;
	return prot_breaker_record(e->p, &t, PROT_OUTCOME_SUCCESS, 0) == -PROT_ESTALE ? 0 : 1;
}

Test(crash, a_probe_token_works_only_for_its_holder)
{
	struct env *e = start("[breaker b]\ntolerance = 0\nwindow = 10s\nrefresh = 100ms\n"
	                      "half_open_probes = 1\nprobe_timeout = 60s\n");
	trip(e, "b");
	cr_assert(th_until(half_open, e, 3000));
	cr_assert_eq(prot_breaker_allow(e->p, "b", &e->tok), 0);
	th_fork_n(1, record_foreign, e, 5000); /* a child: another process */
	cr_expect_eq(prot_breaker_record(e->p, &e->tok, PROT_OUTCOME_SUCCESS, 0), 0, "its holder can");
	struct prot_breaker_status st;
	cr_assert_eq(prot_breaker_status(e->p, "b", &st), 0);
	cr_expect_eq(st.state, PROT_BREAKER_CLOSED);
	stop(e);
}

/* ---- 5. without protd ----------------------------------------------------------------------------------- */

static int hold_lease_probe_and_die(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_t *p;
	prot_lease l;
	prot_breaker_token t;
	if (prot_open(e->segname, 0, &p) != 0)
		return 1;
	if (prot_pool_checkout(p, "db", 1000, &l, NULL) != 0)
		return 2;
	if (prot_breaker_allow(p, "b", &t) != 0)
		return 3;
	return 0; /* exits holding both */
}

Test(crash, deaths_while_protd_is_down_are_reclaimed_by_clients, .timeout = 30)
{
	struct env *e = start("[pool db]\nsize = 1\nmax_overflow = 0\nreclaim_interval = 50ms\n"
	                      "[breaker b]\ntolerance = 0\nwindow = 10s\nrefresh = 100ms\n"
	                      "half_open_probes = 1\nprobe_timeout = 60s\n");
	trip(e, "b");
	cr_assert(th_until(half_open, e, 3000));
	th_kill9(e->protd); /* the segment stays; nobody serves it */
	struct prot_info info;
	cr_assert_eq(prot_get_info(e->p, &info), 0);
	cr_expect_eq(info.protd_alive, 0);
	th_fork_n(1, hold_lease_probe_and_die, e, 5000);
	/* a live client needing the lease reclaims it; one needing the probe, the permit */
	prot_lease l;
	uint64_t t0 = th_now_ms();
	int r = prot_pool_checkout(e->p, "db", 2000, &l, NULL);
	uint64_t took = th_now_ms() - t0;
	cr_assert_eq(r, 0, "checkout without protd: %s", prot_strerror(r));
	cr_expect_lt(took, 1000, "the dead holder's lease came back after %llu ms", (unsigned long long)took);
	prot_breaker_token t;
	uint64_t end = th_now_ms() + 2000;
	while ((r = prot_breaker_allow(e->p, "b", &t)) != 0 && th_now_ms() < end)
		th_sleep_ms(5);
	cr_assert_eq(r, 0, "the dead holder's probe permit never came back without protd");
	cr_assert_eq(prot_breaker_record(e->p, &t, PROT_OUTCOME_SUCCESS, 0), 0);
	/* a protd that re-adopts the segment frees nothing twice */
	e->protd = th_protd_start(e->ini, e->seg, NULL);
	th_sleep_ms(200); /* several of its reclaim passes */
	struct prot_pool_status st = th_pool_status(e->p, "db");
	cr_expect_eq(st.in_use, 1, "our lease is still ours");
	cr_expect_eq(st.reclaims, 1, "one lease reclaimed, once");
	prot_lease again;
	cr_expect_eq(prot_pool_checkout(e->p, "db", 0, &again, NULL), -PROT_EPOOLFULL);
	cr_expect_eq(prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK), 0);
	cr_expect_eq(th_pool_status(e->p, "db").in_use, 0);
	stop(e);
}

/* ---- 6. chaos ------------------------------------------------------------------------------------------ */

/* What workers did, per kind: attempted before the call, completed after it (a kill between the
 * two leaves attempted - completed calls the segment may or may not have seen). */
struct chaos {
	_Atomic uint64_t ops;
	_Atomic uint64_t rate_try, rate_done;   /* prot_rate_check_key on "api" */
	_Atomic uint64_t brk_try, brk_done;     /* prot_breaker_execute on "b" (always succeeds) */
	_Atomic uint64_t errors;
	_Atomic int first_error, first_error_kind;
	_Atomic int stop;
	char seg[64];
};

static int ok_call(void *arg)
{
	(void)arg;
	return 0;
}
static int exec_ok(const struct prot_call *c)
{
	(void)c;
	return 0;
}

static int chaos_worker(void *arg, int i)
{
	struct chaos *c = arg;
	prot_t *p;
	if (prot_open(c->seg, 0, &p) != 0)
		return 1;
	char ent[32];
	for (uint64_t k = 0; !atomic_load(&c->stop); k++) {
		int r = 0;
		snprintf(ent, sizeof ent, "u%d", (int)((k * 7 + (uint64_t)i) % 50));
		switch (k % 4) {
		case 0:
			atomic_fetch_add(&c->rate_try, 1);
			r = prot_rate_check_key(p, "api", ent, 1, NULL);
			atomic_fetch_add(&c->rate_done, 1);
			r = r < 0 && r != -PROT_ERATELIMITED ? r : 0;
			break;
		case 1:
			atomic_fetch_add(&c->brk_try, 1);
			r = prot_breaker_execute(p, "b", ok_call, NULL, NULL);
			atomic_fetch_add(&c->brk_done, 1);
			break;
		case 2: {
			prot_lease l;
			r = prot_pool_checkout(p, "db", 50, &l, NULL);
			if (r == 0)
				r = prot_pool_checkin(p, &l, PROT_CHECKIN_OK);
			else if (r == -PROT_ECHECKOUT_TIMEOUT)
				r = 0;
			break;
		}
		default: {
			struct prot_call_opts o = { .entity = ent, .timeout_ms = 50 };
			struct prot_detail d;
			r = prot_execute(p, "svc", &o, exec_ok, NULL, &d);
			/* a call descheduled past its 50 ms on a loaded machine overruns: not an error */
			if (r == -PROT_ERATELIMITED || r == -PROT_ECHECKOUT_TIMEOUT || r == -PROT_ETIMEOUT)
				r = 0;
			break;
		}
		}
		if (r < 0 && atomic_fetch_add(&c->errors, 1) == 0) {
			atomic_store(&c->first_error, r);
			atomic_store(&c->first_error_kind, (int)(k % 4));
		}
		atomic_fetch_add(&c->ops, 1);
	}
	prot_close(p);
	return 0;
}

static uint64_t soak_ms(void)
{
	const char *v = getenv("PROT_CHAOS_MS");
	return v && *v ? strtoull(v, NULL, 10) : 15000;
}

Test(crash, chaos_kill9_random_workers_under_load, .timeout = 120)
{
	struct env *e = start("[pool db]\nsize = 3\nmax_overflow = 1\nreclaim_interval = 50ms\n"
	                      "[breaker b]\ntolerance = 5\nwindow = 1s\nrefresh = 100ms\n"
	                      "[key api]\nrate_limit = 1000000\nrate_window = 1s\n"
	                      "[key svc]\nrate_limit = 1000000\nrate_window = 1s\npool = db\n");
	struct chaos *c = th_shared(sizeof *c);
	snprintf(c->seg, sizeof c->seg, "%s", e->seg);
	pid_t w[8];
	for (int i = 0; i < 8; i++)
		w[i] = th_fork(chaos_worker, c, i);
	uint64_t end = th_now_ms() + soak_ms(), kills = 0;
	srand((unsigned)getpid());
	while (th_now_ms() < end || atomic_load(&c->ops) < 1000000) {
		th_sleep_ms(2 + rand() % 20);
		int k = rand() % 8;
		th_kill9(w[k]);
		kills++;
		w[k] = th_fork(chaos_worker, c, k);
	}
	atomic_store(&c->stop, 1);
	uint64_t t_last_kill = th_now_ms();
	for (int i = 0; i < 8; i++) {
		int st;
		cr_assert_eq(th_wait(w[i], 10000, &st), 0);
	}
	cr_log_info("chaos: %llu operations, %llu kills", (unsigned long long)c->ops,
	            (unsigned long long)kills);
	cr_expect_geq(c->ops, 1000000);
	cr_expect_eq(c->errors, 0, "%llu errors, the first %s in operation kind %d",
	             (unsigned long long)c->errors, prot_strerror(c->first_error), c->first_error_kind);
	cr_expect(th_pool_until(e->p, "db", in_use, 0, 1000), "leases leaked after the last kill");
	cr_log_info("pool idle %llu ms after the workers stopped",
	            (unsigned long long)(th_now_ms() - t_last_kill));
	struct prot_pool_status ps = th_pool_status(e->p, "db");
	cr_expect_eq(ps.waiting, 0);
	/* breaker: never stuck, and its counters are the calls made (up to the kills in between) */
	struct prot_breaker_status bs;
	cr_assert_eq(prot_breaker_status(e->p, "b", &bs), 0);
	cr_expect_eq(bs.state, PROT_BREAKER_CLOSED, "no stuck breaker");
	cr_expect_geq(bs.successes, c->brk_done);
	cr_expect_leq(bs.successes, c->brk_try);
	cr_expect_eq(bs.failures + bs.rejections, 0);
	struct prot_protection_status ks;
	cr_assert_eq(prot_get_protection_status(e->p, "api", &ks), 0);
	uint64_t decided = ks.rate_allowed + ks.rate_denied;
	cr_expect_geq(decided, c->rate_done, "%llu decisions counted, %llu calls completed",
	              (unsigned long long)decided, (unsigned long long)c->rate_done);
	cr_expect_leq(decided, c->rate_try);
	stop(e);
}
