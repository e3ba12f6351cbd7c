/* hash.c — SipHash-1-3, the keyed hash of the rate-limiter's bucket table.
 *
 * Why keyed: entity ids come from the outside world (user ids, IP addresses). With a public hash an
 * attacker could choose ids that all land in one bucket group and fill it; with SipHash under a key
 * drawn at random per segment (hdr.hash_key) the group of an id cannot be predicted. 1-3 rounds
 * (as in Python and Rust's HashMap) rather than 2-4: the key is secret and the output is never
 * shown, so the hash only has to resist flooding, and the hot path pays for every round.
 *
 * Little-endian by definition (the reference reads message words little-endian); this
 * implementation assumes a little-endian host, which the segment layout already does.
 * Known answers are checked in tests/test_rate.c.
 */
#include "internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "SipHash words are read little-endian");

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                          \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                             \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                             \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                          \
	} while (0)

uint64_t prot_siphash(const uint64_t key[2], const void *data, size_t len)
{
	const uint8_t *in = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
	uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
	uint64_t v3 = 0x7465646279746573ULL ^ key[1];
	uint64_t m, last = (uint64_t)len << 56;
	size_t full = len & ~(size_t)7;

	for (size_t i = 0; i < full; i += 8) {
		memcpy(&m, in + i, 8);
		v3 ^= m;
		SIPROUND; /* c = 1 */
		v0 ^= m;
	}
	/* The final block: the remaining 0..7 bytes, zero-padded, and the length in the top byte. */
	m = 0;
	memcpy(&m, in + full, len & 7);
	last |= m;
	v3 ^= last;
	SIPROUND;
	v0 ^= last;
	v2 ^= 0xff;
	SIPROUND; /* d = 3 */
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}
