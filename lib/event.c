/* event.c — the segment's event ring: any process appends state changes (breaker transitions,
 * pool exhaustion, reloads), protctl and protd read them (lib/event_text.c puts them in words).
 *
 * Why it holds:
 *  - a writer owns event number s (fetch_add on hdr.event_head) and entry s % n. It first marks the
 *    entry unpublished (seq = 0), then writes the payload words with relaxed atomic stores, then
 *    stores seq = s + 1 with release. The release fence after the mark orders the mark before any
 *    payload store (the seqlock writer pattern of lib/internal.h).
 *  - a reader wanting number c loads seq with acquire; only seq == c + 1 means "event c, complete".
 *    It copies the payload with relaxed loads, fences (acquire) and re-loads seq: unchanged means
 *    no writer touched the entry during the copy, so the copy is event c whole. A larger seq means
 *    the entry was lapped: event c is lost (counted as dropped); a smaller one means c's writer has
 *    not published yet.
 *  - writers never wait for readers or for each other: a slow reader loses the oldest events
 *    ("drop oldest"). The one case the seq cannot detect is two writers on one entry at once,
 *    which needs the whole ring (>= n events) emitted during one writer's few stores; the payload
 *    is diagnostic, so that is accepted rather than paid for with a lock.
 */
#include <unistd.h>

#include "internal.h"

#define EVENT_WORDS (sizeof(struct prot_event) / 8)
_Static_assert(offsetof(struct prot_event, seq) == 0, "seq is word 0; the payload follows");
_Static_assert(sizeof(struct prot_event) % 8 == 0, "copied as words");

static void event_copy(const struct prot_event *e, struct prot_event *copy)
{
	const uint64_t *s = (const uint64_t *)e;
	uint64_t *d = (uint64_t *)copy;

	for (size_t i = 0; i < EVENT_WORDS; i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

void prot_event_emit(struct prot_shm_header *h, uint32_t type, uint32_t object, const char *name,
                     uint64_t a, uint64_t b)
{
	uint32_t n = seg_count(h, REG_EVENTS);
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	struct prot_event ev = {.time_ns = prot_now_ns(), .type = type, .pid = getpid(),
	                        .object = object, .a = a, .b = b,
	                        .wall_ns = (uint64_t)wall.tv_sec * 1000000000u + (uint64_t)wall.tv_nsec};

	if (n == 0) /* only a segment protd did not make: its [segment] events is at least 16 */
		return;
	if (name)
		strncpy(ev.name, name, sizeof ev.name - 1);
	/* relaxed: the number only has to be unique; publication is by the entry's own seq */
	uint64_t s = atomic_fetch_add_explicit(&h->event_head, 1, memory_order_relaxed);
	struct prot_event *e = seg_entry(h, REG_EVENTS, (uint32_t)(s % n));
	atomic_store_explicit(&e->seq, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_release); /* the mark is visible before any payload word */
	seq_write_words((uint64_t *)e + 1, (const uint64_t *)&ev + 1, EVENT_WORDS - 1);
	/* release: pairs with the reader's acquire load of seq == s + 1 */
	atomic_store_explicit(&e->seq, s + 1, memory_order_release);
}

uint64_t prot_event_oldest(const struct prot_shm_header *h)
{
	uint32_t n = seg_count(h, REG_EVENTS);
	/* acquire: pairs with nothing in particular; a fresh head is all we want */
	uint64_t head = atomic_load_explicit(&((struct prot_shm_header *)h)->event_head,
	                                     memory_order_acquire);
	return head > n ? head - n : 0;
}

int prot_event_read(const struct prot_shm_header *h, uint64_t *cursor, struct prot_event *out,
                    uint64_t *dropped)
{
	uint32_t n = seg_count(h, REG_EVENTS);
	uint64_t lost = 0, c = *cursor;
	int r = 0;

	if (n == 0)
		return 0;
	for (;;) {
		uint64_t head = atomic_load_explicit(&((struct prot_shm_header *)h)->event_head,
		                                     memory_order_relaxed);
		if (c >= head)
			break;
		if (head - c > n) { /* lapped: those entries hold newer events now */
			lost += head - n - c;
			c = head - n;
		}
		struct prot_event *e = seg_entry(h, REG_EVENTS, (uint32_t)(c % n));
		uint64_t seq = atomic_load_explicit(&e->seq, memory_order_acquire); /* see the top */
		if (seq < c + 1) {
			/* Not published yet. A writer killed between its fetch_add and its publish would
			 * leave this forever: once half the ring has moved past it, give up on it. */
			if (head - c <= n / 2)
				break;
			lost++, c++;
			continue;
		}
		if (seq > c + 1) {
			lost++, c++;
			continue;
		}
		struct prot_event copy;
		event_copy(e, &copy);
		if (seq_read_retry(&e->seq, seq)) {
			lost++, c++;
			continue;
		}
		copy.seq = seq - 1; /* the event's number */
		copy.name[sizeof copy.name - 1] = '\0'; /* untrusted bytes: always a string */
		*out = copy;
		c++;
		r = 1;
		break;
	}
	*cursor = c;
	if (dropped)
		*dropped += lost;
	return r;
}
