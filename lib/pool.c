/* pool.c — the connection pool (poolboy for many processes), shared part: leases, the FIFO waiter
 * queue and hand-offs in the segment, under a pool lock whose holder's death the kernel reports;
 * the connection slots (max_open); checkout, checkin and the status snapshot. Callers:
 * lib/pool_conn.c (through lib/pool.h), the facade (pool_cfg_snap), protctl (pool_status_idx).
 * Dead holders and waiters, leak reports and the holders' view: lib/pool_reclaim.c.
 *
 * SHARED STATE (per pool; lib/layout.h). Everything but a waiter's own cell steps is written under
 * the pool lock.
 *   lease[e]   owner: 0 free, else the holder's identity (lib/ident.c). gen: bumped at every
 *              hand-out, so a lease (pool, e, gen) is valid exactly while that hand-out lasts.
 *   in_use     entries with an owner.
 *   cell[i]    one waiter: word = state << 28 | entry, ident = the waiter's identity, ticket = its
 *              order of arrival. EMPTY or CANCELLED -> WAITING (queued, under the lock) ->
 *              GRANTED|e (a giver handed it entry e, under the lock) -> EMPTY (the waiter, having
 *              read its lease; no lock). Or WAITING -> CANCELLED (the waiter timed out: its own CAS,
 *              no lock; a CANCELLED cell is free for the next waiter that queues).
 *   tail       the next ticket; nwait: cells WAITING (decremented by the waiter's own cancel too).
 *   pending    the hand-off in progress (entry, cell), so that a dead giver's step is completed.
 *
 * THE LOCK. lock = 0 or the holder's identity, taken by CAS (acquire) and dropped by a store
 * (release). A taker that finds it held sleeps on lock_seq (futex) and, once it has seen the same
 * holder across a sleep, asks the kernel whether that holder lives (ident_alive: its record lock;
 * a slow or stopped holder is alive and keeps the lock). A dead holder's lock is taken over by CAS
 * on the very value it held, so one taker wins, and that taker repairs what the holder may have
 * left half-done (pool_repair): the writes under the lock are ordered so that every prefix is
 * repaired by completing the pending hand-off and recomputing in_use from the entries.
 *
 * INVARIANTS (between critical sections)
 *  1. in_use = entries with an owner <= max(cap, in_use before a reload) <= pool_max_slots: a
 *     checkout takes an entry only when in_use < cap; a hand-off moves a lease without changing it.
 *  2. FIFO: a lease freed while anyone waits goes to the WAITING cell of the oldest ticket (if
 *     in_use <= cap); a newcomer queues whenever anyone waits. Cancelled waiters take no place:
 *     pool_max_waiters processes can wait at once.
 *  3. A GRANTED|e cell's waiter owns e: the giver writes lease[e] (owner, gen) and then CASes the
 *     cell (release), which the waiter acquires before it reads gen.
 *  4. No wake-up is lost: a waiter queues and a giver grants under the same lock, and the grant is
 *     a CAS on the cell word the waiter sleeps on, followed by FUTEX_WAKE.
 *  5. A timeout is the waiter's CAS WAITING -> CANCELLED. When it fails a grant won the race: the
 *     checkout succeeds (the lease was handed out before the deadline was observed).
 *  6. Death: a dead holder's entries and a dead waiter's cells are reclaimed (lib/pool_reclaim.c
 *     argues it).
 *
 * CONNECTION SLOTS (max_open: the connections open across processes) are with the leases, below
 * ("connection slots"). LOCAL STATE (each process's connectors and connections): lib/pool_conn.c;
 * the public API: lib/pool_conn.c (checkout, checkin) and lib/pool_api.c.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pool.h"

/* The encodings of cells and of the pending hand-off are in lib/pool.h (lib/pool_reclaim.c reads
 * them too). */
#define LOCK_SPINS 100

_Static_assert(sizeof(struct pool_cfgv) <= sizeof(struct cfg_snap), "a pool's words fit a snapshot");

int pool_cfg_snap(struct prot_shm_header *h, uint32_t idx, struct cfg_snap *out)
{
	struct pool_ref r;
	int rc = pool_ref_at(h, idx, &r);
	return rc < 0 ? rc : pool_cfg_read(&r, (struct pool_cfgv *)(void *)out->w);
}

/* For the calls that give something back (checkin, close): a torn configuration must not keep a
 * lease from returning. Without it, no overflow is closed early and every entry counts. */
void pool_cfg_read_or_safe(const struct pool_ref *r, struct pool_cfgv *c)
{
	if (pool_cfg_read(r, c) < 0)
		*c = (struct pool_cfgv){ .size = r->nlease };
}

/* ---- futex (shared, not private: the word is in a mapping other processes share) ------------ */
void futex_wake_all(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
/* Sleep while *addr == val, until deadline_ns (CLOCK_MONOTONIC, absolute). */
static void futex_wait_until(_Atomic uint32_t *addr, uint32_t val, uint64_t deadline_ns)
{
	struct timespec ts = { (time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u) };
	/* BITSET takes an absolute CLOCK_MONOTONIC deadline: no drift across spurious wake-ups. */
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET, val, &ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

/* ---- the pool lock ----------------------------------------------------------------------------- */
static bool holder_alive(const struct prot_idv *v, uint64_t o)
{
	return ident_inc(o) == 0 || ident_alive(v, o); /* LOCK_ANON: trusted (in-process tests) */
}

static void pool_repair(const struct pool_ref *r);

/* plock_take's wait (lib/pool.h): spin, then sleep, asking about a holder seen across a sleep. */
int plock_take_wait(const struct pool_ref *r, const struct prot_idv *v, uint64_t deadline_ns)
{
	uint64_t me = plock_me(v), seen = 0;
	for (int i = 0; i < LOCK_SPINS; i++) {
		if (plock_try(r, me))
			return 0;
		prot_cpu_relax();
	}
	for (;;) {
		uint64_t o = atomic_load_explicit(&r->s->lock, memory_order_relaxed);
		if (o == 0) {
			if (plock_cas(r, 0, me))
				return 0;
			continue;
		}
		/* The kernel is asked only about a holder seen across a whole sleep: the lock is held
		 * for nanoseconds, and the question costs a system call. */
		if (o == seen && !holder_alive(v, o)) {
			if (plock_cas(r, o, me)) {
				pool_repair(r);
				return 0;
			}
			continue;
		}
		uint64_t now = prot_now_ns();
		if (now >= deadline_ns)
			return -PROT_ECHECKOUT_TIMEOUT;
		/* seq_cst, with plock_drop's: either it sees us sleeping and bumps lock_seq, or we see
		 * its release of the lock and do not sleep */
		uint32_t seq = atomic_load(&r->s->lock_seq);
		atomic_fetch_add(&r->s->lock_sleepers, 1);
		if (atomic_load(&r->s->lock) == o)
			futex_wait_until(&r->s->lock_seq, seq,
			                 deadline_ns - now < LOCK_RECHECK_NS ? deadline_ns : now + LOCK_RECHECK_NS);
		atomic_fetch_sub(&r->s->lock_sleepers, 1);
		seen = o;
	}
}


/* ---- state under the lock (relaxed accessors: the lock orders them) ----------------------- */

/* The WAITING cell of the oldest ticket, or wcap when none. Waiters queue in the free cell at or
 * after tail mod W and are served oldest first, so they lie mostly in ticket order around the
 * ring from just after the last one served (wscan): the search starts there and stops once it has
 * seen nwait waiting cells, i.e. all of them. */
static uint32_t oldest_waiting(const struct pool_ref *r)
{
	uint32_t tail = LD(r->s->tail), best = r->wcap, best_age = 0, seen = 0, want = LD(r->s->nwait);
	uint32_t start = LD(r->s->wscan) % (r->wcap ? r->wcap : 1);
	for (uint32_t k = 0; k < r->wcap && seen < want; k++) {
		uint32_t i = (start + k) % r->wcap;
		/* acquire: pairs with the release that queued it (its ident and ticket) */
		if (CELL_STATE(atomic_load_explicit(&r->cell[i].word, memory_order_acquire)) != CELL_WAITING)
			continue;
		seen++;
		uint32_t age = tail - LD(r->cell[i].ticket); /* tickets wrap: ages do not */
		if (best == r->wcap || age > best_age) {
			best = i;
			best_age = age;
		}
	}
	return best;
}

static inline void lease_assign(const struct pool_ref *r, uint32_t e, uint64_t who)
{
	ST(r->lease[e].gen, LD(r->lease[e].gen) + 1);
	/* for leak detection and the holders' view; the caller's clock, not one read under the lock */
	ST(r->lease[e].since_ns, r->now_coarse ? r->now_coarse : prot_now_coarse_ns());
	/* release: with the gen store, visible to a waiter that acquires its GRANTED cell */
	atomic_store_explicit(&r->lease[e].owner, who, memory_order_release);
}

static void high_water(const struct pool_ref *r, uint32_t used)
{
	if (used > LD(r->s->high_water))
		ST(r->s->high_water, used); /* a statistic, written under the lock */
}

/* Give entry e, owned by `prev` (0: a free entry, not counted in in_use), to the oldest waiting
 * ticket. true when granted. Out of line: only a pool someone waits on gets here. */
static __attribute__((noinline)) bool grant_next(const struct pool_ref *r, uint32_t e, uint64_t prev)
{
	while (LD(r->s->nwait) > 0) {
		uint32_t ci = oldest_waiting(r);
		if (ci == r->wcap)
			return false; /* nwait counted a cancel not yet subtracted */
		_Atomic uint32_t *cw = &r->cell[ci].word;
		uint32_t w = CELL(CELL_WAITING, 0);
		uint64_t who = LD(r->cell[ci].ident);
		ST(r->s->pending, PENDING(e, ci));
		lease_assign(r, e, who);
		/* release: the lease (owner, gen) is complete before the waiter sees GRANTED */
		if (atomic_compare_exchange_strong_explicit(cw, &w, CELL(CELL_GRANTED, e),
		                                            memory_order_release, memory_order_acquire)) {
			ST(r->s->pending, 0);
			ST(r->s->wscan, ci + 1);
			atomic_fetch_sub_explicit(&r->s->nwait, 1, memory_order_relaxed);
			if (prev == 0)
				ST(r->s->in_use, LD(r->s->in_use) + 1);
			futex_wake_all(cw);
			return true;
		}
		/* it cancelled in between: the entry goes back, the next one is asked */
		atomic_store_explicit(&r->lease[e].owner, prev, memory_order_release);
		ST(r->s->pending, 0);
	}
	return false;
}

/* Entry e leaves its holder `prev`: to the oldest waiter while the pool has room, else freed.
 * Returns true when it was freed (*used_before: in_use before). */
bool release_entry(const struct pool_ref *r, uint32_t e, uint64_t prev, uint32_t cap,
                   uint32_t *used_before)
{
	uint32_t used = LD(r->s->in_use);
	if (used <= cap && LD(r->s->nwait) > 0 && grant_next(r, e, prev)) /* nwait: grant_next's own test, inline */
		return false;
	/* release: a later taker of e (under the lock) needs nothing from us, but readers outside it
	 * (reclaim's scan) see a consistent owner */
	atomic_store_explicit(&r->lease[e].owner, 0, memory_order_release);
	ST(r->s->in_use, used ? used - 1 : 0);
	if (used_before)
		*used_before = used;
	return true;
}

/* Take a free entry for `who`. */
static inline __attribute__((always_inline)) int take_free(const struct pool_ref *r, uint64_t who, uint32_t *e_out)
{
	uint32_t e = LD(r->s->hint); /* from the segment: bounded before use */
	if (e >= r->nlease)
		e = 0;
	for (uint32_t i = 0; i < r->nlease; i++, e = e + 1 == r->nlease ? 0 : e + 1) {
		if (LD(r->lease[e].owner) == 0) {
			lease_assign(r, e, who);
			uint32_t used = LD(r->s->in_use) + 1;
			ST(r->s->in_use, used);
			ST(r->s->hint, e + 1);
			high_water(r, used);
			*e_out = e;
			return 0;
		}
	}
	return -PROT_ECORRUPT; /* in_use disagreed with the entries: a hostile writer */
}

/* Serve waiters from free capacity (after a reload grew the pool, or a shrink ended). */
void pump(const struct pool_ref *r, uint32_t cap)
{
	while (LD(r->s->nwait) > 0 && LD(r->s->in_use) < cap) {
		uint32_t e = r->nlease;
		for (uint32_t i = 0; i < r->nlease && e == r->nlease; i++)
			if (LD(r->lease[i].owner) == 0)
				e = i;
		if (e == r->nlease || !grant_next(r, e, 0))
			return;
		high_water(r, LD(r->s->in_use));
	}
}

/* After taking the lock over from a dead holder: complete its hand-off if it was between writing
 * the lease and granting the cell (a hand-off whose waiter cancelled meanwhile frees the entry:
 * its previous owner was the dead holder itself, a dead holder being reclaimed, or nobody), then
 * recount in_use and the waiting cells. */
static void pool_repair(const struct pool_ref *r)
{
	uint64_t pd = LD(r->s->pending);
	uint32_t e = (uint32_t)pd - 1, ci = (uint32_t)(pd >> 32);
	if (pd && e < r->nlease && ci < r->wcap) {
		_Atomic uint32_t *cw = &r->cell[ci].word;
		uint32_t w = atomic_load_explicit(cw, memory_order_acquire);
		uint64_t who = LD(r->cell[ci].ident);
		/* WAITING: the giver died between the lease and the grant: grant it. CANCELLED: the
		 * waiter left first, and the entry's previous owner was the dead giver itself, a dead
		 * holder being reclaimed, or nobody: free it. GRANTED or EMPTY: the hand-off completed
		 * (and maybe was consumed), or the giver had already put the entry back. */
		if (CELL_STATE(w) == CELL_WAITING && LD(r->lease[e].owner) == who) {
			if (atomic_compare_exchange_strong_explicit(cw, &w, CELL(CELL_GRANTED, e),
			                                            memory_order_release, memory_order_relaxed))
				futex_wake_all(cw);
		} else if (CELL_STATE(w) == CELL_CANCELLED && LD(r->lease[e].owner) == who) {
			atomic_store_explicit(&r->lease[e].owner, 0, memory_order_release);
		}
	}
	ST(r->s->pending, 0);
	uint32_t used = 0;
	for (uint32_t i = 0; i < r->nlease; i++)
		used += LD(r->lease[i].owner) != 0;
	ST(r->s->in_use, used);
	uint32_t waiting = 0;
	for (uint32_t i = 0; i < r->wcap; i++)
		waiting += CELL_STATE(atomic_load_explicit(&r->cell[i].word, memory_order_relaxed)) == CELL_WAITING;
	ST(r->s->nwait, waiting);
}

/* ---- connection slots (max_open) ------------------------------------------------------------
 * Entry e of the pool's lease table is also its connection slot e: conn_owner = 0 free, else the
 * identity of a process that has one connection open to the backend on it (idle or busy). The
 * slots are independent of the leases: a process keeps a slot for each connection it keeps idle.
 *   take   with max_open set: under the pool lock, count the slots owned and CAS a free one only
 *          while fewer than max_open are; so the count never passes max_open (a reload that lowers
 *          it lets the surplus close as it goes, and no new one opens until then). Unlimited: a
 *          CAS on any free slot, no lock; when all pool_max_slots are owned the connection opens
 *          without one (not counted by status).
 *   free   a CAS owner -> 0 by the process that closes the connection, or by a reclaim pass on a
 *          dead owner's identity (ident_alive; identities are never reused, so it happens once);
 *          then conn_seq is bumped and the openers sleeping on it are woken.
 *   ask    an opener that finds max_open reached adds one to close_req and sleeps on conn_seq
 *          (bounded by its checkout deadline, rechecking every LOCK_RECHECK_NS * 5). Each process,
 *          at its next pool call on that pool (checkout, checkin, status, register), takes one
 *          request (CAS close_req n -> n - 1) per idle connection it then closes. The opener asks
 *          again when close_req fell to 0 and it still has no slot; it withdraws one request when it
 *          is done (served, timed out). Requests are a count, not per opener: a withdrawal may take
 *          another opener's, which asks again on its next look; a dead opener's request closes at
 *          most one idle connection too many. THE BOUND: a process that makes no pool call never
 *          answers, and its idle connections keep their slots until it calls, closes or dies. */
void pool_conn_free(struct prot_pool_slot *s, _Atomic uint64_t *owner, uint64_t ident)
{
	/* acq_rel: the slot is free only after the connection was destroyed (the caller's order) */
	if (!atomic_compare_exchange_strong_explicit(owner, &ident, 0, memory_order_acq_rel, memory_order_relaxed))
		return;
	atomic_fetch_add(&s->conn_seq, 1); /* seq_cst, with the sleeper's count (as the lock's) */
	if (atomic_load(&s->conn_sleepers))
		futex_wake_all(&s->conn_seq);
}

uint32_t pool_conn_open(const struct pool_ref *r)
{
	uint32_t n = 0;
	for (uint32_t e = 0; e < r->nlease; e++)
		n += atomic_load_explicit(&r->lease[e].conn_owner, memory_order_relaxed) != 0;
	return n;
}

static int conn_cas(const struct pool_ref *r, uint64_t me, uint32_t *slot)
{
	for (uint32_t e = 0; e < r->nlease; e++) {
		uint64_t z = 0;
		if (atomic_load_explicit(&r->lease[e].conn_owner, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong_explicit(&r->lease[e].conn_owner, &z, me,
		                                            memory_order_acq_rel, memory_order_relaxed)) {
			*slot = e;
			return 0;
		}
	}
	return -EAGAIN;
}

/* One try: 0 and *slot (POOL_CONN_NONE: unlimited and none free), -EAGAIN (max_open reached), or
 * -PROT_ECHECKOUT_TIMEOUT (the lock, by deadline). */
static int conn_try(const struct pool_ref *r, const struct prot_idv *v, uint64_t max_open,
                    uint64_t deadline_ns, uint32_t *slot)
{
	if (max_open == 0) {
		if (conn_cas(r, v->self, slot) < 0)
			*slot = POOL_CONN_NONE;
		return 0;
	}
	int rc = plock_take(r, v, deadline_ns);
	if (rc < 0)
		return rc;
	rc = pool_conn_open(r) < max_open ? conn_cas(r, v->self, slot) : -EAGAIN;
	plock_drop(r);
	return rc;
}

static void close_req_withdraw(const struct pool_ref *r)
{
	uint32_t n = atomic_load_explicit(&r->s->close_req, memory_order_relaxed);
	while (n && !atomic_compare_exchange_weak_explicit(&r->s->close_req, &n, n - 1, memory_order_relaxed,
	                                                   memory_order_relaxed))
		;
}

bool pool_close_req_take(const struct pool_ref *r)
{
	uint32_t n = atomic_load_explicit(&r->s->close_req, memory_order_relaxed);
	while (n) {
		if (atomic_compare_exchange_weak_explicit(&r->s->close_req, &n, n - 1, memory_order_relaxed,
		                                          memory_order_relaxed))
			return true;
	}
	return false;
}

int pool_conn_acquire(const struct pool_ref *r, const struct prot_idv *v, uint64_t max_open, bool block,
                      uint64_t deadline_ns, void (*answer)(void *), void *arg, uint32_t *slot)
{
	bool asked = false;
	for (;;) {
		if (answer)
			answer(arg); /* this process's own idle connections answer like anyone's */
		uint32_t seq = atomic_load(&r->s->conn_seq);
		int rc = conn_try(r, v, max_open, deadline_ns, slot);
		if (rc != -EAGAIN) {
			if (asked)
				close_req_withdraw(r);
			return rc;
		}
		uint64_t now = prot_now_ns();
		if (!block || now >= deadline_ns) {
			if (asked)
				close_req_withdraw(r);
			return block ? -PROT_ECHECKOUT_TIMEOUT : -PROT_EPOOLFULL;
		}
		if (!asked || atomic_load_explicit(&r->s->close_req, memory_order_relaxed) == 0) {
			atomic_fetch_add_explicit(&r->s->close_req, 1, memory_order_relaxed);
			asked = true;
		}
		uint64_t wake = now + 5 * LOCK_RECHECK_NS;
		atomic_fetch_add(&r->s->conn_sleepers, 1);
		if (atomic_load(&r->s->conn_seq) == seq)
			futex_wait_until(&r->s->conn_seq, seq, wake < deadline_ns ? wake : deadline_ns);
		atomic_fetch_sub(&r->s->conn_sleepers, 1);
	}
}

/* Cells waiting: what status reports. A snapshot without the lock. */
static uint32_t live_waiters(const struct pool_ref *r)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < r->wcap; i++)
		n += CELL_STATE(atomic_load_explicit(&r->cell[i].word, memory_order_relaxed)) == CELL_WAITING;
	return n;
}

/* ---- checkout and checkin ----------------------------------------------------------------------- */
static void note_exhausted(struct prot_shm_header *h, const struct pool_ref *r, uint32_t idx)
{
	if (!h)
		return;
	uint64_t now = prot_now_coarse_ns();
	uint64_t last = atomic_load_explicit(&r->s->exhausted_ns, memory_order_relaxed);
	/* relaxed: only rate-limits the event to one a second per pool */
	if ((last == 0 || now - last >= 1000000000u) &&
	    atomic_compare_exchange_strong_explicit(&r->s->exhausted_ns, &last, now, memory_order_relaxed,
	                                            memory_order_relaxed))
		prot_event_emit(h, EV_POOL_EXHAUSTED, idx, r->s->name, LD(r->s->in_use), LD(r->s->nwait));
}

enum { CO_TAKEN = 0, CO_QUEUED = 1 };

/* Under the lock: an entry for `me` when nobody waits and the pool has room (CO_TAKEN), else
 * -PROT_EPOOLFULL (or take_free's -PROT_ECORRUPT). */
static inline __attribute__((always_inline)) int take_if_room(const struct pool_ref *r, uint32_t cap,
                                                              uint64_t me, struct grant *g)
{
	if (LD(r->s->nwait) != 0 || LD(r->s->in_use) >= cap)
		return -PROT_EPOOLFULL;
	int rc = take_free(r, me, &g->e);
	if (rc == 0)
		g->gen = LD(r->lease[g->e].gen);
	return rc;
}

/* Under the lock: take an entry (CO_TAKEN), queue in cell *ci (CO_QUEUED), or refuse. Inlined: in
 * pool_lease_try (block false) it is the take alone. */
static inline __attribute__((always_inline)) int checkout_locked(const struct pool_ref *r, uint32_t cap, uint64_t me, bool block,
                           struct grant *g, uint32_t *ci)
{
	if (LD(r->s->nwait) != 0)
		pump(r, cap);
	int rc = take_if_room(r, cap, me, g);
	if (rc != -PROT_EPOOLFULL)
		return rc;
	if (!block)
		return -PROT_EPOOLFULL;
	uint32_t tail = LD(r->s->tail);
	for (uint32_t k = 0; k < r->wcap; k++) {
		uint32_t i = (tail + k) % r->wcap;
		struct prot_waiter_slot *c = &r->cell[i];
		uint32_t st = CELL_STATE(atomic_load_explicit(&c->word, memory_order_acquire));
		if (st != CELL_EMPTY && st != CELL_CANCELLED)
			continue; /* waiting, or granted and not yet taken */
		ST(c->ident, me);
		ST(c->ticket, tail);
		/* release: ident and ticket are written before the cell reads WAITING */
		atomic_store_explicit(&c->word, CELL(CELL_WAITING, 0), memory_order_release);
		atomic_fetch_add_explicit(&r->s->nwait, 1, memory_order_relaxed);
		ST(r->s->tail, tail + 1);
		*ci = i;
		pump(r, cap); /* a free lease with only a cancel in flight ahead of us: it is ours */
		return CO_QUEUED;
	}
	return -PROT_ECAPACITY;
}

/* A granted waiter reads its lease and frees its cell. */
static int grant_take(const struct pool_ref *r, _Atomic uint32_t *cw, uint32_t w, uint64_t me,
                      struct grant *g)
{
	uint32_t e = CELL_ENTRY(w);
	if (e >= r->nlease || atomic_load_explicit(&r->lease[e].owner, memory_order_acquire) != me)
		return -PROT_ECORRUPT;
	g->e = e;
	g->gen = atomic_load_explicit(&r->lease[e].gen, memory_order_relaxed);
	/* release: our reads of the lease happen before the cell can be reused */
	atomic_store_explicit(cw, CELL(CELL_EMPTY, 0), memory_order_release);
	return 0;
}

/* Sleep on cell ci until granted (0), timed out (-PROT_ECHECKOUT_TIMEOUT, holding nothing). While
 * protd is down, wake each reclaim interval to reclaim for everyone. */
static int ticket_wait(struct prot_shm_header *h, uint32_t idx, const struct pool_ref *r,
                       const struct prot_idv *v, const struct pool_cfgv *c, uint32_t ci,
                       uint64_t deadline, struct grant *g)
{
	_Atomic uint32_t *cw = &r->cell[ci].word;
	bool protd_up = v->fd < 0 || protd_alive(v);
	uint32_t st0 = atomic_load_explicit(&r->s->state, memory_order_acquire);
	for (;;) {
		/* acquire: pairs with the giver's release CAS to GRANTED (the lease is complete) */
		uint32_t w = atomic_load_explicit(cw, memory_order_acquire);
		if (CELL_STATE(w) == CELL_GRANTED)
			return grant_take(r, cw, w, v->self, g);
		if (CELL_STATE(w) != CELL_WAITING)
			/* only a dead waiter's cell, or every cell of a removed pool (pool_retire_waiters), is
			 * cancelled by others; a recycled slot's cells are zeroed */
			return SLOT_STATE(atomic_load_explicit(&r->s->state, memory_order_acquire)) != SLOT_LIVE ||
			               atomic_load_explicit(&r->s->state, memory_order_relaxed) != st0
			           ? -PROT_ENOPOOL
			           : -PROT_ECORRUPT;
		if (atomic_load_explicit(&r->s->state, memory_order_acquire) != st0) {
			/* the pool was removed (or recycled): leave the queue; acq_rel as the timeout's */
			if (atomic_compare_exchange_strong_explicit(cw, &w, CELL(CELL_CANCELLED, 0),
			                                            memory_order_acq_rel, memory_order_acquire)) {
				atomic_fetch_sub_explicit(&r->s->nwait, 1, memory_order_relaxed);
				return -PROT_ENOPOOL;
			}
			continue;
		}
		uint64_t now = prot_now_ns();
		if (now >= deadline) {
			/* acq_rel: a failed CAS acquires the grant that won */
			if (atomic_compare_exchange_strong_explicit(cw, &w, CELL(CELL_CANCELLED, 0),
			                                            memory_order_acq_rel, memory_order_acquire)) {
				atomic_fetch_sub_explicit(&r->s->nwait, 1, memory_order_relaxed);
				return -PROT_ECHECKOUT_TIMEOUT;
			}
			continue;
		}
		uint64_t wake = deadline;
		if (!protd_up && now + reclaim_every_ns(c) < deadline)
			wake = now + reclaim_every_ns(c);
		futex_wait_until(cw, w, wake);
		if (!protd_up) {
			client_reclaim(h, idx, r, v, c, deadline);
			protd_up = protd_alive(v);
		}
	}
}

/* The uncontended path, called under p->lock: the pool lock if it is free at once, an entry if
 * one is free and nobody waits. 0, or -PROT_EPOOLFULL (take the slow path). */
int pool_lease_try(const struct pool_ref *r, const struct prot_idv *v, const struct pool_cfgv *c,
                     struct grant *g)
{
	if (!plock_try(r, v->self))
		return -PROT_EPOOLFULL;
	uint32_t ci;
	int rc = checkout_locked(r, pool_cfg_cap(r, c), v->self, false, g, &ci);
	plock_drop(r);
	return rc == CO_TAKEN ? 0 : -PROT_EPOOLFULL;
}

/* Take a lease: 0 and *g, or -PROT_EPOOLFULL (block false), -PROT_ECHECKOUT_TIMEOUT,
 * -PROT_ECAPACITY (waiter queue full). */
int pool_lease_acquire(struct prot_shm_header *h, uint32_t idx, const struct pool_ref *r,
                         const struct prot_idv *v, const struct pool_cfgv *c, bool block,
                         uint64_t deadline, struct grant *g, bool *waited)
{
	uint32_t cap = pool_cfg_cap(r, c), t = 0;
	/* a non-blocking checkout still waits for the lock, briefly: its holder is in a few
	 * instructions, or dead and then taken over */
	uint64_t lock_by = block ? deadline : prot_now_ns() + LOCK_RECHECK_NS;
	for (int pass = 0;; pass++) {
		if (plock_take(r, v, lock_by) < 0)
			return block ? -PROT_ECHECKOUT_TIMEOUT : -PROT_EPOOLFULL;
		int rc = checkout_locked(r, cap, v->self, block, g, &t);
		plock_drop(r);
		if (rc == CO_TAKEN)
			return 0;
		if (pass == 0 && (rc == -PROT_EPOOLFULL || rc == CO_QUEUED))
			note_exhausted(h, r, idx);
		if (rc == -PROT_EPOOLFULL && pass == 0 && v->fd >= 0 && !protd_alive(v)) {
			client_reclaim(h, idx, r, v, c, lock_by); /* dead holders may be all that fills it */
			continue;
		}
		if (rc != CO_QUEUED)
			return rc;
		if (waited)
			*waited = true;
		if (pass == 0)
			client_reclaim(h, idx, r, v, c, deadline);
		return ticket_wait(h, idx, r, v, c, t, deadline, g);
	}
}

/* Return lease entry e (generation gen) held by `me`: 0, or -PROT_ESTALE when it is not held so. */
int pool_lease_return(const struct pool_ref *r, const struct prot_idv *v, uint32_t e, uint64_t gen,
                        uint32_t cap, bool *freed, uint32_t *used_before)
{
	if (e >= r->nlease)
		return -PROT_ESTALE;
	plock_take(r, v, UINT64_MAX);
	int rc = -PROT_ESTALE;
	if (LD(r->lease[e].owner) == v->self && (LD(r->lease[e].gen) & POOL_GEN_MASK) == (gen & POOL_GEN_MASK)) {
		*freed = release_entry(r, e, v->self, cap, used_before);
		rc = 0;
	}
	plock_drop(r);
	return rc;
}

int pool_status_idx(struct prot_shm_header *h, uint32_t idx, struct prot_pool_status *out)
{
	struct pool_ref r;
	int rc = pool_ref_at(h, idx, &r);
	if (rc < 0)
		return rc;
	uint32_t st = atomic_load_explicit(&r.s->state, memory_order_acquire); /* pairs with protd */
	if (SLOT_STATE(st) != SLOT_LIVE)
		return -PROT_ENOPOOL;
	struct pool_cfgv c;
	if ((rc = pool_cfg_read(&r, &c)) < 0)
		return rc;
	struct prot_pool_status s = { 0 };
	memcpy(s.name, r.s->name, sizeof s.name);
	s.name[sizeof s.name - 1] = 0;
	s.size = (uint32_t)c.size;
	s.max_overflow = (uint32_t)c.max_overflow;
	s.in_use = atomic_load_explicit(&r.s->in_use, memory_order_relaxed); /* a snapshot */
	s.overflow_in_use = s.in_use > s.size ? s.in_use - s.size : 0;
	/* poolboy's status: idle workers, and ready / overflow / full */
	s.idle = s.in_use < s.size ? s.size - s.in_use : 0;
	s.state = s.idle ? PROT_POOL_READY
	          : (uint64_t)s.in_use < c.size + c.max_overflow ? PROT_POOL_OVERFLOW : PROT_POOL_FULL;
	s.min_idle = (uint32_t)c.min_idle;
	s.idle_timeout_ms = c.idle_timeout_ms;
	s.max_lifetime_ms = c.max_lifetime_ms;
	s.leak_threshold_ms = c.leak_threshold_ms;
	s.waiting = r.cell ? live_waiters(&r) : 0;
	s.checkout_timeout_ms = c.checkout_timeout_ms;
	s.overflow_ttl_ms = c.overflow_ttl_ms;
	s.strategy = (uint32_t)c.strategy;
	s.checkouts = atomic_load_explicit(&r.s->checkouts, memory_order_relaxed);
	s.timeouts = atomic_load_explicit(&r.s->timeouts, memory_order_relaxed);
	s.reclaims = atomic_load_explicit(&r.s->reclaims, memory_order_relaxed);
	s.high_water = (uint32_t)atomic_load_explicit(&r.s->high_water, memory_order_relaxed);
	s.max_open = (uint32_t)c.max_open;
	s.open = pool_conn_open(&r);
	*out = s;
	return 0;
}
