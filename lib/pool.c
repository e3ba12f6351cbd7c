/* pool.c — the connection pool (poolboy for many processes): the lease counter, the FIFO waiter
 * queue and the hand-off in the segment; each process's connectors and idle connections.
 *
 * SHARED STATE (per pool; see lib/layout.h)
 *   word      64 bits  [in_use:16 | head:24 | tail:24]. in_use counts leases held, including one
 *                      being handed to a waiter. Tickets [head, tail) are the waiters, oldest first.
 *   lease[e]  64 bits  0 = free; an identity (pid | start_low32 << 32, bit 31 clear since pid <
 *                      2^31) = held by that process; or a tag with bit 31 set: GRANT(t) = handed to
 *                      the waiter of ticket t, HOLD = a maintenance step holds it. Tags carry the
 *                      CLOCK_MONOTONIC ms at which they were written in the high half.
 *   cell[i]   32 bits  the futex word of waiter ticket t, i = t mod W (W a power of two):
 *                      [lap:16 | state:4 | unused:12], lap = t / W (mod 2^lapbits), state EMPTY,
 *                      WAITING or CANCELLED. All zero = lap 0 EMPTY, the initial state of ticket i.
 *
 * INVARIANTS AND WHY THEY HOLD
 *  1. in_use <= max(cap, in_use before a reload) <= pool_max_slots. The only increments are CASes
 *     that check in_use < cap (cap clamped to pool_max_slots) on the very word they change.
 *  2. Entries not free <= in_use. A count is taken (CAS in_use+1) before an entry is claimed, and
 *     an entry is freed (store 0, release) before its count is dropped (CAS in_use-1, acq_rel). So
 *     whoever holds a count without an entry finds a free one: scanning after its acquire CAS, it
 *     sees every free made before the decrements it read.
 *  3. No lost wake-up. One CAS on the word decides both "take a count or queue" (checkout) and
 *     "drop the count or pass it to ticket head" (checkin): a checkin that drops the count saw
 *     head == tail on the word it replaced, so no waiter had queued; a waiter that queued made
 *     head != tail first, so the checkin's CAS fails and it re-decides as a hand-off.
 *  4. FIFO. Tickets are served in order of head; a newcomer queues as soon as head != tail.
 *  5. A hand-off is: CAS word head+1 (in_use unchanged: the count moves), write GRANT(t) into the
 *     giver's entry, then recycle the cell (lap L -> EMPTY, lap L+1) and FUTEX_WAKE it. The waiter
 *     learns of its grant from its cell leaving lap L, then CASes GRANT(t) -> its identity. The
 *     giver never waits for the waiter, and the cell is free for the next lap at once.
 *  6. Cancellation. A waiter that times out CASes its cell WAITING(L) -> CANCELLED(L). The giver's
 *     recycle CAS reads the state it replaces: CANCELLED means the waiter is gone, so the giver takes
 *     its GRANT back and re-decides (next ticket, or drop the count). If the waiter's CAS fails, the
 *     cell was recycled: the grant raced the timeout; the waiter claims the lease and gives it back
 *     through a normal checkin, so a timeout never leaves a lease behind (poolboy #64/#70).
 *  7. A queue holds at most W tickets (tail - head <= W), so ticket t + W is issued only after the
 *     CAS that granted t. Its cell may still be at lap L for the few instructions the giver of t
 *     needs; a waiter or giver of lap L+1 that finds it so waits (futex / yield). If it stays so for
 *     STALE_NS the giver died there; the party that waits recycles it itself.
 *  8. Dead processes. Every entry names its holder by pid + start time; pool_reclaim (protd, each
 *     reclaim interval) runs the checkin hand-off for entries of dead holders, cancels WAITING cells
 *     of dead waiters, and revokes tags older than ORPHAN_MS (a waiter that died between its grant
 *     and its claim). A process killed inside the few instructions between two steps of a hand-off
 *     can delay the next waiter by STALE_NS or leave one count unaccounted; the window is
 *     nanoseconds wide, and it is the only case not repaired.
 *
 * LOCAL STATE: struct prot_pool_local hangs off p->pools under p->lock: per pool, the registered
 * connector, the idle connections (a deque: lifo or fifo), the busy ones (to return at
 * prot_close) and spare records. It belongs to the process whose identity it records; a forked
 * child finds another identity and forgets it (without destroying anything: the parent owns those
 * connections and leases). Connector callbacks always run outside p->lock.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* ---- encodings -------------------------------------------------------------------------------- */
#define T_MASK 0xffffffu
#define USED_ONE (1ull << 48)
#define PW_TAIL(w) ((uint32_t)(w) & T_MASK)
#define PW_HEAD(w) ((uint32_t)((w) >> 24) & T_MASK)
#define PW_USED(w) ((uint32_t)((w) >> 48))

static inline uint64_t pw_make(uint32_t used, uint32_t head, uint32_t tail)
{
	return (uint64_t)used << 48 | (uint64_t)(head & T_MASK) << 24 | (tail & T_MASK);
}
static inline uint32_t pw_waiting(uint64_t w)
{
	return (PW_TAIL(w) - PW_HEAD(w)) & T_MASK;
}

#define TAG_BIT 0x80000000u
#define TAG_HOLD 0x40000000u
#define LEASE_TAGGED(v) (((uint32_t)(v) & TAG_BIT) != 0)
static inline uint64_t tag_grant(uint32_t t, uint64_t now_ns)
{
	return (uint64_t)(uint32_t)(now_ns / 1000000u) << 32 | TAG_BIT | (t & T_MASK);
}
static inline uint64_t tag_hold(uint64_t now_ns)
{
	return (uint64_t)(uint32_t)(now_ns / 1000000u) << 32 | TAG_BIT | TAG_HOLD;
}

enum { CELL_EMPTY = 0, CELL_WAITING = 1, CELL_CANCELLED = 2 };
#define CELL_STATE(v) (((v) >> 12) & 0xfu)
#define CELL_LAP(v) ((v) >> 16)

#define WAITERS_MAX (1u << 15)                   /* lap keeps >= 9 bits */
#define STALE_NS (100ull * 1000000)              /* a hand-off step never takes this long */
#define ORPHAN_MIN_MS 1000u                      /* tags older than max(this, 10 reclaims) */
#define RECLAIM_DEFAULT_MS 100u

/* A pool's shared parts, resolved and bounds-checked once per operation. */
struct pool_ref {
	struct prot_pool_slot *s;
	_Atomic uint64_t *lease;    /* nlease entries */
	struct prot_waiter_slot *cell;
	uint32_t nlease;
	uint32_t wcap;              /* W: power of two, 0 when the segment has no waiter cells */
	uint32_t wshift, lapmask;
};

/* The configuration words a decision needs (a consistent copy, see seq_read). */
struct pool_cfgv {
	uint64_t size, max_overflow, checkout_timeout_ms, strategy, overflow_ttl_ms, reclaim_ms;
};
_Static_assert(sizeof(struct pool_cfgv) == 6 * 8, "prefix of struct prot_pool_cfg");

static void ref_init(struct pool_ref *r, struct prot_pool_slot *s, _Atomic uint64_t *lease,
                     uint32_t nlease, struct prot_waiter_slot *cell, uint32_t ncell)
{
	uint32_t w = 0;
	if (ncell) {
		w = 1;
		while (w * 2 <= ncell && w * 2 <= WAITERS_MAX)
			w *= 2;
	}
	uint32_t shift = (uint32_t)__builtin_ctz(w ? w : 1);
	uint32_t lapbits = 24 - shift < 16 ? 24 - shift : 16;
	*r = (struct pool_ref){ .s = s, .lease = lease, .cell = cell, .nlease = nlease,
	                        .wcap = w, .wshift = shift, .lapmask = (1u << lapbits) - 1 };
}

/* Resolve pool idx of a validated header; the region sizes are re-checked (untrusted segment). */
static int ref_at(struct prot_shm_header *h, uint32_t idx, struct pool_ref *r)
{
	uint32_t ns = h->pool_max_slots, nw = h->pool_max_waiters;
	if (idx >= seg_count(h, REG_POOLS) || ns == 0 ||
	    (uint64_t)(idx + 1) * ns > seg_count(h, REG_LEASES) ||
	    (uint64_t)(idx + 1) * nw > seg_count(h, REG_WAITERS))
		return -PROT_ENOPOOL;
	struct prot_pool_slot *s = seg_entry(h, REG_POOLS, idx);
	_Atomic uint64_t *lease = &((struct prot_lease_slot *)seg_entry(h, REG_LEASES, idx * ns))->owner;
	struct prot_waiter_slot *cell = nw ? seg_entry(h, REG_WAITERS, idx * nw) : NULL;
	ref_init(r, s, lease, ns, cell, nw);
	return 0;
}

static void cfg_read(const struct pool_ref *r, struct pool_cfgv *c)
{
	seq_read(&r->s->seq, &r->s->cfg, c, sizeof *c / 8);
}

/* Leases any decision may hand out: size + max_overflow, clamped to the entries that exist. */
static uint32_t cfg_cap(const struct pool_ref *r, const struct pool_cfgv *c)
{
	uint64_t cap = c->size + c->max_overflow;
	cap = cap > r->nlease ? r->nlease : cap;
	return cap > 0xffff ? 0xffff : (uint32_t)cap; /* in_use is 16 bits */
}

/* ---- futex (shared, not private: the word is in a mapping other processes share) ------------ */
static void futex_wake_all(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
/* Sleep while *addr == val, until deadline_ns (CLOCK_MONOTONIC, absolute; UINT64_MAX: none). */
static void futex_wait_until(_Atomic uint32_t *addr, uint32_t val, uint64_t deadline_ns)
{
	struct timespec ts, *tp = NULL;
	if (deadline_ns != UINT64_MAX) {
		ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
		ts.tv_nsec = (long)(deadline_ns % 1000000000u);
		tp = &ts;
	}
	/* BITSET takes an absolute CLOCK_MONOTONIC deadline: no drift across spurious wake-ups. */
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET, val, tp, NULL, FUTEX_BITSET_MATCH_ANY);
}

/* ---- waiter cells ------------------------------------------------------------------------------ */
static inline uint32_t cell_lap(const struct pool_ref *r, uint32_t t)
{
	return (t >> r->wshift) & r->lapmask;
}
static inline uint32_t cell_make(const struct pool_ref *r, uint32_t lap, uint32_t state)
{
	return (lap & r->lapmask) << 16 | state << 12;
}
/* 0: the cell is at lap L; < 0: an older lap still occupies it; > 0: it has moved past L. */
static inline int cell_cmp(const struct pool_ref *r, uint32_t v, uint32_t lap)
{
	uint32_t d = (CELL_LAP(v) - lap) & r->lapmask;
	return d == 0 ? 0 : d > r->lapmask / 2 ? -1 : 1;
}

/* Recycle a cell an older lap has held for STALE_NS (its giver died between two steps). */
static void cell_repair(const struct pool_ref *r, _Atomic uint32_t *cw, uint32_t v)
{
	/* acq_rel: pairs with the loads of the waiter and the giver that wait on this cell. */
	if (atomic_compare_exchange_strong_explicit(cw, &v, cell_make(r, CELL_LAP(v) + 1, CELL_EMPTY),
	                                            memory_order_acq_rel, memory_order_acquire))
		futex_wake_all(cw);
}

/* An older lap still holds the cell (invariant 7): its giver is between two steps. Sleep until it
 * recycles the cell (it wakes us), or repair it once STALE_NS says the giver died there. */
static void cell_wait_behind(const struct pool_ref *r, _Atomic uint32_t *cw, uint32_t v,
                             uint64_t *since)
{
	uint64_t now = prot_now_ns();
	if (!*since)
		*since = now;
	if (now - *since > STALE_NS)
		cell_repair(r, cw, v);
	else
		futex_wait_until(cw, v, *since + STALE_NS + 1);
}

/* The giver's step on ticket t's cell: move it to the next lap and wake its sleepers. Returns
 * true when the waiter had cancelled (the grant must go to someone else). */
static bool cell_settle(const struct pool_ref *r, uint32_t t)
{
	_Atomic uint32_t *cw = &r->cell[t & (r->wcap - 1)].word;
	uint32_t lap = cell_lap(r, t);
	uint64_t behind_since = 0;
	for (;;) {
		/* acquire: pairs with the waiter's release CAS to WAITING/CANCELLED */
		uint32_t v = atomic_load_explicit(cw, memory_order_acquire);
		int c = cell_cmp(r, v, lap);
		if (c > 0)
			return false; /* repaired while this giver stalled: the waiter looks for its grant */
		if (c < 0) {
			cell_wait_behind(r, cw, v, &behind_since);
			continue;
		}
		/* acq_rel: release publishes GRANT(t) (written before) to the waiter that sees the
		 * recycled cell; acquire reads the waiter's cancellation. */
		if (atomic_compare_exchange_strong_explicit(cw, &v, cell_make(r, lap + 1, CELL_EMPTY),
		                                            memory_order_acq_rel, memory_order_acquire)) {
			futex_wake_all(cw);
			return CELL_STATE(v) == CELL_CANCELLED;
		}
	}
}

/* ---- lease entries ----------------------------------------------------------------------------- */
/* Claim a free entry for someone who holds a count (invariant 2 guarantees one). */
static int lease_claim(const struct pool_ref *r, uint64_t val, uint32_t hint, uint32_t *e_out)
{
	for (uint32_t pass = 0; pass < 64; pass++) {
		for (uint32_t i = 0; i < r->nlease; i++) {
			uint32_t e = (hint + i) % r->nlease;
			uint64_t z = 0;
			/* relaxed: ownership publishes no data; the count was taken with acquire */
			if (atomic_load_explicit(&r->lease[e], memory_order_relaxed) == 0 &&
			    atomic_compare_exchange_strong_explicit(&r->lease[e], &z, val, memory_order_relaxed,
			                                            memory_order_relaxed)) {
				*e_out = e;
				return 0;
			}
		}
		sched_yield(); /* only a corrupt segment gets here */
	}
	return -PROT_ECORRUPT;
}

enum { GIVE_DELIVERED, GIVE_CANCELLED, GIVE_LOST };

/* Hand the count held with entry e (owner word `cur`) to ticket t, whose CAS (head+1) the caller
 * has made. GIVE_CANCELLED: the waiter had gone; e is back to `cur` and the count still held. */
static int grant_ticket(const struct pool_ref *r, uint32_t t, uint32_t e, uint64_t cur)
{
	uint64_t g = tag_grant(t, prot_now_ns()), want = cur;
	/* release: pairs with the waiter's acquire scan (ordered also through the cell CAS) */
	if (!atomic_compare_exchange_strong_explicit(&r->lease[e], &want, g, memory_order_release,
	                                             memory_order_relaxed))
		return GIVE_LOST;
	if (!cell_settle(r, t))
		return GIVE_DELIVERED;
	want = g;
	/* a revoker (pool_reclaim of an orphan tag) may have taken it: then the count is its own */
	if (!atomic_compare_exchange_strong_explicit(&r->lease[e], &want, cur, memory_order_acq_rel,
	                                             memory_order_relaxed))
		return GIVE_LOST;
	return GIVE_CANCELLED;
}

enum { REL_FREED = 0, REL_HANDED = 1 };

/* Give back the count held with entry e whose owner word is `cur` (e PROT_NO_INDEX: a count
 * without an entry): to the oldest waiter, else drop it. Returns REL_FREED (*used_before = in_use
 * before the drop), REL_HANDED, or -PROT_ESTALE when e was not held by `cur`. */
static int lease_release(const struct pool_ref *r, uint32_t e, uint64_t cur, uint32_t *used_before)
{
	bool held = e != PROT_NO_INDEX, first = true;
	if (!held)
		e = 0;
	/* acquire: pairs with the acq_rel CASes of other deciders */
	uint64_t w = atomic_load_explicit(&r->s->word, memory_order_acquire);
	for (;;) {
		if (PW_HEAD(w) == PW_TAIL(w)) {
			if (held) {
				uint64_t want = cur;
				/* release: the free is visible to whoever takes the count we drop next */
				if (!atomic_compare_exchange_strong_explicit(&r->lease[e], &want, 0,
				                                             memory_order_release,
				                                             memory_order_relaxed))
					return first ? -PROT_ESTALE : REL_HANDED;
				held = false;
			}
			first = false;
			if (PW_USED(w) == 0)
				return -PROT_ECORRUPT;
			/* acq_rel: pairs with the CAS of the next decider (invariants 2 and 3) */
			if (atomic_compare_exchange_weak_explicit(&r->s->word, &w, w - USED_ONE,
			                                          memory_order_acq_rel, memory_order_acquire)) {
				if (used_before)
					*used_before = PW_USED(w);
				return REL_FREED;
			}
			continue;
		}
		if (!held) {
			/* a waiter queued after the free: take an entry again to carry the grant */
			int rc = lease_claim(r, cur, e, &e);
			if (rc < 0)
				return rc;
			held = true;
		}
		first = false;
		uint64_t nw = pw_make(PW_USED(w), PW_HEAD(w) + 1, PW_TAIL(w));
		if (!atomic_compare_exchange_weak_explicit(&r->s->word, &w, nw, memory_order_acq_rel,
		                                           memory_order_acquire))
			continue;
		int g = grant_ticket(r, PW_HEAD(w), e, cur);
		if (g != GIVE_CANCELLED)
			return REL_HANDED;
		w = atomic_load_explicit(&r->s->word, memory_order_acquire);
	}
}

static void high_water(const struct pool_ref *r, uint32_t used)
{
	uint64_t hw = atomic_load_explicit(&r->s->high_water, memory_order_relaxed);
	/* relaxed: a statistic, publishes nothing */
	while (used > hw && !atomic_compare_exchange_weak_explicit(&r->s->high_water, &hw, used,
	                                                            memory_order_relaxed,
	                                                            memory_order_relaxed))
		;
}

/* Serve waiters from free capacity (after a reload that grew the pool): take a count and the
 * head ticket in one CAS, then hand it over like a checkin would. */
static void pool_pump(const struct pool_ref *r, uint32_t cap)
{
	uint64_t w = atomic_load_explicit(&r->s->word, memory_order_acquire);
	while (PW_HEAD(w) != PW_TAIL(w) && PW_USED(w) < cap) {
		uint64_t nw = pw_make(PW_USED(w) + 1, PW_HEAD(w) + 1, PW_TAIL(w));
		if (!atomic_compare_exchange_weak_explicit(&r->s->word, &w, nw, memory_order_acq_rel,
		                                           memory_order_acquire))
			continue;
		high_water(r, PW_USED(nw));
		uint64_t hold = tag_hold(prot_now_ns());
		uint32_t e;
		if (lease_claim(r, hold, 0, &e) < 0)
			return;
		if (grant_ticket(r, PW_HEAD(w), e, hold) == GIVE_CANCELLED)
			lease_release(r, e, hold, NULL);
		w = atomic_load_explicit(&r->s->word, memory_order_acquire);
	}
}

/* Take cancelled tickets off the head of the queue, so that the pool does not look busy (and
 * newcomers do not queue) behind waiters that left. Competes with givers for the same head CAS:
 * whoever wins ticket t settles its cell, exactly once. */
static void unqueue_cancelled(const struct pool_ref *r)
{
	uint64_t w = atomic_load_explicit(&r->s->word, memory_order_acquire);
	while (PW_HEAD(w) != PW_TAIL(w)) {
		uint32_t t = PW_HEAD(w), lap = cell_lap(r, t);
		_Atomic uint32_t *cw = &r->cell[t & (r->wcap - 1)].word;
		uint32_t v = atomic_load_explicit(cw, memory_order_acquire); /* pairs with the cancel */
		if (cell_cmp(r, v, lap) != 0 || CELL_STATE(v) != CELL_CANCELLED)
			return;
		uint64_t nw = pw_make(PW_USED(w), t + 1, PW_TAIL(w));
		if (!atomic_compare_exchange_strong_explicit(&r->s->word, &w, nw, memory_order_acq_rel,
		                                             memory_order_acquire))
			continue;
		cell_settle(r, t); /* recycles it for the next lap */
		w = nw;
	}
}

/* Waiters in [head, tail) that have not cancelled: what status reports as waiting. */
static uint32_t live_waiters(const struct pool_ref *r, uint64_t w)
{
	uint32_t n = 0, q = pw_waiting(w);
	for (uint32_t k = 0; k < q && k < r->wcap; k++) {
		uint32_t t = (PW_HEAD(w) + k) & T_MASK;
		uint32_t v = atomic_load_explicit(&r->cell[t & (r->wcap - 1)].word, memory_order_relaxed);
		n += !(cell_cmp(r, v, cell_lap(r, t)) == 0 && CELL_STATE(v) == CELL_CANCELLED);
	}
	return n;
}

/* ---- checkout ------------------------------------------------------------------------------------ */
/* The uncontended path: one CAS on the word, one on an entry. -PROT_EPOOLFULL when the caller
 * must queue (full, or others queue already). */
static int lease_try(const struct pool_ref *r, uint32_t cap, uint64_t me, uint32_t hint,
                     uint32_t *e_out)
{
	uint64_t w = atomic_load_explicit(&r->s->word, memory_order_relaxed);
	do {
		if (PW_HEAD(w) != PW_TAIL(w) || PW_USED(w) >= cap)
			return -PROT_EPOOLFULL;
		/* acq_rel: acquire sees the entry frees before the decrements read (invariant 2) */
	} while (!atomic_compare_exchange_weak_explicit(&r->s->word, &w, w + USED_ONE,
	                                                 memory_order_acq_rel, memory_order_relaxed));
	high_water(r, PW_USED(w) + 1);
	int rc = lease_claim(r, me, hint, e_out);
	if (rc < 0)
		lease_release(r, PROT_NO_INDEX, me, NULL); /* corrupt segment: give the count back */
	return rc;
}

enum { WAIT_AGAIN = 1 };

/* A granted waiter takes the GRANT(t) tag the giver wrote before recycling the cell. */
static int grant_claim(const struct pool_ref *r, uint32_t t, uint64_t me, uint32_t *e_out)
{
	uint32_t want = TAG_BIT | (t & T_MASK);
	uint64_t until = 0;
	for (;;) {
		for (uint32_t e = 0; e < r->nlease; e++) {
			/* acquire: pairs with grant_ticket's release */
			uint64_t v = atomic_load_explicit(&r->lease[e], memory_order_acquire);
			if ((uint32_t)v == want &&
			    atomic_compare_exchange_strong_explicit(&r->lease[e], &v, me, memory_order_acq_rel,
			                                            memory_order_relaxed)) {
				*e_out = e;
				return 0;
			}
		}
		/* only after a repair of a stalled giver: it may still write the tag */
		uint64_t now = prot_now_ns();
		if (!until)
			until = now + STALE_NS;
		if (now > until)
			return WAIT_AGAIN;
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
}

/* Sleep on ticket t until granted (0, *e_out), timed out (-PROT_ECHECKOUT_TIMEOUT, holding
 * nothing) or told to queue again (WAIT_AGAIN). */
static int ticket_wait(const struct pool_ref *r, uint32_t t, uint64_t me, uint64_t deadline,
                       uint32_t *e_out)
{
	struct prot_waiter_slot *ws = &r->cell[t & (r->wcap - 1)];
	_Atomic uint32_t *cw = &ws->word;
	uint32_t lap = cell_lap(r, t);
	uint64_t behind_since = 0;
	bool late = false; /* our cancel lost to a grant */
	for (;;) {
		/* acquire: pairs with the giver's acq_rel recycle (GRANT(t) is written before it) */
		uint32_t v = atomic_load_explicit(cw, memory_order_acquire);
		int c = cell_cmp(r, v, lap);
		if (c < 0) {
			cell_wait_behind(r, cw, v, &behind_since);
			continue;
		}
		if (c > 0) {
			int rc = grant_claim(r, t, me, e_out);
			if (rc == 0 && late) {
				/* granted in the race with our timeout: hand it on, leave nothing */
				lease_release(r, *e_out, me, NULL);
				return -PROT_ECHECKOUT_TIMEOUT;
			}
			return rc;
		}
		uint32_t st = CELL_STATE(v);
		if (st == CELL_CANCELLED)
			return WAIT_AGAIN; /* reclaim believed us dead: take a new ticket */
		if (st == CELL_EMPTY) {
			/* relaxed: published by the release CAS below; read by pool_reclaim after an
			 * acquire load of WAITING */
			atomic_store_explicit(&ws->ident, me, memory_order_relaxed);
			atomic_compare_exchange_strong_explicit(cw, &v, cell_make(r, lap, CELL_WAITING),
			                                        memory_order_release, memory_order_relaxed);
			continue;
		}
		if (prot_now_ns() >= deadline) {
			/* release: nothing to publish, but pairs with the giver's acquire of the state */
			if (atomic_compare_exchange_strong_explicit(cw, &v, cell_make(r, lap, CELL_CANCELLED),
			                                            memory_order_acq_rel, memory_order_acquire)) {
				unqueue_cancelled(r);
				return -PROT_ECHECKOUT_TIMEOUT;
			}
			late = cell_cmp(r, v, lap) > 0; /* recycled meanwhile: granted */
			continue;
		}
		futex_wait_until(cw, v, deadline);
	}
}

static void note_exhausted(struct prot_shm_header *h, const struct pool_ref *r, uint32_t idx)
{
	if (!h)
		return;
	uint64_t now = prot_now_coarse_ns();
	uint64_t last = atomic_load_explicit(&r->s->exhausted_ns, memory_order_relaxed);
	/* relaxed: only rate-limits the event to one a second per pool */
	if ((last == 0 || now - last >= 1000000000u) &&
	    atomic_compare_exchange_strong_explicit(&r->s->exhausted_ns, &last, now, memory_order_relaxed,
	                                            memory_order_relaxed)) {
		uint64_t w = atomic_load_explicit(&r->s->word, memory_order_relaxed);
		prot_event_emit(h, EV_POOL_EXHAUSTED, idx, r->s->name, PW_USED(w), pw_waiting(w));
	}
}

/* Take a lease: 0 and *e_out, or -PROT_EPOOLFULL (block false), -PROT_ECHECKOUT_TIMEOUT,
 * -PROT_ECAPACITY (waiter queue full). h may be NULL (no event). */
static int lease_acquire(struct prot_shm_header *h, uint32_t idx, const struct pool_ref *r,
                         uint32_t cap, uint64_t me, bool block, uint64_t deadline, uint32_t hint,
                         uint32_t *e_out)
{
	int rc = lease_try(r, cap, me, hint, e_out);
	if (rc != -PROT_EPOOLFULL)
		return rc;
	note_exhausted(h, r, idx);
	if (!block)
		return -PROT_EPOOLFULL;
	for (;;) {
		uint64_t w = atomic_load_explicit(&r->s->word, memory_order_acquire), nw;
		bool queued = false;
		while (!queued) {
			if (PW_HEAD(w) == PW_TAIL(w) && PW_USED(w) < cap) {
				nw = w + USED_ONE;
			} else {
				if (pw_waiting(w) >= r->wcap)
					return -PROT_ECAPACITY;
				nw = pw_make(PW_USED(w), PW_HEAD(w), PW_TAIL(w) + 1);
				queued = true;
			}
			/* acq_rel: the decision of invariant 3 */
			if (atomic_compare_exchange_weak_explicit(&r->s->word, &w, nw, memory_order_acq_rel,
			                                          memory_order_acquire))
				break;
			queued = false;
		}
		if (!queued) {
			high_water(r, PW_USED(nw));
			return lease_claim(r, me, hint, e_out);
		}
		if (PW_USED(nw) < cap)
			pool_pump(r, cap); /* capacity grew while others queued */
		rc = ticket_wait(r, PW_TAIL(w), me, deadline, e_out);
		if (rc != WAIT_AGAIN)
			return rc;
		if (prot_now_ns() >= deadline)
			return -PROT_ECHECKOUT_TIMEOUT;
	}
}

/* ---- dead owners (protd's tick) --------------------------------------------------------------- */
static bool owner_alive(uint64_t v)
{
	uint32_t pid = (uint32_t)v;
	uint64_t start;
	if (pid == 0 || pid > INT_MAX)
		return false;
	if (proc_start_time((pid_t)pid, &start) != 0)
		return false;
	if ((uint32_t)start != (uint32_t)(v >> 32))
		return false; /* pid reused by another process */
	return proc_alive((pid_t)pid, start) == 1;
}

static uint64_t reclaim_pool(struct prot_shm_header *h, uint32_t idx, const struct pool_ref *r,
                             uint64_t now_ns, uint64_t orphan_ms)
{
	uint64_t n = 0;
	uint32_t now_ms = (uint32_t)(now_ns / 1000000u);
	for (uint32_t e = 0; e < r->nlease; e++) {
		uint64_t v = atomic_load_explicit(&r->lease[e], memory_order_acquire);
		if (v == 0)
			continue;
		if (LEASE_TAGGED(v) ? (uint32_t)(now_ms - (uint32_t)(v >> 32)) <= orphan_ms
		                    : owner_alive(v))
			continue;
		if (lease_release(r, e, v, NULL) < 0)
			continue; /* changed meanwhile: its holder acted */
		n++;
		atomic_fetch_add_explicit(&r->s->reclaims, 1, memory_order_relaxed); /* statistic */
		prot_event_emit(h, EV_LEASE_RECLAIMED, idx, r->s->name,
		                LEASE_TAGGED(v) ? 0 : (uint32_t)v, e);
	}
	for (uint32_t i = 0; r->cell && i < r->wcap; i++) {
		_Atomic uint32_t *cw = &r->cell[i].word;
		uint32_t v = atomic_load_explicit(cw, memory_order_acquire); /* pairs with WAITING CAS */
		if (CELL_STATE(v) != CELL_WAITING)
			continue;
		uint64_t who = atomic_load_explicit(&r->cell[i].ident, memory_order_relaxed);
		if (owner_alive(who))
			continue;
		/* the giver of this ticket will skip it, as for a timeout */
		atomic_compare_exchange_strong_explicit(cw, &v, cell_make(r, CELL_LAP(v), CELL_CANCELLED),
		                                        memory_order_acq_rel, memory_order_relaxed);
	}
	if (r->cell)
		unqueue_cancelled(r);
	return n;
}

void pool_reclaim(struct prot_shm_header *h, uint64_t now_ns, uint64_t *reclaimed)
{
	uint64_t n = 0;
	for (uint32_t idx = 0; idx < seg_count(h, REG_POOLS); idx++) {
		struct pool_ref r;
		if (ref_at(h, idx, &r) < 0)
			break;
		uint32_t st = atomic_load_explicit(&r.s->state, memory_order_acquire);
		if (SLOT_STATE(st) == SLOT_FREE)
			continue;
		struct pool_cfgv c;
		cfg_read(&r, &c);
		uint64_t every = c.reclaim_ms ? c.reclaim_ms : RECLAIM_DEFAULT_MS;
		uint64_t last = atomic_load_explicit(&r.s->reclaim_at_ns, memory_order_relaxed);
		if (last && now_ns - last < every * 1000000u && now_ns >= last)
			continue;
		/* relaxed: protd's own bookkeeping, no other writer */
		atomic_store_explicit(&r.s->reclaim_at_ns, now_ns, memory_order_relaxed);
		uint64_t orphan = every * 10 > ORPHAN_MIN_MS ? every * 10 : ORPHAN_MIN_MS;
		n += reclaim_pool(h, idx, &r, now_ns, orphan);
		if (SLOT_STATE(st) == SLOT_LIVE)
			pool_pump(&r, cfg_cap(&r, &c));
	}
	if (reclaimed)
		*reclaimed = n;
}

/* ---- this process's connections (under p->lock) ------------------------------------------------ */
struct pool_rec {
	struct pool_rec *prev, *next;
	void *conn;          /* NULL: none (no connector, or not made yet) */
	uint64_t expires_ns; /* an idle overflow connection is destroyed after this; 0: kept */
	uint32_t entry;      /* busy: the lease entry it goes with */
	struct pool_loc *loc;
};

struct pool_loc {
	char name[PROT_NAME_BYTES];
	struct prot_shm_header *h; /* mapping idx refers to */
	uint32_t idx, slot_state;  /* slot_state (with its generation) when idx was resolved */
	bool has_connector;
	struct prot_connector c;
	struct pool_rec idle, busy; /* circular lists with sentinels; idle oldest first */
	struct pool_rec *spare;     /* unused records, singly linked */
	uint32_t hint;              /* lease entry to try first */
};

struct prot_pool_local {
	uint64_t owner; /* lease_owner of the process this state belongs to */
	uint32_t n, cap;
	struct pool_loc **v;
};

static void list_init(struct pool_rec *s)
{
	s->prev = s->next = s;
}
static bool list_empty(const struct pool_rec *s)
{
	return s->next == s;
}
static void list_del(struct pool_rec *r)
{
	r->prev->next = r->next;
	r->next->prev = r->prev;
	r->prev = r->next = r;
}
static void list_add_tail(struct pool_rec *s, struct pool_rec *r)
{
	r->prev = s->prev;
	r->next = s;
	s->prev->next = r;
	s->prev = r;
}

/* Free every record of loc without touching connections (what a forked child must do). */
static void loc_forget(struct pool_loc *l)
{
	struct pool_rec *lists[2] = { &l->idle, &l->busy };
	for (int i = 0; i < 2; i++)
		while (!list_empty(lists[i])) {
			struct pool_rec *r = lists[i]->next;
			list_del(r);
			free(r);
		}
	while (l->spare) {
		struct pool_rec *r = l->spare;
		l->spare = r->next;
		free(r);
	}
	l->hint = 0;
}

/* The local state of the calling process, NULL on ENOMEM. A state inherited through fork() is
 * forgotten here: its leases and connections are the parent's. */
static struct prot_pool_local *local_get(prot_t *p, uint64_t me)
{
	struct prot_pool_local *pl = p->pools;
	if (!pl) {
		pl = calloc(1, sizeof *pl);
		if (!pl)
			return NULL;
		pl->owner = me;
		p->pools = pl;
	}
	if (pl->owner != me) {
		for (uint32_t i = 0; i < pl->n; i++)
			loc_forget(pl->v[i]); /* connectors stay: registration is code, not state */
		pl->owner = me;
	}
	return pl;
}

static struct pool_loc *loc_by_name(struct prot_pool_local *pl, const char *name, bool add)
{
	for (uint32_t i = 0; i < pl->n; i++)
		if (strcmp(pl->v[i]->name, name) == 0)
			return pl->v[i];
	if (!add)
		return NULL;
	if (pl->n == pl->cap) {
		uint32_t cap = pl->cap ? pl->cap * 2 : 4;
		struct pool_loc **v = realloc(pl->v, cap * sizeof *v);
		if (!v)
			return NULL;
		pl->v = v;
		pl->cap = cap;
	}
	struct pool_loc *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	snprintf(l->name, sizeof l->name, "%s", name);
	list_init(&l->idle);
	list_init(&l->busy);
	pl->v[pl->n++] = l;
	return l;
}

/* (Re)resolve loc's slot in mapping h: after a re-attach or when protd recycled the slot. */
static int loc_resolve(struct pool_loc *l, struct prot_shm_header *h)
{
	if (l->h == h && l->h) {
		struct prot_pool_slot *s = seg_entry(h, REG_POOLS, l->idx);
		/* acquire: pairs with protd's release of the slot state (name and cfg complete) */
		if (atomic_load_explicit(&s->state, memory_order_acquire) == l->slot_state)
			return 0;
	}
	int idx = seg_find(h, REG_POOLS, l->name);
	if (idx < 0)
		return idx;
	struct prot_pool_slot *s = seg_entry(h, REG_POOLS, (uint32_t)idx);
	l->h = h;
	l->idx = (uint32_t)idx;
	l->slot_state = atomic_load_explicit(&s->state, memory_order_acquire);
	return 0;
}

static struct pool_rec *rec_get(struct pool_loc *l)
{
	struct pool_rec *r = l->spare;
	if (r)
		l->spare = r->next;
	else if (!(r = malloc(sizeof *r)))
		return NULL;
	*r = (struct pool_rec){ 0 };
	list_init(r);
	return r;
}
static void rec_put(struct pool_loc *l, struct pool_rec *r)
{
	r->next = l->spare;
	l->spare = r;
}

/* Detach idle connections whose overflow linger ran out; the caller destroys them unlocked. */
static struct pool_rec *loc_expired(struct pool_loc *l, uint64_t now)
{
	struct pool_rec *dead = NULL;
	for (struct pool_rec *r = l->idle.next, *n; r != &l->idle; r = n) {
		n = r->next;
		if (r->expires_ns && now >= r->expires_ns) {
			list_del(r);
			r->next = dead;
			dead = r;
		}
	}
	return dead;
}
static void destroy_chain(const struct prot_connector *c, struct pool_rec *dead)
{
	while (dead) {
		struct pool_rec *n = dead->next;
		if (dead->conn)
			c->destroy(c->ctx, dead->conn);
		free(dead);
		dead = n;
	}
}

/* The idle connection to reuse (lifo: newest, fifo: oldest), moved to busy; or a fresh record. */
static struct pool_rec *loc_take(struct pool_loc *l, uint64_t strategy, uint32_t e)
{
	struct pool_rec *r = NULL;
	if (!list_empty(&l->idle)) {
		r = strategy == 1 ? l->idle.next : l->idle.prev;
		list_del(r);
		r->expires_ns = 0;
	} else if (!(r = rec_get(l))) {
		return NULL;
	}
	r->entry = e;
	r->loc = l;
	list_add_tail(&l->busy, r);
	return r;
}

/* ---- public API ------------------------------------------------------------------------------- */
static void lease_fill(prot_lease *lease, struct prot_shm_header *h, uint32_t idx, uint32_t e,
                       struct pool_rec *rec)
{
	lease->opaque[0] = (uintptr_t)h;
	lease->opaque[1] = (uint64_t)(e + 1) << 32 | idx; /* an all-zero lease is invalid */
	lease->opaque[2] = (uintptr_t)rec;
}

/* Give a lease's count back after a failed checkout step (no connection to keep). */
static void checkout_undo(prot_t *p, const struct pool_ref *r, struct pool_loc *l, struct pool_rec *rec,
                          uint32_t e, uint64_t me)
{
	pthread_mutex_lock(&p->lock);
	if (rec) {
		list_del(rec);
		rec_put(l, rec);
	}
	pthread_mutex_unlock(&p->lock);
	lease_release(r, e, me, NULL);
}

/* Checkout on pool `name` (resolved by name) or, name NULL, on slot idx of h. */
static int checkout(prot_t *p, struct prot_shm_header *h, const char *name, uint32_t idx,
                    int64_t timeout_ms, prot_lease *lease, void **conn, bool *waited)
{
	if (!p || !lease)
		return -EINVAL;
	if (!h)
		return -PROT_ENOSEG;
	uint64_t me = prot_self(p)->lease_owner;
	struct pool_ref r;
	struct pool_cfgv c;
	struct pool_loc *l;
	struct pool_rec *rec = NULL, *dead;
	uint32_t e = 0, hint;
	char nm[PROT_NAME_BYTES];
	int rc;

	pthread_mutex_lock(&p->lock);
	struct prot_pool_local *pl = local_get(p, me);
	if (!name && idx < seg_count(h, REG_POOLS)) {
		struct prot_pool_slot *s = seg_entry(h, REG_POOLS, idx);
		memcpy(nm, s->name, sizeof nm);
		nm[sizeof nm - 1] = 0;
		name = nm;
		l = pl ? loc_by_name(pl, name, true) : NULL;
	} else {
		l = pl && name ? loc_by_name(pl, name, true) : NULL;
	}
	rc = !name ? -PROT_ENOPOOL : !l ? -ENOMEM : loc_resolve(l, h);
	if (rc == 0)
		rc = ref_at(h, l->idx, &r);
	if (rc == 0 && SLOT_STATE(l->slot_state) != SLOT_LIVE)
		rc = -PROT_ENOPOOL;
	if (rc < 0) {
		pthread_mutex_unlock(&p->lock);
		return rc;
	}
	cfg_read(&r, &c);
	uint32_t cap = cfg_cap(&r, &c);
	idx = l->idx;
	hint = l->hint;
	struct prot_connector cn = l->c;
	bool has = l->has_connector;
	dead = loc_expired(l, prot_now_coarse_ns());
	rc = lease_try(&r, cap, me, l->hint, &e);
	if (rc == 0) {
		l->hint = e + 1;
		rec = loc_take(l, c.strategy, e);
	}
	pthread_mutex_unlock(&p->lock);
	if (dead)
		destroy_chain(&cn, dead);

	if (rc == -PROT_EPOOLFULL) {
		if (waited)
			*waited = true;
		uint64_t tmo = timeout_ms < 0 ? c.checkout_timeout_ms : (uint64_t)timeout_ms;
		uint64_t deadline = prot_now_ns() + tmo * 1000000u;
		rc = lease_acquire(h, idx, &r, cap, me, timeout_ms != 0 && tmo != 0, deadline, hint, &e);
		if (rc == -PROT_ECHECKOUT_TIMEOUT)
			atomic_fetch_add_explicit(&r.s->timeouts, 1, memory_order_relaxed); /* statistic */
		if (rc < 0)
			return rc;
		pthread_mutex_lock(&p->lock);
		rec = loc_take(l, c.strategy, e);
		pthread_mutex_unlock(&p->lock);
	}
	if (rc < 0)
		return rc;
	if (!rec) {
		checkout_undo(p, &r, l, NULL, e, me);
		return -ENOMEM;
	}
	if (has && rec->conn && cn.check && cn.check(cn.ctx, rec->conn) != 0) {
		cn.destroy(cn.ctx, rec->conn);
		rec->conn = NULL;
	}
	if (has && !rec->conn && cn.create(cn.ctx, &rec->conn) != 0) {
		rec->conn = NULL;
		checkout_undo(p, &r, l, rec, e, me);
		return -PROT_ECONNECTOR;
	}
	atomic_fetch_add_explicit(&r.s->checkouts, 1, memory_order_relaxed); /* statistic */
	lease_fill(lease, h, idx, e, rec);
	if (conn)
		*conn = rec->conn;
	return 0;
}

/* checkout() with the telemetry events: the clock is read only when a handler listens. */
static int checkout_observed(prot_t *p, struct prot_shm_header *h, const char *name, uint32_t idx,
                             int64_t timeout_ms, prot_lease *lease, void **conn, bool *waited)
{
	const uint32_t want = PROT_TEL_MASK(PROT_TEL_POOL_CHECKOUT) | PROT_TEL_MASK(PROT_TEL_POOL_TIMEOUT);
	if (likely(!p || !(atomic_load_explicit(&p->tel_mask, memory_order_relaxed) & want)))
		return checkout(p, h, name, idx, timeout_ms, lease, conn, waited);
	uint64_t t0 = prot_now_ns();
	int rc = checkout(p, h, name, idx, timeout_ms, lease, conn, waited);
	char nm[PROT_NAME_BYTES] = "";
	if (name)
		snprintf(nm, sizeof nm, "%s", name);
	else if (h && idx < seg_count(h, REG_POOLS))
		memcpy(nm, ((struct prot_named *)seg_entry(h, REG_POOLS, idx))->name, sizeof nm - 1);
	PROT_TEL(p, rc == -PROT_ECHECKOUT_TIMEOUT ? PROT_TEL_POOL_TIMEOUT : PROT_TEL_POOL_CHECKOUT,
	         .layer = PROT_LAYER_POOL, .result = rc, .duration_ns = prot_now_ns() - t0, .key = nm);
	return rc;
}

int pool_checkout_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx, int64_t timeout_ms,
                      prot_lease *lease, void **conn, bool *waited)
{
	return checkout_observed(p, h, NULL, idx, timeout_ms, lease, conn, waited);
}

int prot_pool_checkout(prot_t *p, const char *pool, int64_t timeout_ms, prot_lease *lease,
                       void **conn)
{
	if (!p || !pool)
		return -EINVAL;
	if (strlen(pool) > PROT_NAME_MAX)
		return -PROT_ETOOLONG;
	return checkout_observed(p, prot_hdr(p), pool, 0, timeout_ms, lease, conn, NULL);
}

int prot_pool_checkin(prot_t *p, prot_lease *lease, int how)
{
	if (!p || !lease)
		return -EINVAL;
	struct prot_shm_header *h = (struct prot_shm_header *)(uintptr_t)lease->opaque[0];
	uint32_t idx = (uint32_t)lease->opaque[1], e1 = (uint32_t)(lease->opaque[1] >> 32);
	struct pool_rec *rec = (struct pool_rec *)(uintptr_t)lease->opaque[2];
	if (!h || e1 == 0 || !rec)
		return -PROT_ESTALE;
	uint64_t me = prot_self(p)->lease_owner;
	struct pool_ref r;
	int rc = ref_at(h, idx, &r);
	if (rc < 0)
		return rc;
	uint32_t e = e1 - 1;
	/* a lease of another process (e.g. the parent of a forked child) fails here, before rec is
	 * touched: rec belongs to that process's memory */
	if (e >= r.nlease || atomic_load_explicit(&r.lease[e], memory_order_relaxed) != me)
		return -PROT_ESTALE;
	struct pool_cfgv c;
	cfg_read(&r, &c);
	uint32_t before = 0;
	rc = lease_release(&r, e, me, &before);
	if (rc < 0)
		return rc;
	memset(lease, 0, sizeof *lease); /* a second checkin of the same lease is -PROT_ESTALE */

	uint64_t now = prot_now_coarse_ns();
	pthread_mutex_lock(&p->lock);
	struct pool_loc *l = rec->loc;
	struct pool_rec *dead = NULL;
	struct prot_connector cn = { 0 };
	if (l) {
		cn = l->c;
		list_del(rec);
		bool overflow = rc == REL_FREED && before > c.size;
		if (!rec->conn) {
			rec_put(l, rec);
		} else if (how == PROT_CHECKIN_BROKEN || (overflow && c.overflow_ttl_ms == 0)) {
			rec->next = NULL;
			dead = rec;
		} else {
			rec->expires_ns = overflow ? now + c.overflow_ttl_ms * 1000000u : 0;
			list_add_tail(&l->idle, rec);
		}
		struct pool_rec *exp = loc_expired(l, now);
		if (exp) {
			struct pool_rec *t = exp;
			while (t->next)
				t = t->next;
			t->next = dead;
			dead = exp;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (dead)
		destroy_chain(&cn, dead);
	PROT_TEL(p, PROT_TEL_POOL_CHECKIN, .layer = PROT_LAYER_POOL, .result = how);
	return 0;
}

int prot_pool_with(prot_t *p, const char *pool, int64_t timeout_ms,
                   int (*fn)(void *conn, void *arg), void *arg, int *fn_result)
{
	if (!fn)
		return -EINVAL;
	prot_lease lease;
	void *conn = NULL;
	int rc = prot_pool_checkout(p, pool, timeout_ms, &lease, &conn);
	if (rc < 0)
		return rc;
	int res = fn(conn, arg);
	prot_pool_checkin(p, &lease, res < 0 ? PROT_CHECKIN_BROKEN : PROT_CHECKIN_OK);
	if (fn_result)
		*fn_result = res;
	return 0;
}

int prot_pool_register(prot_t *p, const char *pool, const struct prot_connector *c)
{
	if (!p || !pool || !c || !c->create || !c->destroy)
		return -EINVAL;
	if (strlen(pool) > PROT_NAME_MAX)
		return -PROT_ETOOLONG;
	struct prot_shm_header *h = prot_hdr(p);
	if (!h)
		return -PROT_ENOSEG;
	uint64_t me = prot_self(p)->lease_owner;
	pthread_mutex_lock(&p->lock);
	struct prot_pool_local *pl = local_get(p, me);
	struct pool_loc *l = pl ? loc_by_name(pl, pool, true) : NULL;
	int rc = l ? loc_resolve(l, h) : -ENOMEM;
	if (rc == 0 && l->has_connector) {
		const struct prot_connector *o = &l->c;
		if (o->create != c->create || o->destroy != c->destroy || o->check != c->check ||
		    o->ctx != c->ctx)
			rc = -PROT_EEXIST;
	} else if (rc == 0) {
		l->c = *c;
		l->has_connector = true;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int pool_status_idx(struct prot_shm_header *h, uint32_t idx, struct prot_pool_status *out)
{
	struct pool_ref r;
	int rc = ref_at(h, idx, &r);
	if (rc < 0)
		return rc;
	uint32_t st = atomic_load_explicit(&r.s->state, memory_order_acquire); /* pairs with protd */
	if (SLOT_STATE(st) != SLOT_LIVE)
		return -PROT_ENOPOOL;
	struct pool_cfgv c;
	cfg_read(&r, &c);
	uint64_t w = atomic_load_explicit(&r.s->word, memory_order_relaxed); /* a snapshot */
	struct prot_pool_status s = { 0 };
	memcpy(s.name, r.s->name, sizeof s.name);
	s.name[sizeof s.name - 1] = 0;
	s.size = (uint32_t)c.size;
	s.max_overflow = (uint32_t)c.max_overflow;
	s.in_use = PW_USED(w);
	s.overflow_in_use = s.in_use > s.size ? s.in_use - s.size : 0;
	s.waiting = r.cell ? live_waiters(&r, w) : 0;
	s.checkout_timeout_ms = c.checkout_timeout_ms;
	s.overflow_ttl_ms = c.overflow_ttl_ms;
	s.strategy = (uint32_t)c.strategy;
	s.checkouts = atomic_load_explicit(&r.s->checkouts, memory_order_relaxed);
	s.timeouts = atomic_load_explicit(&r.s->timeouts, memory_order_relaxed);
	s.reclaims = atomic_load_explicit(&r.s->reclaims, memory_order_relaxed);
	s.high_water = (uint32_t)atomic_load_explicit(&r.s->high_water, memory_order_relaxed);
	*out = s;
	return 0;
}

int prot_pool_status(prot_t *p, const char *pool, struct prot_pool_status *out)
{
	if (!p || !pool || !out)
		return -EINVAL;
	struct prot_shm_header *h = prot_hdr(p);
	if (!h)
		return -PROT_ENOSEG;
	int idx = seg_find(h, REG_POOLS, pool);
	if (idx < 0)
		return idx;
	if (!(p->flags & PROT_OPEN_RDONLY)) {
		/* a pool call: lingering overflow connections past their deadline close here too */
		uint64_t me = prot_self(p)->lease_owner;
		pthread_mutex_lock(&p->lock);
		struct prot_pool_local *pl = local_get(p, me);
		struct pool_loc *l = pl ? loc_by_name(pl, pool, false) : NULL;
		struct pool_rec *dead = l ? loc_expired(l, prot_now_coarse_ns()) : NULL;
		struct prot_connector cn = l ? l->c : (struct prot_connector){ 0 };
		pthread_mutex_unlock(&p->lock);
		if (dead)
			destroy_chain(&cn, dead);
	}
	return pool_status_idx(h, (uint32_t)idx, out);
}

/* prot_close: return the leases this process holds and destroy its connections. Called without
 * p->lock held. In a forked child that never used the pools, the state is the parent's: forget. */
void pool_local_free(prot_t *p)
{
	if (!p || !p->pools)
		return;
	uint64_t me = prot_self(p)->lease_owner;
	pthread_mutex_lock(&p->lock);
	struct prot_pool_local *pl = local_get(p, me);
	p->pools = NULL;
	pthread_mutex_unlock(&p->lock);
	for (uint32_t i = 0; i < pl->n; i++) {
		struct pool_loc *l = pl->v[i];
		struct pool_ref r;
		bool ok = l->h && ref_at(l->h, l->idx, &r) == 0;
		while (!list_empty(&l->busy)) {
			struct pool_rec *rec = l->busy.next;
			list_del(rec);
			if (ok)
				lease_release(&r, rec->entry, me, NULL);
			list_add_tail(&l->idle, rec);
		}
		struct pool_rec *dead = NULL;
		while (!list_empty(&l->idle)) {
			struct pool_rec *rec = l->idle.next;
			list_del(rec);
			rec->next = dead;
			dead = rec;
		}
		if (l->has_connector)
			destroy_chain(&l->c, dead);
		else
			destroy_chain(&(struct prot_connector){ 0 }, dead); /* conn is NULL: frees only */
		loc_forget(l);
		free(l);
	}
	free(pl->v);
	free(pl);
}
