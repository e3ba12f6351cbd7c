/* rate_view.c — the rate limiter read, never written: one bucket's status (prot_rate_status,
 * prot_rate_status_key: existence, timestamps, expires_at; protctl rate show), copies of live
 * buckets for display (rate_foreach: protctl rate show / top, the tests), bucket counts, and every key's totals in one pass (protctl stats, the facade's
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

/* A bucket's 32-bit updated_ms widened: the latest time <= now with those low bits (exact while
 * the last admission is less than 2^32 ms, 49 days, old), never before the bucket was made. */
static uint64_t widen_ms(uint32_t low, uint64_t now_ms, uint64_t created_ms)
{
	uint64_t t = now_ms - (uint32_t)((uint32_t)now_ms - low);
	return t > now_ms || t < created_ms ? created_ms : t;
}

/* Copy a bucket for display; false if it changed under us or is not a bucket. */
static bool view_copy(struct prot_rate_group *g, uint32_t gi, uint32_t i, const uint64_t now_ms[2],
                      struct rate_view *v)
{
	struct prot_rate_bucket *b = &g->b[i];
	uint64_t ent[ENT_WORDS];
	uint32_t id0, upd;
	/* acquire: pairs with the LIVE release; identity is then complete */
	uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire);

	if (META_ST(m) != RB_LIVE && META_ST(m) != RB_CLAIMED)
		return false;
	v->word = atomic_load_explicit(&b->word, memory_order_relaxed);
	v->allowed = atomic_load_explicit(&b->allowed, memory_order_relaxed);
	v->denied = atomic_load_explicit(&b->denied, memory_order_relaxed);
	v->created_ns = atomic_load_explicit(&b->created_ns, memory_order_relaxed);
	upd = atomic_load_explicit(&b->updated_ms, memory_order_relaxed);
	v->op_hash = ld(b, B_OP_HASH);
	uint64_t scale = ld(b, B_SCALE);
	id0 = ld_id0(b);
	for (uint32_t k = 0; k < ENT_WORDS; k++)
		ent[k] = ld(b, ent_off(k));
	if (seq_read_retry(&b->meta, m) || v->word == DEAD_WORD)
		return false;
	/* untrusted lengths: clamp to what the bucket can hold */
	uint8_t ol = (uint8_t)id0, el = (uint8_t)(id0 >> 8);
	v->op_len = ol <= PROT_OP_MAX ? ol : PROT_OP_MAX;
	v->ent_len = el <= PROT_ENTITY_MAX ? el : PROT_ENTITY_MAX;
	memcpy(v->entity, ent, v->ent_len);
	v->entity[v->ent_len] = '\0';
	v->updated_ms = widen_ms(upd, now_ms[!!(SCALE_KIND(scale) & RATE_TAG_REALTIME)],
	                         v->created_ns / RATE_NS_MS);
	v->kind = SCALE_KIND(scale);
	v->algo = RATE_TAG_ALGO(v->kind);
	v->window_ms = SCALE_WINDOW(scale);
	v->group = gi;
	v->slot = i;
	return true;
}

/* A time of a bucket of kind as reported: CLOCK_MONOTONIC ms, or Unix ms for a calendar bucket. */
static uint64_t report_ms(uint32_t kind, uint64_t ms)
{
	return kind & RATE_TAG_REALTIME ? ms + RATE_EPOCH_MS : ms;
}

void rate_view_status(struct prot_shm_header *h, const struct rate_view *v,
                      const struct rate_params *rp, uint64_t now_ns, struct prot_rate_status *out)
{
	uint64_t exp_ms;

	if (!now_ns) /* on the bucket's clock */
		now_ns = rate_clock_now(rate_clock_of_tag(v->kind), 0);
	*out = (struct prot_rate_status){.exists = 1, .algo = v->algo,
	                                 .created_ms = report_ms(v->kind, v->created_ns / RATE_NS_MS),
	                                 .updated_ms = report_ms(v->kind, v->updated_ms)};
	if (v->algo == PROT_RATE_SLIDING_WINDOW) { /* the word is its ring (rate_sliding.c) */
		rate_sliding_peek(h, v->group * RATE_GROUP_SLOTS + v->slot, v->word, rp, v->window_ms,
		                  now_ns, &out->info);
		/* fully available once its newest admission has left the window */
		exp_ms = now_ns / RATE_NS_MS + out->info.reset_after_ms;
	} else if (rp) {
		struct rate_eval e;
		rate_status_info(rp, v->word, now_ns, &out->info);
		rate_eval(rp, v->word, now_ns, 0, &e);
		exp_ms = (now_ns + e.reset_ns + RATE_NS_MS - 1) / RATE_NS_MS;
	} else { /* no limits: the raw state (fixed window: count and window end; GCRA: the TAT) */
		uint64_t now_ms = now_ns / RATE_NS_MS;
		out->info.window_ms = v->window_ms;
		if (rate_algo_gcra_word(v->algo)) {
			exp_ms = (v->word + RATE_NS_MS - 1) / RATE_NS_MS;
		} else {
			uint64_t end = v->word >> RATE_FW_BITS, w = v->window_ms ? v->window_ms : 1;
			bool live = end > now_ms;
			out->info.used = live ? (v->word & RATE_FW_LIMIT_MAX) : 0;
			exp_ms = live ? end : (now_ms / w + 1) * w; /* calendar: as rate_algo.c aligns */
		}
		out->info.reset_after_ms = exp_ms > now_ms ? exp_ms - now_ms : 0;
	}
	/* a budget (refill 0) is never fully available again by itself */
	out->expires_at_ms = v->kind & RATE_TAG_BUDGET ? 0 : report_ms(v->kind, exp_ms);
}

int rate_view_find(struct prot_shm_header *h, const struct rate_id *id,
                   const struct rate_params *rp, uint64_t now_ns, struct prot_rate_status *out)
{
	/* id's scale is rp's kind: a bucket found is on rp's clock, the one now_ns reads */
	const uint64_t now_ms[2] = {now_ns / RATE_NS_MS, now_ns / RATE_NS_MS};
	struct rate_ref ref;
	struct rate_view v;
	uint64_t m, w;

	for (int tries = 0; tries < 100; tries++) {
		int r = rate_table_find(h, id, &ref, &m, &w);
		if (r == -ENOENT)
			break;
		if (r < 0)
			return r;
		uint32_t gi = (uint32_t)(ref.g - group_at(h, 0));
		if (!view_copy(ref.g, gi, ref.i, now_ms, &v))
			continue; /* changed under us: look again */
		rate_view_status(h, &v, rp, now_ns, out);
		return 0;
	}
	/* never used (or expired): a fresh bucket's state, fully available */
	*out = (struct prot_rate_status){.algo = rp->algo};
	if (rp->algo == PROT_RATE_SLIDING_WINDOW) /* no ring: an empty window */
		rate_sliding_status(h, 0, 0, rp, now_ns, &out->info);
	else
		rate_status_info(rp, rate_word_init(rp->tag, now_ns), now_ns, &out->info);
	return 0;
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
	const uint64_t now_ms[2] = {prot_now_ns() / RATE_NS_MS, rate_calendar_ns() / RATE_NS_MS};
	for (uint32_t gi = 0, n = seg_count(h, REG_RATE_GROUPS); gi < n; gi++) {
		struct prot_rate_group *g = group_at(h, gi);
		uint32_t bits = (uint32_t)group_load(g);
		while (bits) {
			uint32_t i = (uint32_t)__builtin_ctz(bits);
			struct rate_view v;
			bits &= bits - 1;
			if (!view_copy(g, gi, i, now_ms, &v))
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
