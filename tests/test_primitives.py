"""The byte primitives of both cores against their references.

``md5_hex`` must equal hashlib, ``gzip_compress`` and ``GzipStream`` the zlib call
sequences SPEC gives (``compressobj(level, DEFLATED, 31)``, a sync flush per chunk), byte
for byte, on both cores (conftest's ``core``), also from many threads at once and after
fork.  What only the compiled core has (its pool of deflate states, the zlib it links) is
tested on ``compiled_core``.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import os
import random
import threading
import warnings
import zlib
from typing import Any, List, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgi_helpers import gzip_reference as ref_gzip, sync_flush_reference as ref_stream

LEVELS = range(1, 10)


def run_stream(core: Any, chunks: Sequence[bytes], level: int) -> List[bytes]:
    s = core.GzipStream(level)
    out = [s.compress(ch) for ch in chunks]
    out.append(s.finish())
    return out


def text_body(size: int, seed: int = 1) -> bytes:
    """Compressible, HTML-like bytes of exactly size bytes."""
    rng = random.Random(seed)
    words = [b"<div>", b"</div>", b"asok", b"response", b"class=\"row\"", b"etag", b"gzip",
             b"\n", b"the", b"quick", b"brown", b"fox", b"0123456789", b"caf\xc3\xa9"]
    parts, n = [], 0
    while n < size:
        w = rng.choice(words) + b" "
        parts.append(w)
        n += len(w)
    return b"".join(parts)[:size]


def split(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    points = sorted(min(max(c, 0), len(data)) for c in cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


# --- MD5 ------------------------------------------------------------------------

RFC1321_SUITE = [  # RFC 1321, appendix A.5
    (b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (b"a", "0cc175b9c0f1b6a831c399e269772661"),
    (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
    (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
    (b"1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
]


@pytest.mark.parametrize(("message", "digest"), RFC1321_SUITE)
def test_md5_rfc1321_suite(message: bytes, digest: str, core: Any) -> None:
    assert core.md5_hex(message) == digest


def test_md5_every_length_up_to_4200(core: Any) -> None:
    # Covers every padding case (length mod 64), one and two final blocks, and
    # both sides of the GIL-release threshold.
    rng = random.Random(1321)
    for n in range(4201):
        data = rng.randbytes(n)
        assert core.md5_hex(data) == hashlib.md5(data).hexdigest(), n


@pytest.mark.parametrize("size", [1 << 20, 10 << 20])
def test_md5_large_unaligned(size: int, core: Any) -> None:
    big = random.Random(size).randbytes(size + 8)
    for offset in range(8):
        view = memoryview(big)[offset : offset + size]
        expected = hashlib.md5(view).hexdigest()
        assert core.md5_hex(view) == expected, offset  # the pointer itself is unaligned
        assert core.md5_hex(bytes(view)) == expected, offset


def test_md5_accepts_buffers_and_returns_str(core: Any) -> None:
    data = b"asok_fast etag"
    expected = hashlib.md5(data).hexdigest()
    for obj in (data, bytearray(data), memoryview(data)):
        result = core.md5_hex(obj)
        assert type(result) is str and result == expected


@pytest.mark.parametrize("bad", ["text", None, 42, [1, 2]])
def test_md5_rejects_non_buffers(bad: object, core: Any) -> None:
    with pytest.raises(TypeError):
        core.md5_hex(bad)


def test_md5_str_message_is_hashlibs(core: Any) -> None:
    with pytest.raises(TypeError, match="Strings must be encoded before hashing"):
        core.md5_hex("text")


def test_md5_rejects_non_contiguous(core: Any) -> None:
    with pytest.raises(BufferError):
        core.md5_hex(memoryview(b"abcdef")[::2])


def test_md5_threads_agree(core: Any) -> None:
    rng = random.Random(5)
    bodies = [rng.randbytes(n) for n in (0, 100, 2047, 2048, 5000, 300_000, 2_000_000)]
    expected = [hashlib.md5(b).hexdigest() for b in bodies]
    errors: List[str] = []

    def work() -> None:
        for _ in range(5):
            got = [core.md5_hex(b) for b in bodies]
            if got != expected:
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --- gzip_compress ------------------------------------------------------------------

# Around the 64 KiB start of the output buffer (large bodies start at a quarter
# of their size and grow when they do not compress): 65_000, 70_000, 262_145.
GZIP_SIZES = [0, 1, 499, 500, 501, 1400, 65_000, 70_000, 140_000, 262_145, 5_000_000]


@pytest.fixture(scope="module")
def bodies() -> dict:
    rng = random.Random(1952)
    out = {}
    for size in GZIP_SIZES:
        out[("random", size)] = rng.randbytes(size)
        out[("text", size)] = text_body(size, seed=size)
    return out


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", ["random", "text"])
@pytest.mark.parametrize("size", GZIP_SIZES)
def test_gzip_compress_matches_zlib(bodies: dict, kind: str, size: int, level: int, core: Any) -> None:
    data = bodies[(kind, size)]
    got = core.gzip_compress(data, level)
    assert got == ref_gzip(data, level)
    assert gzip.decompress(got) == data


def test_gzip_compress_header_is_zlib_framing(core: Any) -> None:
    out = core.gzip_compress(b"x" * 1000, 6)
    assert out[:4] == b"\x1f\x8b\x08\x00"  # magic, deflate, no flags
    assert out[4:8] == b"\x00\x00\x00\x00"  # mtime 0


def test_gzip_compress_accepts_buffers(core: Any) -> None:
    data = text_body(10_000)
    for obj in (bytearray(data), memoryview(data), memoryview(b"\0" + data)[1:]):
        assert core.gzip_compress(obj, 6) == ref_gzip(data, 6)


def test_gzip_compress_default_level_is_6(core: Any) -> None:
    data = text_body(20_000)
    assert core.gzip_compress(data, -1) == ref_gzip(data, 6)


@pytest.mark.parametrize("level", [0, 10, -2, 100])
def test_gzip_levels_outside_1_to_9_are_refused(level: int, core: Any) -> None:
    with pytest.raises(ValueError):
        core.gzip_compress(b"abc", level)
    with pytest.raises(ValueError):
        core.GzipStream(level)


def test_gzip_compress_rejects_str(core: Any) -> None:
    with pytest.raises(TypeError):
        core.gzip_compress("text", 6)


@pytest.mark.parametrize("level", [6.0, "6", None])
def test_level_must_be_an_integer(level: object, core: Any) -> None:
    # As zlib.compressobj reads it: __index__, so no float.
    with pytest.raises(TypeError):
        zlib.compressobj(level, zlib.DEFLATED, 31)
    with pytest.raises(TypeError):
        core.gzip_compress(b"abc", level)
    with pytest.raises(TypeError):
        core.GzipStream(level)


def test_level_accepts_index_types(core: Any) -> None:
    data = text_body(3000)
    assert core.gzip_compress(data, True) == ref_gzip(data, 1)
    assert run_stream(core, [data], True) == ref_stream([data], 1)


# --- GzipStream -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 60_000),
    random_share=st.floats(0, 1),
    cuts=st.lists(st.integers(0, 60_000), max_size=12),
    level=st.integers(1, 9),
)
def test_stream_matches_zlib_for_any_split(seed: int, size: int, random_share: float, cuts: List[int], level: int, core: Any) -> None:
    rng = random.Random(seed)
    n_random = int(size * random_share)
    data = rng.randbytes(n_random) + text_body(size - n_random, seed)
    chunks = split(data, cuts)  # duplicate cut points give empty chunks
    out = run_stream(core, chunks, level)
    assert out == ref_stream(chunks, level)
    assert gzip.decompress(b"".join(out)) == data


@pytest.mark.parametrize("level", LEVELS)
def test_stream_large_chunks(level: int, core: Any) -> None:
    # Chunks above the GIL-release threshold and beyond the output estimate.
    rng = random.Random(level)
    data = text_body(400_000, level) + rng.randbytes(300_000)
    chunks = split(data, [rng.randrange(len(data)) for _ in range(6)])
    assert run_stream(core, chunks, level) == ref_stream(chunks, level)


def test_stream_empty_chunks_give_nothing(core: Any) -> None:
    chunks = [b"", b"hello " * 200, b"", b"", b"world " * 300, b""]
    out = run_stream(core, chunks, 6)
    assert out == ref_stream(chunks, 6)
    assert out[0] == out[2] == out[3] == out[5] == b""


def test_stream_without_chunks(core: Any) -> None:
    s = core.GzipStream(6)
    tail = s.finish()
    assert tail == ref_stream([], 6)[0]
    assert gzip.decompress(tail) == b""


def test_stream_chunk_is_decodable_at_once(core: Any) -> None:
    # Each compress() ends with a sync flush: the client can decode it now.
    s = core.GzipStream(6)
    first = s.compress(b"first chunk " * 50)
    d = zlib.decompressobj(31)
    assert d.decompress(first) == b"first chunk " * 50
    s.close()


def test_stream_accepts_buffers(core: Any) -> None:
    data = text_body(5000)
    for obj in (bytearray(data), memoryview(data)):
        s = core.GzipStream(6)
        assert [s.compress(obj), s.finish()] == ref_stream([data], 6)


def test_stream_finish_and_close_lifecycle(core: Any) -> None:
    s = core.GzipStream(6)
    s.compress(b"abc" * 100)
    s.finish()
    with pytest.raises(ValueError):
        s.compress(b"more")
    with pytest.raises(ValueError):
        s.compress(b"")  # closed is checked before emptiness
    with pytest.raises(ValueError):
        s.finish()
    s.close()  # after finish: a no-op
    s.close()

    s = core.GzipStream(6)
    s.compress(b"abc" * 100)
    s.close()
    s.close()  # idempotent
    with pytest.raises(ValueError):
        s.compress(b"more")
    with pytest.raises(ValueError):
        s.compress("not bytes")  # closed wins over the type error, as in _core_py
    with pytest.raises(ValueError):
        s.finish()


@pytest.mark.parametrize("empty", [b"", bytearray(), memoryview(b""), "", None])
def test_stream_falsy_chunk_gives_nothing(empty: object, core: Any) -> None:
    # _core_py returns b"" for any falsy chunk before looking at its type.
    s = core.GzipStream(6)
    assert s.compress(empty) == b""
    assert [s.compress(b"x" * 600), s.finish()] == ref_stream([b"x" * 600], 6)


def test_stream_rejects_str_chunk(core: Any) -> None:
    s = core.GzipStream(6)
    with pytest.raises(TypeError):
        s.compress("text")
    # the stream is still usable
    assert [s.compress(b"x" * 600), s.finish()] == ref_stream([b"x" * 600], 6)


def test_stream_dealloc_without_close(core: Any) -> None:
    for _ in range(50):
        s = core.GzipStream(5)
        s.compress(b"abandoned " * 100)
        del s  # __dealloc__ ends the state
    gc.collect()
    assert run_stream(core, [b"after " * 100], 5) == ref_stream([b"after " * 100], 5)


def test_two_streams_interleaved(core: Any) -> None:
    a_chunks = split(text_body(50_000, 1), [5000, 17_000, 17_001, 40_000])
    b_chunks = split(random.Random(2).randbytes(30_000) + text_body(20_000, 2), [1, 9000, 33_000, 45_000])
    a, b = core.GzipStream(6), core.GzipStream(9)
    out_a, out_b = [], []
    for ca, cb in zip(a_chunks, b_chunks):
        out_a.append(a.compress(ca))
        out_b.append(b.compress(cb))
    out_b.append(b.finish())
    out_a.append(a.finish())
    assert out_a == ref_stream(a_chunks, 6)
    assert out_b == ref_stream(b_chunks, 9)


def test_pool_reuse_many_cycles_gives_identical_bytes(compiled_core: Any) -> None:
    data = text_body(30_000, 7)
    chunks = split(data, [3000, 12_000, 29_000])
    expected_stream = ref_stream(chunks, 6)
    expected_one = ref_gzip(data, 6)
    for i in range(300):
        if i % 3 == 0:
            # abandon a stream half-way: its state goes back as it is, and
            # the next take() resets it
            s = compiled_core.GzipStream(6)
            s.compress(chunks[0])
            s.close()
        assert run_stream(compiled_core, chunks, 6) == expected_stream
        assert compiled_core.gzip_compress(data, 6) == expected_one


def test_a_state_abandoned_mid_stream_is_reset_when_taken(compiled_core: Any) -> None:
    """The pool keeps states as their owners left them and take() resets them:
    a stream closed half-way (gzip header and one flushed block out, never
    finished) is handed out again, and compresses as a fresh stream would."""
    level = 2
    held = [compiled_core.GzipStream(level) for _ in range(compiled_core._pool_idle()[level])]
    del held  # deallocated unfinished: their states are freed, not pooled
    assert compiled_core._pool_idle()[level] == 0
    s = compiled_core.GzipStream(level)
    assert s.compress(random.Random(5).randbytes(1000))  # mid-stream, never finished
    s.close()
    assert compiled_core._pool_idle()[level] == 1
    small = text_body(1400, 3)
    assert compiled_core.gzip_compress(small, level) == ref_gzip(small, level)
    assert compiled_core._pool_idle()[level] == 1  # the same state, taken and given back
    assert run_stream(compiled_core, [small[:700], small[700:]], level) == ref_stream([small[:700], small[700:]], level)


def test_pool_is_bounded_and_per_level(compiled_core: Any) -> None:
    many = [compiled_core.GzipStream(3) for _ in range(compiled_core._POOL_MAX + 5)]
    for s in many:
        s.compress(b"data " * 100)
        s.finish()
    idle = compiled_core._pool_idle()
    assert idle[3] == compiled_core._POOL_MAX
    assert all(n <= compiled_core._POOL_MAX for n in idle)
    # a level-3 state is never handed out for another level
    data = text_body(20_000)
    for level in LEVELS:
        assert compiled_core.gzip_compress(data, level) == ref_gzip(data, level)


def test_threads_compress_concurrently(core: Any) -> None:
    rng = random.Random(99)
    jobs = []
    for i in range(12):
        level = 1 + i % 9
        data = text_body(rng.choice([600, 1400, 3000, 80_000, 400_000]), i) + rng.randbytes(rng.choice([0, 100, 50_000]))
        chunks = split(data, [rng.randrange(len(data) + 1) for _ in range(4)])
        jobs.append((data, chunks, level, ref_gzip(data, level), ref_stream(chunks, level)))
    barrier = threading.Barrier(8)
    failures: List[str] = []

    def work(k: int) -> None:
        barrier.wait()
        for r in range(6):
            for j, (data, chunks, level, one, stream) in enumerate(jobs):
                if (j + k + r) % 2:
                    ok = core.gzip_compress(data, level) == one
                else:
                    ok = run_stream(core, chunks, level) == stream
                if not ok:
                    failures.append(f"thread {k} job {j}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_close_from_another_thread_while_compressing(compiled_core: Any) -> None:
    # compress() runs with the GIL released on a big chunk; a close() from
    # elsewhere meanwhile must neither crash nor free the state under it.
    data = random.Random(3).randbytes(4_000_000)
    expected = ref_stream([data], 1)[0]
    for _ in range(5):
        s = compiled_core.GzipStream(1)
        result: List[object] = []

        def work() -> None:
            try:
                result.append(s.compress(data))
            except ValueError as exc:  # close() won the race
                result.append(exc)

        t = threading.Thread(target=work)
        t.start()
        s.close()
        t.join()
        assert result[0] == expected or isinstance(result[0], ValueError)
        with pytest.raises(ValueError):
            s.compress(b"more")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_empty_pool_and_correct_output(core: Any) -> None:
    data = text_body(50_000, 11)
    chunks = split(data, [1000, 20_000])
    pooled = core.__name__ == "asok_fast._core_c"  # the compiled core keeps deflate states
    for _ in range(3):  # fill the parent's pool
        core.gzip_compress(data, 6)
        run_stream(core, chunks, 4)
    if pooled:
        assert core._pool_idle()[6] >= 1
    open_stream = core.GzipStream(6)  # owned across the fork
    first = open_stream.compress(chunks[0])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # child: report through the exit code only
        code = 1
        try:
            ok = not pooled or all(n == 0 for n in core._pool_idle())
            ok = ok and core.gzip_compress(data, 6) == ref_gzip(data, 6)
            ok = ok and run_stream(core, chunks, 4) == ref_stream(chunks, 4)
            rest = [open_stream.compress(c) for c in chunks[1:]] + [open_stream.finish()]
            ok = ok and [first, *rest] == ref_stream(chunks, 6)
            ok = ok and core.md5_hex(data) == hashlib.md5(data).hexdigest()
            code = 0 if ok else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # the parent is unaffected
    rest = [open_stream.compress(c) for c in chunks[1:]] + [open_stream.finish()]
    assert [first, *rest] == ref_stream(chunks, 6)
    assert core.gzip_compress(data, 6) == ref_gzip(data, 6)


# --- zlib version -----------------------------------------------------------------------


def test_zlib_version_is_the_runtime_one(compiled_core: Any) -> None:
    version = compiled_core.zlib_version()
    assert isinstance(version, str) and version[0].isdigit()
    runtime = getattr(zlib, "ZLIB_RUNTIME_VERSION", None)
    if runtime is None:
        pytest.skip("zlib.ZLIB_RUNTIME_VERSION is not available")
    # Same libz as the zlib module, so the gzip bytes can match the twin's.
    assert version == runtime


def test_module_exports(compiled_core: Any) -> None:
    for name in ("md5_hex", "gzip_compress", "GzipStream"):
        assert name in compiled_core.__all__
    assert compiled_core.GzipStream.__module__ == "asok_fast._core_c"
    assert compiled_core.__name__ == "asok_fast._core_c"
