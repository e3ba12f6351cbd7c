/* telemetry.c — in-process telemetry handlers of a handle.
 *
 * Handlers are per handle, not global (the library keeps no global state). Attach and detach
 * take p->lock; emitting takes no lock: a slot's fn and ctx are stored before its mask is
 * published with release, and emit loads each mask with acquire before reading fn and ctx. A
 * handler being detached may therefore still be called once by a thread that loaded its mask
 * just before: detach is not a barrier (documented in prot.h's spirit: set telemetry up at start).
 */
#include <errno.h>

#include "internal.h"

static void tel_recompute_mask(prot_t *p)
{
	uint32_t m = 0;
	for (size_t i = 0; i < sizeof p->tel / sizeof p->tel[0]; i++)
		m |= atomic_load_explicit(&p->tel[i].mask, memory_order_relaxed);
	atomic_store_explicit(&p->tel_mask, m, memory_order_release);
}

PROT_API int prot_telemetry_attach(prot_t *p, uint32_t mask,
                                   void (*handler)(const struct prot_tel *ev, void *ctx), void *ctx)
{
	if (!p || !handler || !mask || (mask & ~(uint32_t)PROT_TEL_ALL))
		return -EINVAL;
	int id = -PROT_ECAPACITY;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < sizeof p->tel / sizeof p->tel[0]; i++) {
		if (atomic_load_explicit(&p->tel[i].mask, memory_order_relaxed) == 0) {
			p->tel[i].fn = handler;
			p->tel[i].ctx = ctx;
			atomic_store_explicit(&p->tel[i].mask, mask, memory_order_release);
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
	if (!p || id < 0 || (size_t)id >= sizeof p->tel / sizeof p->tel[0])
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	int r = atomic_load_explicit(&p->tel[id].mask, memory_order_relaxed) ? 0 : -ENOENT;
	atomic_store_explicit(&p->tel[id].mask, 0, memory_order_relaxed);
	tel_recompute_mask(p);
	pthread_mutex_unlock(&p->lock);
	return r;
}

void prot_tel_emit(prot_t *p, const struct prot_tel *ev)
{
	uint32_t bit = 1u << ev->event;
	for (size_t i = 0; i < sizeof p->tel / sizeof p->tel[0]; i++) {
		/* acquire: pairs with the release store in attach, so fn/ctx are the ones published */
		if (atomic_load_explicit(&p->tel[i].mask, memory_order_acquire) & bit)
			p->tel[i].fn(ev, p->tel[i].ctx);
	}
}
