"""The in-process compressed-body cache and the ISA-L engine (SPEC "Compressed-body cache",
"Compression: zstd, br, gzip").

Every test runs on both cores.  Compressions are counted by wrapping
``_codecs.Encoders.encode``, where both cores make compressed bytes, and
through the compiled core's hook for the gzip it makes itself, in C (zlib
engine, no padding).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import zlib
from typing import Any, Dict, Iterator, List

import pytest
from isal import isal_zlib

from asok_fast import _codecs, _core
from asok_fast._cache import ENTRY_OVERHEAD, BodyCache
from wsgi_helpers import HTML, Server, call, consume, decode, environ, gzip_reference, make_app, wsgi_app, zstd_reference

_CORE_C, _ = _core.find_compiled()

ON = {"GZIP": True}
OFF = {"GZIP": True, "COMPRESS_CACHE_SIZE": 0}
BROWSER = "gzip, deflate, br, zstd"


def page(n: int, size: int = 20_000) -> bytes:
    unit = b"<tr><td>page %d</td><td>some table text, repeated</td></tr>\n" % n
    return (unit * (size // len(unit) + 1))[:size]


@pytest.fixture
def encodes(monkeypatch: Any) -> Iterator[List[str]]:
    """The codings of every compression made (buffered bodies), in order."""
    made: List[str] = []
    real = _codecs.Encoders.encode

    def counting(self: Any, settings: Any, coding: str, data: bytes) -> bytes:
        made.append(coding)
        return real(self, settings, coding, data)

    monkeypatch.setattr(_codecs.Encoders, "encode", counting)
    if _CORE_C is None:
        yield made
        return
    previous = _CORE_C._set_compressed_hook(made.append)
    try:
        yield made
    finally:
        _CORE_C._set_compressed_hook(previous)


def cache_of(mw: Any) -> BodyCache:
    cache = mw._settings().cache
    assert cache is not None
    return cache  # type: ignore[no-any-return]


# --- the grid: cache on == cache off -----------------------------------------------------------


def test_grid_answers_the_same_with_the_cache_on_and_off(core: Any) -> None:
    """Every case of the parity grid (every coding and level boundary included), three
    times through one middleware: the second and third are served from the cache."""
    from test_parity import CASES, _mismatch, run

    mismatches = []
    for case in CASES:
        if not isinstance(case.config, dict):
            continue
        off = dataclasses.replace(case, config={**case.config, "COMPRESS_CACHE_SIZE": 0})
        on = dataclasses.replace(case, config={"COMPRESS_CACHE_SIZE": 8 << 20, **case.config})
        expected = run(core, off, repeat=3)
        got = run(core, on, repeat=3)
        if got != expected:
            mismatches.append(_mismatch(case, expected, got))
    assert not mismatches, f"{len(mismatches)} cases differ:\n" + "\n".join(mismatches[:5])


@pytest.mark.parametrize("accept", [BROWSER, "gzip", "br", "zstd"])
@pytest.mark.parametrize(
    "config",
    [{}, {"GZIP_LEVEL": 9, "ZSTD_LEVEL": 19, "BROTLI_LEVEL": 11}, {"GZIP_ENGINE": "isal", "ISAL_LEVEL": 3}],
    ids=["defaults", "highest-levels", "isal"],
)
def test_hits_are_the_bytes_a_compression_gives(make_mw: Any, encodes: List[str], accept: str, config: Dict[str, Any]) -> None:
    body = page(1)
    cached = make_mw(make_app(body), {**ON, **config})
    fresh = make_mw(make_app(body), {**OFF, **config})
    answers = [call(cached, headers={"Accept-Encoding": accept}) for _ in range(4)]
    # Compressed on the first two requests (admission), then served twice.
    assert len(encodes) == 2
    reference = call(fresh, headers={"Accept-Encoding": accept})
    for r in answers:
        assert (r.status, r.headers, r.body) == (reference.status, reference.headers, reference.body)
    assert decode(reference.get("Content-Encoding"), reference.body) == body


# --- admission, eviction, bounds ---------------------------------------------------------------


def test_a_body_is_admitted_on_its_second_appearance(make_mw: Any, encodes: List[str]) -> None:
    mw = make_mw(make_app(page(2)), ON)
    cache = cache_of(mw)
    call(mw, headers={"Accept-Encoding": "zstd"})
    assert (len(encodes), len(cache), cache.held_bytes) == (1, 0, 0)  # seen once: remembered, not held
    second = call(mw, headers={"Accept-Encoding": "zstd"})
    assert (len(encodes), len(cache), cache.held_bytes) == (2, 1, ENTRY_OVERHEAD + len(second.body))
    for _ in range(5):
        assert call(mw, headers={"Accept-Encoding": "zstd"}).body == second.body
    assert len(encodes) == 2
    # Another coding of the same body is another entry, admitted the same way.
    call(mw, headers={"Accept-Encoding": "gzip"})
    call(mw, headers={"Accept-Encoding": "gzip"})
    call(mw, headers={"Accept-Encoding": "gzip"})
    assert encodes == ["zstd", "zstd", "gzip", "gzip"]
    assert len(cache) == 2


def test_one_off_bodies_take_no_space_and_bounded_bookkeeping(make_mw: Any) -> None:
    bodies = iter(range(10**9))
    app = wsgi_app(lambda: [page(next(bodies), 600)])
    mw = make_mw(app, {**ON, "COMPRESS_CACHE_SIZE": 64 * 1024})
    cache = cache_of(mw)
    for _ in range(3000):
        call(mw, headers={"Accept-Encoding": "zstd"})
    assert len(cache) == 0 and cache.held_bytes == 0
    assert cache.remembered <= cache.remembered_max == 1024


def test_held_bytes_never_exceed_the_size_and_eviction_is_lru(make_mw: Any) -> None:
    size = 12_000
    current: List[bytes] = [b""]
    app = wsgi_app(lambda: [current[0]])
    mw = make_mw(app, {**ON, "COMPRESS_CACHE_SIZE": size})
    cache = cache_of(mw)
    sizes: Dict[int, int] = {}
    for n in range(60):
        current[0] = page(n, 30_000)
        for _ in range(2):
            r = call(mw, headers={"Accept-Encoding": "gzip"})
            assert gzip_reference(current[0]) == r.body
            assert cache.held_bytes <= size
        sizes[n] = len(r.body)
    assert 0 < cache.held_bytes <= size
    # The most recent bodies are the ones held.
    assert len(cache) >= 1
    assert sum(ENTRY_OVERHEAD + sizes[n] for n in range(60 - len(cache), 60)) == cache.held_bytes


def test_recently_used_entries_survive_eviction(make_mw: Any, encodes: List[str]) -> None:
    current: List[bytes] = [b""]
    app = wsgi_app(lambda: [current[0]])
    one = ENTRY_OVERHEAD + len(gzip_reference(page(0, 30_000)))
    mw = make_mw(app, {**ON, "COMPRESS_CACHE_SIZE": one * 3 + one // 2})  # room for three
    for n in (0, 1, 2):
        current[0] = page(n, 30_000)
        call(mw, headers={"Accept-Encoding": "gzip"})
        call(mw, headers={"Accept-Encoding": "gzip"})
    assert len(cache_of(mw)) == 3
    current[0] = page(0, 30_000)
    call(mw, headers={"Accept-Encoding": "gzip"})  # 0 is now the most recently used
    current[0] = page(3, 30_000)
    call(mw, headers={"Accept-Encoding": "gzip"})
    call(mw, headers={"Accept-Encoding": "gzip"})  # 3 admitted: 1, the least recent, leaves
    before = len(encodes)
    for n in (0, 2, 3):
        current[0] = page(n, 30_000)
        call(mw, headers={"Accept-Encoding": "gzip"})
    assert len(encodes) == before  # all three hits
    current[0] = page(1, 30_000)
    call(mw, headers={"Accept-Encoding": "gzip"})
    assert len(encodes) == before + 1


def test_a_body_larger_than_the_cache_is_never_held(make_mw: Any) -> None:
    body = os.urandom(4000).hex().encode()  # compresses to about half
    mw = make_mw(make_app(body), {**ON, "COMPRESS_CACHE_SIZE": 1000})
    for _ in range(3):
        assert decode("zstd", call(mw, headers={"Accept-Encoding": "zstd"}).body) == body
    assert cache_of(mw).held_bytes == 0


# --- config changes ------------------------------------------------------------------------------


def test_config_changes_take_effect_on_the_next_request(make_mw: Any) -> None:
    body = page(4)
    mw = make_mw(make_app(body), ON)

    def twice(accept: str) -> Any:
        call(mw, headers={"Accept-Encoding": accept})
        return call(mw, headers={"Accept-Encoding": accept})

    assert twice("zstd").body == zstd_reference(body, 3)
    mw.config["ZSTD_LEVEL"] = 9
    assert call(mw, headers={"Accept-Encoding": "zstd"}).body == zstd_reference(body, 9)
    assert twice("gzip").body == gzip_reference(body, 6)
    mw.config["GZIP_LEVEL"] = 1
    assert call(mw, headers={"Accept-Encoding": "gzip"}).body == gzip_reference(body, 1)
    mw.config["GZIP_ENGINE"] = "isal"
    assert call(mw, headers={"Accept-Encoding": "gzip"}).body == isal_zlib.compress(body, 1, 31)
    mw.config["ISAL_LEVEL"] = 3
    assert call(mw, headers={"Accept-Encoding": "gzip"}).body == isal_zlib.compress(body, 3, 31)
    mw.config["COMPRESS_CODINGS"] = ["gzip"]
    assert call(mw, headers={"Accept-Encoding": BROWSER}).body == isal_zlib.compress(body, 3, 31)
    mw.config["GZIP_ENGINE"] = "zlib"
    assert call(mw, headers={"Accept-Encoding": BROWSER}).body == gzip_reference(body, 1)
    old = cache_of(mw)
    mw.config["CORS_ORIGINS"] = "*"  # another key: the cache stays
    assert call(mw, headers={"Accept-Encoding": "gzip"}).body == gzip_reference(body, 1)
    assert cache_of(mw) is old
    mw.config["COMPRESS_CACHE_SIZE"] = 1 << 20  # a new size: a new cache
    assert cache_of(mw) is not old
    mw.config["COMPRESS_CACHE_SIZE"] = 0
    assert mw._settings().cache is None
    assert call(mw, headers={"Accept-Encoding": "gzip"}).body == gzip_reference(body, 1)


def test_padding_is_fresh_on_every_hit(make_mw: Any, encodes: List[str]) -> None:
    body = page(5)
    mw = make_mw(make_app(body), {**ON, "COMPRESS_RANDOM_PADDING": True})
    for coding in ("gzip", "zstd", "br"):
        lengths = set()
        for _ in range(30):
            r = call(mw, headers={"Accept-Encoding": coding})
            assert decode(coding, r.body) == body
            assert r.get("Content-Length") == str(len(r.body))
            lengths.add(len(r.body))
        assert len(lengths) > 5
    assert encodes == ["gzip", "gzip", "zstd", "zstd", "br", "br"]


# --- MD5 collisions ------------------------------------------------------------------------------

# Two different 128-byte blocks with one MD5 (Wang and Yu, 2005; the pair printed by
# many write-ups of their attack).  Appending the same bytes to both keeps the collision.
_COLLISION_A = bytes.fromhex(
    "d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f89"
    "55ad340609f4b30283e488832571415a085125e8f7cdc99fd91dbdf280373c5b"
    "d8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0"
    "e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70"
)
_COLLISION_B = bytes.fromhex(
    "d131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f89"
    "55ad340609f4b30283e4888325f1415a085125e8f7cdc99fd91dbd7280373c5b"
    "d8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0"
    "e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70"
)


def test_md5_collision_pair_each_body_gets_its_own_bytes(make_mw: Any) -> None:
    suffix = page(6, 5000)
    a, b = _COLLISION_A + suffix, _COLLISION_B + suffix
    assert a != b and hashlib.md5(a).digest() == hashlib.md5(b).digest()
    current = [a]
    mw = make_mw(wsgi_app(lambda: [current[0]], headers=(("Content-Type", "text/plain"),)), ON)
    for order in ([a, a, a, b, b, b, a, b], [b, a, b, a]):
        for body in order:
            current[0] = body
            for coding in ("gzip", "zstd", "br"):
                r = call(mw, headers={"Accept-Encoding": coding})
                assert r.get("Content-Encoding") == coding
                assert decode(coding, r.body) == body
    assert len(cache_of(mw)) == 3  # a's entries, one per coding; b never replaced them


# --- threads and fork ---------------------------------------------------------------------------


def test_threads_get_the_single_threaded_answers(make_mw: Any) -> None:
    bodies = [page(n, 8000 + 997 * n) for n in range(6)]
    accepts = [BROWSER, "gzip", "br", "zstd;q=0.5, gzip;q=0.4", "identity"]
    app_state = threading.local()

    def body() -> List[bytes]:
        return [bodies[app_state.n]]

    reference: Dict[Any, Any] = {}
    plain = make_mw(wsgi_app(body), OFF)
    for n in range(len(bodies)):
        app_state.n = n
        for accept in accepts:
            r = call(plain, headers={"Accept-Encoding": accept})
            reference[n, accept] = (r.status, r.headers, r.body)
    mw = make_mw(wsgi_app(body), {**ON, "COMPRESS_CACHE_SIZE": 40_000})  # small: eviction under load
    failures: List[str] = []

    def worker(seed: int) -> None:
        for i in range(150):
            n = (seed * 7 + i) % len(bodies)
            accept = accepts[(seed + i) % len(accepts)]
            app_state.n = n
            r = call(mw, headers={"Accept-Encoding": accept})
            if (r.status, r.headers, r.body) != reference[n, accept]:
                failures.append(f"thread {seed} body {n} {accept!r}")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert cache_of(mw).held_bytes <= 40_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_worker_keeps_the_cache_and_can_use_it(make_mw: Any, encodes: List[str]) -> None:
    body = page(7)
    mw = make_mw(make_app(body), ON)
    call(mw, headers={"Accept-Encoding": "zstd"})
    expected = call(mw, headers={"Accept-Encoding": "zstd"}).body
    cache = cache_of(mw)
    cache._lock.acquire()  # as if another thread held it at fork time
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only when everything holds
        ok = False
        try:
            before = len(encodes)
            r = call(mw, headers={"Accept-Encoding": "zstd"})
            ok = r.body == expected and len(encodes) == before
            r = call(mw, headers={"Accept-Encoding": "br"})
            ok = ok and decode("br", r.body) == body
        finally:
            os._exit(0 if ok else 1)
    cache._lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# --- the ISA-L engine ----------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_isal_bytes_are_isal_zlibs(make_mw: Any, level: int) -> None:
    body = page(8, 140_000)
    mw = make_mw(make_app(body), {**OFF, "GZIP_ENGINE": "isal", "ISAL_LEVEL": level})
    r = call(mw, headers={"Accept-Encoding": BROWSER})
    assert r.get("Content-Encoding") == "zstd"  # the engine is gzip's: other codings are unchanged
    r = call(mw, headers={"Accept-Encoding": "gzip"})
    assert r.get("Content-Encoding") == "gzip"
    assert r.body == isal_zlib.compress(body, level, 31)
    assert zlib.decompress(r.body, 31) == body


@pytest.mark.parametrize("level", [0, 1, 3])
def test_isal_streams_flush_each_chunk(make_mw: Any, level: int) -> None:
    chunks = [page(n, 3000) for n in range(6)]
    app = make_app(chunks=chunks, stream=True, content_type=HTML)
    server = Server()
    result = make_mw(app, {**ON, "GZIP_ENGINE": "isal", "ISAL_LEVEL": level})(environ(headers={"Accept-Encoding": "gzip"}), server.start_response)
    assert dict(server.calls[0][1])["Content-Encoding"] == "gzip"
    reference = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    decoder = zlib.decompressobj(31)
    iterator = iter(result)
    for chunk in chunks:
        wire = next(iterator)
        assert wire == reference.compress(chunk) + reference.flush(isal_zlib.Z_SYNC_FLUSH)
        assert decoder.decompress(wire) == chunk
    tail = list(iterator)
    assert tail == [reference.flush()]
    assert decoder.decompress(tail[0]) == b"" and decoder.eof
    result.close()


def test_isal_missing_names_the_key_and_the_extra(make_mw: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(_codecs, "_isal_zlib", None)
    with pytest.raises(ValueError, match=r"GZIP_ENGINE 'isal' needs the isal package: pip install 'asok_fast\[isal\]'"):
        make_mw(make_app(b"x"), {"GZIP": True, "GZIP_ENGINE": "isal"})


@pytest.mark.parametrize("config", [OFF, ON], ids=["cache-off", "cache-on"])
def test_gzip_through_zlib_stays_in_the_compiled_core(make_mw: Any, monkeypatch: Any, config: Dict[str, Any]) -> None:
    """Without padding, gzip through zlib never leaves the compiled core, cache on or off
    (the cache's find and store are all it calls); misses, admission and hits as for any coding."""
    body = page(9)
    through_encode: List[str] = []
    real = _codecs.Encoders.encode
    monkeypatch.setattr(
        _codecs.Encoders, "encode", lambda self, settings, coding, data: through_encode.append(coding) or real(self, settings, coding, data)
    )
    mw = make_mw(make_app(body), config)
    for _ in range(3):
        assert call(mw, headers={"Accept-Encoding": "gzip"}).body == gzip_reference(body)
    compiled = mw.implementation == "compiled"
    made = 0 if compiled else (3 if config is OFF else 2)
    assert len(through_encode) == made
    if config is ON:
        assert len(cache_of(mw)) == 1


def test_find_and_store_exact_behaviour() -> None:
    """BodyCache.find: None for a first appearance (nothing kept), a locator for the
    second (store() then keeps the bytes given), the bytes on later lookups; another
    variant or another body is another locator; a body of the same MD5 but other bytes
    is never served the entry's bytes."""
    cache = BodyCache(1 << 20)
    body, data = page(11, 2000), b"compressed"
    md5 = hashlib.md5(body).hexdigest()
    assert cache.find("zlib-x:6", md5, body) is None
    assert (len(cache), cache.held_bytes, cache.remembered) == (0, 0, 1)
    locator = cache.find("zlib-x:6", md5, body)
    assert isinstance(locator, str)
    assert len(cache) == 0  # find never stores
    cache.store(locator, body, data)
    assert (len(cache), cache.held_bytes, cache.remembered) == (1, ENTRY_OVERHEAD + len(data) + len(body), 0)
    assert cache.find("zlib-x:6", md5, body) == data
    assert cache.find("zlib-x:6", md5, body) == data
    # Another variant of the same body: its own admission.
    assert cache.find("zlib-x:9", md5, body) is None
    assert isinstance(cache.find("zlib-x:9", md5, body), str)
    # A body claiming the same MD5: a miss, and nothing to store (the entry stays).
    other = page(12, 2000)
    assert cache.find("zlib-x:6", md5, other) is None
    assert cache.find("zlib-x:6", md5, other) is None
    assert cache.find("zlib-x:6", md5, body) == data
    # A large body is confirmed by its SHA-256.
    big = page(13, 10_000)
    big_md5 = hashlib.md5(big).hexdigest()
    assert cache.find("zlib-x:6", big_md5, big) is None
    cache.store(cache.find("zlib-x:6", big_md5, big), big, b"big")
    assert cache.find("zlib-x:6", big_md5, big) == b"big"
    assert cache.find("zlib-x:6", big_md5, big[:-1] + b"!") is None
    cache.clear()
    assert (len(cache), cache.held_bytes, cache.remembered) == (0, 0, 0)
    assert cache.find("zlib-x:6", md5, body) is None


@pytest.mark.parametrize("accept", ["gzip", "zstd"])
def test_one_off_bodies_leave_no_entry_and_stored_bytes_are_the_librarys(make_mw: Any, encodes: List[str], accept: str) -> None:
    current: List[bytes] = [b""]
    mw = make_mw(wsgi_app(lambda: [current[0]]), ON)
    cache = cache_of(mw)
    for n in range(50):
        current[0] = page(100 + n, 3000)
        r = call(mw, headers={"Accept-Encoding": accept})
        assert decode(accept, r.body) == current[0]
    assert (len(encodes), len(cache), cache.held_bytes) == (50, 0, 0)
    assert 0 < cache.remembered <= 50  # one slot each, unless two bodies' hashes share one
    current[0] = page(149, 3000)  # its second appearance: stored
    second = call(mw, headers={"Accept-Encoding": accept})
    reference = gzip_reference(current[0]) if accept == "gzip" else zstd_reference(current[0], 3)
    assert second.body == reference
    assert len(cache) == 1 and cache.held_bytes == ENTRY_OVERHEAD + len(reference) + len(current[0])
    (entry,) = cache._entries.values()
    assert entry[1] == reference
    assert call(mw, headers={"Accept-Encoding": accept}).body == reference
    assert len(encodes) == 51


def test_streams_are_never_cached(make_mw: Any, encodes: List[str]) -> None:
    chunks = [page(10, 5000)] * 3
    mw = make_mw(make_app(chunks=chunks, stream=True), ON)
    for _ in range(3):
        server = Server()
        body = consume(mw(environ(headers={"Accept-Encoding": "zstd"}), server.start_response), server)
        assert decode("zstd", b"".join(body)) == b"".join(chunks)
    assert encodes == []
    assert len(cache_of(mw)) == 0
