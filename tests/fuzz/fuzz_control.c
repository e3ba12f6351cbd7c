/* fuzz_control.c — libFuzzer harness for protd's control-socket request handler
 * (daemon/control.c, control_handle): the parser of one request line and everything it drives
 * (the INI validator on runtime values, registry_apply on a real segment). The segment is a small
 * one made by shm_setup() as protd makes it, unlinked at once (the mapping stays), so a crash
 * leaves nothing in /dev/shm. State carries over between inputs, as in a long-running protd.
 * control_start() runs too (on a socket in a private temporary directory that nothing connects
 * to): control_handle's set paths write through the socket module's own segment pointer.
 * The reply must always be "ok..." or "error ...".
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "protd.h"

#define REQ_BYTES 4096

static struct shm seg;
static char sockdir[] = "/tmp/prot-fuzz-ctl-XXXXXX";

void plog(int level, const char *fmt, ...)
{
	(void)level, (void)fmt; /* protd's logger: silent under the fuzzer */
}

static void setup(void)
{
	struct config c;
	char err[512];
	config_init(&c);
	snprintf(c.seg.name, sizeof c.seg.name, "/prot-fuzz-ctl-%d", (int)getpid());
	c.seg.geo = (struct seg_geometry){ .max_keys = 8, .max_breakers = 8, .max_pools = 4,
		                           .pool_max_slots = 8, .pool_max_waiters = 8, .events = 16,
		                           .rate_entities = 64 };
	char sock[CFG_PATH_MAX];
	if (!mkdtemp(sockdir))
		abort();
	snprintf(sock, sizeof sock, "%s/c.sock", sockdir);
	if (shm_setup(&seg, &c, sock, true, err, sizeof err) < 0) {
		fprintf(stderr, "fuzz_control: %s\n", err);
		abort();
	}
	shm_unlink(seg.name);
	struct config next;
	if (registry_init(&seg) < 0 || config_copy(&next, &c) < 0)
		abort();
	config_finalize(&next);
	if (registry_apply(&seg, &next, 0) < 0)
		abort();
	if (control_start(&seg, &c, sock) < 0)
		abort();
	shm_publish(&seg);
	config_free(&c);
}

static void cleanup(void) __attribute__((destructor));
static void cleanup(void)
{
	if (!seg.hdr)
		return;
	control_stop();
	rmdir(sockdir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char req[REQ_BYTES], reply[8192];
	if (!seg.hdr)
		setup();
	/* what read_line hands over: at most REQ_BYTES - 1 bytes, NUL-terminated */
	size_t n = size < REQ_BYTES - 1 ? size : REQ_BYTES - 1;
	memcpy(req, data, n);
	req[n] = '\0';
	/* a writer: every request, reading or changing, is parsed and applied */
	struct ctl_caller who = { .peer = CTL_PEER_WRITER };
	control_handle(&seg, req, &who, reply, sizeof reply);
	if (strncmp(reply, "ok\n", 3) != 0 && strncmp(reply, "error ", 6) != 0)
		abort();
	return 0;
}
