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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

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
bool registry_trylock(void)
{
	return pthread_mutex_trylock(&writer) == 0;
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

/* One kind of named object of a configuration (keys, breakers, pools) seen alike: each element
 * starts with its cfg_obj and carries the config block protd publishes at cfg_off, and the registry
 * keeps the slot of element i in slots[i]. */
struct objs {
	int reg;
	const char *what;
	char *base;
	size_t n, stride, cfg_off, origin_off; /* origin_off: of `origin` within the cfg block */
	uint32_t *slots;
};
_Static_assert(offsetof(struct cfg_key, o) == 0 && offsetof(struct cfg_breaker, o) == 0 &&
               offsetof(struct cfg_pool, o) == 0, "objects start with their cfg_obj");

static struct objs objs_of(const struct config *c, const struct registry *r, int reg)
{
	switch (reg) {
	case REG_KEYS:
		return (struct objs){reg, "key", (char *)c->keys, c->nkeys, sizeof *c->keys,
		                     offsetof(struct cfg_key, c), offsetof(struct prot_key_cfg, origin),
		                     r ? r->key_slot : NULL};
	case REG_BREAKERS:
		return (struct objs){reg, "breaker", (char *)c->breakers, c->nbreakers, sizeof *c->breakers,
		                     offsetof(struct cfg_breaker, c), offsetof(struct prot_breaker_cfg, origin),
		                     r ? r->breaker_slot : NULL};
	default:
		return (struct objs){reg, "pool", (char *)c->pools, c->npools, sizeof *c->pools,
		                     offsetof(struct cfg_pool, c), offsetof(struct prot_pool_cfg, origin),
		                     r ? r->pool_slot : NULL};
	}
}

static struct cfg_obj *obj_at(const struct objs *v, size_t i)
{
	return (struct cfg_obj *)(v->base + i * v->stride);
}

/* Index of NAME among v's objects, or -1. */
static ssize_t obj_find(const struct objs *v, const char *name)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(obj_at(v, i)->name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/* The slot NAME keeps or gets: its current one, else a retired one of that name (revival), else a
 * free or recyclable one. */
static int slot_for(struct shm *s, const struct objs *old, const char *name)
{
	ssize_t idx = obj_find(old, name);
	if (idx >= 0 && old->slots[idx] != (uint32_t)-1)
		return (int)old->slots[idx];
	int i = shm_slot_find(s, old->reg, name);
	return i >= 0 ? i : shm_slot_alloc(s, old->reg);
}

static void retire_removed(struct shm *s, const struct registry *old, const struct config *next)
{
	static const int regs[] = {REG_KEYS, REG_BREAKERS, REG_POOLS};
	for (size_t r = 0; r < sizeof regs / sizeof regs[0]; r++) {
		struct objs was = objs_of(&old->cfg, old, regs[r]), now = objs_of(next, NULL, regs[r]);
		for (size_t i = 0; i < was.n; i++) {
			const char *name = obj_at(&was, i)->name;
			if (obj_find(&now, name) < 0 && was.slots[i] != (uint32_t)-1) {
				shm_slot_retire(s, was.reg, was.slots[i]);
				log_info("%s %s retired", was.what, name);
			}
		}
	}
}

/* Give object i of v its slot and publish its config there. */
static int publish_obj(struct shm *s, const struct objs *v, const struct objs *old, size_t i)
{
	struct cfg_obj *o = obj_at(v, i);
	int slot = slot_for(s, old, o->name);
	if (slot < 0) {
		log_err("no free %s slot for %s", v->what, o->name);
		return -PROT_ECAPACITY;
	}
	v->slots[i] = (uint32_t)slot;
	char *cfg = (char *)o + v->cfg_off;
	/* protd's bookkeeping of where the object came from, kept in the segment for re-adoption */
	uint64_t origin = (uint64_t)o->origin;
	memcpy(cfg + v->origin_off, &origin, sizeof origin);
	shm_slot_publish(s, v->reg, (uint32_t)slot, o->name, cfg);
	return 0;
}

/* Breakers and pools first: keys name them by slot index. */
static int publish_all(struct shm *s, struct registry *r, const struct registry *old)
{
	struct config *c = &r->cfg;
	static const int regs[] = {REG_BREAKERS, REG_POOLS, REG_KEYS};
	for (size_t k = 0; k < sizeof regs / sizeof regs[0]; k++) {
		struct objs v = objs_of(c, r, regs[k]), was = objs_of(&old->cfg, old, regs[k]);
		for (size_t i = 0; i < v.n; i++) {
			if (regs[k] == REG_KEYS) {
				struct cfg_key *key = &c->keys[i];
				const struct cfg_breaker *b = key->breaker[0] ? config_breaker(c, key->breaker) : NULL;
				const struct cfg_pool *p = key->pool[0] ? config_pool(c, key->pool) : NULL;
				key->c.breaker_index = b ? r->breaker_slot[b - c->breakers] : PROT_NO_INDEX;
				key->c.pool_index = p ? r->pool_slot[p - c->pools] : PROT_NO_INDEX;
			}
			int rc = publish_obj(s, &v, &was, i);
			if (rc < 0)
				return rc;
		}
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
	shm_config_begin(s);
	retire_removed(s, old, &b->r.cfg);
	int r = publish_all(s, &b->r, old);
	if (r < 0) {
		/* capacity was checked by config_check(): only a segment tampered with gets here */
		shm_config_changed(s, 0, NULL);
		box_free(b);
		return r;
	}
	swap(b);
	shm_config_changed(s, ev, ev == EV_CONFIG_RELOADED ? "reload" : "runtime");
	return 0;
}
