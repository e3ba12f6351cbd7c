/* test_resolve.c — names to slots (lib/resolve.c): the per-handle memo answers only while the slot
 * it names still holds the name. Objects removed and defined again in another slot between two
 * calls of one process (by that process, by another process, and while another process keeps
 * doing it) are never served from the memo. Crafted segments drive slot states by hand, as protd
 * publishes them; the rest runs against a real protd whose segments have two slots per kind, so
 * that an object defined again lands in the other slot.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "craft.h"
#include "harness.h"
#include "internal.h"

/* ---- crafted segments ------------------------------------------------------------------------ */

/* Slot i of region reg becomes NAME as protd recycles a slot: off LIVE first (FREE, same
 * generation), then the name, then LIVE with the generation bumped. */
static void recycle(struct prot_shm_header *h, int reg, uint32_t i, const char *name)
{
	struct prot_named *s = seg_entry(h, reg, i);
	uint32_t w = atomic_load(&s->state);
	atomic_store(&s->state, SLOT_FREE | (w & ~0xffu));
	memset(s->name, 0, sizeof s->name);
	snprintf(s->name, sizeof s->name, "%s", name);
	s->name_hash = prot_name_hash(name);
	atomic_store(&s->state, SLOT_LIVE | ((SLOT_GEN(w) + 1) & 0xffffffu) << 8);
}

/* A removal: RETIRED, generation and name kept. */
static void retire(struct prot_shm_header *h, int reg, uint32_t i)
{
	struct prot_named *s = seg_entry(h, reg, i);
	atomic_store(&s->state, SLOT_RETIRED | (atomic_load(&s->state) & ~0xffu));
}

static int resolved(prot_t *p, int reg, const char *name)
{
	struct slot_ref ref = { .idx = 777, .state = 777 };
	int rc = prot_resolve(p, prot_hdr(p), reg, name, &ref);
	if (rc < 0) {
		cr_expect_eq(ref.idx, 777u, "out untouched on failure");
		return rc;
	}
	cr_expect_eq(ref.state, atomic_load(&((struct prot_named *)seg_entry(prot_hdr(p), reg, ref.idx))->state));
	return (int)ref.idx;
}

static const int named_regions[] = { REG_KEYS, REG_BREAKERS, REG_POOLS };

/* A crafted segment named after tag, with geometry g, and a handle on it. */
struct fixture {
	const char *name;
	struct crafted c;
	prot_t *p;
};
static struct fixture open_crafted(const char *tag, const struct seg_geometry *g)
{
	struct fixture f = { .name = th_segname(tag) };
	f.c = craft_mode(f.name, g, 0600);
	cr_assert_eq(prot_open(f.name, 0, &f.p), 0);
	return f;
}
static void close_crafted(struct fixture *f)
{
	prot_close(f->p);
	uncraft(&f->c);
}

/* "a" in slot 0, then moved to slot 1 while "b" takes slot 0: the memo's (0, state) is stale. */
Test(resolve, a_slot_recycled_between_two_calls_is_not_served)
{
	struct fixture f = open_crafted("recycle", &small_geo);
	for (size_t k = 0; k < sizeof named_regions / sizeof *named_regions; k++) {
		int reg = named_regions[k];
		recycle(f.c.h, reg, 0, "a");
		recycle(f.c.h, reg, 1, "c");
		cr_assert_eq(resolved(f.p, reg, "a"), 0);
		cr_assert_eq(resolved(f.p, reg, "a"), 0, "from the memo");
		retire(f.c.h, reg, 0);
		recycle(f.c.h, reg, 0, "b");
		retire(f.c.h, reg, 1);
		recycle(f.c.h, reg, 1, "a");
		cr_expect_eq(resolved(f.p, reg, "a"), 1, "region %d: the name moved to slot 1", reg);
		cr_expect_eq(resolved(f.p, reg, "b"), 0);
		cr_expect_eq(resolved(f.p, reg, "c"), seg_find(f.c.h, reg, "c"), "c is gone");
		retire(f.c.h, reg, 1);
		cr_expect_lt(resolved(f.p, reg, "a"), 0, "region %d: removed", reg);
		recycle(f.c.h, reg, 1, "x");
		cr_expect_lt(resolved(f.p, reg, "a"), 0, "region %d: its slot holds another name", reg);
	}
	close_crafted(&f);
}

/* The memo is consulted: with the slot's state word unchanged, a hit needs no scan (the scan would
 * now miss: the hash it filters on is spoiled). A key revived by a reload (RETIRED -> LIVE, same
 * generation and name) is the same key. */
Test(resolve, a_hit_is_served_without_a_scan)
{
	struct fixture f = open_crafted("hit", &small_geo);
	recycle(f.c.h, REG_KEYS, 2, "api");
	cr_assert_eq(resolved(f.p, REG_KEYS, "api"), 2);
	struct prot_named *s = seg_entry(f.c.h, REG_KEYS, 2);
	s->name_hash ^= 1;
	cr_expect_eq(seg_find(f.c.h, REG_KEYS, "api"), -PROT_ENOKEY, "the scan misses now");
	cr_expect_eq(resolved(f.p, REG_KEYS, "api"), 2, "the memo answers");
	cr_expect_eq(prot_resolve(NULL, f.c.h, REG_KEYS, "api", &(struct slot_ref){ 0 }), -PROT_ENOKEY,
	             "without a handle: a scan");
	uint32_t w = atomic_load(&s->state);
	retire(f.c.h, REG_KEYS, 2);
	cr_expect_eq(resolved(f.p, REG_KEYS, "api"), -PROT_ENOKEY, "retired");
	atomic_store(&s->state, w);
	cr_expect_eq(resolved(f.p, REG_KEYS, "api"), 2, "revived: the same key");
	close_crafted(&f);
}

/* The same errors as seg_find, for every input. */
Test(resolve, errors_are_the_scans)
{
	struct fixture f = open_crafted("errors", &small_geo);
	char longest[PROT_NAME_MAX + 1], toolong[PROT_NAME_MAX + 2];
	memset(longest, 'q', PROT_NAME_MAX);
	longest[PROT_NAME_MAX] = 0;
	memset(toolong, 'q', PROT_NAME_MAX + 1);
	toolong[PROT_NAME_MAX + 1] = 0;
	recycle(f.c.h, REG_POOLS, 1, longest);
	struct slot_ref ref;
	for (int round = 0; round < 2; round++) { /* a miss, then the memo */
		cr_expect_eq(resolved(f.p, REG_POOLS, longest), 1);
		cr_expect_eq(resolved(f.p, REG_POOLS, toolong), -PROT_ETOOLONG);
		cr_expect_eq(resolved(f.p, REG_POOLS, "qqqqqqqq"), -PROT_ENOPOOL, "a prefix is another name");
		cr_expect_eq(resolved(f.p, REG_KEYS, longest), -PROT_ENOKEY, "another region");
		cr_expect_eq(resolved(f.p, REG_BREAKERS, longest), -PROT_ENOBREAKER);
		cr_expect_eq(prot_resolve(f.p, f.c.h, REG_LEASES, "x", &ref), -EINVAL);
		cr_expect_eq(prot_resolve(f.p, f.c.h, REG_KEYS, NULL, &ref), -EINVAL);
	}
	cr_expect_eq(seg_find_ref(f.c.h, REG_POOLS, longest, &ref), 0);
	cr_expect_eq(ref.idx, 1u);
	/* the public calls say the same through the resolver */
	prot_lease lease;
	struct prot_breaker_status bs;
	cr_expect_eq(prot_pool_checkout(f.p, toolong, 0, &lease, NULL), -PROT_ETOOLONG);
	cr_expect_eq(prot_pool_checkout(f.p, "qqqqqqqq", 0, &lease, NULL), -PROT_ENOPOOL);
	cr_expect_eq(prot_breaker_status(f.p, toolong, &bs), -PROT_ETOOLONG);
	cr_expect_eq(prot_breaker_status(f.p, longest, &bs), -PROT_ENOBREAKER);
	((struct prot_named *)seg_entry(f.c.h, REG_POOLS, 1))->name_hash ^= 1; /* the scan misses now */
	cr_expect_eq(resolved(f.p, REG_POOLS, longest), 1, "the longest name is served from the memo");
	close_crafted(&f);
}

/* A successor segment is another memo: its slot 0 has the very state word the memo holds for "a"
 * (LIVE, generation 1), under another name. The handle re-attaches at its first call after the
 * retirement (it has not probed for a successor before). */
Test(resolve, a_successor_segment_is_not_served_from_the_old_ones_memo)
{
	struct fixture f = open_crafted("succ", &small_geo);
	recycle(f.c.h, REG_BREAKERS, 0, "a");
	struct prot_shm_header *old = prot_hdr(f.p);
	cr_assert_eq(resolved(f.p, REG_BREAKERS, "a"), 0);
	atomic_store(&f.c.h->state, SEG_STATE_RETIRED);
	shm_unlink(f.name);
	struct crafted c2 = craft(f.name);
	recycle(c2.h, REG_BREAKERS, 0, "z");
	recycle(c2.h, REG_BREAKERS, 1, "a");
	cr_assert_neq(prot_hdr(f.p), old, "re-attached to the successor");
	cr_expect_eq(resolved(f.p, REG_BREAKERS, "a"), 1);
	cr_expect_eq(resolved(f.p, REG_BREAKERS, "z"), 0);
	close_crafted(&f);
	uncraft(&c2);
}

/* A forked child that inherited the handle and its memo: the entries still name the same
 * mapping (same address, same shared pages), and a move made by the parent after the fork is seen. */
Test(resolve, a_forked_child_keeps_a_valid_memo)
{
	struct fixture f = open_crafted("fork", &small_geo);
	recycle(f.c.h, REG_POOLS, 0, "a");
	recycle(f.c.h, REG_POOLS, 1, "c");
	cr_assert_eq(resolved(f.p, REG_POOLS, "a"), 0);
	int go[2], done[2];
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(done), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct slot_ref ref;
		char b;
		int ok = prot_resolve(f.p, prot_hdr(f.p), REG_POOLS, "a", &ref) == 0 && ref.idx == 0;
		ok = write(done[1], "1", 1) == 1 && read(go[0], &b, 1) == 1 && ok;
		ok = ok && prot_resolve(f.p, prot_hdr(f.p), REG_POOLS, "a", &ref) == 0 && ref.idx == 1;
		_exit(ok ? 0 : 1);
	}
	close(done[1]); /* a child that dies early ends the read below */
	close(go[0]);
	char b;
	cr_assert_eq(read(done[0], &b, 1), 1);
	retire(f.c.h, REG_POOLS, 0);
	recycle(f.c.h, REG_POOLS, 0, "b");
	retire(f.c.h, REG_POOLS, 1);
	recycle(f.c.h, REG_POOLS, 1, "a");
	cr_assert_eq(write(go[1], "1", 1), 1);
	int st = 0;
	cr_assert_eq(th_wait(pid, 5000, &st), 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child saw a stale answer");
	close_crafted(&f);
}

/* Threads sharing a handle, more names than memo entries: every answer is the name's slot. Even
 * threads pass the names from one table (program constants: entries spread, and collide), odd
 * ones from a buffer on their stack (one address for every name). */
#define T_NAMES 40
#define T_THREADS 4
static char t_names[T_NAMES][16];
struct thr_arg {
	prot_t *p;
	int seed, wrong, asked;
};

static void *thr_resolve(void *arg)
{
	struct thr_arg *a = arg;
	unsigned x = (unsigned)a->seed * 2654435761u + 1;
	char buf[16];
	for (int i = 0; i < 20000; i++) {
		x = x * 1103515245u + 12345u;
		int k = (int)((x >> 8) % T_NAMES);
		const char *nm = t_names[k];
		if (a->seed & 1)
			nm = memcpy(buf, t_names[k], sizeof buf);
		struct slot_ref ref;
		a->asked++;
		if (prot_resolve(a->p, prot_hdr(a->p), REG_KEYS, nm, &ref) != 0 || ref.idx != (uint32_t)(T_NAMES - 1 - k))
			a->wrong++;
	}
	return NULL;
}

Test(resolve, threads_sharing_a_handle_get_the_right_slots)
{
	struct seg_geometry g = small_geo;
	g.max_keys = T_NAMES;
	struct fixture f = open_crafted("threads", &g);
	for (int k = 0; k < T_NAMES; k++) {
		snprintf(t_names[k], sizeof t_names[k], "name-%d", k);
		recycle(f.c.h, REG_KEYS, (uint32_t)(T_NAMES - 1 - k), t_names[k]);
	}
	pthread_t t[T_THREADS];
	struct thr_arg a[T_THREADS];
	for (int i = 0; i < T_THREADS; i++) {
		a[i] = (struct thr_arg){ .p = f.p, .seed = i };
		cr_assert_eq(pthread_create(&t[i], NULL, thr_resolve, &a[i]), 0);
	}
	for (int i = 0; i < T_THREADS; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(a[i].wrong, 0, "thread %d: %d wrong answers of %d", i, a[i].wrong, a[i].asked);
	}
	close_crafted(&f);
}

/* ---- with a real protd: two slots per kind ------------------------------------------------------ */

static const char ini_head[] = "[segment]\nmax_keys = 2\nmax_breakers = 2\nmax_pools = 2\n"
                               "pool_max_slots = 4\npool_max_waiters = 4\nrate_entities = 64\n"
                               "events = 256\n\n[daemon]\ntick = 10ms\n\n";

struct env {
	pid_t protd;
	const char *seg, *ini;
	prot_t *p;
	/* shared with forked children */
	_Atomic int done, checked, wrong;
	struct th_conns conns;
};

static struct env *start(const char *sections)
{
	struct env *e = th_shared(sizeof *e);
	e->protd = th_serve_head("resolve", ini_head, sections, &e->seg, &e->ini, &e->p);
	return e;
}

static int brk_make(prot_t *p, const char *name, uint32_t tolerance)
{
	struct prot_breaker_opts o = { .strategy = PROT_BREAKER_STANDARD, .tolerance = tolerance,
		                       .window_ms = 10000, .refresh_ms = 3600000, .half_open_probes = 1 };
	return prot_breaker_create(p, name, &o);
}

static int pool_make(prot_t *p, const char *name, uint32_t size)
{
	struct prot_pool_opts o = { .size = size };
	return prot_pool_create(p, name, &o);
}

/* The objects of one kind, and how to make and remove one (tag: a distinct option per name). */
struct kind {
	int reg;
	int (*make)(prot_t *p, const char *name, uint32_t tag);
	int (*remove)(prot_t *p, const char *name);
};
static const struct kind breakers = { REG_BREAKERS, brk_make, prot_breaker_remove };
static const struct kind pools = { REG_POOLS, pool_make, prot_pool_remove };

/* Move "a" to the other slot of the two: remove it, fill its slot with `fill`, remove the other
 * filler `other` (in the other slot) and define "a" again there (with option tag). 0 or an error. */
static int move_a(prot_t *p, const struct kind *k, const char *fill, const char *other, uint32_t tag)
{
	int r = k->remove(p, "a");
	if (r == 0)
		r = k->make(p, fill, 1);
	if (r == 0)
		r = k->remove(p, other);
	if (r == 0)
		r = k->make(p, "a", tag);
	return r;
}

/* "a" in slot 0 and filler "g" in slot 1, from an empty region. */
static void place_a(struct env *e, const struct kind *k)
{
	cr_assert_eq(k->make(e->p, "a", 2), 0);
	cr_assert_eq(k->make(e->p, "g", 1), 0);
	cr_assert_eq(seg_find(prot_hdr(e->p), k->reg, "a"), 0);
}

static uint32_t tolerance_of(prot_t *p, const char *name)
{
	struct prot_breaker_status st;
	int r = prot_breaker_status(p, name, &st);
	cr_assert_eq(r, 0, "%s: %s", name, prot_strerror(r));
	cr_assert_str_eq(st.name, name);
	return st.opts.tolerance;
}

/* Between two calls of this process, this process moves "a": the second call finds it there. */
Test(resolve, breaker_moved_by_this_process_between_two_calls)
{
	struct env *e = start("");
	place_a(e, &breakers);
	cr_assert_eq(tolerance_of(e->p, "a"), 2u);
	cr_assert_eq(move_a(e->p, &breakers, "f", "g", 5), 0);
	cr_assert_eq(seg_find(prot_hdr(e->p), REG_BREAKERS, "a"), 1, "set-up: a moved to slot 1");
	cr_expect_eq(tolerance_of(e->p, "a"), 5u);
	cr_expect_eq(tolerance_of(e->p, "f"), 1u);
	cr_assert_eq(prot_breaker_blow(e->p, "a"), 0);
	cr_expect_eq(prot_breaker_ask(e->p, "a"), -PROT_EBLOWN, "the write went to a's slot");
	cr_expect_eq(prot_breaker_ask(e->p, "f"), 0, "and not to the slot a left");
	th_unserve(e->p, e->protd);
}

/* i: bit 0 the kind (breakers, pools), bit 1 which filler goes where (see move_a). */
static int child_move(void *arg, int i)
{
	struct env *e = arg;
	prot_t *q = NULL;
	if (prot_open(e->seg, 0, &q) != 0)
		return 2;
	int r = move_a(q, i & 1 ? &pools : &breakers, i & 2 ? "g" : "f", i & 2 ? "f" : "g", 4);
	prot_close(q);
	return r == 0 ? 0 : 3;
}

static void child_moves(struct env *e, int how)
{
	pid_t pid = th_fork(child_move, e, how);
	int st = 0;
	cr_assert_eq(th_wait(pid, 10000, &st), 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the other process could not move a (%d)", st);
}

/* Between two calls of this process, another process (its own handle) moves "a". */
Test(resolve, breaker_moved_by_another_process_between_two_calls)
{
	struct env *e = start("");
	place_a(e, &breakers);
	cr_assert_eq(tolerance_of(e->p, "a"), 2u);
	prot_breaker_token tok;
	cr_assert_eq(prot_breaker_allow(e->p, "a", &tok), 0);
	child_moves(e, 0);
	cr_assert_eq(seg_find(prot_hdr(e->p), REG_BREAKERS, "a"), 1, "set-up: a moved to slot 1");
	cr_expect_eq(prot_breaker_record(e->p, &tok, PROT_OUTCOME_SUCCESS, 0), -PROT_ESTALE,
	             "a token of the removed a");
	cr_expect_eq(tolerance_of(e->p, "a"), 4u);
	cr_assert_eq(prot_breaker_allow(e->p, "a", &tok), 0);
	cr_expect_eq((uint32_t)tok.opaque[0], 1u, "the token names a's new slot");
	cr_expect_eq(prot_breaker_record(e->p, &tok, PROT_OUTCOME_SUCCESS, 0), 0);
	th_unserve(e->p, e->protd);
}

/* The generation protd makes odd while it changes slots: a call between two equal even loads
 * overlapped no change, so its answer must be exact. */
static uint64_t cfg_gen(prot_t *p)
{
	return atomic_load_explicit(&prot_hdr(p)->config_gen, memory_order_acquire);
}

/* While the parent keeps moving "a", ask for it: an answer given while nothing changed names a. */
static int child_watch(void *arg, int i)
{
	struct env *e = arg;
	(void)i;
	while (!atomic_load(&e->done)) {
		uint64_t g0 = cfg_gen(e->p);
		struct prot_breaker_status st;
		int r = prot_breaker_status(e->p, "a", &st);
		if ((g0 & 1) || cfg_gen(e->p) != g0)
			continue;
		atomic_fetch_add(&e->checked, 1);
		if (r != -PROT_ENOBREAKER && (r != 0 || strcmp(st.name, "a") != 0))
			atomic_fetch_add(&e->wrong, 1);
	}
	struct prot_breaker_status st;
	int r = prot_breaker_status(e->p, "a", &st);
	return r == 0 && strcmp(st.name, "a") == 0 && st.opts.tolerance == 9 ? 0 : 1;
}

Test(resolve, breaker_moved_while_another_process_asks, .timeout = 60)
{
	struct env *e = start("");
	place_a(e, &breakers);
	pid_t pid = th_fork(child_watch, e, 0);
	const char *fill[2] = { "f", "g" };
	for (int round = 0; round < 12; round++)
		cr_assert_eq(move_a(e->p, &breakers, fill[round % 2], fill[(round + 1) % 2], 3), 0, "round %d", round);
	cr_assert_eq(move_a(e->p, &breakers, "f", "g", 9), 0);
	for (int i = 0; i < 200 && atomic_load(&e->checked) < 50; i++)
		usleep(1000); /* some answers after the last move too */
	atomic_store(&e->done, 1);
	int st = 0;
	cr_assert_eq(th_wait(pid, 10000, &st), 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "after the moves: not a's answer");
	cr_expect_gt(atomic_load(&e->checked), 0, "no answer was checked");
	cr_expect_eq(atomic_load(&e->wrong), 0, "%d wrong answers of %d", atomic_load(&e->wrong),
	             atomic_load(&e->checked));
	th_unserve(e->p, e->protd);
}

/* ---- pools: the lease names the slot the checkout used --------------------------------------- */

static void checkout_a_in(struct env *e, uint32_t slot, uint32_t size)
{
	prot_lease lease;
	void *conn = NULL;
	cr_assert_eq(prot_pool_checkout(e->p, "a", 0, &lease, &conn), 0);
	cr_expect_eq((uint32_t)lease.opaque[1], slot, "the lease is of slot %u", slot);
	cr_expect_neq(conn, NULL, "the connector registered by name serves the pool again");
	struct prot_pool_status ps;
	cr_assert_eq(prot_pool_status(e->p, "a", &ps), 0);
	cr_expect_str_eq(ps.name, "a");
	cr_expect_eq(ps.size, size);
	cr_expect_eq(ps.in_use, 1u);
	cr_expect_eq(prot_pool_checkin(e->p, &lease, PROT_CHECKIN_OK), 0);
}

Test(resolve, pool_moved_between_two_calls)
{
	struct env *e = start("");
	place_a(e, &pools);
	th_pool_register(e->p, "a", &e->conns);
	checkout_a_in(e, 0, 2);
	cr_assert_eq(move_a(e->p, &pools, "f", "g", 3), 0);
	cr_assert_eq(seg_find(prot_hdr(e->p), REG_POOLS, "a"), 1, "set-up: a moved to slot 1");
	checkout_a_in(e, 1, 3);
	child_moves(e, 1 | 2);
	cr_assert_eq(seg_find(prot_hdr(e->p), REG_POOLS, "a"), 0, "set-up: a moved back to slot 0");
	checkout_a_in(e, 0, 4);
	th_unserve(e->p, e->protd);
}

/* ---- keys: the facade's call is counted in the key's slot ------------------------------------ */
static int noop(const struct prot_call *call)
{
	(void)call;
	return 0;
}

static uint64_t calls_of(struct env *e, const char *key)
{
	struct prot_shm_header *h = prot_hdr(e->p);
	int i = seg_find(h, REG_KEYS, key);
	cr_assert_geq(i, 0, "%s: %s", key, prot_strerror(i));
	return atomic_load(&((struct prot_key_slot *)seg_entry(h, REG_KEYS, (uint32_t)i))->stats.calls);
}

/* Reload protd with these [key] sections and wait for the change to be applied. */
static void reload(struct env *e, const char *sections)
{
	FILE *f = fopen(e->ini, "w");
	cr_assert(f);
	fprintf(f, "%s%s", ini_head, sections);
	fclose(f);
	uint64_t g = cfg_gen(e->p);
	kill(e->protd, SIGHUP);
	for (int i = 0; i < 5000 && cfg_gen(e->p) == g; i++)
		usleep(1000);
	for (int i = 0; i < 5000 && (cfg_gen(e->p) & 1); i++)
		usleep(1000);
	cr_assert_neq(cfg_gen(e->p), g, "the reload was not applied");
}

Test(resolve, key_moved_by_reloads_between_two_calls)
{
	static const char ka[] = "[key a]\ntimeout = 1s\n\n", kb[] = "[key b]\ntimeout = 1s\n\n",
	                  kc[] = "[key c]\ntimeout = 1s\n\n";
	char two[256];
	snprintf(two, sizeof two, "%s%s", ka, kc);
	struct env *e = start(two);
	cr_assert_eq(seg_find(prot_hdr(e->p), REG_KEYS, "a"), 0);
	cr_assert_eq(prot_execute(e->p, "a", NULL, noop, NULL, NULL), 0);
	cr_assert_eq(calls_of(e, "a"), 1u);
	snprintf(two, sizeof two, "%s%s", kb, kc); /* b takes a's slot */
	reload(e, two);
	snprintf(two, sizeof two, "%s%s", kb, ka); /* a takes c's */
	reload(e, two);
	cr_assert_eq(seg_find(prot_hdr(e->p), REG_KEYS, "a"), 1, "set-up: a moved to slot 1");
	cr_assert_eq(seg_find(prot_hdr(e->p), REG_KEYS, "b"), 0);
	cr_assert_eq(prot_execute(e->p, "a", NULL, noop, NULL, NULL), 0);
	cr_expect_eq(calls_of(e, "a"), 1u, "counted in a's new slot");
	cr_expect_eq(calls_of(e, "b"), 0u, "not in the slot a left");
	struct prot_protection_status ps;
	cr_assert_eq(prot_get_protection_status(e->p, "a", &ps), 0);
	cr_expect_eq(ps.calls, 1u);
	cr_expect_eq(ps.timeout_ms, 1000u);
	th_unserve(e->p, e->protd);
}
