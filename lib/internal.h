/* internal.h — libprot's private interface: the per-process handle, and the helpers every module
 * shares (clock, seqlock reads, region access, named-slot lookup). protd, protctl and the tests
 * link the static library and may use these; nothing here is exported from libprot.so.
 */
#ifndef PROT_INTERNAL_H
#define PROT_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "layout.h"
#include "rate_algo.h"

#define PROT_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- process identity (lib/ident.c) -------------------------------------------------------- */
#define PROC_SLOT_BITS 16
#define PROC_SLOTS_MAX ((1u << PROC_SLOT_BITS) - 1) /* slot 0xffff never exists: a marker */
#define PROC_INC_MAX ((1ull << (63 - PROC_SLOT_BITS)) - 1) /* bit 63 of an identity is always 0 */
static inline uint32_t ident_slot(uint64_t id) { return (uint32_t)(id & ((1u << PROC_SLOT_BITS) - 1)); }
static inline uint64_t ident_inc(uint64_t id) { return id >> PROC_SLOT_BITS; }

/* What a liveness test needs: the mapping, an fd of the segment (for F_OFD_GETLK), the private
 * process-slot count, and the caller's own identity (0: none). */
struct prot_idv {
	struct prot_shm_header *h;
	int fd;
	uint32_t nprocs;
	uint64_t self;
};
/* Claim a process slot of h through fd (an O_RDWR fd of the segment that nobody else uses): 0 and
 * *out, -PROT_ECAPACITY when every slot is held, or -errno. */
PROT_HIDDEN int ident_claim(struct prot_shm_header *h, uint32_t nprocs, int fd, uint32_t flags,
                            uint64_t *out);
/* Give the slot up (the lock; the slot's incarnation stays, now dead). */
PROT_HIDDEN void ident_release(int fd, uint64_t ident);
/* 1 when the holder of `ident` is alive, 0 when it is provably gone (or ident is no identity). */
PROT_HIDDEN int ident_alive(const struct prot_idv *v, uint64_t ident);
/* The same for an identity stored with only the low bits of its incarnation (inc & mask). */
PROT_HIDDEN int ident_alive_masked(const struct prot_idv *v, uint32_t slot, uint64_t inc, uint64_t mask);

/* ---- one mapping of a segment ------------------------------------------------------------ */
struct prot_map {
	struct prot_shm_header *hdr; /* == base */
	size_t size;
	dev_t dev;
	ino_t ino;
	int fd;           /* kept open: holds this attachment's identity lock (lib/ident.c) */
	uint32_t nprocs;  /* private copy of the process-slot count, taken at attach */
	uint64_t ident;   /* this handle's identity in this segment; 0: none (read-only handle, a
	                     retired mapping in a forked child). Written before the map is published,
	                     or by the fork refresh before it publishes FORK_ARMED. */
	struct prot_map *older; /* retired mappings stay mapped until prot_close(): a thread may
	                           still be inside an operation on them */
};

struct prot_pool_local; /* lib/pool_local.h */

/* A per-handle memo of operation-name hashes (lib/ratelimit.c): operation names are program
 * constants, and hashing one costs as much as the rest of a rate decision. Each entry is a small
 * seqlock (odd seq: being written; writers claim it by CAS, so threads sharing the handle are
 * safe); it is keyed by the segment too, whose hash key a successor segment changes. */
#define RATE_OP_CACHE 8
struct rate_op_cache {
	_Atomic uint32_t seq;
	uint32_t len;
	const struct prot_shm_header *h;
	uint64_t op_hash;
	uint64_t op[(PROT_OP_MAX + 8) / 8]; /* the name, zero-padded */
	uint32_t key_idx, key_state;        /* the name as a protection key: slot, and its state word
	                                       when resolved (0: not resolved) */
	uint64_t key_rate[13];              /* struct key_rate (below) as words: what a decision needs
	                                       of the key's rate fields (seq odd: not taken) */
};

/* What a key's decision needs of its rate fields, derived from them once (lib/ratelimit.c): kept
 * in the name memo (rate_op_cache.key_rate) and in the facade's resolved key (struct
 * rate_key_ref), and served while the slot's state word and the cfg seqlock word `seq` they were
 * derived under are both unchanged (protd writes a slot's configuration only inside the seqlock's
 * odd phase, which moves the word). */
struct key_rate {
	struct rate_params rp;
	uint64_t full, clock; /* rate_full_policy, rate_clock (AUTO resolved) */
	uint32_t on;          /* rate_cfg_on */
	uint32_t seq;         /* the cfg seqlock word they were derived under (odd: none) */
};

/* The write side of a per-handle memo entry: a small seqlock that any thread sharing the handle
 * may write. memo_write_begin claims it by a CAS of an even seq to odd (false: busy, or another
 * thread won; the caller then does not memoise) and orders that before the entry's stores (release
 * fence); the caller writes with relaxed atomic stores, then memo_write_end releases seq + 2, so a
 * reader that acquires the even value sees the whole entry. Readers: acquire seq, copy, then
 * seq_read_retry. */
static inline bool memo_write_begin(_Atomic uint32_t *seq, uint32_t *s)
{
	*s = atomic_load_explicit(seq, memory_order_relaxed);
	if ((*s & 1) || !atomic_compare_exchange_strong_explicit(seq, s, *s + 1, memory_order_relaxed,
	                                                         memory_order_relaxed))
		return false;
	atomic_thread_fence(memory_order_release);
	return true;
}
static inline void memo_write_end(_Atomic uint32_t *seq, uint32_t s)
{
	/* release: the entry's stores happen before a reader acquires this even seq */
	atomic_store_explicit(seq, s + 2, memory_order_release);
}

/* The per-handle memo of rate buckets (lib/rate_memo.h, which argues it): a direct-mapped table
 * of small seqlocks, each naming one (mapping, operation, entity, scale) -> (bucket, its meta). */
#define RATE_MEMO 64
struct rate_memo {
	_Atomic uint32_t seq;
	uint32_t id0; /* op_len | ent_len << 8, as struct rate_id's */
	const struct prot_shm_header *h;
	uint64_t op_hash, scale;
	uint64_t ent[8]; /* the entity, zero-padded (ENT_WORDS) */
	uint64_t meta;
	uint32_t bucket;
};

/* The per-handle memo of name resolutions (lib/resolve.c, which argues why it is never stale): a
 * direct-mapped table of small seqlocks, each naming one (mapping, region, name) -> slot_ref. */
#define RESOLVE_MEMO 16
struct resolve_memo {
	_Atomic uint32_t seq;
	uint32_t reg;
	const struct prot_shm_header *h;
	uint32_t idx, state;
	_Atomic uint32_t *word;     /* slot idx's state word, in mapping h */
	char name[PROT_NAME_BYTES]; /* the name and its NUL (the bytes after it are stale) */
};

struct prot {
	char name[64];
	unsigned flags;
	_Atomic(struct prot_map *) map; /* current mapping; swapped on re-attach to a successor */
	uint64_t next_reattach_ns;      /* retired segment: earliest next successor probe */
	/* A page mapped with MADV_WIPEONFORK: reads as zero in a child, which is how a handle learns
	 * it is now in another process without getpid() on the hot path or a global atfork list. */
	_Atomic uint64_t *fork_page;
	prot_t *fork_next, *fork_prev;  /* the process's list of handles, for the atfork handler */
	uint32_t fork_epoch;            /* bumped by each fork refresh: whose local state is whose */
	pthread_mutex_t lock;           /* guards ident refresh, re-attach and pool-local state */
	struct prot_pool_local *pools;  /* this process's connectors and connections (lib/pool_conn.c) */
	struct rate_op_cache rate_ops[RATE_OP_CACHE]; /* lib/ratelimit.c */
	struct resolve_memo memo[RESOLVE_MEMO];       /* lib/resolve.c */
	struct rate_memo rate_memo[RATE_MEMO];        /* lib/rate_memo.h */
	/* Telemetry (lib/telemetry.c). tel_mask is the union of the handlers' masks: the hot path
	 * tests it with one relaxed load and a predictable branch. Each slot is a small seqlock: seq
	 * is odd while attach/detach (under p->lock) rewrites mask/fn/ctx, so an emitting thread never
	 * calls a handler with another handler's context. */
	_Atomic uint32_t tel_mask;
	struct prot_tel_slot {
		_Atomic uint32_t seq;
		_Atomic uint32_t mask;
		void (*_Atomic fn)(const struct prot_tel *ev, void *ctx);
		void *_Atomic ctx;
	} tel[8];
};

/* The gate of every public entry point: a handle, and for the calls that write the segment (or
 * ask protd to), a read-write one. 0, -EINVAL or -EROFS. */
static inline int prot_gate(const prot_t *p, bool writes)
{
	if (!p)
		return -EINVAL;
	return writes && (p->flags & PROT_OPEN_RDONLY) ? -EROFS : 0;
}

/* lib/telemetry.c */
PROT_HIDDEN void prot_tel_emit(prot_t *p, const struct prot_tel *ev);
static inline bool prot_tel_on(prot_t *p, uint32_t ev)
{
	return unlikely(atomic_load_explicit(&p->tel_mask, memory_order_relaxed) & (1u << ev));
}
/* Emit an event if anyone listens: builds the struct only then. */
#define PROT_TEL(p, ev_, ...)                                                                    \
	do {                                                                                     \
		if (prot_tel_on((p), (ev_))) {                                                   \
			struct prot_tel tel_ev_ = {.event = (ev_), __VA_ARGS__};                 \
			prot_tel_emit((p), &tel_ev_);                                            \
		}                                                                                \
	} while (0)

/* ---- clock --------------------------------------------------------------------------------- */
static inline uint64_t prot_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static inline uint64_t prot_now_coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A spin-wait hint: PAUSE on x86, YIELD on arm64; elsewhere a compiler barrier only (correct, the
 * loops that use it are bounded either way, merely less polite to a sibling hyperthread). */
static inline void prot_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* ---- seqlock over configuration blocks (protd is the single writer) ----------------------- */
/* Copy n 64-bit words of a config block consistently: 0, or -PROT_ETORN when the counter stayed
 * odd (or kept moving) for SEQ_PATIENCE_NS after SEQ_SPINS tries. protd holds the odd state for a
 * few stores; a counter that stays odd means its writer died mid-write (or a hostile writer set
 * it): no reader may spin on it forever. protd repairs odd counters when it starts. */
#define SEQ_SPINS 1024
#define SEQ_PATIENCE_NS (20ull * 1000000)

/* The bounded wait of every reader of a sequence counter: after a failed attempt, true to try
 * again (a relax for SEQ_SPINS attempts, then yields), false once SEQ_PATIENCE_NS have passed. */
struct seq_wait {
	uint32_t tries;
	uint64_t give_up;
};
static inline bool seq_wait_more(struct seq_wait *w)
{
	if (w->tries++ < SEQ_SPINS) {
		prot_cpu_relax();
		return true;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (!w->give_up)
		w->give_up = now + SEQ_PATIENCE_NS;
	else if (now >= w->give_up)
		return false;
	sched_yield(); /* the writer may be descheduled mid-write: let it run */
	return true;
}

/* The whole-change readers (lib/facade.c) wait longer for a live writer: once SEQ_PATIENCE_NS
 * have passed, true (wait on, sleeping) while protd is alive (its identity lock: a descheduled
 * protd is slow, not dead), up to SEQ_PATIENCE_ALIVE_NS in all (protd's change takes
 * microseconds; an odd generation it did not make is ended by its next tick). v NULL: none. */
#define SEQ_PATIENCE_ALIVE_NS (100ull * 1000000)
PROT_HIDDEN bool seq_wait_writer(struct seq_wait *w, const struct prot_idv *v);

/* The read side of every sequence-validated copy, in Concurrency Kit's shape (ck_sequence):
 * v = seq_read_begin(&word) (acquire: pairs with the writer's release of the value the copy
 * belongs to), copy with relaxed loads, then seq_read_retry(&word, v): true when the word moved
 * (or the caller finds v odd), i.e. the copy may be torn and must be dropped or redone. The fence
 * orders the copy before the re-load. Any width of word (32 or 64 bits). A retry loop around it is
 * bounded by the caller (seq_wait_more, or a fixed count): a writer can die at any instruction. */
#define seq_read_begin(word) atomic_load_explicit((word), memory_order_acquire)
#define seq_read_retry(word, v)                                                                \
	(atomic_thread_fence(memory_order_acquire), atomic_load_explicit((word), memory_order_relaxed) != (v))

/* ... and the (even) counter value the copy belongs to, in *at: while the counter still holds it,
 * the words are the ones copied (a memo of what was derived from them checks that). */
static inline int seq_read_at(_Atomic uint32_t *seq, const void *src, void *dst, size_t words,
                              uint32_t *at)
{
	const uint64_t *s = src;
	uint64_t *d = dst;
	struct seq_wait w = { 0 };
	do {
		uint32_t a = atomic_load_explicit(seq, memory_order_acquire); /* pairs with seq_write_end */
		if (!(a & 1u)) {
#pragma GCC unroll 16 /* blocks are at most 16 words: independent loads, not a loop-carried chain */
			for (size_t i = 0; i < words; i++)
				d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
			if (!seq_read_retry(seq, a)) {
				*at = a;
				return 0;
			}
		}
	} while (seq_wait_more(&w));
	return -PROT_ETORN;
}

static inline int seq_read(_Atomic uint32_t *seq, const void *src, void *dst, size_t words)
{
	uint32_t at;
	return seq_read_at(seq, src, dst, words, &at);
}

/* The writer's odd phase. A counter found odd already (a writer died mid-write, or another writer
 * of the segment set it) stays odd: the words are being written again, and seq_write_end makes it
 * even once they are whole. */
static inline void seq_write_begin(_Atomic uint32_t *seq)
{
	atomic_store_explicit(seq, atomic_load_explicit(seq, memory_order_relaxed) | 1u, memory_order_relaxed);
	atomic_thread_fence(memory_order_release); /* odd seq is visible before any word changes */
}
static inline void seq_write_words(void *dst, const void *src, size_t words)
{
	uint64_t *d = dst;
	const uint64_t *s = src;
	for (size_t i = 0; i < words; i++)
		__atomic_store_n(&d[i], s[i], __ATOMIC_RELAXED);
}
static inline void seq_write_end(_Atomic uint32_t *seq)
{
	/* release: every word store happens before the even seq a reader acquires */
	atomic_store_explicit(seq, atomic_load_explicit(seq, memory_order_relaxed) + 1,
	                      memory_order_release);
}

/* ---- regions: the private geometry --------------------------------------------------------- */
/* What a process takes from a segment's header once, when it maps it: validated on a private copy
 * and kept on a read-only private page just below the mapping (seg_map), so that neither a hostile
 * writer of the segment nor a stray write in this process can move a region afterwards. Every
 * offset, count and stride used to reach an entry comes from here, never from the mapping. */
#define SEG_GEO_BYTES 4096u
struct seg_geo {
	struct prot_region region[REG_COUNT_];
	uint32_t pool_max_slots, pool_max_waiters, rate_groups;
	uint32_t rate_ring_limit;  /* slots per sliding-window ring (REG_RATE_RINGS' stride follows) */
	uint64_t rate_summary_off; /* 0: none */
	uint64_t total_size;
	uint64_t id;               /* created_ns ^ hash_key[0]: names the segment in a lease */
	int valid;                 /* seg_take_geometry accepted the header */
	struct prot_shm_header copy; /* the header as validated: its immutable words, for tamper checks */
};
_Static_assert(sizeof(struct seg_geo) <= SEG_GEO_BYTES, "the geometry fits its page");

static inline const struct seg_geo *seg_geo(const struct prot_shm_header *h)
{
	return (const struct seg_geo *)(const void *)((const char *)h - SEG_GEO_BYTES);
}
/* Entry i of region reg; callers check i < seg_count(h, reg) (both from the private geometry). */
static inline void *seg_entry(const struct prot_shm_header *h, int reg, uint32_t i)
{
	const struct prot_region *r = &seg_geo(h)->region[reg];
	return (char *)h + r->off + (uint64_t)i * r->stride;
}
static inline uint32_t seg_count(const struct prot_shm_header *h, int reg)
{
	return seg_geo(h)->region[reg].count;
}

/* Keys, breakers and pools share this line-0 prefix. */
struct prot_named {
	_Atomic uint32_t state;
	_Atomic uint32_t seq;
	uint64_t name_hash;
	char name[PROT_NAME_BYTES];
};
_Static_assert(offsetof(struct prot_key_slot, name) == offsetof(struct prot_named, name), "prefix");
_Static_assert(offsetof(struct prot_breaker_slot, name) == offsetof(struct prot_named, name), "prefix");
_Static_assert(offsetof(struct prot_pool_slot, name) == offsetof(struct prot_named, name), "prefix");

/* Names are short (at most PROT_NAME_MAX bytes): a plain bounded loop beats the vectorised libc
 * calls, whose set-up costs more than the scan, on the per-call paths. */
static inline size_t prot_name_len(const char *s)
{
	size_t n = 0;
	while (n <= PROT_NAME_MAX && s[n])
		n++;
	return n; /* > PROT_NAME_MAX: too long */
}
static inline bool prot_name_eq(const char *a, const char *b)
{
	for (size_t i = 0; i < PROT_NAME_BYTES; i++) {
		if (a[i] != b[i])
			return false;
		if (!a[i])
			return true;
	}
	return false;
}

/* FNV-1a: names are public and few; this hash only speeds up the comparison. */
static inline uint64_t prot_name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

/* ---- functions shared between modules (hidden) ------------------------------------------- */

/* lib/segment.c */
struct seg_geometry {
	uint32_t max_keys, max_breakers, max_pools, pool_max_slots, pool_max_waiters, events;
	uint64_t rate_entities; /* rounded up to a power-of-two number of groups */
	uint32_t max_procs;     /* process slots (read-write handles + protd); 0: PROC_SLOTS_DEFAULT */
	uint32_t sliding_buckets;   /* sliding-window rings (lib/rate_sliding.c); 0: none */
	uint32_t sliding_max_limit; /* admissions per ring, <= RATE_RING_LIMIT_MAX */
	uint32_t rate_global;       /* 1: the global-limits area (REG_RATE_GLOBAL, [redis]); 0: none */
};
#define PROC_SLOTS_DEFAULT 1024u
/* Bytes needed for a geometry; fills the region table of *h (which may be NULL). */
PROT_HIDDEN int seg_layout(const struct seg_geometry *g, struct prot_shm_header *h, size_t *size);
/* Check a header (a private copy of one) against its mapping size: magic, ABI, size, every region
 * in bounds and non-overlapping, strides equal to this build's sizeof. Returns 0 or PROT_E*. */
PROT_HIDDEN int seg_validate(const void *base, size_t size);
/* Map size bytes of fd (fd < 0: anonymous shared memory, for tests) with the private geometry page
 * below it. The geometry is empty until seg_take_geometry. 0 and *out, or -errno. */
PROT_HIDDEN int seg_map(int fd, size_t size, bool rdonly, struct prot_shm_header **out);
PROT_HIDDEN void seg_unmap(struct prot_shm_header *h, size_t size);
/* Copy the header, validate the copy against the mapping size and keep it as this mapping's
 * geometry. 0 or PROT_E*. */
PROT_HIDDEN int seg_take_geometry(struct prot_shm_header *h, size_t size);
/* Which of the header's immutable words differ from the geometry taken: a bitmask of the header's
 * 64-byte lines (0: none). */
PROT_HIDDEN uint32_t seg_tampered(const struct prot_shm_header *h);
/* protd, the owner: write those words back from the geometry taken. */
PROT_HIDDEN void seg_restore_header(struct prot_shm_header *h);
/* The geometry recorded in a validated header. */
PROT_HIDDEN void seg_geometry_of(const struct prot_shm_header *h, struct seg_geometry *g);
/* The mapping to operate on: checks retirement (one relaxed load on header line 0) and fork. */
PROT_HIDDEN struct prot_shm_header *prot_hdr(prot_t *p);

/* lib/fork.c: the handle's identities in this process, across fork(). *p->fork_page is one of: */
enum { FORK_WIPED = 0, FORK_ARMED = 1, FORK_BUSY = 2 };
/* Make p's fork page (prot_open, before anything else): 0 or -errno. */
PROT_HIDDEN int fork_track(prot_t *p);
/* p is complete (its first mapping's identity claimed): list it for the atfork handler, and
 * publish ARMED (release). */
PROT_HIDDEN void fork_arm(prot_t *p);
/* Take p off the list and free its fork page (prot_close; also for a p never armed). */
PROT_HIDDEN void fork_untrack(prot_t *p);
/* Claim this process's identity in mapping m (read-write handles only): 0 or -errno/PROT_E*. */
PROT_HIDDEN int map_claim(struct prot_map *m);
/* The slow path of fork_check: this process is a child that inherited p. */
PROT_HIDDEN void fork_refresh(prot_t *p);
static inline void fork_check(prot_t *p)
{
	/* acquire: pairs with the release store of ARMED in fork_refresh (or fork_arm) */
	if (unlikely(atomic_load_explicit(p->fork_page, memory_order_acquire) != FORK_ARMED))
		fork_refresh(p);
}
/* The liveness view of mapping h of p for the calling process (identity refreshed after a fork):
 * always filled; self is 0 when this process has no identity in h (read-only handle). */
PROT_HIDDEN void prot_idv(prot_t *p, struct prot_shm_header *h, struct prot_idv *v);
/* The calling process's identity in h (0: none). */
PROT_HIDDEN uint64_t prot_self(prot_t *p, struct prot_shm_header *h);
/* Is protd alive (its identity lock held)? */
PROT_HIDDEN int protd_alive(const struct prot_idv *v);

/* ---- names to slots (lib/resolve.c) --------------------------------------------------------- */
/* A named slot (REG_KEYS / REG_BREAKERS / REG_POOLS) as resolved: its index, and its state word
 * (SLOT_LIVE | generation << 8) when the name was proved to be in it. While the slot's state word
 * still equals `state`, the slot holds that name (lib/resolve.c argues it). */
struct slot_ref {
	uint32_t idx, state;
};
/* Pass a slot_ref by pointer and read its fields, on the per-call paths: a copy of the whole struct
 * loads 8 bytes that were stored as two 4-byte halves, and the store-forwarding stall that makes
 * costs more than the resolution. */
/* Does slot ref.idx of region reg still hold what it held when resolved? One acquire load (pairs
 * with protd's release of LIVE | gen: the slot's name and configuration are complete). */
static inline bool slot_ref_holds(const struct prot_shm_header *h, int reg, const struct slot_ref *ref)
{
	if (ref->idx >= seg_count(h, reg))
		return false;
	struct prot_named *s = seg_entry(h, reg, ref->idx);
	return atomic_load_explicit(&s->state, memory_order_acquire) == ref->state;
}
/* Find a LIVE named slot by scanning region reg: 0 and *out, or -PROT_ENOKEY / -PROT_ENOBREAKER /
 * -PROT_ENOPOOL, -PROT_ETOOLONG, -EINVAL (not a named region, name NULL). No memo: protctl, the
 * tests, and the memo's misses. seg_find is the index form (index, or the same errors). */
PROT_HIDDEN int seg_find_ref(const struct prot_shm_header *h, int reg, const char *name,
                             struct slot_ref *out);
PROT_HIDDEN int seg_find(const struct prot_shm_header *h, int reg, const char *name);
/* THE RESOLVER: name -> slot in mapping h of handle p (h: prot_hdr(p), or a mapping of p kept from
 * it), answered from p's memo while the slot's state word is unchanged, else by a scan that then
 * updates the memo. p NULL: a scan. Same returns as seg_find_ref; *out untouched on failure. One
 * call per name per operation: keep the slot_ref for the rest of the operation. Thread-safe on a
 * shared handle. For the rate limiter's key names (prot_rate_check_key): prot_lookup(p, REG_KEYS,
 * key, true, &h, &ref), then the key's index is ref.idx (its memo then needs no key slot). */
PROT_HIDDEN int prot_resolve(prot_t *p, const struct prot_shm_header *h, int reg, const char *name,
                             struct slot_ref *out);
/* The prologue of a public call on named object `name` of region reg: the gate (writes: a
 * read-write handle, else -EROFS), name NULL (-EINVAL), the mapping (prot_hdr: retirement, fork)
 * and prot_resolve. 0 with *h and *out, or the first error (outputs untouched). */
PROT_HIDDEN int prot_lookup(prot_t *p, int reg, const char *name, bool writes,
                            struct prot_shm_header **h, struct slot_ref *out);
/* Empty p's memo (the fork refresh: an entry a parent thread was writing stays odd otherwise). */
PROT_HIDDEN void resolve_forget(prot_t *p);
/* lib/ratelimit.c: empty the rate memos (struct rate_memo, struct rate_op_cache), for fork_refresh. */
PROT_HIDDEN void rate_memo_forget(prot_t *p);

/* lib/hash.c: SipHash-1-3 with the segment's key. */
PROT_HIDDEN uint64_t prot_siphash(const uint64_t key[2], const void *data, size_t len);

/* lib/event.c: append to the event ring (never blocks; overwrites the oldest). */
PROT_HIDDEN void prot_event_emit(struct prot_shm_header *h, uint32_t type, uint32_t object,
                                 const char *name, uint64_t a, uint64_t b);
/* Read the event numbered *cursor (0 = the first ever emitted). Returns 1 and fills *out (cursor
 * advanced), or 0 when no newer event is published yet. Entries overwritten before they were read
 * are skipped, the cursor moved past them and their number added to *dropped (may be NULL).
 * Reads only: works on a read-only mapping. */
PROT_HIDDEN int prot_event_read(const struct prot_shm_header *h, uint64_t *cursor,
                                struct prot_event *out, uint64_t *dropped);
/* The oldest event still in the ring: a reader that wants history starts here. */
PROT_HIDDEN uint64_t prot_event_oldest(const struct prot_shm_header *h);
/* lib/event_text.c: events in words, shared by protctl and protd. */
/* "breaker_open", ... ; "unknown" for a type this build does not know. */
PROT_HIDDEN const char *prot_event_name(uint32_t type);
/* What happened and the payload's meaning, into buf (n bytes, always terminated; no name, only
 * the table's words and numbers): "opened: 4 failures in the window, epoch 3". Returns buf. */
PROT_HIDDEN const char *prot_event_words(const struct prot_event *e, char *buf, size_t n);
/* The payload words an event of e's type carries, named for JSON: fills up to PROT_EVENT_FIELDS
 * entries of out, returns how many. value_name is a string form of a policy word ("deny"), else
 * NULL. */
#define PROT_EVENT_FIELDS 2
struct prot_event_field {
	const char *json;
	uint64_t value;
	const char *value_name;
};
PROT_HIDDEN int prot_event_fields(const struct prot_event *e, struct prot_event_field out[PROT_EVENT_FIELDS]);
/* An untrusted name as printable ASCII (backslash as \\, other bytes outside 0x20..0x7e as \xNN),
 * for protd's log. buf of n bytes (4 * PROT_NAME_BYTES + 1 holds any event name). Returns buf. */
PROT_HIDDEN const char *prot_event_safe_name(const char *s, char *buf, size_t n);

/* lib/control.c: one request over protd's control socket ("breaker-create NAME k=v ...",
 * "set KEY k=v ..."); protd's reply, read whole, then its body goes to reply (n bytes,
 * NUL-terminated, truncated to fit; *len, when len is not NULL, gets the body's whole length):
 * the records after "ok", or the message after "error ". Returns 0, or the error class of the
 * message: -EACCES ("permission denied"), -PROT_EEXIST ("exists:"), -PROT_ENOKEY,
 * -PROT_ENOBREAKER, -PROT_ENOPOOL ("no such ..."), else -PROT_EINVAL_CONFIG (refused);
 * -PROT_ENOTCONNECTED (protd unreachable), -ETIMEDOUT (outcome unknown). Protocol and records:
 * man/prot-control.7.scd (lib/wire.h reads them). */
#define PROT_CTL_REQUEST_MAX 4096 /* a request line, '\n' included (protd's bound) */
PROT_HIDDEN int prot_control_len(prot_t *p, const char *request, char *reply, size_t n, size_t *len);
PROT_HIDDEN int prot_control(prot_t *p, const char *request, char *reply, size_t n);

/* A breaker's or a pool's configuration words as one copy (seq_read), which the facade takes with
 * the key's under one configuration generation and hands to the layers (lib/facade.c). Only the
 * owning module interprets the words. */
struct cfg_snap {
	uint64_t w[16];
};
/* lib/breaker_view.c, lib/pool.c */
PROT_HIDDEN int breaker_cfg_snap(struct prot_shm_header *h, uint32_t idx, struct cfg_snap *out);
PROT_HIDDEN int pool_cfg_snap(struct prot_shm_header *h, uint32_t idx, struct cfg_snap *out);
/* The same as breaker_allow_idx / breaker_record_idx, deciding on cfg (NULL: read it now). */
PROT_HIDDEN int breaker_allow_cfg(prot_t *p, struct prot_shm_header *h, uint32_t idx, uint64_t now_ns,
                                  const struct cfg_snap *cfg, prot_breaker_token *tok);
PROT_HIDDEN int breaker_record_cfg(prot_t *p, struct prot_shm_header *h, const prot_breaker_token *tok,
                                   int outcome, uint64_t duration_ns, uint64_t now_ns,
                                   const struct cfg_snap *cfg);

/* lib/breaker_call.c: index-based forms of prot_breaker_* (the facade resolves the index once).
 * p may be NULL (no telemetry); now_ns 0 = read the clock only if the decision needs it. */
PROT_HIDDEN int breaker_allow_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx,
                                  uint64_t now_ns, prot_breaker_token *tok);
PROT_HIDDEN int breaker_record_idx(prot_t *p, struct prot_shm_header *h,
                                   const prot_breaker_token *tok, int outcome,
                                   uint64_t duration_ns, uint64_t now_ns);
PROT_HIDDEN int breaker_execute_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx,
                                    int (*fn)(void *arg), void *arg, int *fn_result);
/* how: BREAKER_RESET (close; PROT_EDISABLED when disabled), BREAKER_BLOW (disable),
 * BREAKER_ENABLE (close a disabled breaker). */
enum { BREAKER_RESET = 0, BREAKER_BLOW = 1, BREAKER_ENABLE = 2 };
PROT_HIDDEN int breaker_force_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx, int how);
/* lib/breaker_view.c. Read-only: works on a read-only mapping. */
PROT_HIDDEN int breaker_status_idx(struct prot_shm_header *h, uint32_t idx, uint64_t now_ns,
                                   struct prot_breaker_status *out);
/* The one spelling of each enum prot_breaker_state, for protctl, metrics, JSON and the docs:
 * "closed", "open", "half_open", "blown" ("unknown" beyond); lib/names.c holds the table. */
PROT_HIDDEN const char *prot_breaker_state_name(uint32_t state);
/* Would two configurations decide alike? Equal once read as decisions read them (defaults
 * filled in), the options their strategy does not use aside: protd's test, at breaker-create,
 * of "exists with the same options". */
PROT_HIDDEN bool breaker_cfg_same(const struct prot_breaker_cfg *a, const struct prot_breaker_cfg *b);
/* Would a call be admitted now (0), or not (PROT_EBLOWN)? Reads only. */
PROT_HIDDEN int breaker_ask_idx(struct prot_shm_header *h, uint32_t idx, uint64_t now_ns);

/* lib/ratelimit.c: the rate limiter on a mapped header (protctl, the facade, tests). now_ns 0 =
 * read CLOCK_MONOTONIC. Same returns as the public forms. */
PROT_HIDDEN int rate_check_h(prot_t *p, struct prot_shm_header *h, const char *op,
                             const char *entity, const struct prot_rate_limit *lim, uint64_t cost,
                             uint64_t now_ns, struct prot_rate_info *info);
/* The same with a binary entity of el bytes. */
PROT_HIDDEN int rate_check_bin_h(prot_t *p, struct prot_shm_header *h, const char *op,
                                 const void *entity, size_t el, const struct prot_rate_limit *lim,
                                 uint64_t cost, uint64_t now_ns, struct prot_rate_info *info);
/* lib/rate_counter.c: Hammer's inc / get / set on (op, entity)'s bucket under lim at now_ns (0: read
 * the clock); 0 and *count (may be NULL but for get), or a negative error. */
enum rate_count_op { RATE_COUNT_INC, RATE_COUNT_GET, RATE_COUNT_SET };
PROT_HIDDEN int rate_count_h(prot_t *p, struct prot_shm_header *h, const char *op,
                             const char *entity, const struct prot_rate_limit *lim,
                             enum rate_count_op what, uint64_t n, uint64_t now_ns, uint64_t *count);
/* Key idx's limits (seqlock read of its cfg); key = its name if the caller has it, else NULL.
 * p may be NULL (then the operation hash is not memoised). */
PROT_HIDDEN int rate_check_key_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx,
                                   const char *key, const char *entity, uint64_t cost,
                                   struct prot_rate_info *info);
/* Does a key with these settings have a rate limiter? (A token bucket that never refills has a
 * rate of 0 and a capacity.) */
static inline bool rate_cfg_on(const struct prot_key_cfg *cfg)
{
	return cfg->rate_limit != 0 || cfg->rate_burst != 0;
}
/* Key idx's rate fields (cfg words 0-7, seqlock read; the other words are zeroed). */
PROT_HIDDEN int rate_key_cfg(struct prot_shm_header *h, uint32_t idx, struct prot_key_cfg *cfg);
/* A key's rate fields as decision parameters (lib/rate_algo.h), derived once. */
struct rate_params;
PROT_HIDDEN void rate_params_of_key(const struct prot_key_cfg *cfg, struct rate_params *rp);
/* A key as the facade resolves it once per call (lib/ratelimit.c): its slot through the rate
 * memo of its name, the name's hash, and its decision parameters with the cfg seqlock word they
 * were derived under (kr.seq). 0 and *out, or seg_find's error. */
struct rate_key_ref {
	uint64_t op_hash;
	uint32_t op_len, idx;
	struct key_rate kr;
};
PROT_HIDDEN int rate_key_resolve(prot_t *p, struct prot_shm_header *h, const char *key,
                                 struct rate_key_ref *out);
/* A decision for a resolved key on its cfg already read by the caller under seqlock word cfg_seq
 * (the facade reads it once per call): its limits, rate_on_full policy, counters and rate_clock;
 * ref's parameters serve when they were derived under that word, else cfg is converted again. op
 * names the buckets (NULL: the key's name); now_ns is a CLOCK_MONOTONIC reading the caller has,
 * used when the key decides on that clock (0: read the key's clock here). */
PROT_HIDDEN int rate_check_ref(prot_t *p, struct prot_shm_header *h, const struct rate_key_ref *ref,
                               const char *key, const char *op, const struct prot_key_cfg *cfg,
                               uint32_t cfg_seq, const char *entity, uint64_t cost, uint64_t now_ns,
                               struct prot_rate_info *info);
/* lib/rate_view.c: one entity's state under rp, charging nothing. Read-only: works on a read-only
 * mapping. */
PROT_HIDDEN int rate_status_h(struct prot_shm_header *h, const char *op, const char *entity,
                              const struct rate_params *rp, uint64_t now_ns,
                              struct prot_rate_info *out);
/* The same with a binary entity, and the whole status (existence, timestamps, expires_at). */
PROT_HIDDEN int rate_status_bin_h(struct prot_shm_header *h, const char *op, const void *entity,
                                  size_t el, const struct rate_params *rp, uint64_t now_ns,
                                  struct prot_rate_status *out);
/* lib/ratelimit.c: remove every bucket of (op, entity), whatever its algorithm and window: 0,
 * -ENOENT (none), -EAGAIN (it kept changing), or the names' errors (-EINVAL, -PROT_ETOOLONG). */
PROT_HIDDEN int rate_reset_h(struct prot_shm_header *h, const char *op, const char *entity);
PROT_HIDDEN int rate_reset_bin_h(struct prot_shm_header *h, const char *op, const void *entity,
                                 size_t el);
/* lib/rate_ops.c: the operation registry. note: remember op's name (hash op_hash); foreach: visit
 * every named operation (fn non-zero stops and is returned); name: op_hash's name, if noted. */
PROT_HIDDEN void rate_ops_note(struct prot_shm_header *h, const char *op, size_t ol,
                               uint64_t op_hash);
PROT_HIDDEN int rate_ops_foreach(const struct prot_shm_header *h,
                                 int (*fn)(const char *name, size_t len, uint64_t op_hash, void *arg),
                                 void *arg);
PROT_HIDDEN bool rate_ops_name(const struct prot_shm_header *h, uint64_t op_hash,
                               char out[PROT_OP_MAX + 1]);
/* lib/rate_view.c: a copy of one live bucket, for display. Strings are NUL-terminated; lengths are
 * clamped. */
struct rate_view {
	uint32_t group, slot, algo, kind; /* kind: algo | RATE_TAG_* (lib/rate_algo.h) */
	uint8_t op_len, ent_len;
	uint64_t op_hash, word, allowed, denied, window_ms;
	uint64_t created_ns, updated_ms; /* CLOCK_MONOTONIC; updated widened from its 32 bits */
	char entity[PROT_ENTITY_MAX + 1]; /* ent_len bytes (may hold NULs), then a NUL */
};
/* Visit the live buckets of operation op (NULL: all). fn returning non-zero stops and is returned.
 * Read-only. */
PROT_HIDDEN int rate_foreach(struct prot_shm_header *h, const char *op,
                             int (*fn)(const struct rate_view *v, void *arg), void *arg);
/* A bucket's public status from its view, at now_ns on the bucket's clock (0: read it), under rp
 * (NULL: the bucket's own algorithm and window with an unknown limit: only the raw state). Times
 * are CLOCK_MONOTONIC ms, Unix ms for a calendar (rate_clock = realtime) bucket. */
PROT_HIDDEN void rate_view_status(struct prot_shm_header *h, const struct rate_view *v,
                                  const struct rate_params *rp, uint64_t now_ns,
                                  struct prot_rate_status *out);
PROT_HIDDEN uint64_t rate_count_op(struct prot_shm_header *h, const char *op);
/* The rate totals of n keys (slot indices), in one pass over the table: live buckets of each key's
 * operation, and the units admitted / decisions denied by them plus by its removed buckets
 * (decisions write only their bucket; removals fold counts into the key). A bucket removed during
 * the pass may be counted twice for that one read. Read-only; an admin path. 0 or -ENOMEM. */
struct rate_totals {
	uint64_t buckets, allowed, denied;
};
PROT_HIDDEN int rate_keys_totals(struct prot_shm_header *h, uint32_t n, const uint32_t *key_idx,
                                 struct rate_totals *out);
/* lib/pool_conn.c: index-based forms for the facade (it resolves the pool index once; the checkout
 * takes the slot with the state word the caller saw, and finds this process's side of the pool by
 * it). Checkin goes through prot_pool_checkin: the lease carries the index. */
PROT_HIDDEN int pool_checkout_idx(prot_t *p, struct prot_shm_header *h, const struct slot_ref *pool,
                                  int64_t timeout_ms, const struct cfg_snap *cfg /* NULL: read */,
                                  prot_lease *lease, void **conn,
                                  bool *waited /* set when it had to queue; may be NULL */);
/* lib/pool.c. Read-only: works on a read-only mapping. */
PROT_HIDDEN int pool_status_idx(struct prot_shm_header *h, uint32_t idx, struct prot_pool_status *out);

/* Maintenance entry points that protd calls on its tick (they are also safe to call from any
 * process: every step is a CAS that re-checks what it acts on). */
/* lib/rate_table.c: visits a bounded slice of the table per call (cursor in hdr.rate_sweep_cursor);
 * *swept = buckets removed by this call. */
PROT_HIDDEN void rate_sweep(const struct prot_idv *v, uint64_t now_ns, uint64_t grace_ns,
                            uint64_t *swept);
/* lib/breaker.c: moves timed states on, and gives back the probes of dead holders */
PROT_HIDDEN void breaker_tick(const struct prot_idv *v, uint64_t now_ns);
/* lib/pool_reclaim.c: a reclaim pass over every pool whose reclaim_interval has passed */
PROT_HIDDEN void pool_reclaim(const struct prot_idv *v, uint64_t now_ns, uint64_t *reclaimed);
PROT_HIDDEN void pool_local_free(prot_t *p);                                               /* lib/pool_conn.c */
/* lib/pool_reclaim.c: protd retired pool idx: cancel its waiters (they return PROT_ENOPOOL) */
PROT_HIDDEN void pool_retire_waiters(struct prot_shm_header *h, uint32_t idx);
/* lib/pool_reclaim.c: the holders of pool idx (prot_pool_holders); read-only */
PROT_HIDDEN int pool_holders_idx(struct prot_shm_header *h, uint32_t idx, struct prot_pool_holder *out,
                                 size_t n, size_t *count);

#endif
