/* bench_proc.c — how protbench measures: timed batches in one process, and teams of forked
 * processes that start together and run for a fixed time (aggregate throughput, oversubscription
 * included). Every wait is bounded; a worker that hangs is killed by pid.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define WAIT_MS 10000 /* bound on every start-up and shut-down wait of a team */

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_now_coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *bench_strerror(int err)
{
	return err == BENCH_EDENIED ? "unexpected decision (admitted/denied)" : prot_strerror(err);
}

void *bench_rstate_new(void *arg, int worker)
{
	struct bench_rstate *s = malloc(sizeof *s);
	if (!s)
		return NULL;
	s->arg = arg;
	s->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(worker + 1);
	s->worker = worker;
	return s;
}

void bench_rstate_free(void *st) { free(st); }

void *bench_arg_setup(void *arg, int worker)
{
	(void)worker;
	return arg;
}

void bench_arg_teardown(void *st) { (void)st; }

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void bench_stat_set(struct bench_stat *s, double *ns, int reps, int procs)
{
	qsort(ns, (size_t)reps, sizeof ns[0], cmp_double);
	s->state = 1;
	s->procs = procs;
	s->min = ns[0];
	s->max = ns[reps - 1];
	s->med = reps % 2 ? ns[reps / 2] : (ns[reps / 2 - 1] + ns[reps / 2]) / 2;
	s->ops_s = s->med > 0 ? 1e9 / s->med : 0;
}

int bench_single(struct bench *b, int row, const struct bench_work *w, uint64_t n, int reps)
{
	double ns[64];
	if (reps > 64)
		reps = 64;
	void *st = w->setup(w->arg, 0);
	if (!st) {
		bench_skip(b, row, true, "setup failed");
		return -1;
	}
	int r = w->batch(st, n / 4 + 1); /* warm-up: caches, branch predictors, first-use inserts */
	for (int i = 0; i < reps && r == 0; i++) {
		uint64_t t0 = bench_now_ns();
		r = w->batch(st, n);
		ns[i] = (double)(bench_now_ns() - t0) / (double)n;
	}
	w->teardown(st);
	if (r < 0) {
		bench_skip(b, row, true, "error: %s", bench_strerror(r));
		return r;
	}
	bench_stat_set(&b->res[row][0], ns, reps, 1);
	return 0;
}

int bench_reap(pid_t pid, int timeout_ms, bool term_first)
{
	if (term_first)
		kill(pid, SIGTERM);
	uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int st = 0;
	bool killed = false;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			break;
		if (bench_now_ns() >= end) {
			if (killed)
				break; /* unkillable: nothing more to do */
			kill(pid, SIGKILL);
			killed = true;
			end = bench_now_ns() + 2000000000u;
		}
		usleep(500);
	}
	bench_untrack_pid(pid);
	return st;
}

/* The team's shared control block. go and stop are written once per repetition by the parent
 * (release) and polled by the workers (acquire); the counters are written by each worker before
 * it exits and read by the parent after waitpid(), which orders them. */
struct team_ctl {
	_Atomic int ready; /* workers past setup; pairs with the parent's wait for all */
	_Atomic int go;
	_Atomic int stop;
	_Atomic uint64_t ops[BENCH_MAX_WORKERS];
	_Atomic int err[BENCH_MAX_WORKERS];
};

static int wait_flag(_Atomic int *flag, int want, int timeout_ms)
{
	uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (unsigned i = 0; atomic_load_explicit(flag, memory_order_acquire) < want; i++) {
		if ((i & 255) == 0 && bench_now_ns() > end)
			return -ETIMEDOUT;
		sched_yield(); /* oversubscribed: let the others reach the barrier */
	}
	return 0;
}

static int team_worker(struct team_ctl *c, const struct bench_work *w, int idx)
{
	uint64_t chunk = w->chunk ? w->chunk : 64, ops = 0;
	void *st = w->setup(w->arg, idx);
	int r = st ? w->batch(st, chunk) : -EIO; /* warm-up */
	atomic_fetch_add_explicit(&c->ready, 1, memory_order_release);
	if (r == 0 && wait_flag(&c->go, 1, WAIT_MS) < 0)
		r = -ETIMEDOUT;
	while (r == 0 && !atomic_load_explicit(&c->stop, memory_order_acquire)) {
		r = w->batch(st, chunk);
		ops += chunk;
	}
	atomic_store_explicit(&c->ops[idx], ops, memory_order_relaxed);
	atomic_store_explicit(&c->err[idx], r, memory_order_relaxed);
	if (st)
		w->teardown(st);
	return r == 0 ? 0 : 1;
}

int bench_team(int procs, int duration_ms, const struct bench_work *w, uint64_t *ops, uint64_t *ns)
{
	if (procs < 1 || procs > BENCH_MAX_WORKERS)
		return -EINVAL;
	struct team_ctl *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED)
		return -errno;
	pid_t pids[BENCH_MAX_WORKERS];
	int n = 0, r = 0;
	fflush(NULL);
	for (; n < procs; n++) {
		pids[n] = fork();
		if (pids[n] < 0) {
			r = -errno;
			break;
		}
		if (pids[n] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the bench */
			bench_pin_child(n);
			_exit(team_worker(c, w, n));
		}
		bench_track_pid(pids[n]);
	}
	uint64_t t0 = 0, t1 = 0;
	if (r == 0 && wait_flag(&c->ready, procs, WAIT_MS) < 0)
		r = -ETIMEDOUT;
	if (r == 0) {
		t0 = bench_now_ns();
		atomic_store_explicit(&c->go, 1, memory_order_release);
		usleep((useconds_t)duration_ms * 1000u);
		atomic_store_explicit(&c->stop, 1, memory_order_release);
		t1 = bench_now_ns();
	} else {
		atomic_store_explicit(&c->stop, 1, memory_order_release);
		atomic_store_explicit(&c->go, 1, memory_order_release);
	}
	uint64_t total = 0, end = bench_now_ns() + (uint64_t)WAIT_MS * 1000000u;
	for (int i = 0; i < n; i++) {
		uint64_t now = bench_now_ns();
		int left = now < end ? (int)((end - now) / 1000000u) : 0;
		int st = bench_reap(pids[i], left > 100 ? left : 100, false); /* one bound for all */
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			int e = atomic_load_explicit(&c->err[i], memory_order_relaxed);
			if (r == 0)
				r = e < 0 ? e : -ECHILD;
		}
		total += atomic_load_explicit(&c->ops[i], memory_order_relaxed);
	}
	munmap(c, sizeof *c);
	if (r == 0) {
		*ops = total;
		*ns = t1 - t0;
	}
	return r;
}

int bench_scale(struct bench *b, int row, const struct bench_work *w)
{
	for (int pi = 0; pi < b->nprocs; pi++) {
		double ns[64];
		int reps = b->sz.scale_reps > 64 ? 64 : b->sz.scale_reps, r = 0;
		for (int i = 0; i < reps && r == 0; i++) {
			uint64_t ops = 0, wall = 0;
			r = bench_team(b->procs[pi], b->sz.scale_ms, w, &ops, &wall);
			ns[i] = ops ? (double)wall / (double)ops : 0;
		}
		struct bench_stat *s = &b->res[row][pi];
		if (r < 0) {
			s->state = -1;
			s->procs = b->procs[pi];
			snprintf(s->note, sizeof s->note, "failed: %s", bench_strerror(r));
			b->failures++;
			continue;
		}
		bench_stat_set(s, ns, reps, b->procs[pi]);
	}
	return 0;
}
