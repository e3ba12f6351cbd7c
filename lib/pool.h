/* pool.h — what lib/pool.c (the shared leases: lock, waiters, hand-offs, connection slots) gives
 * lib/pool_conn.c (each process's connections and the public pool API) and lib/pool_reclaim.c
 * (dead holders and waiters). Private to the library.
 */
#ifndef PROT_POOL_H
#define PROT_POOL_H

#include "internal.h"

#define POOL_GEN_BITS 40 /* of a lease entry's generation, in a prot_lease */
#define POOL_GEN_MASK ((1ull << POOL_GEN_BITS) - 1)

/* A pool's shared parts, resolved and bounds-checked once per operation. */
struct pool_ref {
	struct prot_pool_slot *s;
	struct prot_lease_slot *lease; /* nlease entries */
	struct prot_waiter_slot *cell; /* wcap cells */
	uint32_t nlease, wcap;         /* wcap: 0 when there are no waiter cells */
	uint64_t now_coarse;           /* the caller's coarse clock reading (0: read one when needed),
	                                  so that no clock is read under the pool lock */
};

/* The configuration words a decision needs (a consistent copy, see seq_read). */
struct pool_cfgv {
	uint64_t size, max_overflow, checkout_timeout_ms, strategy, overflow_ttl_ms, reclaim_ms;
	uint64_t origin_; /* protd's bookkeeping, not used here */
	uint64_t min_idle, idle_timeout_ms, max_lifetime_ms, leak_threshold_ms, max_open;
};
_Static_assert(sizeof(struct pool_cfgv) == 12 * 8, "prefix of struct prot_pool_cfg");
_Static_assert(offsetof(struct prot_pool_cfg, leak_threshold_ms) == offsetof(struct pool_cfgv, leak_threshold_ms),
               "same words as struct prot_pool_cfg");
_Static_assert(offsetof(struct prot_pool_cfg, max_open) == offsetof(struct pool_cfgv, max_open),
               "same words as struct prot_pool_cfg");

/* A lease handed out: entry e at hand-out generation gen. */
struct grant {
	uint32_t e;
	uint64_t gen;
};

/* Resolve pool idx of a validated header; the region sizes are re-checked (untrusted segment). */
#define WAITERS_MAX (1u << 16)

static inline int pool_ref_at(struct prot_shm_header *h, uint32_t idx, struct pool_ref *r)
{
	uint32_t ns = seg_geo(h)->pool_max_slots, nw = seg_geo(h)->pool_max_waiters;
	if (idx >= seg_count(h, REG_POOLS) || ns == 0 ||
	    (uint64_t)(idx + 1) * ns > seg_count(h, REG_LEASES) ||
	    (uint64_t)(idx + 1) * nw > seg_count(h, REG_WAITERS))
		return -PROT_ENOPOOL;
	uint32_t w = nw > WAITERS_MAX ? WAITERS_MAX : nw;
	*r = (struct pool_ref){
		.s = seg_entry(h, REG_POOLS, idx),
		.lease = seg_entry(h, REG_LEASES, idx * ns),
		.cell = nw ? seg_entry(h, REG_WAITERS, idx * nw) : NULL,
		.nlease = ns,
		.wcap = w,
	};
	return 0;
}
static inline int pool_cfg_read(const struct pool_ref *r, struct pool_cfgv *c)
{
	return seq_read(&r->s->seq, &r->s->cfg, c, sizeof *c / 8);
}
/* For the calls that give something back (checkin, close): a torn configuration must not keep a
 * lease from returning. Without it, no overflow is closed early and every entry counts. */
PROT_HIDDEN void pool_cfg_read_or_safe(const struct pool_ref *r, struct pool_cfgv *c);
/* Leases any decision may hand out: size + max_overflow, clamped to the entries that exist. */
static inline uint32_t pool_cfg_cap(const struct pool_ref *r, const struct pool_cfgv *c)
{
	uint64_t cap = c->size + c->max_overflow;
	return cap > r->nlease ? r->nlease : (uint32_t)cap;
}

/* The uncontended path (under p->lock): 0 and *g, or -PROT_EPOOLFULL (take the slow path). */
PROT_HIDDEN int pool_lease_try(const struct pool_ref *r, const struct prot_idv *v,
                               const struct pool_cfgv *c, struct grant *g);
/* Take a lease: 0 and *g, or -PROT_EPOOLFULL (block false), -PROT_ECHECKOUT_TIMEOUT,
 * -PROT_ECAPACITY (waiter queue full). */
PROT_HIDDEN int pool_lease_acquire(struct prot_shm_header *h, uint32_t idx, const struct pool_ref *r,
                                   const struct prot_idv *v, const struct pool_cfgv *c, bool block,
                                   uint64_t deadline, struct grant *g, bool *waited);
/* Return lease entry e (generation gen) held by v->self: 0, or -PROT_ESTALE. */
PROT_HIDDEN int pool_lease_return(const struct pool_ref *r, const struct prot_idv *v, uint32_t e,
                                  uint64_t gen, uint32_t cap, bool *freed, uint32_t *used_before);

/* Connection slots (max_open; lib/pool.c "connection slots"). */
#define POOL_CONN_NONE UINT32_MAX /* a connection opened without a slot (max_open 0, all owned) */
/* A slot for a connection about to open: 0 and *slot, -PROT_EPOOLFULL (block false and max_open
 * reached), -PROT_ECHECKOUT_TIMEOUT. While it waits it asks holders of idle connections to close
 * one (close_req) and calls answer(arg) at each look (this process's own answer). */
PROT_HIDDEN int pool_conn_acquire(const struct pool_ref *r, const struct prot_idv *v, uint64_t max_open,
                                  bool block, uint64_t deadline_ns, void (*answer)(void *), void *arg,
                                  uint32_t *slot);
/* Free connection slot *owner if it still belongs to ident; wakes the openers waiting. */
PROT_HIDDEN void pool_conn_free(struct prot_pool_slot *s, _Atomic uint64_t *owner, uint64_t ident);
/* Connection slots owned (a snapshot). */
PROT_HIDDEN uint32_t pool_conn_open(const struct pool_ref *r);
/* Take one close request, if any: true means the caller closes one idle connection. */
PROT_HIDDEN bool pool_close_req_take(const struct pool_ref *r);

/* ---- between lib/pool.c and lib/pool_reclaim.c: the shared state's encodings and its lock ----- */
enum { CELL_EMPTY = 0, CELL_WAITING = 1, CELL_GRANTED = 2, CELL_CANCELLED = 3 };
#define CELL_STATE(v) ((uint32_t)(v) >> 28)
#define CELL_ENTRY(v) ((uint32_t)(v) & 0x0fffffffu)
#define CELL(st, e) ((uint32_t)(st) << 28 | (uint32_t)(e))
/* pending: entry + 1 | cell << 32; 0 = none */
#define PENDING(e, ci) (((uint64_t)(e) + 1) | (uint64_t)(ci) << 32)

#define RECLAIM_DEFAULT_MS 100u
#define LOCK_RECHECK_NS (2ull * 1000000) /* a sleeper wakes this often to ask if the holder lives */

/* relaxed accessors for the state written under the pool lock (the lock orders them) */
#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define ST(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

static inline uint64_t reclaim_every_ns(const struct pool_cfgv *c)
{
	return (c->reclaim_ms ? c->reclaim_ms : RECLAIM_DEFAULT_MS) * 1000000u;
}

/* Wake every process sleeping on *addr (a shared futex: the word is in a mapping other processes
 * share). */
PROT_HIDDEN void futex_wake_all(_Atomic uint32_t *addr);
#define LOCK_ANON 1u /* a holder without identity (tests driving the algorithm) */

static inline uint64_t plock_me(const struct prot_idv *v)
{
	return v->self ? v->self : LOCK_ANON;
}
static inline bool plock_cas(const struct pool_ref *r, uint64_t from, uint64_t me)
{
	/* acquire: pairs with the release store of plock_drop (or the CAS of a takeover): the state
	 * written under the lock by the previous holder is visible to the next */
	return atomic_compare_exchange_strong_explicit(&r->s->lock, &from, me, memory_order_acquire,
	                                               memory_order_relaxed);
}
/* The lock if it is free at once (a load first: no RMW on a held lock's line). */
static inline bool plock_try(const struct pool_ref *r, uint64_t me)
{
	return atomic_load_explicit(&r->s->lock, memory_order_relaxed) == 0 && plock_cas(r, 0, me);
}
/* The wait of plock_take (lib/pool.c). */
PROT_HIDDEN int plock_take_wait(const struct pool_ref *r, const struct prot_idv *v, uint64_t deadline_ns);
/* Take the lock by deadline_ns: 0, or -PROT_ECHECKOUT_TIMEOUT. A dead holder's lock is taken over
 * and the state repaired before this returns. */
static inline int plock_take(const struct pool_ref *r, const struct prot_idv *v, uint64_t deadline_ns)
{
	return plock_try(r, plock_me(v)) ? 0 : plock_take_wait(r, v, deadline_ns);
}
static inline void plock_drop(const struct pool_ref *r)
{
	/* seq_cst: a release of everything written under the lock, ordered before the load of
	 * lock_sleepers (see plock_take_wait) */
	atomic_store(&r->s->lock, 0);
	if (atomic_load(&r->s->lock_sleepers)) {
		atomic_fetch_add(&r->s->lock_seq, 1);
		futex_wake_all(&r->s->lock_seq);
	}
}
/* Under the lock: entry e leaves its holder prev, to the oldest waiter while the pool has room,
 * else freed (true; *used_before: in_use before, may be NULL). */
PROT_HIDDEN bool release_entry(const struct pool_ref *r, uint32_t e, uint64_t prev, uint32_t cap,
                               uint32_t *used_before);
/* Under the lock: serve waiters from free capacity. */
PROT_HIDDEN void pump(const struct pool_ref *r, uint32_t cap);
/* lib/pool_reclaim.c: a client's reclaim pass of pool idx while protd is down (at most one per
 * half reclaim interval across processes), when it needs a lease. */
PROT_HIDDEN void client_reclaim(struct prot_shm_header *h, uint32_t idx, const struct pool_ref *r,
                                const struct prot_idv *v, const struct pool_cfgv *c, uint64_t deadline_ns);

/* Rows prot_pool_holders fills at most (holders beyond are counted, not listed). */
#define POOL_HOLDERS_MAX 256

#endif
