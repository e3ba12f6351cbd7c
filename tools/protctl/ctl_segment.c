/* ctl_segment.c — protctl's views of the segment as a whole: `list` (keys, breakers, pools),
 * `status` (segment, protd, capacities) and `status KEY` (one key's settings and counters), and
 * `events` (the event ring, optionally followed until SIGINT/SIGTERM).
 *
 * Everything read from the segment is untrusted: names come through prot_list_* (bounded, NUL
 * checked) and the event reader (NUL forced); indices through the library's bounds checks.
 */
#include <errno.h>
#include <time.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "seg_place.h"

/* ---- list ------------------------------------------------------------------------------------ */

struct list_out {
	struct ctl *c;
	int n;
};

static int list_one(const char *name, void *arg)
{
	struct list_out *l = arg;

	if (l->c->json) {
		fputs(l->n ? ", " : "", l->c->out);
		ctl_json_str(l->c->out, name);
	} else {
		fprintf(l->c->out, "  %s\n", ctl_text(name));
	}
	l->n++;
	return 0;
}

typedef int (*list_fn)(prot_t *, int (*)(const char *, void *), void *);

static int cmd_list(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *title;
		list_fn fn;
	} kinds[] = {{"keys", prot_list_keys}, {"breakers", prot_list_breakers}, {"pools", prot_list_pools}};
	(void)argc, (void)argv;

	if (c->json)
		ctl_json_open(c->out, true);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		struct list_out l = {c, 0};
		if (c->json)
			fprintf(c->out, "%s\"%s\": [", i ? ", " : "", kinds[i].title);
		else
			fprintf(c->out, "%s:\n", kinds[i].title);
		int r = kinds[i].fn(c->p, list_one, &l);
		if (r < 0)
			return ctl_fail(ctl_code(r), "list: %s", prot_strerror(r));
		if (c->json)
			fputc(']', c->out);
		else if (l.n == 0)
			fputs("  (none)\n", c->out);
	}
	if (c->json)
		fputs("}\n", c->out);
	return CTL_OK;
}

/* ---- status ---------------------------------------------------------------------------------- */

/* What `status` shows beyond struct prot_info. */
struct seg_view {
	struct prot_info in;
	int state;           /* PROTD_*: running, not responding, dead, stopped */
	int huge_pages;      /* enum seg_huge: the pages backing it (lib/seg_place.c) */
	bool process_alive;  /* protd's identity lock is held (lib/ident.c) */
	uint64_t ev_head;
	uint32_t ev_ring;
	char control[sizeof(((struct prot_shm_header *)0)->control_path)];
};

#define HEARTBEAT_RESPONSIVE_MS 2000u /* display only: a live protd whose tick is this late */

static int protd_state(const struct prot_info *in, bool *process_alive)
{
	*process_alive = in->protd_alive;
	if (in->protd_pid == 0 && !in->protd_alive)
		return PROTD_STOPPED;
	if (!*process_alive)
		return PROTD_DEAD;
	return in->heartbeat_age_ms < HEARTBEAT_RESPONSIVE_MS ? PROTD_RUNNING : PROTD_NOT_RESPONDING;
}

static void status_json(struct ctl *c, const struct seg_view *v)
{
	const struct prot_info *in = &v->in;
	FILE *f = c->out;

	ctl_json_open(f, true);
	fputs("\"segment\": ", f);
	ctl_json_str(f, in->segment);
	fprintf(f, ", \"size\": %" PRIu64 ", \"huge_pages\": \"%s\", \"abi_version\": %" PRIu32
	           ", \"config_generation\": %" PRIu64 ", \"retired\": %s",
	        in->size, prot_name_shown(NAMES_HUGE_PAGES, (uint64_t)v->huge_pages), in->abi_version,
	        in->config_generation, in->retired ? "true" : "false");
	fprintf(f, ", \"protd\": {\"pid\": %" PRId32 ", \"state\": \"%s\", \"process_alive\": %s, "
	           "\"heartbeat_age_ms\": ",
	        in->protd_pid, prot_name_shown(NAMES_PROTD_STATE, (uint64_t)v->state),
	        v->process_alive ? "true" : "false");
	if (in->heartbeat_age_ms == UINT64_MAX)
		fputs("null", f);
	else
		fprintf(f, "%" PRIu64, in->heartbeat_age_ms);
	fputs(", \"control_socket\": ", f);
	ctl_json_str(f, v->control);
	fprintf(f, "}, \"keys\": {\"used\": %" PRIu32 ", \"max\": %" PRIu32 "}"
	           ", \"breakers\": {\"used\": %" PRIu32 ", \"max\": %" PRIu32 "}"
	           ", \"pools\": {\"used\": %" PRIu32 ", \"max\": %" PRIu32 "}"
	           ", \"rate_buckets\": {\"used\": %" PRIu64 ", \"max\": %" PRIu64 "}"
	           ", \"events\": {\"emitted\": %" PRIu64 ", \"ring\": %" PRIu32 "}",
	        in->keys, in->max_keys, in->breakers, in->max_breakers, in->pools, in->max_pools,
	        in->rate_buckets_used, in->rate_buckets_max, v->ev_head, v->ev_ring);
}

static void status_human(struct ctl *c, const struct seg_view *v)
{
	const struct prot_info *in = &v->in;
	FILE *f = c->out;
	char d[32];

	fprintf(f, "segment       %s%s\n", ctl_text(in->segment), in->retired ? " (retired)" : "");
	fprintf(f, "size          %" PRIu64 " bytes (%.1f %s)\n", in->size,
	        in->size >= 1u << 20 ? (double)in->size / 1048576.0 : (double)in->size / 1024.0,
	        in->size >= 1u << 20 ? "MiB" : "KiB");
	fprintf(f, "huge pages    %s\n", prot_name_shown(NAMES_HUGE_PAGES, (uint64_t)v->huge_pages));
	fprintf(f, "abi version   %" PRIu32 "\n", in->abi_version);
	fprintf(f, "config gen    %" PRIu64 "\n", in->config_generation);
	if (in->protd_pid == 0)
		fprintf(f, "protd         stopped\n");
	else
		fprintf(f, "protd         pid %" PRId32 ", %s, heartbeat %s%s\n", in->protd_pid,
		        v->state == PROTD_NOT_RESPONDING ? "not responding" : prot_name_shown(NAMES_PROTD_STATE, (uint64_t)v->state),
		        ctl_dur(d, in->heartbeat_age_ms), in->heartbeat_age_ms == UINT64_MAX ? "" : " ago");
	if (v->control[0])
		fprintf(f, "control       %s\n", ctl_text(v->control));
	fprintf(f, "keys          %" PRIu32 " / %" PRIu32 "\n", in->keys, in->max_keys);
	fprintf(f, "breakers      %" PRIu32 " / %" PRIu32 "\n", in->breakers, in->max_breakers);
	fprintf(f, "pools         %" PRIu32 " / %" PRIu32 "\n", in->pools, in->max_pools);
	fprintf(f, "rate buckets  %" PRIu64 " / %" PRIu64 "\n", in->rate_buckets_used, in->rate_buckets_max);
	fprintf(f, "events        %" PRIu64 " emitted, ring of %" PRIu32 "\n", v->ev_head, v->ev_ring);
}

static int status_segment(struct ctl *c)
{
	struct seg_view v = {0};
	int r = prot_get_info(c->p, &v.in);
	if (r < 0)
		return ctl_fail(ctl_code(r), "status: %s", prot_strerror(r));
	struct prot_shm_header *h = prot_hdr(c->p);
	/* relaxed: display only */
	v.ev_head = atomic_load_explicit(&h->event_head, memory_order_relaxed);
	v.ev_ring = seg_count(h, REG_EVENTS);
	/* protd may rewrite the path: copy it bounded and terminate it whatever the bytes */
	memcpy(v.control, h->control_path, sizeof v.control);
	v.control[sizeof v.control - 1] = '\0';
	v.state = protd_state(&v.in, &v.process_alive);
	v.huge_pages = (int)seg_backing_of(c->p);
	if (c->json)
		status_json(c, &v);
	else
		status_human(c, &v);
	ctl_global_status(c);
	if (c->json)
		fputs("}\n", c->out);
	return CTL_OK;
}

static const char *algo_name(uint32_t a)
{
	return prot_name_shown(NAMES_RATE_ALGORITHM, a);
}

static const char *breaker_state_name(uint32_t s)
{
	return prot_breaker_state_name(s);
}

/* status KEY: the key, its rate limit ("key_rate") and its breaker and pool as breaker show and
 * pool show print them (null when the key has none). */
static void key_json(FILE *f, const struct prot_protection_status *s)
{
	ctl_json_open(f, false);
	fputs("\"key\":", f);
	ctl_json_str(f, s->key);
	fprintf(f, ",\"timeout_ms\":%" PRIu64 ",\"calls\":%" PRIu64 ",\"ok\":%" PRIu64
	           ",\"failed\":%" PRIu64 ",\"timeouts\":%" PRIu64 ",\"rate\":",
	        s->timeout_ms, s->calls, s->ok, s->failed, s->timeouts);
	if (s->has_rate)
		fprintf(f, "{\"algorithm\":\"%s\",\"limit\":%" PRIu64 ",\"window_ms\":%" PRIu64
		           ",\"burst\":%" PRIu64 ",\"buckets\":%" PRIu64 ",\"admitted\":%" PRIu64
		           ",\"denied\":%" PRIu64 ",\"table_full\":%" PRIu64 "}",
		        algo_name(s->rate.algo), s->rate.limit, s->rate.window_ms, s->rate.burst,
		        s->rate_buckets, s->rate_allowed, s->rate_denied, s->rate_table_full);
	else
		fputs("null", f);
	fputs(",\"breaker\":", f);
	if (s->has_breaker)
		ctl_breaker_json(f, &s->breaker);
	else
		fputs("null", f);
	fputs(",\"pool\":", f);
	if (s->has_pool)
		ctl_pool_json(f, &s->pool);
	else
		fputs("null", f);
}

static void key_human(FILE *f, const struct prot_protection_status *s)
{
	char d1[32], d2[32];

	fprintf(f, "key %s\n", ctl_text(s->key));
	fprintf(f, "  timeout   %s\n", ctl_dur(d1, s->timeout_ms));
	fprintf(f, "  calls     %" PRIu64 " (ok %" PRIu64 ", failed %" PRIu64 ", timeouts %" PRIu64 ")\n",
	        s->calls, s->ok, s->failed, s->timeouts);
	if (s->has_rate)
		fprintf(f, "  rate      %s, %" PRIu64 " per %s, burst %" PRIu64 "; %" PRIu64
		           " buckets, allowed %" PRIu64 ", denied %" PRIu64 ", table full %" PRIu64 "\n",
		        algo_name(s->rate.algo), s->rate.limit, ctl_dur(d1, s->rate.window_ms),
		        s->rate.burst ? s->rate.burst : s->rate.limit, s->rate_buckets, s->rate_allowed,
		        s->rate_denied, s->rate_table_full);
	else
		fputs("  rate      none\n", f);
	if (s->has_breaker) {
		const struct prot_breaker_status *b = &s->breaker;
		fprintf(f, "  breaker   %s: %s (%s, tolerance %" PRIu32 " in %s, refresh %s); calls %" PRIu64
		           ", failures %" PRIu64 ", rejections %" PRIu64 "\n",
		        ctl_text(b->name), breaker_state_name(b->state),
		        prot_name_shown(NAMES_BREAKER_STRATEGY, b->opts.strategy), b->opts.tolerance,
		        ctl_dur(d1, b->opts.window_ms), ctl_dur(d2, b->opts.refresh_ms), b->calls,
		        b->failures, b->rejections);
	} else {
		fputs("  breaker   none\n", f);
	}
	if (s->has_pool) {
		const struct prot_pool_status *p = &s->pool;
		fprintf(f, "  pool      %s: %" PRIu32 "/%" PRIu32 " in use, overflow %" PRIu32 "/%" PRIu32
		           ", %" PRIu32 " waiting (checkout timeout %s, %s); checkouts %" PRIu64
		           ", timeouts %" PRIu64 ", reclaims %" PRIu64 "\n",
		        ctl_text(p->name), p->in_use, p->size, p->overflow_in_use, p->max_overflow, p->waiting,
		        ctl_dur(d1, p->checkout_timeout_ms), prot_name_shown(NAMES_POOL_STRATEGY, p->strategy), p->checkouts,
		        p->timeouts, p->reclaims);
	} else {
		fputs("  pool      none\n", f);
	}
}

static int status_key(struct ctl *c, const char *key)
{
	struct prot_protection_status s;
	int r = prot_get_protection_status(c->p, key, &s);

	if (r == -PROT_ENOKEY)
		return ctl_fail(CTL_ENOENT, "status: no protection key '%s' (see protctl list)", ctl_text(key));
	if (r < 0)
		return ctl_bad_arg(r, "status", "key", key, PROT_NAME_MAX);
	if (c->json)
		key_json(c->out, &s);
	else
		key_human(c->out, &s);
	ctl_global_key(c, key);
	if (c->json)
		fputs("}\n", c->out);
	return CTL_OK;
}

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	return argc > 1 ? status_key(c, argv[1]) : status_segment(c);
}

/* ---- events ---------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_following;

static void on_stop(int sig)
{
	(void)sig;
	stop_following = 1;
}

/* One event: the common members, then its payload named by lib/event_text.c's table ("fields",
 * and "text", the same words as the text form); "a" and "b" stay for older readers. */
/* The event's wall-clock time as ISO 8601 UTC with milliseconds ("-" for an event written before
 * events carried one). */
static const char *event_time(char *buf, size_t n, const struct prot_event *e)
{
	time_t t = (time_t)(e->wall_ns / 1000000000u);
	struct tm tm;
	if (e->wall_ns == 0 || !gmtime_r(&t, &tm)) {
		snprintf(buf, n, "-");
		return buf;
	}
	size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + k, n - k, ".%03uZ", (unsigned)(e->wall_ns / 1000000u % 1000u));
	return buf;
}

/* doc: the event is a document of its own (--follow --json: one a line), with its schema. */
static void event_json(FILE *f, const struct prot_event *e, uint64_t age_ms, bool doc)
{
	struct prot_event_field fl[PROT_EVENT_FIELDS];
	char words[256], when[40];
	int n = prot_event_fields(e, fl);

	if (doc)
		ctl_json_open(f, true);
	else
		fputc('{', f);
	fprintf(f, "\"seq\": %" PRIu64 ", \"time\": \"%s\", \"age_ms\": %" PRIu64 ", \"type\": \"%s\", "
	           "\"pid\": %" PRId32 ", \"object\": %" PRIu32 ", \"name\": ",
	        e->seq, event_time(when, sizeof when, e), age_ms, prot_event_name(e->type), e->pid, e->object);
	ctl_json_str(f, e->name);
	fputs(", \"fields\": {", f);
	for (int i = 0; i < n; i++) {
		fprintf(f, "%s\"%s\": ", i ? ", " : "", fl[i].json);
		if (fl[i].value_name)
			fprintf(f, "\"%s\"", fl[i].value_name);
		else
			fprintf(f, "%" PRIu64, fl[i].value);
	}
	fputs("}, \"text\": ", f);
	ctl_json_str(f, prot_event_words(e, words, sizeof words));
	fprintf(f, ", \"a\": %" PRIu64 ", \"b\": %" PRIu64 "}", e->a, e->b);
}

static void event_print(struct ctl *c, const struct prot_event *e, uint64_t now, bool doc)
{
	char d[32], words[256], when[40];
	uint64_t age_ms = e->time_ns < now ? (now - e->time_ns) / 1000000u : 0;

	if (c->json)
		event_json(c->out, e, age_ms, doc);
	else
		fprintf(c->out, "%-8" PRIu64 " %s %8s ago  %-18s %-20s pid %-7" PRId32 " %s\n", e->seq,
		        event_time(when, sizeof when, e), ctl_dur(d, age_ms), prot_event_name(e->type),
		        e->name[0] ? ctl_text(e->name) : "-", e->pid, prot_event_words(e, words, sizeof words));
}

struct ev_reader {
	const struct prot_shm_header *h; /* the mapping the cursor counts in */
	uint64_t cursor, dropped;
	int printed;
	bool ndjson; /* --follow --json: one object per line, as they come */
};

/* Print every event readable now. A re-attach to a successor segment restarts the numbering. */
static void events_drain(struct ctl *c, struct ev_reader *r)
{
	struct prot_event e;
	const struct prot_shm_header *h = prot_hdr(c->p);

	if (h != r->h) {
		r->h = h;
		r->cursor = prot_event_oldest(h);
	}
	while (prot_event_read(h, &r->cursor, &e, &r->dropped) == 1) {
		if (c->json && !r->ndjson)
			fputs(r->printed ? ",\n  " : "\n  ", c->out);
		event_print(c, &e, prot_now_ns(), r->ndjson);
		if (c->json && r->ndjson)
			fputc('\n', c->out);
		r->printed++;
	}
}

static void follow(struct ctl *c, struct ev_reader *r)
{
	struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: the sleep returns at once */
	const struct timespec tick = {0, 100 * 1000 * 1000};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop_following) {
		events_drain(c, r);
		fflush(c->out);
		nanosleep(&tick, NULL);
	}
}

static int cmd_events(struct ctl *c, int argc, char **argv)
{
	bool follow_ = false;
	struct ev_reader r = {0};

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0)
			follow_ = true;
		else
			return ctl_fail(CTL_EUSAGE, "events: unknown argument '%s'; usage: protctl events [--follow]",
			                argv[i]);
	}
	r.ndjson = follow_;
	if (c->json && !follow_) {
		ctl_json_open(c->out, true);
		fputs("\"events\": [", c->out);
	}
	/* what the ring no longer held when this read began: the events newer ones overwrote */
	uint64_t overwritten = prot_event_oldest(prot_hdr(c->p));
	events_drain(c, &r);
	if (follow_)
		follow(c, &r);
	if (c->json && !follow_)
		fprintf(c->out, "%s], \"dropped\": %" PRIu64 ", \"overwritten\": %" PRIu64 "}\n",
		        r.printed ? "\n" : "", r.dropped, overwritten);
	else if (!c->json && r.printed == 0 && !follow_)
		fputs("no events\n", c->out);
	if (!c->json && r.dropped)
		fprintf(c->out, "(%" PRIu64 " events were overwritten before they could be read)\n", r.dropped);
	return CTL_OK;
}

const struct ctl_cmd ctl_segment_cmds[] = {
	{"list", NULL, "", "names of the protection keys, breakers and pools", 0, 0, false, cmd_list},
	{"status", NULL, "[KEY]", "segment, protd and capacities; with KEY: its settings and counters",
	 0, 1, false, cmd_status},
	{"events", NULL, "[--follow]", "state changes from the event ring; --follow until Ctrl-C",
	 0, 1, false, cmd_events},
	{0},
};
