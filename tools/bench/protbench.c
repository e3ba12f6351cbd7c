/* protbench.c — prot against the alternatives, in one run on one machine: the prot rows on the
 * bench's own protd, then the floors (dependent loads over the rate table's size, clock reads, a
 * CAS: bench_floor.c), then the baselines (a mutex in shared memory, a Unix-socket deciding
 * daemon, Redis on loopback), then the tables, ratios and targets (bench_report.c).
 *
 *   protbench [--json] [--smoke | --quick] [--procs 1,2,4,8] [--pin]
 *   protbench --chaos SECONDS     the long kill -9 soak only (bench_reclaim.c)
 *
 * This file owns the options, the run order, the temporary directory, and the cleanup of every
 * process the bench started (by pid, also on SIGINT/SIGTERM and on its own alarm: 60 s for
 * --smoke, 300 s otherwise). Exit status: 0 when every row that was not skipped measured, 1 when
 * one failed, 2 on a usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#include "bench.h"

/* rate_entities: 1M random entities fit (no group overflows) only in 4M buckets; see bench_memory.c. */
static const struct bench_sizes sizes_full = {
	.hot_ops = 1000000, .slow_ops = 4000, .ent_small = 100000, .ent_large = 1000000, .reps = 7,
	.scale_reps = 5, .scale_ms = 100, .handoff_ms = 400, .rate_entities = 4000000,
};
static const struct bench_sizes sizes_quick = {
	.hot_ops = 200000, .slow_ops = 1000, .ent_small = 100000, .ent_large = 1000000, .reps = 3,
	.scale_reps = 1, .scale_ms = 100, .handoff_ms = 200, .rate_entities = 4000000,
};
static const struct bench_sizes sizes_smoke = {
	.hot_ops = 2000, .slow_ops = 50, .ent_small = 1000, .ent_large = 10000, .reps = 2,
	.scale_reps = 1, .scale_ms = 20, .handoff_ms = 30, .rate_entities = 32768,
};

/* ---- what to clean up: processes by pid, the temporary directory, the segment ------------- */
#define MAX_TRACKED 128
static volatile pid_t tracked[MAX_TRACKED];
static char tmpdir_path[64];
static char seg_path[96];

void bench_track_pid(pid_t pid)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == 0) {
			tracked[i] = pid;
			return;
		}
}

void bench_untrack_pid(pid_t pid)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == pid)
			tracked[i] = 0;
}

const char *bench_tmpfile(const struct bench *b, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", b->tmpdir, name);
	return buf;
}

static void remove_tmpdir(void)
{
	if (!tmpdir_path[0])
		return;
	DIR *d = opendir(tmpdir_path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char p[sizeof tmpdir_path + 256];
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", tmpdir_path, e->d_name);
			unlink(p);
		}
	}
	if (d)
		closedir(d);
	rmdir(tmpdir_path);
	tmpdir_path[0] = 0;
}

/* SIGINT/SIGTERM/SIGALRM: stop what we started and leave nothing behind (async-signal-safe calls only,
 * the children also have PR_SET_PDEATHSIG). */
static void on_signal(int sig)
{
	static const char *const files[] = {"protd.ini", "protd.log", "protd.sock", "decide.sock", "redis.log"};
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] > 0)
			kill(tracked[i], SIGTERM);
	if (seg_path[0])
		unlink(seg_path);
	for (size_t i = 0; i < sizeof files / sizeof files[0] && tmpdir_path[0]; i++) {
		char p[sizeof tmpdir_path + 16];
		size_t n = strlen(tmpdir_path), m = strlen(files[i]); /* no snprintf in a handler */
		memcpy(p, tmpdir_path, n);
		p[n] = '/';
		memcpy(p + n + 1, files[i], m + 1);
		unlink(p);
	}
	if (tmpdir_path[0])
		rmdir(tmpdir_path); /* fails if redis or protd left more: harmless */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void at_exit(void)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] > 0)
			bench_reap(tracked[i], 2000, true);
	remove_tmpdir();
}

void bench_skip(struct bench *b, int row, bool failed, const char *fmt, ...)
{
	char note[sizeof b->res[0][0].note];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(note, sizeof note, fmt, ap);
	va_end(ap);
	for (int i = 0; i < bench_cells(b, row); i++) {
		struct bench_stat *s = &b->res[row][i];
		s->state = -1;
		s->procs = bench_cell_procs(b, row, i);
		snprintf(s->note, sizeof s->note, "%s%.150s", failed ? "FAILED: " : "", note);
	}
	if (failed)
		b->failures++;
}

/* ---- options ------------------------------------------------------------------------------- */
static int usage(const char *argv0)
{
	fprintf(stderr,
	        "usage: %s [--json] [--smoke | --quick] [--procs 1,2,4,8] [--pin] | --chaos SECONDS\n"
	        "  --json    one JSON document instead of the tables\n"
	        "  --smoke   tiny sizes (seconds; for the test suite): figures are not measurements\n"
	        "  --quick   fewer repetitions\n"
	        "  --procs   process counts of the scaling rows (at most %d, each 1..%d)\n"
	        "  --pin     pin processes to CPUs (sched_setaffinity): this one to the first allowed CPU,\n"
	        "            protd, redis and the socket daemon to the last, worker i to CPU i mod N\n"
	        "  --chaos SECONDS  only the kill -9 soak: 8 workers, random kills, then leaks and counters\n"
	        "environment: PROTD (default: ../../daemon/protd from this program), PATH (redis-server)\n",
	        argv0, BENCH_MAXP, BENCH_MAX_WORKERS);
	return 2;
}

static int parse_procs(struct bench *b, const char *s)
{
	b->nprocs = 0;
	while (*s) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s || v < 1 || v > BENCH_MAX_WORKERS || b->nprocs == BENCH_MAXP)
			return -1;
		b->procs[b->nprocs++] = (int)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return b->nprocs ? 0 : -1;
}

static int parse_args(struct bench *b, int argc, char **argv)
{
	bool procs_given = false;
	b->mode = "full";
	b->sz = sizes_full;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			b->json = true;
		} else if (strcmp(argv[i], "--pin") == 0) {
			b->pin = true;
		} else if (strcmp(argv[i], "--smoke") == 0) {
			b->mode = "smoke";
			b->sz = sizes_smoke;
		} else if (strcmp(argv[i], "--quick") == 0) {
			b->mode = "quick";
			b->sz = sizes_quick;
		} else if (strcmp(argv[i], "--chaos") == 0 && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end || v < 1 || v > 86400) {
				fprintf(stderr, "protbench: --chaos: '%s' is not a number of seconds (1..86400)\n", argv[i]);
				return 2;
			}
			b->chaos_s = (int)v;
			b->sz = sizes_smoke; /* the protd and segment of the smallest run */
		} else if (strcmp(argv[i], "--procs") == 0 && i + 1 < argc) {
			if (parse_procs(b, argv[++i]) < 0)
				return usage(argv[0]);
			procs_given = true;
		} else {
			return usage(argv[0]);
		}
	}
	if (!procs_given)
		parse_procs(b, strcmp(b->mode, "smoke") == 0 ? "1,2" : "1,2,4,8");
	return 0;
}

/* ---- the run -------------------------------------------------------------------------------- */
static int make_entities(struct bench *b)
{
	b->nents = b->sz.ent_large;
	b->ents = mmap(NULL, (size_t)b->nents * sizeof b->ents[0], PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->ents == MAP_FAILED)
		return -errno;
	for (uint32_t i = 0; i < b->nents; i++)
		snprintf(b->ents[i], sizeof b->ents[i], "user:%07u", i);
	return 0;
}

static void prot_unavailable(struct bench *b)
{
	for (int r = 0; r < ROW_COUNT_; r++) {
		const char *l = bench_row_label(r);
		if (strncmp(l, "prot", 4) == 0 || r == ROW_BRK_DIRECT)
			bench_skip(b, r, true, "protd not available (see above)");
	}
}

static void read_loadavg(struct bench *b)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double l1 = 0, l5 = 0, l15 = 0;
	if (f && fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
		snprintf(b->loadavg, sizeof b->loadavg, "%.2f %.2f %.2f", l1, l5, l15);
	else
		snprintf(b->loadavg, sizeof b->loadavg, "unknown");
	if (f)
		fclose(f);
}

static void progress(const struct bench *b, const char *what)
{
	if (!b->json)
		fprintf(stderr, "protbench: %s\n", what);
}

int main(int argc, char **argv)
{
	static struct bench b; /* large: results of every row */
	int r = parse_args(&b, argc, argv);
	if (r)
		return r;
	b.argv0 = argv[0];
	snprintf(tmpdir_path, sizeof tmpdir_path, "/tmp/protbench-XXXXXX");
	if (!mkdtemp(tmpdir_path)) {
		perror("protbench: mkdtemp");
		return 1;
	}
	snprintf(b.tmpdir, sizeof b.tmpdir, "%s", tmpdir_path);
	snprintf(seg_path, sizeof seg_path, "/dev/shm/prot-bench-%d", (int)getpid());
	atexit(at_exit);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	/* The bound on the whole run: a row stuck inside the library ends the bench, not the caller. */
	signal(SIGALRM, on_signal);
	alarm(b.chaos_s ? (unsigned)b.chaos_s + 60 : strcmp(b.mode, "smoke") == 0 ? 60 : 300);
	if ((r = bench_pin_init(b.pin)) < 0) {
		fprintf(stderr, "protbench: --pin: %s\n", strerror(-r));
		return 1;
	}
	if ((r = make_entities(&b)) < 0) {
		fprintf(stderr, "protbench: entity ids: %s\n", strerror(-r));
		return 1;
	}

	read_loadavg(&b);
	bench_huge_init(&b);
	progress(&b, "starting protd");
	if (b.chaos_s) {
		if (bench_protd_start(&b) != 0) {
			fprintf(stderr, "protbench: %s\n", b.prot_error);
			return 1;
		}
		r = bench_chaos(&b, b.chaos_s);
		bench_protd_stop(&b);
		return r;
	}
	if (bench_protd_start(&b) == 0) {
		progress(&b, "prot rows");
		bench_prot_rows(&b);
		progress(&b, "prot rows on huge pages");
		bench_huge_rate_rows(&b);
	} else {
		fprintf(stderr, "protbench: %s\n", b.prot_error);
		prot_unavailable(&b);
	}
	bench_memory(&b);
	bench_protd_stop(&b);
	progress(&b, "floors");
	bench_floor_rows(&b);
	progress(&b, "mutex baseline");
	bench_mutex_rows(&b);
	progress(&b, "unix-socket baseline");
	bench_uds_rows(&b);
	progress(&b, "redis baseline");
	bench_redis_rows(&b);

	bench_report(&b);
	fflush(stdout);
	return b.failures ? 1 : 0;
}

void bench_child_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
}
