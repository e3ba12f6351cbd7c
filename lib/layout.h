/* layout.h — the shared-memory segment: the ABI between protd, libprot and protctl.
 *
 * Private to the project (not installed). Everything here lives in the segment, so:
 *  - fixed-size, offset-based, no pointers; every region offset is relative to the segment base;
 *  - any change to a struct here is an ABI change: bump PROT_ABI_VERSION in include/prot.h;
 *  - protd and protctl treat every index/offset/length read from the segment as untrusted and
 *    bounds-check it (seg_validate() and seg_take_geometry() in lib/segment.c: the geometry is
 *    copied once, at attach, into a private page, and never re-read);
 *  - hot atomics sit on cache lines of their own; _Static_asserts at the bottom pin the layout.
 *
 * Writers: protd alone writes the header's configuration fields and every *_cfg block (under the
 * block's sequence counter, see SEQLOCK below). Clients write only state words and counters.
 *
 * Times stored in the segment are CLOCK_MONOTONIC nanoseconds (or milliseconds where a field says
 * so): the clock is system-wide, so every process agrees on it, and a segment does not survive a
 * reboot (it lives in /dev/shm).
 */
#ifndef PROT_LAYOUT_H
#define PROT_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "prot.h"

#define PROT_CACHELINE 64
#define PROT_ALIGNED __attribute__((aligned(PROT_CACHELINE)))

#define PROT_MAGIC 0x314d48535452504fULL /* "OPRTSHM1" little-endian */

/* Header state (hdr.state). Pairs: protd stores RETIRED with release before unlinking; clients load
 * it (relaxed is enough: it is a hint to re-attach, it publishes no data) on every operation. */
enum { SEG_STATE_INIT = 0, SEG_STATE_LIVE = 1, SEG_STATE_RETIRED = 2 };

/* Name slots (keys, breakers, pools). */
#define PROT_NAME_BYTES 48 /* PROT_NAME_MAX + NUL */

/* Slot life cycle (slot.state, low 8 bits; the high 24 bits are a generation bumped on every
 * (re)use so that an id held by a client goes stale when the slot is recycled).
 * Written by protd only, with release, after the slot's name and config are complete. */
enum { SLOT_FREE = 0, SLOT_LIVE = 1, SLOT_RETIRED = 2 };
#define SLOT_STATE(w) ((w) & 0xffu)
#define SLOT_GEN(w) ((w) >> 8)

/* ------------------------------------------------------------------------------------------------
 * SEQLOCK for configuration blocks. protd (single writer) makes seq odd, writes the words with
 * relaxed atomic stores, makes seq even again (release). A reader loads seq (acquire), copies the
 * words with relaxed loads, issues an acquire fence and re-loads seq; equal and even means the copy
 * is one whole version: never half an old config and half a new one. See seq_read() in
 * lib/internal.h (bounded: a counter left odd by a dead writer gives PROT_ETORN).
 * ---------------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------------- */
/* Header: page 0.                                                                                 */
/* ---------------------------------------------------------------------------------------------- */
struct prot_region {
	uint64_t off;   /* from the segment base; multiple of 64 */
	uint32_t count; /* number of entries */
	uint32_t stride;/* bytes per entry (checked against sizeof at attach) */
};

enum { REG_KEYS, REG_BREAKERS, REG_POOLS, REG_LEASES, REG_WAITERS, REG_RATE_GROUPS, REG_EVENTS,
       REG_PROCS, REG_RATE_RINGS, REG_RATE_GLOBAL, REG_COUNT_ };

struct prot_shm_header {
	/* line 0: immutable after creation, except `state` (written once, at retirement). Every client
	 * operation loads `state` from here: the line is never written in steady state, so it stays
	 * shared in every core's cache and the check costs one L1 hit. */
	uint64_t magic;
	uint32_t abi_version;
	uint32_t header_size;      /* sizeof(struct prot_shm_header) */
	uint64_t total_size;       /* bytes of the whole segment */
	_Atomic uint32_t state;    /* SEG_STATE_*; see above */
	uint32_t flags;
	uint64_t hash_key[2];      /* SipHash key for entity buckets, random per segment */
	uint64_t created_ns;       /* CLOCK_MONOTONIC at creation */
	uint8_t pad0[64 - 56];

	/* lines 1-3: table geometry, immutable after creation. Every process copies it once, at
	 * attach, into private memory (struct prot_map) and never re-reads it from the mapping. */
	struct prot_region region[REG_COUNT_];
	uint32_t pool_max_slots;   /* leases per pool (stride of the lease table per pool) */
	uint32_t pool_max_waiters; /* waiter ring entries per pool */
	uint32_t rate_group_slots; /* buckets per group (RATE_GROUP_SLOTS) */
	uint32_t rate_groups;      /* number of groups, power of two */
	uint32_t rate_ring_limit;  /* sliding-window ring: admissions per ring (stride of REG_RATE_RINGS
	                              is RATE_RING_BYTES(this)); 0 with no rings (ABI 5) */
	uint8_t pad1[256 - 64 - REG_COUNT_ * 16 - 20];

	/* line 4: written by protd. */
	_Atomic uint64_t config_gen;   /* bumped (release) after every applied config change */
	_Atomic int32_t protd_pid;     /* for messages only: liveness is protd_ident (lib/ident.c) */
	uint32_t pad2;
	_Atomic uint64_t protd_ident;  /* protd's process identity (lib/ident.c); 0 before the first */
	_Atomic uint64_t heartbeat_ns; /* protd's CLOCK_MONOTONIC at its last tick (display only) */
	_Atomic uint64_t owner_uid;    /* uid that created the segment */
	_Atomic uint64_t proc_next_inc;/* last incarnation handed out (lib/ident.c): fetch_add by
	                                  every attaching process, never reused */
	_Atomic uint64_t pool_reclaim_ns; /* a client's last reclaim pass while protd is down */
	uint8_t pad3[64 - 56];

	/* line 5: counters written by clients (rarely). */
	_Atomic uint64_t rate_buckets_used; /* live buckets (approximate under races, exact at rest) */
	_Atomic uint64_t rate_ring_cursor;  /* where the next sliding-window ring search starts
	                                       (lib/rate_sliding.c; fetch_add: spreads takers) */
	_Atomic uint64_t rate_table_full;   /* decisions that found their bucket group full (all keys
	                                       and Hammer-style calls); relaxed counter */
	_Atomic uint64_t rate_sweep_cursor; /* next bucket group rate_sweep() visits; fetch_add by
	                                       sweepers, so concurrent sweeps take disjoint ranges */
	_Atomic uint64_t rate_evicted;      /* buckets evicted for a new entity (rate_on_full = evict,
	                                       ABI 6; lib/rate_table.c, EVICTION); relaxed counter */
	uint8_t pad4[64 - 40];

	/* line 6: event ring head, hot for writers of events only. */
	_Atomic uint64_t event_head;        /* next sequence number to write */
	uint8_t pad5[64 - 8];

	/* lines 7-8: protd's control socket (NUL-terminated; clients bounds-check it). Written by
	 * protd before it publishes state LIVE, and again (under config_gen) if it changes. */
	char control_path[108];
	uint8_t pad6[128 - 108 - 8];
	/* Offset of the rate groups' summary bitmap (RATE_SUMMARY_BYTES(rate_groups) bytes, bit g set
	 * while group g may hold a claimed or live bucket; lib/rate_table.c), which protd places after
	 * the regions of seg_layout() and counts in total_size, followed by the operation registry
	 * (RATE_TRAILER_BYTES). 0: none (segments made without it); then the sweep visits every
	 * group and no operation is named. Immutable after creation. */
	uint64_t rate_summary_off;
} PROT_ALIGNED;

/* ---------------------------------------------------------------------------------------------- */
/* Process slots (lib/ident.c): one per attached read-write handle and one for protd.              */
/* ---------------------------------------------------------------------------------------------- */
struct prot_proc_slot {
	_Atomic uint64_t inc;      /* incarnation of the slot's latest holder; 0: never held */
	_Atomic int32_t pid;       /* that holder's pid, for display */
	uint32_t flags;            /* PROC_F_* */
	_Atomic uint64_t attached_ns;
	uint8_t pad[64 - 24];
} PROT_ALIGNED;
enum { PROC_F_PROTD = 1 };

/* ---------------------------------------------------------------------------------------------- */
/* Protection keys. One slot per INI section [key NAME] or runtime-configured key.                 */
/* ---------------------------------------------------------------------------------------------- */
enum { RATE_FULL_DENY = 0, RATE_FULL_ALLOW = 1, RATE_FULL_EVICT = 2 };
enum { RATE_CLOCK_MONO = 0, RATE_CLOCK_COARSE = 1, RATE_CLOCK_REALTIME = 2, RATE_CLOCK_AUTO = 3 /* lib/rate_clock.c */ };
#define PROT_NO_INDEX 0xffffffffu

/* Configuration of a key, protected by key.seq. Only whole 64-bit words: copied word by word. */
struct prot_key_cfg {
	uint64_t rate_limit;     /* token/leaky bucket: refill/leak rate; 0 and no burst: no limiter */
	uint64_t rate_window_ms; /* token/leaky bucket: the rate's period (0 = 1s) */
	uint64_t rate_burst;     /* GCRA burst in units (0 = rate_limit); token/leaky: capacity */
	uint64_t rate_algo;      /* enum prot_rate_algo */
	uint64_t rate_full_policy;/* RATE_FULL_* */
	uint64_t rate_clock;     /* RATE_CLOCK_* */
	/* ABI 7, global limits (lib/rate_global.c): RATE_SCOPE_*, and the units a global bucket may
	 * admit per window beyond its lease while it waits for more (0: deny). */
	uint64_t rate_scope;
	uint64_t rate_allowance;
	uint64_t breaker_index;  /* index into REG_BREAKERS or PROT_NO_INDEX */
	uint64_t pool_index;     /* index into REG_POOLS or PROT_NO_INDEX */
	uint64_t timeout_ms;     /* facade default call timeout */
	uint64_t origin;         /* protd's bookkeeping: 0 from the INI, 1 made at runtime (kept by reloads) */
	/* ABI 7: a global key's units per window on this host while Redis is unreachable (0: its
	 * limit / [redis] hosts); read by protd's sync thread only */
	uint64_t rate_local_share;
	uint64_t reserved[3];
};
enum { RATE_SCOPE_LOCAL = 0, RATE_SCOPE_GLOBAL = 1 };

/* The one default for a key's call timeout and a pool's checkout timeout: protd's config defaults,
 * and the facade's answer for a key slot that has none (0). */
#define PROT_DEFAULT_TIMEOUT_MS 5000

#define PROT_HIST_BUCKETS 16 /* latency histogram: upper bounds 2^(10+i) ns, i.e. ~1us .. ~33ms, +Inf */

struct prot_key_stats {
	_Atomic uint64_t calls, ok, failed, timeouts;
	_Atomic uint64_t rate_allowed, rate_denied, rate_table_full;
	_Atomic uint64_t breaker_rejected, pool_timeouts;
	_Atomic uint64_t latency_sum_ns;
	_Atomic uint64_t latency_hist[PROT_HIST_BUCKETS];
	_Atomic uint64_t rate_evicted; /* buckets evicted for this key's new entities (ABI 6) */
	/* ABI 7: a global key's units leased to this host for the current windows of its buckets,
	 * summed (written by protd's sync thread every round; display) */
	_Atomic uint64_t global_leased;
	uint64_t reserved[4];
};

struct prot_key_slot {
	/* line 0: identity, read on lookup; written by protd only. */
	_Atomic uint32_t state;  /* SLOT_* | gen << 8 */
	_Atomic uint32_t seq;    /* seqlock over cfg */
	uint64_t name_hash;      /* prot_name_hash(name) */
	char name[PROT_NAME_BYTES];
	/* lines 1-2: configuration */
	struct prot_key_cfg cfg PROT_ALIGNED;
	/* lines 3-: counters written by clients */
	struct prot_key_stats stats PROT_ALIGNED;
} PROT_ALIGNED;

/* ---------------------------------------------------------------------------------------------- */
/* Circuit breakers. See lib/breaker.c for the algorithm and the argument for its invariants.      */
/* ---------------------------------------------------------------------------------------------- */
#define BREAKER_MELT_RING 128 /* standard strategy: tolerance <= BREAKER_MELT_RING - 1 */
#define BREAKER_RATE_BITS 1024 /* rate strategy: rate_window_calls <= this */
#define BREAKER_PROBES_MAX 64  /* half_open_probes <= this */

struct prot_breaker_cfg {
	uint64_t strategy, tolerance, window_ms, refresh_ms, half_open_probes, probe_timeout_ms;
	uint64_t slow_call_ms, rate_threshold_pct, rate_window_calls, rate_min_calls;
	uint64_t origin;         /* as in prot_key_cfg */
	uint64_t heal;           /* enum prot_breaker_heal */
	uint64_t reserved[4];
};

struct prot_breaker_slot {
	/* line 0: identity (protd) */
	_Atomic uint32_t state;  /* SLOT_* | gen << 8 */
	_Atomic uint32_t seq;    /* seqlock over cfg */
	uint64_t name_hash;
	char name[PROT_NAME_BYTES];
	/* lines 1-2: configuration (protd) */
	struct prot_breaker_cfg cfg PROT_ALIGNED;
	/* line 3: the state word and its timestamp; read on every call, written on transitions only.
	 * Meaning and memory orders: lib/breaker.c. */
	_Atomic uint64_t word PROT_ALIGNED;
	_Atomic uint64_t since;      /* epoch-tagged time of the last transition */
	_Atomic uint64_t cleared_ms; /* failures older than this are ignored (reset/close) */
	_Atomic uint64_t melt_next;  /* next index into melts[] */
	_Atomic uint64_t rate_next;  /* next index into rate_bits */
	_Atomic uint64_t probe_ms;   /* when the latest half-open probe was handed out: the probe
	                                timeout runs from there */
	_Atomic uint64_t probe_check_ms; /* a client's last look for dead probe holders */
	uint64_t pad_w[1];
	/* line 4: counters, written on every call */
	_Atomic uint64_t admitted PROT_ALIGNED; /* calls let through (with or without a verdict yet) */
	_Atomic uint64_t successes, failures, rejections, probes_given_back;
	uint64_t pad_c[3];
	/* failure history */
	_Atomic uint64_t melts[BREAKER_MELT_RING] PROT_ALIGNED;
	_Atomic uint64_t rate_bits[BREAKER_RATE_BITS / 64] PROT_ALIGNED;
	_Atomic uint64_t rate_seen[BREAKER_RATE_BITS / 64];
	/* half-open probe permits: who holds each (lib/breaker.c) */
	_Atomic uint64_t probe_holder[BREAKER_PROBES_MAX] PROT_ALIGNED;
} PROT_ALIGNED;

/* ---------------------------------------------------------------------------------------------- */
/* Pools. Leases: REG_LEASES holds pool_max_slots entries per pool slot, pool i owning entries      */
/* [i*pool_max_slots, (i+1)*pool_max_slots). Waiters: likewise with pool_max_waiters.              */
/* See lib/pool.c for the algorithm.                                                               */
/* ---------------------------------------------------------------------------------------------- */
struct prot_pool_cfg {
	uint64_t size, max_overflow, checkout_timeout_ms, strategy, overflow_ttl_ms, reclaim_ms;
	uint64_t origin;         /* as in prot_key_cfg */
	/* connections (lib/pool_conn.c): each process's idle connections made at registration, how
	 * long one may stay idle and live, and when a held lease is reported as a leak (0: off) */
	uint64_t min_idle, idle_timeout_ms, max_lifetime_ms, leak_threshold_ms;
	/* the connections open to the backend across all processes, idle ones included (ABI 4):
	 * each holds a connection slot (prot_lease_slot.conn_owner); 0 = unlimited */
	uint64_t max_open;
	uint64_t reserved[4];
};

struct prot_pool_slot {
	/* line 0: identity (protd) */
	_Atomic uint32_t state;
	_Atomic uint32_t seq;
	uint64_t name_hash;
	char name[PROT_NAME_BYTES];
	/* lines 1-2: configuration (protd) */
	struct prot_pool_cfg cfg PROT_ALIGNED;
	/* line 3: the pool lock and the state it guards (lib/pool.c) */
	_Atomic uint64_t lock PROT_ALIGNED; /* 0 free, else the holder's identity */
	_Atomic uint32_t lock_seq;      /* futex word: bumped by an unlock that saw sleepers */
	_Atomic uint32_t lock_sleepers; /* processes sleeping on lock_seq */
	_Atomic uint32_t in_use;        /* leases held (written under the lock) */
	_Atomic uint32_t nwait;         /* waiter cells WAITING (lib/pool.c) */
	_Atomic uint32_t tail;          /* next waiter ticket (written under the lock) */
	_Atomic uint32_t hint;          /* next lease entry to try first */
	_Atomic uint64_t pending;       /* the hand-off in progress (lib/pool.c) */
	_Atomic uint32_t wscan;         /* where the search for the oldest waiter starts */
	uint32_t pad_w0;
	/* connection slots (max_open, lib/pool_conn.c; ABI 4) */
	_Atomic uint32_t close_req;     /* idle connections asked to close by openers that found none free */
	_Atomic uint32_t conn_seq;      /* futex word: bumped when a connection slot is freed */
	_Atomic uint32_t conn_sleepers; /* openers sleeping on conn_seq */
	uint32_t pad_w1;
	/* line 4: counters */
	_Atomic uint64_t checkouts PROT_ALIGNED;
	_Atomic uint64_t timeouts, reclaims, high_water;
	_Atomic uint64_t exhausted_ns;  /* last EV_POOL_EXHAUSTED (rate limit: one a second) */
	_Atomic uint64_t reclaim_at_ns; /* when a reclaim pass (protd's, or a client's) last began */
	uint64_t pad_c[2];
} PROT_ALIGNED;

/* One lease: owner 0 when free, else the holder's identity; gen counts its hand-outs, so that a
 * stale copy of a lease never matches (lib/pool.c). Written under the pool lock; since_ns (when it
 * was handed out, CLOCK_MONOTONIC coarse) with them. leak_gen: the hand-out (gen) already reported
 * as a leak (EV_POOL_LEAK, protd's reclaim pass; a CAS, so once per hand-out). */
struct prot_lease_slot {
	_Atomic uint64_t owner;
	_Atomic uint64_t gen;
	_Atomic uint64_t since_ns;
	_Atomic uint64_t leak_gen;
	/* ABI 4: entry e is also connection slot e of the pool, independent of the lease: 0 free,
	 * else the identity of the process that has one connection open on it (CAS; max_open) */
	_Atomic uint64_t conn_owner;
	uint64_t pad;
};

/* One waiter-ring entry; the word is 32-bit because it is the futex word a waiter sleeps on. */
struct prot_waiter_slot {
	_Atomic uint32_t word;  /* state and granted entry (lib/pool.c) */
	_Atomic uint32_t ticket;/* order of arrival: the oldest WAITING cell is served first */
	_Atomic uint64_t ident; /* the waiter's identity, so a slot granted to a dead waiter is reclaimed */
};

/* ---------------------------------------------------------------------------------------------- */
/* Rate-limiter buckets. REG_RATE_GROUPS holds `rate_groups` groups of RATE_GROUP_SLOTS buckets.    */
/* See lib/rate_table.c for the algorithm (membership, insertion races, expiry).                   */
/* ---------------------------------------------------------------------------------------------- */
#define RATE_GROUP_SLOTS 32
#define RATE_ENTITY_HEAD 16
#define RATE_ENTITY_TAIL 48
/* The summary bitmap (hdr.rate_summary_off): one bit per group, in whole cache lines. */
#define RATE_SUMMARY_BYTES(groups) ((((uint64_t)(groups) + 511) / 512) * 64)

#define CLAIM_TAG (1ull << 63) /* a claimer's identity in `allowed` while CLAIMED (lib/rate_table.c) */

/* A bucket is (operation, entity, algorithm, window): op_hash + op_len, the entity's bytes and
 * length, and `scale` (lib/rate_table.h: window_ms | algorithm << 56). */
struct prot_rate_bucket {
	/* line 0: the decision line. A decision loads `meta` and `word` and, only when admitting,
	 * CASes `word`, adds to `allowed` and stores `updated_ms`: a denial writes nothing here. For
	 * entities of at most RATE_ENTITY_HEAD bytes a hit reads this line alone. */
	_Atomic uint64_t word;    /* GCRA: TAT (ns); fixed window: window end (ms) << 24 | count */
	_Atomic uint64_t meta;    /* generation, alt (ABI 6: an overflow bucket), state (lib/rate_table.h) */
	uint64_t op_hash;         /* keyed hash of the operation name */
	_Atomic uint64_t allowed; /* units admitted, for protctl rate top */
	uint8_t op_len, ent_len;  /* identity (with the next two bytes, zero): one 32-bit word */
	uint8_t pad_id[2];
	_Atomic uint32_t updated_ms;        /* CLOCK_MONOTONIC ms mod 2^32 of the last admission
	                                       (display; lib/rate_view.c widens it) */
	uint64_t scale;                     /* window_ms | algorithm << 56: identity */
	char ent_head[RATE_ENTITY_HEAD];    /* entity bytes 0..15 */
	/* line 1: written on denial, never on admission (created_ns: at insertion only). */
	_Atomic uint64_t denied;
	char ent_tail[RATE_ENTITY_TAIL];    /* entity bytes 16..63 */
	_Atomic uint64_t created_ns;        /* CLOCK_MONOTONIC ns when the bucket was inserted */
} PROT_ALIGNED;

/* The operation registry (lib/rate_ops.c): the names of the operations that have made buckets, so
 * that protctl can list and name them. RATE_OPS entries right after the summary bitmap (so at
 * hdr.rate_summary_off + RATE_SUMMARY_BYTES), inserted lock-free, never removed. */
#define RATE_OPS 256
struct prot_rate_op {
	_Atomic uint64_t hash;  /* 0 free; the operation's op_hash | 1 once claimed */
	_Atomic uint32_t ready; /* 1 once len and name are written (release) */
	uint8_t len;            /* <= PROT_OP_MAX */
	char name[PROT_OP_MAX]; /* not NUL-terminated */
	uint8_t pad[64 - 8 - 4 - 1 - PROT_OP_MAX];
} PROT_ALIGNED;
/* What follows the regions: the summary bitmap, then the operation registry. */
#define RATE_TRAILER_BYTES(groups) (RATE_SUMMARY_BYTES(groups) + RATE_OPS * (uint64_t)sizeof(struct prot_rate_op))

/* The group index: one line per RATE_GROUP_SLOTS buckets, read on every lookup, written only when
 * a bucket of the group is inserted or removed. An entity lives in its primary group or in its
 * secondary (two-choice placement, ABI 6); its primary's word linearises every insertion of it,
 * in either group, and each group's word the removals of its buckets. tags[] (a byte of each
 * bucket's hash) lets a lookup skip buckets that cannot match. */
struct prot_rate_group_hdr {
	_Atomic uint64_t word;    /* ABI 6: version (18 bits) << 46 | overflowed << 45 | pending
	                             overflow (13 bits) << 32 | occupancy bitmap (lib/rate_table.h:
	                             GW_*; lib/rate_table.c: OVERFLOW) */
	_Atomic uint8_t tags[RATE_GROUP_SLOTS];
	uint8_t pad[64 - 8 - RATE_GROUP_SLOTS];
} PROT_ALIGNED;

struct prot_rate_group {
	struct prot_rate_group_hdr h;
	struct prot_rate_bucket b[RATE_GROUP_SLOTS];
} PROT_ALIGNED;

/* ---------------------------------------------------------------------------------------------- */
/* Sliding-window rings (ABI 5). REG_RATE_RINGS holds [segment] sliding_buckets rings, each a      */
/* header line and hdr.rate_ring_limit admission slots. A sliding-window bucket's word names its  */
/* ring (RING_REF); the ring's `own` word says which bucket holds it. Algorithm: lib/rate_sliding.c */
/* ---------------------------------------------------------------------------------------------- */
#define RATE_RING_LIMIT_MAX 32768u /* [segment] sliding_max_limit and a sliding key's rate_limit */
#define RATE_RING_BYTES(limit) (64u + (((uint64_t)(limit) * 8 + 63) / 64) * 64)

struct prot_rate_ring {
	/* line 0: read by every decision on the ring, written by admissions (head) and by allocation */
	_Atomic uint64_t own;   /* gen << 32 | (bucket index + 1) while held, gen << 32 when free */
	_Atomic uint64_t head;  /* admissions (rounds) so far; only grows, across owners too */
	_Atomic uint64_t limit; /* slots in use by the current owner (its key's rate_limit) */
	_Atomic uint64_t window_ms; /* the current owner's window (the sweep's expiry) */
	_Atomic uint64_t since_ns; /* when the current owner took it (the sweep's grace for orphans) */
	uint8_t pad[64 - 40];
	/* then: _Atomic uint64_t slot[rate_ring_limit]: time (us) << 16 | round & 0xffff */
} PROT_ALIGNED;

/* ---------------------------------------------------------------------------------------------- */
/* Global limits (ABI 7; lib/rate_global.c argues the protocol). REG_RATE_GLOBAL holds one        */
/* struct prot_rate_global (count 1; 0 when [redis] is not configured) whose stride covers        */
/* RATE_GLOBAL_BYTES(rate_groups): a status line (protd's sync thread), the request ring (clients  */
/* that insert a global bucket note its group there) and one grant per bucket, same index.        */
/* ---------------------------------------------------------------------------------------------- */
#define RATE_GLOBAL_RING 1024 /* request ring entries (a power of two) */

/* What protd leased for one bucket. `use` is the bucket's meta (gen << 32 | LIVE) the grants
 * belong to, 0 for none; cur and next are fixed-window words: window end (ms, calendar) <<
 * RATE_FW_BITS | units granted to this host for that window; in `next`, window end 0 means every
 * window (the local share while degraded). Written by protd only. */
struct prot_rate_grant {
	_Atomic uint64_t use;
	_Atomic uint64_t cur;
	_Atomic uint64_t next;
	_Atomic uint64_t used; /* protd: the count it last reported to Redis (display) */
};

enum { RG_OFF = 0, RG_SYNCED = 1, RG_DEGRADED = 2 };

struct prot_rate_global {
	/* line 0: the sync thread's status (display; relaxed stores) */
	_Atomic uint64_t state;          /* RG_* */
	_Atomic uint64_t last_sync_ms;   /* calendar ms (RATE_EPOCH_MS-based) of the last reply */
	_Atomic uint64_t latency_us;     /* the last round trip */
	_Atomic uint64_t commands;       /* Redis commands sent since protd started */
	_Atomic uint64_t failures;       /* round trips that failed (timeouts, errors, no connection) */
	_Atomic uint64_t degraded_since_ms; /* calendar ms the current outage began; 0 when synced */
	_Atomic uint64_t tracked;        /* global buckets the sync thread follows */
	_Atomic uint64_t hosts;          /* [redis] hosts */
	/* line 1: the request ring's head, written by clients when they insert a global bucket */
	_Atomic uint64_t head PROT_ALIGNED; /* requests so far: fetch_add */
	/* calendar ms (RATE_EPOCH_MS-based) until which the grants may be spent: protd's sync thread
	 * stores its round's time + lease_ttl / 4 at the end of every round (release); a decision at
	 * or past it spends no grant (lib/rate_global.h, rate_global_cap). 0: no round yet. */
	_Atomic uint64_t grants_until_ms;
	uint8_t pad[48];
	/* (seq + 1) << 32 | group: entry seq % RATE_GLOBAL_RING */
	_Atomic uint64_t ring[RATE_GLOBAL_RING] PROT_ALIGNED;
	struct prot_rate_grant grant[] PROT_ALIGNED; /* rate_groups * RATE_GROUP_SLOTS */
} PROT_ALIGNED;
#define RATE_GLOBAL_BYTES(groups)                                                                 \
	(sizeof(struct prot_rate_global) +                                                        \
	 (uint64_t)(groups) * RATE_GROUP_SLOTS * sizeof(struct prot_rate_grant))

/* ---------------------------------------------------------------------------------------------- */
/* Event ring: state changes (breaker transitions, pool exhaustion, reclaims, reloads).            */
/* ---------------------------------------------------------------------------------------------- */
enum {
	EV_NONE = 0, EV_BREAKER_OPEN, EV_BREAKER_HALF_OPEN, EV_BREAKER_CLOSED, EV_BREAKER_BLOWN,
	EV_BREAKER_RESET, EV_BREAKER_CREATED, EV_POOL_EXHAUSTED, EV_LEASE_RECLAIMED,
	EV_CONFIG_RELOADED, EV_CONFIG_CHANGED, EV_RATE_TABLE_FULL,
	EV_POOL_LEAK = 32, EV_POOL_CREATED, EV_POOL_REMOVED, /* pools (ABI 3); a = pid, b = ms held */
	EV_BREAKER_REMOVED = 35, /* through protd, as EV_POOL_REMOVED (no payload) */
	EV_GLOBAL_DEGRADED = 36, EV_GLOBAL_SYNCED = 37, /* global limits (ABI 7, daemon/redis_sync.c) */
};

struct prot_event {
	/* Writers take a sequence number with fetch_add on hdr.event_head, fill the entry and store
	 * seq = number + 1 with release. Readers load seq (acquire), copy, re-load seq: a torn or
	 * overwritten entry shows as a changed seq and is skipped (counted as dropped). */
	_Atomic uint64_t seq;
	uint64_t time_ns;
	uint32_t type;
	int32_t pid;
	uint32_t object;     /* slot index of the breaker / pool / key */
	uint32_t pad;
	char name[PROT_NAME_BYTES];
	uint64_t a, b;
	uint64_t wall_ns;    /* CLOCK_REALTIME when it was written (time_ns is CLOCK_MONOTONIC) */
	uint8_t pad2[24];
} PROT_ALIGNED;

/* ---------------------------------------------------------------------------------------------- */
/* Layout pins.                                                                                    */
/* ---------------------------------------------------------------------------------------------- */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "no padded atomics");
_Static_assert(sizeof(struct prot_shm_header) == 9 * 64, "header is nine lines");
_Static_assert(offsetof(struct prot_shm_header, state) < 64, "state is on line 0");
_Static_assert(offsetof(struct prot_shm_header, region) == 64, "geometry starts on line 1");
_Static_assert(REG_COUNT_ * sizeof(struct prot_region) + 20 <= 192, "geometry is lines 1-3");
_Static_assert(offsetof(struct prot_shm_header, config_gen) == 256, "protd line");
_Static_assert(offsetof(struct prot_shm_header, rate_buckets_used) == 320, "client counters line");
_Static_assert(offsetof(struct prot_shm_header, event_head) == 384, "event head line");
_Static_assert(offsetof(struct prot_shm_header, rate_sweep_cursor) < 384, "sweep cursor on line 5");
_Static_assert(sizeof(struct prot_proc_slot) == 64, "a process slot is one line");
_Static_assert(offsetof(struct prot_shm_header, rate_summary_off) == 568, "summary at the end of line 8");
_Static_assert(sizeof(struct prot_key_cfg) == 128, "key cfg is two lines");
_Static_assert(sizeof(struct prot_key_slot) == 64 + 128 + 256, "key slot");
_Static_assert(sizeof(struct prot_breaker_cfg) == 128, "breaker cfg is two lines");
_Static_assert(offsetof(struct prot_breaker_slot, word) == 192, "breaker word line");
_Static_assert(offsetof(struct prot_breaker_slot, admitted) == 256, "breaker counters line");
_Static_assert(sizeof(struct prot_breaker_slot) ==
               320 + BREAKER_MELT_RING * 8 + 2 * BREAKER_RATE_BITS / 8 + BREAKER_PROBES_MAX * 8,
               "breaker slot");
_Static_assert(sizeof(struct prot_pool_cfg) == 128, "pool cfg is two lines");
_Static_assert(sizeof(struct prot_pool_slot) == 320, "pool slot");
_Static_assert(offsetof(struct prot_pool_slot, lock) == 192, "pool lock line");
_Static_assert(offsetof(struct prot_pool_slot, checkouts) == 256, "pool counters line");
_Static_assert(sizeof(struct prot_lease_slot) == 48, "lease (ABI 3: since_ns, leak_gen; ABI 4: conn_owner)");
_Static_assert(offsetof(struct prot_lease_slot, conn_owner) == 32, "connection slot (ABI 4)");
_Static_assert(offsetof(struct prot_pool_cfg, leak_threshold_ms) == 10 * 8, "pool cfg words (ABI 3)");
_Static_assert(offsetof(struct prot_pool_cfg, max_open) == 11 * 8, "pool cfg words (ABI 4)");
_Static_assert(offsetof(struct prot_pool_slot, close_req) == 240, "connection slots on the lock line (ABI 4)");
_Static_assert(sizeof(struct prot_waiter_slot) == 16, "waiter");
_Static_assert(sizeof(struct prot_rate_bucket) == 128, "a bucket is two lines");
_Static_assert(offsetof(struct prot_rate_bucket, denied) == 64, "denials write line 1 only");
_Static_assert(RATE_ENTITY_HEAD + RATE_ENTITY_TAIL == PROT_ENTITY_MAX, "entity fits a bucket");
_Static_assert(offsetof(struct prot_rate_bucket, updated_ms) < 64, "an admission writes line 0 only");
_Static_assert(offsetof(struct prot_rate_bucket, created_ns) == 120, "created at the end of line 1");
_Static_assert(sizeof(struct prot_rate_group_hdr) == 64, "group index is one line");
_Static_assert(sizeof(struct prot_rate_group) == 64 + RATE_GROUP_SLOTS * 128, "130 B per entity");
_Static_assert(sizeof(struct prot_event) == 128, "event");
_Static_assert(sizeof(struct prot_rate_ring) == 64, "a ring's header is one line");
_Static_assert(RATE_RING_BYTES(RATE_RING_LIMIT_MAX) < (1ull << 32), "a ring's stride fits its region");
_Static_assert(sizeof(struct prot_rate_op) == 64, "an operation record is one line");
_Static_assert(sizeof(struct prot_rate_grant) == 32, "two grants per line");
_Static_assert(offsetof(struct prot_rate_global, head) == 64, "the ring head has its own line");
_Static_assert(offsetof(struct prot_rate_global, grant) == 128 + RATE_GLOBAL_RING * 8, "grants");
_Static_assert(offsetof(struct prot_key_cfg, rate_scope) == 6 * 8, "scope words lead with the rate (ABI 7)");

#endif
