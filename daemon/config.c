/* config.c — protd's configuration as objects in memory (struct config, config.h): the defaults
 * an empty file gives (config_init) and each new key, breaker or pool starts with (config_add),
 * copies and frees, lookups by name, removal, the defaults derived from other values
 * (config_finalize), and the default control socket path. Every other file of the module builds
 * on this one: the INI reader (config_ini.c) and the inline-object rule (config_inline.c) add
 * objects, the checks (config_check.c) read them; outside the module main.c, registry.c and
 * control.c copy, change and apply them. Nothing here touches the segment.
 *
 * Keys, breakers and pools (the named kinds) are arrays in struct config; objects_of() is the one
 * place that maps a kind to its array, and every object starts with its struct cfg_obj, so the
 * kind-generic functions (config_count, config_object, config_find, config_add) serve all three.
 */
#include "config_schema.h"
#include "rate_limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(offsetof(struct cfg_key, o) == 0 && offsetof(struct cfg_breaker, o) == 0 &&
                   offsetof(struct cfg_pool, o) == 0 && offsetof(struct cfg_segment, o) == 0 &&
                   offsetof(struct cfg_daemon, o) == 0 && offsetof(struct cfg_redis, o) == 0,
               "every object starts with its cfg_obj");

void config_init(struct config *c)
{
	*c = (struct config){ 0 };
	snprintf(c->seg.name, sizeof c->seg.name, "%s", PROT_DEFAULT_SEGMENT);
	c->seg.mode = 0600;
	c->seg.geo = (struct seg_geometry){ .max_keys = 64, .max_breakers = 64, .max_pools = 16,
		                            .pool_max_slots = 64, .pool_max_waiters = 128,
		                            .events = 1024, .rate_entities = 65536,
		                            .max_procs = PROC_SLOTS_DEFAULT, .sliding_buckets = 64,
		                            .sliding_max_limit = 1024 };
	c->daemon.tick_ms = 10;
	c->daemon.reclaim_ms = 100;
	c->daemon.rate_grace_ms = RATE_GRACE_DEFAULT_MS;
	c->daemon.max_segment_size = SEG_SIZE_DEFAULT;
	c->redis.connect_timeout_ms = 200;
	c->redis.command_timeout_ms = 50;
	snprintf(c->redis.key_prefix, sizeof c->redis.key_prefix, "prot:");
	c->redis.sync_interval_ms = 5;
	c->redis.lease_ttl_ms = 2000;
	c->redis.hosts = 1;
}

void config_free(struct config *c)
{
	free(c->keys);
	free(c->breakers);
	free(c->pools);
	c->keys = NULL;
	c->breakers = NULL;
	c->pools = NULL;
	c->nkeys = c->nbreakers = c->npools = 0;
}

/* Arrays of objects hold cap(n) elements: the count rounded up to a power of two, so that no
 * capacity field is needed and copies keep the same invariant. */
static size_t cap(size_t n)
{
	size_t c = n ? 1 : 0;
	while (c < n)
		c <<= 1;
	return c;
}

static int dup_array(void **dst, const void *src, size_t n, size_t size)
{
	*dst = NULL;
	if (!n)
		return 0;
	*dst = malloc(cap(n) * size);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, n * size);
	return 0;
}

int config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	void *k = NULL, *b = NULL, *p = NULL;
	if (dup_array(&k, src->keys, src->nkeys, sizeof *src->keys) ||
	    dup_array(&b, src->breakers, src->nbreakers, sizeof *src->breakers) ||
	    dup_array(&p, src->pools, src->npools, sizeof *src->pools)) {
		free(k), free(b), free(p);
		dst->keys = NULL, dst->breakers = NULL, dst->pools = NULL;
		dst->nkeys = dst->nbreakers = dst->npools = 0;
		return -ENOMEM;
	}
	dst->keys = k;
	dst->breakers = b;
	dst->pools = p;
	return 0;
}

/* Grow an array by one zeroed element; returns it or NULL. */
static void *grow(void **arr, size_t *n, size_t size)
{
	size_t cnt = *n;
	if (cap(cnt + 1) != cap(cnt)) {
		void *m = realloc(*arr, cap(cnt + 1) * size);
		if (!m)
			return NULL;
		*arr = m;
	}
	char *e = (char *)*arr + cnt * size;
	memset(e, 0, size);
	(*n)++;
	return e;
}

static void set_name(struct cfg_obj *o, const char *name)
{
	snprintf(o->name, sizeof o->name, "%s", name);
}

/* The array of a named kind's objects, its count and the size of one object (arr NULL for
 * [segment] and [daemon]). */
struct objects {
	void **arr;
	size_t *n;
	size_t size;
};

static struct objects objects_of(struct config *c, enum cfg_kind kind)
{
	switch (kind) {
	case CFG_KEY:
		return (struct objects){ (void **)&c->keys, &c->nkeys, sizeof *c->keys };
	case CFG_BREAKER:
		return (struct objects){ (void **)&c->breakers, &c->nbreakers, sizeof *c->breakers };
	case CFG_POOL:
		return (struct objects){ (void **)&c->pools, &c->npools, sizeof *c->pools };
	default:
		return (struct objects){ NULL, NULL, 0 };
	}
}

size_t config_count(const struct config *c, enum cfg_kind kind)
{
	struct objects s = objects_of((struct config *)c, kind);
	return s.arr ? *s.n : 1;
}

void *config_object(const struct config *c, enum cfg_kind kind, size_t i)
{
	if (kind == CFG_SEGMENT)
		return (void *)&c->seg;
	if (kind == CFG_DAEMON)
		return (void *)&c->daemon;
	if (kind == CFG_REDIS)
		return (void *)&c->redis;
	struct objects s = objects_of((struct config *)c, kind);
	return (char *)*s.arr + i * s.size;
}

void *config_find(const struct config *c, enum cfg_kind kind, const char *name)
{
	struct objects s = objects_of((struct config *)c, kind);
	for (size_t i = 0; s.arr && i < *s.n; i++) {
		struct cfg_obj *o = config_object(c, kind, i);
		if (strcmp(o->name, name) == 0)
			return o;
	}
	return NULL;
}

static void key_defaults(void *obj)
{
	struct cfg_key *k = obj;
	k->c.rate_algo = PROT_RATE_FIXED_WINDOW; /* Hammer's default, as the API's algo 0 */
	k->c.rate_full_policy = RATE_FULL_DENY;
	k->c.rate_clock = RATE_CLOCK_MONO;
	k->c.breaker_index = PROT_NO_INDEX;
	k->c.pool_index = PROT_NO_INDEX;
	k->c.timeout_ms = PROT_DEFAULT_TIMEOUT_MS;
	k->c.rate_scope = RATE_SCOPE_LOCAL;
}

static void breaker_defaults(void *obj)
{
	struct cfg_breaker *b = obj;
	b->c.strategy = PROT_BREAKER_STANDARD;
	b->c.half_open_probes = 1;
}

static void pool_defaults(void *obj)
{
	struct cfg_pool *p = obj;
	p->c.checkout_timeout_ms = PROT_DEFAULT_TIMEOUT_MS;
	p->c.strategy = 0;
}

static void (*const defaults[CFG_KIND_COUNT_])(void *obj) = {
	[CFG_KEY] = key_defaults, [CFG_BREAKER] = breaker_defaults, [CFG_POOL] = pool_defaults,
};

void *config_add(struct config *c, enum cfg_kind kind, const char *name)
{
	struct objects s = objects_of(c, kind);
	struct cfg_obj *o = s.arr ? grow(s.arr, s.n, s.size) : NULL;
	if (!o)
		return NULL;
	set_name(o, name);
	defaults[kind](o);
	return o;
}

struct cfg_key *config_add_key(struct config *c, const char *name)
{
	return config_add(c, CFG_KEY, name);
}
struct cfg_breaker *config_add_breaker(struct config *c, const char *name)
{
	return config_add(c, CFG_BREAKER, name);
}
struct cfg_pool *config_add_pool(struct config *c, const char *name)
{
	return config_add(c, CFG_POOL, name);
}

struct cfg_key *config_key(const struct config *c, const char *name)
{
	return config_find(c, CFG_KEY, name);
}
struct cfg_breaker *config_breaker(const struct config *c, const char *name)
{
	return config_find(c, CFG_BREAKER, name);
}
struct cfg_pool *config_pool(const struct config *c, const char *name)
{
	return config_find(c, CFG_POOL, name);
}

/* Remove object i of a named kind, keeping the order of the others. */
static void del(struct config *c, enum cfg_kind kind, size_t i)
{
	struct objects s = objects_of(c, kind);
	char *a = *s.arr;
	memmove(a + i * s.size, a + (i + 1) * s.size, (*s.n - i - 1) * s.size);
	(*s.n)--;
}

void config_del_breaker(struct config *c, size_t i)
{
	del(c, CFG_BREAKER, i);
}

void config_del_pool(struct config *c, size_t i)
{
	del(c, CFG_POOL, i);
}

void config_finalize(struct config *c)
{
	for (size_t i = 0; i < c->npools; i++)
		if (!cfg_seen(&c->pools[i].o, CFG_POOL, "reclaim_interval"))
			c->pools[i].c.reclaim_ms = c->daemon.reclaim_ms;
	/* a global key decides on calendar windows (every host agrees which window it is) */
	for (size_t i = 0; i < c->nkeys; i++)
		if (c->keys[i].c.rate_scope == RATE_SCOPE_GLOBAL && !cfg_seen(&c->keys[i].o, CFG_KEY, "rate_clock"))
			c->keys[i].c.rate_clock = RATE_CLOCK_REALTIME;
	/* [redis] makes the segment's global-limits area (a capacity: fixed for the segment's life) */
	c->seg.geo.rate_global = c->redis.address[0] != '\0';
	for (size_t i = 0; i < c->nbreakers; i++)
		if (!cfg_seen(&c->breakers[i].o, CFG_BREAKER, "rate_min_calls"))
			c->breakers[i].c.rate_min_calls = c->breakers[i].c.rate_window_calls;
}

void config_default_control(const char *segname, char *buf, size_t n)
{
	const char *base = segname[0] == '/' ? segname + 1 : segname;
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0)
		snprintf(buf, n, "/run/prot/%s.sock", base);
	else if (xdg && xdg[0] == '/')
		snprintf(buf, n, "%s/prot/%s.sock", xdg, base);
	else
		snprintf(buf, n, "/tmp/prot-%u/%s.sock", (unsigned)geteuid(), base);
}
