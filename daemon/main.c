/* main.c — protd: options, logging, signals, readiness (notify.c), the tick loop (heartbeat, sweeps, reclaims,
 * event log) and SIGHUP reloads. Signals arrive through a signalfd read between ticks (no asynchronous handler);
 * all work happens in the loop.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "protd.h"
#include "redis.h"
#include "wire.h"

#define EVENTS_PER_TICK 256

static int got_stop, got_hup; /* set by wait_tick() from the signalfd */

struct opts {
	const char *config;
	const char *segment;
	const char *control;
	bool keep, recreate;
};

struct daemon {
	struct opts o;
	struct config ini;        /* the running INI configuration (without runtime objects) */
	char control_path[CFG_PATH_MAX];
	struct shm shm;
	uint64_t event_cursor;
	uint32_t tampered;        /* header lines found changed at the last tick (logged once) */
};

/* ---- logging ------------------------------------------------------------------------------- */
void plog(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char ts[32], msg[1024];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* one fprintf per line: stdio's lock keeps lines of the two threads whole */
	fprintf(stderr, "%s.%03ldZ protd[%d] %s: %s\n", ts, now.tv_nsec / 1000000, (int)getpid(),
	        names[level], msg);
}

/* ---- options -------------------------------------------------------------------------------- */
static void usage(FILE *f)
{
	fprintf(f,
	        "usage: protd -c FILE [--segment NAME] [--control PATH] [--keep-segment] [--recreate]\n"
	        "       protd --check-config FILE\n"
	        "\n"
	        "Owns the shared-memory segment of prot (rate limiters, circuit breakers, pools) and its\n"
	        "configuration. Runs in the foreground and logs to stderr.\n"
	        "\n"
	        "  -c, --config FILE      the INI configuration (see examples/protd.ini)\n"
	        "      --check-config FILE  validate FILE only: prints \"FILE: ok\" and the segment size\n"
	        "                         it implies, or every error\n"
	        "      --segment NAME     segment name, overriding [segment] name\n"
	        "      --control PATH     control socket, overriding [daemon] control_socket\n"
	        "      --keep-segment     on SIGTERM/SIGINT leave the segment for the next protd\n"
	        "                         (planned restarts, upgrades) instead of removing it\n"
	        "      --recreate         replace an existing incompatible segment (other ABI or\n"
	        "                         capacities) instead of refusing to start\n"
	        "  -h, --help             this text\n"
	        "  -V, --version          the version\n"
	        "\n"
	        "Signals: SIGHUP re-reads FILE (an invalid file keeps the running configuration);\n"
	        "SIGTERM/SIGINT stop cleanly. Exit status: 0 clean stop, 1 error, 2 usage.\n");
}

static int check_config(const char *file)
{
	struct config c;
	struct cfg_errors e = { 0 };
	int r = config_load(file, &c, &e);
	for (size_t i = 0; i < e.n; i++)
		fprintf(stderr, "%s\n", e.msg[i]);
	uint64_t size;
	char human[32], max[32];
	if (r == 0 && config_segment_size(&c, &size) == 0) {
		config_fmt_size(human, sizeof human, size);
		config_fmt_size(max, sizeof max, c.daemon.max_segment_size);
		printf("%s: ok\nsegment %s: %s (%" PRIu64 " bytes; max_segment_size %s)\n", file,
		       c.seg.name, human, size, max);
	}
	config_free(&c);
	cfg_errors_free(&e);
	return r == 0 ? 0 : 1;
}

/* Returns -1 to continue, else an exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_CHECK = 256, O_SEGMENT, O_CONTROL, O_KEEP, O_RECREATE };
	static const struct option lo[] = {
		{ "config", required_argument, 0, 'c' },    { "check-config", required_argument, 0, O_CHECK },
		{ "segment", required_argument, 0, O_SEGMENT }, { "control", required_argument, 0, O_CONTROL },
		{ "keep-segment", no_argument, 0, O_KEEP },  { "recreate", no_argument, 0, O_RECREATE },
		{ "help", no_argument, 0, 'h' },             { "version", no_argument, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:hV", lo, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case O_CHECK: return check_config(optarg);
		case O_SEGMENT: o->segment = optarg; break;
		case O_CONTROL: o->control = optarg; break;
		case O_KEEP: o->keep = true; break;
		case O_RECREATE: o->recreate = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("protd %s (segment ABI %d)\n", PROTD_VERSION, PROT_ABI_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o->config || optind != argc) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* Command-line overrides, applied to every configuration read (start and reloads). */
static int apply_overrides(const struct opts *o, struct config *c, char *err)
{
	if (o->segment && config_set_value(CFG_SEGMENT, &c->seg, "name", o->segment, err))
		return -1;
	if (o->control && config_set_value(CFG_DAEMON, &c->daemon, "control_socket", o->control, err))
		return -1;
	return 0;
}

static int load(const struct opts *o, struct config *c)
{
	struct cfg_errors e = { 0 };
	char err[CFG_ERR_MAX];
	int r = config_load(o->config, c, &e);
	for (size_t i = 0; i < e.n; i++)
		log_err("%s", e.msg[i]);
	cfg_errors_free(&e);
	if (r == 0 && apply_overrides(o, c, err)) {
		log_err("command line: %s", err);
		config_free(c);
		r = -1;
	}
	return r;
}

/* ---- applying --------------------------------------------------------------------------------- */
/* INI + the runtime objects of the registry, checked, applied. Holds the registry's writer lock. */
static int apply_ini(struct daemon *d, const struct config *ini, uint32_t ev)
{
	struct config next;
	struct cfg_errors e = { 0 };
	int r = config_copy(&next, ini);
	registry_lock();
	if (r == 0)
		r = registry_merge_runtime(&next);
	if (r == 0) {
		config_finalize(&next);
		if (config_check(&next, &e)) {
			for (size_t i = 0; i < e.n; i++)
				log_err("%s", e.msg[i]);
			r = -1;
		}
	}
	if (r == 0)
		r = registry_apply(&d->shm, &next, ev);
	else
		config_free(&next);
	registry_unlock();
	cfg_errors_free(&e);
	return r;
}

static bool geometry_change(const struct config *a, const struct config *b)
{
	const struct seg_geometry *x = &a->seg.geo, *y = &b->seg.geo;
	bool changed = false;
#define CMP(f)                                                                                 \
	if (x->f != y->f) {                                                                        \
		log_err("reload refused: [segment] " #f " %" PRIu64 " -> %" PRIu64                  \
		        " needs a segment of another size; restart protd with --recreate",          \
		        (uint64_t)x->f, (uint64_t)y->f);                                            \
		changed = true;                                                                    \
	}
	CMP(max_keys) CMP(max_breakers) CMP(max_pools) CMP(pool_max_slots) CMP(pool_max_waiters)
	CMP(rate_entities) CMP(events) CMP(sliding_buckets) CMP(sliding_max_limit) CMP(rate_global)
#undef CMP
	if (a->seg.huge_pages != b->seg.huge_pages) {
		log_err("reload refused: [segment] huge_pages %s -> %s needs a new segment; restart protd "
		        "with --recreate", prot_name(NAMES_HUGE_PAGES, a->seg.huge_pages),
		        prot_name(NAMES_HUGE_PAGES, b->seg.huge_pages));
		changed = true;
	}
	if (strcmp(a->seg.name, b->seg.name) != 0) {
		log_err("reload refused: [segment] name %s -> %s needs a restart", a->seg.name, b->seg.name);
		changed = true;
	}
	return changed;
}

static void reload_apply(struct daemon *d);

/* SIGHUP: tell systemd a reload runs (ExecReload waits for READY=1 again), then apply. */
static void reload(struct daemon *d)
{
	log_info("SIGHUP: reloading %s", d->o.config);
	protd_notify("RELOADING=1");
	reload_apply(d);
	protd_notify("READY=1");
}

static void reload_apply(struct daemon *d)
{
	struct config next;
	if (load(&d->o, &next) != 0) {
		log_err("reload refused: %s is invalid; keeping the running configuration", d->o.config);
		return;
	}
	if (geometry_change(&d->ini, &next) || apply_ini(d, &next, EV_CONFIG_RELOADED) != 0) {
		log_err("reload refused; keeping the running configuration");
		config_free(&next);
		return;
	}
	if (strcmp(next.daemon.control_socket, d->ini.daemon.control_socket) != 0)
		log_warn("control_socket changes take effect at the next start");
	shm_set_access(&d->shm, &next);
	redis_sync_config(&next);
	config_free(&d->ini);
	d->ini = next;
	log_info("configuration reloaded: %zu keys, %zu breakers, %zu pools from the file "
	         "(generation %" PRIu64 ")", next.nkeys, next.nbreakers, next.npools,
	         atomic_load_explicit(&d->shm.hdr->config_gen, memory_order_relaxed));
}

/* ---- the loop ---------------------------------------------------------------------------------- */
static void drain_events(struct daemon *d)
{
	struct prot_event ev;
	uint64_t dropped = 0;
	for (int i = 0; i < EVENTS_PER_TICK && prot_event_read(d->shm.hdr, &d->event_cursor, &ev, &dropped);
	     i++) {
		char name[4 * PROT_NAME_BYTES + 1], words[256];
		ev.name[PROT_NAME_BYTES - 1] = '\0';
		/* the entry is untrusted: the name escaped, the words from lib/event_text.c's table */
		log_info("event %s %s: %s (object %u, pid %d)", prot_event_name(ev.type),
		         ev.name[0] ? prot_event_safe_name(ev.name, name, sizeof name) : "-",
		         prot_event_words(&ev, words, sizeof words), ev.object, (int)ev.pid);
	}
	if (dropped)
		log_warn("event ring overflowed: %" PRIu64 " events lost", dropped);
}

/* The header's immutable words are protd's to keep: another writer's change to the magic, the ABI
 * or the geometry is logged and undone. protd itself never reads them back (it uses the geometry
 * it took at creation or adoption), so nothing it does follows a tampered offset. */
static void guard_header(struct daemon *d)
{
	uint32_t t = seg_tampered(d->shm.hdr);
	if (t && t != d->tampered)
		log_err("segment %s: its header was changed by someone else (lines mask 0x%x: magic, ABI or "
		          "geometry): ignored and restored from protd's copy", d->shm.name, t);
	if (t)
		seg_restore_header(d->shm.hdr);
	d->tampered = t;
	/* An odd configuration generation outside protd's own changes (which hold the registry's
	 * writer lock) is someone else's: it would make every whole-change reader wait. End it. */
	if (registry_trylock()) {
		uint64_t g = atomic_load_explicit(&d->shm.hdr->config_gen, memory_order_relaxed);
		if (g & 1u) {
			log_err("segment %s: its configuration generation was made odd by someone else: ended",
			        d->shm.name);
			atomic_store_explicit(&d->shm.hdr->config_gen, g + 1, memory_order_release);
		}
		registry_unlock();
	}
}

static void tick(struct daemon *d)
{
	uint64_t now = prot_now_ns(), swept = 0, reclaimed = 0;
	struct prot_idv v = shm_idv(&d->shm);
	guard_header(d);
	shm_heartbeat(&d->shm, now);
	rate_sweep(&v, now, d->ini.daemon.rate_grace_ms * 1000000ull, &swept);
	breaker_tick(&v, now);
	pool_reclaim(&v, now, &reclaimed);
	if (reclaimed)
		log_info("reclaimed %" PRIu64 " pool leases of dead processes", reclaimed);
	drain_events(d);
}

/* Signals. SIGTERM/SIGINT (stop) and SIGHUP (reload) are blocked in every thread: main() blocks
 * them before it starts any thread (threads inherit the mask), and the main loop takes them from a
 * signalfd while it waits for the next tick. No asynchronous handler runs at all:
 * nothing can be interrupted half-way, and no signal can land on a thread that never looks at it
 * (under ThreadSanitizer, a handler is deferred until its thread reaches an instrumented call; a
 * signal taken by a thread asleep in uninstrumented liburcu code was never acted on). A signal that
 * arrives while the loop works stays pending and is read at the next wait. */
static int sigfd = -1;

static int signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 || (sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_err("signals: %s", strerror(errno));
		return -1;
	}
	struct sigaction sa = { 0 };
	sa.sa_handler = SIG_IGN; /* a client gone mid-reply is the control thread's EPIPE, not a signal */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	return 0;
}

/* Wait up to ms for the next tick; note the stop and reload requests that arrive meanwhile. */
static void wait_tick(uint64_t ms)
{
	struct pollfd pfd = { .fd = sigfd, .events = POLLIN };
	if (poll(&pfd, 1, (int)ms) <= 0)
		return;
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGHUP)
			got_hup = 1;
		else
			got_stop = 1;
	}
}

static int start(struct daemon *d)
{
	char err[512];
	const char *cp = d->ini.daemon.control_socket;
	if (cp[0])
		snprintf(d->control_path, sizeof d->control_path, "%s", cp);
	else
		config_default_control(d->ini.seg.name, d->control_path, sizeof d->control_path);
	if (shm_setup(&d->shm, &d->ini, d->control_path, d->o.recreate, err, sizeof err) < 0) {
		log_err("%s", err);
		return -1;
	}
	d->event_cursor = atomic_load_explicit(&d->shm.hdr->event_head, memory_order_relaxed);
	if (registry_init(&d->shm) < 0 || apply_ini(d, &d->ini, d->shm.adopted ? EV_CONFIG_RELOADED : 0) < 0) {
		log_err("cannot apply the configuration to segment %s", d->shm.name);
		shm_shutdown(&d->shm, d->shm.adopted);
		return -1;
	}
	if (control_start(&d->shm, &d->ini, d->control_path) < 0) {
		shm_shutdown(&d->shm, d->shm.adopted);
		return -1;
	}
	shm_publish(&d->shm);
	if (redis_sync_start(&d->shm, &d->ini) < 0) {
		control_stop();
		shm_shutdown(&d->shm, d->shm.adopted);
		return -1;
	}
	log_info("serving %s (%zu keys, %zu breakers, %zu pools; control %s; tick %" PRIu64 "ms)",
	         d->shm.name, d->ini.nkeys, d->ini.nbreakers, d->ini.npools, d->control_path,
	         d->ini.daemon.tick_ms);
	char st[256];
	snprintf(st, sizeof st, "READY=1\nMAINPID=%d\nSTATUS=serving %s (%zu keys, %zu breakers, %zu pools)",
	         (int)getpid(), d->shm.name, d->ini.nkeys, d->ini.nbreakers, d->ini.npools);
	protd_notify(st);
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon d = { 0 };
	int r = parse_args(argc, argv, &d.o);
	if (r >= 0)
		return r;
	if (load(&d.o, &d.ini) != 0) {
		log_err("%s: invalid configuration; nothing applied", d.o.config);
		return 1;
	}
	if (signals() < 0) {
		config_free(&d.ini);
		return 1;
	}
	if (start(&d) < 0) {
		config_free(&d.ini);
		return 1;
	}
	while (!got_stop) {
		if (got_hup) {
			got_hup = 0;
			reload(&d);
		}
		tick(&d);
		wait_tick(d.ini.daemon.tick_ms);
	}
	log_info("stopping");
	protd_notify("STOPPING=1");
	redis_sync_stop();
	control_stop();
	drain_events(&d);
	shm_shutdown(&d.shm, d.o.keep);
	registry_fini();
	config_free(&d.ini);
	return 0;
}
