/* test_restart.c — protd's life cycle against the segment: kill -9 leaves clients working and the
 * next protd re-adopts the segment with its state; a second protd refuses a served segment; an
 * incompatible (other geometry, other ABI) or untrustworthy (mode) segment is refused unless
 * --recreate; --keep-segment leaves the segment for re-adoption; a clean stop retires and removes
 * segment and control socket.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

#define INI(maxkeys)                                                                            \
	"[segment]\nmax_keys = " #maxkeys "\nmax_breakers = 4\nmax_pools = 2\nrate_entities = 64\n"  \
	"events = 64\n[key k]\nrate_limit = 10\nrate_window = 1s\n"                                   \
	"breaker_tolerance = 2\nbreaker_window = 1s\nbreaker_refresh = 1s\n"

static const char *seg;

static struct prot_key_stats *stats(prot_t *p)
{
	struct prot_shm_header *h = prot_hdr(p);
	int i = seg_find(h, REG_KEYS, "k");
	cr_assert_geq(i, 0, "key k: %s", prot_strerror(i));
	return &((struct prot_key_slot *)seg_entry(h, REG_KEYS, (uint32_t)i))->stats;
}

static struct prot_breaker_slot *breaker(prot_t *p)
{
	struct prot_shm_header *h = prot_hdr(p);
	int i = seg_find(h, REG_BREAKERS, "k");
	cr_assert_geq(i, 0);
	return seg_entry(h, REG_BREAKERS, (uint32_t)i);
}

static bool exists(const char *name)
{
	int fd = shm_open(name, O_RDONLY, 0);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

static const char *sock_path(void)
{
	static char path[128];
	snprintf(path, sizeof path, "/run/prot/%s.sock", seg + 1);
	return path;
}

/* Spawn a protd that must refuse to start; return its log text. */
static const char *refused(const char *ini, const char *extra)
{
	static char text[8192];
	pid_t pid = th_protd_spawn(ini, seg, extra, NULL);
	int st;
	cr_assert_eq(th_wait(pid, 5000, &st), 0, "protd did not refuse (still running)");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "protd exited with %d", st);
	FILE *f = fopen(th_protd_log(pid), "r");
	cr_assert(f);
	size_t n = fread(text, 1, sizeof text - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* ---- kill -9: clients keep working; the next protd re-adopts the state ------------------------------ */
struct worker {
	_Atomic int stop;
	_Atomic uint64_t progress;
};

static int work(void *arg, int i)
{
	(void)i;
	struct worker *w = arg;
	prot_t *p;
	if (prot_open(seg, 0, &p) != 0)
		return 10;
	struct prot_shm_header *h = prot_hdr(p);
	int k = seg_find(h, REG_KEYS, "k");
	if (k < 0)
		return 11;
	uint64_t end = th_now_ms() + 20000;
	while (!atomic_load(&w->stop) && th_now_ms() < end) {
		struct prot_key_slot *s = seg_entry(prot_hdr(p), REG_KEYS, (uint32_t)k);
		struct prot_key_cfg c;
		seq_read(&s->seq, &s->cfg, &c, sizeof c / 8);
		if (c.rate_limit != 10)
			return 12;
		atomic_fetch_add(&s->stats.ok, 1);
		atomic_fetch_add(&w->progress, 1);
		usleep(200);
	}
	prot_close(p);
	return atomic_load(&w->stop) ? 0 : 13;
}

struct progress_wait {
	struct worker *w;
	uint64_t past;
};
static bool progressed(void *arg)
{
	struct progress_wait *pw = arg;
	return atomic_load(&pw->w->progress) > pw->past;
}

Test(restart, kill9_then_readopt_with_state)
{
	seg = th_segname("rs-kill9");
	const char *ini = th_write_file("protd.ini", INI(8));
	pid_t pid = th_protd_start(ini, seg, NULL);
	prot_t *p = th_open(seg, 2000);
	atomic_store(&stats(p)->calls, 4242);
	atomic_store(&breaker(p)->failures, 17);
	struct worker *w = th_shared(sizeof *w);
	pid_t child = th_fork(work, w, 0);

	th_kill9(pid);
	struct progress_wait pw = { w, atomic_load(&w->progress) + 100 };
	cr_assert(th_until(progressed, &pw, 5000), "the client stopped working when protd died");
	cr_assert(exists(seg));

	pid_t again = th_protd_start(ini, seg, NULL);
	pw.past = atomic_load(&w->progress) + 100;
	cr_assert(th_until(progressed, &pw, 5000), "the client stopped working across the restart");
	cr_assert_eq(atomic_load(&stats(p)->calls), 4242, "counter lost");
	cr_assert_eq(atomic_load(&breaker(p)->failures), 17, "breaker state lost");
	cr_assert_gt(atomic_load(&stats(p)->ok), 200);
	struct prot_info info;
	cr_assert_eq(prot_get_info(p, &info), 0);
	cr_assert_eq(info.protd_pid, again);
	cr_assert_eq(info.retired, 0);

	atomic_store(&w->stop, 1);
	int st;
	cr_assert_eq(th_wait(child, 5000, &st), 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker status %d", WEXITSTATUS(st));
	FILE *f = fopen(th_protd_log(again), "r");
	char line[1024];
	bool said = false;
	while (f && fgets(line, sizeof line, f))
		said |= strstr(line, "re-adopted") != NULL;
	if (f)
		fclose(f);
	cr_assert(said, "protd did not log the re-adoption");
	prot_close(p);
	th_protd_stop(again);
}

/* ---- a second protd on a served segment ------------------------------------------------------------- */
Test(restart, second_protd_refused)
{
	seg = th_segname("rs-second");
	const char *ini = th_write_file("protd.ini", INI(8));
	pid_t pid = th_protd_start(ini, seg, NULL);
	char want[128];
	snprintf(want, sizeof want, "is served by protd pid %d", (int)pid);
	const char *log = refused(ini, "--recreate");
	cr_assert(strstr(log, want), "log: %s", log);
	prot_t *p = th_open(seg, 2000);
	struct prot_info info;
	cr_assert_eq(prot_get_info(p, &info), 0);
	cr_assert_eq(info.protd_pid, pid, "the first protd lost its segment");
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- incompatible segments ---------------------------------------------------------------------------- */
Test(restart, other_geometry_refused_unless_recreate)
{
	seg = th_segname("rs-geom");
	const char *ini8 = th_write_file("p8.ini", INI(8));
	pid_t pid = th_protd_start(ini8, seg, "--keep-segment", NULL);
	prot_t *p = th_open(seg, 2000);
	atomic_store(&stats(p)->calls, 99);
	prot_close(p);
	th_protd_stop(pid);
	cr_assert(exists(seg));

	const char *ini16 = th_write_file("p16.ini", INI(16));
	const char *log = refused(ini16, NULL);
	cr_assert(strstr(log, "has another geometry"), "log: %s", log);
	cr_assert(strstr(log, "--recreate"), "log: %s", log);

	pid = th_protd_start(ini16, seg, "--recreate", NULL);
	p = th_open(seg, 2000);
	cr_assert_eq(seg_count(prot_hdr(p), REG_KEYS), 16);
	cr_assert_eq(atomic_load(&stats(p)->calls), 0, "a recreated segment starts from zero");
	prot_close(p);
	th_protd_stop(pid);
}

Test(restart, other_abi_refused)
{
	seg = th_segname("rs-abi");
	const char *ini = th_write_file("protd.ini", INI(8));
	pid_t pid = th_protd_start(ini, seg, "--keep-segment", NULL);
	th_protd_stop(pid);
	int fd = shm_open(seg, O_RDWR, 0);
	cr_assert_geq(fd, 0);
	struct prot_shm_header *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(h, MAP_FAILED);
	h->abi_version = PROT_ABI_VERSION + 1;
	munmap(h, sizeof *h);
	close(fd);
	const char *log = refused(ini, NULL);
	cr_assert(strstr(log, "is not usable"), "log: %s", log);
}

Test(restart, untrusted_mode_refused)
{
	seg = th_segname("rs-mode");
	int fd = shm_open(seg, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fchmod(fd, 0666), 0);
	cr_assert_eq(ftruncate(fd, 4096), 0);
	close(fd);
	const char *ini = th_write_file("protd.ini", INI(8));
	const char *log = refused(ini, "--recreate");
	cr_assert(strstr(log, "writable beyond the configured 0600"), "log: %s", log);
	cr_assert(exists(seg), "protd removed a segment it does not trust");
}

Test(restart, mode_is_exact_whatever_the_umask)
{
	seg = th_segname("rs-umask");
	const char *ini = th_write_file("protd.ini", "[segment]\nmode = 0640\nmax_keys = 4\n"
	                                             "rate_entities = 64\nevents = 64\n");
	mode_t old = umask(0077); /* inherited by protd */
	pid_t pid = th_protd_start(ini, seg, NULL);
	umask(old);
	char path[128];
	snprintf(path, sizeof path, "/dev/shm/%s", seg + 1);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640);
	th_protd_stop(pid);
}

/* ---- planned restarts and clean stops ----------------------------------------------------------------- */
Test(restart, keep_segment_then_readopt)
{
	seg = th_segname("rs-keep");
	const char *ini = th_write_file("protd.ini", INI(8));
	pid_t pid = th_protd_start(ini, seg, "--keep-segment", NULL);
	prot_t *p = th_open(seg, 2000);
	atomic_store(&stats(p)->calls, 31337);
	int st = th_protd_stop(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert(exists(seg), "--keep-segment removed the segment");
	struct prot_shm_header *h = prot_hdr(p);
	cr_assert_eq(atomic_load(&h->state), SEG_STATE_LIVE);
	cr_assert_eq(atomic_load(&h->protd_pid), 0);
	cr_assert_eq(access(sock_path(), F_OK), -1, "control socket left behind");

	pid = th_protd_start(ini, seg, NULL);
	cr_assert_eq(prot_hdr(p), h, "the client had to re-attach: the segment was not re-adopted");
	cr_assert_eq(atomic_load(&stats(p)->calls), 31337);
	prot_close(p);
	th_protd_stop(pid);
}

Test(restart, clean_stop_removes_segment_and_socket)
{
	seg = th_segname("rs-clean");
	const char *ini = th_write_file("protd.ini", INI(8));
	pid_t pid = th_protd_start(ini, seg, NULL);
	prot_t *p = th_open(seg, 2000);
	cr_assert_eq(access(sock_path(), F_OK), 0, "no control socket at %s", sock_path());
	struct prot_shm_header *h = prot_hdr(p);
	int st = th_protd_stop(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	cr_assert(!exists(seg), "segment left behind");
	cr_assert_eq(access(sock_path(), F_OK), -1, "control socket left behind");
	cr_assert_eq(atomic_load(&h->state), SEG_STATE_RETIRED, "not marked retired");
	cr_assert_eq(atomic_load(&h->protd_pid), 0);
	prot_close(p);
}

Test(restart, sigint_stops_cleanly)
{
	seg = th_segname("rs-int");
	const char *ini = th_write_file("protd.ini", INI(8));
	pid_t pid = th_protd_start(ini, seg, NULL);
	kill(pid, SIGINT);
	int st;
	cr_assert_eq(th_wait(pid, 5000, &st), 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert(!exists(seg));
}
