/* bench_prot.c — the prot rows, in their order: the rate rows (bench_rate.c), breaker execute
 * closed and open against a direct call, pool checkout + checkin uncontended and the hand-off
 * latency under contention, the reclaim row (bench_reclaim.c), the full prot_execute, and the cost
 * of a telemetry site nobody listens to. Everything goes through the public API on the bench's own
 * protd. Forked workers keep using the parent's handle, as include/prot.h allows.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"

/* ---- breaker --------------------------------------------------------------------------------- */
static int noop(void *arg)
{
	(void)arg;
	return 0;
}
/* volatile: the direct call stays an indirect call, as the breaker's call of fn is */
static int (*volatile noop_ptr)(void *) = noop;

struct brk_arg {
	prot_t *p;
	const char *name; /* NULL: call the no-op directly */
	int expect;
};

static int brk_batch(void *st, uint64_t n)
{
	const struct brk_arg *a = st;
	for (uint64_t i = 0; i < n; i++) {
		int res = 0, r = a->name ? prot_breaker_execute(a->p, a->name, noop_ptr, NULL, &res) : noop_ptr(NULL);
		if (r != a->expect)
			return r < 0 ? r : BENCH_EDENIED;
	}
	return 0;
}

static void breaker_rows(struct bench *b)
{
	struct brk_arg a = {b->prot, NULL, 0};
	struct bench_work w = {bench_arg_setup, brk_batch, bench_arg_teardown, &a, 0};
	bench_single(b, ROW_BRK_DIRECT, &w, b->sz.hot_ops, b->sz.reps);
	a.name = "bench";
	bench_single(b, ROW_BRK_CLOSED, &w, b->sz.hot_ops, b->sz.reps);
	const struct bench_stat *d = &b->res[ROW_BRK_DIRECT][0], *c = &b->res[ROW_BRK_CLOSED][0];
	if (d->state == 1 && c->state == 1) {
		struct bench_stat *o = &b->res[ROW_BRK_OVERHEAD][0];
		*o = *c;
		o->med = c->med - d->med;
		o->min = c->min - d->min;
		o->max = c->max - d->max;
		o->ops_s = 0;
		snprintf(o->note, sizeof o->note, "difference of the two rows above");
	} else {
		bench_skip(b, ROW_BRK_OVERHEAD, false, "needs both rows above");
	}
	int r = prot_breaker_blow(b->prot, "bench_open");
	if (r < 0) {
		bench_skip(b, ROW_BRK_OPEN, true, "prot_breaker_blow: %s", prot_strerror(r));
		return;
	}
	a.name = "bench_open";
	a.expect = -PROT_EBLOWN;
	bench_single(b, ROW_BRK_OPEN, &w, b->sz.hot_ops, b->sz.reps);
}

/* ---- pool ------------------------------------------------------------------------------------ */
static int conn_create(void *ctx, void **conn)
{
	*conn = ctx;
	return 0;
}
static void conn_destroy(void *ctx, void *conn)
{
	(void)ctx;
	(void)conn;
}

/* Register the dummy connector in this process (a forked worker starts with an empty pool). */
static int pool_register(prot_t *p, const char *pool)
{
	static int dummy;
	const struct prot_connector c = {conn_create, conn_destroy, NULL, &dummy};
	int r = prot_pool_register(p, pool, &c);
	return r == -PROT_EEXIST ? 0 : r;
}

struct pool_arg {
	prot_t *p;
	const char *pool;
	struct handoff *ho; /* hand-off rows only */
};

static void *pool_setup(void *arg, int worker)
{
	(void)worker;
	const struct pool_arg *a = arg;
	return pool_register(a->p, a->pool) == 0 ? arg : NULL;
}

static int pool_batch(void *st, uint64_t n)
{
	const struct pool_arg *a = st;
	for (uint64_t i = 0; i < n; i++) {
		prot_lease lease;
		void *conn;
		int r = prot_pool_checkout(a->p, a->pool, -1, &lease, &conn);
		if (r == 0)
			r = prot_pool_checkin(a->p, &lease, PROT_CHECKIN_OK);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Hand-off: the holder stamps the time and its worker index just before checkin; the next holder,
 * if it is another worker that was already waiting when that checkin happened, reads the stamp
 * right after its checkout returned: that interval is the hand-off (checkin -> waiter running).
 * A checkout that began after the checkin (the worker had been descheduled) is no hand-off. The
 * pool's checkin (release) and checkout (acquire) order the stamp; the atomics keep stores whole. */
#define HO_CAP 65536
struct handoff {
	_Atomic uint64_t stamp_ns;
	_Atomic int holder;
	_Atomic uint32_t n[BENCH_MAX_WORKERS];
	uint32_t samples[][HO_CAP]; /* ns, per worker */
};

struct ho_state {
	const struct pool_arg *a;
	int me;
};

static void *ho_setup(void *arg, int worker)
{
	struct ho_state *s = malloc(sizeof *s);
	if (!s || pool_setup(arg, worker) == NULL) {
		free(s);
		return NULL;
	}
	s->a = arg;
	s->me = worker + 1;
	return s;
}

static void ho_teardown(void *st) { free(st); }

static int ho_batch(void *st, uint64_t n)
{
	struct ho_state *s = st;
	struct handoff *h = s->a->ho;
	for (uint64_t i = 0; i < n; i++) {
		prot_lease lease;
		void *conn;
		uint64_t asked = bench_now_ns();
		int r = prot_pool_checkout(s->a->p, s->a->pool, 5000, &lease, &conn);
		if (r < 0)
			return r;
		uint64_t now = bench_now_ns(), then = atomic_load_explicit(&h->stamp_ns, memory_order_relaxed);
		int prev = atomic_load_explicit(&h->holder, memory_order_relaxed);
		uint32_t k = atomic_load_explicit(&h->n[s->me - 1], memory_order_relaxed);
		if (prev && prev != s->me && then > asked && k < HO_CAP) {
			uint64_t d = now - then;
			h->samples[s->me - 1][k] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
			atomic_store_explicit(&h->n[s->me - 1], k + 1, memory_order_relaxed);
		}
		atomic_store_explicit(&h->holder, s->me, memory_order_relaxed);
		atomic_store_explicit(&h->stamp_ns, bench_now_ns(), memory_order_relaxed);
		r = prot_pool_checkin(s->a->p, &lease, PROT_CHECKIN_OK);
		if (r < 0)
			return r;
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* p50/p99 over every worker's samples. */
static void handoff_stats(struct bench_stat *s, struct handoff *h, int procs)
{
	uint64_t total = 0;
	for (int i = 0; i < procs; i++)
		total += atomic_load_explicit(&h->n[i], memory_order_relaxed);
	uint32_t *all = malloc((total ? total : 1) * sizeof *all);
	if (!all)
		return;
	uint64_t k = 0;
	for (int i = 0; i < procs; i++)
		for (uint32_t j = 0; j < atomic_load_explicit(&h->n[i], memory_order_relaxed); j++)
			all[k++] = h->samples[i][j];
	qsort(all, total, sizeof *all, cmp_u32);
	s->samples = total;
	s->p50 = total ? all[total / 2] : 0;
	s->p99 = total ? all[total * 99 / 100] : 0;
	free(all);
}

static void handoff_rows(struct bench *b)
{
	static const int procs[] = {2, 8};
	for (int i = 0; i < 2; i++) {
		size_t bytes = sizeof(struct handoff) + (size_t)procs[i] * HO_CAP * sizeof(uint32_t);
		struct handoff *h = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		struct bench_stat *s = &b->res[ROW_HANDOFF][i];
		if (h == MAP_FAILED) {
			bench_skip(b, ROW_HANDOFF, true, "mmap: %s", strerror(errno));
			return;
		}
		struct pool_arg a = {b->prot, "bench_one", h};
		struct bench_work w = {ho_setup, ho_batch, ho_teardown, &a, 1};
		uint64_t ops = 0, ns = 0;
		int r = bench_team(procs[i], b->sz.handoff_ms, &w, &ops, &ns);
		s->procs = procs[i];
		if (r < 0) {
			s->state = -1;
			snprintf(s->note, sizeof s->note, "failed: %s", bench_strerror(r));
			b->failures++;
		} else {
			double per = ops ? (double)ns / (double)ops : 0;
			bench_stat_set(s, &per, 1, procs[i]);
			handoff_stats(s, h, procs[i]);
		}
		munmap(h, bytes);
	}
}

static void pool_rows(struct bench *b)
{
	struct pool_arg a = {b->prot, "bench", NULL};
	struct bench_work w = {pool_setup, pool_batch, bench_arg_teardown, &a, 0};
	bench_single(b, ROW_POOL_UNCONT, &w, b->sz.hot_ops, b->sz.reps);
	handoff_rows(b);
}

/* ---- the facade ------------------------------------------------------------------------------ */
static int exec_noop(const struct prot_call *call)
{
	(void)call;
	return 0;
}

static int exec_batch(void *st, uint64_t n)
{
	prot_t *p = st;
	const struct prot_call_opts opts = {.entity = "hot", .timeout_ms = -1};
	for (uint64_t i = 0; i < n; i++) {
		int r = prot_execute(p, "bench_exec", &opts, exec_noop, NULL, NULL);
		if (r != 0)
			return r < 0 ? r : BENCH_EDENIED;
	}
	return 0;
}

static void *exec_setup(void *arg, int worker)
{
	(void)worker;
	return pool_register(arg, "bench") == 0 ? arg : NULL;
}

static void exec_row(struct bench *b)
{
	struct bench_work w = {exec_setup, exec_batch, bench_arg_teardown, b->prot, 0};
	bench_single(b, ROW_EXEC_FULL, &w, b->sz.hot_ops, b->sz.reps);
}

/* ---- telemetry with no handler attached -------------------------------------------------------- */
/* What every event site of the library costs when nobody listens: prot_tel_on(), one relaxed load of
 * the handle's mask and a branch. The compiler barrier keeps the load in the loop, as it is in the
 * library, where it sits between other work. A full prot_execute passes 6 sites (execute start and
 * stop, rate decision, breaker record, pool checkout and checkin). */
#define TEL_SITES_PER_EXECUTE 6

static int tel_batch(void *st, uint64_t n)
{
	prot_t *p = st;
	unsigned heard = 0;
	for (uint64_t i = 0; i < n; i++) {
		heard += prot_tel_on(p, PROT_TEL_RATE_ALLOWED);
		__asm__ volatile("" ::: "memory");
	}
	return heard ? BENCH_EDENIED : 0; /* a handler is attached: not the row we measure */
}

static void tel_rows(struct bench *b)
{
	struct bench_work w = {bench_arg_setup, tel_batch, bench_arg_teardown, b->prot, 0};
	bench_single(b, ROW_TEL_CHECK, &w, b->sz.hot_ops, b->sz.reps);
	const struct bench_stat *c = &b->res[ROW_TEL_CHECK][0];
	if (c->state != 1) {
		bench_skip(b, ROW_TEL_EXEC, false, "needs the row above");
		return;
	}
	struct bench_stat *e = &b->res[ROW_TEL_EXEC][0];
	*e = *c;
	e->med = c->med * TEL_SITES_PER_EXECUTE;
	e->min = c->min * TEL_SITES_PER_EXECUTE;
	e->max = c->max * TEL_SITES_PER_EXECUTE;
	e->ops_s = 0;
	snprintf(e->note, sizeof e->note, "%d x the row above", TEL_SITES_PER_EXECUTE);
}

void bench_prot_rows(struct bench *b)
{
	bench_rate_rows(b);
	breaker_rows(b);
	pool_rows(b);
	bench_reclaim_rows(b);
	exec_row(b);
	tel_rows(b);
}
