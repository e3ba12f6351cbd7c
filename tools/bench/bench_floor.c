/* bench_floor.c — the physical floors the prot rows are quoted against, measured in the same run on
 * the same machine (bench_report.c prints the 1M-entity rows as multiples of FLOOR_CHASE):
 *
 *  FLOOR_CHASE   one load from a random cache line of a region as large as this run's rate table
 *                (REG_RATE_GROUPS of the segment protd makes for rate_entities: bench_memory.c)
 *                and backed as that table is: a POSIX shm object in /dev/shm, reserved with
 *                posix_fallocate and mapped MAP_SHARED (daemon/shm.c, lib/segment.c; the mapping
 *                is bench_huge.c's bench_map_region), so its pages (4 KiB: /dev/shm's tmpfs
 *                without huge=), TLB reach and memory are the ones the "1M entities, uniform"
 *                rows see. FLOOR_CHASE_HUGE: the same on the huge pages of RATE_1M_HUGE and
 *                MX_1M_HUGE (hugetlbfs, or transparent huge pages: bench_huge.c), in the same
 *                run, so that each pair is quoted against the floor of its own backing. The
 *                region's lines form one random cycle
 *                (Sattolo's shuffle): each load's address is the value the previous load returned,
 *                so no two loads are ever in flight together and no prefetcher can guess the next.
 *                Every line is written while the cycle is built, so, as in the 1M-entity rows
 *                (whose first-use pass touched the table), no page is faulted in while timed.
 *  CLOCK_MONO    one clock_gettime(CLOCK_MONOTONIC): a rate decision reads one clock (the vDSO).
 *  CLOCK_COARSE  one clock_gettime(CLOCK_MONOTONIC_COARSE): keys with rate_clock = coarse.
 *  CAS_PRIVATE   one successful compare-and-swap on a line no other process touches: a decision's
 *                admit CAS with its line already in this core's cache, in the exclusive state.
 *
 * The object's name (/prot-bench-region-PID) is unlinked as soon as it is open: nothing is left
 * in /dev/shm (or on the hugetlbfs mount) whatever happens to the bench afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define LINE 64

struct line {
	struct line *next;
	char pad[LINE - sizeof(struct line *)];
};
_Static_assert(sizeof(struct line) == LINE, "one cache line per link");

struct chase {
	struct bench_region reg; /* the lines */
	struct line *at;         /* where the next batch continues the cycle */
};

/* Sattolo's shuffle of 0..n-1 yields a permutation that is one cycle through all n; line i then
 * points at line perm[i]. */
static int build_cycle(struct line *lines, uint32_t n)
{
	uint32_t *perm = mmap(NULL, (size_t)n * sizeof *perm, PROT_READ | PROT_WRITE,
	                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (perm == MAP_FAILED)
		return -errno;
	uint64_t rng = 0x853c49e6748fea9bULL;
	for (uint32_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j = bench_rand(&rng, i), t = perm[i]; /* j < i: Sattolo, not Fisher-Yates */
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (uint32_t i = 0; i < n; i++)
		lines[i].next = &lines[perm[i]];
	munmap(perm, (size_t)n * sizeof *perm);
	return 0;
}

static int chase_batch(void *st, uint64_t n)
{
	struct chase *c = st;
	struct line *p = c->at;
	for (uint64_t i = 0; i < n; i++)
		p = p->next; /* the address of each load is the result of the one before */
	c->at = p;
	return 0;
}

/* FLOOR_CHASE (huge false) or FLOOR_CHASE_HUGE (huge: on b->huge's pages). */
static void chase_row(struct bench *b, int row, bool huge)
{
	uint64_t bytes = bench_rate_table_bytes(b->sz.rate_entities);
	struct chase c = {{NULL, 0}, NULL};
	char what[sizeof b->res[0][0].note];
	if (bytes < 2 * LINE || bytes / LINE > UINT32_MAX) {
		bench_skip(b, row, true, "rate table of %llu bytes", (unsigned long long)bytes);
		return;
	}
	if (huge && b->huge == 0) {
		bench_skip(b, row, false, "%s", b->huge_why);
		return;
	}
	int r = bench_map_region(b, huge, (size_t)bytes, &c.reg, what, sizeof what);
	if (r == 0 && (r = build_cycle(c.reg.p, (uint32_t)(bytes / LINE))) < 0)
		bench_unmap_region(&c.reg);
	if (r < 0) {
		bench_skip(b, row, !huge, "region of %llu bytes%s: %s", (unsigned long long)bytes,
		           huge ? ", huge pages" : " in /dev/shm", strerror(-r));
		return;
	}
	c.at = c.reg.p;
	struct bench_work w = {bench_arg_setup, chase_batch, bench_arg_teardown, &c, 0};
	if (bench_single(b, row, &w, b->sz.hot_ops, b->sz.reps) == 0)
		snprintf(b->res[row][0].note, sizeof b->res[0][0].note, "%.100s (the rate table's size), %llu lines in one cycle",
		         what, (unsigned long long)(bytes / LINE));
	bench_unmap_region(&c.reg);
}

static volatile uint64_t clock_sink; /* keeps the clock reads' results alive */

static int clock_batch(void *st, uint64_t n)
{
	const clockid_t *id = st;
	struct timespec ts;
	uint64_t acc = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (clock_gettime(*id, &ts) < 0)
			return -errno;
		acc += (uint64_t)ts.tv_nsec;
	}
	clock_sink = acc;
	return 0;
}

/* Its own line: nothing else of the bench is written next to it. */
static struct {
	_Alignas(LINE) _Atomic uint64_t word;
	char pad[LINE - sizeof(uint64_t)];
} cas_line;

static int cas_batch(void *st, uint64_t n)
{
	_Atomic uint64_t *w = st;
	uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
	for (uint64_t i = 0; i < n; i++, v++)
		/* relaxed, as the library's admit CAS (the word publishes nothing else); on x86 the
		 * locked instruction is a full barrier whatever order is asked for */
		if (!atomic_compare_exchange_strong_explicit(w, &v, v + 1, memory_order_relaxed,
		                                             memory_order_relaxed))
			return -EAGAIN; /* nobody else writes the line: cannot happen */
	return 0;
}

void bench_floor_rows(struct bench *b)
{
	static clockid_t mono = CLOCK_MONOTONIC, coarse = CLOCK_MONOTONIC_COARSE;
	struct bench_work w = {bench_arg_setup, clock_batch, bench_arg_teardown, &mono, 0};
	chase_row(b, ROW_FLOOR_CHASE, false);
	chase_row(b, ROW_FLOOR_CHASE_HUGE, true);
	bench_single(b, ROW_CLOCK_MONO, &w, b->sz.hot_ops, b->sz.reps);
	w.arg = &coarse;
	bench_single(b, ROW_CLOCK_COARSE, &w, b->sz.hot_ops, b->sz.reps);
	w = (struct bench_work){bench_arg_setup, cas_batch, bench_arg_teardown, &cas_line.word, 0};
	bench_single(b, ROW_CAS_PRIVATE, &w, b->sz.hot_ops, b->sz.reps);
}
