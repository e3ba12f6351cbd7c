/* control.c — protd's control socket: runtime configuration (configure_protection, `protctl set`,
 * prot_breaker_create) through protd, which stays the only writer of configuration.
 *
 * Protocol: a Unix stream socket; one request line per connection, words separated by spaces,
 * values as name=value; the reply's first line is `ok` or `error <message>`, then detail lines.
 *   ping                          -> ok, "generation N"
 *   get KEY                       -> ok, one "name: value" line per setting of the key, its
 *                                    breaker (breaker_*) and its pool (pool_*)
 *   set KEY name=value ...        -> names of an INI [key] section, breaker_* / pool_* included;
 *                                    validated by the INI's parser (same messages); creates the key
 *                                    when missing; replies "name: old -> new" per change
 *   breaker-create NAME name=value ...  options of a [breaker] section; an existing breaker with
 *                                    the same options is ok, with other options `error exists: ...`
 *   breaker-remove NAME           -> removes it (`error no such breaker: NAME`; refused while a key
 *                                    names it); defined again later, it is fresh
 *   pool-create NAME name=value ...  options of a [pool] section, likewise (an existing pool with
 *                                    the same options keeps its state, as nginx keeps a zone)
 *   pool-remove NAME                 the pool is gone: its slot is retired (lookups miss it, its
 *                                    waiters are cancelled, its leases are stale); refused while a
 *                                    key names it; defining it again makes a fresh one
 * Who may send which request, deadlines, and the exact rule for when a request is applied (so an
 * `error` reply always means "not applied"): daemon/ctlsock.c, which serves the socket. ping and
 * get change nothing and are open to readers of the segment; set and breaker-create need a writer
 * (`error permission denied: ...` otherwise), and are applied only if the caller is still there
 * when the validated change is about to be written (ctl_caller.present).
 *
 * Runtime changes are written like reloads (registry_apply: each slot under its seqlock, counters
 * and states kept), bump config_gen and emit EV_CONFIG_CHANGED. A later SIGHUP re-applies the INI,
 * the source of truth: runtime changes to objects the INI defines are overwritten; objects made at
 * runtime only are kept.
 *
 * Requests run in the socket's thread; they read the registry under RCU (get) or take the
 * registry's writer lock (set, breaker-create).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protd.h"

#define MAX_WORDS 64

/* The request being served: the segment and the caller (one thread serves requests). */
static struct {
	struct shm *shm;
	struct ctl_caller *who;
} ctl;

/* ---- replies ----------------------------------------------------------------------------------- */
struct out {
	char *buf;
	size_t n, len;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
	if (o->len >= o->n)
		return;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(o->buf + o->len, o->n - o->len, fmt, ap);
	va_end(ap);
	if (w > 0)
		o->len = o->len + (size_t)w < o->n ? o->len + (size_t)w : o->n - 1;
}

static void errors_reply(struct out *o, const struct cfg_errors *e)
{
	outf(o, "error %s\n", e->n ? e->msg[0] : "invalid request");
	for (size_t i = 1; i < e->n; i++)
		outf(o, "%s\n", e->msg[i]);
}

/* ---- get ----------------------------------------------------------------------------------------- */
static void list_options(struct out *o, enum cfg_kind kind, const void *obj, const char *prefix)
{
	char v[128];
	for (const char *const *n = config_option_names(kind); *n; n++) {
		config_get_value(kind, obj, *n, v, sizeof v);
		outf(o, "%s%s: %s\n", prefix, *n, v);
	}
}

static void do_get(struct out *o, const char *key, char **w, int nw)
{
	(void)w;
	(void)nw;
	registry_read_lock();
	const struct registry *r = registry_current();
	const struct cfg_key *k = r ? config_key(&r->cfg, key) : NULL;
	if (!k) {
		outf(o, "error no such key: %s\n", key);
	} else {
		outf(o, "ok\n");
		list_options(o, CFG_KEY, k, "");
		const struct cfg_breaker *b = k->breaker[0] ? config_breaker(&r->cfg, k->breaker) : NULL;
		const struct cfg_pool *p = k->pool[0] ? config_pool(&r->cfg, k->pool) : NULL;
		if (b)
			list_options(o, CFG_BREAKER, b, "breaker_");
		if (p)
			list_options(o, CFG_POOL, p, "pool_");
	}
	registry_read_unlock();
}

/* ---- set ------------------------------------------------------------------------------------------ */
/* The value of a key-section option NAME for key KEY in c ("" when absent). */
static void key_value(const struct config *c, const char *key, const char *name, char *v, size_t n)
{
	enum cfg_kind kind;
	const char *sub;
	const struct cfg_key *k = config_key(c, key);
	snprintf(v, n, "(none)");
	if (!k || config_route(name, &kind, &sub) < 0)
		return;
	const void *obj = k;
	if (kind == CFG_BREAKER)
		obj = k->breaker[0] ? config_breaker(c, k->breaker) : NULL;
	else if (kind == CFG_POOL)
		obj = k->pool[0] ? config_pool(c, k->pool) : NULL;
	if (obj)
		config_get_value(kind, obj, sub, v, n);
}

/* Runtime messages carry no file position. */
static void forget_lines(struct config *c)
{
	for (size_t i = 0; i < c->nkeys; i++)
		c->keys[i].o.line = 0;
	for (size_t i = 0; i < c->nbreakers; i++)
		c->breakers[i].o.line = 0;
	for (size_t i = 0; i < c->npools; i++)
		c->pools[i].o.line = 0;
}

/* Split "name=value" in place. */
static int split(char *w, char **value, struct cfg_errors *e)
{
	char *eq = strchr(w, '=');
	if (!eq || eq == w) {
		cfg_errors_add(e, "expected name=value, got \"%s\"", w);
		return -1;
	}
	*eq = '\0';
	*value = eq + 1;
	return 0;
}

static int set_values(struct config *c, size_t ki, char **w, int nw, struct cfg_errors *e)
{
	for (int i = 0; i < nw; i++) {
		char *value, err[CFG_ERR_MAX];
		enum cfg_kind kind;
		const char *sub;
		if (split(w[i], &value, e))
			continue;
		if (config_route(w[i], &kind, &sub) < 0) {
			cfg_errors_add(e, "unknown option \"%s\" for a key", w[i]);
			continue;
		}
		char why[CFG_ERR_MAX];
		void *obj = kind == CFG_KEY ? &c->keys[ki]
		                            : config_inline_target(c, ki, kind, CFG_ORIGIN_RUNTIME, why);
		if (!obj) {
			cfg_errors_add(e, "%s", why);
			continue;
		}
		if (config_set_value(kind, obj, sub, value, err))
			cfg_errors_add(e, "%s", err);
	}
	return e->n ? -1 : 0;
}

static void report_changes(struct out *o, const struct config *before, const struct config *after,
                           const char *key, char **w, int nw, bool created)
{
	outf(o, "ok\n");
	if (created)
		outf(o, "key %s created\n", key);
	for (int i = 0; i < nw; i++) {
		char a[128], b[128];
		key_value(before, key, w[i], a, sizeof a);
		key_value(after, key, w[i], b, sizeof b);
		if (strcmp(a, b) == 0)
			outf(o, "%s: %s (unchanged)\n", w[i], b);
		else
			outf(o, "%s: %s -> %s\n", w[i], a, b);
	}
}

/* Check, apply and free next (holding the writer lock). The last step before writing the segment
 * is asking whether the caller is still there: one that gave up gets nothing applied. */
static int check_apply(struct config *next, struct cfg_errors *e, uint32_t ev)
{
	config_finalize(next);
	forget_lines(next);
	if (config_check(next, e)) {
		config_free(next);
		return -1;
	}
	if (ctl.who && ctl.who->present && !ctl.who->present(ctl.who->arg)) {
		ctl.who->gone = true;
		config_free(next);
		cfg_errors_add(e, "the caller gave up: not applied");
		return -1;
	}
	int r = registry_apply(ctl.shm, next, ev);
	if (r < 0)
		cfg_errors_add(e, "cannot apply: %s", prot_strerror(r));
	return r;
}

static void do_set(struct out *o, const char *key, char **w, int nw)
{
	struct cfg_errors e = { 0 };
	struct config before, next;
	char err[CFG_ERR_MAX];
	registry_lock();
	if (registry_snapshot(&before) < 0 || config_copy(&next, &before) < 0) {
		outf(o, "error out of memory\n");
		goto out;
	}
	struct cfg_key *k = config_key(&next, key);
	bool created = !k;
	if (created) {
		if (config_check_name("key", key, err))
			cfg_errors_add(&e, "%s", err);
		else if ((k = config_add_key(&next, key)))
			k->o.origin = CFG_ORIGIN_RUNTIME;
	}
	if (e.n || !k || set_values(&next, (size_t)(k - next.keys), w, nw, &e) < 0) {
		config_free(&next);
		errors_reply(o, &e);
		goto out;
	}
	struct config after;
	if (config_copy(&after, &next) < 0 || check_apply(&next, &e, EV_CONFIG_CHANGED) < 0) {
		errors_reply(o, &e);
		config_free(&after);
		goto out;
	}
	/* words were split in place: w[i] is now the name alone */
	report_changes(o, &before, &after, key, w, nw, created);
	log_info("control: set %s (%d settings)%s", key, nw, created ? ", key created" : "");
	config_free(&after);
out:
	config_free(&before);
	registry_unlock();
	cfg_errors_free(&e);
}

/* ---- breaker-create, pool-create ------------------------------------------------------------------- */
/* What differs between creating a breaker and a pool at runtime: the rest of create_object() is one
 * path for both. */
static void *find_breaker(const struct config *c, const char *n) { return config_breaker(c, n); }
static void *add_breaker(struct config *c, const char *n) { return config_add_breaker(c, n); }
static void *find_pool(const struct config *c, const char *n) { return config_pool(c, n); }
static void *add_pool(struct config *c, const char *n) { return config_add_pool(c, n); }

static const struct create_kind {
	const char *what;
	enum cfg_kind kind;
	int reg; /* REG_BREAKERS or REG_POOLS */
	uint32_t created_event;
	bool running_defaults; /* the options default from the running [daemon] (reclaim_interval) */
	const char *same_note;  /* after "exists with the same options" */
	void *(*find)(const struct config *c, const char *name);
	void *(*add)(struct config *c, const char *name);
	size_t obj_size, cfg_off, origin_off; /* origin_off: of the cfg's origin word, within the cfg */
} breaker_kind = {"breaker", CFG_BREAKER, REG_BREAKERS, EV_BREAKER_CREATED, false, "", find_breaker,
                  add_breaker, sizeof(struct cfg_breaker), offsetof(struct cfg_breaker, c),
                  offsetof(struct prot_breaker_cfg, origin)},
  pool_kind = {"pool", CFG_POOL, REG_POOLS, EV_POOL_CREATED, true, " (state kept)", find_pool, add_pool,
               sizeof(struct cfg_pool), offsetof(struct cfg_pool, c), offsetof(struct prot_pool_cfg, origin)};
_Static_assert(offsetof(struct cfg_breaker, o) == 0 && offsetof(struct cfg_pool, o) == 0,
               "created objects start with their cfg_obj");
#define CREATE_CFG_BYTES sizeof(struct prot_pool_cfg)
_Static_assert(sizeof(struct prot_breaker_cfg) == CREATE_CFG_BYTES, "both cfg blocks compare as one size");

/* Same options as the existing object: the cfg blocks equal, their origin words aside. */
static bool same_options(const struct create_kind *k, const char *have, const char *want)
{
	unsigned char a[CREATE_CFG_BYTES], b[CREATE_CFG_BYTES];
	memcpy(a, have + k->cfg_off, sizeof a);
	memcpy(b, want + k->cfg_off, sizeof b);
	memset(a + k->origin_off, 0, sizeof(uint64_t));
	memset(b + k->origin_off, 0, sizeof(uint64_t));
	return memcmp(a, b, sizeof a) == 0;
}

/* Validate NAME's options into a scratch config, then: the same options again keep the existing
 * object (ok), other options are refused (exists), else it is added as a runtime object. */
static void create_object(struct out *o, const struct create_kind *k, const char *name, char **w, int nw)
{
	struct cfg_errors e = { 0 };
	struct config next, scratch;
	char err[CFG_ERR_MAX];
	config_init(&scratch);
	registry_lock();
	if (registry_snapshot(&next) < 0) {
		outf(o, "error out of memory\n");
		goto out;
	}
	if (k->running_defaults)
		scratch.daemon = next.daemon;
	char *want = k->add(&scratch, name);
	if (!want)
		cfg_errors_add(&e, "out of memory");
	else if (config_check_name(k->what, name, err))
		cfg_errors_add(&e, "%s", err);
	for (int i = 0; !e.n && i < nw; i++) {
		char *value;
		if (split(w[i], &value, &e) == 0 && config_set_value(k->kind, want, w[i], value, err))
			cfg_errors_add(&e, "%s", err);
	}
	if (e.n) {
		config_free(&next);
		errors_reply(o, &e);
		goto out;
	}
	config_finalize(&scratch);
	const char *have = k->find(&next, name);
	if (have) {
		if (same_options(k, have, want))
			outf(o, "ok\n%s %s exists with the same options%s\n", k->what, name, k->same_note);
		else
			outf(o, "error exists: %s %s exists with other options\n", k->what, name);
		config_free(&next);
		goto out;
	}
	char *made = k->add(&next, name);
	if (!made) {
		config_free(&next);
		outf(o, "error out of memory\n");
		goto out;
	}
	memcpy(made, want, k->obj_size);
	((struct cfg_obj *)made)->origin = CFG_ORIGIN_RUNTIME;
	if (check_apply(&next, &e, EV_CONFIG_CHANGED) < 0) {
		errors_reply(o, &e);
		goto out;
	}
	int slot = shm_slot_find(ctl.shm, k->reg, name);
	prot_event_emit(ctl.shm->hdr, k->created_event, slot < 0 ? 0 : (uint32_t)slot, name, 0, 0);
	outf(o, "ok\n%s %s created\n", k->what, name);
	log_info("control: %s %s created", k->what, name);
out:
	registry_unlock();
	config_free(&scratch);
	cfg_errors_free(&e);
}

static void do_breaker_create(struct out *o, const char *name, char **w, int nw)
{
	create_object(o, &breaker_kind, name, w, nw);
}

static void do_pool_create(struct out *o, const char *name, char **w, int nw)
{
	create_object(o, &pool_kind, name, w, nw);
}

/* ---- breaker-remove -------------------------------------------------------------------------------- */
/* The breaker leaves the configuration (a breaker of the INI comes back at the next reload unless
 * the file drops it too); its slot is retired, and a later definition recycles it fresh. A key
 * that names it keeps it: the removal is refused, naming the key. */
static void do_breaker_remove(struct out *o, const char *name, char **w, int nw)
{
	(void)w;
	(void)nw;
	struct cfg_errors e = { 0 };
	struct config next;
	registry_lock();
	if (registry_snapshot(&next) < 0) {
		outf(o, "error out of memory\n");
		goto out;
	}
	struct cfg_breaker *b = config_breaker(&next, name);
	if (!b) {
		config_free(&next);
		outf(o, "error no such breaker: %s\n", name);
		goto out;
	}
	for (size_t i = 0; i < next.nkeys; i++)
		if (strcmp(next.keys[i].breaker, name) == 0) {
			outf(o, "error breaker %s is used by key %s: remove or change the key first\n", name,
			     next.keys[i].o.name);
			config_free(&next);
			goto out;
		}
	config_del_breaker(&next, (size_t)(b - next.breakers));
	if (check_apply(&next, &e, EV_CONFIG_CHANGED) < 0) {
		errors_reply(o, &e);
		goto out;
	}
	outf(o, "ok\nbreaker %s removed\n", name);
	log_info("control: breaker %s removed", name);
out:
	registry_unlock();
	cfg_errors_free(&e);
}

/* ---- pool-remove -------------------------------------------------------------------------------- */
static void do_pool_remove(struct out *o, const char *name, char **w, int nw)
{
	(void)w;
	(void)nw;
	struct cfg_errors e = { 0 };
	struct config next;
	registry_lock();
	if (registry_snapshot(&next) < 0) {
		outf(o, "error out of memory\n");
		goto out;
	}
	struct cfg_pool *have = config_pool(&next, name);
	const struct cfg_key *user = NULL;
	for (size_t i = 0; have && i < next.nkeys && !user; i++)
		if (strcmp(next.keys[i].pool, name) == 0)
			user = &next.keys[i];
	if (!have || user) {
		if (!have)
			outf(o, "error no such pool: %s\n", name);
		else
			outf(o, "error pool %s is used by key %s: remove the key's pool first\n", name, user->o.name);
		config_free(&next);
		goto out;
	}
	int slot = shm_slot_find(ctl.shm, REG_POOLS, name);
	config_del_pool(&next, (size_t)(have - next.pools));
	if (check_apply(&next, &e, EV_CONFIG_CHANGED) < 0) {
		errors_reply(o, &e);
		goto out;
	}
	prot_event_emit(ctl.shm->hdr, EV_POOL_REMOVED, slot < 0 ? 0 : (uint32_t)slot, name, 0, 0);
	outf(o, "ok\npool %s removed\n", name);
	log_info("control: pool %s removed", name);
out:
	registry_unlock();
	cfg_errors_free(&e);
}

/* ---- requests ------------------------------------------------------------------------------------ */
/* A writing request from a caller who may only read: the refusal, true. */
static bool refuse_reader(struct out *o, const char *verb)
{
	if (!ctl.who || ctl.who->peer == CTL_PEER_WRITER)
		return false;
	outf(o, "error permission denied: %s; %s changes the configuration and needs write permission "
	        "on the segment\n", ctl.who->why ? ctl.who->why : "a reader", verb);
	return true;
}

static void do_ping(struct out *o, const char *name, char **w, int nw)
{
	(void)name;
	(void)w;
	(void)nw;
	outf(o, "ok\ngeneration %" PRIu64 "\n",
	     atomic_load_explicit(&ctl.shm->hdr->config_gen, memory_order_acquire));
}

/* The requests protd serves, one row each: the verb, its usage, how many words follow the verb
 * (min and max; -1 = any number), whether it changes the configuration (writers only), and the
 * handler, called with the word after the verb (or NULL) and the rest. */
static const struct request {
	const char *verb, *usage;
	int min_args, max_args;
	bool writes;
	void (*run)(struct out *o, const char *name, char **w, int nw);
} requests[] = {
	{"ping", "ping", 0, 0, false, do_ping},
	{"get", "get KEY", 1, 1, false, do_get},
	{"set", "set KEY name=value ...", 1, -1, true, do_set},
	{"breaker-create", "breaker-create NAME name=value ...", 1, -1, true, do_breaker_create},
	{"breaker-remove", "breaker-remove NAME", 1, 1, true, do_breaker_remove},
	{"pool-create", "pool-create NAME name=value ...", 1, -1, true, do_pool_create},
	{"pool-remove", "pool-remove NAME", 1, 1, true, do_pool_remove},
};

static void unknown_request(struct out *o)
{
	outf(o, "error unknown request (expected ");
	for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++)
		outf(o, "%s%s", i ? ", " : "", requests[i].usage);
	outf(o, ")\n");
}

void control_handle(struct shm *s, const char *req, struct ctl_caller *who, char *reply, size_t n)
{
	char line[CTL_REQ_MAX], *w[MAX_WORDS], *save = NULL;
	int nw = 0;
	struct out o = { reply, n, 0 };
	reply[0] = '\0';
	ctl.shm = s;
	ctl.who = who;
	snprintf(line, sizeof line, "%s", req);
	line[strcspn(line, "\r\n")] = '\0';
	for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (nw == MAX_WORDS) {
			outf(&o, "error too many words (at most %d)\n", MAX_WORDS);
			return;
		}
		w[nw++] = t;
	}
	const struct request *r = NULL;
	for (size_t i = 0; nw && i < sizeof requests / sizeof requests[0]; i++)
		if (strcmp(w[0], requests[i].verb) == 0)
			r = &requests[i];
	if (!r) {
		unknown_request(&o);
		return;
	}
	int args = nw - 1;
	if (args < r->min_args || (r->max_args >= 0 && args > r->max_args)) {
		outf(&o, "error usage: %s\n", r->usage);
		return;
	}
	if (r->writes && refuse_reader(&o, r->verb))
		return;
	r->run(&o, args ? w[1] : NULL, w + 2, args ? args - 1 : 0);
}
