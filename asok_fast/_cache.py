"""The compressed-body cache: in process, and a shared tier beside it.

Shared by both cores (through ``_codecs.Encoders``); nothing here knows WSGI.

:class:`BodyCache` keeps the compressed bytes of bodies seen before, per
process.  An entry is located by what the response already computed for its
ETag (the body's MD5, with the library, engine and level that made the
coding's bytes) and confirmed before it is served, by the body's SHA-256 or,
for a small body, by the body itself: MD5 collisions are cheap to make,
SHA-256 ones are not, so two bodies with one MD5 are each served their own
bytes.  (SHA-256 runs at about 2 GB/s here, faster than MD5, with the CPU's
SHA extensions.)  A body is admitted on its
second appearance: the first only leaves its locator's hash in a fixed table
of recent ones, so a one-off body costs one call (:meth:`BodyCache.find`: a
lookup, a hash, a table slot) and no cache space.  Entries leave least
recently used first; the compressed bytes held never exceed the size given,
and the bodies remembered are bounded too.

:class:`SharedTier` wraps ``COMPRESS_CACHE_BACKEND`` (a Django or
Flask-Caching cache, a ``redis.Redis`` client: anything with ``get(key)``
and ``set(key, value)``) so that it can never fail a response nor delay one
by more than :data:`BACKEND_TIMEOUT`: every call runs on a few daemon
worker threads; a read that is not answered in time, and any error, count
as a miss and pause the tier for :data:`BACKEND_RETRY` seconds; writes are
sent off without waiting.  Its trouble is logged at most once a minute.
"""

from __future__ import annotations

import array
import hashlib
import logging
import os
import queue
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Optional, Tuple, Union

__all__ = ["BACKEND_RETRY", "BACKEND_TIMEOUT", "ENTRY_OVERHEAD", "BodyCache", "Locator", "SharedTier"]

#: The longest a response waits for the shared tier (seconds).
BACKEND_TIMEOUT = 0.05
#: After a failure or a timeout, the shared tier rests this long (seconds).
BACKEND_RETRY = 5.0
# At most this many calls to the shared tier at once: a backend that hangs
# holds these threads, and the tier counts as down while all of them are held.
_BACKEND_WORKERS = 4
_LOG_EVERY = 60.0

# Bodies seen once, remembered for admission: enough slots for the entries a
# cache of this size holds at a typical 1 KiB (a power of two), within bounds.
_SEEN_MIN = 1024
_SEEN_MAX = 65536

log = logging.getLogger("asok_fast")

#: Where an entry is: what made its bytes (``_codecs.variant``) and the body's
#: MD5 hex digest, in one str.
Locator = str


#: What an entry's bookkeeping takes beside its bytes, counted against the size:
#: its locator, its tuple, the ordered dict's slot (about 390 bytes measured with
#: tracemalloc on CPython 3.11), and the bytes objects' headers.
ENTRY_OVERHEAD = 512

# Bodies up to this size are kept beside their compressed bytes and a hit is
# confirmed by comparing them: SHA-256 of a 1.6 KB JSON body costs 1.05 us here,
# a comparison 0.03 us.  What they take counts against the cache's size.
_KEEP_BODY_MAX = 4096


def digest(body: bytes) -> bytes:
    """The collision-resistant digest that confirms a hit and names a shared entry."""
    return hashlib.sha256(body).digest()


class BodyCache:
    """Compressed bytes by body, coding, engine and level, within ``max_bytes``."""

    __slots__ = (
        "max_bytes", "_entries", "_seen", "_seen_mask", "_seen_max", "_held", "_lock", "__weakref__",
    )

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # locator (see find) -> (the body itself up to _KEEP_BODY_MAX bytes, else its SHA-256;
        # the compressed bytes; what the entry counts against max_bytes), oldest use first
        self._entries: "OrderedDict[Locator, Tuple[bytes, bytes, int]]" = OrderedDict()
        # Bodies seen once, for admission: a table of locator hashes, one slot
        # per hash's low bits (a newer body takes an older one's slot).  Fixed
        # size, no object kept per body: a one-off body costs a hash, a read and
        # a write, and nothing to free later.
        self._seen_max = _SEEN_MIN
        while self._seen_max < _SEEN_MAX and self._seen_max * 1024 < max_bytes:
            self._seen_max *= 2
        self._seen_mask = self._seen_max - 1
        self._seen = array.array("q", bytes(8 * self._seen_max))
        self._held = 0
        self._lock = threading.Lock()
        _CACHES.add(self)

    @property
    def held_bytes(self) -> int:
        """Bytes held now: the compressed bytes, the small bodies kept to
        confirm hits, and ENTRY_OVERHEAD per entry (never above ``max_bytes``)."""
        return self._held

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def remembered(self) -> int:
        """Bodies seen once and remembered for admission (slots in use)."""
        return self._seen_max - self._seen.count(0)

    @property
    def remembered_max(self) -> int:
        return self._seen_max

    # The lookups and the admission bookkeeping are single dict or array
    # operations, each atomic under the GIL, so they take no lock: a race between threads
    # can only admit a body one appearance early or late, or keep an entry that
    # was just evicted for one more answer (its bytes are still right).  Only
    # changing the entries, whose sizes _held sums, takes the lock.

    def find(self, made_by: str, md5: str, body: bytes) -> Union[bytes, Locator, None]:
        """Look ``body`` up and count its appearance, in one call: the whole of
        the cache's work for a one-off body.

        ``made_by``: what makes the coding's bytes (``Settings.variants``);
        ``md5``: the body's MD5 hex digest.  Returns the cached bytes (a hit);
        else None (compress, nothing to store: a first appearance, or an MD5
        collision with the entry held); else a locator, for a body seen before:
        compress it and hand both to :meth:`store`.
        """
        # The one place a locator is made (store() takes it from here).  A str,
        # not a tuple: it hashes once.  (The length adds nothing: a hit is
        # confirmed by the body itself or its SHA-256.)
        locator = made_by + md5
        entry = self._entries.get(locator)
        if entry is None:
            seen = self._seen
            h = hash(locator)  # the str's own, kept by it since the lookup above
            i = h & self._seen_mask
            if seen[i] != h:  # a first appearance (or its slot taken since by another body)
                seen[i] = h
                return None
            return locator
        try:
            self._entries.move_to_end(locator)
        except KeyError:
            pass  # evicted by another thread meanwhile
        check, data, _ = entry
        if len(body) <= _KEEP_BODY_MAX:
            return data if check == body else None
        return data if digest(body) == check else None

    def store(self, locator: Locator, body: bytes, data: bytes, sha: Optional[bytes] = None) -> None:
        """Keep what ``body`` compressed to, under the locator :meth:`find` gave
        (``sha``: the body's SHA-256 where the caller has it)."""
        h = hash(locator)
        i = h & self._seen_mask
        if self._seen[i] == h:
            self._seen[i] = 0
        if locator in self._entries:
            return  # held already (for this body or one of the same MD5)
        if len(body) <= _KEEP_BODY_MAX:
            check = bytes(body)  # the body itself (no copy of a bytes object)
            cost = ENTRY_OVERHEAD + len(data) + len(check)
        else:
            check = sha if sha is not None else digest(body)  # outside the lock: admission's one hash
            cost = ENTRY_OVERHEAD + len(data)
        if cost > self.max_bytes:
            return
        with self._lock:
            if locator in self._entries:
                return
            self._entries[locator] = (check, data, cost)
            self._held += cost
            while self._held > self.max_bytes:
                _, (_, _, old) = self._entries.popitem(last=False)
                self._held -= old

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._seen = array.array("q", bytes(8 * self._seen_max))
            self._held = 0

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held the lock at fork: the child's
        # copy gets a fresh one.  The entries are consistent (they change
        # only under the lock, which the forking thread did not hold).
        self._lock = threading.Lock()


_CACHES: "weakref.WeakSet[BodyCache]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_CACHES):
        cache._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Workers:
    """A few daemon threads that run the shared tier's calls.

    Not a ThreadPoolExecutor: its threads are joined when the interpreter
    exits, so a backend that hangs (a paused Redis, a client without a socket
    timeout) would hang a worker process's exit too.
    """

    def __init__(self, count: int) -> None:
        self._calls: "queue.SimpleQueue[Tuple[Future, Any, Tuple[Any, ...]]]" = queue.SimpleQueue()
        for n in range(count):
            threading.Thread(target=self._run, name=f"asok_fast-cache-{n}", daemon=True).start()

    def submit(self, fn: Any, *args: Any) -> "Future[Any]":
        future: "Future[Any]" = Future()
        self._calls.put((future, fn, args))
        return future

    def _run(self) -> None:
        while True:
            future, fn, args = self._calls.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the waiting response, never raised here
                future.set_exception(exc)
            else:
                future.set_result(result)


class SharedTier:
    """``COMPRESS_CACHE_BACKEND`` behind a deadline, a breaker and a quiet log."""

    __slots__ = ("backend", "_pool", "_pid", "_busy", "_down_until", "_logged_at", "_lock")

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._pool: Optional[_Workers] = None
        self._pid = 0
        self._busy = 0  # calls running or queued
        self._down_until = 0.0
        self._logged_at = -_LOG_EVERY
        self._lock = threading.Lock()

    def _submit(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the tier's threads; None when it is resting or full."""
        if time.monotonic() < self._down_until:
            return None
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: threads do not survive fork
                self._pool = _Workers(_BACKEND_WORKERS)
                self._pid = os.getpid()
                self._busy = 0
            if self._busy >= _BACKEND_WORKERS:
                pool = None
            else:
                self._busy += 1
                pool = self._pool
        if pool is None:
            self._trouble("every call to it is still waiting for an answer")
            return None
        future = pool.submit(fn, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Any) -> None:
        with self._lock:
            self._busy -= 1

    def _trouble(self, what: object) -> None:
        now = time.monotonic()
        self._down_until = now + BACKEND_RETRY
        if now - self._logged_at >= _LOG_EVERY:
            self._logged_at = now
            log.warning(
                "asok_fast: COMPRESS_CACHE_BACKEND %r failed (%s); compressing without it, trying again in %.0f s",
                self.backend, what, BACKEND_RETRY,
            )

    def get(self, key: str) -> Optional[bytes]:
        future = self._submit(self.backend.get, key)
        if future is None:
            return None
        try:
            value = future.result(timeout=BACKEND_TIMEOUT)
        except FutureTimeout:
            self._trouble(f"no answer within {BACKEND_TIMEOUT * 1000:.0f} ms")
            return None
        except Exception as exc:  # a backend's failure is never the response's
            self._trouble(repr(exc))
            return None
        if value is None or type(value) is bytes:
            return value  # type: ignore[no-any-return]
        # A client that decodes (redis.Redis(decode_responses=True)) would never hit: say so.
        self._trouble(f"get() returned {type(value).__name__}, not bytes")
        return None

    def set(self, key: str, value: bytes) -> None:
        future = self._submit(self.backend.set, key, value)
        if future is not None:
            future.add_done_callback(self._check_set)

    def _check_set(self, future: Any) -> None:
        exc = future.exception()
        if exc is not None:
            self._trouble(repr(exc))
