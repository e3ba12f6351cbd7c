/* prot.h — the public API of libprot: shared-memory protections for multi-process programs.
 *
 * A process attaches to the segment that protd owns with prot_open() and then makes rate-limit,
 * circuit-breaker and pool decisions with atomic operations directly on that segment: no IPC on the
 * hot path. Configuration comes from protd (INI file, SIGHUP, or prot_configure() through protd's
 * control socket); clients only ever write counters and states.
 *
 * Conventions (after systemd's sd-event):
 *  - every function returns 0 (or a documented non-negative value) on success, or a negative error
 *    code: -errno for system errors, or one of the PROT_E* codes below. prot_strerror() names both.
 *  - out-parameters come last and are left untouched on failure. The documented exceptions are
 *    struct prot_detail and prot_configure_reply's reply, whose purpose is to describe a failure.
 *  - handles are opaque. The library never logs, never exits, never installs signal handlers and
 *    keeps no global mutable state: everything it owns hangs off a prot_t.
 *  - a prot_t may be shared by the threads of one process. After fork() the child may keep using
 *    the parent's handle (it detects the fork and takes on its own identity; it inherits neither
 *    pool leases nor pooled connections) or open its own.
 */
#ifndef PROT_H
#define PROT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PROT_BUILDING) && defined(__GNUC__)
#define PROT_API __attribute__((visibility("default")))
#else
#define PROT_API
#endif

/* The segment layout version this header was built for. prot_open() refuses any other. */
#define PROT_ABI_VERSION 7

/* Longest names, in bytes, without the terminating NUL. Longer ones are refused (PROT_ETOOLONG),
 * never truncated: truncation would silently merge two users. */
#define PROT_NAME_MAX 47   /* protection keys, breakers, pools */
#define PROT_ENTITY_MAX 64 /* rate-limiter entity ids, e.g. "user:123" */
#define PROT_OP_MAX 47     /* rate-limiter operation names */

/* ---------------------------------------------------------------------------------------------
 * Errors. Every error is a negative int, errno-style: -errno (-1 .. -4095) for system errors, or
 * -PROT_E* for the codes below (functions return -PROT_EBLOWN; callers test r == -PROT_EBLOWN).
 * prot_strerror() accepts either sign. The numbers are stable ABI.
 * ------------------------------------------------------------------------------------------- */
enum {
	PROT_ENOSEG = 5000,    /* segment missing: protd is not running (or another name) */
	PROT_EABI = 5001,      /* segment has another ABI version */
	PROT_ESIZE = 5002,     /* segment size does not match its header */
	PROT_ECORRUPT = 5003,  /* foreign or corrupt segment (bad magic, bad offsets) */
	PROT_ERETIRED = 5004,  /* segment was retired by protd and no successor exists yet */
	PROT_ENOKEY = 5005,    /* no such protection key */
	PROT_ENOBREAKER = 5006, /* circuit breaker not found */
	PROT_ENOPOOL = 5007,   /* pool not found */
	PROT_ERATELIMITED = 5008, /* rate limit exceeded */
	PROT_ECOST = 5009,     /* the cost can never fit the limit */
	PROT_ETABLEFULL = 5010, /* rate bucket table full and the key's policy is to deny */
	PROT_EBLOWN = 5011,    /* circuit breaker open: call rejected without running */
	PROT_EFAILED = 5012,   /* the protected operation failed (its own code is reported apart) */
	PROT_ECHECKOUT_TIMEOUT = 5013, /* no pool slot within the checkout timeout */
	PROT_EPOOLFULL = 5014, /* non-blocking checkout on a full pool */
	PROT_ETIMEOUT = 5015,  /* the call overran its timeout (it ran to completion regardless) */
	PROT_ETOOLONG = 5016,  /* a name or entity is longer than the documented maximum */
	PROT_ECAPACITY = 5017, /* a table of the segment is full (keys, breakers, pools, waiters) */
	PROT_EEXIST = 5018,    /* the object exists already */
	PROT_EINVAL_CONFIG = 5019, /* configuration value refused by protd (see the message) */
	PROT_ECONNECTOR = 5020, /* the pool connector's create() failed */
	PROT_ESTALE = 5021,    /* a token, lease or id refers to an object that has since changed */
	PROT_ENOTCONNECTED = 5022, /* protd's control socket is not reachable */
	PROT_ETORN = 5023,     /* a configuration block stayed half-written (its writer died in the
	                          middle of a change); protd repairs it when it starts */
	PROT_EDISABLED = 5024, /* the breaker is disabled (prot_breaker_blow) until prot_breaker_enable */
};

/* A static string for any code returned by this library (negative or positive), never NULL. */
PROT_API const char *prot_strerror(int err);

/* ---------------------------------------------------------------------------------------------
 * Attaching
 * ------------------------------------------------------------------------------------------- */
typedef struct prot prot_t;

#define PROT_DEFAULT_SEGMENT "/prot"

enum {
	PROT_OPEN_RDONLY = 1u << 0, /* map read-only: inspection only (protctl) */
};

/* Attach to the segment NAME (e.g. "/prot"); NULL means $PROT_SEGMENT, else PROT_DEFAULT_SEGMENT.
 * Fails with PROT_ENOSEG, -EACCES, PROT_EABI, PROT_ESIZE or PROT_ECORRUPT. */
PROT_API int prot_open(const char *name, unsigned flags, prot_t **out);
/* Detach and free the handle, destroying this process's pooled connections and returning its
 * leases. NULL is accepted. */
PROT_API void prot_close(prot_t *p);

/* What protd and the segment say about themselves. */
struct prot_info {
	char segment[64];
	uint32_t abi_version;
	uint64_t size;              /* bytes */
	uint64_t config_generation; /* bumped by every applied reload or runtime change */
	int32_t protd_pid;          /* 0 when no protd serves the segment */
	int protd_alive;            /* protd's identity lock is held: it runs (however slow) */
	uint64_t heartbeat_age_ms;
	int retired;
	uint32_t keys, max_keys, breakers, max_breakers, pools, max_pools;
	uint64_t rate_buckets_used, rate_buckets_max;
};
PROT_API int prot_get_info(prot_t *p, struct prot_info *out);

/* ---------------------------------------------------------------------------------------------
 * Rate limiter (Hammer). A bucket is identified by (operation, entity, algorithm, window).
 *
 * Identity: two scales on one entity (60 s / 100 and 1 s / 10; or another algorithm) are two
 * buckets, each exact, as Hammer keys a bucket per scale; the limit (and burst) is not part of
 * it: a reload that changes only a key's limit keeps its buckets. The entity is compared byte for
 * byte (at most PROT_ENTITY_MAX bytes; longer is PROT_ETOOLONG, never truncated): the string
 * forms take a NUL-terminated entity, the _bin forms (const void *entity, size_t entity_len) any
 * bytes, NUL included — "a", "a\0" and the 8-byte integer 12345 are three buckets. The operation
 * (a program constant, at most PROT_OP_MAX bytes, a C string) by a 64-bit keyed hash of its name
 * and its length. For prot_rate_check_key the operation is the key's name. Buckets live in a
 * fixed table sized by [segment] rate_entities (130 B each); entities are placed by a keyed hash
 * into one of two groups of 32, which fills the table to ~90 % before a new entity finds both
 * full (then the key's rate_on_full policy: PROT_ETABLEFULL, admitted and counted, or evict an
 * expired bucket of those groups; Hammer-style calls get PROT_ETABLEFULL). protd expires buckets whose window (GCRA: whose debt) has passed.
 *
 * Limits: window_ms <= 2^36 (INI rate_window and the API alike); fixed-window limit < 2^24;
 * otherwise -EINVAL. A cost above the limit (GCRA: above the burst) is PROT_ECOST. A reload that
 * changes a key's limit keeps each bucket's state (GCRA re-reads its arrival time with the new
 * interval; a fixed window keeps its count); one that changes its window, its algorithm, its clock
 * (the calendar, rate_clock = realtime, or the monotonic clocks) or between a refill_rate of 0 and
 * above 0 moves the key to new buckets (the old ones expire): all of them are the bucket's scale.
 *
 * Default algorithm: Hammer's fixed window, everywhere — algo 0 here, prot_rate_check, and an INI
 * key without rate_algorithm.
 *
 * Expiry: protd frees a bucket [daemon] rate_grace (default 100 ms, at least 20 ms) after it
 * expired, within one sweep pass more (README, "Expiry": a pass is 1 tick per 4 Ki buckets).
 *
 * Clock: CLOCK_MONOTONIC, read once per decision; a key with rate_clock = coarse uses
 * CLOCK_MONOTONIC_COARSE (cheaper; its resolution, clock_getres(), is typically 4 ms, so a window
 * boundary or an emission can be seen up to that late). A fixed-window key with rate_clock =
 * realtime follows the calendar instead: CLOCK_REALTIME, windows aligned on UTC multiples of the
 * window since the Unix epoch, so an hourly window rolls at :00 and a daily one at midnight UTC
 * (a 7-day window rolls on Thursdays, 00:00 UTC, as the epoch did). Clock steps: a step back by D
 * keeps the current window, and its count, D longer (a window already counted is never re-opened,
 * and protd does not expire it early); a step forward past the window's end rolls to the window
 * that holds the new time (as if the time had passed). realtime is refused for the other
 * algorithms (they measure durations, not the calendar). Test hook: when the environment variable
 * PROT_TEST_CLOCK_FILE names a file, every process (protd included) that reads it at its first
 * realtime decision adds the signed 64-bit nanosecond offset stored in its first 8 bytes (read
 * through a shared mapping at each decision) to CLOCK_REALTIME; the tests step the calendar with it.
 *
 * Algorithms:
 *  PROT_RATE_FIXED_WINDOW — Hammer's default. Windows are aligned on multiples of the window length
 *    on CLOCK_MONOTONIC (so every process agrees on where a window starts); at most `limit` units are
 *    admitted per window.
 *  PROT_RATE_GCRA — smooth rate of limit/window with a burst of `burst` units (default: limit);
 *    a single 64-bit theoretical-arrival-time word per bucket.
 *  PROT_RATE_SLIDING_WINDOW — Hammer's sliding window, exact: never more than `limit` admissions
 *    in any interval of length `window_ms`; a denial's retry_after_ms is the time until the oldest
 *    counted admission leaves the window. Each bucket keeps its last `limit` admission times
 *    (CLOCK_MONOTONIC microseconds) in a ring: limit <= the segment's [segment] sliding_max_limit
 *    (at most 32768), else -EINVAL; at most [segment] sliding_buckets such buckets at once (then:
 *    table full). A cost above 1 is PROT_ECOST. Status reports used (admissions in the last
 *    window), remaining, reset_after_ms (until the newest leaves) and retry_after_ms. A bucket used
 *    with another limit or window starts over. rate_clock = realtime is refused for it, as for
 *    every algorithm but the fixed window (rate_clock = coarse is allowed).
 *    -EAGAIN: its ring kept changing under the call (only a writer damaging the segment).
 *  PROT_RATE_TOKEN_BUCKET — Hammer's token bucket: `capacity` tokens, full at first use, refilled
 *    continuously at `refill_rate` tokens per window_ms (0: per second, Hammer's unit); a hit of
 *    cost n takes n tokens or is denied. Status: `remaining` is Hammer's tokens left, `limit` the
 *    capacity. A refill_rate of 0 is a budget of `capacity` units that never refills: its bucket
 *    is never expired (only prot_rate_reset frees it), and retry_after_ms / reset_after_ms are
 *    PROT_RATE_NEVER.
 *  PROT_RATE_LEAKY_BUCKET — Hammer's leaky bucket: starts empty, a hit of cost n adds n if the
 *    level stays within `capacity`, the level leaks at `leak_rate` units per window_ms (0: per
 *    second). Status: `used` is Hammer's fill level, `limit` the capacity.
 *  Both run on the GCRA word (emission interval window / rate, tolerance capacity intervals): one
 *  compare-and-swap per decision, exact across processes.
 *
 * Differences from Hammer (the README has the same table, with the reasons; issue 14 A, B, C):
 *  - a denied hit is not counted, on every algorithm, and writes nothing (Hammer v6 counts it:
 *    inspect_bucket after a deny shows 3 of 2; its sliding window stores denied hits);
 *  - token bucket: continuous refill, no remainder lost (Hammer: whole tokens, re-stamped time);
 *  - token and leaky bucket: retry_after_ms is the exact wait for the cost (Hammer: a flat 1000);
 *  - leaky bucket admits while level + cost <= capacity (Hammer: while level < capacity); a cost
 *    above the capacity is PROT_ECOST;
 *  - status of a token bucket never used is full (Hammer's get of an unknown key: 0);
 *  - rates are per window_ms (0 = per second, Hammer's only unit);
 *  - refill_rate 0 is a budget: never expired, reset only, waits PROT_RATE_NEVER;
 *  - windows are on CLOCK_MONOTONIC unless rate_clock = realtime (Hammer: always the calendar);
 *    on the calendar a step back keeps the window already counted (Hammer: an earlier window);
 *  - sliding window: a decision costs 1, more is PROT_ECOST (Hammer's sliding hit has no
 *    increment); it keeps the last `limit` admissions, limit <= sliding_max_limit <= 32768
 *    (Hammer: every request), in CLOCK_MONOTONIC microseconds (Hammer: milliseconds);
 *  - inc / get / set on the fixed and sliding window only (Hammer: every algorithm; here GCRA,
 *    token and leaky bucket: -EINVAL); a sliding window counts at most `limit`;
 *  - limits are per call in Hammer; a sliding bucket used with another limit restarts (another
 *    window or algorithm is another bucket);
 *  - one segment shared by every process of the host, exact across processes (not one node);
 *  - a bucket is (operation, entity, algorithm, window): a scale per bucket as in Hammer, the
 *    algorithm included; the limit is not part of it;
 *  - entities are at most PROT_ENTITY_MAX bytes (C strings, or any bytes with the _bin calls);
 *    longer is PROT_ETOOLONG, never truncated;
 *  - a cost above the limit (GCRA: the burst) is PROT_ECOST, not a deny;
 *  - prot_rate_reset forgets every scale of (operation, entity), as delete_buckets;
 *  - inspect_bucket is prot_rate_status(_bin, _key); updated_ms is the last admission;
 *  - times (created_ms, updated_ms, expires_at_ms) are CLOCK_MONOTONIC ms (Unix ms for a
 *    rate_clock = realtime bucket), not system time; a budget's expires_at_ms is 0;
 *  - expired buckets are freed [daemon] rate_grace (default 100 ms, at least 20 ms) after they
 *    expired, within one sweep pass more (a pass: one protd tick per 4096 buckets);
 *  - the default algorithm is the fixed window everywhere (algo 0, prot_rate_check, the INI);
 *  - window_ms <= 2^36 ms (INI and API); a fixed window counts at most 2^24 - 1 units (inc and
 *    set past it: -EOVERFLOW);
 *  - the table has a fixed size ([segment] rate_entities): both groups of a new entity full is
 *    the key's rate_on_full policy (PROT_ETABLEFULL, admitted and counted, or an eviction of a
 *    bucket that provably loses nothing, else PROT_ETABLEFULL).
 * ------------------------------------------------------------------------------------------- */
enum prot_rate_algo {
	PROT_RATE_FIXED_WINDOW = 1,
	PROT_RATE_GCRA = 2,
	PROT_RATE_SLIDING_WINDOW = 3,
	PROT_RATE_TOKEN_BUCKET = 4,
	PROT_RATE_LEAKY_BUCKET = 5,
};

/* retry_after_ms / reset_after_ms of a budget that never refills (token bucket, refill_rate 0) */
#define PROT_RATE_NEVER UINT64_MAX

struct prot_rate_limit {
	uint32_t algo;      /* enum prot_rate_algo; 0 means fixed window */
	union {
		uint64_t limit;       /* units per window, >= 1 */
		uint64_t refill_rate; /* token bucket: tokens added per window_ms (0: never refills) */
		uint64_t leak_rate;   /* leaky bucket: units leaked per window_ms, >= 1 */
	};
	uint64_t window_ms; /* >= 1; token and leaky bucket: the rate's period, 0 = 1000 (per second) */
	union {
		uint64_t burst;    /* GCRA only; 0 means `limit` */
		uint64_t capacity; /* token and leaky bucket: the bucket's size, >= 1 */
	};
};

struct prot_rate_info {
	int allowed;             /* the decision this info describes (status: would the next unit pass) */
	uint64_t limit;
	uint64_t used;           /* units counted in the current window (GCRA: equivalent units in flight) */
	uint64_t remaining;
	uint64_t window_ms;
	uint64_t reset_after_ms; /* until the bucket is fully available again */
	uint64_t retry_after_ms; /* until a unit of the given cost passes; 0 when allowed */
};

/* Hammer's inspect_bucket: a bucket's status. exists 0: never used or expired (the state is then
 * a fresh bucket's; expires_at_ms, created_ms, updated_ms are 0). Times are on the bucket's
 * clock: CLOCK_MONOTONIC ms, or Unix ms (CLOCK_REALTIME) for a key with rate_clock = realtime. */
struct prot_rate_status {
	int exists;
	uint32_t algo;             /* enum prot_rate_algo of the bucket */
	struct prot_rate_info info; /* as prot_rate_status fills it */
	uint64_t expires_at_ms;    /* when the bucket is fully available again (fixed window: the
	                              window's end; GCRA, token/leaky bucket: the theoretical
	                              arrival time); 0 for a budget that never refills */
	uint64_t created_ms;       /* when the bucket was made */
	uint64_t updated_ms;       /* its last admission (a denial changes nothing: not counted) */
};

/* Hammer's check_rate(entity, operation, limit, window): one unit, fixed window.
 * Returns 1 when allowed, 0 when rate-limited (info->retry_after_ms says how long to wait), or a
 * negative error. info may be NULL and is filled on 0 and 1. */
PROT_API int prot_rate_check(prot_t *p, const char *operation, const char *entity,
                             uint64_t limit, uint64_t window_ms, struct prot_rate_info *info);
/* The general form: any algorithm and a cost of n units. A cost that can never fit the limit is
 * PROT_ECOST, never a wait forever. Returns 1 allowed, 0 rate-limited, or a negative error. */
PROT_API int prot_rate_check_n(prot_t *p, const char *operation, const char *entity,
                               const struct prot_rate_limit *lim, uint64_t cost,
                               struct prot_rate_info *info);
/* Use the limits of protection key KEY (from the INI or prot_configure()); the operation is KEY.
 * PROT_ENOKEY if there is no such key; a key without rate_limit admits everything (returns 1). */
PROT_API int prot_rate_check_key(prot_t *p, const char *key, const char *entity, uint64_t cost,
                                 struct prot_rate_info *info);
/* Hammer's execute_with_limit: run fn(arg) only when allowed. Returns 0 and stores fn's return in
 * *fn_result when it ran, PROT_ERATELIMITED (retry_after in *info if given) when denied. */
PROT_API int prot_rate_execute(prot_t *p, const char *operation, const char *entity,
                               const struct prot_rate_limit *lim, int (*fn)(void *arg), void *arg,
                               int *fn_result, struct prot_rate_info *info);
/* The state of one bucket without charging it. A bucket never used reports full availability. */
PROT_API int prot_rate_status(prot_t *p, const char *operation, const char *entity,
                              const struct prot_rate_limit *lim, struct prot_rate_info *out);
/* Forget one entity's buckets: every scale (algorithm, window) of (operation, entity), as
 * Hammer's delete_buckets. -ENOENT when there is none. */
PROT_API int prot_rate_reset(prot_t *p, const char *operation, const char *entity);
/* Hammer v7's counters on the bucket prot_rate_check_n(lim) decides on (fixed or sliding window;
 * GCRA, token and leaky bucket: -EINVAL), exact across processes. None checks the limit.
 *  prot_rate_inc: add n units to the count of the current window (sliding: n admissions now,
 *    n <= limit, else PROT_ECOST); *count (may be NULL) = the count after it.
 *  prot_rate_get: *count = the count in the current window (sliding: admissions in the last
 *    window); 0 for a bucket that does not exist. Works on a read-only handle.
 *  prot_rate_set: make the count `count` (sliding: a reset, then `count` admissions now, not
 *    atomic against concurrent checks); *count_after (may be NULL) = the count after it.
 * A fixed window counts below 2^24: beyond, inc and set are -EOVERFLOW. */
PROT_API int prot_rate_inc(prot_t *p, const char *operation, const char *entity,
                           const struct prot_rate_limit *lim, uint64_t n, uint64_t *count);
PROT_API int prot_rate_get(prot_t *p, const char *operation, const char *entity,
                           const struct prot_rate_limit *lim, uint64_t *count);
PROT_API int prot_rate_set(prot_t *p, const char *operation, const char *entity,
                           const struct prot_rate_limit *lim, uint64_t count, uint64_t *count_after);

/* Binary entities and the rest of Hammer's calls (PROT_1.3). Every function here takes the entity
 * as (entity, entity_len): any bytes, 0 <= entity_len <= PROT_ENTITY_MAX (entity may be NULL only
 * when entity_len is 0); a longer one is PROT_ETOOLONG. Otherwise as the string forms above. */
PROT_API int prot_rate_check_bin(prot_t *p, const char *operation, const void *entity,
                                 size_t entity_len, const struct prot_rate_limit *lim,
                                 uint64_t cost, struct prot_rate_info *info);
PROT_API int prot_rate_check_key_bin(prot_t *p, const char *key, const void *entity,
                                     size_t entity_len, uint64_t cost, struct prot_rate_info *info);
/* prot_rate_execute with a cost of n units (cost 0: 1). */
PROT_API int prot_rate_execute_bin(prot_t *p, const char *operation, const void *entity,
                                   size_t entity_len, const struct prot_rate_limit *lim,
                                   uint64_t cost, int (*fn)(void *arg), void *arg, int *fn_result,
                                   struct prot_rate_info *info);
/* The whole status of one bucket under lim, charging nothing. */
PROT_API int prot_rate_status_bin(prot_t *p, const char *operation, const void *entity,
                                  size_t entity_len, const struct prot_rate_limit *lim,
                                  struct prot_rate_status *out);
/* The status of key KEY's bucket for entity, under the key's own limits (no limits passed).
 * PROT_ENOKEY if there is no such key, -EINVAL if it has no rate limiter. */
PROT_API int prot_rate_status_key(prot_t *p, const char *key, const void *entity,
                                  size_t entity_len, struct prot_rate_status *out);
PROT_API int prot_rate_reset_bin(prot_t *p, const char *operation, const void *entity,
                                 size_t entity_len);


/* ---------------------------------------------------------------------------------------------
 * Circuit breaker (fuse)
 * ------------------------------------------------------------------------------------------- */
enum prot_breaker_strategy { PROT_BREAKER_STANDARD = 1, PROT_BREAKER_RATE = 2 };
enum prot_breaker_state {
	PROT_BREAKER_CLOSED = 0,
	PROT_BREAKER_OPEN = 1,
	PROT_BREAKER_HALF_OPEN = 2,
	PROT_BREAKER_BLOWN = 3, /* disabled by prot_breaker_blow() until prot_breaker_enable() */
};
/* What an open breaker does once its refresh period is over: */
enum prot_breaker_heal {
	PROT_HEAL_HALF_OPEN = 0, /* admit half_open_probes probes; their successes close it */
	PROT_HEAL_FULL = 1,      /* fuse: close, with an empty history, and admit everything */
};

struct prot_breaker_opts {
	uint32_t strategy;          /* enum prot_breaker_strategy; 0 = standard */
	uint32_t tolerance;         /* standard: trips at the (tolerance+1)-th failure within window */
	uint64_t window_ms;
	uint64_t refresh_ms;        /* open period before half-open probes */
	uint32_t half_open_probes;  /* 0 means 1; at most 64 */
	uint64_t probe_timeout_ms;  /* a probe not reported within this is given back; 0 = refresh_ms */
	uint64_t slow_call_ms;      /* 0 = off; longer calls count as failures */
	uint32_t rate_threshold_pct;/* rate strategy: trip when failure rate >= this over ... */
	uint32_t rate_window_calls; /* ... the last N calls ... */
	uint32_t rate_min_calls;    /* ... once at least M calls have been seen */
	uint32_t heal;              /* enum prot_breaker_heal; 0 = half_open */
};

struct prot_breaker_status {
	char name[PROT_NAME_MAX + 1];
	uint32_t state;             /* enum prot_breaker_state */
	uint32_t failures_in_window;
	uint64_t next_probe_ms;     /* open: until half-open; 0 otherwise */
	uint64_t calls, successes, failures, rejections;
	uint64_t last_transition_ms_ago;
	struct prot_breaker_opts opts;
	uint64_t probes_given_back; /* half-open probes never answered (timeout, death) or cancelled */
	uint64_t admitted;          /* calls let through; admitted - successes - failures are running,
	                               were cancelled, or never reported */
};

/* Create a breaker at runtime (through protd, which stays the only writer of configuration).
 * PROT_EEXIST if it exists with other options; 0 if it exists with the same ones. */
PROT_API int prot_breaker_create(prot_t *p, const char *name, const struct prot_breaker_opts *opts);
/* Run fn(arg) if the breaker admits the call and record the outcome: fn returning < 0 is a failure.
 * Returns 0 (fn's value in *fn_result), PROT_EBLOWN without calling fn, or PROT_EFAILED (fn's
 * value in *fn_result). */
PROT_API int prot_breaker_execute(prot_t *p, const char *name, int (*fn)(void *arg), void *arg,
                                  int *fn_result);

/* Split form for callers that cannot wrap their work in a callback. */
typedef struct prot_breaker_token {
	uint64_t opaque[3];
} prot_breaker_token;
/* CANCEL: the call never reached the dependency (e.g. no pool slot): no verdict is recorded and a
 * half-open probe the token holds is given back at once. */
enum { PROT_OUTCOME_SUCCESS = 0, PROT_OUTCOME_FAILURE = 1, PROT_OUTCOME_CANCEL = 2 };
PROT_API int prot_breaker_allow(prot_t *p, const char *name, prot_breaker_token *tok);
/* duration_ns: how long the call took (for slow-call detection); 0 if unknown. A half-open probe's
 * token is its holder's: recorded by another process, twice, or after its permit was given back
 * (probe timeout, its holder's death), it is PROT_ESTALE and records nothing. */
PROT_API int prot_breaker_record(prot_t *p, const prot_breaker_token *tok, int outcome,
                                 uint64_t duration_ns);

/* The state as of now, computed from the state word and the clock (an open breaker whose refresh
 * period is over reads as half-open, or closed with heal = full), never waiting for protd. */
PROT_API int prot_breaker_status(prot_t *p, const char *name, struct prot_breaker_status *out);
/* Would a call be admitted now? 0 yes, PROT_EBLOWN no. No side effect: no probe is taken, nothing
 * is counted. (The answer may change before the call is made.) */
PROT_API int prot_breaker_ask(prot_t *p, const char *name);
/* Close now and clear the history (fuse's reset). PROT_EDISABLED on a disabled breaker. */
PROT_API int prot_breaker_reset(prot_t *p, const char *name);
/* Disable: open until prot_breaker_enable, whatever failures, heals and resets happen (fuse's
 * circuit_disable). Blowing a disabled breaker changes nothing. */
PROT_API int prot_breaker_blow(prot_t *p, const char *name);
/* Enable a disabled breaker: closed, with an empty history (fuse's circuit_enable). 0 also when it
 * was not disabled. */
PROT_API int prot_breaker_enable(prot_t *p, const char *name);
/* Remove a breaker (through protd): it is gone; defined again later, it comes back fresh (closed,
 * zero counters). PROT_ENOBREAKER when it does not exist. A breaker of the INI comes back at the
 * next reload unless it is removed from the file too. */
PROT_API int prot_breaker_remove(prot_t *p, const char *name);

/* ---------------------------------------------------------------------------------------------
 * Connection pool (poolboy)
 *
 * The segment counts leases across all processes: at most size + max_overflow are held at once
 * by all of them together. Each process keeps its own connections (a file descriptor cannot be
 * shared), made lazily by the connector it registers and reused within the process: lifo (the
 * most recently returned) or fifo (the longest idle), per the pool's strategy.
 *
 * Waiting. A blocking checkout sleeps on a futex in the segment, without spinning; waiters of all
 * processes are served in the order they queued (FIFO), and a newcomer queues behind them. A
 * checkout that times out holds nothing afterwards; when a lease was handed to it in the race with
 * its timeout, the checkout succeeds instead (the grant came first).
 *
 * Overflow. A checkin that frees a slot beyond `size` while nobody waits closes the connection at
 * once (overflow_ttl = 0, poolboy's behaviour) or keeps it idle for overflow_ttl, after which the
 * next pool call of that process closes it.
 *
 * Connections (per process, HikariCP's names). min_idle: prot_pool_register makes that many at
 * once (a failing create() stops the pre-fill, it does not fail the registration). idle_timeout:
 * an idle connection beyond the process's min_idle is closed once idle that long. max_lifetime: a
 * connection older than that is closed at its checkin or the idle check, never handed out again.
 * The idle check runs in every pool call of the process (checkout, checkin, status); the library
 * has no thread of its own. leak_threshold: a lease held longer raises one pool_leak event (protd's
 * reclaim pass: pid of the holder, ms held) and is marked in prot_pool_holders.
 *
 * Leases and processes.
 *  - prot_close() returns the leases the process still holds and destroys its connections.
 *  - A process that exits or dies without prot_close() (exit(), kill -9, a crash): protd notices
 *    within the pool's reclaim_interval (default 100 ms) plus a tick and returns its leases, waking
 *    waiters; while protd is down, a client that needs a lease does the same. Holders are
 *    identified by a per-handle identity whose liveness the kernel reports (a record lock on the
 *    segment: README, "Process identity"), so a reused pid is never mistaken for the holder and a
 *    stopped or slow process is never robbed. The library installs no atexit handler.
 *    Connections die with the process.
 *  - A lease is (segment, pool, entry, hand-out generation): a stale copy, a double checkin,
 *    garbage, another process's lease or a parent's lease in a child are PROT_ESTALE.
 *  - A child forked while its parent holds leases inherits neither the leases nor the parent's
 *    connections: its first pool call forgets them (without destroying: they are the parent's),
 *    prot_pool_checkin() of a parent's lease in the child returns PROT_ESTALE, and prot_close() in
 *    the child closes only connections the child made. Registered connectors are kept: the child
 *    makes its own connections with them.
 *  - A reload that changes size or max_overflow applies to the next checkouts: leases in use are
 *    never dropped; after a shrink, checkouts wait until in_use is below the new capacity; after a
 *    growth, protd serves queued waiters from the new capacity within a tick.
 * ------------------------------------------------------------------------------------------- */
/*
 * Differences from fuse and poolboy — poolboy (the README has the same table):
 *  - leases are counted for all processes; each process keeps its own connections;
 *  - status idle = free permanent leases (size - in_use, >= 0), not idle connections; state names
 *    ready / overflow / full follow poolboy's rules;
 *  - holders are identities (record lock + incarnation), listed with pid by prot_pool_holders;
 *  - a dead caller's lease comes back within reclaim_interval plus a tick, not at once;
 *  - overflow_ttl may keep an overflow connection idle (0, the default, dismisses at checkin);
 *  - start_pool / stop_pool are prot_pool_create / prot_pool_remove through protd; the same
 *    options again keep the pool's state (as nginx keeps a zone); a removed pool's leases are
 *    PROT_ESTALE and its connections in use stay with their callers until checkin;
 *  - prot_pool_with returns PROT_EFAILED when the callback returns < 0 (as the breaker does);
 *  - size 0 is allowed, size + max_overflow must be at least 1;
 *  - connections are made lazily; min_idle pre-fills per process at prot_pool_register;
 *    idle_timeout and max_lifetime (HikariCP) act at the process's next pool call;
 *  - leak_threshold raises pool_leak events; poolboy has none;
 *  - max_open (INI) caps the connections open to the backend across processes, idle ones
 *    included; an opener asks holders of idle connections to close one, and each answers at its
 *    next pool call on that pool (one that makes no pool call never answers); the opener waits
 *    until its checkout deadline (PROT_ECHECKOUT_TIMEOUT; PROT_EPOOLFULL with timeout 0).
 */
struct prot_connector {
	/* Make a connection; return 0 and set *conn, or a negative error. */
	int (*create)(void *ctx, void **conn);
	void (*destroy)(void *ctx, void *conn);
	/* Optional: return 0 if an idle connection is still usable before reuse. */
	int (*check)(void *ctx, void *conn);
	void *ctx;
};

/* Register this process's connector for pool NAME (which must exist: PROT_ENOPOOL). Registering
 * the same connector again is 0; another one is PROT_EEXIST. Without a connector, checkouts still
 * count leases and give a NULL connection. */
PROT_API int prot_pool_register(prot_t *p, const char *pool, const struct prot_connector *c);

typedef struct prot_lease {
	uint64_t opaque[3];
} prot_lease;

/* timeout_ms < 0: the pool's checkout_timeout; 0: non-blocking (PROT_EPOOLFULL when full).
 * Errors: PROT_ENOPOOL, PROT_EPOOLFULL, PROT_ECHECKOUT_TIMEOUT, PROT_ECAPACITY (the waiter queue,
 * pool_max_waiters, is full), PROT_ECONNECTOR (create() failed: the slot is freed again). */
PROT_API int prot_pool_checkout(prot_t *p, const char *pool, int64_t timeout_ms, prot_lease *lease,
                                void **conn);
enum { PROT_CHECKIN_OK = 0, PROT_CHECKIN_BROKEN = 1 };
/* Return a lease (zeroed on success). PROT_CHECKIN_BROKEN destroys the connection; the next
 * checkout makes a new one. PROT_ESTALE for a lease this process does not hold (returned twice,
 * or its parent's). */
PROT_API int prot_pool_checkin(prot_t *p, prot_lease *lease, int how);
/* checkout, fn(conn, arg), checkin (broken when fn returns < 0). Returns 0 with fn's value in
 * *fn_result (may be NULL); PROT_EFAILED, with fn's value in *fn_result, when fn returned < 0 (as
 * prot_breaker_execute does); or the checkout's error without calling fn. */
PROT_API int prot_pool_with(prot_t *p, const char *pool, int64_t timeout_ms,
                            int (*fn)(void *conn, void *arg), void *arg, int *fn_result);

struct prot_pool_status {
	char name[PROT_NAME_MAX + 1];
	uint32_t size, max_overflow;
	uint32_t in_use, overflow_in_use; /* leases held by all processes; beyond size */
	uint32_t waiting;                 /* checkouts queued, in all processes */
	uint64_t checkout_timeout_ms, overflow_ttl_ms;
	uint32_t strategy; /* 0 lifo, 1 fifo */
	uint64_t checkouts, timeouts, reclaims;
	uint32_t high_water; /* most leases held at once since the pool was created */
	/* poolboy's status: idle = permanent leases free (size - in_use, at least 0); state READY
	 * while one is, else OVERFLOW while overflow is left, else FULL (ABI 3) */
	uint32_t idle;
	uint32_t state; /* enum prot_pool_state */
	uint32_t min_idle;
	uint64_t idle_timeout_ms, max_lifetime_ms, leak_threshold_ms;
	/* max_open (0: unlimited) and the connections open to the backend by all processes, idle
	 * ones included: those holding a connection slot (at most pool_max_slots are counted) */
	uint32_t max_open, open;
};
enum prot_pool_state { PROT_POOL_READY = 0, PROT_POOL_OVERFLOW = 1, PROT_POOL_FULL = 2 };
PROT_API int prot_pool_status(prot_t *p, const char *pool, struct prot_pool_status *out);

/* Who holds a pool's leases: one row per holder (a process identity, lib/ident.c; pid 0 when its
 * process slot was reused since), with its lease count, the longest it has held one, and whether
 * that passed the pool's leak_threshold. Fills at most n rows (out may be NULL when n is 0; at most
 * 256 rows are ever listed) and sets *count to the number of holders. Read-only. */
struct prot_pool_holder {
	int32_t pid;
	uint32_t leases;
	uint64_t held_ms;
	int leaked;
};
PROT_API int prot_pool_holders(prot_t *p, const char *pool, struct prot_pool_holder *out, size_t n,
                               size_t *count);

/* Runtime lifecycle (poolboy's start_pool / stop_pool), through protd like prot_breaker_create.
 * Options are those of an INI [pool] section; 0 means the INI's default for checkout_timeout (5 s)
 * and reclaim_interval ([daemon] value), and "off" for the others.
 *  - create: 0 when made; 0 as well when the pool exists with the same options, and then it keeps
 *    its state (leases, waiters, counters), as nginx keeps a zone of the same size across reloads:
 *    every worker may call it at start. PROT_EEXIST when it exists with other options;
 *    PROT_EINVAL_CONFIG for a value protd refuses (size + max_overflow must fit pool_max_slots).
 *  - remove: the pool is gone at once: lookups miss it (PROT_ENOPOOL), its queued checkouts return
 *    PROT_ENOPOOL, and a lease of it is PROT_ESTALE at checkin (its connection is destroyed);
 *    nothing else of the caller changes. Refused (PROT_EINVAL_CONFIG) while a key names the pool.
 *    Defining it again (create, or the INI) makes a fresh pool: zero counters, no leases. A pool
 *    the INI defines comes back at the next SIGHUP (the INI is the source of truth). */
struct prot_pool_opts {
	uint32_t size, max_overflow;  /* size 0: overflow only (size + max_overflow >= 1) */
	uint64_t checkout_timeout_ms; /* 0: 5 s */
	uint32_t strategy;            /* 0 lifo, 1 fifo */
	uint64_t overflow_ttl_ms;
	uint64_t reclaim_interval_ms; /* 0: protd's [daemon] reclaim_interval */
	uint32_t min_idle;
	uint64_t idle_timeout_ms, max_lifetime_ms, leak_threshold_ms;
};
PROT_API int prot_pool_create(prot_t *p, const char *name, const struct prot_pool_opts *opts);
PROT_API int prot_pool_remove(prot_t *p, const char *name);

/* ---------------------------------------------------------------------------------------------
 * The facade: execute_protected
 *
 * prot_execute(key, opts, fn) applies the protections configured for KEY, in this order:
 *   1. rate limiter (bucket (operation, entity); operation defaults to KEY);
 *   2. circuit breaker (a rejection takes no pool slot);
 *   3. pool (fn receives this process's connection);
 *   4. fn itself, with a deadline.
 * What each outcome charges: a rate denial charges nothing else; a breaker rejection takes no
 * pool slot; a pool timeout is not a breaker failure (a probe it held is given back); fn < 0 is a
 * breaker failure and returns PROT_EFAILED with fn's code in *fn_result.
 * The timeout bounds every wait the library makes (the pool checkout) and is handed to fn as a
 * CLOCK_MONOTONIC deadline. A C call cannot be pre-empted safely, so fn always runs to completion:
 * a call that overruns its timeout counts as a breaker failure and returns PROT_ETIMEOUT once fn
 * has returned.
 * ------------------------------------------------------------------------------------------- */
enum {
	PROT_LAYER_NONE = 0,
	PROT_LAYER_RATE = 1u << 0,
	PROT_LAYER_BREAKER = 1u << 1,
	PROT_LAYER_POOL = 1u << 2,
	PROT_LAYER_CALL = 1u << 3,
};

struct prot_call_opts {
	const char *entity;    /* rate-limiter entity, e.g. "user:123"; NULL = "" (one bucket per key) */
	const char *operation; /* rate-limiter operation; NULL = the key */
	uint64_t cost;         /* rate units; 0 = 1 */
	int64_t timeout_ms;    /* < 0 or opts NULL: the key's timeout (default 5000 ms); 0 = no wait */
	unsigned skip;         /* PROT_LAYER_* bits of layers not to apply to this call */
};

/* What fn receives. conn is NULL when the key has no pool (or the pool layer is skipped). */
struct prot_call {
	void *conn;
	uint64_t deadline_ns; /* CLOCK_MONOTONIC */
	void *arg;
	const char *key;
};

/* Why a call did not succeed. The one out-parameter that is written on failure: it exists to
 * describe failures. Zeroed and filled on every return. */
struct prot_detail {
	unsigned layer;          /* PROT_LAYER_* that refused or failed; NONE on success */
	uint64_t retry_after_ms; /* rate limiter: when to retry */
	int fn_result;           /* fn's return value when it ran */
	char key[PROT_NAME_MAX + 1];
	char message[256];       /* prot_configure: protd's message */
};

PROT_API int prot_execute(prot_t *p, const char *key, const struct prot_call_opts *opts,
                          int (*fn)(const struct prot_call *call), void *arg,
                          struct prot_detail *detail);

/* configure_protection at runtime: SETTINGS is "name=value ..." with the names of an INI [key]
 * section (rate_limit=100 rate_window=60s breaker_tolerance=3 ...). Sent to protd over its control
 * socket; protd validates with the INI parser, applies atomically (no process reads half a change),
 * keeps counters and states, and replies with what changed (detail->message). A later SIGHUP
 * re-applies the INI, which is the source of truth for the keys it names. */
PROT_API int prot_configure(prot_t *p, const char *key, const char *settings,
                            struct prot_detail *detail);

/* The longest reply protd sends to one control request, in bytes, the terminating NUL excluded. */
#define PROT_REPLY_MAX 65535

/* prot_configure with protd's whole reply (PROT_1.2). detail->message keeps the first 255 bytes;
 * this form writes the reply into reply (size bytes, always NUL-terminated when size > 0,
 * truncated to fit) and its whole length into *len (len may be NULL), so that a reply longer than
 * size - 1 is known to be cut: a buffer of PROT_REPLY_MAX + 1 bytes always holds it whole. reply
 * may be NULL when size is 0. Returns what prot_configure returns.
 *  - on 0 the reply is one record a line, "TYPE name=value ...", values %XX-escaped: a "change"
 *    record for every setting (kind, name, option, setting, old, new, changed), and a
 *    "created" record first when the key was made; prot-control(7) is the schema.
 *  - on a refusal (PROT_EINVAL_CONFIG, -EACCES) it is protd's message, one error a line; on
 *    -ETIMEDOUT, the library's "outcome unknown" message.
 * Like prot_detail, reply and *len are written on every return (empty before a request was sent):
 * they describe a failure too. */
PROT_API int prot_configure_reply(prot_t *p, const char *key, const char *settings, char *reply,
                                  size_t size, size_t *len);

/* get_protection_status: every layer of a key. */
struct prot_protection_status {
	char key[PROT_NAME_MAX + 1];
	int has_rate, has_breaker, has_pool;
	struct prot_rate_limit rate;
	uint64_t rate_buckets;      /* live buckets of this key's operation */
	uint64_t rate_allowed, rate_denied, rate_table_full;
	struct prot_breaker_status breaker;
	struct prot_pool_status pool;
	uint64_t timeout_ms;
	uint64_t calls, ok, failed, timeouts;
};
PROT_API int prot_get_protection_status(prot_t *p, const char *key,
                                        struct prot_protection_status *out);

/* ---------------------------------------------------------------------------------------------
 * Telemetry: in-process handlers. With no handler attached an event costs one predictable branch.
 * ------------------------------------------------------------------------------------------- */
enum prot_tel_event {
	PROT_TEL_EXECUTE_START = 0,
	PROT_TEL_EXECUTE_STOP,
	PROT_TEL_EXECUTE_EXCEPTION,    /* fn failed or overran its timeout */
	PROT_TEL_PROTECTION_TRIGGERED, /* a layer refused the call */
	PROT_TEL_RATE_ALLOWED,
	PROT_TEL_RATE_DENIED,
	PROT_TEL_BREAKER_EXECUTED,
	PROT_TEL_BREAKER_REJECTED,
	PROT_TEL_BREAKER_STATE_CHANGED,
	PROT_TEL_BREAKER_CREATED,
	PROT_TEL_POOL_CHECKOUT,
	PROT_TEL_POOL_CHECKIN,
	PROT_TEL_POOL_TIMEOUT,
	PROT_TEL_POOL_RECLAIMED,
	PROT_TEL_COUNT_
};
#define PROT_TEL_MASK(ev) (1u << (ev))
#define PROT_TEL_ALL ((1u << PROT_TEL_COUNT_) - 1)

struct prot_tel {
	uint32_t event;          /* enum prot_tel_event */
	unsigned layer;          /* PROT_LAYER_* */
	int result;              /* 0 or the error code of the outcome */
	uint64_t duration_ns;    /* measurement: stop/exception/executed/checkout wait */
	const char *key;         /* metadata; NULL when not applicable */
	const char *entity;
	const char *operation;
	uint32_t state;          /* breaker state changes: the new enum prot_breaker_state */
};

/* Attach handler for the events in mask (PROT_TEL_MASK bits). Returns a handler id (>= 0).
 * Handlers run synchronously in the calling thread; at most 8 per handle. */
PROT_API int prot_telemetry_attach(prot_t *p, uint32_t mask,
                                   void (*handler)(const struct prot_tel *ev, void *ctx), void *ctx);
PROT_API int prot_telemetry_detach(prot_t *p, int id);

/* ---------------------------------------------------------------------------------------------
 * Enumeration
 * ------------------------------------------------------------------------------------------- */
/* Call fn(name, arg) for each live protection key / breaker / pool. fn returning non-zero stops. */
PROT_API int prot_list_keys(prot_t *p, int (*fn)(const char *name, void *arg), void *arg);
PROT_API int prot_list_breakers(prot_t *p, int (*fn)(const char *name, void *arg), void *arg);
PROT_API int prot_list_pools(prot_t *p, int (*fn)(const char *name, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
