/* pool_conn.c — each process's side of a pool: its records of the registered connector and of
 * its idle and busy connections (lib/pool_local.h), the checkout and checkin that move them (the
 * hot path of prot_pool_checkout, pool_checkout_idx for the facade, prot_pool_checkin), and their
 * teardown at prot_close (pool_local_free). The shared leases (lock, waiters, hand-offs,
 * connection slots) are lib/pool.c's through lib/pool.h; the rest of the public pool API
 * (with, register, status, holders, create, remove) is lib/pool_api.c.
 *
 * LOCAL STATE: struct prot_pool_local hangs off p->pools under p->lock: per pool, the registered
 * connector, the idle connections (a deque: lifo or fifo), the busy ones (each with the lease it
 * goes with) and spare records. It belongs to the process (fork epoch) that made it; a forked
 * child forgets it without destroying anything: the parent owns those connections and leases.
 * Connector callbacks always run outside p->lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_local.h"

/* ---- this process's connections (under p->lock) ------------------------------------------------ */
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

/* pool_local_get's slow part (lib/pool_local.h): make the state, NULL on ENOMEM. A state inherited
 * through fork() is forgotten here: its leases and connections are the parent's. */
struct prot_pool_local *pool_local_make(prot_t *p)
{
	struct prot_pool_local *pl = p->pools;
	if (!pl) {
		pl = calloc(1, sizeof *pl);
		if (!pl)
			return NULL;
		pl->epoch = p->fork_epoch;
		p->pools = pl;
	}
	if (pl->epoch != p->fork_epoch) {
		for (uint32_t i = 0; i < pl->n; i++)
			loc_forget(pl->v[i]); /* connectors stay: registration is code, not state */
		pl->epoch = p->fork_epoch;
	}
	return pl;
}

struct pool_loc *pool_loc_by_name(struct prot_pool_local *pl, const char *name, bool add)
{
	for (uint32_t i = 0; i < pl->n; i++)
		if (prot_name_eq(pl->v[i]->name, name))
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

/* The name in pool slot ref of h while the slot holds what ref says: true and nm (the copy, proved
 * by the state word unchanged after it, as seg_find's compare), false when it moved on. */
static bool slot_name(struct prot_shm_header *h, const struct slot_ref *ref, char nm[PROT_NAME_BYTES])
{
	if (!slot_ref_holds(h, REG_POOLS, ref))
		return false;
	struct prot_named *s = seg_entry(h, REG_POOLS, ref->idx);
	memcpy(nm, s->name, PROT_NAME_BYTES);
	nm[PROT_NAME_BYTES - 1] = 0;
	return !seq_read_retry(&s->state, ref->state);
}

/* The miss of pool_loc_of (lib/pool_local.h): the loc of the pool's name, the caller's or the
 * slot's own (the one step from an index to a name, taken once per pool incarnation and process),
 * now bound to ref. */
int pool_loc_bind(struct prot_pool_local *pl, struct prot_shm_header *h, const struct slot_ref *ref,
                  const char *name, struct pool_loc **out)
{
	char nm[PROT_NAME_BYTES];
	if (!name && !slot_name(h, ref, nm))
		return -PROT_ENOPOOL;
	struct pool_loc *l = pool_loc_by_name(pl, name ? name : nm, true);
	if (!l)
		return -ENOMEM;
	l->h = h;
	l->ref = *ref;
	*out = l;
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

/* Remember the connection settings of the pool's configuration c (read by the caller). */
void pool_loc_settings(struct pool_loc *l, const struct pool_cfgv *c)
{
	l->min_idle = c->min_idle;
	l->idle_timeout_ns = c->idle_timeout_ms * 1000000u;
	l->max_life_ns = c->max_lifetime_ms * 1000000u;
}

static bool past_lifetime(const struct pool_loc *l, const struct pool_rec *r, uint64_t now)
{
	return l->max_life_ns && r->born_ns && now - r->born_ns >= l->max_life_ns;
}

/* The idle check: detach idle connections whose overflow linger ran out, that are older than
 * max_lifetime, or (beyond min_idle, oldest idle first) idle longer than idle_timeout; the caller
 * destroys them unlocked. */
struct pool_rec *pool_loc_expire_scan(struct pool_loc *l, uint64_t now)
{
	struct pool_rec *dead = NULL;
	uint64_t nidle = 0;
	bool lingering = false;
	for (struct pool_rec *r = l->idle.next; r != &l->idle; r = r->next)
		nidle++;
	for (struct pool_rec *r = l->idle.next, *n; r != &l->idle; r = n) {
		n = r->next;
		bool idle_out = l->idle_timeout_ns && nidle > l->min_idle && now - r->idle_ns >= l->idle_timeout_ns;
		if ((r->expires_ns && now >= r->expires_ns) || past_lifetime(l, r, now) || idle_out) {
			nidle--;
			list_del(r);
			r->next = dead;
			dead = r;
		} else {
			lingering |= r->expires_ns != 0;
		}
	}
	l->lingering = lingering;
	return dead;
}
/* Free the connection slot of r (its connection is closed or never made). The generation check
 * keeps a record of a removed pool from freeing a slot of the pool defined again in its place. */
void pool_rec_slot_free(struct pool_rec *r)
{
	if (!r->cslot)
		return;
	if (SLOT_GEN(atomic_load_explicit(&r->cps->state, memory_order_acquire)) == r->cgen)
		pool_conn_free(r->cps, r->cslot, r->cown);
	r->cslot = NULL;
}

void pool_destroy_chain(const struct prot_connector *c, struct pool_rec *dead)
{
	while (dead) {
		struct pool_rec *n = dead->next;
		if (dead->conn)
			c->destroy(c->ctx, dead->conn);
		pool_rec_slot_free(dead);
		free(dead);
		dead = n;
	}
}

struct pool_rec *pool_chain_cat(struct pool_rec *a, struct pool_rec *b)
{
	if (!a)
		return b;
	struct pool_rec *t = a;
	while (t->next)
		t = t->next;
	t->next = b;
	return a;
}

/* Answer the pool's close requests (max_open): for each request taken, detach one idle connection
 * holding a slot, oldest first; the caller destroys them unlocked (which frees the slots). Under
 * p->lock. A process answers only for pools it has connections of, at its own pool calls. */
struct pool_rec *pool_loc_answer_scan(struct pool_loc *l, const struct pool_ref *r)
{
	struct pool_rec *dead = NULL;
	for (struct pool_rec *x = l->idle.next, *n; x != &l->idle; x = n) {
		n = x->next;
		if (!x->cslot || x->cps != r->s)
			continue;
		if (atomic_load_explicit(&r->s->close_req, memory_order_relaxed) == 0 || !pool_close_req_take(r))
			break;
		list_del(x);
		x->next = dead;
		dead = x;
	}
	return dead;
}

struct answer_arg {
	prot_t *p;
	struct pool_loc *l;
	const struct pool_ref *r;
};
static void answer_cb(void *arg)
{
	struct answer_arg *a = arg;
	pthread_mutex_lock(&a->p->lock);
	struct pool_rec *dead = pool_loc_answer(a->l, a->r);
	struct prot_connector cn = a->l->c;
	pthread_mutex_unlock(&a->p->lock);
	if (dead)
		pool_destroy_chain(&cn, dead);
}

/* The idle connection to reuse (lifo: newest, fifo: oldest), moved to busy; or a fresh record. */
static inline struct pool_rec *loc_take(struct pool_loc *l, uint64_t strategy, const struct grant *g)
{
	struct pool_rec *r = NULL;
	if (!list_empty(&l->idle)) {
		r = strategy == 1 ? l->idle.next : l->idle.prev;
		list_del(r);
		r->expires_ns = 0;
	} else if (!(r = rec_get(l))) {
		return NULL;
	}
	r->entry = g->e;
	r->gen = g->gen;
	r->loc = l;
	list_add_tail(&l->busy, r);
	return r;
}

/* ---- public API ------------------------------------------------------------------------------- */
/* A lease names its segment (by a value private to that segment's life), its pool slot and that
 * slot's generation, and the entry and its generation: nothing in it is an address, and nothing
 * is used before the segment, slot and entry it names are found and match. */
static uint64_t seg_id(const struct prot_shm_header *h)
{
	return seg_geo(h)->id; /* taken at attach: private */
}

static void lease_fill(prot_lease *lease, struct prot_shm_header *h, const struct slot_ref *ref,
                       const struct grant *g)
{
	lease->opaque[0] = seg_id(h);
	lease->opaque[1] = (uint64_t)SLOT_GEN(ref->state) << 32 | ref->idx;
	lease->opaque[2] = (g->gen & POOL_GEN_MASK) << 24 | g->e; /* gen >= 1: an all-zero lease is invalid */
}

/* Give a lease back after a failed checkout step (no connection to keep). */
static void checkout_undo(prot_t *p, const struct pool_ref *r, const struct prot_idv *v,
                          struct pool_loc *l, struct pool_rec *rec, const struct grant *g, uint32_t cap)
{
	if (rec)
		pool_rec_slot_free(rec); /* rec is busy, this thread's: no connection on it */
	pthread_mutex_lock(&p->lock);
	if (rec) {
		list_del(rec);
		rec_put(l, rec);
	}
	pthread_mutex_unlock(&p->lock);
	bool freed;
	pool_lease_return(r, v, g->e, g->gen, cap, &freed, NULL);
}

/* The pool of slot ref (still LIVE and the same incarnation) into this process's local state, and
 * its shared parts. Under p->lock. A ref the caller resolved by name was just checked by the
 * resolver; one the facade took from a key is checked here. */
static int checkout_resolve(prot_t *p, struct prot_shm_header *h, const struct slot_ref *ref,
                            const char *name, struct pool_loc **lp, struct pool_ref *r)
{
	struct prot_pool_local *pl = pool_local_get(p);
	if (!pl)
		return -ENOMEM;
	if (SLOT_STATE(ref->state) != SLOT_LIVE || (!name && !slot_ref_holds(h, REG_POOLS, ref)))
		return -PROT_ENOPOOL;
	int rc = pool_loc_of(pl, h, ref, name, lp);
	return rc < 0 ? rc : pool_ref_at(h, ref->idx, r);
}

/* Checkout on pool `name` (resolved here) or, name NULL, on slot *ref of h (resolved by the caller). */
static int checkout(prot_t *p, struct prot_shm_header *h, const char *name, const struct slot_ref *ref,
                    int64_t timeout_ms, const struct cfg_snap *pre, prot_lease *lease, void **conn,
                    bool *waited)
{
	if (!p || !lease)
		return -EINVAL;
	if (!h)
		return -PROT_ENOSEG;
	if (p->flags & PROT_OPEN_RDONLY)
		return -EROFS;
	/* The name once: a name too long is refused before anything else, a missing pool only after
	 * the identity (the order of prot_pool_checkout's errors). */
	struct slot_ref named;
	int rc = name ? prot_resolve(p, h, REG_POOLS, name, &named) : 0;
	if (rc == -PROT_ETOOLONG)
		return rc;
	struct prot_idv v;
	prot_idv(p, h, &v);
	if (!v.self)
		return -PROT_ECAPACITY; /* no process slot could be claimed for this process */
	if (rc < 0)
		return rc;
	if (name)
		ref = &named;
	struct pool_ref r;
	struct pool_cfgv c;
	struct pool_loc *l;
	struct pool_rec *rec = NULL, *dead;
	struct grant g;

	pthread_mutex_lock(&p->lock);
	rc = checkout_resolve(p, h, ref, name, &l, &r);
	if (rc < 0) {
		pthread_mutex_unlock(&p->lock);
		return rc;
	}
	struct prot_connector cn = l->c;
	bool has = l->has_connector;
	if (pre)
		memcpy(&c, pre->w, sizeof c);
	else
		rc = pool_cfg_read(&r, &c);
	if (rc == 0)
		pool_loc_settings(l, &c);
	r.now_coarse = prot_now_coarse_ns();
	dead = pool_loc_expired(l, r.now_coarse);
	dead = pool_chain_cat(dead, pool_loc_answer(l, &r));
	if (rc == 0)
		rc = pool_lease_try(&r, &v, &c, &g);
	if (rc == -PROT_ETORN) {
		pthread_mutex_unlock(&p->lock);
		pool_destroy_chain(&cn, dead);
		return rc;
	}
	if (rc == 0)
		rec = loc_take(l, c.strategy, &g);
	pthread_mutex_unlock(&p->lock);
	if (dead)
		pool_destroy_chain(&cn, dead);

	uint64_t tmo = timeout_ms < 0 ? c.checkout_timeout_ms : (uint64_t)timeout_ms, deadline = 0;
	if (rc < 0) {
		deadline = prot_now_ns() + tmo * 1000000u;
		rc = pool_lease_acquire(h, ref->idx, &r, &v, &c, tmo != 0, deadline, &g, waited);
		if (rc == -PROT_ECHECKOUT_TIMEOUT)
			atomic_fetch_add_explicit(&r.s->timeouts, 1, memory_order_relaxed); /* statistic */
		if (rc < 0)
			return rc;
		pthread_mutex_lock(&p->lock);
		rec = loc_take(l, c.strategy, &g);
		pthread_mutex_unlock(&p->lock);
	}
	if (!rec) {
		checkout_undo(p, &r, &v, l, NULL, &g, pool_cfg_cap(&r, &c));
		return -ENOMEM;
	}
	if (has && rec->conn && cn.check && cn.check(cn.ctx, rec->conn) != 0) {
		cn.destroy(cn.ctx, rec->conn);
		rec->conn = NULL;
	}
	if (has && !rec->conn && !rec->cslot) {
		/* a connection to open: it needs a connection slot (max_open), by the checkout deadline */
		uint32_t cs;
		struct answer_arg a = { p, l, &r };
		if (!deadline)
			deadline = prot_now_ns() + tmo * 1000000u;
		int crc = pool_conn_acquire(&r, &v, c.max_open, tmo != 0, deadline, answer_cb, &a, &cs);
		if (crc < 0) {
			if (crc == -PROT_ECHECKOUT_TIMEOUT)
				atomic_fetch_add_explicit(&r.s->timeouts, 1, memory_order_relaxed); /* statistic */
			checkout_undo(p, &r, &v, l, rec, &g, pool_cfg_cap(&r, &c));
			return crc;
		}
		if (cs != POOL_CONN_NONE) {
			rec->cslot = &r.lease[cs].conn_owner;
			rec->cps = r.s;
			rec->cown = v.self;
			rec->cgen = SLOT_GEN(ref->state);
		}
	}
	if (has && !rec->conn) {
		if (cn.create(cn.ctx, &rec->conn) != 0) {
			rec->conn = NULL;
			checkout_undo(p, &r, &v, l, rec, &g, pool_cfg_cap(&r, &c));
			return -PROT_ECONNECTOR;
		}
		rec->born_ns = prot_now_coarse_ns(); /* only this thread has rec (busy, its lease) */
	}
	atomic_fetch_add_explicit(&r.s->checkouts, 1, memory_order_relaxed); /* statistic */
	lease_fill(lease, h, ref, &g);
	if (conn)
		*conn = rec->conn;
	return 0;
}

/* The telemetry event of a checkout that began at t0 (a handler listens). */
static __attribute__((noinline)) void checkout_told(prot_t *p, struct prot_shm_header *h, const char *name,
                                                    const struct slot_ref *ref, int rc, uint64_t t0)
{
	char nm[PROT_NAME_BYTES] = "";
	if (name)
		snprintf(nm, sizeof nm, "%s", name);
	else if (h && ref->idx < seg_count(h, REG_POOLS))
		memcpy(nm, ((struct prot_named *)seg_entry(h, REG_POOLS, ref->idx))->name, sizeof nm - 1);
	PROT_TEL(p, rc == -PROT_ECHECKOUT_TIMEOUT ? PROT_TEL_POOL_TIMEOUT : PROT_TEL_POOL_CHECKOUT,
	         .layer = PROT_LAYER_POOL, .result = rc, .duration_ns = prot_now_ns() - t0, .key = nm);
}

/* checkout() with the telemetry events: the clock is read only when a handler listens. One call
 * of checkout(), so that it is inlined here. */
static int checkout_observed(prot_t *p, struct prot_shm_header *h, const char *name, const struct slot_ref *ref,
                             int64_t timeout_ms, const struct cfg_snap *pre, prot_lease *lease,
                             void **conn, bool *waited)
{
	const uint32_t want = PROT_TEL_MASK(PROT_TEL_POOL_CHECKOUT) | PROT_TEL_MASK(PROT_TEL_POOL_TIMEOUT);
	bool told = p && unlikely(atomic_load_explicit(&p->tel_mask, memory_order_relaxed) & want);
	uint64_t t0 = told ? prot_now_ns() : 0;
	int rc = checkout(p, h, name, ref, timeout_ms, pre, lease, conn, waited);
	if (told)
		checkout_told(p, h, name, ref, rc, t0);
	return rc;
}

int pool_checkout_idx(prot_t *p, struct prot_shm_header *h, const struct slot_ref *pool, int64_t timeout_ms,
                      const struct cfg_snap *cfg, prot_lease *lease, void **conn, bool *waited)
{
	return checkout_observed(p, h, NULL, pool, timeout_ms, cfg, lease, conn, waited);
}

int prot_pool_checkout(prot_t *p, const char *pool, int64_t timeout_ms, prot_lease *lease,
                       void **conn)
{
	int g = prot_gate(p, true);
	if (g < 0)
		return g;
	if (!pool || !lease)
		return -EINVAL;
	return checkout_observed(p, prot_hdr(p), pool, NULL, timeout_ms, NULL, lease, conn, NULL);
}

/* The mapping of p a lease names, from p's private list of mappings (never from the lease), with
 * this process's liveness view of it. */
static struct prot_shm_header *lease_map(prot_t *p, const prot_lease *lease, struct prot_idv *v)
{
	for (struct prot_map *m = atomic_load_explicit(&p->map, memory_order_acquire); m; m = m->older)
		if (seg_id(m->hdr) == lease->opaque[0]) {
			*v = (struct prot_idv){ .h = m->hdr, .fd = m->fd, .nprocs = m->nprocs, .self = m->ident };
			return m->hdr;
		}
	return NULL;
}

/* This process's record of the lease (idx, e, gen) in mapping h, or NULL. Under p->lock. */
static inline struct pool_rec *rec_find(prot_t *p, struct prot_shm_header *h, uint32_t idx, uint32_t e,
                                 uint64_t gen)
{
	struct prot_pool_local *pl = pool_local_get(p);
	for (uint32_t i = 0; pl && i < pl->n; i++) {
		struct pool_loc *l = pl->v[i];
		if (l->h != h || l->ref.idx != idx)
			continue;
		for (struct pool_rec *r = l->busy.next; r != &l->busy; r = r->next)
			if (r->entry == e && (r->gen & POOL_GEN_MASK) == gen)
				return r;
	}
	return NULL;
}

/* Keep, park or close the connection of a returned lease; returns what to destroy unlocked. */
static struct pool_rec *rec_return(struct pool_rec *rec, int how, bool overflow,
                                   const struct pool_cfgv *c, uint64_t now)
{
	struct pool_loc *l = rec->loc;
	struct pool_rec *dead = NULL;
	list_del(rec);
	if (!rec->conn) {
		rec_put(l, rec);
	} else if (how == PROT_CHECKIN_BROKEN || (overflow && c->overflow_ttl_ms == 0) ||
	           past_lifetime(l, rec, now)) {
		rec->next = NULL;
		dead = rec;
	} else {
		rec->expires_ns = overflow ? now + c->overflow_ttl_ms * 1000000u : 0;
		l->lingering |= overflow;
		rec->idle_ns = now;
		list_add_tail(&l->idle, rec);
	}
	struct pool_rec *exp = pool_loc_expired(l, now);
	return exp ? pool_chain_cat(exp, dead) : dead;
}

int prot_pool_checkin(prot_t *p, prot_lease *lease, int how)
{
	if (!p || !lease || (how != PROT_CHECKIN_OK && how != PROT_CHECKIN_BROKEN))
		return -EINVAL;
	if (p->flags & PROT_OPEN_RDONLY)
		return -EROFS;
	prot_hdr(p); /* fork check and successor before p's maps are read */
	struct prot_idv v;
	struct prot_shm_header *h = lease_map(p, lease, &v);
	uint32_t idx = (uint32_t)lease->opaque[1], sgen = (uint32_t)(lease->opaque[1] >> 32);
	uint32_t e = (uint32_t)(lease->opaque[2] & 0xffffffu);
	uint64_t gen = lease->opaque[2] >> 24;
	struct pool_ref r;
	if (!h || gen == 0 || pool_ref_at(h, idx, &r) < 0)
		return -PROT_ESTALE;
	uint32_t st = atomic_load_explicit(&r.s->state, memory_order_acquire);
	if (SLOT_GEN(st) != sgen || SLOT_STATE(st) != SLOT_LIVE) {
		/* the pool was removed (and maybe defined again: a fresh one): the lease is gone, and
		 * so is its connection, which belonged to that pool; nothing else changes */
		pthread_mutex_lock(&p->lock);
		struct pool_rec *rec = rec_find(p, h, idx, e, gen);
		struct prot_connector cn = rec ? rec->loc->c : (struct prot_connector){ 0 };
		if (rec) {
			list_del(rec);
			rec->next = NULL;
		}
		pthread_mutex_unlock(&p->lock);
		if (rec)
			pool_destroy_chain(&cn, rec);
		return -PROT_ESTALE;
	}
	if (!v.self)
		return -PROT_ESTALE; /* no identity here (a forked child's copy of its parent's lease) */
	struct pool_cfgv c;
	bool cfg_ok = pool_cfg_read(&r, &c) == 0;
	if (!cfg_ok)
		pool_cfg_read_or_safe(&r, &c);
	uint32_t before = 0;
	bool freed = false;
	int rc = pool_lease_return(&r, &v, e, gen, pool_cfg_cap(&r, &c), &freed, &before);
	if (rc < 0)
		return rc;
	memset(lease, 0, sizeof *lease); /* a second checkin of the same lease is -PROT_ESTALE */

	uint64_t now = prot_now_coarse_ns();
	pthread_mutex_lock(&p->lock);
	struct pool_rec *rec = rec_find(p, h, idx, e, gen), *dead = NULL;
	struct prot_connector cn = rec ? rec->loc->c : (struct prot_connector){ 0 };
	if (rec && cfg_ok)
		pool_loc_settings(rec->loc, &c);
	if (rec) {
		struct pool_loc *l = rec->loc;
		dead = rec_return(rec, how, freed && before > c.size, &c, now);
		dead = pool_chain_cat(dead, pool_loc_answer(l, &r));
	}
	pthread_mutex_unlock(&p->lock);
	if (dead)
		pool_destroy_chain(&cn, dead);
	PROT_TEL(p, PROT_TEL_POOL_CHECKIN, .layer = PROT_LAYER_POOL, .result = how);
	return 0;
}

/* prot_close: return the leases this process holds and destroy its connections. Called without
 * p->lock held. In a forked child that never used the pools, the state is the parent's: forget. */
void pool_local_free(prot_t *p)
{
	if (!p || !p->pools)
		return;
	prot_hdr(p); /* the fork check: a child's state is forgotten, never returned */
	pthread_mutex_lock(&p->lock);
	struct prot_pool_local *pl = pool_local_get(p);
	p->pools = NULL;
	pthread_mutex_unlock(&p->lock);
	for (uint32_t i = 0; i < pl->n; i++) {
		struct pool_loc *l = pl->v[i];
		struct pool_ref r;
		struct pool_cfgv c;
		struct prot_idv v;
		bool ok = l->h && pool_ref_at(l->h, l->ref.idx, &r) == 0;
		if (ok) {
			prot_idv(p, l->h, &v);
			pool_cfg_read_or_safe(&r, &c);
		}
		while (!list_empty(&l->busy)) {
			struct pool_rec *rec = l->busy.next;
			list_del(rec);
			bool freed;
			if (ok && v.self)
				pool_lease_return(&r, &v, rec->entry, rec->gen, pool_cfg_cap(&r, &c), &freed, NULL);
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
			pool_destroy_chain(&l->c, dead);
		else
			pool_destroy_chain(&(struct prot_connector){ 0 }, dead); /* conn is NULL: frees only */
		loc_forget(l);
		free(l);
	}
	free(pl->v);
	free(pl);
}
