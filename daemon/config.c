/* config.c — protd's INI file: parsing (inih), the one value validator shared with the control
 * socket, defaults, and the whole-file checks. Nothing here touches the segment.
 *
 * Every mistake is reported as `FILE:LINE: what is wrong`, all of them for the whole file, and a
 * file with any mistake applies nothing. Mistakes in one value carry the line of that value;
 * missing values, conflicts, references and capacities carry the line of the section header.
 *
 * OPTIONS. Durations take a unit: ms, s, m, h; a bare number is milliseconds ("1500", "1.5s" is
 * not accepted: use "1500ms"). Numbers are unsigned decimal. Lines start comments with ; or #, and
 * ` ;` starts an inline comment. Names (keys, breakers, pools) are 1..47 bytes of printable ASCII
 * without spaces or '='.
 *
 * [segment]                     one per file; changes to capacities need a restart (--recreate)
 *   name = /prot                POSIX shm name (/ + up to 62 bytes, no other /); --segment overrides
 *   mode = 0600                 octal; the segment gets exactly this mode (the umask is ignored);
 *                               must give the owner read and write, and must not be
 *                               world-writable (o+w is an error); g+w lets the group change
 *                               state and use the control socket's writing requests
 *   group = NAME|GID            group owner of the segment (optional); its members may attach,
 *                               and make changes through the control socket only when mode has g+w
 *   max_keys = 64               protection key slots          (1..65536)
 *   max_breakers = 64           circuit breaker slots         (1..65536)
 *   max_pools = 16              pool slots                    (1..4096)
 *   pool_max_slots = 64         leases per pool: size + max_overflow of every pool must fit (1..65536)
 *   pool_max_waiters = 128      waiters per pool              (1..65536)
 *   rate_entities = 65536       rate-limiter buckets, rounded up to whole groups (32..67108864)
 *   events = 1024               event ring entries            (16..1048576)
 *   max_processes = 1024        process slots: read-write handles attached at once, plus protd
 *                               (2..65535); a prot_open() beyond them is PROT_ECAPACITY
 *
 * [daemon]
 *   tick = 10ms                 heartbeat, sweeps, reclaims, event draining (1ms..1s)
 *   reclaim_interval = 100ms    default reclaim_interval of pools
 *   control_socket = PATH       default /run/prot/<segment name without the />.sock as root, else
 *                               $XDG_RUNTIME_DIR/prot/..., else /tmp/prot-<uid>/...;
 *                               --control overrides
 *   max_segment_size = 1GiB     the largest segment the [segment] capacities may make (bytes, or
 *                               with a unit: KiB, MiB, GiB; k, m, g mean the same); protd reserves
 *                               all of it in /dev/shm at creation (1MiB..64GiB)
 *
 * [key NAME]                    a protection key (what execute_protected applies, in order)
 *   rate_limit = N              units per window (>= 1; fixed_window: < 2^24); needs rate_window;
 *                               omit both: no limiter
 *   rate_window = DURATION      (1ms .. 2^36 ms, the API's maximum too); needs rate_limit
 *   rate_algorithm = gcra       gcra | fixed_window
 *   rate_burst = N              GCRA burst in units; 0 (default) = rate_limit
 *   rate_on_full = deny         deny | allow: what a new entity gets when the bucket table is full
 *   rate_clock = monotonic      monotonic | coarse (CLOCK_MONOTONIC_COARSE: cheaper, ~4ms steps)
 *   breaker = NAME              a [breaker NAME] section
 *   pool = NAME                 a [pool NAME] section
 *   timeout = 5s                default timeout of a protected call
 *   breaker_OPTION = VALUE      any [breaker] option: creates a breaker named after the key
 *                               (then `breaker =` must not be given)
 *   pool_OPTION = VALUE         any [pool] option: creates a pool named after the key
 *
 * [breaker NAME]                a circuit breaker (fuse)
 *   strategy = standard         standard | rate
 *   tolerance = N               standard: trips at the (N+1)-th failure within window (0..127);
 *                               required for standard
 *   window = DURATION           standard: the failure window; required for standard
 *   refresh = DURATION          how long it stays open before half-open probes; required
 *   half_open_probes = 1        concurrent probes while half-open (0..64; 0 means 1)
 *   heal = half_open            after refresh: half_open (probes decide) or full (fuse: closed,
 *                               with an empty history)
 *   probe_timeout = DURATION    a probe not reported within this is given back; 0 (default) = refresh
 *   slow_call = DURATION        calls longer than this count as failures; 0 (default) = off
 *   rate_threshold = 50%        rate: trip when the failure percentage reaches this (1..100; the %
 *                               sign is optional); required for rate
 *   rate_window_calls = N       rate: over the last N calls (1..1024); required for rate
 *   rate_min_calls = N          rate: once at least N calls were seen; default rate_window_calls
 *
 * [pool NAME]                   a connection pool (poolboy)
 *   size = N                    permanent slots (>= 0: 0 is a pool of overflow only); required
 *   max_overflow = 0            extra slots on demand
 *   checkout_timeout = 5s       how long a checkout waits
 *   strategy = lifo             lifo | fifo (which idle connection is reused)
 *   overflow_ttl = 0            how long an idle overflow connection is kept; 0 = closed at once
 *   reclaim_interval = DURATION how soon a dead holder's lease comes back; default [daemon] value
 *   min_idle = 0                connections each process makes at prot_pool_register
 *   idle_timeout = 0            an idle connection is closed after this (beyond min_idle); 0 = never
 *   max_lifetime = 0            a connection older than this is closed at checkin or idle check; 0 = never
 *   leak_threshold = 0          a lease held longer raises an EV_POOL_LEAK event; 0 = off
 *   max_open = 0                connections open to the backend across all processes; 0 = unlimited
 *
 * Runtime changes (control socket, `protctl set`) use the same names and the same validator. A
 * later SIGHUP re-applies the INI, which is the source of truth: runtime changes to keys, breakers
 * and pools that the INI defines are overwritten; objects created at runtime only are kept.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "rate_limits.h"

/* ------------------------------------------------------------------------------------------ */
/* option tables                                                                               */
/* ------------------------------------------------------------------------------------------ */
enum opt_type { T_U64, T_DUR, T_ENUM, T_PCT, T_SIZE, T_REF, T_MODE, T_GROUP, T_SEGNAME, T_PATH };

struct opt_enum {
	const char *name;
	uint64_t value;
};

struct opt {
	const char *name;
	enum opt_type type;
	size_t off;   /* from the object's base */
	size_t size;  /* 4 or 8 for integers, buffer size for strings */
	uint64_t min, max;
	const struct opt_enum *e;
	const char *why_max; /* explains max when it is a capacity of the layout */
};

#define DUR_MAX (30ull * 24 * 3600 * 1000) /* 30 days */
#define MIB (1ull << 20)
#define SEG_SIZE_DEFAULT (1ull << 30)      /* [daemon] max_segment_size */
#define SEG_SIZE_LIMIT (64ull << 30)       /* what libprot attaches to (lib/segment.c) */
#define U(st, f) offsetof(st, f), sizeof(((st *)0)->f)

static const struct opt_enum e_algo[] = { { "gcra", PROT_RATE_GCRA },
	                                  { "fixed_window", PROT_RATE_FIXED_WINDOW }, { 0, 0 } };
static const struct opt_enum e_full[] = { { "deny", RATE_FULL_DENY }, { "allow", RATE_FULL_ALLOW },
	                                  { 0, 0 } };
static const struct opt_enum e_clock[] = { { "monotonic", RATE_CLOCK_MONO },
	                                   { "coarse", RATE_CLOCK_COARSE }, { 0, 0 } };
static const struct opt_enum e_bstrat[] = { { "standard", PROT_BREAKER_STANDARD },
	                                    { "rate", PROT_BREAKER_RATE }, { 0, 0 } };
static const struct opt_enum e_pstrat[] = { { "lifo", 0 }, { "fifo", 1 }, { 0, 0 } };
static const struct opt_enum e_heal[] = { { "half_open", PROT_HEAL_HALF_OPEN }, { "full", PROT_HEAL_FULL },
	                                  { 0, 0 } };

static const struct opt opts_segment[] = {
	{ "name", T_SEGNAME, U(struct cfg_segment, name), 0, 0, NULL, NULL },
	{ "mode", T_MODE, U(struct cfg_segment, mode), 0, 0777, NULL, NULL },
	{ "group", T_GROUP, U(struct cfg_segment, gid), 0, 0, NULL, NULL },
	{ "max_keys", T_U64, U(struct cfg_segment, geo.max_keys), 1, 65536, NULL, NULL },
	{ "max_breakers", T_U64, U(struct cfg_segment, geo.max_breakers), 1, 65536, NULL, NULL },
	{ "max_pools", T_U64, U(struct cfg_segment, geo.max_pools), 1, 4096, NULL, NULL },
	{ "pool_max_slots", T_U64, U(struct cfg_segment, geo.pool_max_slots), 1, 65536, NULL, NULL },
	{ "pool_max_waiters", T_U64, U(struct cfg_segment, geo.pool_max_waiters), 1, 65536, NULL, NULL },
	{ "rate_entities", T_U64, U(struct cfg_segment, geo.rate_entities), RATE_GROUP_SLOTS, 1u << 26,
	  NULL, NULL },
	{ "events", T_U64, U(struct cfg_segment, geo.events), 16, 1u << 20, NULL, NULL },
	{ "max_processes", T_U64, U(struct cfg_segment, geo.max_procs), 2, PROC_SLOTS_MAX, NULL, NULL },
	{ 0 },
};
static const struct opt opts_daemon[] = {
	{ "tick", T_DUR, U(struct cfg_daemon, tick_ms), 1, 1000, NULL, NULL },
	{ "reclaim_interval", T_DUR, U(struct cfg_daemon, reclaim_ms), 1, DUR_MAX, NULL, NULL },
	{ "control_socket", T_PATH, U(struct cfg_daemon, control_socket), 0, 0, NULL, NULL },
	{ "max_segment_size", T_SIZE, U(struct cfg_daemon, max_segment_size), MIB, SEG_SIZE_LIMIT, NULL,
	  "the largest segment libprot attaches to" },
	{ 0 },
};
static const struct opt opts_key[] = {
	{ "rate_limit", T_U64, U(struct cfg_key, c.rate_limit), 1, UINT32_MAX, NULL, NULL },
	{ "rate_window", T_DUR, U(struct cfg_key, c.rate_window_ms), 1, RATE_WINDOW_MAX_MS, NULL,
	  "2^36 ms, the rate limiter's" },
	{ "rate_algorithm", T_ENUM, U(struct cfg_key, c.rate_algo), 0, 0, e_algo, NULL },
	{ "rate_burst", T_U64, U(struct cfg_key, c.rate_burst), 0, UINT32_MAX, NULL, NULL },
	{ "rate_on_full", T_ENUM, U(struct cfg_key, c.rate_full_policy), 0, 0, e_full, NULL },
	{ "rate_clock", T_ENUM, U(struct cfg_key, c.rate_clock), 0, 0, e_clock, NULL },
	{ "breaker", T_REF, U(struct cfg_key, breaker), 0, 0, NULL, NULL },
	{ "pool", T_REF, U(struct cfg_key, pool), 0, 0, NULL, NULL },
	{ "timeout", T_DUR, U(struct cfg_key, c.timeout_ms), 1, DUR_MAX, NULL, NULL },
	{ 0 },
};
static const struct opt opts_breaker[] = {
	{ "strategy", T_ENUM, U(struct cfg_breaker, c.strategy), 0, 0, e_bstrat, NULL },
	{ "tolerance", T_U64, U(struct cfg_breaker, c.tolerance), 0, BREAKER_MELT_RING - 1, NULL,
	  "BREAKER_MELT_RING - 1" },
	{ "window", T_DUR, U(struct cfg_breaker, c.window_ms), 1, DUR_MAX, NULL, NULL },
	{ "refresh", T_DUR, U(struct cfg_breaker, c.refresh_ms), 1, DUR_MAX, NULL, NULL },
	{ "half_open_probes", T_U64, U(struct cfg_breaker, c.half_open_probes), 0, BREAKER_PROBES_MAX, NULL, NULL },
	{ "heal", T_ENUM, U(struct cfg_breaker, c.heal), 0, 0, e_heal, NULL },
	{ "probe_timeout", T_DUR, U(struct cfg_breaker, c.probe_timeout_ms), 0, DUR_MAX, NULL, NULL },
	{ "slow_call", T_DUR, U(struct cfg_breaker, c.slow_call_ms), 0, DUR_MAX, NULL, NULL },
	{ "rate_threshold", T_PCT, U(struct cfg_breaker, c.rate_threshold_pct), 1, 100, NULL, NULL },
	{ "rate_window_calls", T_U64, U(struct cfg_breaker, c.rate_window_calls), 1, BREAKER_RATE_BITS,
	  NULL, "BREAKER_RATE_BITS" },
	{ "rate_min_calls", T_U64, U(struct cfg_breaker, c.rate_min_calls), 1, BREAKER_RATE_BITS, NULL,
	  "BREAKER_RATE_BITS" },
	{ 0 },
};
static const struct opt opts_pool[] = {
	{ "size", T_U64, U(struct cfg_pool, c.size), 0, 65536, NULL, NULL },
	{ "max_overflow", T_U64, U(struct cfg_pool, c.max_overflow), 0, 65536, NULL, NULL },
	{ "checkout_timeout", T_DUR, U(struct cfg_pool, c.checkout_timeout_ms), 0, DUR_MAX, NULL, NULL },
	{ "strategy", T_ENUM, U(struct cfg_pool, c.strategy), 0, 0, e_pstrat, NULL },
	{ "overflow_ttl", T_DUR, U(struct cfg_pool, c.overflow_ttl_ms), 0, DUR_MAX, NULL, NULL },
	{ "reclaim_interval", T_DUR, U(struct cfg_pool, c.reclaim_ms), 1, DUR_MAX, NULL, NULL },
	{ "min_idle", T_U64, U(struct cfg_pool, c.min_idle), 0, 65536, NULL, NULL },
	{ "idle_timeout", T_DUR, U(struct cfg_pool, c.idle_timeout_ms), 0, DUR_MAX, NULL, NULL },
	{ "max_lifetime", T_DUR, U(struct cfg_pool, c.max_lifetime_ms), 0, DUR_MAX, NULL, NULL },
	{ "leak_threshold", T_DUR, U(struct cfg_pool, c.leak_threshold_ms), 0, DUR_MAX, NULL, NULL },
	{ "max_open", T_U64, U(struct cfg_pool, c.max_open), 0, 65536, NULL, NULL },
	{ 0 },
};

static const struct opt *const opt_tables[CFG_KIND_COUNT_] = {
	[CFG_SEGMENT] = opts_segment, [CFG_DAEMON] = opts_daemon, [CFG_KEY] = opts_key,
	[CFG_BREAKER] = opts_breaker, [CFG_POOL] = opts_pool,
};
static const char *const kind_names[CFG_KIND_COUNT_] = {
	[CFG_SEGMENT] = "segment", [CFG_DAEMON] = "daemon", [CFG_KEY] = "key",
	[CFG_BREAKER] = "breaker", [CFG_POOL] = "pool",
};

static int opt_index(enum cfg_kind kind, const char *name)
{
	const struct opt *t = opt_tables[kind];
	for (int i = 0; t[i].name; i++)
		if (strcmp(t[i].name, name) == 0)
			return i;
	return -1;
}

const char *const *config_option_names(enum cfg_kind kind)
{
	static const char *names[CFG_KIND_COUNT_][16];
	if (!names[kind][0]) {
		const struct opt *t = opt_tables[kind];
		for (int i = 0; t[i].name; i++)
			names[kind][i] = t[i].name;
	}
	return names[kind];
}

const char *config_kind_name(enum cfg_kind kind)
{
	return kind_names[kind];
}

int config_route(const char *name, enum cfg_kind *kind, const char **sub)
{
	if (strncmp(name, "breaker_", 8) == 0) {
		*kind = CFG_BREAKER;
		*sub = name + 8;
	} else if (strncmp(name, "pool_", 5) == 0) {
		*kind = CFG_POOL;
		*sub = name + 5;
	} else {
		*kind = CFG_KEY;
		*sub = name;
	}
	return opt_index(*kind, *sub) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* errors                                                                                      */
/* ------------------------------------------------------------------------------------------ */
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

/* ------------------------------------------------------------------------------------------ */
/* value parsers                                                                               */
/* ------------------------------------------------------------------------------------------ */
/* Leading unsigned decimal digits of s. 0 ok, -1 no digits, -2 overflow. *end after the digits. */
static int parse_digits(const char *s, uint64_t *v, const char **end)
{
	uint64_t x = 0;
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -1;
	int over = 0;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			over = 1;
		else
			x = x * 10 + d;
	}
	*end = p;
	*v = x;
	return over ? -2 : 0;
}

static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, CFG_ERR_MAX, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_number(const struct opt *o, const char *v, uint64_t *out, char *err)
{
	const char *end;
	int r = parse_digits(v, out, &end);
	if (r == -1)
		return fail(err, "%s: \"%s\" is not a number", o->name, v);
	if (r == -2)
		return fail(err, "%s: %s overflows", o->name, v);
	if (o->type == T_PCT && *end == '%')
		end++;
	if (*end)
		return fail(err, "%s: \"%s\" is not a number", o->name, v);
	return 0;
}

static int parse_duration(const struct opt *o, const char *v, uint64_t *out, char *err)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = { { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	const char *end;
	uint64_t n;
	int r = parse_digits(v, &n, &end);
	if (r == -1)
		return fail(err, "%s: \"%s\" is not a duration (e.g. 500ms, 2s, 1m)", o->name, v);
	if (r == -2)
		return fail(err, "%s: %s overflows", o->name, v);
	while (*end == ' ' || *end == '\t')
		end++;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (n > UINT64_MAX / units[i].ms)
			return fail(err, "%s: %s overflows", o->name, v);
		*out = n * units[i].ms;
		return 0;
	}
	return fail(err, "%s: unknown unit \"%s\" in \"%s\" (use ms, s, m or h)", o->name, end, v);
}

static int parse_size(const struct opt *o, const char *v, uint64_t *out, char *err)
{
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = { { "", 0 },      { "k", 10 },  { "kib", 10 }, { "m", 20 },
		      { "mib", 20 }, { "g", 30 }, { "gib", 30 } };
	const char *end;
	uint64_t n;
	int r = parse_digits(v, &n, &end);
	if (r == -1)
		return fail(err, "%s: \"%s\" is not a size (e.g. 512MiB, 2GiB, 1048576)", o->name, v);
	if (r == -2)
		return fail(err, "%s: %s overflows", o->name, v);
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcasecmp(end, units[i].unit) != 0)
			continue;
		if (n > UINT64_MAX >> units[i].shift)
			return fail(err, "%s: %s overflows", o->name, v);
		*out = n << units[i].shift;
		return 0;
	}
	return fail(err, "%s: unknown unit \"%s\" in \"%s\" (use KiB, MiB or GiB)", o->name, end, v);
}

static int parse_enum(const struct opt *o, const char *v, uint64_t *out, char *err)
{
	char list[128] = "";
	for (const struct opt_enum *e = o->e; e->name; e++) {
		if (strcmp(e->name, v) == 0) {
			*out = e->value;
			return 0;
		}
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", e == o->e ? "" : " | ",
		         e->name);
	}
	return fail(err, "%s: \"%s\" is not one of %s", o->name, v, list);
}

int config_check_name(const char *what, const char *v, char err[CFG_ERR_MAX])
{
	size_t n = strlen(v);
	if (n == 0)
		return fail(err, "%s: empty name", what);
	if (n > PROT_NAME_MAX)
		return fail(err, "%s: name \"%s\" is longer than %d bytes", what, v, PROT_NAME_MAX);
	for (const char *p = v; *p; p++)
		if (!isgraph((unsigned char)*p) || *p == '=')
			return fail(err, "%s: name \"%s\" may hold only printable characters without "
			                 "spaces or '='", what, v);
	return 0;
}

static int parse_string(const struct opt *o, const char *v, char *dst, char *err)
{
	size_t n = strlen(v);
	switch (o->type) {
	case T_REF:
		if (config_check_name(o->name, v, err))
			return -1;
		break;
	case T_SEGNAME:
		if (v[0] != '/' || n < 2 || strchr(v + 1, '/') || n > 63)
			return fail(err, "%s: \"%s\" is not a shm name (\"/\" then 1 to 62 bytes, no other "
			                 "\"/\")", o->name, v);
		break;
	case T_PATH:
		if (v[0] != '/' || n >= o->size)
			return fail(err, "%s: \"%s\" is not an absolute path shorter than %zu bytes",
			            o->name, v, o->size);
		break;
	default:
		break;
	}
	memcpy(dst, v, n + 1);
	return 0;
}

static int parse_group(const struct opt *o, const char *v, gid_t *gid, char *err)
{
	uint64_t n;
	const char *end;
	if (parse_digits(v, &n, &end) == 0 && !*end && n < UINT32_MAX) {
		*gid = (gid_t)n;
		return 0;
	}
	struct group gr, *res = NULL;
	char buf[4096];
	if (getgrnam_r(v, &gr, buf, sizeof buf, &res) != 0 || !res)
		return fail(err, "%s: unknown group \"%s\"", o->name, v);
	*gid = res->gr_gid;
	return 0;
}

static void store_int(void *dst, size_t size, uint64_t v)
{
	if (size == 8)
		memcpy(dst, &v, 8);
	else {
		uint32_t w = (uint32_t)v;
		memcpy(dst, &w, 4);
	}
}

static uint64_t load_int(const void *src, size_t size)
{
	if (size == 8) {
		uint64_t v;
		memcpy(&v, src, 8);
		return v;
	}
	uint32_t w;
	memcpy(&w, src, 4);
	return w;
}

/* Parse and range-check one value of option o into obj. */
static int set_opt(const struct opt *o, void *obj, const char *v, char *err)
{
	char *dst = (char *)obj + o->off;
	uint64_t n = 0;
	int r;
	if (!*v)
		return fail(err, "%s: empty value", o->name);
	switch (o->type) {
	case T_U64:
	case T_PCT:
		r = parse_number(o, v, &n, err);
		break;
	case T_DUR:
		r = parse_duration(o, v, &n, err);
		break;
	case T_SIZE:
		r = parse_size(o, v, &n, err);
		break;
	case T_ENUM:
		r = parse_enum(o, v, &n, err);
		break;
	case T_MODE: {
		char *end;
		errno = 0;
		unsigned long m = strtoul(v, &end, 8);
		if (*end || !isdigit((unsigned char)*v) || errno)
			return fail(err, "%s: \"%s\" is not an octal mode", o->name, v);
		if (m > 0777)
			return fail(err, "%s: %s is larger than 0777", o->name, v);
		if ((m & 0600) != 0600)
			return fail(err, "%s: %s must give the owner read and write (0600)", o->name, v);
		if (m & 0002)
			return fail(err, "%s: %s is world-writable: every local user could rewrite the "
			            "segment (at most 0660; give writers a group)", o->name, v);
		n = m;
		r = 0;
		break;
	}
	case T_GROUP: {
		struct cfg_segment *s = obj;
		if (parse_group(o, v, &s->gid, err))
			return -1;
		s->has_group = true;
		return 0;
	}
	default:
		return parse_string(o, v, dst, err);
	}
	if (r)
		return r;
	if (n < o->min)
		return fail(err, "%s: %s is smaller than the minimum %" PRIu64, o->name, v, o->min);
	if (o->max && n > o->max)
		return fail(err, "%s: %s is larger than the maximum %" PRIu64 "%s%s%s", o->name, v, o->max,
		            o->why_max ? " (" : "", o->why_max ? o->why_max : "", o->why_max ? ")" : "");
	store_int(dst, o->size, n);
	return 0;
}

int config_set_value(enum cfg_kind kind, void *obj, const char *name, const char *value,
                     char errbuf[CFG_ERR_MAX])
{
	int i = opt_index(kind, name);
	if (i < 0)
		return fail(errbuf, "unknown option \"%s\" for a %s", name, kind_names[kind]);
	if (set_opt(&opt_tables[kind][i], obj, value, errbuf))
		return -1;
	((struct cfg_obj *)obj)->seen |= 1ull << i;
	return 0;
}

static void fmt_duration(char *buf, size_t n, uint64_t ms)
{
	if (ms && ms % 3600000 == 0)
		snprintf(buf, n, "%" PRIu64 "h", ms / 3600000);
	else if (ms && ms % 60000 == 0)
		snprintf(buf, n, "%" PRIu64 "m", ms / 60000);
	else if (ms && ms % 1000 == 0)
		snprintf(buf, n, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, n, "%" PRIu64 "ms", ms);
}

void config_get_value(enum cfg_kind kind, const void *obj, const char *name, char *buf, size_t n)
{
	int i = opt_index(kind, name);
	buf[0] = '\0';
	if (i < 0 || !obj)
		return;
	const struct opt *o = &opt_tables[kind][i];
	const char *src = (const char *)obj + o->off;
	uint64_t v = 0;
	if (o->type <= T_SIZE || o->type == T_MODE || o->type == T_GROUP)
		v = load_int(src, o->size);
	switch (o->type) {
	case T_U64:
		snprintf(buf, n, "%" PRIu64, v);
		break;
	case T_PCT:
		snprintf(buf, n, "%" PRIu64 "%%", v);
		break;
	case T_SIZE:
		snprintf(buf, n, "%" PRIu64, v);
		break;
	case T_DUR:
		fmt_duration(buf, n, v);
		break;
	case T_ENUM:
		for (const struct opt_enum *e = o->e; e->name; e++)
			if (e->value == v)
				snprintf(buf, n, "%s", e->name);
		break;
	case T_MODE:
		snprintf(buf, n, "0%03" PRIo64, v);
		break;
	case T_GROUP:
		snprintf(buf, n, "%" PRIu64, v);
		break;
	default:
		snprintf(buf, n, "%s", *src ? src : "(none)");
		break;
	}
}

/* ------------------------------------------------------------------------------------------ */
/* objects                                                                                     */
/* ------------------------------------------------------------------------------------------ */
void config_init(struct config *c)
{
	*c = (struct config){ 0 };
	snprintf(c->seg.name, sizeof c->seg.name, "%s", PROT_DEFAULT_SEGMENT);
	c->seg.mode = 0600;
	c->seg.geo = (struct seg_geometry){ .max_keys = 64, .max_breakers = 64, .max_pools = 16,
		                            .pool_max_slots = 64, .pool_max_waiters = 128,
		                            .events = 1024, .rate_entities = 65536,
		                            .max_procs = PROC_SLOTS_DEFAULT };
	c->daemon.tick_ms = 10;
	c->daemon.reclaim_ms = 100;
	c->daemon.max_segment_size = SEG_SIZE_DEFAULT;
}

void config_free(struct config *c)
{
	free(c->keys);
	free(c->breakers);
	free(c->pools);
	c->keys = NULL;
	c->breakers = NULL;
	c->pools = NULL;
	c->nkeys = c->nbreakers = c->npools = 0;
}

/* Arrays of objects hold cap(n) elements: the count rounded up to a power of two, so that no
 * capacity field is needed and copies keep the same invariant. */
static size_t cap(size_t n)
{
	size_t c = n ? 1 : 0;
	while (c < n)
		c <<= 1;
	return c;
}

static int dup_array(void **dst, const void *src, size_t n, size_t size)
{
	*dst = NULL;
	if (!n)
		return 0;
	*dst = malloc(cap(n) * size);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, n * size);
	return 0;
}

int config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	void *k, *b, *p;
	if (dup_array(&k, src->keys, src->nkeys, sizeof *src->keys) ||
	    dup_array(&b, src->breakers, src->nbreakers, sizeof *src->breakers) ||
	    dup_array(&p, src->pools, src->npools, sizeof *src->pools)) {
		dst->keys = NULL, dst->breakers = NULL, dst->pools = NULL;
		dst->nkeys = dst->nbreakers = dst->npools = 0;
		return -ENOMEM;
	}
	dst->keys = k;
	dst->breakers = b;
	dst->pools = p;
	return 0;
}

/* Grow an array by one zeroed element; returns it or NULL. */
static void *grow(void **arr, size_t *n, size_t size)
{
	size_t cnt = *n;
	if (cap(cnt + 1) != cap(cnt)) {
		void *m = realloc(*arr, cap(cnt + 1) * size);
		if (!m)
			return NULL;
		*arr = m;
	}
	char *e = (char *)*arr + cnt * size;
	memset(e, 0, size);
	(*n)++;
	return e;
}

static void set_name(struct cfg_obj *o, const char *name)
{
	snprintf(o->name, sizeof o->name, "%s", name);
}

struct cfg_key *config_add_key(struct config *c, const char *name)
{
	struct cfg_key *k = grow((void **)&c->keys, &c->nkeys, sizeof *k);
	if (!k)
		return NULL;
	set_name(&k->o, name);
	k->c.rate_algo = PROT_RATE_GCRA;
	k->c.rate_full_policy = RATE_FULL_DENY;
	k->c.rate_clock = RATE_CLOCK_MONO;
	k->c.breaker_index = PROT_NO_INDEX;
	k->c.pool_index = PROT_NO_INDEX;
	k->c.timeout_ms = PROT_DEFAULT_TIMEOUT_MS;
	return k;
}

struct cfg_breaker *config_add_breaker(struct config *c, const char *name)
{
	struct cfg_breaker *b = grow((void **)&c->breakers, &c->nbreakers, sizeof *b);
	if (!b)
		return NULL;
	set_name(&b->o, name);
	b->c.strategy = PROT_BREAKER_STANDARD;
	b->c.half_open_probes = 1;
	return b;
}

struct cfg_pool *config_add_pool(struct config *c, const char *name)
{
	struct cfg_pool *p = grow((void **)&c->pools, &c->npools, sizeof *p);
	if (!p)
		return NULL;
	set_name(&p->o, name);
	p->c.checkout_timeout_ms = PROT_DEFAULT_TIMEOUT_MS;
	p->c.strategy = 0;
	return p;
}

void config_del_breaker(struct config *c, size_t i)
{
	memmove(&c->breakers[i], &c->breakers[i + 1], (c->nbreakers - i - 1) * sizeof *c->breakers);
	c->nbreakers--;
}

void config_del_pool(struct config *c, size_t i)
{
	memmove(&c->pools[i], &c->pools[i + 1], (c->npools - i - 1) * sizeof *c->pools);
	c->npools--;
}

#define FIND(arr, n, nm)                                                                       \
	for (size_t i_ = 0; i_ < (n); i_++)                                                        \
		if (strcmp((arr)[i_].o.name, (nm)) == 0)                                           \
			return &(arr)[i_];                                                         \
	return NULL

struct cfg_key *config_key(const struct config *c, const char *name)
{
	FIND(c->keys, c->nkeys, name);
}
struct cfg_breaker *config_breaker(const struct config *c, const char *name)
{
	FIND(c->breakers, c->nbreakers, name);
}
struct cfg_pool *config_pool(const struct config *c, const char *name)
{
	FIND(c->pools, c->npools, name);
}

static bool seen(const struct cfg_obj *o, enum cfg_kind kind, const char *name)
{
	return o->seen >> opt_index(kind, name) & 1;
}

void config_finalize(struct config *c)
{
	for (size_t i = 0; i < c->npools; i++)
		if (!seen(&c->pools[i].o, CFG_POOL, "reclaim_interval"))
			c->pools[i].c.reclaim_ms = c->daemon.reclaim_ms;
	for (size_t i = 0; i < c->nbreakers; i++)
		if (!seen(&c->breakers[i].o, CFG_BREAKER, "rate_min_calls"))
			c->breakers[i].c.rate_min_calls = c->breakers[i].c.rate_window_calls;
}

int config_segment_size(const struct config *c, uint64_t *size)
{
	struct prot_shm_header h;
	size_t bytes;
	int r = seg_layout(&c->seg.geo, &h, &bytes);
	if (r < 0)
		return r;
	/* the summary starts on the page after the regions (seg_layout ends on a page boundary) */
	uint64_t summary = (RATE_SUMMARY_BYTES(h.rate_groups) + 4095) & ~4095ull;
	*size = (uint64_t)bytes + summary;
	return *size > SEG_SIZE_LIMIT ? -PROT_ECAPACITY : 0;
}

void config_fmt_size(char *buf, size_t n, uint64_t bytes)
{
	if (bytes >= (1ull << 30))
		snprintf(buf, n, "%.1f GiB", (double)bytes / (1ull << 30));
	else if (bytes >= MIB)
		snprintf(buf, n, "%.1f MiB", (double)bytes / MIB);
	else
		snprintf(buf, n, "%.1f KiB", (double)bytes / 1024);
}

void config_default_control(const char *segname, char *buf, size_t n)
{
	const char *base = segname[0] == '/' ? segname + 1 : segname;
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0)
		snprintf(buf, n, "/run/prot/%s.sock", base);
	else if (xdg && xdg[0] == '/')
		snprintf(buf, n, "%s/prot/%s.sock", xdg, base);
	else
		snprintf(buf, n, "/tmp/prot-%u/%s.sock", (unsigned)geteuid(), base);
}

/* ------------------------------------------------------------------------------------------ */
/* whole-config checks                                                                         */
/* ------------------------------------------------------------------------------------------ */
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

static void check_key(const struct config *c, const struct cfg_key *k, struct cfg_errors *e)
{
	WHERE(&k->o, "key");
	bool lim = seen(&k->o, CFG_KEY, "rate_limit"), win = seen(&k->o, CFG_KEY, "rate_window");
	if (lim != win)
		cfg_errors_add(e, "%s: rate_limit and rate_window go together: %s is missing", at_,
		               lim ? "rate_window" : "rate_limit");
	else if (!lim) {
		static const char *const rate_opts[] = { "rate_algorithm", "rate_burst", "rate_on_full",
			                                 "rate_clock" };
		for (size_t i = 0; i < 4; i++)
			if (seen(&k->o, CFG_KEY, rate_opts[i]))
				cfg_errors_add(e, "%s: %s needs rate_limit and rate_window", at_,
				               rate_opts[i]);
	}
	const struct cfg_breaker *b = config_breaker(c, k->o.name);
	if (seen(&k->o, CFG_KEY, "breaker") && b && b->inline_of_key && strcmp(k->breaker, k->o.name))
		cfg_errors_add(e, "%s: breaker = %s conflicts with the inline breaker_* options", at_,
		               k->breaker);
	const struct cfg_pool *p = config_pool(c, k->o.name);
	if (seen(&k->o, CFG_KEY, "pool") && p && p->inline_of_key && strcmp(k->pool, k->o.name))
		cfg_errors_add(e, "%s: pool = %s conflicts with the inline pool_* options", at_, k->pool);
	struct prot_rate_limit rl = { .algo = (uint32_t)k->c.rate_algo, .limit = k->c.rate_limit,
		                      .window_ms = k->c.rate_window_ms, .burst = k->c.rate_burst };
	char why[160];
	if (lim && win && rl.limit && rl.window_ms && rate_limit_check(&rl, why, sizeof why) < 0)
		cfg_errors_add(e, "%s: %s", at_, why);
	if (k->breaker[0] && !config_breaker(c, k->breaker))
		cfg_errors_add(e, "%s: breaker \"%s\" is not defined", at_, k->breaker);
	if (k->pool[0] && !config_pool(c, k->pool))
		cfg_errors_add(e, "%s: pool \"%s\" is not defined", at_, k->pool);
}

static void check_breaker(const struct config *c, const struct cfg_breaker *b, struct cfg_errors *e)
{
	WHERE(&b->o, b->inline_of_key ? "key" : "breaker");
	const char *pre = b->inline_of_key ? "breaker_" : "";
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
		if (!seen(&b->o, CFG_BREAKER, need[i]))
			cfg_errors_add(e, "%s: %s%s is required", at_, pre, need[i]);
	if (b->c.strategy == PROT_BREAKER_RATE && b->c.rate_min_calls > b->c.rate_window_calls &&
	    seen(&b->o, CFG_BREAKER, "rate_window_calls"))
		cfg_errors_add(e, "%s: %srate_min_calls %" PRIu64 " is larger than rate_window_calls %" PRIu64,
		               at_, pre, (uint64_t)b->c.rate_min_calls, (uint64_t)b->c.rate_window_calls);
}

static void check_pool(const struct config *c, const struct cfg_pool *p, struct cfg_errors *e)
{
	WHERE(&p->o, p->inline_of_key ? "key" : "pool");
	const char *pre = p->inline_of_key ? "pool_" : "";
	if (!seen(&p->o, CFG_POOL, "size"))
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

/* ------------------------------------------------------------------------------------------ */
/* the INI file                                                                                */
/* ------------------------------------------------------------------------------------------ */
/* inih (Debian's build) does not pass line numbers to the handler, and calls it only for
 * name=value lines. So the reader below counts lines, parses section headers itself (which also
 * gives empty sections and the header line of every object), and reports lines inih would reject,
 * handing inih an empty line instead: every mistake of the file is collected, not the first. */
struct parse {
	struct config *c;
	struct cfg_errors *e;
	FILE *f;
	int line, next_line;
	enum cfg_kind kind;
	size_t index;     /* of the current key/breaker/pool */
	bool skip;        /* the current section is broken: its options are not checked */
	bool in_section;
};

#define PERR(ps, ...)                                                                          \
	do {                                                                                       \
		char m_[CFG_ERR_MAX];                                                              \
		snprintf(m_, sizeof m_, __VA_ARGS__);                                              \
		cfg_errors_add((ps)->e, "%s:%d: %s", (ps)->c->file, (ps)->line, m_);              \
	} while (0)

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* A second section for a singleton or a name: reports and returns true. */
static bool dup_section(struct parse *ps, const struct cfg_obj *o, const char *label)
{
	if (!o || !o->line)
		return false;
	PERR(ps, "duplicate section [%s] (first on line %d)", label, o->line);
	return true;
}

static void begin_named(struct parse *ps, enum cfg_kind kind, const char *name)
{
	char err[CFG_ERR_MAX], label[80];
	snprintf(label, sizeof label, "%s %s", kind_names[kind], name);
	if (config_check_name(label, name, err)) {
		PERR(ps, "%s", err);
		return;
	}
	struct config *c = ps->c;
	struct cfg_obj *o = NULL;
	if (kind == CFG_KEY) {
		struct cfg_key *k = config_key(c, name);
		if (dup_section(ps, k ? &k->o : NULL, label))
			return;
		o = &config_add_key(c, name)->o;
		ps->index = c->nkeys - 1;
	} else if (kind == CFG_BREAKER) {
		struct cfg_breaker *b = config_breaker(c, name);
		if (dup_section(ps, b ? &b->o : NULL, label))
			return;
		o = &config_add_breaker(c, name)->o;
		ps->index = c->nbreakers - 1;
	} else {
		struct cfg_pool *p = config_pool(c, name);
		if (dup_section(ps, p ? &p->o : NULL, label))
			return;
		o = &config_add_pool(c, name)->o;
		ps->index = c->npools - 1;
	}
	o->line = ps->line;
	ps->kind = kind;
	ps->skip = false;
}

static void begin_section(struct parse *ps, char *hdr)
{
	ps->skip = true;
	ps->in_section = true;
	char *sp = hdr + strcspn(hdr, " \t");
	char *name = trim(sp);
	*sp = '\0';
	for (int k = 0; k < CFG_KIND_COUNT_; k++) {
		if (strcmp(hdr, kind_names[k]) != 0)
			continue;
		if (k == CFG_SEGMENT || k == CFG_DAEMON) {
			struct cfg_obj *o = k == CFG_SEGMENT ? &ps->c->seg.o : &ps->c->daemon.o;
			if (*name)
				PERR(ps, "section [%s] takes no name", hdr);
			else if (!dup_section(ps, o, hdr)) {
				o->line = ps->line;
				ps->kind = (enum cfg_kind)k;
				ps->skip = false;
			}
		} else if (!*name)
			PERR(ps, "section [%s] needs a name: [%s NAME]", hdr, hdr);
		else
			begin_named(ps, (enum cfg_kind)k, name);
		return;
	}
	PERR(ps, "unknown section [%s%s%s] (expected segment, daemon, key, breaker or pool)", hdr,
	     *name ? " " : "", name);
}

/* What differs between the breaker and the pool an inline breaker_* / pool_* option makes: the
 * rest of config_inline_target() is one path for both. */
static void *find_breaker(const struct config *c, const char *n) { return config_breaker(c, n); }
static void *add_breaker(struct config *c, const char *n) { return config_add_breaker(c, n); }
static void *find_pool(const struct config *c, const char *n) { return config_pool(c, n); }
static void *add_pool(struct config *c, const char *n) { return config_add_pool(c, n); }

static const struct inline_kind {
	const char *what;
	void *(*find)(const struct config *c, const char *name);
	void *(*add)(struct config *c, const char *name);
	size_t flag_off; /* of bool inline_of_key in the object */
	size_t ref_off;  /* of the key's reference to it (char[PROT_NAME_BYTES]) */
} inline_kinds[] = {
	{"breaker", find_breaker, add_breaker, offsetof(struct cfg_breaker, inline_of_key),
	 offsetof(struct cfg_key, breaker)},
	{"pool", find_pool, add_pool, offsetof(struct cfg_pool, inline_of_key), offsetof(struct cfg_key, pool)},
};
_Static_assert(offsetof(struct cfg_breaker, o) == 0 && offsetof(struct cfg_pool, o) == 0,
               "inline objects start with their cfg_obj");

/* The one inline-object rule, for the INI reader and for runtime `set` alike: a key's breaker_* /
 * pool_* options configure the object named after the key, made on first use (marked inline, with
 * the key's line and ORIGIN) and then referenced by the key. Refused when a standalone section has
 * that name, or when the key already uses another object (`breaker =` / `pool =`). */
void *config_inline_target(struct config *c, size_t ki, enum cfg_kind kind, int origin,
                           char err[CFG_ERR_MAX])
{
	const struct inline_kind *ik = &inline_kinds[kind == CFG_BREAKER ? 0 : 1];
	struct cfg_key *k = &c->keys[ki];
	const char *ref = (const char *)k + ik->ref_off;
	if (ref[0] && strcmp(ref, k->o.name)) {
		snprintf(err, CFG_ERR_MAX, "%s_* options of key %s: the key uses %s %s; change that %s "
		         "instead", ik->what, k->o.name, ik->what, ref, ik->what);
		return NULL;
	}
	char *obj = ik->find(c, k->o.name);
	if (obj && !*(bool *)(obj + ik->flag_off)) {
		const struct cfg_obj *o = (const struct cfg_obj *)obj;
		if (o->line)
			snprintf(err, CFG_ERR_MAX, "%s_* options of [key %s] clash with [%s %s] (line %d)",
			         ik->what, k->o.name, ik->what, o->name, o->line);
		else
			snprintf(err, CFG_ERR_MAX, "%s_* options of key %s clash with %s %s", ik->what,
			         k->o.name, ik->what, o->name);
		return NULL;
	}
	if (!obj) {
		obj = ik->add(c, k->o.name);
		k = &c->keys[ki]; /* adding may have moved the arrays */
		if (!obj) {
			snprintf(err, CFG_ERR_MAX, "out of memory");
			return NULL;
		}
		*(bool *)(obj + ik->flag_off) = true;
		((struct cfg_obj *)obj)->line = k->o.line;
		((struct cfg_obj *)obj)->origin = origin;
		/* both are char[PROT_NAME_BYTES] holding a terminated name */
		memcpy((char *)k + ik->ref_off, k->o.name, PROT_NAME_BYTES);
	}
	return obj;
}

static void *section_object(struct parse *ps)
{
	switch (ps->kind) {
	case CFG_SEGMENT:
		return &ps->c->seg;
	case CFG_DAEMON:
		return &ps->c->daemon;
	case CFG_KEY:
		return &ps->c->keys[ps->index];
	case CFG_BREAKER:
		return &ps->c->breakers[ps->index];
	default:
		return &ps->c->pools[ps->index];
	}
}

static int on_value(void *user, const char *section, const char *name, const char *value)
{
	(void)section; /* tracked by the reader: inih truncates long section names */
	struct parse *ps = user;
	if (!ps->in_section) {
		PERR(ps, "\"%s\" outside of any section", name);
		return 1;
	}
	if (ps->skip)
		return 1;
	enum cfg_kind kind = ps->kind, rk;
	const char *sub = name, *rs;
	void *obj = section_object(ps);
	char label[80];
	snprintf(label, sizeof label, "%s%s%s", kind_names[kind], kind >= CFG_KEY ? " " : "",
	         kind >= CFG_KEY ? ((struct cfg_obj *)obj)->name : "");
	if (kind == CFG_KEY && config_route(name, &rk, &rs) == 0 && rk != CFG_KEY) {
		kind = rk;
		sub = rs;
		char why[CFG_ERR_MAX];
		obj = config_inline_target(ps->c, ps->index, rk, CFG_ORIGIN_INI, why);
		if (!obj) {
			PERR(ps, "%s", why);
			return 1;
		}
	}
	int i = opt_index(kind, sub);
	if (i < 0) {
		PERR(ps, "unknown option \"%s\" in [%s]", name, label);
		return 1;
	}
	struct cfg_obj *o = obj;
	if (o->seen >> i & 1) {
		PERR(ps, "duplicate option \"%s\" in this section", name);
		return 1;
	}
	char err[CFG_ERR_MAX];
	if (config_set_value(kind, obj, sub, value, err))
		PERR(ps, "%s", err);
	o->seen |= 1ull << i; /* given, even if wrong: no "missing" or second "duplicate" for it */
	return 1;
}

/* inih reads through this: count lines, take section headers, reject malformed lines. */
static char *reader(char *str, int num, void *user)
{
	struct parse *ps = user;
	if (!fgets(str, num, ps->f))
		return NULL;
	ps->line = ps->next_line;
	size_t n = strlen(str);
	if (n && str[n - 1] == '\n')
		ps->next_line++;
	else if (!feof(ps->f)) {
		PERR(ps, "line longer than %d bytes", num - 3);
		int ch;
		while ((ch = fgetc(ps->f)) != EOF && ch != '\n')
			;
		ps->next_line++;
		strcpy(str, "\n");
		return str;
	}
	char copy[1024];
	snprintf(copy, sizeof copy, "%s", str);
	char *s = trim(copy);
	if (!*s || *s == ';' || *s == '#')
		return str;
	if (*s == '[') {
		char *end = strchr(s, ']');
		if (!end) {
			PERR(ps, "section header without ']'");
			ps->skip = true;
			ps->in_section = true;
		} else {
			*end = '\0';
			begin_section(ps, trim(s + 1));
		}
		strcpy(str, "\n");
		return str;
	}
	if (!strpbrk(s, "=:")) {
		PERR(ps, "expected \"name = value\" or \"[section]\"");
		strcpy(str, "\n");
	}
	return str;
}

int config_load(const char *file, struct config *c, struct cfg_errors *errs)
{
	config_init(c);
	snprintf(c->file, sizeof c->file, "%s", file);
	FILE *f = fopen(file, "r");
	if (!f) {
		int err = errno;
		cfg_errors_add(errs, "%s: cannot open: %s", file, strerror(err));
		return -err;
	}
	/* Indented lines are ordinary lines, not continuations of the previous value. */
	ini_allow_multiline = false;
	struct parse ps = { .c = c, .e = errs, .f = f, .next_line = 1 };
	size_t before = errs->n;
	int r = ini_parse_stream(reader, &ps, on_value, &ps);
	fclose(f);
	if (r > 0 && errs->n == before)
		cfg_errors_add(errs, "%s:%d: syntax error", file, r);
	else if (r < 0)
		cfg_errors_add(errs, "%s: cannot read", file);
	config_finalize(c);
	config_check(c, errs);
	if (errs->n != before) {
		config_free(c);
		return -1;
	}
	return 0;
}
