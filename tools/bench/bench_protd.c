/* bench_protd.c — the bench's own protd: an INI written to the bench's temporary directory with
 * the keys, breakers and pools the rows need, a private segment name (/prot-bench-<pid>), a bounded
 * wait until the segment is served, and a stop by pid (SIGTERM, then SIGKILL) that also unlinks the
 * segment and the control socket. A second one, the same but for its segment
 * (/prot-bench-<pid>-huge, [segment] huge_pages), serves the rows on huge pages (bench_huge.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "seg_place.h"

/* One protd of the bench: its pid, its segment, and the suffix of its segment's and files' names. */
struct instance {
	pid_t pid;
	char seg[64];
	const char *tag;
};
static struct instance main_d = {0, "", ""}, huge_d = {0, "", "-huge"};

static const char *inst_file(const struct bench *b, const struct instance *d, const char *what,
                             char *buf, size_t len)
{
	char name[48];
	snprintf(name, sizeof name, "protd%s.%s", d->tag, what);
	return bench_tmpfile(b, name, buf, len);
}

/* $PROTD, else the protd of the same build tree: <dir of this executable>/../../daemon/protd. */
static const char *protd_path(char *buf, size_t len)
{
	const char *env = getenv("PROTD");
	if (env && *env)
		return env;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return "protd";
	self[n] = 0;
	snprintf(buf, len, "%s/../../daemon/protd", dirname(self));
	return buf;
}

static int write_ini(const struct bench *b, const struct instance *d, const char *huge, const char *path)
{
	char sock[128];
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	inst_file(b, d, "sock", sock, sizeof sock);
	fprintf(f,
	        "; written by protbench for its own protd; removed at exit\n"
	        "[segment]\nname = %s\nmode = 0600\nmax_keys = 16\nmax_breakers = 8\nmax_pools = 4\n"
	        "pool_max_slots = 16\npool_max_waiters = 64\nrate_entities = %llu\nevents = 1024\n"
	        "sliding_buckets = 8\nsliding_max_limit = 32768\nhuge_pages = %s\n\n"
	        "[daemon]\ntick = 10ms\nreclaim_interval = 100ms\ncontrol_socket = %s\n\n",
	        d->seg, (unsigned long long)b->sz.rate_entities, huge ? huge : "off", sock);
	/* A global key (README "Global limits") on a Redis that is not there: the host is degraded
	 * and decides on its local share (hosts = 1: the whole limit). A decision reads the same grant
	 * words whether protd leased them or wrote the share, so the row is the global hot path. */
	fprintf(f, "[redis]\naddress = unix:%s.none\nhosts = 1\n\n[key bench_global]\nrate_limit = 10000000\n"
	           "rate_window = 100ms\nrate_scope = global\n\n[key bench_fw_cal]\nrate_limit = 10000000\n"
	           "rate_window = 100ms\nrate_clock = realtime\n\n", sock);
	/* Admitted rows: a limit no process reaches (10M per 100 ms). Denied rows: 1 per 30 days,
	 * protd's longest window (windows are aligned on multiples of their length: a short one could
	 * roll over mid-row). The entity keys' windows are as long: no bucket expires (and is swept)
	 * during the run, except those of bench_churn (GCRA, T = 10 ns: expired 100 ms after use),
	 * whose row is about that. The two keys of the repeated first-use rows (bench_rate.c) admit an
	 * entity whose group is full without a bucket instead of failing the row: at the occupancy they
	 * reach (under half the table, a smoke run's small one included) that is rarer than 1 in 10^4
	 * decisions, and their notes give the buckets actually in use. */
	static const struct {
		const char *name, *algo, *limit, *window, *on_full, *clock;
	} keys[] = {
		{"bench_fw", "fixed_window", "10000000", "100ms", "deny", NULL},
		{"bench_gcra", "gcra", "10000000", "100ms", "deny", NULL},
		/* the same on CLOCK_MONOTONIC_COARSE (GCRA: T = 10 ns, so 10M per 100 ms cannot run out
		 * however the coarse clock lags) */
		{"bench_fw_coarse", "fixed_window", "10000000", "100ms", "deny", "coarse"},
		{"bench_gcra_coarse", "gcra", "10000000", "100ms", "deny", "coarse"},
		{"bench_deny_fw", "fixed_window", "1", "720h", "deny", NULL},
		{"bench_deny_gcra", "gcra", "1", "720h", "deny", NULL},
		/* the sliding window's largest ring: 32768 per 1 ms is more than one process decides */
		{"bench_sw", "sliding_window", "32768", "1ms", "deny", NULL},
		{"bench_deny_sw", "sliding_window", "1", "720h", "deny", NULL},
		{"bench_ent", "fixed_window", "10000000", "720h", "deny", NULL},
		{"bench_ins", "fixed_window", "10000000", "720h", "allow", NULL},
		{"bench_churn", "gcra", "10000000", "100ms", "allow", NULL},
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		fprintf(f, "[key %s]\nrate_limit = %s\nrate_window = %s\nrate_algorithm = %s\nrate_on_full = %s\n"
		        "rate_clock = %s\n\n", keys[i].name, keys[i].limit, keys[i].window, keys[i].algo,
		        keys[i].on_full, keys[i].clock ? keys[i].clock : "monotonic");
	fprintf(f,
	        "[key bench_exec]\nrate_limit = 10000000\nrate_window = 100ms\nrate_algorithm = gcra\n"
	        "breaker = bench\npool = bench\ntimeout = 5s\n\n"
	        "[breaker bench]\nstrategy = standard\ntolerance = 100\nwindow = 1s\nrefresh = 1s\n\n"
	        "[breaker bench_open]\nstrategy = standard\ntolerance = 1\nwindow = 1s\nrefresh = 1h\n\n"
	        "[pool bench]\nsize = 4\nmax_overflow = 0\ncheckout_timeout = 1s\nstrategy = lifo\n\n"
	        "[pool bench_one]\nsize = 1\nmax_overflow = 0\ncheckout_timeout = 5s\nstrategy = fifo\n");
	return fclose(f) == 0 ? 0 : -errno;
}

static pid_t spawn_protd(const struct bench *b, const struct instance *d, const char *exe, const char *ini)
{
	char log[128];
	inst_file(b, d, "log", log, sizeof log);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* a crashed bench still stops its protd */
		bench_pin_child(BENCH_PIN_SERVER);
		bench_child_log(log);
		execl(exe, exe, "-c", ini, "--segment", d->seg, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	if (pid > 0)
		bench_track_pid(pid);
	return pid;
}

/* The reason a start failed: the first line of protd's log that names a file position (a config
 * error: "FILE:LINE: ..."), else its last line. */
static void log_tail(const struct bench *b, const struct instance *d, char *out, size_t len)
{
	char path[128], line[256] = "";
	FILE *f = fopen(inst_file(b, d, "log", path, sizeof path), "r");
	bool pinned = false;
	out[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof line, f) && !pinned) {
		pinned = strstr(line, ".ini:") != NULL;
		if (line[0] != '\n')
			snprintf(out, len, "%s", line);
	}
	fclose(f);
	out[strcspn(out, "\n")] = 0;
}

/* Bounded (5 s): open the segment once protd serves it. */
static int wait_served(const struct instance *d, prot_t **out)
{
	uint64_t end = bench_now_ns() + 5000000000u;
	pid_t pid = d->pid;
	int r = -ETIMEDOUT;
	while (bench_now_ns() < end) {
		prot_t *p = NULL;
		struct prot_info info;
		r = prot_open(d->seg, 0, &p);
		if (r == 0 && prot_get_info(p, &info) == 0 && info.protd_pid == pid) {
			*out = p;
			return 0;
		}
		prot_close(p);
		if (kill(pid, 0) < 0 || waitpid(pid, NULL, WNOHANG) == pid)
			return -ECHILD;
		usleep(2000);
	}
	return r;
}

static void stop(struct bench *b, struct instance *d, prot_t *p)
{
	char sock[128];
	prot_close(p);
	if (d->pid > 0) {
		bench_reap(d->pid, 5000, true);
		d->pid = 0;
	}
	/* protd removes it on a clean stop; this covers the others (wherever huge_pages put it) */
	seg_place_unlink(SEG_HUGE_OFF, d->seg);
	seg_place_unlink(SEG_HUGE_HUGETLBFS, d->seg);
	unlink(inst_file(b, d, "sock", sock, sizeof sock));
}

/* Start protd d on its segment with huge_pages = huge (NULL: off) and open it: 0 and *out, or a
 * negative errno with the reason in err. */
static int start(struct bench *b, struct instance *d, const char *huge, prot_t **out, char *err, size_t n)
{
	char exe_buf[PATH_MAX + 32], ini[128], tail[120];
	const char *exe = protd_path(exe_buf, sizeof exe_buf);
	snprintf(d->seg, sizeof d->seg, "/prot-bench-%d%s", (int)getpid(), d->tag);
	inst_file(b, d, "ini", ini, sizeof ini);
	int r = write_ini(b, d, huge, ini);
	if (r < 0) {
		snprintf(err, n, "cannot write %s: %s", ini, strerror(-r));
		return r;
	}
	if (access(exe, X_OK) < 0) {
		snprintf(err, n, "protd not found at %.120s (set $PROTD)", exe);
		return -ENOENT;
	}
	d->pid = spawn_protd(b, d, exe, ini);
	if (d->pid < 0) {
		snprintf(err, n, "fork: %s", strerror(errno));
		return -errno;
	}
	r = wait_served(d, out);
	if (r < 0) {
		log_tail(b, d, tail, sizeof tail);
		snprintf(err, n, "protd did not serve %s: %s%s%s", d->seg,
		         r == -ECHILD ? "it exited" : prot_strerror(r), *tail ? "; log: " : "", tail);
		stop(b, d, NULL);
	}
	return r;
}

int bench_protd_start(struct bench *b)
{
	int r = start(b, &main_d, NULL, &b->prot, b->prot_error, sizeof b->prot_error);
	snprintf(b->seg, sizeof b->seg, "%s", main_d.seg);
	return r;
}

void bench_protd_stop(struct bench *b)
{
	stop(b, &main_d, b->prot);
	b->prot = NULL;
}

prot_t *bench_protd_start_huge(struct bench *b, const char *mode, char *err, size_t n)
{
	prot_t *p = NULL;
	return start(b, &huge_d, mode, &p, err, n) == 0 ? p : NULL;
}

void bench_protd_stop_huge(struct bench *b, prot_t *p)
{
	stop(b, &huge_d, p);
}
