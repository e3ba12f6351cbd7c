/* rate_id.c — how a rate decision names its bucket: (operation, entity) encoded into the words a
 * bucket stores and compares (struct rate_id, rate_table.h) plus the hash that places it, and the
 * per-handle memo (struct rate_op_cache, internal.h) that spares a decision hashing its operation
 * name or searching for its key again. Called by ratelimit.c (every decision, the key lookup of
 * prot_rate_check_key), rate_view.c (status) and rate_table.c (reset).
 *
 * IDENTITY. A bucket is (operation, entity). The entity is compared exactly: its bytes (at most
 * PROT_ENTITY_MAX = 64; longer is PROT_ETOOLONG, never truncated) are stored in ent_head/ent_tail.
 * The operation is a program constant and is compared by a 64-bit keyed hash plus its length
 * (op_hash = SipHash(segment key, name), op_len); op_head keeps its first 14 bytes for display.
 * For a protection key (prot_rate_check_key, prot_execute) the operation is the key's name, or the
 * call's opts->operation. The group, tag and home slot come from SipHash(segment key ^ (op_hash,
 * 0), entity) (see TABLE in rate_table.c).
 *
 * THE MEMO. An entry is a small seqlock (see struct rate_op_cache): a reader that overlaps a writer
 * fails and computes, never tears. A key slot remembered there is trusted only while the slot's
 * state word (generation included) is the one seen when the name was compared.
 */
#include <errno.h>

#include "rate_table.h"

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
int rate_key_lookup(prot_t *p, struct prot_shm_header *h, const char *name)
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

int rate_id_make(prot_t *p, const struct prot_shm_header *h, const char *op, const char *entity,
                 struct rate_id *id)
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
