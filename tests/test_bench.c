/* test_bench.c — protbench runs end to end with tiny sizes (--smoke): it starts and stops its own
 * protd (and redis-server and socket daemon when present), prints every row and the table header,
 * exits 0, and leaves no segment behind. No figure is asserted: speed belongs to the bench itself.
 */
#include <criterion/criterion.h>
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

/* The bench names its segment in its output ("segment /prot-bench-PID"): it must be gone. */
static bool segment_left(const char *text)
{
	const char *s = strstr(text, "segment /prot-bench-");
	char path[64];
	if (!s)
		return false;
	snprintf(path, sizeof path, "/dev/shm/%.*s", (int)strcspn(s + 9, " ,\n"), s + 9);
	return access(path, F_OK) == 0;
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
}
