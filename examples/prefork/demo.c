/* demo.c — prot in C as a user writes it: a pre-fork "server" whose workers share protd's protections
 * (the main job, tools/demo.sh, is the Python one in examples/redis_app/; this is its C counterpart).
 *
 * The master forks N workers; each attaches with libprot and, for a couple of seconds, serves
 * requests for a few users against a simulated dependency that fails for a while in the middle of
 * the run. Every request goes through prot_execute() on the key "api" of examples/protd.ini: rate
 * limiter per user, then the breaker, then the pool, then the call. The workers print what they
 * saw; the master prints the totals.
 *
 * Usage: prot-demo [workers] [milliseconds]   (segment from $PROT_SEGMENT)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "prot.h"

struct tally {
	long allowed, rate_denied, ok, failed, blown, pool_timeouts, errors;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The dependency: healthy, then failing from 30% to 60% of the run, then healthy again. */
struct dep {
	uint64_t start, span;
};

static int dep_call(const struct prot_call *call)
{
	const struct dep *d = call->arg;
	uint64_t t = now_ms() - d->start;
	sleep_ms(2); /* the work, on call->conn, bounded by call->deadline_ns */
	return (t > d->span * 3 / 10 && t < d->span * 6 / 10) ? -EIO : 0;
}

/* A "connection" is a heap object here; a real program would open a socket. */
static int conn_create(void *ctx, void **conn)
{
	(void)ctx;
	*conn = malloc(16);
	return *conn ? 0 : -ENOMEM;
}
static void conn_destroy(void *ctx, void *conn)
{
	(void)ctx;
	free(conn);
}

/* One request: everything the key "api" configures, in order, through the facade. */
static int serve(prot_t *p, const struct dep *d, const char *user, struct tally *t)
{
	struct prot_call_opts o = {.entity = user, .timeout_ms = -1};
	struct prot_detail det;
	int r = prot_execute(p, "api", &o, dep_call, (void *)d, &det);
	switch (r) {
	case 0: t->allowed++, t->ok++; return 0;
	case -PROT_ERATELIMITED: t->rate_denied++; return 0;
	case -PROT_EBLOWN: t->allowed++, t->blown++; return 0;
	case -PROT_ECHECKOUT_TIMEOUT: t->allowed++, t->pool_timeouts++; return 0;
	case -PROT_EFAILED: case -PROT_ETIMEOUT: t->allowed++, t->failed++; return 0;
	default: return r;
	}
}

static int worker(int id, const struct dep *d, struct tally *t)
{
	prot_t *p;
	int r = prot_open(NULL, 0, &p);
	if (r < 0) {
		fprintf(stderr, "worker %d: prot_open: %s\n", id, prot_strerror(r));
		return 1;
	}
	struct prot_connector c = {.create = conn_create, .destroy = conn_destroy};
	if ((r = prot_pool_register(p, "api", &c)) < 0) {
		fprintf(stderr, "worker %d: pool register: %s\n", id, prot_strerror(r));
		prot_close(p);
		return 1;
	}
	char user[32];
	for (unsigned n = 0; now_ms() - d->start < d->span; n++) {
		snprintf(user, sizeof user, "user:%u", (n + (unsigned)id) % 3);
		if ((r = serve(p, d, user, t)) < 0) {
			t->errors++;
			fprintf(stderr, "worker %d: %s\n", id, prot_strerror(r));
		}
		sleep_ms(5);
	}
	printf("worker %d (pid %d): allowed %ld, rate-limited %ld, ok %ld, failed %ld, breaker-rejected %ld, "
	       "pool timeouts %ld\n",
	       id, (int)getpid(), t->allowed, t->rate_denied, t->ok, t->failed, t->blown, t->pool_timeouts);
	fflush(stdout); /* the worker leaves with _exit(): stdio is not flushed for it */
	prot_close(p);
	return t->errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 4;
	long span = argc > 2 ? atol(argv[2]) : 3000;
	if (n < 1 || n > 64 || span < 100) {
		fprintf(stderr, "usage: prot-demo [workers 1..64] [milliseconds >= 100]\n");
		return 2;
	}
	struct tally *t = mmap(NULL, sizeof *t * (size_t)n, PROT_READ | PROT_WRITE,
	                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED)
		return 1;
	memset(t, 0, sizeof *t * (size_t)n);
	struct dep d = {.start = now_ms(), .span = (uint64_t)span};

	printf("master %d: forking %d workers for %ld ms; the dependency fails from %ld to %ld ms\n",
	       (int)getpid(), n, span, span * 3 / 10, span * 6 / 10);
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0)
			_exit(worker(i, &d, &t[i]));
	}
	int bad = 0;
	for (int i = 0; i < n; i++) {
		int st;
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	}
	struct tally sum = {0};
	for (int i = 0; i < n; i++) {
		sum.allowed += t[i].allowed, sum.rate_denied += t[i].rate_denied, sum.ok += t[i].ok;
		sum.failed += t[i].failed, sum.blown += t[i].blown, sum.pool_timeouts += t[i].pool_timeouts;
	}
	printf("total: allowed %ld, rate-limited %ld, ok %ld, failed %ld, breaker-rejected %ld, pool timeouts %ld\n",
	       sum.allowed, sum.rate_denied, sum.ok, sum.failed, sum.blown, sum.pool_timeouts);
	return bad ? 1 : 0;
}
