/* redis_conn.c — the sync thread's one connection to Redis (hiredis, blocking, in the sync
 * thread only): the address forms of [redis] address (tcp://HOST:PORT, unix:/PATH), the connect
 * timeout (hiredis connects non-blocking and waits at most that long), the command timeout on
 * every read and write (redisSetTimeout: a Redis that is stopped, slow or partitioned makes a
 * round fail after it, never hang), AUTH from password_file (its first line; config_check.c
 * refuses a file others can read), the lease script loaded once per connection, and the
 * exponential backoff between attempts (RCONN_BACKOFF_MIN_MS doubling to RCONN_BACKOFF_MAX_MS,
 * reset by a successful connection). Called by redis_sync.c; redis_lease.c sends on it.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "redis.h"

#define RCONN_BACKOFF_MIN_MS 50
#define RCONN_BACKOFF_MAX_MS 2000

static struct timeval tv_ms(uint64_t ms)
{
	return (struct timeval){ .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000 * 1000) };
}

static redisContext *connect_to(const struct cfg_redis *c)
{
	char host[CFG_PATH_MAX];
	unsigned port;
	struct timeval tv = tv_ms(c->connect_timeout_ms);
	if (strncmp(c->address, "unix:", 5) == 0)
		return redisConnectUnixWithTimeout(c->address + 5, tv);
	if (sscanf(c->address, "tcp://%107[^:]:%u", host, &port) != 2) /* checked by config_check.c */
		return NULL;
	return redisConnectWithTimeout(host, (int)port, tv);
}

/* AUTH with the password file's first line. */
static int auth(struct redis_conn *rc, redisContext *ctx)
{
	char pw[512];
	FILE *f = fopen(rc->cfg.password_file, "r");
	if (!f) {
		snprintf(rc->err, sizeof rc->err, "password_file %s: cannot open", rc->cfg.password_file);
		return -1;
	}
	if (!fgets(pw, sizeof pw, f))
		pw[0] = '\0';
	fclose(f);
	pw[strcspn(pw, "\r\n")] = '\0';
	redisReply *r = redisCommand(ctx, "AUTH %s", pw);
	memset(pw, 0, sizeof pw);
	int ok = r && r->type == REDIS_REPLY_STATUS;
	snprintf(rc->err, sizeof rc->err, "AUTH: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : "failed");
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

int redis_conn_ensure(struct redis_conn *rc, uint64_t now_ns)
{
	if (rc->ctx)
		return 0;
	if (now_ns < rc->retry_ns) {
		snprintf(rc->err, sizeof rc->err, "backing off");
		return -1;
	}
	redisContext *ctx = connect_to(&rc->cfg);
	if (!ctx || ctx->err) {
		redis_conn_fail(rc, now_ns, ctx ? ctx->errstr : "out of memory");
		if (ctx)
			redisFree(ctx);
		return -1;
	}
	if (redisSetTimeout(ctx, tv_ms(rc->cfg.command_timeout_ms)) != REDIS_OK ||
	    (rc->cfg.password_file[0] && auth(rc, ctx) < 0)) {
		char why[160];
		snprintf(why, sizeof why, "%s", rc->cfg.password_file[0] ? rc->err : "setting the timeout");
		redisFree(ctx);
		redis_conn_fail(rc, now_ns, why);
		return -1;
	}
	rc->ctx = ctx;
	if (redis_lease_load(rc) < 0) {
		redis_conn_fail(rc, now_ns, "SCRIPT LOAD failed");
		return -1;
	}
	rc->backoff_ms = 0;
	return 0;
}

void redis_conn_fail(struct redis_conn *rc, uint64_t now_ns, const char *why)
{
	if (why != rc->err)
		snprintf(rc->err, sizeof rc->err, "%s", why);
	redis_conn_close(rc);
	rc->backoff_ms = rc->backoff_ms ? rc->backoff_ms * 2 : RCONN_BACKOFF_MIN_MS;
	if (rc->backoff_ms > RCONN_BACKOFF_MAX_MS)
		rc->backoff_ms = RCONN_BACKOFF_MAX_MS;
	rc->retry_ns = now_ns + rc->backoff_ms * 1000000ull;
}

int redis_conn_ping(struct redis_conn *rc)
{
	redisReply *r = redisCommand(rc->ctx, "PING");
	int ok = r && r->type == REDIS_REPLY_STATUS;
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

void redis_conn_close(struct redis_conn *rc)
{
	if (rc->ctx)
		redisFree(rc->ctx);
	rc->ctx = NULL;
	rc->sha[0] = '\0';
}
