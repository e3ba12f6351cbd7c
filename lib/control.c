/* control.c — the client side of protd's control socket (hidden): one request line, one reply.
 * protd is the only writer of configuration, so runtime configuration (prot_configure,
 * prot_breaker_create, protctl set) travels through here. Protocol: daemon/control.c.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define CONTROL_TIMEOUT_MS 2000

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
	struct timeval tv = { .tv_sec = CONTROL_TIMEOUT_MS / 1000 };
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

/* Read until EOF or the deadline. */
static int recv_all(int fd, char *buf, size_t n)
{
	size_t len = 0;
	uint64_t end = prot_now_ns() + (uint64_t)CONTROL_TIMEOUT_MS * 1000000;
	for (;;) {
		uint64_t now = prot_now_ns();
		if (now >= end)
			return -PROT_ENOTCONNECTED;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int r = poll(&pf, 1, (int)((end - now) / 1000000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -PROT_ENOTCONNECTED;
		ssize_t got = read(fd, buf + len, n - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -PROT_ENOTCONNECTED;
		len += (size_t)got;
		if (got == 0 || len == n - 1)
			break;
	}
	buf[len] = '\0';
	return 0;
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
		return -PROT_ENOTCONNECTED; /* not protd, or a truncated reply */
	}
	if (reply && replysz) {
		snprintf(reply, replysz, "%s", body);
		size_t n = strlen(reply);
		while (n && reply[n - 1] == '\n')
			reply[--n] = '\0';
	}
	return ret;
}

int prot_control(prot_t *p, const char *request, char *reply, size_t replysz)
{
	char buf[16384];
	struct sockaddr_un a;
	if (!p || !request || strchr(request, '\n'))
		return -EINVAL;
	if (reply && replysz)
		reply[0] = '\0';
	int r = control_addr(p, &a);
	if (r < 0)
		return r;
	int fd = connect_to(&a);
	if (fd < 0)
		return fd;
	r = send_all(fd, request, strlen(request));
	if (r == 0)
		r = send_all(fd, "\n", 1);
	if (r == 0) {
		shutdown(fd, SHUT_WR);
		r = recv_all(fd, buf, sizeof buf);
	}
	close(fd);
	return r < 0 ? r : parse_reply(buf, reply, replysz);
}
