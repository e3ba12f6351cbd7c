/* notify.c — systemd's readiness protocol (sd_notify(3)), spoken directly: one datagram of
 * "NAME=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace). Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every call
 * does nothing. A failed send is logged once and otherwise ignored: readiness reporting must never
 * stop the daemon.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "protd.h"

void protd_notify(const char *state)
{
	static int warned;
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !path[0])
		return;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path) {
		if (!warned++)
			log_warn("NOTIFY_SOCKET=%s is not an absolute path or @abstract name; not notifying", path);
		return;
	}
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
		if (!warned++)
			log_warn("notify %s: %s", path, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
}
