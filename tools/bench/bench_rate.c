/* bench_rate.c — the rate rows: rate checks on one hot key (admitted and denied, fixed window,
 * GCRA and sliding window, 1 process and a team on one key or one entity each), the first use of 1M entities (one
 * pass), lookups among 100k and 1M of them, and two rows that repeat a first use: a 100k set into
 * a table whose pages are already mapped, and churn (GCRA entities that expire while protd sweeps);
 * bench_rate_1m_on runs the 1M first use and lookups on another handle (the huge-page row,
 * bench_huge.c).
 * Everything goes through the public API on the bench's own protd (keys: bench_protd.c).
 * Forked workers keep using the parent's handle, as include/prot.h allows.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

struct rate_arg {
	prot_t *p;
	const char *key;
	const char (*ents)[16];
	uint32_t nents; /* 0: one hot key */
	int expect;     /* 1 admitted, 0 denied */
};

static void *rate_setup(void *arg, int worker)
{
	const struct rate_arg *a = arg;
	if (a->expect == 0) /* spend the one unit of the denied key's window */
		prot_rate_check_key(a->p, a->key, "hot", 1, NULL);
	/* a global key's new bucket denies until protd's next sync round grants it (at most 2 s) */
	for (int i = 0; i < 2000 && strcmp(a->key, "bench_global") == 0 &&
	                prot_rate_check_key(a->p, a->key, "hot", 1, NULL) != 1; i++)
		usleep(1000);
	return bench_rstate_new(arg, worker);
}

static int rate_batch(void *st, uint64_t n)
{
	struct bench_rstate *s = st;
	const struct rate_arg *a = s->arg;
	for (uint64_t i = 0; i < n; i++) {
		int r = prot_rate_check_key(a->p, a->key, bench_entity(s, a->ents, a->nents), 1, NULL);
		if (r != a->expect)
			return r < 0 ? r : BENCH_EDENIED;
	}
	return 0;
}

/* First use of every entity of the 1M set on p, in order: one pass, timed as a whole (it cannot be
 * repeated). 0 and *ns per decision, or the failure (its entity in *at). */
static int first_use_pass(const struct bench *b, prot_t *p, double *ns, uint32_t *at)
{
	uint64_t t0 = bench_now_ns();
	for (uint32_t i = 0; i < b->sz.ent_large; i++) {
		int r = prot_rate_check_key(p, "bench_ent", b->ents[i], 1, NULL);
		if (r != 1) {
			*at = i;
			return r < 0 ? r : BENCH_EDENIED;
		}
	}
	*ns = (double)(bench_now_ns() - t0) / b->sz.ent_large;
	return 0;
}

static void rate_insert_row(struct bench *b)
{
	double ns;
	uint32_t at;
	int r = first_use_pass(b, b->prot, &ns, &at);
	if (r < 0) {
		bench_skip(b, ROW_RATE_INSERT, true, "entity %u: %s", at, bench_strerror(r));
		bench_skip(b, ROW_RATE_100K, true, "no buckets: the first-use pass failed");
		bench_skip(b, ROW_RATE_1M, true, "no buckets: the first-use pass failed");
		return;
	}
	bench_stat_set(&b->res[ROW_RATE_INSERT][0], &ns, 1, 1);
	snprintf(b->res[ROW_RATE_INSERT][0].note, sizeof b->res[0][0].note, "one pass over %u entities",
	         b->sz.ent_large);
}

void bench_rate_1m_on(struct bench *b, prot_t *p, int row)
{
	double ns;
	uint32_t at;
	int r = first_use_pass(b, p, &ns, &at);
	if (r < 0) {
		bench_skip(b, row, true, "first use, entity %u: %s", at, bench_strerror(r));
		return;
	}
	struct rate_arg a = {p, "bench_ent", (const char(*)[16])b->ents, b->sz.ent_large, 1};
	struct bench_work w = {rate_setup, rate_batch, bench_rstate_free, &a, 0};
	bench_single(b, row, &w, b->sz.hot_ops, b->sz.reps);
}

/* The hot-key rows, the team rows, the 1M first-use pass and the lookups among its entities. */
static void rate_rows(struct bench *b)
{
	static const struct {
		int row;
		const char *key;
		int expect;
	} hot[] = {
		{ROW_RATE_HOT_FW, "bench_fw", 1},
		{ROW_RATE_HOT_FW_CAL, "bench_fw_cal", 1}, /* the clock a global key decides on */
		{ROW_RATE_HOT_GLOBAL, "bench_global", 1}, /* bench_protd.c: on its local share */
		{ROW_RATE_HOT_GCRA, "bench_gcra", 1},
		{ROW_RATE_DENY_FW, "bench_deny_fw", 0},
		{ROW_RATE_DENY_GCRA, "bench_deny_gcra", 0},
		{ROW_RATE_HOT_SW, "bench_sw", 1},
		{ROW_RATE_DENY_SW, "bench_deny_sw", 0},
		{ROW_RATE_HOT_FW_COARSE, "bench_fw_coarse", 1},
		{ROW_RATE_HOT_GCRA_COARSE, "bench_gcra_coarse", 1},
	};
	struct rate_arg a = {b->prot, NULL, NULL, 0, 1};
	struct bench_work w = {rate_setup, rate_batch, bench_rstate_free, &a, 0};
	for (size_t i = 0; i < sizeof hot / sizeof hot[0]; i++) {
		a.key = hot[i].key;
		a.expect = hot[i].expect;
		bench_single(b, hot[i].row, &w, b->sz.hot_ops, b->sz.reps);
	}
	a.key = "bench_fw";
	a.expect = 1;
	bench_scale(b, ROW_SC_PROT_FW, &w);
	a.key = "bench_gcra";
	bench_scale(b, ROW_SC_PROT_GCRA, &w);
	a.key = "bench_sw";
	bench_scale(b, ROW_SC_PROT_SW, &w);
	a.key = "bench_fw";
	a.ents = (const char(*)[16])b->ents; /* without nents: one entity per worker */
	bench_scale(b, ROW_SC_PROT_SPREAD, &w);

	rate_insert_row(b);
	if (b->res[ROW_RATE_INSERT][0].state != 1)
		return;
	a.key = "bench_ent";
	a.ents = (const char(*)[16])b->ents;
	a.nents = b->sz.ent_small;
	bench_single(b, ROW_RATE_100K, &w, b->sz.hot_ops, b->sz.reps);
	a.nents = b->sz.ent_large;
	bench_single(b, ROW_RATE_1M, &w, b->sz.hot_ops, b->sz.reps);
}


/* ---- first use, repeated: fresh entities of a set, each used once ------------------------------ */
/* The ids are visited in the order k, k + step, k + 2 step, ... (mod n) with step coprime to n and
 * near n / golden ratio: every id of the set once before any repeats, in an order that jumps across
 * the id array (and across the table) as a random pick does. The row never draws more than n ids
 * (fresh_ops sizes its repetitions), so every decision timed is the entity's first use under the
 * row's key: a claim, the identity written, the group published. */
struct fresh_arg {
	prot_t *p;
	const char *key;
	const char (*ents)[16];
	uint64_t n, step;
	uint64_t at, left; /* the next id; ids not used yet */
};

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static int fresh_batch(void *st, uint64_t n)
{
	struct fresh_arg *a = st;
	if (n > a->left)
		return -ERANGE; /* fresh_ops sized the row: cannot happen */
	a->left -= n;
	for (uint64_t i = 0; i < n; i++) {
		int r = prot_rate_check_key(a->p, a->key, a->ents[a->at], 1, NULL);
		a->at += a->step;
		if (a->at >= a->n)
			a->at -= a->n;
		if (r != 1)
			return r < 0 ? r : BENCH_EDENIED;
	}
	return 0;
}

/* Ops per repetition such that bench_single's warm-up (n/4 + 1) and reps repetitions use at most
 * `ids` ids. */
static uint64_t fresh_ops(uint64_t ids, int reps)
{
	return (ids - 1) * 4 / (4 * (uint64_t)reps + 1);
}

static uint64_t buckets_used(prot_t *p)
{
	struct prot_info info;
	return prot_get_info(p, &info) == 0 ? info.rate_buckets_used : 0;
}

/* One fresh row: `ids` ids of b->ents under `key`, with the table's occupancy before and after. */
static void fresh_row(struct bench *b, int row, const char *key, uint32_t ids, const char *what)
{
	if (ids < 2) {
		bench_skip(b, row, false, "needs at least 2 entities");
		return;
	}
	struct fresh_arg a = {b->prot, key, (const char(*)[16])b->ents, ids, 0, 0, ids};
	a.step = (uint64_t)(ids * 0.6180339887) | 1;
	while (gcd(a.step, a.n) != 1)
		a.step += 2;
	struct bench_work w = {bench_arg_setup, fresh_batch, bench_arg_teardown, &a, 0};
	uint64_t ops = fresh_ops(ids, b->sz.reps), before = buckets_used(b->prot);
	if (ops == 0 || bench_single(b, row, &w, ops, b->sz.reps) < 0)
		return;
	snprintf(b->res[row][0].note, sizeof b->res[0][0].note, "%s; %d x %llu fresh ids; buckets %llu -> %llu",
	         what, b->sz.reps, (unsigned long long)ops, (unsigned long long)before,
	         (unsigned long long)buckets_used(b->prot));
}

void bench_rate_rows(struct bench *b)
{
	rate_rows(b);
	/* After the 1M first-use pass every page of the table is mapped in this process, which the
	 * RATE_INSERT row paid for (a minor fault per new 4 KiB page): this pair (RATE_INSERT_100K,
	 * RATE_100K) isolates the insert path. Fixed window, 720 h, as the lookup row's key. */
	fresh_row(b, ROW_RATE_INSERT_100K, "bench_ins", b->sz.ent_small, "pair: the 100k row");
	/* Churn: GCRA at 10M per 100 ms (T = 10 ns), so each bucket is expired (tat <= now - grace)
	 * 100 ms after its use and protd's sweep removes it as its cursor passes, while this row
	 * inserts: half the 1M set, so that the table (1M live entities already) stays well below the
	 * occupancy where groups fill. The pair: RATE_1M, lookups of live entities, same table. */
	fresh_row(b, ROW_RATE_CHURN, "bench_churn", b->sz.ent_large / 2, "pair: the 1M row");
}
