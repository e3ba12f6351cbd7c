/* test_reload.c — SIGHUP and runtime configuration against a real protd: a process attached before
 * the reload sees the new settings (read consistently through the key's seqlock), a broken file or
 * a capacity change keeps the running configuration (and protd says why), keys appear and retire
 * with their counters kept, config_gen moves, runtime `set` goes through the same validator and a
 * later SIGHUP restores the INI, and the control socket refuses an unauthorised caller.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

#define HEAD "[segment]\nmax_keys = 8\nmax_breakers = 4\nmax_pools = 2\nrate_entities = 64\nevents = 64\n"

static const char *seg;

static int key_cfg(prot_t *p, const char *name, struct prot_key_cfg *cfg)
{
	struct prot_shm_header *h = prot_hdr(p);
	int i = seg_find(h, REG_KEYS, name);
	if (i < 0)
		return i;
	struct prot_key_slot *s = seg_entry(h, REG_KEYS, (uint32_t)i);
	seq_read(&s->seq, &s->cfg, cfg, sizeof *cfg / 8);
	return 0;
}

static struct prot_key_stats *key_stats(prot_t *p, const char *name)
{
	struct prot_shm_header *h = prot_hdr(p);
	int i = seg_find(h, REG_KEYS, name);
	cr_assert_geq(i, 0, "key %s: %s", name, prot_strerror(i));
	return &((struct prot_key_slot *)seg_entry(h, REG_KEYS, (uint32_t)i))->stats;
}

static uint64_t gen(prot_t *p)
{
	return atomic_load_explicit(&prot_hdr(p)->config_gen, memory_order_acquire);
}

struct gen_wait {
	prot_t *p;
	uint64_t after;
};
/* Moved and even: an odd generation is a change still being written (shm_config_begin). */
static bool gen_moved(void *arg)
{
	struct gen_wait *w = arg;
	uint64_t g = gen(w->p);
	return g > w->after && !(g & 1);
}

/* SIGHUP and wait (bounded) until the configuration generation moves. */
static void reload_and_wait(pid_t pid, prot_t *p)
{
	struct gen_wait w = { p, gen(p) };
	kill(pid, SIGHUP);
	cr_assert(th_until(gen_moved, &w, 5000), "no reload within 5 s");
}

static void expect_log(pid_t pid, const char *what)
{
	cr_assert(th_log_until(pid, what, 5000), "protd's log never said \"%s\"", what);
}

static const char *ini(const char *keys)
{
	return th_write_file("protd.ini", HEAD "%s", keys);
}

/* ---- a child attached before the reload sees the change ---------------------------------------- */
struct sync {
	_Atomic int attached;
};

static int watcher(void *arg, int i)
{
	(void)i;
	struct sync *s = arg;
	prot_t *p;
	struct prot_key_cfg c;
	if (prot_open(seg, 0, &p) != 0)
		return 10;
	if (key_cfg(p, "k", &c) != 0 || c.rate_limit != 10 || c.rate_window_ms != 1000)
		return 11;
	atomic_store(&s->attached, 1);
	uint64_t end = th_now_ms() + 5000;
	while (th_now_ms() < end) {
		if (key_cfg(p, "k", &c) != 0)
			return 12;
		/* one whole version or the other, never a mix */
		if (c.rate_limit == 20 && c.rate_window_ms == 2000 && c.timeout_ms == 750) {
			prot_close(p);
			return 0;
		}
		if (c.rate_limit != 10 || c.rate_window_ms != 1000)
			return 13;
		usleep(1000);
	}
	return 14;
}

static bool attached(void *arg)
{
	return atomic_load(&((struct sync *)arg)->attached) != 0;
}

Test(reload, attached_child_sees_change)
{
	seg = th_segname("rl-child");
	const char *path = ini("[key k]\nrate_limit = 10\nrate_window = 1s\n");
	pid_t pid = th_protd_start(path, seg, NULL);
	prot_t *p = th_open(seg, 2000);
	uint64_t g0 = gen(p);
	struct sync *s = th_shared(sizeof *s);
	pid_t child = th_fork(watcher, s, 0);
	cr_assert(th_until(attached, s, 5000), "child did not attach");
	ini("[key k]\nrate_limit = 20\nrate_window = 2s\ntimeout = 750ms\n");
	kill(pid, SIGHUP);
	int st;
	cr_assert_eq(th_wait(child, 10000, &st), 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	cr_assert_gt(gen(p), g0, "config_gen did not move");
	expect_log(pid, "configuration reloaded");
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- broken file: old config kept -------------------------------------------------------------- */
Test(reload, broken_file_keeps_running_config)
{
	seg = th_segname("rl-broken");
	const char *path = ini("[key k]\nrate_limit = 10\nrate_window = 1s\n");
	pid_t pid = th_protd_start(path, seg, NULL);
	prot_t *p = th_open(seg, 2000);
	uint64_t g0 = gen(p);
	ini("[key k]\nrate_limit = lots\nrate_window = 1s\n[key new]\ntimeout = 1s\n");
	kill(pid, SIGHUP);
	expect_log(pid, "reload refused");
	char want[256];
	snprintf(want, sizeof want, "%s:8: rate_limit: \"lots\" is not a number", path);
	expect_log(pid, want);
	struct prot_key_cfg c;
	cr_assert_eq(key_cfg(p, "k", &c), 0);
	cr_assert_eq(c.rate_limit, 10);
	cr_assert_eq(key_cfg(p, "new", &c), -PROT_ENOKEY, "a key of the broken file appeared");
	cr_assert_eq(gen(p), g0);
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- keys appear, retire, revive; counters kept ------------------------------------------------- */
Test(reload, keys_appear_and_retire_with_state_kept)
{
	seg = th_segname("rl-keys");
	const char *path = ini("[key k]\nrate_limit = 10\nrate_window = 1s\n[key gone]\ntimeout = 1s\n");
	pid_t pid = th_protd_start(path, seg, NULL);
	prot_t *p = th_open(seg, 2000);
	atomic_store(&key_stats(p, "k")->calls, 555);
	atomic_store(&key_stats(p, "gone")->calls, 777);

	ini("[key k]\nrate_limit = 11\nrate_window = 1s\n[key newkey]\ntimeout = 3s\n");
	reload_and_wait(pid, p);
	struct prot_key_cfg c;
	cr_assert_eq(key_cfg(p, "newkey", &c), 0, "new key did not appear");
	cr_assert_eq(c.timeout_ms, 3000);
	cr_assert_eq(key_cfg(p, "gone", &c), -PROT_ENOKEY, "removed key still live");
	cr_assert_eq(key_cfg(p, "k", &c), 0);
	cr_assert_eq(c.rate_limit, 11);
	cr_assert_eq(atomic_load(&key_stats(p, "k")->calls), 555, "counter lost on reload");

	ini("[key k]\nrate_limit = 11\nrate_window = 1s\n[key newkey]\ntimeout = 3s\n[key gone]\n"
	    "timeout = 2s\n");
	reload_and_wait(pid, p);
	cr_assert_eq(key_cfg(p, "gone", &c), 0, "re-added key did not come back");
	cr_assert_eq(c.timeout_ms, 2000);
	cr_assert_eq(atomic_load(&key_stats(p, "gone")->calls), 777, "revived key lost its state");
	prot_close(p);
	th_protd_stop(pid);
}

Test(reload, breaker_and_pool_follow_the_file)
{
	seg = th_segname("rl-bp");
	const char *path = ini("[key k]\nbreaker_tolerance = 2\nbreaker_window = 1s\nbreaker_refresh = 1s\n"
	                       "pool_size = 2\n");
	pid_t pid = th_protd_start(path, seg, NULL);
	prot_t *p = th_open(seg, 2000);
	struct prot_key_cfg c;
	cr_assert_eq(key_cfg(p, "k", &c), 0);
	struct prot_shm_header *h = prot_hdr(p);
	cr_assert_eq(c.breaker_index, (uint64_t)seg_find(h, REG_BREAKERS, "k"));
	cr_assert_eq(c.pool_index, (uint64_t)seg_find(h, REG_POOLS, "k"));
	ini("[key k]\ntimeout = 1s\n");
	reload_and_wait(pid, p);
	cr_assert_eq(key_cfg(p, "k", &c), 0);
	cr_assert_eq(c.breaker_index, PROT_NO_INDEX);
	cr_assert_eq(c.pool_index, PROT_NO_INDEX);
	cr_assert_eq(seg_find(h, REG_BREAKERS, "k"), -PROT_ENOBREAKER);
	cr_assert_eq(seg_find(h, REG_POOLS, "k"), -PROT_ENOPOOL);
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- a change that needs a bigger segment is refused --------------------------------------------- */
Test(reload, capacity_change_refused)
{
	seg = th_segname("rl-cap");
	const char *path = th_write_file("protd.ini", HEAD "[key k]\ntimeout = 1s\n");
	pid_t pid = th_protd_start(path, seg, NULL);
	prot_t *p = th_open(seg, 2000);
	uint64_t g0 = gen(p);
	th_write_file("protd.ini", "[segment]\nmax_keys = 16\nmax_breakers = 4\nmax_pools = 2\n"
	                           "rate_entities = 64\nevents = 64\n[key k]\ntimeout = 2s\n");
	kill(pid, SIGHUP);
	expect_log(pid, "reload refused: [segment] max_keys 8 -> 16");
	struct prot_key_cfg c;
	cr_assert_eq(key_cfg(p, "k", &c), 0);
	cr_assert_eq(c.timeout_ms, 1000);
	cr_assert_eq(gen(p), g0);
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- runtime changes: same validator, then SIGHUP restores the INI -------------------------------- */
Test(reload, runtime_set_then_sighup)
{
	seg = th_segname("rl-set");
	const char *path = ini("[key k]\nrate_limit = 10\nrate_window = 1s\n");
	pid_t pid = th_protd_start(path, seg, NULL);
	prot_t *p = th_open(seg, 2000);
	char reply[4096];
	uint64_t g0 = gen(p);
	cr_assert_eq(prot_control(p, "set k rate_limit=77 breaker_tolerance=4 breaker_window=1s "
	                             "breaker_refresh=2s", reply, sizeof reply), 0, "%s", reply);
	/* protd's change records (man/prot-control.7.scd): the key's limit, and the breaker it made */
	cr_assert(strstr(reply, "change kind=key name=k option=rate_limit setting=rate_limit old=10 new=77 "
	                        "changed=true"), "%s", reply);
	cr_assert(strstr(reply, "change kind=breaker name=k option=tolerance setting=breaker_tolerance new=4 "
	                        "changed=true"), "%s", reply);
	cr_assert_gt(gen(p), g0);
	struct prot_key_cfg c;
	cr_assert_eq(key_cfg(p, "k", &c), 0);
	cr_assert_eq(c.rate_limit, 77);
	cr_assert_neq(c.breaker_index, PROT_NO_INDEX);

	cr_assert_eq(prot_control(p, "set k rate_window=1sec", reply, sizeof reply), -PROT_EINVAL_CONFIG);
	cr_assert_str_eq(reply, "rate_window: unknown unit \"sec\" in \"1sec\" (use ms, s, m or h)");
	cr_assert_eq(prot_control(p, "set k frob=1", reply, sizeof reply), -PROT_EINVAL_CONFIG);
	cr_assert_eq(prot_control(p, "set rt rate_limit=5", reply, sizeof reply), -PROT_EINVAL_CONFIG);
	cr_assert(strstr(reply, "rate_window is missing"), "%s", reply);
	cr_assert_eq(prot_control(p, "set rt rate_limit=5 rate_window=1s", reply, sizeof reply), 0,
	             "%s", reply);
	cr_assert(strstr(reply, "created kind=key name=rt"), "%s", reply);
	cr_assert_eq(prot_control(p, "breaker-create rb tolerance=1 window=1s refresh=1s", reply,
	                          sizeof reply), 0, "%s", reply);
	cr_assert_eq(prot_control(p, "breaker-create rb tolerance=1 window=1s refresh=1s", reply,
	                          sizeof reply), 0, "%s", reply);
	cr_assert_eq(prot_control(p, "breaker-create rb tolerance=2 window=1s refresh=1s", reply,
	                          sizeof reply), -PROT_EEXIST, "%s", reply);

	reload_and_wait(pid, p);
	cr_assert_eq(key_cfg(p, "k", &c), 0);
	cr_assert_eq(c.rate_limit, 10, "the INI did not win over the runtime change");
	cr_assert_eq(c.breaker_index, PROT_NO_INDEX);
	cr_assert_eq(key_cfg(p, "rt", &c), 0, "runtime-only key dropped by the reload");
	cr_assert_eq(c.rate_limit, 5);
	cr_assert_geq(seg_find(prot_hdr(p), REG_BREAKERS, "rb"), 0, "runtime breaker dropped");
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- runtime set follows the INI's inline rule: the object named after the key, nothing else ---- */
Test(reload, runtime_inline_options_follow_the_ini_rule)
{
	seg = th_segname("rl-inl");
	const char *path = ini("[breaker b]\ntolerance = 1\nwindow = 1s\nrefresh = 1s\n"
	                       "[key k]\nrate_limit = 10\nrate_window = 1s\nbreaker = b\n"
	                       "[key b]\nrate_limit = 10\nrate_window = 1s\n");
	pid_t pid = th_protd_start(path, seg, NULL);
	prot_t *p = th_open(seg, 2000);
	char reply[4096];
	uint64_t g0 = gen(p);
	/* k uses the standalone breaker b: its breaker_* options would make another breaker */
	cr_assert_eq(prot_control(p, "set k breaker_tolerance=4", reply, sizeof reply),
	             -PROT_EINVAL_CONFIG, "%s", reply);
	cr_assert(strstr(reply, "the key uses breaker b; change that breaker instead"), "%s", reply);
	/* key b's inline breaker would be named b, which is a standalone section */
	cr_assert_eq(prot_control(p, "set b breaker_tolerance=4", reply, sizeof reply),
	             -PROT_EINVAL_CONFIG, "%s", reply);
	cr_assert(strstr(reply, "clash with [breaker b]"), "%s", reply);
	cr_assert_eq(gen(p), g0, "a refused set changed the configuration");
	struct prot_breaker_status bs;
	cr_assert_eq(prot_breaker_status(p, "b", &bs), 0);
	cr_assert_eq(bs.opts.tolerance, 1, "the standalone breaker was changed through a key");
	/* a key with no breaker gets one named after it, as in the INI */
	cr_assert_eq(prot_control(p, "set n rate_limit=5 rate_window=1s breaker_tolerance=4 "
	                             "breaker_window=1s breaker_refresh=1s", reply, sizeof reply), 0,
	             "%s", reply);
	cr_assert_eq(prot_breaker_status(p, "n", &bs), 0);
	cr_assert_eq(bs.opts.tolerance, 4);
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- the control socket checks its caller ----------------------------------------------------------- */
static int stranger(void *arg, int i)
{
	(void)arg;
	(void)i;
	prot_t *p;
	char reply[512];
	if (prot_open(seg, 0, &p) != 0) /* as root, before dropping privileges */
		return 10;
	if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
		return 11;
	int r = prot_control(p, "set k rate_limit=1 rate_window=1s", reply, sizeof reply);
	if (r != -EACCES)
		return 12;
	return strstr(reply, "uid 65534 is not root") ? 0 : 13;
}

Test(reload, control_refuses_stranger)
{
	seg = th_segname("rl-perm");
	/* o+r: the stranger may read the segment (and so reach the socket), not change it */
	const char *path = th_write_file("protd.ini", "[segment]\nmode = 0604\nmax_keys = 8\n"
	                                 "max_breakers = 4\nmax_pools = 2\nrate_entities = 64\n"
	                                 "events = 64\n[key k]\ntimeout = 1s\n");
	pid_t pid = th_protd_start(path, seg, NULL);
	cr_assert_eq(geteuid(), 0, "this test needs root");
	pid_t child = th_fork(stranger, NULL, 0);
	int st;
	cr_assert_eq(th_wait(child, 10000, &st), 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
	prot_t *p = th_open(seg, 2000);
	char reply[256];
	cr_assert_eq(prot_control(p, "ping", reply, sizeof reply), 0, "%s", reply);
	prot_close(p);
	th_protd_stop(pid);
}

Test(reload, control_unreachable)
{
	seg = th_segname("rl-unr");
	const char *path = ini("[key k]\ntimeout = 1s\n");
	pid_t pid = th_protd_start(path, seg, "--keep-segment", NULL);
	prot_t *p = th_open(seg, 2000);
	th_kill9(pid);
	char sock[128];
	snprintf(sock, sizeof sock, "/run/prot/%s.sock", seg + 1);
	unlink(sock);
	char reply[256];
	cr_assert_eq(prot_control(p, "ping", reply, sizeof reply), -PROT_ENOTCONNECTED);
	prot_close(p);
}
