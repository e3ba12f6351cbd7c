/* bench.h — protbench's private interface: the rows it reports, the workload abstraction every
 * measured operation implements, and the entry points of its parts (prot rows, the mutex, Unix-socket
 * and Redis baselines, the process team, the report).
 *
 * A workload is setup / batch / teardown: setup runs in the process that measures (the parent for
 * single-process rows, each forked worker for the scaling rows), batch(n) performs n operations and
 * returns 0 or a negative error, so the timing loop around it costs one indirect call per batch.
 */
#ifndef PROT_BENCH_H
#define PROT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "prot.h"

/* Every row the bench reports, in print order: X(ID, KIND, LABEL). The labels are stable (the smoke
 * test looks for each of them); sizes shrink under --smoke/--quick but the labels do not. */
#define BENCH_ROWS(X)                                                                              \
	X(RATE_HOT_FW, BK_SINGLE, "prot rate check, hot key, fixed window, admitted")              \
	X(RATE_HOT_FW_CAL, BK_SINGLE, "prot rate check, hot key, fixed window, calendar clock")    \
	X(RATE_HOT_GLOBAL, BK_SINGLE, "prot rate check, hot key, global fixed window, admitted")   \
	X(RATE_HOT_GCRA, BK_SINGLE, "prot rate check, hot key, GCRA, admitted")                    \
	X(RATE_DENY_FW, BK_SINGLE, "prot rate check, hot key, fixed window, denied")               \
	X(RATE_DENY_GCRA, BK_SINGLE, "prot rate check, hot key, GCRA, denied")                     \
	X(RATE_HOT_SW, BK_SINGLE, "prot rate check, hot key, sliding window, admitted")            \
	X(RATE_DENY_SW, BK_SINGLE, "prot rate check, hot key, sliding window, denied")             \
	X(RATE_HOT_FW_COARSE, BK_SINGLE, "prot rate check, hot key, fixed window, coarse clock")   \
	X(RATE_HOT_GCRA_COARSE, BK_SINGLE, "prot rate check, hot key, GCRA, coarse clock")         \
	X(RATE_INSERT, BK_SINGLE, "prot rate check, first use of an entity (insert)")              \
	X(RATE_100K, BK_SINGLE, "prot rate check, 100k entities, uniform")                         \
	X(RATE_1M, BK_SINGLE, "prot rate check, 1M entities, uniform")                             \
	X(RATE_1M_HUGE, BK_SINGLE, "prot rate check, 1M entities, uniform, huge pages")            \
	X(RATE_INSERT_100K, BK_SINGLE, "prot rate check, first use, 100k set, pages mapped")       \
	X(RATE_CHURN, BK_SINGLE, "prot rate check, churn (first use, GCRA, sweeping)")             \
	X(MX_HOT_FW, BK_SINGLE, "mutex baseline, hot key, fixed window")                           \
	X(MX_HOT_GCRA, BK_SINGLE, "mutex baseline, hot key, GCRA")                                 \
	X(MX_100K, BK_SINGLE, "mutex baseline, 100k entities, uniform")                            \
	X(MX_1M, BK_SINGLE, "mutex baseline, 1M entities, uniform")                                \
	X(MX_1M_HUGE, BK_SINGLE, "mutex baseline, 1M entities, uniform, huge pages")               \
	X(MX_HOT_FW_COARSE, BK_SINGLE, "mutex baseline, hot key, fixed window, coarse clock")      \
	X(FLOOR_CHASE, BK_SINGLE, "floor: dependent load, random line, rate table's size")         \
	X(FLOOR_CHASE_HUGE, BK_SINGLE, "floor: dependent load, rate table's size, huge pages")     \
	X(CLOCK_MONO, BK_SINGLE, "floor: clock_gettime(CLOCK_MONOTONIC)")                          \
	X(CLOCK_COARSE, BK_SINGLE, "floor: clock_gettime(CLOCK_MONOTONIC_COARSE)")                 \
	X(CAS_PRIVATE, BK_SINGLE, "floor: compare-and-swap on a private line")                     \
	X(BRK_DIRECT, BK_SINGLE, "no-op called directly")                                          \
	X(BRK_CLOSED, BK_SINGLE, "prot breaker execute, closed, no-op")                            \
	X(BRK_OVERHEAD, BK_SINGLE, "prot breaker overhead, closed (execute - direct)")             \
	X(BRK_OPEN, BK_SINGLE, "prot breaker execute, open (rejected)")                            \
	X(POOL_UNCONT, BK_SINGLE, "prot pool checkout + checkin, uncontended")                     \
	X(EXEC_FULL, BK_SINGLE, "prot execute, rate + breaker + pool, no-op")                      \
	X(TEL_CHECK, BK_SINGLE, "telemetry with no handler, one event site")                       \
	X(TEL_EXEC, BK_SINGLE, "telemetry with no handler, per prot_execute (6 sites)")            \
	X(UDS_RTT, BK_SINGLE, "unix-socket daemon, fixed window, round trip")                      \
	X(REDIS_FW_RTT, BK_SINGLE, "redis INCR+PEXPIRE (MULTI/EXEC), round trip")                  \
	X(REDIS_GCRA_RTT, BK_SINGLE, "redis GCRA (EVALSHA), round trip")                           \
	X(REDIS_FW_PIPE, BK_SINGLE, "redis INCR+PEXPIRE (MULTI/EXEC), pipeline 64")                \
	X(REDIS_GCRA_PIPE, BK_SINGLE, "redis GCRA (EVALSHA), pipeline 64")                         \
	X(SC_PROT_FW, BK_SCALE, "prot, hot key, fixed window")                                     \
	X(SC_PROT_GCRA, BK_SCALE, "prot, hot key, GCRA")                                           \
	X(SC_PROT_SW, BK_SCALE, "prot, hot key, sliding window")                                   \
	X(SC_MX_FW, BK_SCALE, "mutex, hot key, fixed window")                                      \
	X(SC_MX_GCRA, BK_SCALE, "mutex, hot key, GCRA")                                            \
	X(SC_PROT_SPREAD, BK_SCALE, "prot, one entity per process, fixed window")                  \
	X(SC_MX_SPREAD, BK_SCALE, "mutex, one entity per process, fixed window")                   \
	X(SC_UDS, BK_SCALE, "unix-socket daemon, fixed window")                                    \
	X(SC_REDIS_FW, BK_SCALE, "redis INCR+PEXPIRE, 1 round trip each")                          \
	X(SC_REDIS_FW_PIPE, BK_SCALE, "redis INCR+PEXPIRE, pipeline 64")                           \
	X(SC_REDIS_GCRA, BK_SCALE, "redis GCRA, 1 round trip each")                                \
	X(SC_REDIS_GCRA_PIPE, BK_SCALE, "redis GCRA, pipeline 64")                                 \
	X(HANDOFF, BK_LATENCY, "prot pool hand-off, pool of 1")                                    \
	X(RECLAIM_KILL9, BK_RECLAIM, "prot pool lease back after kill -9 of its holder")

/* BK_RECLAIM: one cell of samples (p50, p99, max), the time from a death to its lease's reuse. */
enum bench_kind { BK_SINGLE, BK_SCALE, BK_LATENCY, BK_RECLAIM };

/* A column title of the first table: the smoke test looks for it. */
#define BENCH_HEADER_MARK "median ns/op"

enum bench_row_id {
#define BENCH_ROW_ENUM(id, kind, label) ROW_##id,
	BENCH_ROWS(BENCH_ROW_ENUM)
#undef BENCH_ROW_ENUM
	ROW_COUNT_
};

#define BENCH_MAXP 8       /* entries of a --procs list */
#define BENCH_MAX_WORKERS 64

/* One measured cell: a row at one process count. Times are ns per operation (for the scaling rows:
 * wall time over the aggregate count, i.e. the inverse of the aggregate throughput). */
struct bench_stat {
	int state;          /* 0 not run, 1 measured, -1 skipped or failed (see note) */
	int procs;
	double med, min, max; /* ns/op over the repetitions */
	double ops_s;       /* at the median */
	double p50, p99;    /* BK_LATENCY: ns */
	uint64_t samples;
	char note[160];
};

struct bench_sizes {
	uint64_t hot_ops;    /* operations per repetition, fast single-process rows */
	uint64_t slow_ops;   /* per repetition, round-trip rows (socket, Redis) */
	uint32_t ent_small, ent_large; /* the "100k" and "1M" entity sets */
	int reps;            /* repetitions, single-process rows */
	int scale_reps;      /* repetitions, scaling rows */
	int scale_ms;        /* duration of one scaling repetition */
	int handoff_ms;      /* duration of one hand-off repetition */
	uint64_t rate_entities; /* segment capacity written to protd's INI */
};

struct bench {
	const char *mode;    /* "full", "quick", "smoke" */
	struct bench_sizes sz;
	int procs[BENCH_MAXP];
	int nprocs;
	bool json;
	bool pin;            /* --pin: processes pinned to CPUs (bench_pin.c) */
	int chaos_s;         /* --chaos SECONDS: only the chaos soak */
	char tmpdir[64];
	char loadavg[48];    /* /proc/loadavg when the run started */
	const char *argv0;
	prot_t *prot;        /* NULL when protd could not be started */
	char seg[64];
	char prot_error[160];/* why the prot rows did not run */
	int huge;            /* the huge pages of the *_HUGE rows (enum seg_huge; 0: none: bench_huge.c) */
	char huge_why[160];  /* which, or why there are none */
	struct bench_stat res[ROW_COUNT_][BENCH_MAXP];
	/* memory figures */
	uint64_t seg_example, seg_1m, seg_run;
	double lost_1m;          /* of 1M random entities, not placed at rate_entities = 1M (a
	                            simulation of the table's two-choice placement, bench_memory.c) */
	uint64_t fit_1m, seg_1m_fit; /* rate_entities (and segment) where 1M random entities fit */
	char seg_example_note[96];
	int failures;        /* rows that failed (not skipped): the exit code is 1 when > 0 */
	/* entity ids "user:NNNNNNN", prebuilt so that no formatting is timed */
	char (*ents)[16];
	uint32_t nents;
};

/* ---- workloads ---------------------------------------------------------------------------- */
struct bench_work {
	void *(*setup)(void *arg, int worker); /* NULL on failure */
	int (*batch)(void *state, uint64_t n);  /* n operations; 0 or a negative error */
	void (*teardown)(void *state);
	void *arg;
	uint64_t chunk;                         /* scaling rows: ops per batch call (0: 64) */
};

/* Per-worker state of the workloads that pick entities at random: their argument and a random
 * stream of their own (bench_proc.c). */
struct bench_rstate {
	const void *arg;
	uint64_t rng;
	int worker;
};
void *bench_rstate_new(void *arg, int worker);
void bench_rstate_free(void *st);
/* Workloads whose state is their argument. */
void *bench_arg_setup(void *arg, int worker);
void bench_arg_teardown(void *st);

const char *bench_row_label(int row);
int bench_cells(const struct bench *b, int row);
int bench_cell_procs(const struct bench *b, int row, int cell);
/* Record a skipped (ok = true) or failed row at every process count. */
void bench_skip(struct bench *b, int row, bool failed, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* bench_proc.c: measuring. */
#define BENCH_EDENIED (-9001)  /* a row that must be admitted was denied (or the reverse) */
const char *bench_strerror(int err);
uint64_t bench_now_ns(void);
uint64_t bench_now_coarse_ns(void); /* CLOCK_MONOTONIC_COARSE */
/* Single process: warm up, then reps timed batches of n ops. */
int bench_single(struct bench *b, int row, const struct bench_work *w, uint64_t n, int reps);
/* b->procs[] processes each running w for b->sz.scale_ms, repeated; aggregate throughput. */
int bench_scale(struct bench *b, int row, const struct bench_work *w);
/* One repetition with procs workers: total ops and wall ns. 0 or negative error. */
int bench_team(int procs, int duration_ms, const struct bench_work *w, uint64_t *ops, uint64_t *ns);
/* Wait for pid (after a SIGTERM when term_first) at most timeout_ms, then SIGKILL. Returns the
 * wait status. */
int bench_reap(pid_t pid, int timeout_ms, bool term_first);
void bench_stat_set(struct bench_stat *s, double *ns_per_op, int reps, int procs);

/* bench_protd.c: the bench's own protd; bench_prot.c: the prot rows; bench_rate.c: the rate rows
 * among them. */
int bench_protd_start(struct bench *b);
void bench_protd_stop(struct bench *b);
void bench_prot_rows(struct bench *b);
void bench_rate_rows(struct bench *b);
/* bench_floor.c: the floor rows (dependent loads over the rate table's size, clocks, a CAS). */
void bench_floor_rows(struct bench *b);

/* bench_huge.c: the rows on huge pages. init picks the backing this host offers (hugetlbfs with
 * enough free pages, else transparent huge pages on /dev/shm; b->huge, b->huge_why); map_region
 * maps a region of bytes as protd maps its segment, on 4 KiB pages (huge false) or b->huge's (0 or
 * a negative errno; what describes it); rate_rows runs RATE_1M_HUGE on a second protd. */
void bench_huge_init(struct bench *b);
struct bench_region {
	void *p;
	size_t size; /* bytes mapped: the size asked for, in whole huge pages on huge pages */
};
int bench_map_region(const struct bench *b, bool huge, size_t bytes, struct bench_region *r, char *what,
                     size_t n);
void bench_unmap_region(struct bench_region *r);
void bench_huge_rate_rows(struct bench *b);
/* bench_rate.c: the first use of the 1M entities on handle p, then their lookups as row `row`. */
void bench_rate_1m_on(struct bench *b, prot_t *p, int row);
/* bench_protd.c: a second protd on its own segment backed by huge_pages = mode (NULL on failure,
 * with the reason in err); stop it with bench_protd_stop_huge. */
prot_t *bench_protd_start_huge(struct bench *b, const char *mode, char *err, size_t n);
void bench_protd_stop_huge(struct bench *b, prot_t *p);

/* bench_pin.c: --pin. init records the allowed CPUs (and pins this process when pin); every
 * forked child calls bench_pin_child with its worker index or one of these. */
#define BENCH_PIN_SERVER (-1) /* protd, redis-server, the socket daemon */
#define BENCH_PIN_FREE (-2)   /* not a measured process: the whole start set */
int bench_pin_init(bool pin);
void bench_pin_child(int slot);
bool bench_pinned(void);
const char *bench_pin_describe(char *buf, size_t len);
/* bench_reclaim.c: the reclaim row (on the bench's protd) and `--chaos SECONDS` (exit status). */
void bench_reclaim_rows(struct bench *b);
int bench_chaos(struct bench *b, int seconds);

/* bench_memory.c */
void bench_memory(struct bench *b);
double bench_bytes_per_entity(void);
/* Table bytes per live entity when the first of 1 Mi buckets' random entities is refused. */
double bench_bytes_at_first_refusal(void);
/* Bytes of the rate table (REG_RATE_GROUPS) protd lays out for rate_entities; 0 if it cannot. */
uint64_t bench_rate_table_bytes(uint64_t rate_entities);

/* bench_table.c: the nginx limit_req-style table the baselines decide with. */
struct bt_table;
size_t bt_bytes(uint32_t max_entities);
void bt_init(struct bt_table *t, uint32_t max_entities);
/* One fixed-window or GCRA decision (1 admitted, 0 denied, negative: table full). */
int bt_decide(struct bt_table *t, int algo, const char *op, const char *entity, uint64_t limit,
              uint64_t window_ms, uint64_t now_ns);

/* bench_mutex.c, bench_uds.c, bench_redis.c: the baselines. */
void bench_mutex_rows(struct bench *b);
void bench_uds_rows(struct bench *b);
void bench_redis_rows(struct bench *b);

/* bench_report.c */
void bench_report(const struct bench *b);

/* protbench.c: cleanup of what the bench started (for error paths and signals). */
void bench_track_pid(pid_t pid);
void bench_untrack_pid(pid_t pid);
/* Path of a file in the bench's temporary directory. */
const char *bench_tmpfile(const struct bench *b, const char *name, char *buf, size_t len);
/* In a forked server child: stdout and stderr go to the file at path (kept as they are if it
 * cannot be opened). */
void bench_child_log(const char *path);

/* Shared workload parameters: the limits every rate row uses (huge: every call is admitted). */
#define BENCH_LIMIT 10000000u
#define BENCH_WINDOW_MS 100u
#define BENCH_OP "bench_fw"

/* xorshift64*: cheap enough that it does not weigh on the 1M-entity rows (same in every row). */
static inline uint32_t bench_rand(uint64_t *s, uint32_t n)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return (uint32_t)(((x * 0x2545f4914f6cdd1dULL) >> 32) * n >> 32);
}

/* The entity of a workload's next decision: uniformly random among nents, else this worker's own
 * (ents without nents: no two workers share a bucket), else the one hot key. */
static inline const char *bench_entity(struct bench_rstate *s, const char (*ents)[16], uint32_t nents)
{
	if (nents)
		return ents[bench_rand(&s->rng, nents)];
	return ents ? ents[s->worker] : "hot";
}

#endif
