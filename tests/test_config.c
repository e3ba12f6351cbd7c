/* test_config.c — protd's INI parser through the real binary: every kind of mistake is reported as
 * FILE:LINE: ... with the right line, all mistakes of a file are collected, a good file passes, and
 * a bad file given to -c applies nothing (no segment is created). Also what a file implies: the
 * segment size --check-config prints, max_segment_size, the rate limiter's own limits refused at
 * load time, and a /dev/shm too small for the segment (protd says so, exits 1, leaves nothing).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "harness.h"

static struct th_out out;

/* Run protd --check-config on TEXT; return the exit code (stderr in out.err). */
static int check(const char **path, const char *text)
{
	*path = th_write_file("t.ini", "%s", text);
	const char *argv[] = { th_protd_path(), "--check-config", *path, NULL };
	return th_run(&out, 10000, argv);
}

/* TEXT must fail with a message at LINE containing WHAT. */
static void expect_error(const char *text, int line, const char *what)
{
	const char *path;
	int code = check(&path, text);
	cr_assert_neq(code, 0, "protd --check-config accepted:\n%s", text);
	char want[256];
	snprintf(want, sizeof want, "%s:%d: ", path, line);
	const char *at = strstr(out.err, want);
	cr_assert(at, "no error for line %d in:\n%s", line, out.err);
	const char *eol = strchr(at, '\n');
	size_t n = eol ? (size_t)(eol - at) : strlen(at);
	char msg[512];
	snprintf(msg, sizeof msg, "%.*s", (int)n, at);
	cr_assert(strstr(msg, what), "line %d: expected \"%s\" in \"%s\"", line, what, msg);
}

#define SEG "[segment]\nname = /x\n" /* two lines */

Test(config, good_file_passes)
{
	const char *path;
	int code = check(&path,
	                 "; a comment\n" SEG "mode = 0660\nmax_keys = 4\n\n[daemon]\ntick = 5ms\n"
	                 "reclaim_interval = 1s\ncontrol_socket = /tmp/x.sock\n"
	                 "[key api]\nrate_limit = 20\nrate_window = 1s\nrate_algorithm = fixed_window\n"
	                 "rate_burst = 5\nrate_on_full = allow\nrate_clock = coarse\nbreaker = api\n"
	                 "pool = api\ntimeout = 2s\n"
	                 "[breaker api]\nstrategy = rate\nrate_threshold = 50%\nrate_window_calls = 100\n"
	                 "rate_min_calls = 20\nrefresh = 1m\nhalf_open_probes = 2\nprobe_timeout = 1h\n"
	                 "slow_call = 250ms\n"
	                 "[pool api]\nsize = 2\nmax_overflow = 1\ncheckout_timeout = 500ms\n"
	                 "strategy = fifo\noverflow_ttl = 10s\nreclaim_interval = 50\n"
	                 "[key db]\n  rate_limit = 100   ; indented, inline comment\nrate_window = 1s\n"
	                 "breaker_tolerance = 5\nbreaker_window = 10s\nbreaker_refresh = 5s\n"
	                 "pool_size = 4\n");
	cr_assert_eq(code, 0, "rejected:\n%s", out.err);
	char want[256];
	snprintf(want, sizeof want, "%s: ok", path);
	cr_assert(strstr(out.out, want), "stdout: %s", out.out);
}

Test(config, unknown_section)
{
	expect_error(SEG "[frobnicate]\na = 1\n", 3, "unknown section [frobnicate]");
}

Test(config, section_without_name)
{
	expect_error(SEG "[key]\nrate_limit = 1\n", 3, "needs a name");
}

Test(config, unknown_key)
{
	expect_error(SEG "[key a]\nrate_limit = 1\nrate_window = 1s\nrate_lmit = 3\n", 6,
	             "unknown option \"rate_lmit\"");
}

Test(config, unknown_inline_key)
{
	expect_error(SEG "[key a]\nbreaker_frobs = 1\n", 4, "unknown option \"breaker_frobs\"");
}

Test(config, bad_number)
{
	expect_error(SEG "[key a]\nrate_limit = 12x\nrate_window = 1s\n", 4, "not a number");
}

Test(config, negative_number)
{
	expect_error(SEG "max_keys = -3\n", 3, "not a number");
}

Test(config, bad_unit)
{
	expect_error(SEG "[key a]\nrate_limit = 1\nrate_window = 5sec\n", 5, "unknown unit \"sec\"");
}

Test(config, bad_enum)
{
	expect_error(SEG "[key a]\nrate_limit = 1\nrate_window = 1s\nrate_algorithm = leaky\n", 6,
	             "not one of fixed_window | gcra"); /* lib/names.c, by value */
}

Test(config, overflow)
{
	expect_error(SEG "[key a]\nrate_limit = 99999999999999999999999\nrate_window = 1s\n", 4,
	             "overflows");
}

Test(config, duration_overflow)
{
	expect_error(SEG "[key a]\nrate_limit = 1\nrate_window = 18446744073709551615h\n", 5,
	             "overflows");
}

Test(config, value_out_of_range)
{
	expect_error(SEG "max_keys = 0\n", 3, "smaller than the minimum 1");
}

Test(config, bad_mode)
{
	expect_error(SEG "mode = 0689\n", 3, "not an octal mode");
}

Test(config, world_writable_mode)
{
	expect_error(SEG "mode = 0666\n", 3, "world-writable");
	expect_error(SEG "max_keys = 4\nmode = 0602\n", 4, "world-writable");
}

Test(config, group_writable_mode_is_fine)
{
	const char *path;
	cr_expect_eq(check(&path, SEG "mode = 0660\n"), 0, "%s", out.err);
}

Test(config, duplicate_key)
{
	expect_error(SEG "[pool p]\nsize = 1\nmax_overflow = 0\nsize = 2\n", 6,
	             "duplicate option \"size\"");
}

Test(config, duplicate_section)
{
	expect_error(SEG "[pool p]\nsize = 1\n[pool p]\nsize = 2\n", 5,
	             "duplicate section [pool p] (first on line 3)");
}

Test(config, duplicate_singleton_section)
{
	expect_error(SEG "[segment]\nmax_keys = 3\n", 3, "duplicate section [segment]");
}

Test(config, inline_clashes_with_section)
{
	expect_error(SEG "[breaker a]\ntolerance = 1\nwindow = 1s\nrefresh = 1s\n[key a]\n"
	                 "breaker_tolerance = 2\n",
	             8, "clash with [breaker a] (line 3)");
}

Test(config, inline_options_refused_when_the_key_uses_another_object)
{
	expect_error(SEG "[breaker b]\ntolerance = 1\nwindow = 1s\nrefresh = 1s\n[key k]\n"
	                 "breaker = b\nbreaker_tolerance = 2\n",
	             9, "the key uses breaker b; change that breaker instead");
	expect_error(SEG "[pool q]\nsize = 1\n[key k]\npool = q\npool_size = 2\n", 7,
	             "the key uses pool q; change that pool instead");
}

Test(config, missing_pool_size)
{
	expect_error(SEG "[key k]\ntimeout = 1s\n[pool p]\nmax_overflow = 2\n", 5, "size is required");
}

Test(config, missing_inline_pool_size)
{
	expect_error(SEG "[key k]\npool_max_overflow = 2\n", 3, "pool_size is required");
}

Test(config, rate_limit_without_window)
{
	expect_error(SEG "\n[key k]\nrate_limit = 10\n", 4, "rate_window is missing");
}

Test(config, rate_window_without_limit)
{
	expect_error(SEG "[key k]\nrate_window = 10s\n", 3, "rate_limit is missing");
}

Test(config, breaker_missing_refresh)
{
	expect_error(SEG "[breaker b]\ntolerance = 2\nwindow = 1s\n", 3, "refresh is required");
}

Test(config, rate_breaker_missing_threshold)
{
	expect_error(SEG "[breaker b]\nstrategy = rate\nrate_window_calls = 10\nrefresh = 1s\n", 3,
	             "rate_threshold is required");
}

Test(config, too_many_keys)
{
	expect_error(SEG "max_keys = 2\n[key a]\n[key b]\n[key c]\n[key d]\n", 6,
	             "4 keys defined, more than max_keys = 2");
}

Test(config, too_many_pools)
{
	expect_error(SEG "max_pools = 1\n[pool a]\nsize = 1\n[pool b]\nsize = 1\n", 6,
	             "more than max_pools = 1");
}

Test(config, pool_larger_than_slots)
{
	expect_error(SEG "pool_max_slots = 8\n[pool p]\nsize = 6\nmax_overflow = 3\n", 4,
	             "size + max_overflow = 9 exceeds pool_max_slots = 8");
}

Test(config, tolerance_too_large)
{
	expect_error(SEG "[breaker b]\ntolerance = 128\nwindow = 1s\nrefresh = 1s\n", 4,
	             "larger than the maximum 127");
}

Test(config, rate_window_calls_too_large)
{
	expect_error(SEG "[breaker b]\nstrategy = rate\nrate_threshold = 50\nrate_window_calls = 1025\n"
	                 "refresh = 1s\n",
	             6, "larger than the maximum 1024");
}

Test(config, name_too_long)
{
	expect_error(SEG "[key aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\nrate_limit = 1\n", 3,
	             "longer than 47 bytes");
}

Test(config, undefined_breaker)
{
	expect_error(SEG "[key k]\ntimeout = 1s\nbreaker = nope\n", 3, "breaker \"nope\" is not defined");
}

Test(config, undefined_pool)
{
	expect_error(SEG "[key k]\npool = nope\n", 3, "pool \"nope\" is not defined");
}

Test(config, bad_segment_name)
{
	expect_error("[segment]\nname = no-slash\n", 2, "not a shm name");
}

Test(config, syntax_error)
{
	expect_error(SEG "[key k]\njust some words\n", 4, "expected \"name = value\"");
}

Test(config, option_outside_section)
{
	expect_error("max_keys = 3\n" SEG, 1, "outside of any section");
}

Test(config, every_error_is_collected)
{
	const char *path;
	int code = check(&path, SEG "max_keys = x\n[key a]\nrate_window = 2q\n[bogus]\n[pool p]\n");
	cr_assert_neq(code, 0);
	static const int lines[] = { 3, 5, 6, 7 };
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		char want[256];
		snprintf(want, sizeof want, "%s:%d: ", path, lines[i]);
		cr_assert(strstr(out.err, want), "no error for line %d:\n%s", lines[i], out.err);
	}
}

Test(config, missing_file)
{
	const char *argv[] = { th_protd_path(), "--check-config", "/nonexistent/protd.ini", NULL };
	cr_assert_neq(th_run(&out, 10000, argv), 0);
	cr_assert(strstr(out.err, "/nonexistent/protd.ini: cannot open"), "%s", out.err);
}

Test(config, bad_file_creates_no_segment)
{
	const char *seg = th_segname("badcfg");
	const char *ini = th_write_file("bad.ini", "[segment]\nmax_keys = lots\n");
	pid_t pid = th_protd_spawn(ini, seg, NULL);
	int st;
	cr_assert_eq(th_wait(pid, 5000, &st), 0, "protd kept running on a bad file");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "status %d", st);
	int fd = shm_open(seg, O_RDONLY, 0);
	cr_assert(fd < 0 && errno == ENOENT, "a segment was created");
}

Test(config, usage_errors)
{
	const char *argv[] = { th_protd_path(), "--bogus", NULL };
	cr_assert_eq(th_run(&out, 10000, argv), 2);
	const char *argv2[] = { th_protd_path(), "--help", NULL };
	cr_assert_eq(th_run(&out, 10000, argv2), 0);
	cr_assert(strstr(out.out, "--check-config"));
}

/* ---- what a file implies ---------------------------------------------------------------------- */

Test(config, check_config_prints_the_segment_size)
{
	const char *path;
	cr_assert_eq(check(&path, SEG "rate_entities = 1048576\n"), 0, "%s", out.err);
	/* 2^20 buckets: 32768 groups of 4160 B = 130 MiB, plus the small regions, the default 64
	 * sliding-window rings of 1024 admissions (528 KiB) and the operation registry: 131.0 MiB */
	cr_assert(strstr(out.out, "segment /x: 131.0 MiB"), "%s", out.out);
	cr_assert(strstr(out.out, " bytes; max_segment_size 1.0 GiB"), "%s", out.out);
}

Test(config, segment_larger_than_max_segment_size_is_refused)
{
	expect_error(SEG "rate_entities = 1048576\n[daemon]\nmax_segment_size = 64MiB\n", 1,
	             "more than [daemon] max_segment_size = 64.0 MiB");
	expect_error(SEG "rate_entities = 67108864\n", 1, "max_segment_size = 1.0 GiB");
	expect_error("[daemon]\nmax_segment_size = 2 parsecs\n", 2, "unknown unit");
	expect_error("[daemon]\nmax_segment_size = 1000\n", 2, "smaller than the minimum");
	const char *path;
	cr_assert_eq(check(&path, SEG "rate_entities = 67108864\n[daemon]\nmax_segment_size = 16g\n"), 0,
	             "%s", out.err);
}

/* Every limit a decision enforces is refused at load, with the line: the fixed window's 24-bit
 * count, the window maximum shared with the API, GCRA's tolerance, the breaker's ring. */
Test(config, rate_limiter_limits_are_refused_at_load)
{
	const char *path;
	expect_error(SEG "[key a]\nrate_limit = 16777216\nrate_window = 1s\nrate_algorithm = fixed_window\n",
	             3, "a fixed window counts at most 2^24 - 1 units");
	cr_assert_eq(check(&path, SEG "[key a]\nrate_limit = 16777215\nrate_window = 1s\n"
	                              "rate_algorithm = fixed_window\n"), 0, "%s", out.err);
	cr_assert_eq(check(&path, SEG "[key a]\nrate_limit = 16777216\nrate_window = 1s\nrate_algorithm = gcra\n"), 0,
	             "GCRA has no 24-bit count: %s", out.err);
	expect_error(SEG "[key a]\nrate_limit = 1\nrate_window = 68719476737ms\n", 5,
	             "larger than the maximum 68719476736 (2^36 ms");
	expect_error(SEG "[key a]\nrate_limit = 1\nrate_window = 68719476736ms\nrate_burst = 4294967295\n"
	             "rate_algorithm = gcra\n",
	             3, "exceeds 2^62 ns");
	expect_error(SEG "[key a]\nbreaker_tolerance = 128\nbreaker_window = 1s\nbreaker_refresh = 1s\n",
	             4, "larger than the maximum 127");
}

/* Run in a mount namespace of this test process, on a 4 MiB tmpfs over /dev/shm: the only way to
 * run out of /dev/shm without taking the machine's from everyone else. */
static const char *small_dev_shm(void)
{
	static char why[256];
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("prot-test", "/dev/shm", "tmpfs", 0, "size=4m") < 0) {
		snprintf(why, sizeof why, "needs root and mount namespaces (a 4 MiB tmpfs on /dev/shm): %s",
		         strerror(errno));
		return why;
	}
	return NULL;
}

Test(config, dev_shm_too_small_is_an_error_that_leaves_nothing)
{
	const char *why = small_dev_shm();
	if (why)
		cr_skip_test("%s", why);
	struct statvfs v;
	cr_assert_eq(statvfs("/dev/shm", &v), 0);
	uint64_t free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
	/* 2^20 buckets: a 131 MiB segment (check_config_prints_the_segment_size), far more than the
	 * free space */
	const char *seg = th_segname("full");
	const char *ini = th_write_file("full.ini", "[segment]\nrate_entities = 1048576\n[daemon]\n"
	                                "control_socket = /tmp/prot-t-%d-full.sock\n", (int)getpid());
	const char *argv[] = { th_protd_path(), "-c", ini, "--segment", seg, NULL };
	int code = th_run(&out, 20000, argv);
	cr_assert_eq(code, 1, "exit %d:\n%s", code, out.err);
	char want[128];
	snprintf(want, sizeof want, "(%" PRIu64 " bytes) are free", free_bytes);
	cr_assert(strstr(out.err, "/dev/shm cannot hold it: it needs 131.0 MiB"), "%s", out.err);
	cr_assert(strstr(out.err, want), "the free space (%s) in:\n%s", want, out.err);
	cr_assert(!strstr(out.err, "serving"), "%s", out.err);
	cr_assert_eq(th_dir_entries("/dev/shm"), 0, "protd left something in /dev/shm");
	cr_assert_eq(statvfs("/dev/shm", &v), 0);
	cr_assert_eq((uint64_t)v.f_bavail * v.f_frsize, free_bytes, "the space is given back");
	char sock[128];
	snprintf(sock, sizeof sock, "/tmp/prot-t-%d-full.sock", (int)getpid());
	cr_assert(access(sock, F_OK) < 0, "a control socket was left");
}

/* The same /dev/shm with room for it: protd reserves the whole segment at creation. */
Test(config, segment_is_reserved_at_creation)
{
	const char *why = small_dev_shm();
	if (why)
		cr_skip_test("%s", why);
	const char *seg = th_segname("resv");
	const char *ini = th_write_file("resv.ini", "[segment]\nmax_keys = 4\nmax_breakers = 4\n"
	                                "max_pools = 2\nrate_entities = 1024\nevents = 64\n");
	pid_t pid = th_protd_start(ini, seg, NULL);
	int fd = shm_open(seg, O_RDONLY, 0);
	cr_assert(fd >= 0);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	close(fd);
	cr_assert_geq((uint64_t)st.st_blocks * 512, (uint64_t)st.st_size,
	              "%lld of %lld bytes reserved", (long long)st.st_blocks * 512, (long long)st.st_size);
	th_protd_stop(pid);
}
