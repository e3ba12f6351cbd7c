/* words.h — names and entities as zero-padded little-endian 64-bit words, the form in which the
 * rate limiter compares, hashes and stores them (lib/ratelimit.c, lib/rate_memo.h): to_words for
 * bytes of a known length, str_words for a C string, whose length it finds on the way.
 *
 * str_words reads a word at a time. A string's bytes past its NUL are not the caller's, so it
 * reads beyond the NUL only inside the page that holds the string's first byte, which is mapped
 * (the caller passed a pointer to it): when the words it may read (max + 1 bytes, rounded up)
 * would leave that page, it takes the byte-wise path instead. Reading those bytes is invisible
 * to the program (no value read past the NUL survives the masking) but not to a sanitizer, which
 * sees a read past the object: the word-wise reader is exempt from ASan and TSan instrumentation,
 * and nothing else is.
 */
#ifndef PROT_WORDS_H
#define PROT_WORDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* s[0..n) as words, reading no byte outside s[0..n) and never reloading narrow stores as a wide
 * word (a store-forwarding stall costs more than the rest of a decision). 0 < n < 8. */
static inline uint64_t load_tail(const char *s, size_t n)
{
	if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, s, 4);
		memcpy(&b, s + n - 4, 4);
		return a | (uint64_t)b << (8 * (n - 4)); /* the overlap ORs equal bytes */
	}
	return (uint64_t)(uint8_t)s[0] | (uint64_t)(uint8_t)s[n / 2] << (8 * (n / 2)) |
	       (uint64_t)(uint8_t)s[n - 1] << (8 * (n - 1));
}

/* s[0..n) into w[0..ceil(n/8)), the last word zero-padded; words after it untouched. */
static inline void to_words(uint64_t *w, const char *s, size_t n)
{
	size_t k = 0;

	for (; k < n / 8; k++)
		memcpy(&w[k], s + 8 * k, 8);
	if (n % 8)
		w[k] = load_tail(s + 8 * k, n % 8);
}

#define WORDS_PAGE 4096u

/* The byte-wise form: strnlen, then to_words. */
static inline size_t str_words_bytes(const char *s, size_t max, uint64_t *w)
{
	size_t n = strnlen(s, max + 1);

	if (n <= max)
		to_words(w, s, n);
	return n;
}

#if defined(__x86_64__) || defined(__aarch64__)
/* The word-wise form, on little-endian machines that load unaligned words cheaply. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WORDS_WIDE_ATTR __attribute__((no_sanitize("address", "thread"), noinline, unused)) static
#else
#define WORDS_WIDE_ATTR __attribute__((always_inline)) static inline
#endif
WORDS_WIDE_ATTR size_t str_words_wide(const char *s, size_t max, uint64_t *w)
{
	const uint64_t lo = 0x0101010101010101ull, hi = 0x8080808080808080ull;

	for (size_t k = 0; k <= max / 8; k++) {
		uint64_t v;
		__builtin_memcpy(&v, s + 8 * k, 8);
		/* the lowest set bit of z marks the first zero byte exactly (borrows only run upward) */
		uint64_t z = (v - lo) & ~v & hi;
		if (z) {
			unsigned b = (unsigned)__builtin_ctzll(z) / 8; /* the NUL's byte in this word */
			size_t n = 8 * k + b;
			if (n > max)
				return max + 1;
			if (b)
				w[k] = v & (~0ull >> (64 - 8 * b));
			return n;
		}
		if (8 * k + 8 > max) /* no NUL in max + 1 bytes */
			return max + 1;
		w[k] = v;
	}
	return max + 1;
}
#endif

/* strnlen(s, max + 1), and when that is at most max, s as words in w[0..ceil(n/8)) (w holds
 * ceil(max / 8) words; words after the string's are untouched). */
static inline __attribute__((always_inline)) size_t str_words(const char *s, size_t max,
                                                              uint64_t *w)
{
#if defined(__x86_64__) || defined(__aarch64__)
	/* the words read, [s, s + 8 * (max / 8 + 1)), stay in the page of s[0] */
	if (((uintptr_t)s & (WORDS_PAGE - 1)) <= WORDS_PAGE - 8 * (max / 8 + 1))
		return str_words_wide(s, max, w);
#endif
	return str_words_bytes(s, max, w);
}

#endif
