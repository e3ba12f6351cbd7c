/* test_bench.c — protbench runs end to end with tiny sizes (--smoke): it starts and stops its own
 * protd (and redis-server and socket daemon when present), prints every row and the table header,
 * exits 0, and leaves no segment behind; --pin pins; a --quick --json run has the floor, churn and
 * 100k-insert rows with sane values (measured, positive, min <= median <= max, inserts that did
 * insert) and the floor ratios; the rows on huge pages run together on transparent huge pages (a
 * private /dev/shm mounted huge=advise) and are skipped together, with the reason, where there are
 * none. No timing is asserted: speed belongs to the bench itself.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tools/bench/bench.h"
#include "harness.h"

static const char *bench_path(void)
{
	const char *p = getenv("PROTBENCH");
	return p && *p ? p : "build/tools/bench/protbench";
}

static const char *const labels[] = {
#define BENCH_ROW_LABEL(id, kind, label) label,
	BENCH_ROWS(BENCH_ROW_LABEL)
#undef BENCH_ROW_LABEL
};

/* The bench names its segment in its output ("segment /prot-bench-PID", JSON "segment":"..."):
 * it must be gone. */
static bool segment_left(const char *text)
{
	const char *s = strstr(text, "/prot-bench-");
	char path[64];
	if (!s)
		return false;
	snprintf(path, sizeof path, "/dev/shm%.*s", (int)strcspn(s, " ,\n\""), s);
	return access(path, F_OK) == 0;
}

/* The JSON object of row ID (protbench prints one object a line, no brace inside a note), copied
 * into buf; false when absent. */
static bool json_row(const char *text, const char *id, char *buf, size_t len)
{
	char pat[64];
	snprintf(pat, sizeof pat, "{\"id\":\"%s\"", id);
	const char *s = strstr(text, pat);
	if (!s)
		return false;
	snprintf(buf, len, "%.*s", (int)strcspn(s, "}"), s);
	return true;
}

/* The number after "NAME": in obj; NAN when absent or null. */
static double json_field(const char *obj, const char *name)
{
	char pat[48];
	snprintf(pat, sizeof pat, "\"%s\":", name);
	const char *s = strstr(obj, pat);
	char *end;
	if (!s)
		return NAN;
	double v = strtod(s + strlen(pat), &end);
	return end == s + strlen(pat) ? NAN : v;
}

/* A measured single-process row: ok, positive, finite, min <= median <= max, ops/s its inverse. */
static void expect_sane_row(const char *text, const char *id)
{
	char obj[512];
	cr_assert(json_row(text, id, obj, sizeof obj), "no row %s in:\n%s", id, text);
	cr_expect(strstr(obj, "\"state\":\"ok\""), "row %s not measured: %s", id, obj);
	double med = json_field(obj, "median_ns"), lo = json_field(obj, "min_ns"), hi = json_field(obj, "max_ns");
	double ops = json_field(obj, "ops_per_s");
	cr_expect(isfinite(med) && med > 0, "row %s: median %f", id, med);
	cr_expect(lo > 0 && lo <= med && med <= hi && isfinite(hi), "row %s: min %f median %f max %f", id, lo, med, hi);
	cr_expect(fabs(ops * med / 1e9 - 1) < 0.01, "row %s: %f ops/s at %f ns", id, ops, med);
}

/* The buckets in use before and after a fresh-entity row ("buckets A -> B" in its note). */
static void fresh_buckets(const char *text, const char *id, unsigned long long *before,
                          unsigned long long *after, unsigned long long *ids)
{
	char obj[512];
	int reps = 0;
	unsigned long long per = 0;
	cr_assert(json_row(text, id, obj, sizeof obj), "no row %s", id);
	const char *n = strstr(obj, "fresh ids; buckets ");
	cr_assert(n && sscanf(n, "fresh ids; buckets %llu -> %llu", before, after) == 2, "row %s note: %s", id, obj);
	const char *r = n;
	while (r > obj && r[-1] != ';')
		r--;
	cr_assert(sscanf(r, " %d x %llu", &reps, &per) == 2, "row %s note: %s", id, obj);
	*ids = (unsigned long long)reps * per;
}

/* Each of the n named ratios is in the JSON document text, computed (positive). */
static void expect_ratios(const char *text, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char pat[96];
		snprintf(pat, sizeof pat, "{\"name\":\"%s\"", names[i]);
		const char *r = strstr(text, pat);
		cr_expect(r && json_field(r, "value") > 0, "ratio \"%s\" missing or null", names[i]);
	}
}

static struct th_out out;

Test(bench, smoke_run_prints_every_row, .timeout = 120)
{
	const char *argv[] = {bench_path(), "--smoke", NULL};
	int code = th_run(&out, 90000, argv);
	cr_assert_eq(code, 0, "protbench --smoke exited %d\nstdout:\n%s\nstderr:\n%s", code, out.out, out.err);
	cr_assert(strstr(out.out, BENCH_HEADER_MARK), "no table header in:\n%s", out.out);
	for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
		cr_expect(strstr(out.out, labels[i]), "row \"%s\" missing from:\n%s", labels[i], out.out);
	cr_expect(strstr(out.out, "Targets"), "no targets section");
	cr_expect(strstr(out.out, "segment /prot-bench-"), "no segment name in:\n%s", out.out);
	cr_expect(!segment_left(out.out), "protbench left its segment in /dev/shm");
}

Test(bench, smoke_json_has_rows_and_no_failure, .timeout = 120)
{
	const char *argv[] = {bench_path(), "--smoke", "--json", NULL};
	int code = th_run(&out, 90000, argv);
	cr_assert_eq(code, 0, "protbench --smoke --json exited %d\nstderr:\n%s", code, out.err);
	cr_assert_eq(out.out[0], '{', "not JSON:\n%s", out.out);
	cr_expect(strstr(out.out, "\"rows\":["), "no rows in:\n%s", out.out);
	cr_expect(strstr(out.out, "\"failures\":0}"), "failures in:\n%s", out.out);
	cr_expect(strstr(out.out, "\"id\":\"RATE_1M\""), "no RATE_1M row in:\n%s", out.out);
}

Test(bench, bad_option_is_a_usage_error)
{
	const char *argv[] = {bench_path(), "--procs", "0", NULL};
	cr_assert_eq(th_run(&out, 10000, argv), 2);
	cr_expect(strstr(out.err, "usage:"), "no usage in: %s", out.err);
	cr_expect(strstr(out.err, "--pin"), "--pin not in the usage: %s", out.err);
}

Test(bench, pin_says_it_pinned, .timeout = 120)
{
	const char *argv[] = {bench_path(), "--smoke", "--pin", "--json", NULL};
	int code = th_run(&out, 90000, argv);
	cr_assert_eq(code, 0, "protbench --smoke --pin --json exited %d\nstderr:\n%s", code, out.err);
	cr_expect(strstr(out.out, "\"pinned\":true"), "not pinned:\n%.300s", out.out);
	cr_expect(strstr(out.out, "\"failures\":0}"), "failures in:\n%s", out.out);
	cr_expect(!segment_left(out.out), "protbench left its segment in /dev/shm");
}

/* The rows the performance issue quotes against each other, at real sizes: --quick (1 process
 * count keeps it short). */
Test(bench, quick_json_has_floor_churn_and_insert_rows, .timeout = 400)
{
	static const char *const fresh[] = {"RATE_INSERT_100K", "RATE_CHURN"};
	static const char *const rows[] = {"FLOOR_CHASE", "CLOCK_MONO", "CLOCK_COARSE", "CAS_PRIVATE",
	                                   "RATE_INSERT_100K", "RATE_CHURN", "RATE_1M", "RATE_100K", "MX_1M"};
	const char *argv[] = {bench_path(), "--quick", "--json", "--procs", "1", NULL};
	int code = th_run(&out, 360000, argv);
	cr_assert_eq(code, 0, "protbench --quick --json exited %d\nstdout:\n%s\nstderr:\n%s", code, out.out, out.err);
	cr_expect(strstr(out.out, "\"failures\":0}"), "failures in:\n%s", out.out);
	cr_expect(!segment_left(out.out), "protbench left its segment in /dev/shm");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		expect_sane_row(out.out, rows[i]);

	/* the chase ran over the rate table's size: the 1M-entity table of a quick run is > 100 MiB */
	char obj[512];
	cr_assert(json_row(out.out, "FLOOR_CHASE", obj, sizeof obj));
	double mib = 0;
	const char *m = strstr(obj, "\"note\":\"");
	cr_expect(m && sscanf(m, "\"note\":\"%lf MiB", &mib) == 1 && mib > 100, "chase region: %s", obj);
	double table = json_field(out.out, "rate_table_run");
	cr_expect(fabs(table / 1048576.0 - mib) < 0.1, "chase over %f MiB, the rate table is %f bytes", mib, table);

	/* each fresh row inserted (almost) one bucket per id it drew; churn's are swept meanwhile */
	for (size_t i = 0; i < 2; i++) {
		unsigned long long before, after, ids;
		fresh_buckets(out.out, fresh[i], &before, &after, &ids);
		cr_expect(after > before && ids > 0, "%s: buckets %llu -> %llu", fresh[i], before, after);
		if (i == 0)
			cr_expect(after - before >= ids, "%s: %llu ids timed, %llu buckets more", fresh[i], ids,
			          after - before);
	}

	/* the floor ratios are there and computed */
	static const char *const ratios[] = {"prot 1M entities / dependent-load floor",
	                                     "prot churn (first use) / 1M lookup",
	                                     "prot first use, 100k set / 100k lookup"};
	expect_ratios(out.out, ratios, sizeof ratios / sizeof ratios[0]);
}

/* ---- the rows on huge pages -------------------------------------------------------------------- */
static const char *const huge_rows[] = {"RATE_1M_HUGE", "MX_1M_HUGE", "FLOOR_CHASE_HUGE"};

static void smoke_json(void)
{
	const char *argv[] = {bench_path(), "--smoke", "--json", "--procs", "1", NULL};
	int code = th_run(&out, 90000, argv);
	cr_assert_eq(code, 0, "protbench --smoke --json exited %d\nstderr:\n%s", code, out.err);
	cr_expect(strstr(out.out, "\"failures\":0}"), "failures in:\n%s", out.out);
	cr_expect(!segment_left(out.out), "protbench left its segment in /dev/shm");
}

Test(bench, huge_rows_run_together_on_transparent_huge_pages, .timeout = 120)
{
	if (access("/sys/kernel/mm/transparent_hugepage/shmem_enabled", R_OK) < 0)
		cr_skip_test("this kernel has no transparent huge pages on shared memory");
	const char *why = th_private_dev_shm("size=1g,huge=advise");
	if (why)
		cr_skip_test("%s", why);
	smoke_json();
	cr_assert(strstr(out.out, "\"huge_pages\":\"huge_pages = thp\""), "%.400s", out.out);
	char obj[512];
	for (size_t i = 0; i < sizeof huge_rows / sizeof huge_rows[0]; i++) {
		expect_sane_row(out.out, huge_rows[i]);
		cr_assert(json_row(out.out, huge_rows[i], obj, sizeof obj));
		cr_expect(strstr(obj, "huge_pages = thp"), "%s", obj);
	}
	static const char *const ratios[] = {"prot vs mutex, 1M entities, huge pages",
	                                     "prot 1M entities / dependent-load floor, huge pages",
	                                     "dependent-load floor, 4 KiB pages / huge pages"};
	expect_ratios(out.out, ratios, sizeof ratios / sizeof ratios[0]);
}

Test(bench, huge_rows_are_skipped_together_with_the_reason, .timeout = 120)
{
	const char *why = th_private_dev_shm("size=1g");
	if (why)
		cr_skip_test("%s", why);
	smoke_json();
	char obj[512];
	for (size_t i = 0; i < sizeof huge_rows / sizeof huge_rows[0]; i++) {
		cr_assert(json_row(out.out, huge_rows[i], obj, sizeof obj), "no row %s", huge_rows[i]);
		cr_expect(strstr(obj, "\"state\":\"skipped\""), "%s", obj);
		cr_expect(strstr(obj, "no huge pages: no hugetlbfs mount of 2 MiB pages"), "%s", obj);
	}
	expect_sane_row(out.out, "RATE_1M");
	expect_sane_row(out.out, "FLOOR_CHASE");
}
