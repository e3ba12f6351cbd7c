/* ctlsock.c — protd's control socket as a server: its directory and path, who may connect and
 * what they may ask, per-connection deadlines, and the one thread that serves every connection
 * without letting one delay another. What requests mean is daemon/control.c's business.
 *
 * THE DIRECTORY. The socket's directory (default /run/prot as root, else $XDG_RUNTIME_DIR/prot,
 * else /tmp/prot-<uid>; see config.c) is created 0700. An existing one must be a real directory
 * (not a symlink) owned by protd's uid and not writable by group or others; otherwise protd
 * refuses to start and says why: whoever can write it could replace the socket and forge replies.
 * When the segment is open to anyone but its owner (a group, or o+r), the directory gets search
 * permission (g+x, o+x: no listing, no writing) so they can reach the socket, where SO_PEERCRED
 * decides; otherwise it stays 0700 and only protd's uid (and root) can connect. At the socket path, a socket
 * that nobody serves is replaced; a live socket, or anything that is not a socket (a regular file,
 * a directory, a symlink), is refused and left as it is.
 *
 * WHO. Credentials (SO_PEERCRED) are checked at accept, before anything is read, against the
 * segment as it is now (fstat of protd's descriptor, so a reload's mode and group count):
 *   writer  root, the segment's owner uid, or a member of its group when the mode has g+w;
 *   reader  a member of the group when the mode has g+r only, or anyone when it has o+r;
 *   other   everyone else: answered `error permission denied: ...` at once, nothing is read.
 * Writers may send every request; readers only those that change nothing (ping, get); a reader's
 * set or breaker-create is answered `error permission denied: ...`. A uid has at most
 * PER_UID_MAX connections at a time; more are answered `error busy: ...` at once.
 *
 * DEADLINES. One thread serves every connection with non-blocking sockets and poll(), so a slow
 * or stalled client holds its own connection only: a connection has REQUEST_MS from accept to
 * deliver its one request line, then REPLY_MS for protd to write the reply and for the client to
 * close. A client that misses its deadline is dropped (with `error timeout: ...` if it can still
 * take it). Requests are applied in the serving thread, under the registry's writer lock.
 *
 * WHEN A REQUEST IS APPLIED (the rule the client side, lib/control.c, relies on). protd applies a
 * request only when all of these hold, checked in this order:
 *   1. the complete line (up to '\n') arrived within REQUEST_MS of accept, with nothing after it;
 *   2. it was validated (holding the writer lock);
 *   3. immediately before writing the segment, still holding the lock, the client's connection is
 *      open and silent (no EOF, no more bytes): a client that closed or half-closed gave up, and
 *      its request is dropped unapplied (logged as such).
 * After 3 nothing can fail the change: its reply is `ok`. Every `error` reply means nothing was
 * applied. So a client that keeps its side open until it has the whole reply (EOF) knows the
 * outcome exactly: `ok` applied, `error` not applied; a client that gave up before its line was
 * complete, or closed before step 3, changed nothing. Only a client that gives up while waiting
 * for the reply of a complete request cannot know which side of step 3 protd was on; the client
 * library waits REPLY_MS + a margin and reports that case with its own code (-ETIMEDOUT,
 * "outcome unknown"), never as a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <urcu/urcu-memb.h>

#include "protd.h"

#define CONN_MAX 64
#define PER_UID_MAX 8
#define REQUEST_MS 1000
#define REPLY_MS 1000
#define POLL_MS 100 /* the longest poll: shutdown is noticed within it */

enum conn_state { C_FREE, C_READ, C_WRITE, C_DRAIN };

struct conn {
	int fd;
	enum conn_state state;
	enum ctl_peer peer;
	uid_t uid;
	char why[192];          /* why it is not a writer */
	uint64_t deadline_ms;
	size_t len;             /* bytes of req */
	char req[CTL_REQ_MAX];
	char *out;              /* reply being written (malloc) */
	size_t out_len, out_off;
};

static struct {
	int fd;
	pthread_t thread;
	bool running;
	atomic_bool stop; /* relaxed: a request to leave the loop, it publishes nothing */
	struct shm *shm;
	char path[CFG_PATH_MAX];
	struct conn conns[CONN_MAX];
} srv = { .fd = -1 };

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- who is calling ------------------------------------------------------------------------------ */
/* Is gid among the peer's groups? From /proc/PID/status: the process's real supplementary groups,
 * not the user database's idea of them. */
static bool peer_in_group(pid_t pid, gid_t primary, gid_t gid)
{
	if (primary == gid)
		return true;
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool found = false;
	while (!found && fgets(buf, sizeof buf, f)) {
		if (strncmp(buf, "Groups:", 7) != 0)
			continue;
		char *save = NULL;
		for (char *t = strtok_r(buf + 7, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
			if (strtoul(t, NULL, 10) == gid)
				found = true;
	}
	fclose(f);
	return found;
}

/* What the peer of fd could do to the segment; why is the refusal's text. */
static enum ctl_peer classify(int fd, uid_t *uid, char *why, size_t n)
{
	struct ucred uc;
	socklen_t len = sizeof uc;
	struct stat st;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || fstat(srv.shm->fd, &st) < 0) {
		snprintf(why, n, "cannot identify the caller: %s", strerror(errno));
		return CTL_PEER_NONE;
	}
	*uid = uc.uid;
	mode_t m = st.st_mode & 0777;
	bool group = uc.uid != st.st_uid && peer_in_group(uc.pid, uc.gid, st.st_gid);
	if (uc.uid == 0 || uc.uid == st.st_uid || (group && (m & 0020)))
		return CTL_PEER_WRITER;
	snprintf(why, n, "uid %u is not root, the segment owner (uid %u) or a member of its group "
	         "(gid %u) with write permission (segment mode %04o)",
	         (unsigned)uc.uid, (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)m);
	if ((group && (m & 0040)) || (!group && (m & 0004)))
		return CTL_PEER_READER;
	return CTL_PEER_NONE;
}

/* ---- connections --------------------------------------------------------------------------------- */
static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c->out);
	c->out = NULL;
	c->fd = -1;
	c->state = C_FREE;
}

/* Queue reply text (a copy) and switch to writing it, with REPLY_MS to go. */
static void conn_reply(struct conn *c, const char *text)
{
	free(c->out);
	c->out = strdup(text);
	c->out_len = c->out ? strlen(c->out) : 0;
	c->out_off = 0;
	c->state = C_WRITE;
	c->deadline_ms = now_ms() + REPLY_MS;
}

static void conn_replyf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_replyf(struct conn *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	conn_reply(c, buf);
}

/* Still there and silent: open, no EOF, nothing sent after the request line. */
static bool conn_present(void *arg)
{
	const struct conn *c = arg;
	char b;
	ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void conn_handle(struct conn *c)
{
	char *reply = malloc(CTL_REPLY_MAX);
	if (!reply) {
		conn_reply(c, "error out of memory\n");
		return;
	}
	struct ctl_caller who = { .peer = c->peer, .why = c->why, .present = conn_present, .arg = c };
	control_handle(srv.shm, c->req, &who, reply, CTL_REPLY_MAX);
	if (who.gone) {
		log_warn("control: uid %u closed its connection before its request was applied: "
		         "dropped", (unsigned)c->uid);
		free(reply);
		conn_close(c);
		return;
	}
	conn_reply(c, reply);
	free(reply);
}

/* A request line is complete: it must be alone, and its client still there. */
static void conn_request(struct conn *c, char *nl)
{
	if ((size_t)(nl - c->req) + 1 != c->len) {
		conn_reply(c, "error one request line per connection\n");
		return;
	}
	*nl = '\0';
	if (!conn_present(c)) { /* gave up (closed or half-closed), or sent more: apply nothing */
		conn_close(c);
		return;
	}
	conn_handle(c);
}

static void conn_read(struct conn *c)
{
	ssize_t r = recv(c->fd, c->req + c->len, sizeof c->req - 1 - c->len, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0) { /* the client gave up before its line was complete: nothing to apply */
		conn_close(c);
		return;
	}
	c->len += (size_t)r;
	c->req[c->len] = '\0';
	char *nl = memchr(c->req, '\n', c->len);
	if (nl)
		conn_request(c, nl);
	else if (c->len == sizeof c->req - 1)
		conn_replyf(c, "error request longer than %zu bytes\n", sizeof c->req - 2);
}

static void conn_write(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w <= 0) {
			conn_close(c);
			return;
		}
		c->out_off += (size_t)w;
	}
	/* the whole reply is out: EOF tells the client so; wait for it to close (reading what it may
	 * still send, so that closing never resets a reply it has not read) */
	shutdown(c->fd, SHUT_WR);
	c->state = C_DRAIN;
}

static void conn_drain(struct conn *c)
{
	char buf[512];
	ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		conn_close(c);
}

static void conn_expired(struct conn *c)
{
	if (c->state == C_READ) {
		log_warn("control: uid %u sent no complete request within %d ms: dropped",
		         (unsigned)c->uid, REQUEST_MS);
		conn_replyf(c, "error timeout: no complete request line within %d ms\n", REQUEST_MS);
		conn_write(c); /* one try: a stalled client may not even take it */
		if (c->state == C_WRITE)
			conn_close(c);
	} else if (c->state != C_FREE) {
		conn_close(c);
	}
}

static void conn_event(struct conn *c, short revents)
{
	if (c->state == C_READ && (revents & (POLLIN | POLLHUP | POLLERR)))
		conn_read(c);
	else if (c->state == C_WRITE && (revents & (POLLOUT | POLLHUP | POLLERR)))
		conn_write(c);
	else if (c->state == C_DRAIN && (revents & (POLLIN | POLLHUP | POLLERR)))
		conn_drain(c);
}

/* ---- accepting ----------------------------------------------------------------------------------- */
static struct conn *conn_free_slot(void)
{
	for (int i = 0; i < CONN_MAX; i++)
		if (srv.conns[i].state == C_FREE)
			return &srv.conns[i];
	return NULL;
}

static int conns_of(uid_t uid)
{
	int n = 0;
	for (int i = 0; i < CONN_MAX; i++)
		n += srv.conns[i].state != C_FREE && srv.conns[i].uid == uid;
	return n;
}

static void admit(struct conn *c, int fd)
{
	*c = (struct conn){ .fd = fd, .state = C_READ, .uid = (uid_t)-1, .deadline_ms = now_ms() + REQUEST_MS };
	c->peer = classify(fd, &c->uid, c->why, sizeof c->why);
	if (c->peer == CTL_PEER_NONE) {
		log_warn("control: refused: %s", c->why);
		conn_replyf(c, "error permission denied: %s\n", c->why);
	} else if (conns_of(c->uid) > PER_UID_MAX) {
		conn_replyf(c, "error busy: uid %u has %d requests in progress\n", (unsigned)c->uid,
		            PER_UID_MAX);
	}
	if (c->state == C_WRITE)
		conn_write(c);
}

static void accept_all(void)
{
	struct conn *c;
	while ((c = conn_free_slot())) {
		int fd = accept4(srv.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		admit(c, fd);
	}
}

/* ---- the loop ------------------------------------------------------------------------------------ */
/* pollfds for the listener (while a slot is free) and every connection; the poll timeout is the
 * nearest deadline, at most POLL_MS. */
static nfds_t poll_set(struct pollfd *pf, struct conn **who, int *timeout)
{
	nfds_t n = 0;
	uint64_t now = now_ms(), next = now + POLL_MS;
	if (conn_free_slot())
		pf[n++] = (struct pollfd){ .fd = srv.fd, .events = POLLIN };
	for (int i = 0; i < CONN_MAX; i++) {
		struct conn *c = &srv.conns[i];
		if (c->state == C_FREE)
			continue;
		who[n] = c;
		pf[n++] = (struct pollfd){ .fd = c->fd, .events = c->state == C_WRITE ? POLLOUT : POLLIN };
		if (c->deadline_ms < next)
			next = c->deadline_ms;
	}
	*timeout = next > now ? (int)(next - now) : 0;
	return n;
}

static void serve_once(void)
{
	struct pollfd pf[CONN_MAX + 1];
	struct conn *who[CONN_MAX + 1] = { 0 };
	int timeout;
	nfds_t n = poll_set(pf, who, &timeout);
	if (poll(pf, n, timeout) < 0)
		return;
	for (nfds_t i = 0; i < n; i++) {
		if (!who[i] && (pf[i].revents & POLLIN))
			accept_all();
		else if (who[i] && pf[i].revents)
			conn_event(who[i], pf[i].revents);
	}
	uint64_t now = now_ms();
	for (int i = 0; i < CONN_MAX; i++)
		if (srv.conns[i].state != C_FREE && srv.conns[i].deadline_ms <= now)
			conn_expired(&srv.conns[i]);
}

static void *loop(void *arg)
{
	(void)arg;
	urcu_memb_register_thread();
	while (!atomic_load_explicit(&srv.stop, memory_order_relaxed))
		serve_once();
	for (int i = 0; i < CONN_MAX; i++)
		if (srv.conns[i].state != C_FREE)
			conn_close(&srv.conns[i]);
	urcu_memb_unregister_thread();
	return NULL;
}

/* ---- the directory and the path ------------------------------------------------------------------ */
/* The directory must be protd's own: a real directory, its uid's, writable by nobody else. */
static int check_dir(const char *dir, bool group)
{
	struct stat st;
	if (lstat(dir, &st) < 0) {
		log_err("control socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("control socket directory %s is not a directory (a symlink or a file): refusing it",
		        dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		log_err("control socket directory %s is owned by uid %u, not by protd's uid %u: refusing "
		        "it (whoever owns it could replace the socket); remove it or set control_socket",
		        dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & 0022) {
		log_err("control socket directory %s has mode %04o, writable by %s: refusing it (they "
		        "could replace the socket); chmod go-w it or set control_socket", dir,
		        (unsigned)(st.st_mode & 07777), st.st_mode & 0020 ? "its group" : "others");
		return -1;
	}
	if (group && (st.st_mode & 0011) != 0011 && chmod(dir, (st.st_mode & 0777) | 0011) < 0) {
		log_err("control socket directory %s: chmod: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int make_dir(const char *path, bool group)
{
	char dir[CFG_PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0; /* directly under / */
	*slash = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_err("control socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	return check_dir(dir, group);
}

/* What is at the socket path: nothing (0), a dead socket (removed, 0), or refused (-1). */
static int clear_path(const struct sockaddr_un *a)
{
	struct stat st;
	if (lstat(a->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : (log_err("control socket %s: %s", a->sun_path, strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		log_err("control socket %s exists and is not a socket: refusing to replace it (remove it "
		        "or set control_socket)", a->sun_path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int r = connect(fd, (const struct sockaddr *)a, sizeof *a);
	int e = errno;
	close(fd);
	if (r == 0) {
		log_err("control socket %s is in use by another process", a->sun_path);
		return -1;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		log_err("control socket %s: %s", a->sun_path, strerror(e));
		return -1;
	}
	unlink(a->sun_path); /* a socket nobody serves */
	return 0;
}

static int listen_on(const struct sockaddr_un *a)
{
	srv.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (srv.fd < 0) {
		log_err("control socket: %s", strerror(errno));
		return -1;
	}
	/* Anyone who can reach it may connect: SO_PEERCRED decides, so a refused caller learns why. */
	if (bind(srv.fd, (const struct sockaddr *)a, sizeof *a) < 0 || chmod(a->sun_path, 0666) < 0 ||
	    listen(srv.fd, 64) < 0) {
		log_err("control socket %s: %s", a->sun_path, strerror(errno));
		close(srv.fd);
		srv.fd = -1;
		return -1;
	}
	return 0;
}

static int start_thread(void)
{
	/* The thread takes no signals: they go to the main loop, whose sleep they interrupt. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	atomic_store_explicit(&srv.stop, false, memory_order_relaxed);
	int r = pthread_create(&srv.thread, NULL, loop, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		log_err("control thread: %s", strerror(r));
	return r ? -1 : 0;
}

int control_start(struct shm *s, const struct config *c, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof a.sun_path) {
		log_err("control socket %s: path longer than %zu bytes", path, sizeof a.sun_path - 1);
		return -1;
	}
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	snprintf(srv.path, sizeof srv.path, "%s", path);
	srv.shm = s;
	for (int i = 0; i < CONN_MAX; i++)
		srv.conns[i] = (struct conn){ .fd = -1, .state = C_FREE };
	if (make_dir(path, c->seg.has_group || (c->seg.mode & 0077)) < 0 || clear_path(&a) < 0 || listen_on(&a) < 0)
		return -1;
	if (start_thread() < 0) {
		close(srv.fd);
		unlink(path);
		srv.fd = -1;
		return -1;
	}
	srv.running = true;
	return 0;
}

void control_stop(void)
{
	if (!srv.running)
		return;
	atomic_store_explicit(&srv.stop, true, memory_order_relaxed);
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	unlink(srv.path);
	srv.fd = -1;
	srv.running = false;
}
