/* rate_limits.h — the limits the rate limiter enforces on every decision (lib/rate_algo.c), in one
 * place, so that protd's INI and runtime validator (daemon/config_value.c, config_check.c)
 * refuses at load time, with FILE:LINE, exactly what every decision would refuse later with
 * -EINVAL.
 */
#ifndef PROT_RATE_LIMITS_H
#define PROT_RATE_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "prot.h"

/* Window length, INI rate_window and prot_rate_limit.window_ms alike: 2^36 ms (about 2.2 years). */
#define RATE_WINDOW_MAX_MS (1ull << 36)
/* Fixed window: a bucket word is window end (ms) << RATE_FW_BITS | units counted in the window. */
#define RATE_FW_BITS 24
#define RATE_FW_LIMIT_MAX ((1ull << RATE_FW_BITS) - 1)
/* The calendar clock (rate_clock = realtime) counts ms from 2020-01-01T00:00:00Z, a multiple of a
 * day: bucket words then fit their bits until 2054 (rate_algo.c, OVERFLOW). */
#define RATE_EPOCH_MS 1577836800000ull
/* Sliding window: limit <= this (and <= the segment's [segment] sliding_max_limit), cost 1. */
#define RATE_SW_LIMIT_MAX 32768u
/* GCRA: tolerance tau = burst * ceil(window / limit) in ns must stay below this. */
#define RATE_GCRA_TAU_MAX_NS (1ull << 62)

/* [daemon] rate_grace: how long after it expired a bucket is freed (lib/rate_table.c, the
 * stale-client argument: at least two jiffies of CLOCK_MONOTONIC_COARSE at the slowest HZ). */
#define RATE_GRACE_DEFAULT_MS 100
#define RATE_GRACE_MIN_MS 20
#define RATE_GRACE_MAX_MS 60000

/* 0 when every decision on lim can be taken (limit or rate, window, algorithm, burst or capacity), else -EINVAL with
 * what is wrong, naming the INI option, in why (n bytes). */
__attribute__((visibility("hidden"))) int rate_limit_check(const struct prot_rate_limit *lim,
                                                           char *why, size_t n);

/* NULL when rate_clock = realtime can be used with algo (the fixed window: its windows are calendar
 * windows), else why not. */
__attribute__((visibility("hidden"))) const char *rate_clock_problem(uint32_t algo);

#endif
