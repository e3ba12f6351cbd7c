/* rate_view.c — the rate limiter read, never written: one entity's status (prot_rate_status,
 * protctl rate show), copies of live buckets for display (rate_foreach: protctl rate show / top,
 * the tests), bucket counts, and every key's totals in one pass (protctl stats, the facade's
 * prot_get_protection_status). Everything here works on a read-only mapping: it helps no
 * publication and removes nothing (rate_table.c does).
 *
 * What it reads is shared memory, maybe changing under it: a bucket is copied between an acquire
 * load of its meta and a re-check of it (a changed meta drops the copy), and every length read
 * from a bucket is clamped to what the bucket can hold.
 */
#include <errno.h>
#include <stdlib.h>

#include "rate_sliding.h"

int rate_status_h(struct prot_shm_header *h, const char *op, const char *entity,
                  const struct rate_params *rp, uint64_t now_ns, struct prot_rate_info *out)
{
	struct rate_id id;
	struct rate_ref ref;
	uint64_t m, w;
	int r = rate_id_make(NULL, h, op, entity, &id);

	if (r == 0)
		r = rate_params_cost(rp, 0);
	if (r == 0)
		r = rate_sliding_fits(h, rp);
	if (r < 0)
		return r;
	if (!out)
		return -EINVAL;
	if (!now_ns)
		now_ns = rate_clock_now(rate_clock_of_tag(rp->tag), 0);
	r = rate_table_find(h, &id, &ref, &m, &w);
	bool fresh = r == -ENOENT || (r == 0 && META_ALGO(m) != rp->tag);
	if (!fresh && r < 0)
		return r;
	if (rp->algo == PROT_RATE_SLIDING_WINDOW) /* its ring (none: an empty window) */
		rate_sliding_status(h, fresh ? 0 : rate_bucket_index(ref), fresh ? 0 : w, rp, now_ns, out);
	else /* never used (or reset on next use): fully available */
		rate_status_info(rp, fresh ? rate_word_init(rp->tag, now_ns) : w, now_ns, out);
	return 0;
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
	v->algo = RATE_TAG_ALGO(META_ALGO(m));
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
		op_hash[i] = rate_key_op_hash(h, k);
		/* what removed buckets of the key had counted (fold_counts) */
		out[i].allowed = atomic_load_explicit(&k->stats.rate_allowed, memory_order_relaxed);
		out[i].denied = atomic_load_explicit(&k->stats.rate_denied, memory_order_relaxed);
	}
	struct totals_pass t = {n, op_hash, out};
	rate_foreach(h, NULL, total_one, &t); /* one pass over the table for every key */
	free(op_hash);
	return 0;
}
