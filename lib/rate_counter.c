/* rate_counter.c — Hammer v7's counter operations on a rate bucket: prot_rate_inc (add units to
 * the count without the limit), prot_rate_get (the count in the current window) and
 * prot_rate_set (make the count a number), on fixed-window and sliding-window buckets, and the
 * hidden form the tests call with an injected clock (rate_count_h). The bucket is the one
 * prot_rate_check_n(lim) decides on: the same identity, the same word (rate_table.c) or ring
 * (rate_sliding.c), so counts and decisions see each other, exactly, across processes.
 *
 * The entity is a C string here; the bucket's identity is its bytes (rate_id_make), so a counter
 * and a _bin decision on the same bytes share one bucket.
 *
 * As Hammer's: inc and set return the count after them, get returns 0 for a bucket that does not
 * exist or whose window has ended; none checks the limit. Differences (prot.h's table):
 *  - a fixed window counts below 2^24 (the word's count bits): past it inc and set are -EOVERFLOW;
 *  - a sliding window holds its last `limit` admissions: inc adds n <= limit admissions now (n
 *    larger is PROT_ECOST), each exact, not atomic as a group; its count is at most limit; set is
 *    a reset of this bucket (not of the entity's other scales, as prot_rate_reset) followed by
 *    inc(n), not atomic against concurrent decisions;
 *  - GCRA (a theoretical arrival time, not a count) has no counters: -EINVAL.
 */
#include <errno.h>

#include "rate_sliding.h"

static int counter_params(const struct prot_shm_header *h, const struct prot_rate_limit *lim,
                          struct rate_params *rp)
{
	rate_params_of_limit(lim, rp); /* the public form, converted once */
	if (rp->err)
		return rp->err;
	if (rp->algo != PROT_RATE_FIXED_WINDOW && rp->algo != PROT_RATE_SLIDING_WINDOW)
		return -EINVAL;
	return rate_sliding_fits(h, rp);
}

/* Add n (set: make it n) on a validated bucket: 0 and *count, or a negative error. */
static int count_add(prot_t *p, struct prot_shm_header *h, const char *op, const struct rate_id *id,
                     const struct rate_params *rp, bool set, uint64_t n, uint64_t now,
                     uint64_t *count)
{
	bool sliding = rp->algo == PROT_RATE_SLIDING_WINDOW;

	if (sliding && n > rp->limit)
		return -PROT_ECOST;
	int r = rate_table_count(h, p, id, rp, set && !sliding, n, now, count);
	if (r == RATE_INSERTED) { /* a new bucket: its operation's name, for protctl (as rate_run) */
		rate_ops_note(h, op, id->id0 & 0xff, id->op_hash);
		r = 0;
	}
	return r == RATE_TABLE_FULL ? -PROT_ETABLEFULL : r;
}

int rate_count_h(prot_t *p, struct prot_shm_header *h, const char *op, const char *entity,
                 const struct prot_rate_limit *lim, enum rate_count_op what, uint64_t n,
                 uint64_t now, uint64_t *count)
{
	struct rate_params rp;
	struct rate_id id;
	struct prot_rate_status st;
	uint64_t c = 0;
	/* the entity's bytes (a bucket's identity is binary, ratelimit.c); too long: rate_id_make */
	size_t el = entity ? strnlen(entity, PROT_ENTITY_MAX + 1) : 0;
	int r = entity && lim ? 0 : -EINVAL;

	if (r == 0)
		r = counter_params(h, lim, &rp);
	if (r == 0) /* this algorithm and window's bucket: the one prot_rate_check_n(lim) uses */
		r = rate_id_make(p, h, op, entity, el, &rp, &id);
	if (r == 0 && what == RATE_COUNT_GET && !count)
		r = -EINVAL;
	if (r < 0)
		return r;
	now = now ? now : prot_now_ns();
	switch (what) {
	case RATE_COUNT_GET:
		r = rate_status_bin_h(h, op, entity, el, &rp, now, &st);
		c = st.info.used;
		break;
	case RATE_COUNT_SET:
		if (rp.algo == PROT_RATE_SLIDING_WINDOW) { /* a reset, then n admissions */
			if (n > rp.limit)
				return -PROT_ECOST;
			r = rate_table_reset(h, &id); /* this scale's bucket only */
			if (r < 0 && r != -ENOENT)
				return r;
		}
		r = count_add(p, h, op, &id, &rp, true, n, now, &c);
		break;
	case RATE_COUNT_INC:
		r = count_add(p, h, op, &id, &rp, false, n, now, &c);
		break;
	default:
		r = -EINVAL;
	}
	if (r == 0 && count)
		*count = c;
	return r;
}

/* ---- public API ------------------------------------------------------------------------------- */

int prot_rate_inc(prot_t *p, const char *operation, const char *entity,
                  const struct prot_rate_limit *lim, uint64_t n, uint64_t *count)
{
	int g = prot_gate(p, true);
	if (g < 0)
		return g;
	return rate_count_h(p, prot_hdr(p), operation, entity, lim, RATE_COUNT_INC, n, 0, count);
}

int prot_rate_get(prot_t *p, const char *operation, const char *entity,
                  const struct prot_rate_limit *lim, uint64_t *count)
{
	int g = prot_gate(p, false);
	if (g < 0)
		return g;
	return rate_count_h(p, prot_hdr(p), operation, entity, lim, RATE_COUNT_GET, 0, 0, count);
}

int prot_rate_set(prot_t *p, const char *operation, const char *entity,
                  const struct prot_rate_limit *lim, uint64_t count, uint64_t *count_after)
{
	int g = prot_gate(p, true);
	if (g < 0)
		return g;
	return rate_count_h(p, prot_hdr(p), operation, entity, lim, RATE_COUNT_SET, count, 0,
	                    count_after);
}
