/* test_protctl.c — protctl as a user runs it: exit codes and messages for every kind of mistake,
 * --json that a strict parser accepts (even with hostile names in the segment), every --json
 * document as man/prot-json.7.scd lists it (tests/json.c checks one against the page), read-only
 * attach for a user with read permission only, events --follow ending on SIGTERM. Runs the real
 * binary ($PROTCTL) against crafted segments and against a real protd.
 * Length (just over ~700 lines): one program's interface; the JSON checks live in tests/json.c. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "craft.h"
#include "harness.h"
#include "json.h"
#include "schema.h"
#include "wire.h"

Test(protctl, the_validator_is_strict)
{
	cr_assert(json_valid("{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\n\"]}\n"));
	cr_assert(json_valid("\"caf\xc3\xa9\""));
	cr_assert(!json_valid("{\"a\": 1,}"));
	cr_assert(!json_valid("{\"a\" 1}"));
	cr_assert(!json_valid("[01]"));
	cr_assert(!json_valid("\"tab\there\""));
	cr_assert(!json_valid("\"\xff\""));
	cr_assert(!json_valid("\"\\x\""));
	cr_assert(!json_valid("{} {}"));
	cr_assert(!json_valid(""));
}

/* ---- helpers --------------------------------------------------------------------------------- */

static struct th_out out; /* large: static */

#define PROTCTL(seg, ...) th_protctl(&out, (seg), __VA_ARGS__, NULL)

static void expect_json(const char *what)
{
	cr_expect(json_valid(out.out), "%s: not valid JSON:\n%s", what, out.out);
}

static void expect_one_line(const char *s)
{
	const char *nl = strchr(s, '\n');
	cr_expect(nl && nl[1] == '\0', "want one line, got:\n%s", s);
}

/* ---- errors and exit codes ------------------------------------------------------------------- */

Test(protctl, missing_segment_exits_3_with_a_clear_message)
{
	const char *seg = th_segname("none");
	cr_assert_eq(PROTCTL(seg, "status"), 3, "stderr: %s", out.err);
	cr_expect(strstr(out.err, seg), "names the segment: %s", out.err);
	cr_expect(strstr(out.err, "protd is not running"), "says why: %s", out.err);
	expect_one_line(out.err);
	cr_expect_str_empty(out.out);
	cr_expect_eq(PROTCTL(seg, "list", "--json"), 3);
}

Test(protctl, damaged_segments_exit_3)
{
	const char *seg = th_segname("bad");
	struct crafted c = craft(seg);
	c.h->abi_version++;
	cr_expect_eq(PROTCTL(seg, "list"), 3);
	cr_expect(strstr(out.err, "ABI"), "%s", out.err);
	c.h->abi_version--;
	c.h->magic = 0x1234;
	cr_expect_eq(PROTCTL(seg, "list"), 3);
	cr_expect(strstr(out.err, "corrupt"), "%s", out.err);
	uncraft(&c);
}

Test(protctl, usage_errors_exit_2_with_specific_messages)
{
	const char *seg = th_segname("usage");
	struct crafted c = craft(seg);

	cr_expect_eq(PROTCTL(seg, "frobnicate"), 2);
	cr_expect(strstr(out.err, "unknown object 'frobnicate'"), "%s", out.err);
	cr_expect(strstr(out.err, "list") && strstr(out.err, "status"), "lists the objects: %s", out.err);
	expect_one_line(out.err);

	cr_expect_eq(PROTCTL(seg, "status", "a", "b"), 2);
	cr_expect_str_eq(out.err, "protctl: usage: protctl status [KEY]\n");

	cr_expect_eq(PROTCTL(seg, "list", "extra"), 2);
	cr_expect_str_eq(out.err, "protctl: usage: protctl list\n");

	cr_expect_eq(PROTCTL(seg, "events", "--sideways"), 2);
	cr_expect(strstr(out.err, "--sideways"), "%s", out.err);

	const char *const bad_opt[] = {th_protctl_path(), "--bogus", "list", NULL};
	cr_expect_eq(th_run(&out, 5000, bad_opt), 2);
	cr_expect(strstr(out.err, "unknown option '--bogus'"), "%s", out.err);

	const char *const no_seg[] = {th_protctl_path(), "--segment", NULL};
	cr_expect_eq(th_run(&out, 5000, no_seg), 2);

	const char *const bad_name[] = {th_protctl_path(), "--segment", "no-slash", "list", NULL};
	cr_expect_eq(th_run(&out, 5000, bad_name), 2);
	cr_expect(strstr(out.err, "invalid name"), "%s", out.err);

	const char *const nothing[] = {th_protctl_path(), NULL};
	cr_expect_eq(th_run(&out, 5000, nothing), 2);
	cr_expect(strstr(out.err, "usage:"), "%s", out.err);
	uncraft(&c);
}

Test(protctl, objects_with_verbs_report_the_verbs)
{
	/* every object's table is linked in: a build without one fails here (and does not link) */
	const char *const help[] = {th_protctl_path(), "--help", NULL};
	cr_assert_eq(th_run(&out, 5000, help), 0);
	static const char *const verbs[] = {"rate show", "breaker show", "pool show", "stats"};
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		cr_assert(strstr(out.out, verbs[i]), "protctl --help lacks \"%s\":\n%s", verbs[i], out.out);
	const char *seg = th_segname("verbs");
	struct crafted c = craft(seg);
	cr_expect_eq(PROTCTL(seg, "breaker", "melt"), 2);
	cr_expect(strstr(out.err, "unknown verb 'melt'") && strstr(out.err, "show"), "%s", out.err);
	expect_one_line(out.err);
	cr_expect_eq(PROTCTL(seg, "breaker"), 2);
	cr_expect(strstr(out.err, "missing verb") && strstr(out.err, "reset"), "%s", out.err);
	cr_expect_eq(PROTCTL(seg, "breaker", "reset"), 2);
	cr_expect_str_eq(out.err, "protctl: usage: protctl breaker reset NAME\n");
	uncraft(&c);
}

Test(protctl, help_documents_exit_codes)
{
	const char *const help[] = {th_protctl_path(), "--help", NULL};
	cr_assert_eq(th_run(&out, 5000, help), 0);
	cr_expect(strstr(out.out, "Exit codes"), "%s", out.out);
	for (const char *code = "012345"; *code; code++) {
		char line[8];
		snprintf(line, sizeof line, "  %c  ", *code);
		cr_expect(strstr(out.out, line), "exit code %c documented", *code);
	}
	const char *const obj_help[] = {th_protctl_path(), "status", "--help", NULL};
	cr_assert_eq(th_run(&out, 5000, obj_help), 0);
	cr_expect(strstr(out.out, "status [KEY]"), "%s", out.out);
}

/* ---- output on a crafted segment --------------------------------------------------------------- */

Test(protctl, list_and_status_on_a_crafted_segment)
{
	const char *seg = th_segname("view");
	struct crafted c = craft(seg);
	name_slot(c.h, REG_KEYS, 0, "api");
	name_slot(c.h, REG_KEYS, 2, "db");
	name_slot(c.h, REG_BREAKERS, 1, "api");
	name_slot(c.h, REG_POOLS, 0, "db");

	cr_assert_eq(PROTCTL(seg, "list"), 0, "%s", out.err);
	cr_expect_str_eq(out.out, "keys:\n  api\n  db\nbreakers:\n  api\npools:\n  db\n");
	cr_assert_eq(PROTCTL(seg, "--json", "list"), 0, "%s", out.err);
	expect_json("list");
	cr_expect_str_eq(out.out, "{\"schema\": 1, \"keys\": [\"api\", \"db\"], \"breakers\": [\"api\"], "
	                          "\"pools\": [\"db\"]}\n");

	cr_assert_eq(PROTCTL(seg, "status"), 0, "%s", out.err);
	cr_expect(strstr(out.out, "keys          2 / 4"), "%s", out.out);
	cr_expect(strstr(out.out, "protd         stopped"), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "status", "--json"), 0, "%s", out.err);
	expect_json("status");
	cr_expect(strstr(out.out, "\"keys\": {\"used\": 2, \"max\": 4}"), "%s", out.out);

	cr_expect_eq(PROTCTL(seg, "status", "nokey"), 1);
	cr_expect(strstr(out.err, "no protection key 'nokey'"), "%s", out.err);
	uncraft(&c);
}

Test(protctl, json_stays_valid_with_hostile_names)
{
	const char *seg = th_segname("hostile");
	struct crafted c = craft(seg);
	name_slot(c.h, REG_KEYS, 0, "quote\"back\\slash");
	name_slot(c.h, REG_KEYS, 1, "ctl\x01\x1f\x7f\ttab");
	name_slot(c.h, REG_KEYS, 2, "bad\xff\xc3utf8\xed\xa0\x80");
	name_slot(c.h, REG_KEYS, 3, "caf\xc3\xa9");
	/* an unterminated name is skipped, never read past */
	unterminated_slot(c.h, REG_BREAKERS, 0);
	prot_event_emit(c.h, EV_BREAKER_OPEN, 0, "quote\"\n", 1, 2);

	cr_assert_eq(PROTCTL(seg, "--json", "list"), 0, "%s", out.err);
	expect_json("list");
	cr_expect(strstr(out.out, "caf\xc3\xa9"), "valid UTF-8 passes through: %s", out.out);
	cr_expect(strstr(out.out, "\"breakers\": []"), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "--json", "events"), 0, "%s", out.err);
	expect_json("events");
	uncraft(&c);
}

Test(protctl, events_lists_the_ring_and_counts_losses)
{
	const char *seg = th_segname("events");
	struct crafted c = craft(seg); /* ring of 8 */
	cr_assert_eq(PROTCTL(seg, "events"), 0);
	cr_expect_str_eq(out.out, "no events\n");
	cr_assert_eq(PROTCTL(seg, "events", "--json"), 0);
	expect_json("empty events");
	for (int i = 0; i < 10; i++)
		prot_event_emit(c.h, EV_CONFIG_CHANGED, 0, "api", (uint64_t)i, 0);
	cr_assert_eq(PROTCTL(seg, "events", "--json"), 0);
	expect_json("events");
	cr_expect(strstr(out.out, "\"type\": \"config_changed\""), "%s", out.out);
	cr_expect(strstr(out.out, "\"a\": 9"), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "events"), 0);
	cr_expect(strstr(out.out, "config_changed"), "%s", out.out);
	uncraft(&c);
}

/* Each event's payload in words, the same in text and --json ("text"), named in "fields". */
Test(protctl, events_name_their_fields)
{
	const char *seg = th_segname("evwords");
	struct crafted c = craft(seg); /* ring of 8 */
	static const struct {
		uint32_t type;
		uint64_t a, b;
		const char *text, *fields;
	} ev[] = {
		{EV_BREAKER_OPEN, 3, 4, "opened: 4 failures in the window, epoch 3",
		 "\"fields\": {\"failures\": 4, \"epoch\": 3}"},
		{EV_BREAKER_OPEN, 5, 0, "opened: a half-open probe failed, epoch 5",
		 "\"fields\": {\"failures\": 0, \"epoch\": 5}"},
		{EV_BREAKER_HALF_OPEN, 6, 1, "half-open, admitting probes: 1 probe of the previous round",
		 "\"fields\": {\"probes_lost\": 1, \"epoch\": 6}"},
		{EV_POOL_EXHAUSTED, 3, 2, "no lease free: 3 leases in use, 2 waiting",
		 "\"fields\": {\"in_use\": 3, \"waiting\": 2}"},
		{EV_LEASE_RECLAIMED, 7, 1, "lease of a dead process reclaimed: process slot 7, lease entry 1",
		 "\"fields\": {\"process_slot\": 7, \"lease\": 1}"},
		{EV_CONFIG_RELOADED, 9, 0, "configuration file reloaded: generation 9",
		 "\"fields\": {\"generation\": 9}"},
		{EV_RATE_TABLE_FULL, 1, 0, "rate bucket table full: 1 decision on a full table so far, new "
		 "entities denied", "\"fields\": {\"table_full_total\": 1, \"on_full\": \"deny\"}"},
		{EV_BREAKER_CREATED, 0, 0, "created through protd", "\"fields\": {}"},
	};
	for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++)
		prot_event_emit(c.h, ev[i].type, 0, "db", ev[i].a, ev[i].b);
	cr_assert_eq(PROTCTL(seg, "events"), 0, "%s", out.err);
	for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++)
		cr_expect(strstr(out.out, ev[i].text), "text lacks '%s':\n%s", ev[i].text, out.out);
	cr_expect(!strstr(out.out, "a="), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "--json", "events"), 0, "%s", out.err);
	expect_json("events");
	for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) {
		cr_expect(strstr(out.out, ev[i].fields), "JSON lacks '%s':\n%s", ev[i].fields, out.out);
		cr_expect(strstr(out.out, ev[i].text), "JSON text lacks '%s'", ev[i].text);
	}
	cr_expect(strstr(out.out, "\"a\": 3, \"b\": 4}"), "a and b are kept: %s", out.out);
	uncraft(&c);
}

/* `protctl --json events --follow` on seg, its stdout into log: the pid. */
static pid_t follow_start(const char *seg, const char *log)
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (!freopen(log, "w", stdout))
			_exit(126);
		execl(th_protctl_path(), th_protctl_path(), "--segment", seg, "--json", "events", "--follow",
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* SIGTERM it: it must stop at once, with status 0; then what it printed, into buf. */
static void follow_stop(pid_t pid, const char *log, char *buf, size_t n)
{
	kill(pid, SIGTERM);
	int st;
	cr_assert_eq(th_wait(pid, 5000, &st), 0, "protctl events --follow did not stop on SIGTERM");
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	FILE *f = fopen(log, "r");
	cr_assert_not_null(f);
	buf[fread(buf, 1, n - 1, f)] = '\0';
	fclose(f);
}

Test(protctl, events_follow_stops_on_sigterm)
{
	const char *seg = th_segname("follow");
	struct crafted c = craft(seg);
	const char *log = th_write_file("follow.out", "%s", "");
	pid_t pid = follow_start(seg, log);
	usleep(200 * 1000);
	prot_event_emit(c.h, EV_POOL_EXHAUSTED, 1, "db", 0, 0);
	usleep(300 * 1000);
	static char text[65536];
	follow_stop(pid, log, text, sizeof text);
	int lines = 0;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cr_expect(json_valid(line), "not JSON: %s", line);
		cr_expect(strstr(line, "pool_exhausted"), "%s", line);
		lines++;
	}
	cr_expect_eq(lines, 1);
	uncraft(&c);
}

/* ---- read-only attach ---------------------------------------------------------------------------- */

static int protctl_as_nobody(const char *seg, const char *cmd)
{
	const char *const argv[] = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
	                            th_protctl_path(), "--segment", seg, cmd, NULL};
	return th_run(&out, 5000, argv);
}

Test(protctl, read_permission_is_enough_to_inspect)
{
	if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0)
		cr_skip("needs root and setpriv to run protctl as another user");
	const char *seg = th_segname("ro");
	struct crafted c = craft_mode(seg, &small_geo, 0644);
	name_slot(c.h, REG_KEYS, 0, "api");
	int rc = protctl_as_nobody(seg, "list");
	if (rc == 126 || strstr(out.err, "exec"))
		cr_skip("protctl is not executable by nobody here: %s", out.err);
	cr_expect_eq(rc, 0, "%s", out.err);
	cr_expect(strstr(out.out, "api"), "%s", out.out);
	cr_expect_eq(protctl_as_nobody(seg, "status"), 0, "%s", out.err);
	uncraft(&c);

	const char *seg2 = th_segname("ro2");
	struct crafted c2 = craft_mode(seg2, &small_geo, 0600);
	cr_expect_eq(protctl_as_nobody(seg2, "list"), 4, "%s", out.err);
	cr_expect(strstr(out.err, "Permission denied"), "%s", out.err);
	uncraft(&c2);
}

/* ---- against a real protd -------------------------------------------------------------------- */

static const char *ini_mode(const char *mode)
{
	return th_write_file("ctl.ini", "[segment]\nmode = %s\nmax_keys = 4\nmax_breakers = 2\nmax_pools = 2\n"
	                                "rate_entities = 64\nevents = 16\n\n"
	                                "[key api]\nrate_limit = 10\nrate_window = 1s\n"
	                                "breaker_tolerance = 2\nbreaker_window = 1s\nbreaker_refresh = 1s\n",
	                     mode);
}

Test(protctl, json_of_a_real_protd_parses)
{
	const char *seg = th_segname("real");
	pid_t pid = th_protd_start(ini_mode("0600"), seg, NULL);
	cr_assert_eq(PROTCTL(seg, "--json", "list"), 0, "%s", out.err);
	expect_json("list");
	cr_expect(strstr(out.out, "\"keys\": [\"api\"]"), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "--json", "status"), 0, "%s", out.err);
	expect_json("status");
	char want[64];
	snprintf(want, sizeof want, "\"pid\": %d, \"state\": \"running\"", (int)pid);
	cr_expect(strstr(out.out, want), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "status"), 0, "%s", out.err);
	snprintf(want, sizeof want, "pid %d, running", (int)pid);
	cr_expect(strstr(out.out, want), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "--json", "events"), 0, "%s", out.err);
	expect_json("events");
	th_protd_stop(pid);
	cr_expect_eq(PROTCTL(seg, "status"), 3, "after a clean stop the segment is gone");
}

static int fn_fail(void *arg)
{
	(void)arg;
	return -5;
}

/* A real breaker trip, as protd logs it and protctl prints it. */
Test(protctl, events_in_words_from_a_real_protd)
{
	const char *seg = th_segname("evreal");
	pid_t pid = th_protd_start(ini_mode("0600"), seg, NULL); /* tolerance 2: the 3rd failure trips */
	prot_t *p = th_open(seg, 2000);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(prot_breaker_execute(p, "api", fn_fail, NULL, NULL), -PROT_EFAILED);
	const char *want = "event breaker_open api: opened: 3 failures in the window, epoch 1";
	cr_expect(th_log_until(pid, want, 3000), "protd's log lacks '%s'", want);
	cr_assert_eq(PROTCTL(seg, "events"), 0, "%s", out.err);
	cr_expect(strstr(out.out, "breaker_open       api"), "%s", out.out);
	cr_expect(strstr(out.out, "opened: 3 failures in the window, epoch 1"), "%s", out.out);
	prot_close(p);
	th_protd_stop(pid);
}

Test(protctl, status_of_a_key_on_a_real_protd)
{
	const char *seg = th_segname("key");
	pid_t pid = th_protd_start(ini_mode("0600"), seg, NULL);
	cr_assert_eq(PROTCTL(seg, "status", "api"), 0, "%s", out.err);
	cr_expect(strstr(out.out, "key api"), "%s", out.out);
	cr_expect(strstr(out.out, "10 per 1s"), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "--json", "status", "api"), 0, "%s", out.err);
	expect_json("status KEY");
	cr_expect(strstr(out.out, "\"limit\":10"), "%s", out.out);
	cr_expect(strstr(out.out, "\"breaker\":{\"name\":\"api\""), "%s", out.out);
	cr_expect_eq(PROTCTL(seg, "status", "nope"), 1);
	th_protd_stop(pid);
}

Test(protctl, a_reader_inspects_protd_segment_read_only)
{
	if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0)
		cr_skip("needs root and setpriv to run protctl as another user");
	const char *seg = th_segname("rdreal");
	pid_t pid = th_protd_start(ini_mode("0644"), seg, NULL);
	int rc = protctl_as_nobody(seg, "status");
	if (rc == 126 || strstr(out.err, "exec"))
		cr_skip("protctl is not executable by nobody here: %s", out.err);
	cr_expect_eq(rc, 0, "%s", out.err);
	cr_expect(strstr(out.out, "running"), "%s", out.out);
	th_protd_stop(pid);
}

Test(protctl, status_tells_a_dead_protd_from_a_running_one)
{
	const char *seg = th_segname("dead");
	pid_t pid = th_protd_start(ini_mode("0600"), seg, NULL);
	th_kill9(pid);
	/* the segment outlives protd: clients keep working, status says who is (not) serving it */
	cr_assert_eq(PROTCTL(seg, "--json", "status"), 0, "%s", out.err);
	expect_json("status");
	cr_expect(strstr(out.out, "\"state\": \"dead\""), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "status"), 0, "%s", out.err);
	cr_expect(strstr(out.out, ", dead,"), "%s", out.out);
}

/* ---- hostile names in text, --json always JSON, empty tables, errors that name the value ------- */

/* No terminal control byte (C0, DEL, ESC sequences) in text. */
static void expect_no_controls(const char *what, const char *text)
{
	for (const unsigned char *u = (const unsigned char *)text; *u; u++)
		cr_expect(*u >= 0x20 || *u == '\n', "%s: control byte 0x%02x reached the terminal", what, *u);
}

Test(protctl, text_output_escapes_control_characters)
{
	const char *seg = th_segname("esc");
	struct crafted c = craft(seg);
	name_slot(c.h, REG_KEYS, 0, "red\x1b[31mkey");
	name_slot(c.h, REG_KEYS, 1, "bell\x07\x7f");
	name_slot(c.h, REG_BREAKERS, 0, "title\x1b]0;owned\x07");
	name_slot(c.h, REG_POOLS, 0, "c1\xc2\x9bpool");
	prot_event_emit(c.h, EV_BREAKER_OPEN, 0, "ev\x1b[2J", 1, 2);
	const char *const cmds[][3] = {{"list"}, {"events"}, {"stats"}, {"metrics"}, {"pool", "list"}};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		cr_assert_eq(th_protctl(&out, seg, cmds[i][0], cmds[i][1], NULL), 0, "%s: %s", cmds[i][0],
		             out.err);
		expect_no_controls(cmds[i][0], out.out);
	}
	cr_assert_eq(PROTCTL(seg, "list"), 0, "%s", out.err);
	cr_expect(strstr(out.out, "red\\x1b[31mkey"), "escaped form missing: %s", out.out);
	cr_expect(strstr(out.out, "c1\\xc2\\x9bpool"), "a C1 control passed: %s", out.out);
	cr_assert_eq(PROTCTL(seg, "events"), 0, "%s", out.err);
	cr_expect(strstr(out.out, "ev\\x1b[2J"), "%s", out.out);
	cr_expect_eq(PROTCTL(seg, "status", "no\x1b[1mkey"), 1);
	expect_no_controls("status error", out.err);
	uncraft(&c);
}

Test(protctl, json_is_always_json)
{
	const char *seg = th_segname("jsonall");
	pid_t pid = th_protd_start(ini_mode("0600"), seg, NULL);
	cr_assert_eq(PROTCTL(seg, "--json", "metrics"), 0, "%s", out.err);
	expect_json("metrics");
	cr_expect(strstr(out.out, "\"protd\":{\"process_alive\":true"), "%s", out.out);
	cr_expect(strstr(out.out, "\"keys\":[{\"key\":\"api\""), "%s", out.out);
	cr_expect(strstr(out.out, "\"breakers\":[{\"name\":\"api\",\"state\":\"closed\"}]"), "%s", out.out);
	cr_expect(strstr(out.out, "{\"le_ns\":\"+Inf\""), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "--json", "stats"), 0, "%s", out.err);
	expect_json("stats");
	/* errors, whatever their kind: a JSON object on stdout, the message on stderr */
	cr_expect_eq(PROTCTL(seg, "--json", "status", "nope"), 1);
	expect_json("status error");
	cr_expect(strstr(out.out, "{\"schema\": 1, \"error\": \"status: no protection key 'nope'"), "%s", out.out);
	cr_expect_eq(PROTCTL(seg, "--json", "frob"), 2);
	expect_json("unknown object");
	cr_expect_eq(PROTCTL(seg, "rate", "--json"), 2);
	expect_json("missing verb");
	cr_expect_eq(PROTCTL(seg, "--json", "set", "api", "rate_limit=abc"), 1);
	expect_json("set error");
	cr_expect(strstr(out.out, "\"exit\": 1}"), "%s", out.out);
	th_protd_stop(pid);
	cr_expect_eq(PROTCTL(seg, "--json", "metrics"), 3);
	expect_json("no segment");
}

Test(protctl, rate_top_of_an_empty_key)
{
	const char *seg = th_segname("topempty");
	pid_t pid = th_protd_start(ini_mode("0600"), seg, NULL);
	/* under UBSan (the ASan+UBSan build) qsort(NULL, 0, ...) aborts protctl */
	cr_assert_eq(PROTCTL(seg, "rate", "top", "api"), 0, "%s", out.err);
	cr_expect(strstr(out.out, "key api: 0 buckets"), "%s", out.out);
	cr_assert_eq(PROTCTL(seg, "--json", "rate", "top", "api", "5"), 0, "%s", out.err);
	expect_json("rate top");
	cr_expect(strstr(out.out, "\"most_used\":[]"), "%s", out.out);
	th_protd_stop(pid);
}

Test(protctl, errors_name_the_bad_value)
{
	const char *seg = th_segname("badval");
	pid_t pid = th_protd_start(ini_mode("0600"), seg, NULL);
	char longent[80], longname[60];
	memset(longent, 'e', sizeof longent - 1);
	longent[sizeof longent - 1] = '\0';
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	const struct {
		const char *a[4];
		const char *want;
	} cases[] = {
		{{"rate", "show", "api", longent}, "entity 'eeee"},
		{{"rate", "show", longname, NULL}, "key 'nnnn"},
		{{"breaker", "show", longname, NULL}, "breaker 'nnnn"},
		{{"pool", "show", longname, NULL}, "pool 'nnnn"},
		{{"status", longname, NULL, NULL}, "key 'nnnn"},
		{{"set", "a b", "x=1", NULL}, "key 'a b'"},
		{{"set", "api", "rate_limit=abc", NULL}, "\"abc\""},
		{{"rate", "top", "api", "0"}, "not '0'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *const *a = cases[i].a;
		int rc = th_protctl(&out, seg, a[0], a[1], a[2], a[3], NULL);
		cr_expect_neq(rc, 0, "%s %s accepted", a[0], a[1]);
		cr_expect(strstr(out.err, cases[i].want), "%s %s: expected \"%s\" in: %s", a[0], a[1],
		          cases[i].want, out.err);
		cr_expect(!strstr(out.err, "Invalid argument"), "%s %s: bare errno text: %s", a[0], a[1],
		          out.err);
	}
	th_protd_stop(pid);
}

/* ---- the schema: every document as man/prot-json.7.scd lists it ------------------------------ */
static struct schema json_schema; /* large: static */


/* Every protctl command (the first lowercase words of each `protctl --help` usage line) is run
 * by at least one of the n invocations. */
static void expect_every_command(const char *const (*runs)[8], size_t n)
{
	const char *const help[] = {th_protctl_path(), "--help", NULL};
	static struct th_out h;
	cr_assert_eq(th_run(&h, 5000, help), 0);
	const char *at = strstr(h.out, "Commands:\n");
	cr_assert(at, "%s", h.out);
	for (const char *line = strchr(at, '\n') + 1; strncmp(line, "  ", 2) == 0; line = strchr(line, '\n') + 1) {
		char words[64] = "";
		size_t len = 0;
		for (const char *w = line + 2; *w >= 'a' && *w <= 'z';) {
			size_t k = strspn(w, "abcdefghijklmnopqrstuvwxyz");
			len += (size_t)snprintf(words + len, sizeof words - len, "%s%.*s", len ? " " : "", (int)k, w);
			w += k;
			if (*w != ' ')
				break;
			w++;
		}
		bool run = false;
		for (size_t i = 0; i < n && !run; i++) {
			char cmd[64];
			snprintf(cmd, sizeof cmd, "%s%s%s", runs[i][1], runs[i][2] && runs[i][2][0] != '-' ? " " : "",
			         runs[i][2] && runs[i][2][0] != '-' ? runs[i][2] : "");
			run = strncmp(cmd, words, strlen(words)) == 0;
		}
		cr_expect(run, "`protctl %s` has no --json run in this test", words);
	}
}

static const char *schema_ini(void)
{
	return th_write_file("schema.ini", "[segment]\nmode = 0600\nmax_keys = 4\nmax_breakers = 4\n"
	                     "max_pools = 4\nrate_entities = 64\nevents = 64\n\n"
	                     "[key api]\nrate_limit = 2\nrate_window = 10s\nbreaker_tolerance = 2\n"
	                     "breaker_window = 1s\nbreaker_refresh = 1s\npool = db\n\n"
	                     "[breaker b]\ntolerance = 1\nwindow = 1s\nrefresh = 1s\n\n"
	                     "[pool db]\nsize = 1\nmax_overflow = 1\n\n"
	                     /* global limits with a Redis that refuses (degraded): the "global" members */
	                     "[redis]\naddress = tcp://127.0.0.1:1\n\n"
	                     "[key glob]\nrate_limit = 10\nrate_window = 1s\nrate_scope = global\n");
}

/* One of every event type, with payloads, for the "fields" members. */
static void emit_every_event(struct prot_shm_header *h)
{
	for (uint32_t t = 1; t < 64; t++)
		if (strcmp(prot_event_name(t), "unknown") != 0)
			prot_event_emit(h, t, 0, "api", 3, 1);
}

Test(protctl, every_json_document_is_what_prot_json_7_lists, .timeout = 120)
{
	schema_load(&json_schema, "prot-json.7.scd");
	cr_assert_eq(json_schema.version, PROT_JSON_SCHEMA, "prot-json(7) and protctl disagree on the version");
	const char *seg = th_segname("schema");
	pid_t pid = th_protd_start(schema_ini(), seg, NULL);
	prot_t *p = th_open(seg, 2000);
	for (int i = 0; i < 3; i++) /* the limit is 2: e1 is admitted twice, then denied */
		prot_rate_check_key(p, "api", "e1", 1, NULL);
	prot_rate_check_key(p, "api", "e2", 1, NULL); /* for reset --op */
	struct prot_breaker_opts bo = {.tolerance = 1, .window_ms = 1000, .refresh_ms = 1000};
	cr_assert_eq(prot_breaker_create(p, "rt", &bo), 0);
	prot_lease lease;
	void *conn;
	cr_assert_eq(prot_pool_checkout(p, "db", 0, &lease, &conn), 0); /* a holder for --holders */
	emit_every_event(prot_hdr(p));
	/* {document, arguments...}: the runs, in an order where each finds what it needs */
	static const char *const runs[][8] = {
		{"list", "list"},
		{"status", "status"},
		{"status KEY", "status", "api"},
		{"status KEY", "status", "glob"},
		{"stats", "stats"},
		{"stats KEY", "stats", "api"},
		{"metrics", "metrics"},
		{"events", "events"},
		{"rate show KEY", "rate", "show", "api"},
		{"rate show KEY ENTITY", "rate", "show", "api", "e1"},
		{"rate top KEY", "rate", "top", "api"},
		{"rate ops", "rate", "ops"},
		{"rate show --op NAME", "rate", "show", "--op", "api"},
		{"rate show --op NAME ENTITY", "rate", "show", "--op", "api", "e1"},
		{"rate top --op NAME", "rate", "top", "--op", "api"},
		{"rate reset KEY ENTITY", "rate", "reset", "api", "e1"},
		{"rate reset --op NAME ENTITY", "rate", "reset", "--op", "api", "e2"},
		{"breaker show", "breaker", "show"},
		{"breaker show NAME", "breaker", "show", "api"},
		{"breaker reset, blow, enable NAME", "breaker", "blow", "b"},
		{"breaker reset, blow, enable NAME", "breaker", "enable", "b"},
		{"breaker reset, blow, enable NAME", "breaker", "reset", "b"},
		{"breaker remove NAME", "breaker", "remove", "rt"},
		{"pool list", "pool", "list"},
		{"pool show", "pool", "show"},
		{"pool show NAME", "pool", "show", "db"},
		{"pool show --holders NAME", "pool", "show", "--holders", "db"},
		{"pool create NAME", "pool", "create", "tmp", "size=1"},
		{"pool remove NAME", "pool", "remove", "tmp"},
		{"set KEY", "set", "api", "rate_limit=3", "breaker_tolerance=2"},
		{"set KEY", "set", "fresh", "rate_limit=5", "rate_window=1s", "pool_size=1"},
		{"errors", "status", "nope"},
		{"errors", "top"},
	};
	const size_t nruns = sizeof runs / sizeof runs[0];
	for (size_t i = 0; i < nruns; i++) {
		const char *argv[12] = {th_protctl_path(), "--segment", seg, "--json"};
		size_t k = 4;
		for (size_t j = 1; j < 8 && runs[i][j]; j++)
			argv[k++] = runs[i][j];
		int rc = th_run(&out, 10000, argv);
		bool error = strcmp(runs[i][0], "errors") == 0;
		cr_expect(error ? rc != 0 : rc == 0, "protctl --json %s %s: exit %d: %s", runs[i][1],
		          runs[i][2] ? runs[i][2] : "", rc, out.err);
		json_check_document(&json_schema, runs[i][0], out.out);
	}
	static char lines[65536];
	const char *log = th_write_file("follow-schema.out", "%s", "");
	pid_t follower = follow_start(seg, log);
	usleep(300 * 1000); /* it prints what the ring holds, then follows */
	follow_stop(follower, log, lines, sizeof lines);
	int docs = 0;
	for (char *save = NULL, *l = strtok_r(lines, "\n", &save); l; l = strtok_r(NULL, "\n", &save), docs++)
		json_check_document(&json_schema, "events --follow", l);
	cr_expect_gt(docs, 0, "events --follow printed nothing");
	expect_every_command(runs, nruns);
	/* and the other way round: every document and every member was met */
	for (int i = 0; i < json_schema.n; i++) {
		struct schema_section *s = &json_schema.s[i];
		bool doc = strcmp(s->group, "DOCUMENTS") == 0;
		if (!doc && strcmp(s->group, "OBJECTS") != 0)
			continue;
		cr_expect(doc || s->seen, "prot-json(7) lists object %s, which no document holds", s->name);
		for (int k = 0; k < s->n; k++)
			cr_expect(s->m[k].seen || (doc && !s->seen), "prot-json(7): %s.%s was never printed",
			          s->name, s->m[k].name);
		cr_expect(!doc || s->seen, "prot-json(7) lists the document \"%s\", which no run printed",
		          s->name);
	}
	cr_assert_eq(prot_pool_checkin(p, &lease, PROT_CHECKIN_OK), 0);
	prot_close(p);
	th_protd_stop(pid);
}

/* The words the schema lists for a set of names are the code's: one table, one spelling. */
Test(protctl, the_names_in_prot_json_7_are_the_codes)
{
	schema_load(&json_schema, "prot-json.7.scd");
	bool met[NAMES_COUNT_] = {false};
	int sets = 0;
	for (int i = 0; i < json_schema.n; i++) {
		for (int k = 0; k < json_schema.s[i].n; k++) {
			struct schema_type t;
			schema_type(json_schema.s[i].m[k].type, &t);
			if (!t.set[0])
				continue;
			sets++;
			const char *where = json_schema.s[i].m[k].name;
			if (strcmp(t.set, "event_type") == 0) {
				int n = 0;
				for (uint32_t e = 1; e < 64; e++) {
					const char *name = prot_event_name(e);
					if (strcmp(name, "unknown") == 0)
						continue;
					cr_expect(schema_word(&t, name), "%s: event type %s is not listed", where, name);
					n++;
				}
				cr_expect_eq(t.nwords, n, "%s: %d event types listed, %d exist", where, t.nwords, n);
				continue;
			}
			enum prot_names set = NAMES_COUNT_;
			for (int s = 0; s < NAMES_COUNT_; s++)
				if (strcmp(prot_names_title((enum prot_names)s), t.set) == 0)
					set = (enum prot_names)s;
			if (set == NAMES_COUNT_)
				continue; /* a set of the schema's own (kind) */
			met[set] = true;
			const char *const *names = prot_names_list(set);
			int n = 0;
			for (; names[n]; n++)
				cr_expect(n < t.nwords && strcmp(t.words[n], names[n]) == 0,
				          "%s (%s): word %d is \"%s\" in lib/names.c", where, t.set, n, names[n]);
			cr_expect_eq(t.nwords, n, "%s (%s): %d words listed, lib/names.c has %d", where, t.set,
			             t.nwords, n);
		}
	}
	cr_expect_gt(sets, 5);
	for (int s = 0; s < NAMES_COUNT_; s++)
		cr_expect(met[s], "lib/names.c's %s is in no document of prot-json(7)",
		          prot_names_title((enum prot_names)s));
}
