/* test_breaker.c — circuit breakers.
 *
 * Suite "core": the state machine alone, on a segment made by hand in anonymous shared memory
 * (seg_layout + a slot filled as protd would), with an injected clock so that every window and
 * timeout is exact; forked processes where the point is the race.
 * Suite "breaker": the whole thing with a real protd, real processes, real time.
 * Length (over ~700 lines): both suites share the hand-made slot, the injected clock and the
 * forked-race helpers defined here; a split into test_breaker_core.c would first move those into
 * tests/harness.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "craft.h"
#include "internal.h"

#define MS 1000000ull

/* ---- a hand-made segment ---------------------------------------------------------------------- */

static struct prot_shm_header *core_seg(void)
{
	struct seg_geometry g = {.max_keys = 1, .max_breakers = 4, .max_pools = 1, .pool_max_slots = 1,
	                         .pool_max_waiters = 1, .events = 64, .rate_entities = 32};
	return craft_anon(&g);
}

static void core_breaker(struct prot_shm_header *h, uint32_t idx, const char *name,
                         const struct prot_breaker_cfg *cfg)
{
	publish_slot(h, REG_BREAKERS, idx, name, cfg, sizeof *cfg);
}

static struct prot_breaker_slot *slot(struct prot_shm_header *h, uint32_t idx)
{
	return seg_entry(h, REG_BREAKERS, idx);
}

static uint64_t T0; /* injected clock origin; every test time is T0 + k ms */
static uint64_t at(uint64_t ms) { return T0 + ms * MS; }

static int allow(struct prot_shm_header *h, uint64_t ms, prot_breaker_token *tok)
{
	return breaker_allow_idx(NULL, h, 0, at(ms), tok);
}

static void record(struct prot_shm_header *h, uint64_t ms, const prot_breaker_token *tok, int outcome)
{
	cr_assert_eq(breaker_record_idx(NULL, h, tok, outcome, 0, at(ms)), 0);
}

/* One whole call at time ms: admitted (1) and recorded with outcome, or rejected (0). */
static int call(struct prot_shm_header *h, uint64_t ms, int outcome)
{
	prot_breaker_token tok;
	int r = allow(h, ms, &tok);
	if (r == -PROT_EBLOWN)
		return 0;
	cr_assert_eq(r, 0, "allow: %s", prot_strerror(r));
	record(h, ms, &tok, outcome);
	return 1;
}

static uint32_t state_at(struct prot_shm_header *h, uint64_t ms)
{
	struct prot_breaker_status st;
	cr_assert_eq(breaker_status_idx(h, 0, at(ms), &st), 0);
	return st.state;
}

static struct prot_shm_header *core_std(uint64_t tolerance, uint64_t window, uint64_t refresh, uint64_t probes)
{
	struct prot_shm_header *h = core_seg();
	struct prot_breaker_cfg c = {.strategy = PROT_BREAKER_STANDARD, .tolerance = tolerance,
	                             .window_ms = window, .refresh_ms = refresh, .half_open_probes = probes};
	core_breaker(h, 0, "b", &c);
	T0 = prot_now_ns();
	return h;
}

Test(core, trips_at_exactly_tolerance_plus_one)
{
	struct prot_shm_header *h = core_std(3, 1000, 500, 1);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(call(h, 10 * (uint64_t)i, PROT_OUTCOME_FAILURE), 1);
	cr_assert_eq(state_at(h, 30), PROT_BREAKER_CLOSED);
	for (int i = 0; i < 50; i++) /* successes do not erase failures */
		cr_assert_eq(call(h, 40, PROT_OUTCOME_SUCCESS), 1);
	cr_assert_eq(call(h, 50, PROT_OUTCOME_FAILURE), 1);
	cr_assert_eq(state_at(h, 50), PROT_BREAKER_OPEN);
	struct prot_breaker_status st;
	cr_assert_eq(breaker_status_idx(h, 0, at(60), &st), 0);
	cr_assert_eq(st.failures_in_window, 4);
	cr_assert_eq(st.next_probe_ms, 490);
	cr_assert_eq(st.successes, 50);
	cr_assert_eq(st.failures, 4);
}

Test(core, spread_wider_than_window_does_not_trip)
{
	struct prot_shm_header *h = core_std(3, 1000, 500, 1);
	/* 0, 400, 800, 1200, 1600: any four span 1200 ms > window */
	for (uint64_t t = 0; t <= 1600; t += 400) {
		cr_assert_eq(call(h, t, PROT_OUTCOME_FAILURE), 1);
		cr_assert_eq(state_at(h, t), PROT_BREAKER_CLOSED, "tripped at %llu", (unsigned long long)t);
	}
	cr_assert_eq(call(h, 1700, PROT_OUTCOME_FAILURE), 1); /* 800, 1200, 1600, 1700 */
	cr_assert_eq(state_at(h, 1700), PROT_BREAKER_OPEN);
}

Test(core, tolerance_zero_trips_on_first_failure)
{
	struct prot_shm_header *h = core_std(0, 1000, 500, 1);
	cr_assert_eq(call(h, 0, PROT_OUTCOME_SUCCESS), 1);
	cr_assert_eq(call(h, 1, PROT_OUTCOME_FAILURE), 1);
	cr_assert_eq(state_at(h, 1), PROT_BREAKER_OPEN);
}

static struct prot_shm_header *tripped(uint64_t refresh, uint64_t probes)
{
	struct prot_shm_header *h = core_std(1, 1000, refresh, probes);
	call(h, 0, PROT_OUTCOME_FAILURE);
	call(h, 0, PROT_OUTCOME_FAILURE);
	cr_assert_eq(state_at(h, 0), PROT_BREAKER_OPEN);
	return h;
}

Test(core, open_rejects_and_late_failures_do_not_extend)
{
	struct prot_shm_header *h = core_std(1, 1000, 500, 1);
	prot_breaker_token late[5];
	for (int i = 0; i < 5; i++) /* admitted while closed, reported after the trip */
		cr_assert_eq(allow(h, 0, &late[i]), 0);
	call(h, 0, PROT_OUTCOME_FAILURE);
	call(h, 0, PROT_OUTCOME_FAILURE);
	for (uint64_t t = 0; t < 500; t += 50) {
		cr_assert_eq(call(h, t, PROT_OUTCOME_FAILURE), 0, "admitted at %llu", (unsigned long long)t);
		if (t / 100 < 5)
			record(h, t, &late[t / 100], PROT_OUTCOME_FAILURE);
	}
	struct prot_breaker_status st;
	cr_assert_eq(breaker_status_idx(h, 0, at(450), &st), 0);
	cr_assert_eq(st.next_probe_ms, 50, "late failures must not move the open period");
	cr_assert_eq(st.rejections, 10);
	cr_assert_eq(call(h, 500, PROT_OUTCOME_SUCCESS), 1); /* the probe, exactly at refresh */
	cr_assert_eq(state_at(h, 500), PROT_BREAKER_CLOSED);
	/* the failures before the close are forgotten: one more does not trip (tolerance 1) */
	cr_assert_eq(call(h, 501, PROT_OUTCOME_FAILURE), 1);
	cr_assert_eq(state_at(h, 501), PROT_BREAKER_CLOSED);
}

Test(core, half_open_admits_exactly_n_probes)
{
	struct prot_shm_header *h = tripped(500, 3);
	prot_breaker_token tok[3], t;
	for (int i = 0; i < 3; i++)
		cr_assert_eq(allow(h, 500, &tok[i]), 0);
	cr_assert_eq(allow(h, 501, &t), -PROT_EBLOWN);
	cr_assert_eq(state_at(h, 501), PROT_BREAKER_HALF_OPEN);
	record(h, 502, &tok[0], PROT_OUTCOME_SUCCESS);
	record(h, 502, &tok[1], PROT_OUTCOME_SUCCESS);
	cr_assert_eq(state_at(h, 502), PROT_BREAKER_HALF_OPEN);
	cr_assert_eq(allow(h, 503, &t), -PROT_EBLOWN, "probes taken are not handed out again");
	record(h, 503, &tok[2], PROT_OUTCOME_SUCCESS);
	cr_assert_eq(state_at(h, 503), PROT_BREAKER_CLOSED);
}

Test(core, failed_probe_reopens_with_fresh_refresh)
{
	struct prot_shm_header *h = tripped(500, 2);
	prot_breaker_token a, b;
	cr_assert_eq(allow(h, 700, &a), 0);
	cr_assert_eq(allow(h, 700, &b), 0);
	record(h, 710, &a, PROT_OUTCOME_SUCCESS);
	record(h, 720, &b, PROT_OUTCOME_FAILURE);
	cr_assert_eq(state_at(h, 720), PROT_BREAKER_OPEN);
	cr_assert_eq(call(h, 1219, PROT_OUTCOME_SUCCESS), 0);
	cr_assert_eq(call(h, 1220, PROT_OUTCOME_SUCCESS), 1);
	cr_assert_eq(state_at(h, 1220), PROT_BREAKER_HALF_OPEN);
	cr_assert_eq(call(h, 1221, PROT_OUTCOME_SUCCESS), 1);
	cr_assert_eq(state_at(h, 1221), PROT_BREAKER_CLOSED);
}

Test(core, unanswered_probe_is_given_back_after_timeout)
{
	struct prot_shm_header *h = tripped(500, 1); /* probe_timeout defaults to refresh */
	prot_breaker_token lost, t;
	cr_assert_eq(allow(h, 500, &lost), 0);
	cr_assert_eq(allow(h, 999, &t), -PROT_EBLOWN);
	cr_assert_eq(allow(h, 1000, &t), 0, "a new round after the probe timeout");
	/* the old round's permit is gone: its verdict is stale and records nothing */
	cr_assert_eq(breaker_record_idx(NULL, h, &lost, PROT_OUTCOME_FAILURE, 0, at(1001)), -PROT_ESTALE);
	cr_assert_eq(state_at(h, 1001), PROT_BREAKER_HALF_OPEN);
	record(h, 1002, &t, PROT_OUTCOME_SUCCESS);
	cr_assert_eq(state_at(h, 1002), PROT_BREAKER_CLOSED);
	cr_assert_eq(atomic_load(&slot(h, 0)->probes_given_back), 1);
}

Test(core, cancelled_probe_is_given_back_at_once)
{
	struct prot_shm_header *h = tripped(500, 1);
	prot_breaker_token p, t;
	cr_assert_eq(allow(h, 500, &p), 0);
	cr_assert_eq(allow(h, 501, &t), -PROT_EBLOWN);
	record(h, 502, &p, PROT_OUTCOME_CANCEL);
	/* twice: the permit is no longer this token's: stale, still one probe back, not two */
	cr_assert_eq(breaker_record_idx(NULL, h, &p, PROT_OUTCOME_CANCEL, 0, at(502)), -PROT_ESTALE);
	cr_assert_eq(allow(h, 503, &t), 0);
	cr_assert_eq(allow(h, 503, &p), -PROT_EBLOWN);
	record(h, 504, &t, PROT_OUTCOME_SUCCESS);
	cr_assert_eq(state_at(h, 504), PROT_BREAKER_CLOSED);
	struct prot_breaker_status st;
	cr_assert_eq(breaker_status_idx(h, 0, at(504), &st), 0);
	cr_assert_eq(st.successes, 1);
	cr_assert_eq(st.failures, 2, "the two failures that tripped it; a cancel counts nothing");
}

Test(core, tick_gives_back_probes_of_an_idle_breaker)
{
	struct prot_shm_header *h = tripped(500, 1);
	prot_breaker_token lost, t;
	cr_assert_eq(allow(h, 500, &lost), 0);
	breaker_tick(ANON_VIEW(h), at(999));
	cr_assert_eq(allow(h, 999, &t), -PROT_EBLOWN);
	breaker_tick(ANON_VIEW(h), at(1000));
	cr_assert_eq(atomic_load(&slot(h, 0)->probes_given_back), 1);
	cr_assert_eq(allow(h, 1000, &t), 0, "the tick handed the probe back");
	cr_assert_eq(allow(h, 1000, &t), -PROT_EBLOWN);
}

Test(core, tick_half_opens_after_refresh)
{
	struct prot_shm_header *h = tripped(500, 2);
	breaker_tick(ANON_VIEW(h), at(499));
	cr_assert_eq(state_at(h, 499), PROT_BREAKER_OPEN);
	breaker_tick(ANON_VIEW(h), at(500));
	cr_assert_eq(state_at(h, 500), PROT_BREAKER_HALF_OPEN);
	breaker_tick(ANON_VIEW(h), at(5000)); /* no probe taken: nothing to give back, nothing times out */
	prot_breaker_token a, b, c;
	cr_assert_eq(allow(h, 5000, &a), 0);
	cr_assert_eq(allow(h, 5400, &b), 0);
	/* the timeout runs from the latest probe handed out, not from the half-open */
	cr_assert_eq(allow(h, 5899, &c), -PROT_EBLOWN);
	breaker_tick(ANON_VIEW(h), at(5899));
	cr_assert_eq(atomic_load(&slot(h, 0)->probes_given_back), 0);
	record(h, 5899, &a, PROT_OUTCOME_SUCCESS);
	record(h, 5899, &b, PROT_OUTCOME_SUCCESS);
	cr_assert_eq(state_at(h, 5899), PROT_BREAKER_CLOSED);
}

Test(core, winner_that_never_published_since_does_not_stick)
{
	struct prot_shm_header *h = core_std(1, 1000, 500, 1);
	/* as if a process won CLOSED(0) -> OPEN(1) and died before storing `since` */
	atomic_store(&slot(h, 0)->word, (uint64_t)PROT_BREAKER_OPEN << 62 | 1ull << 32);
	prot_breaker_token t;
	cr_assert_eq(allow(h, 100, &t), -PROT_EBLOWN); /* publishes (1, 100) */
	cr_assert_eq(allow(h, 599, &t), -PROT_EBLOWN);
	cr_assert_eq(allow(h, 600, &t), 0);
}

Test(core, reset_and_blow)
{
	struct prot_shm_header *h = tripped(500, 1);
	cr_assert_eq(breaker_force_idx(NULL, h, 0, BREAKER_RESET), 0);
	cr_assert_eq(state_at(h, 1), PROT_BREAKER_CLOSED);
	struct prot_breaker_status st;
	cr_assert_eq(breaker_status_idx(h, 0, at(1), &st), 0);
	cr_assert_eq(st.failures_in_window, 0, "reset clears the history");
	cr_assert_eq(call(h, 1, PROT_OUTCOME_FAILURE), 1);
	cr_assert_eq(state_at(h, 1), PROT_BREAKER_CLOSED);

	/* disable (fuse's circuit_disable) dominates failures, heals and resets until enable */
	cr_assert_eq(breaker_force_idx(NULL, h, 0, BREAKER_BLOW), 0);
	cr_assert_eq(state_at(h, 1), PROT_BREAKER_BLOWN);
	cr_assert_eq(call(h, 1000000, PROT_OUTCOME_SUCCESS), 0, "disabled stays open past any refresh");
	breaker_tick(ANON_VIEW(h), at(1000000));
	cr_assert_eq(state_at(h, 1000000), PROT_BREAKER_BLOWN);
	cr_assert_eq(breaker_force_idx(NULL, h, 0, BREAKER_RESET), -PROT_EDISABLED, "a reset is refused");
	cr_assert_eq(state_at(h, 1000000), PROT_BREAKER_BLOWN);
	cr_assert_eq(breaker_force_idx(NULL, h, 0, BREAKER_BLOW), 0, "blowing twice changes nothing");
	cr_assert_eq(breaker_force_idx(NULL, h, 0, BREAKER_ENABLE), 0);
	cr_assert_eq(state_at(h, 1000000), PROT_BREAKER_CLOSED);
	cr_assert_eq(breaker_status_idx(h, 0, at(1000000), &st), 0);
	cr_assert_eq(st.failures_in_window, 0, "enable starts from an empty history");
	cr_assert_eq(call(h, 1000000, PROT_OUTCOME_SUCCESS), 1);
	cr_assert_eq(breaker_force_idx(NULL, h, 0, BREAKER_ENABLE), 0, "enabling an enabled one: no-op");
}

/* fuse's heal: after refresh, closed with an empty melt history, all traffic admitted. */
Test(core, heal_full_closes_with_an_empty_history)
{
	struct prot_shm_header *h = core_seg();
	struct prot_breaker_cfg c = {.strategy = PROT_BREAKER_STANDARD, .tolerance = 1, .window_ms = 1000,
	                             .refresh_ms = 500, .half_open_probes = 1, .heal = PROT_HEAL_FULL};
	core_breaker(h, 0, "b", &c);
	T0 = prot_now_ns();
	call(h, 0, PROT_OUTCOME_FAILURE);
	call(h, 0, PROT_OUTCOME_FAILURE);
	cr_assert_eq(state_at(h, 0), PROT_BREAKER_OPEN);
	cr_assert_eq(call(h, 499, PROT_OUTCOME_SUCCESS), 0);
	cr_assert_eq(state_at(h, 500), PROT_BREAKER_CLOSED, "status tells the healed state before anyone calls");
	for (int i = 0; i < 5; i++) /* everything is admitted, not one probe */
		cr_assert_eq(call(h, 500, PROT_OUTCOME_SUCCESS), 1);
	cr_assert_eq(call(h, 501, PROT_OUTCOME_FAILURE), 1);
	cr_assert_eq(state_at(h, 501), PROT_BREAKER_CLOSED, "the melts before the heal are forgotten");
	cr_assert_eq(call(h, 502, PROT_OUTCOME_FAILURE), 1);
	cr_assert_eq(state_at(h, 502), PROT_BREAKER_OPEN, "two melts of the new period trip it");
	/* protd's tick heals a breaker nobody calls */
	breaker_tick(ANON_VIEW(h), at(1002));
	cr_assert_eq(atomic_load(&slot(h, 0)->word) >> 62, PROT_BREAKER_CLOSED);
}

/* A failure counts while its age is strictly less than the window (fuse: melts younger than the
 * period). */
Test(core, a_failure_exactly_window_old_no_longer_counts)
{
	struct prot_shm_header *h = core_std(1, 100, 1000, 1);
	T0 = prot_now_ns();
	call(h, 0, PROT_OUTCOME_FAILURE);
	call(h, 100, PROT_OUTCOME_FAILURE);
	cr_assert_eq(state_at(h, 100), PROT_BREAKER_CLOSED, "the first is exactly 100 ms old: gone");
	call(h, 199, PROT_OUTCOME_FAILURE);
	cr_assert_eq(state_at(h, 199), PROT_BREAKER_OPEN, "99 ms apart: both count");
}

/* ask has no side effect: no probe taken, nothing counted. */
Test(core, ask_answers_without_a_side_effect)
{
	struct prot_shm_header *h = tripped(500, 1);
	struct prot_breaker_status before, after;
	cr_assert_eq(breaker_status_idx(h, 0, at(1), &before), 0);
	cr_assert_eq(breaker_ask_idx(h, 0, at(1)), -PROT_EBLOWN);
	cr_assert_eq(breaker_ask_idx(h, 0, at(500)), 0, "past refresh: a probe would be admitted");
	cr_assert_eq(breaker_ask_idx(h, 0, at(500)), 0, "and still is: asking took nothing");
	cr_assert_eq(breaker_status_idx(h, 0, at(500), &after), 0);
	cr_assert_eq(after.rejections, before.rejections);
	cr_assert_eq(after.admitted, before.admitted);
	prot_breaker_token t;
	cr_assert_eq(allow(h, 500, &t), 0);
	cr_assert_eq(breaker_ask_idx(h, 0, at(500)), -PROT_EBLOWN, "the one probe is out");
	record(h, 501, &t, PROT_OUTCOME_SUCCESS);
	cr_assert_eq(breaker_ask_idx(h, 0, at(501)), 0);
}

/* Admitted calls are counted, with or without a verdict. */
Test(core, admitted_counts_calls_without_a_verdict_too)
{
	struct prot_shm_header *h = core_std(3, 1000, 500, 1);
	T0 = prot_now_ns();
	prot_breaker_token t[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(allow(h, 0, &t[i]), 0);
	record(h, 1, &t[0], PROT_OUTCOME_SUCCESS);
	record(h, 1, &t[1], PROT_OUTCOME_FAILURE);
	struct prot_breaker_status st;
	cr_assert_eq(breaker_status_idx(h, 0, at(1), &st), 0);
	cr_assert_eq(st.admitted, 3u);
	cr_assert_eq(st.successes + st.failures, 2u, "one still runs");
	cr_assert_eq(st.calls, 3u);
}

/* Events carry the wall-clock time of their writing. */
Test(core, events_carry_a_wall_clock_time)
{
	struct timespec a, b;
	clock_gettime(CLOCK_REALTIME, &a);
	struct prot_shm_header *h = tripped(500, 1);
	clock_gettime(CLOCK_REALTIME, &b);
	uint64_t cursor = 0, lo = (uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec;
	uint64_t hi = (uint64_t)b.tv_sec * 1000000000u + (uint64_t)b.tv_nsec;
	struct prot_event ev;
	cr_assert_eq(prot_event_read(h, &cursor, &ev, NULL), 1);
	cr_assert_eq(ev.type, EV_BREAKER_OPEN);
	cr_assert(ev.wall_ns >= lo && ev.wall_ns <= hi, "wall time %llu not in [%llu, %llu]",
	          (unsigned long long)ev.wall_ns, (unsigned long long)lo, (unsigned long long)hi);
}

Test(core, rate_strategy_with_min_calls)
{
	struct prot_shm_header *h = core_seg();
	struct prot_breaker_cfg c = {.strategy = PROT_BREAKER_RATE, .refresh_ms = 500, .rate_threshold_pct = 50,
	                             .rate_window_calls = 10, .rate_min_calls = 5};
	core_breaker(h, 0, "r", &c);
	T0 = prot_now_ns();
	for (int i = 0; i < 4; i++) /* 100 % failures, but fewer than 5 calls */
		call(h, 0, PROT_OUTCOME_FAILURE);
	cr_assert_eq(state_at(h, 0), PROT_BREAKER_CLOSED);
	call(h, 0, PROT_OUTCOME_SUCCESS); /* 5 calls, 80 % */
	cr_assert_eq(state_at(h, 0), PROT_BREAKER_OPEN);

	cr_assert_eq(breaker_force_idx(NULL, h, 0, BREAKER_RESET), 0);
	for (int i = 0; i < 6; i++)
		call(h, 1, PROT_OUTCOME_SUCCESS);
	for (int i = 0; i < 4; i++)
		call(h, 1, PROT_OUTCOME_FAILURE); /* 4 of 10: 40 % */
	cr_assert_eq(state_at(h, 1), PROT_BREAKER_CLOSED);
	call(h, 1, PROT_OUTCOME_FAILURE); /* the oldest success drops out: 5 of 10 */
	cr_assert_eq(state_at(h, 1), PROT_BREAKER_OPEN);
}

Test(core, slow_calls_count_as_failures)
{
	struct prot_shm_header *h = core_seg();
	struct prot_breaker_cfg c = {.tolerance = 1, .window_ms = 1000, .refresh_ms = 500, .slow_call_ms = 50};
	core_breaker(h, 0, "s", &c);
	T0 = prot_now_ns();
	prot_breaker_token t;
	cr_assert_eq(allow(h, 0, &t), 0);
	cr_assert_eq(breaker_record_idx(NULL, h, &t, PROT_OUTCOME_SUCCESS, 50 * MS, at(0)), 0);
	cr_assert_eq(allow(h, 0, &t), 0);
	cr_assert_eq(breaker_record_idx(NULL, h, &t, PROT_OUTCOME_SUCCESS, 51 * MS, at(0)), 0);
	cr_assert_eq(state_at(h, 0), PROT_BREAKER_CLOSED);
	cr_assert_eq(allow(h, 10, &t), 0); /* duration unknown: measured from the token */
	cr_assert_eq(breaker_record_idx(NULL, h, &t, PROT_OUTCOME_SUCCESS, 0, at(80)), 0);
	cr_assert_eq(state_at(h, 80), PROT_BREAKER_OPEN);
}

Test(core, stale_tokens)
{
	struct prot_shm_header *h = core_std(3, 1000, 500, 1);
	prot_breaker_token t;
	cr_assert_eq(allow(h, 0, &t), 0);
	/* protd recycles the slot: a new generation */
	atomic_store(&slot(h, 0)->state, SLOT_LIVE | 2u << 8);
	cr_assert_eq(breaker_record_idx(NULL, h, &t, PROT_OUTCOME_FAILURE, 0, at(0)), -PROT_ESTALE);
	prot_breaker_token zero = {{0}};
	cr_assert_eq(breaker_record_idx(NULL, h, &zero, PROT_OUTCOME_FAILURE, 0, at(0)), -EINVAL);
}

/* ---- races between processes on the hand-made segment ------------------------------------------ */

struct race {
	struct prot_shm_header *h;
	_Atomic int go;
	_Atomic int admitted;
	_Atomic int ready;
};

static void race_start(struct race *r)
{
	atomic_fetch_add(&r->ready, 1);
	while (!atomic_load(&r->go))
		__builtin_ia32_pause();
}

static int melt_once(void *arg, int i)
{
	struct race *r = arg;
	prot_breaker_token t;
	(void)i;
	if (breaker_allow_idx(NULL, r->h, 0, at(0), &t) != 0)
		return 1;
	race_start(r);
	return breaker_record_idx(NULL, r->h, &t, PROT_OUTCOME_FAILURE, 0, at(1)) != 0;
}

static int probe_once(void *arg, int i)
{
	struct race *r = arg;
	prot_breaker_token t;
	(void)i;
	race_start(r);
	if (breaker_allow_idx(NULL, r->h, 0, at(500), &t) == 0)
		atomic_fetch_add(&r->admitted, 1);
	return 0;
}

/* Start n workers that wait at race_start, release them together, wait for all. */
static void race(struct race *r, int n, int (*fn)(void *, int))
{
	pid_t pids[16];
	for (int i = 0; i < n; i++)
		pids[i] = th_fork(fn, r, i);
	uint64_t end = th_now_ms() + 5000;
	while (atomic_load(&r->ready) < n && th_now_ms() < end)
		usleep(100);
	atomic_store(&r->go, 1);
	for (int i = 0; i < n; i++) {
		int st;
		cr_assert_eq(th_wait(pids[i], 5000, &st), 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

Test(core, concurrent_failures_from_4_processes)
{
	for (int tol = 3; tol <= 4; tol++) {
		struct race *r = th_shared(sizeof *r);
		r->h = core_std((uint64_t)tol, 1000, 500, 1);
		race(r, 4, melt_once);
		cr_assert_eq(state_at(r->h, 1), tol == 3 ? PROT_BREAKER_OPEN : PROT_BREAKER_CLOSED,
		             "tolerance %d, 4 failures", tol);
	}
}

Test(core, eight_processes_race_for_probes)
{
	for (uint64_t n = 1; n <= 3; n++) {
		struct race *r = th_shared(sizeof *r);
		r->h = tripped(500, n);
		race(r, 8, probe_once);
		cr_assert_eq(atomic_load(&r->admitted), (int)n);
	}
}

/* ---- threads of one process sharing a breaker (run under TSan too) ------------------------------ */

struct thr {
	struct prot_shm_header *h;
	unsigned seed;
	long admitted, rejected;
};

static int fn_flaky(void *arg)
{
	struct thr *t = arg;
	t->seed = t->seed * 1103515245u + 12345u;
	return (t->seed >> 16) % 3 == 0 ? -1 : 0;
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	for (int i = 0; i < 20000; i++) {
		int r = breaker_execute_idx(NULL, t->h, 0, fn_flaky, t, NULL);
		if (r == -PROT_EBLOWN)
			t->rejected++;
		else
			t->admitted++;
		if (i % 1000 == 0)
			breaker_tick(ANON_VIEW(t->h), 0);
	}
	return NULL;
}

Test(core, threads_share_a_breaker)
{
	struct prot_shm_header *h = core_seg();
	struct prot_breaker_cfg c = {.tolerance = 2, .window_ms = 1000, .refresh_ms = 1,
	                             .half_open_probes = 2, .probe_timeout_ms = 1};
	core_breaker(h, 0, "t", &c);
	pthread_t th[8];
	struct thr t[8];
	for (int i = 0; i < 8; i++) {
		t[i] = (struct thr){.h = h, .seed = (unsigned)i + 1};
		cr_assert_eq(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
	}
	long admitted = 0, rejected = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		admitted += t[i].admitted;
		rejected += t[i].rejected;
	}
	struct prot_breaker_status st;
	cr_assert_eq(breaker_status_idx(h, 0, 0, &st), 0);
	cr_assert_eq(st.successes + st.failures, (uint64_t)admitted);
	cr_assert_eq(st.rejections, (uint64_t)rejected);
	cr_assert_gt(rejected, 0, "it never tripped");
	cr_assert_leq(st.state, PROT_BREAKER_BLOWN);
}

/* ---- with a real protd ---------------------------------------------------------------------------- */

struct env {
	pid_t protd;
	const char *seg, *ini;
	prot_t *p;
	/* shared with forked children */
	_Atomic int fn_calls;
	_Atomic int admitted;
	_Atomic int ready, go;
	_Atomic int holding; /* set by the child that holds a probe */
	_Atomic int tried, release; /* children that asked for a probe; parent lets them go */
};

static const char ini_head[] = "[segment]\nmax_keys = 4\nmax_breakers = 8\nmax_pools = 1\n"
                               "pool_max_slots = 4\npool_max_waiters = 4\nrate_entities = 64\n"
                               "events = 256\n\n[daemon]\ntick = 10ms\n\n";

/* protd with the given [breaker] sections, and a handle on its segment. */
static struct env *start(const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	e->protd = th_serve_head("brk", ini_head, sections, &e->seg, &e->ini, &e->p);
	return e;
}

static void stop(struct env *e)
{
	th_unserve(e->p, e->protd);
}

static int fn_fail(void *arg)
{
	struct env *e = arg;
	atomic_fetch_add(&e->fn_calls, 1);
	return -5;
}

static int fn_ok(void *arg)
{
	struct env *e = arg;
	atomic_fetch_add(&e->fn_calls, 1);
	return 7;
}

static uint32_t bstate(struct env *e, const char *name)
{
	struct prot_breaker_status st;
	int r = prot_breaker_status(e->p, name, &st);
	cr_assert_eq(r, 0, "status %s: %s", name, prot_strerror(r));
	return st.state;
}

static struct prot_breaker_status bstatus(struct env *e, const char *name)
{
	struct prot_breaker_status st;
	int r = prot_breaker_status(e->p, name, &st);
	cr_assert_eq(r, 0, "status %s: %s", name, prot_strerror(r));
	return st;
}

/* A child: one failing call through breaker "b" (the parent's handle, inherited by fork). */
static int child_fail(void *arg, int i)
{
	struct env *e = arg;
	int res = 0;
	(void)i;
	return prot_breaker_execute(e->p, "b", fn_fail, e, &res) == -PROT_EFAILED && res == -5 ? 0 : 1;
}

Test(breaker, trips_at_tolerance_plus_one_from_4_processes)
{
	struct env *e = start("[breaker b]\ntolerance = 3\nwindow = 10s\nrefresh = 10s\n");
	for (int i = 0; i < 3; i++) {
		th_fork_n(1, child_fail, e, 5000); /* one process each */
		cr_assert_eq(bstate(e, "b"), PROT_BREAKER_CLOSED, "tripped after %d failures", i + 1);
	}
	th_fork_n(1, child_fail, e, 5000);
	struct prot_breaker_status st = bstatus(e, "b");
	cr_assert_eq(st.state, PROT_BREAKER_OPEN);
	cr_assert_eq(st.failures, 4);
	cr_assert_eq(st.failures_in_window, 4);
	stop(e);
}

Test(breaker, concurrent_failures_from_4_processes_trip)
{
	struct env *e = start("[breaker b]\ntolerance = 3\nwindow = 10s\nrefresh = 10s\n");
	th_fork_n(4, child_fail, e, 5000);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_OPEN);
	stop(e);
}

Test(breaker, failures_spread_wider_than_window_do_not_trip)
{
	/* any 3 consecutive failures span >= 400 ms > window; delays only spread them more */
	struct env *e = start("[breaker b]\ntolerance = 2\nwindow = 300ms\nrefresh = 10s\n");
	for (int i = 0; i < 6; i++) {
		if (i)
			usleep(200 * 1000);
		th_fork_n(1, child_fail, e, 5000);
		cr_assert_eq(bstate(e, "b"), PROT_BREAKER_CLOSED, "tripped at failure %d", i + 1);
	}
	stop(e);
}

/* Trip breaker NAME with tolerance+1 failures from this process. */
static void trip(struct env *e, const char *name)
{
	struct prot_breaker_status st = bstatus(e, name);
	for (uint32_t i = 0; i <= st.opts.tolerance; i++)
		cr_assert_eq(prot_breaker_execute(e->p, name, fn_fail, e, NULL), -PROT_EFAILED);
	cr_assert_eq(bstate(e, name), PROT_BREAKER_OPEN);
}

static bool probe_due(void *arg)
{
	struct env *e = arg;
	struct prot_breaker_status st = bstatus(e, "b");
	/* protd's tick half-opens it once the period is over; a call may be first */
	return st.state == PROT_BREAKER_HALF_OPEN || (st.state == PROT_BREAKER_OPEN && st.next_probe_ms == 0);
}

Test(breaker, open_rejects_without_calling_fn_and_melts_do_not_extend)
{
	struct env *e = start("[breaker b]\ntolerance = 1\nwindow = 10s\nrefresh = 1500ms\n");
	prot_breaker_token late[3];
	for (int i = 0; i < 3; i++) /* admitted while closed, reported while open */
		cr_assert_eq(prot_breaker_allow(e->p, "b", &late[i]), 0);
	trip(e, "b");
	uint64_t t_trip = th_now_ms();
	int before = atomic_load(&e->fn_calls);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, NULL), -PROT_EBLOWN);
	cr_assert_eq(atomic_load(&e->fn_calls), before, "fn ran while open");
	usleep(300 * 1000);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(prot_breaker_record(e->p, &late[i], PROT_OUTCOME_FAILURE, 0), 0);
	uint64_t elapsed = th_now_ms() - t_trip; /* before the status: its age is at least this */
	struct prot_breaker_status st = bstatus(e, "b");
	cr_assert_eq(st.state, PROT_BREAKER_OPEN);
	cr_assert(st.next_probe_ms <= 1500 - (elapsed < 1500 ? elapsed : 1500) + 1,
	          "open period moved: %llu ms left after %llu ms", (unsigned long long)st.next_probe_ms,
	          (unsigned long long)elapsed);
	cr_assert_geq(st.rejections, 100);
	cr_assert(th_until(probe_due, e, 3000));
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, NULL), 0);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_CLOSED);
	stop(e);
}

/* A child racing for a probe: takes it (if it can) and holds it without a verdict. */
static int child_probe(void *arg, int i)
{
	struct env *e = arg;
	prot_breaker_token t;
	(void)i;
	atomic_fetch_add(&e->ready, 1);
	uint64_t end = th_now_ms() + 5000;
	while (!atomic_load(&e->go))
		if (th_now_ms() > end)
			return 1;
	int r = prot_breaker_allow(e->p, "b", &t);
	if (r == 0)
		atomic_fetch_add(&e->admitted, 1);
	atomic_fetch_add(&e->tried, 1);
	/* hold the permit (alive) until the parent has looked: a dead holder's permit comes back */
	end = th_now_ms() + 5000;
	while (!atomic_load(&e->release) && th_now_ms() < end)
		usleep(1000);
	return r == 0 || r == -PROT_EBLOWN ? 0 : 1;
}

static bool all_tried(void *arg)
{
	struct env *e = arg;
	return atomic_load(&e->tried) == 8;
}

static bool all_ready(void *arg)
{
	struct env *e = arg;
	return atomic_load(&e->ready) == 8;
}

Test(breaker, exactly_n_probes_across_8_processes)
{
	struct env *e = start("[breaker b]\ntolerance = 0\nwindow = 10s\nrefresh = 200ms\n"
	                      "half_open_probes = 3\nprobe_timeout = 30s\n");
	trip(e, "b");
	cr_assert(th_until(probe_due, e, 2000));
	pid_t pids[8];
	for (int i = 0; i < 8; i++)
		pids[i] = th_fork(child_probe, e, i);
	cr_assert(th_until(all_ready, e, 5000));
	atomic_store(&e->go, 1);
	cr_assert(th_until(all_tried, e, 5000));
	cr_assert_eq(atomic_load(&e->admitted), 3);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_HALF_OPEN);
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, NULL), -PROT_EBLOWN,
	             "the three permits are held by live processes");
	atomic_store(&e->release, 1);
	for (int i = 0; i < 8; i++) {
		int st;
		cr_assert_eq(th_wait(pids[i], 5000, &st), 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	stop(e);
}

Test(breaker, successful_probe_closes_failed_probe_reopens)
{
	struct env *e = start("[breaker b]\ntolerance = 0\nwindow = 10s\nrefresh = 1s\n");
	trip(e, "b");
	cr_assert(th_until(probe_due, e, 3000));
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_fail, e, NULL), -PROT_EFAILED);
	struct prot_breaker_status st = bstatus(e, "b");
	cr_assert_eq(st.state, PROT_BREAKER_OPEN, "a failed probe re-opens");
	cr_assert_gt(st.next_probe_ms, 500, "with a fresh refresh period");
	cr_assert(th_until(probe_due, e, 3000));
	int res = 0;
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, &res), 0);
	cr_assert_eq(res, 7);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_CLOSED);
	stop(e);
}

static int child_hold_probe(void *arg, int i)
{
	struct env *e = arg;
	prot_breaker_token t;
	(void)i;
	if (prot_breaker_allow(e->p, "b", &t) != 0)
		return 1;
	atomic_store(&e->holding, 1);
	for (;;)
		pause(); /* until SIGKILL */
}

static bool holding(void *arg)
{
	return atomic_load(&((struct env *)arg)->holding) != 0;
}

static bool probe_admitted(void *arg)
{
	struct env *e = arg;
	return prot_breaker_execute(e->p, "b", fn_ok, e, NULL) == 0;
}

static bool given_back(void *arg)
{
	return bstatus(arg, "b").probes_given_back > 0;
}

static void kill9_probe_holder(struct env *e)
{
	trip(e, "b");
	cr_assert(th_until(probe_due, e, 2000));
	pid_t child = th_fork(child_hold_probe, e, 0);
	cr_assert(th_until(holding, e, 5000));
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_HALF_OPEN);
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, NULL), -PROT_EBLOWN);
	kill(child, SIGKILL);
	cr_assert_eq(th_wait(child, 5000, NULL), 0);
}

Test(breaker, kill9_of_probe_holder_recovers_within_probe_timeout)
{
	struct env *e = start("[breaker b]\ntolerance = 0\nwindow = 10s\nrefresh = 100ms\n"
	                      "probe_timeout = 1s\n");
	kill9_probe_holder(e);
	cr_assert(th_until(probe_admitted, e, 3000), "still stuck half-open");
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_CLOSED);
	stop(e);
}

Test(breaker, protd_tick_gives_back_an_idle_probe)
{
	struct env *e = start("[breaker b]\ntolerance = 0\nwindow = 10s\nrefresh = 100ms\n"
	                      "probe_timeout = 1s\n");
	kill9_probe_holder(e);
	cr_assert(th_until(given_back, e, 3000), "protd did not hand the probe back");
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_HALF_OPEN);
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, NULL), 0);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_CLOSED);
	stop(e);
}

Test(breaker, reset_and_blow)
{
	struct env *e = start("[breaker b]\ntolerance = 1\nwindow = 10s\nrefresh = 100ms\n");
	trip(e, "b");
	cr_assert_eq(prot_breaker_reset(e->p, "b"), 0);
	struct prot_breaker_status st = bstatus(e, "b");
	cr_assert_eq(st.state, PROT_BREAKER_CLOSED);
	cr_assert_eq(st.failures_in_window, 0);
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_fail, e, NULL), -PROT_EFAILED);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_CLOSED, "reset cleared the history");

	cr_assert_eq(prot_breaker_blow(e->p, "b"), 0);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_BLOWN);
	usleep(300 * 1000); /* three refresh periods: a blown breaker does not half-open */
	int before = atomic_load(&e->fn_calls);
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, NULL), -PROT_EBLOWN);
	cr_assert_eq(atomic_load(&e->fn_calls), before);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_BLOWN);
	cr_assert_eq(prot_breaker_reset(e->p, "b"), -PROT_EDISABLED, "disabled: a reset is refused");
	cr_assert_eq(prot_breaker_enable(e->p, "b"), 0);
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, NULL), 0);
	cr_assert_eq(prot_breaker_reset(e->p, "nope"), -PROT_ENOBREAKER);
	cr_assert_eq(prot_breaker_enable(e->p, "nope"), -PROT_ENOBREAKER);
	stop(e);
}

/* The closed path of execute (a standard breaker without slow_call_ms) counts each call once,
 * hands fn's value back, and still melts: the (tolerance+1)-th failure trips. */
Test(breaker, closed_execute_counts_each_call_once_and_still_trips)
{
	struct env *e = start("[breaker b]\ntolerance = 2\nwindow = 10s\nrefresh = 1h\n");
	for (int i = 0; i < 5; i++) {
		int res = 0;
		cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, &res), 0);
		cr_assert_eq(res, 7);
	}
	for (int i = 0; i < 2; i++) {
		int res = 0;
		cr_assert_eq(prot_breaker_execute(e->p, "b", fn_fail, e, &res), -PROT_EFAILED);
		cr_assert_eq(res, -5);
	}
	struct prot_breaker_status st = bstatus(e, "b");
	cr_assert_eq(st.state, PROT_BREAKER_CLOSED, "two failures: tolerance 2 holds");
	cr_assert_eq(st.admitted, 7u);
	cr_assert_eq(st.successes, 5u);
	cr_assert_eq(st.failures, 2u);
	cr_assert_eq(st.calls, 7u);
	cr_assert_eq(st.failures_in_window, 2u);
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_fail, e, NULL), -PROT_EFAILED);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_OPEN, "the third failure trips");
	int before = atomic_load(&e->fn_calls);
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, NULL), -PROT_EBLOWN);
	cr_assert_eq(atomic_load(&e->fn_calls), before, "open: fn is not called");
	st = bstatus(e, "b");
	cr_assert_eq(st.admitted, 8u);
	cr_assert_eq(st.rejections, 1u);
	stop(e);
}

/* prot_breaker_allow / prot_breaker_record on a closed breaker take the closed paths: each call is
 * counted once, a success moves nothing, and the (tolerance+1)-th failure still trips. */
Test(breaker, allow_and_record_count_once_and_still_trip)
{
	struct env *e = start("[breaker b]\ntolerance = 1\nwindow = 10s\nrefresh = 1h\n");
	prot_breaker_token t;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(prot_breaker_allow(e->p, "b", &t), 0);
		cr_assert_eq(prot_breaker_record(e->p, &t, PROT_OUTCOME_SUCCESS, 0), 0);
	}
	cr_assert_eq(prot_breaker_allow(e->p, "b", &t), 0);
	cr_assert_eq(prot_breaker_record(e->p, &t, PROT_OUTCOME_FAILURE, 0), 0);
	struct prot_breaker_status st = bstatus(e, "b");
	cr_assert_eq(st.state, PROT_BREAKER_CLOSED);
	cr_assert_eq(st.admitted, 4u);
	cr_assert_eq(st.successes, 3u);
	cr_assert_eq(st.failures, 1u);
	cr_assert_eq(prot_breaker_allow(e->p, "b", &t), 0);
	cr_assert_eq(prot_breaker_record(e->p, &t, PROT_OUTCOME_FAILURE, 0), 0);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_OPEN, "the second failure trips");
	cr_assert_eq(prot_breaker_allow(e->p, "b", &t), -PROT_EBLOWN);
	st = bstatus(e, "b");
	cr_assert_eq(st.admitted, 5u);
	cr_assert_eq(st.successes, 3u);
	cr_assert_eq(st.failures, 2u);
	stop(e);
}

/* The rejections that need no more than refresh_ms (an OPEN breaker well before the end of its
 * period, a disabled one): counted, fn not called, through execute and allow alike; and the
 * period still ends on time (the precise clock decides near the end): a probe is let through. */
Test(breaker, fast_rejections_count_and_the_period_still_ends)
{
	struct env *e = start("[breaker b]\ntolerance = 0\nwindow = 10s\nrefresh = 300ms\n\n"
	                      "[breaker d]\ntolerance = 0\nwindow = 10s\nrefresh = 1h\n");
	trip(e, "b");
	struct prot_breaker_status st0 = bstatus(e, "b");
	int before = atomic_load(&e->fn_calls);
	prot_breaker_token t;
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, NULL), -PROT_EBLOWN);
		cr_assert_eq(prot_breaker_allow(e->p, "b", &t), -PROT_EBLOWN);
	}
	cr_assert_eq(atomic_load(&e->fn_calls), before, "open: fn is not called");
	struct prot_breaker_status st = bstatus(e, "b");
	cr_assert_eq(st.rejections, st0.rejections + 20);
	cr_assert_eq(st.admitted, st0.admitted);
	usleep(400 * 1000); /* past refresh */
	int res = 0;
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_ok, e, &res), 0, "the period ended: a probe");
	cr_assert_eq(res, 7);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_CLOSED, "the probe's success closed it");

	cr_assert_eq(prot_breaker_blow(e->p, "d"), 0);
	st0 = bstatus(e, "d");
	cr_assert_eq(prot_breaker_execute(e->p, "d", fn_ok, e, NULL), -PROT_EBLOWN);
	cr_assert_eq(prot_breaker_allow(e->p, "d", &t), -PROT_EBLOWN);
	st = bstatus(e, "d");
	cr_assert_eq(st.rejections, st0.rejections + 2);
	cr_assert_eq(st.state, PROT_BREAKER_BLOWN);
	stop(e);
}

Test(breaker, protctl_show_reset_blow)
{
	struct env *e = start("[breaker b]\ntolerance = 1\nwindow = 10s\nrefresh = 10s\n"
	                      "[breaker c]\nstrategy = rate\nrate_threshold = 50%\nrate_window_calls = 10\n"
	                      "refresh = 1s\n");
	struct th_out *o = th_shared(sizeof *o);
	cr_assert_eq(th_protctl(o, e->seg, "breaker", "blow", "b", NULL), 0, "%s", o->err);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_BLOWN);
	cr_assert_eq(th_protctl(o, e->seg, "breaker", "show", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "blown") && strstr(o->out, "closed"), "%s", o->out);
	cr_assert_eq(th_protctl(o, e->seg, "--json", "breaker", "show", "b", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "\"name\":\"b\"") && strstr(o->out, "\"state\":\"blown\""), "%s", o->out);
	cr_assert_eq(th_protctl(o, e->seg, "--json", "breaker", "show", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "\"breakers\":[") && strstr(o->out, "\"name\":\"c\"") &&
	          strstr(o->out, "\"strategy\":\"rate\""), "%s", o->out);
	cr_assert_neq(th_protctl(o, e->seg, "breaker", "reset", "b", NULL), 0, "reset of a disabled breaker");
	cr_assert(strstr(o->err, "disabled"), "%s", o->err);
	cr_assert_eq(th_protctl(o, e->seg, "breaker", "enable", "b", NULL), 0, "%s", o->err);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_CLOSED);
	cr_assert_eq(th_protctl(o, e->seg, "breaker", "reset", "b", NULL), 0, "%s", o->err);
	cr_assert_eq(th_protctl(o, e->seg, "breaker", "reset", "nope", NULL), 1);
	cr_assert_eq(th_protctl(o, e->seg, "breaker", "show", "nope", NULL), 1);
	cr_assert_eq(th_protctl(o, e->seg, "breaker", "reset", NULL), 2);
	stop(e);
}

/* Lifecycle: a removed breaker is gone; defined again it is fresh (closed, zero counters). */
Test(breaker, removed_then_defined_again_is_fresh)
{
	struct env *e = start("[breaker ini]\ntolerance = 0\nwindow = 10s\nrefresh = 1h\n");
	struct prot_breaker_opts o = { .strategy = PROT_BREAKER_STANDARD, .tolerance = 0, .window_ms = 10000,
	                               .refresh_ms = 3600000, .half_open_probes = 1 };
	cr_assert_eq(prot_breaker_create(e->p, "rt", &o), 0);
	cr_assert_eq(prot_breaker_create(e->p, "rt", &o), 0, "create is idempotent with the same options");
	trip(e, "rt");
	cr_assert_eq(prot_breaker_remove(e->p, "rt"), 0);
	struct prot_breaker_status st;
	cr_assert_eq(prot_breaker_status(e->p, "rt", &st), -PROT_ENOBREAKER, "a removed breaker is gone");
	cr_assert_eq(prot_breaker_remove(e->p, "rt"), -PROT_ENOBREAKER);
	cr_assert_eq(prot_breaker_create(e->p, "rt", &o), 0);
	st = bstatus(e, "rt");
	cr_assert_eq(st.state, PROT_BREAKER_CLOSED, "defined again: fresh");
	cr_assert_eq(st.failures + st.successes + st.rejections + st.admitted, 0u, "with zero counters");

	/* an INI breaker dropped by a reload and defined again is fresh too */
	trip(e, "ini");
	FILE *f = fopen(e->ini, "w");
	fprintf(f, "%s", ini_head);
	fclose(f);
	uint64_t g;
	struct prot_info info;
	prot_get_info(e->p, &info);
	g = info.config_generation;
	kill(e->protd, SIGHUP);
	for (int i = 0; i < 2000 && prot_get_info(e->p, &info) == 0 && info.config_generation == g; i++)
		usleep(1000);
	cr_assert_eq(prot_breaker_status(e->p, "ini", &st), -PROT_ENOBREAKER);
	f = fopen(e->ini, "w");
	fprintf(f, "%s[breaker ini]\ntolerance = 0\nwindow = 10s\nrefresh = 1h\n", ini_head);
	fclose(f);
	g = info.config_generation;
	kill(e->protd, SIGHUP);
	for (int i = 0; i < 2000 && prot_get_info(e->p, &info) == 0 && info.config_generation == g; i++)
		usleep(1000);
	st = bstatus(e, "ini");
	cr_assert_eq(st.state, PROT_BREAKER_CLOSED);
	cr_assert_eq(st.failures, 0u);
	struct th_out *out = th_shared(sizeof *out);
	cr_assert_eq(th_protctl(out, e->seg, "breaker", "remove", "rt", NULL), 0, "%s", out->err);
	cr_assert_neq(th_protctl(out, e->seg, "breaker", "remove", "rt", NULL), 0);
	stop(e);
}

/* fuse's own scenario, in heal = full mode: melt up to the tolerance, blow, heal after the
 * refresh (events), reset, remove and install afresh, disable dominating reset and heal, enable. */
Test(breaker, fuse_scenario_in_heal_full_mode, .timeout = 30)
{
	struct env *e = start("[breaker f]\ntolerance = 2\nwindow = 10s\nrefresh = 200ms\nheal = full\n");
	/* fuse: {standard, 2, 10000}: the third melt within the period blows it */
	for (int i = 0; i < 2; i++)
		cr_assert_eq(prot_breaker_execute(e->p, "f", fn_fail, e, NULL), -PROT_EFAILED);
	cr_assert_eq(bstate(e, "f"), PROT_BREAKER_CLOSED);
	cr_assert_eq(prot_breaker_ask(e->p, "f"), 0);
	cr_assert_eq(prot_breaker_execute(e->p, "f", fn_fail, e, NULL), -PROT_EFAILED);
	cr_assert_eq(bstate(e, "f"), PROT_BREAKER_OPEN);
	cr_assert_eq(prot_breaker_ask(e->p, "f"), -PROT_EBLOWN);
	cr_assert_eq(prot_breaker_execute(e->p, "f", fn_ok, e, NULL), -PROT_EBLOWN);
	/* heal: after the refresh, ok with an empty history (no probes) */
	usleep(250 * 1000);
	cr_assert_eq(prot_breaker_ask(e->p, "f"), 0);
	cr_assert_eq(bstate(e, "f"), PROT_BREAKER_CLOSED);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(prot_breaker_execute(e->p, "f", fn_fail, e, NULL), -PROT_EFAILED);
	cr_assert_eq(bstate(e, "f"), PROT_BREAKER_CLOSED, "the melts before the heal are gone");
	struct th_out *o = th_shared(sizeof *o);
	cr_assert_eq(th_protctl(o, e->seg, "events", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "breaker_open") && strstr(o->out, "breaker_closed"), "%s", o->out);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	char day[16];
	strftime(day, sizeof day, "%Y-%m-%dT", &tm);
	cr_assert(strstr(o->out, day) && strstr(o->out, "Z "), "events carry an ISO 8601 time: %s", o->out);
	/* reset */
	cr_assert_eq(prot_breaker_reset(e->p, "f"), 0);
	/* disable dominates melts, heals and resets until enable */
	cr_assert_eq(prot_breaker_blow(e->p, "f"), 0);
	usleep(250 * 1000);
	cr_assert_eq(bstate(e, "f"), PROT_BREAKER_BLOWN, "no heal while disabled");
	cr_assert_eq(prot_breaker_reset(e->p, "f"), -PROT_EDISABLED);
	cr_assert_eq(prot_breaker_execute(e->p, "f", fn_ok, e, NULL), -PROT_EBLOWN);
	cr_assert_eq(prot_breaker_enable(e->p, "f"), 0);
	cr_assert_eq(prot_breaker_execute(e->p, "f", fn_ok, e, NULL), 0);
	/* remove and install afresh */
	struct prot_breaker_opts fo = { .strategy = PROT_BREAKER_STANDARD, .tolerance = 2, .window_ms = 10000,
	                                .refresh_ms = 200, .heal = PROT_HEAL_FULL };
	cr_assert_eq(prot_breaker_create(e->p, "g", &fo), 0);
	cr_assert_eq(prot_breaker_execute(e->p, "g", fn_fail, e, NULL), -PROT_EFAILED);
	cr_assert_eq(prot_breaker_remove(e->p, "g"), 0);
	cr_assert_eq(prot_breaker_create(e->p, "g", &fo), 0);
	struct prot_breaker_status st = bstatus(e, "g");
	cr_assert_eq(st.failures, 0u);
	cr_assert_eq(st.opts.heal, (uint32_t)PROT_HEAL_FULL);
	stop(e);
}

Test(breaker, rate_strategy_with_min_calls)
{
	struct env *e = start("[breaker r]\nstrategy = rate\nrate_threshold = 50%\nrate_window_calls = 10\n"
	                      "rate_min_calls = 6\nrefresh = 10s\n");
	for (int i = 0; i < 5; i++) /* 100 % failures but fewer than 6 calls */
		cr_assert_eq(prot_breaker_execute(e->p, "r", fn_fail, e, NULL), -PROT_EFAILED);
	cr_assert_eq(bstate(e, "r"), PROT_BREAKER_CLOSED);
	cr_assert_eq(prot_breaker_execute(e->p, "r", fn_ok, e, NULL), 0); /* 6 calls, 83 % */
	cr_assert_eq(bstate(e, "r"), PROT_BREAKER_OPEN);

	cr_assert_eq(prot_breaker_reset(e->p, "r"), 0);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(prot_breaker_execute(e->p, "r", fn_ok, e, NULL), 0);
	for (int i = 0; i < 4; i++) /* 4 of 10 */
		prot_breaker_execute(e->p, "r", fn_fail, e, NULL);
	struct prot_breaker_status st = bstatus(e, "r");
	cr_assert_eq(st.state, PROT_BREAKER_CLOSED);
	cr_assert_eq(st.failures_in_window, 4);
	prot_breaker_execute(e->p, "r", fn_fail, e, NULL); /* 5 of the last 10: 50 % */
	cr_assert_eq(bstate(e, "r"), PROT_BREAKER_OPEN);
	stop(e);
}

static int fn_slow(void *arg)
{
	(void)arg;
	usleep(80 * 1000);
	return 0;
}

Test(breaker, slow_calls_count_as_failures)
{
	struct env *e = start("[breaker s]\ntolerance = 1\nwindow = 10s\nrefresh = 10s\nslow_call = 40ms\n");
	int res = -1;
	cr_assert_eq(prot_breaker_execute(e->p, "s", fn_slow, e, &res), 0, "fn itself succeeded");
	cr_assert_eq(res, 0);
	cr_assert_eq(bstate(e, "s"), PROT_BREAKER_CLOSED);
	prot_breaker_token t;
	cr_assert_eq(prot_breaker_allow(e->p, "s", &t), 0);
	cr_assert_eq(prot_breaker_record(e->p, &t, PROT_OUTCOME_SUCCESS, 10 * MS), 0); /* fast */
	cr_assert_eq(bstate(e, "s"), PROT_BREAKER_CLOSED);
	cr_assert_eq(prot_breaker_allow(e->p, "s", &t), 0);
	cr_assert_eq(prot_breaker_record(e->p, &t, PROT_OUTCOME_SUCCESS, 41 * MS), 0); /* slow */
	struct prot_breaker_status st = bstatus(e, "s");
	cr_assert_eq(st.state, PROT_BREAKER_OPEN);
	cr_assert_eq(st.failures, 2);
	cr_assert_eq(st.successes, 1);
	stop(e);
}

static int child_sees_runtime(void *arg, int i)
{
	struct env *e = arg;
	prot_t *p;
	struct prot_breaker_status st;
	(void)i;
	if (prot_open(e->seg, 0, &p) != 0)
		return 1;
	int ok = prot_breaker_status(p, "rt", &st) == 0 && st.opts.tolerance == 2 &&
	         st.opts.window_ms == 5000 && st.opts.refresh_ms == 700;
	for (int k = 0; ok && k < 3; k++)
		ok = prot_breaker_execute(p, "rt", fn_fail, e, NULL) == -PROT_EFAILED;
	prot_close(p);
	return ok ? 0 : 2;
}

Test(breaker, created_at_runtime_is_seen_by_another_process)
{
	struct env *e = start("[breaker b]\ntolerance = 1\nwindow = 10s\nrefresh = 10s\n");
	struct prot_breaker_opts o = {.tolerance = 2, .window_ms = 5000, .refresh_ms = 700};
	cr_assert_eq(prot_breaker_status(e->p, "rt", &(struct prot_breaker_status){0}), -PROT_ENOBREAKER);
	int r = prot_breaker_create(e->p, "rt", &o);
	cr_assert_eq(r, 0, "create: %s", prot_strerror(r));
	th_fork_n(1, child_sees_runtime, e, 5000);
	cr_assert_eq(bstate(e, "rt"), PROT_BREAKER_OPEN, "the child's 3 failures tripped it");
	cr_assert_eq(prot_breaker_create(e->p, "rt", &o), 0, "same options: not an error");
	o.tolerance = 5;
	cr_assert_eq(prot_breaker_create(e->p, "rt", &o), -PROT_EEXIST);
	stop(e);
}

static bool tolerance_is_3(void *arg)
{
	return bstatus(arg, "b").opts.tolerance == 3;
}

Test(breaker, reload_changing_tolerance_keeps_state)
{
	struct env *e = start("[breaker b]\ntolerance = 5\nwindow = 30s\nrefresh = 30s\n"
	                      "[breaker o]\ntolerance = 0\nwindow = 30s\nrefresh = 30s\n");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(prot_breaker_execute(e->p, "b", fn_fail, e, NULL), -PROT_EFAILED);
	trip(e, "o");
	th_write_file("protd.ini", "%s[breaker b]\ntolerance = 3\nwindow = 30s\nrefresh = 30s\n"
	              "[breaker o]\ntolerance = 1\nwindow = 30s\nrefresh = 30s\n", ini_head);
	cr_assert_eq(kill(e->protd, SIGHUP), 0);
	cr_assert(th_until(tolerance_is_3, e, 3000), "reload not applied");
	struct prot_breaker_status st = bstatus(e, "b");
	cr_assert_eq(st.state, PROT_BREAKER_CLOSED);
	cr_assert_eq(st.failures_in_window, 3, "the history survived the reload");
	cr_assert_eq(st.failures, 3);
	cr_assert_eq(bstate(e, "o"), PROT_BREAKER_OPEN, "an open breaker stays open");
	cr_assert_eq(prot_breaker_execute(e->p, "b", fn_fail, e, NULL), -PROT_EFAILED);
	cr_assert_eq(bstate(e, "b"), PROT_BREAKER_OPEN, "4 > new tolerance 3");
	stop(e);
}
