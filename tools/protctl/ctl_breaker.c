/* ctl_breaker.c — `protctl breaker show [NAME]`, `breaker reset|blow|enable|remove NAME`.
 * Everything shown comes from prot_breaker_status(), which only reads: `show` works on a read-only
 * mapping. */
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

static const char *state_name(uint32_t s)
{
	return prot_breaker_state_name(s);
}

/* The members of a breaker's JSON object (prot-json(7), "breaker"), braces left to the caller. */
static void breaker_members(FILE *f, const struct prot_breaker_status *st)
{
	const struct prot_breaker_opts *o = &st->opts;

	fputs("\"name\":", f);
	ctl_json_str(f, st->name);
	fprintf(f, ",\"state\":\"%s\",\"strategy\":\"%s\",\"failures_in_window\":%" PRIu32
	           ",\"next_probe_ms\":%" PRIu64 ",\"calls\":%" PRIu64 ",\"successes\":%" PRIu64
	           ",\"failures\":%" PRIu64 ",\"rejections\":%" PRIu64 ",\"probes_given_back\":%" PRIu64
	           ",\"last_transition_ms_ago\":%" PRIu64,
	        state_name(st->state), prot_name_shown(NAMES_BREAKER_STRATEGY, o->strategy),
	        st->failures_in_window, st->next_probe_ms, st->calls, st->successes, st->failures,
	        st->rejections, st->probes_given_back, st->last_transition_ms_ago);
	fprintf(f, ",\"tolerance\":%" PRIu32 ",\"window_ms\":%" PRIu64 ",\"refresh_ms\":%" PRIu64
	           ",\"half_open_probes\":%" PRIu32 ",\"probe_timeout_ms\":%" PRIu64
	           ",\"slow_call_ms\":%" PRIu64 ",\"rate_threshold_pct\":%" PRIu32
	           ",\"rate_window_calls\":%" PRIu32 ",\"rate_min_calls\":%" PRIu32 ",\"heal\":\"%s\"",
	        o->tolerance, o->window_ms, o->refresh_ms, o->half_open_probes, o->probe_timeout_ms,
	        o->slow_call_ms, o->rate_threshold_pct, o->rate_window_calls, o->rate_min_calls,
	        prot_name_shown(NAMES_BREAKER_HEAL, o->heal));
}

void ctl_breaker_json(FILE *f, const struct prot_breaker_status *st)
{
	fputc('{', f);
	breaker_members(f, st);
	fputc('}', f);
}

/* "3/4 in 1s" (standard) or "12/50 of 100 calls" (rate): how close it is to tripping. */
static const char *window_text(char buf[64], const struct prot_breaker_status *st)
{
	char d[32];
	if (st->opts.strategy == PROT_BREAKER_RATE)
		snprintf(buf, 64, "%" PRIu32 "/%" PRIu32 " calls", st->failures_in_window,
		         st->opts.rate_window_calls);
	else
		snprintf(buf, 64, "%" PRIu32 "/%" PRIu32 " in %s", st->failures_in_window,
		         st->opts.tolerance + 1, ctl_dur(d, st->opts.window_ms));
	return buf;
}

static const char header_fmt[] = "%-20s %-9s %-16s %-10s %10s %10s %10s %10s %8s %s\n";

static void show_line(struct ctl *c, const struct prot_breaker_status *st)
{
	char w[64], probe[32], ago[32];
	fprintf(c->out, "%-20s %-9s %-16s %-10s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64
	                " %8" PRIu64 " %s ago\n",
	        ctl_text(st->name), state_name(st->state), window_text(w, st),
	        st->state == PROT_BREAKER_OPEN ? ctl_dur(probe, st->next_probe_ms) : "-", st->calls,
	        st->successes, st->failures, st->rejections, st->probes_given_back,
	        ctl_dur(ago, st->last_transition_ms_ago));
}

struct show_all {
	struct ctl *c;
	int n, err;
};

static int show_one(const char *name, void *arg)
{
	struct show_all *a = arg;
	struct prot_breaker_status st;
	int r = prot_breaker_status(a->c->p, name, &st);

	if (r == -PROT_ENOBREAKER)
		return 0; /* removed since it was listed */
	if (r < 0) {
		a->err = r;
		return 1;
	}
	if (a->c->json) {
		if (a->n)
			fputc(',', a->c->out);
		ctl_breaker_json(a->c->out, &st);
	} else {
		show_line(a->c, &st);
	}
	a->n++;
	return 0;
}

static int cmd_show(struct ctl *c, int argc, char **argv)
{
	struct show_all a = {.c = c};

	if (argc > 1) {
		struct prot_breaker_status st;
		int r = prot_breaker_status(c->p, argv[1], &st);
		if (r < 0)
			return ctl_bad_arg(r, "breaker show", "breaker", argv[1], PROT_NAME_MAX);
		if (c->json) {
			ctl_json_open(c->out, false);
			breaker_members(c->out, &st);
			fputs("}\n", c->out);
		} else {
			fprintf(c->out, header_fmt, "NAME", "STATE", "IN_WINDOW", "NEXT_PROBE", "CALLS",
			        "SUCCESSES", "FAILURES", "REJECTED", "GIVEBACK", "LAST_CHANGE");
			show_line(c, &st);
		}
		return CTL_OK;
	}
	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"breakers\":[", c->out);
	}
	else
		fprintf(c->out, header_fmt, "NAME", "STATE", "IN_WINDOW", "NEXT_PROBE", "CALLS", "SUCCESSES",
		        "FAILURES", "REJECTED", "GIVEBACK", "LAST_CHANGE");
	int r = prot_list_breakers(c->p, show_one, &a);
	if (r >= 0)
		r = a.err;
	if (c->json)
		fputs("]}\n", c->out);
	if (r < 0)
		return ctl_fail(ctl_code(r), "breaker show: %s", prot_strerror(r));
	return CTL_OK;
}

/* The verbs that change one breaker: what they call and what they say after (--json: the state
 * it is left in, or "removed": true). */
#define REMOVED UINT32_MAX
static const struct force_verb {
	const char *verb;
	int (*fn)(prot_t *p, const char *name);
	uint32_t state;
	const char *said;
} force_verbs[] = {
	{"reset", prot_breaker_reset, PROT_BREAKER_CLOSED, "reset: closed"},
	{"blow", prot_breaker_blow, PROT_BREAKER_BLOWN, "disabled: open until `breaker enable`"},
	{"enable", prot_breaker_enable, PROT_BREAKER_CLOSED, "enabled: closed"},
	{"remove", prot_breaker_remove, REMOVED, "removed"},
	{0},
};

static int cmd_force(struct ctl *c, int argc, char **argv)
{
	const struct force_verb *v = force_verbs;
	while (strcmp(v->verb, argv[0]) != 0)
		v++;
	int r = v->fn(c->p, argv[1]);
	char cmd[32];

	(void)argc;
	snprintf(cmd, sizeof cmd, "breaker %s", v->verb);
	if (r < 0)
		return ctl_bad_arg(r, cmd, "breaker", argv[1], PROT_NAME_MAX);
	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"name\":", c->out);
		ctl_json_str(c->out, argv[1]);
		if (v->state == REMOVED)
			fputs(",\"removed\":true}\n", c->out);
		else
			fprintf(c->out, ",\"state\":\"%s\"}\n", state_name(v->state));
	} else {
		fprintf(c->out, "breaker %s %s\n", ctl_text(argv[1]), v->said);
	}
	return CTL_OK;
}

const struct ctl_cmd ctl_breaker_cmds[] = {
	{"breaker", "show", "[NAME]",
	 "state, failures in the window, time to the next probe, counters, last transition", 0, 1,
	 false, cmd_show},
	{"breaker", "reset", "NAME", "close now and clear the failure history (refused while disabled)",
	 1, 1, true, cmd_force},
	{"breaker", "blow", "NAME", "disable: open until enable, whatever happens (fuse's circuit_disable)",
	 1, 1, true, cmd_force},
	{"breaker", "enable", "NAME", "enable a disabled breaker: closed, empty history (circuit_enable)",
	 1, 1, true, cmd_force},
	{"breaker", "remove", "NAME", "remove it (through protd); defined again, it comes back fresh", 1, 1,
	 true, cmd_force},
	{0},
};
