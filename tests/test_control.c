/* test_control.c — protd's control socket under hostile and broken callers, against a real protd:
 * slow clients (a byte every 1.5 s) do not delay other clients, credentials are checked before
 * anything is read, a request whose client gave up is never applied and the client library
 * reports that case as "unknown", never as failure; a read-only group may ask but not change; the
 * socket's directory and path are refused when someone else could control them. And the protocol
 * as man/prot-control.7.scd states it: the requests it lists are protd's, every reply is records
 * of the types and fields it lists, replies are read whole, creating and removing breakers and
 * pools is one shape, and only protd compares a breaker's options.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "schema.h"
#include "wire.h"

#define HEAD "[segment]\nmode = %s\n%smax_keys = 8\nmax_breakers = 4\nmax_pools = 2\n" \
             "rate_entities = 64\nevents = 64\n"
#define KEY "[key k]\nrate_limit = 10\nrate_window = 1s\n"

static const char *seg;
static char sock[100];

static pid_t serve(const char *tag, const char *mode, const char *extra)
{
	seg = th_segname(tag);
	const char *ini = th_write_file("protd.ini", HEAD "%s", mode, extra, KEY);
	snprintf(sock, sizeof sock, "/run/prot/%s.sock", seg + 1);
	return th_protd_start(ini, seg, NULL);
}

/* protd with the usual head and key k, and SECTIONS after them. */
static pid_t serve_with(const char *tag, const char *sections)
{
	seg = th_segname(tag);
	const char *ini = th_write_file("protd.ini", HEAD "%s%s", "0600", "", KEY, sections);
	snprintf(sock, sizeof sock, "/run/prot/%s.sock", seg + 1);
	return th_protd_start(ini, seg, NULL);
}

static int raw_connect(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Read what arrives within ms (until EOF); returns the bytes read, -1 on a timeout with nothing. */
static ssize_t read_for(int fd, char *buf, size_t n, int ms)
{
	size_t len = 0;
	uint64_t end = th_now_ms() + (uint64_t)ms;
	while (len < n - 1 && th_now_ms() < end) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, (int)(end - th_now_ms()) + 1) <= 0)
			continue;
		ssize_t r = read(fd, buf + len, n - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	return len ? (ssize_t)len : -1;
}

/* The key's rate_limit as protd reports it (get: the `value` record of setting rate_limit). */
static long rate_limit_of(prot_t *p)
{
	char reply[4096], *pos = reply;
	struct wire_record r;
	cr_assert_eq(prot_control(p, "get k", reply, sizeof reply), 0, "%s", reply);
	while (wire_next(&pos, &r))
		if (strcmp(r.type, "value") == 0 && strcmp(wire_get(&r, "setting"), "rate_limit") == 0)
			return strtol(wire_get(&r, "value"), NULL, 10);
	cr_assert_fail("get k: no rate_limit record");
	return -1;
}

/* ---- requests come from one table: unknown verbs and wrong arity get specific answers ---------- */
Test(control, requests_are_checked_against_the_table)
{
	pid_t pid = serve("ct-table", "0600", "");
	prot_t *p = th_open(seg, 2000);
	char reply[4096];
	cr_assert_eq(prot_control(p, "frob k", reply, sizeof reply), -PROT_EINVAL_CONFIG);
	cr_assert(strstr(reply, "unknown request (expected ping, get KEY, set KEY name=value ..., "
	                        "breaker-create NAME name=value ..., breaker-remove NAME, "
	                        "pool-create NAME name=value ..., pool-remove NAME)"), "%s", reply);
	static const char *const bad[][2] = {
		{"get", "usage: get KEY"},           {"get k extra", "usage: get KEY"},
		{"ping now", "usage: ping"},         {"set", "usage: set KEY name=value ..."},
		{"pool-remove", "usage: pool-remove NAME"},
		{"breaker-remove b extra", "usage: breaker-remove NAME"},
	};
	uint64_t g0 = prot_hdr(p)->config_gen;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(prot_control(p, bad[i][0], reply, sizeof reply), -PROT_EINVAL_CONFIG, "%s",
		             bad[i][0]);
		cr_assert_str_eq(reply, bad[i][1], "%s", bad[i][0]);
	}
	cr_assert_eq(prot_hdr(p)->config_gen, g0, "a refused request changed the configuration");
	cr_assert_eq(prot_control(p, "ping", reply, sizeof reply), 0, "%s", reply);
	char want[64];
	snprintf(want, sizeof want, "protd protocol=%d generation=", PROT_WIRE_PROTOCOL);
	cr_assert(strncmp(reply, want, strlen(want)) == 0, "%s", reply);
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- slow clients ------------------------------------------------------------------------------ */
/* A client that sends "set k rate_limit=3" one byte every 1.5 s, for up to 6 s. */
static int slowloris(void *arg, int i)
{
	(void)arg, (void)i;
	int fd = raw_connect();
	if (fd < 0)
		return 10;
	const char *req = "set k rate_limit=3\n";
	for (size_t k = 0; req[k] && k < 4; k++) {
		if (send(fd, req + k, 1, MSG_NOSIGNAL) != 1)
			break; /* protd dropped us: expected after its 1 s deadline */
		usleep(1500 * 1000);
	}
	close(fd);
	return 0;
}

Test(control, slow_clients_do_not_delay_others)
{
	pid_t pid = serve("ct-slow", "0600", "");
	prot_t *p = th_open(seg, 2000);
	pid_t slow[4];
	for (int i = 0; i < 4; i++)
		slow[i] = th_fork(slowloris, NULL, i);
	usleep(100 * 1000); /* the slow clients are connected and mid-request */
	uint64_t worst = 0, t_end = th_now_ms() + 3500;
	int n = 0;
	char reply[4096], req[64];
	while (th_now_ms() < t_end) {
		snprintf(req, sizeof req, "set k rate_limit=%d", 20 + n % 50);
		uint64_t t0 = th_now_ms();
		int r = prot_control(p, req, reply, sizeof reply);
		uint64_t dt = th_now_ms() - t0;
		cr_assert_eq(r, 0, "request %d failed after %llu ms: %s", n, (unsigned long long)dt, reply);
		worst = dt > worst ? dt : worst;
		n++;
		usleep(50 * 1000);
	}
	cr_log_info("%d sets beside 4 slow clients (a byte every 1.5 s): worst %llu ms", n,
	            (unsigned long long)worst);
	cr_expect_lt(worst, 500, "a set took %llu ms beside slow clients", (unsigned long long)worst);
	cr_expect_neq(rate_limit_of(p), 3, "a slow client's partial request was applied");
	for (int i = 0; i < 4; i++) {
		int st;
		cr_assert_eq(th_wait(slow[i], 10000, &st), 0);
	}
	prot_close(p);
	th_protd_stop(pid);
}

Test(control, a_stalled_request_is_dropped_at_its_deadline)
{
	pid_t pid = serve("ct-dead", "0600", "");
	int fd = raw_connect();
	cr_assert_geq(fd, 0);
	cr_assert_eq(send(fd, "set k", 5, MSG_NOSIGNAL), 5);
	char buf[512];
	uint64_t t0 = th_now_ms();
	ssize_t r = read_for(fd, buf, sizeof buf, 3000);
	uint64_t dt = th_now_ms() - t0;
	cr_expect_geq(r, 0, "no answer to a stalled request");
	cr_expect(strstr(buf, "error timeout"), "%s", buf);
	cr_expect(dt >= 800 && dt < 2000, "dropped after %llu ms", (unsigned long long)dt);
	close(fd);
	th_protd_stop(pid);
}

/* ---- credentials first -------------------------------------------------------------------------- */
static int drop_to_nobody(void)
{
	return setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0 ? 0 : -1;
}

/* A stranger that sends nothing is told at once why it is refused. */
static int stranger_silent(void *arg, int i)
{
	(void)arg, (void)i;
	if (drop_to_nobody() < 0)
		return 10;
	int fd = raw_connect();
	if (fd < 0)
		return 11;
	char buf[512];
	ssize_t r = read_for(fd, buf, sizeof buf, 500);
	close(fd);
	if (r < 0)
		return 12; /* protd waited for a request before checking */
	return strstr(buf, "error permission denied: uid 65534") ? 0 : 13;
}

Test(control, credentials_are_checked_before_reading)
{
	cr_assert_eq(geteuid(), 0, "this test needs root");
	/* a socket directory everyone can search, so that a stranger reaches the socket itself */
	char dir[] = "/tmp/prot-ctl-XXXXXX";
	cr_assert(mkdtemp(dir));
	cr_assert_eq(chmod(dir, 0755), 0);
	seg = th_segname("ct-cred");
	const char *ini = th_write_file("protd.ini", HEAD "%s[daemon]\ncontrol_socket = %s/c.sock\n",
	                                "0600", "", KEY, dir);
	snprintf(sock, sizeof sock, "%s/c.sock", dir);
	pid_t pid = th_protd_start(ini, seg, NULL);
	pid_t child = th_fork(stranger_silent, NULL, 0);
	int st;
	cr_assert_eq(th_wait(child, 5000, &st), 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
	th_protd_stop(pid);
	cr_expect_eq(rmdir(dir), 0, "%s: %s", dir, strerror(errno));
}

/* ---- who may change ------------------------------------------------------------------------------ */
struct group_case {
	int expect_set; /* what set returns for a group member */
};

static int member_of_group(void *arg, int i)
{
	(void)i;
	const struct group_case *gc = arg;
	prot_t *p;
	char reply[512];
	if (prot_open(seg, PROT_OPEN_RDONLY, &p) != 0) /* as root, before dropping privileges */
		return 10;
	if (drop_to_nobody() < 0)
		return 11;
	if (prot_control(p, "ping", reply, sizeof reply) != 0)
		return 12; /* a reader may ask what changes nothing */
	int r = prot_control(p, "set k rate_limit=55", reply, sizeof reply);
	if (r != gc->expect_set)
		return 13;
	if (r == -EACCES && !strstr(reply, "needs write permission"))
		return 14;
	return 0;
}

static void group_case(const char *tag, const char *mode, int expect_set, long expect_limit)
{
	cr_assert_eq(geteuid(), 0, "this test needs root");
	pid_t pid = serve(tag, mode, "group = 65534\n");
	struct group_case gc = { expect_set };
	pid_t child = th_fork(member_of_group, &gc, 0);
	int st;
	cr_assert_eq(th_wait(child, 10000, &st), 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mode %s: child status %d", mode,
	          WEXITSTATUS(st));
	prot_t *p = th_open(seg, 2000);
	cr_expect_eq(rate_limit_of(p), expect_limit, "mode %s", mode);
	prot_close(p);
	th_protd_stop(pid);
}

Test(control, a_read_only_group_cannot_change)
{
	group_case("ct-g640", "0640", -EACCES, 10);
}

Test(control, a_writing_group_can_change)
{
	group_case("ct-g660", "0660", 0, 55);
}

/* ---- a client that gave up ------------------------------------------------------------------------ */
Test(control, a_request_whose_client_gave_up_is_not_applied)
{
	pid_t pid = serve("ct-gone", "0600", "");
	prot_t *p = th_open(seg, 2000);
	cr_assert_eq(kill(pid, SIGSTOP), 0);
	cr_assert(th_wait_stopped(pid, 5000), "protd %d did not stop", (int)pid); /* kill() does not wait */
	/* a complete request, then the client leaves before protd reads it */
	int fd = raw_connect();
	cr_assert_geq(fd, 0);
	cr_assert_eq(send(fd, "set k rate_limit=66\n", 20, MSG_NOSIGNAL), 20);
	close(fd);
	/* the library's own client: protd does not answer, so the outcome is unknown (not failure) */
	char reply[512];
	uint64_t t0 = th_now_ms();
	int r = prot_control(p, "set k rate_limit=77", reply, sizeof reply);
	uint64_t dt = th_now_ms() - t0;
	cr_assert_eq(kill(pid, SIGCONT), 0);
	cr_expect_eq(r, -ETIMEDOUT, "a stalled protd gave %d (%s)", r, reply);
	cr_expect(strstr(reply, "may or may not have been applied"), "%s", reply);
	cr_expect_lt(dt, 7000, "waited %llu ms", (unsigned long long)dt);
	/* protd resumes: both clients are gone, neither request is applied */
	usleep(300 * 1000);
	cr_expect_eq(rate_limit_of(p), 10, "a request whose client gave up was applied");
	cr_expect_eq(prot_control(p, "set k rate_limit=12", reply, sizeof reply), 0, "%s", reply);
	cr_expect_eq(rate_limit_of(p), 12);
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- the directory and the path ------------------------------------------------------------------ */
/* protd on control_socket = PATH must refuse to start, saying WHAT; nothing is left behind. */
static void expect_refused(const char *tag, const char *path, const char *what)
{
	seg = th_segname(tag);
	char daemon[512];
	snprintf(daemon, sizeof daemon, "[daemon]\ncontrol_socket = %s\n", path);
	const char *ini = th_write_file("protd.ini", HEAD "%s%s", "0600", "", KEY, daemon);
	pid_t pid = th_protd_spawn(ini, seg, NULL);
	int st;
	cr_assert_eq(th_wait(pid, 5000, &st), 0, "protd did not stop");
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0, "protd accepted %s", path);
	char log[4096] = "";
	FILE *f = fopen(th_protd_log(pid), "r");
	if (f) {
		log[fread(log, 1, sizeof log - 1, f)] = '\0';
		fclose(f);
	}
	cr_expect(strstr(log, what), "expected \"%s\" in:\n%s", what, log);
	char shm[128];
	snprintf(shm, sizeof shm, "/dev/shm%s", seg);
	cr_expect_neq(access(shm, F_OK), 0, "segment left behind");
}

static const char *tmpdir_path(const char *name)
{
	static char d[256];
	const char *f = th_write_file("x", "x");
	snprintf(d, sizeof d, "%.*s/%s", (int)(strrchr(f, '/') - f), f, name);
	return d;
}

Test(control, a_directory_owned_by_someone_else_is_refused)
{
	const char *d = tmpdir_path("other");
	cr_assert_eq(mkdir(d, 0700), 0);
	cr_assert_eq(chown(d, 65534, 65534), 0);
	char path[300];
	snprintf(path, sizeof path, "%s/c.sock", d);
	expect_refused("ct-dirown", path, "is owned by uid 65534");
}

Test(control, a_writable_directory_is_refused)
{
	const char *d = tmpdir_path("open");
	cr_assert_eq(mkdir(d, 0700), 0);
	cr_assert_eq(chmod(d, 0777), 0);
	char path[300];
	snprintf(path, sizeof path, "%s/c.sock", d);
	expect_refused("ct-dirw", path, "writable by its group");
}

Test(control, a_file_at_the_socket_path_is_refused_and_kept)
{
	const char *f = th_write_file("not-a-socket", "precious\n");
	expect_refused("ct-file", f, "is not a socket");
	char buf[64] = "";
	FILE *in = fopen(f, "r");
	cr_assert(in, "the file at the socket path was removed");
	cr_expect(fgets(buf, sizeof buf, in) && strcmp(buf, "precious\n") == 0, "file changed: %s", buf);
	fclose(in);
}

Test(control, a_new_directory_is_private)
{
	const char *d = tmpdir_path("fresh");
	seg = th_segname("ct-dirnew");
	char daemon[512];
	snprintf(daemon, sizeof daemon, "[daemon]\ncontrol_socket = %s/c.sock\n", d);
	const char *ini = th_write_file("protd.ini", HEAD "%s%s", "0600", "", KEY, daemon);
	pid_t pid = th_protd_start(ini, seg, NULL);
	struct stat st;
	cr_assert_eq(stat(d, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0700, "mode %04o", (unsigned)(st.st_mode & 07777));
	cr_expect_eq(st.st_uid, geteuid());
	prot_t *p = th_open(seg, 2000);
	char reply[256];
	cr_expect_eq(prot_control(p, "ping", reply, sizeof reply), 0, "%s", reply);
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- the protocol as prot-control(7) states it ------------------------------------------------- */
static struct schema proto; /* large: static */

/* Every record of an `ok` reply is of a type the page lists, with only the fields it lists, each
 * a word of its set when it has one; the records met are marked. Returns how many there were. */
static int check_records(const char *req, char *body)
{
	struct wire_record r;
	int n = 0;
	for (char *pos = body; wire_next(&pos, &r); n++) {
		struct schema_section *s = schema_find(&proto, "RECORDS", r.type);
		cr_expect(s, "%s: a record of type %s, which prot-control(7) does not list", req, r.type);
		if (!s)
			continue;
		s->seen++;
		for (size_t i = 0; i < r.n; i++) {
			struct schema_member *m = schema_member(s, r.f[i].name);
			cr_expect(m, "%s: %s record: a field %s prot-control(7) does not list", req, r.type,
			          r.f[i].name);
			if (!m)
				continue;
			m->seen++;
			struct schema_type t;
			schema_type(m->type, &t);
			cr_expect(!t.set[0] || schema_word(&t, r.f[i].value), "%s: %s.%s = \"%s\" is not one of (%s)",
			          req, r.type, m->name, r.f[i].value, m->type);
		}
		for (int k = 0; k < s->n; k++) { /* a field not marked optional is always there */
			struct schema_type t;
			schema_type(s->m[k].type, &t);
			cr_expect(t.optional || wire_get(&r, s->m[k].name), "%s: %s record without %s", req,
			          r.type, s->m[k].name);
		}
	}
	return n;
}

Test(control, every_reply_is_what_prot_control_7_lists)
{
	schema_load(&proto, "prot-control.7.scd");
	cr_assert_eq(proto.version, PROT_WIRE_PROTOCOL, "prot-control(7) and protd disagree on the version");
	pid_t pid = serve_with("ct-proto", "[key u]\nbreaker_tolerance = 1\nbreaker_window = 1s\n"
	                  "breaker_refresh = 1s\npool_size = 1\n");
	prot_t *p = th_open(seg, 2000);
	static char reply[PROT_REPLY_MAX + 1];
	/* the requests the page lists are exactly those protd names when it knows none */
	cr_assert_eq(prot_control(p, "frob", reply, sizeof reply), -PROT_EINVAL_CONFIG);
	char *list = strstr(reply, "(expected ");
	cr_assert(list, "%s", reply);
	list += 10;
	list[strcspn(list, ")")] = '\0';
	int listed = 0;
	for (int i = 0; i < proto.n; i++) {
		if (strcmp(proto.s[i].group, "REQUESTS") != 0)
			continue;
		listed++;
		char *at = strstr(list, proto.s[i].name);
		size_t k = strlen(proto.s[i].name);
		cr_expect(at && (at == list || at[-1] == ' ') && (at[k] == ',' || at[k] == '\0'),
		          "prot-control(7) lists \"%s\", protd serves: %s", proto.s[i].name, list);
	}
	int served = 1;
	for (const char *c = list; (c = strstr(c, ", ")); c += 2)
		served++;
	cr_expect_eq(listed, served, "prot-control(7) lists %d requests, protd serves %d: %s", listed, served, list);
	/* every request, and every kind of reply it has */
	static const char *const reqs[] = {
		"ping", "get k", "get u",
		"set k rate_limit=12 breaker_tolerance=3 breaker_window=1s breaker_refresh=1s",
		"set k rate_limit=12", "set fresh rate_limit=5 rate_window=1s",
		"breaker-create bc tolerance=1 window=1s refresh=1s",
		"breaker-create bc tolerance=1 window=1s refresh=1s", "breaker-remove bc",
		"pool-create pc size=1", "pool-create pc size=1", "pool-remove pc",
	};
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		int r = prot_control(p, reqs[i], reply, sizeof reply);
		cr_assert_eq(r, 0, "%s: %s", reqs[i], reply);
		cr_expect_gt(check_records(reqs[i], reply), 0, "%s: no record", reqs[i]);
	}
	for (int i = 0; i < proto.n; i++) {
		struct schema_section *s = &proto.s[i];
		if (strcmp(s->group, "RECORDS") != 0)
			continue;
		cr_expect(s->seen, "prot-control(7) lists the record %s, which no reply held", s->name);
		for (int k = 0; k < s->n; k++)
			cr_expect(s->m[k].seen, "prot-control(7): %s.%s was never sent", s->name, s->m[k].name);
	}
	prot_close(p);
	th_protd_stop(pid);
}

/* A reply longer than prot_detail.message is read whole: prot_configure_reply has all of it and
 * says how long it is; a short buffer gets a cut copy and the whole length; the outcome is the
 * same whatever the buffer. */
Test(control, a_long_reply_is_read_whole)
{
	pid_t pid = serve("ct-long", "0600", "");
	prot_t *p = th_open(seg, 2000);
	char settings[1024] = "";
	size_t len = 0;
	for (int i = 0; i < 40; i++)
		len += (size_t)snprintf(settings + len, sizeof settings - len, "%srate_limit=%d", i ? " " : "",
		                        20 + i);
	static char reply[PROT_REPLY_MAX + 1];
	size_t whole = 0;
	cr_assert_eq(prot_configure_reply(p, "k", settings, reply, sizeof reply, &whole), 0, "%s", reply);
	cr_expect_eq(whole, strlen(reply));
	cr_expect_gt(whole, 255, "a reply of %zu bytes does not show the point", whole);
	int changes = 0;
	for (const char *c = reply; (c = strstr(c, "change kind=key name=k option=rate_limit ")); c++)
		changes++;
	cr_expect_eq(changes, 40, "%d change records", changes);
	static const char end[] = "setting=rate_limit old=10 new=59 changed=true";
	cr_expect(whole > sizeof end && strcmp(reply + whole - (sizeof end - 1), end) == 0,
	          "the last change is cut: %s", reply + (whole > 200 ? whole - 200 : 0));
	/* the old form keeps the first 255 bytes */
	struct prot_detail d;
	cr_assert_eq(prot_configure(p, "k", settings, &d), 0, "%s", d.message);
	cr_expect_eq(strlen(d.message), 255);
	/* a short buffer: cut, NUL-terminated, the whole length said; none: the outcome alone */
	char small[64];
	size_t n = 0;
	cr_assert_eq(prot_configure_reply(p, "k", "rate_limit=7 rate_limit=8", small, sizeof small, &n), 0);
	cr_expect_eq(strlen(small), sizeof small - 1);
	cr_expect_gt(n, sizeof small - 1);
	cr_assert_eq(prot_configure_reply(p, "k", "rate_limit=9", NULL, 0, &n), 0);
	cr_expect_gt(n, 0);
	cr_expect_eq(rate_limit_of(p), 9);
	cr_expect_eq(prot_configure_reply(p, "k", "rate_limit=9", NULL, 8, &n), -EINVAL);
	cr_expect_eq(prot_configure_reply(p, "k", "rate_limit=x", small, sizeof small, &n), -PROT_EINVAL_CONFIG);
	cr_expect(strstr(small, "rate_limit"), "a refusal's reply is protd's message: %s", small);
	cr_expect_eq(n, strlen(small));
	prot_close(p);
	th_protd_stop(pid);
}

/* The event types emitted since cursor, into types (n), as a count. */
static int events_since(prot_t *p, uint64_t *cursor, uint32_t *types, int n)
{
	struct prot_event e;
	uint64_t dropped = 0;
	int k = 0;
	while (k < n && prot_event_read(prot_hdr(p), cursor, &e, &dropped) == 1)
		types[k++] = e.type;
	return k;
}

static bool has_type(const uint32_t *types, int n, uint32_t type)
{
	for (int i = 0; i < n; i++)
		if (types[i] == type)
			return true;
	return false;
}

/* Breakers and pools are created and removed the same way: the same records, the same refusals,
 * and an event for each (breaker_created, pool_created, breaker_removed, pool_removed). */
Test(control, creating_and_removing_is_one_shape)
{
	pid_t pid = serve_with("ct-shape", "[key u]\nbreaker = ub\npool = up\n[breaker ub]\ntolerance = 1\n"
	                  "window = 1s\nrefresh = 1s\n[pool up]\nsize = 1\n");
	prot_t *p = th_open(seg, 2000);
	static const struct {
		const char *kind, *create, *used;
		uint32_t created, removed;
	} kinds[] = {
		{"breaker", "tolerance=1 window=1s refresh=1s", "ub", EV_BREAKER_CREATED, EV_BREAKER_REMOVED},
		{"pool", "size=1", "up", EV_POOL_CREATED, EV_POOL_REMOVED},
	};
	for (size_t i = 0; i < 2; i++) {
		const char *k = kinds[i].kind;
		char req[256], want[256], reply[1024];
		uint64_t cursor = prot_event_oldest(prot_hdr(p));
		uint32_t types[64];
		snprintf(req, sizeof req, "%s-create x%s %s", k, k, kinds[i].create);
		cr_assert_eq(prot_control(p, req, reply, sizeof reply), 0, "%s: %s", req, reply);
		snprintf(want, sizeof want, "created kind=%s name=x%s", k, k);
		cr_expect_str_eq(reply, want);
		cr_assert_eq(prot_control(p, req, reply, sizeof reply), 0, "%s: %s", req, reply);
		snprintf(want, sizeof want, "kept kind=%s name=x%s", k, k);
		cr_expect_str_eq(reply, want);
		snprintf(req, sizeof req, "%s-remove x%s", k, k);
		cr_assert_eq(prot_control(p, req, reply, sizeof reply), 0, "%s: %s", req, reply);
		snprintf(want, sizeof want, "removed kind=%s name=x%s", k, k);
		cr_expect_str_eq(reply, want);
		int n = events_since(p, &cursor, types, 64);
		cr_expect(has_type(types, n, kinds[i].created), "%s-create emitted no %s_created", k, k);
		cr_expect(has_type(types, n, kinds[i].removed), "%s-remove emitted no %s_removed", k, k);
		/* again: gone; and one in use is refused naming its key */
		cr_expect_eq(prot_control(p, req, reply, sizeof reply), i ? -PROT_ENOPOOL : -PROT_ENOBREAKER);
		snprintf(want, sizeof want, "no such %s: x%s", k, k);
		cr_expect_str_eq(reply, want);
		snprintf(req, sizeof req, "%s-remove %s", k, kinds[i].used);
		cr_expect_eq(prot_control(p, req, reply, sizeof reply), -PROT_EINVAL_CONFIG);
		snprintf(want, sizeof want, "%s %s is used by key u: change or remove the key first", k, kinds[i].used);
		cr_expect_str_eq(reply, want);
	}
	prot_close(p);
	th_protd_stop(pid);
}

/* A breaker's options travel once (as INI words) and only protd compares them, as decisions read
 * them: defaults filled in, the options the strategy does not use aside. */
Test(control, protd_alone_compares_a_breakers_options)
{
	/* an INI breaker with options its strategy does not use, and a probe count left at its default */
	pid_t pid = serve_with("ct-same", "[breaker r]\nstrategy = rate\nrate_threshold = 50\n"
	                  "rate_window_calls = 10\nrefresh = 1s\ntolerance = 5\nwindow = 3s\n");
	prot_t *p = th_open(seg, 2000);
	struct prot_breaker_opts o = {.strategy = PROT_BREAKER_RATE, .rate_threshold_pct = 50,
	                              .rate_window_calls = 10, .refresh_ms = 1000};
	cr_expect_eq(prot_breaker_create(p, "r", &o), 0, "the same options as decisions read them");
	char reply[256];
	cr_assert_eq(prot_control(p, "breaker-create r strategy=rate rate_threshold=50 rate_window_calls=10 "
	                             "refresh=1s half_open_probes=0", reply, sizeof reply), 0, "%s", reply);
	cr_expect_str_eq(reply, "kept kind=breaker name=r", "protd's answer itself");
	o.rate_window_calls = 11;
	cr_expect_eq(prot_breaker_create(p, "r", &o), -PROT_EEXIST);
	o.strategy = 9; /* a strategy without a name is never sent */
	cr_expect_eq(prot_breaker_create(p, "r", &o), -EINVAL);
	prot_close(p);
	th_protd_stop(pid);
}
