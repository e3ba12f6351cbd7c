/* config_schema.c — the names of protd's configuration, one table per set: the options of each
 * kind of object (the value type, where it is stored, its range; the names of enum values are
 * lib/names.c's, which protctl and the control protocol share), the section names (config_kind_name) and the prefixes of a key's inline breaker_* / pool_* options.
 * Everything else in the config module reads these tables: the value parser (config_value.c), the
 * INI reader (config_ini.c), the checks (config_check.c), and, through config_option_names(),
 * protd-ini-doc (daemon/ini_doc.c), which writes protd.ini(5) from them.
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
 *   sliding_buckets = 64        sliding-window buckets at once (0..1048576), each a ring of ...
 *   sliding_max_limit = 1024    ... this many admission times: a sliding key's largest rate_limit
 *                               (1..32768; 8 B per unit per bucket)
 *   max_processes = 1024        process slots: read-write handles attached at once, plus protd
 *                               (2..65535); a prot_open() beyond them is PROT_ECAPACITY
 *   huge_pages = off            off (4 KiB pages) | thp (transparent huge pages on /dev/shm: it
 *                               must be mounted huge=advise) | hugetlbfs (a file on the host's
 *                               hugetlbfs mount of 2 MiB pages, from vm.nr_hugepages); a huge
 *                               segment is sized in whole 2 MiB pages. A host that cannot is a
 *                               refusal at start, naming what it lacks (lib/seg_place.c)
 *
 * [daemon]
 *   tick = 10ms                 heartbeat, sweeps, reclaims, event draining (1ms..1s)
 *   reclaim_interval = 100ms    default reclaim_interval of pools
 *   rate_grace = 100ms          an expired rate bucket is freed this long after it expired, within
 *                               one sweep pass more (20ms..1min; the minimum keeps the
 *                               stale-client argument of lib/rate_table.c true)
 *   control_socket = PATH       default /run/prot/<segment name without the />.sock as root, else
 *                               $XDG_RUNTIME_DIR/prot/..., else /tmp/prot-<uid>/...;
 *                               --control overrides
 *   max_segment_size = 1GiB     the largest segment the [segment] capacities may make (bytes, or
 *                               with a unit: KiB, MiB, GiB; k, m, g mean the same); protd reserves
 *                               all of it in /dev/shm at creation (1MiB..64GiB)
 *
 * [redis]                       global limits across hosts (daemon/redis_sync.c; README "Global limits")
 *   address = tcp://HOST:PORT   or unix:/PATH; without it no key may be rate_scope = global
 *   connect_timeout = 200ms     a connection attempt (non-blocking connect) gives up after this
 *   command_timeout = 50ms      one round trip (a pipelined batch) gives up after this: degraded
 *   key_prefix = prot:          prefix of every Redis key protd writes
 *   password_file = PATH        AUTH with the file's first line; refused when group- or
 *                               world-readable (never a password in the INI itself)
 *   sync_interval = 5ms         how often the sync thread leases and reports (1ms..1s)
 *   lease_ttl = 2s              a host's lease record expires this long after its last renewal:
 *                               a host killed returns its unused units within it (10ms..1h)
 *   hosts = 1                   hosts sharing the limits: a key's default rate_local_share is
 *                               rate_limit / hosts (1..65536)
 *   host_id = NAME              this host in lease records; default hostname:segment
 *
 * [key NAME]                    a protection key (what execute_protected applies, in order)
 *   rate_limit = N              units per window (>= 1; fixed_window: < 2^24); needs rate_window;
 *                               omit both: no limiter
 *   rate_window = DURATION      (1ms .. 2^36 ms, the API's maximum too); needs rate_limit
 *   rate_algorithm = fixed_window  fixed_window (Hammer's default, and the API's) | gcra |
 *                               sliding_window (rate_limit <= [segment] sliding_max_limit) |
 *                               token_bucket | leaky_bucket
 *   rate_burst = N              GCRA burst in units; 0 (default) = rate_limit
 *   rate_refill_rate = N        token_bucket (instead of rate_limit): tokens added per rate_window
 *                               (default 1s); 0: a budget that never refills
 *   rate_leak_rate = N          leaky_bucket (instead of rate_limit): units leaked per rate_window
 *                               (default 1s), >= 1
 *   rate_capacity = N           token_bucket, leaky_bucket: the bucket's size (>= 1); required
 *   rate_on_full = deny         deny | allow | evict: what a new entity gets when its two groups are full
 *   rate_clock = monotonic      monotonic | coarse (CLOCK_MONOTONIC_COARSE: cheaper, ~4ms steps) | auto |
 *                               realtime (fixed_window only: calendar windows, UTC-aligned)
 *   rate_scope = local          local | global (fixed_window on calendar windows, leased from
 *                               [redis]; rate_clock defaults to realtime and must be it)
 *   rate_allowance = 0          global: units per window a bucket admits beyond its lease while
 *                               it waits for more (0: it denies)
 *   rate_local_share = 0        global: units per window this host admits while Redis is
 *                               unreachable; 0 = rate_limit / [redis] hosts
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
#include "config_schema.h"

#include <string.h>

#include "rate_limits.h"

#define DUR_MAX (30ull * 24 * 3600 * 1000) /* 30 days */
#define U(st, f) offsetof(st, f), sizeof(((st *)0)->f)

/* The names of enumerated values are lib/names.c's: one table for the INI, the control protocol and
 * protctl (whose JSON documents prot-json(7) lists them in). */
static const enum prot_names e_algo = NAMES_RATE_ALGORITHM, e_full = NAMES_RATE_ON_FULL,
                             e_clock = NAMES_RATE_CLOCK, e_bstrat = NAMES_BREAKER_STRATEGY,
                             e_pstrat = NAMES_POOL_STRATEGY, e_heal = NAMES_BREAKER_HEAL,
                             e_scope = NAMES_RATE_SCOPE,
                             e_huge = NAMES_HUGE_PAGES;

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
	{ "sliding_buckets", T_U64, U(struct cfg_segment, geo.sliding_buckets), 0, 1u << 20, NULL, NULL },
	{ "sliding_max_limit", T_U64, U(struct cfg_segment, geo.sliding_max_limit), 1, RATE_RING_LIMIT_MAX,
	  NULL, NULL },
	{ "max_processes", T_U64, U(struct cfg_segment, geo.max_procs), 2, PROC_SLOTS_MAX, NULL, NULL },
	{ "huge_pages", T_ENUM, U(struct cfg_segment, huge_pages), 0, 0, &e_huge, NULL },
	{ 0 },
};
static const struct opt opts_daemon[] = {
	{ "tick", T_DUR, U(struct cfg_daemon, tick_ms), 1, 1000, NULL, NULL },
	{ "reclaim_interval", T_DUR, U(struct cfg_daemon, reclaim_ms), 1, DUR_MAX, NULL, NULL },
	{ "rate_grace", T_DUR, U(struct cfg_daemon, rate_grace_ms), RATE_GRACE_MIN_MS, RATE_GRACE_MAX_MS,
	  NULL, NULL },
	{ "control_socket", T_PATH, U(struct cfg_daemon, control_socket), 0, 0, NULL, NULL },
	{ "max_segment_size", T_SIZE, U(struct cfg_daemon, max_segment_size), MIB, SEG_SIZE_LIMIT, NULL,
	  "the largest segment libprot attaches to" },
	{ 0 },
};
static const struct opt opts_redis[] = {
	{ "address", T_STR, U(struct cfg_redis, address), 0, 0, NULL, NULL },
	{ "connect_timeout", T_DUR, U(struct cfg_redis, connect_timeout_ms), 1, 60000, NULL, NULL },
	{ "command_timeout", T_DUR, U(struct cfg_redis, command_timeout_ms), 1, 60000, NULL, NULL },
	{ "key_prefix", T_STR, U(struct cfg_redis, key_prefix), 0, 0, NULL, NULL },
	{ "password_file", T_PATH, U(struct cfg_redis, password_file), 0, 0, NULL, NULL },
	{ "sync_interval", T_DUR, U(struct cfg_redis, sync_interval_ms), 1, 1000, NULL, NULL },
	{ "lease_ttl", T_DUR, U(struct cfg_redis, lease_ttl_ms), 10, 3600000, NULL, NULL },
	{ "hosts", T_U64, U(struct cfg_redis, hosts), 1, 65536, NULL, NULL },
	{ "host_id", T_STR, U(struct cfg_redis, host_id), 0, 0, NULL, NULL },
	{ 0 },
};
static const struct opt opts_key[] = {
	{ "rate_limit", T_U64, U(struct cfg_key, c.rate_limit), 1, UINT32_MAX, NULL, NULL },
	{ "rate_window", T_DUR, U(struct cfg_key, c.rate_window_ms), 1, RATE_WINDOW_MAX_MS, NULL,
	  "2^36 ms, the rate limiter's" },
	{ "rate_algorithm", T_ENUM, U(struct cfg_key, c.rate_algo), 0, 0, &e_algo, NULL },
	{ "rate_burst", T_U64, U(struct cfg_key, c.rate_burst), 0, UINT32_MAX, NULL, NULL },
	/* Hammer's terms for token_bucket and leaky_bucket: the same words as rate_limit, rate_burst */
	{ "rate_refill_rate", T_U64, U(struct cfg_key, c.rate_limit), 0, UINT32_MAX, NULL, NULL },
	{ "rate_leak_rate", T_U64, U(struct cfg_key, c.rate_limit), 1, UINT32_MAX, NULL, NULL },
	{ "rate_capacity", T_U64, U(struct cfg_key, c.rate_burst), 1, UINT32_MAX, NULL, NULL },
	{ "rate_on_full", T_ENUM, U(struct cfg_key, c.rate_full_policy), 0, 0, &e_full, NULL },
	{ "rate_clock", T_ENUM, U(struct cfg_key, c.rate_clock), 0, 0, &e_clock, NULL },
	{ "rate_scope", T_ENUM, U(struct cfg_key, c.rate_scope), 0, 0, &e_scope, NULL },
	{ "rate_allowance", T_U64, U(struct cfg_key, c.rate_allowance), 0, RATE_FW_LIMIT_MAX, NULL, NULL },
	{ "rate_local_share", T_U64, U(struct cfg_key, c.rate_local_share), 0, RATE_FW_LIMIT_MAX, NULL, NULL },
	{ "breaker", T_REF, U(struct cfg_key, breaker), 0, 0, NULL, NULL },
	{ "pool", T_REF, U(struct cfg_key, pool), 0, 0, NULL, NULL },
	{ "timeout", T_DUR, U(struct cfg_key, c.timeout_ms), 1, DUR_MAX, NULL, NULL },
	{ 0 },
};
static const struct opt opts_breaker[] = {
	{ "strategy", T_ENUM, U(struct cfg_breaker, c.strategy), 0, 0, &e_bstrat, NULL },
	{ "tolerance", T_U64, U(struct cfg_breaker, c.tolerance), 0, BREAKER_MELT_RING - 1, NULL,
	  "BREAKER_MELT_RING - 1" },
	{ "window", T_DUR, U(struct cfg_breaker, c.window_ms), 1, DUR_MAX, NULL, NULL },
	{ "refresh", T_DUR, U(struct cfg_breaker, c.refresh_ms), 1, DUR_MAX, NULL, NULL },
	{ "half_open_probes", T_U64, U(struct cfg_breaker, c.half_open_probes), 0, BREAKER_PROBES_MAX, NULL, NULL },
	{ "heal", T_ENUM, U(struct cfg_breaker, c.heal), 0, 0, &e_heal, NULL },
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
	{ "strategy", T_ENUM, U(struct cfg_pool, c.strategy), 0, 0, &e_pstrat, NULL },
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
	[CFG_SEGMENT] = opts_segment, [CFG_DAEMON] = opts_daemon, [CFG_REDIS] = opts_redis, [CFG_KEY] = opts_key,
	[CFG_BREAKER] = opts_breaker, [CFG_POOL] = opts_pool,
};
static const char *const kind_names[CFG_KIND_COUNT_] = {
	[CFG_SEGMENT] = "segment", [CFG_DAEMON] = "daemon", [CFG_REDIS] = "redis", [CFG_KEY] = "key",
	[CFG_BREAKER] = "breaker", [CFG_POOL] = "pool",
};
/* How a key's options for its inline breaker / pool begin (config_route, config_inline.c). */
static const char *const inline_prefixes[CFG_KIND_COUNT_] = {
	[CFG_BREAKER] = "breaker_", [CFG_POOL] = "pool_",
};

int cfg_opt_index(enum cfg_kind kind, const char *name)
{
	const struct opt *t = opt_tables[kind];
	for (int i = 0; t[i].name; i++)
		if (strcmp(t[i].name, name) == 0)
			return i;
	return -1;
}

const struct opt *cfg_opt(enum cfg_kind kind, int i)
{
	return &opt_tables[kind][i];
}

bool cfg_seen(const struct cfg_obj *o, enum cfg_kind kind, const char *name)
{
	return o->seen >> cfg_opt_index(kind, name) & 1;
}

const char *cfg_inline_prefix(enum cfg_kind kind)
{
	return inline_prefixes[kind] ? inline_prefixes[kind] : "";
}

const char *const *config_option_names(enum cfg_kind kind)
{
	static const char *names[CFG_KIND_COUNT_][24];
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
	*kind = CFG_KEY;
	*sub = name;
	for (int k = 0; k < CFG_KIND_COUNT_; k++) {
		const char *pre = inline_prefixes[k];
		if (pre && strncmp(name, pre, strlen(pre)) == 0) {
			*kind = (enum cfg_kind)k;
			*sub = name + strlen(pre);
			break;
		}
	}
	return cfg_opt_index(*kind, *sub) < 0 ? -1 : 0;
}
