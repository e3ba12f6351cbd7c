/* ratelimit.c — the rate limiter's entry points: the public prot_rate_* functions, the hidden forms
 * the facade (rate_key_resolve, rate_check_ref), protctl and the tests call; how
 * a decision names its bucket (rate_id_make: (operation, entity) encoded into the words a bucket
 * stores and compares, plus the hash that places it, which a decision computes only when the
 * bucket memo, lib/rate_memo.h, does not know the bucket) and the per-handle name memo (struct
 * rate_op_cache, internal.h) that spares it hashing its operation name, searching for its key or
 * deriving its parameters again; a protection key's rate configuration read from its slot
 * (rate_key_cfg) and turned into decision parameters (rate_params_of_key, struct key_rate); and
 * what a full table means for a call (the key's rate_on_full policy,
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
 * THE NAME MEMO. An entry is a small seqlock (see struct rate_op_cache): a reader that overlaps a
 * writer fails and computes, never tears. A key slot remembered there is trusted only while the
 * slot's state word (generation included) is the one seen when the name was compared; the key's
 * decision parameters remembered with it (struct key_rate) only while, in addition, the slot's
 * cfg seqlock word is the even value they were derived under: protd writes a slot's configuration
 * only inside that seqlock's odd phase, so an unchanged word means unchanged words (up to its
 * 2^31 changes between two decisions of one handle). A hit costs two loads of the slot's first
 * line instead of a search, a seqlock copy and the conversion.
 *
 * ONE FORM OF A LIMIT. A decision runs on struct rate_params (rate_algo.h), derived once per
 * configuration of a key (kept in the name memo, above), or per call from the caller's struct
 * prot_rate_limit at the edge (prot_rate_check_n, prot_rate_status; Hammer-style calls). The
 * facade reads the whole key block once per call (its one configuration, lib/facade.c) and
 * decides on parameters derived under that copy's seqlock word (rate_check_ref): the memo's when
 * they are of that word, else converted from the copy.
 *
 * CLOCK. One clock read per decision (rate_clock.c): CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE for
 * keys with rate_clock = coarse (resolution: clock_getres(), typically 4 ms: a window boundary or
 * a GCRA emission can be seen up to that late) and for keys on auto where it cannot change what
 * they admit by more than one unit (rate_clock_resolve), the calendar for rate_clock = realtime. A
 * caller
 * that has just read CLOCK_MONOTONIC (the facade: the call's start) passes that reading, which
 * serves a key on the monotonic clock.
 */
#include <errno.h>

#include "rate_global.h"
#include "rate_memo.h"
#include "rate_sliding.h"
#include "words.h"

/* ---- operation hashes, memoised per handle (see struct rate_op_cache) ------------------------- */

/* The entry of a name, from its first word and length (in registers already: re-reading the
 * name's bytes would wait for the load that found its length). */
static struct rate_op_cache *opc_slot(prot_t *p, const uint64_t *opw, size_t ol)
{
	_Static_assert(RATE_OP_CACHE == 8, "the index is 3 bits");
	return &p->rate_ops[((opw[0] ^ ol) * 0x9e3779b97f4a7c15ull) >> 61];
}

_Static_assert(sizeof(struct key_rate) == sizeof(((struct rate_op_cache *)0)->key_rate),
               "a memo entry holds a key's decision parameters (struct key_rate, internal.h)");

/* What an entry remembers about one name: its hash, and if the name is a protection key's, the
 * key's slot and the slot's state word when it was resolved (key_state 0: not resolved). */
struct opc_val {
	uint64_t op_hash;
	uint32_t key_idx, key_state;
};

/* No decision parameters: what an entry written for an operation's hash alone holds. */
static const struct key_rate no_key_rate = {.seq = 1};

/* Words of the cache entry are read with relaxed atomics inside the seqlock: a concurrent writer
 * makes the read fail, never tear. kr (may be NULL): the key_rate words (kr->seq odd: none). */
static inline __attribute__((always_inline)) bool
opc_get(struct rate_op_cache *c, const struct prot_shm_header *h, const uint64_t *opw, size_t ol,
        struct opc_val *out, struct key_rate *kr)
{
	/* acquire: pairs with the writer's release of an even seq */
	uint32_t s = atomic_load_explicit(&c->seq, memory_order_acquire);

	if ((s & 1) || __atomic_load_n(&c->h, __ATOMIC_RELAXED) != h ||
	    __atomic_load_n(&c->len, __ATOMIC_RELAXED) != ol)
		return false;
	for (size_t k = 0; k < (ol + 7) / 8; k++)
		if (__atomic_load_n(&c->op[k], __ATOMIC_RELAXED) != opw[k])
			return false;
	out->op_hash = __atomic_load_n(&c->op_hash, __ATOMIC_RELAXED);
	out->key_idx = __atomic_load_n(&c->key_idx, __ATOMIC_RELAXED);
	out->key_state = __atomic_load_n(&c->key_state, __ATOMIC_RELAXED);
	if (kr) {
		uint64_t *d = (uint64_t *)(void *)kr;
#pragma GCC unroll 13
		for (size_t k = 0; k < sizeof c->key_rate / 8; k++)
			d[k] = __atomic_load_n(&c->key_rate[k], __ATOMIC_RELAXED);
	}
	return !seq_read_retry(&c->seq, s);
}

/* kr NULL: no decision parameters (no_key_rate). */
static void opc_put(struct rate_op_cache *c, const struct prot_shm_header *h, const uint64_t *opw,
                    size_t ol, const struct opc_val *v, const struct key_rate *kr)
{
	uint32_t s;

	if (!memo_write_begin(&c->seq, &s))
		return;
	__atomic_store_n(&c->h, h, __ATOMIC_RELAXED);
	__atomic_store_n(&c->len, (uint32_t)ol, __ATOMIC_RELAXED);
	for (size_t k = 0; k < (ol + 7) / 8; k++)
		__atomic_store_n(&c->op[k], opw[k], __ATOMIC_RELAXED);
	__atomic_store_n(&c->op_hash, v->op_hash, __ATOMIC_RELAXED);
	__atomic_store_n(&c->key_idx, v->key_idx, __ATOMIC_RELAXED);
	__atomic_store_n(&c->key_state, v->key_state, __ATOMIC_RELAXED);
	const uint64_t *w = (const uint64_t *)(const void *)(kr ? kr : &no_key_rate);
	for (size_t k = 0; k < sizeof c->key_rate / 8; k++)
		__atomic_store_n(&c->key_rate[k], w[k], __ATOMIC_RELAXED);
	memo_write_end(&c->seq, s);
}

static uint64_t op_hash_of(prot_t *p, const struct prot_shm_header *h, const char *op, size_t ol,
                           const uint64_t *opw)
{
	struct rate_op_cache *c;
	struct opc_val v;

	if (!p)
		return prot_siphash(h->hash_key, op, ol);
	c = opc_slot(p, opw, ol);
	if (opc_get(c, h, opw, ol, &v, NULL))
		return v.op_hash;
	v = (struct opc_val){.op_hash = prot_siphash(h->hash_key, op, ol)};
	opc_put(c, h, opw, ol, &v, NULL);
	return v.op_hash;
}

/* Key idx's rate fields (cfg words 0 to RATE_CFG_WORDS - 1), read under its seqlock: 0, with the slot's state word
 * and the seqlock word they belong to in *st and *seq. */
static int key_cfg_read(struct prot_shm_header *h, uint32_t idx, struct prot_key_cfg *cfg,
                        uint32_t *st, uint32_t *seq);

/* cfg, read under the seqlock word seq (odd: not known), as a decision needs it. */
static void key_rate_of(const struct prot_key_cfg *cfg, uint32_t seq, struct key_rate *kr)
{
	rate_params_of_key(cfg, &kr->rp);
	kr->full = cfg->rate_full_policy;
	kr->clock = rate_clock_resolve(cfg->rate_clock, &kr->rp);
	kr->on = rate_cfg_on(cfg);
	kr->seq = seq;
}

/* Key idx's rate fields read now into *kr, and remembered in entry c with v when the slot still
 * holds the name v was resolved under (c NULL: not remembered). idx, or an error. */
static __attribute__((noinline)) int key_rate_read(struct rate_op_cache *c, struct prot_shm_header *h,
                                                   const uint64_t *opw, size_t ol, struct opc_val *v,
                                                   uint32_t idx, struct key_rate *kr)
{
	struct prot_key_cfg cfg;
	uint32_t st, seq;
	int r = key_cfg_read(h, idx, &cfg, &st, &seq);

	if (r < 0)
		return r;
	key_rate_of(&cfg, seq, kr);
	if (c && st == v->key_state)
		opc_put(c, h, opw, ol, v, kr);
	return (int)idx;
}

/* Key NAME's slot index, remembered per handle with the slot's state word: while that word is
 * unchanged the slot holds the same key (protd bumps the generation in it on every reuse), so a
 * hit costs one load instead of a search; and in *kr what a decision needs of its rate fields,
 * remembered with the cfg seqlock word: one more load. *on: the name's hash and length. Errors as
 * seg_find, or as reading the configuration. */
static inline __attribute__((always_inline)) int key_lookup(prot_t *p, struct prot_shm_header *h,
                                                             const char *name, struct rate_opname *on,
                                                             struct key_rate *kr)
{
	uint64_t opw[(PROT_OP_MAX + 8) / 8] = {0};
	size_t ol = str_words(name, PROT_NAME_MAX, opw);
	struct rate_op_cache *c;
	struct opc_val v;
	bool known;

	if (ol == 0 || ol > PROT_NAME_MAX) {
		int idx = seg_find(h, REG_KEYS, name);
		return idx < 0 ? idx : key_rate_read(NULL, h, opw, ol, &v, (uint32_t)idx, kr);
	}
	c = opc_slot(p, opw, ol);
	known = opc_get(c, h, opw, ol, &v, kr);
	if (known && v.key_state && v.key_idx < seg_count(h, REG_KEYS)) {
		struct prot_key_slot *k = seg_entry(h, REG_KEYS, v.key_idx);
		/* acquire: pairs with protd's release of LIVE; the caller then reads the cfg */
		if (atomic_load_explicit(&k->state, memory_order_acquire) == v.key_state) {
			*on = (struct rate_opname){.hash = v.op_hash, .len = (uint32_t)ol};
			/* acquire: pairs with protd's seq_write_end (the words kr was taken from) */
			if (!(kr->seq & 1) && atomic_load_explicit(&k->seq, memory_order_acquire) == kr->seq)
				return (int)v.key_idx;
			return key_rate_read(c, h, opw, ol, &v, v.key_idx, kr); /* reconfigured */
		}
	}
	int idx = seg_find(h, REG_KEYS, name);
	if (idx < 0)
		return idx;
	struct prot_key_slot *k = seg_entry(h, REG_KEYS, (uint32_t)idx);
	uint32_t st = atomic_load_explicit(&k->state, memory_order_acquire); /* as above */
	/* remember it only if the slot provably held this name under st */
	bool proven = SLOT_STATE(st) == SLOT_LIVE && memcmp(k->name, name, ol + 1) == 0 &&
	              !seq_read_retry(&k->state, st); /* the compare happens before the re-check */
	v = (struct opc_val){.op_hash = known ? v.op_hash : prot_siphash(h->hash_key, name, ol),
	                     .key_idx = (uint32_t)idx, .key_state = st};
	if (proven)
		*on = (struct rate_opname){.hash = v.op_hash, .len = (uint32_t)ol};
	return key_rate_read(proven ? c : NULL, h, opw, ol, &v, (uint32_t)idx, kr);
}

/* The operation part of id: op's hash (memoised per handle) and length, or on's when the caller
 * has them (a key's own name: key_lookup). */
static inline int id_op(prot_t *p, const struct prot_shm_header *h, const char *op,
                        const struct rate_opname *on, struct rate_id *id)
{
	uint64_t opw[(PROT_OP_MAX + 8) / 8] = {0};
	size_t ol;

	if (!op)
		return -EINVAL;
	if (on && on->len) {
		id->op_hash = on->hash;
		return (int)on->len;
	}
	ol = str_words(op, PROT_OP_MAX, opw);
	if (ol > PROT_OP_MAX)
		return -PROT_ETOOLONG;
	if (ol == 0)
		return -EINVAL;
	id->op_hash = op_hash_of(p, h, op, ol, opw);
	return (int)ol;
}

/* The rest of id once its entity words are in id->ent: lengths, scale; not its place. */
static inline int id_finish(struct rate_id *id, int ol, size_t el, const struct rate_params *rp)
{
	if (ol < 0)
		return ol;
	id->id0 = (uint32_t)((size_t)ol | el << 8);
	id->scale = rp ? SCALE(rp->tag, rp->window_ms) : 0;
	id->scale_mask = rp ? ~0ull : 0;
	id->ent_len = (uint8_t)el;
	id->ent_words = el <= 16 ? 2 : (uint32_t)(el + 7) / 8;
	return 0;
}

/* id naming (op, entity[0..el)), without its place (rate_id_place). */
static inline int id_name_bin(prot_t *p, const struct prot_shm_header *h, const char *op,
                              const struct rate_opname *on, const void *entity, size_t el,
                              const struct rate_params *rp, struct rate_id *id)
{
	if (!entity && el)
		return -EINVAL;
	if (el > PROT_ENTITY_MAX)
		return op ? -PROT_ETOOLONG : -EINVAL;
	memset(id->ent, 0, sizeof id->ent);
	if (el)
		to_words(id->ent, entity, el);
	return id_finish(id, id_op(p, h, op, on, id), el, rp);
}

/* ... of a C-string entity: its length found while its words are loaded. */
static inline int id_name_str(prot_t *p, const struct prot_shm_header *h, const char *op,
                              const struct rate_opname *on, const char *entity,
                              const struct rate_params *rp, struct rate_id *id)
{
	if (!entity)
		return -EINVAL;
	memset(id->ent, 0, sizeof id->ent);
	size_t el = str_words(entity, PROT_ENTITY_MAX, id->ent);
	if (el > PROT_ENTITY_MAX)
		return op ? -PROT_ETOOLONG : -EINVAL;
	return id_finish(id, id_op(p, h, op, on, id), el, rp);
}

/* The lookup hash: SipHash of the entity under the segment key offset by the operation's hash —
 * a key per operation, one pass over the entity. It picks id's group, tag and home slot. */
static void rate_id_place(const struct prot_shm_header *h, struct rate_id *id)
{
	const uint64_t k[2] = {h->hash_key[0] ^ id->op_hash, h->hash_key[1]};
	uint64_t x = prot_siphash(k, id->ent, id->ent_len);
	id->group = (uint32_t)x & (seg_geo(h)->rate_groups - 1);
	id->tag = (uint8_t)(x >> 56);
	id->home = (uint8_t)(x >> 48) % RATE_GROUP_SLOTS;
	id->alt = rate_alt_of(x); /* the secondary group (rate_table.c, TABLE) */
	id->group2 = group_other(h, id->group, id->alt);
}

int rate_id_make(prot_t *p, const struct prot_shm_header *h, const char *op, const void *entity,
                 size_t el, const struct rate_params *rp, struct rate_id *id)
{
	int r = id_name_bin(p, h, op, NULL, entity, el, rp, id);

	if (r == 0)
		rate_id_place(h, id);
	return r;
}

void rate_memo_forget(prot_t *p)
{
	for (uint32_t i = 0; i < RATE_MEMO; i++) {
		RM_ST(p->rate_memo[i].h, NULL); /* matches no mapping */
		atomic_store_explicit(&p->rate_memo[i].seq, 0, memory_order_release);
	}
	for (uint32_t i = 0; i < RATE_OP_CACHE; i++) {
		RM_ST(p->rate_ops[i].h, NULL);
		atomic_store_explicit(&p->rate_ops[i].seq, 0, memory_order_release);
	}
}

/* A C-string entity's length, bounded: a longer one is refused (PROT_ETOOLONG). */
static size_t ent_strlen(const char *entity)
{
	return entity ? strnlen(entity, PROT_ENTITY_MAX + 1) : 0;
}

/* A call's entity: bytes of a known length (the _bin calls), or a C string (cstr). */
struct rate_ent {
	const void *bytes;
	size_t len; /* bytes only */
	bool cstr;
};

static inline int id_name(prot_t *p, const struct prot_shm_header *h, const char *op,
                          const struct rate_opname *on, const struct rate_ent *e,
                          const struct rate_params *rp, struct rate_id *id)
{
	return e->cstr ? id_name_str(p, h, op, on, e->bytes, rp, id)
	               : id_name_bin(p, h, op, on, e->bytes, e->len, rp, id);
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

/* rate_on_full = evict: make room by evicting a bucket that provably loses nothing
 * (rate_table_evict), counted, and charge again; RATE_TABLE_FULL when none could be evicted (the
 * caller then denies and counts it as table_full). Two rounds: another new entity may take the
 * freed bucket first. */
static int evict_and_charge(struct prot_shm_header *h, prot_t *p, const struct rate_id *id,
                            const struct rate_params *rp, uint64_t cost, uint64_t now,
                            const struct rate_policy *pol, struct prot_rate_info *info,
                            struct rate_hit *hit)
{
	for (int round = 0; round < 2; round++) {
		if (rate_table_evict(h, id) < 0)
			break;
		/* relaxed: statistics */
		atomic_fetch_add_explicit(&h->rate_evicted, 1, memory_order_relaxed);
		if (pol->ks)
			atomic_fetch_add_explicit(&pol->ks->rate_evicted, 1, memory_order_relaxed);
		int res = rate_table_charge(h, p, id, rp, cost, now, info, hit);
		if (res != RATE_TABLE_FULL)
			return res;
	}
	return RATE_TABLE_FULL;
}

/* A decision's result res (1 admitted, 0 denied, maybe | RATE_INSERTED) as the caller gets it;
 * hit: where it was taken (set whenever res has RATE_INSERTED). */
static inline int rate_done(struct prot_shm_header *h, prot_t *p, const struct rate_id *id,
                            const struct rate_params *rp, const struct rate_policy *pol, int res,
                            const struct rate_hit *hit)
{
	if (unlikely(res & RATE_INSERTED)) { /* a new bucket: its operation's name, for protctl */
		rate_ops_note(h, pol->op, id->id0 & 0xff, id->op_hash);
		if (rp->tag & RATE_TAG_GLOBAL) /* protd leases for it from its next round: the group it
		                                  is in, the primary or the secondary */
			rate_global_note(h, hit->bucket / RATE_GROUP_SLOTS);
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

/* id's groups are full: an eviction's decision (rate_on_full = evict, when one was possible), or
 * the policy's answer, counted. Out of line: the slow path stays out of rate_run. */
static int table_full(struct prot_shm_header *h, prot_t *p, const struct rate_id *id,
                      const struct rate_params *rp, uint64_t cost, uint64_t now,
                      const struct rate_policy *pol, struct prot_rate_info *info)
{
	if (pol->full == RATE_FULL_EVICT) {
		struct rate_hit hit = {.bucket = UINT32_MAX};
		int res = evict_and_charge(h, p, id, rp, cost, now, pol, info, &hit);
		if (res != RATE_TABLE_FULL)
			return rate_done(h, p, id, rp, pol, res, &hit);
	}
	/* relaxed: statistics */
	uint64_t n = atomic_fetch_add_explicit(&h->rate_table_full, 1, memory_order_relaxed) + 1;
	if (pol->ks)
		atomic_fetch_add_explicit(&pol->ks->rate_table_full, 1, memory_order_relaxed);
	if ((n & (n - 1)) == 0) /* 1st, 2nd, 4th, 8th...: visible without flooding the ring */
		prot_event_emit(h, EV_RATE_TABLE_FULL, pol->key_idx, pol->key ? pol->key : pol->op, n,
		                pol->full == RATE_FULL_ALLOW ? RATE_FULL_ALLOW : RATE_FULL_DENY);
	if (pol->full != RATE_FULL_ALLOW)
		return -PROT_ETABLEFULL;
	if (info)
		*info = (struct prot_rate_info){.allowed = 1, .limit = rp->limit, .window_ms = rp->window_ms};
	return 1;
}

/* One decision on validated rp: 1 admitted, 0 denied, or the policy's answer to a full table.
 * Inline: the table's charge is then the only call between an entry point and the table. */
static inline int rate_run(struct prot_shm_header *h, prot_t *p, struct rate_id *id,
                    const struct rate_params *rp, uint64_t cost, uint64_t now,
                    const struct rate_policy *pol, struct prot_rate_info *info)
{
	struct rate_memo *m = p ? rate_memo_slot(p, id) : NULL;
	struct rate_hit hit = {.bucket = UINT32_MAX};
	int res = RATE_STALE;

	if (m && rate_memo_get(m, h, id, &hit)) /* a bucket seen before: straight to its word */
		res = rate_table_charge_at(h, hit.bucket, hit.meta, rp, cost, now, info);
	if (res == RATE_STALE) { /* not remembered, or no longer that bucket: look it up */
		rate_id_place(h, id);
		hit.bucket = UINT32_MAX;
		res = rate_table_charge(h, p, id, rp, cost, now, info, &hit);
		if (m && hit.bucket != UINT32_MAX)
			rate_memo_put(m, h, id, hit);
	}
	if (res == RATE_TABLE_FULL)
		return table_full(h, p, id, rp, cost, now, pol, info);
	return rate_done(h, p, id, rp, pol, res, &hit);
}

/* ---- hidden entry points (protctl, facade, tests) -------------------------------------------- */

/* A decision under the caller's limits (the Hammer-style calls). */
static inline int limit_decide(prot_t *p, struct prot_shm_header *h, const char *op,
                               const struct rate_ent *e, const struct prot_rate_limit *lim,
                               uint64_t cost, uint64_t now_ns, struct prot_rate_info *info)
{
	struct rate_params rp;
	struct rate_id id;
	struct rate_policy pol = {.full = RATE_FULL_DENY, .key_idx = PROT_NO_INDEX, .op = op};
	int r;

	rate_params_of_limit(lim, &rp); /* the public form, converted once */
	r = id_name(p, h, op, NULL, e, &rp, &id);
	if (r == 0)
		r = rate_params_cost(&rp, cost);
	if (r == 0)
		r = rate_sliding_fits(h, &rp);
	if (r < 0)
		return r;
	rp.clock_given = now_ns != 0;
	return rate_run(h, p, &id, &rp, cost, now_ns ? now_ns : prot_now_ns(), &pol, info);
}

int rate_check_bin_h(prot_t *p, struct prot_shm_header *h, const char *op, const void *entity,
                     size_t el, const struct prot_rate_limit *lim, uint64_t cost, uint64_t now_ns,
                     struct prot_rate_info *info)
{
	const struct rate_ent e = {.bytes = entity, .len = el};
	return limit_decide(p, h, op, &e, lim, cost, now_ns, info);
}

int rate_check_h(prot_t *p, struct prot_shm_header *h, const char *op, const char *entity,
                 const struct prot_rate_limit *lim, uint64_t cost, uint64_t now_ns,
                 struct prot_rate_info *info)
{
	const struct rate_ent e = {.bytes = entity, .cstr = true};
	return limit_decide(p, h, op, &e, lim, cost, now_ns, info);
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

static int key_cfg_read(struct prot_shm_header *h, uint32_t idx, struct prot_key_cfg *cfg,
                        uint32_t *st, uint32_t *seq)
{
	struct prot_key_slot *k;
	uint64_t w[RATE_CFG_WORDS];

	if (idx >= seg_count(h, REG_KEYS))
		return -PROT_ENOKEY;
	k = seg_entry(h, REG_KEYS, idx);
	/* acquire: pairs with protd's release of LIVE after writing the slot */
	uint32_t st0 = atomic_load_explicit(&k->state, memory_order_acquire);
	int r = seq_read_at(&k->seq, &k->cfg, w, RATE_CFG_WORDS, seq); /* the rate fields only */
	if (r < 0)
		return r;
	if (SLOT_STATE(st0) != SLOT_LIVE || seq_read_retry(&k->state, st0))
		return -PROT_ENOKEY; /* recycled while we read */
	*st = st0;
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

int rate_key_cfg(struct prot_shm_header *h, uint32_t idx, struct prot_key_cfg *cfg)
{
	uint32_t st, seq;
	return key_cfg_read(h, idx, cfg, &st, &seq);
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

/* A key's decision on entity e under kr; tel_entity: the entity for telemetry (NULL: binary). op
 * NULL: the key's own name names the buckets, and on (if not NULL) holds that name's hash and
 * length. */
static inline __attribute__((always_inline)) int
key_decide(prot_t *p, struct prot_shm_header *h, uint32_t idx, const char *key, const char *op,
           const struct rate_opname *on, const struct key_rate *kr, const struct rate_ent *e,
           const char *tel_entity, uint64_t cost, uint64_t now_ns, struct prot_rate_info *info)
{
	struct prot_key_slot *k = seg_entry(h, REG_KEYS, idx);
	char name[PROT_NAME_BYTES];
	struct rate_id id;
	int r;

	if (!kr->on) { /* no limiter on this key: everything passes */
		if (info)
			*info = (struct prot_rate_info){.allowed = 1};
		return 1;
	}
	if (!e->bytes && (e->cstr || e->len))
		return -EINVAL;
	if (!key) { /* the slot's own name: copy it, bounded (the slot is shared memory) */
		memcpy(name, k->name, sizeof name);
		name[sizeof name - 1] = '\0';
		key = name;
		on = NULL;
	}
	if (op)
		on = NULL; /* another name than the key's */
	else
		op = key;
	if (unlikely(kr->rp.tag & RATE_TAG_GLOBAL) && op != key && strcmp(op, key) != 0)
		return -EINVAL; /* a global key's buckets are named by the key (rate_global.c, NAMES) */
	r = id_name(p, h, op, on, e, &kr->rp, &id);
	if (r == 0)
		r = rate_params_cost(&kr->rp, cost);
	if (r == 0)
		r = rate_sliding_fits(h, &kr->rp);
	if (r < 0)
		return r;
	struct rate_policy pol = {.full = kr->full, .ks = &k->stats, .key_idx = idx,
	                          .key = key, .op = op, .entity = tel_entity};
	return rate_run(h, p, &id, &kr->rp, cost, rate_clock_now(kr->clock, now_ns), &pol, info);
}

/* A decision for key idx on its cfg as the caller read it (rate_check_key_idx). */
static int rate_check_cfg(prot_t *p, struct prot_shm_header *h, uint32_t idx, const char *key,
                   const char *op, const struct prot_key_cfg *cfg, const char *entity,
                   uint64_t cost, uint64_t now_ns, struct prot_rate_info *info)
{
	const struct rate_ent e = {.bytes = entity, .cstr = true};
	struct key_rate kr;

	key_rate_of(cfg, 1, &kr);
	return key_decide(p, h, idx, key, op, NULL, &kr, &e, entity, cost, now_ns, info);
}

int rate_key_resolve(prot_t *p, struct prot_shm_header *h, const char *key, struct rate_key_ref *out)
{
	struct rate_opname on = {0};
	int idx = key_lookup(p, h, key, &on, &out->kr);

	if (idx < 0)
		return idx;
	out->op_hash = on.hash, out->op_len = on.len, out->idx = (uint32_t)idx;
	return 0;
}

int rate_check_ref(prot_t *p, struct prot_shm_header *h, const struct rate_key_ref *ref,
                   const char *key, const char *op, const struct prot_key_cfg *cfg,
                   uint32_t cfg_seq, const char *entity, uint64_t cost, uint64_t now_ns,
                   struct prot_rate_info *info)
{
	const struct rate_ent e = {.bytes = entity, .cstr = true};
	const struct rate_opname on = {.hash = ref->op_hash, .len = ref->op_len};
	const struct key_rate *kr = &ref->kr;
	struct key_rate again;

	if (cfg_seq & 1 || kr->seq != cfg_seq) { /* not what the caller's copy of cfg was read under */
		key_rate_of(cfg, cfg_seq, &again);
		kr = &again;
	}
	return key_decide(p, h, ref->idx, key, op, &on, kr, &e, entity, cost, now_ns, info);
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

/* Key NAME's slot (its name's hash in *on) and what a decision needs of its rate fields, for a
 * call that may write (decisions) or not. */
static inline __attribute__((always_inline)) int key_of(prot_t *p, const char *key, bool write,
                                                        struct prot_shm_header **h,
                                                        struct rate_opname *on, struct key_rate *kr)
{
	int g = prot_gate(p, write);
	if (g < 0)
		return g;
	if (!key)
		return -EINVAL;
	*h = prot_hdr(p);
	return key_lookup(p, *h, key, on, kr);
}

/* A decision of key KEY on entity e (tel_entity: for telemetry). */
static inline __attribute__((always_inline)) int key_check(prot_t *p, const char *key,
                                                           const struct rate_ent *e,
                                                           const char *tel_entity, uint64_t cost,
                                                           struct prot_rate_info *info)
{
	struct rate_opname on = {0};
	struct prot_shm_header *h;
	struct key_rate kr;
	int idx = key_of(p, key, true, &h, &on, &kr);

	return idx < 0 ? idx
	               : key_decide(p, h, (uint32_t)idx, key, NULL, &on, &kr, e, tel_entity, cost, 0, info);
}

int prot_rate_check_key_bin(prot_t *p, const char *key, const void *entity, size_t entity_len,
                            uint64_t cost, struct prot_rate_info *info)
{
	const struct rate_ent e = {.bytes = entity, .len = entity_len};
	return key_check(p, key, &e, NULL, cost, info);
}

int prot_rate_check_key(prot_t *p, const char *key, const char *entity, uint64_t cost,
                        struct prot_rate_info *info)
{
	const struct rate_ent e = {.bytes = entity, .cstr = true};
	return key_check(p, key, &e, entity, cost, info);
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
	struct rate_opname on = {0};
	struct prot_shm_header *h;
	struct key_rate kr;
	int idx = key_of(p, key, false, &h, &on, &kr);

	if (idx < 0)
		return idx;
	if (!kr.on)
		return -EINVAL; /* no rate limiter: no bucket to describe */
	return rate_status_bin_h(h, key, entity, entity_len, &kr.rp, 0, out);
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
