/* facade.c — execute_protected: rate limiter → breaker → pool → call, for one protection key; plus
 * the per-key status that gathers every layer (runtime configuration: lib/control.c).
 *
 * What each path charges (and why nothing leaks):
 *  - rate denial: returns before the breaker is asked, so no token and no slot exist;
 *  - breaker rejection: returns before checkout, so no slot exists;
 *  - pool timeout/error: the breaker token is cancelled (PROT_OUTCOME_CANCEL): not a failure, and a
 *    half-open probe it held is given back at once;
 *  - fn ran: the lease is checked in and the outcome recorded on every path out of the call.
 * The per-key counters and the latency histogram in the segment are updated with relaxed atomic
 * adds: they are statistics and publish nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

struct call_ctx {
	prot_t *p;
	struct prot_shm_header *h;
	struct prot_key_slot *slot;
	struct rate_key_ref kref;        /* the key, resolved once (its name through the rate memo) */
	struct prot_key_cfg cfg;
	uint32_t cfg_seq;                /* the key's seqlock word cfg was read under */
	bool has_breaker, has_pool;      /* the layers' slots (when the key has them and the call */
	struct slot_ref breaker, pool;   /* does not skip them) and their configurations, all read */
	struct cfg_snap bcfg, pcfg;      /* under one configuration generation (read_layers) */
	uint32_t idx;
	const char *key;
	const struct prot_call_opts *opts;
	struct prot_detail *detail;
	uint64_t start_ns;
};

static void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed); /* statistics only */
}

static int hist_bucket(uint64_t ns)
{
	/* bucket i holds durations up to 2^(10+i) ns; the last one is +Inf */
	int b = ns <= 1024 ? 0 : 64 - __builtin_clzll(ns - 1) - 10;
	return b < PROT_HIST_BUCKETS - 1 ? b : PROT_HIST_BUCKETS - 1;
}

/* The LIVE breaker or pool slot a key's config points to, bounds-checked (the index comes from the
 * segment): true and *out (its index and the state word seen), false when the key has no such
 * layer. The key names its layers by index: no lookup by name. */
static bool live_slot(const struct prot_shm_header *h, int reg, uint64_t idx, struct slot_ref *out)
{
	if (idx == PROT_NO_INDEX || idx >= seg_count(h, reg))
		return false;
	struct prot_named *n = seg_entry(h, reg, (uint32_t)idx);
	/* acquire: pairs with protd's release of LIVE | gen (the slot's name and cfg are complete) */
	uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
	*out = (struct slot_ref){ .idx = (uint32_t)idx, .state = st };
	return SLOT_STATE(st) == SLOT_LIVE;
}

/* Same, for one call: false also when the call skips the layer. */
static bool layer_slot(const struct call_ctx *c, int reg, uint64_t idx, unsigned layer,
                       struct slot_ref *out)
{
	return !(c->opts && (c->opts->skip & layer)) && live_slot(c->h, reg, idx, out);
}

/* Name the key in the detail of a failed call (bounded: a name from the caller). */
static void detail_key(struct call_ctx *c)
{
	size_t n = strnlen(c->key, sizeof c->detail->key - 1);
	memcpy(c->detail->key, c->key, n);
	c->detail->key[n] = 0;
}

static int refuse(struct call_ctx *c, unsigned layer, int err)
{
	c->detail->layer = layer;
	detail_key(c);
	PROT_TEL(c->p, PROT_TEL_PROTECTION_TRIGGERED, .layer = layer, .result = err, .key = c->key,
	         .entity = c->opts ? c->opts->entity : NULL);
	return err;
}

/* ONE CONFIGURATION PER CALL. protd makes hdr.config_gen odd while it applies a change (a reload
 * or a runtime set: every slot it touches) and even again after (release). The key's block and
 * the blocks of its breaker and pool are copied between two loads of the generation: equal and
 * even means every layer of this call comes from one applied configuration. A generation that
 * stays odd or keeps moving is waited for SEQ_PATIENCE_NS, and up to SEQ_PATIENCE_ALIVE_NS (100 ms)
 * while protd lives (a descheduled writer is slow, not dead; an odd generation protd did not make
 * is ended by its next tick); a protd that died mid-change leaves it odd
 * until its successor ends it, and then each layer is still whole (its own seqlock), only not
 * necessarily of the same change. Cost on the hot path: two loads of a line only protd writes. */
static int read_layers(struct call_ctx *c)
{
	struct seq_wait w = { 0 };
	struct prot_idv v;
	bool have_v = false;
	do {
		/* acquire: pairs with protd's release of the even generation (daemon/shm.c) */
		uint64_t g0 = atomic_load_explicit(&c->h->config_gen, memory_order_acquire);
		int r = seq_read_at(&c->slot->seq, &c->slot->cfg, &c->cfg, sizeof c->cfg / 8, &c->cfg_seq);
		if (r < 0)
			return r;
		c->has_breaker = layer_slot(c, REG_BREAKERS, c->cfg.breaker_index, PROT_LAYER_BREAKER, &c->breaker);
		c->has_pool = layer_slot(c, REG_POOLS, c->cfg.pool_index, PROT_LAYER_POOL, &c->pool);
		if (c->has_breaker && (r = breaker_cfg_snap(c->h, c->breaker.idx, &c->bcfg)) < 0)
			return r;
		if (c->has_pool && (r = pool_cfg_snap(c->h, c->pool.idx, &c->pcfg)) < 0)
			return r;
		if (!(g0 & 1) && !seq_read_retry(&c->h->config_gen, g0))
			return 0;
		if (w.tries == SEQ_SPINS && !have_v) {
			prot_idv(c->p, c->h, &v); /* only a long wait asks whether protd lives */
			have_v = true;
		}
	} while (seq_wait_writer(&w, have_v ? &v : NULL));
	return 0; /* whole layers, perhaps of two changes: better than no call at all */
}

static int step_rate(struct call_ctx *c)
{
	const struct prot_call_opts *o = c->opts;
	if (!rate_cfg_on(&c->cfg) || (o && (o->skip & PROT_LAYER_RATE)))
		return 0;
	const char *entity = o && o->entity ? o->entity : "";
	uint64_t cost = o && o->cost ? o->cost : 1;
	struct prot_rate_info info;
	/* The key's limits, rate_on_full policy, counters and rate_clock from this call's one
	 * configuration read (read_layers), with or without an operation naming the buckets; the
	 * call's start time serves a key on the monotonic clock: one clock read less per call. */
	int r = rate_check_ref(c->p, c->h, &c->kref, c->key, o ? o->operation : NULL, &c->cfg,
	                       c->cfg_seq, entity, cost, c->start_ns, &info);
	if (r == 1)
		return 0;
	if (r == 0) {
		c->detail->retry_after_ms = info.retry_after_ms;
		return refuse(c, PROT_LAYER_RATE, -PROT_ERATELIMITED);
	}
	return refuse(c, PROT_LAYER_RATE, r);
}

static void account_call(struct call_ctx *c, int outcome, uint64_t dur)
{
	struct prot_key_stats *st = &c->slot->stats;
	stat_add(outcome == 0 ? &st->ok : outcome == -PROT_ETIMEOUT ? &st->timeouts : &st->failed, 1);
	stat_add(&st->latency_sum_ns, dur);
	stat_add(&st->latency_hist[hist_bucket(dur)], 1);
}

/* Steps 3 and 4: the pool (if any), waiting at most wait_ms, and the call under its deadline. */
static int step_call(struct call_ctx *c, bool breaker, prot_breaker_token *tok,
                     int (*fn)(const struct prot_call *), void *arg, uint64_t deadline,
                     int64_t wait_ms)
{
	struct prot_call call = {.deadline_ns = deadline, .arg = arg, .key = c->key};
	prot_lease lease;
	bool waited = false;
	int r;
	if (c->has_pool) {
		uint64_t now = c->start_ns; /* only a queued checkout takes long enough to matter */
		int64_t left = now < deadline ? (int64_t)((deadline - now) / 1000000u) : 0;
		left = left < wait_ms ? left : wait_ms;
		r = pool_checkout_idx(c->p, c->h, &c->pool, left, &c->pcfg, &lease, &call.conn, &waited);
		if (r < 0) {
			if (breaker)
				breaker_record_cfg(c->p, c->h, tok, PROT_OUTCOME_CANCEL, 0, now, &c->bcfg);
			if (r == -PROT_ECHECKOUT_TIMEOUT || r == -PROT_EPOOLFULL) {
				stat_add(&c->slot->stats.pool_timeouts, 1);
				r = -PROT_ECHECKOUT_TIMEOUT;
			}
			return refuse(c, PROT_LAYER_POOL, r);
		}
	}

	/* fn's own duration (latency histogram, slow-call detection) excludes a pool wait; without one,
	 * the layers took a few hundred ns and the start time serves: one clock read less */
	uint64_t t0 = waited ? prot_now_ns() : c->start_ns;
	int rc = fn(&call);
	uint64_t t1 = prot_now_ns();
	c->detail->fn_result = rc;
	if (c->has_pool)
		prot_pool_checkin(c->p, &lease, PROT_CHECKIN_OK);

	int outcome = rc < 0 ? -PROT_EFAILED : t1 > deadline ? -PROT_ETIMEOUT : 0;
	if (breaker)
		breaker_record_cfg(c->p, c->h, tok, outcome ? PROT_OUTCOME_FAILURE : PROT_OUTCOME_SUCCESS,
		                   t1 - t0, t1, &c->bcfg);
	account_call(c, outcome, t1 - t0);
	if (outcome) {
		c->detail->layer = PROT_LAYER_CALL;
		detail_key(c);
		PROT_TEL(c->p, PROT_TEL_EXECUTE_EXCEPTION, .layer = PROT_LAYER_CALL, .result = outcome,
		         .duration_ns = t1 - c->start_ns, .key = c->key);
	}
	return outcome;
}

/* The longest the library may wait (the pool checkout) and the call's own timeout, in ms. The
 * caller's timeout_ms bounds both; timeout_ms = 0 means "do not wait": the checkout does not queue
 * and the call keeps the key's timeout (a zero deadline would make every success a timeout). */
static void call_timeouts(const struct call_ctx *c, int64_t *wait_ms, int64_t *call_ms)
{
	int64_t key = c->cfg.timeout_ms ? (int64_t)c->cfg.timeout_ms : PROT_DEFAULT_TIMEOUT_MS;
	int64_t t = c->opts && c->opts->timeout_ms >= 0 ? c->opts->timeout_ms : key;
	*wait_ms = t;
	*call_ms = t ? t : key;
}

PROT_API int prot_execute(prot_t *p, const char *key, const struct prot_call_opts *opts,
                          int (*fn)(const struct prot_call *call), void *arg,
                          struct prot_detail *detail)
{
	struct prot_detail scratch;
	struct prot_detail *d = detail ? detail : &scratch;
	/* the detail describes failures: zero only what a success reports, fill the rest when it
	 * fails (the key name is copied then, not on every call) */
	d->layer = PROT_LAYER_NONE, d->retry_after_ms = 0, d->fn_result = 0, d->key[0] = 0;
	d->message[0] = 0;
	int g = prot_gate(p, true);
	if (g < 0)
		return g;
	if (!key || !fn)
		return -EINVAL;

	/* Field by field: zeroing the whole context (its configuration copies are most of it, and
	 * read_layers writes them) costs a rep stos longer than the rate decision. */
	struct call_ctx c;
	c.p = p, c.key = key, c.opts = opts, c.detail = d;
	c.h = prot_hdr(p);
	/* One resolution of the key per call: its slot, its name's hash and its rate parameters. */
	int kr = rate_key_resolve(p, c.h, key, &c.kref);
	if (kr < 0) {
		detail_key(&c);
		return kr;
	}
	c.idx = c.kref.idx;
	c.slot = seg_entry(c.h, REG_KEYS, c.idx);
	int tr = read_layers(&c);
	if (tr < 0) {
		detail_key(&c);
		return tr;
	}

	c.start_ns = prot_now_ns();
	int64_t wait_ms, call_ms;
	call_timeouts(&c, &wait_ms, &call_ms);
	uint64_t deadline = c.start_ns + (uint64_t)call_ms * 1000000u;
	stat_add(&c.slot->stats.calls, 1);
	PROT_TEL(p, PROT_TEL_EXECUTE_START, .key = key, .entity = opts ? opts->entity : NULL);

	int r = step_rate(&c);
	if (r)
		return r;

	prot_breaker_token tok;
	if (c.has_breaker) {
		r = breaker_allow_cfg(p, c.h, c.breaker.idx, 0, &c.bcfg, &tok);
		if (r == -PROT_EBLOWN)
			stat_add(&c.slot->stats.breaker_rejected, 1);
		if (r < 0)
			return refuse(&c, PROT_LAYER_BREAKER, r);
	}

	r = step_call(&c, c.has_breaker, &tok, fn, arg, deadline, wait_ms);
	PROT_TEL(p, PROT_TEL_EXECUTE_STOP, .result = r, .duration_ns = prot_now_ns() - c.start_ns,
	         .key = key, .entity = opts ? opts->entity : NULL);
	return r;
}

/* Every layer of key idx, as one read (no generation check: see prot_get_protection_status). */
static int status_read(struct prot_shm_header *h, uint32_t idx, const char *key,
                       struct prot_protection_status *out)
{
	struct prot_key_slot *slot = seg_entry(h, REG_KEYS, idx);
	struct prot_key_cfg cfg;
	int tr = seq_read(&slot->seq, &slot->cfg, &cfg, sizeof cfg / 8);
	if (tr < 0)
		return tr;

	struct prot_protection_status st;
	memset(&st, 0, sizeof st);
	snprintf(st.key, sizeof st.key, "%s", key);
	st.has_rate = rate_cfg_on(&cfg);
	st.rate = (struct prot_rate_limit){.algo = (uint32_t)cfg.rate_algo, .limit = cfg.rate_limit,
	                                   .window_ms = cfg.rate_window_ms, .burst = cfg.rate_burst};
	struct rate_totals rt;
	if (rate_keys_totals(h, 1, &idx, &rt) == 0)
		st.rate_buckets = rt.buckets, st.rate_allowed = rt.allowed, st.rate_denied = rt.denied;
	st.rate_table_full = atomic_load_explicit(&slot->stats.rate_table_full, memory_order_relaxed);
	st.timeout_ms = cfg.timeout_ms ? cfg.timeout_ms : PROT_DEFAULT_TIMEOUT_MS;
	st.calls = atomic_load_explicit(&slot->stats.calls, memory_order_relaxed);
	st.ok = atomic_load_explicit(&slot->stats.ok, memory_order_relaxed);
	st.failed = atomic_load_explicit(&slot->stats.failed, memory_order_relaxed);
	st.timeouts = atomic_load_explicit(&slot->stats.timeouts, memory_order_relaxed);

	struct slot_ref b, pl;
	st.has_breaker = live_slot(h, REG_BREAKERS, cfg.breaker_index, &b) &&
	                 breaker_status_idx(h, b.idx, 0, &st.breaker) == 0;
	st.has_pool = live_slot(h, REG_POOLS, cfg.pool_index, &pl) && pool_status_idx(h, pl.idx, &st.pool) == 0;
	*out = st;
	return 0;
}

/* All layers from one applied configuration, as prot_execute reads them (read_layers): between two
 * equal, even loads of the configuration generation; a generation that stays odd or keeps moving
 * is waited for SEQ_PATIENCE_NS at most, then the last whole read is returned. */
PROT_API int prot_get_protection_status(prot_t *p, const char *key,
                                        struct prot_protection_status *out)
{
	struct prot_shm_header *h;
	struct slot_ref ref;
	int rc = out ? prot_lookup(p, REG_KEYS, key, false, &h, &ref) : -EINVAL;
	if (rc < 0)
		return rc;
	struct prot_protection_status st;
	struct seq_wait w = { 0 };
	struct prot_idv v;
	prot_idv(p, h, &v);
	do {
		/* acquire: pairs with protd's release of the even generation */
		uint64_t g0 = atomic_load_explicit(&h->config_gen, memory_order_acquire);
		int r = status_read(h, ref.idx, key, &st);
		if (r < 0)
			return r;
		if (!(g0 & 1) && !seq_read_retry(&h->config_gen, g0))
			break;
	} while (seq_wait_writer(&w, &v));
	*out = st;
	return 0;
}
