/* rate_sliding.c — Hammer's sliding window, exact and lock-free: per bucket a ring of its last
 * `limit` admission times in REG_RATE_RINGS; taking, closing and giving back rings (with a
 * generation, so that a stale reference is refused), the decision, the status, the unchecked
 * admissions of prot_rate_inc, and protd's sweep of rings no bucket holds. Called by rate_table.c
 * (insertion, decision, removal, expiry, sweep), rate_view.c (status) and rate_counter.c (counters).
 *
 * THE RULE. Never more than L = limit admissions in any interval of length W = window. A ring
 * holds the times of the last L admissions; admission number H (the ring's head) goes into slot
 * H mod L, over admission H - L, and is allowed iff that one is at least W old (t + W <= now).
 * Otherwise it is denied, with retry-after = t + W - now: the time until the oldest counted
 * admission leaves the window. A denial writes nothing.
 *  Why exact: every slot's successive values are admissions at least W apart (each was allowed
 *  only because the one it overwrote was W old), and an interval shorter than W holds at most one
 *  value of each of the L slots. Times need not grow with H (a process may be descheduled between
 *  its clock read and its CAS): the argument is per slot and does not need it.
 *  Admission time: the decision's clock reading (CLOCK_MONOTONIC), in microseconds.
 *
 * WORDS. head: admissions so far (64 bits, only grows, across owners too). slot = t_us << 16 |
 * round & 0xffff: the admission's time and the round (head value) it was written in. t_us = 0:
 * empty; t_us = SW_T_CLOSED: the ring is closed for a removal (at that round). t_us < 2^48: the
 * clock must read below 2^48 us (8.9 years of uptime).
 *  At head H the slot H mod L holds, besides garbage (treated as empty): round H - L (the oldest
 *  counted admission, or empty with t = 0 on a fresh ring) or round H (written for this head, the
 *  head not yet moved on: WRITTEN). L <= 2^15, so H - L and H differ mod 2^16.
 *
 * DECISION (one unit). Load head H (acquire: pairs with the head CAS, so the slot write of every
 * earlier round is visible), load slot s = slot[H mod L] (acquire), re-load head: unchanged means
 * s was read while the head was H, so s is round H - L or round H, never a later round (that is
 * written only once the head has passed H + L - 1). WRITTEN: CAS head H -> H + 1 (helping) and
 * start over. Otherwise decide on s; to admit, CAS slot s -> (now, H) — the linearisation point:
 * of all processes deciding at head H exactly one CAS succeeds — then CAS head H -> H + 1 (a
 * failure means someone helped). A failed slot CAS starts over. Every retry follows another
 * process's progress (lock-free); a bound (SW_TRIES) turns a ring that never settles (a writer
 * scribbling on the mapping) into -EAGAIN.
 *  ABA: the head only grows (no wrap in 64 bits); a slot's successive values carry rounds H, H + L,
 *  ... and times, so a CAS from s succeeds only while the slot has not been written since s.
 *  A process killed between the slot CAS and the head CAS leaves the slot WRITTEN for head H: the
 *  next caller (any process) moves the head on. Nobody waits for it, nothing is lost or doubled.
 *
 * OWNERSHIP AND GENERATIONS. own = gen << 32 | (bucket index + 1) while held, gen << 32 when free.
 * An inserter takes a free ring (CAS own, gen + 1) before it publishes its bucket, and stores
 * RING_REF(gen, index) as the bucket's word. Every use re-validates: index below the ring count,
 * own equal to (gen, this bucket), limit and window equal to the call's (else RATE_SW_GONE: the
 * bucket is removed and made again, so a reload that changes a sliding key's limit or window
 * starts its buckets over). A recycled bucket never sees a stale ring: its new ring has a new
 * generation, and a stale reference fails the own check.
 *  Taking a ring moves its head on by SW_JUMP = 2^16 (fetch_add) and writes every slot of
 *  [0, L) empty, with the round the new owner expects there (H - L .. H - 1): the previous owner's
 *  values are gone, and a stale client of the previous owner (one that validated before the ring
 *  was freed) fails its head CAS forever (the head is past its H). Its slot CAS fails too unless
 *  the slot still holds exactly the empty value it read; then it writes one admission of round
 *  H_old into the new owner's ring: treated as empty, or (rounds equal mod 2^16) as one admission
 *  more — stricter by one unit, once, never more than L. That needs a client stalled between
 *  adjacent instructions across a removal, a sweep and a re-take.
 *
 * REMOVAL. A bucket's word never changes while it lives, so the table's CAS of the word cannot see
 * an admission racing a removal. The ring is closed first instead: at head H, CAS slot[H mod L]
 * from its (non-WRITTEN) value to (SW_T_CLOSED, H). This CAS and an admission's slot CAS at head H
 * are on the same word from the same value: exactly one wins. After a close, no admission lands
 * (every decider sees CLOSED at that head and removes the bucket itself: helping, RATE_SW_GONE).
 * The sweep closes only if every admission in the ring is older than its window plus the grace
 * (checked at the head it closes, after which the ring cannot change): an expired bucket loses
 * nothing. The remover that emptied the bucket's word gives the ring back (own -> free); if it
 * dies first, or a helper completed the removal, the sweep gives it back: a ring held (for longer
 * than the grace, which covers an inserter between taking and publishing) by no live bucket whose
 * word is its reference is free.
 *
 * CLOCK. A process may be descheduled between its clock read and its decision while the ring moves
 * on: the oldest counted admission may then be recent relative to that reading (or even later
 * than it), and deciding on the stale reading denies what the present allows (a hot key near its
 * limit's rate on a loaded machine). So a decision whose clock the library read itself re-reads
 * it once before it denies, when a fresh reading could change the answer: the reading is older
 * than the oldest admission, or that one leaves the window within SW_STALE_US (10 ms); and it
 * decides (and records its admission) on the fresh reading. A denial far from its retry (a key
 * spent for long) costs no clock read more; a process descheduled for longer than 10 ms may get
 * a denial that was right as of its reading. The argument above holds for whatever time is
 * recorded. A caller that passes its own clock (rp->clock_given: the tests' injected
 * clock) gets a decision on exactly that time.
 *
 * THE MAPPING IS UNTRUSTED. Ring indices, limits and windows read from it are bounded by the
 * private geometry before use; every loop is bounded (SW_TRIES, L <= the ring's slots).
 *
 * COST. cost = 1 per decision (Hammer's sliding window has no increment): a larger cost is
 * PROT_ECOST (rate_algo.c). prot_rate_inc adds n admissions one by one (each exact, the n not
 * atomic as a group). Status scans the ring (O(L)): used, remaining and reset_after come from it.
 */
#include <errno.h>

#include "rate_sliding.h"

_Static_assert(RATE_SW_LIMIT_MAX == RATE_RING_LIMIT_MAX, "one maximum for the API and the segment");
_Static_assert(RATE_SW_LIMIT_MAX < (1u << 16), "H - L and H differ mod 2^16");

#define SW_JUMP (2ull * RATE_SW_LIMIT_MAX)
#define SW_TRIES 100000
#define SW_STALE_US 10000ull /* a denial this close to its retry re-reads the clock (CLOCK) */
#define OWN(gen, bidx) ((uint64_t)(gen) << 32 | ((uint64_t)(bidx) + 1))
#define US 1000ull

enum { S_EMPTY, S_OLDEST, S_WRITTEN, S_CLOSED };


/* The time of a decision: us, never 0 (empty) nor SW_T_CLOSED. */
static inline uint64_t now_us(uint64_t now)
{
	uint64_t t = now / US;
	return t == 0 ? 1 : t >= SW_T_CLOSED ? SW_T_CLOSED - 1 : t;
}

/* Ring ref of bucket bidx, validated: NULL if the index is out of bounds or the ring is not held
 * by bidx under ref's generation. *lim and *win: the owner's limit (bounded by the ring's slots)
 * and window. */
static struct prot_rate_ring *ring_of(const struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                                      uint64_t *lim, uint64_t *win)
{
	uint32_t idx = RING_REF_IDX(ref);
	if (idx >= seg_count(h, REG_RATE_RINGS))
		return NULL;
	struct prot_rate_ring *rg = seg_entry(h, REG_RATE_RINGS, idx);
	/* acquire: pairs with the taker's CAS; limit and window were stored before it published the
	 * bucket, which the caller acquired */
	if (atomic_load_explicit(&rg->own, memory_order_acquire) != OWN(RING_REF_GEN(ref), bidx))
		return NULL;
	*lim = atomic_load_explicit(&rg->limit, memory_order_relaxed);
	*win = atomic_load_explicit(&rg->window_ms, memory_order_relaxed);
	if (*lim == 0 || *lim > seg_geo(h)->rate_ring_limit || *win == 0 || *win > RATE_WINDOW_MAX_MS)
		return NULL;
	return rg;
}

/* Head and the slot it points at, read while the head stayed put. */
static bool snap(struct prot_rate_ring *rg, uint64_t lim, uint64_t *hd, uint64_t *s)
{
	/* acquire: pairs with the head CAS (acq_rel); every earlier round's slot write is visible */
	*hd = atomic_load_explicit(&rg->head, memory_order_acquire);
	/* acquire: keeps the head re-load below after this load */
	*s = atomic_load_explicit(&rate_ring_slots(rg)[*hd % lim], memory_order_acquire);
	return atomic_load_explicit(&rg->head, memory_order_relaxed) == *hd;
}

static int classify(uint64_t hd, uint64_t s, uint64_t lim, uint64_t *t)
{
	*t = SW_T(s);
	if (*t == 0)
		return S_EMPTY;
	if (SW_ROUND(s) == SW_ROUND(hd))
		return *t == SW_T_CLOSED ? S_CLOSED : S_WRITTEN;
	if (SW_ROUND(hd - SW_ROUND(s)) == lim && *t != SW_T_CLOSED)
		return S_OLDEST;
	return S_EMPTY; /* garbage, or a stale client's write: see OWNERSHIP */
}

/* Move the head past round hd (a failure: someone did). */
static void head_on(struct prot_rate_ring *rg, uint64_t hd)
{
	/* acq_rel: publishes the slot write of round hd to whoever acquires the new head */
	atomic_compare_exchange_strong_explicit(&rg->head, &hd, hd + 1, memory_order_acq_rel,
	                                        memory_order_relaxed);
}

/* Write round hd's admission at t over s: true if it is ours. */
static bool slot_write(struct prot_rate_ring *rg, uint64_t lim, uint64_t hd, uint64_t s, uint64_t t)
{
	/* acq_rel: one winner per round; the head CAS after it publishes it */
	if (!atomic_compare_exchange_strong_explicit(&rate_ring_slots(rg)[hd % lim], &s, SW_SLOT(t, hd),
	                                             memory_order_acq_rel, memory_order_relaxed))
		return false;
	head_on(rg, hd);
	return true;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* What the ring holds in the window ending at t (us): admissions, and the newest one's time. */
static uint64_t in_window(struct prot_rate_ring *rg, uint64_t lim, uint64_t w_us, uint64_t t,
                          uint64_t *newest)
{
	uint64_t n = 0;
	*newest = 0;
	for (uint64_t k = 0; k < lim; k++) {
		/* relaxed: a snapshot for the report; decisions never rest on it */
		uint64_t ts = SW_T(atomic_load_explicit(&rate_ring_slots(rg)[k], memory_order_relaxed));
		if (ts == 0 || ts == SW_T_CLOSED || ts + w_us <= t)
			continue;
		n++;
		if (ts > *newest)
			*newest = ts;
	}
	return n;
}

static void info_fill(struct prot_rate_info *info, struct prot_rate_ring *rg, uint64_t lim,
                      uint64_t win, uint64_t t, int allowed, uint64_t retry_us)
{
	uint64_t newest, w_us = win * US;
	uint64_t used = rg ? in_window(rg, lim, w_us, t, &newest) : 0;

	if (!info)
		return;
	*info = (struct prot_rate_info){
		.allowed = allowed,
		.limit = lim,
		.used = used,
		.remaining = lim - used,
		.window_ms = win,
		.reset_after_ms = used ? div_up(newest + w_us - t, US) : 0,
		.retry_after_ms = div_up(retry_us, US),
	};
}

/* Could a fresh reading turn this denial (oldest at ts) into an admission? Surely when the
 * reading is older than the ring (ts > t); plausibly when the oldest leaves within SW_STALE_US
 * (a deschedule of that order); otherwise the denial stands as of the reading (see CLOCK). */
static inline bool may_be_stale(uint64_t ts, uint64_t win, uint64_t t)
{
	return ts > t || ts + win * US - t < SW_STALE_US;
}

int rate_sliding_charge(struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                        const struct rate_params *rp, uint64_t now, struct prot_rate_info *info)
{
	uint64_t lim, win, hd, s, ts, t = now_us(now);
	struct prot_rate_ring *rg = ring_of(h, bidx, ref, &lim, &win);
	bool fresh = false;

	if (!rg || lim != rp->limit || win != rp->window_ms)
		return RATE_SW_GONE;
	for (int tries = 0; tries < SW_TRIES; tries++) {
		if (!snap(rg, lim, &hd, &s))
			continue;
		switch (classify(hd, s, lim, &ts)) {
		case S_CLOSED:
			return RATE_SW_GONE;
		case S_WRITTEN:
			head_on(rg, hd);
			continue;
		case S_OLDEST:
			if (ts + win * US > t && may_be_stale(ts, win, t) && !rp->clock_given && !fresh) {
				uint64_t t2 = now_us(prot_now_ns());
				t = t2 > t ? t2 : t;
				fresh = true;
			}
			if (ts + win * US > t) {
				if (info)
					info_fill(info, rg, lim, win, t, 0, ts + win * US - t);
				return 0;
			}
			__attribute__((fallthrough)); /* the oldest has left the window */
		default:
			if (!slot_write(rg, lim, hd, s, t))
				continue;
			if (info)
				info_fill(info, rg, lim, win, t, 1, 0);
			return 1;
		}
	}
	return -EAGAIN;
}

int rate_sliding_add(struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                     const struct rate_params *rp, uint64_t n, uint64_t now, uint64_t *count)
{
	uint64_t lim, win, hd, s, ts, t = now_us(now), newest;
	struct prot_rate_ring *rg = ring_of(h, bidx, ref, &lim, &win);
	int tries = 0; /* since the last admission written */

	if (!rg || lim != rp->limit || win != rp->window_ms)
		return RATE_SW_GONE;
	for (uint64_t done = 0; done < n; tries++) {
		if (tries >= SW_TRIES)
			return -EAGAIN;
		if (!snap(rg, lim, &hd, &s))
			continue;
		int c = classify(hd, s, lim, &ts);
		if (c == S_CLOSED)
			return RATE_SW_GONE;
		if (c == S_WRITTEN) {
			head_on(rg, hd);
		} else if (slot_write(rg, lim, hd, s, t)) {
			done++;
			tries = -1;
		}
	}
	*count = in_window(rg, lim, win * US, t, &newest);
	return 0;
}

void rate_sliding_status(struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                         const struct rate_params *rp, uint64_t now, struct prot_rate_info *out)
{
	uint64_t lim, win, hd, s, ts, t = now_us(now), retry = 0;
	struct prot_rate_ring *rg = ref ? ring_of(h, bidx, ref, &lim, &win) : NULL;

	if (!rg || lim != rp->limit || win != rp->window_ms) { /* none, or one started over on use */
		info_fill(out, NULL, rp->limit, rp->window_ms, t, 1, 0);
		return;
	}
	/* Read-only: no helping. A WRITTEN slot is the admission of round hd; the next is hd + 1. */
	for (int k = 0; k < 2; k++) {
		snap(rg, lim, &hd, &s);
		hd += (uint64_t)k;
		s = atomic_load_explicit(&rate_ring_slots(rg)[hd % lim], memory_order_acquire);
		int c = classify(hd, s, lim, &ts);
		if (c == S_WRITTEN)
			continue;
		if (c == S_OLDEST && ts + win * US > t)
			retry = ts + win * US - t;
		break;
	}
	info_fill(out, rg, lim, win, t, retry == 0, retry);
}

void rate_sliding_peek(struct prot_shm_header *h, uint32_t bidx, uint64_t ref,
                       const struct rate_params *rp, uint64_t window_ms, uint64_t now,
                       struct prot_rate_info *out)
{
	uint64_t lim = 1, win = window_ms;
	struct rate_params own;

	if (!rp) {
		if (ref && ring_of(h, bidx, ref, &lim, &win) == NULL)
			lim = 1, win = window_ms;
		rate_params_make(PROT_RATE_SLIDING_WINDOW, lim, win, 0, &own);
		rp = &own;
	}
	rate_sliding_status(h, bidx, ref, rp, now, out);
}

/* ---- ownership -------------------------------------------------------------------------------- */

int rate_ring_take(struct prot_shm_header *h, uint32_t bidx, const struct rate_params *rp,
                   uint64_t now, uint64_t *ref)
{
	uint32_t n = seg_count(h, REG_RATE_RINGS);
	uint64_t lim = rp->limit;

	if (n == 0 || lim > seg_geo(h)->rate_ring_limit)
		return RATE_TABLE_FULL;
	/* relaxed: only spreads takers over the rings; the CAS below decides */
	uint64_t start = atomic_fetch_add_explicit(&h->rate_ring_cursor, 1, memory_order_relaxed);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t idx = (uint32_t)((start + k) % n);
		struct prot_rate_ring *rg = seg_entry(h, REG_RATE_RINGS, idx);
		uint64_t o = atomic_load_explicit(&rg->own, memory_order_relaxed);
		if ((uint32_t)o != 0)
			continue;
		uint32_t gen = (uint32_t)(o >> 32) + 1;
		/* acquire: the previous owner's give-back (release) happens before our writes */
		if (!atomic_compare_exchange_strong_explicit(&rg->own, &o, OWN(gen, bidx),
		                                             memory_order_acquire, memory_order_relaxed))
			continue;
		/* relaxed stores, published with the bucket (the group CAS, release) */
		atomic_store_explicit(&rg->limit, lim, memory_order_relaxed);
		atomic_store_explicit(&rg->window_ms, rp->window_ms, memory_order_relaxed);
		atomic_store_explicit(&rg->since_ns, now, memory_order_relaxed);
		uint64_t hd = atomic_fetch_add_explicit(&rg->head, SW_JUMP, memory_order_relaxed) + SW_JUMP;
		for (uint64_t j = 0; j < lim; j++) /* slot j: empty, of round hd - lim + ((j - hd) mod lim) */
			atomic_store_explicit(&rate_ring_slots(rg)[j], SW_SLOT(0, hd - lim + (j + lim - hd % lim) % lim),
			                      memory_order_relaxed);
		*ref = RING_REF(gen, idx);
		return 0;
	}
	return RATE_TABLE_FULL;
}

static void give(struct prot_rate_ring *rg, uint64_t o)
{
	/* release: our reads and writes of the ring happen before its next taker's */
	atomic_compare_exchange_strong_explicit(&rg->own, &o, o & ~0xffffffffull, memory_order_release,
	                                        memory_order_relaxed);
}

void rate_ring_give(struct prot_shm_header *h, uint32_t bidx, uint64_t ref)
{
	if (RING_REF_IDX(ref) < seg_count(h, REG_RATE_RINGS))
		give(seg_entry(h, REG_RATE_RINGS, RING_REF_IDX(ref)), OWN(RING_REF_GEN(ref), bidx));
}

/* Every admission the ring counts (at head hd) ended its window by t (us). The latest round's is
 * looked at first: a ring in use is told so in one load, not a scan. */
static bool ring_idle(struct prot_rate_ring *rg, uint64_t lim, uint64_t win, uint64_t hd, uint64_t t)
{
	uint64_t newest, last = SW_T(atomic_load_explicit(&rate_ring_slots(rg)[(hd + lim - 1) % lim],
	                                                   memory_order_relaxed));
	if (last != 0 && last != SW_T_CLOSED && last + win * US > t)
		return false;
	return in_window(rg, lim, win * US, t, &newest) == 0;
}

bool rate_ring_close(struct prot_shm_header *h, uint32_t bidx, uint64_t ref, uint64_t idle_before)
{
	uint64_t lim, win, hd, s, ts;
	struct prot_rate_ring *rg = ring_of(h, bidx, ref, &lim, &win);

	if (!rg)
		return true; /* not this bucket's: no admission of it can land there */
	for (int tries = 0; tries < SW_TRIES; tries++) {
		if (!snap(rg, lim, &hd, &s))
			continue;
		int c = classify(hd, s, lim, &ts);
		if (c == S_CLOSED)
			return true;
		if (c == S_WRITTEN) {
			head_on(rg, hd);
			continue;
		}
		/* at head hd nothing else can change the ring before our CAS does (see REMOVAL) */
		if (idle_before && !ring_idle(rg, lim, win, hd, idle_before / US))
			return false;
		/* acq_rel: against the admissions' slot CAS at this head: one wins */
		if (atomic_compare_exchange_strong_explicit(&rate_ring_slots(rg)[hd % lim], &s,
		                                            SW_SLOT(SW_T_CLOSED, hd), memory_order_acq_rel,
		                                            memory_order_relaxed))
			return true;
	}
	return false;
}

/* ---- the sweep of rings no bucket holds -------------------------------------------------------- */

/* Does bucket bidx live with ref as its word? */
static bool held_by(const struct prot_shm_header *h, uint32_t bidx, uint64_t ref)
{
	if (bidx / RATE_GROUP_SLOTS >= seg_count(h, REG_RATE_GROUPS))
		return false;
	struct prot_rate_bucket *b = &group_at(h, bidx / RATE_GROUP_SLOTS)->b[bidx % RATE_GROUP_SLOTS];
	/* acquire: the word is read after the meta (a LIVE bucket's word is its ring until DEAD) */
	uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire);
	uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
	uint32_t kind = SCALE_KIND(ld(b, B_SCALE)); /* the identity: written before the word */
	return (META_ST(m) == RB_LIVE || META_ST(m) == RB_CLAIMED) &&
	       RATE_TAG_ALGO(kind) == PROT_RATE_SLIDING_WINDOW && w == ref;
}

void rate_ring_sweep(struct prot_shm_header *h, uint64_t start, uint32_t n, uint64_t now,
                     uint64_t grace)
{
	uint32_t rings = seg_count(h, REG_RATE_RINGS);

	for (uint32_t k = 0; k < n && k < rings; k++) {
		uint32_t idx = (uint32_t)((start + k) % rings);
		struct prot_rate_ring *rg = seg_entry(h, REG_RATE_RINGS, idx);
		/* acquire: pairs with the taker's CAS (since_ns is read after it) */
		uint64_t o = atomic_load_explicit(&rg->own, memory_order_acquire);
		if ((uint32_t)o == 0)
			continue;
		uint64_t since = atomic_load_explicit(&rg->since_ns, memory_order_relaxed);
		if (now < since || now - since < grace) /* maybe an inserter about to publish */
			continue;
		if (!held_by(h, (uint32_t)o - 1, RING_REF(o >> 32, idx)))
			give(rg, o);
	}
}
