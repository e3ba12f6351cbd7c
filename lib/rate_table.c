/* rate_table.c — the rate limiter's bucket table in the segment: per-(operation, entity,
 * algorithm, window) buckets, found, inserted, charged and removed lock-free, each decision one
 * compare-and-swap on one 64-bit word, shared exactly by every process; protd's sweep that expires
 * buckets and frees the claims of dead processes. Called by ratelimit.c (charge; rate_table_reset
 * for prot_rate_reset), rate_counter.c (count: Hammer's inc and set), rate_view.c (find, the key
 * hash) and protd (rate_sweep, on its tick); a sliding window's ring is rate_sliding.c's; the
 * words' layout is in rate_table.h, the arithmetic on a bucket word in rate_algo.c, and how a call
 * names its bucket (struct rate_id) in ratelimit.c.
 *
 * LENGTH. Over 700 lines on purpose (~1150, of which ~300 are this argument): every step of the
 * protocol below (claim, publish, the overflow record, decide, remove, sweep, evict, and the
 * counters' and sliding windows' uses of the same steps) shares the static helpers that make it
 * correct; split, they would have to be exported to each other, and the argument would no longer
 * sit next to the code it is about. If it must be split, the seam is the sweep and eviction
 * (expired, bucket_snap, remove_lossless and what calls them) into rate_sweep.c, with
 * finish_remove, bucket_remove_if, help_pending and help_if_published exported through
 * rate_table.h.
 *
 * TABLE. REG_RATE_GROUPS holds a power-of-two number of groups of 32 buckets. A bucket is
 * (operation, entity, algorithm, window) (ratelimit.c, IDENTITY); h = SipHash(segment key ^
 * (op_hash, 0), entity) — a key per operation, and the same for every scale of an entity, so that
 * all of an entity's buckets share one pair of groups — picks the primary group (low bits), an
 * 8-bit tag (top byte), a home slot (insertion tries it first; lookups prefetch it with the group
 * line) and alt (1..255, bits 40..47): the secondary group is (primary ^ alt) & (groups - 1)
 * (none when that is the primary: a one-group table, or small tables for some alt). op_hash itself
 * is memoised per handle (struct rate_op_cache, ratelimit.c): a decision hashes only the entity.
 *
 * TWO-CHOICE PLACEMENT. An entity lives in its primary or in its secondary group, never both, or
 * nowhere. A new one goes to its primary unless the primary holds RATE_SPILL_AT (20) or more
 * buckets and the secondary fewer, or the primary is full; both full is "table full" and the
 * key's policy applies (ratelimit.c; deny: PROT_ETABLEFULL; allow: admitted without a bucket and
 * counted; evict: see EVICTION). Cost: 128 B per bucket + 64 B group index per 32 buckets = 130 B
 * per bucket. Measured (uniformly hashed ids, the first refusal; tests/test_rate_fill.c and a
 * simulation of the same rule): ~93 % occupancy at 64 Ki buckets, ~91-92 % at 1 Mi, i.e. ~140 B of
 * table per live entity (single-group placement refused at ~50 %: ~260 B). alt ranges over 255
 * neighbours (XOR), not the whole table: 8 bits is what the pending record has room for (WORDS);
 * a fully random secondary would add ~1 point. The threshold keeps ~83 % of entities in their
 * primary (one group line per lookup); pure greedy (the emptier group) fills ~1 point more but
 * puts a third in the secondary.
 *
 * WORDS.
 *  group word = version << 46 | OVF << 45 | pending << 32 | occupancy bitmap (rate_table.h:
 *    GW_*). Every change (a bucket published or removed, a pending record set or cleared) CASes
 *    it from the exact value the changer read and bumps the version, so two changes based on one
 *    scan cannot both succeed. pending = alt << 5 | slot, 0 for none: an overflow being published
 *    (OVERFLOW). OVF, sticky: some entity of this primary overflowed, so a lookup that misses here
 *    scans its secondary too (never cleared: a group that overflowed once costs its misses a
 *    second line; clearing it would need a proof that no bucket of its primaries sits in any of
 *    255 secondaries).
 *  VERSION BITS. 18 (was 32): ABA needs a process to stall between its load of a group word and
 *    its CAS (a scan of one group) while that group changes exactly k * 2^18 times and comes back
 *    to the same bitmap, record and flag. Changes of one group are insertions and removals of its
 *    32 buckets; removals are the sweep's (at most 32 per group per pass, a pass >= one 10 ms tick:
 *    2^17 removals take >= 40 s of stall), reset's and eviction's (a caller resetting one group's
 *    entities in a loop for 2^17 rounds while another process stalls mid-scan). Accepted as
 *    practically impossible; the 14 bits went to the record and the flag.
 *  meta = gen << 32 | alt << 24 | state, state FREE -> CLAIMED -> LIVE -> DEAD -> FREE; gen is
 *    bumped on every claim, so a meta value names one use of the bucket. alt != 0: an overflow
 *    bucket (its primary is this group ^ alt); set by the claim, cleared by the return to FREE.
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
 * (Both groups: the claim may be in the secondary, but the CAS that publishes is always on the
 * PRIMARY's word — see OVERFLOW — so that word orders every insertion of the entity.)
 *
 * LOOKUP. Load the primary's word (acquire: pairs with the publishing CAS, so tags and identity of
 * every set bit are visible), match tags with SWAR, then for each candidate load meta (acquire)
 * and compare identity (names, entity, scale). Tags of set bits are exact, so a miss is a real
 * miss. If absent and OVF is set, the same in the secondary (its word loaded after the
 * primary's). A writer first helps a pending record to completion (and loads again), so its
 * answer rests on a primary word with none; a reader counts a pending record's bucket as
 * published. A reset (scale_mask 0) matches every scale of (operation, entity): they all sit in
 * the same two groups.
 *
 * OVERFLOW (an insertion into the secondary; the primary's word is the linearisation point).
 *  1. The inserter, having found its entity in neither group as of primary word pw (no pending
 *     record), claims a FREE bucket j of the secondary (bit clear there), meta CLAIMED with alt,
 *     writes tag, identity and word as above, and CASes the primary pw -> (version+1, OVF,
 *     pending = alt << 5 | j), release. This is the publication. It fails if anything in the
 *     primary changed (in particular another insertion of an entity of this primary, into either
 *     group); then the inserter looks up again as any insertion does. An insertion into the
 *     primary CASes the same word from a pw with no record, so it too fails and rescans if a
 *     record (perhaps of its own entity) appeared. So one entity is published once.
 *  2. Anyone who sees the record (writers' lookups, reset, the sweep of the primary, the sweep or a
 *     writer meeting the claimed bucket) helps: if bit j of the secondary is clear, re-read the
 *     primary; still pw: CAS the secondary's word (version+1, bit j), acq_rel; then CAS the
 *     primary pw -> (version+1, record cleared), acq_rel. The bit is set before the record goes,
 *     so a lookup that reads the primary without the record and then the secondary finds the bit
 *     (release sequences: every change of a group word is an RMW).
 *  3. The bucket goes CLAIMED -> LIVE (help_publish) only once its record has left the primary
 *     (overflow_pending; while its meta stays CLAIMED with alt, a record (alt, j) in that primary
 *     is this claim's: a new one needs a new claim of j, after FREE).
 *  Why a helper never sets the bit of another claim: it sets bit j only from a secondary word sw
 *  with j clear, read before a re-read of the primary that still shows pw. Had the overflow
 *  completed and its bucket been removed before sw (bit cleared, maybe reclaimed since), that
 *  removal came after LIVE, which came after the record was cleared (3), and sw's acquire orders
 *  the re-read after it: the re-read would not show pw. Otherwise the bit is not set yet, and the
 *  CAS from sw succeeds only if the secondary did not change since. Bits of one group's word are
 *  shared by its own entities and overflows of others: each is a bucket, tags and identities tell
 *  them apart.
 *  Dead overflowers: dead after step 1, its record stays; whoever comes next helps (the sweep
 *  helps the records of the groups it visits). The sweep frees a dead claimer's overflow claim
 *  only when its primary shows no record for it: none now means none ever (the claimer is gone),
 *  or one cleared after its bit was set — and a set bit keeps the sweep off it anyway.
 *  Cost: a lookup of an entity in its primary reads one group line as before; a hit in the
 *  secondary or a miss where OVF is set reads two.
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
 * bucket whose bit is clear (an overflower killed after its record: see OVERFLOW). While it holds the claim, the claimer's identity (lib/ident.c, as in
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
 * EVICTION (rate_on_full = evict: ratelimit.c asks when both groups of a new entity are full;
 * rate_table_evict). Among the set bits of the entity's two groups, the LIVE buckets whose removal
 * the sweep would make now — expired() read on CLOCK_MONOTONIC / the calendar with grace
 * RATE_GRACE_DEFAULT_MS, or a sliding window whose ring has been idle for window + grace (checked
 * by closing it) — are candidates; the one whose updated_ms is oldest is removed through the
 * removal protocol by the sweep's own code (remove_lossless), and the caller charges again.
 * Lossless for the reason expiry is: a fresh bucket decides the same way; and the stale-client
 * argument holds since the grace is >= RATE_GRACE_MIN_MS (protd's rate_grace, if longer, only
 * delays its own sweep). A budget, a future TAT or a window not yet over is never evicted: with
 * no candidate the caller denies (PROT_ETABLEFULL) and counts table_full — where nginx would evict
 * its LRU node whatever it holds. A charge landing on the chosen bucket first makes the removal's
 * CAS fail; the next candidate is tried. Bounded: 64 buckets, each tried once.
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

#include "rate_global.h"
#include "rate_sliding.h"

#define NS_MS RATE_NS_MS

#define RATE_SWEEP_GROUPS 128u            /* groups per rate_sweep() call */
#define RATE_RING_GRACE_NS (1000 * NS_MS) /* a ring taken this recently may await its publication */
#define RATE_HELP_TRIES 64 /* rounds of helping a pending overflow before the caller retries */

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

/* ---- overflow records (see OVERFLOW) --------------------------------------------------------- */

/* Primary group pi's word pw holds a pending record (alt, j): set bit j of the secondary (version+1)
 * unless it is set, then clear the record (version+1). Either CAS may lose to another helper or to
 * any other change of the group; then whoever changed it made progress, and the caller reloads. */
static void help_pending(struct prot_shm_header *h, uint32_t pi, uint64_t pw)
{
	uint32_t pend = GW_PEND(pw), alt = pend >> 5, si = group_other(h, pi, alt);
	uint64_t bit = 1ull << (pend & 31);
	struct prot_rate_group *p = group_at(h, pi), *s = group_at(h, si);

	if (si == pi)
		return; /* untrusted: no inserter writes such a record */
	for (int k = 0; k < RATE_HELP_TRIES; k++) {
		uint64_t sw = group_load(s);
		if (!(sw & bit)) {
			/* Clear: not set yet — or set, and the bucket gone LIVE and removed since. That
			 * removal (acquired with sw) came after the record left pw, so p's word moved. */
			if (group_load(p) != pw)
				return;
			/* acq_rel: the overflower's writes (acquired with pw) are published with the bit */
			if (!atomic_compare_exchange_weak_explicit(&s->h.word, &sw, (sw + GROUP_VER) | bit,
			                                           memory_order_acq_rel, memory_order_acquire))
				continue;
		}
		/* acq_rel: the bit above happens before the record disappears (lookups read p first) */
		atomic_compare_exchange_strong_explicit(&p->h.word, &pw, (pw + GROUP_VER) & ~GW_PEND_MASK,
		                                        memory_order_acq_rel, memory_order_relaxed);
		return;
	}
}

/* Bucket i of group g, CLAIMED under meta m: if it is an overflow bucket whose record is still
 * pending in its primary group, help that record along. true while the record stays pending
 * (the bucket must not go LIVE yet). */
static bool overflow_pending(struct prot_shm_header *h, struct prot_rate_group *g, uint32_t i,
                             uint64_t m)
{
	uint32_t alt = META_ALT(m), pi;

	if (!alt)
		return false;
	pi = group_other(h, group_index(h, g), alt);
	for (int k = 0; k < RATE_HELP_TRIES; k++) {
		uint64_t pw = group_load(group_at(h, pi));
		if (GW_PEND(pw) != GW_PEND(GW_PEND_OF(alt, i)))
			return false;
		help_pending(h, pi, pw);
	}
	return true;
}

/* CLAIMED(g) -> LIVE(g) (release: pairs with the acquire of meta by lookups) for bucket i of g,
 * whose bit is set; an overflow bucket only once its record left its primary group. Returns the
 * meta now in place. */
static uint64_t help_publish(struct prot_shm_header *h, struct prot_rate_group *g, uint32_t i,
                             uint64_t m)
{
	struct prot_rate_bucket *b = &g->b[i];
	uint64_t live = META_WITH(m, RB_LIVE);

	if (overflow_pending(h, g, i, m))
		return m;

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
static uint64_t help_if_published(struct prot_shm_header *h, struct prot_rate_group *g, uint32_t i,
                                  uint64_t m)
{
	/* the acquire load of m that the caller did orders this load after it */
	if (!(group_load(g) & (1ull << i)))
		return m;
	return help_publish(h, g, i, m);
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
	atomic_compare_exchange_strong_explicit(&b->meta, &dead, META_FREE(m),
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
	if (group_load(g) & (GW_PEND_MASK | UINT32_MAX)) /* a bit, or a record to help */
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
static int group_scan(struct prot_shm_header *h, struct prot_rate_group *g, uint64_t gw,
                      const struct rate_id *id, bool help, uint64_t *meta)
{
	uint32_t cand = tag_match(g, id->tag) & (uint32_t)gw;

	while (cand) {
		int i = __builtin_ctz(cand);
		struct prot_rate_bucket *b = &g->b[i];
		cand &= cand - 1;
		/* acquire: pairs with the LIVE release (and the group CAS) of the bucket's claimer */
		uint64_t m = atomic_load_explicit(&b->meta, memory_order_acquire);
		if (META_ST(m) == RB_CLAIMED && help)
			m = help_if_published(h, g, (uint32_t)i, m);
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

/* id's secondary group, or NULL when it has none (a table of one group, or alt folds to 0). */
static struct prot_rate_group *secondary(const struct prot_shm_header *h, const struct rate_id *id)
{
	return id->group2 != id->group ? group_at(h, id->group2) : NULL;
}

/* Look id up for a writer (helping): its primary group, then, if the primary's OVF says some
 * entity of it overflowed, its secondary. A pending record is helped first, so the primary word
 * the answer rests on (*pw) holds none. Returns the slot (r->g: its group) and *meta, -1 (absent
 * as of *pw), or R_RETRY (the record stayed pending). */
static inline int table_lookup(struct rate_ref *r, const struct rate_id *id, uint64_t *pw,
                               uint64_t *meta)
{
	struct prot_rate_group *p = group_at(r->h, id->group);

	for (int k = 0; k < RATE_HELP_TRIES; k++) {
		uint64_t w = group_load(p);
		if (unlikely(GW_PEND(w))) {
			help_pending(r->h, id->group, w);
			continue;
		}
		*pw = w;
		r->g = p;
		int i = group_scan(r->h, p, w, id, true, meta);
		if (likely(i >= 0) || !(w & GW_OVF) || id->group2 == id->group)
			return i;
		/* the secondary's word is loaded after the primary's (acquire): an overflow whose
		 * record had left w set its bit here before (help_pending) */
		r->g = secondary(r->h, id);
		return group_scan(r->h, r->g, group_load(r->g), id, true, meta);
	}
	return R_RETRY;
}

/* ---- insertion -------------------------------------------------------------------------------- */
static inline uint32_t rotr32(uint32_t x, unsigned r)
{
	return (x >> r) | (x << ((32 - r) & 31));
}

/* Claim a FREE bucket whose bit is clear in gw, trying the entity's home slot first and then the
 * next ones round the group. Returns its slot and meta, or -1. */
static int claim_free(struct prot_rate_group *g, uint64_t gw, unsigned home, uint32_t alt,
                      uint64_t *claimed)
{
	uint32_t freebits = rotr32(~(uint32_t)gw, home); /* bit j: slot (home + j) % 32 */

	while (freebits) {
		int i = (int)((__builtin_ctz(freebits) + home) % RATE_GROUP_SLOTS);
		struct prot_rate_bucket *b = &g->b[i];
		freebits &= freebits - 1;
		uint64_t m = atomic_load_explicit(&b->meta, memory_order_relaxed);
		if (META_ST(m) != RB_FREE)
			continue; /* claimed by another inserter, or the tail of a removal */
		uint64_t c = META(META_GEN(m) + 1, RB_CLAIMED) | META_ALT_BITS(alt);
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
	atomic_compare_exchange_strong_explicit(&b->meta, &c, META_FREE(c), memory_order_relaxed,
	                                        memory_order_relaxed);
}

/* Claim a bucket for id, absent as of its primary's word pw: in the primary, or in the secondary
 * (sets r->g; *alt: the claim's META_ALT, 0 in the primary) when the primary is full, or holds
 * RATE_SPILL_AT or more and the secondary fewer (two-choice placement, see TABLE). -1: both full. */
static int claim_pair(struct rate_ref *r, uint64_t pw, const struct rate_id *id, uint32_t *alt,
                      uint64_t *c)
{
	struct prot_rate_group *p = group_at(r->h, id->group), *s = secondary(r->h, id);
	uint32_t occ = group_occupancy(pw);
	int i;

	uint64_t sw;

	/* the secondary's line is read only when the primary is that full (a miss saved otherwise) */
	if (s && occ >= RATE_SPILL_AT && (sw = group_load(s), true) &&
	    rate_prefer_secondary(occ, group_occupancy(sw)) &&
	    (i = claim_free(s, sw, id->home, id->alt, c)) >= 0)
		goto spilled;
	r->g = p;
	*alt = 0;
	if ((i = claim_free(p, pw, id->home, 0, c)) >= 0 || !s)
		return i;
	if ((i = claim_free(s, group_load(s), id->home, id->alt, c)) < 0)
		return -1;
spilled:
	r->g = s;
	*alt = id->alt;
	return i;
}

/* Write claimed bucket i of r->g for id (claim c), with initial word `word`: relaxed stores, all
 * published by the primary's CAS (release) that follows. Who holds the claim, for the sweep (0:
 * unknown, never freed: calls without a handle or without identity). */
static void claim_fill(struct rate_ref r, prot_t *p, int i, const struct rate_id *id, uint64_t now,
                       uint64_t word)
{
	struct prot_rate_bucket *b = &r.g->b[i];
	uint64_t self = p ? prot_self(p, r.h) : 0;

	atomic_store_explicit(&b->allowed, self ? self | CLAIM_TAG : 0, memory_order_relaxed);
	atomic_store_explicit(&r.g->h.tags[i], id->tag, memory_order_relaxed);
	id_store(b, id);
	atomic_store_explicit(&b->denied, 0, memory_order_relaxed);
	atomic_store_explicit(&b->created_ns, now, memory_order_relaxed);
	atomic_store_explicit(&b->updated_ms, (uint32_t)(now / NS_MS), memory_order_relaxed);
	atomic_store_explicit(&b->word, word, memory_order_relaxed);
}

/* The primary's word after publishing claim i (alt: 0 for the primary, else the secondary's). */
static inline uint64_t published(uint64_t pw, int i, uint32_t alt)
{
	if (!alt)
		return (pw + GROUP_VER) | (1ull << i);
	return (pw + GROUP_VER) | GW_OVF | GW_PEND_OF(alt, (uint32_t)i);
}

/* Insert id, absent as of its primary's word pw (no pending record). Returns the slot (r->g: its
 * group; and its LIVE meta) of id's bucket — ours, or the one another process published first —
 * or RATE_TABLE_FULL, or R_RETRY. */
static int table_insert(struct rate_ref *r, prot_t *p, uint64_t pw, const struct rate_id *id,
                        const struct rate_params *rp, uint64_t now, uint64_t *meta)
{
	struct prot_rate_group *pg = group_at(r->h, id->group);
	uint64_t c, word = rate_word_init(SCALE_KIND(id->scale), now), ring = DEAD_WORD;
	uint32_t alt;
	int i = claim_pair(r, pw, id, &alt, &c);

	if (i < 0)
		return RATE_TABLE_FULL;
	struct rate_ref mine = {r->h, r->g, (uint32_t)i};
	/* A sliding window's word is its ring, taken before publication (and given back with the
	 * claim if this insertion loses). */
	if (rp->algo == PROT_RATE_SLIDING_WINDOW &&
	    rate_ring_take(r->h, rate_bucket_index(mine), rp, now, &ring) < 0) {
		claim_release(mine, (uint32_t)i, c, DEAD_WORD);
		return RATE_TABLE_FULL;
	}
	if (ring != DEAD_WORD)
		word = ring;
	summary_mark(r->h, group_index(r->h, mine.g)); /* before publishing: see SUMMARY */
	claim_fill(mine, p, i, id, now, word);
	struct prot_rate_bucket *b = &mine.g->b[i];
	atomic_store_explicit(&b->allowed, 0, memory_order_relaxed);
	for (;;) {
		/* Defensive: only a dead claimer's claim is ever freed by someone else. */
		if (atomic_load_explicit(&b->meta, memory_order_relaxed) != c)
			return R_RETRY;
		/* release: tag, identity and word are visible to whoever acquires the primary's word
		 * (and, for an overflow, the secondary's bit its helpers set after acquiring it) */
		uint64_t next = published(pw, i, alt);
		if (atomic_compare_exchange_strong_explicit(&pg->h.word, &pw, next, memory_order_release,
		                                            memory_order_acquire)) {
			pw = next;
			break;
		}
		/* The primary changed since our scan: maybe someone published our entity. */
		int j = table_lookup(r, id, &pw, meta);
		if (j != -1 || (!alt && (pw & (1ull << i)))) {
			claim_release(mine, (uint32_t)i, c, ring);
			return j >= 0 ? j : R_RETRY;
		}
	}
	/* relaxed: a statistic */
	atomic_fetch_add_explicit(&r->h->rate_buckets_used, 1, memory_order_relaxed);
	r->g = mine.g;
	if (alt) /* the record's second step: the bit in the secondary (anyone may do it) */
		help_pending(r->h, id->group, pw);
	/* Published: from here the bucket belongs to the removal protocol. If a helper made it LIVE
	 * and it has even been removed since (we were descheduled that long), or its record is still
	 * pending, look up again. */
	uint64_t m = alt ? help_if_published(r->h, mine.g, (uint32_t)i, c) /* bit set yet? */
	                 : help_publish(r->h, mine.g, (uint32_t)i, c);    /* our CAS set it */
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
		if (unlikely(rp->tag & RATE_TAG_GLOBAL)) /* and within what protd leased (rate_global.c) */
			rate_global_clip(r, m, rp, cost, now, &e);
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
		uint64_t pw;
		int i = table_lookup(r, id, &pw, m);
		if (i >= 0)
			return i;
		if (i == R_RETRY)
			continue;
		i = table_insert(r, p, pw, id, rp, now, m);
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

/* A reader's scan for id (no helping): the primary; a pending record of id's alt in it (its
 * bucket is published, its secondary bit maybe not yet); the secondary when the primary says some
 * entity overflowed. Sets r->g. */
static int find_scan(struct rate_ref *r, const struct rate_id *id, uint64_t *m)
{
	struct prot_rate_group *p = group_at(r->h, id->group), *s = secondary(r->h, id);
	uint64_t pw = group_load(p);
	int i;

	r->g = p;
	if ((i = group_scan(r->h, p, pw, id, false, m)) >= 0 || !s || !(pw & GW_OVF))
		return i;
	r->g = s;
	uint64_t sw = group_load(s);
	uint32_t pend = GW_PEND(pw);
	if (pend >> 5 == id->alt) /* the pending bucket, as if its bit were set */
		sw |= 1ull << (pend & 31);
	return group_scan(r->h, s, sw, id, false, m);
}

int rate_table_find(struct prot_shm_header *h, const struct rate_id *id, struct rate_ref *r,
                    uint64_t *meta, uint64_t *word)
{
	r->h = h;
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t m;
		int i = find_scan(r, id, &m);
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
		uint64_t pw = group_load(group_at(h, id->group));
		if (GW_PEND(pw)) /* a writer: help a pending overflow to LIVE rather than wait for it */
			help_pending(h, id->group, pw);
		int r = rate_table_find(h, id, &ref, &m, &w);
		if (r == -ENOENT)
			return removed ? 0 : -ENOENT;
		if (r < 0)
			return r;
		if (META_ST(m) == RB_CLAIMED)
			m = help_if_published(h, ref.g, ref.i, m);
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

/* A bucket's word and scale read under one meta. */
struct snap {
	uint64_t m, w, scale;
};

/* Snapshot bucket r, whose bit is set (helping a published claim to LIVE): false unless LIVE and
 * unchanged across the reads. */
static bool bucket_snap(struct rate_ref r, struct snap *s)
{
	struct prot_rate_bucket *b = &r.g->b[r.i];
	/* acquire: pairs with the LIVE release */
	s->m = atomic_load_explicit(&b->meta, memory_order_acquire);

	if (META_ST(s->m) == RB_CLAIMED)
		s->m = help_if_published(r.h, r.g, r.i, s->m);
	if (META_ST(s->m) != RB_LIVE)
		return false;
	/* acquire: the meta re-check below cannot be satisfied before this load; the scale (identity,
	 * written before publication) is this use's when the re-check holds */
	s->w = atomic_load_explicit(&b->word, memory_order_acquire);
	s->scale = ld(b, B_SCALE);
	return atomic_load_explicit(&b->meta, memory_order_relaxed) == s->m;
}

static bool is_sliding(const struct snap *s)
{
	return RATE_TAG_ALGO(SCALE_KIND(s->scale)) == PROT_RATE_SLIDING_WINDOW;
}

/* Remove bucket r (snapshot s, not being removed) if that provably loses nothing at now: an
 * expired word (EXPIRY), or a sliding window whose ring is idle (closed only if so). */
static bool remove_lossless(struct rate_ref r, const struct snap *s, const struct sweep_now *now)
{
	if (is_sliding(s))
		return now->mono >= now->grace &&
		       bucket_remove_if(r, s->m, s->w, true, now->mono - now->grace);
	return expired(s->scale, s->w, now) && bucket_remove(r, s->m, s->w, false);
}

/* A bucket whose bit is set. */
static uint64_t sweep_set(struct rate_ref r, const struct sweep_now *now)
{
	struct snap s;

	if (!bucket_snap(r, &s))
		return 0;
	if (s.w == DEAD_WORD)
		return finish_remove(r, s.m);
	return remove_lossless(r, &s, now);
}

/* ---- eviction (rate_on_full = evict) ---------------------------------------------------------- */

/* ms since bucket b's last admission (or insertion), on its clock; relaxed: display field. */
static uint32_t idle_ms(struct prot_rate_bucket *b, const struct snap *s, const struct sweep_now *now)
{
	uint64_t t = SCALE_KIND(s->scale) & RATE_TAG_REALTIME ? now->calendar : now->mono;
	return (uint32_t)(t / NS_MS) - atomic_load_explicit(&b->updated_ms, memory_order_relaxed);
}

/* The least recently used bucket of id's groups that may be lossless (LIVE, and expired or a
 * sliding window) and is not in *tried (bit k * 32 + slot): its ref and snapshot, or false. */
static bool lru_candidate(struct prot_shm_header *h, const struct rate_id *id, uint64_t tried,
                          const struct sweep_now *now, struct rate_ref *best, struct snap *bs)
{
	struct prot_rate_group *gs[2] = {group_at(h, id->group), secondary(h, id)};
	uint32_t best_idle = 0;
	bool found = false;

	for (int k = 0; k < 2 && gs[k]; k++) {
		struct rate_ref r = {h, gs[k], 0};
		uint32_t bits = GW_BITS(group_load(gs[k]));
		for (r.i = 0; r.i < RATE_GROUP_SLOTS; r.i++) {
			struct snap s;
			if (!(bits >> r.i & 1) || (tried >> (k * 32 + r.i) & 1) || !bucket_snap(r, &s) ||
			    s.w == DEAD_WORD || (!is_sliding(&s) && !expired(s.scale, s.w, now)))
				continue;
			uint32_t idle = idle_ms(&r.g->b[r.i], &s, now);
			if (!found || idle > best_idle) {
				*best = r, *bs = s, best_idle = idle;
				found = true;
			}
		}
	}
	return found;
}

int rate_table_evict(struct prot_shm_header *h, const struct rate_id *id)
{
	/* the sweep's test with the default grace (>= RATE_GRACE_MIN_MS: the stale-client argument)
	 * on the clocks the sweep reads */
	const struct sweep_now sn = {prot_now_ns(), rate_clock_now(RATE_CLOCK_REALTIME, 0),
	                             RATE_GRACE_DEFAULT_MS * NS_MS};
	uint64_t tried = 0;
	struct rate_ref r;
	struct snap s;

	/* bounded: each round marks one of the <= 64 buckets of the two groups tried */
	for (int round = 0; round < 2 * RATE_GROUP_SLOTS; round++) {
		if (!lru_candidate(h, id, tried, &sn, &r, &s))
			return -ENOENT;
		tried |= 1ull << ((r.g == group_at(h, id->group) ? 0 : 32) + r.i);
		if (remove_lossless(r, &s, &sn))
			return 0;
	}
	return -ENOENT;
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
	/* A dead overflower's record still pending: its bucket is published, help it instead. No
	 * record now: there never will be (its writer is gone), or it was cleared after the bit
	 * below was set (OVERFLOW). */
	if (META_ST(m) == RB_CLAIMED && overflow_pending(r.h, r.g, r.i, m))
		return;
	/* Bit still clear after we saw the meta: a DEAD bucket's remover has cleared it; a CLAIMED
	 * one was never published. */
	if (group_load(r.g) & (1ull << r.i))
		return;
	/* release: the bucket is reusable only after this; a remover CASes DEAD -> FREE as well */
	atomic_compare_exchange_strong_explicit(&b->meta, &m, META_FREE(m), memory_order_release,
	                                        memory_order_relaxed);
}

/* Sweep every bucket of group gi; clear its summary bit (w: the summary, or NULL) once it is quiet. */
static uint64_t sweep_group(struct prot_shm_header *h, uint32_t gi, _Atomic uint64_t *w,
                            const struct sweep_now *now_ns, const struct prot_idv *v)
{
	struct rate_ref r = {.h = h, .g = group_at(h, gi)};
	uint64_t gw = group_load(r.g);
	uint32_t bits = GW_BITS(gw);
	uint64_t count = 0;

	if (GW_PEND(gw)) /* an overflower descheduled or dead between its two steps */
		help_pending(h, gi, gw);

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

