/* breaker.h — what lib/breaker.c (the state machine), lib/breaker_call.c (the index-based entry
 * points) and lib/breaker_view.c (configuration, views, the public calls) share about one breaker
 * slot: the encodings of its words (their meaning and memory orders: lib/breaker.c's opening
 * comment), the normalised copy of its configuration, the context of one operation on it, the
 * state machine's steps the entry points take, and the few reads of its history the views make.
 * Private to the library.
 */
#ifndef PROT_BREAKER_H
#define PROT_BREAKER_H

#include "internal.h"

/* ---- the state word ------------------------------------------------------------------------ */
#define EPOCH_BITS 30
#define EPOCH_MASK ((1u << EPOCH_BITS) - 1)
#define PROBES_MAX BREAKER_PROBES_MAX

static inline uint32_t w_state(uint64_t w) { return (uint32_t)(w >> 62); }
static inline uint32_t w_epoch(uint64_t w) { return (uint32_t)(w >> 32) & EPOCH_MASK; }
static inline uint32_t w_ok(uint64_t w) { return (uint32_t)w & 0xffffu; }
static inline uint64_t w_make(uint32_t state, uint32_t epoch, uint32_t issued, uint32_t ok)
{
	return (uint64_t)state << 62 | (uint64_t)(epoch & EPOCH_MASK) << 32 | (uint64_t)issued << 16 | ok;
}

/* a is a later epoch than b (epochs wrap; a lag of up to 2^29 transitions is unambiguous) */
static inline bool epoch_newer(uint32_t a, uint32_t b)
{
	uint32_t d = (a - b) & EPOCH_MASK;
	return d != 0 && d < (1u << (EPOCH_BITS - 1));
}

/* ---- since --------------------------------------------------------------------------------- */
#define SINCE_TIME_BITS 34
#define SINCE_TIME_MASK ((1ull << SINCE_TIME_BITS) - 1)
#define SINCE_FUTURE_MS 3600000ull

static inline uint64_t since_pack(uint32_t e, uint64_t ms)
{
	return (uint64_t)(e & EPOCH_MASK) << SINCE_TIME_BITS | (ms & SINCE_TIME_MASK);
}
static inline uint32_t since_epoch(uint64_t v) { return (uint32_t)(v >> SINCE_TIME_BITS); }
static inline uint64_t since_age_of(uint64_t v, uint64_t now_ms)
{
	uint64_t age = (now_ms - v) & SINCE_TIME_MASK;
	/* "In the future" (within an hour): another process read its clock a little later. Anything
	 * else is a real age, up to 2^34 ms less that hour (198 days); protd's tick moves every timed
	 * state on long before that. */
	return age > SINCE_TIME_MASK - SINCE_FUTURE_MS ? 0 : age;
}

/* ---- probe permits ----------------------------------------------------------------------------- */
#define HOLD_VALID (1ull << 63)
#define HOLD_TAG_MASK 0x7fffu
#define HOLD_ID_MASK ((1ull << 48) - 1)
#define HOLD_SPENT HOLD_ID_MASK /* slot 0xffff never exists */

static inline uint64_t hold_tag(uint32_t e) { return (uint64_t)(e & HOLD_TAG_MASK) << 48; }
static inline bool hold_current(uint64_t v, uint32_t e)
{
	return (v & HOLD_VALID) && ((v >> 48) & HOLD_TAG_MASK) == (e & HOLD_TAG_MASK);
}
/* The short identity a permit records: slot and the low 32 bits of the incarnation (never 0, see
 * ident_claim); 0 for a caller without identity (protd, tests driving the algorithm). */
static inline uint64_t hold_id(uint64_t self)
{
	return self ? (ident_inc(self) & 0xffffffffu) << 16 | ident_slot(self) : 0;
}
static inline uint64_t hold_value(uint32_t e, uint64_t self)
{
	return HOLD_VALID | hold_tag(e) | hold_id(self);
}

/* ---- melts (standard strategy) --------------------------------------------------------------- */
#define MELT_TIME_MASK ((1ull << 48) - 1)

static inline uint64_t melt_pack(uint32_t e, uint64_t ms) { return (uint64_t)(e & 0xffffu) << 48 | (ms & MELT_TIME_MASK); }

/* ---- configuration ---------------------------------------------------------------------------- */
#define BCFG_HEAD_WORDS 12 /* the words of prot_breaker_cfg a caller reads: strategy .. heal */

struct bcfg {
	uint64_t strategy, tolerance, window_ms, refresh_ms, probes, probe_timeout_ms;
	uint64_t slow_call_ms, rate_threshold_pct, rate_window_calls, rate_min_calls;
	uint64_t origin; /* protd's bookkeeping: not used here */
	uint64_t heal;
};
_Static_assert(sizeof(struct bcfg) == BCFG_HEAD_WORDS * 8, "bcfg mirrors the head of prot_breaker_cfg");
_Static_assert(offsetof(struct prot_breaker_cfg, heal) == (BCFG_HEAD_WORDS - 1) * 8, "cfg head");

/* A consistent copy (seqlock), with the documented defaults filled in and values clamped to
 * what the slot can hold: protd validates, but the segment is not trusted blindly. */
static inline void cfg_normalize(struct bcfg *c)
{
	if (c->strategy != PROT_BREAKER_RATE)
		c->strategy = PROT_BREAKER_STANDARD;
	if (c->tolerance > BREAKER_MELT_RING - 1)
		c->tolerance = BREAKER_MELT_RING - 1;
	if (c->probes == 0)
		c->probes = 1;
	if (c->probes > PROBES_MAX)
		c->probes = PROBES_MAX;
	if (c->probe_timeout_ms == 0)
		c->probe_timeout_ms = c->refresh_ms;
	if (c->rate_threshold_pct == 0 || c->rate_threshold_pct > 100)
		c->rate_threshold_pct = 50; /* resilience4j's defaults */
	if (c->rate_window_calls == 0 || c->rate_window_calls > BREAKER_RATE_BITS)
		c->rate_window_calls = c->rate_window_calls ? BREAKER_RATE_BITS : 100;
	if (c->rate_min_calls == 0)
		c->rate_min_calls = c->rate_window_calls;
	if (c->heal != PROT_HEAL_FULL)
		c->heal = PROT_HEAL_HALF_OPEN;
}

static inline int cfg_read(struct prot_breaker_slot *s, struct bcfg *c)
{
	int r = seq_read(&s->seq, &s->cfg, c, BCFG_HEAD_WORDS);
	if (r < 0)
		*c = (struct bcfg){ 0 }; /* no whole copy: nothing of it is used but the clamped defaults */
	cfg_normalize(c);
	return r;
}

/* The few configuration words a fast path decides on (lib/breaker_call.c), by their index in
 * struct bcfg: from the caller's snapshot (cfg), or from the slot as one consistent copy (the
 * seqlock of cfg_read, without its bounded wait: false while protd writes, and the caller takes
 * the full read, which waits or says PROT_ETORN). None of these words is one cfg_normalize
 * changes but the strategy, which the caller tests against PROT_BREAKER_RATE as cfg_normalize
 * does. */
#define BCFG_W(field) (offsetof(struct bcfg, field) / 8)
static inline bool cfg_read_few(struct prot_breaker_slot *s, const struct cfg_snap *cfg, const unsigned *at,
                                unsigned n, uint64_t *out)
{
	const uint64_t *w = (const uint64_t *)(const void *)&s->cfg;
	if (cfg) {
		for (unsigned i = 0; i < n; i++)
			out[i] = cfg->w[at[i]];
		return true;
	}
	uint32_t v = seq_read_begin(&s->seq); /* acquire: pairs with seq_write_end */
	for (unsigned i = 0; i < n; i++)
		out[i] = __atomic_load_n(&w[at[i]], __ATOMIC_RELAXED);
	return !(v & 1u) && !seq_read_retry(&s->seq, v);
}

/* ---- one operation on one slot ---------------------------------------------------------------- */
struct bk {
	prot_t *p; /* for telemetry and identity; NULL from protd */
	struct prot_shm_header *h;
	struct prot_breaker_slot *s;
	uint32_t idx;
	bool have_now;
	uint64_t now_ms;
	struct bcfg c;
};

static inline uint64_t bk_now(struct bk *b)
{
	if (!b->have_now) {
		b->now_ms = prot_now_ns() / 1000000u;
		b->have_now = true;
	}
	return b->now_ms;
}

/* Now, or a little before: the injected time, else CLOCK_MONOTONIC_COARSE, which lags the precise
 * clock by at most one kernel tick (<= 10 ms for HZ >= 100). */
#define COARSE_SLACK_MS 20

static inline uint64_t bk_now_cheap(const struct bk *b)
{
	return b->have_now ? b->now_ms : prot_now_coarse_ns() / 1000000u;
}

/* 0, or -PROT_ETORN: the breaker's configuration was left half-written (b is still usable for
 * reads of the state words, with the clamped defaults in b->c). */
static inline int bk_init_cfg(struct bk *b, prot_t *p, struct prot_shm_header *h, uint32_t idx,
                              uint64_t now_ns, const struct cfg_snap *cfg)
{
	b->p = p;
	b->h = h;
	b->idx = idx;
	b->s = seg_entry(h, REG_BREAKERS, idx);
	b->have_now = now_ns != 0;
	b->now_ms = now_ns / 1000000u;
	if (!cfg)
		return cfg_read(b->s, &b->c);
	memcpy(&b->c, cfg->w, sizeof b->c);
	cfg_normalize(&b->c);
	return 0;
}

static inline int bk_init(struct bk *b, prot_t *p, struct prot_shm_header *h, uint32_t idx, uint64_t now_ns)
{
	return bk_init_cfg(b, p, h, idx, now_ns, NULL);
}

/* The oldest failure time that still counts: a failure counts while its age is strictly less than
 * the window (fuse: melts younger than the period), and only after the last close or reset. */
static inline uint64_t window_lo(struct bk *b)
{
	uint64_t now = bk_now(b), lo = now >= b->c.window_ms ? now - b->c.window_ms + 1 : 0;
	uint64_t cleared = atomic_load_explicit(&b->s->cleared_ms, memory_order_acquire); /* bk_clear_history */
	return lo > cleared ? lo : cleared;
}

/* ---- reads of the history (lib/breaker.c) ---------------------------------------------------- */
/* Melts of epoch e (any epoch when any_epoch) no older than lo_ms. */
PROT_HIDDEN uint32_t melts_count(struct prot_breaker_slot *s, uint32_t e, bool any_epoch, uint64_t lo_ms);
/* Outcomes among the last ncalls calls (rate strategy): seen and failed. */
PROT_HIDDEN void rate_count(struct prot_breaker_slot *s, uint64_t ncalls, uint64_t *seen, uint64_t *failed);
/* Probe permits of epoch e held or spent. */
PROT_HIDDEN uint32_t probes_out(struct bk *b, uint32_t e);

/* ---- the state machine's steps the entry points take (lib/breaker.c, for lib/breaker_call.c) -- */
/* Admission in any state but a plain CLOSED one (out of line: the closed path stays small). */
PROT_HIDDEN int bk_allow_slow(struct bk *b, uint64_t w, uint32_t *epoch, bool *probe, uint32_t *slot);
/* A refused admission, counted. */
static inline int bk_reject_slot(struct prot_breaker_slot *s)
{
	atomic_fetch_add_explicit(&s->rejections, 1, memory_order_relaxed); /* statistic */
	return -PROT_EBLOWN;
}
/* Admission on the state word w just loaded (acquire, pairs with bk_cas). On 0, *epoch, *probe and
 * *slot describe the token. */
static inline int bk_allow_word(struct bk *b, uint64_t w, uint32_t *epoch, bool *probe, uint32_t *slot)
{
	int r = 0;
	if (likely(w_state(w) == PROT_BREAKER_CLOSED)) {
		*epoch = w_epoch(w);
		*probe = false;
	} else {
		r = bk_allow_slow(b, w, epoch, probe, slot);
	}
	if (r == 0)
		atomic_fetch_add_explicit(&b->s->admitted, 1, memory_order_relaxed); /* statistic */
	return r;
}
/* Admission. */
static inline int bk_allow(struct bk *b, uint32_t *epoch, bool *probe, uint32_t *slot)
{
	/* acquire: pairs with bk_cas */
	return bk_allow_word(b, atomic_load_explicit(&b->s->word, memory_order_acquire), epoch, probe, slot);
}

/* OPEN(e) well before the end of its period by the coarse clock (now_cheap_ms): a rejection. */
PROT_HIDDEN bool bk_open_early(struct prot_breaker_slot *s, uint32_t e, uint64_t now_cheap_ms, uint64_t refresh_ms);
/* The verdict of an admitted call (a probe's permit is already settled). */
PROT_HIDDEN void bk_record(struct bk *b, uint32_t e, bool probe, bool failed);
/* The permit of token (e, slot) held by self: settle it to `to` (SPENT: a verdict; 0: given back).
 * false when the token is not its holder's. */
PROT_HIDDEN bool probe_settle(struct bk *b, uint32_t e, uint32_t slot, uint64_t self, uint64_t to);
/* Reset (BREAKER_RESET), blow (BREAKER_BLOW), enable (BREAKER_ENABLE): a new epoch. */
PROT_HIDDEN int bk_force(struct bk *b, int how);

/* The common prologue (lib/resolve.c): the gate, the mapping, the name; the slot's index. */
static inline int breaker_lookup(prot_t *p, const char *name, bool writes, struct prot_shm_header **h)
{
	struct slot_ref ref;
	int rc = prot_lookup(p, REG_BREAKERS, name, writes, h, &ref);
	return rc < 0 ? rc : (int)ref.idx;
}

#endif
