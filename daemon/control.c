/* control.c — protd's control socket: runtime configuration (configure_protection, `protctl set`,
 * prot_breaker_create, prot_pool_create) through protd, which stays the only writer of
 * configuration.
 *
 * Protocol (the schema, every request and record: man/prot-control.7.scd; version
 * PROT_WIRE_PROTOCOL): a Unix stream socket; one request line per connection, words separated by
 * spaces, values as name=value. The reply's first line is `ok` or `error <message>`; after `ok`,
 * one record a line, "TYPE name=value ..." (lib/wire.c writes them); after `error`, more lines of
 * the message. The requests are the table at the end of this file:
 *   ping                          -> protd protocol=N generation=N
 *   get KEY                       -> one `value` record per option of the key, its breaker and
 *                                    its pool (kind, name, option, setting, value)
 *   set KEY name=value ...        -> names of an INI [key] section, breaker_* / pool_* included;
 *                                    validated by the INI's parser (same messages); creates the key
 *                                    when missing (a `created` record); one `change` record per
 *                                    setting (kind, name, option, setting, old, new, changed)
 *   breaker-create NAME name=value ...  options of a [breaker] section: `created`; an existing
 *   pool-create NAME name=value ...     object with the same options is `kept` (its state too, as
 *                                    nginx keeps a zone), with other options `error exists: ...`
 *   breaker-remove NAME           -> `removed`: its slot is retired (lookups miss it; a pool's
 *   pool-remove NAME                 waiters are cancelled, its leases are stale); refused while a
 *                                    key names it (`error no such ...` when there is none);
 *                                    defined again later, it is fresh
 * Creating and removing are one path each for both kinds (create_object, remove_object, with a
 * per-kind descriptor): the same records, messages, log lines and events (*_created, *_removed).
 * Who may send which request, deadlines, and the exact rule for when a request is applied (so an
 * `error` reply always means "not applied"): daemon/ctlsock.c, which serves the socket. ping and
 * get change nothing and are open to readers of the segment; the others need a writer
 * (`error permission denied: ...` otherwise), and are applied only if the caller is still there
 * when the validated change is about to be written (ctl_caller.present).
 *
 * Runtime changes are written like reloads (registry_apply: each slot under its seqlock, counters
 * and states kept), bump config_gen and emit EV_CONFIG_CHANGED. A later SIGHUP re-applies the INI,
 * the source of truth: runtime changes to objects the INI defines are overwritten; objects made at
 * runtime only are kept.
 *
 * Requests run in the socket's thread; they read the registry under RCU (get) or take the
 * registry's writer lock (the others).
 *
 * REPLY SIZE. A reply is at most CTL_REPLY_MAX - 1 bytes, and a record is written whole or not at
 * all (wire_record_format). The largest reply is set's: its `created` record and one `change` per
 * setting (at most MAX_WORDS - 2), so at most MAX_WORDS - 1 records, each of a fixed part, the
 * setting twice (option is part of it; bounded together by the request line) and at most three
 * values (name, old, new) of at most VALUE_MAX escaped bytes (a name: 3 * PROT_NAME_MAX; numbers
 * and words are shorter). The _Static_assert below checks that this fits, so a reply is never cut.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protd.h"
#include "wire.h"

#define MAX_WORDS 64
#define VALUE_MAX (3 * PROT_NAME_MAX) /* a value as a record carries it, escaped */
#define RECORD_FIXED 96               /* a record's type, field names, separators, "changed=false" */
_Static_assert((MAX_WORDS - 1) * (RECORD_FIXED + 3 * VALUE_MAX) + 2 * CTL_REQ_MAX + 4 < CTL_REPLY_MAX,
               "set's records always fit a reply");

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

/* One record, whole (see REPLY SIZE). */
static void out_record(struct out *o, const struct wire_record *r)
{
	if (o->len < o->n)
		o->len += wire_record_format(o->buf + o->len, o->n - o->len, r);
}

/* "TYPE kind=KIND name=NAME": what happened to one object (created, kept, removed). */
static void out_object(struct out *o, const char *type, const char *kind, const char *name)
{
	out_record(o, &(struct wire_record){ type, 2, { { "kind", kind }, { "name", name } } });
}

static void errors_reply(struct out *o, const struct cfg_errors *e)
{
	outf(o, "error %s\n", e->n ? e->msg[0] : "invalid request");
	for (size_t i = 1; i < e->n; i++)
		outf(o, "%s\n", e->msg[i]);
}

/* ---- one option of a key, as get and set report it --------------------------------------------- */
/* Option SETTING of key KEY (a [key] name, breaker_* / pool_* included) in c: the object it lives
 * in (its kind: the key, or the breaker / pool the key names), that object's option name, and its value,
 * unless the object or the value does not exist. */
struct option_view {
	const char *kind, *name, *option;
	bool has_value;
	char value[128];
};

static void option_view(const struct config *c, const char *key, const char *setting,
                        struct option_view *v)
{
	enum cfg_kind kind = CFG_KEY;
	const char *sub = setting;
	const struct cfg_key *k = config_key(c, key);
	*v = (struct option_view){ .name = key, .option = setting };
	if (config_route(setting, &kind, &sub) < 0)
		kind = CFG_KEY, sub = setting;
	v->kind = config_kind_name(kind);
	v->option = sub;
	const void *obj = k;
	if (k && kind == CFG_BREAKER)
		obj = k->breaker[0] ? config_breaker(c, v->name = k->breaker) : NULL;
	else if (k && kind == CFG_POOL)
		obj = k->pool[0] ? config_pool(c, v->name = k->pool) : NULL;
	/* a key's breaker or pool that names nothing has no value (not the text "(none)") */
	bool no_ref = kind == CFG_KEY && k &&
	              ((!strcmp(sub, "breaker") && !k->breaker[0]) || (!strcmp(sub, "pool") && !k->pool[0]));
	if (obj && !no_ref) {
		config_get_value(kind, obj, sub, v->value, sizeof v->value);
		v->has_value = true;
	}
}

/* ---- get ----------------------------------------------------------------------------------------- */
static void list_options(struct out *o, const struct config *c, const char *key, enum cfg_kind kind,
                         const char *prefix)
{
	for (const char *const *n = config_option_names(kind); *n; n++) {
		char setting[64];
		struct option_view v;
		snprintf(setting, sizeof setting, "%s%s", prefix, *n);
		option_view(c, key, setting, &v);
		out_record(o, &(struct wire_record){ "value", 5, { { "kind", v.kind }, { "name", v.name },
		           { "option", v.option }, { "setting", setting },
		           { "value", v.has_value ? v.value : NULL } } });
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
		list_options(o, &r->cfg, key, CFG_KEY, "");
		if (k->breaker[0] && config_breaker(&r->cfg, k->breaker))
			list_options(o, &r->cfg, key, CFG_BREAKER, "breaker_");
		if (k->pool[0] && config_pool(&r->cfg, k->pool))
			list_options(o, &r->cfg, key, CFG_POOL, "pool_");
	}
	registry_read_unlock();
}

/* ---- set ------------------------------------------------------------------------------------------ */
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

/* One `change` record per setting: where it lives now, its value before and after. */
static void report_changes(struct out *o, const struct config *before, const struct config *after,
                           const char *key, char **w, int nw, bool created)
{
	outf(o, "ok\n");
	if (created)
		out_object(o, "created", "key", key);
	for (int i = 0; i < nw; i++) {
		struct option_view a, b;
		option_view(before, key, w[i], &a);
		option_view(after, key, w[i], &b);
		bool same = a.has_value == b.has_value && (!a.has_value || strcmp(a.value, b.value) == 0);
		out_record(o, &(struct wire_record){ "change", 7, { { "kind", b.kind }, { "name", b.name },
		           { "option", b.option }, { "setting", w[i] }, { "old", a.has_value ? a.value : NULL },
		           { "new", b.has_value ? b.value : NULL }, { "changed", same ? "false" : "true" } } });
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

/* ---- creating and removing breakers and pools ------------------------------------------------------ */
/* What differs between a breaker and a pool made or removed at runtime: create_object() and
 * remove_object() are one path for both. */
static void *find_breaker(const struct config *c, const char *n) { return config_breaker(c, n); }
static void *add_breaker(struct config *c, const char *n) { return config_add_breaker(c, n); }
static void del_breaker(struct config *c, void *b)
{
	config_del_breaker(c, (size_t)((struct cfg_breaker *)b - c->breakers));
}
static bool same_breaker(const void *have, const void *want)
{
	return breaker_cfg_same(&((const struct cfg_breaker *)have)->c, &((const struct cfg_breaker *)want)->c);
}
static void *find_pool(const struct config *c, const char *n) { return config_pool(c, n); }
static void *add_pool(struct config *c, const char *n) { return config_add_pool(c, n); }
static void del_pool(struct config *c, void *p)
{
	config_del_pool(c, (size_t)((struct cfg_pool *)p - c->pools));
}
/* The same cfg block, its origin word aside (protd's bookkeeping). */
static bool same_pool(const void *have, const void *want)
{
	struct prot_pool_cfg a = ((const struct cfg_pool *)have)->c, b = ((const struct cfg_pool *)want)->c;
	a.origin = b.origin = 0;
	return memcmp(&a, &b, sizeof a) == 0;
}

static const struct object_kind {
	const char *what;
	enum cfg_kind kind;
	int reg; /* REG_BREAKERS or REG_POOLS */
	uint32_t created_event, removed_event;
	bool running_defaults; /* the options default from the running [daemon] (reclaim_interval) */
	void *(*find)(const struct config *c, const char *name);
	void *(*add)(struct config *c, const char *name);
	void (*del)(struct config *c, void *obj);
	bool (*same)(const void *have, const void *want); /* "exists with the same options" */
	size_t obj_size;
	size_t ref_off; /* of a key's reference to such an object (char[PROT_NAME_BYTES]) */
} breaker_kind = { "breaker", CFG_BREAKER, REG_BREAKERS, EV_BREAKER_CREATED, EV_BREAKER_REMOVED, false,
                   find_breaker, add_breaker, del_breaker, same_breaker, sizeof(struct cfg_breaker),
                   offsetof(struct cfg_key, breaker) },
  pool_kind = { "pool", CFG_POOL, REG_POOLS, EV_POOL_CREATED, EV_POOL_REMOVED, true, find_pool, add_pool,
                del_pool, same_pool, sizeof(struct cfg_pool), offsetof(struct cfg_key, pool) };
_Static_assert(offsetof(struct cfg_breaker, o) == 0 && offsetof(struct cfg_pool, o) == 0,
               "created objects start with their cfg_obj");

/* The event of what happened to NAME's slot (found again after the apply: a removed slot is
 * retired, not freed, so it still carries the name). */
static void object_event(const struct object_kind *k, uint32_t ev, const char *name)
{
	int slot = shm_slot_find(ctl.shm, k->reg, name);
	prot_event_emit(ctl.shm->hdr, ev, slot < 0 ? 0 : (uint32_t)slot, name, 0, 0);
}

/* Apply next (holding the writer lock; it is taken over) and say what was DONE to NAME: its event,
 * its record, the log line. */
static void apply_object(struct out *o, const struct object_kind *k, struct config *next,
                         struct cfg_errors *e, const char *name, bool created)
{
	if (check_apply(next, e, EV_CONFIG_CHANGED) < 0) {
		errors_reply(o, e);
		return;
	}
	const char *done = created ? "created" : "removed";
	object_event(k, created ? k->created_event : k->removed_event, name);
	outf(o, "ok\n");
	out_object(o, done, k->what, name);
	log_info("control: %s %s %s", k->what, name, done);
}

/* Validate NAME's options into a scratch config, then: the same options again keep the existing
 * object (kept), other options are refused (exists), else it is added as a runtime object. */
static void create_object(struct out *o, const struct object_kind *k, const char *name, char **w, int nw)
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
		if (k->same(have, want)) {
			outf(o, "ok\n");
			out_object(o, "kept", k->what, name);
		} else {
			outf(o, "error exists: %s %s exists with other options\n", k->what, name);
		}
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
	apply_object(o, k, &next, &e, name, true);
out:
	registry_unlock();
	config_free(&scratch);
	cfg_errors_free(&e);
}

/* The object leaves the configuration (one of the INI comes back at the next reload unless the
 * file drops it too); its slot is retired, and a later definition recycles it fresh. A key that
 * names it keeps it: the removal is refused, naming the key. */
static void remove_object(struct out *o, const struct object_kind *k, const char *name)
{
	struct cfg_errors e = { 0 };
	struct config next;
	registry_lock();
	if (registry_snapshot(&next) < 0) {
		outf(o, "error out of memory\n");
		goto out;
	}
	void *have = k->find(&next, name);
	const struct cfg_key *user = NULL;
	for (size_t i = 0; have && i < next.nkeys && !user; i++)
		if (strcmp((const char *)&next.keys[i] + k->ref_off, name) == 0)
			user = &next.keys[i];
	if (!have || user) {
		if (!have)
			outf(o, "error no such %s: %s\n", k->what, name);
		else
			outf(o, "error %s %s is used by key %s: change or remove the key first\n", k->what,
			     name, user->o.name);
		config_free(&next);
		goto out;
	}
	k->del(&next, have);
	apply_object(o, k, &next, &e, name, false);
out:
	registry_unlock();
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

static void do_breaker_remove(struct out *o, const char *name, char **w, int nw)
{
	(void)w, (void)nw;
	remove_object(o, &breaker_kind, name);
}

static void do_pool_remove(struct out *o, const char *name, char **w, int nw)
{
	(void)w, (void)nw;
	remove_object(o, &pool_kind, name);
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
	char proto[16], gen[24];
	snprintf(proto, sizeof proto, "%d", PROT_WIRE_PROTOCOL);
	snprintf(gen, sizeof gen, "%" PRIu64, atomic_load_explicit(&ctl.shm->hdr->config_gen, memory_order_acquire));
	outf(o, "ok\n");
	out_record(o, &(struct wire_record){ "protd", 2, { { "protocol", proto }, { "generation", gen } } });
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
