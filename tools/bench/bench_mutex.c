/* bench_mutex.c — baseline 1: the same rate decisions under one process-shared, robust pthread
 * mutex in a MAP_SHARED region (nginx limit_req's shared zone and its lock). The region is mapped
 * before the workers fork, so every worker sees the one table and the one lock. It is mapped as
 * protd maps its segment (bench_huge.c: a /dev/shm object on 4 KiB pages), so that MX_1M and
 * RATE_1M see the same page backing; MX_1M_HUGE is MX_1M on a second region on the huge pages of
 * RATE_1M_HUGE.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

struct mx_region {
	pthread_mutex_t mu; /* PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST */
	struct bench_region reg; /* where this struct and the table live */
	struct bt_table *t; /* same address in every worker: mapped before fork */
	char what[96];      /* the mapping, for the 1M row's note */
};

struct mx_arg {
	struct mx_region *r;
	int algo;
	const char (*ents)[16];
	uint32_t nents; /* 0: one hot key */
	bool coarse;    /* CLOCK_MONOTONIC_COARSE, as prot's rate_clock = coarse rows */
};

static int mx_lock(pthread_mutex_t *mu)
{
	int r = pthread_mutex_lock(mu);
	if (r == EOWNERDEAD) /* a worker died holding it: the table is still consistent enough */
		r = pthread_mutex_consistent(mu);
	return -r;
}

static int mx_batch(void *st, uint64_t n)
{
	struct bench_rstate *s = st;
	const struct mx_arg *a = s->arg;
	for (uint64_t i = 0; i < n; i++) {
		const char *ent = bench_entity(s, a->ents, a->nents);
		/* read before locking, as prot reads it once per decision */
		uint64_t now = a->coarse ? bench_now_coarse_ns() : bench_now_ns();
		int r = mx_lock(&a->r->mu);
		if (r < 0)
			return r;
		r = bt_decide(a->r->t, a->algo, BENCH_OP, ent, BENCH_LIMIT, BENCH_WINDOW_MS, now);
		pthread_mutex_unlock(&a->r->mu);
		if (r != 1)
			return r < 0 ? r : BENCH_EDENIED;
	}
	return 0;
}

/* The region on 4 KiB pages (huge false) or b->huge's; NULL and *err on failure. */
static struct mx_region *mx_create(const struct bench *b, bool huge, uint32_t max_entities, int *err)
{
	size_t bytes = sizeof(struct mx_region) + 64 + bt_bytes(max_entities);
	struct bench_region reg;
	char what[96];
	*err = bench_map_region(b, huge, bytes, &reg, what, sizeof what);
	if (*err < 0)
		return NULL;
	struct mx_region *r = reg.p;
	pthread_mutexattr_t at;
	pthread_mutexattr_init(&at);
	pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&r->mu, &at);
	pthread_mutexattr_destroy(&at);
	r->reg = reg;
	snprintf(r->what, sizeof r->what, "%s", what);
	r->t = (struct bt_table *)((char *)r + ((sizeof *r + 63) & ~(size_t)63));
	bt_init(r->t, max_entities);
	return r;
}

static void mx_destroy(struct mx_region *r)
{
	struct bench_region reg = r->reg;
	pthread_mutex_destroy(&r->mu);
	bench_unmap_region(&reg);
}

/* Insert every entity once, so that the timed rows measure lookups as prot's rows do. */
static int mx_prefill(struct mx_region *r, const char (*ents)[16], uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		int d = bt_decide(r->t, PROT_RATE_FIXED_WINDOW, BENCH_OP, ents[i], BENCH_LIMIT,
		                  BENCH_WINDOW_MS, bench_now_ns());
		if (d < 0)
			return d;
	}
	return 0;
}

/* The 1M row (and the 100k one when small_row >= 0) on region r, prefilled with the 1M set. */
static void mx_entity_rows(struct bench *b, struct mx_region *r, int small_row, int large_row)
{
	int e = mx_prefill(r, (const char(*)[16])b->ents, b->sz.ent_large);
	struct mx_arg ent = {r, PROT_RATE_FIXED_WINDOW, (const char(*)[16])b->ents, b->sz.ent_small, false};
	struct bench_work w = {bench_rstate_new, mx_batch, bench_rstate_free, &ent, 0};
	if (e < 0) {
		if (small_row >= 0)
			bench_skip(b, small_row, true, "prefill: %s", bench_strerror(e));
		bench_skip(b, large_row, true, "prefill: %s", bench_strerror(e));
		return;
	}
	if (small_row >= 0)
		bench_single(b, small_row, &w, b->sz.hot_ops, b->sz.reps);
	ent.nents = b->sz.ent_large;
	if (bench_single(b, large_row, &w, b->sz.hot_ops, b->sz.reps) == 0)
		snprintf(b->res[large_row][0].note, sizeof b->res[0][0].note, "table of %s", r->what);
}

/* MX_1M_HUGE: MX_1M on a table of its own on huge pages. */
static void mx_huge_row(struct bench *b)
{
	int e;
	struct mx_region *r = b->huge ? mx_create(b, true, b->sz.ent_large + 16, &e) : NULL;
	if (!b->huge)
		bench_skip(b, ROW_MX_1M_HUGE, false, "%s", b->huge_why);
	else if (!r)
		bench_skip(b, ROW_MX_1M_HUGE, false, "huge pages: %s", bench_strerror(e));
	else {
		mx_entity_rows(b, r, -1, ROW_MX_1M_HUGE);
		mx_destroy(r);
	}
}

void bench_mutex_rows(struct bench *b)
{
	int e;
	struct mx_region *r = mx_create(b, false, b->sz.ent_large + 16, &e);
	if (!r) {
		for (int row = ROW_MX_HOT_FW; row <= ROW_MX_1M; row++)
			bench_skip(b, row, true, "mmap: %s", bench_strerror(e));
		bench_skip(b, ROW_MX_HOT_FW_COARSE, true, "mmap failed");
		bench_skip(b, ROW_SC_MX_FW, true, "mmap failed");
		bench_skip(b, ROW_SC_MX_GCRA, true, "mmap failed");
		bench_skip(b, ROW_SC_MX_SPREAD, true, "mmap failed");
		mx_huge_row(b);
		return;
	}
	struct mx_arg hot_fw = {r, PROT_RATE_FIXED_WINDOW, NULL, 0, false};
	struct mx_arg hot_fw_coarse = {r, PROT_RATE_FIXED_WINDOW, NULL, 0, true};
	struct mx_arg hot_gcra = {r, PROT_RATE_GCRA, NULL, 0, false};
	struct bench_work w = {bench_rstate_new, mx_batch, bench_rstate_free, &hot_fw_coarse, 0};
	bench_single(b, ROW_MX_HOT_FW_COARSE, &w, b->sz.hot_ops, b->sz.reps);
	w.arg = &hot_fw;
	bench_single(b, ROW_MX_HOT_FW, &w, b->sz.hot_ops, b->sz.reps);
	bench_scale(b, ROW_SC_MX_FW, &w);
	w.arg = &hot_gcra;
	bench_single(b, ROW_MX_HOT_GCRA, &w, b->sz.hot_ops, b->sz.reps);
	bench_scale(b, ROW_SC_MX_GCRA, &w);
	struct mx_arg spread = {r, PROT_RATE_FIXED_WINDOW, (const char(*)[16])b->ents, 0, false};
	w.arg = &spread;
	bench_scale(b, ROW_SC_MX_SPREAD, &w);
	mx_entity_rows(b, r, ROW_MX_100K, ROW_MX_1M);
	mx_destroy(r);
	mx_huge_row(b);
}
