/* bench_table.c — the rate table the baselines decide with, in the style of nginx limit_req: one
 * hash table of (operation, entity) buckets in plain memory, no atomics. The mutex baseline puts it
 * in MAP_SHARED memory under one process-shared mutex (nginx's zone lock); the Unix-socket daemon
 * keeps it private. Same decisions as prot: fixed window aligned on multiples of the window, and
 * GCRA with burst = limit.
 */
#include <string.h>

#include "bench.h"

struct bt_entry {
	uint64_t hash;     /* 0: empty (a real hash of 0 is stored as 1) */
	uint64_t op_hash;
	uint64_t state;    /* fixed window: window number + 1; GCRA: theoretical arrival time, ns */
	uint64_t count;    /* fixed window: units in the window */
	uint8_t ent_len;
	char ent[PROT_ENTITY_MAX];
};

struct bt_table {
	uint64_t mask;
	uint32_t used, max;
	struct bt_entry e[];
};

/* FNV-1a: cheaper than prot's keyed SipHash, which favours the baseline slightly. */
static uint64_t fnv(const char *s, size_t *len, uint64_t h)
{
	const char *p = s;
	for (; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
	*len = (size_t)(p - s);
	return h;
}

static uint64_t slots_for(uint32_t max_entities)
{
	uint64_t n = 16;
	while (n < (uint64_t)max_entities * 2) /* load factor <= 1/2: short linear probes */
		n <<= 1;
	return n;
}

size_t bt_bytes(uint32_t max_entities)
{
	return sizeof(struct bt_table) + slots_for(max_entities) * sizeof(struct bt_entry);
}

void bt_init(struct bt_table *t, uint32_t max_entities)
{
	memset(t, 0, bt_bytes(max_entities));
	t->mask = slots_for(max_entities) - 1;
	t->max = max_entities;
}

static struct bt_entry *bt_lookup(struct bt_table *t, const char *op, const char *entity)
{
	size_t op_len, ent_len;
	uint64_t oh = fnv(op, &op_len, 0xcbf29ce484222325ULL);
	uint64_t h = fnv(entity, &ent_len, oh) | 1;
	if (ent_len > PROT_ENTITY_MAX)
		return NULL;
	for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
		struct bt_entry *e = &t->e[i];
		if (e->hash == h && e->op_hash == oh && e->ent_len == ent_len &&
		    memcmp(e->ent, entity, ent_len) == 0)
			return e;
		if (e->hash == 0) {
			if (t->used >= t->max)
				return NULL;
			t->used++;
			e->hash = h;
			e->op_hash = oh;
			e->ent_len = (uint8_t)ent_len;
			memcpy(e->ent, entity, ent_len);
			return e;
		}
	}
}

int bt_decide(struct bt_table *t, int algo, const char *op, const char *entity, uint64_t limit,
              uint64_t window_ms, uint64_t now_ns)
{
	struct bt_entry *e = bt_lookup(t, op, entity);
	if (!e)
		return -PROT_ETABLEFULL;
	if (algo == PROT_RATE_GCRA) {
		uint64_t tol = window_ms * 1000000u, T = tol / limit ? tol / limit : 1;
		uint64_t tat = e->state > now_ns ? e->state : now_ns;
		if (tat + T > now_ns + tol) /* the burst (limit units) is used up */
			return 0;
		e->state = tat + T;
		return 1;
	}
	uint64_t win = now_ns / 1000000u / window_ms + 1;
	if (e->state != win) {
		e->state = win;
		e->count = 0;
	}
	if (e->count >= limit)
		return 0;
	e->count++;
	return 1;
}
