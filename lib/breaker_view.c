/* breaker_view.c — a breaker seen from outside its state machine (lib/breaker.c): its
 * configuration as decisions read it (breaker_cfg_same, protd's test of "the same options"; the
 * snapshot the facade takes, breaker_cfg_snap), the read-only views (breaker_status_idx,
 * breaker_ask_idx), and the public prot_breaker_* calls: the decisions (execute, allow, record)
 * and forced transitions hand over to lib/breaker_call.c's index-based paths; runtime creation and
 * removal go through protd (lib/wire.c). Callers: applications, lib/facade.c, protctl, protd.
 * Reads only here: every write to a slot's words is lib/breaker.c's.
 */
#include <errno.h>
#include <string.h>

#include "breaker.h"
#include "wire.h"

/* ---- configuration ----------------------------------------------------------------------------- */
/* The configuration as decisions read it, and of that only what its strategy uses: the other
 * options are whatever defaults protd filled in. origin is protd's bookkeeping. */
static void cfg_effective(const struct prot_breaker_cfg *in, struct bcfg *c)
{
	memcpy(c, in, sizeof *c);
	cfg_normalize(c);
	c->origin = 0;
	if (c->strategy == PROT_BREAKER_RATE)
		c->tolerance = c->window_ms = 0;
	else
		c->rate_threshold_pct = c->rate_window_calls = c->rate_min_calls = 0;
}

bool breaker_cfg_same(const struct prot_breaker_cfg *a, const struct prot_breaker_cfg *b)
{
	struct bcfg x, y;
	cfg_effective(a, &x);
	cfg_effective(b, &y);
	return memcmp(&x, &y, sizeof x) == 0;
}

_Static_assert(sizeof(struct bcfg) <= sizeof(struct cfg_snap), "a breaker's words fit a snapshot");

int breaker_cfg_snap(struct prot_shm_header *h, uint32_t idx, struct cfg_snap *out)
{
	if (idx >= seg_count(h, REG_BREAKERS))
		return -PROT_ENOBREAKER;
	struct prot_breaker_slot *s = seg_entry(h, REG_BREAKERS, idx);
	return seq_read(&s->seq, &s->cfg, out->w, BCFG_HEAD_WORDS);
}

/* ---- views ------------------------------------------------------------------------------------- */

int breaker_status_idx(struct prot_shm_header *h, uint32_t idx, uint64_t now_ns,
                       struct prot_breaker_status *out)
{
	struct prot_breaker_status st = {0};
	struct bk b;

	if (idx >= seg_count(h, REG_BREAKERS))
		return -PROT_ENOBREAKER;
	int cr = bk_init(&b, NULL, h, idx, now_ns ? now_ns : prot_now_ns());
	if (cr < 0)
		return cr;
	struct prot_breaker_slot *s = b.s;
	uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire); /* pairs with bk_cas */
	uint64_t since = atomic_load_explicit(&s->since, memory_order_acquire);
	uint32_t e = w_epoch(w);

	memcpy(st.name, s->name, sizeof st.name);
	st.name[PROT_NAME_MAX] = '\0';
	st.state = w_state(w);
	if (b.c.strategy == PROT_BREAKER_RATE) {
		uint64_t seen, fails;
		rate_count(s, b.c.rate_window_calls, &seen, &fails);
		st.failures_in_window = (uint32_t)fails;
	} else {
		st.failures_in_window = melts_count(s, e, st.state != PROT_BREAKER_CLOSED, window_lo(&b));
	}
	/* Read-only: a start not yet published (status never writes) reads as "just now". */
	uint64_t age = since_epoch(since) == e ? since_age_of(since, b.now_ms) : 0;
	if (e == 0) /* never transitioned: as old as the segment */
		age = b.now_ms > h->created_ns / 1000000u ? b.now_ms - h->created_ns / 1000000u : 0;
	if (st.state == PROT_BREAKER_OPEN && age < b.c.refresh_ms) {
		st.next_probe_ms = b.c.refresh_ms - age;
	} else if (st.state == PROT_BREAKER_OPEN) {
		/* the state as of now, whether or not a caller or protd's tick has moved it yet */
		st.state = b.c.heal == PROT_HEAL_FULL ? PROT_BREAKER_CLOSED : PROT_BREAKER_HALF_OPEN;
		age -= b.c.refresh_ms;
	}
	st.last_transition_ms_ago = age;
	/* statistics: relaxed */
	st.successes = atomic_load_explicit(&s->successes, memory_order_relaxed);
	st.failures = atomic_load_explicit(&s->failures, memory_order_relaxed);
	st.rejections = atomic_load_explicit(&s->rejections, memory_order_relaxed);
	st.admitted = atomic_load_explicit(&s->admitted, memory_order_relaxed);
	st.calls = st.admitted + st.rejections;
	st.probes_given_back = atomic_load_explicit(&s->probes_given_back, memory_order_relaxed);
	st.opts = (struct prot_breaker_opts){
		.strategy = (uint32_t)b.c.strategy, .tolerance = (uint32_t)b.c.tolerance,
		.window_ms = b.c.window_ms, .refresh_ms = b.c.refresh_ms,
		.half_open_probes = (uint32_t)b.c.probes, .probe_timeout_ms = b.c.probe_timeout_ms,
		.slow_call_ms = b.c.slow_call_ms, .rate_threshold_pct = (uint32_t)b.c.rate_threshold_pct,
		.rate_window_calls = (uint32_t)b.c.rate_window_calls,
		.rate_min_calls = (uint32_t)b.c.rate_min_calls, .heal = (uint32_t)b.c.heal,
	};
	*out = st;
	return 0;
}

/* Whether a call would be admitted now, from the word and the clock: no CAS, no probe, no count. */
int breaker_ask_idx(struct prot_shm_header *h, uint32_t idx, uint64_t now_ns)
{
	struct bk b;
	if (idx >= seg_count(h, REG_BREAKERS))
		return -PROT_ENOBREAKER;
	int r = bk_init(&b, NULL, h, idx, now_ns ? now_ns : prot_now_ns());
	if (r < 0)
		return r;
	uint64_t w = atomic_load_explicit(&b.s->word, memory_order_acquire); /* pairs with bk_cas */
	uint32_t e = w_epoch(w);
	switch (w_state(w)) {
	case PROT_BREAKER_CLOSED:
		return 0;
	case PROT_BREAKER_OPEN: {
		uint64_t v = atomic_load_explicit(&b.s->since, memory_order_acquire);
		/* a start not yet published reads as "just now" (ask never writes) */
		uint64_t age = since_epoch(v) == e ? since_age_of(v, b.now_ms) : 0;
		return age >= b.c.refresh_ms ? 0 : -PROT_EBLOWN; /* healed: closed, or a probe free */
	}
	case PROT_BREAKER_HALF_OPEN:
		return probes_out(&b, e) < b.c.probes ? 0 : -PROT_EBLOWN;
	default:
		return -PROT_EBLOWN;
	}
}

/* ---- public API -------------------------------------------------------------------------------- */

int prot_breaker_execute(prot_t *p, const char *name, int (*fn)(void *arg), void *arg, int *fn_result)
{
	struct prot_shm_header *h;
	int idx = fn ? breaker_lookup(p, name, true, &h) : -EINVAL;
	return idx < 0 ? idx : breaker_execute_idx(p, h, (uint32_t)idx, fn, arg, fn_result);
}

int prot_breaker_allow(prot_t *p, const char *name, prot_breaker_token *tok)
{
	struct prot_shm_header *h;
	int idx = tok ? breaker_lookup(p, name, true, &h) : -EINVAL;
	return idx < 0 ? idx : breaker_allow_idx(p, h, (uint32_t)idx, 0, tok);
}

int prot_breaker_record(prot_t *p, const prot_breaker_token *tok, int outcome, uint64_t duration_ns)
{
	int g = prot_gate(p, true);
	if (g < 0)
		return g;
	if (!tok)
		return -EINVAL;
	return breaker_record_idx(p, prot_hdr(p), tok, outcome, duration_ns, 0);
}

int prot_breaker_status(prot_t *p, const char *name, struct prot_breaker_status *out)
{
	struct prot_shm_header *h;
	int idx = out ? breaker_lookup(p, name, false, &h) : -EINVAL;
	return idx < 0 ? idx : breaker_status_idx(h, (uint32_t)idx, 0, out);
}

int prot_breaker_reset(prot_t *p, const char *name)
{
	struct prot_shm_header *h;
	int idx = breaker_lookup(p, name, true, &h);
	return idx < 0 ? idx : breaker_force_idx(p, h, (uint32_t)idx, BREAKER_RESET);
}

int prot_breaker_blow(prot_t *p, const char *name)
{
	struct prot_shm_header *h;
	int idx = breaker_lookup(p, name, true, &h);
	return idx < 0 ? idx : breaker_force_idx(p, h, (uint32_t)idx, BREAKER_BLOW);
}

int prot_breaker_enable(prot_t *p, const char *name)
{
	struct prot_shm_header *h;
	int idx = breaker_lookup(p, name, true, &h);
	return idx < 0 ? idx : breaker_force_idx(p, h, (uint32_t)idx, BREAKER_ENABLE);
}

int prot_breaker_ask(prot_t *p, const char *name)
{
	struct prot_shm_header *h;
	int idx = breaker_lookup(p, name, false, &h);
	return idx < 0 ? idx : breaker_ask_idx(h, (uint32_t)idx, 0);
}

/* Removal goes through protd, the only writer of configuration (its reply's error class names a
 * missing breaker: PROT_ENOBREAKER). */
int prot_breaker_remove(prot_t *p, const char *name)
{
	return prot_object_request(p, "breaker-remove", name, WIRE_NO_OPTS, NULL);
}

/* Runtime creation goes through protd, the only writer of configuration: the options travel once,
 * as the words of an INI [breaker] section (lib/wire.c), and protd alone validates them and
 * decides whether an existing breaker of that name has the same ones (breaker_cfg_same): 0 then,
 * PROT_EEXIST when it has others. */
int prot_breaker_create(prot_t *p, const char *name, const struct prot_breaker_opts *opts)
{
	int r = prot_object_request(p, "breaker-create", name, WIRE_BREAKER_OPTS, opts);
	if (r == 0)
		PROT_TEL(p, PROT_TEL_BREAKER_CREATED, .layer = PROT_LAYER_BREAKER, .key = name);
	return r;
}
