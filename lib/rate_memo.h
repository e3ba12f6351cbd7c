/* rate_memo.h — the per-handle memo of rate buckets (p->rate_memo): (mapping, operation, entity,
 * scale) -> (bucket index, the bucket's meta word when it was found), so that a decision on an
 * identity it has seen before skips the keyed hash and the group search and goes straight to the
 * bucket's word. Included by lib/ratelimit.c only (its decisions inline it); the bucket side is
 * rate_table_charge_at in lib/rate_table.c.
 *
 * Why a remembered bucket is never charged for another identity:
 *  - what is remembered. An entry is written only from what a lookup proved (rate_table_charge:
 *    the bucket, LIVE under meta m, held the identity; struct rate_hit). meta = gen << 32 |
 *    state, and a bucket's identity words are written only by its claimer, under CLAIMED with a
 *    new generation (rate_table.c, INSERTION). So while the bucket's meta equals m its identity
 *    is the one compared: decide() loads the word and re-checks meta == m before it charges,
 *    which is the same check a lookup's decision makes. The way around it is 2^32 claims of one
 *    bucket between two decisions of this handle (the generation's wrap).
 *  - what it is keyed by. The full identity as struct rate_id holds it (op_hash and the op and
 *    entity lengths, the entity's words, the scale), compared word for word: a memo hit is a
 *    bucket the table would have found. op_hash is the keyed hash that the bucket itself compares,
 *    so equal op hashes are the same operation for the table too.
 *  - which segment: h, the mapping's address, as in lib/resolve.c: a handle's mappings stay
 *    mapped until prot_close(), so no other segment is ever mapped where an entry points.
 *  - an index that is not a bucket. Entries are private memory, but rate_table_charge_at still
 *    bounds the index by the private geometry.
 *  - threads. Each entry is a small seqlock, as struct rate_op_cache's: a writer claims it by CAS
 *    of an even seq to odd (a loser does not memoise), writes with relaxed atomic stores and
 *    releases seq + 2 (memo_write_begin / memo_write_end, internal.h); a reader acquires seq,
 *    compares and copies, fences and re-checks it. A
 *    torn or busy entry is a miss, never a wrong bucket, and a miss is a lookup.
 *  - fork. A child keeps the entries (same mappings, same addresses); fork_refresh empties the
 *    memo (rate_memo_forget) in case a parent thread was writing one at fork().
 *  - flooding. The index is a cheap mix of the identity, not a keyed hash: entities chosen to
 *    collide only evict each other, which costs them a lookup each (today's price), never more.
 */
#ifndef PROT_RATE_MEMO_H
#define PROT_RATE_MEMO_H

#include "rate_table.h"

_Static_assert(sizeof(((struct rate_memo *)0)->ent) == sizeof(((struct rate_id *)0)->ent),
               "a memo entry holds a whole entity");

#define RM_LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define RM_ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static inline struct rate_memo *rate_memo_slot(prot_t *p, const struct rate_id *id)
{
	uint64_t x = id->op_hash ^ id->scale ^ (id->ent[0] * 0x9e3779b97f4a7c15ull) ^
	             (id->ent[1] * 0xc2b2ae3d27d4eb4full) ^ id->id0;
	x ^= x >> 29;
	return &p->rate_memo[(x * 0xbf58476d1ce4e5b9ull) >> (64 - 6)];
}
_Static_assert(RATE_MEMO == 1 << 6, "the memo's index is 6 bits wide");

/* The bucket remembered for id in h: true and *hit, or false (a miss). */
static inline bool rate_memo_get(const struct rate_memo *m, const struct prot_shm_header *h,
                                 const struct rate_id *id, struct rate_hit *hit)
{
	/* acquire: pairs with the writer's release of an even seq */
	uint32_t s = atomic_load_explicit(&m->seq, memory_order_acquire);

	if ((s & 1) || RM_LD(m->h) != h || RM_LD(m->id0) != id->id0 ||
	    RM_LD(m->op_hash) != id->op_hash || RM_LD(m->scale) != id->scale)
		return false;
	for (uint32_t k = 0; k < id->ent_words; k++) /* ent_words <= ENT_WORDS */
		if (RM_LD(m->ent[k]) != id->ent[k])
			return false;
	uint32_t bucket = RM_LD(m->bucket);
	uint64_t meta = RM_LD(m->meta);
	if (seq_read_retry(&m->seq, s))
		return false;
	hit->bucket = bucket;
	hit->meta = meta;
	return true;
}

/* Remember that id's bucket in h is hit (as rate_table_charge found it). */
static inline void rate_memo_put(struct rate_memo *m, const struct prot_shm_header *h,
                                 const struct rate_id *id, struct rate_hit hit)
{
	uint32_t s;

	if (!memo_write_begin(&m->seq, &s))
		return;
	RM_ST(m->h, h);
	RM_ST(m->id0, id->id0);
	RM_ST(m->op_hash, id->op_hash);
	RM_ST(m->scale, id->scale);
	for (uint32_t k = 0; k < ENT_WORDS; k++)
		RM_ST(m->ent[k], id->ent[k]);
	RM_ST(m->bucket, hit.bucket);
	RM_ST(m->meta, hit.meta);
	memo_write_end(&m->seq, s);
}

#endif
