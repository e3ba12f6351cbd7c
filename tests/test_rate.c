/* test_rate.c — the rate limiter.
 *
 * Suite "core": the bucket table and both algorithms alone, on a segment laid out by hand in
 * anonymous shared memory, with an injected clock so that windows and emission intervals are
 * exact; forked processes where the point is the race.
 * Suite "rate": the whole thing with a real protd (its sweep, its reloads), real processes, real
 * time, and protctl.
 * Length (over ~700 lines): both suites share the hand-made segment, the injected clock and the
 * forked-race helpers defined here; a split into test_rate_core.c would first move those into
 * tests/harness.c. Not done yet: the rate limiter's newer points have suites of their own
 * (test_rate_algo, _ident, _sliding, _buckets, _calendar, test_hammer).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "craft.h"
#include "internal.h"
#include "rate_algo.h"

#define MS 1000000ull

/* ---- a hand-made segment ---------------------------------------------------------------------- */

static struct prot_shm_header *core_seg_n(uint64_t entities)
{
	struct seg_geometry g = {.max_keys = 2, .max_breakers = 1, .max_pools = 1, .pool_max_slots = 1,
	                         .pool_max_waiters = 1, .events = 64, .rate_entities = entities};
	return craft_anon(&g);
}

static struct prot_shm_header *core_seg(void)
{
	return core_seg_n(4096);
}

static void core_key(struct prot_shm_header *h, uint32_t idx, const char *name,
                     const struct prot_key_cfg *cfg)
{
	publish_slot(h, REG_KEYS, idx, name, cfg, sizeof *cfg);
}

#define META_ST_OF(m) ((m) & 0xffu) /* bucket state: 0 FREE, 1 CLAIMED, 2 LIVE, 3 DEAD */

static uint64_t T0; /* injected clock origin, a multiple of every window used: every test time is
                       T0 + k ms */
static uint64_t at(uint64_t ms) { return T0 + ms * MS; }

static void set_t0(void)
{
	/* aligned to 60 s so fixed windows of 1 s, 100 ms, ... start exactly at T0 */
	T0 = (prot_now_ns() / (60000 * MS) + 2) * 60000 * MS;
}

static const struct prot_rate_limit FW5 = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 5, .window_ms = 1000};
static const struct prot_rate_limit GCRA10 = {.algo = PROT_RATE_GCRA, .limit = 10, .window_ms = 1000,
                                              .burst = 3};

static int chk(struct prot_shm_header *h, const char *ent, const struct prot_rate_limit *l,
               uint64_t cost, uint64_t ms, struct prot_rate_info *info)
{
	return rate_check_h(NULL, h, "op", ent, l, cost, at(ms), info);
}

/* rate_status_h on the public form of a limit, converted as prot_rate_status converts it */
static int status(struct prot_shm_header *h, const char *ent, const struct prot_rate_limit *l,
                  uint64_t ms, struct prot_rate_info *out)
{
	struct rate_params rp;
	rate_params_of_limit(l, &rp);
	return rate_status_h(h, "op", ent, &rp, at(ms), out);
}

static int count_cb(const struct rate_view *v, void *arg)
{
	(void)v;
	++*(int *)arg;
	return 0;
}

static int buckets(struct prot_shm_header *h, const char *op)
{
	int n = 0;
	rate_foreach(h, op, count_cb, &n);
	return n;
}

struct find_arg {
	const char *entity;
	struct rate_view v;
	int found;
};

static int find_cb(const struct rate_view *v, void *arg)
{
	struct find_arg *f = arg;
	if (strcmp(v->entity, f->entity) != 0)
		return 0;
	f->v = *v;
	f->found++;
	return 0;
}

static struct prot_rate_bucket *bucket_of(struct prot_shm_header *h, const char *op, const char *ent)
{
	struct find_arg f = {.entity = ent};
	rate_foreach(h, op, find_cb, &f);
	cr_assert_eq(f.found, 1, "bucket %s/%s: found %d", op, ent, f.found);
	struct prot_rate_group *g = seg_entry(h, REG_RATE_GROUPS, f.v.group);
	return &g->b[f.v.slot];
}

/* ---- SipHash ---------------------------------------------------------------------------------- */

Test(core, siphash_known_answers)
{
	/* SipHash-1-3 reference vectors: key 00..0f, message 00..n-1 (as in Rust's and Python's
	 * test suites). */
	static const struct { size_t n; uint64_t h; } kat[] = {
		{0, 0xabac0158050fc4dcULL}, {1, 0xc9f49bf37d57ca93ULL}, {2, 0x82cb9b024dc7d44dULL},
		{3, 0x8bf80ab8e7ddf7fbULL}, {7, 0xd3927d989bb11140ULL}, {8, 0x369095118d299a8eULL},
		{9, 0x25a48eb36c063de4ULL}, {15, 0xd320d86d2a519956ULL},
	};
	const uint64_t key[2] = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
	uint8_t msg[64];
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	for (size_t k = 0; k < sizeof kat / sizeof kat[0]; k++)
		cr_expect_eq(prot_siphash(key, msg, kat[k].n), kat[k].h, "n=%zu: %016lx", kat[k].n,
		             (unsigned long)prot_siphash(key, msg, kat[k].n));
}

/* ---- fixed window ----------------------------------------------------------------------------- */

Test(core, fixed_window_counts_and_rolls_over)
{
	struct prot_shm_header *h = core_seg();
	struct prot_rate_info in;
	set_t0();
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(chk(h, "u1", &FW5, 1, 100, &in), 1);
		cr_assert_eq(in.used, (uint64_t)i + 1);
		cr_assert_eq(in.remaining, 4u - (uint64_t)i);
	}
	cr_assert_eq(chk(h, "u1", &FW5, 1, 300, &in), 0);
	cr_assert_eq(in.retry_after_ms, 700); /* the window [T0, T0+1s) ends at 1000 */
	cr_assert_eq(in.reset_after_ms, 700);
	cr_assert_eq(chk(h, "u1", &FW5, 1, 999, &in), 0);
	cr_assert_eq(chk(h, "u1", &FW5, 1, 1000, &in), 1, "a new window");
	cr_assert_eq(in.used, 1);
	cr_assert_eq(chk(h, "u1", &FW5, 4, 1500, &in), 1);
	cr_assert_eq(chk(h, "u1", &FW5, 1, 1999, &in), 0);
	cr_assert_eq(chk(h, "u1", &FW5, 5, 5000, &in), 1, "later windows start fresh");
	cr_assert_eq(chk(h, "u2", &FW5, 5, 5000, &in), 1, "another entity has its own bucket");
	cr_assert_eq(buckets(h, "op"), 2);
}

Test(core, cost_beyond_limit_is_its_own_error)
{
	struct prot_shm_header *h = core_seg();
	set_t0();
	cr_assert_eq(chk(h, "u", &FW5, 6, 0, NULL), -PROT_ECOST);
	cr_assert_eq(chk(h, "u", &GCRA10, 4, 0, NULL), -PROT_ECOST, "GCRA: cost > burst");
	cr_assert_eq(chk(h, "u", &GCRA10, 3, 0, NULL), 1);
	cr_assert_eq(buckets(h, NULL), 1, "an ECOST call creates no bucket");
	struct prot_rate_limit big = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 1u << 24, .window_ms = 1};
	cr_assert_eq(chk(h, "u", &big, 1, 0, NULL), -EINVAL, "fixed-window limits are < 2^24");
	struct prot_rate_limit zero = {.limit = 0, .window_ms = 1};
	cr_assert_eq(chk(h, "u", &zero, 1, 0, NULL), -EINVAL);
}

Test(core, overlong_names_are_refused)
{
	struct prot_shm_header *h = core_seg();
	char ent[PROT_ENTITY_MAX + 2], op[PROT_OP_MAX + 2];
	set_t0();
	memset(ent, 'e', sizeof ent);
	ent[PROT_ENTITY_MAX] = '\0';
	cr_assert_eq(chk(h, ent, &FW5, 1, 0, NULL), 1, "64 bytes fit");
	ent[PROT_ENTITY_MAX] = 'x';
	ent[PROT_ENTITY_MAX + 1] = '\0';
	cr_assert_eq(chk(h, ent, &FW5, 1, 0, NULL), -PROT_ETOOLONG);
	memset(op, 'o', sizeof op);
	op[PROT_OP_MAX + 1] = '\0';
	cr_assert_eq(rate_check_h(NULL, h, op, "u", &FW5, 1, at(0), NULL), -PROT_ETOOLONG);
	/* Entities that differ only past byte 16 (head) or in the last byte are distinct. */
	char a[65], b[65];
	memset(a, 'a', 64), memset(b, 'a', 64);
	a[64] = b[64] = '\0';
	b[63] = 'b';
	cr_assert_eq(chk(h, a, &FW5, 5, 0, NULL), 1);
	cr_assert_eq(chk(h, b, &FW5, 5, 0, NULL), 1, "b is not a");
	cr_assert_eq(chk(h, a, &FW5, 1, 0, NULL), 0);
	cr_assert_eq(buckets(h, "op"), 3);
}

/* ---- GCRA ------------------------------------------------------------------------------------- */

Test(core, gcra_burst_then_rate)
{
	struct prot_shm_header *h = core_seg();
	struct prot_rate_info in;
	set_t0();
	/* T = 100 ms, burst 3 */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(chk(h, "g", &GCRA10, 1, 0, &in), 1);
	cr_assert_eq(in.remaining, 0);
	cr_assert_eq(in.reset_after_ms, 300);
	cr_assert_eq(chk(h, "g", &GCRA10, 1, 0, &in), 0);
	cr_assert_eq(in.retry_after_ms, 100);
	cr_assert_eq(chk(h, "g", &GCRA10, 1, 99, &in), 0);
	cr_assert_eq(in.retry_after_ms, 1);
	cr_assert_eq(chk(h, "g", &GCRA10, 1, 100, &in), 1, "one emission interval later");
	cr_assert_eq(chk(h, "g", &GCRA10, 2, 250, &in), 0);
	cr_assert_eq(in.retry_after_ms, 50, "TAT 400 + 2T - 250 - tau");
	cr_assert_eq(chk(h, "g", &GCRA10, 2, 299, &in), 0);
	cr_assert_eq(chk(h, "g", &GCRA10, 2, 300, &in), 1);
	cr_assert_eq(chk(h, "g", &GCRA10, 3, 10000, &in), 1, "idle: the whole burst again");
}

/* Admissions over any interval never exceed burst + elapsed/T + 1, whatever the arrival pattern. */
Test(core, gcra_never_exceeds_burst_plus_rate)
{
	struct prot_shm_header *h = core_seg();
	const struct prot_rate_limit l = {.algo = PROT_RATE_GCRA, .limit = 7, .window_ms = 1000, .burst = 4};
	const uint64_t T = (1000 * MS + 6) / 7; /* ceil */
	enum { N = 4000 };
	static uint64_t times[N];
	int admitted = 0;
	uint64_t t = 0;
	unsigned seed = 12345;
	set_t0();
	for (int k = 0; k < N; k++) {
		t += (uint64_t)(rand_r(&seed) % 60) * MS / 2;
		if (rate_check_h(NULL, h, "op", "p", &l, 1, T0 + t, NULL) == 1)
			times[admitted++] = t;
	}
	cr_assert_gt(admitted, 100);
	for (int i = 0; i < admitted; i++)
		for (int j = i; j < admitted && j < i + 64; j++) {
			uint64_t bound = 4 + (times[j] - times[i]) / T + 1;
			cr_assert_leq((uint64_t)(j - i + 1), bound, "%d admissions in %lu ns", j - i + 1,
			              (unsigned long)(times[j] - times[i]));
		}
}

/* ---- the decision line ------------------------------------------------------------------------ */

Test(core, denial_leaves_line0_unchanged)
{
	struct prot_shm_header *h = core_seg();
	uint8_t before[64], after[64];
	set_t0();
	for (int i = 0; i < 5; i++)
		cr_assert_eq(chk(h, "d", &FW5, 1, 10, NULL), 1);
	struct prot_rate_bucket *b = bucket_of(h, "op", "d");
	memcpy(before, b, 64);
	uint64_t denied0 = atomic_load(&b->denied);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(chk(h, "d", &FW5, 1, 20 + (uint64_t)i, NULL), 0);
	memcpy(after, b, 64);
	cr_assert_eq(memcmp(before, after, 64), 0, "a denial wrote line 0");
	cr_assert_eq(atomic_load(&b->denied), denied0 + 100);

	/* GCRA likewise */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(chk(h, "g", &GCRA10, 1, 10, NULL), 1);
	b = bucket_of(h, "op", "g");
	memcpy(before, b, 64);
	cr_assert_eq(chk(h, "g", &GCRA10, 1, 50, NULL), 0);
	memcpy(after, b, 64);
	cr_assert_eq(memcmp(before, after, 64), 0);
}

/* ---- status, reset, algorithm change, limit change --------------------------------------------- */

Test(core, status_and_reset)
{
	struct prot_shm_header *h = core_seg();
	struct prot_rate_info in;
	set_t0();
	cr_assert_eq(status(h, "s", &FW5, 0, &in), 0);
	cr_assert(in.allowed);
	cr_assert_eq(in.remaining, 5, "never used: full availability");
	cr_assert_eq(buckets(h, NULL), 0, "status creates no bucket");
	cr_assert_eq(chk(h, "s", &FW5, 5, 200, NULL), 1);
	cr_assert_eq(status(h, "s", &FW5, 300, &in), 0);
	cr_assert(!in.allowed);
	cr_assert_eq(in.used, 5);
	cr_assert_eq(in.remaining, 0);
	cr_assert_eq(in.retry_after_ms, 700);
	cr_assert_eq(rate_reset_h(h, "op", "s"), 0);
	cr_assert_eq(rate_reset_h(h, "op", "s"), -ENOENT);
	cr_assert_eq(buckets(h, NULL), 0);
	cr_assert_eq(atomic_load(&h->rate_buckets_used), 0);
	cr_assert_eq(chk(h, "s", &FW5, 5, 300, NULL), 1, "reset: a fresh bucket");
	cr_assert_eq(buckets(h, NULL), 1);
}

Test(core, limits_change_keeps_state_algorithm_change_is_another_bucket)
{
	struct prot_shm_header *h = core_seg();
	struct prot_rate_info in;
	set_t0();
	/* fixed window: the count survives a new limit */
	cr_assert_eq(chk(h, "w", &FW5, 5, 0, NULL), 1);
	struct prot_rate_limit fw8 = FW5;
	fw8.limit = 8;
	cr_assert_eq(chk(h, "w", &fw8, 3, 10, &in), 1);
	cr_assert_eq(in.used, 8);
	cr_assert_eq(chk(h, "w", &fw8, 1, 20, NULL), 0);
	/* GCRA: the TAT is read with the new T: 3 units at T=100ms = 300 ms of debt */
	cr_assert_eq(chk(h, "g", &GCRA10, 3, 0, NULL), 1);
	struct prot_rate_limit g20 = {.algo = PROT_RATE_GCRA, .limit = 20, .window_ms = 1000, .burst = 6};
	cr_assert_eq(status(h, "g", &g20, 0, &in), 0);
	cr_assert_eq(in.used, 6, "300 ms of debt at T=50 ms");
	cr_assert_eq(chk(h, "g", &g20, 1, 0, &in), 0);
	cr_assert_eq(in.retry_after_ms, 50);
	/* another algorithm: another bucket (identity is operation, entity, algorithm, window); the
	 * GCRA bucket keeps its debt */
	cr_assert_eq(chk(h, "g", &FW5, 5, 0, NULL), 1);
	cr_assert_eq(buckets(h, "op"), 3);
	cr_assert_eq(status(h, "g", &g20, 0, &in), 0);
	cr_assert_eq(in.used, 6, "the GCRA bucket is untouched");
}

/* ---- keys ------------------------------------------------------------------------------------- */

Test(core, key_limits_stats_and_full_policy)
{
	struct prot_shm_header *h = core_seg_n(32); /* one group of 32 */
	struct prot_key_cfg deny = {.rate_limit = 2, .rate_window_ms = 1000, .rate_algo = PROT_RATE_GCRA,
	                            .rate_full_policy = RATE_FULL_DENY};
	struct prot_key_cfg allow = deny;
	allow.rate_full_policy = RATE_FULL_ALLOW;
	core_key(h, 0, "kdeny", &deny);
	core_key(h, 1, "kallow", &allow);
	struct prot_key_slot *kd = seg_entry(h, REG_KEYS, 0), *ka = seg_entry(h, REG_KEYS, 1);
	char ent[32];
	for (int i = 0; i < 32; i++) {
		snprintf(ent, sizeof ent, "e%d", i);
		cr_assert_eq(rate_check_key_idx(NULL, h, 0, NULL, ent, 1, NULL), 1);
	}
	cr_assert_eq(atomic_load(&h->rate_buckets_used), 32);
	cr_assert_eq(rate_check_key_idx(NULL, h, 0, NULL, "e0", 2, NULL), 0, "burst 2, 1 used");
	struct rate_totals t;
	const uint32_t kdeny = 0;
	cr_assert_eq(rate_keys_totals(h, 1, &kdeny, &t), 0);
	cr_assert_eq(t.buckets, 32);
	cr_assert_eq(t.allowed, 32);
	cr_assert_eq(t.denied, 1);
	cr_assert_eq(atomic_load(&kd->stats.rate_allowed), 0, "decisions write only their bucket");
	/* a removed bucket's counts move to the key: the totals do not change */
	cr_assert_eq(rate_reset_h(h, "kdeny", "e0"), 0);
	cr_assert_eq(rate_keys_totals(h, 1, &kdeny, &t), 0);
	cr_assert_eq(t.buckets, 31);
	cr_assert_eq(t.allowed, 32);
	cr_assert_eq(t.denied, 1);
	/* several keys in one pass: kallow has no bucket yet */
	const uint32_t both[2] = {1, 0};
	struct rate_totals two[2];
	cr_assert_eq(rate_keys_totals(h, 2, both, two), 0);
	cr_assert_eq(two[0].buckets, 0);
	cr_assert_eq(two[1].buckets, 31);
	cr_assert_eq(two[1].allowed, 32);
	cr_assert_eq(rate_check_key_idx(NULL, h, 0, NULL, "e0", 1, NULL), 1, "back in its group");
	cr_assert_eq(rate_check_key_idx(NULL, h, 0, NULL, "new", 1, NULL), -PROT_ETABLEFULL);
	cr_assert_eq(atomic_load(&kd->stats.rate_table_full), 1);
	struct prot_rate_info in;
	cr_assert_eq(rate_check_key_idx(NULL, h, 1, NULL, "new", 1, &in), 1, "allow policy");
	cr_assert(in.allowed);
	cr_assert_eq(atomic_load(&ka->stats.rate_table_full), 1);
	cr_assert_eq(atomic_load(&h->rate_table_full), 2);
	cr_assert_eq(buckets(h, NULL), 32, "nothing corrupted");
	/* Hammer-style calls deny on a full table */
	cr_assert_eq(rate_check_h(NULL, h, "op", "x", &FW5, 1, 0, NULL), -PROT_ETABLEFULL);
}

/* ---- expiry ----------------------------------------------------------------------------------- */

Test(core, sweep_expires_and_churn_keeps_working)
{
	struct prot_shm_header *h = core_seg_n(256); /* 8 groups */
	const struct prot_rate_limit l = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 3, .window_ms = 100};
	const struct prot_rate_limit g = {.algo = PROT_RATE_GCRA, .limit = 3, .window_ms = 100};
	char ent[32];
	uint64_t swept, total = 0;
	set_t0();
	/* 40 waves of 64 new entities (2560 = 10x the capacity), 1 s apart */
	for (int w = 0; w < 40; w++) {
		for (int i = 0; i < 64; i++) {
			snprintf(ent, sizeof ent, "w%d-e%d", w, i);
			cr_assert_eq(rate_check_h(NULL, h, "op", ent, (i & 1) ? &l : &g, 1, at(1000 * (uint64_t)w), NULL),
			             1, "wave %d entity %d", w, i);
		}
		cr_assert_eq(atomic_load(&h->rate_buckets_used), 64);
		/* nothing has expired within its window */
		rate_sweep(ANON_VIEW(h), at(1000 * (uint64_t)w + 50), 100 * 1000000ull, &swept);
		cr_assert_eq(swept, 0);
		rate_sweep(ANON_VIEW(h), at(1000 * (uint64_t)w + 900), 100 * 1000000ull, &swept);
		cr_assert_eq(swept, 64, "wave %d", w);
		total += swept;
		cr_assert_eq(atomic_load(&h->rate_buckets_used), 0);
		cr_assert_eq(buckets(h, NULL), 0);
	}
	cr_assert_eq(total, 40 * 64);
}

/* A claimer killed before publishing leaves a CLAIMED bucket with a clear bit: the sweep frees it
 * once the claimer (its identity, tagged, stored in the claim) is provably gone — never while it
 * lives, never when unknown. One that published but died before LIVE is completed by the next
 * lookup. */
static int report_identity(void *arg, int i)
{
	uint64_t *owner = arg;
	prot_t *p;
	(void)i;
	if (prot_open((const char *)(owner + 1), 0, &p) != 0)
		return 1;
	*owner = prot_self(p, prot_hdr(p));
	return 0; /* exits holding the handle: its identity dies with it */
}

Test(core, dead_claimers_are_recovered)
{
	const char *name = th_segname("claim");
	struct seg_geometry geo = {.max_keys = 2, .max_breakers = 1, .max_pools = 1, .pool_max_slots = 1,
	                           .pool_max_waiters = 1, .events = 64, .rate_entities = 32};
	struct crafted c = craft_mode(name, &geo, 0600);
	struct prot_shm_header *h = c.h;
	struct prot_rate_group *g = seg_entry(h, REG_RATE_GROUPS, 0);
	uint64_t *dead = th_shared(sizeof *dead + 64), swept;
	snprintf((char *)(dead + 1), 64, "%s", name);
	th_fork_n(1, report_identity, dead, 5000); /* a process that has exited by now */
	cr_assert_neq(*dead, 0);
	prot_t *self;
	cr_assert_eq(prot_open(name, 0, &self), 0);
	uint64_t me = prot_self(self, prot_hdr(self));
	set_t0();
	for (int i = 0; i < 32; i++) {
		atomic_store(&g->b[i].meta, (uint64_t)1 << 32 | PROT_RATE_GCRA << 8 | 1 /* CLAIMED */);
		/* slot 0: a live claimer (us); slot 1: unknown; slot 2: a statistic, untagged; the
		 * others: the dead child */
		atomic_store(&g->b[i].allowed, i == 0 ? me | CLAIM_TAG : i == 1 ? 0 : i == 2 ? *dead : *dead | CLAIM_TAG);
	}
	/* a view with an fd of its own: it judges our handle through its lock, as another process */
	int fd = shm_open(name, O_RDONLY, 0);
	cr_assert(fd >= 0);
	struct prot_idv v = { .h = h, .fd = fd, .nprocs = h->region[REG_PROCS].count };
	cr_assert_eq(rate_check_h(NULL, h, "op", "x", &FW5, 1, at(10), NULL), -PROT_ETABLEFULL);
	rate_sweep(&v, at(100), 100 * 1000000ull, &swept);
	cr_assert_eq(META_ST_OF(atomic_load(&g->b[0].meta)), 1, "a live claimer keeps its claim");
	cr_assert_eq(META_ST_OF(atomic_load(&g->b[1].meta)), 1, "an unknown claimer keeps its claim");
	cr_assert_eq(META_ST_OF(atomic_load(&g->b[2].meta)), 1, "an untagged value is no identity");
	for (int i = 3; i < 32; i++)
		cr_assert_eq(META_ST_OF(atomic_load(&g->b[i].meta)), 0, "slot %d: dead claimer's claim freed", i);
	cr_assert_eq(rate_check_h(NULL, h, "op", "x", &FW5, 1, at(100), NULL), 1);

	/* published (bit set) but still CLAIMED: a lookup completes the publication */
	struct prot_rate_bucket *b = bucket_of(h, "op", "x");
	uint64_t m = atomic_load(&b->meta);
	atomic_store(&b->meta, (m & ~0xffull) | 1);
	cr_assert_eq(rate_check_h(NULL, h, "op", "x", &FW5, 1, at(101), NULL), 1);
	cr_assert_eq(atomic_load(&b->meta), m);
	cr_assert_eq(buckets(h, NULL), 1);
	close(fd);
	prot_close(self);
	uncraft(&c);
}

/* Two-choice placement (lib/rate_table.c, TABLE): the first refusal comes at ~93-96 % occupancy
 * on 4 Ki buckets (single-group placement: ~64 %). Here: nothing refused below 85 %, nothing
 * corrupted when full. tests/test_rate_fill.c asserts >= 90 % at 64 Ki. */
Test(core, effective_capacity)
{
	struct prot_shm_header *h = core_seg_n(4096);
	const struct prot_rate_limit l = {.algo = PROT_RATE_GCRA, .limit = 5, .window_ms = 1000};
	uint64_t cap = (uint64_t)h->rate_groups * RATE_GROUP_SLOTS, first_full = 0, refused = 0;
	char ent[32];
	set_t0();
	for (uint64_t i = 0; i < 4 * cap; i++) {
		snprintf(ent, sizeof ent, "user:%lu", (unsigned long)i);
		int r = rate_check_h(NULL, h, "op", ent, &l, 1, at(0), NULL);
		cr_assert(r == 1 || r == -PROT_ETABLEFULL, "%s", prot_strerror(r));
		if (r < 0 && first_full == 0)
			first_full = atomic_load(&h->rate_buckets_used) + 1; /* +1: 0 means none yet */
		refused += r < 0;
	}
	uint64_t used = atomic_load(&h->rate_buckets_used);
	cr_log_info("capacity %lu: first refusal at %lu buckets (%.1f%%), %lu at the end",
	            (unsigned long)cap, (unsigned long)first_full - 1,
	            100.0 * (double)(first_full - 1) / (double)cap, (unsigned long)used);
	cr_assert_geq(first_full - 1, cap * 85 / 100);
	cr_assert_eq(used, cap, "every bucket ends up used");
	cr_assert_eq((uint64_t)buckets(h, NULL), used);
	cr_assert_eq(atomic_load(&h->rate_table_full), refused);
}

/* ---- races between processes ------------------------------------------------------------------ */

struct race {
	struct prot_shm_header *h;
	struct prot_rate_limit lim;
	_Atomic int ready, go;
	_Atomic uint64_t admitted;
	int rounds, attempts;
	char op[16];
};

static void barrier(struct race *r, int n)
{
	atomic_fetch_add(&r->ready, 1);
	uint64_t deadline = th_now_ms() + 5000;
	while (atomic_load(&r->ready) < n && th_now_ms() < deadline)
		;
}

static int first_use_child(void *arg, int i)
{
	struct race *r = arg;
	char ent[32];
	(void)i;
	barrier(r, 8);
	for (int k = 0; k < r->rounds; k++) {
		snprintf(ent, sizeof ent, "new-%d", k);
		int res = rate_check_h(NULL, r->h, r->op, ent, &r->lim, 1, 0, NULL);
		if (res < 0)
			return 10;
		atomic_fetch_add(&r->admitted, (uint64_t)res);
	}
	return 0;
}

Test(core, concurrent_first_use_makes_one_bucket, .timeout = 60)
{
	struct race *r = th_shared(sizeof *r);
	r->h = core_seg_n(65536);
	r->lim = (struct prot_rate_limit){.algo = PROT_RATE_FIXED_WINDOW, .limit = 3, .window_ms = 60000};
	r->rounds = 3000;
	strcpy(r->op, "first");
	th_fork_n(8, first_use_child, r, 50000);
	cr_assert_eq(buckets(r->h, "first"), 3000, "one bucket per entity");
	cr_assert_eq(atomic_load(&r->h->rate_buckets_used), 3000);
	/* exactness rides on it: never more than the limit per entity (a window boundary may fall
	 * inside the run: at most twice) */
	cr_assert_leq(atomic_load(&r->admitted), 3000u * 3 * 2);
	cr_assert_geq(atomic_load(&r->admitted), 3000u * 3);
}

static int hammer_child(void *arg, int i)
{
	struct race *r = arg;
	(void)i;
	barrier(r, 8);
	for (int k = 0; k < r->attempts; k++) {
		int res = rate_check_h(NULL, r->h, "hot", "one", &r->lim, 1, 0, NULL);
		if (res < 0)
			return 10;
		atomic_fetch_add(&r->admitted, (uint64_t)res);
	}
	return 0;
}

Test(core, eight_processes_exact_limit, .timeout = 60)
{
	struct race *r = th_shared(sizeof *r);
	r->h = core_seg();
	/* a window boundary inside the run would allow 2000: pick a run well inside one window */
	r->lim = (struct prot_rate_limit){.algo = PROT_RATE_FIXED_WINDOW, .limit = 1000,
	                                  .window_ms = 3600 * 1000};
	r->attempts = 20000;
	uint64_t now_ms = prot_now_ns() / MS, left = 3600 * 1000 - now_ms % (3600 * 1000);
	if (left < 30000) /* wait (at most 30 s) for the next window rather than skip the test */
		nanosleep(&(struct timespec){.tv_sec = (time_t)((left + 50) / 1000),
		                             .tv_nsec = (long)((left + 50) % 1000) * 1000000}, NULL);
	th_fork_n(8, hammer_child, r, 50000);
	cr_assert_eq(atomic_load(&r->admitted), 1000);
	struct prot_rate_bucket *b = bucket_of(r->h, "hot", "one");
	cr_assert_eq(atomic_load(&b->allowed), 1000);
	cr_assert_eq(atomic_load(&b->denied), 8 * 20000 - 1000);
}

/* Threads of one process sharing a handle: the per-handle operation-hash memo is a seqlock that
 * several threads write; the table is the same as across processes. (Run under TSan.) */
struct thr {
	struct prot_shm_header *h;
	prot_t *p;
	_Atomic uint64_t admitted;
	_Atomic int bad;
};

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	static const char *const ops[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta",
	                                  "eta", "theta", "iota", "kappa", "lambda"};
	const struct prot_rate_limit l = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 500,
	                                  .window_ms = 3600 * 1000};
	for (int k = 0; k < 20000; k++) {
		const char *op = ops[k % 11];
		int r = rate_check_h(t->p, t->h, op, "shared", &l, 1, 0, NULL);
		if (r < 0)
			atomic_fetch_add(&t->bad, 1);
		else
			atomic_fetch_add(&t->admitted, (uint64_t)r);
	}
	return NULL;
}

Test(core, threads_share_a_handle, .timeout = 60)
{
	struct thr t = {.h = core_seg()};
	pthread_t th[4];
	uint64_t left = 3600 * 1000 - (prot_now_ns() / MS) % (3600 * 1000);
	if (left < 30000) /* wait (at most 30 s) for the next window rather than skip the test */
		nanosleep(&(struct timespec){.tv_sec = (time_t)((left + 50) / 1000),
		                             .tv_nsec = (long)((left + 50) % 1000) * 1000000}, NULL);
	t.p = calloc(1, sizeof *t.p); /* only its operation-hash memo is used: no mapping, no identity */
	static _Atomic uint64_t armed = 1; /* FORK_ARMED: this process's handle */
	t.p->fork_page = &armed;
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, thread_main, &t), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&t.bad), 0);
	cr_assert_eq(atomic_load(&t.admitted), 11 * 500, "each operation admits exactly its limit");
	cr_assert_eq(buckets(t.h, NULL), 11);
	free(t.p);
}

/* ================================================================================================
 * With a real protd
 * ============================================================================================== */

struct env {
	const char *seg, *ini;
	pid_t protd;
	prot_t *p;
	/* shared with forked children */
	_Atomic int ready;
	_Atomic uint64_t admitted, errors;
	_Atomic uint64_t per_window[2];
	_Atomic uint64_t window_id[2];
	uint64_t window_ms;
	const char *key;
	int attempts;
};

static const char *ini_text(uint64_t entities, const char *sections)
{
	return th_write_file("protd.ini",
	                     "[segment]\nmax_keys = 8\nmax_breakers = 1\nmax_pools = 1\npool_max_slots = 1\n"
	                     "pool_max_waiters = 1\nrate_entities = %lu\nevents = 64\n\n"
	                     "[daemon]\ntick = 10ms\n\n%s",
	                     (unsigned long)entities, sections);
}

static struct env *start(uint64_t entities, const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	e->seg = th_segname("rate");
	e->ini = ini_text(entities, sections);
	e->protd = th_protd_start(e->ini, e->seg, NULL);
	e->p = th_open(e->seg, 2000);
	return e;
}

static void stop(struct env *e)
{
	th_unserve(e->p, e->protd);
}

static void env_barrier(struct env *e, int n)
{
	atomic_fetch_add(&e->ready, 1);
	uint64_t deadline = th_now_ms() + 5000;
	while (atomic_load(&e->ready) < n && th_now_ms() < deadline)
		;
}

/* Count an admission in the window it fell in (the window's end, from reset_after). */
static void count_window(struct env *e, const struct prot_rate_info *in)
{
	uint64_t end_ms = prot_now_ns() / MS + in->reset_after_ms;
	uint64_t id = (end_ms + e->window_ms / 2) / e->window_ms;
	for (int k = 0; k < 2; k++) {
		uint64_t cur = atomic_load(&e->window_id[k]);
		if (cur == 0 && atomic_compare_exchange_strong(&e->window_id[k], &cur, id))
			cur = id;
		if (cur == id) {
			atomic_fetch_add(&e->per_window[k], 1);
			return;
		}
	}
	atomic_fetch_add(&e->errors, 1); /* a third window: the run is not that long */
}

static int exact_child(void *arg, int i)
{
	struct env *e = arg;
	struct prot_rate_info in;
	(void)i;
	env_barrier(e, 8);
	for (int k = 0; k < e->attempts; k++) {
		int r = prot_rate_check(e->p, "api_calls", "user:123", 1000, e->window_ms, &in);
		if (r < 0)
			return 10;
		if (r == 1)
			count_window(e, &in);
	}
	return 0;
}

Test(rate, eight_processes_exactly_the_limit_per_window, .timeout = 120)
{
	struct env *e = start(1024, "");
	e->window_ms = 60000;
	e->attempts = 20000;
	th_fork_n(8, exact_child, e, 100000);
	cr_assert_eq(atomic_load(&e->errors), 0);
	cr_assert_eq(atomic_load(&e->per_window[0]), 1000, "the first window admits exactly 1000");
	/* a window boundary may fall inside the run: the next window admits at most 1000 */
	cr_assert_leq(atomic_load(&e->per_window[1]), 1000);
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "api_calls"), 1);
	stop(e);
}

static int gcra_child(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	env_barrier(e, 4);
	uint64_t end = th_now_ms() + 600;
	while (th_now_ms() < end) {
		int r = prot_rate_check_key(e->p, "smooth", "u", 1, NULL);
		if (r < 0)
			return 10;
		atomic_fetch_add(&e->admitted, (uint64_t)r);
	}
	return 0;
}

Test(rate, gcra_never_exceeds_burst_plus_rate, .timeout = 60)
{
	/* T = 10 ms, burst 20 */
	struct env *e = start(1024, "[key smooth]\nrate_limit = 100\nrate_window = 1s\nrate_burst = 20\n"
	                            "rate_algorithm = gcra\n");
	uint64_t t0 = prot_now_ns();
	th_fork_n(4, gcra_child, e, 20000);
	uint64_t elapsed = prot_now_ns() - t0;
	uint64_t bound = 20 + elapsed / (10 * MS) + 1;
	cr_assert_leq(atomic_load(&e->admitted), bound, "%lu admitted in %lu ms",
	              (unsigned long)atomic_load(&e->admitted), (unsigned long)(elapsed / MS));
	/* at least half the rate over the 600 ms: a loaded 2-core machine may leave the children
	 * without a CPU for part of it, and a child that does not call is not admitted */
	cr_assert_geq(atomic_load(&e->admitted), 20 + 600 / 10 / 2, "the rate is actually granted");
	stop(e);
}

Test(rate, window_rollover_and_honest_retry_after, .timeout = 60)
{
	struct env *e = start(1024, "[key g]\nrate_limit = 5\nrate_window = 500ms\nrate_burst = 2\n"
	                            "rate_algorithm = gcra\n[key f]\nrate_limit = 3\nrate_window = 300ms\nrate_algorithm = fixed_window\n");
	struct prot_rate_info in;
	const char *keys[] = {"g", "f"};
	for (int k = 0; k < 2; k++)
		for (int round = 0; round < 3; round++) {
			int n = 0, r;
			while ((r = prot_rate_check_key(e->p, keys[k], "e", 1, &in)) == 1)
				cr_assert_lt(++n, 10);
			cr_assert_eq(r, 0, "%s: %s", keys[k], prot_strerror(r));
			cr_assert_gt(in.retry_after_ms, 0);
			cr_assert_leq(in.retry_after_ms, 300);
			usleep((useconds_t)in.retry_after_ms * 1000);
			cr_assert_eq(prot_rate_check_key(e->p, keys[k], "e", 1, &in), 1,
			             "%s round %d: retry-after was not honest", keys[k], round);
		}
	/* Hammer style: a fixed window rolls over on its boundary */
	int n = 0;
	while (prot_rate_check(e->p, "op", "x", 4, 200, &in) == 1)
		n++;
	cr_assert_leq(n, 4);
	usleep((useconds_t)in.retry_after_ms * 1000);
	cr_assert_eq(prot_rate_check(e->p, "op", "x", 4, 200, &in), 1);
	cr_assert_eq(in.used, 1, "a fresh window");
	stop(e);
}

static int add_one(void *arg)
{
	++*(int *)arg;
	return 7;
}

Test(rate, cost_reset_execute_and_overlong, .timeout = 60)
{
	struct env *e = start(1024, "[key k]\nrate_limit = 4\nrate_window = 10s\nrate_algorithm = fixed_window\n");
	struct prot_rate_info in;
	const struct prot_rate_limit l = {.algo = PROT_RATE_GCRA, .limit = 2, .window_ms = 1000};
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 5, &in), -PROT_ECOST);
	cr_assert_eq(prot_rate_check_n(e->p, "op", "u", &l, 3, &in), -PROT_ECOST);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 4, &in), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, &in), 0);
	cr_assert_eq(prot_rate_reset(e->p, "k", "u"), 0);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 4, &in), 1, "reset: the bucket starts over");
	cr_assert_eq(prot_rate_reset(e->p, "k", "nobody"), -ENOENT);
	cr_assert_eq(prot_rate_check_key(e->p, "nokey", "u", 1, &in), -PROT_ENOKEY);

	int calls = 0, res = 0;
	cr_assert_eq(prot_rate_execute(e->p, "ex", "u", &l, add_one, &calls, &res, &in), 0);
	cr_assert_eq(prot_rate_execute(e->p, "ex", "u", &l, add_one, &calls, &res, &in), 0);
	cr_assert_eq(res, 7);
	cr_assert_eq(prot_rate_execute(e->p, "ex", "u", &l, add_one, &calls, &res, &in),
	             -PROT_ERATELIMITED);
	cr_assert_eq(calls, 2, "not run when denied");
	cr_assert_gt(in.retry_after_ms, 0);

	char ent[PROT_ENTITY_MAX + 2];
	memset(ent, 'x', sizeof ent);
	ent[PROT_ENTITY_MAX] = '\0';
	cr_assert_eq(prot_rate_check_key(e->p, "k", ent, 1, &in), 1);
	ent[PROT_ENTITY_MAX] = 'y';
	ent[PROT_ENTITY_MAX + 1] = '\0';
	cr_assert_eq(prot_rate_check_key(e->p, "k", ent, 1, &in), -PROT_ETOOLONG);
	cr_assert_eq(prot_rate_check(e->p, "op", ent, 1, 1, &in), -PROT_ETOOLONG);
	cr_assert_eq(prot_rate_status(e->p, "op", ent, &l, &in), -PROT_ETOOLONG);

	prot_t *ro;
	cr_assert_eq(prot_open(e->seg, PROT_OPEN_RDONLY, &ro), 0);
	cr_assert_eq(prot_rate_check_key(ro, "k", "u", 1, &in), -EROFS);
	cr_assert_eq(prot_rate_check(ro, "op", "u", 1, 1000, &in), -EROFS);
	cr_assert_eq(prot_rate_reset(ro, "k", "u"), -EROFS);
	cr_assert_eq(prot_rate_status(ro, "k", "u", &l, &in), 0, "status only reads");
	prot_close(ro);
	stop(e);
}

static int first_use_child2(void *arg, int i)
{
	struct env *e = arg;
	char ent[32];
	(void)i;
	env_barrier(e, 8);
	for (int k = 0; k < 500; k++) {
		snprintf(ent, sizeof ent, "fresh:%d", k);
		int r = prot_rate_check_key(e->p, "k", ent, 1, NULL);
		if (r < 0)
			return 10;
		atomic_fetch_add(&e->admitted, (uint64_t)r);
	}
	return 0;
}

Test(rate, concurrent_first_use_leaves_one_bucket, .timeout = 60)
{
	struct env *e = start(65536, "[key k]\nrate_limit = 2\nrate_window = 60s\n");
	th_fork_n(8, first_use_child2, e, 30000);
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "k"), 500);
	cr_assert_eq(atomic_load(&e->admitted), 1000, "2 per entity, exactly");
	stop(e);
}

static bool table_empty(void *arg)
{
	struct env *e = arg;
	return atomic_load(&prot_hdr(e->p)->rate_buckets_used) == 0;
}

Test(rate, churn_at_ten_times_capacity, .timeout = 120)
{
	/* 64 buckets; windows of 30 ms: protd's sweep (10 ms tick) frees them */
	struct env *e = start(64, "[key c]\nrate_limit = 2\nrate_window = 30ms\nrate_algorithm = fixed_window\n"
	                          "[key d]\nrate_limit = 2\nrate_window = 30ms\n");
	char ent[32];
	for (int w = 0; w < 20; w++) { /* 20 x 32 = 640 distinct entities */
		for (int i = 0; i < 32; i++) {
			snprintf(ent, sizeof ent, "w%d:%d", w, i);
			int r = prot_rate_check_key(e->p, (i & 1) ? "c" : "d", ent, 1, NULL);
			cr_assert_eq(r, 1, "wave %d entity %d: %s", w, i, r < 0 ? prot_strerror(r) : "denied");
		}
		cr_assert(th_until(table_empty, e, 5000), "wave %d: the sweep did not empty the table", w);
	}
	stop(e);
}

Test(rate, full_table_follows_its_policy, .timeout = 60)
{
	/* one group of 32 buckets */
	struct env *e = start(32, "[key fdeny]\nrate_limit = 5\nrate_window = 60s\nrate_on_full = deny\n"
	                          "[key fallow]\nrate_limit = 5\nrate_window = 60s\nrate_on_full = allow\n");
	struct prot_rate_info in;
	char ent[32];
	for (int i = 0; i < 32; i++) {
		snprintf(ent, sizeof ent, "e%d", i);
		cr_assert_eq(prot_rate_check_key(e->p, "fdeny", ent, 1, &in), 1);
	}
	cr_assert_eq(prot_rate_check_key(e->p, "fdeny", "one-more", 1, &in), -PROT_ETABLEFULL);
	cr_assert_eq(prot_rate_check_key(e->p, "fallow", "one-more", 1, &in), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "fdeny", "e3", 1, &in), 1, "existing buckets still work");
	struct prot_shm_header *h = prot_hdr(e->p);
	struct prot_key_slot *kd = seg_entry(h, REG_KEYS, (uint32_t)seg_find(h, REG_KEYS, "fdeny"));
	struct prot_key_slot *ka = seg_entry(h, REG_KEYS, (uint32_t)seg_find(h, REG_KEYS, "fallow"));
	cr_assert_eq(atomic_load(&kd->stats.rate_table_full), 1);
	cr_assert_eq(atomic_load(&ka->stats.rate_table_full), 1);
	struct th_out *o = th_shared(sizeof *o);
	cr_assert_eq(th_protctl(o, e->seg, "--json", "rate", "show", "fallow", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "\"table_full\":1"), "%s", o->out);
	cr_assert_eq(rate_count_op(h, NULL), 32);
	stop(e);
}

static struct prot_rate_bucket *bucket_in(struct env *e, const char *op, const char *ent)
{
	return bucket_of(prot_hdr(e->p), op, ent);
}

static bool config_moved(void *arg)
{
	struct env *e = arg;
	struct prot_info info;
	return prot_get_info(e->p, &info) == 0 && info.config_generation != e->window_ms;
}

Test(rate, reload_changes_limits_and_keeps_state, .timeout = 60)
{
	struct env *e = start(1024, "[key g]\nrate_limit = 10\nrate_window = 60s\nrate_algorithm = gcra\n"
	                            "[key f]\nrate_limit = 5\nrate_window = 1h\nrate_algorithm = fixed_window\n");
	struct prot_rate_info in;
	struct prot_info info;
	cr_assert_eq(prot_rate_check_key(e->p, "g", "u", 10, &in), 1); /* 60 s of debt at T = 6 s */
	cr_assert_eq(prot_rate_check_key(e->p, "f", "u", 5, &in), 1);
	uint64_t window_end = prot_now_ns() / MS + in.reset_after_ms;
	if (in.reset_after_ms < 5000)
		cr_skip("too close to a window boundary");
	struct prot_rate_bucket *bg = bucket_in(e, "g", "u"), *bf = bucket_in(e, "f", "u");
	uint64_t wg = atomic_load(&bg->word);

	cr_assert_eq(prot_get_info(e->p, &info), 0);
	e->window_ms = info.config_generation; /* (reused as "the generation before") */
	ini_text(1024, "[key g]\nrate_limit = 20\nrate_window = 60s\nrate_algorithm = gcra\n"
	               "[key f]\nrate_limit = 8\nrate_window = 1h\nrate_algorithm = fixed_window\n");
	cr_assert_eq(kill(e->protd, SIGHUP), 0);
	cr_assert(th_until(config_moved, e, 5000), "protd did not apply the reload");

	/* GCRA: the same TAT read with T = 3 s: still ~60 s of debt = 20 units of the new burst */
	cr_assert_eq(prot_rate_check_key(e->p, "g", "u", 1, &in), 0, "a fresh bucket would admit 20");
	cr_assert_eq(in.limit, 20);
	cr_assert_eq(in.used, 20);
	cr_assert_gt(in.retry_after_ms, 0);
	cr_assert_leq(in.retry_after_ms, 3000);
	cr_assert_eq(atomic_load(&bg->word), wg, "the bucket kept its word");
	/* fixed window: the count survives, the new limit applies */
	cr_assert_eq(prot_rate_check_key(e->p, "f", "u", 3, &in), 1);
	cr_assert_eq(in.used, 8);
	cr_assert_eq(prot_rate_check_key(e->p, "f", "u", 1, &in), 0);
	cr_assert_leq(prot_now_ns() / MS + in.reset_after_ms, window_end + 1, "the same window");
	cr_assert_eq(bucket_in(e, "f", "u"), bf, "the same bucket");
	stop(e);
}

static int deny_child(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	for (int k = 0; k < 1000; k++)
		if (prot_rate_check_key(e->p, (k & 1) ? "g" : "f", "u", 1, NULL) != 0)
			return 10;
	return 0;
}

Test(rate, denial_leaves_the_bucket_word_unchanged, .timeout = 60)
{
	/* g is GCRA by name (the default is the fixed window); f's window must not roll over during
	 * the run (a new window admits): an hour, and a run started well inside it */
	struct env *e = start(1024, "[key g]\nrate_limit = 3\nrate_window = 60s\nrate_algorithm = gcra\n"
	                            "[key f]\nrate_limit = 3\nrate_window = 1h\nrate_algorithm = fixed_window\n");
	uint8_t bg0[64], bf0[64], bg1[64], bf1[64];
	uint64_t now_ms = prot_now_ns() / MS, left = 3600 * 1000 - now_ms % (3600 * 1000);
	if (left < 30000) /* wait (at most 30 s) for the next window rather than skip the test */
		nanosleep(&(struct timespec){.tv_sec = (time_t)((left + 50) / 1000),
		                             .tv_nsec = (long)((left + 50) % 1000) * 1000000}, NULL);
	cr_assert_eq(prot_rate_check_key(e->p, "g", "u", 3, NULL), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "f", "u", 3, NULL), 1);
	struct prot_rate_bucket *bg = bucket_in(e, "g", "u"), *bf = bucket_in(e, "f", "u");
	memcpy(bg0, bg, 64);
	memcpy(bf0, bf, 64);
	th_fork_n(4, deny_child, e, 20000);
	memcpy(bg1, bg, 64);
	memcpy(bf1, bf, 64);
	cr_assert_eq(memcmp(bg0, bg1, 64), 0, "GCRA denial wrote line 0");
	cr_assert_eq(memcmp(bf0, bf1, 64), 0, "fixed-window denial wrote line 0");
	cr_assert_eq(atomic_load(&bg->denied) + atomic_load(&bf->denied), 4000);
	stop(e);
}

Test(rate, protctl_show_top_reset, .timeout = 60)
{
	struct env *e = start(1024, "[key api]\nrate_limit = 3\nrate_window = 60s\nrate_algorithm = fixed_window\n");
	struct th_out *o = th_shared(sizeof *o);
	for (int i = 0; i < 5; i++)
		prot_rate_check_key(e->p, "api", "heavy", 1, NULL);
	prot_rate_check_key(e->p, "api", "light", 1, NULL);
	cr_assert_eq(th_protctl(o, e->seg, "--json", "rate", "show", "api", NULL), 0, "%s", o->err);
	cr_assert(strstr(o->out, "\"buckets\":2"), "%s", o->out);
	cr_assert(strstr(o->out, "\"algorithm\":\"fixed_window\""), "%s", o->out);
	cr_assert_eq(th_protctl(o, e->seg, "--json", "rate", "show", "api", "heavy", NULL), 0);
	cr_assert(strstr(o->out, "\"used\":3,\"remaining\":0"), "%s", o->out);
	cr_assert(strstr(o->out, "\"allowed\":false"), "%s", o->out);
	cr_assert(strstr(o->out, "\"denied\":2"), "%s", o->out);
	cr_assert_eq(th_protctl(o, e->seg, "--json", "rate", "top", "api", "1", NULL), 0);
	cr_assert(strstr(o->out, "\"most_used\":[{\"entity\":\"heavy\",\"admitted\":3,\"denied\":2}]"),
	          "%s", o->out);
	cr_assert(strstr(o->out, "\"most_denied\":[{\"entity\":\"heavy\""), "%s", o->out);
	cr_assert_eq(th_protctl(o, e->seg, "rate", "reset", "api", "heavy", NULL), 0, "%s", o->err);
	cr_assert_eq(th_protctl(o, e->seg, "rate", "reset", "api", "heavy", NULL), 1);
	cr_assert_eq(th_protctl(o, e->seg, "rate", "show", "nokey", NULL), 1);
	cr_assert_eq(th_protctl(o, e->seg, "rate", "top", "api", "zero", NULL), 2);
	cr_assert_eq(prot_rate_check_key(e->p, "api", "heavy", 3, NULL), 1, "reset by protctl");
	stop(e);
}

/* A process killed in the middle of an insertion (simulated: it claims a bucket as the library
 * does, then dies) leaves a claim that protd's sweep gives back once the process is gone. */
static int claim_and_die(void *arg, int i)
{
	struct env *e = arg;
	struct prot_shm_header *h = prot_hdr(e->p); /* inherited handle: refreshes our identity */
	struct prot_rate_group *g = seg_entry(h, REG_RATE_GROUPS, 0);
	(void)i;
	for (int k = 0; k < RATE_GROUP_SLOTS; k++) {
		uint64_t m = atomic_load(&g->b[k].meta);
		if (META_ST_OF(m) != 0 || (atomic_load(&g->h.word) & (1ull << k)))
			continue;
		if (atomic_compare_exchange_strong(&g->b[k].meta, &m, (m + (1ull << 32)) | 1)) {
			atomic_store(&g->b[k].allowed, prot_self(e->p, h) | CLAIM_TAG);
			return 0; /* and exit, holding the claim */
		}
	}
	return 1;
}

static bool can_insert(void *arg)
{
	struct env *e = arg;
	return prot_rate_check_key(e->p, "k", "latecomer", 1, NULL) == 1;
}

Test(rate, a_dead_claimers_bucket_comes_back, .timeout = 60)
{
	struct env *e = start(32, "[key k]\nrate_limit = 5\nrate_window = 1h\n");
	char ent[32];
	th_fork_n(1, claim_and_die, e, 5000);
	for (int i = 0; i < 31; i++) {
		snprintf(ent, sizeof ent, "e%d", i);
		cr_assert_eq(prot_rate_check_key(e->p, "k", ent, 1, NULL), 1);
	}
	cr_assert(th_until(can_insert, e, 5000), "protd's sweep did not free the dead claimer's bucket");
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "k"), 32);
	stop(e);
}

/* The per-handle memo of a key's slot follows keys that a reload removes and adds back. */
static void reload_to(struct env *e, const char *sections)
{
	struct prot_info info;
	cr_assert_eq(prot_get_info(e->p, &info), 0);
	e->window_ms = info.config_generation; /* (see config_moved) */
	ini_text(1024, sections);
	cr_assert_eq(kill(e->protd, SIGHUP), 0);
	cr_assert(th_until(config_moved, e, 5000), "protd did not apply the reload");
}

Test(rate, keys_removed_and_added_back_by_reloads, .timeout = 60)
{
	struct env *e = start(1024, "[key a]\nrate_limit = 2\nrate_window = 1h\nrate_algorithm = fixed_window\n"
	                            "[key b]\nrate_limit = 2\nrate_window = 1h\n");
	struct prot_rate_info in;
	cr_assert_eq(prot_rate_check_key(e->p, "a", "u", 1, &in), 1);
	cr_assert_eq(in.limit, 2);
	reload_to(e, "[key b]\nrate_limit = 2\nrate_window = 1h\n");
	cr_assert_eq(prot_rate_check_key(e->p, "a", "u", 1, &in), -PROT_ENOKEY, "a is gone");
	cr_assert_eq(prot_rate_check_key(e->p, "b", "u", 1, &in), 1);
	reload_to(e, "[key b]\nrate_limit = 2\nrate_window = 1h\n"
	             "[key a]\nrate_limit = 7\nrate_window = 1h\nrate_algorithm = fixed_window\n");
	cr_assert_eq(prot_rate_check_key(e->p, "a", "u", 1, &in), 1, "a is back");
	cr_assert_eq(in.limit, 7, "with its new limits");
	stop(e);
}

/* Kilobytes of protd's mapping of segment seg that are resident in protd (Rss in /proc/PID/smaps):
 * what its sweep has touched. */
static long seg_rss_kb(pid_t pid, const char *seg)
{
	char path[64], line[512], want[128];
	snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
	snprintf(want, sizeof want, "/dev/shm%s", seg);
	FILE *f = fopen(path, "re");
	cr_assert(f, "%s", path);
	long kb = -1;
	bool in = false;
	while (fgets(line, sizeof line, f)) {
		if (strchr(line, '/') && strstr(line, " /"))
			in = strstr(line, want) != NULL;
		if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	cr_assert_geq(kb, 0, "no mapping of %s in %s", want, path);
	return kb;
}

static bool swept_twice(void *arg)
{
	struct env *e = arg;
	struct prot_shm_header *h = prot_hdr(e->p);
	return atomic_load(&h->rate_sweep_cursor) >= 2ull * h->rate_groups;
}

static bool all_expired(void *arg)
{
	struct env *e = arg;
	struct prot_info in;
	return prot_get_info(e->p, &in) == 0 && in.rate_buckets_used == 0;
}

/* The sweep visits only groups holding buckets: an idle protd with a 130 MiB table maps almost none
 * of it (it used to map all of it within one pass), and buckets still expire. */
Test(rate, idle_sweep_maps_only_groups_in_use, .timeout = 60)
{
	struct env *e = start(1u << 20, "[key k]\nrate_limit = 5\nrate_window = 20ms\n");
	cr_assert(th_until(swept_twice, e, 15000), "the sweep did not go round the table twice");
	long idle = seg_rss_kb(e->protd, e->seg);
	cr_assert_lt(idle, 4096, "idle protd maps %ld kB of its segment", idle);
	char ent[32];
	for (int i = 0; i < 200; i++) {
		snprintf(ent, sizeof ent, "user:%d", i);
		cr_assert_eq(prot_rate_check_key(e->p, "k", ent, 1, NULL), 1);
	}
	cr_assert(th_until(all_expired, e, 15000), "expired buckets were not swept");
	long used = seg_rss_kb(e->protd, e->seg);
	/* 200 entities touch at most 200 groups of 4160 B: two pages each */
	cr_assert_lt(used, idle + 200 * 12, "protd maps %ld kB after 200 entities (idle: %ld kB)", used,
	             idle);
	stop(e);
}
