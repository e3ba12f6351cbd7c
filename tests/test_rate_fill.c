/* test_rate_fill.c — the bucket table's two-choice placement (lib/rate_table.c, TABLE and
 * OVERFLOW): how full the table gets before it refuses a new entity, and the overflow protocol's
 * cases — first use of entities whose primary group is full, raced by forked processes; readers,
 * reset and the sweep on overflowed buckets; a sliding window overflowing with its ring; a pending
 * overflow record left by its writer and completed by whoever comes next; rate_on_full = evict
 * (what it evicts, what it never does, how it is counted). On hand-made anonymous segments with an
 * injected clock, as test_rate.c's "core" suite (the eviction tests use keys, hence the real clock,
 * and one runs protd and protctl).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "craft.h"
#include "internal.h"
#include "rate_table.h"

#define MS 1000000ull

static struct prot_shm_header *seg_n(uint64_t entities)
{
	struct seg_geometry g = {.max_keys = 2, .max_breakers = 1, .max_pools = 1, .pool_max_slots = 1,
	                         .pool_max_waiters = 1, .events = 64, .rate_entities = entities};
	return craft_anon(&g);
}

static uint64_t T0; /* injected clock, 60 s aligned: no fixed window ends inside a test */
static uint64_t at(uint64_t ms) { return T0 + ms * MS; }
static void set_t0(void) { T0 = (prot_now_ns() / (60000 * MS) + 2) * 60000 * MS; }

static const struct prot_rate_limit FW3 = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 3, .window_ms = 60000};

static uint32_t occupancy(struct prot_shm_header *h, uint32_t gi)
{
	return (uint32_t)__builtin_popcount(GW_BITS(atomic_load(&((struct prot_rate_group *)seg_entry(h, REG_RATE_GROUPS, gi))->h.word)));
}

static uint64_t group_word(struct prot_shm_header *h, uint32_t gi)
{
	return atomic_load(&((struct prot_rate_group *)seg_entry(h, REG_RATE_GROUPS, gi))->h.word);
}

static struct rate_id id_of(struct prot_shm_header *h, const char *op, const char *ent)
{
	struct rate_id id;
	cr_assert_eq(rate_id_make(NULL, h, op, ent, strlen(ent), NULL, &id), 0);
	return id;
}

/* Insert uniformly hashed entities (op "fill") until the first refusal; returns the buckets in use
 * then. */
static uint64_t fill_to_first_refusal(struct prot_shm_header *h)
{
	char ent[32];
	for (uint64_t i = 0;; i++) {
		snprintf(ent, sizeof ent, "user:%lu", (unsigned long)i);
		int r = rate_check_h(NULL, h, "fill", ent, &FW3, 1, at(0), NULL);
		cr_assert(r == 1 || r == -PROT_ETABLEFULL, "%s", prot_strerror(r));
		if (r < 0)
			return atomic_load(&h->rate_buckets_used);
	}
}

/* n entities of op whose primary group is full and whose secondary groups (distinct) are not. */
static void full_primaries(struct prot_shm_header *h, const char *op, int n, char (*ents)[32])
{
	uint32_t seen[256];
	int k = 0;
	cr_assert_leq(n, 256);
	for (uint64_t i = 0; k < n && i < 10000000; i++) {
		snprintf(ents[k], 32, "new:%lu", (unsigned long)i);
		struct rate_id id = id_of(h, op, ents[k]);
		bool dup = false;
		for (int j = 0; j < k; j++)
			dup |= seen[j] == id.group2;
		if (dup || id.group2 == id.group || occupancy(h, id.group) != RATE_GROUP_SLOTS ||
		    occupancy(h, id.group2) > RATE_GROUP_SLOTS - 2)
			continue;
		seen[k++] = id.group2;
	}
	cr_assert_eq(k, n, "found %d entities with a full primary group", k);
}

static int buckets(struct prot_shm_header *h, const char *op)
{
	return (int)rate_count_op(h, op);
}

struct where {
	const char *entity;
	uint32_t group, slot;
	int found;
};

static int where_cb(const struct rate_view *v, void *arg)
{
	struct where *w = arg;
	if (strcmp(v->entity, w->entity) == 0) {
		w->group = v->group;
		w->slot = v->slot;
		w->found++;
	}
	return 0;
}

static struct where where_is(struct prot_shm_header *h, const char *op, const char *ent)
{
	struct where w = {.entity = ent};
	rate_foreach(h, op, where_cb, &w);
	return w;
}

/* Two-choice placement: the table fills to >= 90 % before it refuses an entity (single-group
 * placement refused its first at ~50 %), which is <= 150 B of table per live entity (128 B bucket
 * + 2 B of group index per bucket, over the fill reached). Measured: ~93-94 % at 64 Ki buckets
 * (~92 % at 1 Mi: 142 B). */
Test(fill, effective_capacity_64k, .timeout = 120)
{
	struct prot_shm_header *h = seg_n(65536);
	uint64_t cap = (uint64_t)h->rate_groups * RATE_GROUP_SLOTS, refused = 0;
	uint64_t table = (uint64_t)h->rate_groups * sizeof(struct prot_rate_group);
	char ent[32];
	set_t0();
	uint64_t first = fill_to_first_refusal(h);
	double fill = (double)first / (double)cap, per_entity = (double)table / (double)first;
	cr_log_info("capacity %lu: first refusal at %lu buckets (%.1f%%): %.1f B per live entity",
	            (unsigned long)cap, (unsigned long)first, 100.0 * fill, per_entity);
	cr_assert_geq(fill, 0.90, "first refusal at %.1f%%", 100.0 * fill);
	cr_assert_leq(per_entity, 150.0, "%.1f B per live entity", per_entity);
	/* and full: every bucket ends up used, none corrupted, every refusal counted */
	refused = atomic_load(&h->rate_table_full);
	for (uint64_t i = 0; i < 4 * cap; i++) {
		snprintf(ent, sizeof ent, "more:%lu", (unsigned long)i);
		int r = rate_check_h(NULL, h, "fill", ent, &FW3, 1, at(0), NULL);
		cr_assert(r == 1 || r == -PROT_ETABLEFULL, "%s", prot_strerror(r));
		refused += r < 0;
	}
	cr_assert_eq(atomic_load(&h->rate_buckets_used), cap, "every bucket ends up used");
	cr_assert_eq((uint64_t)buckets(h, NULL), cap);
	cr_assert_eq(atomic_load(&h->rate_table_full), refused);
}

/* ---- 8 processes race first use of entities whose primary group is full ---------------------- */

#define RACE_N 256

struct race {
	struct prot_shm_header *h;
	char ents[RACE_N][32];
	_Atomic int ready;
	_Atomic uint64_t admitted;
	uint64_t now;
};

static int race_child(void *arg, int i)
{
	struct race *r = arg;
	(void)i;
	atomic_fetch_add(&r->ready, 1);
	uint64_t deadline = th_now_ms() + 5000;
	while (atomic_load(&r->ready) < 8 && th_now_ms() < deadline)
		;
	for (int round = 0; round < 2; round++)
		for (int k = 0; k < RACE_N; k++) {
			/* every child in the same order: first uses collide */
			int res = rate_check_h(NULL, r->h, "race", r->ents[k], &FW3, 1, r->now, NULL);
			if (res < 0)
				return 10;
			atomic_fetch_add(&r->admitted, (uint64_t)res);
		}
	return 0;
}

Test(fill, first_use_race_on_full_primaries_makes_one_bucket, .timeout = 120)
{
	struct race *r = th_shared(sizeof *r);
	r->h = seg_n(65536);
	set_t0();
	r->now = at(0);
	uint64_t before = fill_to_first_refusal(r->h);
	full_primaries(r->h, "race", RACE_N, r->ents);
	th_fork_n(8, race_child, r, 60000);
	cr_assert_eq(buckets(r->h, "race"), RACE_N, "one bucket per entity");
	cr_assert_eq(atomic_load(&r->h->rate_buckets_used), before + RACE_N);
	/* exactness rides on it: 16 tries per entity, 3 admitted, whichever process made the bucket */
	cr_assert_eq(atomic_load(&r->admitted), 3u * RACE_N);
	for (int k = 0; k < RACE_N; k++) {
		struct where w = where_is(r->h, "race", r->ents[k]);
		struct rate_id id = id_of(r->h, "race", r->ents[k]);
		cr_assert_eq(w.found, 1);
		cr_assert_eq(w.group, id.group2, "%s overflowed to its secondary group", r->ents[k]);
		cr_assert_eq(GW_PEND(group_word(r->h, id.group)), 0, "no record left pending");
		cr_assert(group_word(r->h, id.group) & GW_OVF, "the primary says it overflowed");
	}
}

/* Readers (status), decisions, reset and the sweep all reach a bucket in its secondary group. */
Test(fill, overflowed_buckets_are_read_charged_reset_and_swept, .timeout = 120)
{
	struct prot_shm_header *h = seg_n(4096);
	char ents[4][32];
	struct prot_rate_info info;
	struct rate_params rp;
	uint64_t swept;
	set_t0();
	uint64_t before = fill_to_first_refusal(h);
	full_primaries(h, "ovf", 4, ents);
	rate_params_of_limit(&FW3, &rp);
	for (int k = 0; k < 4; k++) {
		cr_assert_eq(rate_status_h(h, "ovf", ents[k], &rp, at(0), &info), 0);
		cr_assert_eq(info.remaining, 3, "no bucket yet");
		for (int n = 0; n < 3; n++)
			cr_assert_eq(rate_check_h(NULL, h, "ovf", ents[k], &FW3, 1, at(1), NULL), 1);
		cr_assert_eq(rate_check_h(NULL, h, "ovf", ents[k], &FW3, 1, at(2), NULL), 0,
		             "the 4th charge finds the same (overflowed) bucket");
		cr_assert_eq(rate_status_h(h, "ovf", ents[k], &rp, at(2), &info), 0);
		cr_assert_eq(info.remaining, 0, "a reader finds the overflowed bucket");
		cr_assert_eq(where_is(h, "ovf", ents[k]).group, id_of(h, "ovf", ents[k]).group2);
	}
	cr_assert_eq(rate_reset_h(h, "ovf", ents[0]), 0);
	cr_assert_eq(rate_reset_h(h, "ovf", ents[0]), -ENOENT);
	cr_assert_eq(buckets(h, "ovf"), 3);
	cr_assert_eq(rate_check_h(NULL, h, "ovf", ents[0], &FW3, 1, at(3), NULL), 1, "reset: a fresh bucket");
	/* every window ends at 60 s: the sweep (grace 100 ms) frees them all, overflowed or not */
	for (uint32_t pass = 0; pass < h->rate_groups; pass++)
		rate_sweep(ANON_VIEW(h), at(61000), 100 * MS, &swept);
	cr_assert_eq(buckets(h, NULL), 0, "%lu fill buckets", (unsigned long)before);
	cr_assert_eq(atomic_load(&h->rate_buckets_used), 0);
}

/* An overflower that stopped between its two steps (its record in the primary, the secondary's
 * bit not yet set: rebuilt here from a finished insertion) leaves a bucket that readers see and
 * that the next writer completes instead of inserting the entity again. */
Test(fill, a_pending_overflow_is_completed_by_the_next_writer, .timeout = 120)
{
	struct prot_shm_header *h = seg_n(4096);
	char ents[1][32];
	struct prot_rate_info info;
	struct rate_params rp;
	set_t0();
	fill_to_first_refusal(h);
	full_primaries(h, "pend", 1, ents);
	cr_assert_eq(rate_check_h(NULL, h, "pend", ents[0], &FW3, 1, at(0), NULL), 1);
	struct rate_id id = id_of(h, "pend", ents[0]);
	struct where w = where_is(h, "pend", ents[0]);
	cr_assert_eq(w.group, id.group2);
	struct prot_rate_group *p = seg_entry(h, REG_RATE_GROUPS, id.group);
	struct prot_rate_group *s = seg_entry(h, REG_RATE_GROUPS, id.group2);
	/* back to "record pending": the bucket CLAIMED, its bit clear, the record in the primary */
	uint64_t m = atomic_load(&s->b[w.slot].meta);
	cr_assert_eq(META_ALT(m), id.alt, "an overflow bucket names its primary");
	atomic_store(&s->b[w.slot].meta, META_WITH(m, RB_CLAIMED));
	atomic_fetch_and(&s->h.word, ~(1ull << w.slot));
	atomic_fetch_or(&p->h.word, GW_PEND_OF(id.alt, w.slot));
	rate_params_of_limit(&FW3, &rp);
	cr_assert_eq(rate_status_h(h, "pend", ents[0], &rp, at(1), &info), 0);
	cr_assert_eq(info.remaining, 2, "a reader sees the pending bucket");
	cr_assert_eq(rate_check_h(NULL, h, "pend", ents[0], &FW3, 1, at(1), NULL), 1);
	cr_assert_eq(buckets(h, "pend"), 1, "completed, not inserted again");
	cr_assert_eq(GW_PEND(atomic_load(&p->h.word)), 0, "the record is gone");
	cr_assert(atomic_load(&s->h.word) & (1ull << w.slot), "the bit is set");
	cr_assert_eq(META_ST(atomic_load(&s->b[w.slot].meta)), RB_LIVE);
	cr_assert_eq(rate_check_h(NULL, h, "pend", ents[0], &FW3, 1, at(1), NULL), 1);
	cr_assert_eq(rate_check_h(NULL, h, "pend", ents[0], &FW3, 1, at(1), NULL), 0, "one bucket, exact");
}

/* ---- rate_on_full = evict --------------------------------------------------------------------- */

static void fill_key(struct prot_shm_header *h, int n, int skip)
{
	char ent[32];
	for (int i = 0; i < n; i++) {
		snprintf(ent, sizeof ent, "e%d", i);
		if (i != skip)
			cr_assert_eq(rate_check_key_idx(NULL, h, 0, NULL, ent, 1, NULL), 1, "%s", ent);
	}
}

/* One group of 32 (no secondary) and key 0 "kev", GCRA, rate_on_full = evict, filled with e0..e31. */
static struct prot_shm_header *evict_seg(uint64_t limit, uint64_t window_ms, struct prot_key_slot **k)
{
	struct prot_key_cfg cfg = {.rate_limit = limit, .rate_window_ms = window_ms,
	                           .rate_algo = PROT_RATE_GCRA, .rate_full_policy = RATE_FULL_EVICT};
	struct prot_shm_header *h = seg_n(32);
	publish_slot(h, REG_KEYS, 0, "kev", &cfg, sizeof cfg);
	*k = seg_entry(h, REG_KEYS, 0);
	fill_key(h, 32, -1);
	return h;
}

static bool has_bucket(struct prot_shm_header *h, const char *ent)
{
	return where_is(h, "kev", ent).found == 1;
}

/* All 32 buckets expired (GCRA, 1 ms emission interval, last admissions >= 200 ms ago): the new
 * entity takes the place of the least recently used one, e7, and the eviction is counted. */
Test(fill, evict_takes_the_least_recently_used_lossless_bucket, .timeout = 60)
{
	struct prot_key_slot *k;
	struct prot_shm_header *h = evict_seg(1000, 1000, &k);
	usleep(200 * 1000);
	fill_key(h, 32, 7); /* every bucket but e7's used again */
	usleep(200 * 1000);
	cr_assert_eq(rate_check_key_idx(NULL, h, 0, NULL, "new", 1, NULL), 1, "evicted, then inserted");
	cr_assert(has_bucket(h, "new"));
	cr_assert(!has_bucket(h, "e7"), "the least recently used bucket went");
	cr_assert_eq(buckets(h, NULL), 32);
	cr_assert_eq(atomic_load(&h->rate_evicted), 1);
	cr_assert_eq(atomic_load(&k->stats.rate_evicted), 1);
	cr_assert_eq(atomic_load(&k->stats.rate_table_full), 0, "no decision was refused");
	cr_assert_eq(atomic_load(&h->rate_buckets_used), 32);
}

/* nginx evicts its LRU state whatever it holds; here a bucket that still limits someone (a GCRA
 * TAT in the future) is never evicted: the new entity is denied and counted as table_full. */
Test(fill, evict_never_takes_a_bucket_that_still_limits, .timeout = 60)
{
	struct prot_key_slot *k;
	struct prot_shm_header *h = evict_seg(2, 3600000, &k);
	cr_assert_eq(rate_check_key_idx(NULL, h, 0, NULL, "new", 1, NULL), -PROT_ETABLEFULL);
	cr_assert(!has_bucket(h, "new"));
	cr_assert_eq(buckets(h, NULL), 32, "nothing evicted");
	cr_assert_eq(atomic_load(&h->rate_evicted), 0);
	cr_assert_eq(atomic_load(&k->stats.rate_evicted), 0);
	cr_assert_eq(atomic_load(&k->stats.rate_table_full), 1);
	cr_assert_eq(atomic_load(&h->rate_table_full), 1);
	for (int i = 0; i < 32; i++) {
		char ent[32];
		snprintf(ent, sizeof ent, "e%d", i);
		cr_assert(has_bucket(h, ent), "%s kept", ent);
	}
}

/* The INI word, and the count where operators read it: protctl rate show, stats and metrics. The
 * grace of protd's own sweep is long here, so that only an eviction can free a bucket in time. */
Test(fill, evict_through_protd_is_counted_in_protctl, .timeout = 60)
{
	const char *seg, *ini;
	prot_t *p;
	struct th_out *o = th_shared(sizeof *o);
	pid_t pd = th_serve("evict",
	                    "[segment]\nmax_keys = 4\nmax_breakers = 1\nmax_pools = 1\nrate_entities = 32\n"
	                    "[daemon]\nrate_grace = 1m\n"
	                    "[key kev]\nrate_limit = 1000\nrate_window = 1s\nrate_algorithm = gcra\n"
	                    "rate_on_full = evict\n",
	                    &seg, &ini, &p);
	char ent[16];
	for (int i = 0; i < 32; i++) {
		snprintf(ent, sizeof ent, "e%d", i);
		cr_assert_eq(prot_rate_check_key(p, "kev", ent, 1, NULL), 1);
	}
	th_sleep_ms(300);
	cr_assert_eq(prot_rate_check_key(p, "kev", "new", 1, NULL), 1, "an expired bucket evicted");
	cr_assert_eq(th_protctl(o, seg, "--json", "rate", "show", "kev", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "\"on_full\":\"evict\""), "%s", o->out);
	cr_assert(strstr(o->out, "\"table_full\":0,\"evicted\":1"), "%s", o->out);
	cr_assert_eq(th_protctl(o, seg, "--json", "stats", "kev", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "\"rate_evicted_total\":1"), "%s", o->out);
	cr_assert_eq(th_protctl(o, seg, "metrics", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "prot_rate_evicted_total{key=\"kev\"} 1"), "%s", o->out);
	th_unserve(p, pd);
}

/* A sliding window overflows with its ring: the ring is taken for the secondary's bucket, the
 * decisions are exact there, and reset gives the ring back. */
Test(fill, a_sliding_window_overflows_with_its_ring, .timeout = 120)
{
	struct seg_geometry geo = {.max_keys = 2, .max_breakers = 1, .max_pools = 1, .pool_max_slots = 1,
	                           .pool_max_waiters = 1, .events = 64, .rate_entities = 4096,
	                           .sliding_buckets = 8, .sliding_max_limit = 64};
	struct prot_shm_header *h = craft_anon(&geo);
	const struct prot_rate_limit sw = {.algo = PROT_RATE_SLIDING_WINDOW, .limit = 2, .window_ms = 60000};
	char ents[4][32];
	set_t0();
	fill_to_first_refusal(h);
	full_primaries(h, "slide", 4, ents);
	for (int k = 0; k < 4; k++) {
		cr_assert_eq(rate_check_h(NULL, h, "slide", ents[k], &sw, 1, at(1), NULL), 1);
		cr_assert_eq(rate_check_h(NULL, h, "slide", ents[k], &sw, 1, at(2), NULL), 1);
		cr_assert_eq(rate_check_h(NULL, h, "slide", ents[k], &sw, 1, at(3), NULL), 0, "exact in the secondary");
		cr_assert_eq(where_is(h, "slide", ents[k]).group, id_of(h, "slide", ents[k]).group2);
	}
	for (int k = 0; k < 4; k++)
		cr_assert_eq(rate_reset_h(h, "slide", ents[k]), 0);
	cr_assert_eq(buckets(h, "slide"), 0);
	/* every ring came back: 8 sliding entities (as many as rings) get a bucket each */
	char more[8][32];
	full_primaries(h, "slide2", 8, more);
	for (int k = 0; k < 8; k++)
		cr_assert_eq(rate_check_h(NULL, h, "slide2", more[k], &sw, 1, at(4), NULL), 1, "%s", more[k]);
	cr_assert_eq(rate_check_h(NULL, h, "slide", ents[0], &sw, 1, at(5), NULL), -PROT_ETABLEFULL,
	             "no ring left: the rings are the limit now");
}
