/* bench_redis.c — baseline 2: Redis on loopback, the common way to share limits between
 * processes. The bench starts its own redis-server on a free 127.0.0.1 port (no persistence),
 * talks to it with hiredis, and stops it (SHUTDOWN NOSAVE, then by pid). Two decisions:
 *  - fixed window, Hammer's Redis backend: MULTI, INCR key:window, PEXPIRE NX, EXEC;
 *  - GCRA in a Lua script (EVALSHA), one theoretical-arrival-time key.
 * Each with one round trip per decision and with a pipeline of 64, by one or many clients.
 * Without hiredis at build time or redis-server at run time the rows are skipped, with the reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const int redis_rows[] = {ROW_REDIS_FW_RTT, ROW_REDIS_GCRA_RTT, ROW_REDIS_FW_PIPE,
                                 ROW_REDIS_GCRA_PIPE, ROW_SC_REDIS_FW, ROW_SC_REDIS_FW_PIPE,
                                 ROW_SC_REDIS_GCRA, ROW_SC_REDIS_GCRA_PIPE};

static void redis_skip_all(struct bench *b, bool failed, const char *why)
{
	if (!b->json)
		fprintf(stderr, "redis: %s (%s)\n", failed ? "failed" : "skipped", why);
	for (size_t i = 0; i < sizeof redis_rows / sizeof redis_rows[0]; i++)
		bench_skip(b, redis_rows[i], failed, "redis: %s (%s)", failed ? "failed" : "skipped", why);
}

#ifndef HAVE_HIREDIS

void bench_redis_rows(struct bench *b)
{
	redis_skip_all(b, false, "built without hiredis: install libhiredis-dev and reconfigure");
}

#else

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PIPE_DEPTH 64

/* GCRA in microseconds (Lua numbers are doubles: exact up to 2^53 us). ARGV: T and the burst
 * tolerance, both in us. Returns 1 admitted, 0 denied. */
static const char gcra_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local T, tol = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"local tat = tonumber(redis.call('GET', KEYS[1]))\n"
	"if not tat or tat < now then tat = now end\n"
	"if tat + T - now > tol then return 0 end\n"
	"redis.call('SET', KEYS[1], string.format('%d', tat + T), 'PX',\n"
	"           string.format('%d', math.ceil((tat + T - now) / 1000) + 1))\n"
	"return 1\n";

struct redis_arg {
	int port;
	int algo;
	int depth;
};

struct redis_state {
	const struct redis_arg *a;
	redisContext *c;
	char sha[48];
};

static redisContext *redis_connect(int port)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (!c)
		return NULL;
	if (c->err || redisSetTimeout(c, (struct timeval){5, 0}) != REDIS_OK) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* One command with one reply; the reply's integer (or -1 for a string status, -2 on error). */
static long long redis_cmd(redisContext *c, char *str, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r)
		return -2;
	long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : r->type == REDIS_REPLY_ERROR ? -2 : -1;
	if (str && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
		snprintf(str, len, "%s", r->str);
	freeReplyObject(r);
	return v;
}

static void *redis_setup(void *arg, int worker)
{
	(void)worker;
	struct redis_state *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->a = arg;
	s->c = redis_connect(s->a->port);
	if (s->c && redis_cmd(s->c, s->sha, sizeof s->sha, "SCRIPT LOAD %s", gcra_lua) == -1)
		return s;
	if (s->c)
		redisFree(s->c);
	free(s);
	return NULL;
}

static void redis_teardown(void *st)
{
	struct redis_state *s = st;
	redisFree(s->c);
	free(s);
}

/* Queue one decision; returns the number of replies it produces. */
static int redis_append(struct redis_state *s)
{
	if (s->a->algo == PROT_RATE_GCRA) {
		redisAppendCommand(s->c, "EVALSHA %s 1 gcra:" BENCH_OP ":hot %d %d", s->sha, 1,
		                   (int)BENCH_WINDOW_MS * 1000);
		return 1;
	}
	unsigned long long win = bench_now_ns() / 1000000u / BENCH_WINDOW_MS;
	redisAppendCommand(s->c, "MULTI");
	redisAppendCommand(s->c, "INCR fw:" BENCH_OP ":hot:%llu", win);
	redisAppendCommand(s->c, "PEXPIRE fw:" BENCH_OP ":hot:%llu %d NX", win, (int)BENCH_WINDOW_MS);
	redisAppendCommand(s->c, "EXEC");
	return 4;
}

/* The verdict in a decision's last reply: EXEC's array [count, expire] or the script's integer. */
static int redis_verdict(const redisReply *r)
{
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer == 1 ? 0 : BENCH_EDENIED;
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_INTEGER)
		return r->element[0]->integer <= (long long)BENCH_LIMIT ? 0 : BENCH_EDENIED;
	return -EPROTO;
}

static int redis_batch(void *st, uint64_t n)
{
	struct redis_state *s = st;
	while (n > 0) {
		int d = n < (uint64_t)s->a->depth ? (int)n : s->a->depth, replies = 0, res = 0;
		for (int i = 0; i < d; i++)
			replies += redis_append(s);
		for (int i = 0; i < replies; i++) {
			redisReply *r;
			if (redisGetReply(s->c, (void **)&r) != REDIS_OK || !r)
				return -EPIPE;
			bool last = s->a->algo == PROT_RATE_GCRA || r->type == REDIS_REPLY_ARRAY;
			if (last && res == 0)
				res = redis_verdict(r);
			freeReplyObject(r);
		}
		if (res < 0)
			return res;
		n -= (uint64_t)d;
	}
	return 0;
}

static const char *redis_server_path(void)
{
	static char buf[512];
	const char *path = getenv("PATH");
	for (const char *p = path ? path : ""; *p;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		snprintf(buf, sizeof buf, "%.*s/redis-server", (int)len, p);
		if (len && access(buf, X_OK) == 0)
			return buf;
		p += len + (end ? 1 : 0);
	}
	return access("/usr/bin/redis-server", X_OK) == 0 ? "/usr/bin/redis-server" : NULL;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static pid_t redis_start(struct bench *b, const char *exe, int port)
{
	char portstr[16], log[128];
	snprintf(portstr, sizeof portstr, "%d", port);
	bench_tmpfile(b, "redis.log", log, sizeof log);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		bench_pin_child(BENCH_PIN_SERVER);
		bench_child_log(log);
		execl(exe, exe, "--port", portstr, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		      "--dir", b->tmpdir, "--daemonize", "no", (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		bench_track_pid(pid);
	return pid;
}

/* Bounded wait for PING; 0 when it answers, -1 when the server died or 5 s passed. */
static int redis_wait_ready(pid_t pid, int port)
{
	uint64_t end = bench_now_ns() + 5000000000u;
	while (bench_now_ns() < end) {
		redisContext *c = redis_connect(port);
		char pong[16] = "";
		if (c) {
			redis_cmd(c, pong, sizeof pong, "PING");
			redisFree(c);
			if (strcmp(pong, "PONG") == 0)
				return 0;
		}
		if (kill(pid, 0) < 0)
			return -1;
		usleep(10000);
	}
	return -1;
}

static void redis_stop(pid_t pid, int port)
{
	redisContext *c = redis_connect(port);
	if (c) {
		redis_cmd(c, NULL, 0, "SHUTDOWN NOSAVE"); /* the connection closes: no reply */
		redisFree(c);
	}
	bench_reap(pid, 3000, false);
}

static void redis_measure(struct bench *b, int port)
{
	struct redis_arg fw = {port, PROT_RATE_FIXED_WINDOW, 1}, gcra = {port, PROT_RATE_GCRA, 1};
	struct redis_arg fw_pipe = {port, PROT_RATE_FIXED_WINDOW, PIPE_DEPTH};
	struct redis_arg gcra_pipe = {port, PROT_RATE_GCRA, PIPE_DEPTH};
	struct {
		int single, scale;
		struct redis_arg *a;
		uint64_t ops;
	} rows[] = {
		{ROW_REDIS_FW_RTT, ROW_SC_REDIS_FW, &fw, b->sz.slow_ops},
		{ROW_REDIS_GCRA_RTT, ROW_SC_REDIS_GCRA, &gcra, b->sz.slow_ops},
		{ROW_REDIS_FW_PIPE, ROW_SC_REDIS_FW_PIPE, &fw_pipe, b->sz.slow_ops * 8},
		{ROW_REDIS_GCRA_PIPE, ROW_SC_REDIS_GCRA_PIPE, &gcra_pipe, b->sz.slow_ops * 8},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct bench_work w = {redis_setup, redis_batch, redis_teardown, rows[i].a,
		                       rows[i].a->depth > 1 ? PIPE_DEPTH : 16};
		bench_single(b, rows[i].single, &w, rows[i].ops, b->sz.reps);
		bench_scale(b, rows[i].scale, &w);
	}
}

void bench_redis_rows(struct bench *b)
{
	const char *exe = redis_server_path();
	if (!exe) {
		redis_skip_all(b, false, "redis-server not found on PATH or /usr/bin: install redis-server");
		return;
	}
	int port = free_port();
	pid_t pid = port > 0 ? redis_start(b, exe, port) : -1;
	if (pid < 0) {
		redis_skip_all(b, true, "could not start redis-server");
		return;
	}
	if (redis_wait_ready(pid, port) < 0) {
		bench_reap(pid, 2000, true);
		redis_skip_all(b, true, "redis-server did not answer PING within 5 s (see redis.log)");
		return;
	}
	redis_measure(b, port);
	redis_stop(pid, port);
}

#endif
