/* config_check.c — what is checked across a whole configuration before it replaces the running
 * one: required values, options that go together, references between objects, the capacities of
 * [segment] and the size of the segment they make (config_segment_size, which protd --check-config
 * and shm.c use too). The INI reader (config_ini.c, through config_load), reloads (main.c) and the
 * control socket's changes (control.c) all run config_check() on the candidate; a config with any
 * error is not applied. Also the list those errors are collected in (cfg_errors).
 *
 * A mistake in one value is the value parser's (config_value.c) and carries that value's line;
 * the mistakes here carry the line of the object's section header ("FILE:LINE: [kind name]: ..."),
 * or name the object alone when it was made at runtime.
 */
#include "config_schema.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>

#include "rate_limits.h"
#include "seg_place.h"

/* ---- the list of errors ---------------------------------------------------------------------- */
void cfg_errors_add(struct cfg_errors *e, const char *fmt, ...)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 16;
		void *m = realloc(e->msg, cap * sizeof *e->msg);
		if (!m)
			return; /* out of memory: the count of errors is still non-zero elsewhere */
		e->msg = m;
		e->cap = cap;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg[e->n++], CFG_ERR_MAX, fmt, ap);
	va_end(ap);
}

void cfg_errors_free(struct cfg_errors *e)
{
	free(e->msg);
	*e = (struct cfg_errors){ 0 };
}

/* ---- the size of the segment ------------------------------------------------------------------ */
int config_segment_size(const struct config *c, uint64_t *size)
{
	struct prot_shm_header h;
	size_t bytes;
	int r = seg_layout(&c->seg.geo, &h, &bytes);
	if (r < 0)
		return r;
	/* the summary (and the operation registry) start on the page after the regions (seg_layout
	 * ends on a page boundary) */
	uint64_t summary = (RATE_TRAILER_BYTES(h.rate_groups) + 4095) & ~4095ull;
	*size = (uint64_t)bytes + summary;
	if (c->seg.huge_pages != SEG_HUGE_OFF) /* whole huge pages (lib/seg_place.c) */
		*size = (*size + SEG_HUGE_PAGE - 1) & ~(SEG_HUGE_PAGE - 1);
	return *size > SEG_SIZE_LIMIT ? -PROT_ECAPACITY : 0;
}

/* ---- whole-config checks ---------------------------------------------------------------------- */
/* "FILE:LINE: [kind name]" for an object with a header line, "[kind name]" otherwise. */
static void where(const struct config *c, const struct cfg_obj *o, const char *label, char *buf,
                  size_t n)
{
	if (o->line)
		snprintf(buf, n, "%s:%d: [%s]", c->file, o->line, label);
	else
		snprintf(buf, n, "[%s]", label);
}

#define WHERE(obj, kindname)                                                                   \
	char lbl_[80], at_[400];                                                                   \
	snprintf(lbl_, sizeof lbl_, "%s %s", kindname, (obj)->name);                              \
	where(c, (obj), lbl_, at_, sizeof at_)

/* The option naming a key's rate under its algorithm: Hammer's terms for its buckets. */
static const char *const rate_words[] = { "rate_limit", "rate_refill_rate", "rate_leak_rate" };

static const char *rate_word(uint64_t algo)
{
	return rate_words[algo == PROT_RATE_TOKEN_BUCKET ? 1 : algo == PROT_RATE_LEAKY_BUCKET ? 2 : 0];
}

/* Which of the rate's options a key gave; each one given under another algorithm's name is an
 * error. *lim: the rate was given. */
static void check_rate_words(const struct cfg_key *k, const char *at_, bool *lim, struct cfg_errors *e)
{
	const char *want = rate_word(k->c.rate_algo);
	const char *algo = prot_name_shown(NAMES_RATE_ALGORITHM, k->c.rate_algo);

	*lim = false;
	for (size_t i = 0; i < sizeof rate_words / sizeof *rate_words; i++) {
		if (!cfg_seen(&k->o, CFG_KEY, rate_words[i]))
			continue;
		*lim = true;
		if (rate_words[i] != want)
			cfg_errors_add(e, "%s: rate_algorithm = %s takes %s, not %s", at_, algo, want,
			               rate_words[i]);
	}
	bool bucket = want != rate_words[0];
	const char *other = bucket ? "rate_burst" : "rate_capacity";
	if (cfg_seen(&k->o, CFG_KEY, other))
		cfg_errors_add(e, "%s: rate_algorithm = %s takes %s, not %s", at_, algo,
		               bucket ? "rate_capacity" : "rate_burst", other);
	if (k->c.rate_clock == RATE_CLOCK_REALTIME && rate_clock_problem((uint32_t)k->c.rate_algo))
		cfg_errors_add(e, "%s: %s", at_, rate_clock_problem((uint32_t)k->c.rate_algo));
}

/* A global key (rate_scope = global): a fixed window on the calendar, with [redis]. */
static void check_scope(const struct config *c, const struct cfg_key *k, const char *at_,
                        struct cfg_errors *e)
{
	static const char *const opts[] = { "rate_allowance", "rate_local_share" };
	if (k->c.rate_scope != RATE_SCOPE_GLOBAL) {
		for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
			if (cfg_seen(&k->o, CFG_KEY, opts[i]))
				cfg_errors_add(e, "%s: %s is for rate_scope = global", at_, opts[i]);
		return;
	}
	if (!c->redis.address[0])
		cfg_errors_add(e, "%s: rate_scope = global needs a [redis] section with an address", at_);
	if (k->c.rate_algo != PROT_RATE_FIXED_WINDOW)
		cfg_errors_add(e, "%s: rate_scope = global is for rate_algorithm = fixed_window, not %s", at_,
		               prot_name_shown(NAMES_RATE_ALGORITHM, k->c.rate_algo));
	else if (k->c.rate_clock != RATE_CLOCK_REALTIME)
		cfg_errors_add(e, "%s: rate_scope = global decides on calendar windows: rate_clock must be "
		               "realtime, not %s", at_, prot_name_shown(NAMES_RATE_CLOCK, k->c.rate_clock));
	if (!rate_cfg_on(&k->c))
		cfg_errors_add(e, "%s: rate_scope = global needs rate_limit and rate_window", at_);
	if (k->c.rate_local_share > k->c.rate_limit)
		cfg_errors_add(e, "%s: rate_local_share %" PRIu64 " is larger than rate_limit %" PRIu64, at_,
		               (uint64_t)k->c.rate_local_share, (uint64_t)k->c.rate_limit);
}

/* [redis]: the address's form, the password file's owner-only mode. */
static void check_redis(const struct config *c, struct cfg_errors *e)
{
	const struct cfg_redis *r = &c->redis;
	char at[400], host[CFG_PATH_MAX];
	unsigned port;
	int n = 0;
	where(c, &r->o, "redis", at, sizeof at);
	if (!r->address[0]) {
		if (r->o.seen)
			cfg_errors_add(e, "%s: address is required", at);
		return;
	}
	if (strncmp(r->address, "unix:/", 6) != 0 &&
	    (sscanf(r->address, "tcp://%107[^:]:%u%n", host, &port, &n) != 2 || r->address[n] ||
	     port == 0 || port > 65535))
		cfg_errors_add(e, "%s: address \"%s\" is neither tcp://HOST:PORT nor unix:/PATH", at,
		               r->address);
	struct stat st;
	if (!r->password_file[0])
		return;
	if (stat(r->password_file, &st) < 0)
		cfg_errors_add(e, "%s: password_file %s: %s", at, r->password_file, strerror(errno));
	else if (st.st_mode & 0077)
		cfg_errors_add(e, "%s: password_file %s is readable by others (mode %04o): make it 0600 "
		               "(or 0400), owned by protd's user", at, r->password_file,
		               (unsigned)(st.st_mode & 07777));
}

static void check_key(const struct config *c, const struct cfg_key *k, struct cfg_errors *e)
{
	WHERE(&k->o, "key");
	bool lim, win = cfg_seen(&k->o, CFG_KEY, "rate_window");
	bool bucket = rate_word(k->c.rate_algo) != rate_words[0];
	check_rate_words(k, at_, &lim, e);
	/* a window algorithm needs its window; a bucket its capacity (its period defaults to 1s) */
	const char *with = bucket ? "rate_capacity" : "rate_window";
	bool other = cfg_seen(&k->o, CFG_KEY, with);
	if (lim != other)
		cfg_errors_add(e, "%s: %s and %s go together: %s is missing", at_, rate_word(k->c.rate_algo),
		               with, lim ? with : rate_word(k->c.rate_algo));
	else if (!lim) {
		static const char *const rate_opts[] = { "rate_algorithm", "rate_burst", "rate_on_full",
			                                 "rate_clock", "rate_window" };
		for (size_t i = 0; i < sizeof rate_opts / sizeof *rate_opts; i++)
			if (cfg_seen(&k->o, CFG_KEY, rate_opts[i]))
				cfg_errors_add(e, "%s: %s needs %s and %s", at_, rate_opts[i],
				               rate_word(k->c.rate_algo), with);
	}
	const struct cfg_breaker *b = config_breaker(c, k->o.name);
	if (cfg_seen(&k->o, CFG_KEY, "breaker") && b && b->inline_of_key && strcmp(k->breaker, k->o.name))
		cfg_errors_add(e, "%s: breaker = %s conflicts with the inline breaker_* options", at_,
		               k->breaker);
	const struct cfg_pool *p = config_pool(c, k->o.name);
	if (cfg_seen(&k->o, CFG_KEY, "pool") && p && p->inline_of_key && strcmp(k->pool, k->o.name))
		cfg_errors_add(e, "%s: pool = %s conflicts with the inline pool_* options", at_, k->pool);
	struct prot_rate_limit rl = { .algo = (uint32_t)k->c.rate_algo, .limit = k->c.rate_limit,
		                      .window_ms = k->c.rate_window_ms, .burst = k->c.rate_burst };
	char why[160];
	if (lim && (win || bucket) && rate_limit_check(&rl, why, sizeof why) < 0)
		cfg_errors_add(e, "%s: %s", at_, why);
	else if (rl.algo == PROT_RATE_SLIDING_WINDOW && rl.limit > c->seg.geo.sliding_max_limit)
		cfg_errors_add(e, "%s: a sliding_window rate_limit of %" PRIu64 " exceeds [segment] "
		               "sliding_max_limit %" PRIu32, at_, rl.limit, c->seg.geo.sliding_max_limit);
	else if (rl.algo == PROT_RATE_SLIDING_WINDOW && c->seg.geo.sliding_buckets == 0)
		cfg_errors_add(e, "%s: rate_algorithm = sliding_window needs [segment] sliding_buckets", at_);
	check_scope(c, k, at_, e);
	if (k->breaker[0] && !config_breaker(c, k->breaker))
		cfg_errors_add(e, "%s: breaker \"%s\" is not defined", at_, k->breaker);
	if (k->pool[0] && !config_pool(c, k->pool))
		cfg_errors_add(e, "%s: pool \"%s\" is not defined", at_, k->pool);
}

static void check_breaker(const struct config *c, const struct cfg_breaker *b, struct cfg_errors *e)
{
	WHERE(&b->o, b->inline_of_key ? "key" : "breaker");
	const char *pre = b->inline_of_key ? cfg_inline_prefix(CFG_BREAKER) : "";
	const char *need[3];
	size_t n = 0;
	if (b->c.strategy == PROT_BREAKER_RATE) {
		need[n++] = "rate_threshold";
		need[n++] = "rate_window_calls";
	} else {
		need[n++] = "tolerance";
		need[n++] = "window";
	}
	need[n++] = "refresh";
	for (size_t i = 0; i < n; i++)
		if (!cfg_seen(&b->o, CFG_BREAKER, need[i]))
			cfg_errors_add(e, "%s: %s%s is required", at_, pre, need[i]);
	if (b->c.strategy == PROT_BREAKER_RATE && b->c.rate_min_calls > b->c.rate_window_calls &&
	    cfg_seen(&b->o, CFG_BREAKER, "rate_window_calls"))
		cfg_errors_add(e, "%s: %srate_min_calls %" PRIu64 " is larger than rate_window_calls %" PRIu64,
		               at_, pre, (uint64_t)b->c.rate_min_calls, (uint64_t)b->c.rate_window_calls);
}

static void check_pool(const struct config *c, const struct cfg_pool *p, struct cfg_errors *e)
{
	WHERE(&p->o, p->inline_of_key ? "key" : "pool");
	const char *pre = p->inline_of_key ? cfg_inline_prefix(CFG_POOL) : "";
	if (!cfg_seen(&p->o, CFG_POOL, "size"))
		cfg_errors_add(e, "%s: %ssize is required", at_, pre);
	else if (p->c.size + p->c.max_overflow > c->seg.geo.pool_max_slots)
		cfg_errors_add(e, "%s: %ssize + %smax_overflow = %" PRIu64 " exceeds pool_max_slots = %u",
		               at_, pre, pre, (uint64_t)(p->c.size + p->c.max_overflow),
		               c->seg.geo.pool_max_slots);
	else if (p->c.size + p->c.max_overflow == 0)
		cfg_errors_add(e, "%s: %ssize + %smax_overflow is 0: the pool could never hand out a lease",
		               at_, pre, pre);
	if (p->c.min_idle > p->c.size + p->c.max_overflow)
		cfg_errors_add(e, "%s: %smin_idle %" PRIu64 " is larger than size + max_overflow", at_, pre,
		               (uint64_t)p->c.min_idle);
	if (p->c.max_open > c->seg.geo.pool_max_slots)
		cfg_errors_add(e, "%s: %smax_open = %" PRIu64 " exceeds pool_max_slots = %u (the connection slots)",
		               at_, pre, (uint64_t)p->c.max_open, c->seg.geo.pool_max_slots);
}

/* The first object beyond the capacity gets the error. */
static void check_capacity(const struct config *c, const struct cfg_obj *o, size_t i, size_t n,
                           uint32_t max, const char *kind, const char *maxname,
                           struct cfg_errors *e)
{
	if (n > max && i == max) {
		WHERE(o, kind);
		cfg_errors_add(e, "%s: %zu %ss defined, more than %s = %u", at_, n, kind, maxname, max);
	}
}

/* The segment the capacities make must fit max_segment_size (and one segment at all). The error
 * carries the [segment] line, or [daemon]'s when the capacities are all defaults. */
static void check_size(const struct config *c, struct cfg_errors *e)
{
	bool seg = c->seg.o.line || !c->daemon.o.line;
	char at[400], have[32], max[32];
	uint64_t size;
	where(c, seg ? &c->seg.o : &c->daemon.o, seg ? "segment" : "daemon", at, sizeof at);
	if (config_segment_size(c, &size) < 0) {
		cfg_errors_add(e, "%s: the capacities make a segment larger than %s, the most libprot "
		               "attaches to", at, "64 GiB");
		return;
	}
	if (size <= c->daemon.max_segment_size)
		return;
	config_fmt_size(have, sizeof have, size);
	config_fmt_size(max, sizeof max, c->daemon.max_segment_size);
	cfg_errors_add(e, "%s: the capacities make a segment of %s (%" PRIu64 " bytes), more than "
	               "[daemon] max_segment_size = %s (%" PRIu64 " bytes)", at, have, size, max,
	               c->daemon.max_segment_size);
}

int config_check(const struct config *c, struct cfg_errors *e)
{
	size_t before = e->n;
	check_size(c, e);
	check_redis(c, e);
	const struct seg_geometry *g = &c->seg.geo;
	for (size_t i = 0; i < c->nkeys; i++) {
		check_key(c, &c->keys[i], e);
		check_capacity(c, &c->keys[i].o, i, c->nkeys, g->max_keys, "key", "max_keys", e);
	}
	for (size_t i = 0; i < c->nbreakers; i++) {
		check_breaker(c, &c->breakers[i], e);
		check_capacity(c, &c->breakers[i].o, i, c->nbreakers, g->max_breakers, "breaker",
		               "max_breakers", e);
	}
	for (size_t i = 0; i < c->npools; i++) {
		check_pool(c, &c->pools[i], e);
		check_capacity(c, &c->pools[i].o, i, c->npools, g->max_pools, "pool", "max_pools", e);
	}
	return (int)(e->n - before);
}
