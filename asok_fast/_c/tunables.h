/*
 * asok_fast/_c/tunables.h -- build-time tunables of the compiled core.
 *
 * Each may be overridden at build time, e.g.  CFLAGS=-DASOKFAST_MD5_NOGIL_MIN=0,
 * which is how they were measured (builds that always / never release the
 * GIL, compared on 2 cores); the defaults are the measured choices.
 *
 *   ASOKFAST_MD5_NOGIL_MIN      hash with the GIL released from this many bytes
 *       on.  Two threads hashing 2 KiB bodies: +35% calls/s with release;
 *       1 KiB: -8%..+17% (noise); a release costs ~0.1 us a call.  CPython's
 *       hashlib draws the line at 2 KiB too.
 *   ASOKFAST_DEFLATE_NOGIL_MIN  the same for deflate, in input bytes.  A
 *       deflate call costs >= 7 us, so a release is cheap beside it; two
 *       threads at 1 KiB: +9%..+45%, 2 KiB: +82%; below 1 KiB gains were mixed.
 *   ASOKFAST_POOL_MAX           idle deflate states kept per level.
 */
#ifndef ASOKFAST_TUNABLES_H_INCLUDED
#define ASOKFAST_TUNABLES_H_INCLUDED

#ifndef ASOKFAST_MD5_NOGIL_MIN
#define ASOKFAST_MD5_NOGIL_MIN 2048
#endif
#ifndef ASOKFAST_DEFLATE_NOGIL_MIN
#define ASOKFAST_DEFLATE_NOGIL_MIN 1024
#endif
#ifndef ASOKFAST_POOL_MAX
#define ASOKFAST_POOL_MAX 8
#endif
/* Array size for the pool: at least one slot even when pooling is off. */
#define ASOKFAST_POOL_SLOTS (ASOKFAST_POOL_MAX > 0 ? ASOKFAST_POOL_MAX : 1)

#endif
