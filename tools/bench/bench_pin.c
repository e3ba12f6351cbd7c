/* bench_pin.c — `protbench --pin`: which CPU each process of the bench runs on, so that the rows
 * (above all the contended ones) do not vary with where the scheduler happens to put them.
 *
 * The CPUs are those the bench was allowed at start (sched_getaffinity: a taskset or a cgroup
 * limit is respected), in order: cpu[0], ..., cpu[n-1]. With --pin:
 *  - the measuring process (every single-process row, the team's coordinator) runs on cpu[0];
 *  - the servers it starts (protd, redis-server, the Unix-socket daemon) run on cpu[n-1], so on
 *    a machine of two or more CPUs a round trip always crosses from one fixed CPU to another and
 *    protd's ticks never preempt a single-process row;
 *  - worker i of a process team runs on cpu[i mod n] (oversubscription stays, but is the same in
 *    every run);
 *  - every other child (the reclaim row's lease holder, the chaos workers) gets the whole start
 *    set back: pinned or not, a forked child inherits its parent's mask, so each fork site says
 *    where its child goes (bench_pin_child), or it would run on cpu[0] with the parent.
 * Without --pin nothing is changed and bench_pin_child is a no-op.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static cpu_set_t start_set; /* the mask at start: what BENCH_PIN_FREE restores */
static int cpu[CPU_SETSIZE];
static int ncpu;
static bool pinned;

static int pin_to(int c)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(c, &s);
	return sched_setaffinity(0, sizeof s, &s) == 0 ? 0 : -errno;
}

int bench_pin_init(bool pin)
{
	if (sched_getaffinity(0, sizeof start_set, &start_set) < 0)
		return -errno;
	ncpu = 0;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &start_set))
			cpu[ncpu++] = c;
	if (!pin || ncpu == 0)
		return 0;
	int r = pin_to(cpu[0]);
	pinned = r == 0;
	return r;
}

void bench_pin_child(int slot)
{
	if (!pinned)
		return;
	if (slot == BENCH_PIN_FREE)
		sched_setaffinity(0, sizeof start_set, &start_set);
	else
		pin_to(slot == BENCH_PIN_SERVER ? cpu[ncpu - 1] : cpu[slot % ncpu]);
	/* a failure leaves the child on the parent's CPU: slower, never wrong */
}

const char *bench_pin_describe(char *buf, size_t len)
{
	if (!pinned)
		snprintf(buf, len, "not pinned (--pin pins them)");
	else
		snprintf(buf, len, "pinned: measuring process on CPU %d, protd/redis/socket daemon on CPU %d, "
		         "worker i on allowed CPU i mod %d", cpu[0], cpu[ncpu - 1], ncpu);
	return buf;
}

bool bench_pinned(void) { return pinned; }
