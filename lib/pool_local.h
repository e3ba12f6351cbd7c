/* pool_local.h — what lib/pool_conn.c (this process's records of a pool's connections, checkout
 * and checkin) gives lib/pool_api.c (register, status): the records, under p->lock (their rules:
 * lib/pool_conn.c's opening comment). Private to the library.
 */
#ifndef PROT_POOL_LOCAL_H
#define PROT_POOL_LOCAL_H

#include "pool.h"

struct pool_rec {
	struct pool_rec *prev, *next;
	void *conn;          /* NULL: none (no connector, or not made yet) */
	uint64_t expires_ns; /* an idle overflow connection is destroyed after this; 0: kept */
	uint64_t born_ns;    /* when conn was made (max_lifetime); coarse clock */
	uint64_t idle_ns;    /* when it was last parked idle (idle_timeout) */
	uint32_t entry;      /* busy: the lease entry it goes with ... */
	uint64_t gen;        /* ... and that entry's generation */
	struct pool_loc *loc;
	/* the connection slot conn holds (lib/pool.c "connection slots"; max_open): NULL none, else
	 * the slot's owner word, owned by identity cown, in pool slot cps of generation cgen */
	_Atomic uint64_t *cslot;
	struct prot_pool_slot *cps;
	uint64_t cown;
	uint32_t cgen;
};

struct pool_loc {
	char name[PROT_NAME_BYTES];
	struct prot_shm_header *h; /* the mapping ref is a slot of */
	struct slot_ref ref;       /* the pool's slot as last resolved (lib/resolve.c) */
	bool has_connector;
	struct prot_connector c;
	struct pool_rec idle, busy; /* circular lists with sentinels; idle oldest first */
	struct pool_rec *spare;     /* unused records, singly linked */
	uint32_t hint;              /* lease entry to try first */
	uint64_t min_idle, idle_timeout_ns, max_life_ns; /* the pool's, as last read */
	bool lingering; /* an idle record may have expires_ns set: false proves none has (only
	                   rec_return sets it, and only on a record it parks) */
};

struct prot_pool_local {
	uint32_t epoch; /* p->fork_epoch of the process this state belongs to */
	uint32_t n, cap;
	struct pool_loc **v;
};

static inline void list_init(struct pool_rec *s)
{
	s->prev = s->next = s;
}
static inline bool list_empty(const struct pool_rec *s)
{
	return s->next == s;
}
static inline void list_del(struct pool_rec *r)
{
	r->prev->next = r->next;
	r->next->prev = r->prev;
	r->prev = r->next = r;
}
static inline void list_add_tail(struct pool_rec *s, struct pool_rec *r)
{
	r->prev = s->prev;
	r->next = s;
	s->prev->next = r;
	s->prev = r;
}

/* The slow part of pool_local_get: make the state, or forget one inherited through fork(). */
PROT_HIDDEN struct prot_pool_local *pool_local_make(prot_t *p);
/* The local state of the calling process, NULL on ENOMEM (a state inherited through fork() is
 * forgotten here: its leases and connections are the parent's). */
static inline struct prot_pool_local *pool_local_get(prot_t *p)
{
	struct prot_pool_local *pl = p->pools;
	return likely(pl && pl->epoch == p->fork_epoch) ? pl : pool_local_make(p);
}
/* The loc of pool `name`; add: make it when missing (NULL on ENOMEM). */
PROT_HIDDEN struct pool_loc *pool_loc_by_name(struct prot_pool_local *pl, const char *name, bool add);
/* The local state of the pool in slot ref of h (resolved by the caller, lib/resolve.c; name: the
 * caller's name of it, or NULL): the loc last bound to that very slot and state word, else
 * (pool_loc_bind) the loc of its name, now bound to ref. 0 and *out, -PROT_ENOPOOL (the slot
 * moved on), -ENOMEM. Under p->lock. */
PROT_HIDDEN int pool_loc_bind(struct prot_pool_local *pl, struct prot_shm_header *h,
                              const struct slot_ref *ref, const char *name, struct pool_loc **out);
static inline int pool_loc_of(struct prot_pool_local *pl, struct prot_shm_header *h,
                              const struct slot_ref *ref, const char *name, struct pool_loc **out)
{
	for (uint32_t i = 0; i < pl->n; i++) {
		struct pool_loc *l = pl->v[i];
		if (l->h == h && l->ref.idx == ref->idx && l->ref.state == ref->state) {
			*out = l;
			return 0;
		}
	}
	return pool_loc_bind(pl, h, ref, name, out);
}
/* Remember the connection settings of the pool's configuration c. */
PROT_HIDDEN void pool_loc_settings(struct pool_loc *l, const struct pool_cfgv *c);
/* Can an idle connection of l run out of time (a timer set, or one lingering)? If not, the idle
 * check has nothing to do, and needs no clock. */
static inline bool pool_loc_timed(const struct pool_loc *l)
{
	return l->idle_timeout_ns || l->max_life_ns || l->lingering;
}
/* The scans of the two calls below, out of line: called only when there may be something to do. */
PROT_HIDDEN struct pool_rec *pool_loc_expire_scan(struct pool_loc *l, uint64_t now);
PROT_HIDDEN struct pool_rec *pool_loc_answer_scan(struct pool_loc *l, const struct pool_ref *r);
/* Detach the idle connections past their time (the caller destroys them unlocked); now: a coarse
 * clock reading, needed only when pool_loc_timed(l). */
static inline struct pool_rec *pool_loc_expired(struct pool_loc *l, uint64_t now)
{
	return pool_loc_timed(l) ? pool_loc_expire_scan(l, now) : NULL;
}
/* Detach one idle connection per close request taken (max_open); without a request (one relaxed
 * load: close_req is a count, see lib/pool.c "connection slots"), nothing. */
static inline struct pool_rec *pool_loc_answer(struct pool_loc *l, const struct pool_ref *r)
{
	if (list_empty(&l->idle) || atomic_load_explicit(&r->s->close_req, memory_order_relaxed) == 0)
		return NULL;
	return pool_loc_answer_scan(l, r);
}
/* Free the connection slot of r, if it holds one of its pool's incarnation. */
PROT_HIDDEN void pool_rec_slot_free(struct pool_rec *r);
/* Destroy (outside p->lock) and free a chain of detached records; join two chains. */
PROT_HIDDEN void pool_destroy_chain(const struct prot_connector *c, struct pool_rec *dead);
PROT_HIDDEN struct pool_rec *pool_chain_cat(struct pool_rec *a, struct pool_rec *b);

#endif
