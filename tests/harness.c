/* harness.c — real processes for the test suites: protd started and stopped by pid, forked
 * workers, protctl runs with captured output, unique segment names, bounded waits, and the pool
 * helpers several suites share (status, waits on it, a counting connector).
 * Not thread-safe: a Criterion test runs in its own process, one thread (the connector's counters
 * are atomics: forked children and the threads of a child count into the same shared struct).
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TH_MAX 32

/* Per test process: what to clean up. Criterion forks a fresh process per test, so these start
 * empty for every test. */
static char th_segs[TH_MAX][64];
static int th_nsegs;
static pid_t th_pids[TH_MAX];
static pid_t th_logpid[TH_MAX]; /* kept after the pid is reaped, to find its log */
static char th_logs[TH_MAX][128];
static int th_npids;
static char th_dir[64];
static int th_registered;

uint64_t th_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void th_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

bool th_wait_flag(_Atomic int *flag, int v, int timeout_ms)
{
	uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
	while (atomic_load(flag) < v) {
		if (th_now_ms() > end)
			return false;
		th_sleep_ms(1);
	}
	return true;
}

static void th_register(void)
{
	if (!th_registered) {
		th_registered = 1;
		atexit(th_cleanup);
	}
}

static const char *env_or(const char *var, const char *fallback)
{
	const char *v = getenv(var);
	return v && *v ? v : fallback;
}

const char *th_protd_path(void) { return env_or("PROTD", "build/daemon/protd"); }
const char *th_protctl_path(void) { return env_or("PROTCTL", "build/tools/protctl/protctl"); }

const char *th_segname(const char *tag)
{
	static unsigned counter;
	cr_assert(th_nsegs < TH_MAX, "too many segments in one test");
	th_register();
	char *s = th_segs[th_nsegs++];
	snprintf(s, 64, "/prot-t-%d-%u-%.20s", (int)getpid(), counter++, tag);
	return s;
}

static const char *th_tmpdir(void)
{
	if (!th_dir[0]) {
		th_register();
		snprintf(th_dir, sizeof th_dir, "/tmp/prot-test-XXXXXX");
		cr_assert(mkdtemp(th_dir), "mkdtemp: %s", strerror(errno));
	}
	return th_dir;
}

const char *th_write_file(const char *name, const char *fmt, ...)
{
	static char paths[8][192];
	static int next;
	char *path = paths[next++ % 8];
	snprintf(path, sizeof paths[0], "%s/%s", th_tmpdir(), name);
	FILE *f = fopen(path, "w");
	cr_assert(f, "fopen %s: %s", path, strerror(errno));
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	cr_assert(fclose(f) == 0);
	return path;
}

int th_wait(pid_t pid, int timeout_ms, int *status)
{
	uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			if (status)
				*status = st;
			return 0;
		}
		if (r < 0)
			return -errno;
		if (th_now_ms() >= end)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

static void th_forget_pid(pid_t pid)
{
	for (int i = 0; i < th_npids; i++)
		if (th_pids[i] == pid)
			th_pids[i] = 0;
}

const char *th_protd_log(pid_t pid)
{
	for (int i = 0; i < th_npids; i++)
		if (th_logpid[i] == pid)
			return th_logs[i];
	static char none[] = "";
	return none;
}

struct th_log_wait {
	pid_t pid;
	const char *text;
};

static bool th_log_has(void *arg)
{
	const struct th_log_wait *w = arg;
	FILE *f = fopen(th_protd_log(w->pid), "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, w->text) != NULL;
	fclose(f);
	return found;
}

bool th_log_until(pid_t pid, const char *text, int timeout_ms)
{
	struct th_log_wait w = { pid, text };
	return th_until(th_log_has, &w, timeout_ms);
}

static void th_dump_log(pid_t pid)
{
	const char *log = th_protd_log(pid);
	if (!*log)
		return;
	FILE *f = fopen(log, "r");
	if (!f)
		return;
	char line[512];
	fprintf(stderr, "---- protd %d log (%s)\n", (int)pid, log);
	while (fgets(line, sizeof line, f))
		fputs(line, stderr);
	fclose(f);
}

static pid_t th_vspawn(const char *ini, const char *seg, va_list ap)
{
	const char *argv[32];
	int n = 0;
	argv[n++] = th_protd_path();
	argv[n++] = "-c";
	argv[n++] = ini;
	if (seg) {
		argv[n++] = "--segment";
		argv[n++] = seg;
	}
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 30)
		argv[n++] = a;
	argv[n] = NULL;

	cr_assert(th_npids < TH_MAX, "too many protd in one test");
	int slot = th_npids++;
	snprintf(th_logs[slot], sizeof th_logs[slot], "%s/protd-%d", th_tmpdir(), slot);
	pid_t pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(th_logs[slot], O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	th_pids[slot] = pid;
	th_logpid[slot] = pid;
	return pid;
}

pid_t th_protd_spawn(const char *ini, const char *seg, ...)
{
	va_list ap;
	va_start(ap, seg);
	pid_t pid = th_vspawn(ini, seg, ap);
	va_end(ap);
	return pid;
}

pid_t th_protd_start(const char *ini, const char *seg, ...)
{
	va_list ap;
	va_start(ap, seg);
	pid_t pid = th_vspawn(ini, seg, ap);
	va_end(ap);

	uint64_t end = th_now_ms() + 5000;
	for (;;) {
		prot_t *p = NULL;
		struct prot_info info;
		if (prot_open(seg, PROT_OPEN_RDONLY, &p) == 0) {
			int ok = prot_get_info(p, &info) == 0 && info.protd_pid == pid;
			prot_close(p);
			if (ok)
				return pid;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			th_forget_pid(pid);
			th_dump_log(pid);
			cr_assert_fail("protd exited during start-up (status %d)", st);
		}
		if (th_now_ms() >= end) {
			th_dump_log(pid);
			cr_assert_fail("protd did not publish segment %s within 5 s", seg);
		}
		usleep(2000);
	}
}

int th_protd_stop(pid_t pid)
{
	int st = 0;
	kill(pid, SIGTERM);
	if (th_wait(pid, 5000, &st) == -ETIMEDOUT) {
		th_dump_log(pid);
		kill(pid, SIGKILL);
		th_wait(pid, 5000, &st);
		th_forget_pid(pid);
		cr_assert_fail("protd %d did not stop within 5 s of SIGTERM", (int)pid);
	}
	th_forget_pid(pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		/* a clean stop exits 0; a sanitizer report in protd makes it exit otherwise */
		th_dump_log(pid);
		cr_assert_fail("protd %d did not exit cleanly on SIGTERM (status %d)", (int)pid, st);
	}
	return st;
}

void th_kill9(pid_t pid)
{
	kill(pid, SIGKILL);
	th_wait(pid, 5000, NULL);
	th_forget_pid(pid);
}

pid_t th_fork(int (*fn)(void *arg, int i), void *arg, int i)
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg, i) & 0xff);
	return pid;
}

void th_fork_n(int n, int (*fn)(void *arg, int i), void *arg, int timeout_ms)
{
	pid_t pids[256];
	cr_assert(n > 0 && n <= 256);
	for (int i = 0; i < n; i++)
		pids[i] = th_fork(fn, arg, i);
	uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
	int failed = 0, timedout = 0;
	for (int i = 0; i < n; i++) {
		int left = (int)(end > th_now_ms() ? end - th_now_ms() : 0);
		int st;
		if (th_wait(pids[i], left, &st) != 0) {
			kill(pids[i], SIGKILL);
			th_wait(pids[i], 5000, NULL);
			timedout++;
		} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			failed++;
		}
	}
	cr_assert(timedout == 0, "%d of %d workers did not finish within %d ms", timedout, n, timeout_ms);
	cr_assert(failed == 0, "%d of %d workers failed", failed, n);
}

void *th_shared(size_t size)
{
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(m != MAP_FAILED, "mmap: %s", strerror(errno));
	return m;
}

/* Drain both pipes until the child exits or the deadline passes. */
static int th_collect(struct th_out *o, int out_fd, int err_fd, pid_t pid, int timeout_ms)
{
	size_t no = 0, ne = 0;
	uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
	struct pollfd fds[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
	int open_fds = 2;
	while (open_fds > 0) {
		int left = (int)(end > th_now_ms() ? end - th_now_ms() : 0);
		if (left == 0)
			break;
		if (poll(fds, 2, left) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char *buf = i ? o->err : o->out;
			size_t *len = i ? &ne : &no;
			size_t cap = (i ? sizeof o->err : sizeof o->out) - 1;
			char scratch[4096];
			ssize_t r = read(fds[i].fd, *len < cap ? buf + *len : scratch,
			                 *len < cap ? cap - *len : sizeof scratch);
			if (r <= 0) {
				fds[i].fd = -1;
				open_fds--;
			} else if (*len < cap) {
				*len += (size_t)r;
			}
		}
	}
	o->out[no] = 0;
	o->err[ne] = 0;
	int st;
	if (th_wait(pid, (int)(end > th_now_ms() ? end - th_now_ms() : 0), &st) != 0) {
		kill(pid, SIGKILL);
		th_wait(pid, 5000, NULL);
		cr_assert_fail("command did not finish within %d ms", timeout_ms);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int th_run(struct th_out *o, int timeout_ms, const char *const argv[])
{
	int po[2], pe[2];
	cr_assert(pipe(po) == 0 && pipe(pe) == 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		close(po[1]);
		close(pe[1]);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	o->code = th_collect(o, po[0], pe[0], pid, timeout_ms);
	close(po[0]);
	close(pe[0]);
	return o->code;
}

int th_protctl(struct th_out *o, const char *seg, ...)
{
	const char *argv[40];
	int n = 0;
	argv[n++] = th_protctl_path();
	if (seg) {
		argv[n++] = "--segment";
		argv[n++] = seg;
	}
	va_list ap;
	va_start(ap, seg);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 38)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return th_run(o, 10000, argv);
}

pid_t th_serve(const char *tag, const char *ini_text, const char **seg, const char **ini, prot_t **p)
{
	*seg = th_segname(tag);
	*ini = th_write_file("protd.ini", "%s", ini_text);
	pid_t pid = th_protd_start(*ini, *seg, NULL);
	*p = th_open(*seg, 2000);
	return pid;
}

pid_t th_serve_head(const char *tag, const char *head, const char *sections, const char **seg,
                    const char **ini, prot_t **p)
{
	char text[4096];
	cr_assert((size_t)snprintf(text, sizeof text, "%s%s", head, sections) < sizeof text);
	return th_serve(tag, text, seg, ini, p);
}

void th_unserve(prot_t *p, pid_t protd)
{
	prot_close(p);
	th_protd_stop(protd);
}

prot_t *th_open(const char *seg, int timeout_ms)
{
	uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		prot_t *p = NULL;
		int r = prot_open(seg, 0, &p);
		if (r == 0)
			return p;
		if (th_now_ms() >= end)
			cr_assert_fail("prot_open(%s): %s", seg, prot_strerror(r));
		usleep(2000);
	}
}

bool th_until(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
	uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		if (cond(arg))
			return true;
		if (th_now_ms() >= end)
			return false;
		usleep(1000);
	}
}

const char *th_private_dev_shm(const char *tmpfs_opts)
{
	static char why[200];
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("prot-test", "/dev/shm", "tmpfs", 0, tmpfs_opts) < 0) {
		snprintf(why, sizeof why, "needs root and mount namespaces (a tmpfs on /dev/shm): %s", strerror(errno));
		return why;
	}
	char dirs[16][256];
	int n = 0;
	FILE *f = setmntent("/proc/self/mounts", "re");
	for (struct mntent *m; f && n < 16 && (m = getmntent(f));)
		if (strcmp(m->mnt_type, "hugetlbfs") == 0)
			snprintf(dirs[n++], sizeof dirs[0], "%s", m->mnt_dir);
	if (f)
		endmntent(f);
	while (n-- > 0) /* the namespace's copies only */
		umount2(dirs[n], MNT_DETACH);
	return NULL;
}

int th_dir_entries(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;
	cr_assert(d, "%s: %s", path, strerror(errno));
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

void th_cleanup(void)
{
	for (int i = 0; i < th_npids; i++) {
		if (th_pids[i] > 0) {
			kill(th_pids[i], SIGKILL);
			th_wait(th_pids[i], 5000, NULL);
			th_pids[i] = 0;
		}
	}
	for (int i = 0; i < th_nsegs; i++) {
		char sock[128];
		shm_unlink(th_segs[i]);
		/* protd's default control socket for this segment, left behind by a kill -9 */
		snprintf(sock, sizeof sock, "/run/prot/%s.sock", th_segs[i] + 1);
		unlink(sock);
	}
	th_nsegs = 0;
	if (th_dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", th_dir);
		if (system(cmd) != 0) {
			/* best effort: a leftover temp dir is harmless */
		}
		th_dir[0] = 0;
	}
}

/* ---- pools ------------------------------------------------------------------------------------ */
struct prot_pool_status th_pool_status(prot_t *p, const char *pool)
{
	struct prot_pool_status st;
	int r = prot_pool_status(p, pool, &st);
	cr_assert_eq(r, 0, "status %s: %s", pool, prot_strerror(r));
	return st;
}

bool th_pool_until_at(prot_t *p, const char *pool, size_t off, size_t size, uint32_t want,
                      int timeout_ms)
{
	cr_assert(size == sizeof(uint32_t) && off + size <= sizeof(struct prot_pool_status));
	uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		struct prot_pool_status st;
		uint32_t v;
		if (prot_pool_status(p, pool, &st) == 0) {
			memcpy(&v, (const char *)&st + off, sizeof v);
			if (v == want)
				return true;
		}
		if (th_now_ms() >= end)
			return false;
		th_sleep_ms(1);
	}
}

static int th_conn_create(void *ctx, void **conn)
{
	struct th_conns *c = ctx;
	if (atomic_load(&c->fail_create))
		return -ECONNREFUSED;
	*conn = (void *)(intptr_t)(atomic_fetch_add(&c->next_id, 1) + 1);
	int open = atomic_fetch_add(&c->created, 1) + 1 - atomic_load(&c->destroyed);
	int m = atomic_load(&c->open_max);
	while (open > m && !atomic_compare_exchange_weak(&c->open_max, &m, open))
		;
	return 0;
}

static void th_conn_destroy(void *ctx, void *conn)
{
	struct th_conns *c = ctx;
	int id = th_conn_id(conn);
	if (id > 0 && id < TH_CONN_IDS)
		atomic_store(&c->destroyed_ids[id], 1);
	atomic_fetch_add(&c->destroyed, 1);
}

static int th_conn_check(void *ctx, void *conn)
{
	(void)ctx;
	return th_conn_id(conn) > 0 ? 0 : -1;
}

struct prot_connector th_connector(struct th_conns *c)
{
	return (struct prot_connector){ .create = th_conn_create, .destroy = th_conn_destroy,
		                        .check = th_conn_check, .ctx = c };
}

void th_pool_register(prot_t *p, const char *pool, struct th_conns *c)
{
	struct prot_connector cn = th_connector(c);
	int r = prot_pool_register(p, pool, &cn);
	cr_assert_eq(r, 0, "register %s: %s", pool, prot_strerror(r));
}

int th_conn_id(void *conn)
{
	return (int)(intptr_t)conn;
}

bool th_wait_stopped(pid_t pid, int ms)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	for (int waited = 0; waited <= ms; waited++) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = 0;
		const char *paren = strrchr(buf, ')'); /* the state follows the command's closing paren */
		if (paren && paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't'))
			return true;
		th_sleep_ms(1);
	}
	return false;
}
