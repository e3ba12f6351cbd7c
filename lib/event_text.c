/* event_text.c — events for people: the one table of event type names and of what each event's
 * two payload words (a, b) mean, and the formatter that protctl (`events`, text and --json) and
 * protd (its log) both use, so a field reads the same everywhere: "opened: 4 failures in the
 * window, epoch 3" where the ring holds a=3 b=4.
 *
 * The meanings are those of the prot_event_emit call sites:
 *   breaker transitions (lib/breaker.c, bk_transitioned): a = the breaker's new epoch; for open,
 *     b = the failures that tripped it (0: a half-open probe failed); for half-open, b = the
 *     probes of the previous round that never reported back (given back); otherwise b = 0.
 *   breaker_created, breaker_removed, pool_created, pool_removed (daemon/control.c): no payload.
 *   pool_exhausted (lib/pool.c, note_exhausted): a = leases in use, b = processes waiting.
 *   lease_reclaimed (lib/pool_reclaim.c, pool_reclaim): a = the dead holder's process slot,
 *     b = the lease entry given back.
 *   config_reloaded / config_changed (daemon/shm.c, shm_config_changed): a = the configuration
 *     generation now in force (what `protctl status` shows).
 *   rate_table_full (lib/ratelimit.c, table_full): a = decisions made on a full table so far (all
 *     keys), b = what the new entity got: 1 allow (rate_on_full = allow), 0 deny (deny, or evict
 *     when no bucket could be evicted without loss).
 *   global_degraded / global_synced (daemon/redis_sync.c): a = failed rounds so far / the round
 *     trip in us; b (synced) = how long the outage lasted, ms.
 * The payload is untrusted (any writer of the segment can emit anything): the text is built from
 * this table and the numbers only, and names are escaped by prot_event_safe_name.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "wire.h"

/* One payload word as words. */
struct ev_field {
	char word;           /* 'a' or 'b'; 0 ends the list */
	const char *json;    /* member name in protctl's JSON "fields" object */
	const char *words;   /* '#' is the value; "(s)" is "s" unless the value is 1 */
	const char *if_zero; /* the text when the value is 0 ("" leaves the field out), or NULL */
	int names;           /* for a policy word: its set of names (lib/names.c), else -1 */
};

struct ev_kind {
	const char *name;    /* the type's stable name ("breaker_open") */
	const char *what;    /* what happened, in words */
	struct ev_field f[PROT_EVENT_FIELDS];
};

#define EPOCH {'a', "epoch", "epoch #", NULL, -1}

static const struct ev_kind kinds[] = {
	[EV_NONE] = {"none", "no event", {{0}}},
	[EV_BREAKER_OPEN] = {"breaker_open", "opened",
		{{'b', "failures", "# failure(s) in the window", "a half-open probe failed", -1}, EPOCH}},
	[EV_BREAKER_HALF_OPEN] = {"breaker_half_open", "half-open, admitting probes",
		{{'b', "probes_lost", "# probe(s) of the previous round never reported back", "", -1},
		 EPOCH}},
	[EV_BREAKER_CLOSED] = {"breaker_closed", "closed (the probes succeeded, it healed, or it was enabled)", {EPOCH}},
	[EV_BREAKER_BLOWN] = {"breaker_blown", "disabled (open until enabled)", {EPOCH}},
	[EV_BREAKER_RESET] = {"breaker_reset", "reset to closed", {EPOCH}},
	[EV_BREAKER_CREATED] = {"breaker_created", "created through protd", {{0}}},
	[EV_POOL_EXHAUSTED] = {"pool_exhausted", "no lease free",
		{{'a', "in_use", "# lease(s) in use", NULL, -1},
		 {'b', "waiting", "# waiting", NULL, -1}}},
	[EV_LEASE_RECLAIMED] = {"lease_reclaimed", "lease of a dead process reclaimed",
		{{'a', "process_slot", "process slot #", NULL, -1},
		 {'b', "lease", "lease entry #", NULL, -1}}},
	[EV_CONFIG_RELOADED] = {"config_reloaded", "configuration file reloaded",
		{{'a', "generation", "generation #", NULL, -1}}},
	[EV_CONFIG_CHANGED] = {"config_changed", "configuration changed at runtime",
		{{'a', "generation", "generation #", NULL, -1}}},
	[EV_RATE_TABLE_FULL] = {"rate_table_full", "rate bucket table full",
		{{'a', "table_full_total", "# decision(s) on a full table so far", NULL, -1},
		 {'b', "on_full", "new entities allowed", "new entities denied", NAMES_RATE_ON_FULL}}},
	[EV_POOL_LEAK] = {"pool_leak", "a lease held past leak_threshold",
		{{'a', "pid", "by pid #", NULL, -1},
		 {'b', "held_ms", "for # ms", NULL, -1}}},
	[EV_POOL_CREATED] = {"pool_created", "created through protd", {{0}}},
	[EV_POOL_REMOVED] = {"pool_removed", "removed through protd", {{0}}},
	[EV_BREAKER_REMOVED] = {"breaker_removed", "removed through protd", {{0}}},
	[EV_GLOBAL_DEGRADED] = {"global_degraded", "Redis unreachable: global keys on their local share",
		{{'a', "failures", "# failed round(s) so far", NULL, -1}}},
	[EV_GLOBAL_SYNCED] = {"global_synced", "Redis reachable: global accounting resumed",
		{{'a', "latency_us", "round trip # us", NULL, -1},
		 {'b', "outage_ms", "after # ms degraded", "", -1}}},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static const struct ev_kind *kind_of(uint32_t type)
{
	return type < NKINDS && kinds[type].name ? &kinds[type] : NULL;
}

const char *prot_event_name(uint32_t type)
{
	const struct ev_kind *k = kind_of(type);
	return k ? k->name : "unknown";
}

static uint64_t value_of(const struct prot_event *e, char word)
{
	return word == 'a' ? e->a : e->b;
}

/* Append the words of one field; returns the new length (bounded by n, always terminated). */
static size_t field_words(char *buf, size_t len, size_t n, const struct ev_field *f, uint64_t v)
{
	const char *t = v == 0 && f->if_zero ? f->if_zero : f->words;

	for (; *t && len + 1 < n; t++) {
		if (*t == '#') {
			int w = snprintf(buf + len, n - len, "%" PRIu64, v);
			len = w < 0 ? len : len + (size_t)w < n ? len + (size_t)w : n - 1;
		} else if (strncmp(t, "(s)", 3) == 0) {
			if (v != 1)
				buf[len++] = 's';
			t += 2;
		} else {
			buf[len++] = *t;
		}
	}
	buf[len] = '\0';
	return len;
}

const char *prot_event_words(const struct prot_event *e, char *buf, size_t n)
{
	const struct ev_kind *k = kind_of(e->type);
	size_t len;

	if (n == 0)
		return buf;
	if (!k) {
		snprintf(buf, n, "unknown event type %" PRIu32 " (a=%" PRIu64 ", b=%" PRIu64 ")", e->type,
		         e->a, e->b);
		return buf;
	}
	len = (size_t)snprintf(buf, n, "%s", k->what);
	len = len < n ? len : n - 1;
	bool first = true;
	for (int i = 0; i < PROT_EVENT_FIELDS && k->f[i].word; i++) {
		const struct ev_field *f = &k->f[i];
		uint64_t v = value_of(e, f->word);
		if (v == 0 && f->if_zero && !*f->if_zero)
			continue;
		const char *sep = first ? ": " : ", ";
		for (; *sep && len + 1 < n; sep++)
			buf[len++] = *sep;
		buf[len] = '\0';
		len = field_words(buf, len, n, f, v);
		first = false;
	}
	return buf;
}

int prot_event_fields(const struct prot_event *e, struct prot_event_field out[PROT_EVENT_FIELDS])
{
	const struct ev_kind *k = kind_of(e->type);
	int n = 0;

	for (int i = 0; k && i < PROT_EVENT_FIELDS && k->f[i].word; i++) {
		const struct ev_field *f = &k->f[i];
		uint64_t v = value_of(e, f->word);
		out[n].json = f->json;
		out[n].value = v;
		out[n].value_name = f->names >= 0 ? prot_name((enum prot_names)f->names, v) : NULL;
		n++;
	}
	return n;
}

const char *prot_event_safe_name(const char *s, char *buf, size_t n)
{
	size_t len = 0;

	if (n == 0)
		return buf;
	for (const unsigned char *u = (const unsigned char *)(s ? s : ""); *u && len + 5 <= n; u++) {
		if (*u == '\\')
			buf[len++] = '\\', buf[len++] = '\\';
		else if (*u < 0x20 || *u >= 0x7f)
			len += (size_t)snprintf(buf + len, n - len, "\\x%02x", *u);
		else
			buf[len++] = (char)*u;
	}
	buf[len] = '\0';
	return buf;
}
