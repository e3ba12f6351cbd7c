/* test_top.c — `protctl top` in a real terminal: tmux (a private server per test, its socket in
 * the test's temporary directory) runs it in a detached session against a real protd while the
 * test drives load (rate checks, a breaker trip, a held lease); it reads the screen with
 * capture-pane, quits with `q`, Ctrl-C or SIGTERM, and checks that the terminal's settings are
 * back as they were (stty -g before = after). Names with control characters (a crafted segment)
 * must show escaped. Usage errors need no terminal. The terminal tests skip with a message when
 * tmux is missing (tools/deps.sh installs it with the test set).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "craft.h"
#include "harness.h"

static struct th_out out; /* large: static */
static char tmux[256], sock[512]; /* the server's socket, in the test's temporary directory */

static bool find_tmux(void)
{
	const char *path = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof dirs, "%s", path && *path ? path : "/usr/bin:/bin");
	for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(tmux, sizeof tmux, "%s/tmux", d);
		if (access(tmux, X_OK) == 0)
			return true;
	}
	return false;
}

/* tmux -S SOCK -f /dev/null ARGS... (NULL-terminated); returns its exit code. */
static int tm(const char *a0, ...)
{
	const char *argv[16] = {tmux, "-S", sock, "-f", "/dev/null"};
	int n = 5;
	va_list ap;
	va_start(ap, a0);
	for (const char *a = a0; a && n < 15; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return th_run(&out, 10000, argv);
}

static void tmux_stop(void)
{
	if (sock[0]) {
		tm("kill-server", NULL); /* this test's own server (its socket), nothing else */
		unlink(sock);
	}
}

/* Every test that needs a terminal starts with this. */
static void need_tmux(void)
{
	if (!find_tmux())
		cr_skip("tmux is not installed (tools/deps.sh installs it with the test set): protctl top "
		        "is not tested in a terminal");
	const char *marker = th_write_file("tmux.dir", "%s", ""); /* the test's private directory */
	snprintf(sock, sizeof sock, "%.*s/tmux.sock", (int)(strrchr(marker, '/') - marker), marker);
	if (!getenv("TERM") || !*getenv("TERM"))
		setenv("TERM", "xterm", 1);
}

/* Run protctl top in a new detached session SESSION (110x36). The shell around it writes
 * protctl's pid to pidfile, then, once it exits, "TTY-RESTORED" when the terminal's settings are
 * those from before, and "TOP-EXIT=N". */
static void start_top(const char *session, const char *seg, const char *pidfile)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
	         "before=$(stty -g); sh -c 'echo $$ > %s; exec %s --segment %s top --interval 200ms'; "
	         "rc=$?; [ \"$before\" = \"$(stty -g)\" ] && echo TTY-RESTORED; echo TOP-EXIT=$rc; "
	         "exec sleep 60",
	         pidfile, th_protctl_path(), seg);
	cr_assert_eq(tm("new-session", "-d", "-s", session, "-x", "110", "-y", "36", cmd, NULL), 0,
	             "tmux new-session: %s", out.err);
}

static char screen[65536];

static const char *capture(const char *session)
{
	cr_assert_eq(tm("capture-pane", "-p", "-t", session, NULL), 0, "capture-pane: %s", out.err);
	snprintf(screen, sizeof screen, "%s", out.out);
	return screen;
}

/* Wait (bounded) until the screen holds every text of the NULL-terminated list. */
static bool screen_has(const char *session, int timeout_ms, const char *first, ...)
{
	uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
	do {
		capture(session);
		bool all = true;
		va_list ap;
		va_start(ap, first);
		for (const char *t = first; t; t = va_arg(ap, const char *))
			all = all && strstr(screen, t);
		va_end(ap);
		if (all)
			return true;
		usleep(100 * 1000);
	} while (th_now_ms() < end);
	return false;
}

/* The ALLOWED/s and DENIED/s of the first screen line starting with name, after the KEY title. */
static bool key_rates(const char *name, double *allowed, double *denied)
{
	const char *k = strstr(screen, "\nKEY ");
	for (const char *l = k ? strchr(k + 1, '\n') : NULL; l; l = strchr(l + 1, '\n'))
		if (strncmp(l + 1, name, strlen(name)) == 0 && l[1 + strlen(name)] == ' ')
			return sscanf(l + 1 + strlen(name), "%lf %lf", allowed, denied) == 2;
	return false;
}

static pid_t read_pid(const char *file)
{
	int pid = 0;
	uint64_t end = th_now_ms() + 5000;
	while (pid <= 0 && th_now_ms() < end) {
		FILE *f = fopen(file, "r");
		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid <= 0)
			usleep(50 * 1000);
	}
	return pid;
}

static const char *ini(void)
{
	return th_write_file("top.ini", "%s",
	                     "[segment]\nmax_keys = 4\nmax_breakers = 2\nmax_pools = 2\nrate_entities = 64\n"
	                     "events = 16\n\n"
	                     "[key api]\nrate_limit = 5\nrate_window = 1s\nrate_algorithm = fixed_window\n"
	                     "breaker_tolerance = 2\nbreaker_window = 10s\nbreaker_refresh = 60s\n"
	                     "pool_size = 2\npool_max_overflow = 0\n");
}

static int fn_fail(void *arg)
{
	(void)arg;
	return -5;
}

TestSuite(top, .fini = tmux_stop, .timeout = 120);

Test(top, shows_rates_breakers_and_pools_and_quits_on_q)
{
	need_tmux();
	const char *seg = th_segname("top");
	pid_t protd = th_protd_start(ini(), seg, NULL);
	prot_t *p = th_open(seg, 2000);
	start_top("top", seg, th_write_file("top.pid", "%s", ""));
	cr_assert(screen_has("top", 5000, "prot top", "KEY", "BREAKER", "POOL", "api", "closed", "0/2", NULL),
	          "the first frame did not show:\n%s", screen);

	/* a lease held, a breaker tripped, and rate checks over 5/s: allowed and denied both move */
	prot_lease lease;
	void *conn;
	cr_assert_eq(prot_pool_checkout(p, "api", 0, &lease, &conn), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(prot_breaker_execute(p, "api", fn_fail, NULL, NULL), -PROT_EFAILED);
	double allowed = 0, denied = 0;
	uint64_t end = th_now_ms() + 8000;
	bool seen = false;
	while (!seen && th_now_ms() < end) {
		struct prot_rate_info info;
		for (int i = 0; i < 10; i++)
			prot_rate_check_key(p, "api", "user:1", 1, &info);
		usleep(50 * 1000);
		capture("top");
		seen = strstr(screen, "open") && strstr(screen, "1/2") && key_rates("api", &allowed, &denied) &&
		       allowed > 0 && denied > 0;
	}
	cr_expect(seen, "no rates, open breaker and held lease on the screen (allowed %.1f/s, denied "
	          "%.1f/s):\n%s", allowed, denied, screen);
	/* 5 per fixed 1 s window: a 200 ms frame that spans a window's end sees at most 5 + 5 */
	cr_expect(allowed <= 50.5, "5 per window allowed, but the screen says %.1f/s:\n%s", allowed, screen);

	cr_assert_eq(tm("send-keys", "-t", "top", "q", NULL), 0, "%s", out.err);
	cr_expect(screen_has("top", 5000, "TOP-EXIT=0", "TTY-RESTORED", NULL),
	          "q did not quit with the terminal restored:\n%s", screen);
	cr_expect(!strstr(screen, "ALLOWED/s"), "the alternate screen was left:\n%s", screen);
	prot_pool_checkin(p, &lease, PROT_CHECKIN_OK);
	prot_close(p);
	th_protd_stop(protd);
}

Test(top, ctrl_c_and_sigterm_quit_and_restore_the_terminal)
{
	need_tmux();
	const char *seg = th_segname("topsig");
	pid_t protd = th_protd_start(ini(), seg, NULL);

	start_top("c", seg, th_write_file("c.pid", "%s", ""));
	cr_assert(screen_has("c", 5000, "prot top", "api", NULL), "no frame:\n%s", screen);
	cr_assert_eq(tm("send-keys", "-t", "c", "C-c", NULL), 0, "%s", out.err);
	cr_expect(screen_has("c", 5000, "TOP-EXIT=0", "TTY-RESTORED", NULL),
	          "Ctrl-C did not quit with the terminal restored:\n%s", screen);

	const char *pidfile = th_write_file("t.pid", "%s", "");
	start_top("t", seg, pidfile);
	cr_assert(screen_has("t", 5000, "prot top", "api", NULL), "no frame:\n%s", screen);
	pid_t top = read_pid(pidfile);
	cr_assert(top > 0, "no pid in %s", pidfile);
	cr_assert_eq(kill(top, SIGTERM), 0); /* the protctl this test started, by its pid */
	cr_expect(screen_has("t", 5000, "TOP-EXIT=0", "TTY-RESTORED", NULL),
	          "SIGTERM did not end it with the terminal restored:\n%s", screen);
	th_protd_stop(protd);
}

Test(top, names_from_the_segment_are_escaped)
{
	need_tmux();
	const char *seg = th_segname("topesc");
	struct crafted c = craft(seg);
	name_slot(c.h, REG_KEYS, 0, "red\x1b[31mkey");
	name_slot(c.h, REG_BREAKERS, 0, "title\x1b]0;owned\x07");
	start_top("e", seg, th_write_file("e.pid", "%s", ""));
	cr_expect(screen_has("e", 5000, "red\\x1b[31mkey", "title\\x1b]0;owned\\x07", NULL),
	          "names not shown escaped:\n%s", screen);
	cr_assert_eq(tm("send-keys", "-t", "e", "q", NULL), 0, "%s", out.err);
	cr_expect(screen_has("e", 5000, "TOP-EXIT=0", "TTY-RESTORED", NULL), "%s", screen);
	uncraft(&c);
}

/* No terminal needed: these fail before top touches one. */
Test(top, bad_input_exits_2_with_a_clear_message)
{
	const char *seg = th_segname("topbad");
	struct crafted c = craft(seg);
	cr_expect_eq(th_protctl(&out, seg, "top", "--interval", "5ms", NULL), 2);
	cr_expect(strstr(out.err, "interval '5ms' is out of range (100ms to 1h)"), "%s", out.err);
	cr_expect_eq(th_protctl(&out, seg, "top", "--interval", "fast", NULL), 2);
	cr_expect(strstr(out.err, "interval 'fast' is not a duration"), "%s", out.err);
	cr_expect_eq(th_protctl(&out, seg, "top", "--interval", NULL), 2);
	cr_expect(strstr(out.err, "--interval needs a DURATION"), "%s", out.err);
	cr_expect_eq(th_protctl(&out, seg, "top", "--bogus", NULL), 2);
	cr_expect(strstr(out.err, "unknown argument '--bogus'"), "%s", out.err);
	cr_expect_eq(th_protctl(&out, seg, "top", NULL), 2, "stdout is a pipe here");
	cr_expect(strstr(out.err, "standard output is not a terminal"), "%s", out.err);
	cr_expect_eq(th_protctl(&out, seg, "--json", "top", NULL), 2);
	cr_expect(strstr(out.out, "\"exit\": 2"), "%s", out.out);
	uncraft(&c);
}
