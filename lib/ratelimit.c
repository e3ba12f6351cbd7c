/* ratelimit.c — the rate limiter's entry points: the public prot_rate_* functions, the hidden forms
 * the facade (rate_check_cfg), protctl and the tests call; how a decision names its bucket
 * (rate_id_make: (operation, entity) encoded into the words a bucket stores and compares, plus
 * the hash that places it) and the per-handle memo (struct rate_op_cache, internal.h) that spares
 * it hashing its operation name or searching for its key again; a protection key's rate
 * configuration read from its slot (rate_key_cfg) and turned into decision parameters
 * (rate_params_of_key); and what a full table means for a call (the key's rate_on_full policy,
 * its counters and events). The table itself is rate_table.c, the arithmetic rate_algo.c, the
 * read-only views rate_view.c, the operation names rate_ops.c. The status (rate_status_bin_h, on
 * rate_view.c's rate_view_find) and reset (rate_reset_bin_h, on rate_table_reset) entry points
 * are here too: they name their buckets with rate_id_make (any scale for a reset).
 * The naming and the memo sit here, with the decisions, because a decision's cost is mostly
 * theirs: in one file the compiler inlines them into each entry point.
 *
 * IDENTITY. A bucket is (operation, entity, algorithm, window), as Hammer keys a bucket per scale:
 * two scales on one entity are two buckets, each exact; the limit is not part of it. The entity is
 * compared exactly: its bytes (at most PROT_ENTITY_MAX = 64, any bytes with the _bin forms;
 * longer is PROT_ETOOLONG, never truncated) and its length are stored in ent_head/ent_tail and
 * ent_len. The operation is a program constant and is compared by a 64-bit keyed hash plus its
 * length (op_hash = SipHash(segment key, name), op_len); its name is kept once, in the operation
 * registry (rate_ops.c), noted when a decision inserts a bucket. Window and algorithm are one
 * word of the bucket (scale, rate_table.h), compared with the rest. For a protection key (prot_rate_check_key,
 * prot_execute) the operation is the key's name, or the call's opts->operation. The group, tag and
 * home slot come from SipHash(segment key ^ (op_hash, 0), entity) — not from the scale, so every
 * scale of an entity shares its group (see TABLE in rate_table.c) and a reset finds them all.
 *
 * THE MEMO. An entry is a small seqlock (see struct rate_op_cache): a reader that overlaps a writer
 * fails and computes, never tears. A key slot remembered there is trusted only while the slot's
 * state word (generation included) is the one seen when the name was compared.
 *
 * ONE FORM OF A LIMIT. A decision runs on struct rate_params (rate_algo.h), derived once per
 * decision: from the key's configuration words as read from its slot (a key's decision; the
 * facade passes the configuration it read for the whole call), or from the caller's struct
 * prot_rate_limit at the edge (prot_rate_check_n, prot_rate_status; Hammer-style calls).
 *
 * CLOCK. One clock read per decision (rate_clock.c): CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE for
 * keys with rate_clock = coarse (resolution: clock_getres(), typically 4 ms: a window boundary or
 * a GCRA emission can be seen up to that late), the calendar for rate_clock = realtime. A caller
 * that has just read CLOCK_MONOTONIC (the facade: the call's start) passes that reading, which
 * serves a key on the monotonic clock.
 */
#include <errno.h>

#include "rate_global.h"
#include "rate_sliding.h"

/* ---- operation hashes, memoised per handle (see struct rate_op_cache) ------------------------- */

static struct rate_op_cache *opc_slot(prot_t *p, const char *op, size_t ol)
{
	return &p->rate_ops[(ol * 31 + (uint8_t)op[0] + (uint8_t)op[ol - 1]) % RATE_OP_CACHE];
}

/* What an entry remembers about one name: its hash, and if the name is a protection key's, the
 * key's slot and the slot's state word when it was resolved (key_state 0: not resolved). */
struct opc_val {
	uint64_t op_hash;
	uint32_t key_idx, key_state;
};

/* Words of the cache entry are read with relaxed atomics inside the seqlock: a concurrent writer
 * makes the read fail, never tear. */
static bool opc_get(struct rate_op_cache *c, const struct prot_shm_header *h, const uint64_t *opw,
                    size_t ol, struct opc_val *out)
{
	/* acquire: pairs with the writer's release of an even seq */
	uint32_t s = atomic_load_explicit(&c->seq, memory_order_acquire);

	if ((s & 1) || __atomic_load_n(&c->h, __ATOMIC_RELAXED) != h ||
	    __atomic_load_n(&c->len, __ATOMIC_RELAXED) != ol)
		return false;
	for (size_t k = 0; k < (ol + 7) / 8; k++)
		if (__atomic_load_n(&c->op[k], __ATOMIC_RELAXED) != opw[k])
			return false;
	struct opc_val v = {.op_hash = __atomic_load_n(&c->op_hash, __ATOMIC_RELAXED),
	                    .key_idx = __atomic_load_n(&c->key_idx, __ATOMIC_RELAXED),
	                    .key_state = __atomic_load_n(&c->key_state, __ATOMIC_RELAXED)};
	if (seq_read_retry(&c->seq, s))
		return false;
	*out = v;
	return true;
}

static void opc_put(struct rate_op_cache *c, const struct prot_shm_header *h, const uint64_t *opw,
                    size_t ol, const struct opc_val *v)
{
	uint32_t s = atomic_load_explicit(&c->seq, memory_order_relaxed);

	/* relaxed CAS + release fence: the odd seq is visible before any word changes (seqlock
	 * writer); a thread that loses the CAS simply does not memoise */
	if ((s & 1) || !atomic_compare_exchange_strong_explicit(&c->seq, &s, s + 1, memory_order_relaxed,
	                                                        memory_order_relaxed))
		return;
	atomic_thread_fence(memory_order_release);
	__atomic_store_n(&c->h, h, __ATOMIC_RELAXED);
	__atomic_store_n(&c->len, (uint32_t)ol, __ATOMIC_RELAXED);
	for (size_t k = 0; k < (ol + 7) / 8; k++)
		__atomic_store_n(&c->op[k], opw[k], __ATOMIC_RELAXED);
	__atomic_store_n(&c->op_hash, v->op_hash, __ATOMIC_RELAXED);
	__atomic_store_n(&c->key_idx, v->key_idx, __ATOMIC_RELAXED);
	__atomic_store_n(&c->key_state, v->key_state, __ATOMIC_RELAXED);
	/* release: the words above happen before a reader acquires this even seq */
	atomic_store_explicit(&c->seq, s + 2, memory_order_release);
}

/* s[0..n) as little-endian words, zero-padded, built in registers: reads no byte outside s[0..n)
 * and never reloads narrow stores as a wide word (a store-forwarding stall costs more than the
 * rest of a decision). */
static inline uint64_t load_tail(const char *s, size_t n) /* 0 < n < 8 */
{
	if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, s, 4);
		memcpy(&b, s + n - 4, 4);
		return a | (uint64_t)b << (8 * (n - 4)); /* the overlap ORs equal bytes */
	}
	return (uint64_t)(uint8_t)s[0] | (uint64_t)(uint8_t)s[n / 2] << (8 * (n / 2)) |
	       (uint64_t)(uint8_t)s[n - 1] << (8 * (n - 1));
}

static inline void to_words(uint64_t *w, const char *s, size_t n)
{
	size_t k = 0;

	for (; k < n / 8; k++)
		memcpy(&w[k], s + 8 * k, 8);
	if (n % 8)
		w[k] = load_tail(s + 8 * k, n % 8);
}

static uint64_t op_hash_of(prot_t *p, const struct prot_shm_header *h, const char *op, size_t ol,
                           const uint64_t *opw)
{
	struct rate_op_cache *c;
	struct opc_val v;

	if (!p)
		return prot_siphash(h->hash_key, op, ol);
	c = opc_slot(p, op, ol);
	if (opc_get(c, h, opw, ol, &v))
		return v.op_hash;
	v = (struct opc_val){.op_hash = prot_siphash(h->hash_key, op, ol)};
	opc_put(c, h, opw, ol, &v);
	return v.op_hash;
}

/* Key NAME's slot index, remembered per handle with the slot's state word: while that word is
 * unchanged the slot holds the same key (protd bumps the generation in it on every reuse), so a
 * hit costs one load instead of a search. Errors as seg_find. */
static inline __attribute__((always_inline)) int key_lookup(prot_t *p, struct prot_shm_header *h,
                                                             const char *name)
{
	uint64_t opw[(PROT_OP_MAX + 8) / 8] = {0};
	size_t ol = strnlen(name, PROT_NAME_MAX + 1);
	struct rate_op_cache *c;
	struct opc_val v;
	bool known;

	if (ol == 0 || ol > PROT_NAME_MAX)
		return seg_find(h, REG_KEYS, name);
	to_words(opw, name, ol);
	c = opc_slot(p, name, ol);
	known = opc_get(c, h, opw, ol, &v);
	if (known && v.key_state && v.key_idx < seg_count(h, REG_KEYS)) {
		struct prot_key_slot *k = seg_entry(h, REG_KEYS, v.key_idx);
		/* acquire: pairs with protd's release of LIVE; the caller then reads the cfg */
		if (atomic_load_explicit(&k->state, memory_order_acquire) == v.key_state)
			return (int)v.key_idx;
	}
	int idx = seg_find(h, REG_KEYS, name);
	if (idx < 0)
		return idx;
	struct prot_key_slot *k = seg_entry(h, REG_KEYS, (uint32_t)idx);
	uint32_t st = atomic_load_explicit(&k->state, memory_order_acquire); /* as above */
	/* remember it only if the slot provably held this name under st */
	if (SLOT_STATE(st) != SLOT_LIVE || memcmp(k->name, name, ol + 1) != 0)
		return idx;
	if (seq_read_retry(&k->state, st)) /* the compare happens before the re-check */
		return idx;
	v = (struct opc_val){.op_hash = known ? v.op_hash : prot_siphash(h->hash_key, name, ol),
	                     .key_idx = (uint32_t)idx, .key_state = st};
	opc_put(c, h, opw, ol, &v);
	return idx;
}

int rate_id_make(prot_t *p, const struct prot_shm_header *h, const char *op, const void *entity,
                 size_t el, const struct rate_params *rp, struct rate_id *id)
{
	uint64_t opw[(PROT_OP_MAX + 8) / 8] = {0};
	size_t ol;

	if (!op || (!entity && el))
		return -EINVAL;
	ol = strnlen(op, PROT_OP_MAX + 1);
	if (ol > PROT_OP_MAX || el > PROT_ENTITY_MAX)
		return -PROT_ETOOLONG;
	if (ol == 0)
		return -EINVAL;
	memset(id->ent, 0, sizeof id->ent);
	if (el)
		to_words(id->ent, entity, el);
	to_words(opw, op, ol);
	id->id0 = (uint32_t)(ol | el << 8);
	id->scale = rp ? SCALE(rp->tag, rp->window_ms) : 0;
	id->scale_mask = rp ? ~0ull : 0;
	id->ent_len = (uint8_t)el;
	id->ent_words = el <= 16 ? 2 : (uint32_t)(el + 7) / 8;
	id->op_hash = op_hash_of(p, h, op, ol, opw);
	/* The lookup hash: SipHash of the entity under the segment key offset by the operation's
	 * hash — a key per operation, one pass over the entity. */
	const uint64_t k[2] = {h->hash_key[0] ^ id->op_hash, h->hash_key[1]};
	uint64_t x = prot_siphash(k, id->ent, el);
	id->group = (uint32_t)x & (seg_geo(h)->rate_groups - 1);
	id->tag = (uint8_t)(x >> 56);
	id->home = (uint8_t)(x >> 48) % RATE_GROUP_SLOTS;
	return 0;
}

/* A C-string entity's length, bounded: a longer one is refused by rate_id_make (PROT_ETOOLONG). */
static size_t ent_strlen(const char *entity)
{
	return entity ? strnlen(entity, PROT_ENTITY_MAX + 1) : 0;
}

/* ---- what a call means for the table ------------------------------------------------------- */

/* What a full group means for this call, and how the call is reported. */
struct rate_policy {
	uint64_t full;             /* RATE_FULL_* */
	struct prot_key_stats *ks; /* the key's counters, or NULL (no key) */
	uint32_t key_idx;          /* PROT_NO_INDEX: no key */
	const char *key;           /* the key's name, or NULL */
	const char *op;            /* the operation naming the buckets (a key's: its name by default) */
	const char *entity;        /* for telemetry only (NULL for a binary entity) */
};

static int table_full(struct prot_shm_header *h, const struct rate_policy *pol,
                      const struct rate_params *rp, struct prot_rate_info *info)
{
	/* relaxed: statistics */
	uint64_t n = atomic_fetch_add_explicit(&h->rate_table_full, 1, memory_order_relaxed) + 1;
	if (pol->ks)
		atomic_fetch_add_explicit(&pol->ks->rate_table_full, 1, memory_order_relaxed);
	if ((n & (n - 1)) == 0) /* 1st, 2nd, 4th, 8th...: visible without flooding the ring */
		prot_event_emit(h, EV_RATE_TABLE_FULL, pol->key_idx, pol->key ? pol->key : pol->op, n,
		                pol->full);
	if (pol->full != RATE_FULL_ALLOW)
		return -PROT_ETABLEFULL;
	if (info)
		*info = (struct prot_rate_info){.allowed = 1, .limit = rp->limit, .window_ms = rp->window_ms};
	return 1;
}

/* One decision on validated rp: 1 admitted, 0 denied, or the policy's answer to a full table.
 * Inline: the table's charge is then the only call between an entry point and the table. */
static inline int rate_run(struct prot_shm_header *h, prot_t *p, const struct rate_id *id,
                    const struct rate_params *rp, uint64_t cost, uint64_t now,
                    const struct rate_policy *pol, struct prot_rate_info *info)
{
	int res = rate_table_charge(h, p, id, rp, cost, now, info);

	if (res == RATE_TABLE_FULL)
		return table_full(h, pol, rp, info);
	if (unlikely(res & RATE_INSERTED)) { /* a new bucket: its operation's name, for protctl */
		rate_ops_note(h, pol->op, id->id0 & 0xff, id->op_hash);
		if (rp->tag & RATE_TAG_GLOBAL) /* protd leases for it from its next round */
			rate_global_note(h, id->group);
		res &= ~RATE_INSERTED;
	}
	/* No per-key counter here: a line shared by every process and entity of the key would be
	 * written by every decision (denials included). The bucket counts (admissions on the line the
	 * CAS already owns, denials on line 1); a key's totals are its live buckets plus what removed
	 * buckets had counted (rate_keys_totals). */
	if (p)
		PROT_TEL(p, res ? PROT_TEL_RATE_ALLOWED : PROT_TEL_RATE_DENIED, .layer = PROT_LAYER_RATE,
		         .result = res, .key = pol->key, .operation = pol->op, .entity = pol->entity);
	return res;
}

/* ---- hidden entry points (protctl, facade, tests) -------------------------------------------- */

int rate_check_bin_h(prot_t *p, struct prot_shm_header *h, const char *op, const void *entity,
                     size_t el, const struct prot_rate_limit *lim, uint64_t cost, uint64_t now_ns,
                     struct prot_rate_info *info)
{
	struct rate_params rp;
	struct rate_id id;
	struct rate_policy pol = {.full = RATE_FULL_DENY, .key_idx = PROT_NO_INDEX, .op = op};
	int r;

	rate_params_of_limit(lim, &rp); /* the public form, converted once */
	r = rate_id_make(p, h, op, entity, el, &rp, &id);
	if (r == 0)
		r = rate_params_cost(&rp, cost);
	if (r == 0)
		r = rate_sliding_fits(h, &rp);
	if (r < 0)
		return r;
	rp.clock_given = now_ns != 0;
	return rate_run(h, p, &id, &rp, cost, now_ns ? now_ns : prot_now_ns(), &pol, info);
}

int rate_check_h(prot_t *p, struct prot_shm_header *h, const char *op, const char *entity,
                 const struct prot_rate_limit *lim, uint64_t cost, uint64_t now_ns,
                 struct prot_rate_info *info)
{
	if (!entity)
		return -EINVAL;
	return rate_check_bin_h(p, h, op, entity, ent_strlen(entity), lim, cost, now_ns, info);
}

int rate_reset_bin_h(struct prot_shm_header *h, const char *op, const void *entity, size_t el)
{
	struct rate_id id;
	int r = rate_id_make(NULL, h, op, entity, el, NULL, &id); /* any scale */

	return r < 0 ? r : rate_table_reset(h, &id);
}

int rate_reset_h(struct prot_shm_header *h, const char *op, const char *entity)
{
	if (!entity)
		return -EINVAL;
	return rate_reset_bin_h(h, op, entity, ent_strlen(entity));
}

/* The rate fields lead struct prot_key_cfg: a decision copies those eight words, not sixteen. */
#define RATE_CFG_WORDS 8
_Static_assert(offsetof(struct prot_key_cfg, rate_allowance) == 8 * (RATE_CFG_WORDS - 1), "rate words");
_Static_assert(offsetof(struct prot_key_cfg, breaker_index) == 8 * RATE_CFG_WORDS, "then the rest");

int rate_key_cfg(struct prot_shm_header *h, uint32_t idx, struct prot_key_cfg *cfg)
{
	struct prot_key_slot *k;
	uint64_t w[RATE_CFG_WORDS];

	if (idx >= seg_count(h, REG_KEYS))
		return -PROT_ENOKEY;
	k = seg_entry(h, REG_KEYS, idx);
	/* acquire: pairs with protd's release of LIVE after writing the slot */
	uint32_t st0 = atomic_load_explicit(&k->state, memory_order_acquire);
	int r = seq_read(&k->seq, &k->cfg, w, RATE_CFG_WORDS); /* the rate fields only */
	if (r < 0)
		return r;
	if (SLOT_STATE(st0) != SLOT_LIVE || seq_read_retry(&k->state, st0))
		return -PROT_ENOKEY; /* recycled while we read */
	/* Field by field from registers: copying the struct through memory would reload the
	 * seq_read stores with wider loads, and a failed store-forward stalls for longer than the
	 * copy takes. */
	memset(&cfg->breaker_index, 0, sizeof *cfg - offsetof(struct prot_key_cfg, breaker_index));
	cfg->rate_limit = w[0];
	cfg->rate_window_ms = w[1];
	cfg->rate_burst = w[2];
	cfg->rate_algo = w[3];
	cfg->rate_full_policy = w[4];
	cfg->rate_clock = w[5];
	cfg->rate_scope = w[6];
	cfg->rate_allowance = w[7];
	return 0;
}

void rate_params_of_key(const struct prot_key_cfg *cfg, struct rate_params *rp)
{
	rate_params_make((uint32_t)cfg->rate_algo, cfg->rate_limit, cfg->rate_window_ms, cfg->rate_burst,
	                 rp);
	if (cfg->rate_clock == RATE_CLOCK_REALTIME)
		rate_params_realtime(rp);
	if (cfg->rate_scope == RATE_SCOPE_GLOBAL)
		rate_global_params(cfg, rp);
}

/* A key's decision on an entity of el bytes; tel_entity: the entity for telemetry (NULL: binary). */
static inline __attribute__((always_inline)) int key_decide(prot_t *p, struct prot_shm_header *h, uint32_t idx, const char *key,
                             const char *op, const struct prot_key_cfg *cfg, const void *entity,
                             size_t el, const char *tel_entity, uint64_t cost, uint64_t now_ns,
                             struct prot_rate_info *info)
{
	struct prot_key_slot *k = seg_entry(h, REG_KEYS, idx);
	char name[PROT_NAME_BYTES];
	struct rate_params rp;
	struct rate_id id;
	int r;

	if (!rate_cfg_on(cfg)) { /* no limiter on this key: everything passes */
		if (info)
			*info = (struct prot_rate_info){.allowed = 1};
		return 1;
	}
	if (!key) { /* the slot's own name: copy it, bounded (the slot is shared memory) */
		memcpy(name, k->name, sizeof name);
		name[sizeof name - 1] = '\0';
		key = name;
	}
	if (!op)
		op = key;
	rate_params_of_key(cfg, &rp);
	if (unlikely(rp.tag & RATE_TAG_GLOBAL) && op != key && strcmp(op, key) != 0)
		return -EINVAL; /* a global key's buckets are named by the key (rate_global.c, NAMES) */
	r = rate_id_make(p, h, op, entity, el, &rp, &id);
	if (r == 0)
		r = rate_params_cost(&rp, cost);
	if (r == 0)
		r = rate_sliding_fits(h, &rp);
	if (r < 0)
		return r;
	struct rate_policy pol = {.full = cfg->rate_full_policy, .ks = &k->stats, .key_idx = idx,
	                          .key = key, .op = op, .entity = tel_entity};
	return rate_run(h, p, &id, &rp, cost, rate_clock_now(cfg->rate_clock, now_ns), &pol, info);
}

int rate_check_cfg(prot_t *p, struct prot_shm_header *h, uint32_t idx, const char *key,
                   const char *op, const struct prot_key_cfg *cfg, const char *entity,
                   uint64_t cost, uint64_t now_ns, struct prot_rate_info *info)
{
	if (!entity && rate_cfg_on(cfg))
		return -EINVAL;
	return key_decide(p, h, idx, key, op, cfg, entity, ent_strlen(entity), entity, cost, now_ns,
	                  info);
}

int rate_check_key_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx, const char *key,
                       const char *entity, uint64_t cost, struct prot_rate_info *info)
{
	struct prot_key_cfg cfg;
	int r = rate_key_cfg(h, idx, &cfg);

	return r < 0 ? r : rate_check_cfg(p, h, idx, key, NULL, &cfg, entity, cost, 0, info);
}

/* The status of (op, entity) under rp, as rate_status_h describes it: the whole status. */
int rate_status_bin_h(struct prot_shm_header *h, const char *op, const void *entity, size_t el,
                      const struct rate_params *rp, uint64_t now_ns, struct prot_rate_status *out)
{
	struct rate_id id;
	int r = rate_id_make(NULL, h, op, entity, el, rp, &id);

	if (r == 0)
		r = rate_params_cost(rp, 0);
	if (r == 0)
		r = rate_sliding_fits(h, rp);
	if (r < 0)
		return r;
	if (!out)
		return -EINVAL;
	if (!now_ns) /* on the clock of rp's buckets */
		now_ns = rate_clock_now(rate_clock_of_tag(rp->tag), 0);
	return rate_view_find(h, &id, rp, now_ns, out);
}

int rate_status_h(struct prot_shm_header *h, const char *op, const char *entity,
                  const struct rate_params *rp, uint64_t now_ns, struct prot_rate_info *out)
{
	struct prot_rate_status st;
	int r;

	if (!entity || !out)
		return -EINVAL;
	r = rate_status_bin_h(h, op, entity, ent_strlen(entity), rp, now_ns, &st);
	if (r == 0)
		*out = st.info;
	return r;
}

/* ---- public API ------------------------------------------------------------------------------- */

int prot_rate_check_bin(prot_t *p, const char *operation, const void *entity, size_t entity_len,
                        const struct prot_rate_limit *lim, uint64_t cost, struct prot_rate_info *info)
{
	int g = prot_gate(p, true); /* deciding writes the segment */
	if (g < 0)
		return g;
	return rate_check_bin_h(p, prot_hdr(p), operation, entity, entity_len, lim, cost, 0, info);
}

int prot_rate_check_n(prot_t *p, const char *operation, const char *entity,
                      const struct prot_rate_limit *lim, uint64_t cost, struct prot_rate_info *info)
{
	int g = prot_gate(p, true); /* deciding writes the segment */
	if (g < 0)
		return g;
	return rate_check_h(p, prot_hdr(p), operation, entity, lim, cost, 0, info);
}

int prot_rate_check(prot_t *p, const char *operation, const char *entity, uint64_t limit,
                    uint64_t window_ms, struct prot_rate_info *info)
{
	struct prot_rate_limit lim = {.algo = PROT_RATE_FIXED_WINDOW, .limit = limit,
	                              .window_ms = window_ms};
	return prot_rate_check_n(p, operation, entity, &lim, 1, info);
}

/* Key NAME's slot and its rate configuration, for a call that may write (decisions) or not. */
static int key_of(prot_t *p, const char *key, bool write, uint32_t *idx, struct prot_key_cfg *cfg)
{
	int g = prot_gate(p, write);
	if (g < 0)
		return g;
	if (!key)
		return -EINVAL;
	int r = key_lookup(p, prot_hdr(p), key);
	if (r < 0)
		return r;
	*idx = (uint32_t)r;
	return rate_key_cfg(prot_hdr(p), *idx, cfg);
}

int prot_rate_check_key_bin(prot_t *p, const char *key, const void *entity, size_t entity_len,
                            uint64_t cost, struct prot_rate_info *info)
{
	struct prot_key_cfg cfg;
	uint32_t idx;
	int r = key_of(p, key, true, &idx, &cfg);

	return r < 0 ? r : key_decide(p, prot_hdr(p), idx, key, NULL, &cfg, entity, entity_len, NULL,
	                              cost, 0, info);
}

int prot_rate_check_key(prot_t *p, const char *key, const char *entity, uint64_t cost,
                        struct prot_rate_info *info)
{
	struct prot_shm_header *h;
	int idx;

	int g = prot_gate(p, true);
	if (g < 0)
		return g;
	if (!key)
		return -EINVAL;
	h = prot_hdr(p);
	idx = key_lookup(p, h, key);
	if (idx < 0)
		return idx;
	return rate_check_key_idx(p, h, (uint32_t)idx, key, entity, cost, info);
}

int prot_rate_execute_bin(prot_t *p, const char *operation, const void *entity, size_t entity_len,
                          const struct prot_rate_limit *lim, uint64_t cost, int (*fn)(void *arg),
                          void *arg, int *fn_result, struct prot_rate_info *info)
{
	struct prot_rate_info in;
	int r;

	if (!fn)
		return -EINVAL;
	r = prot_rate_check_bin(p, operation, entity, entity_len, lim, cost ? cost : 1, &in);
	if (r < 0)
		return r;
	if (info)
		*info = in;
	if (r == 0)
		return -PROT_ERATELIMITED;
	int res = fn(arg);
	if (fn_result)
		*fn_result = res;
	return 0;
}

int prot_rate_execute(prot_t *p, const char *operation, const char *entity,
                      const struct prot_rate_limit *lim, int (*fn)(void *arg), void *arg,
                      int *fn_result, struct prot_rate_info *info)
{
	if (!entity)
		return -EINVAL;
	return prot_rate_execute_bin(p, operation, entity, ent_strlen(entity), lim, 1, fn, arg,
	                             fn_result, info);
}

int prot_rate_status_bin(prot_t *p, const char *operation, const void *entity, size_t entity_len,
                         const struct prot_rate_limit *lim, struct prot_rate_status *out)
{
	struct rate_params rp;
	int g = prot_gate(p, false);

	if (g < 0)
		return g;
	rate_params_of_limit(lim, &rp); /* the public form, converted once */
	return rate_status_bin_h(prot_hdr(p), operation, entity, entity_len, &rp, 0, out);
}

int prot_rate_status(prot_t *p, const char *operation, const char *entity,
                     const struct prot_rate_limit *lim, struct prot_rate_info *out)
{
	struct rate_params rp;
	int g = prot_gate(p, false);

	if (g < 0)
		return g;
	rate_params_of_limit(lim, &rp); /* the public form, converted once */
	return rate_status_h(prot_hdr(p), operation, entity, &rp, 0, out);
}

int prot_rate_status_key(prot_t *p, const char *key, const void *entity, size_t entity_len,
                         struct prot_rate_status *out)
{
	struct prot_key_cfg cfg;
	struct rate_params rp;
	uint32_t idx;
	int r = key_of(p, key, false, &idx, &cfg);

	if (r < 0)
		return r;
	if (!rate_cfg_on(&cfg))
		return -EINVAL; /* no rate limiter: no bucket to describe */
	rate_params_of_key(&cfg, &rp);
	return rate_status_bin_h(prot_hdr(p), key, entity, entity_len, &rp, 0, out);
}

int prot_rate_reset_bin(prot_t *p, const char *operation, const void *entity, size_t entity_len)
{
	int g = prot_gate(p, true);
	if (g < 0)
		return g;
	return rate_reset_bin_h(prot_hdr(p), operation, entity, entity_len);
}

int prot_rate_reset(prot_t *p, const char *operation, const char *entity)
{
	int g = prot_gate(p, true);
	if (g < 0)
		return g;
	return rate_reset_h(prot_hdr(p), operation, entity);
}
