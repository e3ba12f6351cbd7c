/* breaker.c — circuit breakers (fuse) shared by every process: the lock-free state machine on a
 * struct prot_breaker_slot (admission, verdicts, trips, probes, forced transitions) and
 * breaker_tick() for protd. The words' encodings, the configuration copy and one operation's
 * context are in lib/breaker.h; the index-based entry points (allow, record, execute, force), their
 * tokens and their closed paths in lib/breaker_call.c; the configuration snapshot, the read-only
 * views (status, ask) and the public prot_breaker_* calls in lib/breaker_view.c.
 *
 * The words of a slot (lib/layout.h), what they publish and their memory orders:
 *
 *  word        [state:2 | epoch:30 | issued:16 | ok:16], all zero = CLOSED, epoch 0.
 *              The only place the state lives. Every transition is one CAS that bumps the epoch
 *              (acq_rel; loads are acquire), so each epoch names exactly one state period and a
 *              CAS can never succeed on a word another process has already moved on. The CAS
 *              winner owns the transition: it publishes `since`, clears the history, emits the
 *              event. In HALF_OPEN, `ok` counts probes that succeeded (`issued` is unused: the
 *              permits are probe_holder[]).
 *  since       [epoch:30 | time_ms:34]: when the state period `epoch` began. Stored by the CAS
 *              winner right after its CAS. A reader that needs the start of epoch e and finds
 *              another epoch there CASes (e, now) in itself: a winner that died between its CAS and
 *              its store delays the period by at most until the next reader, never forever. The
 *              value only moves to newer epochs (a late winner of an older epoch does not overwrite
 *              a newer one), so a published start is never moved later except by that fallback.
 *              (That reader's clock may be CLOCK_MONOTONIC_COARSE, up to one kernel tick early:
 *              the fallback period is then that much shorter.)
 *              The time is CLOCK_MONOTONIC ms modulo 2^34 (198 days): ages are computed modulo
 *              2^34, and a start up to an hour "in the future" (a clock read a little later in
 *              another process) counts as age 0. protd's tick moves OPEN and stuck HALF_OPEN
 *              states on within a tick of their period, far inside that range. acquire/acq_rel; it publishes nothing but itself.
 *  cleared_ms  time of the last close or reset; failures before it are ignored. Stored (release)
 *              by the winner of the close/reset, loaded (acquire) by scans.
 *  melt_next   standard strategy: a ticket per failure (fetch_add; only uniqueness matters).
 *  melts[R]    standard strategy: melts[i % R] = (epoch & 0xffff) << 48 | time_ms of failure i.
 *              The epoch tag drops failures of an earlier closed period without clearing the ring;
 *              cleared_ms covers the tag's wrap (2^16 transitions).
 *  probe_ms    CLOCK_MONOTONIC ms at which the latest half-open probe was handed out; raised
 *              (CAS max, relaxed: it orders nothing) by each process that takes a probe, right
 *              after its CAS. The probe timeout runs from the later of it and the start of the
 *              half-open epoch, so a probe handed out late in a round still gets its full time.
 *  probe_holder[i], i < half_open_probes
 *              the permits of a HALF_OPEN epoch e. A value is current when it carries HOLD_VALID and
 *              e's 15-bit tag: then it is held by an identity (HOLD_ID: the holder's slot and the
 *              low 32 bits of its incarnation, lib/ident.c), or SPENT (its verdict is in). Any other
 *              value is a free permit. Taking one is a CAS from a non-current value to (e, me),
 *              then a re-load of the word: if the epoch moved meanwhile the taker gives it back
 *              (CAS to 0) and starts over, so every permit kept belongs to the epoch its token
 *              names. So at most half_open_probes are out per epoch, across all processes, and a
 *              token is honoured only by the CAS of its exact holder value (the same identity,
 *              the same epoch, the same permit): a copy used by another process, or a permit
 *              given back or reclaimed, is PROT_ESTALE. A holder found dead (its identity lock
 *              released: protd's tick, or a rejected caller at most every PROBE_RECHECK_MS while
 *              protd is down) has its permit CASed back to 0: exactly one next caller takes it.
 *              The winner of a transition into HALF_OPEN clears values of older epochs, so that
 *              the tag's wrap cannot make an old value current.
 *  rate_next, rate_bits, rate_seen
 *              rate strategy: a ring of the last rate_window_calls outcomes; call i sets its bit in
 *              rate_seen and sets (failure) or clears (success) it in rate_bits.
 *  admitted .. probes_given_back
 *              statistics, relaxed fetch_adds; they order nothing. `admitted` counts every call
 *              let through, so admitted - successes - failures is what runs now, was cancelled, or
 *              never reported.
 *
 * Why exactly the (tolerance+1)-th failure within the window trips (standard strategy): every
 * failing call of a closed epoch e does, in this order, a seq_cst store of its entry and then
 * seq_cst loads of the whole ring, and trips if it counts more than `tolerance` entries of epoch e
 * within [now - window, now]. Take tolerance+1 failures of epoch e within one window: in the single
 * total order of seq_cst operations one of their stores is the last; its process loads the ring
 * after all of them, so it sees all tolerance+1 entries (an entry can only have been overwritten by
 * a later failure, which is then in the window too, since tolerance < R) and it trips — unless
 * another process already did, which makes its CAS fail harmlessly. Conversely, a process only
 * counts real failures of epoch e newer than the window and than cleared_ms, so fewer than
 * tolerance+1 of them, or failures spread wider than the window, never trip it. Failures recorded
 * while not CLOSED (tokens of a past epoch) only bump counters: they neither extend the open
 * period nor count towards the next trip. The rate strategy uses the same store-then-scan order
 * on its two bitmaps.
 *
 * Why the breaker is never stuck half-open: a probe whose holder died comes back when the death is
 * seen (above). A probe whose live holder never reports leaves its permit held. Once probe_timeout
 * has passed since the later of epoch e's start and the latest probe handed out, the next allow()
 * CASes HALF_OPEN(e) -> HALF_OPEN(e+1, issued=1) and owns the first probe of a new round;
 * breaker_tick() does the same (issued=0) for a breaker nobody calls. The late verdict of an old
 * probe carries epoch e and is then ignored. Epoch e's start is always obtainable (see `since`),
 * and probe_ms only ever grows to a time already passed, so the timeout always expires. A probe
 * that never reached the dependency (PROT_OUTCOME_CANCEL) is handed back at once: issued - 1.
 */
#include <errno.h>

#include "breaker.h"

/* Age of state period e; publishes (e, now) if e's start is missing. When `since` already names a
 * newer epoch the caller's view of the word is stale: it reports age 0, i.e. the caller acts as if
 * it had looked just before that newer transition (its word load is its linearisation point). */
static uint64_t since_age(_Atomic uint64_t *since, uint32_t e, uint64_t now_ms)
{
	uint64_t v = atomic_load_explicit(since, memory_order_acquire); /* pairs with the CAS below */
	for (;;) {
		if (since_epoch(v) == e)
			return since_age_of(v, now_ms);
		if (epoch_newer(since_epoch(v), e))
			return 0;
		if (atomic_compare_exchange_weak_explicit(since, &v, since_pack(e, now_ms),
		                                          memory_order_acq_rel, memory_order_acquire))
			return 0;
	}
}

/* OPEN(e) well before the end of its period: the coarse clock (a few ns, at most one kernel tick
 * behind; now_cheap_ms, bk_now_cheap) settles the common case of a rejection. */
bool bk_open_early(struct prot_breaker_slot *s, uint32_t e, uint64_t now_cheap_ms, uint64_t refresh_ms)
{
	return since_age(&s->since, e, now_cheap_ms) + COARSE_SLACK_MS < refresh_ms;
}

/* ---- probe timing ---------------------------------------------------------------------------- */
static void probe_taken(_Atomic uint64_t *probe_ms, uint64_t now_ms)
{
	uint64_t v = atomic_load_explicit(probe_ms, memory_order_relaxed);
	while (v < now_ms && !atomic_compare_exchange_weak_explicit(probe_ms, &v, now_ms, memory_order_relaxed,
	                                                            memory_order_relaxed))
		;
}

/* How long the probes of HALF_OPEN epoch e have gone without a verdict. */
static uint64_t probe_age(struct prot_breaker_slot *s, uint32_t e, uint64_t now_ms)
{
	uint64_t age = since_age(&s->since, e, now_ms);
	uint64_t last = atomic_load_explicit(&s->probe_ms, memory_order_relaxed); /* probe_taken */
	uint64_t since_last = now_ms > last ? now_ms - last : 0;
	return since_last < age ? since_last : age;
}

/* ---- melts (standard strategy) --------------------------------------------------------------- */
/* Entries of epoch e (any epoch when any_epoch) no older than lo_ms. */
uint32_t melts_count(struct prot_breaker_slot *s, uint32_t e, bool any_epoch, uint64_t lo_ms)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < BREAKER_MELT_RING; i++) {
		/* seq_cst: the scan half of store-then-scan (file header) */
		uint64_t m = atomic_load(&s->melts[i]);
		if (m != 0 && (any_epoch || m >> 48 == (e & 0xffffu)) && (m & MELT_TIME_MASK) >= lo_ms)
			n++;
	}
	return n;
}

static const uint32_t ev_of_state[] = {
	[PROT_BREAKER_CLOSED] = EV_BREAKER_CLOSED,
	[PROT_BREAKER_OPEN] = EV_BREAKER_OPEN,
	[PROT_BREAKER_HALF_OPEN] = EV_BREAKER_HALF_OPEN,
	[PROT_BREAKER_BLOWN] = EV_BREAKER_BLOWN,
};

/* The CAS winner's duties: publish the start of the new period, then tell the event ring and the
 * in-process telemetry. ev = 0: the event of the new state. */
static void bk_transitioned(struct bk *b, uint64_t nw, uint32_t ev, uint64_t detail)
{
	struct prot_breaker_slot *s = b->s;
	char name[PROT_NAME_BYTES];

	since_age(&s->since, w_epoch(nw), bk_now(b));
	memcpy(name, s->name, sizeof name);
	name[PROT_NAME_BYTES - 1] = '\0';
	prot_event_emit(b->h, ev ? ev : ev_of_state[w_state(nw)], b->idx, name, w_epoch(nw), detail);
	if (b->p)
		PROT_TEL(b->p, PROT_TEL_BREAKER_STATE_CHANGED, .layer = PROT_LAYER_BREAKER, .key = name,
		         .state = w_state(nw));
}

/* Forget the history: closes and resets. Melts are dropped by their epoch tag; the rate bitmaps
 * are cleared word by word (a concurrent record of the new period may lose its sample: the
 * bitmaps are statistics of recent calls, not an exact log). */
static void bk_clear_history(struct bk *b)
{
	struct prot_breaker_slot *s = b->s;
	for (uint32_t i = 0; i < BREAKER_RATE_BITS / 64; i++) {
		atomic_store(&s->rate_bits[i], 0);
		atomic_store(&s->rate_seen[i], 0);
	}
	/* release: pairs with the acquire load in the scans */
	atomic_store_explicit(&s->cleared_ms, bk_now(b), memory_order_release);
}

static bool bk_cas(struct bk *b, uint64_t *w, uint64_t nw)
{
	/* acq_rel: the winner's later stores (since, history) follow its win; acquire on failure
	 * hands the new word to the retry */
	return atomic_compare_exchange_strong_explicit(&b->s->word, w, nw, memory_order_acq_rel,
	                                               memory_order_acquire);
}

static int bk_reject(struct bk *b)
{
	return bk_reject_slot(b->s);
}

/* Clear the permits of older epochs (the winner of a transition into HALF_OPEN e). A CAS per
 * value: a taker that got there first keeps its permit. */
static void probes_clear_stale(struct prot_breaker_slot *s, uint32_t e)
{
	for (uint32_t i = 0; i < PROBES_MAX; i++) {
		uint64_t v = atomic_load_explicit(&s->probe_holder[i], memory_order_relaxed);
		if (v != 0 && !hold_current(v, e))
			atomic_compare_exchange_strong_explicit(&s->probe_holder[i], &v, 0, memory_order_relaxed,
			                                        memory_order_relaxed);
	}
}

enum { TAKE_NONE = -1, TAKE_RETRY = -2 };

/* Take a free permit of HALF_OPEN epoch e for self: its index, TAKE_NONE, or TAKE_RETRY (the
 * epoch moved while we took one). */
static int probe_take(struct bk *b, uint32_t e, uint64_t self)
{
	struct prot_breaker_slot *s = b->s;
	uint64_t mine = hold_value(e, self);
	for (uint32_t i = 0; i < b->c.probes; i++) {
		uint64_t v = atomic_load_explicit(&s->probe_holder[i], memory_order_acquire);
		if (hold_current(v, e))
			continue;
		/* acq_rel, then the seq_cst re-load of the word: the permit is ours before we look */
		if (!atomic_compare_exchange_strong_explicit(&s->probe_holder[i], &v, mine,
		                                             memory_order_acq_rel, memory_order_acquire)) {
			i--; /* it changed: look at it again */
			continue;
		}
		uint64_t w = atomic_load(&s->word);
		if (w_state(w) == PROT_BREAKER_HALF_OPEN && w_epoch(w) == e)
			return (int)i;
		atomic_compare_exchange_strong_explicit(&s->probe_holder[i], &mine, 0, memory_order_relaxed,
		                                        memory_order_relaxed);
		return TAKE_RETRY;
	}
	return TAKE_NONE;
}

/* Permits of epoch e whose holders are dead go back (CAS: one reclaimer per permit). Returns how
 * many. v NULL or without fd: nothing can be told. */
static uint32_t probes_reclaim(struct bk *b, const struct prot_idv *v, uint32_t e)
{
	uint32_t n = 0;
	if (!v || v->fd < 0)
		return 0;
	for (uint32_t i = 0; i < b->c.probes; i++) {
		uint64_t x = atomic_load_explicit(&b->s->probe_holder[i], memory_order_acquire);
		uint64_t id = x & HOLD_ID_MASK;
		if (!hold_current(x, e) || id == 0 || id == HOLD_SPENT ||
		    ident_alive_masked(v, (uint32_t)(id & 0xffffu), id >> 16, 0xffffffffu))
			continue;
		if (atomic_compare_exchange_strong_explicit(&b->s->probe_holder[i], &x, 0, memory_order_acq_rel,
		                                            memory_order_relaxed)) {
			n++;
			atomic_fetch_add_explicit(&b->s->probes_given_back, 1, memory_order_relaxed); /* statistic */
		}
	}
	return n;
}

/* Permits of epoch e held or spent. */
uint32_t probes_out(struct bk *b, uint32_t e)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < b->c.probes; i++)
		n += hold_current(atomic_load_explicit(&b->s->probe_holder[i], memory_order_relaxed), e);
	return n;
}

#define PROBE_RECHECK_MS 100u /* while protd is down, rejected callers look for dead holders this often */

/* A rejected half-open caller while protd is down: look for dead holders, at most every
 * PROBE_RECHECK_MS per breaker. true when a permit came back. */
static bool probes_rescue(struct bk *b, uint32_t e)
{
	if (!b->p)
		return false;
	struct prot_idv v;
	prot_idv(b->p, b->h, &v);
	uint64_t now = bk_now(b), last = atomic_load_explicit(&b->s->probe_check_ms, memory_order_relaxed);
	if (v.fd < 0 || (now >= last && now - last < PROBE_RECHECK_MS) || protd_alive(&v))
		return false;
	/* relaxed: spreads the checks only */
	if (!atomic_compare_exchange_strong_explicit(&b->s->probe_check_ms, &last, now, memory_order_relaxed,
	                                             memory_order_relaxed))
		return false;
	return probes_reclaim(b, &v, e) > 0;
}

/* What OPEN(e) becomes once its refresh period is over: half-open, or (heal = full, fuse) closed. */
static inline uint64_t bk_healed(const struct bk *b, uint32_t e)
{
	return b->c.heal == PROT_HEAL_FULL ? w_make(PROT_BREAKER_CLOSED, e + 1, 0, 0)
	                                   : w_make(PROT_BREAKER_HALF_OPEN, e + 1, 0, 0);
}

/* The winner's duties after a timed move from w to nw (a heal, a new probe round). */
static void bk_moved_on(struct bk *b, uint64_t w, uint64_t nw)
{
	uint32_t out = w_state(w) == PROT_BREAKER_HALF_OPEN ? probes_out(b, w_epoch(w)) : 0;
	uint64_t lost = out > w_ok(w) ? out - w_ok(w) : 0;
	if (lost)
		atomic_fetch_add_explicit(&b->s->probes_given_back, lost, memory_order_relaxed);
	if (w_state(nw) == PROT_BREAKER_CLOSED)
		bk_clear_history(b); /* heal = full: an empty history, as fuse */
	probes_clear_stale(b->s, w_epoch(nw));
	bk_transitioned(b, nw, 0, lost);
}

/* Admission in any state but a plain CLOSED one (out of line: the closed path stays small). */
__attribute__((noinline)) int bk_allow_slow(struct bk *b, uint64_t w, uint32_t *epoch, bool *probe, uint32_t *slot)
{
	struct prot_breaker_slot *s = b->s;
	uint64_t self = 0;
	bool have_self = false, rescued = false;

	for (;;) {
		uint32_t e = w_epoch(w);
		uint64_t nw;

		switch (w_state(w)) {
		case PROT_BREAKER_CLOSED:
			*epoch = e;
			*probe = false;
			return 0;
		case PROT_BREAKER_OPEN:
			/* near the end of the period the precise clock decides, so the half-open comes
			 * exactly on time */
			if (bk_open_early(s, e, bk_now_cheap(b), b->c.refresh_ms) ||
			    since_age(&s->since, e, bk_now(b)) < b->c.refresh_ms)
				return bk_reject(b);
			nw = bk_healed(b, e);
			break;
		case PROT_BREAKER_HALF_OPEN: {
			if (!have_self) {
				self = b->p ? prot_self(b->p, b->h) : 0;
				have_self = true;
			}
			int k = probe_take(b, e, self);
			if (k >= 0) {
				probe_taken(&s->probe_ms, bk_now(b));
				*epoch = e;
				*probe = true;
				*slot = (uint32_t)k;
				return 0;
			}
			if (k == TAKE_RETRY) {
				w = atomic_load_explicit(&s->word, memory_order_acquire);
				continue;
			}
			if (!rescued && probes_rescue(b, e)) {
				rescued = true;
				continue;
			}
			if (probe_age(s, e, bk_now(b)) < b->c.probe_timeout_ms)
				return bk_reject(b);
			nw = w_make(PROT_BREAKER_HALF_OPEN, e + 1, 0, 0); /* a new round */
			break;
		}
		default:
			return bk_reject(b);
		}
		if (!bk_cas(b, &w, nw))
			continue;
		bk_moved_on(b, w, nw);
		w = nw;
	}
}

/* CLOSED(e) -> OPEN(e+1). One attempt: a CLOSED word changes only with its epoch, so a failed CAS
 * means someone else tripped, reset or blew it. */
static void bk_trip(struct bk *b, uint32_t e, uint64_t failures)
{
	uint64_t w = w_make(PROT_BREAKER_CLOSED, e, 0, 0), nw = w_make(PROT_BREAKER_OPEN, e + 1, 0, 0);
	if (bk_cas(b, &w, nw))
		bk_transitioned(b, nw, 0, failures);
}

static void bk_melt(struct bk *b, uint32_t e)
{
	struct prot_breaker_slot *s = b->s;
	/* relaxed: the ticket only has to be unique */
	uint64_t i = atomic_fetch_add_explicit(&s->melt_next, 1, memory_order_relaxed);
	atomic_store(&s->melts[i % BREAKER_MELT_RING], melt_pack(e, bk_now(b))); /* seq_cst: store-then-scan */
	uint32_t n = melts_count(s, e, false, window_lo(b));
	if (n > b->c.tolerance)
		bk_trip(b, e, n);
}

/* Outcomes among the last rate_window_calls calls: seen and failed. */
void rate_count(struct prot_breaker_slot *s, uint64_t ncalls, uint64_t *seen, uint64_t *failed)
{
	*seen = *failed = 0;
	for (uint64_t i = 0; i * 64 < ncalls; i++) {
		uint64_t mask = ncalls - i * 64 >= 64 ? ~0ull : (1ull << (ncalls - i * 64)) - 1;
		uint64_t sn = atomic_load(&s->rate_seen[i]) & mask; /* seq_cst: store-then-scan */
		*seen += (uint64_t)__builtin_popcountll(sn);
		*failed += (uint64_t)__builtin_popcountll(atomic_load(&s->rate_bits[i]) & sn);
	}
}

static void bk_rate_push(struct bk *b, uint32_t e, bool failed)
{
	struct prot_breaker_slot *s = b->s;
	uint64_t n = b->c.rate_window_calls;
	uint64_t i = atomic_fetch_add_explicit(&s->rate_next, 1, memory_order_relaxed) % n; /* ticket */
	uint64_t bit = 1ull << (i % 64), seen, fails;

	/* seq_cst RMWs: the store half of store-then-scan. The outcome bit first, so that a scan that
	 * sees this call as seen also sees its outcome. */
	if (failed)
		atomic_fetch_or(&s->rate_bits[i / 64], bit);
	else
		atomic_fetch_and(&s->rate_bits[i / 64], ~bit);
	uint64_t was = atomic_fetch_or(&s->rate_seen[i / 64], bit);
	/* A success can only trip by bringing the calls seen up to the minimum. */
	if (!failed && (was & bit))
		return;
	rate_count(s, n, &seen, &fails);
	if (seen >= b->c.rate_min_calls && fails > 0 && fails * 100 >= b->c.rate_threshold_pct * seen)
		bk_trip(b, e, fails);
}

/* HALF_OPEN(e): a probe's verdict. Success: ok+1, and the last one closes. Failure: re-open. */
static void bk_probe_verdict(struct bk *b, uint64_t w, uint32_t e, bool failed)
{
	for (;;) {
		if (w_epoch(w) != e || w_state(w) != PROT_BREAKER_HALF_OPEN)
			return; /* a verdict of a past round */
		uint64_t nw;
		if (failed)
			nw = w_make(PROT_BREAKER_OPEN, e + 1, 0, 0);
		else if (w_ok(w) + 1u >= b->c.probes)
			nw = w_make(PROT_BREAKER_CLOSED, e + 1, 0, 0);
		else
			nw = w + 1;
		if (!bk_cas(b, &w, nw))
			continue;
		if (w_state(nw) == PROT_BREAKER_CLOSED)
			bk_clear_history(b);
		if (w_epoch(nw) != e)
			bk_transitioned(b, nw, 0, 0);
		return;
	}
}

/* The permit of token (e, slot) held by self: settle it to `to` (SPENT: a verdict; 0: given back).
 * false when the token is not its holder's (another process, a permit reclaimed or re-issued). */
bool probe_settle(struct bk *b, uint32_t e, uint32_t slot, uint64_t self, uint64_t to)
{
	if (slot >= PROBES_MAX)
		return false;
	uint64_t mine = hold_value(e, self);
	/* acq_rel: pairs with probe_take's CAS; one settlement per permit */
	return atomic_compare_exchange_strong_explicit(&b->s->probe_holder[slot], &mine, to,
	                                               memory_order_acq_rel, memory_order_relaxed);
}

/* The verdict of an admitted call (a probe's permit is already settled). */
void bk_record(struct bk *b, uint32_t e, bool probe, bool failed)
{
	struct prot_breaker_slot *s = b->s;
	/* statistics: relaxed */
	atomic_fetch_add_explicit(failed ? &s->failures : &s->successes, 1, memory_order_relaxed);
	uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire); /* pairs with bk_cas */
	if (w_epoch(w) != e)
		return; /* a token of a past period: counters only */
	if (probe)
		bk_probe_verdict(b, w, e, failed);
	else if (w_state(w) != PROT_BREAKER_CLOSED)
		return;
	else if (b->c.strategy == PROT_BREAKER_RATE)
		bk_rate_push(b, e, failed);
	else if (failed)
		bk_melt(b, e);
}

enum { FORCE_RESET = BREAKER_RESET, FORCE_BLOW = BREAKER_BLOW, FORCE_ENABLE = BREAKER_ENABLE };

/* Reset (close, unless disabled), blow (disable) and enable (close a disabled breaker): a new epoch.
 * Disabling dominates everything but enable, as fuse's circuit_disable does. */
int bk_force(struct bk *b, int how)
{
	static const uint32_t ev[] = { [FORCE_RESET] = EV_BREAKER_RESET, [FORCE_BLOW] = EV_BREAKER_BLOWN,
		                       [FORCE_ENABLE] = EV_BREAKER_CLOSED };
	uint64_t w = atomic_load_explicit(&b->s->word, memory_order_acquire), nw;
	do {
		bool disabled = w_state(w) == PROT_BREAKER_BLOWN;
		if (how == FORCE_RESET && disabled)
			return -PROT_EDISABLED;
		if ((how == FORCE_BLOW && disabled) || (how == FORCE_ENABLE && !disabled))
			return 0; /* already so: nothing changes */
		nw = w_make(how == FORCE_BLOW ? PROT_BREAKER_BLOWN : PROT_BREAKER_CLOSED, w_epoch(w) + 1, 0, 0);
	} while (!bk_cas(b, &w, nw));
	if (w_state(nw) == PROT_BREAKER_CLOSED)
		bk_clear_history(b);
	bk_transitioned(b, nw, ev[how], 0);
	return 0;
}

/* protd's tick: publish missing starts; half-open a breaker whose open period is over (so status
 * shows it, and no state outlives its period by more than a tick while protd runs); give back the
 * permits of dead probe holders; start a new probe round for a breaker whose permits are all out
 * and unanswered past the probe timeout. Everything is a CAS that re-checks its premise, so this
 * is safe from any process and alongside clients. */
void breaker_tick(const struct prot_idv *v, uint64_t now_ns)
{
	struct prot_shm_header *h = v->h;
	for (uint32_t i = 0, n = seg_count(h, REG_BREAKERS); i < n; i++) {
		struct prot_breaker_slot *s = seg_entry(h, REG_BREAKERS, i);
		if (SLOT_STATE(atomic_load_explicit(&s->state, memory_order_acquire)) != SLOT_LIVE)
			continue;
		uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire); /* pairs with bk_cas */
		if (w_state(w) == PROT_BREAKER_CLOSED && w_epoch(w) == 0)
			continue; /* never transitioned */
		struct bk b;
		if (bk_init(&b, NULL, h, i, now_ns) < 0)
			continue; /* half-written: nothing timed can be judged */
		if (w_state(w) == PROT_BREAKER_HALF_OPEN)
			probes_reclaim(&b, v, w_epoch(w));
		uint64_t age = since_age(&s->since, w_epoch(w), bk_now(&b));
		bool open_due = w_state(w) == PROT_BREAKER_OPEN && age >= b.c.refresh_ms;
		bool round_due = w_state(w) == PROT_BREAKER_HALF_OPEN && probes_out(&b, w_epoch(w)) >= b.c.probes &&
		                 probe_age(s, w_epoch(w), b.now_ms) >= b.c.probe_timeout_ms;
		uint64_t nw = open_due ? bk_healed(&b, w_epoch(w)) : w_make(PROT_BREAKER_HALF_OPEN, w_epoch(w) + 1, 0, 0);
		if (!(open_due || round_due) || !bk_cas(&b, &w, nw))
			continue;
		bk_moved_on(&b, w, nw);
	}
}
