/* fork.c — a handle's identity in each of its mappings, and what fork() does to it: the claim at
 * attach (map_claim, through lib/ident.c), the per-process list of handles and the atfork child
 * handler that gives a forked child fresh identity fds, the fork page that tells a handle it is
 * now in a child (fork_check, inline in lib/internal.h) and the refresh that claims the child's
 * own identity; and the liveness views every module takes of a mapping (prot_idv, prot_self,
 * protd_alive, seq_wait_writer). Called by lib/segment.c (prot_open, prot_close, prot_hdr) and by
 * every module that needs to know who it is in a segment.
 *
 * Concurrency argument:
 *  - the fork page is private, wiped in a child (MADV_WIPEONFORK). Its word is the state of the
 *    maps' identities: FORK_ARMED (valid for this process), 0 (we are a fresh child: they are the
 *    parent's), FORK_BUSY (one thread is refreshing). The refresh is claimed by a CAS 0 -> BUSY and
 *    published by a release store of ARMED, which every reader acquires before using ident. This
 *    is a lock of its own rather than p->lock on purpose: a child forked while another parent
 *    thread held p->lock inherits that mutex locked forever; the refresh re-initialises it.
 *    Consequence for every module: call prot_hdr() (or prot_self()) before taking p->lock.
 *  - identity fds: each read-write mapping keeps its segment fd open, holding the OFD lock of its
 *    process slot (lib/ident.c). The atfork child handler (below) swaps every such mapping and fd
 *    for a fresh open file description before fork() returns in the child, so the child never
 *    holds its parent's locks; the child's fork refresh claims a slot of its own for the current mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define FORK_PAGE 4096u

/* ---- the handles of this process ------------------------------------------------------------- */

/* Every live handle of this process, for the atfork child handler. */
static pthread_mutex_t handles_mu = PTHREAD_MUTEX_INITIALIZER;
static prot_t *handles;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* /proc/self/fd/N without stdio: the child handler may run in a child of a threaded parent. */
static void fd_path(char *buf, int fd)
{
	static const char pre[] = "/proc/self/fd/";
	char digits[12];
	int n = 0;
	memcpy(buf, pre, sizeof pre - 1);
	do
		digits[n++] = (char)('0' + fd % 10);
	while ((fd /= 10) > 0);
	for (int i = 0; i < n; i++)
		buf[sizeof pre - 1 + i] = digits[n - 1 - i];
	buf[sizeof pre - 1 + n] = '\0';
}

/* Give mapping m a fresh open file description of the same file. The inherited one carries the
 * parent's identity lock (OFD locks are shared through fork), and it is referenced twice: by the
 * fd and by the mapping itself (a MAP_SHARED mapping keeps its file description alive, so closing
 * the fd alone would not drop the parent's lock when the parent dies). The mapping is replaced in
 * place (MAP_FIXED, same address and size, same shared pages), then the fd. On failure the child
 * has no identity in that mapping rather than the parent's. */
static void map_refresh(struct prot_map *m)
{
	char path[32];
	fd_path(path, m->fd);
	int nfd = open(path, O_RDWR | O_CLOEXEC);
	if (nfd >= 0 && mmap(m->hdr, m->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, nfd, 0) ==
	                        (void *)m->hdr &&
	    dup3(nfd, m->fd, O_CLOEXEC) >= 0) {
		close(nfd);
		return;
	}
	if (nfd >= 0)
		close(nfd);
	close(m->fd);
	m->fd = -1;
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&handles_mu);
}
static void atfork_parent(void)
{
	pthread_mutex_unlock(&handles_mu);
}
static void atfork_child(void)
{
	for (prot_t *p = handles; p; p = p->fork_next)
		for (struct prot_map *m = atomic_load_explicit(&p->map, memory_order_relaxed); m; m = m->older)
			if (m->ident) {
				map_refresh(m);
				m->ident = 0; /* the parent's; the fork refresh claims the child's own */
			}
	pthread_mutex_unlock(&handles_mu);
}
static void atfork_install(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

int fork_track(prot_t *p)
{
	void *pg = mmap(NULL, FORK_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (pg == MAP_FAILED)
		return -errno;
	if (madvise(pg, FORK_PAGE, MADV_WIPEONFORK) < 0) {
		int e = errno;
		munmap(pg, FORK_PAGE);
		return -e;
	}
	p->fork_page = pg;
	return 0;
}

void fork_arm(prot_t *p)
{
	pthread_once(&atfork_once, atfork_install);
	pthread_mutex_lock(&handles_mu);
	p->fork_next = handles;
	if (handles)
		handles->fork_prev = p;
	handles = p;
	pthread_mutex_unlock(&handles_mu);
	/* release: ident is complete before any thread (of this process) sees ARMED */
	atomic_store_explicit(p->fork_page, FORK_ARMED, memory_order_release);
}

void fork_untrack(prot_t *p)
{
	pthread_mutex_lock(&handles_mu);
	if (p->fork_prev)
		p->fork_prev->fork_next = p->fork_next;
	else if (handles == p)
		handles = p->fork_next;
	if (p->fork_next)
		p->fork_next->fork_prev = p->fork_prev;
	p->fork_next = p->fork_prev = NULL;
	pthread_mutex_unlock(&handles_mu);
	if (p->fork_page)
		munmap((void *)p->fork_page, FORK_PAGE);
	p->fork_page = NULL;
}

/* ---- identities -------------------------------------------------------------------------------- */

int map_claim(struct prot_map *m)
{
	if (m->fd < 0)
		return -EBADF;
	return ident_claim(m->hdr, m->nprocs, m->fd, 0, &m->ident);
}

/* Slow path of the fork check: we are a child that inherited the handle. The atfork handler has
 * already given every identity fd a fresh open file description and dropped the parent's
 * identities; claim our own for the current mapping. */
void fork_refresh(prot_t *p)
{
	uint64_t expect = FORK_WIPED;

	/* acq_rel: the winner's CAS orders nothing yet; the losers' later acquire of ARMED does. */
	if (atomic_compare_exchange_strong_explicit(p->fork_page, &expect, FORK_BUSY,
	                                            memory_order_acq_rel, memory_order_acquire)) {
		struct prot_map *m = atomic_load_explicit(&p->map, memory_order_relaxed);
		if (!(p->flags & PROT_OPEN_RDONLY) && m->ident == 0 && map_claim(m) < 0)
			m->ident = 0; /* no slot: the calls that need an identity fail */
		/* The parent's p->lock may have been held by a thread that does not exist here. No
		 * thread of this process can hold it: every entry point passes here first. */
		pthread_mutex_init(&p->lock, NULL);
		resolve_forget(p);
		rate_memo_forget(p);
		p->fork_epoch++;
		/* release: publishes the identity and the fresh lock to every thread that acquires ARMED */
		atomic_store_explicit(p->fork_page, FORK_ARMED, memory_order_release);
		return;
	}
	/* Another thread is refreshing: it claims one slot, so this wait is short. */
	while (atomic_load_explicit(p->fork_page, memory_order_acquire) != FORK_ARMED)
		sched_yield();
}

/* ---- views of a mapping ------------------------------------------------------------------------ */

static const struct prot_map *map_of(prot_t *p, const struct prot_shm_header *h)
{
	for (struct prot_map *m = atomic_load_explicit(&p->map, memory_order_acquire); m; m = m->older)
		if (m->hdr == h)
			return m;
	return NULL;
}

void prot_idv(prot_t *p, struct prot_shm_header *h, struct prot_idv *v)
{
	*v = (struct prot_idv){ .h = h, .fd = -1 };
	if (!p || !h)
		return;
	fork_check(p);
	const struct prot_map *m = map_of(p, h);
	if (m)
		*v = (struct prot_idv){ .h = h, .fd = m->fd, .nprocs = m->nprocs, .self = m->ident };
}

uint64_t prot_self(prot_t *p, struct prot_shm_header *h)
{
	fork_check(p);
	const struct prot_map *m = atomic_load_explicit(&p->map, memory_order_acquire);
	if (m && m->hdr != h)
		m = map_of(p, h);
	return m ? m->ident : 0;
}

int protd_alive(const struct prot_idv *v)
{
	/* relaxed: protd stores it before it publishes anything it serves; a stale value is an older
	 * protd's identity, which then reads as dead */
	uint64_t id = atomic_load_explicit(&v->h->protd_ident, memory_order_relaxed);
	return id != 0 && v->fd >= 0 && ident_alive(v, id);
}

bool seq_wait_writer(struct seq_wait *w, const struct prot_idv *v)
{
	if (seq_wait_more(w))
		return true;
	if (!v || v->fd < 0 || !protd_alive(v))
		return false; /* its writer is gone: nobody ends the change before its successor starts */
	if (prot_now_ns() >= w->give_up + (SEQ_PATIENCE_ALIVE_NS - SEQ_PATIENCE_NS))
		return false;
	struct timespec ts = { 0, 200000 };
	nanosleep(&ts, NULL);
	return true;
}
