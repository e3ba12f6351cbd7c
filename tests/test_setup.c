/* test_setup.c — the README's two commands as a fresh machine runs them (demo.sh, then test.sh):
 * an existing build directory is reconfigured with the options asked for (so tests appear once
 * Criterion is installed), and test.sh fails, naming the suite, when an expected suite was not
 * built. Runs the real tools/deps.sh and tools/test.sh with stand-in meson and ninja on PATH that
 * only log their arguments; nothing is built. $PROT_SRCDIR is the source tree. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct th_out out;

static const char *srcdir(void)
{
	const char *s = getenv("PROT_SRCDIR");
	return s && *s ? s : ".";
}

/* Run a bash script (cwd: the source tree) with a timeout; the exit code, output in out. */
static int sh(const char *script)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "cd '%s' && %s", srcdir(), script);
	const char *const argv[] = {"/bin/bash", "-c", cmd, NULL};
	return th_run(&out, 20000, argv);
}

/* A directory holding stand-in meson/ninja that append their argv to DIR/log. */
static const char *fake_tools(void)
{
	const char *m = th_write_file("meson", "#!/bin/sh\necho meson \"$@\" >>\"${0%%/*}/log\"\n");
	static char dir[192];
	snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(m, '/') - m), m);
	th_write_file("ninja", "#!/bin/sh\necho ninja \"$@\" >>\"${0%%/*}/log\"\n");
	char p[256];
	snprintf(p, sizeof p, "%s/meson", dir);
	chmod(p, 0755);
	snprintf(p, sizeof p, "%s/ninja", dir);
	chmod(p, 0755);
	return dir;
}

Test(setup, an_existing_build_dir_is_reconfigured_with_the_options)
{
	const char *bin = fake_tools();
	char script[1024];
	/* a build dir configured before (demo.sh's build/): build.ninja exists */
	snprintf(script, sizeof script,
	         "d=%s/bd && mkdir -p $d && touch $d/build.ninja && . tools/deps.sh && "
	         "PATH=%s:$PATH build_dir $d -Dtests=enabled && cat %s/log",
	         bin, bin, bin);
	cr_assert_eq(sh(script), 0, "%s%s", out.out, out.err);
	cr_expect(strstr(out.out, "meson setup --reconfigure "), "no reconfigure:\n%s", out.out);
	cr_expect(strstr(out.out, " -Dtests=enabled"), "option not passed:\n%s", out.out);
	cr_expect(strstr(out.out, "ninja -C "), "not built:\n%s", out.out);
}

Test(setup, test_sh_asks_for_tests_explicitly)
{
	cr_assert_eq(sh("grep -c '^build_dir build -Dtests=enabled\\|build_dir build-asan -Dtests=enabled"
	                "\\|build_dir build-tsan -Dtests=enabled' tools/test.sh"),
	             0, "%s", out.err);
	cr_expect_eq(atoi(out.out), 3, "every build of test.sh must pass -Dtests=enabled:\n%s", out.out);
}

Test(setup, a_suite_that_was_not_built_fails_by_name)
{
	const char *bin = fake_tools();
	char script[1024];
	/* every expected suite but test_config */
	snprintf(script, sizeof script,
	         "d=%s/b2 && mkdir -p $d/tests && for t in $(sed -n 's/^foreach t : \\[\\(.*\\)\\]$/\\1/p' "
	         "tests/meson.build | tr -d \"' \" | tr , ' '); do [ $t = config ] || "
	         "{ touch $d/tests/test_$t; chmod +x $d/tests/test_$t; }; done && "
	         "bash tools/test.sh --check-built $d",
	         bin);
	cr_assert_eq(sh(script), 1, "missing suite accepted:\n%s%s", out.out, out.err);
	cr_expect(strstr(out.err, "test_config: expected suite was not built"), "%s", out.err);
	cr_expect(!strstr(out.err, "test_rate"), "a built suite was reported:\n%s", out.err);
	snprintf(script, sizeof script, "touch %s/b2/tests/test_config && chmod +x %s/b2/tests/test_config && "
	         "bash tools/test.sh --check-built %s/b2", bin, bin, bin);
	cr_expect_eq(sh(script), 0, "%s", out.err);
}
