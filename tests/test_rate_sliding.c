/* test_rate_sliding.c — the sliding window (lib/rate_sliding.c) and Hammer's counters
 * (lib/rate_counter.c) with real processes: exactness under eight forked processes (every
 * interval of one window counted from the admissions' recorded times), retry-after, a process
 * killed -9 between the ring's two CASes, rings given back by removal and by protd's sweep and
 * reused with a new generation, the INI's and the API's limits, and inc/get/set exact across
 * processes.
 *
 * Admission times: the tests pass the clock reading they record (rate_check_h's now), so the
 * recorded time is the decision's own; the ring keeps it in microseconds.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "craft.h"
#include "harness.h"
#include "internal.h"
#include "rate_sliding.h"

#define MS 1000000ull
#define US 1000ull

/* ---- fixtures --------------------------------------------------------------------------------- */

static struct prot_shm_header *sw_seg(uint32_t rings, uint32_t ring_limit)
{
	struct seg_geometry g = {.max_keys = 2, .max_breakers = 1, .max_pools = 1, .pool_max_slots = 1,
	                         .pool_max_waiters = 1, .events = 64, .rate_entities = 1024,
	                         .sliding_buckets = rings, .sliding_max_limit = ring_limit};
	return craft_anon(&g);
}

static const char *sw_ini(uint32_t rings, const char *sections)
{
	return th_write_file("protd.ini",
	                     "[segment]\nmax_keys = 8\nmax_breakers = 1\nmax_pools = 1\npool_max_slots = 1\n"
	                     "pool_max_waiters = 1\nrate_entities = 1024\nevents = 64\n"
	                     "sliding_buckets = %u\nsliding_max_limit = 64\n\n[daemon]\ntick = 10ms\n\n%s",
	                     rings, sections);
}

static struct prot_rate_limit sw(uint64_t limit, uint64_t window_ms)
{
	return (struct prot_rate_limit){.algo = PROT_RATE_SLIDING_WINDOW, .limit = limit,
	                                .window_ms = window_ms};
}

static uint64_t T0;
static uint64_t at(uint64_t ms)
{
	if (!T0)
		T0 = (prot_now_ns() / (60000 * MS) + 2) * 60000 * MS;
	return T0 + ms * MS;
}

/* The bucket of (op, ent) and its index in the table (its ring's owner). */
struct found {
	const char *entity;
	struct rate_view v;
	int n;
};
static int find_cb(const struct rate_view *v, void *arg)
{
	struct found *f = arg;
	if (strcmp(v->entity, f->entity) == 0) {
		f->v = *v;
		f->n++;
	}
	return 0;
}
static struct rate_view view_of(struct prot_shm_header *h, const char *op, const char *ent)
{
	struct found f = {.entity = ent};
	rate_foreach(h, op, find_cb, &f);
	cr_assert_eq(f.n, 1, "bucket %s/%s: %d", op, ent, f.n);
	return f.v;
}
static uint32_t bidx_of(const struct rate_view *v)
{
	return v->group * RATE_GROUP_SLOTS + v->slot;
}
static struct prot_rate_ring *ring_at(struct prot_shm_header *h, uint64_t ref)
{
	cr_assert_lt(RING_REF_IDX(ref), seg_count(h, REG_RATE_RINGS));
	return seg_entry(h, REG_RATE_RINGS, RING_REF_IDX(ref));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The most admissions in any interval [t, t + w_us) of the sorted times ts[0..n). */
static uint64_t max_in_window(const uint64_t *ts, uint64_t n, uint64_t w_us)
{
	uint64_t best = 0;
	for (uint64_t i = 0, j = 0; i < n; i++) {
		while (j < n && ts[j] < ts[i] + w_us)
			j++;
		if (j - i > best)
			best = j - i;
	}
	return best;
}

/* ---- exactness under eight processes ----------------------------------------------------------- */

#define REC_MAX 8192
struct rec {
	prot_t *p;
	_Atomic int ready;
	_Atomic uint64_t n, errors, denied;
	struct prot_rate_limit lim;
	uint64_t run_ms;
	uint64_t ts[REC_MAX];
};

static int exact_child(void *arg, int i)
{
	struct rec *r = arg;
	struct prot_shm_header *h = prot_hdr(r->p);
	(void)i;
	atomic_fetch_add(&r->ready, 1);
	th_wait_flag(&r->ready, 8, 5000);
	uint64_t end = prot_now_ns() + r->run_ms * MS;
	for (uint64_t now = prot_now_ns(); now < end; now = prot_now_ns()) {
		int res = rate_check_h(r->p, h, "sw", "hot", &r->lim, 1, now, NULL);
		if (res < 0) {
			atomic_fetch_add(&r->errors, 1);
			return 10;
		}
		if (res == 0) {
			atomic_fetch_add(&r->denied, 1);
			continue;
		}
		uint64_t k = atomic_fetch_add(&r->n, 1);
		if (k < REC_MAX)
			r->ts[k] = now / US; /* the ring's unit */
	}
	return 0;
}

Test(sliding, eight_processes_never_more_than_limit_in_any_window, .timeout = 120)
{
	const char *seg = th_segname("sw-exact");
	pid_t protd = th_protd_start(sw_ini(4, ""), seg, NULL);
	struct rec *r = th_shared(sizeof *r);
	r->p = th_open(seg, 2000);
	r->lim = sw(20, 50);
	r->run_ms = 800;
	th_fork_n(8, exact_child, r, 60000);
	uint64_t n = atomic_load(&r->n);
	cr_assert_eq(atomic_load(&r->errors), 0);
	cr_assert_leq(n, REC_MAX, "recorded every admission");
	qsort(r->ts, n, sizeof r->ts[0], cmp_u64);
	cr_assert_eq(max_in_window(r->ts, n, 50 * 1000), 20,
	             "never more than the limit in any 50 ms (and the limit reached)");
	/* and not by denying too much: 800 ms hold 16 windows of 20 (a slow machine loses some) */
	cr_assert_geq(n, 20 * 16 / 2, "admitted %lu", (unsigned long)n);
	cr_assert_gt(atomic_load(&r->denied), 0);
	struct rate_view v = view_of(prot_hdr(r->p), "sw", "hot");
	cr_assert_eq(v.allowed, n, "the bucket counted every admission once");
	prot_close(r->p);
	th_protd_stop(protd);
}

/* ---- retry-after, status, limits --------------------------------------------------------------- */

/* One unit at us microseconds after T0. */
static int chk(struct prot_shm_header *h, const char *ent, const struct prot_rate_limit *l,
               uint64_t us, struct prot_rate_info *in)
{
	return rate_check_h(NULL, h, "op", ent, l, 1, at(0) + us * US, in);
}

Test(sliding, retry_after_is_until_the_oldest_admission_leaves)
{
	struct prot_shm_header *h = sw_seg(4, 64);
	struct prot_rate_limit l = sw(3, 100);
	struct prot_rate_info in;
	/* times in microseconds from T0: admissions at 0, 10 ms, 20 ms */
	cr_assert_eq(chk(h, "e", &l, 0, &in), 1);
	cr_assert_eq(chk(h, "e", &l, 10000, &in), 1);
	cr_assert_eq(chk(h, "e", &l, 20000, &in), 1);
	cr_assert_eq(in.used, 3);
	cr_assert_eq(in.remaining, 0);
	cr_assert_eq(in.reset_after_ms, 100, "the newest leaves at 120 ms");
	/* at 50 ms the oldest (0) leaves at 100 ms */
	cr_assert_eq(chk(h, "e", &l, 50000, &in), 0);
	cr_assert_eq(in.retry_after_ms, 50);
	cr_assert_eq(in.used, 3);
	/* a microsecond early is still early (and rounds up to 1 ms) */
	cr_assert_eq(chk(h, "e", &l, 99999, &in), 0);
	cr_assert_eq(in.retry_after_ms, 1);
	/* exactly when it leaves: admitted; now the oldest counted is the one at 10 ms */
	cr_assert_eq(chk(h, "e", &l, 100000, &in), 1);
	cr_assert_eq(chk(h, "e", &l, 100500, &in), 0);
	cr_assert_eq(in.retry_after_ms, 10, "9.5 ms, rounded up");
	/* denials write nothing: the same answer again */
	cr_assert_eq(chk(h, "e", &l, 100500, &in), 0);
	cr_assert_eq(in.retry_after_ms, 10);
	/* each slot frees when its admission leaves: 10 ms at 110 ms, 20 ms at 120 ms */
	cr_assert_eq(chk(h, "e", &l, 105000, &in), 0);
	cr_assert_eq(in.retry_after_ms, 5);
	cr_assert_eq(chk(h, "e", &l, 110000, &in), 1);
	cr_assert_eq(chk(h, "e", &l, 115000, &in), 0);
	cr_assert_eq(in.retry_after_ms, 5);
	cr_assert_eq(chk(h, "e", &l, 120000, &in), 1);
	cr_assert_eq(chk(h, "e", &l, 199999, &in), 0, "100, 110, 120 are in the window");

	/* status: the same quantities as a fixed window, charging nothing */
	struct rate_params rp;
	rate_params_of_limit(&l, &rp);
	cr_assert_eq(rate_status_h(h, "op", "e", &rp, at(0) + 150000 * US, &in), 0);
	cr_assert_eq(in.used, 3);
	cr_assert_eq(in.remaining, 0);
	cr_assert_eq(in.allowed, 0);
	cr_assert_eq(in.retry_after_ms, 50, "until 100 ms leaves");
	cr_assert_eq(rate_status_h(h, "op", "e", &rp, at(0) + 205000 * US, &in), 0);
	cr_assert_eq(in.used, 2, "110 ms and 120 ms are in (105, 205]");
	cr_assert_eq(in.remaining, 1);
	cr_assert_eq(in.allowed, 1);
	cr_assert_eq(in.retry_after_ms, 0);
	cr_assert_eq(in.reset_after_ms, 15);
	cr_assert_eq(rate_status_h(h, "op", "never", &rp, at(0), &in), 0);
	cr_assert_eq(in.used, 0);
	cr_assert_eq(in.remaining, 3);
	cr_assert_eq(in.allowed, 1);

	/* cost: Hammer's sliding window has none; more than 1 is PROT_ECOST, never a partial charge */
	cr_assert_eq(rate_check_h(NULL, h, "op", "e", &l, 2, at(1000), NULL), -PROT_ECOST);
	/* the limit: at most the segment's rings (64 here), and at most 32768 anywhere */
	struct prot_rate_limit big = sw(65, 100), huge = sw(32769, 100);
	cr_assert_eq(rate_check_h(NULL, h, "op", "b", &big, 1, at(0), NULL), -EINVAL);
	char why[200];
	cr_assert_eq(rate_limit_check(&big, why, sizeof why), 0, "fits the API's maximum");
	cr_assert_eq(rate_limit_check(&huge, why, sizeof why), -EINVAL);
	cr_assert(strstr(why, "32768"), "%s", why);
	seg_unmap(h, seg_geo(h)->total_size);
}

/* protd --check-config on sw_ini(rings, sections): its exit status, its output in *o, the file in
 * *ini. */
static int check_config(uint32_t rings, const char *sections, struct th_out *o, const char **ini)
{
	*ini = sw_ini(rings, sections);
	const char *argv[] = {th_protd_path(), "--check-config", *ini, NULL};
	return th_run(o, 10000, argv);
}

Test(sliding, ini_refuses_a_limit_above_sliding_max_limit_with_its_line)
{
	struct th_out o;
	const char *ini;
	cr_assert_neq(check_config(4, "[key api]\nrate_limit = 65\nrate_window = 1s\n"
	                              "rate_algorithm = sliding_window\n", &o, &ini), 0);
	char want[256];
	snprintf(want, sizeof want, "%s:15: [key api]", ini);
	cr_assert(strstr(o.err, want), "no FILE:LINE (%s) in:\n%s", want, o.err);
	cr_assert(strstr(o.err, "sliding_max_limit 64"), "%s", o.err);
	cr_assert_neq(check_config(0, "[key api]\nrate_limit = 5\nrate_window = 1s\n"
	                              "rate_algorithm = sliding_window\n", &o, &ini), 0);
	cr_assert(strstr(o.err, "needs [segment] sliding_buckets"), "%s", o.err);
	cr_assert_eq(check_config(4, "[key api]\nrate_limit = 64\nrate_window = 1s\n"
	                             "rate_algorithm = sliding_window\n", &o, &ini), 0, "%s", o.err);
}

/* rate_clock = realtime is for calendar windows: a sliding window's ring holds CLOCK_MONOTONIC
 * admission times, so protd refuses the pair (coarse, the same scale, is accepted). */
Test(sliding, ini_refuses_a_sliding_window_on_the_calendar_clock)
{
	struct th_out o;
	const char *ini;
	cr_assert_neq(check_config(4, "[key api]\nrate_limit = 5\nrate_window = 1s\nrate_algorithm = "
	                              "sliding_window\nrate_clock = realtime\n", &o, &ini), 0);
	cr_assert(strstr(o.err, "rate_clock = realtime is for rate_algorithm = fixed_window"), "%s", o.err);
	cr_assert_eq(check_config(4, "[key api]\nrate_limit = 5\nrate_window = 1s\nrate_algorithm = "
	                             "sliding_window\nrate_clock = coarse\n", &o, &ini), 0, "%s", o.err);
}

/* A key from the INI decides on its sliding window through the public API. */
Test(sliding, key_from_the_ini_is_a_sliding_window, .timeout = 30)
{
	const char *seg = th_segname("sw-key");
	pid_t protd = th_protd_start(sw_ini(4, "[key api]\nrate_limit = 3\nrate_window = 1h\n"
	                                       "rate_algorithm = sliding_window\n"), seg, NULL);
	prot_t *p = th_open(seg, 2000);
	struct prot_rate_info in;
	for (int k = 0; k < 3; k++)
		cr_assert_eq(prot_rate_check_key(p, "api", "u", 1, &in), 1);
	cr_assert_eq(prot_rate_check_key(p, "api", "u", 1, &in), 0);
	cr_assert_geq(in.retry_after_ms, 3600 * 1000 - 5000, "an hour after the first: %lu",
	              (unsigned long)in.retry_after_ms);
	cr_assert_eq(prot_rate_check_key(p, "api", "u", 2, &in), -PROT_ECOST);
	struct rate_view v = view_of(prot_hdr(p), "api", "u");
	cr_assert_eq(v.algo, PROT_RATE_SLIDING_WINDOW);
	prot_close(p);
	th_protd_stop(protd);
}

/* ---- a process killed between the two CASes --------------------------------------------------- */

/* The child does what an admission does up to its first CAS — the slot, for the current head —
 * then stops; the parent kills it with SIGKILL there. (The library has no test hook: the child
 * performs the slot CAS with the ring's own encoding, rate_sliding.h.) */
struct killed {
	struct prot_shm_header *h;
	uint64_t ref, t_us;
};

static int half_admit_child(void *arg, int i)
{
	struct killed *k = arg;
	struct prot_rate_ring *rg = seg_entry(k->h, REG_RATE_RINGS, RING_REF_IDX(k->ref));
	uint64_t lim = atomic_load(&rg->limit), hd = atomic_load(&rg->head);
	_Atomic uint64_t *slot = &rate_ring_slots(rg)[hd % lim];
	uint64_t s = atomic_load(slot);
	(void)i;
	if (!atomic_compare_exchange_strong(slot, &s, SW_SLOT(k->t_us, hd)))
		return 3;
	raise(SIGSTOP); /* between the slot CAS and the head CAS */
	return 4;       /* never: SIGKILL */
}

Test(sliding, process_killed_between_the_two_cases_blocks_nobody, .timeout = 30)
{
	struct killed *k = th_shared(sizeof *k);
	k->h = sw_seg(2, 64);
	struct prot_rate_limit l = sw(3, 100);
	struct prot_rate_info in;
	cr_assert_eq(chk(k->h, "e", &l, 0, &in), 1);
	struct rate_view v = view_of(k->h, "op", "e");
	k->ref = v.word;
	k->t_us = (at(0) + 5000 * US) / US; /* its admission at 5 ms */
	struct prot_rate_ring *rg = ring_at(k->h, k->ref);
	uint64_t head0 = atomic_load(&rg->head);

	pid_t c = th_fork(half_admit_child, k, 0);
	int st;
	cr_assert_eq(waitpid(c, &st, WUNTRACED), c);
	cr_assert(WIFSTOPPED(st), "the child stopped between the CASes");
	cr_assert_eq(atomic_load(&rg->head), head0, "its slot is written, the head not moved");
	th_kill9(c);

	/* the next caller moves the head on for it and decides after it: the dead process's
	 * admission counts (3 = 0 ms, 5 ms, 10 ms), nothing is lost or doubled, nobody waits */
	cr_assert_eq(chk(k->h, "e", &l, 10000, &in), 1);
	cr_assert_eq(atomic_load(&rg->head), head0 + 2);
	cr_assert_eq(chk(k->h, "e", &l, 20000, &in), 0);
	cr_assert_eq(in.retry_after_ms, 80, "until the first (0 ms) leaves");
	cr_assert_eq(in.used, 3);
	cr_assert_eq(chk(k->h, "e", &l, 100000, &in), 1);
	cr_assert_eq(chk(k->h, "e", &l, 100001, &in), 0);
	cr_assert_eq(in.retry_after_ms, 5, "then the dead process's, at 5 ms");
	seg_unmap(k->h, seg_geo(k->h)->total_size);
}

/* ---- rings: removal, re-creation, generations, the sweep -------------------------------------- */

Test(sliding, removed_bucket_gives_its_ring_to_the_next_with_a_new_generation)
{
	struct prot_shm_header *h = sw_seg(1, 8); /* one ring */
	struct prot_rate_limit l = sw(2, 1000);
	struct prot_rate_info in;
	cr_assert_eq(chk(h, "a", &l, 0, &in), 1);
	cr_assert_eq(chk(h, "a", &l, 1000, &in), 1);
	cr_assert_eq(chk(h, "a", &l, 2000, &in), 0);
	struct rate_view va = view_of(h, "op", "a");
	/* the only ring is held: a second sliding bucket is table-full */
	cr_assert_eq(chk(h, "b", &l, 0, &in), -PROT_ETABLEFULL);
	/* reset gives it back at once; b takes it (same ring, next generation) and starts empty */
	cr_assert_eq(rate_reset_h(h, "op", "a"), 0);
	cr_assert_eq(chk(h, "b", &l, 3000, &in), 1);
	cr_assert_eq(in.used, 1, "none of a's admissions");
	struct rate_view vb = view_of(h, "op", "b");
	cr_assert_eq(RING_REF_IDX(vb.word), RING_REF_IDX(va.word));
	cr_assert_eq(RING_REF_GEN(vb.word), RING_REF_GEN(va.word) + 1);
	/* a stale reference (a's) is refused by the ring, whatever bucket it is presented for */
	struct rate_params rp;
	rate_params_of_limit(&l, &rp);
	cr_assert_eq(rate_sliding_charge(h, bidx_of(&va), va.word, &rp, at(4), NULL), RATE_SW_GONE);
	cr_assert_eq(rate_sliding_charge(h, bidx_of(&vb), va.word, &rp, at(4), NULL), RATE_SW_GONE);
	cr_assert_eq(chk(h, "b", &l, 4000, &in), 1);
	cr_assert_eq(chk(h, "b", &l, 5000, &in), 0, "b's own two");
	/* a limit change starts the bucket over, on a fresh ring generation */
	struct prot_rate_limit l3 = sw(3, 1000);
	cr_assert_eq(chk(h, "b", &l3, 6000, &in), 1);
	cr_assert_eq(in.used, 1);
	cr_assert_eq(RING_REF_GEN(view_of(h, "op", "b").word), RING_REF_GEN(vb.word) + 1);

	/* expiry: protd's sweep removes b once its last admission is a window (+ grace) old and
	 * gives the ring back; not before */
	uint64_t swept = 0;
	rate_sweep(ANON_VIEW(h), at(6) + 1000 * MS, RATE_GRACE_DEFAULT_MS * MS, &swept);
	cr_assert_eq(swept, 0, "within the grace");
	cr_assert_eq(chk(h, "c", &l, 7000, &in), -PROT_ETABLEFULL);
	rate_sweep(ANON_VIEW(h), at(6) + 1200 * MS, RATE_GRACE_DEFAULT_MS * MS, &swept);
	cr_assert_eq(swept, 1);
	cr_assert_eq(chk(h, "c", &l, 1300000, &in), 1, "c gets the ring");
	seg_unmap(h, seg_geo(h)->total_size);
}

/* A reset forgets every scale of (operation, entity) (issue 14 part A): each sliding window's
 * ring is closed and given back with its bucket, binary entities included. */
Test(sliding, reset_of_every_scale_gives_back_every_ring)
{
	struct prot_shm_header *h = sw_seg(2, 8); /* two rings */
	struct prot_rate_limit s1 = sw(2, 1000), s2 = sw(2, 2000);
	struct prot_rate_limit fw = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 2, .window_ms = 1000};
	static const char ent[3] = {'a', 0, 'z'}; /* binary: a NUL inside */
	struct prot_rate_info in;
	cr_assert_eq(rate_check_bin_h(NULL, h, "op", ent, 3, &s1, 1, at(0), &in), 1);
	cr_assert_eq(rate_check_bin_h(NULL, h, "op", ent, 3, &s2, 1, at(0), &in), 1, "another scale");
	cr_assert_eq(rate_check_bin_h(NULL, h, "op", ent, 3, &fw, 1, at(0), &in), 1);
	cr_assert_eq(rate_check_bin_h(NULL, h, "op", "a", 1, &s1, 1, at(0), &in), -PROT_ETABLEFULL,
	             "both rings held (\"a\" is another entity)");
	cr_assert_eq(rate_reset_bin_h(h, "op", ent, 3), 0);
	cr_assert_eq(rate_reset_bin_h(h, "op", ent, 3), -ENOENT, "every scale gone");
	/* both rings free: two sliding buckets of another entity take them, fresh */
	cr_assert_eq(chk(h, "b", &s1, 1000, &in), 1);
	cr_assert_eq(in.used, 1);
	cr_assert_eq(chk(h, "b", &s2, 1000, &in), 1);
	cr_assert_eq(in.used, 1);
	cr_assert_eq(rate_check_bin_h(NULL, h, "op", ent, 3, &s1, 1, at(0) + 2000 * US, &in),
	             -PROT_ETABLEFULL, "and they are held again");
	seg_unmap(h, seg_geo(h)->total_size);
}

/* The sweep expires a sliding window [daemon] rate_grace after its last admission left the window
 * (the grace protd passes, not a constant). */
Test(sliding, sweep_expires_a_sliding_window_after_the_configured_grace)
{
	struct prot_shm_header *h = sw_seg(1, 8);
	struct prot_rate_limit l = sw(2, 1000);
	uint64_t swept = 0, grace = 700 * MS;
	cr_assert_eq(chk(h, "a", &l, 0, NULL), 1);
	rate_sweep(ANON_VIEW(h), at(1000) + 600 * MS, grace, &swept);
	cr_assert_eq(swept, 0, "window + 600 ms: within a 700 ms grace (the default would expire it)");
	cr_assert_eq(chk(h, "b", &l, 1600000, NULL), -PROT_ETABLEFULL, "the ring is still a's");
	rate_sweep(ANON_VIEW(h), at(1000) + 800 * MS, grace, &swept);
	cr_assert_eq(swept, 1, "window + 800 ms: expired");
	cr_assert_eq(chk(h, "b", &l, 1800000, NULL), 1, "b gets the ring");
	seg_unmap(h, seg_geo(h)->total_size);
}

/* A sliding bucket's status (prot_rate_status_bin / _key, protctl rate show) reads its ring: the
 * admissions in the window, the last one as updated_ms, expires_at when the newest leaves. */
Test(sliding, status_of_a_sliding_bucket_reads_its_ring)
{
	struct prot_shm_header *h = sw_seg(1, 8);
	struct prot_rate_limit l = sw(3, 1000);
	struct prot_rate_status st;
	struct rate_params rp;
	uint64_t t0 = at(0) / MS;
	cr_assert_eq(chk(h, "a", &l, 0, NULL), 1);
	cr_assert_eq(chk(h, "a", &l, 250000, NULL), 1);
	rate_params_of_limit(&l, &rp);
	cr_assert_eq(rate_status_bin_h(h, "op", "a", 1, &rp, at(500), &st), 0);
	cr_assert_eq(st.exists, 1);
	cr_assert_eq(st.algo, PROT_RATE_SLIDING_WINDOW);
	cr_assert_eq(st.info.used, 2);
	cr_assert_eq(st.info.remaining, 1);
	cr_assert_eq(st.created_ms, t0);
	cr_assert_eq(st.updated_ms, t0 + 250, "the last admission");
	cr_assert_eq(st.expires_at_ms, t0 + 1250, "the newest admission leaves the window");
	/* without limits (protctl): the ring's own */
	struct rate_view v = view_of(h, "op", "a");
	rate_view_status(h, &v, NULL, at(500), &st);
	cr_assert_eq(st.info.limit, 3);
	cr_assert_eq(st.info.used, 2);
	cr_assert_eq(st.expires_at_ms, t0 + 1250);
	seg_unmap(h, seg_geo(h)->total_size);
}

/* A remover that dies after emptying the bucket leaves its ring held by no bucket: the sweep
 * gives it back (after the grace that covers an inserter about to publish). */
Test(sliding, sweep_gives_back_a_ring_no_bucket_holds)
{
	struct prot_shm_header *h = sw_seg(1, 8);
	struct prot_rate_limit l = sw(2, 1000);
	cr_assert_eq(chk(h, "a", &l, 0, NULL), 1);
	struct rate_view va = view_of(h, "op", "a");
	struct prot_rate_ring *rg = ring_at(h, va.word);
	/* as if a's remover died right after the removal, before giving the ring back */
	uint64_t own = atomic_load(&rg->own);
	cr_assert_eq(rate_reset_h(h, "op", "a"), 0);
	atomic_store(&rg->own, own);
	cr_assert_eq(chk(h, "b", &l, 0, NULL), -PROT_ETABLEFULL);
	uint64_t swept;
	rate_sweep(ANON_VIEW(h), atomic_load(&rg->since_ns) + 500 * MS, RATE_GRACE_DEFAULT_MS * MS,
	           &swept);
	cr_assert_eq(chk(h, "b", &l, 0, NULL), -PROT_ETABLEFULL, "within the grace");
	rate_sweep(ANON_VIEW(h), atomic_load(&rg->since_ns) + 1500 * MS, RATE_GRACE_DEFAULT_MS * MS,
	           &swept);
	cr_assert_eq(chk(h, "b", &l, 0, NULL), 1);
	seg_unmap(h, seg_geo(h)->total_size);
}

static bool b_admitted(void *arg)
{
	return rate_check_h(arg, prot_hdr(arg), "op", "b", &(struct prot_rate_limit){
	                            .algo = PROT_RATE_SLIDING_WINDOW, .limit = 2, .window_ms = 20},
	                    1, 0, NULL) == 1;
}

Test(sliding, protd_sweep_returns_the_rings_of_expired_buckets, .timeout = 30)
{
	const char *seg = th_segname("sw-sweep");
	pid_t protd = th_protd_start(sw_ini(1, ""), seg, NULL);
	prot_t *p = th_open(seg, 2000);
	struct prot_rate_limit l = sw(2, 20);
	cr_assert_eq(prot_rate_check_n(p, "op", "a", &l, 1, NULL), 1);
	cr_assert_eq(prot_rate_check_n(p, "op", "b", &l, 1, NULL), -PROT_ETABLEFULL);
	uint64_t t0 = th_now_ms();
	cr_assert(th_until(b_admitted, p, 3000), "the ring came back");
	cr_assert_geq(th_now_ms() - t0, 20 + 100 - 15, "not before window + grace");
	prot_close(p);
	th_protd_stop(protd);
}

/* ---- counters ---------------------------------------------------------------------------------- */

struct cnt {
	prot_t *p;
	struct prot_rate_limit lim;
	_Atomic int ready;
	_Atomic uint64_t errors, last_max;
};

static int inc_child(void *arg, int i)
{
	struct cnt *c = arg;
	(void)i;
	atomic_fetch_add(&c->ready, 1);
	th_wait_flag(&c->ready, 8, 5000);
	for (int k = 0; k < 100; k++) {
		uint64_t n = 0;
		if (prot_rate_inc(c->p, "cnt", "e", &c->lim, 1, &n) != 0) {
			atomic_fetch_add(&c->errors, 1);
			return 10;
		}
		uint64_t m = atomic_load(&c->last_max);
		while (n > m && !atomic_compare_exchange_weak(&c->last_max, &m, n))
			;
	}
	return 0;
}

static void counters_exact(struct cnt *c, const struct prot_rate_limit *lim)
{
	uint64_t n = 99;
	c->lim = *lim;
	atomic_store(&c->ready, 0);
	atomic_store(&c->last_max, 0);
	cr_assert_eq(prot_rate_get(c->p, "cnt", "e", lim, &n), 0);
	cr_assert_eq(n, 0, "no bucket: 0, as Hammer's get");
	th_fork_n(8, inc_child, c, 60000);
	cr_assert_eq(atomic_load(&c->errors), 0);
	cr_assert_eq(prot_rate_get(c->p, "cnt", "e", lim, &n), 0);
	cr_assert_eq(n, 800, "8 processes x 100 incs, exactly");
	cr_assert_eq(atomic_load(&c->last_max), 800, "each inc returned the count after it");
	/* decisions see the counts: 1000 - 800 more, then denied */
	int admitted = 0;
	for (int k = 0; k < 300; k++)
		admitted += prot_rate_check_n(c->p, "cnt", "e", lim, 1, NULL) == 1;
	cr_assert_eq(admitted, 200);
	cr_assert_eq(prot_rate_set(c->p, "cnt", "e", lim, 7, &n), 0);
	cr_assert_eq(n, 7);
	cr_assert_eq(prot_rate_get(c->p, "cnt", "e", lim, &n), 0);
	cr_assert_eq(n, 7);
	cr_assert_eq(prot_rate_inc(c->p, "cnt", "e", lim, 3, &n), 0);
	cr_assert_eq(n, 10);
	cr_assert_eq(prot_rate_reset(c->p, "cnt", "e"), 0);
}

Test(counters, inc_get_set_exact_across_processes, .timeout = 120)
{
	const char *seg = th_segname("cnt");
	pid_t protd = th_protd_start(sw_ini(4, ""), seg, NULL);
	struct cnt *c = th_shared(sizeof *c);
	c->p = th_open(seg, 2000);
	/* an hour: no window ends within the run unless it starts right before one (then skip) */
	uint64_t left = 3600 * 1000 - (prot_now_ns() / MS) % (3600 * 1000);
	if (left < 60000)
		cr_skip_test("a fixed window ends within a minute");
	counters_exact(c, &(struct prot_rate_limit){.algo = PROT_RATE_FIXED_WINDOW, .limit = 1000,
	                                            .window_ms = 3600 * 1000});
	prot_close(c->p);
	th_protd_stop(protd);
}

Test(counters, sliding_window_counters_exact_across_processes, .timeout = 120)
{
	const char *seg = th_segname("cnt-sw");
	pid_t protd = th_protd_start(
	        th_write_file("protd.ini", "[segment]\nrate_entities = 1024\nsliding_buckets = 2\n"
	                                   "sliding_max_limit = 1000\n[daemon]\ntick = 10ms\n"),
	        seg, NULL);
	struct cnt *c = th_shared(sizeof *c);
	c->p = th_open(seg, 2000);
	counters_exact(c, &(struct prot_rate_limit){.algo = PROT_RATE_SLIDING_WINDOW, .limit = 1000,
	                                            .window_ms = 3600 * 1000});
	prot_close(c->p);
	th_protd_stop(protd);
}

Test(counters, hammer_return_values_and_limits)
{
	struct prot_shm_header *h = sw_seg(2, 8);
	struct prot_rate_limit fw = {.algo = PROT_RATE_FIXED_WINDOW, .limit = 5, .window_ms = 1000};
	struct prot_rate_limit gcra = {.algo = PROT_RATE_GCRA, .limit = 5, .window_ms = 1000};
	struct prot_rate_limit s = sw(5, 1000);
	uint64_t n = 42;
	/* inc beyond the limit counts on (Hammer's inc does not check), and a check then denies */
	cr_assert_eq(rate_count_h(NULL, h, "op", "f", &fw, RATE_COUNT_INC, 7, at(0), &n), 0);
	cr_assert_eq(n, 7);
	cr_assert_eq(rate_check_h(NULL, h, "op", "f", &fw, 1, at(1), NULL), 0);
	/* the window rolls: get is 0 again, set makes it a number */
	cr_assert_eq(rate_count_h(NULL, h, "op", "f", &fw, RATE_COUNT_GET, 0, at(1000), &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(rate_count_h(NULL, h, "op", "f", &fw, RATE_COUNT_SET, 4, at(1000), &n), 0);
	cr_assert_eq(n, 4);
	cr_assert_eq(rate_check_h(NULL, h, "op", "f", &fw, 1, at(1001), NULL), 1);
	cr_assert_eq(rate_check_h(NULL, h, "op", "f", &fw, 1, at(1002), NULL), 0);
	/* the word's 24 bits */
	n = 42;
	cr_assert_eq(rate_count_h(NULL, h, "op", "f", &fw, RATE_COUNT_SET, 1u << 24, at(1003), &n),
	             -EOVERFLOW);
	cr_assert_eq(n, 42, "untouched on failure");
	/* GCRA has no count */
	cr_assert_eq(rate_count_h(NULL, h, "op", "g", &gcra, RATE_COUNT_INC, 1, at(0), &n), -EINVAL);
	/* sliding: inc adds admissions now, set is a reset plus admissions */
	cr_assert_eq(rate_count_h(NULL, h, "op", "s", &s, RATE_COUNT_INC, 3, at(0), &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_eq(rate_count_h(NULL, h, "op", "s", &s, RATE_COUNT_INC, 6, at(0), &n), -PROT_ECOST);
	cr_assert_eq(rate_check_h(NULL, h, "op", "s", &s, 1, at(500), NULL), 1);
	cr_assert_eq(rate_check_h(NULL, h, "op", "s", &s, 1, at(600), NULL), 1);
	cr_assert_eq(rate_check_h(NULL, h, "op", "s", &s, 1, at(700), NULL), 0);
	cr_assert_eq(rate_count_h(NULL, h, "op", "s", &s, RATE_COUNT_GET, 0, at(1000), &n), 0);
	cr_assert_eq(n, 2, "the three at 0 left the window at 1000 ms");
	cr_assert_eq(rate_count_h(NULL, h, "op", "s", &s, RATE_COUNT_SET, 1, at(1000), &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(rate_count_h(NULL, h, "op", "s", &s, RATE_COUNT_GET, 0, at(1001), &n), 0);
	cr_assert_eq(n, 1);
	seg_unmap(h, seg_geo(h)->total_size);
}
