/* test_facade.c — prot_execute and its companions against a real protd: the order of the layers
 * and what each outcome charges, no leaks under 8 processes of mixed calls, per-call overrides,
 * runtime configuration (applied, refused, not permitted), status and list, error strings,
 * telemetry handlers, Prometheus metrics through promtool, the event ring under overflow, and the
 * rate layer keeping the key's settings (rate_on_full, rate_clock) with an operation override.
 * Length (over ~700 lines): one facade, one protd fixture; the cases follow prot_execute's layers.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

/* One key with all three layers; limits small enough to reach in a test. */
#define INI_FMT                                                                                    \
	"[segment]\nmax_keys = 8\nmax_breakers = 8\nmax_pools = 4\npool_max_slots = 8\nevents = %d\n"  \
	"[daemon]\ntick = 5ms\nreclaim_interval = 20ms\n"                                          \
	"[key svc]\nrate_limit = %d\nrate_window = 60s\nrate_algorithm = fixed_window\n"           \
	"breaker_tolerance = %d\nbreaker_window = 60s\nbreaker_refresh = %s\n"                     \
	"pool_size = 1\npool_max_overflow = 0\npool_checkout_timeout = 1s\ntimeout = 1s\n"          \
	"[key plain]\ntimeout = 1s\n"

static const char *start(const char *tag, int rate_limit, int tolerance, const char *refresh,
                         int events, pid_t *pid)
{
	const char *seg = th_segname(tag);
	const char *ini = th_write_file("f.ini", INI_FMT, events, rate_limit, tolerance, refresh);
	*pid = th_protd_start(ini, seg, NULL);
	return seg;
}

struct counter {
	_Atomic int calls;
};

static int fn_ok(const struct prot_call *c)
{
	struct counter *k = c->arg;
	if (k)
		atomic_fetch_add(&k->calls, 1);
	return 7;
}
static int fn_fail(const struct prot_call *c)
{
	struct counter *k = c->arg;
	if (k)
		atomic_fetch_add(&k->calls, 1);
	return -42;
}
static int fn_slow(const struct prot_call *c)
{
	(void)c;
	usleep(60 * 1000);
	return 0;
}

static int conn_create(void *ctx, void **conn)
{
	(void)ctx;
	*conn = malloc(1);
	return *conn ? 0 : -ENOMEM;
}
static void conn_destroy(void *ctx, void *conn)
{
	(void)ctx;
	free(conn);
}
static const struct prot_connector connector = {.create = conn_create, .destroy = conn_destroy};

static prot_t *attach(const char *seg)
{
	prot_t *p = th_open(seg, 2000);
	cr_assert_eq(prot_pool_register(p, "svc", &connector), 0);
	return p;
}

Test(facade, rate_denial_charges_nothing_else)
{
	pid_t pd;
	const char *seg = start("rate", 2, 5, "1s", 64, &pd);
	prot_t *p = attach(seg);
	struct counter k = {0};
	struct prot_detail d;
	struct prot_call_opts o = {.entity = "user:1", .timeout_ms = -1};
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, &k, &d), 0);
	cr_assert_eq(d.fn_result, 7);
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, &k, &d), 0);

	struct prot_breaker_status b0;
	struct prot_pool_status p0;
	cr_assert_eq(prot_breaker_status(p, "svc", &b0), 0);
	cr_assert_eq(prot_pool_status(p, "svc", &p0), 0);
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, &k, &d), -PROT_ERATELIMITED);
	cr_assert_eq(d.layer, PROT_LAYER_RATE);
	cr_assert_gt(d.retry_after_ms, 0);
	cr_assert_str_eq(d.key, "svc");
	cr_assert_eq(atomic_load(&k.calls), 2, "fn must not run when rate-limited");
	struct prot_breaker_status b1;
	struct prot_pool_status p1;
	cr_assert_eq(prot_breaker_status(p, "svc", &b1), 0);
	cr_assert_eq(prot_pool_status(p, "svc", &p1), 0);
	cr_assert_eq(b1.calls, b0.calls, "a rate denial must not reach the breaker");
	cr_assert_eq(p1.checkouts, p0.checkouts, "a rate denial must not take a pool slot");

	/* another entity has its own bucket */
	o.entity = "user:2";
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, &k, &d), 0);
	prot_close(p);
	th_protd_stop(pd);
}

Test(facade, breaker_rejection_takes_no_slot_and_failures_are_recorded)
{
	pid_t pd;
	const char *seg = start("brk", 1000, 1, "10s", 64, &pd);
	prot_t *p = attach(seg);
	struct counter k = {0};
	struct prot_detail d;
	/* fn failure: PROT_EFAILED with fn's own code, recorded by the breaker */
	cr_assert_eq(prot_execute(p, "svc", NULL, fn_fail, &k, &d), -PROT_EFAILED);
	cr_assert_eq(d.fn_result, -42);
	cr_assert_eq(d.layer, PROT_LAYER_CALL);
	cr_assert_eq(prot_execute(p, "svc", NULL, fn_fail, &k, &d), -PROT_EFAILED);
	struct prot_breaker_status b;
	cr_assert_eq(prot_breaker_status(p, "svc", &b), 0);
	cr_assert_eq(b.failures, 2);
	cr_assert_eq(b.state, PROT_BREAKER_OPEN, "tolerance 1: the second failure trips it");

	struct prot_pool_status p0, p1;
	cr_assert_eq(prot_pool_status(p, "svc", &p0), 0);
	cr_assert_eq(prot_execute(p, "svc", NULL, fn_ok, &k, &d), -PROT_EBLOWN);
	cr_assert_eq(d.layer, PROT_LAYER_BREAKER);
	cr_assert_eq(atomic_load(&k.calls), 2, "fn must not run while the breaker is open");
	cr_assert_eq(prot_pool_status(p, "svc", &p1), 0);
	cr_assert_eq(p1.checkouts, p0.checkouts, "a breaker rejection must not take a pool slot");
	cr_assert_eq(p1.in_use, 0);
	prot_close(p);
	th_protd_stop(pd);
}

Test(facade, pool_timeout_is_not_a_breaker_failure)
{
	pid_t pd;
	const char *seg = start("pool", 1000, 0, "10s", 64, &pd);
	prot_t *p = attach(seg);
	prot_lease lease;
	void *conn;
	cr_assert_eq(prot_pool_checkout(p, "svc", 0, &lease, &conn), 0); /* the only slot */
	struct prot_detail d;
	struct prot_call_opts o = {.timeout_ms = 50};
	uint64_t t0 = th_now_ms();
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), -PROT_ECHECKOUT_TIMEOUT);
	uint64_t waited = th_now_ms() - t0;
	cr_assert_geq(waited, 45, "the timeout bounds the checkout wait (waited %llu ms)", (unsigned long long)waited);
	cr_assert_lt(waited, 1000);
	cr_assert_eq(d.layer, PROT_LAYER_POOL);
	struct prot_breaker_status b;
	cr_assert_eq(prot_breaker_status(p, "svc", &b), 0);
	cr_assert_eq(b.failures, 0, "tolerance 0 would have tripped on a failure");
	cr_assert_eq(b.state, PROT_BREAKER_CLOSED);
	cr_assert_eq(prot_pool_checkin(p, &lease, PROT_CHECKIN_OK), 0);
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), 0);
	prot_close(p);
	th_protd_stop(pd);
}

static int fn_deadline(const struct prot_call *c)
{
	uint64_t *out = c->arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	*out = c->deadline_ns > now ? (c->deadline_ns - now) / 1000000u : 0;
	return c->conn ? 0 : -1;
}

Test(facade, timeout_is_a_deadline_and_an_overrun_is_a_failure)
{
	pid_t pd;
	const char *seg = start("tmo", 1000, 5, "10s", 64, &pd);
	prot_t *p = attach(seg);
	struct prot_detail d;
	uint64_t left = 0;
	struct prot_call_opts o = {.timeout_ms = 300};
	cr_assert_eq(prot_execute(p, "svc", &o, fn_deadline, &left, &d), 0, "fn gets the pool connection");
	cr_assert(left > 200 && left <= 300, "deadline handed to fn: %llu ms left", (unsigned long long)left);
	o.timeout_ms = 20;
	cr_assert_eq(prot_execute(p, "svc", &o, fn_slow, NULL, &d), -PROT_ETIMEOUT);
	cr_assert_eq(d.layer, PROT_LAYER_CALL);
	struct prot_breaker_status b;
	cr_assert_eq(prot_breaker_status(p, "svc", &b), 0);
	cr_assert_eq(b.failures, 1, "an overrun counts as a breaker failure");
	struct prot_protection_status st;
	cr_assert_eq(prot_get_protection_status(p, "svc", &st), 0);
	cr_assert_eq(st.timeouts, 1);
	cr_assert_eq(st.pool.in_use, 0);
	prot_close(p);
	th_protd_stop(pd);
}

Test(facade, per_call_overrides)
{
	pid_t pd;
	const char *seg = start("ovr", 3, 5, "10s", 64, &pd);
	prot_t *p = attach(seg);
	struct prot_detail d;
	/* cost: 3 units exhaust the limit of 3 at once */
	struct prot_call_opts o = {.entity = "e", .cost = 3, .timeout_ms = -1};
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), 0);
	o.cost = 1;
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), -PROT_ERATELIMITED);
	/* cost over the limit is its own error */
	o.entity = "other", o.cost = 4;
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), -PROT_ECOST);
	/* skipping the rate layer */
	o.entity = "e", o.cost = 1, o.skip = PROT_LAYER_RATE;
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), 0);
	/* skipping the pool: fn gets no connection */
	uint64_t left;
	o.skip = PROT_LAYER_RATE | PROT_LAYER_POOL;
	cr_assert_eq(prot_execute(p, "svc", &o, fn_deadline, &left, &d), -PROT_EFAILED);
	/* skipping the breaker: a blown breaker does not matter */
	cr_assert_eq(prot_breaker_blow(p, "svc"), 0);
	o.skip = PROT_LAYER_RATE | PROT_LAYER_BREAKER;
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), 0);
	o.skip = PROT_LAYER_RATE;
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), -PROT_EBLOWN);
	/* the operation override makes a separate bucket with the key's limits */
	o.skip = PROT_LAYER_BREAKER, o.operation = "other-op";
	for (int i = 0; i < 3; i++)
		cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), 0);
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), -PROT_ERATELIMITED);
	/* unknown key */
	cr_assert_eq(prot_execute(p, "nope", NULL, fn_ok, NULL, &d), -PROT_ENOKEY);
	prot_close(p);
	th_protd_stop(pd);
}

/* Mixed calls from 8 processes: afterwards nothing is held and every call is accounted for. */
struct mix {
	const char *seg;
	_Atomic long outcomes[8];
};

static int fn_mixed(const struct prot_call *c)
{
	unsigned r = (unsigned)(uintptr_t)c->arg;
	if (r % 7 == 0)
		return -1;
	if (r % 53 == 0)
		usleep(3000); /* overruns the 2 ms timeout below */
	return 0;
}

static int mixed_worker(void *arg, int i)
{
	struct mix *m = arg;
	prot_t *p;
	if (prot_open(m->seg, 0, &p) || prot_pool_register(p, "svc", &connector))
		return 1;
	unsigned seed = (unsigned)i * 7919u + 1;
	char ent[16];
	for (int n = 0; n < 1250; n++) {
		seed = seed * 1103515245u + 12345u;
		unsigned r = seed >> 8;
		snprintf(ent, sizeof ent, "u%u", r % 20);
		struct prot_call_opts o = {.entity = ent, .timeout_ms = (r % 53 == 0) ? 2 : 200};
		int rc = prot_execute(p, "svc", &o, fn_mixed, (void *)(uintptr_t)r, NULL);
		int slot = rc == 0 ? 0 : rc == -PROT_ERATELIMITED ? 1 : rc == -PROT_EBLOWN ? 2
		         : rc == -PROT_ECHECKOUT_TIMEOUT ? 3 : rc == -PROT_EFAILED ? 4 : rc == -PROT_ETIMEOUT ? 5 : 6;
		atomic_fetch_add(&m->outcomes[slot], 1);
		if (n % 97 == 0)
			prot_breaker_reset(p, "svc"); /* keep traffic flowing through every layer */
	}
	prot_close(p);
	return 0;
}

Test(facade, no_leaks_after_mixed_calls_from_8_processes, .timeout = 120)
{
	pid_t pd;
	const char *seg = start("mix", 400, 3, "5ms", 4096, &pd);
	struct mix *m = th_shared(sizeof *m);
	m->seg = seg;
	th_fork_n(8, mixed_worker, m, 90000);
	cr_assert_eq(m->outcomes[6], 0, "unexpected error codes");
	prot_t *p = th_open(seg, 1000);
	struct prot_protection_status st;
	cr_assert_eq(prot_get_protection_status(p, "svc", &st), 0);
	cr_assert_eq(st.pool.in_use, 0, "no pool slot leaked");
	cr_assert_eq(st.pool.waiting, 0);
	cr_assert_eq(st.calls, 10000);
	long total = 0;
	for (int i = 0; i < 6; i++)
		total += m->outcomes[i];
	cr_assert_eq(total, 10000);
	cr_assert_eq(st.rate_denied, (uint64_t)m->outcomes[1], "rate denials counted once");
	cr_assert_eq(st.ok, (uint64_t)m->outcomes[0]);
	cr_assert_eq(st.failed, (uint64_t)m->outcomes[4]);
	cr_assert_eq(st.timeouts, (uint64_t)m->outcomes[5]);
	cr_assert_eq(st.rate_allowed, 10000 - (uint64_t)m->outcomes[1], "no charge for denied work");
	/* no half-open probe leaked: after the refresh the breaker admits a probe and closes */
	usleep(20 * 1000);
	cr_assert_eq(prot_execute(p, "svc", &(struct prot_call_opts){.entity = "fresh", .timeout_ms = -1},
	                          fn_ok, NULL, NULL), 0);
	cr_assert_eq(prot_breaker_status(p, "svc", &st.breaker), 0);
	cr_assert_eq(st.breaker.state, PROT_BREAKER_CLOSED);
	prot_close(p);
	th_protd_stop(pd);
}

static bool gen_at_least(void *arg)
{
	void **a = arg;
	struct prot_info info;
	return prot_get_info(a[0], &info) == 0 && info.config_generation >= (uint64_t)(uintptr_t)a[1];
}

static int child_sees_limit(void *arg, int i)
{
	(void)i;
	prot_t *p = arg;
	/* the child attached (through the parent's handle) before the change; limit is now 1 */
	struct prot_call_opts o = {.entity = "cfg", .timeout_ms = -1};
	if (prot_execute(p, "svc", &o, fn_ok, NULL, NULL) != 0)
		return 1;
	return prot_execute(p, "svc", &o, fn_ok, NULL, NULL) == -PROT_ERATELIMITED ? 0 : 2;
}

Test(facade, configure_applies_to_all_and_refuses_bad_values)
{
	pid_t pd;
	const char *seg = start("cfg", 1000, 5, "10s", 64, &pd);
	prot_t *p = attach(seg);
	struct prot_info info;
	cr_assert_eq(prot_get_info(p, &info), 0);
	struct prot_detail d;
	cr_assert_eq(prot_configure(p, "svc", "rate_limit=1 breaker_tolerance=2", &d), 0, "%s", d.message);
	cr_assert(strstr(d.message, "rate_limit"), "the reply says what changed: %s", d.message);
	void *a[2] = {p, (void *)(uintptr_t)(info.config_generation + 1)};
	cr_assert(th_until(gen_at_least, a, 2000));
	th_fork_n(1, child_sees_limit, p, 10000);
	struct prot_breaker_status b;
	cr_assert_eq(prot_breaker_status(p, "svc", &b), 0);
	cr_assert_eq(b.opts.tolerance, 2);

	/* a bad value: the INI parser's message, nothing applied */
	int r = prot_configure(p, "svc", "rate_window=12parsecs", &d);
	cr_assert_eq(r, -PROT_EINVAL_CONFIG);
	cr_assert(strstr(d.message, "rate_window"), "message names the setting: %s", d.message);
	cr_assert_eq(prot_configure(p, "svc", "no_such_setting=1", &d), -PROT_EINVAL_CONFIG);
	cr_assert_eq(prot_breaker_status(p, "svc", &b), 0);
	cr_assert_eq(b.opts.tolerance, 2);

	/* the same through protctl: what changed on stdout, the parser's message on stderr */
	struct th_out o;
	cr_assert_eq(th_protctl(&o, seg, "set", "svc", "breaker_tolerance=3", NULL), 0, "%s", o.err);
	cr_assert(strstr(o.out, "breaker_tolerance: 2 -> 3"), "%s", o.out);
	cr_assert_eq(th_protctl(&o, seg, "set", "svc", "rate_window=-5s", NULL), 1);
	cr_assert(strstr(o.err, "rate_window"), "%s", o.err);
	cr_assert_eq(th_protctl(&o, seg, "set", "svc", "novalue", NULL), 2);
	cr_assert_eq(th_protctl(&o, seg, "--json", "set", "svc", "breaker_tolerance=2", NULL), 0, "%s", o.err);
	cr_assert(strstr(o.out, "\"changes\":[{\"kind\":\"breaker\",\"name\":\"svc\",\"option\":\"tolerance\","
	                        "\"setting\":\"breaker_tolerance\",\"old\":\"3\",\"new\":\"2\",\"changed\":true}]"),
	          "%s", o.out);

	/* runtime keys appear in the list */
	cr_assert_eq(prot_configure(p, "fresh", "rate_limit=5 rate_window=1s", &d), 0, "%s", d.message);
	struct prot_protection_status st;
	a[1] = (void *)(uintptr_t)(info.config_generation + 4);
	cr_assert(th_until(gen_at_least, a, 2000));
	cr_assert_eq(prot_get_protection_status(p, "fresh", &st), 0);
	cr_assert_eq(st.rate.limit, 5);

	/* a caller that is neither root, the owner nor in the group is refused */
	if (geteuid() == 0) {
		struct passwd *nobody = getpwnam("nobody");
		cr_assert(nobody);
		pid_t c = fork();
		if (c == 0) {
			if (setgid(nobody->pw_gid) || setuid(nobody->pw_uid))
				_exit(3);
			struct prot_detail dd;
			_exit(prot_configure(p, "svc", "rate_limit=9", &dd) == -EACCES ? 0 : 1);
		}
		int stt;
		cr_assert_eq(th_wait(c, 5000, &stt), 0);
		cr_assert(WIFEXITED(stt) && WEXITSTATUS(stt) == 0, "unprivileged configure must get -EACCES");
	}
	prot_close(p);
	th_protd_stop(pd);
}

static int list_cb(const char *name, void *arg)
{
	char *buf = arg;
	strcat(buf, name);
	strcat(buf, ",");
	return 0;
}

Test(facade, status_and_list)
{
	pid_t pd;
	const char *seg = start("st", 10, 4, "10s", 64, &pd);
	prot_t *p = attach(seg);
	char names[256] = "";
	cr_assert_eq(prot_list_keys(p, list_cb, names), 0);
	cr_assert(strstr(names, "svc,") && strstr(names, "plain,"), "keys: %s", names);
	struct prot_protection_status st;
	cr_assert_eq(prot_execute(p, "svc", &(struct prot_call_opts){.entity = "a", .timeout_ms = -1}, fn_ok,
	                          NULL, NULL), 0);
	cr_assert_eq(prot_get_protection_status(p, "svc", &st), 0);
	cr_assert(st.has_rate && st.has_breaker && st.has_pool);
	cr_assert_eq(st.rate.limit, 10);
	cr_assert_eq(st.rate.window_ms, 60000);
	cr_assert_eq(st.rate_buckets, 1);
	cr_assert_eq(st.breaker.opts.tolerance, 4);
	cr_assert_eq(st.breaker.state, PROT_BREAKER_CLOSED);
	cr_assert_eq(st.pool.size, 1);
	cr_assert_eq(st.timeout_ms, 1000);
	cr_assert_eq(st.calls, 1);
	cr_assert_eq(prot_get_protection_status(p, "plain", &st), 0);
	cr_assert(!st.has_rate && !st.has_breaker && !st.has_pool);
	cr_assert_eq(prot_execute(p, "plain", NULL, fn_ok, NULL, NULL), 0, "a key without layers just calls");
	cr_assert_eq(prot_get_protection_status(p, "missing", &st), -PROT_ENOKEY);

	struct th_out o;
	cr_assert_eq(th_protctl(&o, seg, "status", "svc", NULL), 0, "%s", o.err);
	cr_assert(strstr(o.out, "svc"));
	cr_assert_eq(th_protctl(&o, seg, "stats", "svc", NULL), 0, "%s", o.err);
	cr_assert(strstr(o.out, "calls 1"), "%s", o.out);
	prot_close(p);
	th_protd_stop(pd);
}

Test(facade, every_error_code_has_its_own_string)
{
	static const int codes[] = {
		PROT_ENOSEG, PROT_EABI, PROT_ESIZE, PROT_ECORRUPT, PROT_ERETIRED, PROT_ENOKEY,
		PROT_ENOBREAKER, PROT_ENOPOOL, PROT_ERATELIMITED, PROT_ECOST, PROT_ETABLEFULL, PROT_EBLOWN,
		PROT_EFAILED, PROT_ECHECKOUT_TIMEOUT, PROT_EPOOLFULL, PROT_ETIMEOUT, PROT_ETOOLONG,
		PROT_ECAPACITY, PROT_EEXIST, PROT_EINVAL_CONFIG, PROT_ECONNECTOR, PROT_ESTALE,
		PROT_ENOTCONNECTED,
	};
	const size_t n = sizeof codes / sizeof codes[0];
	for (size_t i = 0; i < n; i++) {
		const char *s = prot_strerror(-codes[i]);
		cr_assert(s && *s);
		cr_assert_str_eq(s, prot_strerror(codes[i]), "either sign names the same error");
		cr_assert_null(strstr(s, "nknown"), "code %d has a string of its own", codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(s, prot_strerror(-codes[j]), "codes %d and %d share a string", codes[i], codes[j]);
	}
	cr_assert(strstr(prot_strerror(-EACCES), "ermission"));
	cr_assert_not_null(prot_strerror(123456));
	cr_assert_eq(PROT_ENOSEG, 5000, "error numbers are ABI");
	cr_assert_eq(PROT_ENOTCONNECTED, 5022, "error numbers are ABI");
}

struct seen {
	int n[PROT_TEL_COUNT_];
	char key[32], entity[32];
	unsigned layer;
	int result;
	uint64_t duration;
};

static void handler(const struct prot_tel *ev, void *ctx)
{
	struct seen *s = ctx;
	s->n[ev->event]++;
	if (ev->event == PROT_TEL_PROTECTION_TRIGGERED) {
		snprintf(s->key, sizeof s->key, "%s", ev->key ? ev->key : "");
		snprintf(s->entity, sizeof s->entity, "%s", ev->entity ? ev->entity : "");
		s->layer = ev->layer;
		s->result = ev->result;
	}
	if (ev->event == PROT_TEL_EXECUTE_STOP)
		s->duration = ev->duration_ns;
}

Test(facade, telemetry_handlers_receive_events_and_metadata)
{
	pid_t pd;
	const char *seg = start("tel", 1, 5, "10s", 64, &pd);
	prot_t *p = attach(seg);
	struct seen s = {0};
	int id = prot_telemetry_attach(p, PROT_TEL_ALL, handler, &s);
	cr_assert_geq(id, 0);
	struct prot_call_opts o = {.entity = "user:9", .timeout_ms = -1};
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, NULL), 0);
	cr_assert_eq(s.n[PROT_TEL_EXECUTE_START], 1);
	cr_assert_eq(s.n[PROT_TEL_EXECUTE_STOP], 1);
	cr_assert_gt(s.duration, 0);
	cr_assert_eq(s.n[PROT_TEL_POOL_CHECKOUT], 1, "the layers report too");
	cr_assert_eq(s.n[PROT_TEL_POOL_CHECKIN], 1);
	cr_assert_eq(s.n[PROT_TEL_BREAKER_EXECUTED], 1);
	cr_assert_eq(s.n[PROT_TEL_RATE_ALLOWED], 1);
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, NULL), -PROT_ERATELIMITED);
	cr_assert_eq(s.n[PROT_TEL_PROTECTION_TRIGGERED], 1);
	cr_assert_eq(s.n[PROT_TEL_RATE_DENIED], 1);
	cr_assert_str_eq(s.key, "svc");
	cr_assert_str_eq(s.entity, "user:9");
	cr_assert_eq(s.layer, PROT_LAYER_RATE);
	cr_assert_eq(s.result, -PROT_ERATELIMITED);
	o.entity = "user:10";
	cr_assert_eq(prot_execute(p, "svc", &o, fn_fail, NULL, NULL), -PROT_EFAILED);
	cr_assert_eq(s.n[PROT_TEL_EXECUTE_EXCEPTION], 1);
	/* tolerance 5: five more failures trip the breaker: a state change, then a rejection */
	for (int i = 0; i < 5; i++) {
		char e[16];
		snprintf(e, sizeof e, "trip:%d", i);
		o.entity = e;
		prot_execute(p, "svc", &o, fn_fail, NULL, NULL);
	}
	cr_assert_geq(s.n[PROT_TEL_BREAKER_STATE_CHANGED], 1);
	o.entity = "after";
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, NULL), -PROT_EBLOWN);
	cr_assert_eq(s.n[PROT_TEL_BREAKER_REJECTED], 1);
	cr_assert_eq(prot_breaker_reset(p, "svc"), 0);
	struct prot_breaker_opts bo = {.tolerance = 2, .window_ms = 1000, .refresh_ms = 1000};
	cr_assert_eq(prot_breaker_create(p, "made", &bo), 0);
	cr_assert_eq(s.n[PROT_TEL_BREAKER_CREATED], 1);

	/* only the events in the mask, and nothing after detach */
	struct seen only = {0};
	int id2 = prot_telemetry_attach(p, PROT_TEL_MASK(PROT_TEL_EXECUTE_STOP), handler, &only);
	cr_assert_geq(id2, 0);
	o.entity = "user:11";
	prot_execute(p, "svc", &o, fn_ok, NULL, NULL);
	cr_assert_eq(only.n[PROT_TEL_EXECUTE_STOP], 1);
	cr_assert_eq(only.n[PROT_TEL_EXECUTE_START], 0);
	cr_assert_eq(prot_telemetry_detach(p, id), 0);
	cr_assert_eq(prot_telemetry_detach(p, id), -ENOENT);
	int before = s.n[PROT_TEL_EXECUTE_START];
	o.entity = "user:12";
	prot_execute(p, "svc", &o, fn_ok, NULL, NULL);
	cr_assert_eq(s.n[PROT_TEL_EXECUTE_START], before);
	cr_assert_eq(prot_telemetry_attach(p, 0, handler, &s), -EINVAL);
	prot_close(p);
	th_protd_stop(pd);
}

Test(facade, promtool_accepts_the_metrics)
{
	if (access("/usr/bin/promtool", X_OK) != 0)
		cr_skip_test("promtool (Debian package prometheus) is not installed");
	pid_t pd;
	const char *seg = start("prom", 5, 5, "10s", 64, &pd);
	prot_t *p = attach(seg);
	for (int i = 0; i < 8; i++)
		prot_execute(p, "svc", &(struct prot_call_opts){.entity = "m", .timeout_ms = -1},
		             i % 3 ? fn_ok : fn_fail, NULL, NULL);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "'%s' --segment '%s' metrics | /usr/bin/promtool check metrics",
	         th_protctl_path(), seg);
	struct th_out o;
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	cr_assert_eq(th_run(&o, 20000, argv), 0, "promtool: %s %s", o.out, o.err);
	struct th_out m;
	cr_assert_eq(th_protctl(&m, seg, "metrics", NULL), 0);
	cr_assert(strstr(m.out, "prot_calls_total{key=\"svc\"} 8"), "%s", m.out);
	cr_assert(strstr(m.out, "prot_call_duration_seconds_bucket{key=\"svc\",le=\"+Inf\"} 5"), "%s", m.out);
	cr_assert(strstr(m.out, "# TYPE prot_call_duration_seconds histogram"));
	prot_close(p);
	th_protd_stop(pd);
}

/* Parse `protctl events` text: each line opens with the event's sequence number. Returns the
 * number of event lines; *first and *last get the first and last sequence numbers, *last_type
 * the last line's type column. Fails the test on a gap in the numbering. */
static int event_lines(const char *out, uint64_t *first, uint64_t *last, char *last_type, size_t n)
{
	int lines = 0;
	for (const char *s = out; *s; ) {
		const char *eol = strchr(s, '\n');
		unsigned long long seq;
		if (sscanf(s, "%llu", &seq) == 1) {
			cr_assert(!lines || seq == *last + 1, "events %llu and %llu are not consecutive:\n%s",
			          (unsigned long long)*last, seq, out);
			if (!lines)
				*first = seq;
			*last = seq;
			const char *t = strstr(s, " ago ");
			cr_assert(t && (!eol || t < eol), "no type column in: %s", s);
			char fmt[16];
			snprintf(fmt, sizeof fmt, " %%%zus", n - 1);
			sscanf(t + 5, fmt, last_type);
			lines++;
		}
		if (!eol)
			break;
		s = eol + 1;
	}
	return lines;
}

Test(facade, event_ring_survives_overflow)
{
	pid_t pd;
	const char *seg = start("ev", 5, 5, "10s", 16, &pd);
	prot_t *p = attach(seg);
	/* 40 state changes into a ring of 16: the oldest are overwritten, writers never block */
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(prot_breaker_blow(p, "svc"), 0);
		cr_assert_eq(prot_breaker_enable(p, "svc"), 0);
	}
	struct th_out o;
	cr_assert_eq(th_protctl(&o, seg, "events", NULL), 0, "%s", o.err);
	uint64_t first = 0, last = 0;
	char type[64] = "";
	int lines = event_lines(o.out, &first, &last, type, sizeof type);
	cr_assert_eq(lines, 16, "the ring shows exactly its capacity after overflow:\n%s", o.out);
	cr_assert_geq(first, 24, "at least 24 of the 40 changes were overwritten:\n%s", o.out);
	cr_assert_str_eq(type, "breaker_closed", "the newest event is the last enable:\n%s", o.out);
	char want[64];
	snprintf(want, sizeof want, "\"overwritten\": %llu}", (unsigned long long)first);
	cr_assert_eq(th_protctl(&o, seg, "--json", "events", NULL), 0, "%s", o.err);
	cr_assert(strstr(o.out, want), "the JSON counts the %llu overwritten events: %s",
	          (unsigned long long)first, o.out);
	/* the ring keeps working after overflow: the next change is the next number */
	cr_assert_eq(prot_breaker_blow(p, "svc"), 0);
	cr_assert_eq(th_protctl(&o, seg, "events", NULL), 0);
	uint64_t last0 = last;
	cr_assert_eq(event_lines(o.out, &first, &last, type, sizeof type), 16, "%s", o.out);
	cr_assert_eq(last, last0 + 1, "%s", o.out);
	cr_assert_str_eq(type, "breaker_blown", "%s", o.out);
	prot_close(p);
	th_protd_stop(pd);
}

/* timeout_ms = 0 is "do not wait" for the library's waits (the checkout), not a zero deadline for
 * the call: a fast success is a success and no breaker failure; a busy pool refuses at once. */
Test(facade, timeout_zero_waits_for_nothing_and_a_fast_call_succeeds)
{
	pid_t pd;
	const char *seg = start("tmo0", 1000, 5, "10s", 64, &pd);
	prot_t *p = attach(seg);
	struct prot_call_opts o = {.entity = "user:1", .timeout_ms = 0};
	struct prot_detail d;
	for (int i = 0; i < 20; i++) {
		int r = prot_execute(p, "svc", &o, fn_ok, NULL, &d);
		cr_assert_eq(r, 0, "call %d: %s (%s)", i, prot_strerror(r), d.message);
		cr_assert_eq(d.fn_result, 7);
	}
	struct prot_breaker_status b;
	cr_assert_eq(prot_breaker_status(p, "svc", &b), 0);
	cr_assert_eq(b.failures, 0, "successes recorded as failures");
	cr_assert_eq(b.successes, 20);

	/* the one pool slot taken: a zero timeout does not queue */
	prot_lease lease;
	void *conn;
	cr_assert_eq(prot_pool_checkout(p, "svc", 0, &lease, &conn), 0);
	uint64_t t0 = th_now_ms();
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), -PROT_ECHECKOUT_TIMEOUT);
	cr_assert_lt(th_now_ms() - t0, 200, "waited %llu ms", (unsigned long long)(th_now_ms() - t0));
	cr_assert_eq(prot_pool_checkin(p, &lease, PROT_CHECKIN_OK), 0);
	prot_close(p);
	th_protd_stop(pd);
}

/* What a decision would refuse later is refused now, by protd's validator, with a message; and a
 * breaker is never made from options this side cannot name. */
Test(facade, configure_and_breaker_create_refuse_what_the_library_cannot_enforce)
{
	pid_t pd;
	const char *seg = start("lim", 1000, 5, "10s", 64, &pd);
	prot_t *p = attach(seg);
	struct prot_detail d;
	/* svc is a fixed window: its count has 24 bits */
	cr_assert_eq(prot_configure(p, "svc", "rate_limit=16777216", &d), -PROT_EINVAL_CONFIG);
	cr_assert(strstr(d.message, "2^24"), "%s", d.message);
	cr_assert_eq(prot_configure(p, "svc", "rate_window=68719476737ms", &d), -PROT_EINVAL_CONFIG);
	cr_assert(strstr(d.message, "rate_window"), "%s", d.message);
	cr_assert_eq(prot_configure(p, "svc", "breaker_tolerance=128", &d), -PROT_EINVAL_CONFIG);
	cr_assert(strstr(d.message, "tolerance"), "%s", d.message);
	cr_assert_eq(prot_configure(p, "svc", "rate_limit=16777215", &d), 0, "%s", d.message);
	struct prot_call_opts o = {.entity = "user:2", .timeout_ms = -1};
	cr_assert_eq(prot_execute(p, "svc", &o, fn_ok, NULL, &d), 0, "%s", d.message);

	struct prot_breaker_opts bo = {.strategy = 7, .tolerance = 2, .window_ms = 1000, .refresh_ms = 1000};
	struct prot_breaker_status b;
	cr_assert_eq(prot_breaker_create(p, "odd", &bo), -EINVAL);
	cr_assert_lt(prot_breaker_status(p, "odd", &b), 0, "a breaker was made anyway");
	bo.strategy = PROT_BREAKER_STANDARD;
	bo.tolerance = 128;
	cr_assert_eq(prot_breaker_create(p, "odd", &bo), -PROT_EINVAL_CONFIG);
	bo.tolerance = 2;
	bo.window_ms = 0;
	cr_assert_eq(prot_breaker_create(p, "odd", &bo), -PROT_EINVAL_CONFIG);
	cr_assert_lt(prot_breaker_status(p, "odd", &b), 0);
	bo.window_ms = 1000;
	cr_assert_eq(prot_breaker_create(p, "odd", &bo), 0);
	cr_assert_eq(prot_breaker_status(p, "odd", &b), 0);
	prot_close(p);
	th_protd_stop(pd);
}

/* The rate layer takes the key's own settings whether or not opts->operation names the buckets.
 * GCRA at 1 per hour: a bucket's word is the decision's clock reading + 1 h, and no bucket expires
 * while the test runs. rate_entities = 32: one group, full after 32 entities. */
#define INI_KEYS                                                                                   \
	"[segment]\nmax_keys = 8\nmax_breakers = 1\nmax_pools = 1\nrate_entities = 32\nevents = 64\n" \
	"[key full]\nrate_limit = 1\nrate_window = 1h\nrate_algorithm = gcra\nrate_on_full = allow\n" \
	"[key coarse]\nrate_limit = 1\nrate_window = 1h\nrate_algorithm = gcra\nrate_clock = coarse\n" \
	"[key mono]\nrate_limit = 1\nrate_window = 1h\nrate_algorithm = gcra\nrate_clock = monotonic\n"

static uint64_t key_table_full(prot_t *p, const char *key)
{
	struct prot_protection_status st;
	cr_assert_eq(prot_get_protection_status(p, key, &st), 0);
	return st.rate_table_full;
}

Test(facade, operation_override_keeps_the_keys_rate_on_full_and_its_counter)
{
	const char *seg, *ini;
	prot_t *p;
	pid_t pd = th_serve("full", INI_KEYS, &seg, &ini, &p);
	struct counter k = {0};
	char ent[16];
	for (int i = 0; i < 32; i++) {
		snprintf(ent, sizeof ent, "e%d", i);
		cr_assert_eq(prot_rate_check_key(p, "full", ent, 1, NULL), 1);
	}
	cr_assert_eq(prot_rate_check_key(p, "full", "new0", 1, NULL), 1, "allow: admitted, no bucket");
	cr_assert_eq(key_table_full(p, "full"), 1);
	struct prot_call_opts o = {.entity = "new1", .timeout_ms = -1};
	struct prot_detail d;
	cr_assert_eq(prot_execute(p, "full", &o, fn_ok, &k, &d), 0, "layer %u", d.layer);
	cr_assert_eq(key_table_full(p, "full"), 2);
	o.entity = "new2", o.operation = "other-op";
	int r = prot_execute(p, "full", &o, fn_ok, &k, &d);
	cr_assert_eq(r, 0, "with an operation: %d (layer %u): the key's rate_on_full = allow", r, d.layer);
	cr_assert_eq(key_table_full(p, "full"), 3, "counted on the key as without an operation");
	cr_assert_eq(atomic_load(&k.calls), 2);
	th_unserve(p, pd);
}

/* The word of op's bucket for entity (GCRA: the decision's clock reading + T). */
struct word_arg {
	const char *entity;
	uint64_t word;
	int found;
};
static int word_cb(const struct rate_view *v, void *arg)
{
	struct word_arg *w = arg;
	if (strcmp(v->entity, w->entity) == 0)
		w->word = v->word, w->found++;
	return 0;
}
static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One decision for a new entity of key, through the path `how` (0 prot_rate_check_key, 1
 * prot_execute, 2 prot_execute with an operation): the clock reading it decided on, bracketed by
 * CLOCK_MONOTONIC before it and CLOCK_MONOTONIC_COARSE after it. */
static uint64_t decision_clock(prot_t *p, const char *key, int how, int i, uint64_t *mono_before,
                               uint64_t *coarse_after)
{
	char ent[32];
	snprintf(ent, sizeof ent, "%s-%d-%d", key, how, i); /* new for every call, in any bucket */
	const char *op = how == 2 ? "clk-op" : NULL;
	struct prot_call_opts o = {.entity = ent, .timeout_ms = -1, .operation = op};
	*mono_before = clock_ns(CLOCK_MONOTONIC);
	int r = how == 0 ? prot_rate_check_key(p, key, ent, 1, NULL) - 1
	                 : prot_execute(p, key, &o, fn_ok, NULL, NULL);
	*coarse_after = clock_ns(CLOCK_MONOTONIC_COARSE);
	cr_assert_eq(r, 0, "%s path %d: %d", key, how, r);
	struct word_arg w = {.entity = ent};
	rate_foreach(prot_hdr(p), op ? op : key, word_cb, &w);
	cr_assert_eq(w.found, 1);
	return w.word - 3600000ull * 1000000u; /* T = 1 h */
}

Test(facade, every_rate_path_decides_on_the_keys_rate_clock)
{
	const char *seg, *ini;
	prot_t *p;
	pid_t pd = th_serve("clock", INI_KEYS, &seg, &ini, &p);
	uint64_t before, after;
	/* a coarse reading is at most the coarse clock after the call, and (but for a clock tick in
	 * the call's microsecond, hence several tries) below the precise clock before it */
	for (int how = 0; how < 3; how++) {
		int below = 0;
		for (int i = 0; i < 4; i++) {
			uint64_t t = decision_clock(p, "coarse", how, i, &before, &after);
			cr_assert_leq(t, after, "path %d: decided on a clock ahead of the coarse clock", how);
			below += t < before;
		}
		cr_assert_gt(below, 0, "path %d: never behind the precise clock: not the coarse clock", how);
		for (int i = 0; i < 4; i++)
			cr_assert_geq(decision_clock(p, "mono", how, i, &before, &after), before,
			              "path %d: decided on a clock behind CLOCK_MONOTONIC", how);
	}
	th_unserve(p, pd);
}
