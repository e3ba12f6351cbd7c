/* registry.c — protd's registry of keys, breakers and pools: the effective configuration (INI
 * objects plus runtime ones) with the segment slot of each object, and the applying of a new
 * configuration to the segment (diff: appear, rewrite, retire).
 *
 * Concurrency: readers (the control-socket thread) look the registry up between urcu-memb read
 * locks and never block; writers (the main thread's reload, the control thread's `set`) take turns
 * under `writer` and publish a complete new version with rcu_assign_pointer (release: the version
 * is fully built before a reader can dereference it). The old version is freed by call_rcu after
 * every reader that might still hold it has left its read-side critical section.
 */
#define _LGPL_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-memb.h>

#include "protd.h"

/* ThreadSanitizer cannot see liburcu's grace periods (the library is not instrumented, and its
 * ordering comes from membarrier). Model them: every reader's unlock and the writer's hand-over
 * to call_rcu "release" one sync address; the reclaim callback "acquires" it, which is exactly what
 * a grace period guarantees: everything before those points happens before the free. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char grace;
#define GRACE_RELEASE() __tsan_release(&grace)
#define GRACE_ACQUIRE() __tsan_acquire(&grace)
/* rcu_assign_pointer / rcu_dereference are a release store and a consume load built from volatile
 * accesses and compiler barriers, which TSan does not understand: spell them as C11 atomics. */
#define PUBLISH(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define DEREF(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#else
#define GRACE_RELEASE() ((void)0)
#define GRACE_ACQUIRE() ((void)0)
#define PUBLISH(p, v) rcu_assign_pointer(p, v)
#define DEREF(p) rcu_dereference(p)
#endif

struct box {
	struct registry r;
	struct rcu_head head;
};

static struct box *current;                                  /* RCU-protected */
static pthread_mutex_t writer = PTHREAD_MUTEX_INITIALIZER;  /* serialises writers */

void registry_lock(void)
{
	pthread_mutex_lock(&writer);
}
void registry_unlock(void)
{
	pthread_mutex_unlock(&writer);
}
void registry_read_lock(void)
{
	urcu_memb_read_lock();
}
void registry_read_unlock(void)
{
	GRACE_RELEASE();
	urcu_memb_read_unlock();
}

const struct registry *registry_current(void)
{
	struct box *b = DEREF(current); /* pairs with PUBLISH in swap() */
	return b ? &b->r : NULL;
}

static void box_free(struct box *b)
{
	if (!b)
		return;
	config_free(&b->r.cfg);
	free(b->r.key_slot);
	free(b->r.breaker_slot);
	free(b->r.pool_slot);
	free(b);
}

static void box_free_rcu(struct rcu_head *h)
{
	GRACE_ACQUIRE();
	box_free(caa_container_of(h, struct box, head));
}

static struct box *box_new(struct config *cfg)
{
	struct box *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->r.cfg = *cfg;
	*cfg = (struct config){ 0 };
	b->r.key_slot = calloc(b->r.cfg.nkeys + 1, sizeof(uint32_t));
	b->r.breaker_slot = calloc(b->r.cfg.nbreakers + 1, sizeof(uint32_t));
	b->r.pool_slot = calloc(b->r.cfg.npools + 1, sizeof(uint32_t));
	if (!b->r.key_slot || !b->r.breaker_slot || !b->r.pool_slot) {
		box_free(b);
		return NULL;
	}
	return b;
}

/* Writer only (holding `writer`): the version it replaces is freed after a grace period. */
static void swap(struct box *b)
{
	struct box *old = current;
	PUBLISH(current, b); /* release: the version is complete before readers see it */
	if (old) {
		GRACE_RELEASE();
		urcu_memb_call_rcu(&old->head, box_free_rcu);
	}
}

/* ---- a re-adopted segment's objects ---------------------------------------------------------- */

static const char *slot_name_at(struct shm *s, int reg, uint64_t idx)
{
	if (idx >= seg_count(s->hdr, reg) || SLOT_STATE(shm_slot_state(s, reg, (uint32_t)idx)) != SLOT_LIVE)
		return ""; /* untrusted index, or a dangling one: no reference */
	return shm_slot_name(s, reg, (uint32_t)idx);
}

/* An object read back from the segment counts as fully specified: it was valid when written. */
static void adopt_obj(struct cfg_obj *o, uint64_t origin)
{
	o->seen = ~0ull;
	o->origin = origin == CFG_ORIGIN_RUNTIME ? CFG_ORIGIN_RUNTIME : CFG_ORIGIN_INI;
}

static int adopt_slots(struct shm *s, struct config *c)
{
	for (int reg = REG_KEYS; reg <= REG_POOLS; reg++) {
		for (uint32_t i = 0, n = seg_count(s->hdr, reg); i < n; i++) {
			if (SLOT_STATE(shm_slot_state(s, reg, i)) != SLOT_LIVE)
				continue;
			const char *name = shm_slot_name(s, reg, i);
			if (reg == REG_KEYS) {
				struct cfg_key *k = config_add_key(c, name);
				if (!k)
					return -ENOMEM;
				shm_slot_cfg(s, reg, i, &k->c);
				adopt_obj(&k->o, k->c.origin);
				snprintf(k->breaker, sizeof k->breaker, "%s",
				         slot_name_at(s, REG_BREAKERS, k->c.breaker_index));
				snprintf(k->pool, sizeof k->pool, "%s", slot_name_at(s, REG_POOLS, k->c.pool_index));
			} else if (reg == REG_BREAKERS) {
				struct cfg_breaker *b = config_add_breaker(c, name);
				if (!b)
					return -ENOMEM;
				shm_slot_cfg(s, reg, i, &b->c);
				adopt_obj(&b->o, b->c.origin);
			} else {
				struct cfg_pool *p = config_add_pool(c, name);
				if (!p)
					return -ENOMEM;
				shm_slot_cfg(s, reg, i, &p->c);
				adopt_obj(&p->o, p->c.origin);
			}
		}
	}
	return 0;
}

int registry_init(struct shm *s)
{
	urcu_memb_register_thread();
	struct config c;
	config_init(&c);
	if (s->adopted && adopt_slots(s, &c) < 0) {
		config_free(&c);
		return -ENOMEM;
	}
	struct box *b = box_new(&c);
	if (!b)
		return -ENOMEM;
	/* slots of what we adopted: found by name (they are LIVE) */
	for (size_t i = 0; i < b->r.cfg.nkeys; i++)
		b->r.key_slot[i] = (uint32_t)shm_slot_find(s, REG_KEYS, b->r.cfg.keys[i].o.name);
	for (size_t i = 0; i < b->r.cfg.nbreakers; i++)
		b->r.breaker_slot[i] = (uint32_t)shm_slot_find(s, REG_BREAKERS, b->r.cfg.breakers[i].o.name);
	for (size_t i = 0; i < b->r.cfg.npools; i++)
		b->r.pool_slot[i] = (uint32_t)shm_slot_find(s, REG_POOLS, b->r.cfg.pools[i].o.name);
	registry_lock();
	swap(b);
	registry_unlock();
	return 0;
}

void registry_fini(void)
{
	registry_lock();
	swap(NULL);
	registry_unlock();
	urcu_memb_barrier(); /* every call_rcu callback has run */
	urcu_memb_unregister_thread();
}

int registry_snapshot(struct config *out)
{
	return config_copy(out, &current->r.cfg); /* writer: `current` cannot change under us */
}

/* ---- merging runtime objects into a reloaded INI ---------------------------------------------- */

#define MERGE(arr, n, adder, finder)                                                   \
	for (size_t i = 0; i < cur->n; i++) {                                                  \
		if (cur->arr[i].o.origin != CFG_ORIGIN_RUNTIME || finder(ini, cur->arr[i].o.name)) \
			continue;                                                              \
		if (!adder(ini, cur->arr[i].o.name))                                            \
			return -ENOMEM;                                                        \
		ini->arr[ini->n - 1] = cur->arr[i];                                             \
	}

int registry_merge_runtime(struct config *ini)
{
	const struct config *cur = &current->r.cfg; /* writer */
	MERGE(breakers, nbreakers, config_add_breaker, config_breaker)
	MERGE(pools, npools, config_add_pool, config_pool)
	MERGE(keys, nkeys, config_add_key, config_key)
	/* The INI is the source of truth: a runtime key keeps no reference to what it removed. */
	for (size_t i = 0; i < ini->nkeys; i++) {
		struct cfg_key *k = &ini->keys[i];
		if (k->o.origin != CFG_ORIGIN_RUNTIME)
			continue;
		if (k->breaker[0] && !config_breaker(ini, k->breaker)) {
			log_warn("runtime key %s: breaker %s no longer exists; dropped", k->o.name, k->breaker);
			k->breaker[0] = '\0';
		}
		if (k->pool[0] && !config_pool(ini, k->pool)) {
			log_warn("runtime key %s: pool %s no longer exists; dropped", k->o.name, k->pool);
			k->pool[0] = '\0';
		}
	}
	return 0;
}

/* ---- applying --------------------------------------------------------------------------------- */

/* The slot NAME keeps or gets: its current one, else a retired one of that name (revival), else a
 * free or recyclable one. */
static int slot_for(struct shm *s, int reg, const char *name, const struct config *old,
                    const uint32_t *old_slots)
{
	const struct cfg_obj *o = NULL;
	size_t idx = 0;
	if (reg == REG_KEYS) {
		const struct cfg_key *k = config_key(old, name);
		o = k ? &k->o : NULL;
		idx = k ? (size_t)(k - old->keys) : 0;
	} else if (reg == REG_BREAKERS) {
		const struct cfg_breaker *b = config_breaker(old, name);
		o = b ? &b->o : NULL;
		idx = b ? (size_t)(b - old->breakers) : 0;
	} else {
		const struct cfg_pool *p = config_pool(old, name);
		o = p ? &p->o : NULL;
		idx = p ? (size_t)(p - old->pools) : 0;
	}
	if (o && old_slots[idx] != (uint32_t)-1)
		return (int)old_slots[idx];
	int i = shm_slot_find(s, reg, name);
	return i >= 0 ? i : shm_slot_alloc(s, reg);
}

static void retire_removed(struct shm *s, const struct registry *old, const struct config *next)
{
	for (size_t i = 0; i < old->cfg.nkeys; i++)
		if (!config_key(next, old->cfg.keys[i].o.name) && old->key_slot[i] != (uint32_t)-1) {
			shm_slot_retire(s, REG_KEYS, old->key_slot[i]);
			log_info("key %s retired", old->cfg.keys[i].o.name);
		}
	for (size_t i = 0; i < old->cfg.nbreakers; i++)
		if (!config_breaker(next, old->cfg.breakers[i].o.name) && old->breaker_slot[i] != (uint32_t)-1) {
			shm_slot_retire(s, REG_BREAKERS, old->breaker_slot[i]);
			log_info("breaker %s retired", old->cfg.breakers[i].o.name);
		}
	for (size_t i = 0; i < old->cfg.npools; i++)
		if (!config_pool(next, old->cfg.pools[i].o.name) && old->pool_slot[i] != (uint32_t)-1) {
			shm_slot_retire(s, REG_POOLS, old->pool_slot[i]);
			log_info("pool %s retired", old->cfg.pools[i].o.name);
		}
}

static int no_slot(int reg, const char *name)
{
	log_err("no free %s slot for %s", reg == REG_KEYS ? "key" : reg == REG_BREAKERS ? "breaker" : "pool",
	        name);
	return -PROT_ECAPACITY;
}

static int publish_all(struct shm *s, struct registry *r, const struct registry *old)
{
	struct config *c = &r->cfg;
	for (size_t i = 0; i < c->nbreakers; i++) {
		struct cfg_breaker *b = &c->breakers[i];
		int slot = slot_for(s, REG_BREAKERS, b->o.name, &old->cfg, old->breaker_slot);
		if (slot < 0)
			return no_slot(REG_BREAKERS, b->o.name);
		r->breaker_slot[i] = (uint32_t)slot;
		b->c.origin = (uint64_t)b->o.origin;
		shm_slot_publish(s, REG_BREAKERS, (uint32_t)slot, b->o.name, &b->c);
	}
	for (size_t i = 0; i < c->npools; i++) {
		struct cfg_pool *p = &c->pools[i];
		int slot = slot_for(s, REG_POOLS, p->o.name, &old->cfg, old->pool_slot);
		if (slot < 0)
			return no_slot(REG_POOLS, p->o.name);
		r->pool_slot[i] = (uint32_t)slot;
		p->c.origin = (uint64_t)p->o.origin;
		shm_slot_publish(s, REG_POOLS, (uint32_t)slot, p->o.name, &p->c);
	}
	for (size_t i = 0; i < c->nkeys; i++) {
		struct cfg_key *k = &c->keys[i];
		int slot = slot_for(s, REG_KEYS, k->o.name, &old->cfg, old->key_slot);
		if (slot < 0)
			return no_slot(REG_KEYS, k->o.name);
		r->key_slot[i] = (uint32_t)slot;
		const struct cfg_breaker *b = k->breaker[0] ? config_breaker(c, k->breaker) : NULL;
		const struct cfg_pool *p = k->pool[0] ? config_pool(c, k->pool) : NULL;
		k->c.breaker_index = b ? r->breaker_slot[b - c->breakers] : PROT_NO_INDEX;
		k->c.pool_index = p ? r->pool_slot[p - c->pools] : PROT_NO_INDEX;
		k->c.origin = (uint64_t)k->o.origin;
		shm_slot_publish(s, REG_KEYS, (uint32_t)slot, k->o.name, &k->c);
	}
	return 0;
}

int registry_apply(struct shm *s, struct config *next, uint32_t ev)
{
	const struct registry *old = &current->r; /* writer */
	struct box *b = box_new(next);
	if (!b) {
		config_free(next);
		return -ENOMEM;
	}
	/* Removed objects first, so their slots can serve new names at full capacity. A key still
	 * naming a removed breaker/pool is rewritten just below; clients treat an index to a slot
	 * that is not LIVE as "no such layer" (indices are untrusted anyway). */
	retire_removed(s, old, &b->r.cfg);
	int r = publish_all(s, &b->r, old);
	if (r < 0) {
		/* capacity was checked by config_check(): only a segment tampered with gets here */
		box_free(b);
		return r;
	}
	swap(b);
	shm_config_changed(s, ev, ev == EV_CONFIG_RELOADED ? "reload" : "runtime");
	return 0;
}
