/* bench_report.c — protbench's output: the human tables (single process, scaling, hand-off,
 * memory, ratios, floors and targets) or one JSON document with the same figures. Targets come
 * from the issues (rate limiter, breaker, pool, facade, bench, performance) and are checked against
 * the medians; the floor ratios quote rows as multiples of the floor rows of the same run.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static const struct {
	const char *id, *label;
	enum bench_kind kind;
} rows[] = {
#define BENCH_ROW_INFO(id, kind, label) {#id, label, kind},
	BENCH_ROWS(BENCH_ROW_INFO)
#undef BENCH_ROW_INFO
};

const char *bench_row_label(int row) { return rows[row].label; }

/* Cells of a row: one for a single-process row, one per --procs entry for a scaling row, and the
 * 2 and 8 processes of the hand-off row. */
int bench_cells(const struct bench *b, int row)
{
	return rows[row].kind == BK_SCALE ? b->nprocs : rows[row].kind == BK_LATENCY ? 2 : 1;
}

int bench_cell_procs(const struct bench *b, int row, int cell)
{
	if (rows[row].kind == BK_SCALE)
		return b->procs[cell];
	return rows[row].kind == BK_LATENCY ? (cell ? 8 : 2) : 1;
}

/* ---- derived figures -------------------------------------------------------------------------- */
static const struct bench_stat *at_procs(const struct bench *b, int row, int procs)
{
	for (int i = 0; i < BENCH_MAXP; i++)
		if (b->res[row][i].state == 1 && b->res[row][i].procs == procs)
			return &b->res[row][i];
	return NULL;
}

static double med(const struct bench *b, int row)
{
	const struct bench_stat *s = at_procs(b, row, 1);
	return s ? s->med : NAN;
}

/* How many times cheaper row `fast` is than row `slow` at `procs` processes. */
static double ratio(const struct bench *b, int slow, int fast, int procs)
{
	const struct bench_stat *s = at_procs(b, slow, procs), *f = at_procs(b, fast, procs);
	return s && f && f->med > 0 ? s->med / f->med : NAN;
}

/* The ratios the report prints (and the JSON carries): row `slow` over row `fast` at `procs`. */
struct ratio_def {
	const char *name;
	int slow, fast, procs;
};

/* How many times faster prot is than the alternatives. */
static const struct ratio_def speedups[] = {
	{"prot hot check vs redis INCR+PEXPIRE round trip", ROW_REDIS_FW_RTT, ROW_RATE_HOT_FW, 1},
	{"prot hot check vs redis GCRA round trip", ROW_REDIS_GCRA_RTT, ROW_RATE_HOT_GCRA, 1},
	{"prot hot check vs redis INCR+PEXPIRE, pipeline 64", ROW_REDIS_FW_PIPE, ROW_RATE_HOT_FW, 1},
	{"prot hot check vs redis GCRA, pipeline 64", ROW_REDIS_GCRA_PIPE, ROW_RATE_HOT_GCRA, 1},
	{"prot hot check vs unix-socket daemon round trip", ROW_UDS_RTT, ROW_RATE_HOT_FW, 1},
	{"prot vs mutex, hot key, fixed window", ROW_MX_HOT_FW, ROW_RATE_HOT_FW, 1},
	{"prot vs mutex, hot key, fixed window, coarse clock", ROW_MX_HOT_FW_COARSE, ROW_RATE_HOT_FW_COARSE, 1},
	{"prot vs mutex, hot key, GCRA", ROW_MX_HOT_GCRA, ROW_RATE_HOT_GCRA, 1},
	{"prot vs mutex, 1M entities", ROW_MX_1M, ROW_RATE_1M, 1},
	{"prot vs mutex, 1M entities, huge pages", ROW_MX_1M_HUGE, ROW_RATE_1M_HUGE, 1},
	{"prot vs mutex throughput, fixed window, 2 processes", ROW_SC_MX_FW, ROW_SC_PROT_FW, 2},
	{"prot vs mutex throughput, GCRA, 2 processes", ROW_SC_MX_GCRA, ROW_SC_PROT_GCRA, 2},
	{"prot vs mutex, one entity per process, 2 processes", ROW_SC_MX_SPREAD, ROW_SC_PROT_SPREAD, 2},
};
#define N_SPEEDUPS (sizeof speedups / sizeof speedups[0])

/* Rows as multiples of the physical floors (bench_floor.c), and first use over lookup. */
static const struct ratio_def floors[] = {
	{"prot 1M entities / dependent-load floor", ROW_RATE_1M, ROW_FLOOR_CHASE, 1},
	{"mutex 1M entities / dependent-load floor", ROW_MX_1M, ROW_FLOOR_CHASE, 1},
	{"prot 1M entities / dependent-load floor, huge pages", ROW_RATE_1M_HUGE, ROW_FLOOR_CHASE_HUGE, 1},
	{"mutex 1M entities / dependent-load floor, huge pages", ROW_MX_1M_HUGE, ROW_FLOOR_CHASE_HUGE, 1},
	{"prot 1M entities, 4 KiB pages / huge pages", ROW_RATE_1M, ROW_RATE_1M_HUGE, 1},
	{"mutex 1M entities, 4 KiB pages / huge pages", ROW_MX_1M, ROW_MX_1M_HUGE, 1},
	{"dependent-load floor, 4 KiB pages / huge pages", ROW_FLOOR_CHASE, ROW_FLOOR_CHASE_HUGE, 1},
	{"prot 100k entities / dependent-load floor", ROW_RATE_100K, ROW_FLOOR_CHASE, 1},
	{"prot churn (first use) / dependent-load floor", ROW_RATE_CHURN, ROW_FLOOR_CHASE, 1},
	{"prot churn (first use) / 1M lookup", ROW_RATE_CHURN, ROW_RATE_1M, 1},
	{"prot first use, 100k set / 100k lookup", ROW_RATE_INSERT_100K, ROW_RATE_100K, 1},
	{"prot hot check, fixed window / CLOCK_MONOTONIC read", ROW_RATE_HOT_FW, ROW_CLOCK_MONO, 1},
	{"prot hot check, fixed window / private CAS", ROW_RATE_HOT_FW, ROW_CAS_PRIVATE, 1},
	{"prot hot check, sliding window / fixed window", ROW_RATE_HOT_SW, ROW_RATE_HOT_FW, 1},
	{"prot hot check, global / local fixed window", ROW_RATE_HOT_GLOBAL, ROW_RATE_HOT_FW, 1},
	{"prot hot check, global / local fixed window, both calendar", ROW_RATE_HOT_GLOBAL, ROW_RATE_HOT_FW_CAL, 1},
};
#define N_FLOORS (sizeof floors / sizeof floors[0])

struct check {
	const char *name;
	double value, target;
	int at_most; /* 1: value <= target; 0: value >= target */
	const char *unit;
};

#define CHECKS_MAX 32 /* checks_of writes 22 */

static int checks_of(const struct bench *b, struct check *c)
{
	int n = 0;
	/* issue 15: the hot path (one process, side by side with the mutex baseline) */
	c[n++] = (struct check){"hot-key rate check, fixed window", med(b, ROW_RATE_HOT_FW), 40, 1, "ns"};
	c[n++] = (struct check){"hot-key rate check, GCRA", med(b, ROW_RATE_HOT_GCRA), 40, 1, "ns"};
	c[n++] = (struct check){"hot-key rate check, fixed window, coarse clock",
	                        med(b, ROW_RATE_HOT_FW_COARSE), 15, 1, "ns"};
	c[n++] = (struct check){"hot-key rate check, GCRA, coarse clock", med(b, ROW_RATE_HOT_GCRA_COARSE),
	                        15, 1, "ns"};
	c[n++] = (struct check){"hot key vs mutex, fixed window, 1 process",
	                        ratio(b, ROW_MX_HOT_FW, ROW_RATE_HOT_FW, 1), 1.2, 0, "x"};
	c[n++] = (struct check){"hot key vs mutex, GCRA, 1 process", ratio(b, ROW_MX_HOT_GCRA, ROW_RATE_HOT_GCRA, 1),
	                        1.2, 0, "x"};
	c[n++] = (struct check){"hot-key sliding window / fixed window",
	                        ratio(b, ROW_RATE_HOT_SW, ROW_RATE_HOT_FW, 1), 1.25, 1, "x"};
	c[n++] = (struct check){"hot-key global / local fixed window (issue 17)",
	                        ratio(b, ROW_RATE_HOT_GLOBAL, ROW_RATE_HOT_FW, 1), 1.1, 1, "x"};
	/* issue 15, points 2, 4, 6: fill, the 1M rows against the mutex and the floor (same size, same
	 * pages), first use against a lookup */
	c[n++] = (struct check){"table per live entity at the first refusal", bench_bytes_at_first_refusal(),
	                        150, 1, "B"};
	c[n++] = (struct check){"1M entities vs mutex, 4 KiB pages", ratio(b, ROW_MX_1M, ROW_RATE_1M, 1), 1.2,
	                        0, "x"};
	c[n++] = (struct check){"1M entities vs mutex, huge pages",
	                        ratio(b, ROW_MX_1M_HUGE, ROW_RATE_1M_HUGE, 1), 1.2, 0, "x"};
	c[n++] = (struct check){"1M entities / dependent-load floor, 4 KiB pages",
	                        ratio(b, ROW_RATE_1M, ROW_FLOOR_CHASE, 1), 1.5, 1, "x"};
	c[n++] = (struct check){"1M entities / dependent-load floor, huge pages",
	                        ratio(b, ROW_RATE_1M_HUGE, ROW_FLOOR_CHASE_HUGE, 1), 1.5, 1, "x"};
	c[n++] = (struct check){"first use / lookup, 100k set", ratio(b, ROW_RATE_INSERT_100K, ROW_RATE_100K, 1),
	                        1.5, 1, "x"};
	c[n++] = (struct check){"churn (first use) / 1M lookup", ratio(b, ROW_RATE_CHURN, ROW_RATE_1M, 1), 1.5,
	                        1, "x"};
	/* issue 15, points 5 and 7 */
	c[n++] = (struct check){"breaker execute, closed", med(b, ROW_BRK_CLOSED), 25, 1, "ns"};
	c[n++] = (struct check){"breaker open rejection", med(b, ROW_BRK_OPEN), 30, 1, "ns"};
	c[n++] = (struct check){"pool checkout + checkin", med(b, ROW_POOL_UNCONT), 70, 1, "ns"};
	c[n++] = (struct check){"full prot_execute", med(b, ROW_EXEC_FULL), 120, 1, "ns"};
	c[n++] = (struct check){"telemetry per execute, no handler", med(b, ROW_TEL_EXEC), 2, 1, "ns"};
	c[n++] = (struct check){"vs 1-client Redis round trip", ratio(b, ROW_REDIS_FW_RTT, ROW_RATE_HOT_FW, 1),
	                        500, 0, "x"};
	c[n++] = (struct check){"vs mutex at 2 processes", ratio(b, ROW_SC_MX_FW, ROW_SC_PROT_FW, 2), 2, 0,
	                        "x"};
	return n;
}

static const char *verdict(const struct check *c, char *buf, size_t len)
{
	if (isnan(c->value))
		return "not measured";
	bool met = c->at_most ? c->value <= c->target : c->value >= c->target;
	if (met)
		return "met";
	double by = c->at_most ? c->value - c->target : c->target - c->value;
	snprintf(buf, len, "MISSED by %.1f %s (%.0f%%)", by, c->unit, 100.0 * by / c->target);
	return buf;
}

/* ---- human tables ------------------------------------------------------------------------------ */
static const char *rate_str(double ops_s, char *buf, size_t len)
{
	if (ops_s >= 1e6)
		snprintf(buf, len, "%7.2f M/s", ops_s / 1e6);
	else
		snprintf(buf, len, "%7.1f k/s", ops_s / 1e3);
	return buf;
}

static void print_stat_line(const char *label, const struct bench_stat *s, bool with_procs)
{
	char rb[32];
	if (with_procs)
		printf("%-48s %5d ", label, s->procs);
	else
		printf("%-54s ", label);
	if (s->state != 1) {
		printf(" %s\n", s->state ? s->note : "not run");
		return;
	}
	printf("%12.1f %10.1f %10.1f %13s", s->med, s->min, s->max,
	       s->ops_s > 0 ? rate_str(s->ops_s, rb, sizeof rb) : "-");
	printf("%s%s\n", s->note[0] ? "   " : "", s->note);
}

static void print_single(const struct bench *b)
{
	printf("\nSingle process: median of %d repetitions (%llu ops each; round trips %llu)\n", b->sz.reps,
	       (unsigned long long)b->sz.hot_ops, (unsigned long long)b->sz.slow_ops);
	printf("%-54s %12s %10s %10s %13s\n", "operation", BENCH_HEADER_MARK, "min", "max", "ops/s");
	for (int r = 0; r < ROW_COUNT_; r++)
		if (rows[r].kind == BK_SINGLE)
			print_stat_line(rows[r].label, &b->res[r][0], false);
}

static void print_scale(const struct bench *b)
{
	printf("\nProcesses: aggregate decisions, median of %d x %d ms (%ld CPUs: more processes oversubscribe)\n",
	       b->sz.scale_reps, b->sz.scale_ms, sysconf(_SC_NPROCESSORS_ONLN));
	printf("%-48s %5s %12s %10s %10s %13s\n", "operation", "procs", "ns/decision", "min", "max", "decisions/s");
	for (int r = 0; r < ROW_COUNT_; r++) {
		if (rows[r].kind != BK_SCALE)
			continue;
		for (int i = 0; i < b->nprocs; i++) {
			struct bench_stat s = b->res[r][i];
			s.procs = b->procs[i];
			print_stat_line(rows[r].label, &s, true);
		}
	}
	printf("\n%-48s", "throughput ratio");
	for (int i = 0; i < b->nprocs; i++)
		printf(" %8d p", b->procs[i]);
	static const struct {
		const char *name;
		int slow, fast;
	} cmp[] = {
		{"prot / mutex, fixed window", ROW_SC_MX_FW, ROW_SC_PROT_FW},
		{"prot / mutex, GCRA", ROW_SC_MX_GCRA, ROW_SC_PROT_GCRA},
		{"prot / mutex, one entity per process", ROW_SC_MX_SPREAD, ROW_SC_PROT_SPREAD},
		{"prot / unix-socket daemon", ROW_SC_UDS, ROW_SC_PROT_FW},
		{"prot / redis INCR+PEXPIRE, pipeline 64", ROW_SC_REDIS_FW_PIPE, ROW_SC_PROT_FW},
		{"prot / redis GCRA, pipeline 64", ROW_SC_REDIS_GCRA_PIPE, ROW_SC_PROT_GCRA},
	};
	printf("\n");
	for (size_t c = 0; c < sizeof cmp / sizeof cmp[0]; c++) {
		printf("%-48s", cmp[c].name);
		for (int i = 0; i < b->nprocs; i++) {
			double x = ratio(b, cmp[c].slow, cmp[c].fast, b->procs[i]);
			isnan(x) ? printf(" %10s", "-") : printf(" %9.1fx", x);
		}
		printf("\n");
	}
}

static void print_handoff(const struct bench *b)
{
	printf("\nPool hand-off under contention: checkin to the waiting process's checkout returning\n");
	printf("%-48s %5s %12s %10s %13s %9s\n", "operation", "procs", "p50 ns", "p99 ns", "checkouts/s",
	       "hand-offs");
	for (int i = 0; i < 2; i++) {
		const struct bench_stat *s = &b->res[ROW_HANDOFF][i];
		char rb[32];
		printf("%-48s %5d ", rows[ROW_HANDOFF].label, bench_cell_procs(b, ROW_HANDOFF, i));
		if (s->state != 1)
			printf(" %s\n", s->state ? s->note : "not run");
		else
			printf("%12.0f %10.0f %13s %9llu\n", s->p50, s->p99, rate_str(s->ops_s, rb, sizeof rb),
			       (unsigned long long)s->samples);
	}
}

static void print_reclaim(const struct bench *b)
{
	const struct bench_stat *s = &b->res[ROW_RECLAIM_KILL9][0];
	printf("\nDeath: SIGKILL of a lease holder to a waiting process's checkout returning with it\n");
	printf("%-54s %9s %9s %9s %8s\n", "operation", "p50 ms", "p99 ms", "max ms", "samples");
	printf("%-54s ", rows[ROW_RECLAIM_KILL9].label);
	if (s->state != 1)
		printf("%s\n", s->state ? s->note : "not run");
	else
		printf("%9.1f %9.1f %9.1f %8llu  (%s)\n", s->p50 / 1e6, s->p99 / 1e6, s->max / 1e6,
		       (unsigned long long)s->samples, s->note);
}

static void print_memory(const struct bench *b)
{
	printf("\nMemory\n");
	printf("%-54s %10.1f B (bucket %zu B + group index share)\n", "per entity bucket", bench_bytes_per_entity(),
	       (size_t)128);
	printf("%-54s %10.1f MiB (%s)\n", "segment for examples/protd.ini", b->seg_example / 1048576.0,
	       b->seg_example_note);
	printf("%-54s %10.1f MiB (but ~%.0f of 1M random entities find both their groups full; %.0f B of "
	       "table per entity in use)\n",
	       "segment for rate_entities = 1M (others default)", b->seg_1m / 1048576.0, b->lost_1m,
	       1048576 * bench_bytes_per_entity() / (1e6 - b->lost_1m));
	printf("%-54s %10.1f MiB (rate_entities = %llu: %.0f B per entity in use)\n",
	       "segment where 1M random entities all fit", b->seg_1m_fit / 1048576.0,
	       (unsigned long long)b->fit_1m, b->fit_1m * bench_bytes_per_entity() / 1e6);
	printf("%-54s %10.1f MiB (rate_entities = %llu)\n", "segment of this run", b->seg_run / 1048576.0,
	       (unsigned long long)b->sz.rate_entities);
	printf("%-54s %10.1f MiB (the floor row's region)\n", "rate table of this run",
	       bench_rate_table_bytes(b->sz.rate_entities) / 1048576.0);
}

static void print_ratios(const struct bench *b, const char *title, const struct ratio_def *r, size_t n)
{
	printf("\n%s\n", title);
	for (size_t i = 0; i < n; i++) {
		double x = ratio(b, r[i].slow, r[i].fast, r[i].procs);
		printf("%-54s ", r[i].name);
		isnan(x) ? printf("%10s\n", "-") : printf(x >= 100 ? "%10.0fx\n" : "%10.2fx\n", x);
	}
}

static void print_targets(const struct bench *b)
{
	struct check c[CHECKS_MAX];
	int n = checks_of(b, c);
	print_ratios(b, "Ratios (how many times faster prot is)", speedups, N_SPEEDUPS);
	print_ratios(b, "Against the floor (a row over a floor row of this run) and first use against lookup",
	             floors, N_FLOORS);
	printf("\nTargets (medians)\n%-54s %10s %10s  %s\n", "target", "measured", "target", "verdict");
	for (int i = 0; i < n; i++) {
		char vb[96];
		printf("%-54s ", c[i].name);
		isnan(c[i].value) ? printf("%10s", "-") : printf("%10.1f", c[i].value);
		printf(" %s %5.4g %-2s  %s\n", c[i].at_most ? "<=" : ">=", c[i].target, c[i].unit,
		       verdict(&c[i], vb, sizeof vb));
	}
}

/* ---- JSON -------------------------------------------------------------------------------------- */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_num(const char *name, double v)
{
	printf(",\"%s\":", name);
	isnan(v) || isinf(v) ? printf("null") : printf("%.3f", v);
}

static void json_stat(int r, const struct bench_stat *s, int procs, bool *first)
{
	printf("%s\n  {\"id\":", *first ? "" : ",");
	*first = false;
	json_str(rows[r].id);
	printf(",\"label\":");
	json_str(rows[r].label);
	printf(",\"procs\":%d,\"state\":\"%s\"", procs, s->state == 1 ? "ok" : s->state ? "skipped" : "not run");
	if (s->state == 1) {
		json_num("median_ns", s->med);
		json_num("min_ns", s->min);
		json_num("max_ns", s->max);
		json_num("ops_per_s", s->ops_s);
		if (rows[r].kind == BK_LATENCY || rows[r].kind == BK_RECLAIM) {
			json_num("p50_ns", s->p50);
			json_num("p99_ns", s->p99);
			printf(",\"samples\":%llu", (unsigned long long)s->samples);
		}
	}
	printf(",\"note\":");
	json_str(s->note);
	printf("}");
}

static void json_ratios(const struct bench *b, const struct ratio_def *r, size_t n, bool *first)
{
	for (size_t i = 0; i < n; i++) {
		printf("%s\n  {\"name\":", *first ? "" : ",");
		*first = false;
		json_str(r[i].name);
		printf(",\"slow\":\"%s\",\"fast\":\"%s\",\"procs\":%d", rows[r[i].slow].id, rows[r[i].fast].id,
		       r[i].procs);
		json_num("value", ratio(b, r[i].slow, r[i].fast, r[i].procs));
		printf("}");
	}
}

static void print_json(const struct bench *b)
{
	bool first = true;
	struct check c[CHECKS_MAX];
	int n = checks_of(b, c);
	printf("{\"mode\":\"%s\",\"cpus\":%ld,\"pinned\":%s,\"loadavg\":\"%s\",\"segment\":\"%s\",",
	       b->mode, sysconf(_SC_NPROCESSORS_ONLN), bench_pinned() ? "true" : "false", b->loadavg, b->seg);
	printf("\"huge_pages\":");
	json_str(b->huge_why);
	printf(",\"time\":%lld,\"reps\":%d,\"hot_ops\":%llu,\"entities\":[%u,%u],\"rows\":[",
	       (long long)time(NULL), b->sz.reps, (unsigned long long)b->sz.hot_ops, b->sz.ent_small,
	       b->sz.ent_large);
	for (int r = 0; r < ROW_COUNT_; r++)
		for (int i = 0; i < bench_cells(b, r); i++)
			json_stat(r, &b->res[r][i], bench_cell_procs(b, r, i), &first);
	printf("\n],\"memory\":{\"bytes_per_entity\":%.1f,\"segment_example\":%llu,\"segment_1m\":%llu,"
	       "\"lost_of_1m_at_1m\":%.0f,\"rate_entities_to_fit_1m\":%llu,\"segment_to_fit_1m\":%llu,"
	       "\"segment_run\":%llu,\"rate_table_run\":%llu},\"ratios\":[",
	       bench_bytes_per_entity(), (unsigned long long)b->seg_example, (unsigned long long)b->seg_1m,
	       b->lost_1m, (unsigned long long)b->fit_1m, (unsigned long long)b->seg_1m_fit,
	       (unsigned long long)b->seg_run, (unsigned long long)bench_rate_table_bytes(b->sz.rate_entities));
	first = true;
	json_ratios(b, speedups, N_SPEEDUPS, &first);
	json_ratios(b, floors, N_FLOORS, &first);
	printf("\n],\"targets\":[");
	for (int i = 0; i < n; i++) {
		char vb[96];
		printf("%s\n  {\"name\":", i ? "," : "");
		json_str(c[i].name);
		json_num("value", c[i].value);
		json_num("target", c[i].target);
		printf(",\"at_most\":%s,\"unit\":\"%s\",\"verdict\":", c[i].at_most ? "true" : "false", c[i].unit);
		json_str(verdict(&c[i], vb, sizeof vb));
		printf("}");
	}
	printf("\n],\"failures\":%d}\n", b->failures);
}

void bench_report(const struct bench *b)
{
	if (b->json) {
		print_json(b);
		return;
	}
	char date[64];
	time_t now = time(NULL);
	strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", localtime(&now));
	printf("protbench: %s run, %ld CPUs, %s, protd segment %s\n", b->mode, sysconf(_SC_NPROCESSORS_ONLN),
	       date, b->seg);
	char pin[160];
	printf("load average at start: %s (other processes on the machine skew every row)\n", b->loadavg);
	printf("processes: %s\n", bench_pin_describe(pin, sizeof pin));
	printf("rows on huge pages: %s\n", b->huge_why);
	if (strcmp(b->mode, "smoke") == 0)
		printf("SMOKE RUN: tiny sizes (entities %u / %u); the figures are not measurements\n",
		       b->sz.ent_small, b->sz.ent_large);
	if (b->prot_error[0])
		printf("prot rows: FAILED (%s)\n", b->prot_error);
	print_single(b);
	print_scale(b);
	print_handoff(b);
	print_reclaim(b);
	print_memory(b);
	print_targets(b);
	if (b->failures)
		printf("\n%d row(s) FAILED\n", b->failures);
}
