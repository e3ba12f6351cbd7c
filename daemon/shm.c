/* shm.c — the segment as protd owns it: creation with an exact mode and every page reserved
 * (posix_fallocate, or faulted in for transparent huge pages: a full /dev/shm or huge page pool is
 * an error at start, never a SIGBUS later), in the place and on the pages [segment] huge_pages
 * asks for (lib/seg_place.c: /dev/shm or a hugetlbfs mount; a host that cannot is refused before
 * anything is made), re-adoption of a
 * compatible segment left by an earlier protd (every counter, state and lease kept), refusal of a
 * foreign, incompatible or already served one, the heartbeat, slot publication, and retirement.
 *
 * Why the publication order is safe for clients (the writer is protd alone, one thread at a time:
 * registry_lock serialises the reload and the control socket):
 *  - a new segment stays INIT (attachers report "not there yet") until every header field and
 *    every slot is written; state LIVE is then stored with release and attachers acquire it;
 *  - a slot becomes visible to lookups only through the release store of SLOT_LIVE | gen << 8,
 *    after its name, hash and cfg; seg_find() acquires that word and re-checks it after comparing
 *    the name, so a slot recycled meanwhile (gen bumped) is not taken for the old one;
 *  - a slot's cfg changes only under its seqlock (seq_write_begin / _words / _end), so a reader
 *    copies one whole version;
 *  - a recycled slot first leaves LIVE (state FREE | gen, release), then its state part is zeroed
 *    word by word with atomic stores (stragglers may still touch it: they see zeroes, the initial
 *    state), then it is republished with gen + 1.
 *  - "served": protd holds an exclusive flock on the segment for its whole life. The kernel drops it
 *    when protd dies (even by kill -9), so a second protd cannot take a served segment, while a
 *    dead protd's segment is re-adopted at once. protd also claims a process slot through the same
 *    fd (lib/ident.c) and publishes it as protd_ident: clients test it to know whether protd is
 *    alive (and reclaim for it while it is not). protd_pid and the heartbeat are for messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "protd.h"
#include "seg_place.h"
#include "wire.h"

#define SLOT_CFG_WORDS 16 /* every slot kind's whole cfg block, on the line after its header */

_Static_assert(sizeof(struct prot_key_cfg) == SLOT_CFG_WORDS * 8, "cfg words");
_Static_assert(sizeof(struct prot_breaker_cfg) == SLOT_CFG_WORDS * 8, "cfg words");
_Static_assert(sizeof(struct prot_pool_cfg) == SLOT_CFG_WORDS * 8, "cfg words");
_Static_assert(offsetof(struct prot_key_slot, cfg) == 64, "cfg on line 1");
_Static_assert(offsetof(struct prot_breaker_slot, cfg) == 64, "cfg on line 1");
_Static_assert(offsetof(struct prot_pool_slot, cfg) == 64, "cfg on line 1");

#define ERR(...) (snprintf(err, errn, __VA_ARGS__), -1)

/* ---- creation ------------------------------------------------------------------------------ */

static void set_access(int fd, const struct config *c)
{
	/* fchmod: the mode is exactly the configured one, whatever the umask was at shm_open */
	if (fchmod(fd, c->seg.mode) < 0)
		log_warn("fchmod %s %04o: %s", c->seg.name, c->seg.mode, strerror(errno));
	if (c->seg.has_group && fchown(fd, (uid_t)-1, c->seg.gid) < 0)
		log_warn("fchown %s group %u: %s", c->seg.name, (unsigned)c->seg.gid, strerror(errno));
}

void shm_set_access(struct shm *s, const struct config *c)
{
	set_access(s->fd, c);
}

struct prot_idv shm_idv(const struct shm *s)
{
	return (struct prot_idv){ .h = s->hdr, .fd = s->fd, .nprocs = seg_count(s->hdr, REG_PROCS),
	                          .self = s->ident };
}

static int stamp_protd(struct shm *s, const char *control_path, char *err, size_t errn)
{
	struct prot_shm_header *h = s->hdr;
	int r = ident_claim(h, seg_count(h, REG_PROCS), s->fd, PROC_F_PROTD, &s->ident);
	if (r < 0)
		return ERR("segment %s: cannot claim a process slot (%s)", s->name, prot_strerror(r));
	/* control_path is plain bytes: attachers read it after acquiring LIVE (new segment) or after
	 * config_gen (re-adopted one, bumped by the first apply). */
	memset(h->control_path, 0, sizeof h->control_path);
	snprintf(h->control_path, sizeof h->control_path, "%s", control_path);
	/* relaxed: clients test the identity's lock; the pid and heartbeat are for display */
	atomic_store_explicit(&h->protd_ident, s->ident, memory_order_relaxed);
	atomic_store_explicit(&h->protd_pid, (int32_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&h->heartbeat_ns, prot_now_ns(), memory_order_relaxed);
	return 0;
}

/* Map the segment with its private geometry page (lib/segment.c: seg_map); the geometry is taken
 * once the header is known good (seg_take_geometry), and never re-read from the mapping. */
static int map(struct shm *s, char *err, size_t errn)
{
	int r = seg_map(s->fd, s->size, false, &s->hdr);
	if (r < 0) {
		s->hdr = NULL;
		return ERR("segment %s: mmap of %zu bytes: %s", s->name, s->size, strerror(-r));
	}
	return 0;
}

static const char *huge_name(const struct shm *s)
{
	return prot_name(NAMES_HUGE_PAGES, s->huge);
}

/* huge_pages = thp: how much the kernel gave huge pages. None at all on a new segment is a refusal
 * (the user asked for huge pages and would get none, silently); a part is logged with the figures. */
static int huge_check(struct shm *s, bool fresh, char *err, size_t errn)
{
	if (s->huge != SEG_HUGE_THP)
		return 0;
	uint64_t huge = seg_place_huge_bytes(s->hdr);
	char got[32], all[32];
	config_fmt_size(got, sizeof got, huge);
	config_fmt_size(all, sizeof all, s->size);
	if (huge == 0 && fresh)
		return ERR("segment %s: [segment] huge_pages = thp, but the kernel gave it no huge page (no "
		           "free 2 MiB page could be had); use huge_pages = hugetlbfs with pages reserved "
		           "in /proc/sys/vm/nr_hugepages, or huge_pages = off", s->name);
	if (huge < s->size)
		log_warn("segment %s: %s of %s on huge pages (%s)", s->name, got, all,
		         fresh ? "the kernel had no more free 2 MiB pages"
		               : "it was made with other pages; --recreate backs all of it with huge pages");
	return 0;
}

/* Reserve every page of the new segment now (lib/seg_place.c: posix_fallocate, or faulted in for
 * thp): a tmpfs or a huge page pool that cannot hold it fails here, with the figures, instead of a
 * SIGBUS in whichever process first touches a missing page. */
static int reserve(struct shm *s, char *err, size_t errn)
{
	int r = seg_place_reserve(s->fd, s->hdr, s->size, s->huge);
	if (r == 0)
		return huge_check(s, true, err, errn);
	struct statvfs v;
	char need[32], avail[32], dir[256];
	config_fmt_size(need, sizeof need, s->size);
	seg_place_dir(s->huge, dir, sizeof dir);
	if (s->huge == SEG_HUGE_HUGETLBFS)
		return ERR("segment %s: the hugetlbfs mount %s cannot hold it: it needs %s, %zu huge pages "
		           "of 2 MiB, and %ld are free (%s); raise /proc/sys/vm/nr_hugepages or lower the "
		           "[segment] capacities", s->name, dir, need, (size_t)(s->size / SEG_HUGE_PAGE),
		           seg_place_free_huge_pages(), strerror(-r));
	if (r == -EOPNOTSUPP)
		return ERR("segment %s: [segment] huge_pages = thp needs MADV_POPULATE_WRITE (Linux 5.14)",
		           s->name);
	if (statvfs(dir, &v) < 0)
		return ERR("segment %s: cannot reserve %s (%zu bytes) in %s: %s", s->name, need, s->size,
		           dir, strerror(-r));
	uint64_t free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
	config_fmt_size(avail, sizeof avail, free_bytes);
	return ERR("segment %s: %s cannot hold it: it needs %s (%zu bytes), %s (%" PRIu64 " bytes) are "
	           "free (%s); lower the [segment] capacities or enlarge %s", s->name, dir, need,
	           s->size, avail, free_bytes, strerror(-r), dir);
}

static int create_fresh(struct shm *s, const struct config *c, const char *control_path, char *err,
                        size_t errn)
{
	set_access(s->fd, c);
	if (flock(s->fd, LOCK_EX | LOCK_NB) < 0)
		return ERR("segment %s: being created by another protd", s->name);
	uint64_t total;
	size_t regions;
	int r = config_segment_size(c, &total);
	if (r < 0)
		return ERR("segment %s: capacities too large for one segment (%s)", s->name,
		           prot_strerror(r));
	s->size = (size_t)total;
	if (ftruncate(s->fd, (off_t)s->size) < 0)
		return ERR("segment %s: ftruncate to %zu bytes: %s", s->name, s->size, strerror(errno));
	/* thp's pages are reserved through the mapping (MADV_POPULATE_WRITE), the others' before it
	 * (posix_fallocate: a hugetlbfs mapping would itself fail for want of pages, with a bare ENOMEM) */
	bool through_map = s->huge == SEG_HUGE_THP;
	if ((!through_map && reserve(s, err, errn)) || map(s, err, errn) || (through_map && reserve(s, err, errn)))
		return -1;
	struct prot_shm_header *h = s->hdr;
	seg_layout(&c->seg.geo, h, &regions);
	/* the summary bitmap follows the regions; total_size covers it (config_segment_size) */
	h->rate_summary_off = regions;
	h->total_size = s->size;
	h->magic = PROT_MAGIC;
	h->abi_version = PROT_ABI_VERSION;
	if (getrandom(h->hash_key, sizeof h->hash_key, 0) != sizeof h->hash_key)
		return ERR("getrandom: %s", strerror(errno));
	h->created_ns = prot_now_ns();
	atomic_store_explicit(&h->owner_uid, geteuid(), memory_order_relaxed); /* before LIVE */
	if ((r = seg_take_geometry(h, s->size)) < 0)
		return ERR("segment %s: the header just written is refused (%s)", s->name, prot_strerror(r));
	if (stamp_protd(s, control_path, err, errn))
		return -1;
	log_info("segment %s created: %zu bytes, mode %04o, huge_pages = %s", s->name, s->size,
	         c->seg.mode, huge_name(s));
	return 0;
}

/* ---- re-adoption ----------------------------------------------------------------------------- */
/* A configuration block whose sequence counter is odd was left mid-write: its writer (an earlier
 * protd) died between seq_write_begin and seq_write_end, or someone with write access set it. No
 * other writer exists now (we hold the flock), so make the counter even again: every word of the
 * block is whole (each was stored atomically), each either the old or the new value of that write;
 * the configuration applied next (the INI, or what adopt_slots reads back) rewrites it. Without
 * this, readers give up on the slot with PROT_ETORN (lib/internal.h, seq_read). */
static void repair_seqs(struct shm *s)
{
	uint64_t g = atomic_load_explicit(&s->hdr->config_gen, memory_order_relaxed);
	if (g & 1u) {
		log_warn("segment %s: a change of configuration was left half-applied: ended, and the "
		         "configuration is applied again", s->name);
		atomic_store_explicit(&s->hdr->config_gen, g + 1, memory_order_release);
	}
	static const char *const what[] = {[REG_KEYS] = "key", [REG_BREAKERS] = "breaker", [REG_POOLS] = "pool"};
	for (int reg = REG_KEYS; reg <= REG_POOLS; reg++)
		for (uint32_t i = 0, n = seg_count(s->hdr, reg); i < n; i++) {
			struct prot_named *nm = seg_entry(s->hdr, reg, i);
			uint32_t q = atomic_load_explicit(&nm->seq, memory_order_relaxed);
			if (!(q & 1u))
				continue;
			log_warn("segment %s: %s slot %u was left half-written (sequence %u): repaired, its "
			         "configuration is applied again", s->name, what[reg], i, q);
			/* release: the block's words are visible before the even counter */
			atomic_store_explicit(&nm->seq, q + 1, memory_order_release);
		}
}

/* ---- re-adoption: may we? ------------------------------------------------------------------- */
enum { ADOPTED = 0, REFUSED = -1, REPLACE = 1 };

static int check_owner(struct shm *s, const struct config *c, const struct stat *st, char *err,
                       size_t errn)
{
	if (st->st_uid != geteuid())
		return ERR("segment %s exists and belongs to uid %u, not to us (uid %u): refusing to "
		           "trust it", s->name, (unsigned)st->st_uid, (unsigned)geteuid());
	mode_t extra = (st->st_mode & 0777) & ~c->seg.mode & 0022;
	if (extra)
		return ERR("segment %s exists with mode %04o, writable beyond the configured %04o: "
		           "refusing to trust it", s->name, (unsigned)(st->st_mode & 0777), c->seg.mode);
	return 0;
}

/* Is the existing segment's geometry the one c asks for? */
static bool same_layout(const struct prot_shm_header *h, const struct config *c)
{
	struct prot_shm_header want;
	size_t regions;
	uint64_t size;
	memset(&want, 0, sizeof want);
	if (seg_layout(&c->seg.geo, &want, &regions) < 0 || config_segment_size(c, &size) < 0)
		return false;
	const struct seg_geo *g = seg_geo(h); /* taken and validated at adoption */
	return size == g->total_size && g->rate_summary_off == regions &&
	       memcmp(want.region, g->region, sizeof want.region) == 0 &&
	       want.pool_max_slots == g->pool_max_slots && want.pool_max_waiters == g->pool_max_waiters &&
	       want.rate_groups == g->rate_groups;
}

static int incompatible(struct shm *s, bool recreate, const char *why, char *err, size_t errn)
{
	if (recreate) {
		log_warn("segment %s: %s: recreating it (--recreate)", s->name, why);
		return REPLACE;
	}
	return ERR("segment %s exists but %s; remove it or start protd with --recreate", s->name, why);
}

static int adopt(struct shm *s, const struct config *c, const char *control_path, bool recreate,
                 char *err, size_t errn)
{
	struct stat st;
	s->fd = seg_place_open(s->huge, s->name, O_RDWR, 0);
	if (s->fd < 0)
		return s->fd == -ENOENT ? REPLACE : ERR("segment %s: %s", s->name, strerror(-s->fd));
	if (fstat(s->fd, &st) < 0)
		return ERR("segment %s: fstat: %s", s->name, strerror(errno));
	if (check_owner(s, c, &st, err, errn))
		return REFUSED;
	if (flock(s->fd, LOCK_EX | LOCK_NB) < 0) {
		int32_t pid = 0;
		/* a hugetlbfs file is mapped in whole huge pages */
		size_t len = s->huge == SEG_HUGE_HUGETLBFS ? SEG_HUGE_PAGE : sizeof(struct prot_shm_header);
		void *b = mmap(NULL, len, PROT_READ, MAP_SHARED, s->fd, 0);
		if ((size_t)st.st_size >= sizeof(struct prot_shm_header) && b != MAP_FAILED)
			pid = atomic_load_explicit(&((struct prot_shm_header *)b)->protd_pid,
			                           memory_order_relaxed);
		if (b != MAP_FAILED)
			munmap(b, len);
		return ERR("segment %s is served by protd pid %d", s->name, (int)pid);
	}
	if ((uint64_t)st.st_size < sizeof(struct prot_shm_header))
		return incompatible(s, recreate, "is too small to be a prot segment", err, errn);
	s->size = (size_t)st.st_size;
	if (map(s, err, errn))
		return REFUSED;
	struct prot_shm_header *h = s->hdr;
	int r = seg_take_geometry(h, s->size);
	if (r < 0) {
		char why[128];
		snprintf(why, sizeof why, "is not usable (%s)", prot_strerror(r));
		return incompatible(s, recreate, why, err, errn);
	}
	/* The flock is ours, so any protd that served it is gone; one whose identity lock is still
	 * held would be a protd that lost its flock: refuse rather than share. */
	int32_t pid = atomic_load_explicit(&h->protd_pid, memory_order_relaxed);
	struct prot_idv v = { .h = h, .fd = s->fd, .nprocs = seg_count(h, REG_PROCS) };
	if (protd_alive(&v))
		return ERR("segment %s is served by protd pid %d", s->name, (int)pid);
	uint32_t state = atomic_load_explicit(&h->state, memory_order_acquire);
	if (state != SEG_STATE_LIVE) {
		/* INIT: its creator died half-way; RETIRED: its protd stopped before unlinking it.
		 * Neither holds anything worth keeping. */
		log_warn("segment %s was left %s by pid %d: replacing it", s->name,
		         state == SEG_STATE_INIT ? "half-created" : "retired", (int)pid);
		return REPLACE;
	}
	if (!same_layout(h, c))
		return incompatible(s, recreate, "has another geometry (capacities) than the configuration",
		                    err, errn);
	if (s->huge == SEG_HUGE_THP && seg_place_reserve(s->fd, s->hdr, s->size, s->huge) < 0)
		log_warn("segment %s: its pages could not all be mapped with huge pages", s->name);
	if (huge_check(s, false, err, errn))
		return REFUSED;
	set_access(s->fd, c);
	if (stamp_protd(s, control_path, err, errn))
		return REFUSED;
	repair_seqs(s);
	s->adopted = true;
	log_info("segment %s re-adopted (%zu bytes, config generation %" PRIu64 ", last protd pid %d)",
	         s->name, s->size, atomic_load_explicit(&h->config_gen, memory_order_relaxed), (int)pid);
	return ADOPTED;
}

static void drop(struct shm *s)
{
	seg_unmap(s->hdr, s->size);
	if (s->fd >= 0)
		close(s->fd);
	s->hdr = NULL;
	s->fd = -1;
}

/* Whether the host can back the segment as c asks (lib/seg_place.c), and, for hugetlbfs, that no
 * object of the same name in /dev/shm would be opened by clients instead: 0, or -1 and a message. */
static int can_place(struct shm *s, char *err, size_t errn)
{
	char why[320];
	if (seg_place_refusal(s->huge, why, sizeof why) < 0)
		return ERR("segment %s: [segment] huge_pages = %s: %s", s->name, huge_name(s), why);
	int fd = s->huge == SEG_HUGE_HUGETLBFS ? seg_place_open(SEG_HUGE_OFF, s->name, O_RDONLY, 0) : -1;
	if (fd >= 0) {
		close(fd);
		return ERR("segment %s: [segment] huge_pages = hugetlbfs, but %s%s exists (a segment on 4 KiB "
		           "or transparent huge pages), which clients would open instead: stop its protd and "
		           "remove it", s->name, SEG_SHM_DIR, s->name);
	}
	return 0;
}

int shm_setup(struct shm *s, const struct config *c, const char *control_path, bool recreate,
              char *err, size_t errn)
{
	*s = (struct shm){ .fd = -1, .huge = c->seg.huge_pages };
	snprintf(s->name, sizeof s->name, "%s", c->seg.name);
	if (can_place(s, err, errn))
		return -1;
	for (int attempt = 0; attempt < 3; attempt++) {
		s->fd = seg_place_open(s->huge, s->name, O_CREAT | O_EXCL | O_RDWR, c->seg.mode);
		if (s->fd >= 0) {
			if (create_fresh(s, c, control_path, err, errn) == 0)
				return 0;
			drop(s);
			seg_place_unlink(s->huge, s->name);
			return -1;
		}
		if (s->fd != -EEXIST)
			return ERR("segment %s: cannot create it in its place: %s", s->name, strerror(-s->fd));
		int r = adopt(s, c, control_path, recreate, err, errn);
		if (r == ADOPTED)
			return 0;
		drop(s);
		if (r == REFUSED)
			return -1;
		seg_place_unlink(s->huge, s->name);
	}
	return ERR("segment %s: keeps being recreated by someone else", s->name);
}

void shm_publish(struct shm *s)
{
	/* release: header and slots are written before an attacher acquires LIVE */
	atomic_store_explicit(&s->hdr->state, SEG_STATE_LIVE, memory_order_release);
}

void shm_heartbeat(struct shm *s, uint64_t now_ns)
{
	/* relaxed: a liveness hint; clients compare it with their own clock */
	atomic_store_explicit(&s->hdr->heartbeat_ns, now_ns, memory_order_relaxed);
}

/* The configuration generation is a sequence counter over a whole change: odd while protd writes
 * the slots of one reload or runtime set, even once all are written. Readers that need every layer
 * of a key from one change (lib/facade.c, read_layers) copy them between two equal even loads. */
void shm_config_begin(struct shm *s)
{
	uint64_t g = atomic_load_explicit(&s->hdr->config_gen, memory_order_relaxed);
	atomic_store_explicit(&s->hdr->config_gen, g | 1u, memory_order_relaxed);
	atomic_thread_fence(memory_order_release); /* odd is visible before any slot changes */
}

void shm_config_changed(struct shm *s, uint32_t ev, const char *what)
{
	/* release: every cfg write of this change happens before the even generation is seen */
	uint64_t g = atomic_load_explicit(&s->hdr->config_gen, memory_order_relaxed) | 1u;
	atomic_store_explicit(&s->hdr->config_gen, g + 1, memory_order_release);
	if (ev)
		prot_event_emit(s->hdr, ev, 0, what, (g + 1) / 2, 0);
}

void shm_shutdown(struct shm *s, bool keep)
{
	if (!s->hdr)
		return;
	struct prot_shm_header *h = s->hdr;
	if (!keep) {
		/* release: clients that see RETIRED look for a successor (lib/segment.c) */
		atomic_store_explicit(&h->state, SEG_STATE_RETIRED, memory_order_release);
		atomic_store_explicit(&h->protd_pid, 0, memory_order_relaxed);
		seg_place_unlink(s->huge, s->name);
		log_info("segment %s retired and removed", s->name);
	} else {
		atomic_store_explicit(&h->protd_pid, 0, memory_order_relaxed);
		log_info("segment %s kept for re-adoption (--keep-segment)", s->name);
	}
	drop(s);
}

/* ---- slots ----------------------------------------------------------------------------------- */
static struct prot_named *slot(struct shm *s, int reg, uint32_t i)
{
	return seg_entry(s->hdr, reg, i);
}

uint32_t shm_slot_state(struct shm *s, int reg, uint32_t i)
{
	return atomic_load_explicit(&slot(s, reg, i)->state, memory_order_relaxed); /* we write it */
}

const char *shm_slot_name(struct shm *s, int reg, uint32_t i)
{
	struct prot_named *n = slot(s, reg, i);
	/* the segment is untrusted (a re-adopted one was written by someone else): force a NUL, and
	 * only where it is missing: an unconditional store raced with the main thread's tick reading
	 * the name (breaker events) while the control thread looked slots up (ThreadSanitizer) */
	if (n->name[PROT_NAME_BYTES - 1] != '\0')
		n->name[PROT_NAME_BYTES - 1] = '\0';
	return n->name;
}

int shm_slot_find(struct shm *s, int reg, const char *name)
{
	for (uint32_t i = 0, n = seg_count(s->hdr, reg); i < n; i++) {
		uint32_t st = SLOT_STATE(shm_slot_state(s, reg, i));
		if ((st == SLOT_LIVE || st == SLOT_RETIRED) && strcmp(shm_slot_name(s, reg, i), name) == 0)
			return (int)i;
	}
	return -1;
}

int shm_slot_alloc(struct shm *s, int reg)
{
	int retired = -1;
	for (uint32_t i = 0, n = seg_count(s->hdr, reg); i < n; i++) {
		uint32_t st = SLOT_STATE(shm_slot_state(s, reg, i));
		if (st == SLOT_FREE)
			return (int)i;
		if (st == SLOT_RETIRED && retired < 0)
			retired = (int)i;
	}
	return retired;
}

void shm_slot_cfg(struct shm *s, int reg, uint32_t i, void *cfg)
{
	struct prot_named *n = slot(s, reg, i);
	/* protd is the only writer and repaired every odd counter at adoption: a torn read means a
	 * hostile writer; then the copy is whatever was read, which the next apply overwrites */
	if (seq_read(&n->seq, (char *)n + 64, cfg, SLOT_CFG_WORDS) < 0)
		log_warn("segment %s: slot %u's sequence counter is odd again: someone else writes it",
		         s->name, i);
}

/* Zero with atomic stores: a process that looked the slot up before it was recycled may still
 * touch these words; it then sees the initial all-zero state. */
static void zero_words(void *p, size_t bytes)
{
	uint64_t *w = p;
	for (size_t i = 0; i < bytes / 8; i++)
		__atomic_store_n(&w[i], 0, __ATOMIC_RELAXED);
}

static void zero_state(struct shm *s, int reg, uint32_t i)
{
	char *base = (char *)slot(s, reg, i);
	struct prot_shm_header *h = s->hdr;
	switch (reg) {
	case REG_KEYS:
		zero_words(base + offsetof(struct prot_key_slot, stats), sizeof(struct prot_key_stats));
		break;
	case REG_BREAKERS:
		zero_words(base + offsetof(struct prot_breaker_slot, word),
		           sizeof(struct prot_breaker_slot) - offsetof(struct prot_breaker_slot, word));
		break;
	case REG_POOLS:
		zero_words(base + offsetof(struct prot_pool_slot, lock),
		           sizeof(struct prot_pool_slot) - offsetof(struct prot_pool_slot, lock));
		zero_words(seg_entry(h, REG_LEASES, i * seg_geo(h)->pool_max_slots),
		           (size_t)seg_geo(h)->pool_max_slots * sizeof(struct prot_lease_slot));
		zero_words(seg_entry(h, REG_WAITERS, i * seg_geo(h)->pool_max_waiters),
		           (size_t)seg_geo(h)->pool_max_waiters * sizeof(struct prot_waiter_slot));
		break;
	}
}

static void write_cfg(struct prot_named *n, const void *cfg)
{
	seq_write_begin(&n->seq);
	seq_write_words((char *)n + 64, cfg, SLOT_CFG_WORDS);
	seq_write_end(&n->seq);
}

void shm_slot_publish(struct shm *s, int reg, uint32_t i, const char *name, const void *cfg)
{
	struct prot_named *n = slot(s, reg, i);
	uint32_t w = shm_slot_state(s, reg, i);
	/* a LIVE slot of that name is the same object (reload, runtime set: state kept). A RETIRED
	 * one was removed: a breaker or a pool defined again comes back fresh (recycled below, as
	 * fuse and poolboy install a new one); a key comes back with its counters (nginx keeps a
	 * zone that a reload brings back) */
	bool named = SLOT_STATE(w) != SLOT_FREE && strcmp(shm_slot_name(s, reg, i), name) == 0;
	bool same = named && (SLOT_STATE(w) == SLOT_LIVE || reg == REG_KEYS);
	if (same) {
		uint64_t cur[SLOT_CFG_WORDS];
		shm_slot_cfg(s, reg, i, cur);
		if (memcmp(cur, cfg, sizeof cur) != 0)
			write_cfg(n, cfg);
		if (SLOT_STATE(w) != SLOT_LIVE) /* a key's revival: state and generation kept */
			atomic_store_explicit(&n->state, SLOT_LIVE | (w & ~0xffu), memory_order_release);
		return;
	}
	uint32_t gen = SLOT_GEN(w);
	if (SLOT_STATE(w) != SLOT_FREE) /* recycling: leave LIVE/RETIRED before anything changes */
		atomic_store_explicit(&n->state, SLOT_FREE | gen << 8, memory_order_release);
	zero_state(s, reg, i);
	memset(n->name, 0, sizeof n->name);
	snprintf(n->name, sizeof n->name, "%s", name);
	n->name_hash = prot_name_hash(name);
	write_cfg(n, cfg);
	/* release: name, hash, cfg and the zeroed state before lookups can match the slot */
	atomic_store_explicit(&n->state, SLOT_LIVE | ((gen + 1) & 0xffffffu) << 8, memory_order_release);
}

void shm_slot_retire(struct shm *s, int reg, uint32_t i)
{
	struct prot_named *n = slot(s, reg, i);
	uint32_t w = shm_slot_state(s, reg, i);
	if (SLOT_STATE(w) == SLOT_LIVE)
		/* release: pairs with seg_find's acquire; lookups miss it from now on */
		atomic_store_explicit(&n->state, SLOT_RETIRED | (w & ~0xffu), memory_order_release);
	if (reg == REG_POOLS)
		pool_retire_waiters(s->hdr, i); /* a removed pool's waiters get PROT_ENOPOOL now */
}
