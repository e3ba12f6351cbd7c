/* bench_reclaim.c — what a death costs: the reclaim latency row (a holder killed with kill -9, the
 * time until a process waiting on the pool gets the lease; p50, p99, max) and the long chaos soak
 * (`protbench --chaos SECONDS`: 8 workers doing rate, breaker, pool and execute calls while random
 * workers are killed with kill -9 and replaced; then leaked leases, stuck breakers and counters).
 *
 * Both run against the bench's own protd (bench_protd.c: pool bench_one of size 1, pool bench of
 * size 4, reclaim_interval 100 ms, breaker bench, keys bench_fw and bench_exec). Every process is
 * ended by pid; every wait is bounded.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	nanosleep(&ts, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* ---- reclaim latency after kill -9 ---------------------------------------------------------- */
struct holder_flag {
	_Atomic int ready;
};

/* A child that takes the only lease of bench_one and waits to be killed. */
static void holder_main(struct bench *b, struct holder_flag *f)
{
	prot_lease l;
	if (prot_pool_checkout(b->prot, "bench_one", 2000, &l, NULL) != 0)
		_exit(1);
	atomic_store(&f->ready, 1);
	for (int i = 0; i < 10000; i++) /* bounded: 10 s */
		sleep_ns(1000000);
	_exit(0);
}

/* One sample: ns from SIGKILL of the holder to our blocked checkout returning with its lease. */
static int reclaim_once(struct bench *b, struct holder_flag *f, uint64_t *ns)
{
	atomic_store(&f->ready, 0);
	fflush(NULL);
	pid_t c = fork();
	if (c < 0)
		return -errno;
	if (c == 0) {
		bench_pin_child(BENCH_PIN_FREE);
		holder_main(b, f);
	}
	bench_track_pid(c);
	uint64_t end = bench_now_ns() + 5000000000ull;
	while (!atomic_load(&f->ready) && bench_now_ns() < end)
		sleep_ns(100000);
	if (!atomic_load(&f->ready)) {
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
		return -ETIMEDOUT;
	}
	prot_lease l;
	uint64_t t0 = bench_now_ns();
	kill(c, SIGKILL);
	int r = prot_pool_checkout(b->prot, "bench_one", 5000, &l, NULL);
	*ns = bench_now_ns() - t0;
	waitpid(c, NULL, 0);
	if (r == 0)
		r = prot_pool_checkin(b->prot, &l, PROT_CHECKIN_OK);
	return r;
}

void bench_reclaim_rows(struct bench *b)
{
	int n = strcmp(b->mode, "smoke") == 0 ? 3 : strcmp(b->mode, "quick") == 0 ? 20 : 50;
	struct bench_stat *s = &b->res[ROW_RECLAIM_KILL9][0];
	struct holder_flag *f = mmap(NULL, sizeof *f, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *v = calloc((size_t)n, sizeof *v);
	if (f == MAP_FAILED || !v) {
		bench_skip(b, ROW_RECLAIM_KILL9, true, "out of memory");
		free(v);
		return;
	}
	for (int i = 0; i < n; i++) {
		int r = reclaim_once(b, f, &v[i]);
		if (r < 0) {
			bench_skip(b, ROW_RECLAIM_KILL9, true, "sample %d: %s", i, bench_strerror(r));
			goto out;
		}
	}
	qsort(v, (size_t)n, sizeof *v, cmp_u64);
	double med = (double)v[n / 2];
	bench_stat_set(s, &med, 1, 1);
	s->p50 = (double)v[n / 2];
	s->p99 = (double)v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
	s->min = (double)v[0];
	s->max = (double)v[n - 1];
	s->ops_s = 0;
	s->samples = (uint64_t)n;
	snprintf(s->note, sizeof s->note, "reclaim_interval 100 ms, tick 10 ms");
out:
	free(v);
	munmap(f, sizeof *f);
}

/* ---- the chaos soak --------------------------------------------------------------------------- */
#define CHAOS_WORKERS 8

struct chaos {
	_Atomic uint64_t ops, errors, kills;
	_Atomic uint64_t rate_try, rate_done, brk_try, brk_done; /* brk: breaker bench, also under bench_exec */
	_Atomic uint64_t brk_cancelled; /* executes whose pool checkout timed out: no breaker outcome */
	_Atomic int stop, first_error;
};

static int ok_fn(void *arg)
{
	(void)arg;
	return 0;
}
static int exec_fn(const struct prot_call *c)
{
	(void)c;
	return 0;
}

static int chaos_step(prot_t *p, struct chaos *c, uint64_t k)
{
	char ent[24];
	snprintf(ent, sizeof ent, "c%u", (unsigned)(k % 64));
	switch (k % 4) {
	case 0: {
		atomic_fetch_add_explicit(&c->rate_try, 1, memory_order_relaxed);
		int r = prot_rate_check_key(p, "bench_fw", ent, 1, NULL);
		atomic_fetch_add_explicit(&c->rate_done, 1, memory_order_relaxed);
		return r < 0 && r != -PROT_ERATELIMITED ? r : 0;
	}
	case 1: {
		atomic_fetch_add_explicit(&c->brk_try, 1, memory_order_relaxed);
		int r = prot_breaker_execute(p, "bench", ok_fn, NULL, NULL);
		atomic_fetch_add_explicit(&c->brk_done, 1, memory_order_relaxed);
		return r;
	}
	case 2: {
		prot_lease l;
		int r = prot_pool_checkout(p, "bench", 50, &l, NULL);
		if (r == 0)
			return prot_pool_checkin(p, &l, PROT_CHECKIN_OK);
		return r == -PROT_ECHECKOUT_TIMEOUT ? 0 : r;
	}
	default: {
		struct prot_call_opts o = { .entity = ent, .timeout_ms = 50 };
		atomic_fetch_add_explicit(&c->brk_try, 1, memory_order_relaxed);
		int r = prot_execute(p, "bench_exec", &o, exec_fn, NULL, NULL);
		if (r == -PROT_ECHECKOUT_TIMEOUT)
			atomic_fetch_add_explicit(&c->brk_cancelled, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->brk_done, 1, memory_order_relaxed);
		return r == -PROT_ECHECKOUT_TIMEOUT || r == -PROT_ETIMEOUT || r == -PROT_ERATELIMITED ? 0 : r;
	}
	}
}

static void chaos_worker(prot_t *p, struct chaos *c)
{
	for (uint64_t k = (uint64_t)getpid(); !atomic_load(&c->stop); k++) {
		int r = chaos_step(p, c, k);
		if (r < 0 && atomic_fetch_add(&c->errors, 1) == 0)
			atomic_store(&c->first_error, r);
		atomic_fetch_add_explicit(&c->ops, 1, memory_order_relaxed);
	}
	_exit(0);
}

static pid_t chaos_spawn(struct bench *b, struct chaos *c)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		bench_pin_child(BENCH_PIN_FREE);
		chaos_worker(b->prot, c); /* the inherited handle: the child claims its own identity */
	}
	if (pid > 0)
		bench_track_pid(pid);
	return pid;
}

static bool pool_idle(struct bench *b, uint64_t within_ns, uint64_t *took)
{
	uint64_t t0 = bench_now_ns();
	struct prot_pool_status st;
	while (bench_now_ns() - t0 < within_ns) {
		if (prot_pool_status(b->prot, "bench", &st) == 0 && st.in_use == 0 && st.waiting == 0) {
			*took = bench_now_ns() - t0;
			return true;
		}
		sleep_ns(1000000);
	}
	return false;
}

int bench_chaos(struct bench *b, int seconds)
{
	struct chaos *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED)
		return 1;
	struct prot_breaker_status b0;
	struct prot_protection_status k0;
	if (prot_breaker_status(b->prot, "bench", &b0) < 0 ||
	    prot_get_protection_status(b->prot, "bench_fw", &k0) < 0)
		return 1;
	pid_t w[CHAOS_WORKERS];
	for (int i = 0; i < CHAOS_WORKERS; i++)
		w[i] = chaos_spawn(b, c);
	uint64_t end = bench_now_ns() + (uint64_t)seconds * 1000000000u;
	srand((unsigned)getpid());
	while (bench_now_ns() < end) {
		sleep_ns((uint64_t)(2 + rand() % 20) * 1000000u);
		int k = rand() % CHAOS_WORKERS;
		kill(w[k], SIGKILL);
		waitpid(w[k], NULL, 0);
		atomic_fetch_add(&c->kills, 1);
		w[k] = chaos_spawn(b, c);
	}
	atomic_store(&c->stop, 1);
	for (int i = 0; i < CHAOS_WORKERS; i++)
		waitpid(w[i], NULL, 0);
	uint64_t idle_ns = 0;
	bool idle = pool_idle(b, 1000000000u, &idle_ns);
	struct prot_breaker_status b1;
	struct prot_protection_status k1;
	prot_breaker_status(b->prot, "bench", &b1);
	prot_get_protection_status(b->prot, "bench_fw", &k1);
	uint64_t decided = k1.rate_allowed + k1.rate_denied - k0.rate_allowed - k0.rate_denied;
	/* every breaker call made was counted once: a success, or a failure (an execute whose 50 ms
	 * overran on a loaded machine), or a rejection; a pool timeout of an execute counts nothing */
	uint64_t brk = b1.calls - b0.calls;
	bool rate_ok = decided >= c->rate_done && decided <= c->rate_try;
	uint64_t lo = c->brk_done - c->brk_cancelled, hi = c->brk_try - c->brk_cancelled;
	bool brk_ok = brk >= lo && brk <= hi && b1.state != PROT_BREAKER_HALF_OPEN;
	printf("chaos: %d s, %d workers, %llu operations, %llu kill -9\n", seconds, CHAOS_WORKERS,
	       (unsigned long long)c->ops, (unsigned long long)c->kills);
	printf("errors                 %llu%s%s\n", (unsigned long long)c->errors, c->errors ? ", the first: " : "",
	       c->errors ? prot_strerror(c->first_error) : "");
	printf("pool idle after stop   %s (%.1f ms)\n", idle ? "yes" : "NO: leases leaked", idle_ns / 1e6);
	printf("breaker                %s, %llu outcomes for %llu..%llu calls: %s\n",
	       b1.state == PROT_BREAKER_CLOSED ? "closed" : "NOT closed", (unsigned long long)brk,
	       (unsigned long long)lo, (unsigned long long)hi, brk_ok ? "exact" : "WRONG");
	printf("rate decisions         %llu for %llu..%llu calls: %s\n", (unsigned long long)decided,
	       (unsigned long long)c->rate_done, (unsigned long long)c->rate_try, rate_ok ? "exact" : "WRONG");
	bool ok = c->errors == 0 && idle && rate_ok && brk_ok;
	munmap(c, sizeof *c);
	return ok ? 0 : 1;
}
