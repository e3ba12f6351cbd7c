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

/* A read-write mapping of the served segment, as a hostile group member would have it. */
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
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert(m != MAP_FAILED);
	return (struct raw){ m, (size_t)st.st_size };
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

	/* a new protd re-adopts the segment, repairs the counters and serves again */
	th_kill9(protd);
	t0 = th_now_ms();
	protd = th_protd_start(ini, seg, NULL);
	cr_expect_lt(th_now_ms() - t0, 1500);
	cr_expect(atomic_load(ks) % 2 == 0 && atomic_load(bs) % 2 == 0 && atomic_load(ps) % 2 == 0,
	          "protd repaired the odd counters");
	cr_expect_geq(prot_rate_check_key(p, "k", "u", 1, NULL), 0);
	cr_expect_eq(prot_execute(p, "k", NULL, fn_ok, NULL, &d), 0);
	cr_expect_eq(th_protctl(&o, seg, "status", "k", NULL), 0, "%s", o.err);
	munmap(r.h, r.size);
	th_unserve(p, protd); /* SIGTERM still stops it: exit 0 */
}
