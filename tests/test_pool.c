/* test_pool.c — the connection pool, with a real protd and real forked processes.
 *
 * Every pool here lives in the segment of a protd started for the test; children inherit the
 * parent's handle through fork() (as pre-fork servers do) unless a test says otherwise. Children
 * report through their exit code and the shared struct env (th_shared), never through cr_assert.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

#define NPROC 8
#define MAXREC 64

struct env {
	pid_t protd;
	const char *seg, *ini;
	prot_t *p;
	/* shared with forked children */
	_Atomic int holding, max_holding; /* leases held right now / at most, by the test's count */
	struct th_conns conns;            /* the connector's counters (th_connector) */
	_Atomic int order[MAXREC], norder; /* grant order of FIFO waiters */
	_Atomic int ready, go;
	_Atomic uint64_t t_granted_ms;
	_Atomic int errors;
};

static const char ini_head[] = "[segment]\nmax_keys = 4\nmax_breakers = 4\nmax_pools = 4\n"
                               "pool_max_slots = 16\npool_max_waiters = 32\nrate_entities = 64\n"
                               "events = 256\n\n[daemon]\ntick = 10ms\nreclaim_interval = 100ms\n\n";

static struct env *start(const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	e->protd = th_serve_head("pool", ini_head, sections, &e->seg, &e->ini, &e->p);
	return e;
}

static void stop(struct env *e)
{
	th_unserve(e->p, e->protd);
}

static int co(struct env *e, const char *pool, int64_t tmo, prot_lease *l, void **conn)
{
	return prot_pool_checkout(e->p, pool, tmo, l, conn);
}

static void co_ok(struct env *e, const char *pool, prot_lease *l, void **conn)
{
	int r = co(e, pool, 1000, l, conn);
	cr_assert_eq(r, 0, "checkout %s: %s", pool, prot_strerror(r));
}

static void ci_ok(struct env *e, prot_lease *l, int how)
{
	int r = prot_pool_checkin(e->p, l, how);
	cr_assert_eq(r, 0, "checkin: %s", prot_strerror(r));
}

/* Lease entries of the pool that are not free: what the segment says is held. */
static int entries_held(prot_t *p, const char *pool)
{
	struct prot_shm_header *h = prot_hdr(p);
	int idx = seg_find(h, REG_POOLS, pool);
	cr_assert_geq(idx, 0);
	int n = 0;
	for (uint32_t i = 0; i < h->pool_max_slots; i++) {
		struct prot_lease_slot *ls = seg_entry(h, REG_LEASES, (uint32_t)idx * h->pool_max_slots + i);
		n += atomic_load(&ls->owner) != 0;
	}
	return n;
}

/* ---- basics --------------------------------------------------------------------------------- */

Test(pool, checkout_checkin_reuses_the_connection)
{
	struct env *e = start("[pool db]\nsize = 2\nmax_overflow = 0\n");
	th_pool_register(e->p, "db", &e->conns);
	prot_lease l;
	void *c1, *c2;
	co_ok(e, "db", &l, &c1);
	struct prot_pool_status st = th_pool_status(e->p, "db");
	cr_assert_eq(st.in_use, 1);
	cr_assert_eq(st.size, 2);
	ci_ok(e, &l, PROT_CHECKIN_OK);
	cr_assert_eq(prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK), -PROT_ESTALE, "double checkin");
	co_ok(e, "db", &l, &c2);
	cr_assert_eq(c1, c2, "the idle connection is reused");
	cr_assert_eq(atomic_load(&e->conns.created), 1);
	ci_ok(e, &l, PROT_CHECKIN_OK);
	st = th_pool_status(e->p, "db");
	cr_assert_eq(st.in_use, 0);
	cr_assert_eq(st.checkouts, 2);
	cr_assert_eq(st.high_water, 1);
	cr_assert_eq(prot_pool_checkout(e->p, "nope", 0, &l, &c1), -PROT_ENOPOOL);
	stop(e);
	cr_assert_eq(atomic_load(&e->conns.destroyed), 1, "prot_close destroys idle connections");
}

static int with_fn(void *conn, void *arg)
{
	(void)arg;
	return th_conn_id(conn) > 0 ? 42 : -1;
}

Test(pool, with_connection)
{
	struct env *e = start("[pool db]\nsize = 1\n");
	th_pool_register(e->p, "db", &e->conns);
	int res = 0;
	cr_assert_eq(prot_pool_with(e->p, "db", -1, with_fn, NULL, &res), 0);
	cr_assert_eq(res, 42);
	cr_assert_eq(th_pool_status(e->p, "db").in_use, 0);
	stop(e);
}

Test(pool, without_connector_the_pool_is_a_counter)
{
	struct env *e = start("[pool sem]\nsize = 1\n");
	prot_lease l, l2;
	void *c = (void *)1;
	co_ok(e, "sem", &l, &c);
	cr_assert_null(c);
	cr_assert_eq(co(e, "sem", 0, &l2, &c), -PROT_EPOOLFULL);
	ci_ok(e, &l, PROT_CHECKIN_OK);
	cr_assert_eq(entries_held(e->p, "sem"), 0);
	stop(e);
}

/* ---- capacity across processes ---------------------------------------------------------------- */

static int hammer(void *arg, int i)
{
	struct env *e = arg;
	for (int k = 0; k < 300; k++) {
		prot_lease l;
		void *c;
		/* a few short timeouts race checkins: they must leave nothing behind */
		int64_t tmo = (k % 7 == i % 7) ? 1 : 5000;
		int r = prot_pool_checkout(e->p, "db", tmo, &l, &c);
		if (r == -PROT_ECHECKOUT_TIMEOUT && tmo == 1)
			continue;
		if (r != 0 || th_conn_id(c) <= 0)
			return 10;
		int now = atomic_fetch_add(&e->holding, 1) + 1;
		int m = atomic_load(&e->max_holding);
		while (now > m && !atomic_compare_exchange_weak(&e->max_holding, &m, now))
			;
		if (k % 5 == 0)
			sched_yield();
		atomic_fetch_sub(&e->holding, 1);
		if (prot_pool_checkin(e->p, &l, k % 50 == 0 ? PROT_CHECKIN_BROKEN : PROT_CHECKIN_OK) != 0)
			return 11;
	}
	return 0;
}

Test(pool, eight_processes_never_exceed_size_plus_overflow, .timeout = 60)
{
	struct env *e = start("[pool db]\nsize = 2\nmax_overflow = 1\ncheckout_timeout = 5s\n");
	th_pool_register(e->p, "db", &e->conns);
	th_fork_n(NPROC, hammer, e, 50000);
	cr_assert_leq(atomic_load(&e->max_holding), 3, "held %d at once", atomic_load(&e->max_holding));
	cr_assert_geq(atomic_load(&e->max_holding), 1);
	struct prot_pool_status st = th_pool_status(e->p, "db");
	cr_assert_leq(st.high_water, 3);
	cr_assert_eq(st.in_use, 0, "in use %u after all returned", st.in_use);
	cr_assert_eq(st.waiting, 0);
	cr_assert_eq(entries_held(e->p, "db"), 0);
	stop(e);
}

static int hammer_tiny_ring(void *arg, int i)
{
	struct env *e = arg;
	for (int k = 0; k < 200; k++) {
		prot_lease l;
		void *c;
		int r = prot_pool_checkout(e->p, "db", (k + i) % 9 == 0 ? 1 : 5000, &l, &c);
		if (r == -PROT_ECAPACITY || r == -PROT_ECHECKOUT_TIMEOUT) {
			sched_yield();
			continue; /* the queue has 2 places; 8 processes compete for them */
		}
		if (r != 0)
			return 12;
		int now = atomic_fetch_add(&e->holding, 1) + 1;
		int m = atomic_load(&e->max_holding);
		while (now > m && !atomic_compare_exchange_weak(&e->max_holding, &m, now))
			;
		atomic_fetch_sub(&e->holding, 1);
		if (prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK) != 0)
			return 13;
	}
	return 0;
}

/* Two waiter cells: tickets wrap the ring every two, so every lap hand-over races. */
Test(pool, tiny_waiter_ring_wraps_without_losing_a_lease, .timeout = 60)
{
	struct env *e = th_shared(sizeof *e);
	e->seg = th_segname("pool");
	e->ini = th_write_file("protd.ini",
	                       "[segment]\nmax_pools = 1\npool_max_slots = 2\npool_max_waiters = 2\n"
	                       "[daemon]\ntick = 10ms\n[pool db]\nsize = 1\nmax_overflow = 1\n");
	e->protd = th_protd_start(e->ini, e->seg, NULL);
	e->p = th_open(e->seg, 2000);
	th_fork_n(NPROC, hammer_tiny_ring, e, 50000);
	cr_assert_leq(atomic_load(&e->max_holding), 2);
	struct prot_pool_status st = th_pool_status(e->p, "db");
	cr_assert_eq(st.in_use, 0);
	cr_assert_eq(st.waiting, 0);
	cr_assert_eq(entries_held(e->p, "db"), 0);
	stop(e);
}

static void *thread_hammer(void *arg)
{
	return (void *)(intptr_t)hammer(arg, 3);
}

static int threads_in_one_process(void *arg, int i)
{
	(void)i;
	pthread_t t[4];
	int bad = 0;
	for (int k = 0; k < 4; k++)
		pthread_create(&t[k], NULL, thread_hammer, arg);
	for (int k = 0; k < 4; k++) {
		void *rv;
		pthread_join(t[k], &rv);
		bad |= (int)(intptr_t)rv;
	}
	return bad;
}

Test(pool, threads_and_processes_share_one_pool, .timeout = 60)
{
	struct env *e = start("[pool db]\nsize = 2\nmax_overflow = 1\ncheckout_timeout = 5s\n");
	th_pool_register(e->p, "db", &e->conns);
	th_fork_n(3, threads_in_one_process, e, 50000);
	cr_assert_leq(atomic_load(&e->max_holding), 3);
	struct prot_pool_status st = th_pool_status(e->p, "db");
	cr_assert_eq(st.in_use, 0);
	cr_assert_eq(entries_held(e->p, "db"), 0);
	stop(e);
}

/* ---- FIFO ------------------------------------------------------------------------------------- */

static int fifo_waiter(void *arg, int i)
{
	struct env *e = arg;
	prot_lease l;
	void *c;
	int r = prot_pool_checkout(e->p, "one", 10000, &l, &c);
	if (r != 0)
		return 20;
	atomic_store(&e->order[atomic_fetch_add(&e->norder, 1)], i);
	th_sleep_ms(5);
	return prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK) == 0 ? 0 : 21;
}

Test(pool, waiters_are_served_in_fifo_order, .timeout = 60)
{
	struct env *e = start("[pool one]\nsize = 1\n");
	prot_lease l;
	void *c;
	co_ok(e, "one", &l, &c);
	pid_t pids[6];
	for (int i = 0; i < 6; i++) {
		pids[i] = th_fork(fifo_waiter, e, i);
		cr_assert(th_pool_until(e->p, "one", waiting, (uint32_t)i + 1, 5000), "waiter %d queued", i);
	}
	ci_ok(e, &l, PROT_CHECKIN_OK);
	for (int i = 0; i < 6; i++) {
		int status;
		cr_assert_eq(th_wait(pids[i], 10000, &status), 0);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter %d: %d", i, status);
	}
	cr_assert_eq(atomic_load(&e->norder), 6);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(atomic_load(&e->order[i]), i, "grant %d went to waiter %d", i,
		             atomic_load(&e->order[i]));
	cr_assert_eq(th_pool_status(e->p, "one").in_use, 0);
	stop(e);
}

/* ---- timeouts and full -------------------------------------------------------------------------- */

Test(pool, timeout_returns_in_time_and_leaves_no_lease)
{
	struct env *e = start("[pool one]\nsize = 1\ncheckout_timeout = 150ms\n");
	th_pool_register(e->p, "one", &e->conns);
	prot_lease l, l2;
	void *c;
	co_ok(e, "one", &l, &c);
	uint64_t t0 = th_now_ms();
	cr_assert_eq(co(e, "one", -1, &l2, &c), -PROT_ECHECKOUT_TIMEOUT);
	uint64_t dt = th_now_ms() - t0;
	cr_assert_geq(dt, 150);
	cr_assert_lt(dt, 150 + 200, "timed out after %llu ms", (unsigned long long)dt);
	struct prot_pool_status st = th_pool_status(e->p, "one");
	cr_assert_eq(st.in_use, 1);
	cr_assert_eq(st.waiting, 0);
	cr_assert_eq(st.timeouts, 1);
	cr_assert_eq(entries_held(e->p, "one"), 1);
	ci_ok(e, &l, PROT_CHECKIN_OK);
	cr_assert_eq(th_pool_status(e->p, "one").in_use, 0, "the checkin was not handed to the gone waiter");
	cr_assert_eq(entries_held(e->p, "one"), 0);
	co_ok(e, "one", &l, &c);
	ci_ok(e, &l, PROT_CHECKIN_OK);
	stop(e);
}

Test(pool, non_blocking_checkout_on_full_pool)
{
	struct env *e = start("[pool one]\nsize = 1\nmax_overflow = 1\n");
	prot_lease a, b, x;
	void *c;
	co_ok(e, "one", &a, &c);
	co_ok(e, "one", &b, &c);
	uint64_t t0 = th_now_ms();
	cr_assert_eq(co(e, "one", 0, &x, &c), -PROT_EPOOLFULL);
	cr_assert_lt(th_now_ms() - t0, 100);
	struct prot_pool_status st = th_pool_status(e->p, "one");
	cr_assert_eq(st.in_use, 2);
	cr_assert_eq(st.overflow_in_use, 1);
	ci_ok(e, &a, PROT_CHECKIN_OK);
	ci_ok(e, &b, PROT_CHECKIN_OK);
	stop(e);
}

/* ---- dead holders --------------------------------------------------------------------------------- */

static int holder(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_lease l;
	void *c;
	if (prot_pool_checkout(e->p, "one", 1000, &l, &c) != 0)
		return 30;
	atomic_store(&e->ready, 1);
	for (;;)
		pause(); /* killed by the test */
}

static int waiter(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_lease l;
	void *c;
	atomic_store(&e->go, 1);
	if (prot_pool_checkout(e->p, "one", 5000, &l, &c) != 0)
		return 31;
	atomic_store(&e->t_granted_ms, th_now_ms());
	return prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK) == 0 ? 0 : 32;
}

/* Is there an event of this type about this pool in the ring? */
static bool has_event(prot_t *p, uint32_t type, const char *pool)
{
	struct prot_shm_header *h = prot_hdr(p);
	uint64_t cur = prot_event_oldest(h);
	struct prot_event ev;
	while (prot_event_read(h, &cur, &ev, NULL) == 1)
		if (ev.type == type && strcmp(ev.name, pool) == 0)
			return true;
	return false;
}

Test(pool, kill9_holder_is_reclaimed_and_a_waiter_gets_it, .timeout = 30)
{
	struct env *e = start("[pool one]\nsize = 1\n");
	pid_t h = th_fork(holder, e, 0);
	cr_assert(th_wait_flag(&e->ready, 1, 5000));
	pid_t w = th_fork(waiter, e, 0);
	cr_assert(th_pool_until(e->p, "one", waiting, 1, 5000), "waiter queued");
	uint64_t t0 = th_now_ms();
	th_kill9(h);
	int status;
	cr_assert_eq(th_wait(w, 5000, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: %d", status);
	uint64_t dt = atomic_load(&e->t_granted_ms) - t0;
	/* reclaim_interval 100 ms, protd ticks every 10 ms: generous slack for a loaded machine */
	cr_assert_lt(dt, 100 + 400, "reclaimed after %llu ms", (unsigned long long)dt);
	struct prot_pool_status st = th_pool_status(e->p, "one");
	cr_assert_eq(st.reclaims, 1);
	cr_assert(has_event(e->p, EV_LEASE_RECLAIMED, "one"));
	cr_assert(has_event(e->p, EV_POOL_EXHAUSTED, "one"), "the waiter found the pool exhausted");
	cr_assert_eq(st.in_use, 0);
	cr_assert_eq(entries_held(e->p, "one"), 0);
	stop(e);
}

static int sleeper_waiter(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_lease l;
	void *c;
	prot_pool_checkout(e->p, "one", 60000, &l, &c);
	return 0;
}

Test(pool, a_dead_waiter_does_not_swallow_the_next_grant, .timeout = 30)
{
	struct env *e = start("[pool one]\nsize = 1\n");
	prot_lease l;
	void *c;
	co_ok(e, "one", &l, &c);
	pid_t dead = th_fork(sleeper_waiter, e, 0);
	cr_assert(th_pool_until(e->p, "one", waiting, 1, 5000));
	pid_t w = th_fork(waiter, e, 0);
	cr_assert(th_pool_until(e->p, "one", waiting, 2, 5000));
	th_kill9(dead);
	th_sleep_ms(300); /* protd cancels the dead waiter's ticket */
	ci_ok(e, &l, PROT_CHECKIN_OK);
	int status;
	cr_assert_eq(th_wait(w, 5000, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "live waiter: %d", status);
	cr_assert_eq(th_pool_status(e->p, "one").in_use, 0);
	cr_assert_eq(entries_held(e->p, "one"), 0);
	stop(e);
}

/* ---- connections ----------------------------------------------------------------------------------- */

Test(pool, broken_connection_is_destroyed_and_not_reused)
{
	struct env *e = start("[pool db]\nsize = 2\n");
	th_pool_register(e->p, "db", &e->conns);
	prot_lease l;
	void *c1, *c2;
	co_ok(e, "db", &l, &c1);
	ci_ok(e, &l, PROT_CHECKIN_BROKEN);
	cr_assert_eq(atomic_load(&e->conns.destroyed), 1);
	cr_assert_eq(atomic_load(&e->conns.destroyed_ids[th_conn_id(c1)]), 1);
	cr_assert_eq(th_pool_status(e->p, "db").in_use, 0, "the slot is free");
	co_ok(e, "db", &l, &c2);
	cr_assert_neq(th_conn_id(c1), th_conn_id(c2), "a new connection, made lazily");
	cr_assert_eq(atomic_load(&e->conns.created), 2);
	ci_ok(e, &l, PROT_CHECKIN_OK);
	stop(e);
}

Test(pool, overflow_closed_at_checkin_with_ttl_0)
{
	struct env *e = start("[pool db]\nsize = 1\nmax_overflow = 1\noverflow_ttl = 0\n");
	th_pool_register(e->p, "db", &e->conns);
	prot_lease a, b;
	void *ca, *cb;
	co_ok(e, "db", &a, &ca);
	co_ok(e, "db", &b, &cb);
	cr_assert_eq(th_pool_status(e->p, "db").overflow_in_use, 1);
	ci_ok(e, &b, PROT_CHECKIN_OK); /* in_use 2 > size 1: an overflow slot, nobody waits */
	cr_assert_eq(atomic_load(&e->conns.destroyed), 1);
	ci_ok(e, &a, PROT_CHECKIN_OK); /* within size: kept */
	cr_assert_eq(atomic_load(&e->conns.destroyed), 1);
	co_ok(e, "db", &a, &ca);
	cr_assert_eq(atomic_load(&e->conns.created), 2, "the kept connection is reused");
	ci_ok(e, &a, PROT_CHECKIN_OK);
	stop(e);
}

Test(pool, overflow_lingers_for_ttl_then_closes)
{
	struct env *e = start("[pool db]\nsize = 1\nmax_overflow = 1\noverflow_ttl = 200ms\n");
	th_pool_register(e->p, "db", &e->conns);
	prot_lease a, b;
	void *ca, *cb;
	co_ok(e, "db", &a, &ca);
	co_ok(e, "db", &b, &cb);
	ci_ok(e, &b, PROT_CHECKIN_OK);
	cr_assert_eq(atomic_load(&e->conns.destroyed), 0, "lingers");
	th_sleep_ms(50);
	th_pool_status(e->p, "db");
	cr_assert_eq(atomic_load(&e->conns.destroyed), 0, "still lingering");
	th_sleep_ms(250);
	th_pool_status(e->p, "db"); /* a later pool call closes it */
	cr_assert_eq(atomic_load(&e->conns.destroyed), 1);
	cr_assert_eq(atomic_load(&e->conns.destroyed_ids[th_conn_id(cb)]), 1);
	ci_ok(e, &a, PROT_CHECKIN_OK);
	cr_assert_eq(atomic_load(&e->conns.destroyed), 1);
	stop(e);
}

Test(pool, connector_create_failure_surfaces_and_frees_the_slot)
{
	struct env *e = start("[pool db]\nsize = 1\n");
	th_pool_register(e->p, "db", &e->conns);
	atomic_store(&e->conns.fail_create, 1);
	prot_lease l;
	void *c;
	cr_assert_eq(co(e, "db", 100, &l, &c), -PROT_ECONNECTOR);
	cr_assert_eq(th_pool_status(e->p, "db").in_use, 0);
	cr_assert_eq(entries_held(e->p, "db"), 0);
	atomic_store(&e->conns.fail_create, 0);
	co_ok(e, "db", &l, &c);
	ci_ok(e, &l, PROT_CHECKIN_OK);
	stop(e);
}

/* ---- fork ------------------------------------------------------------------------------------------ */

struct fork_ctx {
	struct env *e;
	prot_lease parent_lease;
	int parent_conn_idle, parent_conn_busy;
};

static int child_of_holder(void *arg, int i)
{
	struct fork_ctx *f = arg;
	struct env *e = f->e;
	(void)i;
	/* the parent's lease is not ours */
	if (prot_pool_checkin(e->p, &f->parent_lease, PROT_CHECKIN_OK) != -PROT_ESTALE)
		return 40;
	prot_lease l;
	void *c;
	if (prot_pool_checkout(e->p, "db", 1000, &l, &c) != 0)
		return 41;
	/* neither the parent's idle nor its busy connection: a new one */
	if (th_conn_id(c) == f->parent_conn_idle || th_conn_id(c) == f->parent_conn_busy)
		return 42;
	if (prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK) != 0)
		return 43;
	prot_close(e->p); /* destroys the child's connection only, returns nothing of the parent's */
	return 0;
}

Test(pool, forked_child_holds_nothing_of_its_parent)
{
	struct env *e = start("[pool db]\nsize = 3\n");
	th_pool_register(e->p, "db", &e->conns);
	struct fork_ctx *f = th_shared(sizeof *f);
	f->e = e;
	prot_lease idle;
	void *c;
	co_ok(e, "db", &idle, &c);
	f->parent_conn_idle = th_conn_id(c);
	co_ok(e, "db", &f->parent_lease, &c);
	f->parent_conn_busy = th_conn_id(c);
	ci_ok(e, &idle, PROT_CHECKIN_OK); /* now idle in the parent */
	int status;
	pid_t pid = th_fork(child_of_holder, f, 0);
	cr_assert_eq(th_wait(pid, 5000, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", WEXITSTATUS(status));
	cr_assert_eq(atomic_load(&e->conns.destroyed_ids[f->parent_conn_idle]), 0);
	cr_assert_eq(atomic_load(&e->conns.destroyed_ids[f->parent_conn_busy]), 0);
	cr_assert_eq(atomic_load(&e->conns.destroyed), 1, "the child's own connection only");
	struct prot_pool_status st = th_pool_status(e->p, "db");
	cr_assert_eq(st.in_use, 1, "the parent's lease survives the child");
	ci_ok(e, &f->parent_lease, PROT_CHECKIN_OK);
	co_ok(e, "db", &idle, &c);
	cr_assert(th_conn_id(c) == f->parent_conn_idle || th_conn_id(c) == f->parent_conn_busy,
	          "the parent still reuses its own connections");
	ci_ok(e, &idle, PROT_CHECKIN_OK);
	stop(e);
}

/* ---- reload --------------------------------------------------------------------------------------- */

static void reload(struct env *e, uint32_t size)
{
	th_write_file("protd.ini", "%s[pool db]\nsize = %u\n", ini_head, size);
	cr_assert_eq(kill(e->protd, SIGHUP), 0);
	cr_assert(th_pool_until(e->p, "db", size, size, 5000), "reload to size %u seen", size);
}

static int long_waiter(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	prot_lease l;
	void *c;
	if (prot_pool_checkout(e->p, "db", 10000, &l, &c) != 0)
		return 50;
	atomic_store(&e->ready, 1);
	return prot_pool_checkin(e->p, &l, PROT_CHECKIN_OK) == 0 ? 0 : 51;
}

Test(pool, reload_changing_size_keeps_leases_in_use, .timeout = 30)
{
	struct env *e = start("[pool db]\nsize = 2\n");
	prot_lease a, b, x;
	void *c;
	co_ok(e, "db", &a, &c);
	co_ok(e, "db", &b, &c);
	reload(e, 1);
	struct prot_pool_status st = th_pool_status(e->p, "db");
	cr_assert_eq(st.in_use, 2, "a shrink drops no lease");
	cr_assert_eq(co(e, "db", 0, &x, &c), -PROT_EPOOLFULL);
	ci_ok(e, &a, PROT_CHECKIN_OK);
	cr_assert_eq(co(e, "db", 0, &x, &c), -PROT_EPOOLFULL, "still at the new size");
	ci_ok(e, &b, PROT_CHECKIN_OK);
	co_ok(e, "db", &a, &c);

	/* grow while someone waits: the waiter is served without a checkin */
	pid_t w = th_fork(long_waiter, e, 0);
	cr_assert(th_pool_until(e->p, "db", waiting, 1, 5000), "the waiter is queued");
	reload(e, 2);
	cr_assert(th_wait_flag(&e->ready, 1, 5000), "the waiter got the new slot");
	int status;
	cr_assert_eq(th_wait(w, 5000, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: %d", status);
	ci_ok(e, &a, PROT_CHECKIN_OK);
	cr_assert_eq(th_pool_status(e->p, "db").in_use, 0);
	stop(e);
}

/* ---- protctl ---------------------------------------------------------------------------------------- */

Test(pool, protctl_pool_show_and_list)
{
	struct env *e = start("[pool db]\nsize = 2\nmax_overflow = 1\n[pool other]\nsize = 1\n");
	prot_lease a;
	void *c;
	co_ok(e, "db", &a, &c);
	struct th_out *o = th_shared(sizeof *o);
	cr_assert_eq(th_protctl(o, e->seg, "pool", "list", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "db") && strstr(o->out, "other"), "%s", o->out);
	cr_assert_eq(th_protctl(o, e->seg, "pool", "show", "db", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "in use"), "%s", o->out);
	cr_assert_eq(th_protctl(o, e->seg, "--json", "pool", "show", "db", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "\"in_use\":1") || strstr(o->out, "\"in_use\": 1"), "%s", o->out);
	cr_assert(strstr(o->out, "\"waiting\""), "%s", o->out);
	cr_assert_eq(th_protctl(o, e->seg, "pool", "show", "nope", NULL), 1);
	ci_ok(e, &a, PROT_CHECKIN_OK);
	stop(e);
}
