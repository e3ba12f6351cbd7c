/* redis_sync.c — global limits, protd's sync thread: every [redis] sync_interval it finds the
 * segment's global buckets, leases units for them from Redis (redis_lease.c) and writes the
 * grants the decisions spend (lib/rate_global.c, which argues what a decision may do with them),
 * reports what each bucket used, and falls back to each key's local share while Redis cannot be
 * reached. Started, reconfigured and stopped by main.c.
 *
 * THREAD. One pthread of its own. It blocks only on Redis (every command bounded by the connect
 * and command timeouts, redis_conn.c) and on its own sleep: never on the main loop (it takes no
 * lock the main loop holds, but `mu`, held for a copy of the [redis] settings), never on a worker
 * (it reads and writes the segment with atomics only). Its state (the tracked buckets, the
 * connection) is its own; what it shares: `pending` under `mu` (main.c writes a reload's settings,
 * the thread copies them at the top of a round), `stop` (an atomic), and the segment.
 *
 * FINDING BUCKETS. A client that inserts a global bucket notes its group in the request ring
 * (rate_global.c); each round drains it and scans those groups. A slow scan (SCAN_GROUPS groups
 * a round, from a cursor) visits every group too, so a lost request (the ring lapped) or a bucket
 * that existed before this protd started is found within one pass. A bucket is followed while its
 * meta (the use) stays the same; then it is dropped (its grant entry belongs to that use only).
 * Keys: the global keys' slots, re-read whenever the configuration generation changes; a bucket is
 * a key's when its operation hash and window are the key's (a global bucket is named by its key).
 *
 * CHUNKS. A bucket's demand (admitted + denied units, so a starved host still shows it) is
 * measured per round as a rate; a request asks for rate x CHUNK_ROUNDS rounds, at least 1, at
 * most limit / hosts, and near the window's end at most what that rate can spend before it ends,
 * so the units left unused at a window's end stay a few rounds of a host's demand. It asks when
 * its grant minus its count is below one chunk, and not again in a window once Redis answered that
 * the fleet's total reached the limit (then only on renewal, every lease_ttl / 4, in case an
 * expired host's units came back). Near a window's end (the last PRELEASE_ROUNDS rounds, or the
 * last eighth of the window) it leases for the next window too, so a window never starts at 0.
 *
 * FAILURE. A round that fails (no connection, a timeout, an error) marks the host degraded at once
 * and, in the same round, grants every bucket max(its lease, the key's local share) for the
 * current window and the local share for the next: so the fallback takes effect within one round
 * after the command timeout. The connection is retried with backoff (redis_conn.c). The first
 * round that succeeds again reports every bucket's count: Redis charges the host for what it
 * admitted on its share (redis_lease.c), and the grants are the leases again; but in a window it
 * spent degraded a host leases no more than its local share (capped_end): the other hosts may
 * still be degraded, spending shares Redis cannot know of yet, so the fleet's excess in an outage
 * is bounded by the shares of the hosts that were degraded (the sum of shares, i.e. about the
 * limit, when every host was) — measured in tests/test_global.c, redis_stop_kill_restart.
 * A round with nothing to lease pings (PING_ROUNDS), so an outage is noticed within a few rounds
 * plus the command timeout. State changes are
 * events (EV_GLOBAL_DEGRADED, EV_GLOBAL_SYNCED), log lines, and the area's status line, which
 * `protctl status` and the metrics read.
 *
 * Every loop is bounded: by the tracked buckets (at most the table's), a drain's RATE_GLOBAL_RING,
 * SCAN_GROUPS, the keys' slots.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rate_global.h"
#include "redis.h"

#define SCAN_GROUPS 64     /* groups the slow scan visits per round */
#define CHUNK_ROUNDS 4     /* a chunk covers this many rounds of demand */
#define PRELEASE_ROUNDS 4  /* lease the next window this many rounds before it starts */
#define PING_ROUNDS 2      /* idle rounds before a PING */
#define NS_MS 1000000ull

struct gkey {              /* a global key as its slot holds it */
	uint64_t op_hash;
	struct prot_key_cfg cfg;
	struct rate_params rp;
	uint32_t slot;
	char name[PROT_NAME_BYTES];
};

struct gb {                /* a tracked global bucket */
	uint32_t index, key;   /* bucket index; keys[key] */
	uint64_t meta;
	char base[PROT_NAME_BYTES + 2 * PROT_ENTITY_MAX + 96]; /* the Redis key without the window */
	uint64_t cur_end, cur, next_end, next; /* this host's lease per window (units) */
	bool full_cur, full_next;               /* the fleet's total reached the limit */
	uint64_t seen, seen_ns;                 /* demand counter at the last round */
	double rate;                            /* demand, units per ms */
	uint64_t renew_ns, used;
	uint64_t capped_end;                    /* a window this host spent degraded: it leases no
	                                           more than its local share there (see FAILURE) */
};

static struct sync {
	struct shm *s;
	struct prot_shm_header *h;
	pthread_t th;
	bool running;
	_Atomic bool stop;
	pthread_mutex_t mu;          /* guards pending */
	struct cfg_redis pending;
	char segname[64];
	/* the thread's own */
	struct cfg_redis cfg;
	struct redis_conn rc;
	char host[256];
	struct gkey *keys;
	size_t nkeys;
	uint64_t keys_gen;
	struct gb *b;
	uint32_t nb, cap;
	uint32_t *pos;               /* bucket index -> tracked position + 1 */
	uint32_t buckets;
	uint64_t ring_tail;
	uint32_t scan_cursor;
	int state;                   /* RG_* */
	uint64_t degraded_since_ms, failures, commands;
	uint64_t last_ok_ns;         /* the last round trip that succeeded */
	struct lease_item *items;
	uint32_t *item_gb;           /* items[i] is for b[item_gb[i] >> 1], next window if bit 0 */
	uint32_t items_cap;
} S = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* ---- keys --------------------------------------------------------------------------------------- */

static void keys_load(struct sync *y)
{
	uint32_t n = seg_count(y->h, REG_KEYS);
	size_t k = 0;
	struct gkey *keys = calloc(n ? n : 1, sizeof *keys);
	if (!keys)
		return;
	for (uint32_t i = 0; i < n; i++) {
		if (SLOT_STATE(shm_slot_state(y->s, REG_KEYS, i)) != SLOT_LIVE)
			continue;
		struct gkey *g = &keys[k];
		shm_slot_cfg(y->s, REG_KEYS, i, &g->cfg);
		if (g->cfg.rate_scope != RATE_SCOPE_GLOBAL || !rate_cfg_on(&g->cfg))
			continue;
		rate_params_of_key(&g->cfg, &g->rp);
		g->op_hash = rate_key_op_hash(y->h, seg_entry(y->h, REG_KEYS, i));
		if (g->rp.err || !g->op_hash)
			continue;
		g->slot = i;
		snprintf(g->name, sizeof g->name, "%s", shm_slot_name(y->s, REG_KEYS, i));
		k++;
	}
	free(y->keys);
	y->keys = keys;
	y->nkeys = k;
}

static int key_of(const struct sync *y, uint64_t op_hash, uint64_t window_ms)
{
	for (size_t i = 0; i < y->nkeys; i++)
		if (y->keys[i].op_hash == op_hash && y->keys[i].rp.window_ms == window_ms)
			return (int)i;
	return -1;
}

/* ---- tracked buckets ---------------------------------------------------------------------------- */

static void untrack(struct sync *y, uint32_t p)
{
	y->pos[y->b[p].index] = 0;
	y->b[p] = y->b[--y->nb];
	if (p < y->nb)
		y->pos[y->b[p].index] = p + 1;
}

static void track(void *arg, const struct rate_global_bucket *rb)
{
	struct sync *y = arg;
	static const char hex[] = "0123456789abcdef";
	if (rb->index >= y->buckets || y->pos[rb->index])
		return; /* already followed (a new use is seen by peek, which drops the old one) */
	int k = key_of(y, rb->op_hash, rb->window_ms);
	if (k < 0)
		return;
	if (y->nb == y->cap) {
		uint32_t cap = y->cap ? y->cap * 2 : 256;
		void *m = realloc(y->b, cap * sizeof *y->b);
		if (!m)
			return;
		y->b = m;
		y->cap = cap;
	}
	struct gb *g = &y->b[y->nb];
	*g = (struct gb){ .index = rb->index, .key = (uint32_t)k, .meta = rb->meta, .seen = rb->seen,
		          .seen_ns = prot_now_ns() };
	int n = snprintf(g->base, sizeof g->base, "%s%s:", y->cfg.key_prefix, y->keys[k].name);
	for (uint32_t i = 0; i < rb->ent_len && n + 2 < (int)sizeof g->base; i++) {
		g->base[n++] = hex[(uint8_t)rb->entity[i] >> 4];
		g->base[n++] = hex[(uint8_t)rb->entity[i] & 15];
	}
	g->base[n] = '\0';
	y->pos[rb->index] = ++y->nb;
}

static void scan_group(void *arg, uint32_t gi)
{
	struct sync *y = arg;
	rate_global_scan_group(y->h, gi, track, y);
}

static void discover(struct sync *y)
{
	uint32_t groups = seg_count(y->h, REG_RATE_GROUPS);
	rate_global_drain(y->h, &y->ring_tail, scan_group, y); /* a lost request: the scan finds it */
	for (uint32_t k = 0; k < SCAN_GROUPS && k < groups; k++)
		scan_group(y, y->scan_cursor++ & (groups - 1));
}

/* ---- one round ---------------------------------------------------------------------------------- */

static uint64_t share_of(const struct sync *y, const struct gkey *k)
{
	uint64_t s = k->cfg.rate_local_share ? k->cfg.rate_local_share : k->cfg.rate_limit / y->cfg.hosts;
	return s ? s : 1;
}

static struct lease_item *add_item(struct sync *y, uint32_t *n, uint32_t p, bool next)
{
	if (*n == y->items_cap) {
		uint32_t cap = y->items_cap ? y->items_cap * 2 : 256;
		void *a = realloc(y->items, cap * sizeof *y->items), *b = a ? realloc(y->item_gb, cap * sizeof *y->item_gb) : NULL;
		if (a)
			y->items = a;
		if (!b)
			return NULL;
		y->item_gb = b;
		y->items_cap = cap;
	}
	y->item_gb[*n] = p << 1 | next;
	return &y->items[(*n)++];
}

/* The window of now (calendar ns) for key k: its end (calendar ms). */
static uint64_t window_end(const struct gkey *k, uint64_t now)
{
	struct rate_eval e;
	rate_eval(&k->rp, 0, now, 0, &e);
	return e.next >> RATE_FW_BITS;
}

/* Refresh bucket p (count, demand, windows); false: it is gone (another use, or removed). */
static bool refresh(struct sync *y, uint32_t p, uint64_t now, uint64_t mono)
{
	struct gb *g = &y->b[p];
	struct rate_global_bucket rb;
	if (!rate_global_peek(y->h, g->index, g->meta, &rb))
		return false;
	const struct gkey *k = &y->keys[g->key];
	uint64_t end = window_end(k, now);
	double dt = (double)(mono - g->seen_ns) / NS_MS;
	if (dt > 0) {
		double r = (double)(rb.seen - g->seen) / dt;
		g->rate = g->rate == 0 ? r : 0.5 * g->rate + 0.5 * r;
	}
	g->seen = rb.seen;
	g->seen_ns = mono;
	g->used = (rb.word >> RATE_FW_BITS) == end ? rb.word & RATE_FW_LIMIT_MAX : 0;
	if (g->cur_end != end) { /* a new window: the pre-lease becomes the lease */
		bool pre = g->next_end == end;
		g->cur = pre ? g->next : 0;
		g->full_cur = pre && g->full_next;
		g->cur_end = end;
		g->next_end = g->next = 0;
		g->full_next = false;
		g->renew_ns = 0;
	}
	return true;
}

/* Queue what bucket p needs this round: more units, a renewal, the next window's lease. */
static void plan(struct sync *y, uint32_t p, uint64_t now, uint64_t mono, uint32_t *n)
{
	struct gb *g = &y->b[p];
	const struct gkey *k = &y->keys[g->key];
	uint64_t end = g->cur_end, w = k->rp.window_ms, now_ms = now / NS_MS;
	double per = g->rate * (double)y->cfg.sync_interval_ms * CHUNK_ROUNDS;
	uint64_t cap = k->cfg.rate_limit / y->cfg.hosts, chunk = per < 1 ? 1 : (uint64_t)per;
	if (g->rate == 0) /* no measure yet: a small first chunk */
		chunk = k->cfg.rate_limit / (y->cfg.hosts * 16);
	chunk = chunk > cap ? cap : chunk;
	chunk = chunk ? chunk : 1;
	uint64_t left_ms = end > now_ms ? end - now_ms : 0;
	double spend = g->rate * (double)left_ms + 1;
	uint64_t cur_chunk = spend < (double)chunk ? (uint64_t)spend : chunk;
	bool renew = mono >= g->renew_ns;
	/* Redis raises the lease to the count first (redis_lease.c): the ceiling bounds the sum */
	uint64_t ceiling = g->capped_end == end ? share_of(y, k) : k->cfg.rate_limit;
	uint64_t base = g->cur > g->used ? g->cur : g->used;
	if (base + cur_chunk > ceiling)
		cur_chunk = ceiling > base ? ceiling - base : 0;
	bool want = !g->full_cur && cur_chunk && g->cur < g->used + cur_chunk;
	if (want || renew) {
		struct lease_item *it = add_item(y, n, p, false);
		if (it) {
			*it = (struct lease_item){ .limit = k->cfg.rate_limit, .want = want ? cur_chunk : 0,
				                   .used = g->used, .expire_at = end + RATE_EPOCH_MS + y->cfg.lease_ttl_ms + 1000 };
			snprintf(it->key, sizeof it->key, "%s:%" PRIu64, g->base, end);
		}
	}
	uint64_t lead = w / 8 > PRELEASE_ROUNDS * y->cfg.sync_interval_ms ? w / 8 : PRELEASE_ROUNDS * y->cfg.sync_interval_ms;
	if (left_ms <= lead && g->next_end != end + w && g->rate > 0) {
		struct lease_item *it = add_item(y, n, p, true);
		if (it) {
			*it = (struct lease_item){ .limit = k->cfg.rate_limit, .want = chunk, .used = 0,
				                   .expire_at = end + w + RATE_EPOCH_MS + y->cfg.lease_ttl_ms + 1000 };
			snprintf(it->key, sizeof it->key, "%s:%" PRIu64, g->base, end + w);
		}
	}
}

static void take_replies(struct sync *y, uint32_t n, uint64_t mono)
{
	for (uint32_t i = 0; i < n; i++) {
		struct lease_item *it = &y->items[i];
		struct gb *g = &y->b[y->item_gb[i] >> 1];
		bool full = it->total >= it->limit;
		uint64_t leased = it->leased > RATE_FW_LIMIT_MAX ? RATE_FW_LIMIT_MAX : it->leased;
		if (!it->ok)
			continue;
		if (y->item_gb[i] & 1) {
			g->next_end = g->cur_end + y->keys[g->key].rp.window_ms;
			g->next = leased;
			g->full_next = full;
		} else {
			g->cur = leased;
			g->full_cur = full;
			g->renew_ns = mono + y->cfg.lease_ttl_ms * NS_MS / 4;
		}
	}
}

/* The grants of every tracked bucket, and each key's leased units (display). */
static void write_grants(struct sync *y)
{
	bool degraded = y->state == RG_DEGRADED;
	uint64_t *sum = calloc(y->nkeys ? y->nkeys : 1, sizeof *sum);
	for (uint32_t p = 0; p < y->nb; p++) {
		struct gb *g = &y->b[p];
		const struct gkey *k = &y->keys[g->key];
		uint64_t share = share_of(y, k), cur = g->cur, next = g->next, next_end = g->next_end;
		next = next > RATE_FW_LIMIT_MAX ? RATE_FW_LIMIT_MAX : next;
		uint64_t next_word = next_end ? next_end << RATE_FW_BITS | next : 0;
		if (degraded) { /* the share for this window, and for every later one (window end 0):
		                   a thread starved past a window's end, or a protd that dies degraded,
		                   leaves its workers on their share, not at 0 */
			g->capped_end = g->cur_end;
			cur = cur > share ? cur : share;
			next_word = share;
		}
		cur = cur > RATE_FW_LIMIT_MAX ? RATE_FW_LIMIT_MAX : cur;
		rate_global_grant(y->h, g->index, g->meta, g->cur_end << RATE_FW_BITS | cur, next_word, g->used);
		if (sum)
			sum[g->key] += cur;
	}
	for (size_t i = 0; sum && i < y->nkeys; i++) {
		struct prot_key_slot *ks = seg_entry(y->h, REG_KEYS, y->keys[i].slot);
		atomic_store_explicit(&ks->stats.global_leased, sum[i], memory_order_relaxed); /* display */
	}
	free(sum);
}

static void set_state(struct sync *y, int st, uint64_t now_ms, uint64_t latency_us)
{
	struct prot_rate_global *a = rate_global_area(y->h);
	if (st == y->state)
		return;
	if (st == RG_DEGRADED) {
		y->degraded_since_ms = now_ms;
		log_warn("redis %s: %s; global keys on their local share", y->cfg.address, y->rc.err);
		prot_event_emit(y->h, EV_GLOBAL_DEGRADED, PROT_NO_INDEX, "redis", y->failures, 0);
	} else if (st == RG_SYNCED) {
		uint64_t outage = y->degraded_since_ms ? now_ms - y->degraded_since_ms : 0;
		log_info("redis %s: synced (round trip %" PRIu64 " us)", y->cfg.address, latency_us);
		prot_event_emit(y->h, EV_GLOBAL_SYNCED, PROT_NO_INDEX, "redis", latency_us, outage);
		y->degraded_since_ms = 0;
		for (uint32_t p = 0; p < y->nb; p++) { /* report every count now, lease afresh */
			y->b[p].renew_ns = 0;
			y->b[p].full_cur = false;
			y->b[p].next_end = y->b[p].next = 0;
		}
	}
	y->state = st;
	/* relaxed: display words */
	atomic_store_explicit(&a->degraded_since_ms, y->degraded_since_ms, memory_order_relaxed);
	atomic_store_explicit(&a->state, (uint64_t)st, memory_order_relaxed);
}

static void round_once(struct sync *y)
{
	struct prot_rate_global *a = rate_global_area(y->h);
	uint64_t mono = prot_now_ns(), now = rate_calendar_ns(), now_ms = now / NS_MS;
	/* acquire: pairs with protd's release of every configuration change */
	uint64_t gen = atomic_load_explicit(&y->h->config_gen, memory_order_acquire);
	if (gen != y->keys_gen || !y->keys) {
		keys_load(y);
		y->keys_gen = gen;
		for (uint32_t p = y->nb; p-- > 0;) { /* a key changed: re-resolve its buckets */
			struct rate_global_bucket rb;
			int k = -1;
			if (rate_global_peek(y->h, y->b[p].index, y->b[p].meta, &rb)) {
				struct prot_rate_bucket *b = &group_at(y->h, y->b[p].index / RATE_GROUP_SLOTS)->b[y->b[p].index % RATE_GROUP_SLOTS];
				k = key_of(y, ld(b, B_OP_HASH), SCALE_WINDOW(ld(b, B_SCALE)));
			}
			if (k < 0)
				untrack(y, p);
			else
				y->b[p].key = (uint32_t)k;
		}
	}
	discover(y);
	for (uint32_t p = y->nb; p-- > 0;)
		if (!refresh(y, p, now, mono))
			untrack(y, p);
	uint32_t n = 0;
	if (y->state != RG_DEGRADED) /* degraded: nothing to ask until a connection is back */
		for (uint32_t p = 0; p < y->nb; p++)
			plan(y, p, now, mono, &n);
	/* a round with nothing to lease pings after PING_ROUNDS idle rounds, so an outage is seen
	 * within a few rounds plus the command timeout even while every window is fully leased */
	if (n || y->state != RG_SYNCED || mono - y->last_ok_ns >= PING_ROUNDS * y->cfg.sync_interval_ms * NS_MS) {
		uint64_t t0 = prot_now_ns();
		int r = redis_conn_ensure(&y->rc, t0);
		if (r == 0 && n)
			r = redis_lease_run(&y->rc, y->host, y->cfg.lease_ttl_ms, y->items, n, &y->commands);
		else if (r == 0) {
			r = redis_conn_ping(&y->rc);
			y->commands++;
		}
		if (r == 0)
			y->last_ok_ns = mono;
		uint64_t us = (prot_now_ns() - t0) / 1000;
		if (r < 0) {
			if (y->rc.ctx) /* the round trip failed: drop the connection, back off */
				redis_conn_fail(&y->rc, prot_now_ns(), "round trip failed or timed out");
			y->failures++;
			set_state(y, RG_DEGRADED, now_ms, 0);
		} else {
			take_replies(y, n, mono);
			set_state(y, RG_SYNCED, now_ms, us);
			atomic_store_explicit(&a->last_sync_ms, now_ms, memory_order_relaxed); /* display */
			if (n)
				atomic_store_explicit(&a->latency_us, us, memory_order_relaxed); /* display */
		}
	}
	write_grants(y);
	/* release: the grants above before the time they may be spent until (rate_global.h). A lease
	 * is valid while protd renews it: every record this host holds in Redis was renewed at most
	 * lease_ttl / 4 ago (renew_ns) and lives lease_ttl from its renewal, so it outlives this bound
	 * by at least lease_ttl / 2 (the margin for the host's calendar against Redis's clock). If
	 * protd stops here (killed, its workers alive), they stop spending lease_ttl / 4 later, before
	 * Redis returns the units to the fleet; a slow protd only makes them deny meanwhile. */
	atomic_store_explicit(&a->grants_until_ms, now_ms + y->cfg.lease_ttl_ms / 4, memory_order_release);
	/* relaxed: display words */
	atomic_store_explicit(&a->commands, y->commands, memory_order_relaxed);
	atomic_store_explicit(&a->failures, y->failures, memory_order_relaxed);
	atomic_store_explicit(&a->tracked, y->nb, memory_order_relaxed);
	atomic_store_explicit(&a->hosts, y->cfg.hosts, memory_order_relaxed);
}

/* ---- the thread ----------------------------------------------------------------------------------- */

static void take_config(struct sync *y)
{
	struct cfg_redis c;
	pthread_mutex_lock(&y->mu);
	c = y->pending;
	pthread_mutex_unlock(&y->mu);
	if (memcmp(&c, &y->cfg, sizeof c) == 0)
		return;
	y->cfg = c;
	redis_conn_close(&y->rc);
	y->rc = (struct redis_conn){ .cfg = c };
	if (c.host_id[0])
		snprintf(y->host, sizeof y->host, "%s", c.host_id);
	else {
		char hn[128] = "";
		gethostname(hn, sizeof hn - 1);
		snprintf(y->host, sizeof y->host, "%s:%s", hn, y->segname);
	}
}

static void *sync_main(void *arg)
{
	struct sync *y = arg;
	uint64_t next = prot_now_ns();
	while (!atomic_load_explicit(&y->stop, memory_order_relaxed)) {
		take_config(y);
		round_once(y);
		next += y->cfg.sync_interval_ms * NS_MS;
		uint64_t now = prot_now_ns();
		if (next < now)
			next = now; /* a slow round (a timeout): the next one starts at once, no catch-up */
		struct timespec ts = { .tv_sec = (time_t)(next / 1000000000ull), .tv_nsec = (long)(next % 1000000000ull) };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
	redis_conn_close(&y->rc);
	return NULL;
}

void redis_sync_config(const struct config *c)
{
	pthread_mutex_lock(&S.mu);
	S.pending = c->redis;
	pthread_mutex_unlock(&S.mu);
}

int redis_sync_start(struct shm *s, const struct config *c)
{
	struct prot_rate_global *a = rate_global_area(s->hdr);
	if (!c->redis.address[0] || !a)
		return 0;
	S.s = s;
	S.h = s->hdr;
	S.buckets = seg_count(s->hdr, REG_RATE_GROUPS) * RATE_GROUP_SLOTS;
	S.pos = calloc(S.buckets, sizeof *S.pos);
	if (!S.pos)
		return -1;
	snprintf(S.segname, sizeof S.segname, "%s", s->name);
	S.state = RG_OFF;
	/* requests made before this protd started are found by the slow scan */
	S.ring_tail = atomic_load_explicit(&a->head, memory_order_relaxed);
	redis_sync_config(c);
	int e = pthread_create(&S.th, NULL, sync_main, &S);
	if (e) {
		log_err("redis: cannot start the sync thread: %s", strerror(e));
		return -1;
	}
	S.running = true;
	log_info("redis %s: global limits on, sync every %" PRIu64 "ms, lease_ttl %" PRIu64 "ms",
	         c->redis.address, c->redis.sync_interval_ms, c->redis.lease_ttl_ms);
	return 0;
}

void redis_sync_stop(void)
{
	if (!S.running)
		return;
	atomic_store_explicit(&S.stop, true, memory_order_relaxed);
	pthread_join(S.th, NULL);
	S.running = false;
	free(S.pos);
	free(S.b);
	free(S.keys);
	free(S.items);
	free(S.item_gb);
}
