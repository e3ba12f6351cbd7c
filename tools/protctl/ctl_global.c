/* ctl_global.c — protctl's view of global limits (lib/rate_global.c, daemon/redis_sync.c): the
 * host's state as the sync thread's status line says it (`status`, `metrics`), and a key's scope
 * and leased units (`status KEY`, `metrics`). The status line and the counters are display words
 * written by protd; everything is read with relaxed loads and shown as is (bounded numbers, no
 * offsets). A segment made without [redis] has no area: "global" is null.
 */
#include <inttypes.h>
#include <time.h>

#include "ctl.h"
#include "rate_global.h"

struct gview {
	uint64_t state, last_sync_ms, latency_us, commands, failures, degraded_since_ms, tracked, hosts;
	uint64_t now_ms; /* calendar ms, as last_sync_ms */
};

static bool gview_of(prot_t *p, struct gview *v)
{
	const struct prot_rate_global *a = rate_global_area(prot_hdr(p));
	if (!a)
		return false;
	struct prot_rate_global *w = (struct prot_rate_global *)a;
	/* relaxed: display words */
	*v = (struct gview){ atomic_load_explicit(&w->state, memory_order_relaxed),
		             atomic_load_explicit(&w->last_sync_ms, memory_order_relaxed),
		             atomic_load_explicit(&w->latency_us, memory_order_relaxed),
		             atomic_load_explicit(&w->commands, memory_order_relaxed),
		             atomic_load_explicit(&w->failures, memory_order_relaxed),
		             atomic_load_explicit(&w->degraded_since_ms, memory_order_relaxed),
		             atomic_load_explicit(&w->tracked, memory_order_relaxed),
		             atomic_load_explicit(&w->hosts, memory_order_relaxed), rate_calendar_ns() / 1000000 };
	return true;
}

static uint64_t age(const struct gview *v, uint64_t ms)
{
	return ms && v->now_ms > ms ? v->now_ms - ms : 0;
}

static void gview_json(FILE *f, const struct gview *v)
{
	fprintf(f, "{\"state\":\"%s\",\"last_sync_age_ms\":", prot_name_shown(NAMES_GLOBAL_STATE, v->state));
	if (v->last_sync_ms)
		fprintf(f, "%" PRIu64, age(v, v->last_sync_ms));
	else
		fputs("null", f);
	fprintf(f, ",\"latency_us\":%" PRIu64 ",\"degraded_ms\":%" PRIu64 ",\"commands\":%" PRIu64
	           ",\"failures\":%" PRIu64 ",\"buckets\":%" PRIu64 ",\"hosts\":%" PRIu64 "}",
	        v->latency_us, age(v, v->degraded_since_ms), v->commands, v->failures, v->tracked, v->hosts);
}

static void gview_human(FILE *f, const char *indent, const struct gview *v)
{
	fprintf(f, "%s%s", indent, prot_name_shown(NAMES_GLOBAL_STATE, v->state));
	if (v->state == RG_DEGRADED)
		fprintf(f, " for %" PRIu64 " ms", age(v, v->degraded_since_ms));
	if (v->last_sync_ms)
		fprintf(f, ", last sync %" PRIu64 " ms ago", age(v, v->last_sync_ms));
	else
		fputs(", never synced", f);
	fprintf(f, ", Redis round trip %" PRIu64 " us; %" PRIu64 " buckets, %" PRIu64 " hosts, %" PRIu64
	           " commands, %" PRIu64 " failed rounds\n",
	        v->latency_us, v->tracked, v->hosts, v->commands, v->failures);
}

void ctl_global_status(struct ctl *c)
{
	struct gview v;
	bool on = gview_of(c->p, &v);
	if (c->json) {
		fputs(", \"global\": ", c->out);
		if (on)
			gview_json(c->out, &v);
		else
			fputs("null", c->out);
	} else if (on) {
		gview_human(c->out, "global        ", &v);
	}
}

/* Key NAME's scope and units leased this window (false: no such key or a local one). */
static bool key_global(prot_t *p, const char *key, struct prot_key_cfg *cfg, uint64_t *leased)
{
	struct prot_shm_header *h = prot_hdr(p);
	int idx = seg_find(h, REG_KEYS, key);
	if (idx < 0 || rate_key_cfg(h, (uint32_t)idx, cfg) < 0 || cfg->rate_scope != RATE_SCOPE_GLOBAL)
		return false;
	struct prot_key_slot *k = seg_entry(h, REG_KEYS, (uint32_t)idx);
	*leased = atomic_load_explicit(&k->stats.global_leased, memory_order_relaxed); /* display */
	return true;
}

void ctl_global_key(struct ctl *c, const char *key)
{
	struct prot_key_cfg cfg;
	struct gview v;
	uint64_t leased;
	bool on = key_global(c->p, key, &cfg, &leased) && gview_of(c->p, &v);
	if (c->json) {
		fputs(",\"global\":", c->out);
		if (!on) {
			fputs("null", c->out);
			return;
		}
		fprintf(c->out, "{\"scope\":\"%s\",\"leased\":%" PRIu64 ",\"allowance\":%" PRIu64 ",\"host\":",
		        prot_name_shown(NAMES_RATE_SCOPE, cfg.rate_scope), leased, cfg.rate_allowance);
		gview_json(c->out, &v);
		fputc('}', c->out);
	} else if (on) {
		fprintf(c->out, "  scope     global: %" PRIu64 " units leased to this host for the current "
		                "windows, allowance %" PRIu64 "\n", leased, cfg.rate_allowance);
		gview_human(c->out, "  redis     ", &v);
	} else {
		fputs("  scope     local\n", c->out);
	}
}

void ctl_global_metrics(struct ctl *c, const struct key_snapshot *ks, uint32_t n)
{
	struct gview v;
	FILE *f = c->out;
	if (!gview_of(c->p, &v)) {
		if (c->json)
			fputs(",\"global\":null", f);
		return;
	}
	if (c->json) {
		fputs(",\"global\":", f);
		gview_json(f, &v);
		return;
	}
	static const struct { const char *name, *type, *help; } m[] = {
		{ "prot_global_degraded", "gauge", "1 while Redis is unreachable and global keys run on their local share." },
		{ "prot_global_last_sync_age_ms", "gauge", "Since the sync thread's last successful round trip." },
		{ "prot_global_redis_latency_us", "gauge", "The last lease round trip to Redis." },
		{ "prot_global_redis_commands_total", "counter", "Redis commands the sync thread sent." },
		{ "prot_global_redis_failures_total", "counter", "Sync rounds that failed (timeout, error, no connection)." },
		{ "prot_global_buckets", "gauge", "Global buckets the sync thread leases for." },
	};
	const uint64_t val[] = { v.state == RG_DEGRADED, age(&v, v.last_sync_ms), v.latency_us, v.commands,
		                 v.failures, v.tracked };
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", m[i].name, m[i].help, m[i].name,
		        m[i].type, m[i].name, val[i]);
	fputs("# HELP prot_global_leased Units leased to this host for the current windows of a global key.\n"
	      "# TYPE prot_global_leased gauge\n", f);
	for (uint32_t i = 0; i < n; i++) {
		struct prot_key_cfg cfg;
		uint64_t leased;
		if (!key_global(c->p, ks[i].name, &cfg, &leased))
			continue;
		fputs("prot_global_leased{key=\"", f);
		for (const char *s = ks[i].name; *s; s++) { /* a label value: \ and " escaped */
			if (*s == '"' || *s == '\\')
				fputc('\\', f);
			fputc(*s, f);
		}
		fprintf(f, "\"} %" PRIu64 "\n", leased);
	}
}
