/* control.c — the client side of protd's control socket (hidden): one request line, one reply.
 * protd is the only writer of configuration, so runtime configuration (prot_configure,
 * prot_breaker_create, protctl set) travels through here. Requests: daemon/control.c; when protd
 * applies one: daemon/ctlsock.c.
 *
 * OUTCOMES. The client sends its whole line in one write and then keeps its side open (no
 * half-close: protd takes a closed or half-closed connection for a caller that gave up, and
 * applies nothing) until protd's reply ends with EOF. So:
 *   reply `ok ...`                          -> 0: applied (or nothing to change)
 *   reply `error ...`                       -> a negative code: nothing was applied
 *   no connection, or the line not sent     -> -PROT_ENOTCONNECTED / -EACCES: nothing was applied
 *   line sent, no complete reply within REPLY_MS (protd stalled or died mid-request)
 *                                           -> -ETIMEDOUT, "outcome unknown": the only case where
 *                                              the client cannot know; never reported as failure
 * REPLY_MS is longer than protd's own bound on a request (1 s to read it, then the apply), so a
 * running protd always answers first.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define CONNECT_MS 1000 /* connect() and the request's send */
#define REPLY_MS 5000   /* from the request sent to the reply's EOF */

/* The socket path protd published in the header; the segment is untrusted: NUL within bounds. */
static int control_addr(prot_t *p, struct sockaddr_un *a)
{
	const struct prot_shm_header *h = prot_hdr(p);
	char path[sizeof h->control_path];
	memcpy(path, h->control_path, sizeof path);
	if (!memchr(path, '\0', sizeof path) || path[0] != '/')
		return -PROT_ENOTCONNECTED;
	*a = (struct sockaddr_un){ .sun_family = AF_UNIX };
	_Static_assert(sizeof path <= sizeof a->sun_path, "control path fits sun_path");
	memcpy(a->sun_path, path, sizeof path);
	return 0;
}

static int connect_to(const struct sockaddr_un *a)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = { .tv_sec = CONNECT_MS / 1000, .tv_usec = CONNECT_MS % 1000 * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds connect() and send() */
	if (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0) {
		int e = errno;
		close(fd);
		return e == EACCES || e == EPERM ? -EACCES : -PROT_ENOTCONNECTED;
	}
	return fd;
}

static int send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -PROT_ENOTCONNECTED;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until EOF or the deadline: 0, or -ETIMEDOUT when the reply did not end in time (or the
 * connection broke first: the request was out, so the outcome is unknown). */
static int recv_all(int fd, char *buf, size_t n)
{
	size_t len = 0;
	uint64_t end = prot_now_ns() + (uint64_t)REPLY_MS * 1000000;
	for (;;) {
		uint64_t now = prot_now_ns();
		if (now >= end)
			return -ETIMEDOUT;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int r = poll(&pf, 1, (int)((end - now) / 1000000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -ETIMEDOUT;
		if (r == 0)
			continue; /* the deadline check above ends it */
		ssize_t got = read(fd, buf + len, n - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -ETIMEDOUT;
		len += (size_t)got;
		if (got == 0 || len == n - 1)
			break;
	}
	buf[len] = '\0';
	return len ? 0 : -ETIMEDOUT; /* EOF and no reply: protd died with the request */
}

/* "ok\nDETAIL" -> 0 and DETAIL; "error MSG\n..." -> the error and MSG... */
static int parse_reply(const char *r, char *reply, size_t replysz)
{
	int ret;
	const char *body;
	if (strncmp(r, "ok", 2) == 0 && (r[2] == '\n' || r[2] == '\0')) {
		ret = 0;
		body = r[2] ? r + 3 : r + 2;
	} else if (strncmp(r, "error ", 6) == 0) {
		body = r + 6;
		if (strncmp(body, "permission denied", 17) == 0)
			ret = -EACCES;
		else if (strncmp(body, "exists:", 7) == 0)
			ret = -PROT_EEXIST;
		else
			ret = -PROT_EINVAL_CONFIG;
	} else {
		return -ETIMEDOUT; /* not protd's reply, or a truncated one: the outcome is unknown */
	}
	if (reply && replysz) {
		snprintf(reply, replysz, "%s", body);
		size_t n = strlen(reply);
		while (n && reply[n - 1] == '\n')
			reply[--n] = '\0';
	}
	return ret;
}

static void unknown_outcome(char *reply, size_t replysz)
{
	if (reply && replysz)
		snprintf(reply, replysz, "protd did not answer within %d ms: the request may or may not "
		         "have been applied (check the current values)", REPLY_MS);
}

int prot_control(prot_t *p, const char *request, char *reply, size_t replysz)
{
	char buf[16384];
	struct sockaddr_un a;
	size_t len = request ? strlen(request) : 0;
	if (!p || !request || strchr(request, '\n') || len + 1 >= sizeof buf)
		return -EINVAL;
	if (reply && replysz)
		reply[0] = '\0';
	int r = control_addr(p, &a);
	if (r < 0)
		return r;
	int fd = connect_to(&a);
	if (fd < 0)
		return fd;
	memcpy(buf, request, len);
	buf[len] = '\n';
	r = send_all(fd, buf, len + 1); /* one write: protd sees the whole line or a line never sent */
	if (r == 0)
		r = recv_all(fd, buf, sizeof buf); /* keeping our side open: we are still there */
	close(fd);
	if (r == 0)
		r = parse_reply(buf, reply, replysz);
	if (r == -ETIMEDOUT)
		unknown_outcome(reply, replysz);
	return r;
}
