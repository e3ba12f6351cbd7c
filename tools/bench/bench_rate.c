/* bench_rate.c — the rate rows: rate checks on one hot key (admitted and denied, fixed window and
 * GCRA, 1 process and a team on one key or one entity each), the first use of 1M entities (one
 * pass), and lookups among 100k and 1M of them.
 * Everything goes through the public API on the bench's own protd (keys: bench_protd.c).
 * Forked workers keep using the parent's handle, as include/prot.h allows.
 */
#include <errno.h>
#include <stdio.h>

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

/* First use of every entity, in order: one pass, timed as a whole (it cannot be repeated). */
static void rate_insert_row(struct bench *b)
{
	uint64_t t0 = bench_now_ns();
	for (uint32_t i = 0; i < b->sz.ent_large; i++) {
		int r = prot_rate_check_key(b->prot, "bench_ent", b->ents[i], 1, NULL);
		if (r != 1) {
			bench_skip(b, ROW_RATE_INSERT, true, "entity %u: %s", i, bench_strerror(r < 0 ? r : BENCH_EDENIED));
			bench_skip(b, ROW_RATE_100K, true, "no buckets: the first-use pass failed");
			bench_skip(b, ROW_RATE_1M, true, "no buckets: the first-use pass failed");
			return;
		}
	}
	double ns = (double)(bench_now_ns() - t0) / b->sz.ent_large;
	bench_stat_set(&b->res[ROW_RATE_INSERT][0], &ns, 1, 1);
	snprintf(b->res[ROW_RATE_INSERT][0].note, sizeof b->res[0][0].note, "one pass over %u entities",
	         b->sz.ent_large);
}

void bench_rate_rows(struct bench *b)
{
	static const struct {
		int row;
		const char *key;
		int expect;
	} hot[] = {
		{ROW_RATE_HOT_FW, "bench_fw", 1},
		{ROW_RATE_HOT_GCRA, "bench_gcra", 1},
		{ROW_RATE_DENY_FW, "bench_deny_fw", 0},
		{ROW_RATE_DENY_GCRA, "bench_deny_gcra", 0},
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


