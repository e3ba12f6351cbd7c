/* bench_uds.c — baseline 3: what an IPC design costs per decision. A forked child serves a
 * SOCK_SEQPACKET socket in the bench's temporary directory and makes the same fixed-window decision
 * in its own memory (one epoll loop, one thread: a deciding daemon); each client sends
 * "operation\0entity" and reads a one-byte verdict.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

#define UDS_MSG 128

static int uds_addr(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof a->sun_path)
		return -ENAMETOOLONG;
	strcpy(a->sun_path, path);
	return 0;
}

static void uds_reply(int fd, struct bt_table *t)
{
	char msg[UDS_MSG + 1];
	ssize_t n = recv(fd, msg, UDS_MSG, 0);
	if (n <= 0) {
		close(fd); /* the client went away; epoll forgets a closed fd */
		return;
	}
	msg[n] = 0;
	size_t op_len = strnlen(msg, (size_t)n);
	const char *ent = (size_t)n > op_len ? msg + op_len + 1 : "";
	int d = bt_decide(t, PROT_RATE_FIXED_WINDOW, msg, ent, BENCH_LIMIT, BENCH_WINDOW_MS, bench_now_ns());
	char v = d == 1 ? '1' : d == 0 ? '0' : 'E';
	if (send(fd, &v, 1, MSG_NOSIGNAL) != 1)
		close(fd);
}

static void uds_serve(int lfd)
{
	struct bt_table *t = malloc(bt_bytes(1024));
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	if (!t || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		_exit(1);
	bt_init(t, 1024);
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd != lfd) {
				uds_reply(fd, t);
				continue;
			}
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
			if (c >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0)
				close(c);
		}
	}
}

/* Start the daemon; returns its pid (listening before fork, so clients never race its start). */
static pid_t uds_start(const char *path)
{
	struct sockaddr_un a;
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	unlink(path);
	if (uds_addr(path, &a) < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 64) < 0) {
		int e = -errno;
		close(lfd);
		return e;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		bench_pin_child(BENCH_PIN_SERVER);
		signal(SIGTERM, SIG_DFL);
		uds_serve(lfd);
	}
	int e = -errno;
	close(lfd);
	if (pid < 0)
		return e;
	bench_track_pid(pid);
	return pid;
}

struct uds_state {
	int fd;
};

static void *uds_setup(void *arg, int worker)
{
	(void)worker;
	struct sockaddr_un a;
	struct uds_state *s = malloc(sizeof *s);
	if (!s)
		return NULL;
	s->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || uds_addr(arg, &a) < 0 || connect(s->fd, (struct sockaddr *)&a, sizeof a) < 0) {
		if (s->fd >= 0)
			close(s->fd);
		free(s);
		return NULL;
	}
	return s;
}

static int uds_batch(void *st, uint64_t n)
{
	static const char req[] = BENCH_OP "\0hot";
	struct uds_state *s = st;
	for (uint64_t i = 0; i < n; i++) {
		char v;
		if (send(s->fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)sizeof req - 1)
			return -errno;
		if (recv(s->fd, &v, 1, 0) != 1)
			return -EPIPE;
		if (v != '1')
			return BENCH_EDENIED;
	}
	return 0;
}

static void uds_teardown(void *st)
{
	struct uds_state *s = st;
	close(s->fd);
	free(s);
}

void bench_uds_rows(struct bench *b)
{
	char path[128];
	bench_tmpfile(b, "decide.sock", path, sizeof path);
	pid_t pid = uds_start(path);
	if (pid < 0) {
		bench_skip(b, ROW_UDS_RTT, true, "daemon: %s", prot_strerror(pid));
		bench_skip(b, ROW_SC_UDS, true, "daemon: %s", prot_strerror(pid));
		return;
	}
	struct bench_work w = {uds_setup, uds_batch, uds_teardown, path, 16};
	bench_single(b, ROW_UDS_RTT, &w, b->sz.slow_ops, b->sz.reps);
	bench_scale(b, ROW_SC_UDS, &w);
	bench_reap(pid, 2000, true);
	unlink(path);
}
