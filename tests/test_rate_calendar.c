/* test_rate_calendar.c — calendar windows (issue 14, point 5): a fixed-window key with
 * rate_clock = realtime rolls at UTC multiples of its window (:00 for an hour, midnight UTC for a
 * day), a step of the clock back never re-opens a window already counted, a step forward rolls,
 * and protd's sweep expires calendar buckets on the calendar.
 *
 * The calendar is moved with the test hook of lib/rate_clock.c: PROT_TEST_CLOCK_FILE names an
 * 8-byte file holding a signed ns offset that every process started with it (protd, the forked
 * workers, this process) adds to CLOCK_REALTIME; the test maps the file and writes the offset.
 * Each test places the calendar just before a boundary, so it does not wait for one.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

#define HOUR_MS 3600000ll
#define DAY_MS (24 * HOUR_MS)
#define NS_MS 1000000ll

#define HEAD                                                                                     \
	"[segment]\nmax_keys = 8\nmax_breakers = 1\nmax_pools = 1\npool_max_slots = 1\n"         \
	"pool_max_waiters = 1\nrate_entities = 1024\nevents = 64\n\n[daemon]\ntick = 10ms\n\n"

struct env {
	const char *seg, *ini;
	pid_t protd;
	prot_t *p;
	_Atomic int64_t *offset_ns; /* the hook's word, shared with every process through the file */
	_Atomic int ready;
	_Atomic uint64_t admitted, errors;
};

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_MS;
}

/* The calendar every process sees, in Unix ms. */
static int64_t calendar_ms(struct env *e)
{
	return real_ms() + atomic_load(e->offset_ns) / NS_MS;
}

/* Move every process's calendar so that it reads unix_ms now. */
static void calendar_set(struct env *e, int64_t unix_ms)
{
	atomic_store(e->offset_ns, (unix_ms - real_ms()) * NS_MS);
}

static void calendar_step(struct env *e, int64_t ms)
{
	atomic_fetch_add(e->offset_ns, ms * NS_MS);
}

/* The next multiple of period after now, far enough ahead that a setup never crosses it. */
static int64_t next_boundary(int64_t period)
{
	return (real_ms() / period + 2) * period;
}

static struct env *start(const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	const char *path = th_write_file("calendar", "%s", "01234567");
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	e->offset_ns = mmap(NULL, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(e->offset_ns, MAP_FAILED);
	atomic_store(e->offset_ns, 0);
	setenv("PROT_TEST_CLOCK_FILE", path, 1); /* protd and the workers inherit it */
	e->protd = th_serve_head("rcal", HEAD, sections, &e->seg, &e->ini, &e->p);
	return e;
}

static int hourly_child(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	atomic_fetch_add(&e->ready, 1);
	th_wait_flag(&e->ready, 4, 5000); /* start together */
	for (int k = 0; k < 5; k++) {
		int r = prot_rate_check_key(e->p, "hourly", "u", 1, NULL);
		if (r < 0)
			atomic_fetch_add(&e->errors, 1);
		else
			atomic_fetch_add(&e->admitted, (uint64_t)r);
	}
	return 0;
}

/* reset_after_ms says where the window ends: at `end` (Unix ms), within the time a call takes. */
static void assert_window_ends_at(struct env *e, const struct prot_rate_info *in, int64_t end)
{
	int64_t want = end - calendar_ms(e);
	cr_assert_geq((int64_t)in->reset_after_ms, want - 5, "reset_after %lu, window end in %ld ms",
	              (unsigned long)in->reset_after_ms, (long)want);
	cr_assert_leq((int64_t)in->reset_after_ms, want + 100, "reset_after %lu, window end in %ld ms",
	              (unsigned long)in->reset_after_ms, (long)want);
}

Test(rate_calendar, an_hour_rolls_at_the_top_of_the_utc_hour, .timeout = 60)
{
	struct env *e = start("[key hourly]\nrate_limit = 3\nrate_window = 1h\n"
	                      "rate_algorithm = fixed_window\nrate_clock = realtime\n");
	struct prot_rate_info in;
	int64_t top = next_boundary(HOUR_MS);
	calendar_set(e, top - 3000);
	th_fork_n(4, hourly_child, e, 20000);
	cr_assert_lt(calendar_ms(e), top, "the workers took 3 s: the machine is too loaded to tell");
	cr_assert_eq(atomic_load(&e->errors), 0);
	cr_assert_eq(atomic_load(&e->admitted), 3, "20 hits in one hour of 3");
	cr_assert_eq(prot_rate_check_key(e->p, "hourly", "u", 1, &in), 0);
	assert_window_ends_at(e, &in, top);
	cr_assert_eq(in.retry_after_ms, in.reset_after_ms);
	usleep((useconds_t)in.retry_after_ms * 1000 + 50000);
	cr_assert_eq(prot_rate_check_key(e->p, "hourly", "u", 1, &in), 1, "a new hour at :00");
	cr_assert_eq(in.used, 1);
	assert_window_ends_at(e, &in, top + HOUR_MS);
	th_unserve(e->p, e->protd);
}

Test(rate_calendar, a_day_rolls_at_midnight_utc_and_a_step_forward_rolls, .timeout = 60)
{
	struct env *e = start("[key daily]\nrate_limit = 2\nrate_window = 24h\n"
	                      "rate_algorithm = fixed_window\nrate_clock = realtime\n");
	struct prot_rate_info in;
	int64_t midnight = next_boundary(DAY_MS);
	calendar_set(e, midnight - 2 * HOUR_MS); /* 22:00 UTC */
	cr_assert_eq(prot_rate_check_key(e->p, "daily", "u", 2, &in), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "daily", "u", 1, &in), 0);
	assert_window_ends_at(e, &in, midnight);
	calendar_step(e, HOUR_MS + 59 * 60000); /* 23:59 UTC: the same day */
	cr_assert_eq(prot_rate_check_key(e->p, "daily", "u", 1, &in), 0);
	assert_window_ends_at(e, &in, midnight);
	calendar_step(e, 2 * 60000); /* 00:01 UTC: a step forward past midnight rolls */
	cr_assert_eq(prot_rate_check_key(e->p, "daily", "u", 1, &in), 1, "a new day at midnight UTC");
	cr_assert_eq(in.used, 1);
	assert_window_ends_at(e, &in, midnight + DAY_MS);
	th_unserve(e->p, e->protd);
}

Test(rate_calendar, a_step_back_never_reopens_a_counted_window, .timeout = 60)
{
	struct env *e = start("[key hourly]\nrate_limit = 2\nrate_window = 1h\n"
	                      "rate_algorithm = fixed_window\nrate_clock = realtime\n");
	struct prot_rate_info in;
	int64_t top = next_boundary(HOUR_MS);
	calendar_set(e, top + 1000); /* just into a new hour */
	cr_assert_eq(prot_rate_check_key(e->p, "hourly", "u", 2, &in), 1);
	calendar_step(e, -5000); /* back into the previous hour */
	cr_assert_eq(prot_rate_check_key(e->p, "hourly", "u", 1, &in), 0,
	             "the hour already counted is kept, not re-opened as the previous one");
	cr_assert_eq(in.used, 2);
	assert_window_ends_at(e, &in, top + HOUR_MS); /* 5 s longer than the hour */
	/* protd keeps it too: far beyond the grace and a sweep pass */
	usleep(500 * 1000);
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "hourly"), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "hourly", "u", 1, &in), 0);
	calendar_step(e, 5000 + HOUR_MS); /* forward past the window's end */
	cr_assert_eq(prot_rate_check_key(e->p, "hourly", "u", 1, &in), 1, "the next hour");
	assert_window_ends_at(e, &in, top + 2 * HOUR_MS);
	th_unserve(e->p, e->protd);
}

static bool no_bucket(void *arg)
{
	struct env *e = arg;
	return rate_count_op(prot_hdr(e->p), "minute") == 0;
}

Test(rate_calendar, protd_expires_calendar_buckets_on_the_calendar, .timeout = 60)
{
	struct env *e = start("[key minute]\nrate_limit = 5\nrate_window = 1m\n"
	                      "rate_algorithm = fixed_window\nrate_clock = realtime\n");
	struct prot_rate_info in;
	calendar_set(e, next_boundary(60000) + 1000);
	cr_assert_eq(prot_rate_check_key(e->p, "minute", "u", 1, &in), 1);
	usleep(300 * 1000);
	cr_assert_eq(rate_count_op(prot_hdr(e->p), "minute"), 1, "its minute has not ended");
	calendar_step(e, 60000); /* the minute ends on the calendar, not on any other clock */
	cr_assert(th_until(no_bucket, e, 2000), "protd did not expire the bucket on the calendar");
	th_unserve(e->p, e->protd);
}
