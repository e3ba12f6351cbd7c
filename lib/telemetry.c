/* telemetry.c — in-process telemetry handlers of a handle.
 *
 * Handlers are per handle, not global (the library keeps no global state). Attach and detach
 * serialise on p->lock and rewrite a slot inside its sequence counter: seq goes odd (relaxed),
 * mask/fn/ctx are stored with release (so none of them can be seen before the odd seq), then seq
 * goes even with release. An emitting thread loads seq (acquire), then mask/fn/ctx (acquire, so the
 * re-check of seq cannot move above them), and calls the handler only if seq was even and did not
 * change: it never mixes one handler's function with another's context or mask. A handler detached
 * while another thread is inside it may still be running when detach returns: detach is not a
 * barrier, so a handler's ctx must outlive the handle's users (documented in prot.h).
 */
#include <errno.h>

#include "internal.h"

#define TEL_SLOTS (sizeof ((prot_t *)0)->tel / sizeof ((prot_t *)0)->tel[0])

static void tel_recompute_mask(prot_t *p)
{
	uint32_t m = 0;
	for (size_t i = 0; i < TEL_SLOTS; i++)
		m |= atomic_load_explicit(&p->tel[i].mask, memory_order_relaxed);
	/* relaxed: the hot-path filter only; slot contents are published by the slot's seq */
	atomic_store_explicit(&p->tel_mask, m, memory_order_relaxed);
}

/* Caller holds p->lock. */
static void tel_slot_set(struct prot_tel_slot *t, uint32_t mask,
                         void (*fn)(const struct prot_tel *, void *), void *ctx)
{
	uint32_t s = atomic_load_explicit(&t->seq, memory_order_relaxed);
	atomic_store_explicit(&t->seq, s + 1, memory_order_relaxed);
	atomic_store_explicit(&t->fn, fn, memory_order_release);
	atomic_store_explicit(&t->ctx, ctx, memory_order_release);
	atomic_store_explicit(&t->mask, mask, memory_order_release);
	atomic_store_explicit(&t->seq, s + 2, memory_order_release); /* pairs with emit's acquire */
}

PROT_API int prot_telemetry_attach(prot_t *p, uint32_t mask,
                                   void (*handler)(const struct prot_tel *ev, void *ctx), void *ctx)
{
	if (!p || !handler || !mask || (mask & ~(uint32_t)PROT_TEL_ALL))
		return -EINVAL;
	int id = -PROT_ECAPACITY;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < TEL_SLOTS; i++) {
		if (atomic_load_explicit(&p->tel[i].mask, memory_order_relaxed) == 0) {
			tel_slot_set(&p->tel[i], mask, handler, ctx);
			id = (int)i;
			break;
		}
	}
	if (id >= 0)
		tel_recompute_mask(p);
	pthread_mutex_unlock(&p->lock);
	return id;
}

PROT_API int prot_telemetry_detach(prot_t *p, int id)
{
	if (!p || id < 0 || (size_t)id >= TEL_SLOTS)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	int r = atomic_load_explicit(&p->tel[id].mask, memory_order_relaxed) ? 0 : -ENOENT;
	if (r == 0) {
		tel_slot_set(&p->tel[id], 0, NULL, NULL);
		tel_recompute_mask(p);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

void prot_tel_emit(prot_t *p, const struct prot_tel *ev)
{
	uint32_t bit = 1u << ev->event;
	for (size_t i = 0; i < TEL_SLOTS; i++) {
		struct prot_tel_slot *t = &p->tel[i];
		uint32_t s = atomic_load_explicit(&t->seq, memory_order_acquire);
		uint32_t m = atomic_load_explicit(&t->mask, memory_order_acquire);
		void (*fn)(const struct prot_tel *, void *) = atomic_load_explicit(&t->fn, memory_order_acquire);
		void *ctx = atomic_load_explicit(&t->ctx, memory_order_acquire);
		if ((s & 1u) || !(m & bit) || !fn || atomic_load_explicit(&t->seq, memory_order_relaxed) != s)
			continue; /* empty, not listening, or being changed right now */
		fn(ev, ctx);
	}
}
