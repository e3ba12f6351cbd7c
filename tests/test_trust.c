/* test_trust.c — the segment as untrusted input and the library's gates: a writer that died
 * mid-write (an odd sequence counter), tampered header words, NULL arguments and read-only handles
 * on every public function, and one applied configuration per call. Real protd, real processes,
 * every wait bounded.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

static const char ini_text[] = "[segment]\nmax_keys = 8\nmax_breakers = 4\nmax_pools = 2\n"
                               "pool_max_slots = 8\npool_max_waiters = 8\nrate_entities = 256\n"
                               "events = 64\n\n[daemon]\ntick = 10ms\n\n"
                               "[key k]\nrate_limit = 1000\nrate_window = 1s\nbreaker = b\npool = db\n\n"
                               "[breaker b]\ntolerance = 3\nwindow = 1s\nrefresh = 1s\n\n"
                               "[pool db]\nsize = 2\nmax_overflow = 0\n";

/* A read-write mapping of the served segment, as a hostile group member would have it (with this
 * process's private geometry, so that the test can find slots whatever it writes). */
struct raw {
	struct prot_shm_header *h;
	size_t size;
};

static struct raw raw_map(const char *seg)
{
	int fd = shm_open(seg, O_RDWR, 0);
	cr_assert(fd >= 0, "shm_open %s: %s", seg, strerror(errno));
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	struct raw r = { NULL, (size_t)st.st_size };
	cr_assert_eq(seg_map(fd, r.size, false, &r.h), 0);
	close(fd);
	cr_assert_eq(seg_take_geometry(r.h, r.size), 0);
	return r;
}

static _Atomic uint32_t *seq_of(struct prot_shm_header *h, int reg, const char *name)
{
	int i = seg_find(h, reg, name);
	cr_assert_geq(i, 0, "%s not found", name);
	return &((struct prot_named *)seg_entry(h, reg, (uint32_t)i))->seq;
}

static int fn_ok(const struct prot_call *c)
{
	(void)c;
	return 0;
}

/* ---- 2. bounded reads -------------------------------------------------------------------------- */

Test(trust, an_odd_sequence_counter_hangs_nobody, .timeout = 30)
{
	const char *seg, *ini;
	prot_t *p;
	pid_t protd = th_serve("odd", ini_text, &seg, &ini, &p);
	struct raw r = raw_map(seg);
	/* what a protd killed between seq_write_begin and seq_write_end leaves */
	_Atomic uint32_t *ks = seq_of(r.h, REG_KEYS, "k"), *bs = seq_of(r.h, REG_BREAKERS, "b"),
	                 *ps = seq_of(r.h, REG_POOLS, "db");
	atomic_fetch_or(ks, 1u);
	atomic_fetch_or(bs, 1u);
	atomic_fetch_or(ps, 1u);

	uint64_t t0 = th_now_ms();
	cr_expect_eq(prot_rate_check_key(p, "k", "u", 1, NULL), -PROT_ETORN);
	struct prot_detail d;
	cr_expect_eq(prot_execute(p, "k", NULL, fn_ok, NULL, &d), -PROT_ETORN);
	struct prot_protection_status ps_out;
	cr_expect_eq(prot_get_protection_status(p, "k", &ps_out), -PROT_ETORN);
	struct prot_breaker_status bst;
	cr_expect_eq(prot_breaker_status(p, "b", &bst), -PROT_ETORN);
	prot_lease l;
	cr_expect_eq(prot_pool_checkout(p, "db", 0, &l, NULL), -PROT_ETORN);
	uint64_t took = th_now_ms() - t0;
	cr_expect_lt(took, 1000, "five reads of torn blocks took %llu ms", (unsigned long long)took);

	struct th_out o;
	t0 = th_now_ms();
	th_protctl(&o, seg, "status", "k", NULL);
	cr_expect_lt(th_now_ms() - t0, 1500, "protctl status must not spin");
	cr_expect_neq(o.code, 0, "a torn key is an error, not a hang");

	/* a new protd re-adopts the segment, repairs the counters and serves again (the segment stays
	 * attachable throughout: wait for the repair itself, bounded) */
	th_kill9(protd);
	t0 = th_now_ms();
	protd = th_protd_start(ini, seg, NULL);
	while (!(atomic_load(ks) % 2 == 0 && atomic_load(bs) % 2 == 0 && atomic_load(ps) % 2 == 0) &&
	       th_now_ms() - t0 < 5000)
		usleep(1000);
	cr_expect(atomic_load(ks) % 2 == 0 && atomic_load(bs) % 2 == 0 && atomic_load(ps) % 2 == 0,
	          "protd repaired the odd counters");
	cr_expect_lt(th_now_ms() - t0, 1500, "the new protd took %llu ms", (unsigned long long)(th_now_ms() - t0));
	cr_expect_geq(prot_rate_check_key(p, "k", "u", 1, NULL), 0);
	cr_expect_eq(prot_execute(p, "k", NULL, fn_ok, NULL, &d), 0);
	cr_expect_eq(th_protctl(&o, seg, "status", "k", NULL), 0, "%s", o.err);
	seg_unmap(r.h, r.size);
	th_unserve(p, protd); /* SIGTERM still stops it: exit 0 */
}

/* ---- 7. one gate per entry point ---------------------------------------------------------------------- */

static int cb_name(const char *name, void *arg)
{
	(void)name;
	(void)arg;
	return 0;
}
static int cb_void(void *arg)
{
	(void)arg;
	return 0;
}
static int cb_conn(void *conn, void *arg)
{
	(void)conn;
	(void)arg;
	return 0;
}
static void cb_tel(const struct prot_tel *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
}
static int conn_make(void *ctx, void **conn)
{
	(void)ctx;
	*conn = NULL;
	return 0;
}
static void conn_free(void *ctx, void *conn)
{
	(void)ctx;
	(void)conn;
}

/* Every public function, called with a NULL handle, with each required pointer NULL, and (for the
 * ones that write) on a read-only handle: an error code every time, never a crash. */
Test(trust, every_public_function_validates_its_arguments_and_the_handle_mode, .timeout = 30)
{
	const char *seg, *ini;
	prot_t *p;
	pid_t protd = th_serve("gate", ini_text, &seg, &ini, &p);
	prot_t *ro;
	cr_assert_eq(prot_open(seg, PROT_OPEN_RDONLY, &ro), 0);
	struct prot_rate_limit lim = { .algo = PROT_RATE_FIXED_WINDOW, .limit = 10, .window_ms = 1000 };
	struct prot_rate_info ri;
	struct prot_rate_status rs;
	struct prot_breaker_opts bo = { .tolerance = 1, .window_ms = 1000, .refresh_ms = 1000 };
	struct prot_breaker_status bs;
	struct prot_pool_status pst;
	struct prot_protection_status kst;
	struct prot_info info;
	struct prot_detail d;
	prot_breaker_token tok = {{0}};
	prot_lease lease = {{0}};
	struct prot_connector cn = { .create = conn_make, .destroy = conn_free };
	struct prot_pool_opts po = { .size = 1 };
	size_t nh = 0;
	int res;

	/* NULL handle: -EINVAL */
	const int null_handle[] = {
		prot_get_info(NULL, &info),
		prot_rate_check(NULL, "op", "e", 1, 1000, &ri),
		prot_rate_check_n(NULL, "op", "e", &lim, 1, &ri),
		prot_rate_check_key(NULL, "k", "e", 1, &ri),
		prot_rate_execute(NULL, "op", "e", &lim, cb_void, NULL, &res, &ri),
		prot_rate_status(NULL, "op", "e", &lim, &ri),
		prot_rate_reset(NULL, "op", "e"),
		prot_rate_check_bin(NULL, "op", "e", 1, &lim, 1, &ri),
		prot_rate_check_key_bin(NULL, "k", "e", 1, 1, &ri),
		prot_rate_execute_bin(NULL, "op", "e", 1, &lim, 1, cb_void, NULL, &res, &ri),
		prot_rate_status_bin(NULL, "op", "e", 1, &lim, &rs),
		prot_rate_status_key(NULL, "k", "e", 1, &rs),
		prot_rate_reset_bin(NULL, "op", "e", 1),
		prot_breaker_create(NULL, "x", &bo),
		prot_breaker_execute(NULL, "b", cb_void, NULL, &res),
		prot_breaker_allow(NULL, "b", &tok),
		prot_breaker_record(NULL, &tok, PROT_OUTCOME_SUCCESS, 0),
		prot_breaker_status(NULL, "b", &bs),
		prot_breaker_reset(NULL, "b"),
		prot_breaker_blow(NULL, "b"),
		prot_pool_register(NULL, "db", &cn),
		prot_pool_checkout(NULL, "db", 0, &lease, NULL),
		prot_pool_checkin(NULL, &lease, PROT_CHECKIN_OK),
		prot_pool_with(NULL, "db", 0, cb_conn, NULL, &res),
		prot_pool_status(NULL, "db", &pst),
		prot_pool_holders(NULL, "db", NULL, 0, &nh),
		prot_pool_create(NULL, "x", &po),
		prot_pool_remove(NULL, "x"),
		prot_execute(NULL, "k", NULL, fn_ok, NULL, &d),
		prot_configure(NULL, "k", "rate_limit=5", &d),
		prot_get_protection_status(NULL, "k", &kst),
		prot_telemetry_attach(NULL, PROT_TEL_ALL, cb_tel, NULL),
		prot_telemetry_detach(NULL, 0),
		prot_list_keys(NULL, cb_name, NULL),
		prot_list_breakers(NULL, cb_name, NULL),
		prot_list_pools(NULL, cb_name, NULL),
		prot_open("/x", 0, NULL),
		prot_open("no-slash", 0, &ro),
	};
	for (size_t i = 0; i < sizeof null_handle / sizeof null_handle[0]; i++)
		cr_expect_eq(null_handle[i], -EINVAL, "NULL handle, call %zu: %d", i, null_handle[i]);
	prot_close(NULL);
	cr_expect(strlen(prot_strerror(-PROT_ETORN)) > 0 && strlen(prot_strerror(123456)) > 0);

	/* NULL required arguments on a good handle: -EINVAL */
	const int null_arg[] = {
		prot_get_info(p, NULL),
		prot_rate_check(p, NULL, "e", 1, 1000, &ri),
		prot_rate_check(p, "op", NULL, 1, 1000, &ri),
		prot_rate_check_n(p, "op", "e", NULL, 1, &ri),
		prot_rate_check_key(p, NULL, "e", 1, &ri),
		prot_rate_execute(p, "op", "e", &lim, NULL, NULL, &res, &ri),
		prot_rate_status(p, "op", "e", &lim, NULL),
		prot_rate_status(p, "op", "e", NULL, &ri),
		prot_rate_reset(p, NULL, "e"),
		prot_rate_check_bin(p, NULL, "e", 1, &lim, 1, &ri),
		prot_rate_check_bin(p, "op", NULL, 1, &lim, 1, &ri),
		prot_rate_check_bin(p, "op", "e", 1, NULL, 1, &ri),
		prot_rate_check_key_bin(p, NULL, "e", 1, 1, &ri),
		prot_rate_check_key_bin(p, "k", NULL, 1, 1, &ri),
		prot_rate_execute_bin(p, "op", "e", 1, &lim, 1, NULL, NULL, &res, &ri),
		prot_rate_status_bin(p, "op", "e", 1, &lim, NULL),
		prot_rate_status_bin(p, "op", "e", 1, NULL, &rs),
		prot_rate_status_key(p, NULL, "e", 1, &rs),
		prot_rate_status_key(p, "k", "e", 1, NULL),
		prot_rate_reset_bin(p, NULL, "e", 1),
		prot_rate_reset_bin(p, "op", NULL, 1),
		prot_breaker_create(p, NULL, &bo),
		prot_breaker_create(p, "x", NULL),
		prot_breaker_execute(p, NULL, cb_void, NULL, &res),
		prot_breaker_execute(p, "b", NULL, NULL, &res),
		prot_breaker_allow(p, "b", NULL),
		prot_breaker_allow(p, NULL, &tok),
		prot_breaker_record(p, NULL, PROT_OUTCOME_SUCCESS, 0),
		prot_breaker_status(p, "b", NULL),
		prot_breaker_status(p, NULL, &bs),
		prot_breaker_reset(p, NULL),
		prot_breaker_blow(p, NULL),
		prot_pool_register(p, NULL, &cn),
		prot_pool_register(p, "db", NULL),
		prot_pool_checkout(p, NULL, 0, &lease, NULL),
		prot_pool_checkout(p, "db", 0, NULL, NULL),
		prot_pool_checkin(p, NULL, PROT_CHECKIN_OK),
		prot_pool_with(p, NULL, 0, cb_conn, NULL, &res),
		prot_pool_with(p, "db", 0, NULL, NULL, &res),
		prot_pool_status(p, NULL, &pst),
		prot_pool_status(p, "db", NULL),
		prot_pool_holders(p, NULL, NULL, 0, &nh),
		prot_pool_holders(p, "db", NULL, 0, NULL),
		prot_pool_holders(p, "db", NULL, 1, &nh),
		prot_pool_create(p, NULL, &po),
		prot_pool_create(p, "x", NULL),
		prot_pool_remove(p, NULL),
		prot_execute(p, NULL, NULL, fn_ok, NULL, &d),
		prot_execute(p, "k", NULL, NULL, NULL, &d),
		prot_configure(p, NULL, "rate_limit=5", &d),
		prot_configure(p, "k", NULL, &d),
		prot_get_protection_status(p, NULL, &kst),
		prot_get_protection_status(p, "k", NULL),
		prot_telemetry_attach(p, PROT_TEL_ALL, NULL, NULL),
		prot_list_keys(p, NULL, NULL),
		prot_list_breakers(p, NULL, NULL),
		prot_list_pools(p, NULL, NULL),
	};
	for (size_t i = 0; i < sizeof null_arg / sizeof null_arg[0]; i++)
		cr_expect_eq(null_arg[i], -EINVAL, "NULL argument, call %zu: %d", i, null_arg[i]);

	/* a read-only handle: every call that writes is -EROFS; the reads work */
	const int rdonly[] = {
		prot_rate_check(ro, "op", "e", 1, 1000, &ri),
		prot_rate_check_n(ro, "op", "e", &lim, 1, &ri),
		prot_rate_check_key(ro, "k", "e", 1, &ri),
		prot_rate_execute(ro, "op", "e", &lim, cb_void, NULL, &res, &ri),
		prot_rate_reset(ro, "op", "e"),
		prot_rate_check_bin(ro, "op", "e", 1, &lim, 1, &ri),
		prot_rate_check_key_bin(ro, "k", "e", 1, 1, &ri),
		prot_rate_execute_bin(ro, "op", "e", 1, &lim, 1, cb_void, NULL, &res, &ri),
		prot_rate_reset_bin(ro, "op", "e", 1),
		prot_breaker_execute(ro, "b", cb_void, NULL, &res),
		prot_breaker_allow(ro, "b", &tok),
		prot_breaker_record(ro, &tok, PROT_OUTCOME_SUCCESS, 0),
		prot_breaker_reset(ro, "b"),
		prot_breaker_blow(ro, "b"),
		prot_pool_register(ro, "db", &cn),
		prot_pool_checkout(ro, "db", 0, &lease, NULL),
		prot_pool_checkin(ro, &lease, PROT_CHECKIN_OK),
		prot_pool_with(ro, "db", 0, cb_conn, NULL, &res),
		prot_execute(ro, "k", NULL, fn_ok, NULL, &d),
	};
	for (size_t i = 0; i < sizeof rdonly / sizeof rdonly[0]; i++)
		cr_expect_eq(rdonly[i], -EROFS, "read-only handle, call %zu: %d", i, rdonly[i]);
	/* changes through protd are judged by protd on the caller's credentials, not on the mode of
	 * the handle's mapping (we are the segment's owner here: allowed) */
	cr_expect_eq(prot_configure(ro, "k", "rate_limit=5", &d), 0, "%s", d.message);
	cr_expect_eq(prot_breaker_create(ro, "x", &bo), 0);
	cr_expect_eq(prot_get_info(ro, &info), 0);
	cr_expect_eq(prot_rate_status(ro, "op", "e", &lim, &ri), 0);
	cr_expect_eq(prot_rate_status_bin(ro, "op", "e", 1, &lim, &rs), 0);
	cr_expect_eq(prot_rate_status_key(ro, "k", "e", 1, &rs), 0);
	cr_expect_eq(prot_breaker_status(ro, "b", &bs), 0);
	cr_expect_eq(prot_pool_status(ro, "db", &pst), 0);
	cr_expect_eq(prot_pool_holders(ro, "db", NULL, 0, &nh), 0);
	cr_expect_eq(prot_get_protection_status(ro, "k", &kst), 0);
	cr_expect_eq(prot_list_keys(ro, cb_name, NULL), 0);
	cr_expect_eq(prot_list_breakers(ro, cb_name, NULL), 0);
	cr_expect_eq(prot_list_pools(ro, cb_name, NULL), 0);
	int id = prot_telemetry_attach(ro, PROT_TEL_ALL, cb_tel, NULL); /* in-process only */
	cr_expect_geq(id, 0);
	cr_expect_eq(prot_telemetry_detach(ro, id), 0);
	prot_close(ro);
	th_unserve(p, protd);
}

/* ---- 3. private geometry ---------------------------------------------------------------------- */

static bool protd_alive_pid(pid_t pid)
{
	return kill(pid, 0) == 0 && th_wait(pid, 0, NULL) != 0;
}

/* Every immutable header word, rewritten while protd serves: protd neither crashes nor writes
 * where the tampered word points, and restores it; clients attached before keep working on their
 * private geometry. */
Test(trust, tampered_header_words_fool_nobody, .timeout = 60)
{
	const char *seg, *ini;
	prot_t *p;
	pid_t protd = th_serve("tamper", ini_text, &seg, &ini, &p);
	struct raw r = raw_map(seg);
	uint64_t *w = (uint64_t *)r.h;
	uint64_t before[sizeof(struct prot_shm_header) / 8];
	memcpy(before, w, sizeof before);
	const size_t state_word = offsetof(struct prot_shm_header, state) / 8;
	const uint64_t evil[] = { 0, ~0ull, 64, 0x40, (uint64_t)r.size };
	int tried = 0;
	for (size_t i = 0; i < 256 / 8; i++) {
		if (i == state_word)
			continue;
		for (size_t k = 0; k < sizeof evil / sizeof evil[0]; k++) {
			uint64_t v = evil[k];
			if (v == before[i])
				continue;
			__atomic_store_n(&w[i], v, __ATOMIC_RELAXED);
			tried++;
			/* a client keeps working meanwhile: its geometry is its own */
			cr_assert_geq(prot_rate_check_key(p, "k", "u", 1, NULL), 0, "word %zu = %#llx", i,
			              (unsigned long long)v);
			prot_lease l;
			cr_assert_eq(prot_pool_checkout(p, "db", 100, &l, NULL), 0);
			cr_assert_eq(prot_pool_checkin(p, &l, PROT_CHECKIN_OK), 0);
			/* protd's tick sees it (10 ms) and restores it */
			uint64_t end = th_now_ms() + 1000;
			while (__atomic_load_n(&w[i], __ATOMIC_RELAXED) != before[i] && th_now_ms() < end)
				usleep(2000);
			cr_assert_eq(__atomic_load_n(&w[i], __ATOMIC_RELAXED), before[i],
			             "word %zu not restored (was set to %#llx)", i, (unsigned long long)v);
			cr_assert(protd_alive_pid(protd), "protd died after word %zu = %#llx", i,
			          (unsigned long long)v);
		}
	}
	cr_log_info("%d header rewrites survived", tried);
	/* nothing else in the header moved (protd wrote nowhere a tampered offset pointed) */
	for (size_t i = 0; i < 256 / 8; i++)
		if (i != state_word)
			cr_expect_eq(w[i], before[i], "header word %zu changed", i);
	const char *log = th_protd_log(protd);
	struct th_out o;
	const char *const grep[] = { "/bin/grep", "-c", "header was changed by someone else", log, NULL };
	th_run(&o, 2000, grep);
	cr_expect_neq(o.code, 1, "protd logs the tampering");
	seg_unmap(r.h, r.size);
	th_unserve(p, protd);
}

/* ---- 9. one applied configuration per call ---------------------------------------------------------- */

#define CFG_A "[key k]\nrate_limit = 100\nrate_window = 1s\nbreaker = b\npool = db\n\n" \
              "[breaker b]\ntolerance = 3\nwindow = 1s\nrefresh = 1s\n\n[pool db]\nsize = 2\nmax_overflow = 0\n"
#define CFG_B "[key k]\nrate_limit = 200\nrate_window = 1s\nbreaker = b\npool = db\n\n" \
              "[breaker b]\ntolerance = 5\nwindow = 1s\nrefresh = 1s\n\n[pool db]\nsize = 4\nmax_overflow = 0\n"

struct mix {
	_Atomic int stop;
	_Atomic uint64_t reads, mixed, errors;
	char seg[64];
	char first[128]; /* the first mixed read */
};

static int status_reader(void *arg, int i)
{
	struct mix *m = arg;
	prot_t *p;
	(void)i;
	if (prot_open(m->seg, PROT_OPEN_RDONLY, &p) != 0)
		return 1;
	while (!atomic_load(&m->stop)) {
		struct prot_protection_status st;
		if (prot_get_protection_status(p, "k", &st) != 0) {
			atomic_fetch_add(&m->errors, 1);
			continue;
		}
		bool a = st.rate.limit == 100 && st.breaker.opts.tolerance == 3 && st.pool.size == 2;
		bool b = st.rate.limit == 200 && st.breaker.opts.tolerance == 5 && st.pool.size == 4;
		if (!a && !b && atomic_fetch_add(&m->mixed, 1) == 0)
			snprintf(m->first, sizeof m->first, "limit %llu, tolerance %u (breaker %d), size %u (pool %d)",
			         (unsigned long long)st.rate.limit, st.breaker.opts.tolerance, st.has_breaker,
			         st.pool.size, st.has_pool);
		atomic_fetch_add(&m->reads, 1);
	}
	prot_close(p);
	return 0;
}

static void write_ini(const char *path, const char *body)
{
	char tmp[512];
	snprintf(tmp, sizeof tmp, "%s.new", path);
	FILE *f = fopen(tmp, "w");
	cr_assert_not_null(f);
	fprintf(f, "[segment]\nmax_keys = 8\nmax_breakers = 4\nmax_pools = 2\npool_max_slots = 8\n"
	           "pool_max_waiters = 8\nrate_entities = 256\nevents = 64\n\n[daemon]\ntick = 10ms\n\n%s", body);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rename(tmp, path), 0); /* protd never reads half a file */
}

Test(trust, reloads_never_mix_the_layers_of_two_configurations, .timeout = 120)
{
	const char *seg, *ini;
	prot_t *p;
	pid_t protd = th_serve("mix", "[segment]\nmax_keys = 8\nmax_breakers = 4\nmax_pools = 2\n"
	                               "pool_max_slots = 8\npool_max_waiters = 8\nrate_entities = 256\n"
	                               "events = 64\n\n[daemon]\ntick = 10ms\n\n" CFG_A, &seg, &ini, &p);
	struct mix *m = th_shared(sizeof *m);
	snprintf(m->seg, sizeof m->seg, "%s", seg);
	pid_t r[8];
	for (int i = 0; i < 8; i++)
		r[i] = th_fork(status_reader, m, i);
	struct prot_info info;
	int reloads = 0;
	for (int k = 0; k < 1000; k++) {
		cr_assert_eq(prot_get_info(p, &info), 0);
		uint64_t g = info.config_generation;
		write_ini(ini, k % 2 ? CFG_A : CFG_B);
		cr_assert_eq(kill(protd, SIGHUP), 0);
		uint64_t end = th_now_ms() + 5000;
		while (prot_get_info(p, &info) == 0 && info.config_generation == g && th_now_ms() < end)
			usleep(200);
		cr_assert_neq(info.config_generation, g, "reload %d not applied", k);
		reloads++;
	}
	atomic_store(&m->stop, 1);
	for (int i = 0; i < 8; i++) {
		int st;
		cr_assert_eq(th_wait(r[i], 10000, &st), 0);
	}
	cr_log_info("%d reloads, %llu status reads, %llu mixed", reloads, (unsigned long long)m->reads,
	            (unsigned long long)m->mixed);
	cr_expect_gt(m->reads, 1000);
	cr_expect_eq(m->errors, 0);
	cr_expect_eq(m->mixed, 0, "%llu of %llu reads mixed the layers of two configurations, the first: %s",
	             (unsigned long long)m->mixed, (unsigned long long)m->reads, m->first);
	th_unserve(p, protd);
}

/* The same rule at the protocol level, with a writer that takes its time: protd's bracket (an odd
 * generation while a change is written, each block under its own seqlock) written by this test
 * with pauses between the blocks, so that an unguarded reader would see mixed layers. */
#include "craft.h"

static char mix_name[64]; /* the crafted segment's name, for the writer's handle */

struct mixcfg {
	struct prot_key_cfg k;
	struct prot_breaker_cfg b;
	struct prot_pool_cfg p;
};

static void mix_cfg(struct mixcfg *c, bool b_side)
{
	memset(c, 0, sizeof *c);
	c->k = (struct prot_key_cfg){ .rate_limit = b_side ? 200 : 100, .rate_window_ms = 1000,
	                              .rate_algo = PROT_RATE_FIXED_WINDOW, .breaker_index = 0, .pool_index = 0 };
	c->b = (struct prot_breaker_cfg){ .strategy = PROT_BREAKER_STANDARD, .tolerance = b_side ? 5 : 3,
	                                  .window_ms = 1000, .refresh_ms = 1000, .half_open_probes = 1 };
	c->p = (struct prot_pool_cfg){ .size = b_side ? 4 : 2, .checkout_timeout_ms = 100 };
}

static void write_block(struct prot_shm_header *h, int reg, const void *cfg, size_t bytes)
{
	struct prot_named *n = seg_entry(h, reg, 0);
	seq_write_begin(&n->seq);
	seq_write_words((char *)n + 64, cfg, bytes / 8);
	seq_write_end(&n->seq);
}

static int slow_writer(void *arg, int i)
{
	struct prot_shm_header *h = arg;
	(void)i;
	/* this process plays protd: readers wait for a writer whose identity lock is held */
	prot_t *me;
	const char *name = (const char *)arg + 0; /* unused: the name comes from the shared mix */
	(void)name;
	if (prot_open(mix_name, 0, &me) != 0)
		return 1;
	atomic_store(&h->protd_ident, prot_self(me, prot_hdr(me)));
	for (int k = 0; k < 300; k++) {
		struct mixcfg c;
		mix_cfg(&c, k % 2 == 0);
		uint64_t g = atomic_load(&h->config_gen);
		atomic_store(&h->config_gen, g | 1u); /* the change begins */
		write_block(h, REG_BREAKERS, &c.b, sizeof c.b);
		usleep(200);
		write_block(h, REG_POOLS, &c.p, sizeof c.p);
		usleep(200);
		write_block(h, REG_KEYS, &c.k, sizeof c.k);
		atomic_store(&h->config_gen, (g | 1u) + 1); /* and ends */
		usleep(100);
	}
	prot_close(me);
	return 0;
}

Test(trust, a_slow_change_is_never_seen_half_applied, .timeout = 60)
{
	const char *name = th_segname("mixproto");
	snprintf(mix_name, sizeof mix_name, "%s", name);
	struct crafted cs = craft(name);
	struct mixcfg c;
	mix_cfg(&c, false);
	publish_slot(cs.h, REG_BREAKERS, 0, "b", &c.b, sizeof c.b);
	publish_slot(cs.h, REG_POOLS, 0, "db", &c.p, sizeof c.p);
	publish_slot(cs.h, REG_KEYS, 0, "k", &c.k, sizeof c.k);
	struct mix *m = th_shared(sizeof *m);
	snprintf(m->seg, sizeof m->seg, "%s", name);
	pid_t r[4];
	for (int i = 0; i < 4; i++)
		r[i] = th_fork(status_reader, m, i);
	th_fork_n(1, slow_writer, cs.h, 30000);
	atomic_store(&m->stop, 1);
	for (int i = 0; i < 4; i++) {
		int st;
		cr_assert_eq(th_wait(r[i], 10000, &st), 0);
	}
	cr_log_info("%llu status reads during 300 slow changes, %llu mixed", (unsigned long long)m->reads,
	            (unsigned long long)m->mixed);
	cr_expect_eq(m->errors, 0);
	cr_expect_eq(m->mixed, 0, "%llu reads mixed two configurations, the first: %s",
	             (unsigned long long)m->mixed, m->first);
	uncraft(&cs);
}

/* A generation made odd by someone else (not in one of protd's changes) would make every
 * whole-change reader wait: protd ends it at its next tick, and calls stay fast meanwhile. */
Test(trust, an_odd_generation_protd_did_not_make_is_ended, .timeout = 30)
{
	const char *seg, *ini;
	prot_t *p;
	pid_t protd = th_serve("oddgen", ini_text, &seg, &ini, &p);
	struct raw r = raw_map(seg);
	atomic_fetch_or(&r.h->config_gen, 1ull);
	uint64_t t0 = th_now_ms();
	while ((atomic_load(&r.h->config_gen) & 1) && th_now_ms() - t0 < 2000)
		usleep(1000);
	cr_expect_eq(atomic_load(&r.h->config_gen) & 1, 0u, "protd ended the odd generation");
	struct prot_detail d;
	t0 = th_now_ms();
	for (int i = 0; i < 100; i++)
		cr_assert_eq(prot_execute(p, "k", NULL, fn_ok, NULL, &d), 0);
	cr_expect_lt(th_now_ms() - t0, 1000, "100 calls took %llu ms", (unsigned long long)(th_now_ms() - t0));
	seg_unmap(r.h, r.size);
	th_unserve(p, protd);
}
