"""Property tests: request header parsers against hostile input and small references.

SPEC "Bad input and load": no request header can make the middleware fail;
malformed, huge, repeated or non-ASCII ``Accept-Encoding``, ``If-None-Match``,
``If-Modified-Since`` or ``Origin`` values count as absent or unmatched.  Each
parser is checked directly on the core under test (``negotiate`` for every
order of the offered codings, ``parse_if_none_match``, ``is_compressible``,
``origin_allowed``) against an independent reference written here from
RFC 9110 / SPEC, and the whole middleware is driven with arbitrary header
values (each coding, and the random padding on in one configuration).  Runs are derandomized
(fixed examples in CI) with moderate example counts.
"""

from __future__ import annotations

import calendar
import gzip
import hashlib
import re
import time
from decimal import Decimal
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from asok_fast._config import DEFAULTS, build_settings

from wsgi_helpers import call, decode

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=200)
WHOLE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    # make_mw is a stateless factory: sharing it across examples is fine.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- hostile text -------------------------------------------------------------------------

_NASTY = [
    "\r", "\n", "\r\n", "\x00", "\x7f", "\x0b", "\x85", "\u2028", "\ufeff", "\udcff",
    "é", "€", "ｇｚｉｐ", "\t", " ", ",", ";", "=", '"', "W/", "*", "q", "0", "1", ".",
]
_separator_soup = st.lists(
    st.sampled_from(list(' \t,;=*"/WqQ01.-') + ["gzip", "x-gzip", "br", "zstd", "identity", "\r", "\n", "\x00", "é", "\u20ac"]),
    max_size=40,
).map("".join)


def _huge(seed: str, times: int) -> str:
    return seed * times


def hostile(*good: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Arbitrary text, control characters, separator soup, huge repeats, and
    well-formed values (``good``) with something nasty spliced in."""
    parts: List[st.SearchStrategy[str]] = [
        st.text(max_size=40),
        st.text(alphabet=st.characters(max_codepoint=0x20), max_size=20),
        _separator_soup,
        st.builds(_huge, st.text(min_size=1, max_size=10), st.integers(500, 20000)),
    ]
    for strategy in good:
        parts.append(strategy)
        parts.append(
            st.builds(
                lambda value, nasty, where: value[:where] + nasty + value[where:],
                strategy,
                st.sampled_from(_NASTY),
                st.integers(0, 80),
            )
        )
        parts.append(st.builds(lambda value, n: ", ".join([value] * n), strategy, st.integers(2, 3000)))
    return st.one_of(parts)


def header_safe(value: str) -> bool:
    """What a response header value must be: latin-1, no CR, LF or NUL."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(c in value for c in "\r\n\x00")


# --- Accept-Encoding: reference from RFC 9110 section 12.5.3 --------------------------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QVALUE = r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?"
_AE_ELEMENT = re.compile(rf"(?P<coding>{_TOKEN})(?:[ \t]*;[ \t]*[qQ]=(?P<q>{_QVALUE}))?")

#: What the server offers: ``COMPRESS_CODINGS``, its order of preference.
OFFERED = ("zstd", "br", "gzip")
_offered = st.lists(st.sampled_from(OFFERED), min_size=1, max_size=3, unique=True).map(tuple)


def reference_weights(value: str) -> Dict[str, Decimal]:
    """Each coding's weight as listed (``x-gzip`` read as ``gzip``, RFC 9110
    8.4.1.3; a coding listed twice keeps its higher weight); an element that
    is not ``coding [ OWS ";" OWS "q=" qvalue ]`` is left out."""
    weights: Dict[str, Decimal] = {}
    for element in value.split(","):
        match = _AE_ELEMENT.fullmatch(element.strip(" \t"))
        if match is None:
            continue  # empty list elements (RFC 9110 5.6.1.2) and junk
        coding = match.group("coding").lower()
        coding = "gzip" if coding == "x-gzip" else coding
        weight = Decimal(match.group("q")) if match.group("q") else Decimal(1)
        weights[coding] = max(weight, weights.get(coding, Decimal(-1)))
    return weights


def reference_negotiate(value: Optional[str], offered: Tuple[str, ...]) -> Optional[str]:
    """SPEC "Compression: zstd, br, gzip": a coding's weight is its own q where
    listed, else that of ``*`` where listed, else 0; q=0 refuses; the best
    weight wins, ties to the order of ``offered``; none where ``identity`` is
    listed above it.  No field, an empty one or a non-ASCII one: none."""
    if value is None or not value.isascii():
        return None
    weights = reference_weights(value)
    fallback = weights.get("*", Decimal(0))
    ranked = sorted(
        ((weights.get(coding, fallback), -rank, coding) for rank, coding in enumerate(offered)),
        reverse=True,
    )
    best_weight, _, best = ranked[0]
    if best_weight == 0:
        return None
    if "identity" in weights and weights["identity"] > best_weight:
        return None
    return best


_CODINGS = [
    "gzip", "GZIP", "Gzip", "x-gzip", "X-GZIP", "*", "br", "BR", "Br", "zstd", "ZSTD", "Zstd", "deflate", "identity",
    "IDENTITY", "compress", "gzipx", "xgzip", "gz", "x-compress", "zst", "brotli",
]
_QS = st.one_of(
    st.sampled_from(["0", "0.", "0.0", "0.00", "0.000", "1", "1.", "1.0", "1.00", "1.000"]),
    st.builds(lambda d: "0." + d, st.text("0123456789", min_size=1, max_size=3)),
)
_OWS = st.sampled_from(["", " ", "\t", "  ", " \t"])


def _canonical(coding: str) -> str:
    coding = coding.lower()
    return "gzip" if coding == "x-gzip" else coding


_ae_element = st.builds(
    lambda coding, q, ows1, ows2, qname: coding + (f"{ows1};{ows2}{qname}={q}" if q is not None else ""),
    st.sampled_from(_CODINGS),
    st.one_of(st.none(), _QS),
    _OWS,
    _OWS,
    st.sampled_from(["q", "Q"]),
)
# Elements RFC 9110 does not allow, which count as absent.
_ae_junk = st.sampled_from(
    [
        "gzip;q=2", "br;q=1.001", "zstd;q=-1", "gzip;q=0.0001", "gzip;q=", "gzip;", "br;level=1", "zstd;q=0.5;x=1",
        "gzip;q=1;q=0", "gz ip", ";q=1", "zstd; q =0.5", "br;q=.5", "*;q=0.5;q=0", "gzip=1", "\"gzip\"", "x-gzip;q",
    ]
)


@st.composite
def well_formed_accept_encoding(draw: Callable[..., Any], repeats: bool = False, junk: bool = False) -> str:
    """A list of codings with optional weights (each coding once unless
    ``repeats``), with OWS and empty elements; ``junk`` mixes in malformed ones."""
    element = st.one_of(_ae_element, _ae_junk) if junk else _ae_element
    unique_by = None if repeats else (lambda e: _canonical(re.split(r"[ \t;]", e)[0]))
    elements = draw(st.lists(element, max_size=7, unique_by=unique_by))
    out = draw(_OWS) if draw(st.booleans()) else ""
    for i, element_text in enumerate(elements):
        if i:
            out += draw(_OWS) + "," + draw(st.sampled_from(["", " ", "\t", " , ", ",", " ,  ,"])) + draw(_OWS)
        out += element_text
    return out + (draw(st.sampled_from(["", ",", " , "])) if elements else "")


_any_accept_encoding = st.one_of(
    well_formed_accept_encoding(),
    well_formed_accept_encoding(repeats=True),
    well_formed_accept_encoding(repeats=True, junk=True),
)


@FAST
@given(_any_accept_encoding, _offered)
@example("gzip;q=0, *", OFFERED)
@example("*;q=0, x-gzip;q=0.001", OFFERED)
@example("GZIP;Q=1.000", OFFERED)
@example("br, *;q=0", OFFERED)
@example("br;q=0.5, zstd;q=0.5, gzip;q=0.5", ("gzip", "br", "zstd"))
@example("gzip;q=0.5, identity;q=0.501", OFFERED)
@example("x-gzip;q=0.2, gzip;q=0.9, br;q=0.5", OFFERED)
@example("", OFFERED)
@example(" , ,", OFFERED)
def test_negotiate_matches_the_rfc_reference(core: Any, value: str, offered: Tuple[str, ...]) -> None:
    assert core.negotiate(value, offered) == reference_negotiate(value, offered)


# SPEC's cases: (Accept-Encoding, what the server offers, the coding sent).
NEGOTIATION_TABLE = [
    ("gzip, deflate, br, zstd", OFFERED, "zstd"),  # what browsers send
    ("gzip, deflate, br", OFFERED, "br"),
    ("gzip, deflate, br, zstd", ("gzip",), "gzip"),  # COMPRESS_CODINGS = ["gzip"]: Asok's behaviour
    ("gzip, deflate, br, zstd", ("gzip", "br"), "gzip"),
    ("gzip", OFFERED, "gzip"),
    ("x-gzip", OFFERED, "gzip"),
    ("X-GZip;Q=0.5", OFFERED, "gzip"),
    ("ZSTD", OFFERED, "zstd"),
    ("br;q=0.5, gzip;q=0.8", OFFERED, "gzip"),
    ("br;q=0.8, gzip;q=0.8", OFFERED, "br"),  # a tie: the server's order
    ("br;q=0.8, gzip;q=0.8", ("gzip", "br"), "gzip"),
    ("zstd;q=0.9, gzip;q=0.9", ("gzip", "zstd"), "gzip"),
    ("*", OFFERED, "zstd"),
    ("*", ("br", "gzip"), "br"),
    ("*;q=0", OFFERED, None),
    ("gzip;q=0, *", OFFERED, "zstd"),
    ("gzip;q=0, *", ("gzip",), None),  # its own q=0 refuses, whatever * says
    ("zstd;q=0, br;q=0, *;q=0.5", OFFERED, "gzip"),
    ("br, *;q=0.1", OFFERED, "br"),
    ("br;q=0.1, *", OFFERED, "zstd"),
    ("identity", OFFERED, None),
    ("gzip;q=0.5, identity", OFFERED, None),  # identity above the best
    ("gzip, identity", OFFERED, "gzip"),  # level with it: compress
    ("gzip;q=0.5, identity;q=0.5", OFFERED, "gzip"),
    ("zstd, identity;q=0", OFFERED, "zstd"),
    ("gzip;q=0", OFFERED, None),
    ("br, deflate", ("gzip",), None),
    ("deflate, compress", OFFERED, None),
    ("", OFFERED, None),
    (" , , ", OFFERED, None),
    ("gzip;q=2, br", OFFERED, "br"),  # a malformed element counts as absent
    ("gzip;q=1;q=0", OFFERED, None),
    ("zstd;level=3, gzip", OFFERED, "gzip"),
    ("gzip;q=0.3, gzip;q=0.7, br;q=0.5", OFFERED, "gzip"),
    ("gz\u00edp, gzip", OFFERED, None),  # non-ASCII: the header counts as absent
]


@pytest.mark.parametrize("value, offered, expected", NEGOTIATION_TABLE)
def test_negotiate_table(core: Any, value: str, offered: Tuple[str, ...], expected: Optional[str]) -> None:
    # The reference and the core on the cases SPEC names.
    assert reference_negotiate(value, offered) == expected
    assert core.negotiate(value, offered) == expected


def test_negotiate_without_a_header(core: Any) -> None:
    assert core.negotiate(None, OFFERED) is None
    assert reference_negotiate(None, OFFERED) is None


@FAST
@given(hostile(_any_accept_encoding), _offered)
@example("gzip\r\n", OFFERED)
@example("zstd;q=1;q=0", OFFERED)
@example("gzip;q=2", OFFERED)
@example("br;q=-1", OFFERED)
@example("gzip;q=0.0001", OFFERED)
@example("gzip;q=", OFFERED)
@example("gzip;level=1", OFFERED)
@example("gzi\u00e9p, gzip", OFFERED)
@example(",,,,,,,,,,", OFFERED)
@example(";;;;gzip", OFFERED)
@example("zstd\x00, br", OFFERED)
@example("\u017fzstd", OFFERED)  # long s: upper-cases to S, still not ASCII
def test_negotiate_never_raises_and_equals_the_reference(core: Any, value: str, offered: Tuple[str, ...]) -> None:
    result = core.negotiate(value, offered)
    assert result is None or (type(result) is str and result in offered)
    assert result == reference_negotiate(value, offered)
    if not value.isascii():
        assert result is None  # SPEC: non-ASCII counts as absent
    lowered = value.lower()
    if "*" not in value and not any(coding in lowered for coding in offered):
        assert result is None  # nothing there could name an offered coding


@FAST
@given(st.one_of(_any_accept_encoding, hostile(_any_accept_encoding)), _offered)
def test_negotiate_compiled_equals_pure(compiled_core: Any, value: str, offered: Tuple[str, ...]) -> None:
    from asok_fast import _core_py

    assert compiled_core.negotiate(value, offered) == _core_py.negotiate(value, offered) == reference_negotiate(value, offered)


# --- If-None-Match: reference from RFC 9110 section 13.1.2 / 8.8.3 ------------------------

_ETAG = r'(?:W/)?"[\x21\x23-\x7e]*"'
_INM_LIST = re.compile(rf"[ \t,]*{_ETAG}(?:[ \t]*,[ \t,]*{_ETAG})*[ \t,]*")
_OPAQUE = re.compile(r'(?:W/)?("[\x21\x23-\x7e]*")')


def reference_parse_if_none_match(value: str) -> Any:
    """``"*"``, the opaque tags listed (``W/`` dropped), or ``None`` for a value
    that is not ``"*" / #entity-tag`` (or holds a non-ASCII byte: SPEC counts
    those as unmatched)."""
    if not value.isascii():
        return None
    if value.strip(" \t") == "*":
        return "*"
    if not _INM_LIST.fullmatch(value):
        return None
    return tuple(_OPAQUE.findall(value))


_etagc = st.text(alphabet=st.sampled_from([chr(c) for c in range(0x21, 0x7F) if c != 0x22]), max_size=12)
_entity_tag = st.builds(lambda weak, opaque: ("W/" if weak else "") + '"' + opaque + '"', st.booleans(), _etagc)


@st.composite
def well_formed_if_none_match(draw: Callable[..., Any], tags: st.SearchStrategy[str] = _entity_tag) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(_OWS) + "*" + draw(_OWS)
    items = draw(st.lists(tags, min_size=1, max_size=5))
    separators = st.sampled_from([",", ", ", " ,", "\t,\t", ", ,", ",,", " , , "])
    out = draw(st.sampled_from(["", " ", ", "]))
    for i, item in enumerate(items):
        if i:
            out += draw(separators)
        out += item
    return out + draw(st.sampled_from(["", " ", ",", " , "]))


@FAST
@given(hostile(well_formed_if_none_match()))
@example('"a" "b"')
@example('W/ "a"')
@example('w/"a"')
@example('"a')
@example('"a b"')
@example('"a\x7f"')
@example('*, "a"')
@example(" * ")
@example('""')
@example('"a",')
@example('"a"\r\n')
@example('"\u00e9"')
def test_parse_if_none_match_equals_the_reference(core: Any, value: str) -> None:
    parsed = core.parse_if_none_match(value)
    assert parsed == reference_parse_if_none_match(value)
    if parsed is not None and parsed != "*":
        assert type(parsed) is tuple and all(type(t) is str and header_safe(t) for t in parsed)


@FAST
@given(well_formed_if_none_match())
def test_parse_if_none_match_accepts_every_well_formed_list(core: Any, value: str) -> None:
    parsed = core.parse_if_none_match(value)
    assert parsed is not None
    assert parsed == reference_parse_if_none_match(value)


# --- media types -------------------------------------------------------------------------

_BUILT_IN = {
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/x-ndjson",
    "application/wasm",
    "image/svg+xml",
}
_TOKEN_RE = re.compile(_TOKEN)


def reference_is_compressible(content_type: Optional[str], extra: FrozenSet[str]) -> bool:
    """SPEC "Gzip": the media type before ``;``: ``text/*`` but event-stream,
    the built-in list, ``GZIP_TYPES``, and any ``+json`` / ``+xml`` subtype."""
    if not content_type or not content_type.isascii():
        return False
    media_type = content_type.split(";", 1)[0].strip(" \t").lower()
    if media_type.count("/") != 1:
        return False
    kind, subtype = media_type.split("/")
    if not _TOKEN_RE.fullmatch(kind) or not _TOKEN_RE.fullmatch(subtype):
        return False
    if kind == "text":
        return subtype != "event-stream"
    if media_type in _BUILT_IN or media_type in extra:
        return True
    for suffix in ("+json", "+xml"):
        if subtype.endswith(suffix) and len(subtype) > len(suffix):
            return True
    return False


_KINDS = ["text", "Text", "application", "APPLICATION", "image", "audio", "video", "multipart", "font", "x"]
_SUBTYPES = [
    "html", "plain", "csv", "event-stream", "EVENT-STREAM", "json", "JSON", "javascript", "xml", "xhtml+xml",
    "x-ndjson", "wasm", "svg+xml", "problem+json", "vnd.api+json", "atom+xml", "+json", "+xml", "json+",
    "octet-stream", "png", "pdf", "x-custom", "form-data", "woff2",
]
_media_type = st.builds(
    lambda ows1, kind, subtype, ows2, params: f"{ows1}{kind}/{subtype}{ows2}{params}",
    _OWS,
    st.sampled_from(_KINDS),
    st.sampled_from(_SUBTYPES),
    _OWS,
    st.sampled_from(["", "; charset=utf-8", ";charset=UTF-8", ' ; q="a;b"', ";"]),
)
_extra_types = st.sampled_from([frozenset(), frozenset({"application/x-custom", "font/woff2"}), frozenset({"application/octet-stream"})])


@FAST
@given(hostile(_media_type), _extra_types)
@example("text/", frozenset())
@example("/html", frozenset())
@example("text/html/x", frozenset())
@example("text /html", frozenset())
@example("text/event-stream", frozenset({"text/event-stream"}))
@example("application/json\r\n", frozenset())
@example("Application/Problem+JSON", frozenset())
@example("tëxt/html", frozenset())
def test_is_compressible_equals_the_reference(core: Any, content_type: str, extra: FrozenSet[str]) -> None:
    result = core.is_compressible(content_type, extra)
    assert type(result) is bool
    assert result is reference_is_compressible(content_type, extra)


def test_is_compressible_reference_sanity(core: Any) -> None:
    for value in ("text/html", "text/csv; charset=utf-8", "application/ld+json", "image/svg+xml", "application/x-ndjson"):
        assert reference_is_compressible(value, frozenset()) and core.is_compressible(value, frozenset())
    for value in ("text/event-stream", "image/png", "application/octet-stream", "", "application/+json"):
        assert not reference_is_compressible(value, frozenset()) and not core.is_compressible(value, frozenset())
    assert core.is_compressible(None, frozenset()) is False
    assert core.is_compressible("font/woff2", frozenset({"font/woff2"})) is True


# --- Origin --------------------------------------------------------------------------------

LISTED = ["https://a.example", "http://b.example:8080", "null"]
CONFIGS = {
    "list": {"CORS_ORIGINS": ["https://a.example", "HTTP://B.example:8080/", "null"]},
    "list+regex": {"CORS_ORIGINS": "https://a.example", "CORS_ORIGIN_REGEX": r"https://[a-z0-9-]+\.c\.example"},
    "greedy-regex": {"CORS_ORIGINS": ["https://a.example"], "CORS_ORIGIN_REGEX": r"https?://.*"},
}
_REGEX = {
    "list": None,
    "list+regex": re.compile(r"https://[a-z0-9-]+\.c\.example"),
    "greedy-regex": re.compile(r"https?://.*"),
}
_ALLOWED_LISTS = {"list": set(LISTED), "list+regex": {"https://a.example"}, "greedy-regex": {"https://a.example"}}


def reference_origin_allowed(config: str, origin: Optional[str]) -> bool:
    """SPEC "CORS": listed (as normalised) or matched in full by the regex, and
    a well-formed serialized origin (visible ASCII, no space or comma); anything
    else is never echoed."""
    if not origin or not all("!" <= c <= "~" for c in origin) or "," in origin:
        return False
    if origin in _ALLOWED_LISTS[config]:
        return True
    regex = _REGEX[config]
    return regex is not None and regex.fullmatch(origin) is not None


_near_origins = st.sampled_from(
    [
        "https://a.example",
        "http://b.example:8080",
        "null",
        "https://A.example",
        "https://a.example/",
        "https://a.example:443",
        "http://a.example",
        "https://a.example.evil",
        "https://evil.a.example",
        "http://b.example",
        "http://B.EXAMPLE:8080",
        "https://x.c.example",
        "https://x.c.example.evil",
        "https://X.c.example",
        "http://anything.example",
        "https://a.example, https://b.example",
        "Null",
        "",
    ]
)


@FAST
@given(hostile(_near_origins), st.sampled_from(sorted(CONFIGS)))
@example("https://a.example\r\nX-Evil: 1", "greedy-regex")
@example("https://a.example\x00", "greedy-regex")
@example("https://caf\u00e9.example", "greedy-regex")
@example("https://a.example x", "greedy-regex")
@example("https://a.example,https://b.example", "greedy-regex")
@example("https://x.c.example\n", "list+regex")
def test_origin_allowed_equals_the_reference(core: Any, origin: str, config: str) -> None:
    current = build_settings({**DEFAULTS, **CONFIGS[config]})
    result = core.origin_allowed(current, origin)
    assert type(result) is bool
    assert result is reference_origin_allowed(config, origin)
    if result:
        assert header_safe(origin)


# --- If-Modified-Since: reference from RFC 9110 section 5.6.7 -------------------------------

_DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_LONG_DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_HMS = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_DAY = "(?:" + "|".join(_DAY_NAMES) + ")"
_MON = "(" + "|".join(_MONTHS) + ")"
_IMF_RE = re.compile(rf"{_DAY}, ([0-9]{{2}}) {_MON} ([0-9]{{4}}) {_HMS} GMT")
_RFC850_RE = re.compile("(?:" + "|".join(_LONG_DAY_NAMES) + rf"), ([0-9]{{2}})-{_MON}-([0-9]{{2}}) {_HMS} GMT")
_ASCTIME_RE = re.compile(rf"{_DAY} {_MON} ((?:[0-9]| )[0-9]) {_HMS} ([0-9]{{4}})")


def reference_http_date(value: str) -> Optional[int]:
    """Seconds since the epoch, or ``None``.  The day name is checked for form
    only; a leap second (``:60``) reads as ``:59``; a two-digit year more than
    50 years ahead is the previous century's."""
    if len(value) > 64:
        return None  # far longer than any HTTP-date with its OWS: junk (SPEC: huge counts as absent)
    value = value.strip(" \t")
    match = _IMF_RE.fullmatch(value)
    if match:
        day, month, year, hh, mm, ss = match.groups()
        year_n = int(year)
    elif _ASCTIME_RE.fullmatch(value):
        month, day, hh, mm, ss, year = _ASCTIME_RE.fullmatch(value).groups()  # type: ignore[union-attr]
        year_n = int(year)
    elif _RFC850_RE.fullmatch(value):
        day, month, yy, hh, mm, ss = _RFC850_RE.fullmatch(value).groups()  # type: ignore[union-attr]
        year_n = 2000 + int(yy)
        if year_n > time.gmtime().tm_year + 50:
            year_n -= 100
    else:
        return None
    month_n = _MONTHS.index(month) + 1
    day_n = int(day.strip() or "0")
    if year_n < 1 or not 1 <= day_n <= calendar.monthrange(year_n, month_n)[1]:
        return None
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 60:
        return None
    return calendar.timegm((year_n, month_n, day_n, int(hh), int(mm), min(int(ss), 59), 0, 0, 0))


LAST_MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"
LAST_MODIFIED_AT = 784111777


def _format_date(when: int, style: int) -> str:
    t = time.gmtime(when)
    if style == 0:
        return time.strftime("%a, %d %b %Y %H:%M:%S GMT", t)
    if style == 1:
        return f"{_LONG_DAY_NAMES[t.tm_wday]}, {t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year % 100:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    return f"{_DAY_NAMES[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}"


_http_dates = st.builds(
    _format_date,
    st.one_of(
        st.integers(LAST_MODIFIED_AT - 3, LAST_MODIFIED_AT + 3),
        st.integers(LAST_MODIFIED_AT - 86400 * 400, LAST_MODIFIED_AT + 86400 * 400),
        st.integers(0, 2**31),
    ),
    st.integers(0, 2),
)


def test_reference_http_date_sanity() -> None:
    assert reference_http_date(LAST_MODIFIED) == LAST_MODIFIED_AT
    assert reference_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == LAST_MODIFIED_AT
    assert reference_http_date("Sun Nov  6 08:49:37 1994") == LAST_MODIFIED_AT
    assert reference_http_date("Sun, 31 Nov 1994 08:49:37 GMT") is None
    for when in (0, LAST_MODIFIED_AT, 1700000000):
        for style in (0, 2):
            assert reference_http_date(_format_date(when, style)) == when


@FAST
@given(st.one_of(_http_dates, hostile(_http_dates)))
@example("Sun, 06 Nov 1994 08:49:60 GMT")
@example("Sun, 29 Feb 1996 08:49:37 GMT")
@example("Thu, 29 Feb 1900 08:49:37 GMT")
@example("Sun, 06 Nov 1994 24:00:00 GMT")
@example("sun, 06 nov 1994 08:49:37 gmt")
@example("Sun, 06 Nov 1994 08:49:37 UTC")
@example("Sun Nov 06 08:49:37 1994")
@example("Sunday, 06-Nov-94 08:49:37 GMT\r\n")
def test_http_date_parser_equals_the_reference(value: str) -> None:
    from asok_fast._httpdate import parse_http_date

    assert parse_http_date(value) == reference_http_date(value)


# --- the whole middleware ------------------------------------------------------------------

BODY = b"".join(b"<p>paragraph %03d with some words in it</p>\n" % i for i in range(30))
DIGEST = hashlib.md5(BODY).hexdigest()
STREAM_ETAG = '"stream-v1"'

_inm_tags = st.one_of(
    _entity_tag,
    st.sampled_from(
        [
            f'"{DIGEST}"',
            f'W/"{DIGEST}"',
            f'"{DIGEST}-gzip"',
            f'W/"{DIGEST}-gzip"',
            f'"{DIGEST.upper()}"',
            f'"{DIGEST}-br"',
            f'W/"{DIGEST}-zstd"',
            f'"{DIGEST}-zstd"',
            STREAM_ETAG,
            "W/" + STREAM_ETAG,
            '"stream-v2"',
        ]
    ),
)
_inm_values = hostile(well_formed_if_none_match(_inm_tags))
_ae_values = st.one_of(
    st.sampled_from(
        ["gzip", "gzip, deflate, br", "gzip, deflate, br, zstd", "br;q=1, *;q=0.5", "gzip;q=0", "zstd;q=0.5, identity"]
    ),
    _any_accept_encoding,
    hostile(_any_accept_encoding),
)
_ims_values = st.one_of(_http_dates, hostile(_http_dates))
_origin_values = st.one_of(_near_origins, hostile(_near_origins))


def _optional(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[Optional[str]]:
    """Absent about half the time (so If-Modified-Since gets its turn)."""
    return st.booleans().flatmap(lambda absent: st.none() if absent else strategy)


def _app(kind: str) -> Callable[..., Any]:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Last-Modified", LAST_MODIFIED)]
        if kind == "stream":
            headers.append(("ETag", STREAM_ETAG))
            start_response("200 OK", headers)
            return (chunk for chunk in (BODY[:700], BODY[700:]))
        start_response("200 OK", headers)
        return [BODY[:700], BODY[700:]]

    return app


def _expect_304(kind: str, inm: Optional[str], ims: Optional[str]) -> bool:
    """RFC 9110 13.1.2 / 13.1.3 with SPEC's tags: weak comparison; the digest
    names the content, with any coding's suffix or none; If-Modified-Since
    only without If-None-Match."""
    current = {STREAM_ETAG} if kind == "stream" else {f'"{DIGEST}"'} | {f'"{DIGEST}-{c}"' for c in OFFERED}
    if inm is not None:
        listed = reference_parse_if_none_match(inm)
        return listed == "*" or (listed is not None and bool(current & set(listed)))
    if ims is None:
        return False
    since = reference_http_date(ims)
    return since is not None and since >= LAST_MODIFIED_AT


def _request_headers(**values: Optional[str]) -> Dict[str, str]:
    return {name.replace("_", "-"): value for name, value in values.items() if value is not None}


MW_CONFIGS = {
    "list": {"GZIP": True, "CORS_ORIGINS": ["https://a.example", "HTTP://B.example:8080/", "null"]},
    # Another order of preference, the random padding on (the bodies differ, not what they decode to).
    "greedy-regex": {
        "GZIP": True,
        "CORS_ORIGINS": ["https://a.example"],
        "CORS_ORIGIN_REGEX": r"https?://.*",
        "COMPRESS_CODINGS": ["gzip", "br", "zstd"],
        "COMPRESS_RANDOM_PADDING": True,
    },
    "wildcard": {"GZIP": True, "CORS_ORIGINS": "*", "COMPRESS_CODINGS": "br, gzip"},
}


def _offered_by(config: str) -> Tuple[str, ...]:
    value = MW_CONFIGS[config].get("COMPRESS_CODINGS", OFFERED)
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items)


@pytest.mark.parametrize("config", sorted(MW_CONFIGS))
@pytest.mark.parametrize("kind", ["buffered", "stream"])
@WHOLE
@given(
    ae=_optional(_ae_values),
    inm=_optional(_inm_values),
    ims=_optional(_ims_values),
    origin=_optional(_origin_values),
    method=st.sampled_from(["GET", "HEAD"]),
)
@example(ae="gzip", inm=None, ims=LAST_MODIFIED, origin="https://a.example", method="GET")
@example(ae="gzip", inm=f'W/"{DIGEST}-gzip"', ims=None, origin=None, method="GET")
@example(ae="gzip", inm=f'"x", {STREAM_ETAG}', ims=None, origin="null", method="HEAD")
@example(ae="gzip\r\n", inm='"a"\r\n', ims=LAST_MODIFIED + "\r\n", origin="https://a.example\r\nX: 1", method="GET")
@example(ae="gzip;q=0, *", inm="*", ims=None, origin="https://a.example, https://a.example", method="GET")
@example(ae="gzip, deflate, br, zstd", inm=f'"{DIGEST}-zstd"', ims=None, origin=None, method="GET")
@example(ae="br;q=0.5, gzip;q=0.5, zstd;q=0.5", inm=None, ims=None, origin=None, method="HEAD")
@example(ae="zstd;q=0.5, identity", inm=None, ims=None, origin=None, method="GET")
def test_any_request_headers_leave_the_response_intact(
    make_mw: Any, core: Any, config: str, kind: str, ae: Optional[str], inm: Optional[str], ims: Optional[str], origin: Optional[str], method: str
) -> None:
    mw = make_mw(_app(kind), MW_CONFIGS[config])
    request = _request_headers(Accept_Encoding=ae, If_None_Match=inm, If_Modified_Since=ims, Origin=origin)
    result = call(mw, method, headers=request)

    # Every header the middleware emits is safe to serialise.
    for name, value in result.headers:
        assert type(name) is str and type(value) is str
        assert header_safe(name) and header_safe(value), (name, value)

    # 304 exactly when the validator really matches.
    not_modified = _expect_304(kind, inm, ims)
    names = [name.lower() for name, _ in result.headers]
    if not_modified:
        assert result.status == "304 Not Modified"
        assert result.chunks == []
        assert not {"content-type", "content-length", "content-encoding"} & set(names)
    else:
        assert result.status == "200 OK"
        # The coding RFC 9110 negotiation picks among the offered ones, or none.
        coding = reference_negotiate(ae, _offered_by(config))
        assert result.get_all("Content-Encoding") == ([coding] if coding else [])
        if method == "HEAD":
            assert result.chunks == []
        else:
            assert decode(coding, result.body) == BODY
        padded = MW_CONFIGS[config].get("COMPRESS_RANDOM_PADDING", False)
        if kind == "buffered":
            # HEAD carries the length a GET would (with padding: a GET's, whose padding differs).
            get_body = call(mw, "GET", headers=request).body if method == "HEAD" else result.body
            if padded and coding is not None and method == "HEAD":
                assert (result.get("Content-Length") or "").isdigit()
            else:
                assert result.get("Content-Length") == str(len(get_body))
            assert result.get("ETag") == (f'"{DIGEST}-{coding}"' if coding else f'"{DIGEST}"')
        else:
            assert result.get("Content-Length") is None
            assert result.get("ETag") == ("W/" + STREAM_ETAG if coding else STREAM_ETAG)

    # One Vary line, the tokens SPEC asks for.
    vary = result.get_all("Vary")
    expected_vary = ["Accept-Encoding"] + (["Origin"] if config != "wildcard" else [])
    assert vary == [", ".join(expected_vary)]

    # CORS: the wildcard for everyone; otherwise only allowed origins, echoed.
    acao = result.get_all("Access-Control-Allow-Origin")
    if config == "wildcard":
        assert acao == ["*"]
    elif reference_origin_allowed("list" if config == "list" else "greedy-regex", origin):
        assert acao == [origin]
    else:
        assert acao == []
        assert not any(name.startswith("access-control-") for name in names)


@WHOLE
@given(ae=_ae_values, inm=_inm_values, ims=_ims_values, origin=_origin_values)
def test_hostile_headers_on_a_preflight_and_with_everything_off(
    make_mw: Any, ae: str, inm: str, ims: str, origin: str
) -> None:
    # A preflight reads Origin; with every feature off the middleware passes through.
    mw = make_mw(_app("buffered"), MW_CONFIGS["list"])
    request = {"Origin": origin, "Access-Control-Request-Method": "GET", "Accept-Encoding": ae, "If-None-Match": inm, "If-Modified-Since": ims}
    result = call(mw, "OPTIONS", headers=request)
    assert result.status == "204 No Content"
    assert result.chunks == []
    assert all(header_safe(v) for _, v in result.headers)
    allowed = reference_origin_allowed("list", origin)
    assert result.get_all("Access-Control-Allow-Origin") == ([origin] if allowed else [])
    assert result.get("Vary") == "Origin"

    off = make_mw(_app("buffered"), {"ETAG": False})
    plain = call(off, "GET", headers=request)
    assert plain.status == "200 OK"
    assert plain.headers == [("Content-Type", "text/html; charset=utf-8"), ("Last-Modified", LAST_MODIFIED)]
    assert plain.body == BODY


@pytest.mark.parametrize("kind", ["buffered", "stream"])
@WHOLE
@given(ims=_ims_values, method=st.sampled_from(["GET", "HEAD"]))
@example(ims=LAST_MODIFIED, method="GET")
@example(ims="Sun, 06 Nov 1994 08:49:36 GMT", method="GET")
@example(ims="Sunday, 06-Nov-94 08:49:37 GMT", method="HEAD")
@example(ims="Sun Nov  6 08:49:38 1994", method="GET")
@example(ims=LAST_MODIFIED + "\r\n", method="GET")
@example(ims="\x00" + LAST_MODIFIED, method="GET")
@example(ims=LAST_MODIFIED + "\x85", method="GET")
def test_if_modified_since_alone(make_mw: Any, kind: str, ims: str, method: str) -> None:
    # Without If-None-Match, a valid date not earlier than Last-Modified gives
    # a 304; any other value is ignored.
    mw = make_mw(_app(kind), {"GZIP": True})
    result = call(mw, method, headers={"If-Modified-Since": ims, "Accept-Encoding": "gzip"})
    since = reference_http_date(ims)
    if since is not None and since >= LAST_MODIFIED_AT:
        assert result.status == "304 Not Modified"
        # The 304 carries the ETag the 200 would have (the app's, weakened, on a gzip stream).
        etag = f'"{DIGEST}-gzip"' if kind == "buffered" else "W/" + STREAM_ETAG
        assert result.headers == [("Last-Modified", LAST_MODIFIED), ("ETag", etag), ("Vary", "Accept-Encoding")]
        assert result.chunks == []
    else:
        assert result.status == "200 OK"
        assert result.get("Content-Encoding") == "gzip"
        if method == "HEAD":
            assert result.chunks == []
        else:
            assert gzip.decompress(result.body) == BODY
