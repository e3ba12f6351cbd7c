/* rate_table.c — the rate limiter's bucket table in the segment: per-(operation, entity,
 * algorithm, window) buckets, found, inserted, charged and removed lock-free, each decision one
 * compare-and-swap on one 64-bit word, shared exactly by every process; protd's sweep that expires
 * buckets and frees the claims of dead processes. Called by ratelimit.c (charge; rate_table_reset
 * for prot_rate_reset), rate_counter.c (count: Hammer's inc and set), rate_view.c (find, the key
 * hash) and protd (rate_sweep, on its tick); a sliding window's ring is rate_sliding.c's; the
 * words' layout is in rate_table.h, the arithmetic on a bucket word in rate_algo.c, and how a call
 * names its bucket (struct rate_id) in ratelimit.c.
 *
 * LENGTH. Over 700 lines on purpose: every step of the protocol below (claim, publish, decide,
 * remove, sweep, and the counters' and sliding windows' uses of the same steps) shares the static
 * helpers that make it correct; split, they would have to be exported to each other, and the
 * argument would no longer sit next to the code it is about.
 *
 * TABLE. REG_RATE_GROUPS holds a power-of-two number of groups of 32 buckets. A bucket is
 * (operation, entity, algorithm, window) (ratelimit.c, IDENTITY); h = SipHash(segment key ^
 * (op_hash, 0), entity) — a key per operation, and the same for every scale of an entity, so that
 * all of an entity's buckets share one group — picks the group (low bits), an 8-bit tag
 * (top byte) and a home slot (insertion tries it first; lookups prefetch it with the group line).
 * op_hash itself is memoised per handle (struct rate_op_cache, ratelimit.c): a decision hashes only
 * the entity. An entity lives in its one group or nowhere: a group with no free bucket is "table
 * full" and the key's policy applies (ratelimit.c; deny: PROT_ETABLEFULL; allow: admitted without
 * a bucket and counted). Cost: 128 B per bucket + 64 B group index per 32 buckets = 130 B per
 * entity. Since entities fall into groups at random, groups fill before the table does. Measured
 * on 64 Ki and 1 Mi buckets with uniformly hashed ids: the first full group appears at ~48-56 %
 * occupancy (~64 % on 4 Ki); a new entity is refused 0.03 % of the time at 60 % occupancy, 1.6 %
 * at 70 %, 10 % at 80 %, 32 % at 90 %. Size rate_entities at ~1.5x the live entities expected
 * (effective capacity ~65 %: ~200 B per live entity). See the effective_capacity test.
 *
 * WORDS.
 *  group word = version << 32 | occupancy bitmap. Every change (a bucket published or removed)
 *    CASes it from the exact value the changer scanned and bumps the version, so two changes
 *    based on one scan cannot both succeed.
 *  meta = gen << 32 | state, state FREE -> CLAIMED -> LIVE -> DEAD -> FREE; gen is bumped on
 *    every claim, so a meta value names one use of the bucket.
 *  scale = window_ms | kind << 56 (rate_table.h), written with the identity and part of it; kind
 *    = the algorithm and its RATE_TAG_* flags (rate_algo.h: the clock, a budget that never
 *    refills). So a key whose algorithm, window, clock or refill-0-ness changes simply uses
 *    another bucket, and the old one expires.
 *  word = GCRA, token and leaky bucket: theoretical arrival time, ns on the bucket's clock (a
 *    budget: units spent). Fixed window: window end (ms) << 24 | units counted in it. Sliding
 *    window: a reference to its ring (generation << 32 | index, rate_sliding.c), fixed for the
 *    bucket's life. DEAD_WORD (all ones) = being removed.
 *
 * INSERTION (claim, then publish). A process that did not find its entity in the group word it
 * loaded (gw): picks a bucket whose bit is clear in gw and whose meta is FREE (its home slot
 * first) and CASes meta FREE(g) -> CLAIMED(g+1): one claimer per bucket. It writes tag, identity
 * and the initial word, re-checks that its claim still stands, and CASes the group word gw ->
 * (version+1, bit set) with release: this is the publication, and it succeeds only if nothing in
 * the group changed since the scan. If it fails, the claimer rescans the new group word: if its
 * entity is there now (another process inserted it first) it gives its bucket back and uses that
 * one; otherwise it retries the CAS. So N processes inserting one new entity at once publish ONE
 * bucket: every publication changes the version, every other publisher then rescans and finds it.
 * After publishing, meta goes CLAIMED -> LIVE (release). Everything a lookup needs was written
 * before the group CAS, so a lookup that sees a CLAIMED bucket whose bit is set (re-read after
 * the meta: an older group word may show the bit of the bucket's previous use) completes that
 * step itself (helping) instead of waiting: no lookup ever waits for another process.
 *
 * LOOKUP. Load the group word (acquire: pairs with the publishing CAS, so tags and identity of
 * every set bit are visible), match tags with SWAR, then for each candidate load meta (acquire)
 * and compare identity (names, entity, scale). Tags of set bits are exact, so a miss is a real
 * miss. A reset (scale_mask 0) matches every scale of (operation, entity): they all sit in the
 * one group.
 *
 * DECISION. Load meta m, compare identity, load word w (acquire), re-load meta: unchanged means w
 * belongs to this use of the bucket. Deny: add to `denied` (line 1) and write nothing else —
 * line 0 is untouched. Admit: CAS word w -> w' (relaxed: the word carries no other data), then
 * add to `allowed` and store `updated_ms` (line 0, display only). A failed CAS reloads and
 * re-decides. An insertion writes created_ns (line 1) once, before publication.
 *
 * SLIDING WINDOWS. Their state is a ring (lib/rate_sliding.c, which argues it): the inserter takes
 * a ring before it publishes and stores its reference as the word; a claim given back gives the
 * ring back. Since admissions do not change the word, a removal first closes the ring (a CAS that
 * no admission can follow; the sweep closes only an idle ring: every admission a window + grace
 * old), then removes the bucket as below, and whoever emptied the word gives the ring back (the
 * sweep gives back rings no bucket holds). A decision that finds its ring closed, not its own, or
 * of another limit removes the bucket itself and looks up again. The ring reference lives in the
 * word (line 0, as every algorithm's state): an admission on a ring writes the ring and `allowed`
 * and updated_ms (line 0), a denial only `denied` (line 1), as for every other algorithm.
 *
 * REMOVAL (sweep, reset). CAS word from the value observed under LIVE(g) to
 * DEAD_WORD — a concurrent charge either lands first (the remover's CAS then fails: an expired
 * bucket is no longer expired, it re-evaluates) or fails and re-looks-up. Then CAS meta LIVE(g) ->
 * DEAD(g): its winner (anyone who sees a LIVE bucket holding DEAD_WORD may complete the removal)
 * clears the bit (version+1) and sets meta DEAD(g) -> FREE(g).
 *
 * WHY A STALE CLIENT NEVER CHARGES A RECYCLED BUCKET. A client charges only by CAS(word, w, w')
 * where w was loaded while meta was LIVE(g) (re-checked after the load). Once the bucket is
 * removed, word goes w_last -> DEAD_WORD -> initial word (GCRA: t ns, fixed window: t_ms << 24,
 * t = the inserter's clock read) -> values that only grow (GCRA: max(tat, now) + n*T; window: count up, then later
 * windows). The sweep removes only expired buckets: w <= w_last <= now_sweep - grace < t, so no
 * value of a later use of the bucket equals w and the stale CAS fails. That last step needs the
 * grace to exceed how far an inserter's clock read t can lag the sweeper's: both read
 * CLOCK_MONOTONIC, but a key on rate_clock = coarse reads CLOCK_MONOTONIC_COARSE, which lags by
 * at most one jiffy (clock_getres: 1 ms at HZ=1000 .. 10 ms at HZ=100). So the grace is
 * configurable ([daemon] rate_grace, default RATE_GRACE_DEFAULT_MS = 100 ms) but never below
 * RATE_GRACE_MIN_MS = 20 ms, two jiffies at the slowest HZ: protd's validator refuses less, and
 * rate_sweep clamps whatever it is passed. Generations (in meta) stop every other stale step. A
 * sliding window's client never CASes the word: its ring's generation (checked on every use)
 * stops it instead; the sweep closes a sliding window's ring only when idle for window + grace.
 * Reset may remove a bucket whose TAT lies in the future; for that the argument needs the client
 * to stall between its meta re-check and its CAS (adjacent instructions) for a whole removal and
 * re-insert, and a later TAT to hit w to the nanosecond. (An algorithm change no longer removes a
 * bucket: the new kind is another bucket.) A budget (token bucket, refill 0) is never expired,
 * so only reset removes it: its words (units spent, from 0) recur after a re-insert, and it rests
 * on the same stall. Calendar buckets: see rate_clock.c (a step back of the clock).
 *
 * STUCK CLAIMS. A process killed between claiming a bucket and publishing it leaves a CLAIMED
 * bucket whose bit is clear. While it holds the claim, the claimer's identity (lib/ident.c, as in
 * pool leases), tagged with bit 63, sits in the bucket's `allowed` field (cleared just before
 * publication; the tag keeps a stale statistic from passing for an identity). The sweep frees a
 * claim only when that identity is provably gone (its record lock is released: pid reuse cannot
 * fool it): a live claimer, however long descheduled, is never robbed, so once
 * its group CAS succeeds its bucket is published for good. Unfreed (leaked until the segment is
 * recreated, skipped by lookups, never waited on): a claim whose claimer died in the two
 * instructions between the claim and the identity store, or right after clearing it; and a
 * removal whose remover died between its meta step and clearing the bit.
 *
 *
 * EXPIRY. rate_sweep() (protd, every tick) covers RATE_SWEEP_GROUPS groups per call from a cursor
 * kept in the header (hdr.rate_sweep_cursor, fetch_add: concurrent sweepers take disjoint ranges).
 * A GCRA bucket is expired when tat <= now - grace; a window bucket when its window ended grace
 * ago, now read on the bucket's clock (a calendar bucket: rate_clock.c's calendar). Removing an
 * expired bucket loses nothing: a fresh bucket decides the same way. A budget (token bucket,
 * refill 0) never expires: its spent units are the state, and a fresh bucket would be full. So
 * an expired bucket is freed within grace + one full pass, and a full pass takes
 * groups / RATE_SWEEP_GROUPS ticks (plus the work, measured in README "Expiry": 4 Ki buckets = 1
 * tick, 64 Ki = 16 ticks, 1 Mi = 256 ticks: 10 ms, 160 ms, 2.6 s at the default 10 ms tick).
 *
 * SUMMARY: the sweep touches only groups that hold buckets. The table is mostly empty pages, and
 * reading a page maps it (an idle sweep used to map all of a 520 MiB table within 10 s). A bitmap
 * after the regions (hdr.rate_summary_off, RATE_SUMMARY_BYTES: one bit per group) has bit g set
 * whenever group g holds a bucket that is not FREE (claimed, live, or being removed); the sweep
 * skips groups whose bit is clear. Segments without a summary (offset 0) are swept whole.
 *  - an inserter sets the bit (fetch_or, release) after its claim CAS FREE -> CLAIMED succeeded
 *    and before it publishes: a claimer that dies holding the claim leaves the bit set, so the
 *    sweep still finds and frees its claim;
 *  - the sweep clears the bit of a group it found quiet (bits clear and every meta FREE) with
 *    fetch_and (acq_rel), then re-checks quiet (acquire loads) and sets the bit again if not.
 *  Why no group with a non-FREE bucket is left unmarked: the bit's RMWs are totally ordered. If an
 *  inserter's fetch_or comes after the sweep's fetch_and, the bit is set. If before, the fetch_and
 *  reads from the release sequence the fetch_or heads, so the claim CAS happens before the
 *  re-check, which then sees that bucket CLAIMED or in a later state of the same use (LIVE, DEAD:
 *  not quiet) or FREE again (its removal completed: nothing left to sweep). A bucket leaves FREE
 *  only by a new claim, which sets the bit itself. A stale relaxed load in the sweep's skip test
 *  only delays that group to the next pass.
 */
#include <errno.h>

#include "rate_sliding.h"

#define GROUP_VER (1ull << 32)
#define NS_MS RATE_NS_MS

#define RATE_SWEEP_GROUPS 128u            /* groups per rate_sweep() call */
#define RATE_RING_GRACE_NS (1000 * NS_MS) /* a ring taken this recently may await its publication */

enum { R_RETRY = -100000 }; /* internal, never returned to callers */
_Static_assert(R_RETRY != RATE_TABLE_FULL, "two internal results");

static inline void st(struct prot_rate_bucket *b, size_t off, uint64_t v)
{
	__atomic_store_n(bw(b, off), v, __ATOMIC_RELAXED);
}

static bool id_equal(struct prot_rate_bucket *b, const struct rate_id *id)
{
	if (ld(b, B_OP_HASH) != id->op_hash || ld_id0(b) != id->id0 ||
	    ((ld(b, B_SCALE) ^ id->scale) & id->scale_mask))
		return false;
	for (uint32_t k = 0; k < id->ent_words; k++)
		if (ld(b, ent_off(k)) != id->ent[k])
			return false;
	return true;
}

static void id_store(struct prot_rate_bucket *b, const struct rate_id *id)
{
	st(b, B_OP_HASH, id->op_hash);
	__atomic_store_n((uint32_t __attribute__((may_alias)) *)((char *)b + B_ID0), id->id0,
	                 __ATOMIC_RELAXED);
	st(b, B_SCALE, id->scale);
	for (uint32_t k = 0; k < id->ent_words; k++)
		st(b, ent_off(k), id->ent[k]);
}

/* Bit j set where tags[j] == tag (SWAR over the four tag words: an exact zero-byte test, then the
 * byte flags gathered into bits). */
static inline uint32_t tag_match(struct prot_rate_group *g, uint8_t tag)
{
	const u64a *t = (const u64a *)(void *)g->h.tags;
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL, rep = 0x0101010101010101ULL * tag;
	uint32_t mask = 0;

	for (int k = 0; k < 4; k++) {
		/* relaxed: tags of set bits were published by the group CAS the caller acquired */
		uint64_t x = __atomic_load_n(&t[k], __ATOMIC_RELAXED) ^ rep;
		uint64_t z = ~(((x & lo7) + lo7) | x | lo7); /* 0x80 in each zero byte */
		mask |= (uint32_t)(((z >> 7) * 0x0102040810204080ULL) >> 56) << (8 * k);
	}
	return mask;
}

/* ---- publication helpers ---------------------------------------------------------------------- */

/* CLAIMED(g) -> LIVE(g) (release: pairs with the acquire of meta by lookups). Returns the meta now
 * in place. */
static uint64_t help_publish(struct prot_rate_bucket *b, uint64_t m)
{
	uint64_t live = META_WITH(m, RB_LIVE);

	if (atomic_compare_exchange_strong_explicit(&b->meta, &m, live, memory_order_acq_rel,
	                                            memory_order_acquire))
		return live;
	return m;
}

/* Bucket i of g was seen CLAIMED (meta m) through a set bit of an earlier group-word load. That
 * bit may belong to the bucket's previous use, removed since; the claim may not be published
 * yet. Only a bit set NOW, after we saw the claim, is this claim's publication (a claimed bucket
 * was FREE, hence bit-clear, when claimed, and only its claimer sets the bit while it stays
 * CLAIMED): then complete it for its claimer, who may be descheduled or dead. */
static uint64_t help_if_published(struct prot_rate_group *g, uint32_t i, uint64_t m)
{
	/* the acquire load of m that the caller did orders this load after it */
	if (!(group_load(g) & (1ull << i)))
		return m;
	return help_publish(&g->b[i], m);
}

/* Clear bit i of the group (version+1). Called only by the one process that owns the bit's
 * removal (the winner of a meta CAS), so it clears exactly once. */
static void group_clear(struct rate_ref r)
{
	uint64_t bit = 1ull << r.i;
	uint64_t gw = atomic_load_explicit(&r.g->h.word, memory_order_relaxed);

	/* acq_rel: orders our DEAD meta before the bit disappears; re-reads the word on failure */
	while (!atomic_compare_exchange_weak_explicit(&r.g->h.word, &gw, (gw + GROUP_VER) & ~bit,
	                                              memory_order_acq_rel, memory_order_relaxed))
		;
	/* relaxed: a statistic */
	atomic_fetch_sub_explicit(&r.h->rate_buckets_used, 1, memory_order_relaxed);
}

uint64_t rate_key_op_hash(const struct prot_shm_header *h, struct prot_key_slot *k)
{
	uint32_t st = SLOT_STATE(atomic_load_explicit(&k->state, memory_order_acquire));
	size_t len = strnlen(k->name, sizeof k->name);
	if ((st != SLOT_LIVE && st != SLOT_RETIRED) || len == 0 || len >= sizeof k->name)
		return 0;
	return prot_siphash(h->hash_key, k->name, len);
}

/* A removed bucket's counts go to its key's totals, so that they outlive the bucket. Only the
 * winner of LIVE -> DEAD calls this (once per bucket); a client that charged just before the
 * removal and adds its count just after it is lost to the statistic, never double-counted. The
 * key is the one whose name hashes to the bucket's op_hash (Hammer-style operations that are no
 * key have no totals). Removals are rare (expiry, reset): a scan of the keys. */
static void fold_counts(struct prot_shm_header *h, struct prot_rate_bucket *b)
{
	/* relaxed: statistics */
	uint64_t allowed = atomic_load_explicit(&b->allowed, memory_order_relaxed);
	uint64_t denied = atomic_load_explicit(&b->denied, memory_order_relaxed);
	if (!allowed && !denied)
		return;
	for (uint32_t i = 0, n = seg_count(h, REG_KEYS); i < n; i++) {
		struct prot_key_slot *k = seg_entry(h, REG_KEYS, i);
		if (rate_key_op_hash(h, k) != b->op_hash)
			continue;
		atomic_fetch_add_explicit(&k->stats.rate_allowed, allowed, memory_order_relaxed);
		atomic_fetch_add_explicit(&k->stats.rate_denied, denied, memory_order_relaxed);
		return;
	}
}

/* Second half of a removal: the bucket holds DEAD_WORD under meta m (LIVE). */
static bool finish_remove(struct rate_ref r, uint64_t m)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	uint64_t dead = META_WITH(m, RB_DEAD);

	/* acq_rel: one winner; the loser learns another process is completing this removal */
	if (!atomic_compare_exchange_strong_explicit(&b->meta, &m, dead, memory_order_acq_rel,
	                                             memory_order_relaxed))
		return false;
	fold_counts(r.h, b);
	group_clear(r);
	/* A FREE bucket's `allowed` is 0: a claimer's identity is stored there only after its claim,
	 * so the sweep must never read a stale count as a claimer (see claimer_dead). */
	atomic_store_explicit(&b->allowed, 0, memory_order_relaxed);
	/* release: the bucket is reusable only after its bit is gone (pairs with the claimer's CAS);
	 * also publishes the zero above to the next claim's observers (release sequence) */
	atomic_compare_exchange_strong_explicit(&b->meta, &dead, META_WITH(m, RB_FREE),
	                                        memory_order_release, memory_order_relaxed);
	return true;
}

/* Remove the bucket if its word is still w (observed under meta m). sliding: the bucket is a
 * sliding window (its scale, read under m, says so). A sliding window's word (its ring) does not
 * change with admissions: its ring is closed first, so that none lands after it (idle_before:
 * only if it holds no admission after that time, see rate_sliding.c). */
static bool bucket_remove_if(struct rate_ref r, uint64_t m, uint64_t w, bool sliding,
                             uint64_t idle_before)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	bool ring = w != DEAD_WORD && sliding;

	if (ring && !rate_ring_close(r.h, rate_bucket_index(r), w, idle_before))
		return false;
	/* relaxed: the word is the only thing decided here; a charge that lands first makes us fail */
	if (w != DEAD_WORD && !atomic_compare_exchange_strong_explicit(&b->word, &w, DEAD_WORD,
	                                                               memory_order_relaxed,
	                                                               memory_order_relaxed))
		return false;
	bool done = finish_remove(r, m);
	if (ring) /* we emptied the word: the ring is ours to give back (else the sweep's) */
		rate_ring_give(r.h, rate_bucket_index(r), w);
	return done;
}

static bool bucket_remove(struct rate_ref r, uint64_t m, uint64_t w, bool sliding)
{
	return bucket_remove_if(r, m, w, sliding, 0);
}

/* ---- the summary of non-empty groups (see SUMMARY above) ------------------------------------- */

/* The summary words, or NULL when the segment has none (the offset was checked against every
 * region and the segment's size when the geometry was taken: seg_take_geometry). */
static _Atomic uint64_t *summary_words(const struct prot_shm_header *h)
{
	uint64_t off = seg_geo(h)->rate_summary_off;
	return off ? (_Atomic uint64_t *)(void *)((char *)h + off) : NULL;
}

static void summary_mark(const struct prot_shm_header *h, uint32_t gi)
{
	_Atomic uint64_t *w = summary_words(h);
	/* release: our claim CAS happens before whatever sweep clears this bit next */
	if (w)
		atomic_fetch_or_explicit(&w[gi / 64], 1ull << (gi % 64), memory_order_release);
}

/* No bucket bit set and every bucket FREE: nothing for the sweep in this group. */
static bool group_quiet(struct prot_rate_group *g)
{
	if ((uint32_t)group_load(g) != 0)
		return false;
	for (uint32_t i = 0; i < RATE_GROUP_SLOTS; i++)
		/* acquire: pairs with the claim's summary release (see SUMMARY) */
		if (META_ST(atomic_load_explicit(&g->b[i].meta, memory_order_acquire)) != RB_FREE)
			return false;
	return true;
}

static void summary_clear(_Atomic uint64_t *w, uint32_t gi, struct prot_rate_group *g)
{
	uint64_t bit = 1ull << (gi % 64);
	/* acq_rel: reads from any inserter's release fetch_or before it, so its claim is seen below */
	atomic_fetch_and_explicit(&w[gi / 64], ~bit, memory_order_acq_rel);
	if (!group_quiet(g))
		atomic_fetch_or_explicit(&w[gi / 64], bit, memory_order_relaxed);
}

/* ---- lookup ----------------------------------------------------------------------------------- */

/* Scan group word gw for id. help: complete a CLAIMED bucket's publication (writers only; a
 * read-only reader treats a published CLAIMED bucket as live). Returns the slot or -1. */
static int group_scan(struct prot_rate_group *g, uint64_t gw, const struct rate_id *id, bool help,
                      uint64_t *meta)
{
	uint32_t cand = tag_match(g, id->tag) & (uint32_t)gw;

	while (cand) {
		int i = __builtin_ctz(cand);
		struct prot_rate_bucket *b = &g->b[i];
		cand &= cand - 1;
		/* acquire: pairs with the LIVE release (and the group CAS) of the bucket's claimer */
		uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire);
		if (META_ST(m) == RB_CLAIMED && help)
			m = help_if_published(g, (uint32_t)i, m);
		/* A writer charges LIVE buckets only; a reader also sees published CLAIMED ones. */
		if (META_ST(m) != RB_LIVE && (help || META_ST(m) != RB_CLAIMED))
			continue;
		if (!id_equal(b, id))
			continue;
		*meta = m;
		return i;
	}
	return -1;
}

/* ---- insertion -------------------------------------------------------------------------------- */
static inline uint32_t rotr32(uint32_t x, unsigned r)
{
	return (x >> r) | (x << ((32 - r) & 31));
}

/* Claim a FREE bucket whose bit is clear in gw, trying the entity's home slot first and then the
 * next ones round the group. Returns its slot and meta, or -1. */
static int claim_free(struct prot_rate_group *g, uint64_t gw, unsigned home, uint64_t *claimed)
{
	uint32_t freebits = rotr32(~(uint32_t)gw, home); /* bit j: slot (home + j) % 32 */

	while (freebits) {
		int i = (int)((__builtin_ctz(freebits) + home) % RATE_GROUP_SLOTS);
		struct prot_rate_bucket *b = &g->b[i];
		freebits &= freebits - 1;
		uint64_t m = atomic_load_explicit(&b->meta, memory_order_relaxed);
		if (META_ST(m) != RB_FREE)
			continue; /* claimed by another inserter, or the tail of a removal */
		uint64_t c = META(META_GEN(m) + 1, RB_CLAIMED);
		/* acquire: the bucket's previous removal (FREE release) happens before our writes */
		if (atomic_compare_exchange_strong_explicit(&b->meta, &m, c, memory_order_acquire,
		                                            memory_order_relaxed)) {
			*claimed = c;
			return i;
		}
	}
	return -1;
}

/* Give back claim c of bucket i, and ring (a sliding window's ring reference taken for it, or
 * DEAD_WORD: none). */
static void claim_release(struct rate_ref r, uint32_t i, uint64_t c, uint64_t ring)
{
	struct prot_rate_bucket *b = &r.g->b[i];
	if (ring != DEAD_WORD)
		rate_ring_give(r.h, rate_bucket_index((struct rate_ref){r.h, r.g, i}), ring);
	atomic_store_explicit(&b->allowed, 0, memory_order_relaxed); /* see finish_remove */
	/* relaxed: nothing of ours is published; fails harmlessly if the sweep freed it already */
	atomic_compare_exchange_strong_explicit(&b->meta, &c, META_WITH(c, RB_FREE),
	                                        memory_order_relaxed, memory_order_relaxed);
}

/* Insert id into group r.g, whose word was gw when id was not found in it. Returns the slot (and
 * its LIVE meta) of id's bucket — ours, or the one another process published first — or
 * RATE_TABLE_FULL, or R_RETRY. */
static int group_insert(struct rate_ref *r, prot_t *p, uint64_t gw, const struct rate_id *id,
                        const struct rate_params *rp, uint64_t now, uint64_t *meta)
{
	struct prot_rate_group *g = r->g;
	uint64_t c, word = rate_word_init(SCALE_KIND(id->scale), now), ring = DEAD_WORD;
	int i = claim_free(g, gw, id->home, &c);

	if (i < 0)
		return RATE_TABLE_FULL;
	/* A sliding window's word is its ring, taken before publication (and given back with the
	 * claim if this insertion loses). */
	if (rp->algo == PROT_RATE_SLIDING_WINDOW &&
	    rate_ring_take(r->h, rate_bucket_index((struct rate_ref){r->h, g, (uint32_t)i}), rp, now,
	                   &ring) < 0) {
		claim_release(*r, (uint32_t)i, c, DEAD_WORD);
		return RATE_TABLE_FULL;
	}
	if (ring != DEAD_WORD)
		word = ring;
	summary_mark(r->h, id->group); /* before publishing: see SUMMARY */
	struct prot_rate_bucket *b = &g->b[i];
	/* relaxed stores, all published by the group CAS (release) below. Who holds the claim, for
	 * the sweep (0: unknown, never freed: calls without a handle or without identity). */
	uint64_t self = p ? prot_self(p, r->h) : 0;
	atomic_store_explicit(&b->allowed, self ? self | CLAIM_TAG : 0, memory_order_relaxed);
	atomic_store_explicit(&g->h.tags[i], id->tag, memory_order_relaxed);
	id_store(b, id);
	atomic_store_explicit(&b->denied, 0, memory_order_relaxed);
	atomic_store_explicit(&b->created_ns, now, memory_order_relaxed);
	atomic_store_explicit(&b->updated_ms, (uint32_t)(now / NS_MS), memory_order_relaxed);
	atomic_store_explicit(&b->word, word, memory_order_relaxed);
	atomic_store_explicit(&b->allowed, 0, memory_order_relaxed);
	for (;;) {
		/* Defensive: only a dead claimer's claim is ever freed by someone else. */
		if (atomic_load_explicit(&b->meta, memory_order_relaxed) != c)
			return R_RETRY;
		/* release: tag, identity and word are visible to whoever acquires the bit */
		if (atomic_compare_exchange_strong_explicit(&g->h.word, &gw,
		                                            (gw + GROUP_VER) | (1ull << i),
		                                            memory_order_release, memory_order_acquire))
			break;
		/* The group changed since our scan: maybe someone published our entity. */
		int j = group_scan(g, gw, id, true, meta);
		if (j >= 0 || (gw & (1ull << i))) {
			claim_release(*r, (uint32_t)i, c, ring);
			return j >= 0 ? j : R_RETRY;
		}
	}
	/* relaxed: a statistic */
	atomic_fetch_add_explicit(&r->h->rate_buckets_used, 1, memory_order_relaxed);
	/* Published: from here the bucket belongs to the removal protocol. If a helper made it LIVE
	 * and it has even been removed since (we were descheduled that long), look up again. */
	uint64_t m = help_publish(b, c);
	if (m != META_WITH(c, RB_LIVE))
		return R_RETRY;
	*meta = m;
	return i;
}

/* ---- the decision ----------------------------------------------------------------------------- */

/* An admission's statistics and display time, on line 0 (which the CAS, or the ring's word, owns). */
static inline void note_admission(struct prot_rate_bucket *b, uint64_t cost, uint64_t now)
{
	atomic_fetch_add_explicit(&b->allowed, cost, memory_order_relaxed); /* statistic */
	/* relaxed: display only. A stale store after the bucket was recycled can only misdate the
	 * next use's display field, never its identity or word. */
	atomic_store_explicit(&b->updated_ms, (uint32_t)(now / NS_MS), memory_order_relaxed);
}

/* A sliding window's decision (rate_sliding.c) on bucket r whose word w is its ring. */
static int decide_sliding(struct rate_ref r, uint64_t m, uint64_t w, const struct rate_params *rp,
                          uint64_t cost, uint64_t now, struct prot_rate_info *info)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	uint32_t bidx = rate_bucket_index(r);
	int res;

	if (cost == 0) { /* describes the state, charges nothing (as the other algorithms) */
		rate_sliding_status(r.h, bidx, w, rp, now, info);
		return 1;
	}
	res = rate_sliding_charge(r.h, bidx, w, rp, now, info);
	if (res == RATE_SW_GONE) { /* closed for a removal, or limits changed: help, look up again */
		bucket_remove(r, m, w, true);
		return R_RETRY;
	}
	/* relaxed: statistics (admissions on line 0, denials on line 1, as decide) */
	if (res == 1)
		note_admission(b, 1, now);
	else if (res == 0)
		atomic_fetch_add_explicit(&b->denied, 1, memory_order_relaxed);
	return res;
}

/* Charge cost to the bucket r (meta m, LIVE). Returns 1 admitted, 0 denied, R_RETRY. Inlined in
 * both its callers: a decision is its cost. */
static inline __attribute__((always_inline)) int decide(struct rate_ref r, uint64_t m, const struct rate_params *rp, uint64_t cost,
                  uint64_t now, struct prot_rate_info *info)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	struct rate_eval e;
	/* acquire: the meta re-load below cannot be satisfied before this load */
	uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);

	for (;;) {
		if (atomic_load_explicit(&b->meta, memory_order_relaxed) != m)
			return R_RETRY; /* recycled, or not yet LIVE when we matched it */
		if (unlikely(w == DEAD_WORD)) {
			finish_remove(r, m);
			return R_RETRY;
		}
		if (rp->algo == PROT_RATE_SLIDING_WINDOW)
			return decide_sliding(r, m, w, rp, cost, now, info);
		rate_eval(rp, w, now, cost, &e);
		if (!e.ok) {
			/* relaxed: statistics; line 1 only — the decision line stays untouched */
			atomic_fetch_add_explicit(&b->denied, 1, memory_order_relaxed);
			if (info)
				rate_info_fill(info, rp, &e);
			return 0;
		}
		/* The word is self-contained: exactness comes from the CAS itself. acquire only so that
		 * after a failure the meta re-check is not satisfied before the reload of w. */
		if (atomic_compare_exchange_weak_explicit(&b->word, &w, e.next, memory_order_acquire,
		                                          memory_order_acquire))
			break;
	}
	note_admission(b, cost, now);
	if (info)
		rate_info_fill(info, rp, &e);
	return 1;
}

/* id's bucket, found or inserted: its slot (r->i not set) and LIVE meta, or RATE_TABLE_FULL.
 * *inserted = RATE_INSERTED when this call published it. */
static inline int bucket_get(struct rate_ref *r, prot_t *p, const struct rate_id *id,
                             const struct rate_params *rp, uint64_t now, uint64_t *m,
                             int *inserted)
{
	for (;;) {
		uint64_t gw = group_load(r->g);
		int i = group_scan(r->g, gw, id, true, m);
		if (i >= 0)
			return i;
		i = group_insert(r, p, gw, id, rp, now, m);
		if (i != R_RETRY) {
			if (i >= 0)
				*inserted = RATE_INSERTED;
			return i;
		}
	}
}

int rate_table_charge(struct prot_shm_header *h, prot_t *p, const struct rate_id *id,
                      const struct rate_params *rp, uint64_t cost, uint64_t now,
                      struct prot_rate_info *info, struct rate_hit *hit)
{
	int inserted = 0;
	struct rate_ref r = {.h = h, .g = group_at(h, id->group)};
	uint64_t m;
	int i, res;

	/* Two dependent misses (group index, then bucket) become one on a big table: the bucket is
	 * usually the home slot, fetched while the group line is. */
	__builtin_prefetch(&r.g->b[id->home], 1, 3);
	for (;;) {
		i = bucket_get(&r, p, id, rp, now, &m, &inserted);
		if (i == RATE_TABLE_FULL)
			return RATE_TABLE_FULL;
		r.i = (uint32_t)i;
		res = decide(r, m, rp, cost, now, info);
		if (res != R_RETRY) {
			if (hit)
				*hit = (struct rate_hit){.bucket = rate_bucket_index(r), .meta = m};
			return res | inserted;
		}
	}
}

/* A decision on the bucket a memo remembers (lib/rate_memo.h): bucket index and the LIVE meta it
 * had when it was found for this identity. The meta carries the generation of the bucket's use,
 * and a bucket's identity is written only while it is claimed (a new generation), so while meta
 * still equals m the bucket is still that identity's: decide() re-checks it after loading the
 * word, exactly as after a lookup, and anything else is RATE_STALE (the caller looks it up).
 * The index is checked against the private geometry: a memo is private memory, but cheap to
 * distrust. */
int rate_table_charge_at(struct prot_shm_header *h, uint32_t bucket, uint64_t meta,
                         const struct rate_params *rp, uint64_t cost, uint64_t now,
                         struct prot_rate_info *info)
{
	if (bucket / RATE_GROUP_SLOTS >= seg_geo(h)->rate_groups)
		return RATE_STALE;
	struct rate_ref r = {.h = h, .g = group_at(h, bucket / RATE_GROUP_SLOTS),
	                     .i = bucket % RATE_GROUP_SLOTS};
	int res = decide(r, meta, rp, cost, now, info);
	return res == R_RETRY ? RATE_STALE : res;
}

/* ---- counters (prot_rate_inc / prot_rate_set: lib/rate_counter.c) --------------------------- */

/* One counter update on bucket r (meta m): 0 and *count, a negative error, or R_RETRY. Fixed
 * window: a CAS of the word as a decision's (the same exactness). Sliding window: n admissions. */
static int count_step(struct rate_ref r, uint64_t m, const struct rate_params *rp, bool set,
                      uint64_t n, uint64_t now, uint64_t *count)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	/* acquire: the meta re-load below cannot be satisfied before this load (as decide) */
	uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire), next;

	for (;;) {
		if (atomic_load_explicit(&b->meta, memory_order_relaxed) != m)
			return R_RETRY;
		if (w == DEAD_WORD) {
			finish_remove(r, m);
			return R_RETRY;
		}
		if (rp->algo == PROT_RATE_SLIDING_WINDOW) {
			int res = rate_sliding_add(r.h, rate_bucket_index(r), w, rp, n, now, count);
			if (res == RATE_SW_GONE) {
				bucket_remove(r, m, w, true);
				return R_RETRY;
			}
			return res;
		}
		int e = rate_fw_count(rp, w, now, set, n, &next, count);
		if (e < 0)
			return e;
		/* acquire: as decide's CAS */
		if (atomic_compare_exchange_weak_explicit(&b->word, &w, next, memory_order_acquire,
		                                          memory_order_acquire))
			return 0;
	}
}

int rate_table_count(struct prot_shm_header *h, prot_t *p, const struct rate_id *id,
                     const struct rate_params *rp, bool set, uint64_t n, uint64_t now,
                     uint64_t *count)
{
	struct rate_ref r = {.h = h, .g = group_at(h, id->group)};
	uint64_t m;
	int inserted = 0;

	for (;;) {
		int i = bucket_get(&r, p, id, rp, now, &m, &inserted);
		if (i == RATE_TABLE_FULL)
			return RATE_TABLE_FULL;
		r.i = (uint32_t)i;
		int res = count_step(r, m, rp, set, n, now, count);
		if (res != R_RETRY)
			return res == 0 ? inserted : res;
	}
}

/* ---- lookup without helping, and reset -------------------------------------------------------- */

int rate_table_find(struct prot_shm_header *h, const struct rate_id *id, struct rate_ref *r,
                    uint64_t *meta, uint64_t *word)
{
	r->h = h;
	r->g = group_at(h, id->group);
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t m, gw = group_load(r->g);
		int i = group_scan(r->g, gw, id, false, &m);
		if (i < 0)
			return -ENOENT;
		struct prot_rate_bucket *b = &r->g->b[i];
		/* acquire: the meta re-load below cannot be satisfied before this load */
		uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
		if (atomic_load_explicit(&b->meta, memory_order_relaxed) != m || w == DEAD_WORD)
			continue;
		r->i = (uint32_t)i;
		*meta = m;
		*word = w;
		return 0;
	}
	return -EAGAIN;
}

/* Bounded: each round removes a bucket or sees one change under it; a group holds 32 buckets,
 * and a bucket that keeps changing (charged between our find and our CAS) ends the loop with
 * -EAGAIN after as many rounds as rate_table_find allows itself. */
int rate_table_reset(struct prot_shm_header *h, const struct rate_id *id)
{
	struct rate_ref ref;
	uint64_t m, w;
	int removed = 0;

	for (int tries = 0; tries < 1000; tries++) {
		int r = rate_table_find(h, id, &ref, &m, &w);
		if (r == -ENOENT)
			return removed ? 0 : -ENOENT;
		if (r < 0)
			return r;
		if (META_ST(m) == RB_CLAIMED)
			m = help_if_published(ref.g, ref.i, m);
		/* acquire: the meta re-check below cannot be satisfied before this load; the scale
		 * (identity, written before publication) read under an unchanged meta is this use's */
		uint64_t scale = __atomic_load_n(bw(ref.g->b + ref.i, B_SCALE), __ATOMIC_ACQUIRE);
		if (atomic_load_explicit(&ref.g->b[ref.i].meta, memory_order_relaxed) != m)
			continue;
		bool sliding = RATE_TAG_ALGO(SCALE_KIND(scale)) == PROT_RATE_SLIDING_WINDOW;
		if (META_ST(m) == RB_LIVE && bucket_remove(ref, m, w, sliding))
			removed++;
	}
	return -EAGAIN;
}

/* ---- expiry ----------------------------------------------------------------------------------- */

/* The sweep's readings of the clocks buckets are on. */
struct sweep_now {
	uint64_t mono, calendar, grace;
};

static bool expired(uint64_t scale, uint64_t w, const struct sweep_now *sn)
{
	uint32_t kind = SCALE_KIND(scale);
	uint64_t now = kind & RATE_TAG_REALTIME ? sn->calendar : sn->mono;

	if (now < sn->grace || (kind & RATE_TAG_BUDGET))
		return false; /* a budget never refills: only reset frees it */
	if (rate_algo_gcra_word(RATE_TAG_ALGO(kind)))
		return w <= now - sn->grace;
	return (w >> RATE_FW_BITS) <= (now - sn->grace) / NS_MS;
}

/* A bucket whose bit is set. */
static uint64_t sweep_set(struct rate_ref r, const struct sweep_now *now)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	/* acquire: pairs with the LIVE release */
	uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire);

	if (META_ST(m) == RB_CLAIMED)
		m = help_if_published(r.g, r.i, m);
	if (META_ST(m) != RB_LIVE)
		return 0;
	/* acquire: the meta re-check below cannot be satisfied before this load; the scale (identity,
	 * written before publication) is this use's when the re-check holds */
	uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
	uint64_t scale = ld(b, B_SCALE);
	if (atomic_load_explicit(&b->meta, memory_order_relaxed) != m)
		return 0;
	if (w == DEAD_WORD)
		return finish_remove(r, m);
	if (RATE_TAG_ALGO(SCALE_KIND(scale)) == PROT_RATE_SLIDING_WINDOW) /* expired: its ring is idle */
		return now->mono >= now->grace && bucket_remove_if(r, m, w, true, now->mono - now->grace);
	return expired(scale, w, now) && bucket_remove(r, m, w, false);
}

/* Is the claimer `owner` (identity | CLAIM_TAG) provably gone? Anything else stored there (0, a
 * stale statistic) is no identity and counts as alive. */
static bool claimer_dead(const struct prot_idv *v, uint64_t owner)
{
	return (owner & CLAIM_TAG) && v && !ident_alive(v, owner & ~CLAIM_TAG);
}

/* A bucket whose bit was clear: free a dead claimer's claim, finish a removal's last step. */
static void sweep_clear(struct rate_ref r, const struct prot_idv *v)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire); /* see sweep_set */

	if (META_ST(m) == RB_FREE || META_ST(m) == RB_LIVE)
		return;
	/* relaxed: the claimer's identity; if the claim changes meanwhile, the CAS below fails */
	if (META_ST(m) == RB_CLAIMED &&
	    !claimer_dead(v, atomic_load_explicit(&b->allowed, memory_order_relaxed)))
		return;
	/* Bit still clear after we saw the meta: a DEAD bucket's remover has cleared it; a CLAIMED
	 * one was never published. */
	if (group_load(r.g) & (1ull << r.i))
		return;
	/* release: the bucket is reusable only after this; a remover CASes DEAD -> FREE as well */
	atomic_compare_exchange_strong_explicit(&b->meta, &m, META_WITH(m, RB_FREE),
	                                        memory_order_release, memory_order_relaxed);
}

/* Sweep every bucket of group gi; clear its summary bit (w: the summary, or NULL) once it is quiet. */
static uint64_t sweep_group(struct prot_shm_header *h, uint32_t gi, _Atomic uint64_t *w,
                            const struct sweep_now *now_ns, const struct prot_idv *v)
{
	struct rate_ref r = {.h = h, .g = group_at(h, gi)};
	uint32_t bits = (uint32_t)group_load(r.g);
	uint64_t count = 0;

	for (r.i = 0; r.i < RATE_GROUP_SLOTS; r.i++) {
		if (bits & (1u << r.i))
			count += sweep_set(r, now_ns);
		else
			sweep_clear(r, v);
	}
	if (w && group_quiet(r.g))
		summary_clear(w, gi, r.g);
	return count;
}

void rate_sweep(const struct prot_idv *v, uint64_t now_ns, uint64_t grace_ns, uint64_t *swept)
{
	struct prot_shm_header *h = v->h;
	uint32_t groups = seg_count(h, REG_RATE_GROUPS);
	uint32_t n = groups < RATE_SWEEP_GROUPS ? groups : RATE_SWEEP_GROUPS;
	uint64_t count = 0;
	/* never below the minimum the stale-client argument needs, whatever the caller passes */
	const struct sweep_now sn = {now_ns, rate_clock_now(RATE_CLOCK_REALTIME, 0),
	                             grace_ns < RATE_GRACE_MIN_MS * NS_MS ? RATE_GRACE_MIN_MS * NS_MS : grace_ns};

	if (groups == 0 || (groups & (groups - 1)) != 0) {
		*swept = 0;
		return;
	}
	_Atomic uint64_t *w = summary_words(h);
	/* relaxed: the cursor only spreads the work; every step below re-checks what it acts on */
	uint64_t start = atomic_fetch_add_explicit(&h->rate_sweep_cursor, n, memory_order_relaxed);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t gi = (uint32_t)(start + k) & (groups - 1);
		/* relaxed: a stale clear bit only delays this group to the next pass (see SUMMARY) */
		if (w && !(atomic_load_explicit(&w[gi / 64], memory_order_relaxed) >> (gi % 64) & 1))
			continue;
		count += sweep_group(h, gi, w, &sn, v);
	}
	/* rings no bucket holds (their remover died, or a helper finished the removal): as many per
	 * call as groups, from the same cursor */
	rate_ring_sweep(h, start, n, now_ns, RATE_RING_GRACE_NS);
	*swept = count;
}

