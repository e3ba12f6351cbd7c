/* pool_reclaim.c — who holds a pool's leases, and what happens when they die: the reclaim passes
 * (protd's tick through pool_reclaim, and a client's while protd is down: client_reclaim, called
 * by lib/pool.c's checkout), leak reports, the cancelling of a removed pool's waiters
 * (pool_retire_waiters, protd) and the holders' view (pool_holders_idx, for prot_pool_holders). The
 * shared state and its lock are lib/pool.c's (its opening comment, invariants 1-5); this file
 * takes the lock through lib/pool.h.
 *
 * DEATH (invariant 6). An entry owned by a dead identity, a GRANTED cell of a dead waiter and a
 * WAITING cell of a dead waiter are found by the next reclaim pass (protd's, each
 * reclaim_interval; or a client's, when protd is down and the pool is full or someone waits): the
 * cell is emptied first, then the entry goes to the next waiter or is freed. Identities are never
 * reused, so "still owned by that dead identity" under the lock makes each release happen once,
 * however many reclaimers race. A connection slot of a dead owner is freed by a CAS on that very
 * identity, without the lock.
 */
#include "pool.h"

/* ---- dead holders and waiters ----------------------------------------------------------------- */
/* The pid of identity o while o's process slot still names it (0: gone, or out of bounds). */
static int32_t holder_pid(struct prot_shm_header *h, uint64_t o)
{
	uint32_t slot = ident_slot(o);
	if (!h || slot >= seg_count(h, REG_PROCS))
		return 0;
	struct prot_proc_slot *ps = seg_entry(h, REG_PROCS, slot);
	int32_t pid = atomic_load_explicit(&ps->pid, memory_order_relaxed);
	/* acquire: pairs with the claimer's release of inc; pid read before it is that claimer's */
	return (atomic_load_explicit(&ps->inc, memory_order_acquire) & PROC_INC_MAX) == ident_inc(o) ? pid : 0;
}

/* A lease of entry e held by o for longer than leak_ns: one EV_POOL_LEAK per hand-out (the CAS on
 * leak_gen), naming the holder's pid (a) and the milliseconds held (b). Read without the lock: a
 * hand-out that changed meanwhile shows as another gen, and is looked at on the next pass. */
static void leak_check(struct prot_shm_header *h, uint32_t idx, const struct pool_ref *r, uint32_t e,
                       uint64_t o, uint64_t leak_ns)
{
	uint64_t gen = atomic_load_explicit(&r->lease[e].gen, memory_order_relaxed);
	uint64_t since = atomic_load_explicit(&r->lease[e].since_ns, memory_order_relaxed);
	uint64_t seen = atomic_load_explicit(&r->lease[e].leak_gen, memory_order_relaxed);
	uint64_t now = prot_now_coarse_ns();
	if (seen == gen || since == 0 || now < since || now - since < leak_ns)
		return;
	/* relaxed: it only makes the report once per hand-out */
	if (atomic_compare_exchange_strong_explicit(&r->lease[e].leak_gen, &seen, gen, memory_order_relaxed,
	                                            memory_order_relaxed) &&
	    atomic_load_explicit(&r->lease[e].owner, memory_order_relaxed) == o && h)
		prot_event_emit(h, EV_POOL_LEAK, idx, r->s->name, (uint64_t)holder_pid(h, o),
		                (now - since) / 1000000u);
}

/* One reclaim pass over a pool: the liveness questions are asked outside the lock; what they find
 * is re-checked under it (an identity that died stays dead). Returns leases reclaimed. */
static uint64_t reclaim_pool(struct prot_shm_header *h, uint32_t idx, const struct pool_ref *r,
                             const struct prot_idv *v, uint32_t cap, uint64_t leak_ns,
                             uint64_t deadline_ns)
{
	uint64_t n = 0, alive_id = 0;
	/* dead waiters first, so that a lease freed below never goes to one of them */
	for (uint32_t c = 0; c < r->wcap; c++) {
		_Atomic uint32_t *cw = &r->cell[c].word;
		uint32_t w = atomic_load_explicit(cw, memory_order_acquire);
		uint64_t who = LD(r->cell[c].ident);
		if (CELL_STATE(w) != CELL_WAITING || ident_inc(who) == 0 || ident_alive(v, who))
			continue;
		/* acq_rel: as the waiter's own cancel */
		if (atomic_compare_exchange_strong_explicit(cw, &w, CELL(CELL_CANCELLED, 0), memory_order_acq_rel,
		                                            memory_order_relaxed))
			atomic_fetch_sub_explicit(&r->s->nwait, 1, memory_order_relaxed);
	}
	/* connection slots of dead processes: a CAS on the very dead identity (never reused), no lock */
	uint64_t conn_alive = 0;
	for (uint32_t e = 0; e < r->nlease; e++) {
		uint64_t o = atomic_load_explicit(&r->lease[e].conn_owner, memory_order_acquire);
		if (o == 0 || o == conn_alive || ident_inc(o) == 0)
			continue;
		if (ident_alive(v, o)) {
			conn_alive = o;
			continue;
		}
		pool_conn_free(r->s, &r->lease[e].conn_owner, o);
	}
	for (uint32_t e = 0; e < r->nlease; e++) {
		uint64_t o = atomic_load_explicit(&r->lease[e].owner, memory_order_acquire);
		if (o != 0 && leak_ns)
			leak_check(h, idx, r, e, o, leak_ns);
		if (o == 0 || o == alive_id || ident_inc(o) == 0)
			continue;
		if (ident_alive(v, o)) {
			alive_id = o; /* runs of one holder's entries ask once */
			continue;
		}
		if (plock_take(r, v, deadline_ns) < 0)
			return n;
		if (LD(r->lease[e].owner) == o) {
			/* a dead waiter's grant: its cell first (repair would re-grant it otherwise) */
			for (uint32_t c = 0; c < r->wcap; c++) {
				uint32_t w = atomic_load_explicit(&r->cell[c].word, memory_order_acquire);
				if (CELL_STATE(w) == CELL_GRANTED && CELL_ENTRY(w) == e && LD(r->cell[c].ident) == o)
					ST(r->cell[c].word, CELL(CELL_EMPTY, 0));
			}
			release_entry(r, e, o, cap, NULL);
			n++;
			atomic_fetch_add_explicit(&r->s->reclaims, 1, memory_order_relaxed); /* statistic */
			if (h)
				prot_event_emit(h, EV_LEASE_RECLAIMED, idx, r->s->name, ident_slot(o), e);
		}
		plock_drop(r);
	}
	if (plock_take(r, v, deadline_ns) == 0) {
		pump(r, cap);
		plock_drop(r);
	}
	return n;
}

/* Claim the pool's next reclaim pass (one process per pass). Passes run every half reclaim
 * interval, so that a death is seen within the interval (with protd's tick at most half of it). */
static bool reclaim_due(const struct pool_ref *r, const struct pool_cfgv *c, uint64_t now_ns)
{
	uint64_t last = atomic_load_explicit(&r->s->reclaim_at_ns, memory_order_relaxed);
	if (last && now_ns >= last && now_ns - last < reclaim_every_ns(c) / 2)
		return false;
	/* relaxed: the timestamp only spreads the passes; each pass is exact on its own */
	return atomic_compare_exchange_strong_explicit(&r->s->reclaim_at_ns, &last, now_ns,
	                                               memory_order_relaxed, memory_order_relaxed);
}

/* A client's pass while protd is down, when it needs a lease. */
void client_reclaim(struct prot_shm_header *h, uint32_t idx, const struct pool_ref *r,
                    const struct prot_idv *v, const struct pool_cfgv *c, uint64_t deadline_ns)
{
	if (v->fd < 0 || protd_alive(v) || !reclaim_due(r, c, prot_now_ns()))
		return;
	reclaim_pool(h, idx, r, v, pool_cfg_cap(r, c), c->leak_threshold_ms * 1000000u, deadline_ns);
}

void pool_reclaim(const struct prot_idv *v, uint64_t now_ns, uint64_t *reclaimed)
{
	struct prot_shm_header *h = v->h;
	uint64_t n = 0;
	for (uint32_t idx = 0; idx < seg_count(h, REG_POOLS); idx++) {
		struct pool_ref r;
		if (pool_ref_at(h, idx, &r) < 0)
			break;
		uint32_t st = atomic_load_explicit(&r.s->state, memory_order_acquire);
		if (SLOT_STATE(st) == SLOT_FREE)
			continue;
		struct pool_cfgv c;
		pool_cfg_read_or_safe(&r, &c); /* dead holders are reclaimed whatever the config says */
		if (!reclaim_due(&r, &c, now_ns))
			continue;
		/* a retired pool keeps its leases until they come back; it serves no new waiter */
		uint32_t cap = SLOT_STATE(st) == SLOT_LIVE ? pool_cfg_cap(&r, &c) : 0;
		uint64_t leak = SLOT_STATE(st) == SLOT_LIVE ? c.leak_threshold_ms * 1000000u : 0;
		n += reclaim_pool(h, idx, &r, v, cap, leak, prot_now_ns() + 10 * LOCK_RECHECK_NS);
	}
	if (reclaimed)
		*reclaimed = n;
}

void pool_retire_waiters(struct prot_shm_header *h, uint32_t idx)
{
	struct pool_ref r;
	if (pool_ref_at(h, idx, &r) < 0)
		return;
	for (uint32_t c = 0; c < r.wcap; c++) {
		_Atomic uint32_t *cw = &r.cell[c].word;
		uint32_t w = atomic_load_explicit(cw, memory_order_acquire);
		/* acq_rel: as the waiter's own cancel; a grant that won keeps its lease (stale at checkin) */
		if (CELL_STATE(w) == CELL_WAITING &&
		    atomic_compare_exchange_strong_explicit(cw, &w, CELL(CELL_CANCELLED, 0), memory_order_acq_rel,
		                                            memory_order_relaxed)) {
			atomic_fetch_sub_explicit(&r.s->nwait, 1, memory_order_relaxed);
			futex_wake_all(cw);
		}
	}
}

/* The holders of pool idx: one row per identity (pid, leases, longest held), at most n rows written
 * to out (n may be 0), *count = how many holders there are. A snapshot of the entries without the
 * lock: each entry's owner is one load. Read-only. */
int pool_holders_idx(struct prot_shm_header *h, uint32_t idx, struct prot_pool_holder *out, size_t n,
                     size_t *count)
{
	struct pool_ref r;
	struct pool_cfgv c;
	int rc = pool_ref_at(h, idx, &r);
	if (rc < 0)
		return rc;
	if (SLOT_STATE(atomic_load_explicit(&r.s->state, memory_order_acquire)) != SLOT_LIVE)
		return -PROT_ENOPOOL;
	if ((rc = pool_cfg_read(&r, &c)) < 0)
		return rc;
	uint64_t now = prot_now_coarse_ns(), ids[POOL_HOLDERS_MAX];
	size_t total = 0, kept = 0;
	for (uint32_t e = 0; e < r.nlease; e++) {
		uint64_t o = atomic_load_explicit(&r.lease[e].owner, memory_order_acquire);
		if (o == 0)
			continue;
		uint64_t since = atomic_load_explicit(&r.lease[e].since_ns, memory_order_relaxed);
		uint64_t held = since && now > since ? (now - since) / 1000000u : 0;
		size_t k = 0;
		while (k < kept && ids[k] != o)
			k++;
		if (k == kept) {
			bool earlier = false; /* beyond the rows kept: counted once, by its first entry */
			for (uint32_t f = 0; kept == POOL_HOLDERS_MAX && f < e && !earlier; f++)
				earlier = atomic_load_explicit(&r.lease[f].owner, memory_order_relaxed) == o;
			if (earlier)
				continue;
			total++;
			if (kept == POOL_HOLDERS_MAX)
				continue;
			ids[kept++] = o;
			if (k < n)
				out[k] = (struct prot_pool_holder){ .pid = holder_pid(h, o) };
		}
		if (k < n) {
			out[k].leases++;
			if (held > out[k].held_ms)
				out[k].held_ms = held;
			out[k].leaked = c.leak_threshold_ms && out[k].held_ms >= c.leak_threshold_ms;
		}
	}
	*count = total;
	return 0;
}
