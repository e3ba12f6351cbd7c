/* breaker_call.c — a breaker seen from a call: the index-based entry points the public calls
 * (lib/breaker_view.c) and the facade (lib/facade.c) use: breaker_allow_cfg / breaker_record_cfg
 * and their _idx forms, breaker_execute_idx, breaker_force_idx, and the tokens they hand out. The
 * state machine they step (bk_allow, bk_record, probe_settle, bk_force) and the words' meaning and
 * memory orders are lib/breaker.c's (its opening comment); the encodings are lib/breaker.h's.
 *
 * THE CLOSED PATHS. Most calls find the breaker CLOSED. Then admission is the state word's epoch
 * (bk_allow's closed case) and the count `admitted`; a success on the standard strategy is the
 * count `successes` and nothing else (bk_record: only failures melt, and a success is counted
 * whatever the epoch). So those paths read the word, the slot's generation (allow: before the
 * decision, so that a slot recycled meanwhile makes the token stale) and two configuration words,
 * strategy and slow_call_ms, as one consistent copy (cfg_read_closed: the seqlock of cfg_read; a
 * copy being written sends the call to the full read, which waits or says PROT_ETORN as before), or
 * the facade's snapshot of them. Everything else (a probe, the rate strategy, a failure, a slow
 * call, a breaker not CLOSED) takes the full configuration and the state machine, unchanged. A
 * failure after execute's closed admission is judged on the configuration read at its verdict, as
 * prot_breaker_record judges every verdict; the epoch is the one its admission saw.
 *
 * THE FAST REJECTIONS. A disabled (BLOWN) breaker refuses whatever its configuration says, so the
 * word alone decides. An OPEN one well before the end of its period refuses on refresh_ms (one
 * word, read as above) and the coarse clock: bk_open_early, the same test bk_allow_slow makes
 * first. Anything else (near the end of the period, where the precise clock decides so that the
 * half-open comes on time; an injected time; a word being written) takes the full path. A
 * decision is on the word loaded once, before anything else, as bk_allow's.
 */
#include <errno.h>

#include "breaker.h"

/* ---- tokens ------------------------------------------------------------------------------------ */
/* opaque[0] = slot index | slot generation << 32
 * opaque[1] = epoch | probe << 30 | TOK_VALID | probe permit << 32
 * opaque[2] = admission time (ns) when the breaker measures slow calls, else 0
 * A probe token is honoured only by the CAS of its exact permit value, which names the holder's
 * identity: nothing else in it is trusted. */
#define TOK_PROBE (1ull << 30)
#define TOK_VALID (1ull << 31)
#define TOK_SLOT(t) ((uint32_t)((t)->opaque[1] >> 32))

static inline uint32_t slot_gen(struct prot_breaker_slot *s)
{
	/* acquire: pairs with protd's release store of the slot state */
	return SLOT_GEN(atomic_load_explicit(&s->state, memory_order_acquire));
}

/* ---- hidden fast paths (lib/internal.h) -------------------------------------------------------- */

/* A refused admission, told to the in-process telemetry. */
static int bk_rejected(prot_t *p, const struct prot_breaker_slot *s, int r)
{
	if (p)
		PROT_TEL(p, PROT_TEL_BREAKER_REJECTED, .layer = PROT_LAYER_BREAKER, .result = r, .key = s->name);
	return r;
}

int breaker_allow_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx, uint64_t now_ns,
                      prot_breaker_token *tok)
{
	return breaker_allow_cfg(p, h, idx, now_ns, NULL, tok);
}

static void tok_fill(prot_breaker_token *tok, uint32_t idx, uint32_t gen, uint32_t e, bool probe, uint32_t k,
                     uint64_t t0)
{
	tok->opaque[0] = idx | (uint64_t)gen << 32;
	tok->opaque[1] = e | (probe ? TOK_PROBE : 0) | TOK_VALID | (uint64_t)k << 32;
	tok->opaque[2] = t0;
}

/* The two configuration words the closed paths decide on (strategy, slow_call_ms); false: being
 * written, take the full read. */
static inline bool closed_words(struct prot_breaker_slot *s, const struct cfg_snap *cfg, bool *rate,
                                uint64_t *slow)
{
	static const unsigned at[] = { BCFG_W(strategy), BCFG_W(slow_call_ms) };
	uint64_t v[2];
	if (!cfg_read_few(s, cfg, at, 2, v))
		return false;
	*rate = v[0] == PROT_BREAKER_RATE;
	*slow = v[1];
	return true;
}

/* An OPEN breaker well before the end of its period: rejected (counted) on refresh_ms alone and
 * the coarse clock (bk_open_early), true; false: the full path decides (near the end, or the word
 * being written). now_ns: an injected time the fast path cannot use (then false). */
static inline bool open_rejected(struct prot_breaker_slot *s, const struct cfg_snap *cfg, uint64_t w,
                                 uint64_t now_ns)
{
	static const unsigned at[] = { BCFG_W(refresh_ms) };
	uint64_t refresh;
	if (w_state(w) != PROT_BREAKER_OPEN || now_ns || !cfg_read_few(s, cfg, at, 1, &refresh) ||
	    !bk_open_early(s, w_epoch(w), prot_now_coarse_ns() / 1000000u, refresh))
		return false;
	bk_reject_slot(s);
	return true;
}

/* The rejections that need no more than refresh_ms: a disabled breaker (whatever its
 * configuration), an OPEN one well before the end of its period. -PROT_EBLOWN (counted and told),
 * or 0: the full path decides. */
static inline int fast_reject(prot_t *p, struct prot_breaker_slot *s, const struct cfg_snap *cfg, uint64_t w,
                              uint64_t now_ns)
{
	if (w_state(w) == PROT_BREAKER_BLOWN)
		bk_reject_slot(s);
	else if (!open_rejected(s, cfg, w, now_ns))
		return 0;
	return bk_rejected(p, s, -PROT_EBLOWN);
}

int breaker_allow_cfg(prot_t *p, struct prot_shm_header *h, uint32_t idx, uint64_t now_ns,
                      const struct cfg_snap *cfg, prot_breaker_token *tok)
{
	struct bk b;
	uint32_t e, k = 0;
	bool probe, rate;
	uint64_t slow;

	if (idx >= seg_count(h, REG_BREAKERS))
		return -PROT_ENOBREAKER;
	/* The closed path (bk_allow's, without the rest of the configuration): the generation before
	 * the decision, as below, then the word; slow_call_ms says whether the call is timed. */
	struct prot_breaker_slot *s = seg_entry(h, REG_BREAKERS, idx);
	uint32_t gen = slot_gen(s);
	uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire); /* pairs with bk_cas */
	if (likely(w_state(w) == PROT_BREAKER_CLOSED && closed_words(s, cfg, &rate, &slow))) {
		atomic_fetch_add_explicit(&s->admitted, 1, memory_order_relaxed); /* statistic */
		tok_fill(tok, idx, gen, w_epoch(w), false, 0, slow ? (now_ns ? now_ns : prot_now_ns()) : 0);
		return 0;
	}
	int r = fast_reject(p, s, cfg, w, now_ns);
	if (r < 0)
		return r;
	int cr = bk_init_cfg(&b, p, h, idx, now_ns, cfg);
	if (cr < 0)
		return cr;
	/* the generation before the decision: a slot recycled meanwhile makes the token stale */
	gen = slot_gen(b.s);
	r = bk_allow(&b, &e, &probe, &k);
	if (r < 0)
		return bk_rejected(p, b.s, r);
	tok_fill(tok, idx, gen, e, probe, k, b.c.slow_call_ms ? (now_ns ? now_ns : prot_now_ns()) : 0);
	return 0;
}

static inline bool is_slow(const struct bk *b, uint64_t duration_ns)
{
	return b->c.slow_call_ms && duration_ns > b->c.slow_call_ms * 1000000u;
}

/* The call's duration: the caller's, else measured from the token's admission time (a breaker that
 * times calls stamps it), else 0. */
static uint64_t tok_duration(const prot_breaker_token *tok, uint64_t duration_ns, uint64_t now_ns)
{
	if (duration_ns != 0 || tok->opaque[2] == 0)
		return duration_ns;
	uint64_t now = now_ns ? now_ns : prot_now_ns();
	return now > tok->opaque[2] ? now - tok->opaque[2] : 0;
}

static inline void tel_executed(prot_t *p, const struct prot_breaker_slot *s, int outcome, uint64_t duration_ns)
{
	if (p)
		PROT_TEL(p, PROT_TEL_BREAKER_EXECUTED, .layer = PROT_LAYER_BREAKER, .result = outcome,
		         .duration_ns = duration_ns, .key = s->name);
}

int breaker_record_idx(prot_t *p, struct prot_shm_header *h, const prot_breaker_token *tok,
                       int outcome, uint64_t duration_ns, uint64_t now_ns)
{
	return breaker_record_cfg(p, h, tok, outcome, duration_ns, now_ns, NULL);
}

int breaker_record_cfg(prot_t *p, struct prot_shm_header *h, const prot_breaker_token *tok,
                       int outcome, uint64_t duration_ns, uint64_t now_ns, const struct cfg_snap *cfg)
{
	struct bk b;
	uint32_t idx = (uint32_t)tok->opaque[0];
	bool rate;
	uint64_t slow;

	if (!(tok->opaque[1] & TOK_VALID) || outcome < PROT_OUTCOME_SUCCESS || outcome > PROT_OUTCOME_CANCEL)
		return -EINVAL;
	if (idx >= seg_count(h, REG_BREAKERS))
		return -PROT_ESTALE;
	struct prot_breaker_slot *s = seg_entry(h, REG_BREAKERS, idx);
	if (SLOT_STATE(atomic_load_explicit(&s->state, memory_order_relaxed)) != SLOT_LIVE ||
	    slot_gen(s) != (uint32_t)(tok->opaque[0] >> 32))
		return -PROT_ESTALE;
	/* A success that is not a probe's, on the standard strategy: only its count (bk_record: a
	 * success never moves a standard breaker), unless it was slow. */
	if (outcome == PROT_OUTCOME_SUCCESS && !(tok->opaque[1] & TOK_PROBE) && closed_words(s, cfg, &rate, &slow) &&
	    !rate) {
		duration_ns = tok_duration(tok, duration_ns, now_ns);
		if (!slow || duration_ns <= slow * 1000000u) {
			atomic_fetch_add_explicit(&s->successes, 1, memory_order_relaxed); /* statistic */
			tel_executed(p, s, outcome, duration_ns);
			return 0;
		}
	}
	int cr = bk_init_cfg(&b, p, h, idx, now_ns, cfg);
	if (cr < 0) {
		/* no verdict without a whole configuration; a probe's permit still goes back */
		if (tok->opaque[1] & TOK_PROBE)
			probe_settle(&b, (uint32_t)tok->opaque[1] & EPOCH_MASK, TOK_SLOT(tok),
			             p ? prot_self(p, h) : 0, 0);
		return cr;
	}
	uint32_t e = (uint32_t)tok->opaque[1] & EPOCH_MASK;
	if (tok->opaque[1] & TOK_PROBE) {
		uint64_t self = p ? prot_self(p, h) : 0;
		bool cancel = outcome == PROT_OUTCOME_CANCEL;
		if (!probe_settle(&b, e, TOK_SLOT(tok), self, cancel ? 0 : HOLD_VALID | hold_tag(e) | HOLD_SPENT))
			return -PROT_ESTALE; /* not this holder's permit: records nothing */
		if (cancel)
			atomic_fetch_add_explicit(&b.s->probes_given_back, 1, memory_order_relaxed); /* statistic */
	}
	if (outcome == PROT_OUTCOME_CANCEL) /* no verdict: nothing is counted */
		return 0;
	duration_ns = tok_duration(tok, duration_ns, now_ns);
	bk_record(&b, e, tok->opaque[1] & TOK_PROBE, outcome == PROT_OUTCOME_FAILURE || is_slow(&b, duration_ns));
	tel_executed(p, b.s, outcome, duration_ns);
	return 0;
}

/* The end of an execute: the telemetry event and fn's result. */
static inline int bk_executed(prot_t *p, const struct prot_breaker_slot *s, int res, uint64_t dur, int *fn_result)
{
	tel_executed(p, s, res, dur);
	if (fn_result)
		*fn_result = res;
	return res < 0 ? -PROT_EFAILED : 0;
}

/* The verdict of a failed call admitted by the closed path below, on the whole configuration as it
 * is now (prot_breaker_record's rule: a verdict is judged on the configuration at its time). A torn
 * configuration gives no verdict, only the count (as breaker_record_cfg gives none). */
static __attribute__((noinline)) void bk_closed_failed(prot_t *p, struct prot_shm_header *h, uint32_t idx,
                                                       uint32_t e)
{
	struct bk b;
	if (bk_init(&b, p, h, idx, 0) < 0)
		atomic_fetch_add_explicit(&b.s->failures, 1, memory_order_relaxed); /* statistic */
	else
		bk_record(&b, e, false, true);
}

enum { EXEC_NOT_CLOSED = 1 };

/* Execute on a CLOSED standard breaker that does not time calls, the common case: 0 or
 * -PROT_EFAILED, or EXEC_NOT_CLOSED (nothing done: the general path decides). A success never moves
 * such a breaker (only failures trip the standard strategy, and bk_record counts a success whatever
 * the epoch), so it needs the state word, two configuration words, its two counters and no clock;
 * the epoch the word gave is the token's, as in bk_allow. */
static inline int bk_execute_closed(prot_t *p, struct prot_shm_header *h, uint32_t idx, uint64_t w,
                                    int (*fn)(void *arg), void *arg, int *fn_result)
{
	struct prot_breaker_slot *s = seg_entry(h, REG_BREAKERS, idx);
	bool rate;
	uint64_t slow;
	if (w_state(w) != PROT_BREAKER_CLOSED || !closed_words(s, NULL, &rate, &slow) || rate || slow)
		return EXEC_NOT_CLOSED; /* the word first: a rejection reads no configuration here */
	atomic_fetch_add_explicit(&s->admitted, 1, memory_order_relaxed); /* statistic */
	int res = fn(arg);
	if (likely(res >= 0))
		atomic_fetch_add_explicit(&s->successes, 1, memory_order_relaxed); /* statistic */
	else
		bk_closed_failed(p, h, idx, w_epoch(w));
	return bk_executed(p, s, res, 0, fn_result);
}

int breaker_execute_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx, int (*fn)(void *arg),
                        void *arg, int *fn_result)
{
	struct bk b;
	uint32_t e, k = 0;
	bool probe;
	uint64_t t0 = 0;

	if (idx >= seg_count(h, REG_BREAKERS))
		return -PROT_ENOBREAKER;
	struct prot_breaker_slot *s = seg_entry(h, REG_BREAKERS, idx);
	uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire); /* pairs with bk_cas */
	int r = bk_execute_closed(p, h, idx, w, fn, arg, fn_result);
	if (likely(r != EXEC_NOT_CLOSED))
		return r;
	r = fast_reject(p, s, NULL, w, 0);
	if (r < 0)
		return r;
	r = bk_init(&b, p, h, idx, 0);
	if (r < 0)
		return r;
	r = bk_allow_word(&b, w, &e, &probe, &k);
	if (r < 0)
		return bk_rejected(p, b.s, r);
	if (b.c.slow_call_ms)
		t0 = prot_now_ns(); /* only then: the closed path reads no clock */
	int res = fn(arg);
	uint64_t dur = t0 ? prot_now_ns() - t0 : 0;
	b.have_now = false; /* fn took time: a failure is stamped when it is recorded */
	if (!probe || probe_settle(&b, e, k, p ? prot_self(p, h) : 0, HOLD_VALID | hold_tag(e) | HOLD_SPENT))
		bk_record(&b, e, probe, res < 0 || is_slow(&b, dur));
	return bk_executed(p, b.s, res, dur, fn_result);
}

int breaker_force_idx(prot_t *p, struct prot_shm_header *h, uint32_t idx, int how)
{
	struct bk b;

	if (idx >= seg_count(h, REG_BREAKERS))
		return -PROT_ENOBREAKER;
	if (how != BREAKER_RESET && how != BREAKER_BLOW && how != BREAKER_ENABLE)
		return -EINVAL;
	bk_init(&b, p, h, idx, 0); /* a torn configuration does not matter: forcing needs none */
	return bk_force(&b, how);
}

