/* ctl_rate.c — `protctl rate show KEY [ENTITY]`, `rate reset KEY ENTITY`, `rate top KEY [N]`.
 * A protection key's buckets are those whose operation is the key's name (lib/ratelimit.c).
 * show and top only read (they work on a read-only mapping); reset removes one bucket. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "rate_algo.h"

static const char *algo_name(uint64_t a)
{
	return prot_name_shown(NAMES_RATE_ALGORITHM, a);
}

struct key {
	struct prot_shm_header *h;
	uint32_t idx;
	struct prot_key_cfg cfg;
	struct rate_params rp; /* the key's limits as its decisions use them */
};

/* The key argv[1] of the verb argv[0]: its slot and limits. Prints the error itself; returns 0 or
 * an exit code. */
static int key_of(struct ctl *c, char **argv, struct key *k)
{
	k->h = prot_hdr(c->p);
	int r = seg_find(k->h, REG_KEYS, argv[1]);
	if (r >= 0) {
		k->idx = (uint32_t)r;
		r = rate_key_cfg(k->h, k->idx, &k->cfg);
	}
	char cmd[32];
	snprintf(cmd, sizeof cmd, "rate %s", argv[0]);
	if (r < 0)
		return ctl_bad_arg(r, cmd, "key", argv[1], PROT_NAME_MAX);
	if (!rate_cfg_on(&k->cfg))
		return ctl_fail(CTL_ENOENT, "%s: key '%s' has no rate limiter", cmd, ctl_text(argv[1]));
	rate_params_of_key(&k->cfg, &k->rp);
	return 0;
}

/* ---- show ------------------------------------------------------------------------------------- */

struct totals {
	uint64_t buckets, allowed, denied;
};

static int add_totals(const struct rate_view *v, void *arg)
{
	struct totals *t = arg;
	t->buckets++;
	t->allowed += v->allowed;
	t->denied += v->denied;
	return 0;
}

struct one {
	const char *entity;
	struct rate_view v;
	bool found;
};

static int find_entity(const struct rate_view *v, void *arg)
{
	struct one *o = arg;
	if (strcmp(v->entity, o->entity) != 0)
		return 0;
	o->v = *v;
	o->found = true;
	return 1;
}

static void show_key(struct ctl *c, struct prot_shm_header *h, uint32_t idx, const char *key,
                     const struct prot_key_cfg *cfg)
{
	struct prot_key_slot *k = seg_entry(h, REG_KEYS, idx);
	struct totals t = {0};
	FILE *f = c->out;
	char d[32];

	rate_foreach(h, key, add_totals, &t);
	/* relaxed: counters read for display */
	uint64_t full = atomic_load_explicit(&k->stats.rate_table_full, memory_order_relaxed);
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
		           ",\"rate_buckets\":{\"used\":%" PRIu64 ",\"max\":%" PRIu64 "}}\n",
		        algo_name(cfg->rate_algo), cfg->rate_limit, cfg->rate_window_ms, burst, policy,
		        clock, t.buckets, t.allowed, t.denied, full, used, max);
		return;
	}
	fprintf(f, "key %s: %s, %" PRIu64 " per %s", ctl_text(key), algo_name(cfg->rate_algo), cfg->rate_limit,
	        ctl_dur(d, cfg->rate_window_ms));
	if (cfg->rate_algo == PROT_RATE_GCRA)
		fprintf(f, ", burst %" PRIu64, burst);
	fprintf(f, ", on full: %s, clock: %s\n", policy, clock);
	fprintf(f, "buckets: %" PRIu64 " (table: %" PRIu64 " of %" PRIu64 " used)\n", t.buckets, used, max);
	fprintf(f, "units admitted by live buckets: %" PRIu64 ", denials: %" PRIu64
	           ", decisions on a full table: %" PRIu64 "\n",
	        t.allowed, t.denied, full);
}

static void show_entity(struct ctl *c, const char *key, const char *entity, bool exists,
                        const struct rate_view *v, const struct prot_rate_info *in)
{
	FILE *f = c->out;
	char d1[32], d2[32], d3[32];

	if (c->json) {
		ctl_json_open(f, false);
		fputs("\"key\":", f);
		ctl_json_str(f, key);
		fputs(",\"entity\":", f);
		ctl_json_str(f, entity);
		fprintf(f, ",\"exists\":%s,\"allowed\":%s,\"limit\":%" PRIu64 ",\"used\":%" PRIu64
		           ",\"remaining\":%" PRIu64 ",\"window_ms\":%" PRIu64 ",\"reset_after_ms\":%" PRIu64
		           ",\"retry_after_ms\":%" PRIu64 ",\"admitted\":%" PRIu64
		           ",\"denied\":%" PRIu64 "}\n",
		        exists ? "true" : "false", in->allowed ? "true" : "false", in->limit, in->used,
		        in->remaining, in->window_ms, in->reset_after_ms, in->retry_after_ms,
		        exists ? v->allowed : 0, exists ? v->denied : 0);
		return;
	}
	fprintf(f, "%s %s: %s%s\n", ctl_text(key), ctl_text(entity), in->allowed ? "allowed" : "rate-limited",
	        exists ? "" : " (no bucket: never used or expired)");
	fprintf(f, "used %" PRIu64 " of %" PRIu64 " per %s, remaining %" PRIu64 ", reset in %s, retry in %s\n",
	        in->used, in->limit, ctl_dur(d1, in->window_ms), in->remaining,
	        ctl_dur(d2, in->reset_after_ms), ctl_dur(d3, in->retry_after_ms));
	if (exists)
		fprintf(f, "units admitted: %" PRIu64 ", denials: %" PRIu64 "\n", v->allowed, v->denied);
}

static int cmd_show(struct ctl *c, int argc, char **argv)
{
	struct key k;
	int code = key_of(c, argv, &k);

	if (code)
		return code;
	if (argc < 3) {
		show_key(c, k.h, k.idx, argv[1], &k.cfg);
		return CTL_OK;
	}
	struct prot_rate_info in;
	struct one o = {.entity = argv[2]};
	int r = rate_status_h(k.h, argv[1], argv[2], &k.rp, 0, &in);
	if (r < 0)
		return ctl_bad_arg(r, "rate show", "entity", argv[2], PROT_ENTITY_MAX);
	rate_foreach(k.h, argv[1], find_entity, &o);
	show_entity(c, argv[1], argv[2], o.found, &o.v, &in);
	return CTL_OK;
}

/* ---- reset ------------------------------------------------------------------------------------ */

static int cmd_reset(struct ctl *c, int argc, char **argv)
{
	struct key k;
	int code = key_of(c, argv, &k);

	(void)argc;
	if (code)
		return code;
	int r = prot_rate_reset(c->p, argv[1], argv[2]);
	if (r == -ENOENT)
		return ctl_fail(CTL_ENOENT, "rate reset: key '%s' entity '%s': no bucket (never used or "
		                "expired)", ctl_text(argv[1]), ctl_text(argv[2]));
	if (r < 0)
		return ctl_bad_arg(r, "rate reset", "entity", argv[2], PROT_ENTITY_MAX);
	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"key\":", c->out);
		ctl_json_str(c->out, argv[1]);
		fputs(",\"entity\":", c->out);
		ctl_json_str(c->out, argv[2]);
		fputs(",\"reset\":true}\n", c->out);
	} else {
		fprintf(c->out, "%s %s: bucket reset\n", ctl_text(argv[1]), ctl_text(argv[2]));
	}
	return CTL_OK;
}

/* ---- top -------------------------------------------------------------------------------------- */

struct collect {
	struct rate_view *v;
	size_t n, cap;
	int err;
};

static int collect_one(const struct rate_view *v, void *arg)
{
	struct collect *a = arg;
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

static int by_allowed(const void *a, const void *b)
{
	const struct rate_view *x = a, *y = b;
	return x->allowed < y->allowed ? 1 : x->allowed > y->allowed ? -1 : strcmp(x->entity, y->entity);
}

static int by_denied(const void *a, const void *b)
{
	const struct rate_view *x = a, *y = b;
	return x->denied < y->denied ? 1 : x->denied > y->denied ? -1 : strcmp(x->entity, y->entity);
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
		if (c->json) {
			fputs(shown ? ",{\"entity\":" : "{\"entity\":", f);
			ctl_json_str(f, v->entity);
			fprintf(f, ",\"admitted\":%" PRIu64 ",\"denied\":%" PRIu64 "}", v->allowed, v->denied);
		} else {
			fprintf(f, "  %-40s %14" PRIu64 " %14" PRIu64 "\n", ctl_text(v->entity), v->allowed,
			        v->denied);
		}
		shown++;
	}
	if (c->json)
		fputc(']', f);
}

static int cmd_top(struct ctl *c, int argc, char **argv)
{
	struct key k;
	struct collect a = {0};
	size_t n = 10;
	int code = key_of(c, argv, &k);

	if (code)
		return code;
	if (argc > 2) {
		char *end;
		unsigned long v = strtoul(argv[2], &end, 10);
		if (*argv[2] == '\0' || *end != '\0' || v == 0 || v > 100000)
			return ctl_fail(CTL_EUSAGE, "rate top: N must be a number from 1 to 100000, not '%s'",
			                ctl_text(argv[2]));
		n = v;
	}
	rate_foreach(k.h, argv[1], collect_one, &a);
	if (a.err) {
		free(a.v);
		return ctl_fail(ctl_code(a.err), "rate top: key '%s': %s", ctl_text(argv[1]),
		                prot_strerror(a.err));
	}
	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"key\":", c->out);
		ctl_json_str(c->out, argv[1]);
		fprintf(c->out, ",\"buckets\":%zu", a.n);
	} else {
		fprintf(c->out, "key %s: %zu buckets\n", ctl_text(argv[1]), a.n);
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

const struct ctl_cmd ctl_rate_cmds[] = {
	{"rate", "show", "KEY [ENTITY]",
	 "a key's limits, bucket count and totals; or one entity's used/remaining/retry/reset", 1, 2,
	 false, cmd_show},
	{"rate", "reset", "KEY ENTITY", "forget one entity's bucket (it starts over)", 2, 2, true,
	 cmd_reset},
	{"rate", "top", "KEY [N]", "the N (default 10) entities with the most use and the most denials",
	 1, 2, false, cmd_top},
	{0},
};
