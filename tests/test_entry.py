"""The per-request entry: ResponseMiddleware as a plain class over the core it is bound
to (the ``_core_module`` seam), the settings kept between requests, and the apps'
``start_response`` calls as the plumbing takes them.

The settings are rebuilt only when the configuration changes; these tests change it
between requests and check that every answer follows it, on both cores.
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
from asok_fast import ResponseMiddleware, _core_py
from asok_fast._config import Config

from wsgi_helpers import Server, Tracked, call, environ, make_app, md5_tag, wsgi_app

HERE = Path(__file__).resolve().parent
A = "https://a.example"
B = "https://b.example"
BODY = b"x" * 100


def text_app(body: bytes = BODY) -> Callable[..., Any]:
    return make_app(body, "text/plain", headers=[("Content-Length", str(len(body)))])


def preflight(mw: Any, origin: str, **extra: str) -> Any:
    return call(mw, method="OPTIONS", headers={"Origin": origin, "Access-Control-Request-Method": "PUT", **extra})


# --- the class ------------------------------------------------------------------------------


def test_the_class_is_plain_python() -> None:
    """No compiled base: the plumbing and the config it shares with the ASGI twin
    are Python classes of Python modules."""
    from asok_fast._config import Configured

    assert ResponseMiddleware.__mro__ == (ResponseMiddleware, Configured, object)
    for cls in ResponseMiddleware.__mro__[:-1]:
        assert sys.modules[cls.__module__].__file__.endswith(".py"), cls
    assert "__call__" in vars(ResponseMiddleware)


def test_an_instance_runs_the_core_it_is_bound_to(core: Any, make_mw: Callable[..., Any]) -> None:
    mw = make_mw(text_app())
    assert type(mw) is ResponseMiddleware
    assert mw._core is core
    assert mw.implementation == ("python" if core is _core_py else "compiled")
    assert ResponseMiddleware(text_app()).implementation == asok_fast.IMPLEMENTATION


def test_a_subclass_may_wrap_call(core: Any) -> None:
    seen: List[str] = []

    class Logged(ResponseMiddleware):
        def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
            seen.append(environ["PATH_INFO"])
            return super().__call__(environ, start_response)

    mw = Logged(text_app(), {"CORS_ORIGINS": [A]}, _core_module=core)
    assert mw.implementation == ("python" if core is _core_py else "compiled")
    result = call(mw, path="/robots.txt", headers={"Origin": A})
    assert seen == ["/robots.txt"]
    assert result.status == "200 OK"
    assert result.headers == [
        ("Content-Type", "text/plain"),
        ("Content-Length", "100"),
        ("ETag", md5_tag(BODY)),
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", A),
        ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, PATCH, OPTIONS"),
        ("Access-Control-Allow-Headers", "Content-Type, X-CSRF-Token, Authorization"),
    ]
    assert result.body == BODY


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
    assert first.get("ETag") == md5_tag(body, "-gzip")

    mw.config["GZIP"] = False
    second = call(mw, headers={"Accept-Encoding": "gzip"})
    assert second.get("Content-Encoding") is None
    assert second.body == body
    assert second.get("ETag") == md5_tag(body)

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
    """A Config subclass in place of the middleware's: its version is read
    through its attribute, and changes still count."""
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
    mw = make_mw(make_app(BODY, "text/plain", headers=[given, ("X-After", "1")]), {"GZIP": True, "ETAG": False})
    result = call(mw)
    assert result.headers == [("Content-Type", "text/plain"), ("X-After", "1"), ("Content-Length", "100")]


# --- the compiled core with pure Python selected -------------------------------------------------

CHILD = r"""
import json
from asok_fast import ResponseMiddleware, _core, _core_py
from wsgi_helpers import call

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", "1200")])
    return [b"<p>hello</p>" * 100]

config = {"CORS_ORIGINS": ["https://a.example"], "GZIP": True}
out = {"default": _core.core.__name__}
for name, core in (("python", _core_py), ("compiled", _core.load_compiled())):
    mw = ResponseMiddleware(app, config, _core_module=core)
    get = call(mw, headers={"Origin": "https://a.example", "Accept-Encoding": "gzip"})
    tag = get.get("ETag")
    again = call(mw, headers={"If-None-Match": tag, "Accept-Encoding": "gzip"})
    head = call(mw, method="HEAD", headers={"Accept-Encoding": "gzip"})
    pre = call(mw, method="OPTIONS", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "PUT"})
    mw.config["GZIP"] = False
    plain = call(mw, headers={"Accept-Encoding": "gzip"})
    out[name] = {
        "implementation": mw.implementation,
        "answers": [[r.status, r.headers, r.body.hex()] for r in (get, again, head, pre, plain)],
    }
print(json.dumps(out))
"""


def test_compiled_core_bound_with_pure_python_selected(compiled_core: Any) -> None:
    """With ASOK_FAST_NO_EXTENSIONS=1 the selector picks the pure core; a middleware
    bound to the compiled one through the seam must answer exactly as the pure one."""
    # The child imports the same asok_fast as this process (a checkout or an
    # installed copy) and the helpers next to this file.
    package_root = Path(asok_fast.__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONWARNINGS")}
    env.update(ASOK_FAST_NO_EXTENSIONS="1", PYTHONPATH=os.pathsep.join([str(package_root), str(HERE)]))
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=str(HERE), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["default"] == "asok_fast._core_py"
    assert report["compiled"]["implementation"] == "compiled"
    assert report["python"]["implementation"] == "python"
    assert report["python"]["answers"] == report["compiled"]["answers"]
    statuses = [answer[0] for answer in report["compiled"]["answers"]]
    assert statuses == ["200 OK", "304 Not Modified", "200 OK", "204 No Content", "200 OK"]


# --- how the entry is called ------------------------------------------------------------------------


def test_keyword_and_positional_calls_answer_alike(make_mw: Callable[..., Any]) -> None:
    mw = make_mw(text_app(), {"ETAG": True})
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    heads: List[Any] = []

    def start_response(status: str, headers: List[Any], exc_info: Any = None) -> Callable[[bytes], None]:
        heads.append((status, headers))
        return lambda data: None

    assert list(mw(env, start_response)) == [BODY]
    assert list(mw(env, start_response=start_response)) == [BODY]
    assert list(mw(environ=env, start_response=start_response)) == [BODY]
    assert heads[0] == heads[1] == heads[2] == ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100"), ("ETag", md5_tag(BODY))])
    with pytest.raises(TypeError):
        mw(env)
    with pytest.raises(TypeError):
        mw(env, start_response, None)


def test_start_response_as_apps_call_it(make_mw: Callable[..., Any]) -> None:
    """The ``start_response`` the app gets: positional or by keyword, ``write()``
    first in the body, ``exc_info`` before anything was sent replacing the answer,
    a second call without it refused, and the wrong number of arguments a TypeError."""
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        how = env["PATH_INFO"]
        if how == "/keywords":
            start_response(status="200 OK", headers=[("Content-Type", "text/plain")])(b"early ")
        elif how == "/exc-info":
            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response(status="500 Internal Server Error", headers=[("Content-Type", "text/plain")], exc_info=exc_info)
        elif how == "/twice":
            start_response("200 OK", [])
            start_response("200 OK", [])
        elif how == "/none":
            start_response()
        elif how == "/one":
            start_response("200 OK")
        elif how == "/four":
            start_response("200 OK", [], None, 4)
        return [b"body"]

    mw = make_mw(app, {"ETAG": True})
    keywords = call(mw, path="/keywords")
    assert (keywords.status, keywords.headers, keywords.chunks) == (
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", "10"), ("ETag", md5_tag(b"early body"))],
        [b"early body"],
    )
    server = Server()
    assert server.serve(mw, path="/exc-info") == [b"body"]
    assert server.calls == [("500 Internal Server Error", [("Content-Type", "text/plain"), ("Content-Length", "4")], exc_info)]
    with pytest.raises(AssertionError, match="second time"):
        call(mw, path="/twice")
    for path in ("/none", "/one", "/four"):
        server = Server()
        with pytest.raises(TypeError):
            server.serve(mw, path=path)
        assert server.calls == []


# --- iterables of known length (what Werkzeug and Django return) --------------------------------


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
    body = Tracked(chunks)
    result = call(make_mw(wsgi_app(lambda: body, headers=headers), {"GZIP": True, "ETAG": True}), headers={"Accept-Encoding": "gzip"})
    assert body.closed == 1
    assert result.get("Content-Encoding") == "gzip"
    assert gzip.decompress(result.body) == b"".join(chunks)
    if streamed:
        assert result.get("Content-Length") is None and result.get("ETag") is None
        assert len(result.chunks) == 3  # one out per chunk in, then the gzip trailer
    else:
        assert result.chunks == [result.body]
        assert result.get("Content-Length") == str(len(result.body))
        assert result.get("ETag") == md5_tag(b"".join(chunks), "-gzip")


def test_an_iterable_that_fails_is_closed_once(make_mw: Callable[..., Any]) -> None:
    body = Tracked([b"a" * 10, b"b" * 10], fail_at=1, error=RuntimeError("the app failed while iterating"))
    mw = make_mw(wsgi_app(lambda: body, headers=[("Content-Type", "text/plain"), ("Content-Length", "20")]), {"ETAG": True})
    with pytest.raises(RuntimeError, match="while iterating"):
        call(mw)
    assert body.closed == 1


def test_an_iterable_with_a_str_chunk_is_refused_and_closed(make_mw: Callable[..., Any]) -> None:
    body = Tracked([b"a" * 10, "b" * 10])
    mw = make_mw(wsgi_app(lambda: body, headers=[("Content-Type", "text/plain"), ("Content-Length", "20")]), {"ETAG": True})
    with pytest.raises(TypeError, match="yielded a str, not bytes"):
        call(mw)
    assert body.closed == 1


def test_head_of_an_iterable_reads_and_closes_it(make_mw: Callable[..., Any]) -> None:
    body = Tracked([b"x" * 100])
    mw = make_mw(wsgi_app(lambda: body, headers=[("Content-Type", "text/plain"), ("Content-Length", "100")]), {"ETAG": True})
    result = call(mw, method="HEAD")
    assert result.chunks == []
    assert result.get("Content-Length") == "100"
    assert result.get("ETag") == md5_tag(b"x" * 100)
    assert body.closed == 1
