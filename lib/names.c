/* names.c — the one table of names of enumerated values that leave a process: breaker states,
 * strategies and heal modes, pool states and strategies, rate algorithms, policies and clocks,
 * protd's state as protctl reports it, and the pages of a segment ([segment] huge_pages). protctl prints these (text and --json), the request
 * words of breaker-create / pool-create carry them (lib/wire.c), and man/prot-json.7.scd lists
 * them (tests/test_protctl.c compares that page with this table). One spelling each, snake_case:
 * "half_open", never "half-open". protd's INI parser (daemon/config_schema.c, config_value.c)
 * accepts the same words.
 */
#include <stddef.h>
#include <string.h>

#include "seg_place.h"
#include "wire.h"

#define NAMES_MAX 5

static const struct name_set {
	const char *title;               /* as prot-json(7) calls the set */
	const char *names[NAMES_MAX + 1]; /* by value, from 0; NULL: no name (and ends the list) */
	uint64_t first;                  /* the value of names[0] */
	bool zero_alias;                 /* 0 reads as names[0] (the documented default) */
} sets[NAMES_COUNT_] = {
	[NAMES_BREAKER_STATE] = {"breaker_state", {"closed", "open", "half_open", "blown"}, PROT_BREAKER_CLOSED, false},
	/* prot_breaker_opts: "0 = standard" */
	[NAMES_BREAKER_STRATEGY] = {"breaker_strategy", {"standard", "rate"}, PROT_BREAKER_STANDARD, true},
	[NAMES_BREAKER_HEAL] = {"breaker_heal", {"half_open", "full"}, PROT_HEAL_HALF_OPEN, false},
	[NAMES_POOL_STATE] = {"pool_state", {"ready", "overflow", "full"}, PROT_POOL_READY, false},
	[NAMES_POOL_STRATEGY] = {"pool_strategy", {"lifo", "fifo"}, 0, false},
	/* prot_rate_limit: "0 means fixed window" */
	[NAMES_RATE_ALGORITHM] = {"rate_algorithm",
	                          {"fixed_window", "gcra", "sliding_window", "token_bucket",
	                           "leaky_bucket"},
	                          PROT_RATE_FIXED_WINDOW, true},
	[NAMES_RATE_ON_FULL] = {"rate_on_full", {"deny", "allow", "evict"}, RATE_FULL_DENY, false},
	[NAMES_RATE_CLOCK] = {"rate_clock", {"monotonic", "coarse", "realtime", "auto"}, RATE_CLOCK_MONO, false},
	[NAMES_PROTD_STATE] = {"protd_state", {"running", "not_responding", "dead", "stopped"}, PROTD_RUNNING, false},
	[NAMES_RATE_SCOPE] = {"rate_scope", {"local", "global"}, RATE_SCOPE_LOCAL, false},
	[NAMES_GLOBAL_STATE] = {"global_state", {"off", "synced", "degraded"}, RG_OFF, false},
	[NAMES_HUGE_PAGES] = {"huge_pages", {"off", "thp", "hugetlbfs"}, SEG_HUGE_OFF, false},
};
_Static_assert(PROT_BREAKER_BLOWN == PROT_BREAKER_CLOSED + 3 && PROT_BREAKER_RATE == PROT_BREAKER_STANDARD + 1 &&
               PROT_HEAL_FULL == PROT_HEAL_HALF_OPEN + 1 && PROT_POOL_FULL == PROT_POOL_READY + 2 &&
               PROT_RATE_GCRA == PROT_RATE_FIXED_WINDOW + 1 &&
               PROT_RATE_SLIDING_WINDOW == PROT_RATE_FIXED_WINDOW + 2 &&
               PROT_RATE_TOKEN_BUCKET == PROT_RATE_FIXED_WINDOW + 3 &&
               PROT_RATE_LEAKY_BUCKET == PROT_RATE_FIXED_WINDOW + 4 && RATE_FULL_ALLOW == RATE_FULL_DENY + 1 &&
               RATE_FULL_EVICT == RATE_FULL_DENY + 2 &&
               RATE_CLOCK_COARSE == RATE_CLOCK_MONO + 1 && RATE_CLOCK_REALTIME == RATE_CLOCK_MONO + 2 &&
               RATE_CLOCK_AUTO == RATE_CLOCK_MONO + 3 &&
               PROTD_STOPPED == PROTD_RUNNING + 3 && RATE_SCOPE_GLOBAL == RATE_SCOPE_LOCAL + 1 &&
               RG_DEGRADED == RG_OFF + 2 &&
               SEG_HUGE_HUGETLBFS == SEG_HUGE_OFF + 2,
               "the names are listed by consecutive values");

const char *prot_name(enum prot_names set, uint64_t value)
{
	if ((unsigned)set >= NAMES_COUNT_)
		return NULL;
	const struct name_set *s = &sets[set];
	if (value == 0 && s->zero_alias)
		return s->names[0];
	if (value < s->first || value - s->first >= NAMES_MAX)
		return NULL;
	return s->names[value - s->first]; /* NULL past the last name */
}

int prot_name_value(enum prot_names set, const char *name, uint64_t *value)
{
	const char *const *n = prot_names_list(set);
	for (size_t i = 0; n && i < NAMES_MAX && n[i]; i++)
		if (strcmp(n[i], name) == 0) {
			*value = sets[set].first + i;
			return 0;
		}
	return -1;
}

const char *prot_name_shown(enum prot_names set, uint64_t value)
{
	const char *n = prot_name(set, value);
	return n ? n : "unknown";
}

const char *prot_names_title(enum prot_names set)
{
	return (unsigned)set < NAMES_COUNT_ ? sets[set].title : NULL;
}

const char *const *prot_names_list(enum prot_names set)
{
	return (unsigned)set < NAMES_COUNT_ ? sets[set].names : NULL;
}

/* The one spelling of each enum prot_breaker_state (lib/internal.h). */
const char *prot_breaker_state_name(uint32_t state)
{
	return prot_name_shown(NAMES_BREAKER_STATE, state);
}
