/* ctl_rate.c — `protctl rate ops`, `rate show TARGET [ENTITY]`, `rate reset TARGET ENTITY`,
 * `rate top TARGET [N]`, where TARGET is a protection KEY (its buckets are those whose operation
 * is the key's name, lib/ratelimit.c; its limits are known) or `--op NAME`, any operation,
 * ad-hoc ones included (prot_rate_check(p, "login", ...)): its buckets are shown with their own
 * algorithm and window, the limits being the caller's. Entities are shown and read escaped
 * (ctl_entity.c). ops, show and top only read (they work on a read-only mapping); reset removes
 * every scale of one entity's buckets.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "rate_algo.h"
#include "rate_table.h" /* rate_calendar_ns: the clock a calendar bucket reports on */

static const char *algo_name(uint64_t a)
{
	return prot_name_shown(NAMES_RATE_ALGORITHM, a);
}

/* What a verb acts on. */
struct target {
	struct prot_shm_header *h;
	const char *verb; /* "rate show", ... for messages */
	const char *op;   /* the operation naming the buckets */
	bool is_key;
	uint32_t idx;
	struct prot_key_cfg cfg;
	struct rate_params rp; /* a key's limits as its decisions use them */
};

/* The TARGET at argv[1] (KEY, or --op NAME) of the verb argv[0]. On --op, *argc and *argv are
 * moved on by one, so that argv[1] is the NAME and argv[2] the next argument for every verb.
 * Prints the error itself; returns 0 or an exit code. */
static int target_of(struct ctl *c, int *argc, char ***argv, char verb[32], struct target *t)
{
	char **a = *argv;
	int r;

	snprintf(verb, 32, "rate %s", a[0]);
	*t = (struct target){.h = prot_hdr(c->p), .verb = verb};
	if (strcmp(a[1], "--op") == 0) {
		if (*argc < 3)
			return ctl_fail(CTL_EUSAGE, "%s: --op needs a NAME", verb);
		size_t ol = strnlen(a[2], PROT_OP_MAX + 1);
		if (ol == 0 || ol > PROT_OP_MAX)
			return ctl_bad_arg(ol ? -PROT_ETOOLONG : -EINVAL, verb, "operation", a[2], PROT_OP_MAX);
		(*argc)--;
		(*argv)++;
		t->op = a[2];
		return 0;
	}
	r = seg_find(t->h, REG_KEYS, a[1]);
	if (r >= 0) {
		t->idx = (uint32_t)r;
		r = rate_key_cfg(t->h, t->idx, &t->cfg);
	}
	if (r < 0)
		return ctl_bad_arg(r, verb, "key", a[1], PROT_NAME_MAX);
	if (!rate_cfg_on(&t->cfg))
		return ctl_fail(CTL_ENOENT, "%s: key '%s' has no rate limiter", verb, ctl_text(a[1]));
	rate_params_of_key(&t->cfg, &t->rp);
	t->op = a[1];
	t->is_key = true;
	return 0;
}

/* Does bucket v belong to the key's scale (its kind: algorithm, clock; and window)? */
static bool key_scale(const struct target *t, const struct rate_view *v)
{
	return !t->is_key || (v->kind == t->rp.tag && v->window_ms == t->rp.window_ms);
}

static const char *target_kind(const struct target *t)
{
	return t->is_key ? "key" : "operation";
}

/* ---- show ------------------------------------------------------------------------------------- */

struct totals {
	const struct target *t;
	uint64_t buckets, allowed, denied;
};

static int add_totals(const struct rate_view *v, void *arg)
{
	struct totals *s = arg;
	s->buckets++;
	s->allowed += v->allowed;
	s->denied += v->denied;
	return 0;
}

static void show_key(struct ctl *c, const struct target *t, const char *key)
{
	const struct prot_key_cfg *cfg = &t->cfg;
	struct prot_shm_header *h = t->h;
	struct prot_key_slot *k = seg_entry(h, REG_KEYS, t->idx);
	struct totals s = {.t = t};
	FILE *f = c->out;
	char d[32];

	rate_foreach(h, key, add_totals, &s);
	/* relaxed: counters read for display */
	uint64_t full = atomic_load_explicit(&k->stats.rate_table_full, memory_order_relaxed);
	uint64_t evicted = atomic_load_explicit(&k->stats.rate_evicted, memory_order_relaxed);
	uint64_t used = atomic_load_explicit(&h->rate_buckets_used, memory_order_relaxed);
	uint64_t max = (uint64_t)seg_count(h, REG_RATE_GROUPS) * RATE_GROUP_SLOTS;
	uint64_t burst = cfg->rate_burst ? cfg->rate_burst : cfg->rate_limit;
	const char *policy = prot_name_shown(NAMES_RATE_ON_FULL, cfg->rate_full_policy);
	const char *clock = prot_name_shown(NAMES_RATE_CLOCK, cfg->rate_clock);

	if (c->json) {
		ctl_json_open(f, false);
		fputs("\"key\":", f);
		ctl_json_str(f, key);
		fprintf(f, ",\"algorithm\":\"%s\",\"limit\":%" PRIu64 ",\"window_ms\":%" PRIu64
		           ",\"burst\":%" PRIu64 ",\"on_full\":\"%s\",\"clock\":\"%s\",\"buckets\":%" PRIu64
		           ",\"admitted\":%" PRIu64 ",\"denied\":%" PRIu64 ",\"table_full\":%" PRIu64
		           ",\"evicted\":%" PRIu64 ",\"rate_buckets\":{\"used\":%" PRIu64 ",\"max\":%" PRIu64
		           "}}\n",
		        algo_name(cfg->rate_algo), cfg->rate_limit, cfg->rate_window_ms, burst, policy,
		        clock, s.buckets, s.allowed, s.denied, full, evicted, used, max);
		return;
	}
	fprintf(f, "key %s: %s, %" PRIu64 " per %s", ctl_text(key), algo_name(cfg->rate_algo), cfg->rate_limit,
	        ctl_dur(d, cfg->rate_window_ms));
	if (cfg->rate_algo == PROT_RATE_GCRA)
		fprintf(f, ", burst %" PRIu64, burst);
	fprintf(f, ", on full: %s, clock: %s\n", policy, clock);
	fprintf(f, "buckets: %" PRIu64 " (table: %" PRIu64 " of %" PRIu64 " used)\n", s.buckets, used, max);
	fprintf(f, "units admitted by live buckets: %" PRIu64 ", denials: %" PRIu64
	           ", decisions on a full table: %" PRIu64 ", evicted: %" PRIu64 "\n",
	        s.allowed, s.denied, full, evicted);
}

static void show_op(struct ctl *c, const struct target *t)
{
	struct totals s = {.t = t};

	rate_foreach(t->h, t->op, add_totals, &s);
	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"operation\":", c->out);
		ctl_json_str(c->out, t->op);
		fprintf(c->out, ",\"buckets\":%" PRIu64 ",\"admitted\":%" PRIu64 ",\"denied\":%" PRIu64 "}\n",
		        s.buckets, s.allowed, s.denied);
		return;
	}
	fprintf(c->out, "operation %s: %" PRIu64 " buckets, units admitted by live buckets: %" PRIu64
	                ", denials: %" PRIu64 "\n",
	        ctl_text(t->op), s.buckets, s.allowed, s.denied);
}

/* One entity's buckets: the one of the key's scale, or every scale of an operation's. */
struct one {
	const struct target *t;
	const unsigned char *ent;
	size_t len;
	struct rate_view v[8];
	size_t n, more;
};

static int find_entity(const struct rate_view *v, void *arg)
{
	struct one *o = arg;
	if (v->ent_len != o->len || memcmp(v->entity, o->ent, o->len) != 0 || !key_scale(o->t, v))
		return 0;
	if (o->n < sizeof o->v / sizeof o->v[0])
		o->v[o->n++] = *v;
	else
		o->more++;
	return 0;
}

/* Now as a status of a bucket of kind reports its times: Unix ms on the calendar, else
 * CLOCK_MONOTONIC ms (lib/rate_view.c). */
static uint64_t report_now_ms(uint32_t kind)
{
	if (kind & RATE_TAG_REALTIME)
		return rate_calendar_ns() / RATE_NS_MS + RATE_EPOCH_MS;
	return prot_now_ns() / RATE_NS_MS;
}

/* A status time (ms) as "T (N ms ago / in N ms)". */
static const char *when(char buf[64], uint64_t t_ms, uint64_t now_ms)
{
	char d[32];
	if (t_ms == 0)
		return "-";
	if (t_ms <= now_ms)
		snprintf(buf, 64, "%" PRIu64 " (%s ago)", t_ms, ctl_dur(d, now_ms - t_ms));
	else
		snprintf(buf, 64, "%" PRIu64 " (in %s)", t_ms, ctl_dur(d, t_ms - now_ms));
	return buf;
}

static void entity_json(FILE *f, const struct prot_rate_status *st, const struct rate_view *v)
{
	const struct prot_rate_info *in = &st->info;
	fprintf(f, "\"exists\":%s,\"algorithm\":\"%s\",\"allowed\":%s,\"limit\":%" PRIu64
	           ",\"used\":%" PRIu64 ",\"remaining\":%" PRIu64 ",\"window_ms\":%" PRIu64
	           ",\"reset_after_ms\":%" PRIu64 ",\"retry_after_ms\":%" PRIu64
	           ",\"expires_at_ms\":%" PRIu64 ",\"created_ms\":%" PRIu64 ",\"updated_ms\":%" PRIu64
	           ",\"admitted\":%" PRIu64 ",\"denied\":%" PRIu64,
	        st->exists ? "true" : "false", algo_name(st->algo), in->allowed ? "true" : "false",
	        in->limit, in->used, in->remaining, in->window_ms, in->reset_after_ms,
	        in->retry_after_ms, st->expires_at_ms, st->created_ms, st->updated_ms,
	        v ? v->allowed : 0, v ? v->denied : 0);
}

static void entity_text(FILE *f, const struct target *t, const struct prot_rate_status *st,
                        const struct rate_view *v, uint64_t now_ms)
{
	const struct prot_rate_info *in = &st->info;
	char d1[32], d2[32], d3[32], w1[64], w2[64], w3[64];

	if (t->is_key) {
		fprintf(f, "used %" PRIu64 " of %" PRIu64 " per %s, remaining %" PRIu64
		           ", reset in %s, retry in %s\n",
		        in->used, in->limit, ctl_dur(d1, in->window_ms), in->remaining,
		        ctl_dur(d2, in->reset_after_ms), ctl_dur(d3, in->retry_after_ms));
	} else {
		fprintf(f, "%s per %s", algo_name(st->algo), ctl_dur(d1, in->window_ms));
		if (st->algo != PROT_RATE_GCRA)
			fprintf(f, ", used %" PRIu64 " in this window", in->used);
		fprintf(f, ", full again in %s\n", ctl_dur(d2, in->reset_after_ms));
	}
	if (!st->exists)
		return;
	fprintf(f, "created %s, updated %s, expires at %s\n", when(w1, st->created_ms, now_ms),
	        when(w2, st->updated_ms, now_ms), when(w3, st->expires_at_ms, now_ms));
	if (v)
		fprintf(f, "units admitted: %" PRIu64 ", denials: %" PRIu64 "\n", v->allowed, v->denied);
}

static int show_entity(struct ctl *c, const struct target *t, const char *arg)
{
	unsigned char ent[PROT_ENTITY_MAX];
	char et[CTL_ENT_TEXT];
	struct one o = {.t = t, .ent = ent};
	FILE *f = c->out;
	int r = ctl_ent_parse(arg, ent, &o.len);

	if (r < 0)
		return ctl_bad_arg(r, t->verb, "entity", arg, PROT_ENTITY_MAX);
	rate_foreach(t->h, t->op, find_entity, &o);
	ctl_ent_text(et, ent, o.len);
	struct prot_rate_status st[8];
	size_t n = o.n;
	if (t->is_key) { /* the key's own bucket, under its limits (none: a fresh bucket's state) */
		r = rate_status_bin_h(t->h, t->op, ent, o.len, &t->rp, 0, &st[0]); /* its clock */
		if (r < 0)
			return ctl_bad_arg(r, t->verb, "entity", arg, PROT_ENTITY_MAX);
		n = 1;
	} else {
		for (size_t i = 0; i < n; i++)
			rate_view_status(t->h, &o.v[i], NULL, 0, &st[i]); /* on the bucket's clock */
	}
	if (c->json) {
		ctl_json_open(f, false);
		fprintf(f, "\"%s\":", target_kind(t));
		ctl_json_str(f, t->op);
		fputs(",\"entity\":", f);
		ctl_json_str(f, et);
		fputs(t->is_key ? "," : ",\"buckets\":[", f);
		for (size_t i = 0; i < n; i++) {
			fputs(t->is_key ? "" : i ? ",{" : "{", f);
			entity_json(f, &st[i], st[i].exists && i < o.n ? &o.v[i] : NULL);
			fputs(t->is_key ? "" : "}", f);
		}
		fputs(t->is_key ? "}\n" : "]}\n", f);
		return CTL_OK;
	}
	if (t->is_key)
		fprintf(f, "%s %s: %s%s\n", ctl_text(t->op), et, st[0].info.allowed ? "allowed" : "rate-limited",
		        st[0].exists ? "" : " (no bucket: never used or expired)");
	else
		fprintf(f, "operation %s entity %s: %zu buckets\n", ctl_text(t->op), et, n);
	for (size_t i = 0; i < n; i++)
		entity_text(f, t, &st[i], i < o.n ? &o.v[i] : NULL,
		            report_now_ms(t->is_key ? t->rp.tag : o.v[i].kind));
	if (o.more)
		fprintf(f, "(and %zu more scales)\n", o.more);
	return CTL_OK;
}

static int cmd_show(struct ctl *c, int argc, char **argv)
{
	struct target t;
	char verb[32];
	int code = target_of(c, &argc, &argv, verb, &t);

	if (code)
		return code;
	if (argc > 3)
		return ctl_fail(CTL_EUSAGE, "%s: too many arguments", verb);
	if (argc < 3) {
		if (t.is_key)
			show_key(c, &t, argv[1]);
		else
			show_op(c, &t);
		return CTL_OK;
	}
	return show_entity(c, &t, argv[2]);
}

/* ---- reset ------------------------------------------------------------------------------------ */

static int cmd_reset(struct ctl *c, int argc, char **argv)
{
	unsigned char ent[PROT_ENTITY_MAX];
	char et[CTL_ENT_TEXT];
	struct target t;
	char verb[32];
	size_t len;
	int code = target_of(c, &argc, &argv, verb, &t);

	if (code)
		return code;
	if (argc != 3)
		return ctl_fail(CTL_EUSAGE, "%s: needs an ENTITY", verb);
	int r = ctl_ent_parse(argv[2], ent, &len);
	if (r == 0)
		r = prot_rate_reset_bin(c->p, t.op, ent, len);
	ctl_ent_text(et, ent, r == 0 || r == -ENOENT ? len : 0);
	if (r == -ENOENT)
		return ctl_fail(CTL_ENOENT, "rate reset: %s '%s' entity '%s': no bucket (never used or "
		                "expired)", target_kind(&t), ctl_text(t.op), et);
	if (r < 0)
		return ctl_bad_arg(r, "rate reset", "entity", argv[2], PROT_ENTITY_MAX);
	if (c->json) {
		ctl_json_open(c->out, false);
		fprintf(c->out, "\"%s\":", target_kind(&t));
		ctl_json_str(c->out, t.op);
		fputs(",\"entity\":", c->out);
		ctl_json_str(c->out, et);
		fputs(",\"reset\":true}\n", c->out);
	} else {
		fprintf(c->out, "%s %s: bucket reset\n", ctl_text(t.op), et);
	}
	return CTL_OK;
}

/* ---- top -------------------------------------------------------------------------------------- */

struct collect {
	const struct target *t;
	struct rate_view *v;
	size_t n, cap;
	int err;
};

static int collect_one(const struct rate_view *v, void *arg)
{
	struct collect *a = arg;
	if (!key_scale(a->t, v))
		return 0;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		struct rate_view *nv = realloc(a->v, cap * sizeof *nv);
		if (!nv) {
			a->err = -ENOMEM;
			return 1;
		}
		a->v = nv;
		a->cap = cap;
	}
	a->v[a->n++] = *v;
	return 0;
}

static int by_entity(const struct rate_view *x, const struct rate_view *y)
{
	size_t n = x->ent_len < y->ent_len ? x->ent_len : y->ent_len;
	int r = memcmp(x->entity, y->entity, n);
	return r ? r : (int)x->ent_len - (int)y->ent_len;
}

static int by_allowed(const void *a, const void *b)
{
	const struct rate_view *x = a, *y = b;
	return x->allowed < y->allowed ? 1 : x->allowed > y->allowed ? -1 : by_entity(x, y);
}

static int by_denied(const void *a, const void *b)
{
	const struct rate_view *x = a, *y = b;
	return x->denied < y->denied ? 1 : x->denied > y->denied ? -1 : by_entity(x, y);
}

static void sort_views(struct collect *a, int (*cmp)(const void *, const void *))
{
	if (a->n > 1)
		qsort(a->v, a->n, sizeof *a->v, cmp);
}

static void top_list(struct ctl *c, const char *title, const struct collect *a, size_t n,
                     bool denials)
{
	FILE *f = c->out;
	char et[CTL_ENT_TEXT];
	size_t shown = 0;

	if (c->json) {
		fprintf(f, ",\"%s\":[", title);
	} else {
		fprintf(f, "%s:\n  %-40s %14s %14s\n", denials ? "most denied" : "most used", "ENTITY",
		        "ADMITTED", "DENIED");
	}
	for (size_t i = 0; i < a->n && shown < n; i++) {
		const struct rate_view *v = &a->v[i];
		if (denials && v->denied == 0)
			break; /* a list of entities that were never denied says nothing */
		ctl_ent_text(et, v->entity, v->ent_len);
		if (c->json) {
			fputs(shown ? ",{\"entity\":" : "{\"entity\":", f);
			ctl_json_str(f, et);
			fprintf(f, ",\"admitted\":%" PRIu64 ",\"denied\":%" PRIu64 "}", v->allowed, v->denied);
		} else {
			fprintf(f, "  %-40s %14" PRIu64 " %14" PRIu64 "\n", et, v->allowed, v->denied);
		}
		shown++;
	}
	if (c->json)
		fputc(']', f);
}

static int cmd_top(struct ctl *c, int argc, char **argv)
{
	struct target t;
	char verb[32];
	size_t n = 10;
	int code = target_of(c, &argc, &argv, verb, &t);

	if (code)
		return code;
	if (argc > 3)
		return ctl_fail(CTL_EUSAGE, "%s: too many arguments", verb);
	if (argc > 2) {
		char *end;
		unsigned long v = strtoul(argv[2], &end, 10);
		if (*argv[2] == '\0' || *end != '\0' || v == 0 || v > 100000)
			return ctl_fail(CTL_EUSAGE, "rate top: N must be a number from 1 to 100000, not '%s'",
			                ctl_text(argv[2]));
		n = v;
	}
	struct collect a = {.t = &t};
	rate_foreach(t.h, t.op, collect_one, &a);
	if (a.err) {
		free(a.v);
		return ctl_fail(ctl_code(a.err), "rate top: %s '%s': %s", target_kind(&t), ctl_text(t.op),
		                prot_strerror(a.err));
	}
	if (c->json) {
		ctl_json_open(c->out, false);
		fprintf(c->out, "\"%s\":", target_kind(&t));
		ctl_json_str(c->out, t.op);
		fprintf(c->out, ",\"buckets\":%zu", a.n);
	} else {
		fprintf(c->out, "%s %s: %zu buckets\n", target_kind(&t), ctl_text(t.op), a.n);
	}
	sort_views(&a, by_allowed); /* qsort(NULL, 0) is undefined: an empty key has no array */
	top_list(c, "most_used", &a, n, false);
	sort_views(&a, by_denied);
	top_list(c, "most_denied", &a, n, true);
	if (c->json)
		fputs("}\n", c->out);
	free(a.v);
	return CTL_OK;
}

/* ---- ops -------------------------------------------------------------------------------------- */

struct op_row {
	char name[PROT_OP_MAX + 1];
	uint64_t op_hash, buckets, allowed, denied;
};

struct ops {
	struct op_row row[RATE_OPS + 1]; /* the last: buckets of operations the registry does not name */
	size_t n;
};

static int op_add(const char *name, size_t len, uint64_t op_hash, void *arg)
{
	struct ops *o = arg;
	if (o->n == RATE_OPS)
		return 1;
	memcpy(o->row[o->n].name, name, len + 1);
	o->row[o->n++].op_hash = op_hash;
	return 0;
}

static int op_count(const struct rate_view *v, void *arg)
{
	struct ops *o = arg;
	size_t i = 0;
	while (i < o->n && o->row[i].op_hash != v->op_hash)
		i++;
	struct op_row *r = i < o->n ? &o->row[i] : &o->row[RATE_OPS];
	r->buckets++;
	r->allowed += v->allowed;
	r->denied += v->denied;
	return 0;
}

static void op_print(struct ctl *c, const struct op_row *r, bool first, bool key)
{
	FILE *f = c->out;
	if (c->json) {
		fputs(first ? "{\"name\":" : ",{\"name\":", f);
		if (r->name[0])
			ctl_json_str(f, r->name);
		else
			fputs("null", f);
		fprintf(f, ",\"key\":%s,\"buckets\":%" PRIu64 ",\"admitted\":%" PRIu64
		           ",\"denied\":%" PRIu64 "}",
		        key ? "true" : "false", r->buckets, r->allowed, r->denied);
		return;
	}
	fprintf(f, "  %-40s %4s %10" PRIu64 " %14" PRIu64 " %14" PRIu64 "\n",
	        r->name[0] ? ctl_text(r->name) : "(not named)", key ? "key" : "", r->buckets,
	        r->allowed, r->denied);
}

static int cmd_ops(struct ctl *c, int argc, char **argv)
{
	struct prot_shm_header *h = prot_hdr(c->p);
	struct ops *o = calloc(1, sizeof *o);
	bool first = true;

	(void)argc;
	(void)argv;
	if (!o)
		return ctl_fail(ctl_code(-ENOMEM), "rate ops: %s", prot_strerror(-ENOMEM));
	rate_ops_foreach(h, op_add, o);
	rate_foreach(h, NULL, op_count, o);
	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"operations\":[", c->out);
	} else {
		fprintf(c->out, "  %-40s %4s %10s %14s %14s\n", "OPERATION", "", "BUCKETS", "ADMITTED",
		        "DENIED");
	}
	for (size_t i = 0; i <= RATE_OPS; i++) {
		const struct op_row *r = &o->row[i];
		if (r->buckets == 0) /* present in the table: with live buckets */
			continue;
		op_print(c, r, first, r->name[0] && seg_find(h, REG_KEYS, r->name) >= 0);
		first = false;
	}
	if (c->json)
		fputs("]}\n", c->out);
	free(o);
	return CTL_OK;
}

const struct ctl_cmd ctl_rate_cmds[] = {
	{"rate", "ops", "", "the operations that have buckets in the table, with their totals", 0, 0,
	 false, cmd_ops},
	{"rate", "show", "KEY|--op NAME [ENTITY]",
	 "a key's (or any operation's) limits, bucket count and totals; or one entity's "
	 "used/remaining/retry/reset, created/updated/expires_at",
	 1, 3, false, cmd_show},
	{"rate", "reset", "KEY|--op NAME ENTITY",
	 "forget one entity's buckets, every scale (it starts over)", 2, 3, true, cmd_reset},
	{"rate", "top", "KEY|--op NAME [N]",
	 "the N (default 10) entities with the most use and the most denials", 1, 3, false, cmd_top},
	{0},
};
