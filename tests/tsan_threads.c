/* tsan_threads.c — the threaded parts under ThreadSanitizer, outside Criterion (whose runner cannot
 * start under TSan). One process, one shared handle, several threads through every layer at once
 * (rate limiter, breaker, pool with per-process connections, the facade, telemetry attach/detach),
 * against a real protd that is itself TSan-built when PROTD points at the TSan build. protd gets a
 * SIGHUP and runtime `set` requests meanwhile, so its control thread and reload run concurrently.
 *
 * Prints a Criterion-style synthesis line so tools/test.sh counts it like the other suites; exits
 * non-zero on any failure (TSan itself exits 66 when it reports).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "prot.h"

#define THREADS 6
#define ITERS 3000

static prot_t *P;
static _Atomic int failures;
static _Atomic int conns_live;
static _Atomic int stop_tel;
/* Key "exact": every thread hits EXACT_ENTS entities on one handle (the per-handle rate memos under
 * contention); each entity admits exactly EXACT_LIMIT of its THREADS * ITERS / EXACT_ENTS tries. */
#define EXACT_ENTS 20
#define EXACT_LIMIT 500
static _Atomic long exact_admitted[EXACT_ENTS];
_Static_assert(THREADS * ITERS / EXACT_ENTS > EXACT_LIMIT, "every entity is tried past its limit");
static int tested, passed;

static void check(int ok, const char *what)
{
	tested++;
	if (ok)
		passed++;
	else
		fprintf(stderr, "FAIL: %s\n", what);
}

static int conn_create(void *ctx, void **conn)
{
	(void)ctx;
	*conn = malloc(8);
	atomic_fetch_add(&conns_live, 1);
	return *conn ? 0 : -ENOMEM;
}
static void conn_destroy(void *ctx, void *conn)
{
	(void)ctx;
	atomic_fetch_sub(&conns_live, 1);
	free(conn);
}

static int fn(const struct prot_call *c)
{
	unsigned r = (unsigned)(uintptr_t)c->arg;
	return r % 5 == 0 ? -1 : 0;
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
	char ent[16];
	for (int i = 0; i < ITERS; i++) {
		seed = seed * 1103515245u + 12345u;
		snprintf(ent, sizeof ent, "u%u", (seed >> 8) % 50);
		struct prot_call_opts o = {.entity = ent, .timeout_ms = 100};
		int r = prot_execute(P, "svc", &o, fn, (void *)(uintptr_t)(seed >> 4), NULL);
		if (r < 0 && r != -PROT_ERATELIMITED && r != -PROT_EBLOWN && r != -PROT_EFAILED &&
		    r != -PROT_ECHECKOUT_TIMEOUT && r != -PROT_ETIMEOUT) {
			fprintf(stderr, "execute: %s\n", prot_strerror(r));
			atomic_fetch_add(&failures, 1);
		}
		if (prot_rate_check(P, "adhoc", ent, 1000, 1000, NULL) < 0)
			atomic_fetch_add(&failures, 1);
		snprintf(ent, sizeof ent, "x%d", i % EXACT_ENTS);
		int x = prot_rate_check_key(P, "exact", ent, 1, NULL);
		if (x < 0)
			atomic_fetch_add(&failures, 1);
		else
			atomic_fetch_add(&exact_admitted[i % EXACT_ENTS], x);
		if (i % 50 == 0)
			prot_breaker_reset(P, "svc");
	}
	return NULL;
}

static void on_event(const struct prot_tel *ev, void *ctx)
{
	atomic_fetch_add((_Atomic long *)ctx, (long)(ev->event + 1));
}

static void *telemetry(void *arg)
{
	(void)arg;
	static _Atomic long sink;
	while (!atomic_load(&stop_tel)) {
		int id = prot_telemetry_attach(P, PROT_TEL_ALL, on_event, &sink);
		if (id >= 0)
			prot_telemetry_detach(P, id);
	}
	return NULL;
}

static pid_t start_protd(const char *protd, const char *ini, const char *seg)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0 && !getenv("TSAN_THREADS_VERBOSE")) {
			dup2(fd, 1); /* protd logs every event; TSan reports still reach stderr via exit 66 */
			dup2(fd, 2);
		}
		execl(protd, protd, "-c", ini, "--segment", seg, (char *)NULL);
		_exit(127);
	}
	return pid;
}

int main(void)
{
	const char *protd = getenv("PROTD");
	if (!protd) {
		fprintf(stderr, "PROTD is not set\n");
		return 2;
	}
	char seg[64], ini[64];
	snprintf(seg, sizeof seg, "/prot-t-%d-tsan", (int)getpid());
	snprintf(ini, sizeof ini, "/tmp/prot-tsan-%d.ini", (int)getpid());
	const char *cfg =
		"[segment]\nmax_keys = 8\nmax_breakers = 8\nmax_pools = 4\npool_max_slots = 8\n"
		"[daemon]\ntick = 2ms\nreclaim_interval = 10ms\n"
		"[key svc]\nrate_limit = 100000\nrate_window = 1s\nbreaker_tolerance = 3\n"
		"breaker_window = 1s\nbreaker_refresh = 2ms\npool_size = 2\npool_max_overflow = 1\n"
		"pool_checkout_timeout = 100ms\n"
		"[key exact]\nrate_limit = 500\nrate_window = 720h\n";
	FILE *f = fopen(ini, "w");
	if (!f || fputs(cfg, f) < 0 || fclose(f))
		return 2;
	pid_t pd = start_protd(protd, ini, seg);
	int r = -1;
	for (int i = 0; i < 500 && r < 0; i++) {
		r = prot_open(seg, 0, &P);
		if (r < 0)
			usleep(10000);
	}
	check(r == 0, "attach to protd");
	if (r < 0) {
		kill(pd, SIGKILL);
		waitpid(pd, NULL, 0);
		unlink(ini);
		shm_unlink(seg);
		return 1;
	}
	struct prot_connector c = {.create = conn_create, .destroy = conn_destroy};
	check(prot_pool_register(P, "svc", &c) == 0, "register connector");

	pthread_t t[THREADS], tel;
	pthread_create(&tel, NULL, telemetry, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	/* protd's reload and control thread, concurrently with the clients */
	for (int i = 0; i < 5; i++) {
		struct prot_detail d;
		char set[64];
		snprintf(set, sizeof set, "rate_limit=%d", 100000 + i);
		if (prot_configure(P, "svc", set, &d) != 0)
			atomic_fetch_add(&failures, 1);
		kill(pd, SIGHUP);
		usleep(20000);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop_tel, 1);
	pthread_join(tel, NULL);

	check(atomic_load(&failures) == 0, "no unexpected errors from threads");
	int exact = 1;
	for (int i = 0; i < EXACT_ENTS; i++)
		exact &= atomic_load(&exact_admitted[i]) == EXACT_LIMIT;
	check(exact, "threads on one handle: every entity of key exact admitted exactly its limit");
	struct prot_pool_status ps;
	check(prot_pool_status(P, "svc", &ps) == 0 && ps.in_use == 0, "no lease left after the threads");
	prot_close(P);
	check(atomic_load(&conns_live) == 0, "every connection destroyed at close");

	kill(pd, SIGTERM);
	int st = 0;
	for (int i = 0; i < 500 && waitpid(pd, &st, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(pd, &st, WNOHANG) == 0) {
		kill(pd, SIGKILL);
		waitpid(pd, &st, 0);
	}
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "protd exits 0 (a TSan report in protd makes it 66)");
	unlink(ini);
	shm_unlink(seg);
	printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0\n", tested, passed,
	       tested - passed);
	return tested == passed ? 0 : 1;
}
