"""The per-request entry: ResponseMiddleware's core base class, the bound
classes of the ``_core_module`` seam, and settings cached between requests.

The compiled core answers from C fields and keeps copies made once per
configuration (its typed settings, whole preflight answers per listed
origin); these tests change the configuration between requests and check
that every answer follows it, on both cores.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

import asok_fast
from asok_fast import ResponseMiddleware, _core, _core_py

from asok_fast._config import Config

try:  # tests/ may or may not be a package
    from .wsgi_helpers import call, environ
except ImportError:
    from wsgi_helpers import call, environ

HERE = Path(__file__).resolve().parent
A = "https://a.example"
B = "https://b.example"
BODY = b"x" * 100


def text_app(body: bytes = BODY, headers: Any = None) -> Callable[..., Any]:
    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        start_response("200 OK", list(headers) if headers is not None else [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def preflight(mw: Any, origin: str, **extra: str) -> Any:
    return call(mw, method="OPTIONS", headers={"Origin": origin, "Access-Control-Request-Method": "PUT", **extra})


# --- the class ------------------------------------------------------------------------------


def test_the_class_derives_from_the_default_cores_base() -> None:
    assert ResponseMiddleware.__mro__[1] is _core.core.MiddlewareBase
    # No __call__ of its own: the base's (a C slot with the compiled core) is the entry.
    assert "__call__" not in vars(ResponseMiddleware)


def test_an_instance_runs_the_core_it_is_bound_to(core: Any, make_mw: Callable[..., Any]) -> None:
    mw = make_mw(text_app())
    assert isinstance(mw, ResponseMiddleware)
    assert mw.implementation == ("python" if core is _core_py else "compiled")
    if core is _core.core:
        assert type(mw) is ResponseMiddleware  # the default core: no bound subclass
    else:
        assert type(mw).__call__ is core.handle


def test_a_subclass_may_wrap_call() -> None:
    seen: List[str] = []

    class Logged(ResponseMiddleware):
        def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
            seen.append(environ["PATH_INFO"])
            return super().__call__(environ, start_response)

    mw = Logged(text_app(), {"CORS_ORIGINS": [A]})
    result = call(mw, path="/robots.txt", headers={"Origin": A})
    assert seen == ["/robots.txt"]
    assert result.status == "200 OK"
    assert result.headers[:5] == [
        ("Content-Type", "text/plain"),
        ("Content-Length", "100"),
        ("ETag", '"' + _core_py.md5_hex(BODY) + '"'),
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", A),
    ]
    assert result.body == BODY


def test_the_seam_refuses_to_rebind_a_wrapped_call() -> None:
    """Binding the other core to a subclass with its own ``__call__`` would skip
    that ``__call__`` or run the default core under it: refused."""
    other = _core_py if _core.core is not _core_py else pytest.importorskip("asok_fast._core_c")

    class Logged(ResponseMiddleware):
        def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
            return super().__call__(environ, start_response)

    with pytest.raises(TypeError, match="Logged overrides __call__"):
        Logged(text_app(), _core_module=other)
    assert isinstance(Logged(text_app(), _core_module=_core.core), Logged)


# --- configuration changes between requests -----------------------------------------------------


def test_preflight_answers_follow_a_changed_origin_list(make_mw: Callable[..., Any]) -> None:
    mw = make_mw(text_app(), {"CORS_ORIGINS": [A]})
    first = preflight(mw, A)
    assert first.status == "204 No Content"
    assert first.get("Access-Control-Allow-Origin") == A
    assert preflight(mw, B).get("Access-Control-Allow-Origin") is None

    mw.config["CORS_ORIGINS"] = [B]
    assert preflight(mw, A).headers == [("Vary", "Origin")]
    assert preflight(mw, B).get("Access-Control-Allow-Origin") == B

    mw.config = {"CORS_ORIGINS": "*"}
    star = preflight(mw, A)
    assert star.get("Access-Control-Allow-Origin") == "*"
    assert star.get("Vary") is None


def test_preflight_answer_made_once_is_copied_per_request(make_mw: Callable[..., Any]) -> None:
    """The private-network header is added to one answer, not to the next one."""
    mw = make_mw(text_app(), {"CORS_ORIGINS": [A], "CORS_ALLOW_PRIVATE_NETWORK": True, "CORS_MAX_AGE": 600})
    asked = preflight(mw, A, **{"Access-Control-Request-Private-Network": "true"})
    plain = preflight(mw, A)
    assert asked.headers[-1] == ("Access-Control-Allow-Private-Network", "true")
    assert asked.headers[:-1] == plain.headers
    assert plain.headers[:2] == [("Vary", "Origin"), ("Access-Control-Allow-Origin", A)]
    assert ("Access-Control-Max-Age", "600") in plain.headers
    assert plain.get("Access-Control-Allow-Private-Network") is None


@pytest.mark.parametrize("origins", [[A], "*"])
def test_a_server_changing_the_header_list_does_not_change_the_next_preflight(
    make_mw: Callable[..., Any], origins: Any
) -> None:
    """wsgiref adds to the list start_response is given; other servers may
    clear or reorder it.  Each preflight gets a list of its own."""
    mw = make_mw(text_app(), {"CORS_ORIGINS": origins})
    env = environ("OPTIONS", headers={"Origin": A, "Access-Control-Request-Method": "PUT"})
    first = preflight(mw, A).headers
    lists: List[Any] = []

    def vandal(status: str, headers: List[Any], exc_info: Any = None) -> Callable[[bytes], None]:
        lists.append(headers)
        headers.append(("Date", "Wed, 25 Nov 2026 10:00:00 GMT"))
        headers.reverse()
        return lambda data: None

    for _ in range(3):
        assert list(mw(dict(env), vandal)) == []
    assert len({id(h) for h in lists}) == 3
    assert preflight(mw, A).headers == first
    lists[0].clear()
    assert preflight(mw, A).headers == first


def test_gzip_and_etag_follow_config_changes(make_mw: Callable[..., Any]) -> None:
    body = b"hello world " * 100
    mw = make_mw(text_app(body), {"GZIP": True})
    first = call(mw, headers={"Accept-Encoding": "gzip"})
    assert first.get("Content-Encoding") == "gzip"
    assert first.get("ETag") == '"' + _core_py.md5_hex(body) + '-gzip"'

    mw.config["GZIP"] = False
    second = call(mw, headers={"Accept-Encoding": "gzip"})
    assert second.get("Content-Encoding") is None
    assert second.body == body
    assert second.get("ETag") == '"' + _core_py.md5_hex(body) + '"'

    mw.config["ETAG"] = False
    assert call(mw).get("ETag") is None


class CountedConfig(Config):
    """A Config subclass that counts the reads of ``version``."""

    __slots__ = ()
    reads = 0

    def __getattribute__(self, name: str) -> Any:
        if name == "version":
            type(self).reads += 1
        return super().__getattribute__(name)


def test_a_config_subclass_is_read_through_its_attribute(make_mw: Callable[..., Any]) -> None:
    """The compiled entry reads an exact Config's version from its slot; any
    other type there is read through its attribute, and changes still count."""
    body = b"hello world " * 100
    mw = make_mw(text_app(body), {"GZIP": True})
    mw._config = CountedConfig(mw.config)
    CountedConfig.reads = 0
    assert call(mw, headers={"Accept-Encoding": "gzip"}).get("Content-Encoding") == "gzip"
    assert CountedConfig.reads >= 1
    mw._config["GZIP"] = False  # bumps the version: the next request rebuilds
    plain = call(mw, headers={"Accept-Encoding": "gzip"})
    assert plain.get("Content-Encoding") is None
    assert plain.body == body


def test_a_config_without_a_version_fails_as_the_attribute_does(make_mw: Callable[..., Any]) -> None:
    mw = make_mw(text_app())
    mw._config = Config.__new__(Config)  # slot never set: no version
    with pytest.raises(AttributeError, match="version"):
        call(mw)


def test_the_same_version_in_another_int_object_is_no_change(make_mw: Callable[..., Any]) -> None:
    """Versions compare by value: an equal int that is another object does not rebuild."""
    mw = make_mw(text_app(), {"CORS_ORIGINS": [A]})
    mw._config.version = 10**12 + 7  # beyond the small-int cache
    call(mw)  # a new version: settings rebuilt, the state holds this int
    settings = mw._state[1]
    assert mw._state[0] == 10**12 + 7
    mw._config.version = int(str(10**12 + 7))  # equal, not identical
    assert mw._config.version is not mw._state[0]
    assert call(mw, headers={"Origin": A}).get("Access-Control-Allow-Origin") == A
    assert mw._state[1] is settings


def test_a_preflight_returns_an_empty_tuple(make_mw: Callable[..., Any]) -> None:
    """No body and nothing to close: the shared empty tuple, on both cores."""
    mw = make_mw(text_app(), {"CORS_ORIGINS": [A]})
    sent: List[Any] = []
    env = environ("OPTIONS", headers={"Origin": A, "Access-Control-Request-Method": "PUT"})
    result = mw(env, lambda status, headers, exc_info=None: sent.append((status, headers)))
    assert result == () and type(result) is tuple
    assert sent[0][0] == "204 No Content"
    assert ("Access-Control-Allow-Origin", A) in sent[0][1]


# --- Content-Length of a buffered body ------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        ("Content-Length", "100"),  # right, canonical: passed on as given
        ("content-length", "100"),  # right, other spelling
        ("Content-Length", "99"),  # wrong
        ("Content-Length", " 100"),  # right number, odd text
        ("Content-Length", "0100"),
    ],
)
def test_content_length_is_always_the_bodys(make_mw: Callable[..., Any], given: Any) -> None:
    # GZIP on (below GZIP_MIN_SIZE: not compressed), so the middleware is active.
    mw = make_mw(text_app(BODY, [("Content-Type", "text/plain"), given, ("X-After", "1")]), {"GZIP": True, "ETAG": False})
    result = call(mw)
    assert result.headers == [("Content-Type", "text/plain"), ("X-After", "1"), ("Content-Length", "100")]


# --- the compiled core under a pure default class -------------------------------------------------

CHILD = r"""
import importlib, json
from asok_fast import ResponseMiddleware, _core, _core_py
core_c = importlib.import_module("asok_fast._core_c")
from wsgi_helpers import call

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", "1200")])
    return [b"<p>hello</p>" * 100]

config = {"CORS_ORIGINS": ["https://a.example"], "GZIP": True}
out = {"default": _core.core.__name__}
for name, core in (("python", _core_py), ("compiled", core_c)):
    mw = ResponseMiddleware(app, config, _core_module=core)
    get = call(mw, headers={"Origin": "https://a.example", "Accept-Encoding": "gzip"})
    tag = get.get("ETag")
    again = call(mw, headers={"If-None-Match": tag, "Accept-Encoding": "gzip"})
    head = call(mw, method="HEAD", headers={"Accept-Encoding": "gzip"})
    pre = call(mw, method="OPTIONS", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "PUT"})
    mw.config["GZIP"] = False
    plain = call(mw, headers={"Accept-Encoding": "gzip"})
    out[name] = {
        "class": type(mw).__mro__[1].__module__ + "." + type(mw).__mro__[1].__name__,
        "call": type(mw).__call__.__module__,
        "answers": [[r.status, r.headers, r.body.hex()] for r in (get, again, head, pre, plain)],
    }
print(json.dumps(out))
"""


@pytest.mark.compiled
def test_compiled_core_bound_to_the_pure_default_class() -> None:
    """With ASOK_FAST_NO_EXTENSIONS=1 the class derives from the pure base; binding
    the compiled core then runs ``_core_c.handle`` (the attribute-reading entry),
    which must answer exactly as the pure core does."""
    pytest.importorskip("asok_fast._core_c")
    # The child imports the same asok_fast as this process (a checkout or an
    # installed copy) and the helpers next to this file.
    package_root = Path(asok_fast.__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONWARNINGS")}
    env.update(ASOK_FAST_NO_EXTENSIONS="1", PYTHONPATH=os.pathsep.join([str(package_root), str(HERE)]))
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=str(HERE), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["default"] == "asok_fast._core_py"
    assert report["compiled"]["call"] == "asok_fast._core_c"
    assert report["python"]["answers"] == report["compiled"]["answers"]
    statuses = [answer[0] for answer in report["compiled"]["answers"]]
    assert statuses == ["200 OK", "304 Not Modified", "200 OK", "204 No Content", "200 OK"]


# --- how the entry is called ------------------------------------------------------------------------


def test_keyword_and_positional_calls_answer_alike(make_mw: Callable[..., Any]) -> None:
    """Positional calls take the compiled core's vectorcall entry; keywords the tuple way."""
    mw = make_mw(text_app(), {"ETAG": True})
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    heads: List[Any] = []

    def start_response(status: str, headers: List[Any], exc_info: Any = None) -> Callable[[bytes], None]:
        heads.append((status, headers))
        return lambda data: None

    assert list(mw(env, start_response)) == [BODY]
    assert list(mw(env, start_response=start_response)) == [BODY]
    assert list(mw(environ=env, start_response=start_response)) == [BODY]
    assert heads[0] == heads[1] == heads[2]
    with pytest.raises(TypeError):
        mw(env)
    with pytest.raises(TypeError):
        mw(env, start_response, None)


def test_a_call_assigned_later_is_honoured() -> None:
    """The compiled entry notices a ``__call__`` assigned after the class was made."""

    class Sub(ResponseMiddleware):
        pass

    mw = Sub(text_app(), {"ETAG": True})
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    start_response = lambda status, headers, exc_info=None: None  # noqa: E731
    assert list(mw(env, start_response)) == [BODY]
    Sub.__call__ = lambda self, environ, start_response: [b"patched"]  # type: ignore[assignment]
    try:
        assert mw(env, start_response) == [b"patched"]
    finally:
        del Sub.__call__  # type: ignore[misc]
    assert list(mw(env, start_response)) == [BODY]


def test_capture_calls_from_the_app(core: Any) -> None:
    """start_response as apps call it: positional, by keyword, with exc_info, and wrongly."""
    sent: List[Any] = []
    capture = core.Capture(lambda *args: sent.append(args))
    write = capture("200 OK", [("A", "b")])
    assert (capture.status, capture.headers) == ("200 OK", [("A", "b")])
    write(b"early")
    assert capture.written == [b"early"]
    with pytest.raises(AssertionError, match="second time"):
        capture("200 OK", [])
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    capture(status="500 Internal Server Error", headers=[], exc_info=exc_info)
    assert capture.status == "500 Internal Server Error"
    capture.send("500 Internal Server Error", [])
    assert sent == [("500 Internal Server Error", [], exc_info)]
    with pytest.raises(ValueError, match="boom"):
        capture("500 Internal Server Error", [], exc_info)  # headers sent: re-raised
    for bad in [(), ("200 OK",), ("200 OK", [], None, 4)]:
        with pytest.raises(TypeError):
            core.Capture(lambda *args: None)(*bad)


# --- iterables of known length (what Werkzeug and Django return) --------------------------------


class Body:
    """An app's response iterable with ``close()``, as frameworks return them."""

    def __init__(self, chunks: List[Any], fail_at: int = -1) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = 0

    def __iter__(self) -> Any:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("the app failed while iterating")
            yield chunk

    def close(self) -> None:
        self.closed += 1


def iterable_app(body: Body, headers: List[Any]) -> Callable[..., Any]:
    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Body:
        start_response("200 OK", list(headers))
        return body

    return app


@pytest.mark.parametrize(
    "content_length, streamed",
    [
        ("1200", False),  # buffered: Content-Length and gzip over the whole body
        (" 1200", False),  # unusual spelling: the same answer
        (None, True),  # no length: streamed
        ("99999999999", True),  # over BUFFER_MAX_SIZE: streamed
    ],
)
def test_an_iterable_of_known_length(make_mw: Callable[..., Any], content_length: Any, streamed: bool) -> None:
    chunks = [b"<p>" + b"a" * 597, b"b" * 597 + b"</p>"]
    headers = [("Content-Type", "text/html")]
    if content_length is not None:
        headers.append(("Content-Length", content_length))
    body = Body(chunks)
    result = call(make_mw(iterable_app(body, headers), {"GZIP": True, "ETAG": True}), headers={"Accept-Encoding": "gzip"})
    assert body.closed == 1
    assert result.get("Content-Encoding") == "gzip"
    assert gzip.decompress(result.body) == b"".join(chunks)
    if streamed:
        assert result.get("Content-Length") is None and result.get("ETag") is None
        assert len(result.chunks) == 3  # one out per chunk in, then the gzip trailer
    else:
        assert result.chunks == [result.body]
        assert result.get("Content-Length") == str(len(result.body))
        assert result.get("ETag") == '"' + _core_py.md5_hex(b"".join(chunks)) + '-gzip"'


def test_an_iterable_that_fails_is_closed_once(make_mw: Callable[..., Any]) -> None:
    body = Body([b"a" * 10, b"b" * 10], fail_at=1)
    mw = make_mw(iterable_app(body, [("Content-Type", "text/plain"), ("Content-Length", "20")]), {"ETAG": True})
    with pytest.raises(RuntimeError, match="while iterating"):
        call(mw)
    assert body.closed == 1


def test_an_iterable_with_a_str_chunk_is_refused_and_closed(make_mw: Callable[..., Any]) -> None:
    body = Body([b"a" * 10, "b" * 10])
    mw = make_mw(iterable_app(body, [("Content-Type", "text/plain"), ("Content-Length", "20")]), {"ETAG": True})
    with pytest.raises(TypeError, match="yielded a str, not bytes"):
        call(mw)
    assert body.closed == 1


def test_head_of_an_iterable_reads_and_closes_it(make_mw: Callable[..., Any]) -> None:
    body = Body([b"x" * 100])
    mw = make_mw(iterable_app(body, [("Content-Type", "text/plain"), ("Content-Length", "100")]), {"ETAG": True})
    result = call(mw, method="HEAD")
    assert result.chunks == []
    assert result.get("Content-Length") == "100"
    assert result.get("ETag") == '"' + _core_py.md5_hex(b"x" * 100) + '"'
    assert body.closed == 1
