/*
 * asok_fast/_c/md5.h -- MD5 message digest (RFC 1321) for the compiled core.
 *
 * Written from the RFC's description (section 3): four 32-bit registers,
 * 64-byte blocks read as sixteen little-endian words, four rounds of sixteen
 * steps  a = b + ((a + f(b,c,d) + X[k] + T[i]) <<< s),  T[i] = floor(2^32 *
 * |sin(i)|), and padding with 0x80, zeros and the 64-bit little-endian bit
 * length.  MD5 is used here to name content (ETags), not for security.
 *
 * Properties the Cython code relies on:
 *   - header-only, every function static: nothing leaks into the module's
 *     symbol table and no global is ever written, so any number of threads may
 *     hash at once with the GIL released;
 *   - the running state lives in a struct on the caller's stack;
 *   - whole blocks are read straight from the caller's buffer (no copy), with
 *     memcpy loads so that an unaligned pointer (a memoryview slice, an offset
 *     into a larger buffer) is safe on every architecture; only the final
 *     partial block is copied, into a 128-byte stack buffer for the padding.
 */
#ifndef ASOKFAST_MD5_H_INCLUDED
#define ASOKFAST_MD5_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint32_t a, b, c, d;
} asokfast_md5_state;

/* ---------------------------------------------------------------------------
 * Loading sixteen little-endian words.  On a little-endian host one memcpy is
 * the load (compilers turn it into plain moves); elsewhere assemble bytes.
 * ------------------------------------------------------------------------ */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#  define ASOKFAST_MD5_LE 1
#elif defined(_MSC_VER) && (defined(_M_IX86) || defined(_M_X64) \
    || defined(_M_ARM) || defined(_M_ARM64))
#  define ASOKFAST_MD5_LE 1
#else
#  define ASOKFAST_MD5_LE 0
#endif

static inline void
asokfast_md5_load_block(uint32_t x[16], const unsigned char *p)
{
#if ASOKFAST_MD5_LE
    memcpy(x, p, 64);
#else
    int i;
    for (i = 0; i < 16; i++, p += 4) {
        x[i] = (uint32_t)p[0] | ((uint32_t)p[1] << 8)
             | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    }
#endif
}

static inline void
asokfast_md5_store32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v);
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* ---------------------------------------------------------------------------
 * Round functions (RFC 1321, 3.4), in forms with fewer operations:
 *   F(x,y,z) = (x & y) | (~x & z)  ==  z ^ (x & (y ^ z))
 *   G(x,y,z) = (x & z) | (y & ~z)  ==  the two disjoint halves added, which
 *              lets the (y & ~z) half start before x is known
 *   H(x,y,z) = x ^ y ^ z
 *   I(x,y,z) = y ^ (x | ~z)
 * Each step adds X[k] + T[i] first: it does not depend on the previous step,
 * so the CPU computes it in parallel with the dependency chain through b.
 * ------------------------------------------------------------------------ */
#define ASOKFAST_ROTL32(v, s) (((v) << (s)) | ((v) >> (32 - (s))))

#define ASOKFAST_MD5_STEP_F(a, b, c, d, xk, s, t)                             \
    do {                                                                      \
        (a) += (xk) + (uint32_t)(t);                                          \
        (a) += (d) ^ ((b) & ((c) ^ (d)));                                     \
        (a) = ASOKFAST_ROTL32((a), (s)) + (b);                                \
    } while (0)

#define ASOKFAST_MD5_STEP_G(a, b, c, d, xk, s, t)                             \
    do {                                                                      \
        (a) += (xk) + (uint32_t)(t);                                          \
        (a) += (c) & ~(d);                                                    \
        (a) += (b) & (d);                                                     \
        (a) = ASOKFAST_ROTL32((a), (s)) + (b);                                \
    } while (0)

#define ASOKFAST_MD5_STEP_H(a, b, c, d, xk, s, t)                             \
    do {                                                                      \
        (a) += (xk) + (uint32_t)(t);                                          \
        (a) += (b) ^ (c) ^ (d);                                               \
        (a) = ASOKFAST_ROTL32((a), (s)) + (b);                                \
    } while (0)

#define ASOKFAST_MD5_STEP_I(a, b, c, d, xk, s, t)                             \
    do {                                                                      \
        (a) += (xk) + (uint32_t)(t);                                          \
        (a) += (c) ^ ((b) | ~(d));                                            \
        (a) = ASOKFAST_ROTL32((a), (s)) + (b);                                \
    } while (0)

/* Process nblocks consecutive 64-byte blocks starting at p. */
static void
asokfast_md5_blocks(asokfast_md5_state *st, const unsigned char *p,
                    size_t nblocks)
{
    uint32_t a = st->a, b = st->b, c = st->c, d = st->d;
    uint32_t x[16];

    while (nblocks--) {
        const uint32_t aa = a, bb = b, cc = c, dd = d;
        asokfast_md5_load_block(x, p);
        p += 64;

        /* Round 1: k = i, s = 7 12 17 22 */
        ASOKFAST_MD5_STEP_F(a, b, c, d, x[ 0],  7, 0xd76aa478);
        ASOKFAST_MD5_STEP_F(d, a, b, c, x[ 1], 12, 0xe8c7b756);
        ASOKFAST_MD5_STEP_F(c, d, a, b, x[ 2], 17, 0x242070db);
        ASOKFAST_MD5_STEP_F(b, c, d, a, x[ 3], 22, 0xc1bdceee);
        ASOKFAST_MD5_STEP_F(a, b, c, d, x[ 4],  7, 0xf57c0faf);
        ASOKFAST_MD5_STEP_F(d, a, b, c, x[ 5], 12, 0x4787c62a);
        ASOKFAST_MD5_STEP_F(c, d, a, b, x[ 6], 17, 0xa8304613);
        ASOKFAST_MD5_STEP_F(b, c, d, a, x[ 7], 22, 0xfd469501);
        ASOKFAST_MD5_STEP_F(a, b, c, d, x[ 8],  7, 0x698098d8);
        ASOKFAST_MD5_STEP_F(d, a, b, c, x[ 9], 12, 0x8b44f7af);
        ASOKFAST_MD5_STEP_F(c, d, a, b, x[10], 17, 0xffff5bb1);
        ASOKFAST_MD5_STEP_F(b, c, d, a, x[11], 22, 0x895cd7be);
        ASOKFAST_MD5_STEP_F(a, b, c, d, x[12],  7, 0x6b901122);
        ASOKFAST_MD5_STEP_F(d, a, b, c, x[13], 12, 0xfd987193);
        ASOKFAST_MD5_STEP_F(c, d, a, b, x[14], 17, 0xa679438e);
        ASOKFAST_MD5_STEP_F(b, c, d, a, x[15], 22, 0x49b40821);

        /* Round 2: k = (1 + 5i) mod 16, s = 5 9 14 20 */
        ASOKFAST_MD5_STEP_G(a, b, c, d, x[ 1],  5, 0xf61e2562);
        ASOKFAST_MD5_STEP_G(d, a, b, c, x[ 6],  9, 0xc040b340);
        ASOKFAST_MD5_STEP_G(c, d, a, b, x[11], 14, 0x265e5a51);
        ASOKFAST_MD5_STEP_G(b, c, d, a, x[ 0], 20, 0xe9b6c7aa);
        ASOKFAST_MD5_STEP_G(a, b, c, d, x[ 5],  5, 0xd62f105d);
        ASOKFAST_MD5_STEP_G(d, a, b, c, x[10],  9, 0x02441453);
        ASOKFAST_MD5_STEP_G(c, d, a, b, x[15], 14, 0xd8a1e681);
        ASOKFAST_MD5_STEP_G(b, c, d, a, x[ 4], 20, 0xe7d3fbc8);
        ASOKFAST_MD5_STEP_G(a, b, c, d, x[ 9],  5, 0x21e1cde6);
        ASOKFAST_MD5_STEP_G(d, a, b, c, x[14],  9, 0xc33707d6);
        ASOKFAST_MD5_STEP_G(c, d, a, b, x[ 3], 14, 0xf4d50d87);
        ASOKFAST_MD5_STEP_G(b, c, d, a, x[ 8], 20, 0x455a14ed);
        ASOKFAST_MD5_STEP_G(a, b, c, d, x[13],  5, 0xa9e3e905);
        ASOKFAST_MD5_STEP_G(d, a, b, c, x[ 2],  9, 0xfcefa3f8);
        ASOKFAST_MD5_STEP_G(c, d, a, b, x[ 7], 14, 0x676f02d9);
        ASOKFAST_MD5_STEP_G(b, c, d, a, x[12], 20, 0x8d2a4c8a);

        /* Round 3: k = (5 + 3i) mod 16, s = 4 11 16 23 */
        ASOKFAST_MD5_STEP_H(a, b, c, d, x[ 5],  4, 0xfffa3942);
        ASOKFAST_MD5_STEP_H(d, a, b, c, x[ 8], 11, 0x8771f681);
        ASOKFAST_MD5_STEP_H(c, d, a, b, x[11], 16, 0x6d9d6122);
        ASOKFAST_MD5_STEP_H(b, c, d, a, x[14], 23, 0xfde5380c);
        ASOKFAST_MD5_STEP_H(a, b, c, d, x[ 1],  4, 0xa4beea44);
        ASOKFAST_MD5_STEP_H(d, a, b, c, x[ 4], 11, 0x4bdecfa9);
        ASOKFAST_MD5_STEP_H(c, d, a, b, x[ 7], 16, 0xf6bb4b60);
        ASOKFAST_MD5_STEP_H(b, c, d, a, x[10], 23, 0xbebfbc70);
        ASOKFAST_MD5_STEP_H(a, b, c, d, x[13],  4, 0x289b7ec6);
        ASOKFAST_MD5_STEP_H(d, a, b, c, x[ 0], 11, 0xeaa127fa);
        ASOKFAST_MD5_STEP_H(c, d, a, b, x[ 3], 16, 0xd4ef3085);
        ASOKFAST_MD5_STEP_H(b, c, d, a, x[ 6], 23, 0x04881d05);
        ASOKFAST_MD5_STEP_H(a, b, c, d, x[ 9],  4, 0xd9d4d039);
        ASOKFAST_MD5_STEP_H(d, a, b, c, x[12], 11, 0xe6db99e5);
        ASOKFAST_MD5_STEP_H(c, d, a, b, x[15], 16, 0x1fa27cf8);
        ASOKFAST_MD5_STEP_H(b, c, d, a, x[ 2], 23, 0xc4ac5665);

        /* Round 4: k = 7i mod 16, s = 6 10 15 21 */
        ASOKFAST_MD5_STEP_I(a, b, c, d, x[ 0],  6, 0xf4292244);
        ASOKFAST_MD5_STEP_I(d, a, b, c, x[ 7], 10, 0x432aff97);
        ASOKFAST_MD5_STEP_I(c, d, a, b, x[14], 15, 0xab9423a7);
        ASOKFAST_MD5_STEP_I(b, c, d, a, x[ 5], 21, 0xfc93a039);
        ASOKFAST_MD5_STEP_I(a, b, c, d, x[12],  6, 0x655b59c3);
        ASOKFAST_MD5_STEP_I(d, a, b, c, x[ 3], 10, 0x8f0ccc92);
        ASOKFAST_MD5_STEP_I(c, d, a, b, x[10], 15, 0xffeff47d);
        ASOKFAST_MD5_STEP_I(b, c, d, a, x[ 1], 21, 0x85845dd1);
        ASOKFAST_MD5_STEP_I(a, b, c, d, x[ 8],  6, 0x6fa87e4f);
        ASOKFAST_MD5_STEP_I(d, a, b, c, x[15], 10, 0xfe2ce6e0);
        ASOKFAST_MD5_STEP_I(c, d, a, b, x[ 6], 15, 0xa3014314);
        ASOKFAST_MD5_STEP_I(b, c, d, a, x[13], 21, 0x4e0811a1);
        ASOKFAST_MD5_STEP_I(a, b, c, d, x[ 4],  6, 0xf7537e82);
        ASOKFAST_MD5_STEP_I(d, a, b, c, x[11], 10, 0xbd3af235);
        ASOKFAST_MD5_STEP_I(c, d, a, b, x[ 2], 15, 0x2ad7d2bb);
        ASOKFAST_MD5_STEP_I(b, c, d, a, x[ 9], 21, 0xeb86d391);

        a += aa;
        b += bb;
        c += cc;
        d += dd;
    }

    st->a = a;
    st->b = b;
    st->c = c;
    st->d = d;
}

/* MD5 of data[0:len] into out[16] (the raw digest). */
static void
asokfast_md5(const unsigned char *data, size_t len, unsigned char out[16])
{
    asokfast_md5_state st;
    unsigned char tail[128];
    size_t full = len / 64, rest = len % 64, padded;
    uint64_t bits = (uint64_t)len << 3;   /* length in bits, mod 2^64 */

    /* RFC 1321, 3.3: the initial register values (words A B C D). */
    st.a = 0x67452301u;
    st.b = 0xefcdab89u;
    st.c = 0x98badcfeu;
    st.d = 0x10325476u;

    asokfast_md5_blocks(&st, data, full);

    /* RFC 1321, 3.1-3.2: one 0x80 byte, zeros up to 56 mod 64, then the bit
     * length as 8 little-endian bytes: one extra block, or two when fewer
     * than 9 bytes are left in the last one. */
    padded = (rest < 56) ? 64 : 128;
    if (rest)
        memcpy(tail, data + full * 64, rest);
    tail[rest] = 0x80;
    memset(tail + rest + 1, 0, padded - 8 - rest - 1);
    asokfast_md5_store32le(tail + padded - 8, (uint32_t)bits);
    asokfast_md5_store32le(tail + padded - 4, (uint32_t)(bits >> 32));
    asokfast_md5_blocks(&st, tail, padded / 64);

    /* RFC 1321, 3.5: the digest is A B C D, low-order byte first. */
    asokfast_md5_store32le(out, st.a);
    asokfast_md5_store32le(out + 4, st.b);
    asokfast_md5_store32le(out + 8, st.c);
    asokfast_md5_store32le(out + 12, st.d);
}

/* Write the 16 digest bytes as 32 lower-case hex characters (no NUL): one
 * two-character entry per byte from a 512-byte table, a load and a 2-byte
 * store each, instead of two nibble lookups. */
#define ASOKFAST_HEX_ROW(h) \
    h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" \
    h "8" h "9" h "a" h "b" h "c" h "d" h "e" h "f"

static void
asokfast_hex32(const unsigned char digest[16], char out[32])
{
    static const char pairs[513] =
        ASOKFAST_HEX_ROW("0") ASOKFAST_HEX_ROW("1") ASOKFAST_HEX_ROW("2")
        ASOKFAST_HEX_ROW("3") ASOKFAST_HEX_ROW("4") ASOKFAST_HEX_ROW("5")
        ASOKFAST_HEX_ROW("6") ASOKFAST_HEX_ROW("7") ASOKFAST_HEX_ROW("8")
        ASOKFAST_HEX_ROW("9") ASOKFAST_HEX_ROW("a") ASOKFAST_HEX_ROW("b")
        ASOKFAST_HEX_ROW("c") ASOKFAST_HEX_ROW("d") ASOKFAST_HEX_ROW("e")
        ASOKFAST_HEX_ROW("f");
    int i;
    for (i = 0; i < 16; i++)
        memcpy(out + 2 * i, pairs + 2 * digest[i], 2);
}

#undef ASOKFAST_HEX_ROW

/* MD5 of data[0:len] as 32 lower-case hex characters (no NUL) in out. */
static void
asokfast_md5_hex(const unsigned char *data, size_t len, char out[32])
{
    unsigned char digest[16];
    asokfast_md5(data, len, digest);
    asokfast_hex32(digest, out);
}

#endif /* ASOKFAST_MD5_H_INCLUDED */
