/* rate_global.c — global limits, the segment's side: a global key's buckets, the units protd's
 * sync thread (daemon/redis_sync.c) leased for them from Redis (the grants), and the request
 * ring through which a client that inserts a global bucket asks for a lease. Called by
 * ratelimit.c (rate_global_params, rate_global_note), rate_table.c (rate_global_clip, inline in
 * rate_global.h), protd's sync thread (scan, peek, drain, grant) and protctl (grant_of).
 *
 * WHAT A DECISION DOES. A global key (rate_scope = global) is a fixed window on the calendar
 * clock (rate_clock = realtime: every host agrees which window it is), and its buckets have the
 * kind RATE_TAG_GLOBAL (another bucket than the same key's local one). The decision is the local
 * fixed-window decision — one CAS on the bucket word — with one more condition: the count after
 * admitting must stay within the grant for this bucket's use and window, plus the key's
 * rate_allowance (the policy while a bucket waits for more: 0 denies). The grant is two words
 * (cur, next: window end << 24 | units, the bucket word's own encoding) on the grant entry of the
 * bucket's index, which only protd writes; a decision loads them (they sit on a line protd writes
 * once per round, not per decision) and never waits. So a global decision costs a local one plus
 * three loads of a line that stays in cache between rounds.
 *
 * WHY A GRANT IS NEVER SPENT BY ANOTHER BUCKET. A grant entry belongs to one use of its bucket:
 * `use` holds the bucket's LIVE meta (its generation changes on every claim). protd, before it
 * grants for a new use, stores cur = next = 0 and then `use` = meta with release; every grant
 * word is stored with release too. A decision holds its bucket's meta m and loads use, cur, next
 * with acquire and re-loads use: if both loads of use read m, the first one read protd's store of
 * m, so cur and next are that store's zeros or later values; and a later value written for
 * another use m' would have been preceded (in protd's order) by the store of m', which the
 * acquire load of that value makes visible to the re-load of use, which then differs. So a
 * decision spends only units leased for its own bucket and window, and denies otherwise.
 *
 * WHY THE FLEET STAYS WITHIN THE LIMIT. Per (key, entity, window), Redis holds each host's lease
 * record (daemon/redis_lease.c); the script grants a host only what keeps the sum of the records
 * (max(leased, used) each, plus what expired records had used) within the limit, and a host's
 * grant word is its record's leased total. A bucket admits only while its count stays within its
 * grant, so the admissions of all hosts stay within the limit — except the documented excesses:
 * the allowance (per host and window), a host's local share while Redis is unreachable (the used
 * counts it reports on recovery are added to the fleet's total, so the window's remaining quota
 * shrinks by what it overspent), and a host partitioned longer than its lease TTL, whose units
 * were returned to the fleet while it could still spend them.
 *
 * A PROTD THAT STOPS. A lease lives in Redis lease_ttl from its last renewal, and protd renews
 * every record it holds at least every lease_ttl / 4; at the end of every round it stores
 * grants_until_ms = the round's time + lease_ttl / 4 (release, after the grants). A decision at
 * or past that time spends no grant (only the allowance): so when protd is killed and its workers
 * live on, they stop spending lease_ttl / 4 after its last round, at least lease_ttl / 2 before
 * Redis hands the units to the fleet. What they admitted after protd's last report is the
 * excess: at most their admissions in lease_ttl / 4 plus one round (measured in
 * tests/test_global.c, protd_killed_workers_alive). This is a lease's validity, not a guess at
 * protd's death: a protd that is only slow makes its workers deny, never over-admit.
 *
 * THE REQUEST RING. A decision that inserted a global bucket (ratelimit.c: rare, once per bucket)
 * takes a ticket n with fetch_add on `head` and stores (n + 1) << 32 | group into entry n % RING
 * with release. protd keeps its own tail, reads entries up to head and takes an entry whose
 * ticket matches; a ticket that does not match (the ring lapped, or a writer between its
 * fetch_add and its store: killed there, or just slow) is a lost request, and protd rescans the
 * table (its sweep-like scan over the groups the summary bitmap marks) to find the bucket anyway.
 * The ring only shortens the time to a bucket's first lease; the rescan makes it complete.
 *
 * NAMES. A bucket stores its operation's hash, keyed per segment, so another host cannot name it
 * from that: protd names a global bucket by its key's name (and entity) in Redis. So a global
 * key's buckets are named by the key alone: a decision with another operation on a global key is
 * -EINVAL (ratelimit.c).
 *
 * Everything read here from the segment is bounded: 32 buckets per group, RATE_GLOBAL_RING entries
 * per drain, entity lengths clamped to PROT_ENTITY_MAX, group indexes checked against the
 * private geometry.
 */
#include <errno.h>

#include "rate_global.h"

void rate_global_params(const struct prot_key_cfg *cfg, struct rate_params *rp)
{
	if (rp->algo != PROT_RATE_FIXED_WINDOW || !(rp->tag & RATE_TAG_REALTIME)) {
		rp->err = -EINVAL; /* protd's validator refuses these with FILE:LINE */
		return;
	}
	rp->tag |= RATE_TAG_GLOBAL;
	rp->allowance = cfg->rate_allowance;
}

void rate_global_note(struct prot_shm_header *h, uint32_t gi)
{
	struct prot_rate_global *a = rate_global_area(h);
	if (!a)
		return;
	/* relaxed: the ticket only orders requests; the entry's release publishes it */
	uint64_t n = atomic_fetch_add_explicit(&a->head, 1, memory_order_relaxed);
	atomic_store_explicit(&a->ring[n % RATE_GLOBAL_RING], (n + 1) << 32 | gi, memory_order_release);
}

bool rate_global_drain(struct prot_shm_header *h, uint64_t *tail, void (*fn)(void *arg, uint32_t gi),
                       void *arg)
{
	struct prot_rate_global *a = rate_global_area(h);
	uint32_t groups = seg_count(h, REG_RATE_GROUPS);
	bool lost = false;

	if (!a)
		return false;
	/* acquire: pairs with nothing by itself (the entries publish); it bounds this pass */
	uint64_t head = atomic_load_explicit(&a->head, memory_order_acquire);
	if (head - *tail > RATE_GLOBAL_RING) { /* lapped (or a tail from before a restart) */
		*tail = head - RATE_GLOBAL_RING;
		lost = true;
	}
	for (; *tail != head; (*tail)++) {
		/* acquire: pairs with the noter's release */
		uint64_t e = atomic_load_explicit(&a->ring[*tail % RATE_GLOBAL_RING], memory_order_acquire);
		if ((uint32_t)(e >> 32) != (uint32_t)(*tail + 1) || (uint32_t)e >= groups) {
			lost = true; /* not written yet, overwritten, or garbage: the rescan finds it */
			continue;
		}
		fn(arg, (uint32_t)e);
	}
	return lost;
}

/* Bucket b of group g read under meta m (LIVE, global kind): false if it changed meanwhile. */
static bool read_bucket(struct prot_rate_group *g, uint32_t i, uint64_t m, bool identity,
                        struct rate_global_bucket *out)
{
	struct prot_rate_bucket *b = &g->b[i];
	/* acquire: the meta re-check below cannot be satisfied before these loads */
	uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
	uint64_t seen = atomic_load_explicit(&b->allowed, memory_order_relaxed) +
	                atomic_load_explicit(&b->denied, memory_order_relaxed);
	if (identity) {
		uint32_t id0 = ld_id0(b);
		uint64_t ent[ENT_WORDS];
		out->op_hash = ld(b, B_OP_HASH);
		out->window_ms = SCALE_WINDOW(ld(b, B_SCALE));
		out->ent_len = (uint8_t)(id0 >> 8) > PROT_ENTITY_MAX ? PROT_ENTITY_MAX : (uint8_t)(id0 >> 8);
		for (uint32_t k = 0; k < ENT_WORDS; k++)
			ent[k] = ld(b, ent_off(k));
		memcpy(out->entity, ent, sizeof out->entity);
	}
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&b->meta, memory_order_relaxed) != m || w == DEAD_WORD)
		return false;
	out->word = w;
	out->seen = seen & CLAIM_TAG ? 0 : seen; /* `allowed` holds a claimer's identity until LIVE */
	return true;
}

uint32_t rate_global_scan_group(struct prot_shm_header *h, uint32_t gi,
                                void (*fn)(void *arg, const struct rate_global_bucket *b), void *arg)
{
	struct prot_rate_group *g = group_at(h, gi);
	uint32_t bits = (uint32_t)group_load(g), n = 0;

	if (gi >= seg_count(h, REG_RATE_GROUPS))
		return 0;
	for (uint32_t i = 0; i < RATE_GROUP_SLOTS; i++) {
		if (!(bits & (1u << i)))
			continue;
		struct prot_rate_bucket *b = &g->b[i];
		/* acquire: pairs with the LIVE release; identity was written before it */
		uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire);
		uint32_t kind = SCALE_KIND(ld(b, B_SCALE));
		if (META_ST(m) != RB_LIVE || !(kind & RATE_TAG_GLOBAL) ||
		    RATE_TAG_ALGO(kind) != PROT_RATE_FIXED_WINDOW)
			continue;
		struct rate_global_bucket out = {.index = gi * RATE_GROUP_SLOTS + i, .meta = m};
		if (read_bucket(g, i, m, true, &out)) {
			fn(arg, &out);
			n++;
		}
	}
	return n;
}

bool rate_global_peek(struct prot_shm_header *h, uint32_t index, uint64_t meta,
                      struct rate_global_bucket *b)
{
	uint32_t gi = index / RATE_GROUP_SLOTS;

	if (gi >= seg_count(h, REG_RATE_GROUPS))
		return false;
	return read_bucket(group_at(h, gi), index % RATE_GROUP_SLOTS, meta, false, b);
}

void rate_global_grant(struct prot_shm_header *h, uint32_t index, uint64_t meta, uint64_t cur,
                       uint64_t next, uint64_t used)
{
	struct prot_rate_global *a = rate_global_area(h);

	if (!a || index / RATE_GROUP_SLOTS >= seg_count(h, REG_RATE_GROUPS))
		return;
	struct prot_rate_grant *g = &a->grant[index];
	if (atomic_load_explicit(&g->use, memory_order_relaxed) != meta) {
		/* a new use: no grant of the previous one may pass for this one's (see the top) */
		atomic_store_explicit(&g->cur, 0, memory_order_relaxed);
		atomic_store_explicit(&g->next, 0, memory_order_relaxed);
		/* release: the zeros above happen before a decision that acquires this use */
		atomic_store_explicit(&g->use, meta, memory_order_release);
	}
	/* release: a decision that reads these reads the use stored before them (see the top) */
	atomic_store_explicit(&g->cur, cur, memory_order_release);
	atomic_store_explicit(&g->next, next, memory_order_release);
	atomic_store_explicit(&g->used, used, memory_order_relaxed); /* display */
}

bool rate_global_grant_of(const struct prot_shm_header *h, uint32_t index, uint64_t meta,
                          struct prot_rate_grant *out)
{
	struct prot_rate_global *a = rate_global_area(h);

	if (!a || index / RATE_GROUP_SLOTS >= seg_count(h, REG_RATE_GROUPS))
		return false;
	struct prot_rate_grant *g = &a->grant[index];
	/* acquire: as rate_global_cap */
	uint64_t use = atomic_load_explicit(&g->use, memory_order_acquire);
	uint64_t cur = atomic_load_explicit(&g->cur, memory_order_acquire);
	uint64_t next = atomic_load_explicit(&g->next, memory_order_acquire);
	uint64_t used = atomic_load_explicit(&g->used, memory_order_relaxed);
	if (use != meta || atomic_load_explicit(&g->use, memory_order_relaxed) != meta)
		return false;
	atomic_init(&out->use, use);
	atomic_init(&out->cur, cur);
	atomic_init(&out->next, next);
	atomic_init(&out->used, used);
	return true;
}
