/* test_huge.c — [segment] huge_pages through the real protd, protctl and libprot: the refusals a
 * host that lacks what a choice needs gets (they name the option and what is missing, exit 1 and
 * leave nothing), the value's parsing and the size rounding --check-config prints, a reload that
 * would change the backing, and, where the host has huge pages, a segment on transparent huge
 * pages and one on hugetlbfs that clients open by name and use.
 *
 * Every test runs in a mount namespace of its own test process (unshare(CLONE_NEWNS)), on a private
 * tmpfs over /dev/shm and, where it needs one, a private hugetlbfs mount: the host's mounts are
 * never changed, and whatever a failed test leaves goes away with its namespace. A host without
 * root or mount namespaces skips them with that reason; the success paths skip when the kernel has
 * no transparent huge pages or no free 2 MiB page in its pool (/proc/sys/vm/nr_hugepages).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "seg_place.h"

static struct th_out out;
static char hugedir[128]; /* this test's hugetlbfs mount, or "" */

#define HEAD "[segment]\nmax_keys = 4\nmax_breakers = 4\nmax_pools = 2\nrate_entities = 1024\n" \
             "events = 64\nhuge_pages = %s\n" \
             "[key k]\nrate_limit = 1000\nrate_window = 1h\n"

/* A private mount namespace with a fresh tmpfs (options: tmpfs_opts) over /dev/shm, no hugetlbfs
 * mount, and with_hugetlbfs: one of its own (options huge_opts). NULL, or why it cannot be had. */
static const char *private_mounts(const char *tmpfs_opts, bool with_hugetlbfs, const char *huge_opts)
{
	static char why[256];
	hugedir[0] = '\0';
	const char *no = th_private_dev_shm(tmpfs_opts);
	if (no || !with_hugetlbfs)
		return no;
	snprintf(hugedir, sizeof hugedir, "/tmp/prot-t-%d-huge", (int)getpid());
	if ((mkdir(hugedir, 0700) < 0 && errno != EEXIST) ||
	    mount("prot-test", hugedir, "hugetlbfs", 0, huge_opts) < 0) {
		snprintf(why, sizeof why, "needs a hugetlbfs of 2 MiB pages (mount -t hugetlbfs -o %s): %s",
		         huge_opts, strerror(errno));
		rmdir(hugedir);
		hugedir[0] = '\0';
		return why;
	}
	return NULL;
}

/* After each test: the test's hugetlbfs mount and its directory go (the namespace's other mounts
 * go with the test's process). */
static void drop_hugedir(void)
{
	if (!hugedir[0])
		return;
	umount2(hugedir, MNT_DETACH);
	rmdir(hugedir);
	hugedir[0] = '\0';
}

TestSuite(huge, .fini = drop_hugedir);

/* protd on HEAD with huge_pages = mode: must exit 1 at once with a message containing each of
 * want[] (NULL-terminated), and leave no segment in /dev/shm nor on the test's hugetlbfs mount. */
static void expect_refusal(const char *mode, const char *tag, const char *const want[])
{
	const char *seg = th_segname(tag);
	const char *ini = th_write_file("huge.ini", HEAD, mode);
	const char *argv[] = { th_protd_path(), "-c", ini, "--segment", seg, NULL };
	int code = th_run(&out, 20000, argv);
	cr_assert_eq(code, 1, "exit %d:\n%s", code, out.err);
	for (int i = 0; want[i]; i++)
		cr_assert(strstr(out.err, want[i]), "no \"%s\" in:\n%s", want[i], out.err);
	cr_assert(!strstr(out.err, "serving"), "%s", out.err);
	cr_assert_eq(th_dir_entries("/dev/shm"), 0, "protd left something in /dev/shm");
	if (hugedir[0])
		cr_assert_eq(th_dir_entries(hugedir), 0, "protd left something on %s", hugedir);
}

/* ---- refusals: always ---------------------------------------------------------------------- */

Test(huge, thp_is_refused_where_dev_shm_gives_no_huge_pages)
{
	const char *why = private_mounts("size=64m", false, NULL);
	if (why)
		cr_skip_test("%s", why);
	const char *want[] = { "[segment] huge_pages = thp", "/dev/shm is mounted without huge=",
	                       "huge=advise", NULL };
	expect_refusal("thp", "thpno", want);
}

Test(huge, hugetlbfs_is_refused_without_a_hugetlbfs_mount)
{
	const char *why = private_mounts("size=64m", false, NULL);
	if (why)
		cr_skip_test("%s", why);
	const char *want[] = { "[segment] huge_pages = hugetlbfs", "no hugetlbfs mount of 2 MiB pages",
	                       "mount -t hugetlbfs", NULL };
	expect_refusal("hugetlbfs", "htlno", want);
}

/* A mount limited to one huge page (size=2M): short of pages whatever the host's pool holds. */
Test(huge, hugetlbfs_is_refused_when_its_pages_are_short)
{
	const char *why = private_mounts("size=64m", true, "pagesize=2M,size=2M");
	if (why)
		cr_skip_test("%s", why);
	char mnt[200];
	snprintf(mnt, sizeof mnt, "the hugetlbfs mount %s cannot hold it", hugedir);
	const char *want[] = { mnt, "huge pages of 2 MiB", "/proc/sys/vm/nr_hugepages", NULL };
	expect_refusal("hugetlbfs", "htlshort", want);
}

/* Clients open /dev/shm first: a hugetlbfs segment of a name /dev/shm holds would not be theirs. */
Test(huge, hugetlbfs_is_refused_while_dev_shm_holds_the_name)
{
	const char *why = private_mounts("size=64m", true, "pagesize=2M");
	if (why)
		cr_skip_test("%s", why);
	const char *seg = th_segname("htlshadow");
	int fd = shm_open(seg, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert(fd >= 0, "%s", strerror(errno));
	close(fd);
	const char *ini = th_write_file("huge.ini", HEAD, "hugetlbfs");
	const char *argv[] = { th_protd_path(), "-c", ini, "--segment", seg, NULL };
	int code = th_run(&out, 20000, argv);
	cr_assert_eq(code, 1, "exit %d:\n%s", code, out.err);
	cr_assert(strstr(out.err, "which clients would open instead"), "%s", out.err);
	cr_assert_eq(th_dir_entries(hugedir), 0, "protd made a segment on %s", hugedir);
	struct stat st;
	cr_assert_eq(stat("/dev/shm", &st), 0);
	cr_assert_eq(th_dir_entries("/dev/shm"), 1, "the /dev/shm object is left as it was");
}

/* ---- the option ---------------------------------------------------------------------------- */

Test(huge, a_bad_value_is_refused_with_its_line)
{
	const char *path = th_write_file("t.ini", "[segment]\nmax_keys = 4\nhuge_pages = yes\n");
	const char *argv[] = { th_protd_path(), "--check-config", path, NULL };
	cr_assert_neq(th_run(&out, 10000, argv), 0);
	char want[200];
	snprintf(want, sizeof want, "%s:3: ", path);
	cr_assert(strstr(out.err, want), "%s", out.err);
	cr_assert(strstr(out.err, "\"yes\" is not one of off | thp | hugetlbfs"), "%s", out.err);
}

/* --check-config prints the size protd makes: whole 2 MiB pages for huge pages, 4 KiB otherwise. */
Test(huge, a_huge_segment_is_sized_in_whole_huge_pages)
{
	static const char *const modes[] = { "off", "thp", "hugetlbfs" };
	unsigned long long size[3];
	for (int i = 0; i < 3; i++) {
		const char *path = th_write_file("t.ini", "[segment]\nrate_entities = 1024\nhuge_pages = %s\n", modes[i]);
		const char *argv[] = { th_protd_path(), "--check-config", path, NULL };
		cr_assert_eq(th_run(&out, 10000, argv), 0, "%s", out.err);
		const char *p = strstr(out.out, "MiB (");
		cr_assert(p && sscanf(p, "MiB (%llu bytes", &size[i]) == 1, "%s", out.out);
	}
	cr_assert_eq(size[0] % 4096, 0);
	cr_assert_neq(size[0] % SEG_HUGE_PAGE, 0, "pick a geometry that is no whole number of huge pages");
	for (int i = 1; i < 3; i++) {
		cr_assert_eq(size[i] % SEG_HUGE_PAGE, 0, "%s: %llu bytes", modes[i], size[i]);
		cr_assert(size[i] > size[0] && size[i] - size[0] < SEG_HUGE_PAGE, "%s: %llu from %llu",
		          modes[i], size[i], size[0]);
	}
}

static bool logged(void *arg)
{
	return th_log_until(*(pid_t *)arg, "reload refused: [segment] huge_pages off -> thp", 1);
}

Test(huge, a_reload_does_not_change_the_backing)
{
	const char *seg = th_segname("reload");
	const char *ini = th_write_file("huge.ini", HEAD, "off");
	pid_t pid = th_protd_start(ini, seg, NULL);
	th_write_file("huge.ini", HEAD, "thp");
	cr_assert_eq(kill(pid, SIGHUP), 0);
	cr_assert(th_until(logged, &pid, 5000), "no refusal logged:\n%s", th_protd_log(pid));
	prot_t *p = th_open(seg, 2000);
	cr_assert_eq(prot_rate_check_key(p, "k", "e", 1, NULL), 1, "protd still serves the segment");
	prot_close(p);
	th_protd_stop(pid);
}

/* ---- huge segments where the host has the pages ---------------------------------------------- */

/* The segment serves: a client opens it by name, decides on it, and sees it on huge pages; protctl
 * reports them; a clean stop removes it from where it was. */
static void serve_on(const char *mode, const char *tag, const char *where)
{
	const char *seg = th_segname(tag);
	const char *ini = th_write_file("huge.ini", HEAD, mode);
	pid_t pid = th_protd_spawn(ini, seg, NULL);
	/* thp is the kernel's best effort: a host with no free 2 MiB page at all makes protd refuse */
	uint64_t end = th_now_ms() + 5000;
	while (!th_log_until(pid, "serving ", 20) && th_now_ms() < end)
		if (th_log_until(pid, "the kernel gave it no huge page", 1))
			cr_skip_test("the kernel had no free 2 MiB page for the segment");
	prot_t *p = th_open(seg, 2000);
	cr_assert_eq(prot_rate_check_key(p, "k", "e", 1, NULL), 1);
	struct prot_info info;
	cr_assert_eq(prot_get_info(p, &info), 0);
	cr_assert_eq(info.size % SEG_HUGE_PAGE, 0, "%llu bytes", (unsigned long long)info.size);
	cr_assert_eq(seg_backing_of(p), (enum seg_huge)(strcmp(mode, "thp") == 0 ? SEG_HUGE_THP : SEG_HUGE_HUGETLBFS));
	cr_assert_eq((uintptr_t)prot_hdr(p) % SEG_HUGE_PAGE, 0, "the client's mapping is 2 MiB-aligned");
	cr_assert_geq(seg_place_huge_bytes(prot_hdr(p)), SEG_HUGE_PAGE, "the client maps a huge page");
	char want[64];
	snprintf(want, sizeof want, "\"huge_pages\": \"%s\"", mode);
	cr_assert_eq(th_protctl(&out, seg, "--json", "status", NULL), 0, "%s", out.err);
	cr_assert(strstr(out.out, want), "%s", out.out);
	char path[256];
	snprintf(path, sizeof path, "%s%s", where, seg);
	cr_assert_eq(access(path, F_OK), 0, "the segment is %s", path);
	prot_close(p);
	cr_assert_eq(th_protd_stop(pid), 0);
	cr_assert(access(path, F_OK) < 0, "%s is left after a clean stop", path);
}

Test(huge, a_thp_segment_is_on_huge_pages)
{
	if (access("/sys/kernel/mm/transparent_hugepage/shmem_enabled", R_OK) < 0)
		cr_skip_test("this kernel has no transparent huge pages on shared memory");
	const char *why = private_mounts("size=256m,huge=advise", false, NULL);
	if (why)
		cr_skip_test("%s", why);
	char reason[320];
	if (seg_place_refusal(SEG_HUGE_THP, reason, sizeof reason) < 0)
		cr_skip_test("%s", reason);
	serve_on("thp", "thp", SEG_SHM_DIR);
}

Test(huge, a_hugetlbfs_segment_serves_clients_by_name)
{
	long free_pages = seg_place_free_huge_pages();
	if (free_pages < 4)
		cr_skip_test("the host's pool has %ld free 2 MiB pages (needs 4): set /proc/sys/vm/nr_hugepages",
		             free_pages);
	const char *why = private_mounts("size=64m", true, "pagesize=2M");
	if (why)
		cr_skip_test("%s", why);
	serve_on("hugetlbfs", "htl", hugedir);
	cr_assert_eq(th_dir_entries("/dev/shm"), 0, "nothing in /dev/shm");
}
