/* test_rate_memo.c — the per-handle memos of a rate decision (lib/rate_memo.h, lib/ratelimit.c) and
 * what they rest on: a remembered bucket is charged only while it is still its identity's (a reset
 * by another process, a bucket swept and recycled for other entities), a key's remembered
 * decision parameters only while its configuration is unchanged (a runtime change applies at the
 * next decision), threads sharing one handle stay exact; C strings read a word at a time (lib/
 * words.h) up to the last byte of a page without touching the next, with every length and
 * alignment as the byte-wise reader; and rate_clock = auto (lib/rate_clock.c).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "rate_algo.h"
#include "rate_table.h"
#include "words.h"

#define HEAD                                                                                     \
	"[segment]\nmax_keys = 8\nmax_breakers = 1\nmax_pools = 1\npool_max_slots = 1\n"         \
	"pool_max_waiters = 1\nrate_entities = 64\nevents = 64\n\n[daemon]\ntick = 10ms\n"       \
	"rate_grace = 20ms\n\n"

struct env {
	const char *seg, *ini;
	pid_t protd;
	prot_t *p;
};

static struct env *start(const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	e->protd = th_serve_head("rmemo", HEAD, sections, &e->seg, &e->ini, &e->p);
	return e;
}

static void stop(struct env *e)
{
	th_unserve(e->p, e->protd);
}

static uint64_t used(prot_t *p, const char *key, const char *ent)
{
	struct prot_rate_status st;
	cr_assert_eq(prot_rate_status_key(p, key, ent, strlen(ent), &st), 0);
	return st.exists ? st.info.used : 0;
}

static int reset_child(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	return prot_rate_reset(e->p, "k", "u") == 0 ? 0 : 1;
}

Test(memo, a_reset_by_another_process_is_seen_at_the_next_decision)
{
	struct env *e = start("[key k]\nrate_limit = 3\nrate_window = 720h\n");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 0, "the window is spent");
	th_fork_n(1, reset_child, e, 5000); /* the bucket this handle remembers is removed */
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 1, "a fresh bucket, not the old one");
	cr_assert_eq(used(e->p, "k", "u"), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 2, NULL), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 0, "3 again, counted exactly");
	stop(e);
}

struct limit_arg {
	prot_t *p;
	uint64_t want;
};
static bool limit_is(void *arg)
{
	struct limit_arg *a = arg;
	struct prot_rate_status st;
	return prot_rate_status_key(a->p, "k", "u", 1, &st) == 0 && st.info.limit == a->want;
}

Test(memo, a_runtime_change_of_the_limit_applies_at_the_next_decision)
{
	struct env *e = start("[key k]\nrate_limit = 2\nrate_window = 720h\n");
	struct prot_detail d;
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 1);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 0, "2 of 2");
	cr_assert_eq(prot_configure(e->p, "k", "rate_limit=5", &d), 0, "%s", d.message);
	struct limit_arg a = {e->p, 5};
	cr_assert(th_until(limit_is, &a, 2000), "protd applied rate_limit = 5");
	for (int i = 0; i < 3; i++) /* same algorithm and window: the same bucket, 2 already counted */
		cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 1, "unit %d of the new limit", i + 3);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 0, "5 of 5: the memo holds the new limit");
	cr_assert_eq(prot_configure(e->p, "k", "rate_algorithm=gcra", &d), 0, "%s", d.message);
	struct prot_rate_status st;
	for (int i = 0; i < 200; i++) { /* wait for it: a GCRA bucket is another bucket */
		if (prot_rate_status_key(e->p, "k", "u", 1, &st) == 0 && st.algo == PROT_RATE_GCRA)
			break;
		th_sleep_ms(10);
	}
	cr_assert_eq(st.algo, PROT_RATE_GCRA);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "u", 1, NULL), 1, "a new algorithm's own bucket");
	stop(e);
}

static bool swept(void *arg)
{
	struct env *e = arg;
	struct prot_rate_status st;
	return prot_rate_status_key(e->p, "k", "a", 1, &st) == 0 && !st.exists;
}

struct fill {
	struct env *e;
	_Atomic uint32_t inserted;
};

/* Fill every bucket of the table with entities of key "fill", one unit each. */
static int fill_child(void *arg, int i)
{
	struct fill *f = arg;
	char ent[32];
	(void)i;
	for (int k = 0; k < 4000; k++) {
		snprintf(ent, sizeof ent, "f%d", k);
		int r = prot_rate_check_key(f->e->p, "fill", ent, 1, NULL);
		if (r == 1)
			atomic_fetch_add(&f->inserted, 1);
		else if (r != -PROT_ETABLEFULL)
			return 1;
	}
	return 0;
}

/* The handle remembers entity a's bucket; a expires, protd sweeps it, and another process fills
 * every bucket of the table with other entities, one of which reuses a's old bucket. The next
 * decision on a must find no bucket (the table is full: refused), not charge the remembered one. */
Test(memo, a_bucket_recycled_for_another_entity_is_never_charged)
{
	struct env *e = start("[key k]\nrate_limit = 1\nrate_window = 50ms\nrate_algorithm = gcra\n\n"
	                      "[key fill]\nrate_limit = 10\nrate_window = 720h\n");
	cr_assert_eq(prot_rate_check_key(e->p, "k", "a", 1, NULL), 1);
	cr_assert(th_until(swept, e, 5000), "a's bucket expired and was swept");
	struct fill *f = th_shared(sizeof *f);
	f->e = e;
	th_fork_n(1, fill_child, f, 20000);
	struct prot_info info;
	cr_assert_eq(prot_get_info(e->p, &info), 0);
	cr_assert_eq(info.rate_buckets_used, info.rate_buckets_max, "every bucket is a filler's");
	cr_assert_eq(f->inserted, info.rate_buckets_max);
	cr_assert_eq(prot_rate_check_key(e->p, "k", "a", 1, NULL), -PROT_ETABLEFULL,
	             "a has no bucket any more: the remembered one is another entity's");
	char ent[32];
	uint32_t seen = 0;
	for (int k = 0; k < 4000; k++) { /* and no filler was charged for a */
		snprintf(ent, sizeof ent, "f%d", k);
		uint64_t u = used(e->p, "fill", ent);
		cr_assert(u <= 1, "filler %s counts %llu", ent, (unsigned long long)u);
		seen += (uint32_t)u;
	}
	cr_assert_eq(seen, f->inserted);
	stop(e);
}

#define THREADS 4
#define ENTS 16
#define HITS 1000 /* per thread per entity */

struct targ {
	prot_t *p;
	_Atomic uint64_t admitted[ENTS];
	_Atomic uint64_t errors;
};
static void *hammer(void *arg)
{
	struct targ *t = arg;
	char ent[16];
	for (int k = 0; k < HITS * ENTS; k++) {
		snprintf(ent, sizeof ent, "t%d", k % ENTS);
		int r = prot_rate_check_key(t->p, "k", ent, 1, NULL);
		if (r < 0)
			atomic_fetch_add(&t->errors, 1);
		else
			atomic_fetch_add(&t->admitted[k % ENTS], (uint64_t)r);
	}
	return NULL;
}

Test(memo, threads_sharing_one_handle_stay_exact)
{
	struct env *e = start("[key k]\nrate_limit = 2500\nrate_window = 720h\n");
	static struct targ t;
	memset(&t, 0, sizeof t);
	t.p = e->p;
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, hammer, &t), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(t.errors, 0);
	for (int i = 0; i < ENTS; i++)
		cr_assert_eq(t.admitted[i], 2500, "entity %d: %llu of 4000 tries admitted", i,
		             (unsigned long long)t.admitted[i]);
	stop(e);
}

/* A page whose successor is not mapped: a read past its end faults. */
static char *guarded_page(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(m, MAP_FAILED);
	cr_assert_eq(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
	return m;
}

/* s (with its NUL) copied so that the NUL is the page's last byte. */
static const char *at_page_end(char *page, const char *s)
{
	size_t n = strlen(s) + 1, pg = (size_t)sysconf(_SC_PAGESIZE);
	memcpy(page + pg - n, s, n);
	return page + pg - n;
}

Test(words, names_and_entities_that_end_at_a_page_boundary_are_read_safely)
{
	struct env *e = start("[key page_key]\nrate_limit = 2\nrate_window = 720h\n");
	char *kp = guarded_page(), *ep = guarded_page();
	char e64[65], e65[66];
	memset(e64, 'x', 64), e64[64] = 0;
	memset(e65, 'y', 65), e65[65] = 0;
	const char *key = at_page_end(kp, "page_key");
	for (int i = 0; i < 2; i++)
		cr_assert_eq(prot_rate_check_key(e->p, key, at_page_end(ep, "hot"), 1, NULL), 1);
	cr_assert_eq(prot_rate_check_key(e->p, key, at_page_end(ep, "hot"), 1, NULL), 0);
	cr_assert_eq(prot_rate_check_key(e->p, key, at_page_end(ep, e64), 1, NULL), 1, "64 bytes");
	cr_assert_eq(prot_rate_check_key(e->p, key, at_page_end(ep, e65), 1, NULL), -PROT_ETOOLONG);
	cr_assert_eq(prot_rate_check_key(e->p, key, at_page_end(ep, ""), 1, NULL), 1, "empty entity");
	cr_assert_eq(prot_rate_check_key(e->p, at_page_end(kp, "page_ke"), "hot", 1, NULL), -PROT_ENOKEY);
	munmap(kp, 2 * (size_t)sysconf(_SC_PAGESIZE));
	munmap(ep, 2 * (size_t)sysconf(_SC_PAGESIZE));
	stop(e);
}

Test(words, every_length_and_alignment_reads_as_the_bytewise_reader_does)
{
	static char buf[256];
	for (size_t max = 0; max <= 64; max += 1) {
		for (size_t off = 0; off < 8; off++) {
			for (size_t len = 0; len <= 70; len++) {
				memset(buf, 0xa5, sizeof buf); /* junk after the NUL */
				for (size_t i = 0; i < len; i++)
					buf[off + i] = (char)('a' + (i * 7 + off) % 26);
				buf[off + len] = 0;
				uint64_t w1[9], w2[9];
				memset(w1, 0x5a, sizeof w1), memset(w2, 0x5a, sizeof w2);
				size_t n1 = str_words(buf + off, max, w1), n2 = str_words_bytes(buf + off, max, w2);
				cr_assert_eq(n1, n2, "max %zu off %zu len %zu", max, off, len);
				if (n1 <= max)
					cr_assert_arr_eq(w1, w2, sizeof w1, "max %zu off %zu len %zu", max, off, len);
			}
		}
	}
}

static uint64_t coarse_res_ns(void)
{
	struct timespec ts;
	cr_assert_eq(clock_getres(CLOCK_MONOTONIC_COARSE, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t resolved(uint32_t algo, uint64_t limit, uint64_t window_ms)
{
	struct rate_params rp;
	rate_params_make(algo, limit, window_ms, limit, &rp); /* burst or capacity: the limit */
	cr_assert_eq(rp.err, 0, "algo %u, %llu per %llu ms", algo, (unsigned long long)limit,
	             (unsigned long long)window_ms);
	return rate_clock_resolve(RATE_CLOCK_AUTO, &rp);
}

Test(clock, auto_takes_the_coarse_clock_only_where_its_resolution_cannot_matter)
{
	uint64_t r = coarse_res_ns(), ms = 1000000;
	/* fixed window: r <= W / 64 */
	uint64_t w_ok = (64 * r + ms - 1) / ms, w_no = 64 * r / ms - 1;
	cr_assert_eq(resolved(PROT_RATE_FIXED_WINDOW, 1000000, w_ok), RATE_CLOCK_COARSE, "W %llu ms",
	             (unsigned long long)w_ok);
	cr_assert_eq(resolved(PROT_RATE_FIXED_WINDOW, 1, w_no), RATE_CLOCK_MONO, "W %llu ms",
	             (unsigned long long)w_no);
	/* the others: r <= W / limit */
	uint64_t lim_ok = 1000 * ms / r, lim_no = 1000 * ms / r + 1;
	for (uint32_t a = PROT_RATE_GCRA; a <= PROT_RATE_LEAKY_BUCKET; a++) {
		cr_assert_eq(resolved(a, lim_ok, 1000), RATE_CLOCK_COARSE, "algo %u, %llu per s", a,
		             (unsigned long long)lim_ok);
		cr_assert_eq(resolved(a, lim_no, 1000), RATE_CLOCK_MONO, "algo %u, %llu per s", a,
		             (unsigned long long)lim_no);
	}
	struct rate_params rp;
	rate_params_make(PROT_RATE_GCRA, 1, 1000, 0, &rp);
	for (uint64_t c = RATE_CLOCK_MONO; c <= RATE_CLOCK_REALTIME; c++)
		cr_assert_eq(rate_clock_resolve(c, &rp), c, "every other clock is itself");
}

static int auto_child(void *arg, int i)
{
	struct env *e = arg;
	int n = 0;
	(void)i;
	for (int k = 0; k < 50; k++) {
		int r = prot_rate_check_key(e->p, "a", "u", 1, NULL);
		if (r < 0)
			return 100;
		n += r;
	}
	return n; /* admitted, as the exit status */
}

Test(clock, a_key_on_auto_is_exact_across_processes_and_shown_as_auto)
{
	struct env *e = start("[key a]\nrate_limit = 60\nrate_window = 1h\nrate_clock = auto\n");
	int total = 0;
	pid_t pids[4];
	for (int i = 0; i < 4; i++)
		pids[i] = th_fork(auto_child, e, i);
	for (int i = 0; i < 4; i++) {
		int st;
		cr_assert_eq(th_wait(pids[i], 10000, &st), 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) <= 50);
		total += WEXITSTATUS(st);
	}
	cr_assert_eq(total, 60, "4 x 50 tries on a limit of 60: %d admitted", total);
	struct th_out o;
	cr_assert_eq(th_protctl(&o, e->seg, "rate", "show", "a", NULL), 0, "%s", o.err);
	cr_assert(strstr(o.out, "auto"), "protctl shows the clock as configured: %s", o.out);
	stop(e);
}

static int call_ok(const struct prot_call *call)
{
	(void)call;
	return 0;
}

static int exec_u(prot_t *p)
{
	struct prot_call_opts o = {.entity = "u", .timeout_ms = -1};
	return prot_execute(p, "k", &o, call_ok, NULL, NULL);
}

/* The facade resolves the key once per call and decides on the parameters derived from the copy
 * of the configuration it read for the call: a runtime change is in force at the next call. */
Test(memo, the_facade_decides_on_the_configuration_of_its_call)
{
	struct env *e = start("[key k]\nrate_limit = 2\nrate_window = 720h\n");
	struct prot_detail d;
	cr_assert_eq(exec_u(e->p), 0);
	cr_assert_eq(exec_u(e->p), 0);
	cr_assert_eq(exec_u(e->p), -PROT_ERATELIMITED, "2 of 2");
	cr_assert_eq(prot_configure(e->p, "k", "rate_limit=4", &d), 0, "%s", d.message);
	struct limit_arg a = {e->p, 4};
	cr_assert(th_until(limit_is, &a, 2000), "protd applied rate_limit = 4");
	cr_assert_eq(exec_u(e->p), 0, "3 of 4");
	cr_assert_eq(exec_u(e->p), 0, "4 of 4");
	cr_assert_eq(exec_u(e->p), -PROT_ERATELIMITED, "the memo holds the new limit, not the old");
	cr_assert_eq(prot_configure(e->p, "k", "rate_limit=1", &d), 0, "%s", d.message);
	a.want = 1;
	cr_assert(th_until(limit_is, &a, 2000), "protd applied rate_limit = 1");
	cr_assert_eq(exec_u(e->p), -PROT_ERATELIMITED, "4 counted, limit 1");
	stop(e);
}
