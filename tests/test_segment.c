/* test_segment.c — the segment seen from libprot: layout, attach, every validation error, process
 * identity and fork, named lookup, the event ring, retirement and re-attach. Segments are crafted
 * in the test (seg_layout + ftruncate + mmap) where the test needs a precise defect, and come from
 * a real protd where the test is about protd's segment.
 * Length (over ~700 lines): every case is a defect of one shared object (the segment), crafted by
 * the helpers here; the validation cases are a list, one per check of lib/segment.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "craft.h"
#include "harness.h"

static int open_err(const char *name, unsigned flags)
{
	prot_t *p = (prot_t *)0x1; /* must stay untouched on failure */
	int r = prot_open(name, flags, &p);
	if (r == 0)
		prot_close(p);
	else
		cr_assert_eq(p, (prot_t *)0x1, "out-param written on failure");
	return r;
}

/* ---- layout -------------------------------------------------------------------------------- */

Test(segment, layout_is_aligned_disjoint_and_valid)
{
	struct seg_geometry g = {.max_keys = 32, .max_breakers = 32, .max_pools = 8,
	                         .pool_max_slots = 64, .pool_max_waiters = 128, .events = 1024,
	                         .rate_entities = 65536};
	size_t size;
	cr_assert_eq(seg_layout(&g, NULL, &size), 0);
	struct prot_shm_header *h;
	cr_assert_eq(seg_map(-1, size, false, &h), 0);
	cr_assert_eq(seg_layout(&g, h, &size), 0);
	h->magic = PROT_MAGIC;
	h->abi_version = PROT_ABI_VERSION;
	cr_expect_eq(seg_validate(h, size), 0);
	cr_assert_eq(seg_take_geometry(h, size), 0);
	cr_expect_eq(h->rate_groups, 2048u);
	cr_expect_eq(h->region[REG_LEASES].count, 8u * 64);
	cr_expect_eq(h->region[REG_WAITERS].count, 8u * 128);
	cr_expect_eq(size % 4096, 0u);
	for (int i = 0; i < REG_COUNT_; i++)
		cr_expect_eq(h->region[i].off % 64, 0u, "region %d misaligned", i);
	cr_expect_eq(h->region[REG_RATE_GROUPS].off % 4096, 0u, "big table page-aligned");
	struct seg_geometry back;
	seg_geometry_of(h, &back);
	cr_expect_eq(back.max_keys, 32u);
	cr_expect_eq(back.rate_entities, 65536u);
	seg_unmap(h, size);
}

Test(segment, rate_groups_round_up_to_power_of_two)
{
	struct seg_geometry g = small_geo;
	size_t size;
	struct prot_shm_header h;
	g.rate_entities = 100; /* 4 groups */
	cr_assert_eq(seg_layout(&g, &h, &size), 0);
	cr_expect_eq(h.rate_groups, 4u);
	g.rate_entities = 3 * 32 + 1; /* 4 groups (3.03 -> 4) */
	cr_assert_eq(seg_layout(&g, &h, &size), 0);
	cr_expect_eq(h.rate_groups, 4u);
	g.rate_entities = 5 * 32; /* 5 -> 8 */
	cr_assert_eq(seg_layout(&g, &h, &size), 0);
	cr_expect_eq(h.rate_groups, 8u);
	g.rate_entities = 0; /* at least one group */
	cr_assert_eq(seg_layout(&g, &h, &size), 0);
	cr_expect_eq(h.rate_groups, 1u);
}

Test(segment, capacity_too_large_is_refused)
{
	struct seg_geometry g = small_geo;
	size_t size = 12345;
	g.rate_entities = 1ull << 40;
	cr_expect_eq(seg_layout(&g, NULL, &size), -PROT_ECAPACITY);
	g = small_geo;
	g.max_pools = 1u << 20;
	g.pool_max_slots = 1u << 20; /* 2^40 leases: does not fit the count */
	cr_expect_eq(seg_layout(&g, NULL, &size), -PROT_ECAPACITY);
	cr_expect_eq(size, 12345u, "size untouched on failure");
}

/* ---- attach and validation errors -------------------------------------------------------- */

Test(segment, attach_crafted_segment)
{
	const char *name = th_segname("ok");
	struct crafted c = craft(name);
	prot_t *p = NULL;
	cr_assert_eq(prot_open(name, 0, &p), 0);
	struct prot_info info;
	cr_assert_eq(prot_get_info(p, &info), 0);
	cr_expect_str_eq(info.segment, name);
	cr_expect_eq(info.abi_version, PROT_ABI_VERSION);
	cr_expect_eq(info.size, c.size);
	cr_expect_eq(info.max_keys, 4u);
	cr_expect_eq(info.max_pools, 2u);
	cr_expect_eq(info.keys, 0u);
	cr_expect_eq(info.rate_buckets_max, 4u * 32);
	cr_expect_eq(info.protd_pid, 0);
	cr_expect_eq(info.protd_alive, 0);
	cr_expect_eq(info.retired, 0);
	prot_close(p);
	uncraft(&c);
}

Test(segment, name_from_environment)
{
	const char *name = th_segname("env");
	struct crafted c = craft(name);
	prot_t *p = NULL;
	setenv("PROT_SEGMENT", name, 1);
	cr_assert_eq(prot_open(NULL, 0, &p), 0);
	struct prot_info info;
	prot_get_info(p, &info);
	cr_expect_str_eq(info.segment, name);
	prot_close(p);
	unsetenv("PROT_SEGMENT");
	uncraft(&c);
}

Test(segment, bad_names_are_einval)
{
	cr_expect_eq(open_err("noslash", 0), -EINVAL);
	cr_expect_eq(open_err("/a/b", 0), -EINVAL);
	cr_expect_eq(open_err("/", 0), -EINVAL);
	char longname[80];
	memset(longname, 'x', sizeof longname);
	longname[0] = '/';
	longname[70] = 0;
	cr_expect_eq(open_err(longname, 0), -EINVAL);
	cr_expect_eq(prot_open("/x", 0, NULL), -EINVAL);
}

Test(segment, missing_is_enoseg)
{
	cr_expect_eq(open_err(th_segname("missing"), 0), -PROT_ENOSEG);
	cr_expect_eq(open_err(th_segname("missing"), PROT_OPEN_RDONLY), -PROT_ENOSEG);
}

Test(segment, being_created_is_enoseg)
{
	/* protd has created the object but not sized it yet */
	const char *name = th_segname("empty");
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert(fd >= 0);
	cr_expect_eq(open_err(name, 0), -PROT_ENOSEG);
	/* ... sized it but not yet stamped the header */
	cr_assert_eq(ftruncate(fd, 1 << 16), 0);
	cr_expect_eq(open_err(name, 0), -PROT_ENOSEG);
	close(fd);
	/* ... stamped but not yet published LIVE */
	const char *name2 = th_segname("init");
	struct crafted c = craft(name2);
	atomic_store(&c.h->state, SEG_STATE_INIT);
	cr_expect_eq(open_err(name2, 0), -PROT_ENOSEG);
	uncraft(&c);
}

Test(segment, wrong_magic_is_ecorrupt)
{
	const char *name = th_segname("magic");
	struct crafted c = craft(name);
	c.h->magic ^= 1;
	cr_expect_eq(open_err(name, 0), -PROT_ECORRUPT);
	cr_expect_eq(strstr(prot_strerror(-PROT_ECORRUPT), "corrupt") != NULL, 1);
	uncraft(&c);
}

Test(segment, wrong_abi_is_eabi)
{
	const char *name = th_segname("abi");
	struct crafted c = craft(name);
	c.h->abi_version = PROT_ABI_VERSION + 1;
	cr_expect_eq(open_err(name, 0), -PROT_EABI);
	uncraft(&c);
}

Test(segment, wrong_size_is_esize)
{
	const char *name = th_segname("size");
	struct crafted c = craft(name);
	int fd = shm_open(name, O_RDWR, 0);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, (off_t)c.size + 4096), 0); /* grown */
	cr_expect_eq(open_err(name, 0), -PROT_ESIZE);
	cr_assert_eq(ftruncate(fd, (off_t)c.size - 4096), 0); /* shrunk */
	cr_expect_eq(open_err(name, 0), -PROT_ESIZE);
	cr_assert_eq(ftruncate(fd, 100), 0); /* too small for a header: refused before reading it */
	cr_expect_eq(open_err(name, 0), -PROT_ESIZE);
	close(fd);
	munmap(c.h, c.size); /* the pages beyond 100 bytes are gone: do not touch them */
}

/* Damage one thing in a fresh crafted segment and expect PROT_ECORRUPT. */
static void expect_corrupt(void (*damage)(struct prot_shm_header *h), const char *what)
{
	const char *name = th_segname("corrupt");
	struct crafted c = craft(name);
	damage(c.h);
	cr_expect_eq(open_err(name, 0), -PROT_ECORRUPT, "%s not detected", what);
	cr_expect_eq(seg_validate(c.h, c.size), -PROT_ECORRUPT, "%s not detected", what);
	uncraft(&c);
	shm_unlink(name);
}

static void dmg_misaligned(struct prot_shm_header *h) { h->region[REG_KEYS].off += 8; }
static void dmg_beyond_end(struct prot_shm_header *h) { h->region[REG_EVENTS].off = h->total_size; h->region[REG_EVENTS].off -= 64; }
static void dmg_overflow(struct prot_shm_header *h) { h->region[REG_BREAKERS].off = UINT64_MAX - 63; }
static void dmg_overlap(struct prot_shm_header *h) { h->region[REG_POOLS].off = h->region[REG_KEYS].off; }
static void dmg_in_header(struct prot_shm_header *h) { h->region[REG_KEYS].off = 0; }
static void dmg_stride(struct prot_shm_header *h) { h->region[REG_KEYS].stride += 64; }
static void dmg_count(struct prot_shm_header *h) { h->region[REG_RATE_GROUPS].count = 1u << 30; }
static void dmg_leases(struct prot_shm_header *h) { h->pool_max_slots++; }
static void dmg_waiters(struct prot_shm_header *h) { h->region[REG_WAITERS].count--; }
static void dmg_groups(struct prot_shm_header *h) { h->rate_groups = 3; h->region[REG_RATE_GROUPS].count = 3; }
static void dmg_group_slots(struct prot_shm_header *h) { h->rate_group_slots = 16; }
static void dmg_hdr_size(struct prot_shm_header *h) { h->header_size = 64; }
static void dmg_state(struct prot_shm_header *h) { atomic_store(&h->state, 7); }
static void dmg_ctl_path(struct prot_shm_header *h) { memset(h->control_path, 'a', sizeof h->control_path); }

Test(segment, corrupt_geometry_is_ecorrupt)
{
	expect_corrupt(dmg_misaligned, "misaligned region");
	expect_corrupt(dmg_beyond_end, "region beyond the end");
	expect_corrupt(dmg_overflow, "offset overflow");
	expect_corrupt(dmg_overlap, "overlapping regions");
	expect_corrupt(dmg_in_header, "region inside the header");
	expect_corrupt(dmg_stride, "wrong stride");
	expect_corrupt(dmg_count, "huge count");
	expect_corrupt(dmg_leases, "lease count inconsistent");
	expect_corrupt(dmg_waiters, "waiter count inconsistent");
	expect_corrupt(dmg_groups, "groups not a power of two");
	expect_corrupt(dmg_group_slots, "group slots");
	expect_corrupt(dmg_hdr_size, "header size");
	expect_corrupt(dmg_state, "unknown state");
	expect_corrupt(dmg_ctl_path, "control path without NUL");
}

/* ---- permissions (needs root to make a segment another user cannot open) ------------------ */

static uid_t nobody_uid(void)
{
	struct passwd *pw = getpwnam("nobody");
	return pw ? pw->pw_uid : 65534;
}

struct perm_args {
	const char *name;
	unsigned flags;
};

static int open_as_nobody(void *arg, int i)
{
	(void)i;
	struct perm_args *a = arg;
	if (setgid(65534) < 0 || setuid(nobody_uid()) < 0)
		return 100;
	prot_t *p = NULL;
	int r = prot_open(a->name, a->flags, &p);
	if (r == 0) {
		struct prot_info info;
		r = prot_get_info(p, &info);
		prot_close(p);
		return r == 0 ? 0 : 101;
	}
	return r == -EACCES ? 13 : 102;
}

static int run_as_nobody(const char *name, unsigned flags)
{
	struct perm_args a = {name, flags};
	int st;
	pid_t pid = th_fork(open_as_nobody, &a, 0);
	cr_assert_eq(th_wait(pid, 5000, &st), 0);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

Test(segment, permission_denied_is_eacces)
{
	if (geteuid() != 0)
		cr_skip("needs root to open a segment as another user");
	const char *name = th_segname("perm");
	struct crafted c = craft_mode(name, &small_geo, 0600);
	cr_expect_eq(run_as_nobody(name, 0), 13, "0600 root segment must be -EACCES for nobody");
	cr_expect_eq(run_as_nobody(name, PROT_OPEN_RDONLY), 13);
	uncraft(&c);
}

Test(segment, read_permission_allows_read_only_attach)
{
	if (geteuid() != 0)
		cr_skip("needs root to open a segment as another user");
	const char *name = th_segname("rdonly");
	struct crafted c = craft_mode(name, &small_geo, 0644);
	cr_expect_eq(run_as_nobody(name, PROT_OPEN_RDONLY), 0, "read-only attach with read permission");
	cr_expect_eq(run_as_nobody(name, 0), 13, "read-write attach needs write permission");
	uncraft(&c);
}

/* ---- named slots --------------------------------------------------------------------------- */

Test(segment, find_live_named_slots)
{
	const char *name = th_segname("find");
	struct crafted c = craft(name);
	name_slot(c.h, REG_KEYS, 2, "api");
	name_slot(c.h, REG_BREAKERS, 0, "api");
	name_slot(c.h, REG_POOLS, 1, "db");
	name_slot(c.h, REG_KEYS, 3, "gone");
	struct prot_named *gone = seg_entry(c.h, REG_KEYS, 3);
	atomic_store(&gone->state, SLOT_RETIRED | 1u << 8);
	/* a slot whose name fills the array without a NUL must never match nor be read past */
	unterminated_slot(c.h, REG_KEYS, 0);

	prot_t *p = NULL;
	cr_assert_eq(prot_open(name, 0, &p), 0);
	struct prot_shm_header *h = prot_hdr(p);
	cr_expect_eq(seg_find(h, REG_KEYS, "api"), 2);
	cr_expect_eq(seg_find(h, REG_BREAKERS, "api"), 0);
	cr_expect_eq(seg_find(h, REG_POOLS, "db"), 1);
	cr_expect_eq(seg_find(h, REG_KEYS, "db"), -PROT_ENOKEY);
	cr_expect_eq(seg_find(h, REG_BREAKERS, "db"), -PROT_ENOBREAKER);
	cr_expect_eq(seg_find(h, REG_POOLS, "api"), -PROT_ENOPOOL);
	cr_expect_eq(seg_find(h, REG_KEYS, "gone"), -PROT_ENOKEY, "retired slots are not found");
	char zz[PROT_NAME_BYTES];
	memset(zz, 'z', PROT_NAME_MAX);
	zz[PROT_NAME_MAX] = 0;
	cr_expect_eq(seg_find(h, REG_KEYS, zz), -PROT_ENOKEY, "47 z's is not 48 z's");
	char toolong[PROT_NAME_BYTES + 8];
	memset(toolong, 'a', sizeof toolong - 1);
	toolong[sizeof toolong - 1] = 0;
	cr_expect_eq(seg_find(h, REG_KEYS, toolong), -PROT_ETOOLONG);

	struct prot_info info;
	prot_get_info(p, &info);
	cr_expect_eq(info.keys, 2u, "live slots (the unterminated one counts as live)");
	cr_expect_eq(info.breakers, 1u);
	cr_expect_eq(info.pools, 1u);
	prot_close(p);
	uncraft(&c);
}

static int collect(const char *name, void *arg)
{
	char *buf = arg;
	strcat(buf, name);
	strcat(buf, ",");
	return 0;
}

static int stop_at_first(const char *name, void *arg)
{
	(void)name;
	++*(int *)arg;
	return 1;
}

Test(segment, list_skips_free_and_unterminated_names)
{
	const char *name = th_segname("list");
	struct crafted c = craft(name);
	name_slot(c.h, REG_KEYS, 1, "a");
	name_slot(c.h, REG_KEYS, 3, "b");
	unterminated_slot(c.h, REG_KEYS, 2);
	name_slot(c.h, REG_POOLS, 0, "p");
	prot_t *p = NULL;
	cr_assert_eq(prot_open(name, PROT_OPEN_RDONLY, &p), 0);
	char buf[256] = "";
	cr_assert_eq(prot_list_keys(p, collect, buf), 0);
	cr_expect_str_eq(buf, "a,b,");
	buf[0] = 0;
	cr_assert_eq(prot_list_breakers(p, collect, buf), 0);
	cr_expect_str_eq(buf, "");
	cr_assert_eq(prot_list_pools(p, collect, buf), 0);
	cr_expect_str_eq(buf, "p,");
	int calls = 0;
	prot_list_keys(p, stop_at_first, &calls);
	cr_expect_eq(calls, 1);
	prot_close(p);
	uncraft(&c);
}

/* ---- process identity (lib/ident.c) ----------------------------------------------------------- */

/* A liveness view of c's segment from this test process: its own fd, no identity of its own. */
static struct prot_idv test_view(const char *name, struct crafted *c, int *fd)
{
	*fd = shm_open(name, O_RDONLY, 0);
	cr_assert(*fd >= 0);
	return (struct prot_idv){ .h = c->h, .fd = *fd, .nprocs = c->h->region[REG_PROCS].count };
}

Test(segment, identity_lives_with_the_handle_and_dies_at_close)
{
	const char *name = th_segname("idclose");
	struct crafted c = craft(name);
	int fd;
	struct prot_idv v = test_view(name, &c, &fd);
	prot_t *p;
	cr_assert_eq(prot_open(name, 0, &p), 0);
	uint64_t id = prot_self(p, prot_hdr(p));
	cr_assert_neq(id, 0u);
	cr_expect_eq(ident_alive(&v, id), 1);
	/* a second handle of the same process, opened and closed, must not kill the first one's
	 * identity (the POSIX record lock trap) */
	prot_t *q;
	cr_assert_eq(prot_open(name, 0, &q), 0);
	uint64_t id2 = prot_self(q, prot_hdr(q));
	cr_expect_neq(id2, id);
	prot_close(q);
	cr_expect_eq(ident_alive(&v, id2), 0, "a closed handle's identity is dead");
	cr_expect_eq(ident_alive(&v, id), 1, "the other handle's identity survives");
	/* a read-only handle has no identity */
	prot_t *ro;
	cr_assert_eq(prot_open(name, PROT_OPEN_RDONLY, &ro), 0);
	cr_expect_eq(prot_self(ro, prot_hdr(ro)), 0u);
	prot_close(ro);
	prot_close(p);
	cr_expect_eq(ident_alive(&v, id), 0);
	/* garbage is never alive: a slot out of range, an incarnation never handed out, 0 */
	cr_expect_eq(ident_alive(&v, 0), 0);
	cr_expect_eq(ident_alive(&v, (uint64_t)5 << PROC_SLOT_BITS | 0xfff0u), 0);
	cr_expect_eq(ident_alive(&v, id + ((uint64_t)1000 << PROC_SLOT_BITS)), 0);
	close(fd);
	uncraft(&c);
}

struct id_report {
	uint64_t id;
	volatile int ready, go;
};

static int hold_identity(void *arg, int i)
{
	(void)i;
	struct id_report *r = arg;
	prot_t *p;
	char name[64];
	snprintf(name, sizeof name, "%s", (const char *)(r + 1));
	if (prot_open(name, 0, &p) != 0)
		return 1;
	r->id = prot_self(p, prot_hdr(p));
	r->ready = 1;
	for (int k = 0; k < 10000 && !r->go; k++) /* bounded: 10 s */
		usleep(1000);
	return 0; /* exits without prot_close */
}

Test(segment, identity_dies_with_the_process_stopped_or_not)
{
	const char *name = th_segname("idkill");
	struct crafted c = craft(name);
	int fd;
	struct prot_idv v = test_view(name, &c, &fd);
	struct id_report *r = th_shared(sizeof *r + 64);
	snprintf((char *)(r + 1), 64, "%s", name);
	pid_t pid = th_fork(hold_identity, r, 0);
	for (int k = 0; k < 5000 && !r->ready; k++)
		usleep(1000);
	cr_assert_eq(r->ready, 1);
	cr_expect_eq(ident_alive(&v, r->id), 1);
	kill(pid, SIGSTOP); /* a stopped process is alive */
	usleep(50000);
	cr_expect_eq(ident_alive(&v, r->id), 1, "stopped is not dead");
	kill(pid, SIGKILL);
	cr_assert_eq(th_wait(pid, 5000, NULL), 0);
	cr_expect_eq(ident_alive(&v, r->id), 0, "killed: its record lock is gone");
	close(fd);
	uncraft(&c);
}

/* ---- fork ------------------------------------------------------------------------------------ */

struct fork_report {
	uint64_t parent_id, child_id, child_own_id;
	int parent_alive_seen_by_child, parent_dead_seen_by_child;
	int child_hdr_ok;
	volatile int parent_gone, grandchild_up;
	char name[64];
};

static prot_t *fork_handle;
static struct fork_report *fork_rep;

static int child_uses_parent_handle(void *arg, int i)
{
	(void)arg;
	(void)i;
	struct prot_shm_header *h = prot_hdr(fork_handle);
	fork_rep->child_hdr_ok = h != NULL;
	fork_rep->child_id = prot_self(fork_handle, h);
	/* the lock is usable in the child */
	pthread_mutex_lock(&fork_handle->lock);
	pthread_mutex_unlock(&fork_handle->lock);
	struct prot_idv v;
	prot_idv(fork_handle, h, &v);
	fork_rep->parent_alive_seen_by_child = ident_alive(&v, fork_rep->parent_id);
	/* and a child may attach on its own as well */
	prot_t *own = NULL;
	if (prot_open(fork_rep->name, 0, &own) != 0)
		return 1;
	fork_rep->child_own_id = prot_self(own, prot_hdr(own));
	prot_close(own);
	return 0;
}

Test(segment, forked_child_takes_its_own_identity)
{
	const char *name = th_segname("fork");
	struct crafted c = craft(name);
	cr_assert_eq(prot_open(name, 0, &fork_handle), 0);
	fork_rep = th_shared(sizeof *fork_rep);
	snprintf(fork_rep->name, sizeof fork_rep->name, "%s", name);
	fork_rep->parent_id = prot_self(fork_handle, prot_hdr(fork_handle));
	cr_assert_neq(fork_rep->parent_id, 0u);
	th_fork_n(1, child_uses_parent_handle, NULL, 5000);
	cr_expect_eq(fork_rep->child_hdr_ok, 1);
	cr_expect_neq(fork_rep->child_id, 0u);
	cr_expect_neq(fork_rep->child_id, fork_rep->parent_id);
	cr_expect_neq(fork_rep->child_own_id, 0u);
	cr_expect_neq(fork_rep->child_own_id, fork_rep->child_id);
	cr_expect_eq(fork_rep->parent_alive_seen_by_child, 1);
	cr_expect_eq(prot_self(fork_handle, prot_hdr(fork_handle)), fork_rep->parent_id,
	             "the parent keeps its identity");
	prot_close(fork_handle);
	uncraft(&c);
}

/* A child that inherited the handle must not keep a dead parent looking alive (OFD locks are
 * shared through fork: the atfork handler gives the child a fresh open file description). */
static int middle_parent(void *arg, int i)
{
	(void)arg;
	(void)i;
	prot_t *p;
	if (prot_open(fork_rep->name, 0, &p) != 0)
		return 1;
	fork_rep->parent_id = prot_self(p, prot_hdr(p));
	pid_t kid = fork();
	if (kid == 0) {
		/* the grandchild: never calls prot before its parent is gone. fork() has returned
		 * here, so the atfork handler has given it descriptions of its own. */
		fork_rep->grandchild_up = 1;
		for (int k = 0; k < 5000 && !fork_rep->parent_gone; k++)
			usleep(1000);
		struct prot_idv v;
		struct prot_shm_header *h = prot_hdr(p);
		prot_idv(p, h, &v);
		fork_rep->parent_dead_seen_by_child = ident_alive(&v, fork_rep->parent_id) == 0;
		fork_rep->child_id = v.self;
		_exit(0);
	}
	/* between fork() and its return in the child, the child still shares our description: a
	 * death is told a few instructions late, never wrongly; wait for the child to be past it */
	for (int k = 0; k < 5000 && kid > 0 && !fork_rep->grandchild_up; k++)
		usleep(1000);
	return kid > 0 ? 0 : 1; /* exits, grandchild still running with the inherited fd */
}

Test(segment, child_does_not_keep_a_dead_parent_alive)
{
	const char *name = th_segname("forkdead");
	struct crafted c = craft(name);
	int fd;
	struct prot_idv v = test_view(name, &c, &fd);
	fork_rep = th_shared(sizeof *fork_rep);
	snprintf(fork_rep->name, sizeof fork_rep->name, "%s", name);
	th_fork_n(1, middle_parent, NULL, 5000);
	cr_expect_eq(ident_alive(&v, fork_rep->parent_id), 0, "the parent exited: dead, child or not");
	fork_rep->parent_gone = 1;
	for (int k = 0; k < 5000 && !fork_rep->child_id; k++)
		usleep(1000);
	cr_expect_eq(fork_rep->parent_dead_seen_by_child, 1);
	cr_expect_neq(fork_rep->child_id, 0u);
	close(fd);
	uncraft(&c);
}

/* ---- event ring ------------------------------------------------------------------------------ */

Test(segment, events_in_order_then_none)
{
	const char *name = th_segname("ev");
	struct crafted c = craft(name);
	prot_event_emit(c.h, EV_BREAKER_OPEN, 3, "api", 7, 8);
	prot_event_emit(c.h, EV_POOL_EXHAUSTED, 1, "db", 0, 0);
	uint64_t cur = prot_event_oldest(c.h), dropped = 0;
	cr_expect_eq(cur, 0u);
	struct prot_event ev;
	cr_assert_eq(prot_event_read(c.h, &cur, &ev, &dropped), 1);
	cr_expect_eq(ev.type, (uint32_t)EV_BREAKER_OPEN);
	cr_expect_str_eq(ev.name, "api");
	cr_expect_eq(ev.object, 3u);
	cr_expect_eq(ev.a, 7u);
	cr_expect_eq(ev.pid, getpid());
	cr_expect_eq(ev.seq, 0u);
	cr_assert_eq(prot_event_read(c.h, &cur, &ev, &dropped), 1);
	cr_expect_str_eq(ev.name, "db");
	cr_expect_str_eq(prot_event_name(ev.type), "pool_exhausted");
	cr_expect_eq(prot_event_read(c.h, &cur, &ev, &dropped), 0);
	cr_expect_eq(dropped, 0u);
	cr_expect_str_eq(prot_event_name(999), "unknown");
	uncraft(&c);
}

Test(segment, lapped_reader_counts_dropped_events)
{
	const char *name = th_segname("evlap");
	struct crafted c = craft(name); /* 8 entries */
	uint64_t cur = 0, dropped = 0;
	for (uint64_t i = 0; i < 20; i++)
		prot_event_emit(c.h, EV_CONFIG_CHANGED, 0, NULL, i, 0);
	struct prot_event ev;
	cr_assert_eq(prot_event_read(c.h, &cur, &ev, &dropped), 1);
	cr_expect_eq(dropped, 12u);
	cr_expect_eq(ev.a, 12u, "the oldest surviving event");
	int n = 1;
	while (prot_event_read(c.h, &cur, &ev, &dropped) == 1)
		n++;
	cr_expect_eq(n, 8);
	cr_expect_eq(ev.a, 19u);
	cr_expect_eq(prot_event_oldest(c.h), 12u);
	uncraft(&c);
}

Test(segment, unpublished_event_is_waited_for_then_skipped)
{
	const char *name = th_segname("evhole");
	struct crafted c = craft(name); /* 8 entries */
	/* a writer that took number 0 and died before publishing it */
	atomic_store(&c.h->event_head, 1);
	uint64_t cur = 0, dropped = 0;
	struct prot_event ev;
	cr_expect_eq(prot_event_read(c.h, &cur, &ev, &dropped), 0, "may still be written");
	for (int i = 0; i < 5; i++)
		prot_event_emit(c.h, EV_CONFIG_CHANGED, 0, NULL, (uint64_t)i, 0);
	cr_assert_eq(prot_event_read(c.h, &cur, &ev, &dropped), 1, "skipped once half the ring passed");
	cr_expect_eq(dropped, 1u);
	cr_expect_eq(ev.a, 0u);
	uncraft(&c);
}

/* ---- errors ---------------------------------------------------------------------------------- */

Test(segment, every_error_has_a_distinct_message)
{
	for (int e = PROT_ENOSEG; e <= PROT_EDISABLED; e++) {
		const char *s = prot_strerror(-e);
		cr_assert_not_null(s);
		cr_expect_str_neq(s, "unknown error", "code %d", e);
		cr_expect_str_eq(prot_strerror(e), s, "either sign");
		for (int f = PROT_ENOSEG; f < e; f++)
			cr_expect_str_neq(prot_strerror(-f), s, "%d and %d share a message", e, f);
	}
	cr_expect_str_eq(prot_strerror(-EACCES), "Permission denied");
	cr_expect_str_eq(prot_strerror(0), "success");
	cr_expect_str_eq(prot_strerror(-4000), "unknown error");
	cr_expect_str_eq(prot_strerror(-PROT_EDISABLED - 1), "unknown error");
	cr_expect_str_eq(prot_strerror(-99999), "unknown error");
	cr_expect_not_null(prot_strerror(-2147483647 - 1));
}

/* ---- retirement ------------------------------------------------------------------------------ */

struct retire_ctx {
	prot_t *p;
	struct prot_shm_header *old;
};

static bool moved_on(void *arg)
{
	struct retire_ctx *r = arg;
	return prot_hdr(r->p) != r->old;
}

Test(segment, retired_segment_reattaches_to_successor)
{
	const char *name = th_segname("retire");
	struct crafted c = craft(name);
	name_slot(c.h, REG_KEYS, 0, "old");
	struct retire_ctx r = {0};
	cr_assert_eq(prot_open(name, 0, &r.p), 0);
	r.old = prot_hdr(r.p);
	/* protd retires and removes the segment; no successor yet: keep using the old mapping */
	atomic_store(&c.h->state, SEG_STATE_RETIRED);
	shm_unlink(name);
	cr_expect_eq(prot_hdr(r.p), r.old);
	cr_expect_eq(seg_find(prot_hdr(r.p), REG_KEYS, "old"), 0, "the old mapping still works");
	struct prot_info info;
	prot_get_info(r.p, &info);
	cr_expect_eq(info.retired, 1);
	/* a new protd publishes a successor under the same name */
	struct seg_geometry g = small_geo;
	g.max_keys = 6;
	struct crafted c2 = craft_mode(name, &g, 0600);
	name_slot(c2.h, REG_KEYS, 5, "new");
	cr_assert(th_until(moved_on, &r, 2000), "no re-attach within 2 s");
	struct prot_shm_header *h = prot_hdr(r.p);
	cr_expect_eq(seg_find(h, REG_KEYS, "new"), 5);
	cr_expect_eq(seg_find(h, REG_KEYS, "old"), -PROT_ENOKEY);
	prot_get_info(r.p, &info);
	cr_expect_eq(info.retired, 0);
	cr_expect_eq(info.max_keys, 6u);
	/* the old mapping is still readable (other threads may be on it) until prot_close */
	cr_expect_eq(atomic_load(&r.old->state), (uint32_t)SEG_STATE_RETIRED);
	prot_close(r.p);
	uncraft(&c);
	uncraft(&c2);
}

Test(segment, retired_segment_ignores_a_successor_that_is_not_live)
{
	const char *name = th_segname("retire2");
	struct crafted c = craft(name);
	prot_t *p = NULL;
	cr_assert_eq(prot_open(name, 0, &p), 0);
	struct prot_shm_header *old = prot_hdr(p);
	atomic_store(&c.h->state, SEG_STATE_RETIRED);
	shm_unlink(name);
	struct crafted c2 = craft(name);
	atomic_store(&c2.h->state, SEG_STATE_INIT); /* protd still creating it */
	usleep(150 * 1000);
	cr_expect_eq(prot_hdr(p), old);
	usleep(150 * 1000);
	cr_expect_eq(prot_hdr(p), old);
	prot_close(p);
	uncraft(&c);
	uncraft(&c2);
}

/* Threads of one process share a handle while it moves to a successor: no thread may see a
 * half-made mapping, and every mapping a thread loaded stays valid until prot_close(). */
struct share_ctx {
	prot_t *p;
	_Atomic int stop;
	_Atomic int bad;
};

static void *hammer(void *arg)
{
	struct share_ctx *s = arg;
	while (!atomic_load(&s->stop)) {
		struct prot_shm_header *h = prot_hdr(s->p);
		if (h->magic != PROT_MAGIC || seg_find(h, REG_KEYS, "k") < 0)
			atomic_fetch_add(&s->bad, 1);
		if (prot_self(s->p, h) == 0)
			atomic_fetch_add(&s->bad, 1);
	}
	return NULL;
}

static bool on_second(void *arg)
{
	struct share_ctx *s = arg;
	return seg_count(prot_hdr(s->p), REG_KEYS) == 6;
}

Test(segment, threads_share_a_handle_across_reattach)
{
	const char *name = th_segname("threads");
	struct crafted c = craft(name);
	name_slot(c.h, REG_KEYS, 0, "k");
	static struct share_ctx s;
	cr_assert_eq(prot_open(name, 0, &s.p), 0);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &s), 0);
	usleep(20 * 1000);
	atomic_store(&c.h->state, SEG_STATE_RETIRED);
	shm_unlink(name);
	usleep(20 * 1000);
	struct seg_geometry g = small_geo;
	g.max_keys = 6;
	struct crafted c2 = craft_mode(name, &g, 0600);
	name_slot(c2.h, REG_KEYS, 3, "k");
	cr_expect(th_until(on_second, &s, 2000), "no re-attach within 2 s");
	atomic_store(&s.stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_expect_eq(atomic_load(&s.bad), 0);
	prot_close(s.p);
	uncraft(&c);
	uncraft(&c2);
}

/* ---- with a real protd ---------------------------------------------------------------------- */

static const char *mini_ini(void)
{
	return th_write_file("mini.ini", "[segment]\nmax_keys = 4\nmax_breakers = 2\nmax_pools = 2\n"
	                                 "rate_entities = 64\nevents = 16\n\n"
	                                 "[key api]\nrate_limit = 10\nrate_window = 1s\n");
}

Test(segment, protd_creates_and_clients_attach)
{
	const char *seg = th_segname("protd");
	pid_t pid = th_protd_start(mini_ini(), seg, NULL);
	prot_t *p = th_open(seg, 5000);
	struct prot_info info;
	cr_assert_eq(prot_get_info(p, &info), 0);
	cr_expect_eq(info.protd_pid, pid);
	cr_expect_eq(info.protd_alive, 1);
	cr_expect_eq(info.retired, 0);
	cr_expect_eq(info.keys, 1u);
	cr_expect_eq(info.max_keys, 4u);
	cr_expect_geq(info.config_generation, 1u);
	struct prot_shm_header *h = prot_hdr(p);
	cr_expect_geq(seg_find(h, REG_KEYS, "api"), 0);
	struct prot_idv v;
	prot_idv(p, h, &v);
	cr_expect_eq(protd_alive(&v), 1, "protd's identity lock is held");
	struct stat st;
	int fd = shm_open(seg, O_RDONLY, 0);
	cr_assert(fd >= 0);
	cr_assert_eq(fstat(fd, &st), 0);
	close(fd);
	cr_expect_eq(st.st_mode & 0777, 0600, "default mode 0600, whatever the umask");
	prot_close(p);
	th_protd_stop(pid);
	cr_expect_eq(open_err(seg, 0), -PROT_ENOSEG, "a clean stop removes the segment");
}

struct successor {
	prot_t *p;
	pid_t pid;
};

static bool serves_again(void *arg)
{
	struct successor *s = arg;
	struct prot_info info;
	return prot_get_info(s->p, &info) == 0 && !info.retired && info.protd_pid == s->pid;
}

Test(segment, clients_follow_protd_to_its_successor)
{
	const char *seg = th_segname("succ");
	const char *ini = mini_ini();
	pid_t pid = th_protd_start(ini, seg, NULL);
	struct successor s = {th_open(seg, 5000), 0};
	struct prot_shm_header *old = prot_hdr(s.p);
	th_protd_stop(pid);
	struct prot_info info;
	cr_assert_eq(prot_get_info(s.p, &info), 0);
	cr_expect_eq(info.retired, 1, "a client sees the retirement");
	cr_expect_eq(prot_hdr(s.p), old, "no successor yet: the old mapping stays in use");
	cr_expect_geq(seg_find(prot_hdr(s.p), REG_KEYS, "api"), 0);
	s.pid = th_protd_start(ini, seg, NULL);
	cr_assert(th_until(serves_again, &s, 3000), "client did not re-attach to the new protd");
	cr_expect_neq(prot_hdr(s.p), old);
	cr_expect_geq(seg_find(prot_hdr(s.p), REG_KEYS, "api"), 0);
	prot_close(s.p);
	th_protd_stop(s.pid);
}
