/*
 * asok_fast/_crc32.h -- the CRC-32 of a gzip trailer (RFC 1952 section 8),
 * for the compiled core.
 *
 * The core deflates raw (window bits -15) and writes the gzip header and
 * trailer itself, so the CRC is computed here instead of inside deflate.
 * Inside deflate, zlib 1.2.13 spends about 4% of a 1.4 KB response's
 * compression and 2.6% of a 140 KB one on it, at under one byte per cycle.
 * On x86-64 with PCLMULQDQ this file folds the input 64 bytes at a time with
 * carry-less multiplication instead (the method of V. Gopal et al., "Fast
 * CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction",
 * Intel, 2009), about twenty times faster.  Lengths under 64 bytes, the last
 * 0-15 bytes, other machines and other compilers use zlib's crc32(), and so
 * does asokfast_crc32_init() finding no PCLMULQDQ at run time.
 *
 * asokfast_crc32(crc, p, n) equals zlib's crc32(crc, p, n) for every input
 * (tests/test_c_primitives.py compares them over every length to 4 KiB, all
 * alignments and running values).  Header-only, every function static; the
 * one global is written once, at import, before any thread can call in.
 */
#ifndef ASOKFAST_CRC32_H_INCLUDED
#define ASOKFAST_CRC32_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* Shortest input worth folding: the fold starts from four 16-byte blocks. */
#define ASOKFAST_CRC_FOLD_MIN 64

/* zlib's crc32() takes an unsigned int length: feed it in pieces. */
static uint32_t
asokfast_crc32_zlib(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n > 0) {
        unsigned int piece = n > 0x40000000u ? 0x40000000u : (unsigned int)n;
        crc = (uint32_t)crc32((uLong)crc, p, piece);
        p += piece;
        n -= piece;
    }
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(ASOKFAST_NO_CLMUL)
#include <emmintrin.h>
#include <wmmintrin.h>

/*
 * The constants, for gzip's polynomial P = x^32 + ... + 1 (0x104C11DB7) in the
 * bit-reflected order gzip uses, each the 33-bit reflection of:
 *   K1, K2  x^(4*128+32) and x^(4*128-32) mod P: fold a block 64 bytes on
 *   K3, K4  x^(128+32) and x^(128-32) mod P:      fold a block 16 bytes on
 *   K5      x^64 mod P:                           64 bits down to 32
 *   MU, PX  floor(x^64 / P) and P itself:         Barrett reduction
 */
#define ASOKFAST_CRC_K1 0x154442bd4ULL
#define ASOKFAST_CRC_K2 0x1c6e41596ULL
#define ASOKFAST_CRC_K3 0x1751997d0ULL
#define ASOKFAST_CRC_K4 0x0ccaa009eULL
#define ASOKFAST_CRC_K5 0x163cd6124ULL
#define ASOKFAST_CRC_MU 0x1f7011641ULL
#define ASOKFAST_CRC_PX 0x1db710641ULL

static int asokfast_crc_clmul = 0;  /* set once by asokfast_crc32_init() */

/* x carried 128 bits further along the message (k: the pair of constants for
 * that distance), plus the data found there. */
__attribute__((target("pclmul,sse2")))
static inline __m128i
asokfast_crc_fold(__m128i x, __m128i k, __m128i data)
{
    __m128i lo = _mm_clmulepi64_si128(x, k, 0x00);  /* x.lo * k.lo */
    __m128i hi = _mm_clmulepi64_si128(x, k, 0x11);  /* x.hi * k.hi */
    return _mm_xor_si128(_mm_xor_si128(lo, hi), data);
}

/*
 * The CRC register after p[:n], from register r (no pre- or post-inversion:
 * the caller does zlib's).  n >= 64 and a multiple of 16.
 */
__attribute__((target("pclmul,sse2")))
static uint32_t
asokfast_crc32_clmul(uint32_t r, const unsigned char *p, size_t n)
{
    const __m128i *q = (const __m128i *)p;
    const __m128i low32 = _mm_set_epi32(0, 0, 0, -1);
    __m128i k, t;
    __m128i x0 = _mm_xor_si128(_mm_loadu_si128(q), _mm_cvtsi32_si128((int)r));
    __m128i x1 = _mm_loadu_si128(q + 1);
    __m128i x2 = _mm_loadu_si128(q + 2);
    __m128i x3 = _mm_loadu_si128(q + 3);
    q += 4;
    n -= 64;

    /* Four independent lanes: the multiplies of one do not wait on another. */
    k = _mm_set_epi64x((long long)ASOKFAST_CRC_K2, (long long)ASOKFAST_CRC_K1);
    while (n >= 64) {
        x0 = asokfast_crc_fold(x0, k, _mm_loadu_si128(q));
        x1 = asokfast_crc_fold(x1, k, _mm_loadu_si128(q + 1));
        x2 = asokfast_crc_fold(x2, k, _mm_loadu_si128(q + 2));
        x3 = asokfast_crc_fold(x3, k, _mm_loadu_si128(q + 3));
        q += 4;
        n -= 64;
    }

    /* The four lanes into one, then what is left 16 bytes at a time. */
    k = _mm_set_epi64x((long long)ASOKFAST_CRC_K4, (long long)ASOKFAST_CRC_K3);
    x0 = asokfast_crc_fold(x0, k, x1);
    x0 = asokfast_crc_fold(x0, k, x2);
    x0 = asokfast_crc_fold(x0, k, x3);
    while (n >= 16) {
        x0 = asokfast_crc_fold(x0, k, _mm_loadu_si128(q));
        q += 1;
        n -= 16;
    }

    /* 128 bits to 64, appending the 32 zero bits the CRC definition implies. */
    t = _mm_clmulepi64_si128(x0, k, 0x10);          /* x0.lo * K4 */
    x0 = _mm_xor_si128(_mm_srli_si128(x0, 8), t);

    /* 64 bits to 32. */
    t = _mm_and_si128(x0, low32);
    t = _mm_clmulepi64_si128(t, _mm_set_epi64x(0, (long long)ASOKFAST_CRC_K5), 0x00);
    x0 = _mm_xor_si128(_mm_srli_si128(x0, 4), t);

    /* Barrett reduction to the 32-bit remainder. */
    k = _mm_set_epi64x((long long)ASOKFAST_CRC_MU, (long long)ASOKFAST_CRC_PX);
    t = _mm_and_si128(x0, low32);
    t = _mm_clmulepi64_si128(t, k, 0x10);           /* * MU */
    t = _mm_and_si128(t, low32);
    t = _mm_clmulepi64_si128(t, k, 0x00);           /* * P */
    x0 = _mm_xor_si128(x0, t);
    return (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(x0, 4));
}

/* Whether the fast path is taken (1) or zlib's crc32() always (0). */
static int
asokfast_crc32_init(void)
{
    __builtin_cpu_init();
    asokfast_crc_clmul = __builtin_cpu_supports("pclmul") ? 1 : 0;
    return asokfast_crc_clmul;
}

/* zlib's crc32(crc, p, n); use_clmul 0 forces zlib's code (for tests). */
static uint32_t
asokfast_crc32_with(uint32_t crc, const unsigned char *p, size_t n, int use_clmul)
{
    if (use_clmul && asokfast_crc_clmul && n >= ASOKFAST_CRC_FOLD_MIN) {
        size_t whole = n & ~(size_t)15;
        crc = ~asokfast_crc32_clmul(~crc, p, whole);
        p += whole;
        n -= whole;
    }
    return n ? asokfast_crc32_zlib(crc, p, n) : crc;
}

#else  /* no carry-less multiply in this build */

static int
asokfast_crc32_init(void)
{
    return 0;
}

static uint32_t
asokfast_crc32_with(uint32_t crc, const unsigned char *p, size_t n, int use_clmul)
{
    (void)use_clmul;
    return asokfast_crc32_zlib(crc, p, n);
}

#endif

static inline uint32_t
asokfast_crc32(uint32_t crc, const unsigned char *p, size_t n)
{
    return asokfast_crc32_with(crc, p, n, 1);
}

#endif  /* ASOKFAST_CRC32_H_INCLUDED */
