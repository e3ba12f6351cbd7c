/* control.c — the client side of protd's control socket (hidden): one request line, one reply;
 * and prot_configure / prot_configure_reply, the public `set`. protd is the only writer of
 * configuration, so runtime configuration (prot_configure, prot_breaker_create, prot_pool_create,
 * protctl set) travels through here. Requests and replies: man/prot-control.7.scd (protd's side:
 * daemon/control.c); when protd applies one: daemon/ctlsock.c.
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
 *
 * WHOLE REPLIES. A reply is read to its EOF (at most PROT_REPLY_MAX bytes, prot.h) before it is
 * looked at, whatever part of it the caller keeps: the outcome never depends on the size of the
 * caller's buffer, and prot_configure_reply says how long the reply was, so a caller can tell a
 * truncated copy from a whole one.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "wire.h"

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

/* Read until EOF or the deadline into buf (n bytes): the length, or -ETIMEDOUT when the reply did
 * not end in time, is longer than any reply of protd (PROT_REPLY_MAX), or the connection broke
 * first: the request was out, so the outcome is unknown. */
static ssize_t recv_all(int fd, char *buf, size_t n)
{
	size_t len = 0;
	uint64_t end = prot_now_ns() + (uint64_t)REPLY_MS * 1000000;
	for (;;) {
		uint64_t now = prot_now_ns();
		if (now >= end || len == n - 1)
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
		if (got == 0)
			break;
		len += (size_t)got;
	}
	buf[len] = '\0';
	return len ? (ssize_t)len : -ETIMEDOUT; /* EOF and no reply: protd died with the request */
}

/* The error classes of an `error` reply: the message's first words (prot-control(7)). */
static const struct {
	const char *prefix;
	int code;
} error_classes[] = {
	{"permission denied", -EACCES},
	{"exists:", -PROT_EEXIST},
	{"no such key:", -PROT_ENOKEY},
	{"no such breaker:", -PROT_ENOBREAKER},
	{"no such pool:", -PROT_ENOPOOL},
};

static int error_code(const char *msg)
{
	for (size_t i = 0; i < sizeof error_classes / sizeof error_classes[0]; i++)
		if (strncmp(msg, error_classes[i].prefix, strlen(error_classes[i].prefix)) == 0)
			return error_classes[i].code;
	return -PROT_EINVAL_CONFIG; /* a value or a request protd refused */
}

/* "ok\nRECORDS" -> 0 and RECORDS; "error MSG\n..." -> the error and MSG...; *body points into r.
 * Trailing newlines are not part of the body. */
static int parse_reply(char *r, char **body)
{
	int ret;
	if (strncmp(r, "ok", 2) == 0 && (r[2] == '\n' || r[2] == '\0')) {
		ret = 0;
		*body = r[2] ? r + 3 : r + 2;
	} else if (strncmp(r, "error ", 6) == 0) {
		*body = r + 6;
		ret = error_code(*body);
	} else {
		return -ETIMEDOUT; /* not protd's reply: the outcome is unknown */
	}
	size_t n = strlen(*body);
	while (n && (*body)[n - 1] == '\n')
		(*body)[--n] = '\0';
	return ret;
}

/* body into reply (size bytes, truncated, NUL-terminated) and its whole length into *len. */
static void give(const char *body, char *reply, size_t size, size_t *len)
{
	size_t n = strlen(body);
	if (size) {
		size_t k = n < size - 1 ? n : size - 1;
		memcpy(reply, body, k);
		reply[k] = '\0';
	}
	if (len)
		*len = n;
}

static void unknown_outcome(char *reply, size_t size, size_t *len)
{
	char msg[160];
	snprintf(msg, sizeof msg, "protd did not answer within %d ms: the request may or may not "
	         "have been applied (check the current values)", REPLY_MS);
	give(msg, reply, size, len);
}

/* Send the request line and read the whole reply into buf (PROT_REPLY_MAX + 2 bytes). */
static int exchange(prot_t *p, const char *request, size_t len, char *buf)
{
	struct sockaddr_un a;
	int r = control_addr(p, &a);
	if (r < 0)
		return r;
	int fd = connect_to(&a);
	if (fd < 0)
		return fd;
	memcpy(buf, request, len);
	buf[len] = '\n';
	r = send_all(fd, buf, len + 1); /* one write: protd sees the whole line or a line never sent */
	if (r == 0) {
		ssize_t got = recv_all(fd, buf, PROT_REPLY_MAX + 2); /* our side open: we are still there */
		r = got < 0 ? (int)got : 0;
	}
	close(fd);
	return r;
}

int prot_control_len(prot_t *p, const char *request, char *reply, size_t size, size_t *len)
{
	size_t n = request ? strlen(request) : 0;
	if (!p || !request || strchr(request, '\n') || n >= PROT_CTL_REQUEST_MAX || (!reply && size))
		return -EINVAL;
	if (size)
		reply[0] = '\0';
	if (len)
		*len = 0;
	/* the whole reply, whatever the caller keeps of it: a reply is parsed only once it ended */
	char *buf = malloc(PROT_REPLY_MAX + 2);
	if (!buf)
		return -ENOMEM;
	char *body = NULL;
	int r = exchange(p, request, n, buf);
	if (r == 0)
		r = parse_reply(buf, &body);
	if (body)
		give(body, reply, size, len);
	else if (r == -ETIMEDOUT)
		unknown_outcome(reply, size, len);
	free(buf);
	return r;
}

int prot_control(prot_t *p, const char *request, char *reply, size_t n)
{
	return prot_control_len(p, request, reply, n, NULL);
}

/* ---- breakers and pools: create and remove ---------------------------------------------------- */
int prot_object_request(prot_t *p, const char *verb, const char *name, enum wire_opts which,
                        const void *opts)
{
	int g = prot_gate(p, false); /* through protd, which judges the caller's authority */
	if (g < 0)
		return g;
	if (!name || !*name || strpbrk(name, " \t\r\n=") || (!opts && which != WIRE_NO_OPTS))
		return -EINVAL;
	if (strlen(name) > PROT_NAME_MAX)
		return -PROT_ETOOLONG;
	char req[640];
	int len = snprintf(req, sizeof req, "%s %s", verb, name);
	int r = which == WIRE_NO_OPTS ? 0 : wire_opts_words(which, opts, req, sizeof req, (size_t)len);
	if (r < 0)
		return r; /* a value without a name (an unknown strategy): never sent */
	prot_hdr(p);
	return prot_control(p, req, NULL, 0);
}

/* ---- prot_configure -------------------------------------------------------------------------- */
/* The `set KEY SETTINGS` request, validated (keyout, when given, receives the key then). */
static int configure(prot_t *p, const char *key, const char *settings, char *reply, size_t size,
                     size_t *len, char keyout[PROT_NAME_MAX + 1])
{
	/* protd decides who may change what (its peer-credential check, README "The control
	 * socket"), whatever this handle's mapping mode: protctl maps read-only and still sets */
	int g = prot_gate(p, false);
	if (g < 0)
		return g;
	if (!key || !settings || strpbrk(key, " \t\r\n") || strpbrk(settings, "\r\n") || (!reply && size))
		return -EINVAL;
	if (strlen(key) > PROT_NAME_MAX)
		return -PROT_ETOOLONG;
	if (keyout)
		snprintf(keyout, PROT_NAME_MAX + 1, "%s", key);
	char req[1024];
	if ((size_t)snprintf(req, sizeof req, "set %s %s", key, settings) >= sizeof req)
		return -PROT_ETOOLONG;
	prot_hdr(p);
	return prot_control_len(p, req, reply, size, len);
}

PROT_API int prot_configure(prot_t *p, const char *key, const char *settings,
                            struct prot_detail *detail)
{
	struct prot_detail scratch;
	struct prot_detail *d = detail ? detail : &scratch;
	memset(d, 0, sizeof *d);
	return configure(p, key, settings, d->message, sizeof d->message, NULL, d->key);
}

PROT_API int prot_configure_reply(prot_t *p, const char *key, const char *settings, char *reply,
                                  size_t size, size_t *len)
{
	if (reply && size) /* written on every return, as prot_detail is */
		reply[0] = '\0';
	if (len)
		*len = 0;
	return configure(p, key, settings, reply, size, len, NULL);
}
