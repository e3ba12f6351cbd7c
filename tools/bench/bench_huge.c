/* bench_huge.c — the rows on huge pages (issue 15, point 4): RATE_1M_HUGE, MX_1M_HUGE and
 * FLOOR_CHASE_HUGE measure what RATE_1M, MX_1M and FLOOR_CHASE measure, on the same sizes and in
 * the same run, with the one huge-page backing this host offers ([segment] huge_pages,
 * lib/seg_place.c):
 *  - hugetlbfs, when a hugetlbfs mount of 2 MiB pages exists and its pool has free pages for the
 *    bench's segment (the largest region any row maps at once), else
 *  - thp, when /dev/shm gives transparent huge pages (mounted huge=advise), else
 *  - none: the three rows are skipped, with what each backing lacks.
 * A region (the floor's cycle, the mutex baseline's table) is mapped as protd maps its segment: the
 * object made in its place and unlinked at once (nothing is left whatever happens later), every
 * page reserved (posix_fallocate; with thp faulted in after MADV_HUGEPAGE), and mapped by seg_map
 * (2 MiB-aligned). With thp the kernel may give fewer huge pages than asked for: each row's note
 * says how much of its region is on huge pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "seg_place.h"
#include "wire.h"

#define SEG_SLACK_PAGES 16 /* the segment's regions beyond its rate table, in 2 MiB pages, and more */

void bench_huge_init(struct bench *b)
{
	char why[320];
	long need = (long)(bench_rate_table_bytes(b->sz.rate_entities) / SEG_HUGE_PAGE) + SEG_SLACK_PAGES;
	long free_pages = seg_place_free_huge_pages();
	bool mount = seg_place_refusal(SEG_HUGE_HUGETLBFS, why, sizeof why) == 0;
	b->huge = mount && free_pages >= need                              ? SEG_HUGE_HUGETLBFS
	          : seg_place_refusal(SEG_HUGE_THP, why, sizeof why) == 0 ? SEG_HUGE_THP
	                                                                   : SEG_HUGE_OFF;
	if (b->huge != SEG_HUGE_OFF)
		snprintf(b->huge_why, sizeof b->huge_why, "huge_pages = %s", prot_name(NAMES_HUGE_PAGES, b->huge));
	else if (mount)
		snprintf(b->huge_why, sizeof b->huge_why, "no huge pages: hugetlbfs has %ld free 2 MiB pages of "
		         "%ld (vm.nr_hugepages); /dev/shm gives no transparent huge pages", free_pages, need);
	else
		snprintf(b->huge_why, sizeof b->huge_why, "no huge pages: no hugetlbfs mount of 2 MiB pages, and "
		         "/dev/shm gives no transparent huge pages (protd.ini(5): huge_pages)");
}

static void describe(const struct bench *b, bool huge, const struct bench_region *r, char *what, size_t n)
{
	char dir[128];
	seg_place_dir(huge ? (enum seg_huge)b->huge : SEG_HUGE_OFF, dir, sizeof dir);
	if (!huge)
		snprintf(what, n, "%.1f MiB in %s, 4 KiB pages", r->size / 1048576.0, dir);
	else
		snprintf(what, n, "%.1f MiB in %s, %s: %.1f MiB on huge pages", r->size / 1048576.0, dir,
		         b->huge_why, seg_place_huge_bytes(r->p) / 1048576.0);
}

int bench_map_region(const struct bench *b, bool huge, size_t bytes, struct bench_region *r, char *what,
                     size_t n)
{
	enum seg_huge mode = huge ? (enum seg_huge)b->huge : SEG_HUGE_OFF;
	if (huge && mode == SEG_HUGE_OFF)
		return -EOPNOTSUPP;
	char name[48];
	snprintf(name, sizeof name, "/prot-bench-region-%d", (int)getpid());
	int fd = seg_place_open(mode, name, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (fd < 0)
		return fd;
	seg_place_unlink(mode, name);
	size_t size = mode == SEG_HUGE_OFF ? bytes : (bytes + SEG_HUGE_PAGE - 1) & ~(SEG_HUGE_PAGE - 1);
	struct prot_shm_header *h = NULL;
	/* as daemon/shm.c: thp's pages through the mapping, the others' before it */
	int e = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	if (e == 0 && mode != SEG_HUGE_THP)
		e = seg_place_reserve(fd, NULL, size, mode);
	if (e == 0)
		e = seg_map(fd, size, false, &h);
	if (e == 0 && mode == SEG_HUGE_THP && (e = seg_place_reserve(fd, h, size, mode)) < 0)
		seg_unmap(h, size);
	close(fd);
	if (e < 0)
		return e;
	*r = (struct bench_region){h, size};
	describe(b, huge, r, what, n);
	return 0;
}

void bench_unmap_region(struct bench_region *r)
{
	seg_unmap(r->p, r->size);
	*r = (struct bench_region){NULL, 0};
}

void bench_huge_rate_rows(struct bench *b)
{
	char err[160];
	if (b->huge == SEG_HUGE_OFF) {
		bench_skip(b, ROW_RATE_1M_HUGE, false, "%s", b->huge_why);
		return;
	}
	prot_t *p = bench_protd_start_huge(b, prot_name(NAMES_HUGE_PAGES, b->huge), err, sizeof err);
	if (!p) {
		bench_skip(b, ROW_RATE_1M_HUGE, false, "%s", err);
		return;
	}
	bench_rate_1m_on(b, p, ROW_RATE_1M_HUGE);
	struct prot_info info;
	struct bench_stat *s = &b->res[ROW_RATE_1M_HUGE][0];
	if (s->state == 1 && prot_get_info(p, &info) == 0)
		snprintf(s->note, sizeof s->note, "segment of %.1f MiB, %.40s: %.1f MiB mapped by huge pages here",
		         info.size / 1048576.0, b->huge_why, seg_place_huge_bytes(prot_hdr(p)) / 1048576.0);
	bench_protd_stop_huge(b, p);
}
