/* ini_doc.c — protd-ini-doc: writes the scdoc source of protd.ini(5) from the config parser itself.
 *
 * The option names are the parser's tables (config_option_names()) and each default is what the
 * parser starts an object with (config_init(), config_add_key/breaker/pool(), config_finalize()),
 * formatted by config_get_value(), exactly as protd reports values. This file adds only the words:
 * one description per option, in the table below. An option of the parser without a description
 * here, or a description of an option the parser does not have, makes this program fail, and with
 * it the build: the page cannot drift from the parser.
 *
 * usage: protd-ini-doc OUTPUT.scd
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

struct doc {
	enum cfg_kind kind;
	const char *name;
	const char *value; /* the value's form, e.g. "N", "DURATION" */
	const char *def;   /* NULL: the parser's default; else what to say (required, derived) */
	const char *text;
};

static const struct doc docs[] = {
	{ CFG_SEGMENT, "name", "NAME", NULL, "POSIX shared-memory name: / and up to 62 bytes, no other /. *--segment* overrides it." },
	{ CFG_SEGMENT, "mode", "OCTAL", NULL, "The segment gets exactly this mode (the umask is ignored). It must give the owner read and write and must not be world-writable (o+w is an error). g+w lets the group change state and make writing requests on the control socket; g+r alone only read." },
	{ CFG_SEGMENT, "group", "NAME|GID", "none", "Group owner of the segment. Its members may attach, and change state and configuration only when *mode* has g+w." },
	{ CFG_SEGMENT, "max_keys", "N", NULL, "Protection key slots (1..65536)." },
	{ CFG_SEGMENT, "max_breakers", "N", NULL, "Circuit breaker slots (1..65536)." },
	{ CFG_SEGMENT, "max_pools", "N", NULL, "Pool slots (1..4096)." },
	{ CFG_SEGMENT, "pool_max_slots", "N", NULL, "Leases per pool: size + max_overflow of every pool must fit (1..65536)." },
	{ CFG_SEGMENT, "pool_max_waiters", "N", NULL, "Queued checkouts per pool (1..65536)." },
	{ CFG_SEGMENT, "rate_entities", "N", NULL, "Rate-limiter buckets, rounded up to whole groups of 32 (32..67108864); 130 bytes each. Size it at about 1.5 times the live entities." },
	{ CFG_SEGMENT, "sliding_buckets", "N", NULL, "Sliding-window buckets that may exist at once (0..1048576): each holds a ring of *sliding_max_limit* admission times. A new sliding-window entity beyond them is the key's *rate_on_full* policy." },
	{ CFG_SEGMENT, "sliding_max_limit", "N", NULL, "The largest *rate_limit* of a sliding_window key (1..32768): 8 bytes per unit per sliding bucket. A larger limit is refused with FILE:LINE (the API: EINVAL); use sliding_approx above it." },
	{ CFG_SEGMENT, "events", "N", NULL, "Event ring entries (16..1048576)." },
	{ CFG_SEGMENT, "max_processes", "N", NULL, "Process slots: read-write handles attached at once, plus protd (2..65535). A *prot_open*() beyond them fails with PROT_ECAPACITY." },
	{ CFG_SEGMENT, "huge_pages", "off|thp|hugetlbfs", NULL, "The pages backing the segment. *off*: 4 KiB pages of /dev/shm. *thp*: transparent huge pages of 2 MiB on the same /dev/shm object; the host must mount /dev/shm with huge=advise (or within_size, always: mount -o remount,huge=advise /dev/shm), and /sys/kernel/mm/transparent_hugepage/shmem_enabled must not be deny (it governs only the kernel's internal shm mount otherwise). protd faults every page in at creation; where the kernel has no free 2 MiB page it gives 4 KiB ones, which protd logs (none at all is a refusal). *hugetlbfs*: a file of the segment's name on the host's first hugetlbfs mount of 2 MiB pages, e.g. mount -t hugetlbfs -o pagesize=2M none /dev/hugepages, writable by protd's user, with enough free pages in /proc/sys/vm/nr_hugepages for the whole segment (protd reserves them all at creation). Clients open the segment by name either way (/dev/shm first, then the hugetlbfs mount); protd refuses a hugetlbfs segment while /dev/shm holds one of the same name. A huge segment's size is rounded up to whole 2 MiB pages. A host that lacks what the choice needs is a refusal at start that names it, never a silent fallback to 4 KiB pages; protctl status shows the pages a segment has." },
	{ CFG_DAEMON, "tick", "DURATION", NULL, "Heartbeat, bucket sweeps, lease reclaims and event logging happen every tick (1ms..1s)." },
	{ CFG_DAEMON, "reclaim_interval", "DURATION", NULL, "Default *reclaim_interval* of pools." },
	{ CFG_DAEMON, "rate_grace", "DURATION", "100ms", "How long after it expired a rate bucket is freed (20ms..1min); it is freed within one sweep pass more (a pass takes one tick per 4096 buckets of the table). The minimum keeps the stale-client argument of the bucket table true (two jiffies of the coarse clock)." },
	{ CFG_DAEMON, "max_segment_size", "SIZE", NULL, "The largest segment this file may imply (KiB, MiB, GiB); a larger one is refused with FILE:LINE. protd reserves the whole segment in /dev/shm when it creates it." },
	{ CFG_DAEMON, "control_socket", "PATH", "/run/prot/SEGMENT.sock as root, else $XDG_RUNTIME_DIR/prot/..., else /tmp/prot-UID/...", "protd's control socket. *--control* overrides it." },
	{ CFG_REDIS, "address", "tcp://HOST:PORT|unix:/PATH", "none (no global limits)", "The Redis server global keys lease from. Without it no key may be *rate_scope = global*. Its presence at the segment's creation adds the global-limits area to the segment (a capacity: adding or removing it needs *--recreate*)." },
	{ CFG_REDIS, "connect_timeout", "DURATION", NULL, "A connection attempt (non-blocking connect) gives up after this (1ms..1min)." },
	{ CFG_REDIS, "command_timeout", "DURATION", NULL, "One round trip (a pipelined batch of lease scripts) gives up after this; the host is then degraded (1ms..1min)." },
	{ CFG_REDIS, "key_prefix", "TEXT", NULL, "Prefix of every Redis key protd writes." },
	{ CFG_REDIS, "password_file", "PATH", "none (no AUTH)", "AUTH with the first line of this file. A file readable by its group or others is refused: the password is never in the INI itself." },
	{ CFG_REDIS, "sync_interval", "DURATION", NULL, "How often the sync thread leases for active global buckets and reports their counts (1ms..1s)." },
	{ CFG_REDIS, "lease_ttl", "DURATION", NULL, "A host's lease record expires this long after its last renewal: the unused units of a host that died return to the fleet within it (10ms..1h)." },
	{ CFG_REDIS, "hosts", "N", NULL, "Hosts sharing the global limits: a global key's default *rate_local_share* is its *rate_limit* divided by this (1..65536)." },
	{ CFG_REDIS, "host_id", "TEXT", "HOSTNAME:SEGMENT", "This host's name in lease records: unique per protd sharing the Redis server." },
	{ CFG_KEY, "rate_scope", "local|global", NULL, "global: one limit for every host sharing [redis]: a fixed window on calendar windows (*rate_clock* defaults to realtime and must be it) whose units protd leases from Redis; decisions stay local. A decision naming another operation than the key is EINVAL." },
	{ CFG_KEY, "rate_allowance", "N", NULL, "A global key: units per window a bucket admits beyond its lease while it waits for more (0: it denies). Each host may exceed the limit by this." },
	{ CFG_KEY, "rate_local_share", "N", "rate_limit / [redis] hosts", "A global key: units per window this host admits while Redis is unreachable (degraded)." },
	{ CFG_KEY, "rate_limit", "N", "none (no rate limiter)", "Units per window (>= 1). Needs *rate_window*." },
	{ CFG_KEY, "rate_window", "DURATION", "none", "The window (>= 1ms). Needs *rate_limit*." },
	{ CFG_KEY, "rate_algorithm", "fixed_window|gcra|sliding_window|token_bucket|leaky_bucket", "fixed_window", "Hammer's fixed window aligned on multiples of its length (the default, as in the API), GCRA (a smooth rate with a burst), Hammer's sliding window: exactly at most *rate_limit* admissions in any interval of *rate_window* (rate_limit <= [segment] *sliding_max_limit*; a cost of 1 per decision), or Hammer's token bucket (*rate_refill_rate*, *rate_capacity*) and leaky bucket (*rate_leak_rate*, *rate_capacity*), which run on GCRA's word." },
	{ CFG_KEY, "rate_burst", "N", "0 (= rate_limit)", "GCRA burst in units." },
	{ CFG_KEY, "rate_refill_rate", "N", "none", "token_bucket, instead of *rate_limit*: tokens added per *rate_window* (default 1s; Hammer's refill_rate per second). 0 makes a budget of *rate_capacity* units that never refills: its buckets are never expired, only *protctl rate reset* frees them." },
	{ CFG_KEY, "rate_leak_rate", "N", "none", "leaky_bucket, instead of *rate_limit*: units leaked per *rate_window* (default 1s; >= 1)." },
	{ CFG_KEY, "rate_capacity", "N", "none", "token_bucket and leaky_bucket: the bucket's size (>= 1); required with them. A token bucket starts full, a leaky bucket empty." },
	{ CFG_KEY, "rate_on_full", "deny|allow|evict", NULL, "What a new entity gets when both its groups of the bucket table are full: *deny* (PROT_ETABLEFULL), *allow* (admitted without a bucket), or *evict*: the least recently used bucket of those groups whose removal provably loses nothing (an expired one, as protd's sweep would free) makes room; when there is none, deny. Unlike nginx, which evicts its least recently used state unconditionally, a bucket that still limits someone is never evicted." },
	{ CFG_KEY, "rate_clock", "monotonic|coarse|realtime|auto", NULL, "coarse reads CLOCK_MONOTONIC_COARSE: cheaper, in steps of about 4 ms. auto reads the coarse clock when its resolution r cannot change what the key admits by more than one unit: for fixed_window when r is at most 1/64 of rate_window (a window then rolls at most r late and never admits more than rate_limit), for the other algorithms when r is at most the emission interval rate_window / rate_limit (at most one unit early in any span); otherwise CLOCK_MONOTONIC. realtime (fixed_window only) makes calendar windows: CLOCK_REALTIME, aligned on UTC multiples of *rate_window* since the Unix epoch, so 1h rolls at :00 and 1d at midnight UTC. A clock step back keeps the current window (and its count) that much longer, a step forward past its end rolls." },
	{ CFG_KEY, "breaker", "NAME", "none", "A [breaker NAME] section applied by this key." },
	{ CFG_KEY, "pool", "NAME", "none", "A [pool NAME] section applied by this key." },
	{ CFG_KEY, "timeout", "DURATION", NULL, "Default timeout of a protected call: bounds the pool wait and is the call's deadline." },
	{ CFG_BREAKER, "strategy", "standard|rate", NULL, "standard (fuse): trips at the (tolerance+1)-th failure within window; rate: trips on a failure percentage." },
	{ CFG_BREAKER, "tolerance", "N", "required for standard", "Failures tolerated within *window* (0..127)." },
	{ CFG_BREAKER, "window", "DURATION", "required for standard", "The failure window." },
	{ CFG_BREAKER, "refresh", "DURATION", "required", "How long the breaker stays open before half-open probes." },
	{ CFG_BREAKER, "half_open_probes", "N", NULL, "Concurrent probes while half-open (0..64; 0 means 1). Each probe belongs to the process that took it: a dead holder's probe comes back, a token used elsewhere is PROT_ESTALE." },
	{ CFG_BREAKER, "heal", "half_open|full", NULL, "What an open breaker does after refresh: *half_open* admits the probes, whose successes close it; *full* closes it with an empty history and admits everything, as Erlang's fuse heals." },
	{ CFG_BREAKER, "probe_timeout", "DURATION", "0 (= refresh)", "A probe not reported within this is given back." },
	{ CFG_BREAKER, "slow_call", "DURATION", "0 (off)", "Calls longer than this count as failures." },
	{ CFG_BREAKER, "rate_threshold", "PERCENT", "required for rate", "rate strategy: trip when the failure percentage reaches this (1..100; the % sign is optional)..." },
	{ CFG_BREAKER, "rate_window_calls", "N", "required for rate", "... over the last N calls (1..1024) ..." },
	{ CFG_BREAKER, "rate_min_calls", "N", "rate_window_calls", "... once at least N calls were seen." },
	{ CFG_POOL, "size", "N", "required", "Permanent slots (>= 0; 0 is a pool of overflow only, poolboy's size 0)." },
	{ CFG_POOL, "max_overflow", "N", NULL, "Extra slots on demand." },
	{ CFG_POOL, "checkout_timeout", "DURATION", NULL, "How long a checkout waits for a slot." },
	{ CFG_POOL, "strategy", "lifo|fifo", NULL, "Which idle connection of a process is reused: the most recently returned or the longest idle." },
	{ CFG_POOL, "overflow_ttl", "DURATION", NULL, "How long an idle overflow connection is kept; 0 closes it at once (poolboy)." },
	{ CFG_POOL, "reclaim_interval", "DURATION", "[daemon] reclaim_interval", "How soon the leases of a dead holder come back: protd (or, while protd is down, a client that needs one) looks every half interval, asking the kernel whether each holder lives." },
	{ CFG_POOL, "min_idle", "N", NULL, "Connections each process makes when it registers its connector (prot_pool_register)." },
	{ CFG_POOL, "idle_timeout", "DURATION", "0 (never)", "An idle connection of a process beyond its min_idle is closed once idle this long (at that process's next pool call)." },
	{ CFG_POOL, "max_lifetime", "DURATION", "0 (never)", "A connection older than this is closed at its checkin or at the idle check, and never reused (HikariCP)." },
	{ CFG_POOL, "leak_threshold", "DURATION", "0 (off)", "A lease held longer than this raises one pool_leak event naming the holder's pid and the time held (protctl pool show --holders marks it)." },
	{ CFG_POOL, "max_open", "N", "0 (unlimited)", "The connections open to the backend across all processes, idle ones included (at most pool_max_slots). A checkout that must open one when none is free asks the processes holding idle connections to close one, which each does at its next pool call, and waits for it until its checkout timeout (checkout_timeout); a process that makes no pool call never answers. A dead process's connections are freed by the reclaim pass." },
};
#define NDOCS (sizeof docs / sizeof docs[0])

static const struct doc *find(enum cfg_kind kind, const char *name)
{
	for (size_t i = 0; i < NDOCS; i++)
		if (docs[i].kind == kind && strcmp(docs[i].name, name) == 0)
			return &docs[i];
	return NULL;
}

static const char *const section_title[CFG_KIND_COUNT_] = {
	[CFG_SEGMENT] = "[segment]", [CFG_DAEMON] = "[daemon]", [CFG_REDIS] = "[redis]", [CFG_KEY] = "[key NAME]",
	[CFG_BREAKER] = "[breaker NAME]", [CFG_POOL] = "[pool NAME]",
};
static const char *const section_text[CFG_KIND_COUNT_] = {
	[CFG_SEGMENT] = "The segment: one per file. Capacities are fixed for the life of the segment; a reload that changes them is refused (restart protd with *--recreate*).",
	[CFG_DAEMON] = "protd itself.",
	[CFG_REDIS] = "Global limits across hosts: protd leases quota for *rate_scope = global* keys from this Redis server in the background (its sync thread); workers never talk to it. See README, Global limits.",
	[CFG_KEY] = "A protection key: what *prot_execute*(3) applies, in order: rate limiter, breaker, pool, the call. Any breaker option written *breaker_OPTION* and any pool option written *pool_OPTION* creates a breaker or pool named after the key (then *breaker =* or *pool =* must not be given).",
	[CFG_BREAKER] = "A circuit breaker (Erlang fuse).",
	[CFG_POOL] = "A connection pool (poolboy): size + max_overflow leases shared by every process.",
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: protd-ini-doc OUTPUT.scd\n");
		return 2;
	}
	struct config c;
	config_init(&c);
	const void *obj[CFG_KIND_COUNT_] = { [CFG_SEGMENT] = &c.seg, [CFG_DAEMON] = &c.daemon,
		                             [CFG_REDIS] = &c.redis };
	obj[CFG_KEY] = config_add_key(&c, "k");
	obj[CFG_BREAKER] = config_add_breaker(&c, "b");
	obj[CFG_POOL] = config_add_pool(&c, "p");
	config_finalize(&c);
	int bad = 0;
	for (size_t i = 0; i < NDOCS; i++) {
		const char *const *names = config_option_names(docs[i].kind);
		int found = 0;
		for (size_t j = 0; names[j]; j++)
			found |= strcmp(names[j], docs[i].name) == 0;
		if (!found) {
			fprintf(stderr, "protd-ini-doc: [%s] %s is documented but the parser has no such option\n",
			        config_kind_name(docs[i].kind), docs[i].name);
			bad = 1;
		}
	}
	FILE *f = fopen(argv[1], "w");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	fprintf(f, "protd.ini(5)\n\n# NAME\n\nprotd.ini - configuration file of protd(8)\n\n"
	           "# DESCRIPTION\n\nAn INI file: *[section]* headers, *name = value* lines, comments starting "
	           "with ; or # (and ' ;' inline). Durations take a unit: ms, s, m, h; a bare number is "
	           "milliseconds. Numbers are unsigned decimal. Names of keys, breakers and pools are 1..47 "
	           "bytes of printable ASCII without spaces or '='.\n\n"
	           "Every mistake is reported as _FILE_:_LINE_: what is wrong, all of them, and a file with "
	           "any mistake applies nothing. *protd --check-config* _FILE_ validates only. SIGHUP "
	           "re-reads the file: it is the source of truth, so runtime changes (*protctl set*, "
	           "*prot_configure*(3)) to objects it defines are overwritten; objects created at runtime "
	           "only are kept.\n\n"
	           "This page is generated from protd's option tables: every option and default below is "
	           "the parser's.\n");
	for (int k = 0; k < CFG_KIND_COUNT_; k++) {
		fprintf(f, "\n# %s\n\n%s\n", section_title[k], section_text[k]);
		const char *const *names = config_option_names((enum cfg_kind)k);
		for (size_t j = 0; names[j]; j++) {
			const struct doc *d = find((enum cfg_kind)k, names[j]);
			if (!d) {
				fprintf(stderr, "protd-ini-doc: [%s] %s has no description in daemon/ini_doc.c\n",
				        config_kind_name((enum cfg_kind)k), names[j]);
				bad = 1;
				continue;
			}
			char def[256];
			if (d->def)
				snprintf(def, sizeof def, "%s", d->def);
			else
				config_get_value((enum cfg_kind)k, obj[k], names[j], def, sizeof def);
			fprintf(f, "\n*%s* = _%s_\n\t%s Default: %s.\n", names[j], d->value, d->text, def);
		}
	}
	fprintf(f, "\n# EXAMPLE\n\n```\n[segment]\nname = /prot\nmode = 0600\n\n[key api]\n"
	           "rate_limit = 100\nrate_window = 1m\nbreaker_tolerance = 3\nbreaker_window = 10s\n"
	           "breaker_refresh = 5s\npool_size = 4\n```\n\nThe source tree's examples/protd.ini shows "
	           "every option.\n\n# SEE ALSO\n\nprotd(8), protctl(1), libprot(3)\n");
	config_free(&c);
	if (fclose(f) != 0 || bad) {
		remove(argv[1]);
		return 1;
	}
	return 0;
}
