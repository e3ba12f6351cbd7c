/* redis.h — global limits, protd's side: the Redis connection (redis_conn.c), the lease script and
 * its batches (redis_lease.c), and the sync thread that leases for the segment's global buckets
 * (redis_sync.c, which argues the design). main.c starts, reconfigures and stops the thread;
 * nothing here is part of libprot, and libprot never links hiredis.
 */
#ifndef PROTD_REDIS_H
#define PROTD_REDIS_H

#include <stdbool.h>
#include <stdint.h>

#include "protd.h"

/* ---- redis_conn.c: one connection with timeouts, AUTH, the script loaded, backoff ------------ */
struct redis_conn {
	struct cfg_redis cfg;  /* the settings it was made with */
	void *ctx;             /* redisContext, NULL while down */
	char sha[48];          /* the lease script's SHA1 once loaded */
	uint64_t retry_ns;     /* CLOCK_MONOTONIC when the next connection attempt may start */
	uint64_t backoff_ms;   /* the current backoff (doubles per failure, RCONN_BACKOFF_MAX_MS) */
	char err[160];         /* the last failure, for the log */
};
/* Connected (connecting first if the backoff allows): 0, or -1 with rc->err. */
int redis_conn_ensure(struct redis_conn *rc, uint64_t now_ns);
/* The connection failed: drop it and back off. */
void redis_conn_fail(struct redis_conn *rc, uint64_t now_ns, const char *why);
void redis_conn_close(struct redis_conn *rc);
/* PING (a round with nothing to lease still learns that Redis went away): 0 or -1. */
int redis_conn_ping(struct redis_conn *rc);

/* ---- redis_lease.c: the lease script, pipelined ------------------------------------------------ */
/* One bucket's request for one window. */
struct lease_item {
	char key[320];      /* the Redis key: prefix, key name, entity (hex), window end */
	uint64_t limit;     /* the key's limit per window */
	uint64_t want;      /* units more wanted (0: report and renew only) */
	uint64_t used;      /* units this host counted in the window */
	uint64_t expire_at; /* Unix ms after which Redis may drop the key */
	/* reply */
	uint64_t leased;    /* this host's lease for the window after the script */
	uint64_t total;     /* the fleet's total */
	bool ok;
};
/* Run the script for items[0..n) (batches of LEASE_BATCH keys, pipelined): 0, or -1 (rc failed;
 * the caller calls redis_conn_fail). *commands: commands sent. */
int redis_lease_run(struct redis_conn *rc, const char *host, uint64_t ttl_ms, struct lease_item *items,
                    uint32_t n, uint64_t *commands);
/* Load the script (after connecting, and on NOSCRIPT): 0 or -1. */
int redis_lease_load(struct redis_conn *rc);

/* ---- redis_sync.c: the sync thread ------------------------------------------------------------- */
/* Start the thread for segment s with c's [redis] (nothing without an address): 0 or -1. */
int redis_sync_start(struct shm *s, const struct config *c);
/* A reload's [redis] and [segment] name (the thread picks it up at its next round). */
void redis_sync_config(const struct config *c);
void redis_sync_stop(void);

#endif
