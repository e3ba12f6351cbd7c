/* ident.c — process identity: who holds a lease, a half-open probe, a waiter cell or a bucket
 * claim, and whether that holder is still alive. Decided by the kernel, never guessed from time or
 * from a pid.
 *
 * DESIGN. Each read-write attachment (the mapping of a prot_open() handle, protd's segment) claims
 * one process slot i of REG_PROCS and holds an open-file-description (OFD) write lock on byte i of
 * the segment file, through an fd of its own. The kernel drops that lock when the open file
 * description goes away: at exit, kill -9, a crash, or prot_close(). Anyone holding an fd of the
 * segment tests it with F_OFD_GETLK. The identity written into shared tokens is
 *     ident = inc << PROC_SLOT_BITS | i
 * where inc is an incarnation taken from hdr.proc_next_inc by fetch_add at claim: never handed out
 * twice in a segment's life (47 bits: a claim fails rather than wrap; bit 63 stays free for
 * markers), so a reused pid, a reused
 * slot, a new process in another PID namespace, or the same process after a fork never matches an
 * old identity.
 *
 * WHY IT IS EXACT.
 *  - Claim: F_OFD_SETLK on byte i succeeds only if no other open file description holds it, i.e.
 *    the slot's previous holder is gone. Only then is slot.inc overwritten (release store). So
 *    "slot.inc == inc" means inc's holder took the lock and nobody has replaced it since.
 *  - alive(inc, i): slot.inc != inc -> dead (re-claiming the slot needed inc's lock gone).
 *    slot.inc == inc and byte i unlocked -> dead, confirmed by re-reading slot.inc after the test
 *    (acquire; a claimer between its lock and its store would otherwise pass for inc). Locked ->
 *    alive: inc's holder itself, or a claimer between its lock and its store (a few instructions;
 *    inc then reads as dead on the next look). A slow, stopped or descheduled process keeps its
 *    lock: it is alive, and nothing it holds is taken from it.
 *  - Traps avoided. POSIX (process-associated) record locks are dropped when the process closes ANY
 *    fd of the file, so a second prot_open() + prot_close() would kill the first handle's identity;
 *    OFD locks are not. OFD locks live as long as their open file description, which the child
 *    of a fork() shares twice: through its copy of the fd and through its copy of the MAP_SHARED
 *    mapping (a mapping holds a reference to its file). Either would keep a dead parent looking
 *    alive: a pthread_atfork child handler re-opens /proc/self/fd/N and puts the fresh description
 *    under both (mmap MAP_FIXED over the same range, dup3 over the fd) before fork() returns in the
 *    child, and the child claims identities of its own before its first operation (the fork page,
 *    lib/segment.c). For the same reason an identity lives until its mapping is unmapped. Between
 *    fork() and its return in the child (the handler's few system calls), a parent that dies is
 *    still reported alive: its death is told that much later, never wrongly. A child made by a raw clone() that bypasses atfork keeps its parent
 *    looking alive until it execs (the fd is O_CLOEXEC) or exits.
 *  - F_OFD_GETLK does not report the caller's own lock: an attachment never tests itself, the
 *    caller passes its own identity (struct prot_idv.self) and it is alive by definition.
 *
 * Everything read here from the segment is bounds-checked: an identity naming a slot beyond the
 * private process count, or an incarnation never handed out, is simply not alive.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "internal.h"

static int byte_lock(int fd, uint32_t i, short type, int cmd, struct flock *fl)
{
	*fl = (struct flock){ .l_type = type, .l_whence = SEEK_SET, .l_start = (off_t)i, .l_len = 1 };
	return fcntl(fd, cmd, fl);
}

int ident_claim(struct prot_shm_header *h, uint32_t nprocs, int fd, uint32_t flags, uint64_t *out)
{
	if (fd < 0 || nprocs == 0)
		return -EBADF;
	uint32_t start = (uint32_t)getpid() * 2654435761u % nprocs;
	for (uint32_t k = 0; k < nprocs; k++) {
		uint32_t i = (start + k) % nprocs;
		struct flock fl;
		if (byte_lock(fd, i, F_WRLCK, F_OFD_SETLK, &fl) < 0) {
			if (errno == EAGAIN || errno == EACCES)
				continue; /* held: its holder is alive */
			return -errno;
		}
		/* relaxed: uniqueness is all the counter gives. An incarnation whose low 32 bits are 0
		 * is skipped: short forms of identities (probe holders) keep those bits, and 0 there
		 * means "no identity". */
		uint64_t inc;
		do
			inc = atomic_fetch_add_explicit(&h->proc_next_inc, 1, memory_order_relaxed) + 1;
		while ((uint32_t)inc == 0);
		if (inc > PROC_INC_MAX) {
			byte_lock(fd, i, F_UNLCK, F_OFD_SETLK, &fl);
			return -PROT_ECAPACITY;
		}
		struct prot_proc_slot *s = seg_entry(h, REG_PROCS, i);
		atomic_store_explicit(&s->pid, (int32_t)getpid(), memory_order_relaxed);
		s->flags = flags;
		atomic_store_explicit(&s->attached_ns, prot_now_ns(), memory_order_relaxed);
		/* release: pairs with the acquire re-read in ident_alive(); the lock is ours already */
		atomic_store_explicit(&s->inc, inc, memory_order_release);
		*out = inc << PROC_SLOT_BITS | i;
		return 0;
	}
	return -PROT_ECAPACITY;
}

void ident_release(int fd, uint64_t ident)
{
	struct flock fl;
	if (fd >= 0 && ident)
		byte_lock(fd, ident_slot(ident), F_UNLCK, F_OFD_SETLK, &fl);
}

/* Is byte i locked by an open file description other than fd's? 1 yes, 0 no, < 0 error. */
static int byte_locked(int fd, uint32_t i)
{
	struct flock fl;
	if (byte_lock(fd, i, F_WRLCK, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

int ident_alive_masked(const struct prot_idv *v, uint32_t slot, uint64_t inc, uint64_t mask)
{
	if (inc == 0 || slot >= v->nprocs || !v->h)
		return 0;
	if (v->self && ident_slot(v->self) == slot && (ident_inc(v->self) & mask) == inc)
		return 1;
	struct prot_proc_slot *s = seg_entry(v->h, REG_PROCS, slot);
	/* acquire: pairs with the claimer's release store of its incarnation */
	if ((atomic_load_explicit(&s->inc, memory_order_acquire) & mask) != inc)
		return 0;
	int locked = byte_locked(v->fd, slot);
	if (locked < 0)
		return 1; /* cannot tell (no fd): alive, never robbed */
	/* the lock test happens before this re-read: a claimer that took the lock after inc's holder
	 * died has either stored its incarnation (seen here: dead) or not yet (locked: alive now, dead
	 * on the next look) */
	atomic_thread_fence(memory_order_acquire);
	if ((atomic_load_explicit(&s->inc, memory_order_acquire) & mask) != inc)
		return 0;
	return locked;
}

int ident_alive(const struct prot_idv *v, uint64_t ident)
{
	return ident_alive_masked(v, ident_slot(ident), ident_inc(ident), PROC_INC_MAX);
}
