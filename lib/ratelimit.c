/* ratelimit.c — the rate limiter (Hammer): per-(operation, entity) buckets in the segment, decided
 * by one compare-and-swap on one 64-bit word, shared exactly by every process.
 *
 * IDENTITY. A bucket is (operation, entity). The entity is compared exactly: its bytes (at most
 * PROT_ENTITY_MAX = 64; longer is PROT_ETOOLONG, never truncated) are stored in ent_head/ent_tail.
 * The operation is a program constant and is compared by a 64-bit keyed hash plus its length
 * (op_hash = SipHash(segment key, name), op_len); op_head keeps its first 14 bytes for display.
 * For a protection key (prot_rate_check_key) the operation is the key's name.
 *
 * TABLE. REG_RATE_GROUPS holds a power-of-two number of groups of 32 buckets. h = SipHash(segment
 * key ^ (op_hash, 0), entity) — a key per operation — picks the group (low bits), an 8-bit tag
 * (top byte) and a home slot (insertion tries it first; lookups prefetch it with the group line).
 * op_hash itself is memoised per handle (struct rate_op_cache): a decision hashes only the entity.
 * An entity lives in its one group or nowhere: a group with no free bucket is "table full" and the
 * key's policy applies (deny: PROT_ETABLEFULL; allow: admitted without a bucket and counted). Cost: 128 B per
 * bucket + 64 B group index per 32 buckets = 130 B per entity. Since entities fall into groups at
 * random, groups fill before the table does. Measured on 64 Ki and 1 Mi buckets with uniformly
 * hashed ids: the first full group appears at ~48-56 % occupancy (~64 % on 4 Ki); a new entity is
 * refused 0.03 % of the time at 60 % occupancy, 1.6 % at 70 %, 10 % at 80 %, 32 % at 90 %. Size
 * rate_entities at ~1.5x the live entities expected (effective capacity ~65 %: ~200 B per live
 * entity). See the effective_capacity test.
 *
 * WORDS.
 *  group word = version << 32 | occupancy bitmap. Every change (a bucket published or removed)
 *    CASes it from the exact value the changer scanned and bumps the version, so two changes
 *    based on one scan cannot both succeed.
 *  meta = gen << 32 | algo << 8 | state, state FREE -> CLAIMED -> LIVE -> DEAD -> FREE; gen is
 *    bumped on every claim, so a meta value names one use of the bucket.
 *  word = GCRA: theoretical arrival time, CLOCK_MONOTONIC ns. Fixed window: window end (ms) << 24 |
 *    units counted in it. DEAD_WORD (all ones) = being removed.
 *
 * INSERTION (claim, then publish). A process that did not find its entity in the group word it
 * loaded (gw): picks a bucket whose bit is clear in gw and whose meta is FREE (its home slot
 * first) and CASes meta FREE(g) -> CLAIMED(g+1): one claimer per bucket. It writes tag, identity
 * and the initial word, re-checks that its claim still stands, and CASes the group word gw ->
 * (version+1, bit set) with release: this is the publication, and it succeeds only if nothing in
 * the group changed since the scan. If it fails, the claimer rescans the new group word: if its
 * entity is there now (another process inserted it first) it gives its bucket back and uses that
 * one; otherwise it retries the CAS. So N processes inserting one new entity at once publish ONE
 * bucket: every publication changes the version, every other publisher then rescans and finds it.
 * After publishing, meta goes CLAIMED -> LIVE (release). Everything a lookup needs was written
 * before the group CAS, so a lookup that sees a CLAIMED bucket whose bit is set (re-read after
 * the meta: an older group word may show the bit of the bucket's previous use) completes that
 * step itself (helping) instead of waiting: no lookup ever waits for another process.
 *
 * LOOKUP. Load the group word (acquire: pairs with the publishing CAS, so tags and identity of
 * every set bit are visible), match tags with SWAR, then for each candidate load meta (acquire)
 * and compare identity. Tags of set bits are exact, so a miss is a real miss.
 *
 * DECISION. Load meta m, compare identity, load word w (acquire), re-load meta: unchanged means w
 * belongs to this use of the bucket. Deny: add to `denied` (line 1) and write nothing else —
 * line 0 is untouched. Admit: CAS word w -> w' (relaxed: the word carries no other data), then
 * add to `allowed`. A failed CAS reloads and re-decides.
 *
 * REMOVAL (sweep, reset, algorithm change). CAS word from the value observed under LIVE(g) to
 * DEAD_WORD — a concurrent charge either lands first (the remover's CAS then fails: an expired
 * bucket is no longer expired, it re-evaluates) or fails and re-looks-up. Then CAS meta LIVE(g) ->
 * DEAD(g): its winner (anyone who sees a LIVE bucket holding DEAD_WORD may complete the removal)
 * clears the bit (version+1) and sets meta DEAD(g) -> FREE(g).
 *
 * WHY A STALE CLIENT NEVER CHARGES A RECYCLED BUCKET. A client charges only by CAS(word, w, w')
 * where w was loaded while meta was LIVE(g) (re-checked after the load). Once the bucket is
 * removed, word goes w_last -> DEAD_WORD -> initial word (GCRA: t ns, fixed window: t_ms << 24,
 * t = the inserter's clock read) -> values that only grow (GCRA: max(tat, now) + n*T; window: count up, then later
 * windows). The sweep removes only expired buckets: w <= w_last <= now_sweep - grace < t (the grace
 * exceeds the coarse clock's lag), so no value of a later use of the bucket equals w and the stale
 * CAS fails. Generations (in meta) stop every other stale step. Reset and algorithm change may
 * remove a bucket whose TAT lies in the future; for those the argument needs the client to stall
 * between its meta re-check and its CAS (adjacent instructions) for a whole removal and re-insert,
 * and a later TAT to hit w to the nanosecond.
 *
 * STUCK CLAIMS. A process killed between claiming a bucket and publishing it leaves a CLAIMED
 * bucket whose bit is clear. While it holds the claim, the claimer's identity (lib/ident.c, as in
 * pool leases), tagged with bit 63, sits in the bucket's `allowed` field (cleared just before
 * publication; the tag keeps a stale statistic from passing for an identity). The sweep frees a
 * claim only when that identity is provably gone (its record lock is released: pid reuse cannot
 * fool it): a live claimer, however long descheduled, is never robbed, so once
 * its group CAS succeeds its bucket is published for good. Unfreed (leaked until the segment is
 * recreated, skipped by lookups, never waited on): a claim whose claimer died in the two
 * instructions between the claim and the identity store, or right after clearing it; and a
 * removal whose remover died between its meta step and clearing the bit.
 *
 * ALGORITHMS.
 *  GCRA: T = ceil(window/limit) (rounded up: never more than limit per window), tau = burst * T.
 *    Admit n if max(tat, now) + n*T - now <= tau. retry-after = that - tau. n > burst: PROT_ECOST.
 *  Fixed window: windows [k*W, (k+1)*W) in CLOCK_MONOTONIC ms, the same for every process. A
 *    stored window that has not ended is kept (even if W changed by a reload); an ended one starts
 *    a fresh window. limit <= 2^24-1 (the count's bits): larger is -EINVAL. n > limit: PROT_ECOST.
 *  window_ms <= RATE_WINDOW_MAX_MS (2^36 ms, about 2.2 years), else -EINVAL.
 *  Every such limit is listed once, in limit_problem() (constants in rate_limits.h); protd refuses
 *  a configuration that breaks one at load time through rate_limit_check().
 *  A reload that changes limits keeps every bucket's word: GCRA re-reads its TAT with the new T,
 *  the fixed window keeps its count. A bucket of another algorithm is reset on first use.
 *
 * CLOCK. One clock read per decision: CLOCK_MONOTONIC, or CLOCK_MONOTONIC_COARSE for keys with
 * rate_clock = coarse (resolution: clock_getres(), typically 4 ms: a window boundary or a GCRA
 * emission can be seen up to that late).
 *
 * EXPIRY. rate_sweep() (protd, every tick) covers RATE_SWEEP_GROUPS groups per call from a cursor
 * kept in the header (hdr.rate_sweep_cursor, fetch_add: concurrent sweepers take disjoint ranges).
 * A GCRA bucket is expired when tat <= now - grace; a window bucket when its window ended grace
 * ago. Removing an expired bucket loses nothing: a fresh bucket decides the same way.
 *
 * SUMMARY: the sweep touches only groups that hold buckets. The table is mostly empty pages, and
 * reading a page maps it (an idle sweep used to map all of a 520 MiB table within 10 s). A bitmap
 * after the regions (hdr.rate_summary_off, RATE_SUMMARY_BYTES: one bit per group) has bit g set
 * whenever group g holds a bucket that is not FREE (claimed, live, or being removed); the sweep
 * skips groups whose bit is clear. Segments without a summary (offset 0) are swept whole.
 *  - an inserter sets the bit (fetch_or, release) after its claim CAS FREE -> CLAIMED succeeded
 *    and before it publishes: a claimer that dies holding the claim leaves the bit set, so the
 *    sweep still finds and frees its claim;
 *  - the sweep clears the bit of a group it found quiet (bits clear and every meta FREE) with
 *    fetch_and (acq_rel), then re-checks quiet (acquire loads) and sets the bit again if not.
 *  Why no group with a non-FREE bucket is left unmarked: the bit's RMWs are totally ordered. If an
 *  inserter's fetch_or comes after the sweep's fetch_and, the bit is set. If before, the fetch_and
 *  reads from the release sequence the fetch_or heads, so the claim CAS happens before the
 *  re-check, which then sees that bucket CLAIMED or in a later state of the same use (LIVE, DEAD:
 *  not quiet) or FREE again (its removal completed: nothing left to sweep). A bucket leaves FREE
 *  only by a new claim, which sets the bit itself. A stale relaxed load in the sweep's skip test
 *  only delays that group to the next pass.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "rate_limits.h"

enum { RB_FREE = 0, RB_CLAIMED = 1, RB_LIVE = 2, RB_DEAD = 3 };

#define META(gen, algo, st) ((uint64_t)(gen) << 32 | (uint64_t)(algo) << 8 | (uint64_t)(st))
#define META_ST(m) ((uint32_t)(m) & 0xffu)
#define META_ALGO(m) (((uint32_t)(m) >> 8) & 0xffu)
#define META_GEN(m) ((uint32_t)((m) >> 32))
#define META_WITH(m, st) (((m) & ~(uint64_t)0xff) | (st))

#define DEAD_WORD UINT64_MAX
#define GROUP_VER (1ull << 32)
#define NS_MS 1000000ull

#define RATE_GRACE_NS (100 * NS_MS)       /* > coarse clock lag; see the stale-client argument */
#define RATE_SWEEP_GROUPS 128u            /* groups per rate_sweep() call */
#define FW_BITS RATE_FW_BITS
#define FW_COUNT_MAX RATE_FW_LIMIT_MAX

enum { R_RETRY = -100000, R_FULL = -100001 }; /* internal, never returned to callers */

typedef uint64_t __attribute__((may_alias)) u64a;

/* Identity words as the bucket stores them (offsets pinned below). */
#define B_OP_HASH 16
#define B_ID0 32 /* op_len, ent_len, op_head[0..5] */
#define B_ID1 40 /* op_head[6..13] */
#define B_ENT_HEAD 48
#define B_ENT_TAIL 72
_Static_assert(offsetof(struct prot_rate_bucket, op_hash) == B_OP_HASH, "op_hash");
_Static_assert(offsetof(struct prot_rate_bucket, op_len) == B_ID0, "op_len");
_Static_assert(offsetof(struct prot_rate_bucket, ent_len) == B_ID0 + 1, "ent_len");
_Static_assert(offsetof(struct prot_rate_bucket, op_head) == B_ID0 + 2, "op_head");
_Static_assert(offsetof(struct prot_rate_bucket, ent_head) == B_ENT_HEAD, "ent_head");
_Static_assert(offsetof(struct prot_rate_bucket, ent_tail) == B_ENT_TAIL, "ent_tail");
_Static_assert(offsetof(struct prot_rate_group_hdr, tags) == 8, "tags are 4 aligned words");

#define ENT_WORDS 9 /* 72 bytes: head (2 words) + tail (7 words) */

/* Everything a call knows about its bucket before touching the table. */
struct rate_id {
	uint64_t op_hash;
	uint64_t ent[ENT_WORDS]; /* entity, zero-padded */
	uint64_t id0, id1;       /* op_len, ent_len, op_head */
	uint32_t ent_words;      /* words of ent[] compared: max(2, ceil(len/8)) */
	uint32_t group;
	uint8_t tag;
	uint8_t home; /* preferred slot: most entities sit there, so it is prefetched with the group */
	uint8_t ent_len;
};

/* Decision parameters, validated. */
struct rate_params {
	uint32_t algo;
	uint64_t limit, window_ms, burst;
	uint64_t t_ns, tau_ns; /* GCRA */
};

/* Where a bucket is. */
struct rate_ref {
	struct prot_shm_header *h;
	struct prot_rate_group *g;
	uint32_t i;
};

/* ---- bucket word access: identity is written with relaxed atomic stores by its claimer and read
 * with relaxed loads after an acquire of meta or of the group word, so a lookup racing a recycle
 * reads stale bytes, never a torn word; the meta re-check then rejects what it read. ----------- */

static inline u64a *bw(struct prot_rate_bucket *b, size_t off)
{
	return (u64a *)((char *)b + off);
}
static inline uint64_t ld(struct prot_rate_bucket *b, size_t off)
{
	return __atomic_load_n(bw(b, off), __ATOMIC_RELAXED);
}
static inline void st(struct prot_rate_bucket *b, size_t off, uint64_t v)
{
	__atomic_store_n(bw(b, off), v, __ATOMIC_RELAXED);
}
static inline size_t ent_off(uint32_t k)
{
	return k < 2 ? B_ENT_HEAD + 8 * k : B_ENT_TAIL + 8 * (k - 2);
}

static bool id_equal(struct prot_rate_bucket *b, const struct rate_id *id)
{
	if (ld(b, B_OP_HASH) != id->op_hash || ld(b, B_ID0) != id->id0 || ld(b, B_ID1) != id->id1)
		return false;
	for (uint32_t k = 0; k < id->ent_words; k++)
		if (ld(b, ent_off(k)) != id->ent[k])
			return false;
	return true;
}

static void id_store(struct prot_rate_bucket *b, const struct rate_id *id)
{
	st(b, B_OP_HASH, id->op_hash);
	st(b, B_ID0, id->id0);
	st(b, B_ID1, id->id1);
	for (uint32_t k = 0; k < id->ent_words; k++)
		st(b, ent_off(k), id->ent[k]);
}

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
	atomic_thread_fence(memory_order_acquire); /* the reads happen before the re-check */
	if (atomic_load_explicit(&c->seq, memory_order_relaxed) != s)
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
static int key_lookup(prot_t *p, struct prot_shm_header *h, const char *name)
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
	atomic_thread_fence(memory_order_acquire); /* the compare happens before the re-check */
	if (atomic_load_explicit(&k->state, memory_order_relaxed) != st)
		return idx;
	v = (struct opc_val){.op_hash = known ? v.op_hash : prot_siphash(h->hash_key, name, ol),
	                     .key_idx = (uint32_t)idx, .key_state = st};
	opc_put(c, h, opw, ol, &v);
	return idx;
}

static int rate_id_make(prot_t *p, const struct prot_shm_header *h, const char *op,
                        const char *entity, struct rate_id *id)
{
	uint64_t opw[(PROT_OP_MAX + 8) / 8] = {0};
	size_t ol, el;

	if (!op || !entity)
		return -EINVAL;
	ol = strnlen(op, PROT_OP_MAX + 1);
	el = strnlen(entity, PROT_ENTITY_MAX + 1);
	if (ol > PROT_OP_MAX || el > PROT_ENTITY_MAX)
		return -PROT_ETOOLONG;
	if (ol == 0)
		return -EINVAL;
	memset(id->ent, 0, sizeof id->ent);
	to_words(id->ent, entity, el);
	to_words(opw, op, ol);
	/* op_len, ent_len, then op_head = the name's first 14 bytes */
	id->id0 = ol | el << 8 | opw[0] << 16;
	id->id1 = opw[0] >> 48 | opw[1] << 16;
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

static inline struct prot_rate_group *group_at(const struct prot_shm_header *h, uint32_t gi)
{
	return seg_entry(h, REG_RATE_GROUPS, gi);
}

/* Bit j set where tags[j] == tag (SWAR over the four tag words: an exact zero-byte test, then the
 * byte flags gathered into bits). */
static inline uint32_t tag_match(struct prot_rate_group *g, uint8_t tag)
{
	const u64a *t = (const u64a *)(void *)g->h.tags;
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL, rep = 0x0101010101010101ULL * tag;
	uint32_t mask = 0;

	for (int k = 0; k < 4; k++) {
		/* relaxed: tags of set bits were published by the group CAS the caller acquired */
		uint64_t x = __atomic_load_n(&t[k], __ATOMIC_RELAXED) ^ rep;
		uint64_t z = ~(((x & lo7) + lo7) | x | lo7); /* 0x80 in each zero byte */
		mask |= (uint32_t)(((z >> 7) * 0x0102040810204080ULL) >> 56) << (8 * k);
	}
	return mask;
}

/* ---- publication helpers ---------------------------------------------------------------------- */

/* CLAIMED(g) -> LIVE(g) (release: pairs with the acquire of meta by lookups). Returns the meta now
 * in place. */
static uint64_t help_publish(struct prot_rate_bucket *b, uint64_t m)
{
	uint64_t live = META_WITH(m, RB_LIVE);

	if (atomic_compare_exchange_strong_explicit(&b->meta, &m, live, memory_order_acq_rel,
	                                            memory_order_acquire))
		return live;
	return m;
}

static inline uint64_t group_load(struct prot_rate_group *g)
{
	/* acquire: pairs with the release CAS that published each set bit */
	return atomic_load_explicit(&g->h.word, memory_order_acquire);
}

/* Bucket i of g was seen CLAIMED (meta m) through a set bit of an earlier group-word load. That
 * bit may belong to the bucket's previous use, removed since; the claim may not be published
 * yet. Only a bit set NOW, after we saw the claim, is this claim's publication (a claimed bucket
 * was FREE, hence bit-clear, when claimed, and only its claimer sets the bit while it stays
 * CLAIMED): then complete it for its claimer, who may be descheduled or dead. */
static uint64_t help_if_published(struct prot_rate_group *g, uint32_t i, uint64_t m)
{
	/* the acquire load of m that the caller did orders this load after it */
	if (!(group_load(g) & (1ull << i)))
		return m;
	return help_publish(&g->b[i], m);
}

/* Clear bit i of the group (version+1). Called only by the one process that owns the bit's
 * removal (the winner of a meta CAS), so it clears exactly once. */
static void group_clear(struct rate_ref r)
{
	uint64_t bit = 1ull << r.i;
	uint64_t gw = atomic_load_explicit(&r.g->h.word, memory_order_relaxed);

	/* acq_rel: orders our DEAD meta before the bit disappears; re-reads the word on failure */
	while (!atomic_compare_exchange_weak_explicit(&r.g->h.word, &gw, (gw + GROUP_VER) & ~bit,
	                                              memory_order_acq_rel, memory_order_relaxed))
		;
	/* relaxed: a statistic */
	atomic_fetch_sub_explicit(&r.h->rate_buckets_used, 1, memory_order_relaxed);
}

/* A removed bucket's counts go to its key's totals, so that they outlive the bucket. Only the
 * winner of LIVE -> DEAD calls this (once per bucket); a client that charged just before the
 * removal and adds its count just after it is lost to the statistic, never double-counted. The
 * key is the one whose name hashes to the bucket's op_hash (Hammer-style operations that are no
 * key have no totals). Removals are rare (expiry, reset, algorithm change): a scan of the keys. */
/* The op_hash of key slot k's operation (its name), or 0 when the slot holds no key with rate
 * buckets (free, or a name that is not terminated within the slot: untrusted). */
static uint64_t key_op_hash(const struct prot_shm_header *h, struct prot_key_slot *k)
{
	uint32_t st = SLOT_STATE(atomic_load_explicit(&k->state, memory_order_acquire));
	size_t len = strnlen(k->name, sizeof k->name);
	if ((st != SLOT_LIVE && st != SLOT_RETIRED) || len == 0 || len >= sizeof k->name)
		return 0;
	return prot_siphash(h->hash_key, k->name, len);
}

static void fold_counts(struct prot_shm_header *h, struct prot_rate_bucket *b)
{
	/* relaxed: statistics */
	uint64_t allowed = atomic_load_explicit(&b->allowed, memory_order_relaxed);
	uint64_t denied = atomic_load_explicit(&b->denied, memory_order_relaxed);
	if (!allowed && !denied)
		return;
	for (uint32_t i = 0, n = seg_count(h, REG_KEYS); i < n; i++) {
		struct prot_key_slot *k = seg_entry(h, REG_KEYS, i);
		if (key_op_hash(h, k) != b->op_hash)
			continue;
		atomic_fetch_add_explicit(&k->stats.rate_allowed, allowed, memory_order_relaxed);
		atomic_fetch_add_explicit(&k->stats.rate_denied, denied, memory_order_relaxed);
		return;
	}
}

/* Second half of a removal: the bucket holds DEAD_WORD under meta m (LIVE). */
static bool finish_remove(struct rate_ref r, uint64_t m)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	uint64_t dead = META_WITH(m, RB_DEAD);

	/* acq_rel: one winner; the loser learns another process is completing this removal */
	if (!atomic_compare_exchange_strong_explicit(&b->meta, &m, dead, memory_order_acq_rel,
	                                             memory_order_relaxed))
		return false;
	fold_counts(r.h, b);
	group_clear(r);
	/* A FREE bucket's `allowed` is 0: a claimer's identity is stored there only after its claim,
	 * so the sweep must never read a stale count as a claimer (see claimer_dead). */
	atomic_store_explicit(&b->allowed, 0, memory_order_relaxed);
	/* release: the bucket is reusable only after its bit is gone (pairs with the claimer's CAS);
	 * also publishes the zero above to the next claim's observers (release sequence) */
	atomic_compare_exchange_strong_explicit(&b->meta, &dead, META_WITH(m, RB_FREE),
	                                        memory_order_release, memory_order_relaxed);
	return true;
}

/* Remove the bucket if its word is still w (observed under meta m). */
static bool bucket_remove(struct rate_ref r, uint64_t m, uint64_t w)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];

	/* relaxed: the word is the only thing decided here; a charge that lands first makes us fail */
	if (w != DEAD_WORD && !atomic_compare_exchange_strong_explicit(&b->word, &w, DEAD_WORD,
	                                                               memory_order_relaxed,
	                                                               memory_order_relaxed))
		return false;
	return finish_remove(r, m);
}

/* ---- the summary of non-empty groups (see SUMMARY above) ------------------------------------- */

/* The summary words, or NULL when the segment has none (the offset was checked against every
 * region and the segment's size when the geometry was taken: seg_take_geometry). */
static _Atomic uint64_t *summary_words(const struct prot_shm_header *h)
{
	uint64_t off = seg_geo(h)->rate_summary_off;
	return off ? (_Atomic uint64_t *)(void *)((char *)h + off) : NULL;
}

static void summary_mark(const struct prot_shm_header *h, uint32_t gi)
{
	_Atomic uint64_t *w = summary_words(h);
	/* release: our claim CAS happens before whatever sweep clears this bit next */
	if (w)
		atomic_fetch_or_explicit(&w[gi / 64], 1ull << (gi % 64), memory_order_release);
}

/* No bucket bit set and every bucket FREE: nothing for the sweep in this group. */
static bool group_quiet(struct prot_rate_group *g)
{
	if ((uint32_t)group_load(g) != 0)
		return false;
	for (uint32_t i = 0; i < RATE_GROUP_SLOTS; i++)
		/* acquire: pairs with the claim's summary release (see SUMMARY) */
		if (META_ST(atomic_load_explicit(&g->b[i].meta, memory_order_acquire)) != RB_FREE)
			return false;
	return true;
}

static void summary_clear(_Atomic uint64_t *w, uint32_t gi, struct prot_rate_group *g)
{
	uint64_t bit = 1ull << (gi % 64);
	/* acq_rel: reads from any inserter's release fetch_or before it, so its claim is seen below */
	atomic_fetch_and_explicit(&w[gi / 64], ~bit, memory_order_acq_rel);
	if (!group_quiet(g))
		atomic_fetch_or_explicit(&w[gi / 64], bit, memory_order_relaxed);
}

/* ---- lookup ----------------------------------------------------------------------------------- */

/* Scan group word gw for id. help: complete a CLAIMED bucket's publication (writers only; a
 * read-only reader treats a published CLAIMED bucket as live). Returns the slot or -1. */
static int group_scan(struct prot_rate_group *g, uint64_t gw, const struct rate_id *id, bool help,
                      uint64_t *meta)
{
	uint32_t cand = tag_match(g, id->tag) & (uint32_t)gw;

	while (cand) {
		int i = __builtin_ctz(cand);
		struct prot_rate_bucket *b = &g->b[i];
		cand &= cand - 1;
		/* acquire: pairs with the LIVE release (and the group CAS) of the bucket's claimer */
		uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire);
		if (META_ST(m) == RB_CLAIMED && help)
			m = help_if_published(g, (uint32_t)i, m);
		/* A writer charges LIVE buckets only; a reader also sees published CLAIMED ones. */
		if (META_ST(m) != RB_LIVE && (help || META_ST(m) != RB_CLAIMED))
			continue;
		if (!id_equal(b, id))
			continue;
		*meta = m;
		return i;
	}
	return -1;
}

/* ---- insertion -------------------------------------------------------------------------------- */

static uint64_t word_init(uint32_t algo, uint64_t now)
{
	return algo == PROT_RATE_GCRA ? now : (now / NS_MS) << FW_BITS;
}

static inline uint32_t rotr32(uint32_t x, unsigned r)
{
	return (x >> r) | (x << ((32 - r) & 31));
}

/* Claim a FREE bucket whose bit is clear in gw, trying the entity's home slot first and then the
 * next ones round the group. Returns its slot and meta, or -1. */
static int claim_free(struct prot_rate_group *g, uint64_t gw, unsigned home, uint32_t algo,
                      uint64_t *claimed)
{
	uint32_t freebits = rotr32(~(uint32_t)gw, home); /* bit j: slot (home + j) % 32 */

	while (freebits) {
		int i = (int)((__builtin_ctz(freebits) + home) % RATE_GROUP_SLOTS);
		struct prot_rate_bucket *b = &g->b[i];
		freebits &= freebits - 1;
		uint64_t m = atomic_load_explicit(&b->meta, memory_order_relaxed);
		if (META_ST(m) != RB_FREE)
			continue; /* claimed by another inserter, or the tail of a removal */
		uint64_t c = META(META_GEN(m) + 1, algo, RB_CLAIMED);
		/* acquire: the bucket's previous removal (FREE release) happens before our writes */
		if (atomic_compare_exchange_strong_explicit(&b->meta, &m, c, memory_order_acquire,
		                                            memory_order_relaxed)) {
			*claimed = c;
			return i;
		}
	}
	return -1;
}

static void claim_release(struct prot_rate_bucket *b, uint64_t c)
{
	atomic_store_explicit(&b->allowed, 0, memory_order_relaxed); /* see finish_remove */
	/* relaxed: nothing of ours is published; fails harmlessly if the sweep freed it already */
	atomic_compare_exchange_strong_explicit(&b->meta, &c, META_WITH(c, RB_FREE),
	                                        memory_order_relaxed, memory_order_relaxed);
}

/* Insert id into group r.g, whose word was gw when id was not found in it. Returns the slot (and
 * its LIVE meta) of id's bucket — ours, or the one another process published first — or R_FULL,
 * or R_RETRY. */
static int group_insert(struct rate_ref *r, prot_t *p, uint64_t gw, const struct rate_id *id,
                        uint32_t algo, uint64_t now, uint64_t *meta)
{
	struct prot_rate_group *g = r->g;
	uint64_t c;
	int i = claim_free(g, gw, id->home, algo, &c);

	if (i < 0)
		return R_FULL;
	summary_mark(r->h, id->group); /* before publishing: see SUMMARY */
	struct prot_rate_bucket *b = &g->b[i];
	/* relaxed stores, all published by the group CAS (release) below. Who holds the claim, for
	 * the sweep (0: unknown, never freed: calls without a handle or without identity). */
	uint64_t self = p ? prot_self(p, r->h) : 0;
	atomic_store_explicit(&b->allowed, self ? self | CLAIM_TAG : 0, memory_order_relaxed);
	atomic_store_explicit(&g->h.tags[i], id->tag, memory_order_relaxed);
	id_store(b, id);
	atomic_store_explicit(&b->denied, 0, memory_order_relaxed);
	atomic_store_explicit(&b->word, word_init(algo, now), memory_order_relaxed);
	atomic_store_explicit(&b->allowed, 0, memory_order_relaxed);
	for (;;) {
		/* Defensive: only a dead claimer's claim is ever freed by someone else. */
		if (atomic_load_explicit(&b->meta, memory_order_relaxed) != c)
			return R_RETRY;
		/* release: tag, identity and word are visible to whoever acquires the bit */
		if (atomic_compare_exchange_strong_explicit(&g->h.word, &gw,
		                                            (gw + GROUP_VER) | (1ull << i),
		                                            memory_order_release, memory_order_acquire))
			break;
		/* The group changed since our scan: maybe someone published our entity. */
		int j = group_scan(g, gw, id, true, meta);
		if (j >= 0 || (gw & (1ull << i))) {
			claim_release(b, c);
			return j >= 0 ? j : R_RETRY;
		}
	}
	/* relaxed: a statistic */
	atomic_fetch_add_explicit(&r->h->rate_buckets_used, 1, memory_order_relaxed);
	/* Published: from here the bucket belongs to the removal protocol. If a helper made it LIVE
	 * and it has even been removed since (we were descheduled that long), look up again. */
	uint64_t m = help_publish(b, c);
	if (m != META_WITH(c, RB_LIVE))
		return R_RETRY;
	*meta = m;
	return i;
}

/* ---- algorithms ------------------------------------------------------------------------------- */

struct rate_eval {
	bool ok;
	uint64_t next;     /* the word after admitting (ok) */
	uint64_t used, remaining, reset_ns, retry_ns;
};

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* n = 0 describes the state without charging. */
static void gcra_eval(const struct rate_params *rp, uint64_t tat, uint64_t now, uint64_t n,
                      struct rate_eval *e)
{
	uint64_t base = tat > now ? tat : now;
	uint64_t next = base + n * rp->t_ns; /* n <= burst: n*T <= tau, no overflow */
	uint64_t debt = next - now;

	e->ok = debt <= rp->tau_ns;
	if (!e->ok) {
		e->retry_ns = debt - rp->tau_ns;
		debt = base - now; /* state as it stays */
	} else {
		e->retry_ns = 0;
	}
	e->next = next;
	e->reset_ns = debt; /* used and remaining follow from it, in info_fill (only if asked) */
	e->used = e->remaining = 0;
}

static void fw_eval(const struct rate_params *rp, uint64_t w, uint64_t now, uint64_t n,
                    struct rate_eval *e)
{
	uint64_t now_ms = now / NS_MS, end = w >> FW_BITS, cnt = w & FW_COUNT_MAX;

	if (end <= now_ms) {
		end = (now_ms / rp->window_ms + 1) * rp->window_ms;
		cnt = 0;
	}
	e->ok = cnt + n <= rp->limit;
	if (e->ok)
		cnt += n;
	e->next = end << FW_BITS | cnt;
	e->used = cnt;
	e->remaining = cnt <= rp->limit ? rp->limit - cnt : 0; /* a reload may lower the limit */
	e->reset_ns = end * NS_MS - now;
	e->retry_ns = e->ok ? 0 : e->reset_ns;
}

static void rate_eval(const struct rate_params *rp, uint64_t w, uint64_t now, uint64_t n,
                      struct rate_eval *e)
{
	if (rp->algo == PROT_RATE_GCRA)
		gcra_eval(rp, w, now, n, e);
	else
		fw_eval(rp, w, now, n, e);
}

static void info_fill(struct prot_rate_info *info, const struct rate_params *rp,
                      const struct rate_eval *e)
{
	if (!info)
		return;
	uint64_t used = e->used, remaining = e->remaining;
	if (rp->algo == PROT_RATE_GCRA) {
		used = div_up(e->reset_ns, rp->t_ns);
		remaining = e->reset_ns <= rp->tau_ns ? (rp->tau_ns - e->reset_ns) / rp->t_ns : 0;
	}
	*info = (struct prot_rate_info){
		.allowed = e->ok,
		.limit = rp->limit,
		.used = used,
		.remaining = remaining, /* 0 when a reload shrank the limit below the use */
		.window_ms = rp->window_ms,
		.reset_after_ms = div_up(e->reset_ns, NS_MS),
		.retry_after_ms = div_up(e->retry_ns, NS_MS),
	};
}

/* Why lim cannot be decided on, or NULL; *tau gets GCRA's tolerance. The one list of the limits
 * (rate_limits.h): params_make() refuses on it per call, rate_limit_check() explains it to protd. */
/* The limit's first problem, or NULL; for GCRA also its emission interval *t and tolerance *tau
 * (one division, shared with the decision). */
static inline const char *limit_problem(const struct prot_rate_limit *lim, uint32_t algo, uint64_t *t,
                                        uint64_t *tau)
{
	if (lim->limit == 0)
		return "rate_limit must be at least 1";
	if (lim->window_ms == 0 || lim->window_ms > RATE_WINDOW_MAX_MS)
		return "rate_window must be 1ms .. 2^36 ms";
	if (algo == PROT_RATE_FIXED_WINDOW)
		return lim->limit > FW_COUNT_MAX ? "a fixed window counts at most 2^24 - 1 units" : NULL;
	if (algo != PROT_RATE_GCRA)
		return "unknown rate algorithm";
	uint64_t burst = lim->burst ? lim->burst : lim->limit;
	*t = div_up(lim->window_ms * NS_MS, lim->limit);
	if (__builtin_mul_overflow(burst, *t, tau) || *tau > RATE_GCRA_TAU_MAX_NS)
		return "rate_burst * (rate_window / rate_limit) exceeds 2^62 ns";
	return NULL;
}

static uint32_t algo_of(const struct prot_rate_limit *lim)
{
	return lim->algo ? lim->algo : PROT_RATE_FIXED_WINDOW;
}

int rate_limit_check(const struct prot_rate_limit *lim, char *why, size_t n)
{
	uint64_t t, tau;
	const char *w = limit_problem(lim, algo_of(lim), &t, &tau);
	if (!w)
		return 0;
	snprintf(why, n, "%s (rate_limit %" PRIu64 ", rate_window %" PRIu64 "ms, rate_burst %" PRIu64 ")",
	         w, lim->limit, lim->window_ms, lim->burst);
	return -EINVAL;
}

static int params_make(const struct prot_rate_limit *lim, uint64_t cost, struct rate_params *rp)
{
	if (!lim)
		return -EINVAL;
	*rp = (struct rate_params){.algo = algo_of(lim), .limit = lim->limit, .window_ms = lim->window_ms};
	if (unlikely(limit_problem(lim, rp->algo, &rp->t_ns, &rp->tau_ns) != NULL))
		return -EINVAL;
	if (rp->algo == PROT_RATE_FIXED_WINDOW)
		return cost > lim->limit ? -PROT_ECOST : 0;
	rp->burst = lim->burst ? lim->burst : lim->limit;
	return cost > rp->burst ? -PROT_ECOST : 0;
}

/* ---- the decision ----------------------------------------------------------------------------- */

/* Charge cost to the bucket r (meta m, LIVE). Returns 1 admitted, 0 denied, R_RETRY. */
static int decide(struct rate_ref r, uint64_t m, const struct rate_params *rp, uint64_t cost,
                  uint64_t now, struct prot_rate_info *info)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	struct rate_eval e;
	/* acquire: the meta re-load below cannot be satisfied before this load */
	uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);

	for (;;) {
		if (atomic_load_explicit(&b->meta, memory_order_relaxed) != m)
			return R_RETRY; /* recycled, or not yet LIVE when we matched it */
		if (unlikely(w == DEAD_WORD)) {
			finish_remove(r, m);
			return R_RETRY;
		}
		if (unlikely(META_ALGO(m) != rp->algo)) {
			bucket_remove(r, m, w);
			return R_RETRY;
		}
		rate_eval(rp, w, now, cost, &e);
		if (!e.ok) {
			/* relaxed: statistics; line 1 only — the decision line stays untouched */
			atomic_fetch_add_explicit(&b->denied, 1, memory_order_relaxed);
			info_fill(info, rp, &e);
			return 0;
		}
		/* The word is self-contained: exactness comes from the CAS itself. acquire only so that
		 * after a failure the meta re-check is not satisfied before the reload of w. */
		if (atomic_compare_exchange_weak_explicit(&b->word, &w, e.next, memory_order_acquire,
		                                          memory_order_acquire))
			break;
	}
	atomic_fetch_add_explicit(&b->allowed, cost, memory_order_relaxed); /* statistic */
	info_fill(info, rp, &e);
	return 1;
}

/* What a full group means for this call. */
struct rate_policy {
	uint64_t full; /* RATE_FULL_* */
	struct prot_key_stats *ks;
	uint32_t key_idx;
	const char *name;
	const char *entity; /* for telemetry only */
};

static int table_full(struct prot_shm_header *h, const struct rate_policy *pol,
                      const struct rate_params *rp, struct prot_rate_info *info)
{
	/* relaxed: statistics */
	uint64_t n = atomic_fetch_add_explicit(&h->rate_table_full, 1, memory_order_relaxed) + 1;
	if (pol->ks)
		atomic_fetch_add_explicit(&pol->ks->rate_table_full, 1, memory_order_relaxed);
	if ((n & (n - 1)) == 0) /* 1st, 2nd, 4th, 8th...: visible without flooding the ring */
		prot_event_emit(h, EV_RATE_TABLE_FULL, pol->key_idx, pol->name, n, pol->full);
	if (pol->full != RATE_FULL_ALLOW)
		return -PROT_ETABLEFULL;
	if (info)
		*info = (struct prot_rate_info){.allowed = 1, .limit = rp->limit, .window_ms = rp->window_ms};
	return 1;
}

static int rate_run(struct prot_shm_header *h, prot_t *p, const struct rate_id *id,
                    const struct rate_params *rp,
                    uint64_t cost, uint64_t now, const struct rate_policy *pol,
                    struct prot_rate_info *info)
{
	struct rate_ref r = {.h = h, .g = group_at(h, id->group)};
	uint64_t m;
	int i, res;

	/* Two dependent misses (group index, then bucket) become one on a big table: the bucket is
	 * usually the home slot, fetched while the group line is. */
	__builtin_prefetch(&r.g->b[id->home], 1, 3);
	for (;;) {
		uint64_t gw = group_load(r.g);
		i = group_scan(r.g, gw, id, true, &m);
		if (i < 0) {
			i = group_insert(&r, p, gw, id, rp->algo, now, &m);
			if (i == R_FULL)
				return table_full(h, pol, rp, info);
			if (i == R_RETRY)
				continue;
		}
		r.i = (uint32_t)i;
		res = decide(r, m, rp, cost, now, info);
		if (res != R_RETRY)
			break;
	}
	/* No per-key counter here: a line shared by every process and entity of the key would be
	 * written by every decision (denials included). The bucket counts (admissions on the line the
	 * CAS already owns, denials on line 1); a key's totals are its live buckets plus what removed
	 * buckets had counted (rate_keys_totals). */
	if (p)
		PROT_TEL(p, res ? PROT_TEL_RATE_ALLOWED : PROT_TEL_RATE_DENIED, .layer = PROT_LAYER_RATE,
		         .result = res, .key = pol->ks ? pol->name : NULL, .operation = pol->name,
		         .entity = pol->entity);
	return res;
}

/* ---- hidden entry points (protctl, facade, tests) -------------------------------------------- */

int rate_check_h(prot_t *p, struct prot_shm_header *h, const char *op, const char *entity,
                 const struct prot_rate_limit *lim, uint64_t cost, uint64_t now_ns,
                 struct prot_rate_info *info)
{
	struct rate_params rp;
	struct rate_id id;
	struct rate_policy pol = {.full = RATE_FULL_DENY, .key_idx = PROT_NO_INDEX, .name = op,
	                          .entity = entity};
	int r = rate_id_make(p, h, op, entity, &id);

	if (r == 0)
		r = params_make(lim, cost, &rp);
	if (r < 0)
		return r;
	return rate_run(h, p, &id, &rp, cost, now_ns ? now_ns : prot_now_ns(), &pol, info);
}

/* The rate fields lead struct prot_key_cfg: a decision copies those six words, not sixteen. */
#define RATE_CFG_WORDS 6
_Static_assert(offsetof(struct prot_key_cfg, rate_clock) == 8 * (RATE_CFG_WORDS - 1), "rate words");
_Static_assert(offsetof(struct prot_key_cfg, breaker_index) == 8 * RATE_CFG_WORDS, "then the rest");

int rate_key_limit(struct prot_shm_header *h, uint32_t idx, struct prot_key_cfg *cfg,
                   struct prot_rate_limit *lim)
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
	atomic_thread_fence(memory_order_acquire); /* the copy happens before the re-check */
	if (SLOT_STATE(st0) != SLOT_LIVE || atomic_load_explicit(&k->state, memory_order_relaxed) != st0)
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
	lim->algo = (uint32_t)w[3];
	lim->limit = w[0];
	lim->window_ms = w[1];
	lim->burst = w[2];
	return 0;
}

int rate_check_cfg(prot_t *p, struct prot_shm_header *h, uint32_t idx, const char *key,
                   const struct prot_key_cfg *cfg, const char *entity, uint64_t cost,
                   uint64_t now_ns, struct prot_rate_info *info)
{
	struct prot_key_slot *k = seg_entry(h, REG_KEYS, idx);
	const struct prot_rate_limit lim = {.algo = (uint32_t)cfg->rate_algo, .limit = cfg->rate_limit,
	                                    .window_ms = cfg->rate_window_ms, .burst = cfg->rate_burst};
	char name[PROT_NAME_BYTES];
	struct rate_params rp;
	struct rate_id id;
	int r;

	if (cfg->rate_limit == 0) { /* no limiter on this key: everything passes */
		if (info)
			*info = (struct prot_rate_info){.allowed = 1};
		return 1;
	}
	if (!key) { /* the slot's own name: copy it, bounded (the slot is shared memory) */
		memcpy(name, k->name, sizeof name);
		name[sizeof name - 1] = '\0';
		key = name;
	}
	r = rate_id_make(p, h, key, entity, &id);
	if (r == 0)
		r = params_make(&lim, cost, &rp);
	if (r < 0)
		return r;
	struct rate_policy pol = {.full = cfg->rate_full_policy, .ks = &k->stats, .key_idx = idx,
	                          .name = key, .entity = entity};
	uint64_t now = now_ns                              ? now_ns
	               : cfg->rate_clock == RATE_CLOCK_COARSE ? prot_now_coarse_ns()
	                                                      : prot_now_ns();
	return rate_run(h, p, &id, &rp, cost, now, &pol, info);
}

int rate_check_key_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx, const char *key,
                       const char *entity, uint64_t cost, struct prot_rate_info *info)
{
	struct prot_key_cfg cfg;
	struct prot_rate_limit lim;
	int r = rate_key_limit(h, idx, &cfg, &lim);

	return r < 0 ? r : rate_check_cfg(p, h, idx, key, &cfg, entity, cost, 0, info);
}

/* Find id's bucket without helping (works on a read-only mapping) and snapshot its word. */
static int find_word(struct prot_shm_header *h, const struct rate_id *id, struct rate_ref *r,
                     uint64_t *meta, uint64_t *word)
{
	r->h = h;
	r->g = group_at(h, id->group);
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t m, gw = group_load(r->g);
		int i = group_scan(r->g, gw, id, false, &m);
		if (i < 0)
			return -ENOENT;
		struct prot_rate_bucket *b = &r->g->b[i];
		/* acquire: the meta re-load below cannot be satisfied before this load */
		uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
		if (atomic_load_explicit(&b->meta, memory_order_relaxed) != m || w == DEAD_WORD)
			continue;
		r->i = (uint32_t)i;
		*meta = m;
		*word = w;
		return 0;
	}
	return -EAGAIN;
}

int rate_status_h(struct prot_shm_header *h, const char *op, const char *entity,
                  const struct prot_rate_limit *lim, uint64_t now_ns, struct prot_rate_info *out)
{
	struct rate_params rp;
	struct rate_id id;
	struct rate_ref ref;
	struct rate_eval e, one;
	uint64_t m, w;
	int r = rate_id_make(NULL, h, op, entity, &id);

	if (r == 0)
		r = params_make(lim, 0, &rp);
	if (r < 0)
		return r;
	if (!out)
		return -EINVAL;
	if (!now_ns)
		now_ns = prot_now_ns();
	r = find_word(h, &id, &ref, &m, &w);
	if (r == -ENOENT || (r == 0 && META_ALGO(m) != rp.algo))
		w = word_init(rp.algo, now_ns); /* never used (or reset on next use): fully available */
	else if (r < 0)
		return r;
	rate_eval(&rp, w, now_ns, 0, &e);
	rate_eval(&rp, w, now_ns, 1, &one);
	info_fill(out, &rp, &e);
	out->allowed = one.ok;
	out->retry_after_ms = div_up(one.retry_ns, NS_MS);
	return 0;
}

int rate_reset_h(struct prot_shm_header *h, const char *op, const char *entity)
{
	struct rate_id id;
	struct rate_ref ref;
	uint64_t m, w;
	int r = rate_id_make(NULL, h, op, entity, &id);

	if (r < 0)
		return r;
	for (;;) {
		r = find_word(h, &id, &ref, &m, &w);
		if (r < 0)
			return r;
		if (META_ST(m) == RB_CLAIMED)
			m = help_if_published(ref.g, ref.i, m);
		if (META_ST(m) == RB_LIVE && bucket_remove(ref, m, w))
			return 0;
	}
}

/* Copy a bucket for display; false if it changed under us or is not a bucket. */
static bool view_copy(struct prot_rate_group *g, uint32_t gi, uint32_t i, struct rate_view *v)
{
	struct prot_rate_bucket *b = &g->b[i];
	uint64_t ent[ENT_WORDS], id0, id1;
	/* acquire: pairs with the LIVE release; identity is then complete */
	uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire);

	if (META_ST(m) != RB_LIVE && META_ST(m) != RB_CLAIMED)
		return false;
	v->word = atomic_load_explicit(&b->word, memory_order_relaxed);
	v->allowed = atomic_load_explicit(&b->allowed, memory_order_relaxed);
	v->denied = atomic_load_explicit(&b->denied, memory_order_relaxed);
	v->op_hash = ld(b, B_OP_HASH);
	id0 = ld(b, B_ID0);
	id1 = ld(b, B_ID1);
	for (uint32_t k = 0; k < ENT_WORDS; k++)
		ent[k] = ld(b, ent_off(k));
	atomic_thread_fence(memory_order_acquire); /* the copy happens before the re-check */
	if (atomic_load_explicit(&b->meta, memory_order_relaxed) != m || v->word == DEAD_WORD)
		return false;
	uint8_t head[16];
	memcpy(head, &id0, 8);
	memcpy(head + 8, &id1, 8);
	/* untrusted lengths: clamp to what the bucket can hold */
	v->op_len = head[0] <= PROT_OP_MAX ? head[0] : PROT_OP_MAX;
	v->ent_len = head[1] <= PROT_ENTITY_MAX ? head[1] : PROT_ENTITY_MAX;
	size_t oh = v->op_len < RATE_OP_HEAD ? v->op_len : RATE_OP_HEAD;
	memcpy(v->op_head, head + 2, oh);
	v->op_head[oh] = '\0';
	memcpy(v->entity, ent, v->ent_len);
	v->entity[v->ent_len] = '\0';
	v->algo = META_ALGO(m);
	v->group = gi;
	v->slot = i;
	return true;
}

int rate_foreach(struct prot_shm_header *h, const char *op,
                 int (*fn)(const struct rate_view *v, void *arg), void *arg)
{
	uint64_t op_hash = 0;
	size_t ol = 0;

	if (op) {
		ol = strnlen(op, PROT_OP_MAX + 1);
		if (ol > PROT_OP_MAX)
			return -PROT_ETOOLONG;
		op_hash = prot_siphash(h->hash_key, op, ol);
	}
	for (uint32_t gi = 0, n = seg_count(h, REG_RATE_GROUPS); gi < n; gi++) {
		struct prot_rate_group *g = group_at(h, gi);
		uint32_t bits = (uint32_t)group_load(g);
		while (bits) {
			uint32_t i = (uint32_t)__builtin_ctz(bits);
			struct rate_view v;
			bits &= bits - 1;
			if (!view_copy(g, gi, i, &v))
				continue;
			if (op && (v.op_hash != op_hash || v.op_len != ol))
				continue;
			int r = fn(&v, arg);
			if (r)
				return r;
		}
	}
	return 0;
}

static int count_one(const struct rate_view *v, void *arg)
{
	(void)v;
	++*(uint64_t *)arg;
	return 0;
}

uint64_t rate_count_op(struct prot_shm_header *h, const char *op)
{
	uint64_t n = 0;

	rate_foreach(h, op, count_one, &n);
	return n;
}

struct totals_pass {
	uint32_t n;
	const uint64_t *op_hash;
	struct rate_totals *out;
};

static int total_one(const struct rate_view *v, void *arg)
{
	struct totals_pass *t = arg;
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->op_hash[i] && t->op_hash[i] == v->op_hash) {
			t->out[i].buckets++;
			t->out[i].allowed += v->allowed;
			t->out[i].denied += v->denied;
			break;
		}
	}
	return 0;
}

int rate_keys_totals(struct prot_shm_header *h, uint32_t n, const uint32_t *key_idx,
                     struct rate_totals *out)
{
	uint64_t *op_hash = calloc(n ? n : 1, sizeof *op_hash);
	if (!op_hash)
		return -ENOMEM;
	memset(out, 0, n * sizeof *out);
	for (uint32_t i = 0; i < n; i++) {
		if (key_idx[i] >= seg_count(h, REG_KEYS))
			continue;
		struct prot_key_slot *k = seg_entry(h, REG_KEYS, key_idx[i]);
		op_hash[i] = key_op_hash(h, k);
		/* what removed buckets of the key had counted (fold_counts) */
		out[i].allowed = atomic_load_explicit(&k->stats.rate_allowed, memory_order_relaxed);
		out[i].denied = atomic_load_explicit(&k->stats.rate_denied, memory_order_relaxed);
	}
	struct totals_pass t = {n, op_hash, out};
	rate_foreach(h, NULL, total_one, &t); /* one pass over the table for every key */
	free(op_hash);
	return 0;
}

/* ---- expiry ----------------------------------------------------------------------------------- */

static bool expired(uint64_t m, uint64_t w, uint64_t now)
{
	if (now < RATE_GRACE_NS)
		return false;
	if (META_ALGO(m) == PROT_RATE_GCRA)
		return w <= now - RATE_GRACE_NS;
	return (w >> FW_BITS) <= (now - RATE_GRACE_NS) / NS_MS;
}

/* A bucket whose bit is set. */
static uint64_t sweep_set(struct rate_ref r, uint64_t now)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	/* acquire: pairs with the LIVE release */
	uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire);

	if (META_ST(m) == RB_CLAIMED)
		m = help_if_published(r.g, r.i, m);
	if (META_ST(m) != RB_LIVE)
		return 0;
	/* acquire: the meta re-check below cannot be satisfied before this load */
	uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
	if (atomic_load_explicit(&b->meta, memory_order_relaxed) != m)
		return 0;
	if (w == DEAD_WORD)
		return finish_remove(r, m);
	return expired(m, w, now) && bucket_remove(r, m, w);
}

/* Is the claimer `owner` (identity | CLAIM_TAG) provably gone? Anything else stored there (0, a
 * stale statistic) is no identity and counts as alive. */
static bool claimer_dead(const struct prot_idv *v, uint64_t owner)
{
	return (owner & CLAIM_TAG) && v && !ident_alive(v, owner & ~CLAIM_TAG);
}

/* A bucket whose bit was clear: free a dead claimer's claim, finish a removal's last step. */
static void sweep_clear(struct rate_ref r, const struct prot_idv *v)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire); /* see sweep_set */

	if (META_ST(m) == RB_FREE || META_ST(m) == RB_LIVE)
		return;
	/* relaxed: the claimer's identity; if the claim changes meanwhile, the CAS below fails */
	if (META_ST(m) == RB_CLAIMED &&
	    !claimer_dead(v, atomic_load_explicit(&b->allowed, memory_order_relaxed)))
		return;
	/* Bit still clear after we saw the meta: a DEAD bucket's remover has cleared it; a CLAIMED
	 * one was never published. */
	if (group_load(r.g) & (1ull << r.i))
		return;
	/* release: the bucket is reusable only after this; a remover CASes DEAD -> FREE as well */
	atomic_compare_exchange_strong_explicit(&b->meta, &m, META_WITH(m, RB_FREE),
	                                        memory_order_release, memory_order_relaxed);
}

/* Sweep every bucket of group gi; clear its summary bit (w: the summary, or NULL) once it is quiet. */
static uint64_t sweep_group(struct prot_shm_header *h, uint32_t gi, _Atomic uint64_t *w,
                            uint64_t now_ns, const struct prot_idv *v)
{
	struct rate_ref r = {.h = h, .g = group_at(h, gi)};
	uint32_t bits = (uint32_t)group_load(r.g);
	uint64_t count = 0;

	for (r.i = 0; r.i < RATE_GROUP_SLOTS; r.i++) {
		if (bits & (1u << r.i))
			count += sweep_set(r, now_ns);
		else
			sweep_clear(r, v);
	}
	if (w && group_quiet(r.g))
		summary_clear(w, gi, r.g);
	return count;
}

void rate_sweep(const struct prot_idv *v, uint64_t now_ns, uint64_t *swept)
{
	struct prot_shm_header *h = v->h;
	uint32_t groups = seg_count(h, REG_RATE_GROUPS);
	uint32_t n = groups < RATE_SWEEP_GROUPS ? groups : RATE_SWEEP_GROUPS;
	uint64_t count = 0;

	if (groups == 0 || (groups & (groups - 1)) != 0) {
		*swept = 0;
		return;
	}
	_Atomic uint64_t *w = summary_words(h);
	/* relaxed: the cursor only spreads the work; every step below re-checks what it acts on */
	uint64_t start = atomic_fetch_add_explicit(&h->rate_sweep_cursor, n, memory_order_relaxed);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t gi = (uint32_t)(start + k) & (groups - 1);
		/* relaxed: a stale clear bit only delays this group to the next pass (see SUMMARY) */
		if (w && !(atomic_load_explicit(&w[gi / 64], memory_order_relaxed) >> (gi % 64) & 1))
			continue;
		count += sweep_group(h, gi, w, now_ns, v);
	}
	*swept = count;
}

/* ---- public API ------------------------------------------------------------------------------- */

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

int prot_rate_execute(prot_t *p, const char *operation, const char *entity,
                      const struct prot_rate_limit *lim, int (*fn)(void *arg), void *arg,
                      int *fn_result, struct prot_rate_info *info)
{
	struct prot_rate_info in;
	int r;

	if (!fn)
		return -EINVAL;
	r = prot_rate_check_n(p, operation, entity, lim, 1, &in);
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

int prot_rate_status(prot_t *p, const char *operation, const char *entity,
                     const struct prot_rate_limit *lim, struct prot_rate_info *out)
{
	int g = prot_gate(p, false);
	if (g < 0)
		return g;
	return rate_status_h(prot_hdr(p), operation, entity, lim, 0, out);
}

int prot_rate_reset(prot_t *p, const char *operation, const char *entity)
{
	int g = prot_gate(p, true);
	if (g < 0)
		return g;
	return rate_reset_h(prot_hdr(p), operation, entity);
}
