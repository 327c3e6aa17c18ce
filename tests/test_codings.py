"""zstd, br and gzip, negotiated per request (SPEC "Compression: zstd, br, gzip").

Every test runs on both cores (the ``core``/``make_mw`` fixtures).  Bytes are
compared with the libraries called directly (tests/wsgi_helpers.py) and decoded
by their own decoders; zstd always through a decoder that refuses a window
over 8 MiB, as Chrome does (RFC 9659).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from typing import Any, Dict, Optional

import brotli
import pytest

from asok_fast import _codecs
from wsgi_helpers import (
    HTML,
    call,
    consume,
    decode,
    environ,
    brotli_reference,
    gzip_reference,
    make_app,
    zstd,
    zstd_decoder,
    zstd_reference,
    Server,
    Tracked,
    wsgi_app,
)

ON = {"GZIP": True}
BROWSER = "gzip, deflate, br, zstd"
JSON_BODY = json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"], "price": i * 1.5} for i in range(30)]).encode()
DIGEST = hashlib.md5(JSON_BODY).hexdigest()
CODINGS = ("zstd", "br", "gzip")


def json_app(body: bytes = JSON_BODY, **kwargs: Any) -> Any:
    return make_app(body, content_type="application/json", **kwargs)


# --- negotiation: RFC 9110 12.5.3 --------------------------------------------------------------

# (Accept-Encoding, offered codings, the coding sent)
NEGOTIATION = [
    (BROWSER, CODINGS, "zstd"),
    (BROWSER, ("br", "gzip"), "br"),
    (BROWSER, ("gzip", "zstd"), "gzip"),  # all at q=1: the server's order decides
    ("gzip, deflate, br", CODINGS, "br"),
    ("gzip, deflate", CODINGS, "gzip"),
    ("deflate", CODINGS, None),
    # weights
    ("br;q=1.0, gzip;q=0.8, *;q=0.1", CODINGS, "br"),
    ("gzip;q=0.9, br;q=0.8, zstd;q=0.7", CODINGS, "gzip"),
    ("zstd;q=0.5, br;q=0.5, gzip;q=0.5", CODINGS, "zstd"),
    ("zstd;q=0.5, br;q=0.5, gzip;q=0.5", ("gzip", "br", "zstd"), "gzip"),
    ("br;q=0.001", CODINGS, "br"),
    ("br;q=0, br;q=0.7, zstd;q=0.6", CODINGS, "br"),  # a coding listed twice: its best weight
    # q=0 on the best coding refuses it
    ("zstd;q=0, br, gzip", CODINGS, "br"),
    ("zstd;q=0, br;q=0, gzip", CODINGS, "gzip"),
    ("zstd;q=0, br;q=0, gzip;q=0", CODINGS, None),
    # "*": the weight of every coding not listed
    ("*", CODINGS, "zstd"),
    ("*", ("gzip",), "gzip"),
    ("*;q=0.5, zstd;q=0", CODINGS, "br"),
    ("*;q=0.2, gzip;q=0.3", CODINGS, "gzip"),
    ("*;q=0.4, gzip;q=0.3", CODINGS, "zstd"),
    ("*;q=0", CODINGS, None),
    ("*;q=0, br", CODINGS, "br"),
    # identity listed above the best coding: none
    ("identity;q=1, zstd;q=0.9", CODINGS, None),
    ("identity;q=0.5, br", CODINGS, "br"),
    ("identity, gzip", CODINGS, "gzip"),  # equal weight: compressed
    ("identity", CODINGS, None),
    ("identity;q=0", CODINGS, None),
    # tokens are case-insensitive; x-gzip is gzip (and we send "gzip")
    ("ZSTD, BR", ("br", "zstd"), "br"),
    ("Zstd;Q=0.5, GZIP;q=0.4", CODINGS, "zstd"),
    ("x-gzip", CODINGS, "gzip"),
    ("X-GZIP;q=0.9, br;q=0.8", CODINGS, "gzip"),
    ("x-gzip;q=0, gzip", CODINGS, "gzip"),
    # junk is ignored, element by element
    ("zstd;q=2, br;level=3, gzip", CODINGS, "gzip"),
    ("zstd;q=junk, br;q=0.5", CODINGS, "br"),
    ("zst d, b r, gzip", CODINGS, "gzip"),
    ("x-br, x-zstd, zstdx", CODINGS, None),
    (",,, ; , zstd", CODINGS, "zstd"),
    ("br\u00e9, gzip", CODINGS, None),  # non-ASCII anywhere: absent
    ("", CODINGS, None),
    (None, CODINGS, None),
]


@pytest.mark.parametrize("accept, offered, expected", NEGOTIATION, ids=[f"{a!r}-{'+'.join(o)}" for a, o, _ in NEGOTIATION])
def test_negotiation_table(core: Any, accept: Optional[str], offered: tuple, expected: Optional[str]) -> None:
    assert core.negotiate(accept, offered) == expected


@pytest.mark.parametrize("accept, offered, expected", NEGOTIATION, ids=[f"{a!r}-{'+'.join(o)}" for a, o, _ in NEGOTIATION])
def test_negotiation_through_the_middleware(make_mw: Any, accept: Optional[str], offered: tuple, expected: Optional[str]) -> None:
    mw = make_mw(json_app(), {"GZIP": True, "COMPRESS_CODINGS": list(offered)})
    r = call(mw, headers={"Accept-Encoding": accept} if accept is not None else {})
    assert r.status == "200 OK"
    assert r.get_all("Content-Encoding") == ([expected] if expected else [])
    assert decode(expected, r.body) == JSON_BODY
    assert r.get("Vary") == "Accept-Encoding"  # compressible and large: it varies either way
    assert r.get("ETag") == (f'"{DIGEST}-{expected}"' if expected else f'"{DIGEST}"')


# --- bytes ---------------------------------------------------------------------------------------

PAGE = b"".join(b"<tr><td>%d</td><td>row %d of the report</td><td>%s</td></tr>\n" % (i, i, b"x" * (i % 17)) for i in range(3000))


@pytest.mark.parametrize("level", [1, 3, 9, 19])
@pytest.mark.parametrize("body", [JSON_BODY, PAGE], ids=["json", "page"])
def test_zstd_bytes_are_the_librarys(make_mw: Any, level: int, body: bytes) -> None:
    r = call(make_mw(json_app(body), {**ON, "ZSTD_LEVEL": level}), headers={"Accept-Encoding": "zstd"})
    assert r.get("Content-Encoding") == "zstd"
    assert r.body == zstd_reference(body, level)
    assert decode("zstd", r.body) == body
    assert zstd.get_frame_info(r.body).decompressed_size == len(body)  # buffered: the size is in the frame
    assert r.get("Content-Length") == str(len(r.body))


@pytest.mark.parametrize("quality", [0, 4, 11])
@pytest.mark.parametrize("body", [JSON_BODY, PAGE], ids=["json", "page"])
def test_brotli_bytes_are_the_librarys(make_mw: Any, quality: int, body: bytes) -> None:
    r = call(make_mw(json_app(body), {**ON, "BROTLI_LEVEL": quality}), headers={"Accept-Encoding": "br"})
    assert r.get("Content-Encoding") == "br"
    assert r.body == brotli_reference(body, quality)
    assert brotli.decompress(r.body) == body
    assert r.get("Content-Length") == str(len(r.body))


@pytest.mark.parametrize("coding", CODINGS)
def test_core_compress_is_the_librarys(core: Any, coding: str) -> None:
    from asok_fast._config import build_settings

    settings = build_settings({"GZIP_LEVEL": 5, "ZSTD_LEVEL": 7, "BROTLI_LEVEL": 6})
    reference = {"gzip": gzip_reference(PAGE, 5), "zstd": zstd_reference(PAGE, 7), "br": brotli_reference(PAGE, 6)}
    assert core.compress(settings, coding, PAGE) == reference[coding]
    assert core.compress(settings, coding, memoryview(PAGE)) == reference[coding]


def test_levels_changed_at_run_time(make_mw: Any) -> None:
    mw = make_mw(json_app(PAGE), ON)
    assert call(mw, headers={"Accept-Encoding": "zstd"}).body == zstd_reference(PAGE, 3)
    mw.config["ZSTD_LEVEL"] = 12
    assert call(mw, headers={"Accept-Encoding": "zstd"}).body == zstd_reference(PAGE, 12)
    assert call(mw, headers={"Accept-Encoding": "br"}).body == brotli_reference(PAGE, 4)
    mw.config["BROTLI_LEVEL"] = 9
    assert call(mw, headers={"Accept-Encoding": "br"}).body == brotli_reference(PAGE, 9)
    mw.config["COMPRESS_CODINGS"] = ["gzip"]
    r = call(mw, headers={"Accept-Encoding": BROWSER})
    assert (r.get("Content-Encoding"), r.body) == ("gzip", gzip_reference(PAGE))


def test_the_same_body_gives_the_same_bytes(make_mw: Any) -> None:
    """Pooled compressors give what a fresh one gives, request after request."""
    mw = make_mw(json_app(PAGE), ON)
    for coding in CODINGS * 3:
        r = call(mw, headers={"Accept-Encoding": coding})
        assert r.body == {"zstd": zstd_reference, "br": brotli_reference, "gzip": gzip_reference}[coding](PAGE)


# --- ETag, 304, Vary, HEAD ----------------------------------------------------------------------

TAG_FORMS = ['"{d}"', 'W/"{d}"'] + [f'"{{d}}-{c}"' for c in CODINGS] + [f'W/"{{d}}-{c}"' for c in CODINGS]


@pytest.mark.parametrize("accept", [BROWSER, "br", "gzip", "identity", None])
@pytest.mark.parametrize("form", TAG_FORMS)
def test_every_tag_of_the_content_revalidates_every_representation(make_mw: Any, accept: Optional[str], form: str) -> None:
    mw = make_mw(json_app(), {**ON, "CORS_ORIGINS": ["https://a.example"]})
    request: Dict[str, str] = {"Origin": "https://a.example"}
    if accept is not None:
        request["Accept-Encoding"] = accept
    full = call(mw, headers=request)
    coding = full.get("Content-Encoding")
    assert full.get("ETag") == (f'"{DIGEST}-{coding}"' if coding else f'"{DIGEST}"')
    r = call(mw, headers={**request, "If-None-Match": form.format(d=DIGEST)})
    assert r.status == "304 Not Modified"
    assert r.body == b""
    kept = [(n, v) for n, v in full.headers if n.lower() not in ("content-type", "content-length", "content-encoding")]
    assert r.headers == kept  # the 200's ETag, Vary and CORS headers, exactly


@pytest.mark.parametrize("form", ['"{d}-deflate"', '"{d}-ZSTD"', '"{d}-gzip-br"', '"{d}zstd"'])
def test_tags_that_are_not_ours_do_not_match(make_mw: Any, form: str) -> None:
    r = call(make_mw(json_app(), ON), headers={"Accept-Encoding": BROWSER, "If-None-Match": form.format(d=DIGEST)})
    assert r.status == "200 OK"
    assert r.get("Content-Encoding") == "zstd"


@pytest.mark.parametrize("coding", CODINGS)
def test_app_etag_weakened_in_every_coding(make_mw: Any, coding: str) -> None:
    r = call(make_mw(json_app(headers=[("ETag", '"v7"')]), ON), headers={"Accept-Encoding": coding})
    assert r.get("Content-Encoding") == coding
    assert r.get("ETag") == 'W/"v7"'


@pytest.mark.parametrize("coding", CODINGS)
def test_vary_merged_with_the_apps(make_mw: Any, coding: str) -> None:
    r = call(make_mw(json_app(headers=[("Vary", "Cookie")]), ON), headers={"Accept-Encoding": coding})
    assert r.get_all("Vary") == ["Cookie, Accept-Encoding"]


@pytest.mark.parametrize("coding", CODINGS)
def test_head_has_the_gets_headers_in_that_coding(make_mw: Any, coding: str) -> None:
    mw = make_mw(json_app(), ON)
    get = call(mw, headers={"Accept-Encoding": coding})
    head = call(mw, "HEAD", headers={"Accept-Encoding": coding})
    assert head.status == "200 OK"
    assert head.headers == get.headers
    assert head.get("Content-Encoding") == coding
    assert head.body == b""


# --- streams ---------------------------------------------------------------------------------------

STREAM = [b"<p>chunk %d: %s</p>\n" % (i, b"lorem ipsum dolor " * (i + 3)) for i in range(12)]


class Decoder:
    """The client side: a decoder fed chunk by chunk, as a browser is."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.inner: Any = {
            "gzip": lambda: zlib.decompressobj(31),
            "br": brotli.Decompressor,
            "zstd": zstd_decoder,
        }[coding]()

    def feed(self, data: bytes) -> bytes:
        if self.coding == "br":
            return self.inner.process(data)  # type: ignore[no-any-return]
        return self.inner.decompress(data)  # type: ignore[no-any-return]


@pytest.mark.parametrize("coding", CODINGS)
def test_stream_each_chunk_decodes_as_it_arrives(make_mw: Any, coding: str) -> None:
    app = make_app(chunks=STREAM, stream=True, content_type=HTML)
    server = Server()
    result = make_mw(app, ON)(environ(headers={"Accept-Encoding": BROWSER if coding == "zstd" else coding}), server.start_response)
    status, headers = server.calls[0][:2]
    assert status == "200 OK"
    assert dict(headers)["Content-Encoding"] == coding
    assert "Content-Length" not in dict(headers) and "ETag" not in dict(headers)
    decoder = Decoder(coding)
    out = []
    iterator = iter(result)
    for chunk in STREAM:
        wire = next(iterator)
        # Flushed: everything the app gave so far comes out of this chunk alone.
        assert decoder.feed(wire) == chunk
        out.append(wire)
    tail = next(iterator)
    assert decoder.feed(tail) == b""
    with pytest.raises(StopIteration):
        next(iterator)
    result.close()
    assert decode(coding, b"".join(out) + tail) == b"".join(STREAM)


@pytest.mark.parametrize("coding", CODINGS)
def test_stream_closed_midway_releases_the_compressor(make_mw: Any, coding: str) -> None:
    app = wsgi_app(lambda: Tracked(STREAM))
    server = Server()
    result = make_mw(app, ON)(environ(headers={"Accept-Encoding": coding}), server.start_response)
    first = next(iter(result))
    assert Decoder(coding).feed(first) == STREAM[0]
    result.close()
    assert result._encoder is None
    assert app.bodies[0].closed == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("accept", [BROWSER, "br", "gzip"])
def test_event_stream_untouched(make_mw: Any, accept: str) -> None:
    events = [b"data: %d\n\n" % i * 60 for i in range(5)]
    app = make_app(chunks=events, stream=True, content_type="text/event-stream")
    server = Server()
    result = make_mw(app, ON)(environ(headers={"Accept-Encoding": accept}), server.start_response)
    assert consume(result, server) == events
    assert "Content-Encoding" not in dict(server.calls[0][1])


# --- RFC 9659: windows a client can decode -------------------------------------------------------


def _frame_window(frame: bytes) -> int:
    """The window a zstd frame asks of its decoder (RFC 8878 3.1.1.1)."""
    assert frame[:4] == (0xFD2FB528).to_bytes(4, "little")
    descriptor = frame[4]
    if descriptor & 0x20:  # single segment: the window is the content size
        size_bytes = {0: 1, 1: 2, 2: 4, 3: 8}[descriptor >> 6]
        size = int.from_bytes(frame[5 : 5 + size_bytes], "little")
        return size + 256 if size_bytes == 2 else size
    window = frame[5]
    exponent, mantissa = window >> 3, window & 7
    base = 1 << (10 + exponent)
    return base + (base // 8) * mantissa


@pytest.mark.parametrize("level", range(1, 20))
def test_every_level_streams_within_an_8_mib_window(core: Any, level: int) -> None:
    from asok_fast._config import build_settings

    stream = core.open_stream(build_settings({"ZSTD_LEVEL": level}), "zstd")
    frame = stream.compress(b"a first chunk of a stream of unknown length") + stream.finish()
    assert _frame_window(frame) <= 8 << 20


BIG = b"".join(b"%08d %s\n" % (i, hashlib.sha256(b"%d" % (i // 4)).hexdigest().encode()) for i in range(12 * 1024 * 1024 // 74))


@pytest.mark.parametrize("level", [3, 19])
def test_a_12_mib_body_decodes_within_an_8_mib_window(make_mw: Any, level: int) -> None:
    assert len(BIG) > 12_000_000
    r = call(make_mw(make_app(BIG, content_type="text/plain"), {**ON, "ZSTD_LEVEL": level}), headers={"Accept-Encoding": "zstd"})
    assert r.get("Content-Encoding") == "zstd"
    assert _frame_window(r.body) <= 8 << 20  # not one segment the size of the body
    assert decode("zstd", r.body) == BIG  # through a decoder with window_log_max 23


def test_a_long_stream_at_level_19_decodes_within_an_8_mib_window(make_mw: Any) -> None:
    pieces = [BIG[i : i + (1 << 20)] for i in range(0, len(BIG), 1 << 20)]
    app = make_app(chunks=pieces, stream=True, content_type="text/plain")
    server = Server()
    body = consume(make_mw(app, {**ON, "ZSTD_LEVEL": 19})(environ(headers={"Accept-Encoding": "zstd"}), server.start_response), server)
    assert dict(server.calls[0][1])["Content-Encoding"] == "zstd"
    assert decode("zstd", b"".join(body)) == BIG


# --- random padding (BREACH) -------------------------------------------------------------------


@pytest.mark.parametrize("coding", CODINGS)
def test_padding_varies_the_length_and_keeps_the_bytes_and_tag(make_mw: Any, coding: str) -> None:
    mw = make_mw(json_app(), {**ON, "COMPRESS_RANDOM_PADDING": True})
    lengths = set()
    for _ in range(40):
        r = call(mw, headers={"Accept-Encoding": coding})
        assert r.get("Content-Encoding") == coding
        assert r.get("ETag") == f'"{DIGEST}-{coding}"'
        assert r.get("Content-Length") == str(len(r.body))
        assert decode(coding, r.body) == JSON_BODY
        if coding == "gzip":
            assert gzip.decompress(r.body) == JSON_BODY
        lengths.add(len(r.body))
    assert len(lengths) > 10  # 0 to 99 random bytes: 40 draws give many lengths


def test_padding_off_keeps_the_bytes_deterministic(make_mw: Any) -> None:
    mw = make_mw(json_app(), ON)
    assert len({call(mw, headers={"Accept-Encoding": c}).body for c in ("gzip",) * 5}) == 1


def test_padding_of_gzip_is_a_file_name_field(make_mw: Any) -> None:
    mw = make_mw(json_app(), {**ON, "COMPRESS_RANDOM_PADDING": True, "COMPRESS_CODINGS": ["gzip"]})
    plain = gzip_reference(JSON_BODY)
    for _ in range(20):
        body = call(mw, headers={"Accept-Encoding": "gzip"}).body
        if body[3] & 0x08:  # FNAME: a NUL-terminated name after the 10-byte header
            end = body.index(b"\0", 10)
            assert 11 <= end + 1 <= 110
            assert body[:3] + bytes([body[3] & ~0x08 & 0xFF]) + body[4:10] + body[end + 1 :] == plain
        else:
            assert body == plain


def test_padding_of_zstd_is_a_skippable_frame(make_mw: Any) -> None:
    mw = make_mw(json_app(), {**ON, "COMPRESS_RANDOM_PADDING": True})
    body = call(mw, headers={"Accept-Encoding": "zstd"}).body
    magic = int.from_bytes(body[:4], "little")
    assert 0x184D2A50 <= magic <= 0x184D2A5F
    size = int.from_bytes(body[4:8], "little")
    assert 0 <= size <= 99
    assert body[8 + size :] == zstd_reference(JSON_BODY)


@pytest.mark.parametrize("coding", CODINGS)
def test_padded_streams_decode_chunk_by_chunk(make_mw: Any, coding: str) -> None:
    app = make_app(chunks=STREAM, stream=True, content_type=HTML)
    server = Server()
    result = make_mw(app, {**ON, "COMPRESS_RANDOM_PADDING": True})(environ(headers={"Accept-Encoding": coding}), server.start_response)
    decoder = Decoder(coding)
    iterator = iter(result)
    wire = []
    for chunk in STREAM:
        piece = next(iterator)
        wire.append(piece)
        got = decoder.feed(piece)
        if coding == "zstd" and not got and not decoder.inner.eof:
            got = decoder.feed(b"")
        if coding == "zstd" and decoder.inner.eof:  # the skippable frame ended: the data frame follows
            rest = decoder.inner.unused_data
            decoder = Decoder(coding)
            got = decoder.feed(rest)
        assert got == chunk
    wire.extend(iterator)
    result.close()
    assert decode(coding, b"".join(wire)) == b"".join(STREAM)


# --- the libraries -------------------------------------------------------------------------------


def test_a_listed_coding_whose_library_is_missing_names_the_key(make_mw: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(_codecs, "_brotli", None)
    with pytest.raises(ValueError, match=r"COMPRESS_CODINGS.*'br'.*pip install brotli"):
        make_mw(json_app(), {**ON, "COMPRESS_CODINGS": ["br", "gzip"]})
    # The default offers what the install can send.
    r = call(make_mw(json_app(), ON), headers={"Accept-Encoding": "br, gzip"})
    assert r.get("Content-Encoding") == "gzip"


def test_available_lists_every_coding_with_its_library() -> None:
    import isal

    found = _codecs.available()
    assert found[:3] == [
        ("gzip", f"zlib {zlib.ZLIB_RUNTIME_VERSION}"),
        ("zstd", f"zstd {zstd.zstd_version} ({zstd.__name__})"),
        ("br", f"brotli {brotli.__version__}"),
    ]
    # The optional ISA-L engine (installed with the test extra) is listed as gzip's second engine.
    assert found[3:] == [("gzip", f'isal {isal.__version__} (GZIP_ENGINE = "isal")')]
