/* pool_api.c — the public pool calls that are not the checkout/checkin hot path (lib/pool_conn.c):
 * prot_pool_with, prot_pool_register (the connector, and min_idle connections made at once),
 * prot_pool_status, prot_pool_holders, and runtime creation and removal through protd. The names
 * are resolved by lib/resolve.c; this process's records are lib/pool_conn.c's (lib/pool_local.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_local.h"
#include "wire.h"

int prot_pool_with(prot_t *p, const char *pool, int64_t timeout_ms,
                   int (*fn)(void *conn, void *arg), void *arg, int *fn_result)
{
	int g = prot_gate(p, true);
	if (g < 0)
		return g;
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
	return res < 0 ? -PROT_EFAILED : 0; /* as prot_breaker_execute */
}

int prot_pool_register(prot_t *p, const char *pool, const struct prot_connector *c)
{
	if (!p || !pool || !c || !c->create || !c->destroy)
		return -EINVAL;
	if (prot_name_len(pool) > PROT_NAME_MAX)
		return -PROT_ETOOLONG;
	if (p->flags & PROT_OPEN_RDONLY)
		return -EROFS;
	struct prot_shm_header *h = prot_hdr(p);
	if (!h)
		return -PROT_ENOSEG;
	struct slot_ref ref;
	int rc = prot_resolve(p, h, REG_POOLS, pool, &ref);
	pthread_mutex_lock(&p->lock);
	struct prot_pool_local *pl = pool_local_get(p);
	struct pool_loc *l = NULL;
	if (rc == 0)
		rc = pl ? pool_loc_of(pl, h, &ref, pool, &l) : -ENOMEM;
	bool fresh = false;
	if (rc == 0 && l->has_connector) {
		const struct prot_connector *o = &l->c;
		if (o->create != c->create || o->destroy != c->destroy || o->check != c->check ||
		    o->ctx != c->ctx)
			rc = -PROT_EEXIST;
	} else if (rc == 0) {
		l->c = *c;
		l->has_connector = true;
		fresh = true;
	}
	struct pool_ref r;
	struct pool_cfgv cfg;
	uint64_t want = 0;
	uint32_t sgen = rc == 0 ? SLOT_GEN(ref.state) : 0;
	if (fresh && pool_ref_at(h, ref.idx, &r) == 0 && pool_cfg_read(&r, &cfg) == 0) {
		pool_loc_settings(l, &cfg);
		want = cfg.min_idle;
	}
	pthread_mutex_unlock(&p->lock);
	struct prot_idv v;
	prot_idv(p, h, &v);
	if (!v.self)
		want = 0; /* no identity: no connection slot could be owned */
	/* min_idle: made now, outside the lock; a create() that fails, or max_open reached (no wait:
	 * nobody is asked to close for a pre-fill), ends it (the pool works without it: checkouts
	 * make connections lazily) */
	for (uint64_t i = 0; i < want; i++) {
		uint32_t cs;
		if (pool_conn_acquire(&r, &v, cfg.max_open, false, 0, NULL, NULL, &cs) < 0)
			break;
		struct pool_rec *rec = calloc(1, sizeof *rec);
		if (rec && cs != POOL_CONN_NONE) {
			rec->cslot = &r.lease[cs].conn_owner;
			rec->cps = r.s;
			rec->cown = v.self;
			rec->cgen = sgen;
		}
		if (!rec || c->create(c->ctx, &rec->conn) != 0) {
			if (rec)
				pool_rec_slot_free(rec);
			else if (cs != POOL_CONN_NONE)
				pool_conn_free(r.s, &r.lease[cs].conn_owner, v.self);
			free(rec);
			break;
		}
		rec->born_ns = rec->idle_ns = prot_now_coarse_ns();
		pthread_mutex_lock(&p->lock);
		list_init(rec);
		rec->loc = l;
		list_add_tail(&l->idle, rec);
		pthread_mutex_unlock(&p->lock);
	}
	return rc;
}

int prot_pool_status(prot_t *p, const char *pool, struct prot_pool_status *out)
{
	struct prot_shm_header *h;
	struct slot_ref ref;
	int rc = out ? prot_lookup(p, REG_POOLS, pool, false, &h, &ref) : -EINVAL;
	if (rc < 0)
		return rc;
	if (!(p->flags & PROT_OPEN_RDONLY)) {
		/* a pool call: lingering overflow connections past their deadline close here too */
		pthread_mutex_lock(&p->lock);
		struct prot_pool_local *pl = pool_local_get(p);
		struct pool_loc *l = pl ? pool_loc_by_name(pl, pool, false) : NULL;
		struct pool_rec *dead = l ? pool_loc_expired(l, prot_now_coarse_ns()) : NULL;
		struct pool_ref r;
		if (l && l->h == h && l->ref.idx == ref.idx &&
		    pool_ref_at(h, ref.idx, &r) == 0)
			dead = pool_chain_cat(dead, pool_loc_answer(l, &r)); /* the close requests (max_open) too */
		struct prot_connector cn = l ? l->c : (struct prot_connector){ 0 };
		pthread_mutex_unlock(&p->lock);
		if (dead)
			pool_destroy_chain(&cn, dead);
	}
	return pool_status_idx(h, ref.idx, out);
}

int prot_pool_holders(prot_t *p, const char *pool, struct prot_pool_holder *out, size_t n,
                      size_t *count)
{
	struct prot_shm_header *h;
	struct slot_ref ref;
	/* a read: the gate of prot_lookup refuses only a NULL handle, -EINVAL like the arguments */
	int rc = count && (out || !n) ? prot_lookup(p, REG_POOLS, pool, false, &h, &ref) : -EINVAL;
	if (rc < 0)
		return rc;
	struct prot_pool_holder rows[POOL_HOLDERS_MAX];
	size_t total = 0, k = n < POOL_HOLDERS_MAX ? n : POOL_HOLDERS_MAX;
	rc = pool_holders_idx(h, ref.idx, rows, k, &total);
	if (rc < 0)
		return rc; /* out and *count untouched */
	if (k)
		memcpy(out, rows, (total < k ? total : k) * sizeof *rows); /* out may be NULL when n is 0 */
	*count = total;
	return 0;
}

/* Runtime lifecycle through protd (daemon/control.c: pool-create, pool-remove): the options
 * travel once, as the words of an INI [pool] section; protd validates them, answers ok when an
 * existing pool has the same ones, and names a missing pool (PROT_ENOPOOL). */
int prot_pool_create(prot_t *p, const char *name, const struct prot_pool_opts *o)
{
	return prot_object_request(p, "pool-create", name, WIRE_POOL_OPTS, o);
}

int prot_pool_remove(prot_t *p, const char *name)
{
	return prot_object_request(p, "pool-remove", name, WIRE_NO_OPTS, NULL);
}
