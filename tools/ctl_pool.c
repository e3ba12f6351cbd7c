/* ctl_pool.c — `protctl pool list` and `protctl pool show [NAME]`.
 * Everything comes from prot_pool_status(), which only reads the segment (the pool word is one
 * snapshot: in use and waiting are consistent with each other): both verbs work on a read-only
 * mapping. */
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

static void show_json(struct ctl *c, const struct prot_pool_status *st)
{
	FILE *f = c->out;

	fputs("{\"name\":", f);
	ctl_json_str(f, st->name);
	fprintf(f, ",\"size\":%" PRIu32 ",\"max_overflow\":%" PRIu32 ",\"in_use\":%" PRIu32
	           ",\"overflow_in_use\":%" PRIu32 ",\"waiting\":%" PRIu32 ",\"high_water\":%" PRIu32
	           ",\"checkouts\":%" PRIu64 ",\"timeouts\":%" PRIu64 ",\"reclaims\":%" PRIu64
	           ",\"checkout_timeout_ms\":%" PRIu64 ",\"overflow_ttl_ms\":%" PRIu64
	           ",\"strategy\":\"%s\"}",
	        st->size, st->max_overflow, st->in_use, st->overflow_in_use, st->waiting, st->high_water,
	        st->checkouts, st->timeouts, st->reclaims, st->checkout_timeout_ms, st->overflow_ttl_ms,
	        st->strategy == 1 ? "fifo" : "lifo");
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
		show_json(w->c, &st);
	} else {
		show_line(w->c, &st);
	}
	w->n++;
	return 0;
}

static int walk_all(struct ctl *c, bool names_only, const char *verb)
{
	struct walk w = {.c = c, .names_only = names_only};

	if (c->json)
		fputs("{\"pools\":[", c->out);
	else if (!names_only)
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
	if (argc < 2)
		return walk_all(c, false, "show");
	struct prot_pool_status st;
	int r = prot_pool_status(c->p, argv[1], &st);
	if (r < 0)
		return ctl_bad_arg(r, "pool show", "pool", argv[1], PROT_NAME_MAX);
	if (c->json) {
		show_json(c, &st);
		fputc('\n', c->out);
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
	        st.strategy == 1 ? "fifo" : "lifo");
	return CTL_OK;
}

const struct ctl_cmd ctl_pool_cmds[] = {
	{"pool", "list", "", "the pools of the segment", 0, 0, false, cmd_list},
	{"pool", "show", "[NAME]",
	 "size, max overflow, in use, overflow in use, waiting (all processes), checkouts, timeouts, "
	 "reclaims",
	 0, 1, false, cmd_show},
	{0},
};
