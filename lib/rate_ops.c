/* rate_ops.c — the rate limiter's operation registry: the names of the operations that have made
 * buckets, kept in the segment (RATE_OPS records after the summary bitmap, lib/layout.h) so that
 * protctl can list them (`protctl rate ops`) and name the buckets of ad-hoc operations, which no
 * INI key names. A bucket stores only its operation's keyed hash; this is where the name is.
 * Called by ratelimit.c (rate_ops_note, when a decision has inserted a bucket: rare, so the
 * registry costs nothing on a hit) and by protctl (rate_ops_foreach, rate_ops_name).
 *
 * PROTOCOL. Open addressing on op_hash from slot op_hash % RATE_OPS, at most RATE_OPS probes.
 * Insert: CAS the record's hash 0 -> op_hash | 1 (one claimer per record and per name: a second
 * noter of the same name finds the hash claimed and stops), write len and name with relaxed
 * stores, then store ready = 1 with release. Readers load ready (acquire: pairs with that
 * release, so len and name are complete) and then the hash; a record not ready is skipped. A
 * noter that dies between its claim and ready leaves a record that is never named (one record
 * lost until the segment is recreated); a noter that finds the registry full names nothing: the
 * operation's buckets still work, show and reset by name (`--op NAME` hashes the name), only
 * `rate ops` does not list it. Records are never removed: operations are program constants.
 * Everything read here is shared memory: the length is clamped, the probe count bounded.
 */
#include "rate_table.h"

static struct prot_rate_op *ops_table(const struct prot_shm_header *h)
{
	const struct seg_geo *g = seg_geo(h);
	/* the offset and the trailer's size were checked when the geometry was taken */
	if (!g->rate_summary_off)
		return NULL;
	return (struct prot_rate_op *)(void *)((char *)h + g->rate_summary_off +
	                                       RATE_SUMMARY_BYTES(g->rate_groups));
}

void rate_ops_note(struct prot_shm_header *h, const char *op, size_t ol, uint64_t op_hash)
{
	struct prot_rate_op *t = ops_table(h);
	uint64_t want = op_hash | 1;

	if (!t || ol == 0 || ol > PROT_OP_MAX)
		return;
	for (uint32_t k = 0; k < RATE_OPS; k++) {
		struct prot_rate_op *r = &t[(op_hash + k) % RATE_OPS];
		/* relaxed: the hash alone decides here; the name is published by ready */
		uint64_t cur = atomic_load_explicit(&r->hash, memory_order_relaxed);
		if (cur == 0 && atomic_compare_exchange_strong_explicit(&r->hash, &cur, want,
		                                                        memory_order_relaxed,
		                                                        memory_order_relaxed)) {
			r->len = (uint8_t)ol;
			memcpy(r->name, op, ol);
			/* release: len and name happen before a reader acquires ready */
			atomic_store_explicit(&r->ready, 1, memory_order_release);
			return;
		}
		if (cur == want)
			return; /* noted already (or being noted) */
	}
}

int rate_ops_foreach(const struct prot_shm_header *h,
                     int (*fn)(const char *name, size_t len, uint64_t op_hash, void *arg), void *arg)
{
	struct prot_rate_op *t = ops_table(h);

	for (uint32_t k = 0; t && k < RATE_OPS; k++) {
		struct prot_rate_op *r = &t[k];
		char name[PROT_OP_MAX + 1];
		/* acquire: pairs with the noter's release; len and name are then complete */
		if (atomic_load_explicit(&r->ready, memory_order_acquire) != 1)
			continue;
		size_t len = r->len <= PROT_OP_MAX ? r->len : PROT_OP_MAX; /* untrusted */
		memcpy(name, r->name, len);
		name[len] = '\0';
		/* the hash the record claims; protctl re-derives it from the name, so a forged
		 * record can only name an operation by its own name */
		uint64_t hh = prot_siphash(h->hash_key, name, len);
		if ((atomic_load_explicit(&r->hash, memory_order_relaxed) | 1) != (hh | 1))
			continue;
		int res = fn(name, len, hh, arg);
		if (res)
			return res;
	}
	return 0;
}

struct name_find {
	uint64_t op_hash;
	char *out;
};

static int name_match(const char *name, size_t len, uint64_t op_hash, void *arg)
{
	struct name_find *f = arg;
	if (op_hash != f->op_hash)
		return 0;
	memcpy(f->out, name, len + 1);
	return 1;
}

bool rate_ops_name(const struct prot_shm_header *h, uint64_t op_hash, char out[PROT_OP_MAX + 1])
{
	struct name_find f = {op_hash, out};
	return rate_ops_foreach(h, name_match, &f) == 1;
}
