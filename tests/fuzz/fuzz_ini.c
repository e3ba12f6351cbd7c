/* fuzz_ini.c — libFuzzer harness for protd's INI loader (daemon/config_ini.c): the input is
 * written to a memfd and loaded with config_load() through /proc/self/fd/N, exactly as protd reads
 * a file.
 * Every outcome (valid, or errors) must end without a crash, leak or undefined behaviour; each
 * error message must carry the "FILE" prefix config_load promises.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

static int memfd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (memfd < 0) {
		memfd = memfd_create("fuzz-ini", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
		snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	struct config c;
	struct cfg_errors e = { 0 };
	int r = config_load(path, &c, &e);
	for (size_t i = 0; i < e.n; i++)
		if (strncmp(e.msg[i], path, strlen(path)) != 0)
			abort(); /* every message names the file */
	if (r == 0) {
		/* a valid file must survive what protd does next: finalize and check again */
		struct cfg_errors e2 = { 0 };
		config_finalize(&c);
		if (config_check(&c, &e2) != 0)
			abort();
		cfg_errors_free(&e2);
		config_free(&c);
	} else if (e.n == 0) {
		abort(); /* refused without saying why */
	}
	cfg_errors_free(&e);
	return 0;
}
