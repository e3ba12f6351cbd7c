/* seg_place.c — where a segment's object lives and which pages back it ([segment] huge_pages):
 *
 *  - off: a POSIX shm object, /dev/shm/NAME (shm_open), on the pages /dev/shm's tmpfs gives: 4 KiB.
 *  - thp: the same object, with transparent huge pages. tmpfs gives an object huge pages only when
 *    its mount says so: /dev/shm mounted with huge=advise (then only where the mapping asked with
 *    MADV_HUGEPAGE), huge=within_size or huge=always; /sys/kernel/mm/transparent_hugepage/
 *    shmem_enabled governs only the kernel's internal shm mount (SysV, memfd, shared anonymous), but
 *    its "deny" forbids huge pages to every tmpfs and "force" grants them. protd asks with
 *    MADV_HUGEPAGE and faults every page in at creation (MADV_POPULATE_WRITE: posix_fallocate would
 *    allocate them without the mapping's advice, small); the pages are then huge in the page cache,
 *    and every process that maps the object at a 2 MiB-aligned address (seg_map does) maps them
 *    with one PMD each, without advice of its own.
 *  - hugetlbfs: a file NAME on the host's first hugetlbfs mount of 2 MiB pages (as listed in
 *    /proc/self/mounts), from the pool of /proc/sys/vm/nr_hugepages; posix_fallocate reserves them
 *    (ENOSPC when the pool is short). memfd_create(MFD_HUGETLB) would have no name to open.
 *
 * Clients keep opening a segment by its name and need not know its backing (seg_place_find):
 * /dev/shm/NAME first, then NAME on the hugetlbfs mount. protd refuses to create NAME on hugetlbfs
 * while /dev/shm/NAME exists (daemon/shm.c), which clients would open instead.
 *
 * Nothing here trusts the segment: these are the host's files (mount table, sysfs), read with
 * bounded buffers; a line that does not parse is skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "seg_place.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define THP_SHMEM "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define HUGE_SYSFS "/sys/kernel/mm/hugepages/hugepages-2048kB/"

/* ---- places -------------------------------------------------------------------------------- */

static bool is_hugetlbfs_2m(const char *dir)
{
	struct statfs f;
	return statfs(dir, &f) == 0 && f.f_type == HUGETLBFS_MAGIC && (uint64_t)f.f_bsize == SEG_HUGE_PAGE;
}

int seg_place_dir(enum seg_huge h, char *dir, size_t n)
{
	if (h != SEG_HUGE_HUGETLBFS) {
		snprintf(dir, n, "%s", SEG_SHM_DIR);
		return 0;
	}
	FILE *f = setmntent("/proc/self/mounts", "re");
	struct mntent me;
	char buf[1024];
	int r = -ENOENT;
	while (f && r < 0 && getmntent_r(f, &me, buf, sizeof buf))
		if (strcmp(me.mnt_type, "hugetlbfs") == 0 && is_hugetlbfs_2m(me.mnt_dir) &&
		    strlen(me.mnt_dir) < n) {
			snprintf(dir, n, "%s", me.mnt_dir);
			r = 0;
		}
	if (f)
		endmntent(f);
	return r;
}

static int place_path(enum seg_huge h, const char *name, char *path, size_t n)
{
	char dir[256];
	int r = seg_place_dir(h, dir, sizeof dir);
	if (r < 0)
		return r;
	/* name is a validated segment name: "/" and no other "/" */
	return snprintf(path, n, "%s%s", dir, name) < (int)n ? 0 : -ENAMETOOLONG;
}

int seg_place_open(enum seg_huge h, const char *name, int oflag, mode_t mode)
{
	if (h != SEG_HUGE_HUGETLBFS) {
		int fd = shm_open(name, oflag | O_CLOEXEC, mode);
		return fd >= 0 ? fd : -errno;
	}
	char path[320];
	int r = place_path(h, name, path, sizeof path);
	if (r < 0)
		return r;
	int fd = open(path, oflag | O_NOFOLLOW | O_CLOEXEC, mode);
	return fd >= 0 ? fd : -errno;
}

int seg_place_unlink(enum seg_huge h, const char *name)
{
	if (h != SEG_HUGE_HUGETLBFS)
		return shm_unlink(name) == 0 ? 0 : -errno;
	char path[320];
	int r = place_path(h, name, path, sizeof path);
	return r < 0 ? r : unlink(path) == 0 ? 0 : -errno;
}

int seg_place_find(const char *name, int oflag)
{
	int fd = seg_place_open(SEG_HUGE_OFF, name, oflag, 0);
	if (fd != -ENOENT)
		return fd;
	fd = seg_place_open(SEG_HUGE_HUGETLBFS, name, oflag, 0);
	return fd >= 0 ? fd : -ENOENT; /* no mount, or no such file on it: there is no segment */
}

/* ---- what the host provides ----------------------------------------------------------------- */

/* The bracketed word of a sysfs choice file ("always [never] deny"), or "" when unreadable. */
static void sysfs_choice(const char *path, char *word, size_t n)
{
	char line[256] = "";
	FILE *f = fopen(path, "re");
	word[0] = '\0';
	if (!f)
		return;
	if (fgets(line, sizeof line, f)) {
		char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
		if (a && b && (size_t)(b - a - 1) < n)
			snprintf(word, n, "%.*s", (int)(b - a - 1), a + 1);
	}
	fclose(f);
}

/* The huge= option of the topmost /dev/shm mount ("never" when it has none), or "" when /dev/shm
 * is no mount of its own. */
static void dev_shm_huge(char *word, size_t n)
{
	FILE *f = setmntent("/proc/self/mounts", "re");
	struct mntent me;
	char buf[1024];
	word[0] = '\0';
	while (f && getmntent_r(f, &me, buf, sizeof buf)) {
		if (strcmp(me.mnt_dir, SEG_SHM_DIR) != 0)
			continue;
		const char *o = hasmntopt(&me, "huge");
		size_t len = o ? strcspn(o + 5, ",") : 0;
		snprintf(word, n, "%.*s", o && o[4] == '=' ? (int)len : 5, o && o[4] == '=' ? o + 5 : "never");
	}
	if (f)
		endmntent(f);
}

static int thp_refusal(char *why, size_t n)
{
	char shmem[32], mnt[32];
	sysfs_choice(THP_SHMEM, shmem, sizeof shmem);
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1)
		return snprintf(why, n, "transparent huge pages are disabled for this process "
		                        "(prctl PR_SET_THP_DISABLE)"), -1;
	if (!shmem[0])
		return snprintf(why, n, "this kernel offers no transparent huge pages on shared memory "
		                        "(%s is missing)", THP_SHMEM), -1;
	if (strcmp(shmem, "deny") == 0)
		return snprintf(why, n, "%s is \"deny\", which forbids huge pages on every tmpfs", THP_SHMEM), -1;
	if (strcmp(shmem, "force") == 0)
		return 0;
	dev_shm_huge(mnt, sizeof mnt);
	if (!mnt[0])
		return snprintf(why, n, "%s is not a tmpfs mount of its own", SEG_SHM_DIR), -1;
	if (strcmp(mnt, "never") == 0)
		return snprintf(why, n, "%s is mounted without huge= (tmpfs then never gives huge pages); "
		                        "remount it with huge=advise (mount -o remount,huge=advise %s)",
		                SEG_SHM_DIR, SEG_SHM_DIR), -1;
	return 0;
}

int seg_place_refusal(enum seg_huge h, char *why, size_t n)
{
	char dir[256];
	if (h == SEG_HUGE_THP)
		return thp_refusal(why, n);
	if (h == SEG_HUGE_HUGETLBFS && seg_place_dir(h, dir, sizeof dir) < 0)
		return snprintf(why, n, "no hugetlbfs mount of 2 MiB pages in /proc/self/mounts "
		                        "(e.g. mount -t hugetlbfs -o pagesize=2M none /dev/hugepages)"), -1;
	return 0;
}

static long sysfs_number(const char *path)
{
	long v = -1;
	FILE *f = fopen(path, "re");
	if (f && fscanf(f, "%ld", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

long seg_place_free_huge_pages(void)
{
	long free_p = sysfs_number(HUGE_SYSFS "free_hugepages"), resv = sysfs_number(HUGE_SYSFS "resv_hugepages");
	return free_p < 0 || resv < 0 ? -1 : free_p - resv;
}

/* ---- the pages ------------------------------------------------------------------------------ */

int seg_place_reserve(int fd, void *addr, size_t size, enum seg_huge h)
{
	if (h != SEG_HUGE_THP)
		return -posix_fallocate(fd, 0, (off_t)size);
	if (madvise(addr, size, MADV_HUGEPAGE) < 0)
		return -errno;
	if (madvise(addr, size, MADV_POPULATE_WRITE) == 0)
		return 0;
	/* EFAULT: a page could not be had (tmpfs full: the access would have been a SIGBUS) */
	return errno == EFAULT ? -ENOSPC : errno == EINVAL ? -EOPNOTSUPP : -errno;
}

/* "Name:   123 kB" lines of smaps: the kB figure when the line is field `name`. */
static bool smaps_field(const char *line, const char *name, uint64_t *kb)
{
	size_t n = strlen(name);
	unsigned long long v;
	if (strncmp(line, name, n) != 0 || line[n] != ':' || sscanf(line + n + 1, "%llu", &v) != 1)
		return false;
	*kb = v;
	return true;
}

uint64_t seg_place_huge_bytes(const void *addr)
{
	static const char *const fields[] = {"ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb",
	                                     "Private_Hugetlb"};
	char want[32], line[512];
	uint64_t total = 0, kb;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "re");
	snprintf(want, sizeof want, "%lx-", (unsigned long)addr);
	while (f && fgets(line, sizeof line, f)) {
		size_t key = strcspn(line, " ");
		bool field = key > 0 && line[key - 1] == ':';
		if (!field) { /* a mapping's first line: "start-end perms offset dev inode path" */
			if (in)
				break;
			in = strncmp(line, want, strlen(want)) == 0;
			continue;
		}
		for (size_t i = 0; in && i < sizeof fields / sizeof fields[0]; i++)
			if (smaps_field(line, fields[i], &kb))
				total += kb << 10;
	}
	if (f)
		fclose(f);
	return total;
}

enum seg_huge seg_place_backing(int fd, const void *addr)
{
	struct statfs f;
	if (fstatfs(fd, &f) == 0 && f.f_type == HUGETLBFS_MAGIC)
		return SEG_HUGE_HUGETLBFS;
	(void)*(const volatile char *)addr; /* the header's page mapped, as its folio allows */
	return seg_place_huge_bytes(addr) > 0 ? SEG_HUGE_THP : SEG_HUGE_OFF;
}
