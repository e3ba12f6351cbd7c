/* rate_clock.c — the clocks rate-limit decisions read: which clock a key decides on (its
 * rate_clock: monotonic, coarse or realtime), the calendar clock's scale, and the test hook that
 * shifts the calendar. Called by ratelimit.c (a key's decision), rate_view.c (status at the
 * bucket's clock) and rate_table.c (the sweep's expiry of calendar buckets); any window algorithm
 * that offers calendar windows (only the fixed window: the sliding window's ring holds
 * CLOCK_MONOTONIC admission times, and rate_clock_problem() refuses realtime for it) decides on
 * rate_clock_now() and tags its buckets RATE_TAG_REALTIME.
 *
 * CLOCKS. monotonic: CLOCK_MONOTONIC ns (or the caller's reading of it). coarse:
 * CLOCK_MONOTONIC_COARSE, the same scale in ~4 ms steps. realtime (the calendar): CLOCK_REALTIME
 * ns minus RATE_EPOCH_MS (2020-01-01T00:00Z, rate_limits.h), so words keep their bit budget
 * (rate_algo.c, OVERFLOW); rate_algo.c shifts fixed windows by RATE_EPOCH_MS mod W so that they
 * are UTC multiples of W since the Unix epoch: hours roll at :00, days at midnight UTC.
 *
 * STEPS of the calendar (an NTP step, an administrator's date). Back by D: a stored window that
 * has not ended is kept (rate_algo.c), so the window already counted lasts D longer and is never
 * re-opened; protd expires a calendar bucket only when the calendar has passed its end plus the
 * grace (it reads this same clock), so it does not free it early either. Forward past the end:
 * the next decision is in a later window, which starts empty, as if the time had passed. A
 * calendar reading before 2020 is clamped to 1 ns. A bucket's word is on one clock; a key moved to
 * another clock starts its buckets over (the clock is part of the bucket's kind, RATE_TAG_*).
 * The stale-client argument of rate_table.c holds on the calendar as long as the clock does not
 * step back by more than the grace between a removal and a re-insert that a stalled client
 * sleeps through (a stall of two adjacent instructions, as for reset).
 *
 * TEST HOOK. When the environment variable PROT_TEST_CLOCK_FILE names a file of at least 8 bytes
 * at a process's first calendar reading, the process maps it (shared, read-only) and adds the
 * signed 64-bit ns offset stored in its first 8 bytes to every calendar reading. The tests start
 * protd and their workers with it and step every process's calendar at once by writing the file.
 * Without the variable a reading costs one relaxed load more than clock_gettime.
 *
 * AUTO (rate_clock = auto) is resolved once per configuration (rate_clock_resolve: lib/ratelimit.c
 * keeps the answer with the key's other decision parameters) to the coarse clock when its
 * resolution r (clock_getres, read once per process) cannot change what the key admits by more
 * than one unit, and to the monotonic clock otherwise:
 *  - fixed window: r <= W / 64. Every reader of the key reads the one coarse clock (the kernel's
 *    last tick: the same for every CPU, monotonic), so a window rolls at most r late: it lasts up
 *    to W + r (1.6 % longer) and still admits at most its limit. Nothing more is admitted.
 *  - GCRA, token and leaky bucket, sliding window: r <= T = W / limit, the emission interval. A
 *    decision's time is at most r behind the true one and every decision of the key is on the same
 *    clock, so over any span the key admits at most what an exact clock admits over that span
 *    plus r: r / T <= 1 unit early. (The sliding window's weights move by r / W of the limit:
 *    the same r / T units.)
 * A key on auto shares its buckets with the monotonic clock (same scale, same kind): changing
 * between the two keeps the counts. The facade's CLOCK_MONOTONIC reading is not used for a key
 * resolved to the coarse clock (rate_clock_now).
 *
 * rate_clock_now() (rate_table.h) is inline, so that a decision on the monotonic clock costs what
 * it did; only the calendar is read here.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rate_table.h"

#define RATE_EPOCH_NS (RATE_EPOCH_MS * RATE_NS_MS)

/* auto: the coarse clock when r <= W / AUTO_WINDOW_PARTS (fixed window), r <= W / limit (others) */
#define AUTO_WINDOW_PARTS 64

/* CLOCK_MONOTONIC_COARSE's resolution in ns, read once (0: not yet; UINT64_MAX: none). */
static _Atomic uint64_t coarse_res;

static uint64_t coarse_resolution(void)
{
	/* relaxed: a plain value, the same from every thread that computes it */
	uint64_t r = atomic_load_explicit(&coarse_res, memory_order_relaxed);
	if (__builtin_expect(r == 0, 0)) {
		struct timespec ts;
		r = clock_getres(CLOCK_MONOTONIC_COARSE, &ts) == 0
		            ? (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec
		            : UINT64_MAX;
		atomic_store_explicit(&coarse_res, r ? r : 1, memory_order_relaxed);
	}
	return r;
}

uint64_t rate_clock_resolve(uint64_t clock, const struct rate_params *rp)
{
	if (clock != RATE_CLOCK_AUTO)
		return clock;
	uint64_t r = coarse_resolution(), w = rp->window_ms * RATE_NS_MS;
	if (r == UINT64_MAX || rp->limit == 0)
		return RATE_CLOCK_MONO;
	if (rp->algo == PROT_RATE_FIXED_WINDOW)
		return r <= w / AUTO_WINDOW_PARTS ? RATE_CLOCK_COARSE : RATE_CLOCK_MONO;
	return r <= w / rp->limit ? RATE_CLOCK_COARSE : RATE_CLOCK_MONO;
}

static const _Atomic int64_t no_offset;
/* The offset word: NULL until the first calendar reading looked the hook up. */
static const _Atomic int64_t *_Atomic offset_word;

static const _Atomic int64_t *offset_map(void)
{
	const char *path = getenv("PROT_TEST_CLOCK_FILE");
	struct stat st;
	void *m = MAP_FAILED;

	if (!path || !*path)
		return &no_offset;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return &no_offset;
	if (fstat(fd, &st) == 0 && st.st_size >= 8)
		m = mmap(NULL, 8, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	return m == MAP_FAILED ? &no_offset : m;
}

static int64_t calendar_offset(void)
{
	/* acquire: pairs with the release CAS below, so the mapping is complete when seen */
	const _Atomic int64_t *w = atomic_load_explicit(&offset_word, memory_order_acquire);

	if (__builtin_expect(w == NULL, 0)) {
		const _Atomic int64_t *mine = offset_map(), *none = NULL;
		/* release: publishes the mapping; a thread that loses keeps the winner's */
		if (atomic_compare_exchange_strong_explicit(&offset_word, &none, mine, memory_order_release,
		                                            memory_order_acquire))
			w = mine;
		else {
			if (mine != &no_offset)
				munmap((void *)mine, 8);
			w = none;
		}
	}
	/* relaxed: the offset is a value on its own, written by the test at any time */
	return atomic_load_explicit(w, memory_order_relaxed);
}

uint64_t rate_calendar_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + calendar_offset() - (int64_t)RATE_EPOCH_NS;
	return t > 0 ? (uint64_t)t : 1;
}
