/* bench_mutex.c — baseline 1: the same rate decisions under one process-shared, robust pthread
 * mutex in a MAP_SHARED region (nginx limit_req's shared zone and its lock). The region is mapped
 * before the workers fork, so every worker sees the one table and the one lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "bench.h"

struct mx_region {
	pthread_mutex_t mu; /* PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST */
	size_t bytes;
	struct bt_table *t; /* same address in every worker: mapped before fork */
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

static struct mx_region *mx_create(uint32_t max_entities)
{
	size_t bytes = sizeof(struct mx_region) + 64 + bt_bytes(max_entities);
	struct mx_region *r = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	pthread_mutexattr_t at;
	pthread_mutexattr_init(&at);
	pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&r->mu, &at);
	pthread_mutexattr_destroy(&at);
	r->bytes = bytes;
	r->t = (struct bt_table *)((char *)r + ((sizeof *r + 63) & ~(size_t)63));
	bt_init(r->t, max_entities);
	return r;
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

void bench_mutex_rows(struct bench *b)
{
	struct mx_region *r = mx_create(b->sz.ent_large + 16);
	if (!r) {
		for (int row = ROW_MX_HOT_FW; row <= ROW_MX_1M; row++)
			bench_skip(b, row, true, "mmap: %s", prot_strerror(-errno));
		bench_skip(b, ROW_MX_HOT_FW_COARSE, true, "mmap failed");
		bench_skip(b, ROW_SC_MX_FW, true, "mmap failed");
		bench_skip(b, ROW_SC_MX_GCRA, true, "mmap failed");
		bench_skip(b, ROW_SC_MX_SPREAD, true, "mmap failed");
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

	int e = mx_prefill(r, (const char(*)[16])b->ents, b->sz.ent_large);
	struct mx_arg ent = {r, PROT_RATE_FIXED_WINDOW, (const char(*)[16])b->ents, b->sz.ent_small, false};
	w.arg = &ent;
	if (e < 0) {
		bench_skip(b, ROW_MX_100K, true, "prefill: %s", bench_strerror(e));
		bench_skip(b, ROW_MX_1M, true, "prefill: %s", bench_strerror(e));
	} else {
		bench_single(b, ROW_MX_100K, &w, b->sz.hot_ops, b->sz.reps);
		ent.nents = b->sz.ent_large;
		bench_single(b, ROW_MX_1M, &w, b->sz.hot_ops, b->sz.reps);
	}
	pthread_mutex_destroy(&r->mu);
	munmap(r, r->bytes);
}
