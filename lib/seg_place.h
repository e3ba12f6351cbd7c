/* seg_place.h — hidden: where a segment's object lives and which pages back it ([segment]
 * huge_pages), for protd (daemon/shm.c), libprot (lib/segment.c) and protbench. The code and the
 * design argument are lib/seg_place.c's.
 */
#ifndef PROT_SEG_PLACE_H
#define PROT_SEG_PLACE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

/* [segment] huge_pages, by value (the names: lib/names.c, NAMES_HUGE_PAGES). */
enum seg_huge { SEG_HUGE_OFF, SEG_HUGE_THP, SEG_HUGE_HUGETLBFS, SEG_HUGE_COUNT_ };

/* The huge page the segment is sized, aligned and mapped for: x86-64's PMD, the default hugetlbfs
 * page. A huge segment's size is a multiple of it, and every segment of at least this size is
 * mapped at an address that is a multiple of it (seg_map). */
#define SEG_HUGE_PAGE (2ull << 20)
#define SEG_SHM_DIR "/dev/shm" /* where glibc's shm_open puts POSIX shared memory */

/* The directory NAME's object lives in with backing h: /dev/shm (off, thp) or the first hugetlbfs
 * mount of 2 MiB pages in /proc/self/mounts. 0, or -ENOENT when there is no such mount. */
PROT_HIDDEN int seg_place_dir(enum seg_huge h, char *dir, size_t n);
/* open(2) NAME's object with backing h (O_NOFOLLOW | O_CLOEXEC added, as shm_open does): an fd,
 * or -errno. */
PROT_HIDDEN int seg_place_open(enum seg_huge h, const char *name, int oflag, mode_t mode);
/* Remove NAME's object with backing h: 0 or -errno. */
PROT_HIDDEN int seg_place_unlink(enum seg_huge h, const char *name);
/* What a client opens for NAME: the object in /dev/shm, else the one on the hugetlbfs mount. An
 * fd, or -errno (-ENOENT: neither exists). */
PROT_HIDDEN int seg_place_find(const char *name, int oflag);

/* Why this host cannot back a segment with h: 0 when it can, else -1 and a sentence naming what
 * it lacks in why. The number of free huge pages is not looked at: seg_place_reserve finds it. */
PROT_HIDDEN int seg_place_refusal(enum seg_huge h, char *why, size_t n);
/* Reserve every page of the object behind fd, mapped at addr (size bytes), now: posix_fallocate
 * (off, hugetlbfs), or MADV_HUGEPAGE then MADV_POPULATE_WRITE (thp: fallocate would allocate the
 * pages without the mapping's advice, small). 0 or -errno (ENOSPC, ENOMEM: the host cannot). */
PROT_HIDDEN int seg_place_reserve(int fd, void *addr, size_t size, enum seg_huge h);
/* Bytes of this process's mapping that starts at addr mapped by huge pages (/proc/self/smaps:
 * ShmemPmdMapped, or the hugetlb figures); 0 when unknown. */
PROT_HIDDEN uint64_t seg_place_huge_bytes(const void *addr);
/* The backing the object behind fd, mapped at addr, has: hugetlbfs (its file system), thp (its
 * first page is a huge page in this mapping: the header is read first), or off. */
PROT_HIDDEN enum seg_huge seg_place_backing(int fd, const void *addr);
/* The backing of handle p's current mapping (lib/segment.c). */
PROT_HIDDEN enum seg_huge seg_backing_of(prot_t *p);
/* Free 2 MiB huge pages of the host (free minus reserved), for messages; -1 when unknown. */
PROT_HIDDEN long seg_place_free_huge_pages(void);

#endif
