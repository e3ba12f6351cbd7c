/* ctl_pool.c — `protctl pool list`, `pool show [--holders] [NAME]`, `pool create NAME k=v ...` and
 * `pool remove NAME`.
 * list and show come from prot_pool_status() and prot_pool_holders(), which only read the segment
 * (the pool word is one snapshot: in use and waiting are consistent with each other): they work on
 * a read-only mapping. create and remove go through protd (prot_pool_create, prot_pool_remove). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char *state_name(uint32_t s)
{
	return prot_name_shown(NAMES_POOL_STATE, s);
}

static const char *strategy_name(uint32_t s)
{
	return prot_name_shown(NAMES_POOL_STRATEGY, s);
}

/* The members of a pool's JSON object (prot-json(7), "pool"), braces left to the caller (show
 * --holders adds its rows). */
static void pool_members(FILE *f, const struct prot_pool_status *st)
{
	fputs("\"name\":", f);
	ctl_json_str(f, st->name);
	fprintf(f, ",\"size\":%" PRIu32 ",\"max_overflow\":%" PRIu32 ",\"in_use\":%" PRIu32
	           ",\"overflow_in_use\":%" PRIu32 ",\"waiting\":%" PRIu32 ",\"high_water\":%" PRIu32
	           ",\"checkouts\":%" PRIu64 ",\"timeouts\":%" PRIu64 ",\"reclaims\":%" PRIu64
	           ",\"checkout_timeout_ms\":%" PRIu64 ",\"overflow_ttl_ms\":%" PRIu64
	           ",\"strategy\":\"%s\"",
	        st->size, st->max_overflow, st->in_use, st->overflow_in_use, st->waiting, st->high_water,
	        st->checkouts, st->timeouts, st->reclaims, st->checkout_timeout_ms, st->overflow_ttl_ms,
	        strategy_name(st->strategy));
	fprintf(f, ",\"idle\":%" PRIu32 ",\"state\":\"%s\",\"min_idle\":%" PRIu32
	           ",\"idle_timeout_ms\":%" PRIu64 ",\"max_lifetime_ms\":%" PRIu64
	           ",\"leak_threshold_ms\":%" PRIu64,
	        st->idle, state_name(st->state), st->min_idle, st->idle_timeout_ms, st->max_lifetime_ms,
	        st->leak_threshold_ms);
	fprintf(f, ",\"max_open\":%" PRIu32 ",\"open\":%" PRIu32, st->max_open, st->open);
}

void ctl_pool_json(FILE *f, const struct prot_pool_status *st)
{
	fputc('{', f);
	pool_members(f, st);
	fputc('}', f);
}

static const char header_fmt[] = "%-20s %6s %8s %6s %8s %7s %10s %8s %8s %s\n";

static void show_line(struct ctl *c, const struct prot_pool_status *st)
{
	char tmo[32];
	fprintf(c->out, "%-20s %6" PRIu32 " %8" PRIu32 " %6" PRIu32 " %8" PRIu32 " %7" PRIu32
	                " %10" PRIu64 " %8" PRIu64 " %8" PRIu64 " %s\n",
	        ctl_text(st->name), st->size, st->max_overflow, st->in_use, st->overflow_in_use, st->waiting,
	        st->checkouts, st->timeouts, st->reclaims, ctl_dur(tmo, st->checkout_timeout_ms));
}

static void show_header(struct ctl *c)
{
	/* "in use" spelled out in the text form: the column people look for */
	fprintf(c->out, header_fmt, "NAME", "SIZE", "OVERFLOW", "IN_USE", "OVER_USE", "WAITING",
	        "CHECKOUTS", "TIMEOUTS", "RECLAIMS", "TIMEOUT");
}

struct walk {
	struct ctl *c;
	bool names_only;
	int n, err;
};

static int walk_one(const char *name, void *arg)
{
	struct walk *w = arg;
	FILE *f = w->c->out;

	if (w->names_only) {
		if (w->c->json) {
			fputs(w->n ? "," : "", f);
			ctl_json_str(f, name);
		} else {
			fprintf(f, "%s\n", ctl_text(name));
		}
		w->n++;
		return 0;
	}
	struct prot_pool_status st;
	int r = prot_pool_status(w->c->p, name, &st);
	if (r == -PROT_ENOPOOL)
		return 0; /* removed since it was listed */
	if (r < 0) {
		w->err = r;
		return 1;
	}
	if (w->c->json) {
		fputs(w->n ? "," : "", f);
		ctl_pool_json(f, &st);
	} else {
		show_line(w->c, &st);
	}
	w->n++;
	return 0;
}

static int walk_all(struct ctl *c, bool names_only, const char *verb)
{
	struct walk w = {.c = c, .names_only = names_only};

	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"pools\":[", c->out);
	} else if (!names_only)
		show_header(c);
	int r = prot_list_pools(c->p, walk_one, &w);
	if (r >= 0)
		r = w.err;
	if (c->json)
		fputs("]}\n", c->out);
	if (r < 0)
		return ctl_fail(ctl_code(r), "pool %s: %s", verb, prot_strerror(r));
	return CTL_OK;
}

static int cmd_list(struct ctl *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return walk_all(c, true, "list");
}

static int cmd_show(struct ctl *c, int argc, char **argv)
{
	bool holders = false;
	const char *name = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--holders") == 0)
			holders = true;
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else
			return ctl_fail(CTL_EUSAGE, "pool show: unexpected '%s' (pool show [--holders] [NAME])",
			                ctl_text(argv[i]));
	}
	if (!name && holders)
		return ctl_fail(CTL_EUSAGE, "pool show --holders: needs a NAME");
	if (!name)
		return walk_all(c, false, "show");
	struct prot_pool_status st;
	int r = prot_pool_status(c->p, name, &st);
	if (r < 0)
		return ctl_bad_arg(r, "pool show", "pool", name, PROT_NAME_MAX);
	static struct prot_pool_holder rows[256];
	size_t nh = 0;
	if (holders && (r = prot_pool_holders(c->p, name, rows, 256, &nh)) < 0)
		return ctl_bad_arg(r, "pool show", "pool", name, PROT_NAME_MAX);
	size_t shown = nh < 256 ? nh : 256;
	if (c->json) {
		ctl_json_open(c->out, false);
		pool_members(c->out, &st);
		if (holders) {
			fprintf(c->out, ",\"holders_total\":%zu,\"holders\":[", nh);
			for (size_t i = 0; i < shown; i++)
				fprintf(c->out, "%s{\"pid\":%" PRId32 ",\"leases\":%" PRIu32 ",\"held_ms\":%" PRIu64
				                ",\"leaked\":%s}",
				        i ? "," : "", rows[i].pid, rows[i].leases, rows[i].held_ms,
				        rows[i].leaked ? "true" : "false");
			fputc(']', c->out);
		}
		fputs("}\n", c->out);
		return CTL_OK;
	}
	char d1[32], d2[32];
	fprintf(c->out,
	        "pool %s\n  size            %" PRIu32 "\n  max overflow    %" PRIu32
	        "\n  in use          %" PRIu32 "\n  overflow in use %" PRIu32 "\n  waiting         %" PRIu32
	        "\n  high water      %" PRIu32 "\n  checkouts       %" PRIu64 "\n  timeouts        %" PRIu64
	        "\n  reclaims        %" PRIu64 "\n  checkout timeout %s\n  overflow ttl    %s\n"
	        "  strategy        %s\n",
	        ctl_text(st.name), st.size, st.max_overflow, st.in_use, st.overflow_in_use, st.waiting,
	        st.high_water, st.checkouts, st.timeouts, st.reclaims,
	        ctl_dur(d1, st.checkout_timeout_ms), ctl_dur(d2, st.overflow_ttl_ms),
	        strategy_name(st.strategy));
	char d3[32], d4[32], d5[32];
	fprintf(c->out, "  state           %s\n  idle            %" PRIu32 "\n  min idle        %" PRIu32
	                "\n  idle timeout    %s\n  max lifetime    %s\n  leak threshold  %s\n",
	        state_name(st.state), st.idle, st.min_idle, ctl_dur(d3, st.idle_timeout_ms),
	        ctl_dur(d4, st.max_lifetime_ms), ctl_dur(d5, st.leak_threshold_ms));
	if (st.max_open)
		fprintf(c->out, "  open            %" PRIu32 " (max_open %" PRIu32 ")\n", st.open, st.max_open);
	else
		fprintf(c->out, "  open            %" PRIu32 " (max_open unlimited)\n", st.open);
	if (holders) {
		fprintf(c->out, "  holders         %zu\n", nh);
		for (size_t i = 0; i < shown; i++) {
			char d[32];
			fprintf(c->out, "    pid %-8" PRId32 " leases %-4" PRIu32 " held %s%s\n", rows[i].pid,
			        rows[i].leases, ctl_dur(d, rows[i].held_ms), rows[i].leaked ? "  LEAK" : "");
		}
	}
	return CTL_OK;
}

/* "N", "Nms", "Ns", "Nm", "Nh" -> ms; false when not a duration */
static bool parse_ms(const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (end == v || errno || v[0] == '-')
		return false;
	uint64_t mul = !*end || !strcmp(end, "ms") ? 1 : !strcmp(end, "s") ? 1000
	             : !strcmp(end, "m") ? 60000 : !strcmp(end, "h") ? 3600000 : 0;
	if (!mul || n > UINT64_MAX / mul)
		return false;
	*out = n * mul;
	return true;
}

static int cmd_create(struct ctl *c, int argc, char **argv)
{
	struct prot_pool_opts o = { 0 };
	bool has_size = false;
	for (int i = 2; i < argc; i++) {
		char k[32];
		const char *eq = strchr(argv[i], '=');
		uint64_t v = 0;
		if (!eq || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof k)
			return ctl_fail(CTL_EUSAGE, "pool create: '%s' is not name=value", ctl_text(argv[i]));
		memcpy(k, argv[i], (size_t)(eq - argv[i]));
		k[eq - argv[i]] = 0;
		const char *val = eq + 1;
		if (!strcmp(k, "strategy")) {
			if (prot_name_value(NAMES_POOL_STRATEGY, val, &v) < 0)
				return ctl_fail(CTL_EUSAGE, "pool create: strategy '%s' is not lifo or fifo", ctl_text(val));
			o.strategy = (uint32_t)v;
			continue;
		}
		if (!parse_ms(val, &v))
			return ctl_fail(CTL_EUSAGE, "pool create: %s: '%s' is not a number", k, ctl_text(val));
		bool count = !strcmp(k, "size") || !strcmp(k, "max_overflow") || !strcmp(k, "min_idle");
		if (count && (strspn(val, "0123456789") != strlen(val) || v > UINT32_MAX))
			return ctl_fail(CTL_EUSAGE, "pool create: %s: '%s' is not a count", k, ctl_text(val));
		if (!strcmp(k, "size"))
			o.size = (uint32_t)v, has_size = true;
		else if (!strcmp(k, "max_overflow"))
			o.max_overflow = (uint32_t)v;
		else if (!strcmp(k, "min_idle"))
			o.min_idle = (uint32_t)v;
		else if (!strcmp(k, "checkout_timeout"))
			o.checkout_timeout_ms = v;
		else if (!strcmp(k, "overflow_ttl"))
			o.overflow_ttl_ms = v;
		else if (!strcmp(k, "reclaim_interval"))
			o.reclaim_interval_ms = v;
		else if (!strcmp(k, "idle_timeout"))
			o.idle_timeout_ms = v;
		else if (!strcmp(k, "max_lifetime"))
			o.max_lifetime_ms = v;
		else if (!strcmp(k, "leak_threshold"))
			o.leak_threshold_ms = v;
		else
			return ctl_fail(CTL_EUSAGE, "pool create: unknown option '%s'", ctl_text(k));
	}
	if (!has_size)
		return ctl_fail(CTL_EUSAGE, "pool create: size=N is required");
	int r = prot_pool_create(c->p, argv[1], &o);
	if (r < 0) {
		int code = r == -PROT_EINVAL_CONFIG || r == -PROT_EEXIST ? CTL_ENOENT : ctl_code(r);
		return ctl_fail(code, "pool create %s: %s", ctl_text(argv[1]), prot_strerror(r));
	}
	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"name\":", c->out);
		ctl_json_str(c->out, argv[1]);
		fputs(",\"created\":true}\n", c->out);
	} else {
		fprintf(c->out, "pool %s ready\n", ctl_text(argv[1]));
	}
	return CTL_OK;
}

static int cmd_remove(struct ctl *c, int argc, char **argv)
{
	(void)argc;
	int r = prot_pool_remove(c->p, argv[1]);
	if (r < 0) {
		int code = r == -PROT_EINVAL_CONFIG ? CTL_ENOENT : ctl_code(r);
		return ctl_fail(code, "pool remove %s: %s", ctl_text(argv[1]), prot_strerror(r));
	}
	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"name\":", c->out);
		ctl_json_str(c->out, argv[1]);
		fputs(",\"removed\":true}\n", c->out);
	} else {
		fprintf(c->out, "pool %s removed\n", ctl_text(argv[1]));
	}
	return CTL_OK;
}

const struct ctl_cmd ctl_pool_cmds[] = {
	{"pool", "list", "", "the pools of the segment", 0, 0, false, cmd_list},
	{"pool", "show", "[--holders] [NAME]",
	 "size, max overflow, in use, idle, overflow in use, waiting (all processes), state "
	 "(ready/overflow/full), checkouts, timeouts, reclaims; --holders: pid, leases, time held, leaks",
	 0, 2, false, cmd_show},
	{"pool", "create", "NAME size=N [name=value ...]",
	 "make a pool at runtime through protd ([pool] options); the same options again keep its state",
	 1, 12, false, cmd_create},
	{"pool", "remove", "NAME", "remove a pool through protd: gone, its leases stale", 1, 1, false,
	 cmd_remove},
	{0},
};
