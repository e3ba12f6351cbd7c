/* test_control.c — protd's control socket under hostile and broken callers, against a real protd:
 * slow clients (a byte every 1.5 s) do not delay other clients, credentials are checked before
 * anything is read, a request whose client gave up is never applied and the client library
 * reports that case as "unknown", never as failure; a read-only group may ask but not change; the
 * socket's directory and path are refused when someone else could control them.
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

/* The key's rate_limit as protd reports it (get). */
static long rate_limit_of(prot_t *p)
{
	char reply[4096];
	cr_assert_eq(prot_control(p, "get k", reply, sizeof reply), 0, "%s", reply);
	const char *at = strstr(reply, "rate_limit: ");
	cr_assert(at, "%s", reply);
	return strtol(at + 12, NULL, 10);
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
	cr_assert(strstr(reply, "generation "), "%s", reply);
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
