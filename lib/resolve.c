/* resolve.c — names to slots: the one place where a key, breaker or pool name becomes a slot of
 * the segment. seg_find scans a region (the miss path, protctl, the tests); prot_resolve answers
 * from a per-handle memo (p->memo) when it can; prot_lookup is the prologue of every public call
 * on a named object (the gate, the mapping, the name). Callers: lib/breaker_view.c (through
 * lib/breaker.h), lib/pool_conn.c, lib/pool_api.c, lib/facade.c; protctl and the tests scan.
 *
 * Why a name found in a slot may be served from the memo (the memo never serves a removed or
 * re-created object):
 *  - what the scan proves. seg_find acquires slot i's state word st (LIVE | gen << 8), compares
 *    the name, and re-loads the word after an acquire fence: equal means slot i held that name
 *    under st for the whole compare. protd (daemon/shm.c) changes a slot's name only when it
 *    recycles the slot, and then in this order: state FREE | gen (release), the new name and
 *    config, state LIVE | (gen + 1) (release). A removal stores RETIRED | gen; a key revived by
 *    a reload goes back to LIVE | gen with its name unchanged (the same key).
 *  - what the memo keeps: (mapping h, region, the name) -> (i, st, the address of slot i's state
 *    word), written only after a scan proved it. A hit re-loads that word (acquire, as the scan's
 *    first load) and serves i only when it still equals st. Every change of the name in between
 *    moved the word off st: a removal (RETIRED), a recycling (FREE, then gen + 1). So a served
 *    index held the name at that load, which is what the scan itself guarantees at its return.
 *    The one way around it is 2^24 recyclings of one slot between two calls of one process (the
 *    generation's wrap), the same bound as breaker tokens and pool leases.
 *  - which segment: h is the mapping's address. A handle's mappings stay mapped until
 *    prot_close() (lib/segment.c), so no other segment is ever mapped at an address the memo
 *    holds; a successor segment is another address and misses. The caller passes a mapping of p
 *    (prot_hdr, or one it kept from it).
 *  - threads. Each entry is a small seqlock: a writer claims it by CAS of an even seq to odd
 *    (a loser does not memoise), writes with relaxed atomic stores, and releases seq + 2; a reader
 *    acquires seq, copies, fences and re-checks it. A torn or busy entry is a miss, never a wrong
 *    answer, and a miss is a scan. The memo is private memory: the index and the state word's
 *    address in it come from a scan bounded by the private geometry, never from the segment.
 *  - fork. A child inherits the memo with its mappings, at the same addresses: the entries hold.
 *    An entry that a parent thread was writing at fork() would stay odd in the child: the fork
 *    refresh empties the memo (resolve_forget) before any thread of the child uses the handle.
 */
#include <errno.h>
#include <stdint.h>

#include "internal.h"

#define MEMO_BITS 4
_Static_assert(1u << MEMO_BITS == RESOLVE_MEMO, "the memo's index is MEMO_BITS wide");

static bool named_region(int reg)
{
	return reg == REG_KEYS || reg == REG_BREAKERS || reg == REG_POOLS;
}

static int not_found(int reg)
{
	switch (reg) {
	case REG_KEYS: return -PROT_ENOKEY;
	case REG_BREAKERS: return -PROT_ENOBREAKER;
	default: return -PROT_ENOPOOL;
	}
}

/* ---- the scan ------------------------------------------------------------------------------- */

/* Name (len bytes, len <= PROT_NAME_MAX) in region reg: see the opening comment. */
static int scan(const struct prot_shm_header *h, int reg, const char *name, size_t len,
                struct slot_ref *out)
{
	uint64_t hash = prot_name_hash(name);
	for (uint32_t i = 0, n = seg_count(h, reg); i < n; i++) {
		struct prot_named *s = seg_entry(h, reg, i);
		/* acquire: pairs with protd's release store of LIVE after writing name and config */
		uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
		if (SLOT_STATE(st) != SLOT_LIVE || s->name_hash != hash)
			continue;
		/* len + 1 <= PROT_NAME_BYTES: the compare stays in the slot and needs its NUL */
		bool eq = true;
		for (size_t k = 0; k <= len && eq; k++)
			eq = s->name[k] == name[k];
		if (!eq)
			continue;
		/* The slot may have been recycled while we compared: same state word, same use. */
		if (!seq_read_retry(&s->state, st)) {
			*out = (struct slot_ref){ .idx = i, .state = st };
			return 0;
		}
	}
	return not_found(reg);
}

int seg_find_ref(const struct prot_shm_header *h, int reg, const char *name, struct slot_ref *out)
{
	if (!named_region(reg) || !name)
		return -EINVAL;
	size_t len = prot_name_len(name);
	if (len > PROT_NAME_MAX)
		return -PROT_ETOOLONG;
	return scan(h, reg, name, len, out);
}

int seg_find(const struct prot_shm_header *h, int reg, const char *name)
{
	struct slot_ref ref;
	int rc = seg_find_ref(h, reg, name, &ref);
	return rc < 0 ? rc : (int)ref.idx;
}

/* ---- the memo ------------------------------------------------------------------------------- */

/* The entry for name in region reg. The name's address and first byte pick it: names are program
 * constants as a rule, so an entry is found without reading the whole name twice; what decides a
 * hit is the compare of every byte (memo_get). A buffer reused for other names shares one entry,
 * and then each of its names costs a scan. */
static inline uint32_t memo_index(int reg, const char *name)
{
	uint64_t x = ((uint64_t)(uintptr_t)name + (uint8_t)name[0]) ^ (uint64_t)reg;
	return (uint32_t)((x * 0x9e3779b97f4a7c15ull) >> (64 - MEMO_BITS));
}

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* What entry m says about (h, reg, name), if the slot it names still holds the name: true and
 * *out, or false (another name, busy, torn, or the slot moved on). The compare stops at the first
 * difference, so it reads no byte of name past its NUL; a name longer than any entry's (too long)
 * differs at the entry's NUL at the latest. It needs no bound: the last byte of an entry's name is
 * never written but with a NUL (memo_put writes len + 1 <= 48 bytes, the last of them the NUL; the
 * handle is calloc'd), so even a torn copy ends there. */
static inline bool memo_get(struct resolve_memo *m, const struct prot_shm_header *h, int reg,
                            const char *name, struct slot_ref *out)
{
	/* acquire: pairs with memo_put's release of the even seq */
	uint32_t s = atomic_load_explicit(&m->seq, memory_order_acquire);
	if ((s & 1) || LD(m->h) != h || LD(m->reg) != (uint32_t)reg)
		return false;
	for (size_t k = 0;; k++) {
		char c = LD(m->name[k]);
		if (c != name[k])
			return false;
		if (!c)
			break;
	}
	struct slot_ref r = { .idx = LD(m->idx), .state = LD(m->state) };
	_Atomic uint32_t *word = LD(m->word);
	if (seq_read_retry(&m->seq, s))
		return false;
	/* acquire: pairs with protd's release of LIVE | gen, as the scan's first load; the slot still
	 * holds the name when its word is still the one the scan saw */
	if (atomic_load_explicit(word, memory_order_acquire) != r.state)
		return false;
	*out = r;
	return true;
}

/* Remember (h, reg, name of len bytes) -> ref, which a scan just proved. */
static void memo_put(struct resolve_memo *m, const struct prot_shm_header *h, int reg,
                     const char *name, size_t len, struct slot_ref ref)
{
	uint32_t s;
	if (!memo_write_begin(&m->seq, &s)) /* busy, or another thread writes it: do not memoise */
		return;
	ST(m->h, h);
	ST(m->reg, (uint32_t)reg);
	for (size_t k = 0; k <= len; k++) /* len <= PROT_NAME_MAX: the NUL fits */
		ST(m->name[k], name[k]);
	ST(m->idx, ref.idx);
	ST(m->state, ref.state);
	ST(m->word, &((struct prot_named *)seg_entry(h, reg, ref.idx))->state); /* idx < the count */
	memo_write_end(&m->seq, s);
}

void resolve_forget(prot_t *p)
{
	for (uint32_t i = 0; i < RESOLVE_MEMO; i++) {
		ST(p->memo[i].h, NULL); /* matches no mapping */
		atomic_store_explicit(&p->memo[i].seq, 0, memory_order_release);
	}
}

/* A miss: the scan, and the memo updated from what it proved (m NULL: no memo). Out of line, so
 * that the hit path below needs no registers saved. */
static __attribute__((noinline)) int resolve_miss(struct resolve_memo *m, const struct prot_shm_header *h,
                                                  int reg, const char *name, struct slot_ref *out)
{
	size_t len = prot_name_len(name);
	if (len > PROT_NAME_MAX)
		return -PROT_ETOOLONG;
	struct slot_ref r;
	int rc = scan(h, reg, name, len, &r);
	if (rc == 0) {
		if (m)
			memo_put(m, h, reg, name, len, r);
		*out = r;
	}
	return rc;
}

/* prot_resolve's body, inline in both entry points: a hit costs the compare of the name and one
 * load of the slot's state word. */
static inline __attribute__((always_inline)) int resolve(prot_t *p, const struct prot_shm_header *h, int reg,
                                                         const char *name, struct slot_ref *out)
{
	if (!named_region(reg) || !name)
		return -EINVAL;
	struct resolve_memo *m = NULL;
	if (p) {
		struct slot_ref r;
		m = &p->memo[memo_index(reg, name)];
		if (memo_get(m, h, reg, name, &r)) {
			*out = r;
			return 0;
		}
	}
	return resolve_miss(m, h, reg, name, out);
}

int prot_resolve(prot_t *p, const struct prot_shm_header *h, int reg, const char *name,
                 struct slot_ref *out)
{
	return resolve(p, h, reg, name, out);
}

int prot_lookup(prot_t *p, int reg, const char *name, bool writes, struct prot_shm_header **h,
                struct slot_ref *out)
{
	int g = prot_gate(p, writes);
	if (g < 0)
		return g;
	if (!name)
		return -EINVAL;
	struct prot_shm_header *hh = prot_hdr(p);
	int rc = resolve(p, hh, reg, name, out);
	if (rc == 0)
		*h = hh;
	return rc;
}
