/* redis_lease.c — the lease script and how the sync thread runs it: one EVALSHA per batch of up
 * to LEASE_BATCH buckets, the batches pipelined (one round trip per sync round), NOSCRIPT answered
 * by loading the script again and resending once. Called by redis_sync.c; the connection is
 * redis_conn.c's.
 *
 * DATA IN REDIS. Per (key, entity, window) one hash, KEY = prefix key ':' hex(entity) ':' window
 * end (calendar ms): field HOST = "leased used expiry" (expiry: Redis TIME ms + lease_ttl at the
 * host's last renewal), field "~" = the units used by hosts whose records expired. The key itself
 * expires (PEXPIREAT) after its window ended.
 *
 * THE SCRIPT, per key, atomically (a script runs alone): reap every other host's record whose
 * expiry passed — its used units stay spent ("~"), its unused units (leased - used) return to the
 * fleet; the fleet's total is "~" plus max(leased, used) of every live record; this host's record
 * is raised to what it reports used (a host that admitted beyond its lease, on its local share
 * while Redis was unreachable, or on its allowance, is charged for it); then it is granted
 * min(want, limit - total) more (never negative) and its expiry renewed. Replies per key
 * {this host's leased, the fleet's total}. So the fleet's total never exceeds the limit by a
 * grant: only by what hosts admitted without one (rate_global.c, WHY THE FLEET STAYS WITHIN).
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "redis.h"

#define LEASE_BATCH 64
#define ITEM_ARGS 4 /* limit, want, used, expire_at */

static const char lease_lua[] =
	"local host, ttl = ARGV[1], tonumber(ARGV[2])\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local out = {}\n"
	"for i, k in ipairs(KEYS) do\n"
	"  local a = 2 + (i - 1) * 4\n"
	"  local limit, want, used = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])\n"
	"  local f = redis.call('HGETALL', k)\n"
	"  local spent, mine = 0, 0\n"
	"  for j = 1, #f, 2 do\n"
	"    local n, v = f[j], f[j + 1]\n"
	"    if n == '~' then spent = spent + tonumber(v)\n"
	"    else\n"
	"      local l, u, x = string.match(v, '^(%d+) (%d+) (%d+)$')\n"
	"      l, u, x = tonumber(l) or 0, tonumber(u) or 0, tonumber(x) or 0\n"
	"      if n == host then\n"
	"        mine = l\n"
	"        if u > used then used = u end\n"
	"      elseif x < now then\n"
	"        spent = spent + u\n"
	"        redis.call('HDEL', k, n)\n"
	"        redis.call('HINCRBY', k, '~', u)\n"
	"      else\n"
	"        spent = spent + math.max(l, u)\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  if mine < used then mine = used end\n"
	"  local grant = math.min(want, limit - spent - mine)\n"
	"  if grant < 0 then grant = 0 end\n"
	"  mine = mine + grant\n"
	"  redis.call('HSET', k, host, string.format('%d %d %d', mine, used, now + ttl))\n"
	"  redis.call('PEXPIREAT', k, ARGV[a + 4])\n"
	"  out[i] = {mine, spent + mine}\n"
	"end\n"
	"return out\n";

int redis_lease_load(struct redis_conn *rc)
{
	redisReply *r = redisCommand(rc->ctx, "SCRIPT LOAD %s", lease_lua);
	int ok = r && r->type == REDIS_REPLY_STRING && r->len < (int)sizeof rc->sha;
	if (ok)
		snprintf(rc->sha, sizeof rc->sha, "%s", r->str);
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

/* Append one EVALSHA for items[0..n). */
static int append_batch(struct redis_conn *rc, const char *host, uint64_t ttl_ms,
                        const struct lease_item *items, uint32_t n)
{
	const char *argv[5 + LEASE_BATCH * (1 + ITEM_ARGS)];
	size_t len[sizeof argv / sizeof *argv];
	char nums[LEASE_BATCH * ITEM_ARGS + 2][24];
	int argc = 0, k = 0;
#define ARG(s) (argv[argc] = (s), len[argc] = strlen(argv[argc]), argc++)
#define NUM(v) (snprintf(nums[k], sizeof nums[k], "%" PRIu64, (uint64_t)(v)), ARG(nums[k++]))
	ARG("EVALSHA");
	ARG(rc->sha);
	NUM(n);
	for (uint32_t i = 0; i < n; i++)
		ARG(items[i].key);
	ARG(host);
	NUM(ttl_ms);
	for (uint32_t i = 0; i < n; i++) {
		NUM(items[i].limit);
		NUM(items[i].want);
		NUM(items[i].used);
		NUM(items[i].expire_at);
	}
#undef NUM
#undef ARG
	return redisAppendCommandArgv(rc->ctx, argc, argv, len) == REDIS_OK ? 0 : -1;
}

/* One batch's reply into items[0..n): 0, 1 (NOSCRIPT: load and resend), -1. */
static int take_reply(redisReply *r, struct lease_item *items, uint32_t n)
{
	if (r->type == REDIS_REPLY_ERROR)
		return strncmp(r->str, "NOSCRIPT", 8) == 0 ? 1 : -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		redisReply *e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER || e->element[0]->integer < 0)
			return -1;
		items[i].leased = (uint64_t)e->element[0]->integer;
		items[i].total = (uint64_t)(e->element[1]->integer < 0 ? 0 : e->element[1]->integer);
		items[i].ok = true;
	}
	return 0;
}

static int run_once(struct redis_conn *rc, const char *host, uint64_t ttl_ms, struct lease_item *items,
                    uint32_t n, uint64_t *commands, bool *noscript)
{
	uint32_t batches = (n + LEASE_BATCH - 1) / LEASE_BATCH;
	int res = 0;
	for (uint32_t b = 0; b < batches; b++) {
		uint32_t m = n - b * LEASE_BATCH < LEASE_BATCH ? n - b * LEASE_BATCH : LEASE_BATCH;
		if (append_batch(rc, host, ttl_ms, items + b * LEASE_BATCH, m) < 0)
			return -1;
	}
	*commands += batches;
	for (uint32_t b = 0; b < batches; b++) { /* every reply is read, even after an error */
		uint32_t m = n - b * LEASE_BATCH < LEASE_BATCH ? n - b * LEASE_BATCH : LEASE_BATCH;
		void *reply = NULL;
		if (redisGetReply(rc->ctx, &reply) != REDIS_OK || !reply)
			return -1; /* timeout or a broken connection: nothing more to read */
		int t = take_reply(reply, items + b * LEASE_BATCH, m);
		freeReplyObject(reply);
		if (t == 1)
			*noscript = true;
		else if (t < 0)
			res = -1;
	}
	return res;
}

int redis_lease_run(struct redis_conn *rc, const char *host, uint64_t ttl_ms, struct lease_item *items,
                    uint32_t n, uint64_t *commands)
{
	bool noscript = false;
	if (n == 0)
		return 0;
	int r = run_once(rc, host, ttl_ms, items, n, commands, &noscript);
	if (r == 0 && noscript) { /* Redis lost its scripts (a restart, SCRIPT FLUSH): once more */
		noscript = false;
		if (redis_lease_load(rc) < 0)
			return -1;
		r = run_once(rc, host, ttl_ms, items, n, commands, &noscript);
	}
	return r < 0 || noscript ? -1 : 0;
}
