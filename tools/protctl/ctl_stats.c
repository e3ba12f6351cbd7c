/* ctl_stats.c — protctl's cross-process statistics: `stats [KEY]` and `metrics` (Prometheus text
 * exposition format 0.0.4; with --json one JSON object, schema in man/prot-json.7.scd), both
 * read from the per-key counters and latency histograms that every process updates in the segment
 * (struct prot_key_stats), plus breaker and pool gauges.
 *
 * The counters are read while workers update them: each is individually exact, and a histogram is
 * made self-consistent by deriving its _count from the buckets read (so +Inf == _count always).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static uint64_t ld(_Atomic uint64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed); /* statistics: no ordering needed */
}

/* Copy a live key's counters. The name is untrusted: bounded and NUL-checked. */
static bool key_snapshot(const struct prot_shm_header *h, uint32_t i, struct key_snapshot *k)
{
	struct prot_key_slot *s = seg_entry(h, REG_KEYS, i);
	if (SLOT_STATE(atomic_load_explicit(&s->state, memory_order_acquire)) != SLOT_LIVE)
		return false;
	if (!memchr(s->name, 0, sizeof s->name))
		return false;
	memcpy(k->name, s->name, sizeof k->name);
	struct prot_key_stats *st = &s->stats;
	k->calls = ld(&st->calls), k->ok = ld(&st->ok), k->failed = ld(&st->failed);
	k->timeouts = ld(&st->timeouts), k->rate_table_full = ld(&st->rate_table_full);
	k->rate_evicted = ld(&st->rate_evicted);
	k->slot = i; /* rate totals: one pass for all keys, in ctl_keys_snapshot */
	k->breaker_rejected = ld(&st->breaker_rejected), k->pool_timeouts = ld(&st->pool_timeouts);
	k->latency_sum_ns = ld(&st->latency_sum_ns);
	uint64_t run = 0;
	for (int b = 0; b < PROT_HIST_BUCKETS; b++) {
		run += ld(&st->latency_hist[b]);
		k->hist[b] = run;
	}
	k->count = run;
	return true;
}

/* Upper bound of histogram bucket b in seconds; the last bucket is +Inf. */
static double hist_le(int b)
{
	return (double)(1ull << (10 + b)) / 1e9;
}

static const struct {
	const char *name, *help;
	size_t off;
} key_counters[] = {
#define C(f, n, h) {n, h, offsetof(struct key_snapshot, f)}
	C(calls, "prot_calls_total", "Calls made through prot_execute, by protection key."),
	C(ok, "prot_calls_ok_total", "Calls whose function succeeded within its timeout."),
	C(failed, "prot_calls_failed_total", "Calls whose function returned a failure."),
	C(timeouts, "prot_calls_timeout_total", "Calls that overran their timeout."),
	C(rate_allowed, "prot_rate_allowed_total", "Rate-limiter units admitted."),
	C(rate_denied, "prot_rate_denied_total", "Rate-limiter decisions denied."),
	C(rate_table_full, "prot_rate_table_full_total", "Decisions made while the bucket table was full."),
	C(rate_evicted, "prot_rate_evicted_total", "Buckets evicted to make room for a new entity (rate_on_full = evict)."),
	C(breaker_rejected, "prot_breaker_rejected_total", "Calls rejected by an open circuit breaker."),
	C(pool_timeouts, "prot_pool_checkout_timeout_total", "Pool checkouts that timed out."),
#undef C
};

static uint64_t field(const struct key_snapshot *k, size_t off)
{
	uint64_t v;
	memcpy(&v, (const char *)k + off, sizeof v);
	return v;
}

/* Prometheus label values escape backslash, double quote and newline; other control characters
 * (which the format has no escape for) become U+FFFD, so none reaches a terminal. */
static void prom_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		unsigned char u = (unsigned char)*v;
		if (u == '\\' || u == '"')
			fprintf(f, "\\%c", u);
		else if (u == '\n')
			fputs("\\n", f);
		else if (u < 0x20 || u == 0x7f)
			fputs("\xef\xbf\xbd", f);
		else
			fputc(u, f);
	}
}

static void prom_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_sample(FILE *f, const char *name, const char *label, const char *value_of_label,
                        uint64_t v)
{
	fprintf(f, "%s{%s=\"", name, label);
	prom_label(f, value_of_label);
	fprintf(f, "\"} %" PRIu64 "\n", v);
}

int ctl_keys_snapshot(struct ctl *c, struct key_snapshot **out, uint32_t *n)
{
	const struct prot_shm_header *h = prot_hdr(c->p);
	uint32_t max = seg_count(h, REG_KEYS);
	struct key_snapshot *ks = calloc(max ? max : 1, sizeof *ks);
	if (!ks)
		return ctl_fail(CTL_ENOENT, "out of memory");
	uint32_t k = 0;
	for (uint32_t i = 0; i < max; i++)
		if (key_snapshot(h, i, &ks[k]))
			k++;
	uint32_t *slots = calloc(k ? k : 1, sizeof *slots);
	struct rate_totals *rt = calloc(k ? k : 1, sizeof *rt);
	for (uint32_t i = 0; slots && i < k; i++)
		slots[i] = ks[i].slot;
	int r = slots && rt ? rate_keys_totals((struct prot_shm_header *)h, k, slots, rt) : -ENOMEM;
	for (uint32_t i = 0; r == 0 && i < k; i++)
		ks[i].rate_allowed = rt[i].allowed, ks[i].rate_denied = rt[i].denied;
	free(slots);
	free(rt);
	if (r < 0) {
		free(ks);
		return ctl_fail(CTL_ENOENT, "out of memory");
	}
	*out = ks;
	*n = k;
	return 0;
}

static void metrics_keys(FILE *f, const struct key_snapshot *ks, uint32_t n)
{
	for (size_t m = 0; m < sizeof key_counters / sizeof key_counters[0]; m++) {
		prom_head(f, key_counters[m].name, "counter", key_counters[m].help);
		for (uint32_t i = 0; i < n; i++)
			prom_sample(f, key_counters[m].name, "key", ks[i].name, field(&ks[i], key_counters[m].off));
	}
	prom_head(f, "prot_call_duration_seconds", "histogram", "Duration of protected calls (the function itself).");
	for (uint32_t i = 0; i < n; i++) {
		for (int b = 0; b < PROT_HIST_BUCKETS; b++) {
			fputs("prot_call_duration_seconds_bucket{key=\"", f);
			prom_label(f, ks[i].name);
			if (b == PROT_HIST_BUCKETS - 1)
				fprintf(f, "\",le=\"+Inf\"} %" PRIu64 "\n", ks[i].hist[b]);
			else
				fprintf(f, "\",le=\"%g\"} %" PRIu64 "\n", hist_le(b), ks[i].hist[b]);
		}
		fputs("prot_call_duration_seconds_sum{key=\"", f);
		prom_label(f, ks[i].name);
		fprintf(f, "\"} %.9f\n", (double)ks[i].latency_sum_ns / 1e9);
		fputs("prot_call_duration_seconds_count{key=\"", f);
		prom_label(f, ks[i].name);
		fprintf(f, "\"} %" PRIu64 "\n", ks[i].count);
	}
}

/* Breaker and pool gauges: each LIVE slot read once, by index (breaker_status_idx and
 * pool_status_idx work on the read-only mapping and copy names bounded). */
static void metrics_breakers(FILE *f, struct prot_shm_header *h, bool json)
{
	if (json)
		fputs(",\"breakers\":[", f);
	else
		prom_head(f, "prot_breaker_state", "gauge", "Breaker state: 0 closed, 1 open, 2 half-open, 3 blown.");
	for (uint32_t i = 0, n = seg_count(h, REG_BREAKERS), k = 0; i < n; i++) {
		struct prot_named *s = seg_entry(h, REG_BREAKERS, i);
		struct prot_breaker_status st;
		if (SLOT_STATE(atomic_load_explicit(&s->state, memory_order_acquire)) != SLOT_LIVE ||
		    breaker_status_idx(h, i, 0, &st) != 0)
			continue;
		if (!json) {
			prom_sample(f, "prot_breaker_state", "breaker", st.name, st.state);
			continue;
		}
		fputs(k++ ? ",{\"name\":" : "{\"name\":", f);
		ctl_json_str(f, st.name);
		fprintf(f, ",\"state\":\"%s\"}", prot_breaker_state_name(st.state));
	}
	if (json)
		fputc(']', f);
}

static void pools_prom(FILE *f, const struct prot_pool_status *ps, uint32_t k)
{
	static const char *const gauge[][2] = {
		{"prot_pool_in_use", "Leases held across all processes."},
		{"prot_pool_waiting", "Processes waiting for a lease."},
		{"prot_pool_size", "Lease capacity: size + max_overflow."},
	};
	for (int g = 0; g < 3; g++) {
		prom_head(f, gauge[g][0], "gauge", gauge[g][1]);
		for (uint32_t i = 0; i < k; i++) {
			uint64_t v[] = {ps[i].in_use, ps[i].waiting, (uint64_t)ps[i].size + ps[i].max_overflow};
			prom_sample(f, gauge[g][0], "pool", ps[i].name, v[g]);
		}
	}
}

static void pools_json(FILE *f, const struct prot_pool_status *ps, uint32_t k)
{
	fputs(",\"pools\":[", f);
	for (uint32_t i = 0; i < k; i++) {
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		ctl_json_str(f, ps[i].name);
		fprintf(f, ",\"in_use\":%" PRIu32 ",\"waiting\":%" PRIu32 ",\"capacity\":%" PRIu64 "}",
		        ps[i].in_use, ps[i].waiting, (uint64_t)ps[i].size + ps[i].max_overflow);
	}
	fputc(']', f);
}

static void metrics_pools(FILE *f, struct prot_shm_header *h, bool json)
{
	uint32_t n = seg_count(h, REG_POOLS), k = 0;
	struct prot_pool_status *ps = calloc(n ? n : 1, sizeof *ps);
	for (uint32_t i = 0; ps && i < n; i++) {
		struct prot_named *s = seg_entry(h, REG_POOLS, i);
		if (SLOT_STATE(atomic_load_explicit(&s->state, memory_order_acquire)) == SLOT_LIVE &&
		    pool_status_idx(h, i, &ps[k]) == 0)
			k++;
	}
	if (json)
		pools_json(f, ps, k);
	else
		pools_prom(f, ps, k);
	free(ps);
}

static void stats_members(FILE *f, const struct key_snapshot *k);

/* The "keys" member of stats and metrics: one stats object per key (only: that key alone). */
static void stats_keys(FILE *f, const struct key_snapshot *ks, uint32_t n)
{
	fputs("\"keys\":[", f);
	for (uint32_t i = 0; i < n; i++) {
		fputs(i ? ",{" : "{", f);
		stats_members(f, &ks[i]);
		fputc('}', f);
	}
	fputc(']', f);
}

/* metrics --json: {"schema": N, "protd": {...}, "keys": [stats objects], "breakers": [...],
 * "pools": [...]} */
static void metrics_json(FILE *f, const struct prot_info *info, bool have_info,
                         const struct key_snapshot *ks, uint32_t n)
{
	ctl_json_open(f, false);
	if (have_info)
		fprintf(f, "\"protd\":{\"process_alive\":%s,\"config_generation\":%" PRIu64
		           ",\"rate_buckets\":{\"used\":%" PRIu64 ",\"max\":%" PRIu64 "}}",
		        info->protd_alive ? "true" : "false", info->config_generation,
		        info->rate_buckets_used, info->rate_buckets_max);
	else
		fputs("\"protd\":null", f);
	fputc(',', f);
	stats_keys(f, ks, n);
}

static int cmd_metrics(struct ctl *c, int argc, char **argv)
{
	(void)argc, (void)argv;
	struct key_snapshot *ks;
	uint32_t n;
	int r = ctl_keys_snapshot(c, &ks, &n);
	if (r)
		return r;
	FILE *f = c->out;
	struct prot_info info;
	bool have_info = prot_get_info(c->p, &info) == 0;
	if (c->json) {
		metrics_json(f, &info, have_info, ks, n);
	} else if (have_info) {
		prom_head(f, "prot_protd_up", "gauge", "1 when protd's process runs (its identity lock is held).");
		fprintf(f, "prot_protd_up %d\n", info.protd_alive ? 1 : 0);
		prom_head(f, "prot_config_generation", "gauge", "Configuration generation of the segment.");
		fprintf(f, "prot_config_generation %" PRIu64 "\n", info.config_generation);
		prom_head(f, "prot_rate_buckets", "gauge", "Live rate-limiter buckets.");
		fprintf(f, "prot_rate_buckets %" PRIu64 "\n", info.rate_buckets_used);
		prom_head(f, "prot_rate_buckets_capacity", "gauge", "Rate-limiter bucket capacity.");
		fprintf(f, "prot_rate_buckets_capacity %" PRIu64 "\n", info.rate_buckets_max);
	}
	if (!c->json)
		metrics_keys(f, ks, n);
	ctl_global_metrics(c, ks, n);
	free(ks);
	metrics_breakers(f, prot_hdr(c->p), c->json);
	metrics_pools(f, prot_hdr(c->p), c->json);
	if (c->json)
		fputs("}\n", f);
	return CTL_OK;
}

static void stats_human(FILE *f, const struct key_snapshot *k)
{
	uint64_t mean = k->count ? k->latency_sum_ns / k->count : 0;
	fprintf(f, "%-20s calls %" PRIu64 "  ok %" PRIu64 "  failed %" PRIu64 "  timeouts %" PRIu64 "\n",
	        ctl_text(k->name), k->calls, k->ok, k->failed, k->timeouts);
	fprintf(f, "%-20s rate allowed %" PRIu64 "  denied %" PRIu64 "  table-full %" PRIu64
	           "  evicted %" PRIu64 "  breaker-rejected %" PRIu64 "  pool-timeouts %" PRIu64 "\n",
	        "", k->rate_allowed, k->rate_denied, k->rate_table_full, k->rate_evicted,
	        k->breaker_rejected, k->pool_timeouts);
	fprintf(f, "%-20s latency mean %" PRIu64 " ns over %" PRIu64 " calls; histogram (le):", "", mean,
	        k->count);
	uint64_t prev = 0;
	for (int b = 0; b < PROT_HIST_BUCKETS; b++) {
		uint64_t in = k->hist[b] - prev;
		prev = k->hist[b];
		if (!in)
			continue;
		if (b == PROT_HIST_BUCKETS - 1)
			fprintf(f, " +Inf:%" PRIu64, in);
		else
			fprintf(f, " %gs:%" PRIu64, hist_le(b), in);
	}
	fputc('\n', f);
}

static void stats_members(FILE *f, const struct key_snapshot *k)
{
	fputs("\"key\":", f);
	ctl_json_str(f, k->name);
	for (size_t m = 0; m < sizeof key_counters / sizeof key_counters[0]; m++)
		fprintf(f, ",\"%s\":%" PRIu64, key_counters[m].name + 5, field(k, key_counters[m].off));
	fprintf(f, ",\"latency_sum_ns\":%" PRIu64 ",\"latency_count\":%" PRIu64 ",\"latency_hist\":[",
	        k->latency_sum_ns, k->count);
	for (int b = 0; b < PROT_HIST_BUCKETS; b++) {
		fprintf(f, "%s{\"le_ns\":", b ? "," : "");
		if (b == PROT_HIST_BUCKETS - 1)
			fputs("\"+Inf\"", f); /* the last bucket is unbounded */
		else
			fprintf(f, "%" PRIu64, (uint64_t)1 << (10 + b));
		fprintf(f, ",\"count\":%" PRIu64 "}", k->hist[b]);
	}
	fputc(']', f);
}

/* stats --json: {"schema": N, "keys": [...]}; stats KEY --json: that key's object alone (with
 * its schema). */
static int cmd_stats(struct ctl *c, int argc, char **argv)
{
	struct key_snapshot *ks;
	uint32_t n;
	int r = ctl_keys_snapshot(c, &ks, &n);
	if (r)
		return r;
	const char *only = argc > 1 ? argv[1] : NULL;
	uint32_t shown = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (only && strcmp(only, ks[i].name))
			continue;
		ks[shown++] = ks[i]; /* the keys shown, in order */
	}
	if (only && !shown) {
		free(ks);
		return ctl_fail(CTL_ENOENT, "stats: no protection key '%s'", ctl_text(only));
	}
	if (c->json) {
		ctl_json_open(c->out, false);
		if (only)
			stats_members(c->out, &ks[0]);
		else
			stats_keys(c->out, ks, shown);
		fputs("}\n", c->out);
	}
	for (uint32_t i = 0; !c->json && i < shown; i++)
		stats_human(c->out, &ks[i]);
	free(ks);
	return CTL_OK;
}

const struct ctl_cmd ctl_stats_cmds[] = {
	{"stats", NULL, "[KEY]", "per-key counters and latency histogram", 0, 1, false, cmd_stats},
	{"metrics", NULL, "", "Prometheus text exposition of every counter and gauge (--json: one object)",
	 0, 0, false, cmd_metrics},
	{0},
};
