"""The ASGI benchmark stacks (asok_fast/benchmarks/asgi_stacks.py) answer every
workload as they claim, on both cores: one checked request per stack and
workload, no timing.

The checks are the benchmark's own (:func:`asok_fast.benchmarks.stacks.check`:
status, coding, the decoded bytes, ETag, CORS, a preflight's allowances); beside
them this file asserts exact answers: the bare ASGI app sends what the bare WSGI
app sends, and ``ASGIMiddleware`` on each core sends what ``ResponseMiddleware``
on the same core sends, header for header and byte for byte.
"""

from __future__ import annotations

import asyncio
import gzip
import statistics
from typing import Any, Dict, List, Tuple

import pytest

from asok_fast import _core_py
from asok_fast.asgi import ASGIMiddleware
from asok_fast.benchmarks import asgi_stacks as ast
from asok_fast.benchmarks import stacks as st
from asok_fast.benchmarks import workloads as wl
from asok_fast.benchmarks.runner import CellResult, Results
from asok_fast.middleware import ResponseMiddleware

WORKLOAD_IDS = [w.id for w in wl.ALL_WORKLOADS]


@pytest.fixture(scope="module")
def built() -> Tuple[Dict[str, st.Stack], Dict[str, str]]:
    stacks, unavailable = ast.build_asgi_stacks()
    return {s.id: s for s in stacks}, unavailable


@pytest.mark.parametrize("workload_id", WORKLOAD_IDS)
@pytest.mark.parametrize("stack_id", list(ast.ASGI_STACK_IDS))
def test_every_stack_answers_every_workload_as_it_claims(built: Any, stack_id: str, workload_id: str) -> None:
    stacks, unavailable = built
    if stack_id not in stacks:
        pytest.skip(f"{stack_id}: {unavailable.get(stack_id)}")
    stack = stacks[stack_id]
    workload = wl.by_id(workload_id)
    reason = stack.not_applicable(workload)
    if reason:
        assert stack.role == "anchor" and workload_id in ("W2", "W9"), reason
        return
    cell = stack.prepare(workload)  # raises CheckFailed on a wrong answer
    assert cell.response is not None
    if stack.codings is not None and workload.compresses:
        assert cell.response.header("Content-Encoding") == ast.expected_coding(workload)
    if stack.role == "middleware" and workload.etag:
        tag = cell.response.header("ETag")
        assert tag is not None and tag.startswith('"') and tag.endswith('"')
    assert cell.info["driver"] in ("step", "loop")
    assert cell.run(2) >= 0  # the timed loop runs (its time is not asserted)
    cell.call()


def test_the_asok_fast_stacks_are_stepped_without_a_loop(built: Any) -> None:
    stacks, _ = built
    for stack_id in ("asgi", "asgi-compiled", "asgi-python", "starlette", "starlette+asok_fast"):
        if stack_id not in stacks:
            continue
        for workload_id in ("W1", "W3", "W4"):
            assert stacks[stack_id].prepare(wl.by_id(workload_id)).info["driver"] == "step", (stack_id, workload_id)


def _lower(headers: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    return [(name.lower(), value) for name, value in headers]


@pytest.mark.parametrize("workload_id", [w.id for w in wl.WORKLOADS] + ["W10", "W11"])
def test_the_bare_asgi_app_answers_as_the_bare_wsgi_app(workload_id: str) -> None:
    workload = wl.by_id(workload_id)
    wsgi = st.fetch(wl.bare_app, wl.environ_for(workload))
    asgi = ast.asgi_fetch(ast.bare_asgi_app, ast.scope_for(workload))  # type: ignore[arg-type]
    assert (asgi.status, _lower(asgi.headers), asgi.body) == (wsgi.status, _lower(wsgi.headers), wsgi.body)


@pytest.mark.parametrize("workload_id", [w.id for w in wl.WORKLOADS] + ["W10", "W11"])
def test_asgi_middleware_answers_as_the_wsgi_middleware_on_the_same_core(core: Any, workload_id: str) -> None:
    workload = wl.by_id(workload_id)
    tag = None
    if workload.revalidate:
        first = st.fetch(ResponseMiddleware(wl.bare_app, dict(wl.CONFIG), _core_module=core), wl.environ_for(wl.by_id("W1")))
        tag = first.header("ETag")
        assert tag is not None
    wsgi = st.fetch(ResponseMiddleware(wl.bare_app, dict(wl.CONFIG), _core_module=core), wl.environ_for(workload, tag))
    app = ASGIMiddleware(ast.bare_asgi_app, dict(wl.CONFIG), _core_module=core)
    asgi = ast.asgi_fetch(app, ast.scope_for(workload, tag))  # type: ignore[arg-type]
    assert asgi.status == wsgi.status
    assert _lower(asgi.headers) == _lower(wsgi.headers)
    assert asgi.body == wsgi.body
    if workload.compresses:
        coding = _core_py.negotiate(workload.accept_encoding, st.DEFAULT_CODINGS)
        assert asgi.header("Content-Encoding") == coding
        assert st.decode(coding, asgi.body) == workload.body


def test_starlette_gzip_sends_level_6_gzip_of_the_body_and_cors(built: Any) -> None:
    stacks, unavailable = built
    if "asgi+starlette-mw" not in stacks:
        pytest.skip(unavailable["asgi+starlette-mw"])
    workload = wl.by_id("W1")
    response = ast.asgi_fetch(stacks["asgi+starlette-mw"].app, ast.scope_for(workload))  # type: ignore[arg-type]
    assert response.status == 200
    assert response.header("Content-Encoding") == "gzip"
    assert gzip.decompress(response.body) == wl.JSON_BODY
    assert len(response.body) == len(st.gzip6(wl.JSON_BODY))
    assert response.header("Access-Control-Allow-Origin") == wl.ORIGIN
    assert response.header("ETag") is None


def test_a_stack_that_suspends_is_driven_on_the_loop() -> None:
    async def sleeper(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)
        await ast.bare_asgi_app(scope, receive, send)

    scope = ast.scope_for(wl.by_id("W1"))
    with pytest.raises(ast.NeedsLoop):
        ast.asgi_fetch(sleeper, scope)  # type: ignore[arg-type]
    bare = ast.ASGIStack("asgi", "asgi", "bare", "bare", ast.bare_asgi_app, copy_environ=False)  # type: ignore[arg-type]
    stack = ast.ASGIStack("sleeper", "asgi", "anchor", "sleeper", sleeper, frozenset(), copy_environ=False, bare=bare)  # type: ignore[arg-type]
    cell = stack.prepare(wl.by_id("W1"))
    assert cell.info["driver"] == "loop"
    assert cell.response is not None and cell.response.body == wl.JSON_BODY
    assert cell.run(3) >= 0


@pytest.mark.parametrize("name", ["asgi", "asgi-compiled", "asgi-python", "starlette", "starlette+mw", "starlette+compress", "starlette+asok_fast"])
def test_uvicorn_apps_answer_w1(name: str) -> None:
    cores, why = st.twins()
    if name == "asgi-compiled" and "compiled" not in cores:
        pytest.skip(why["compiled"])
    if name == "starlette+compress":
        pytest.importorskip("starlette_compress", reason="starlette-compress is a benchmark peer: pip install '.[bench]'")
    workload = wl.by_id("W1")
    response = ast.asgi_fetch(ast.uvicorn_app(name), ast.scope_for(workload))
    claims = frozenset() if name in ("asgi", "starlette") else frozenset({st.COMPRESS, st.CORS})
    st.check(workload, response, claims, wl.JSON_BODY, bare=not claims)
    if "asok_fast" in name or name.startswith("asgi-"):
        assert response.header("Content-Encoding") == ast.expected_coding(workload)
        assert response.header("ETag") is not None


def test_targets_are_ratios_of_this_runs_cells() -> None:
    def cell(stack: str, w: str, samples: List[float], diffs: List[float]) -> CellResult:
        return CellResult(stack, w, per_batch=1, samples=samples, diffs=diffs)

    cells = [
        cell("asgi-compiled", "W1", [10.0] * 5, [4.0, 4.0, 5.0, 4.0, 4.0]),
        cell("asgi+starlette-mw", "W1", [30.0] * 5, [24.0, 20.0, 22.0, 21.0, 20.0]),
        cell("asgi+starlette-compress", "W1", [30.0] * 5, [10.0] * 5),
        cell("compiled", "W1", [5.0] * 5, [4.0] * 5),
        cell("asgi-compiled", "W4", [2.0] * 5, [-0.5] * 5),
        cell("asgi+starlette-mw", "W4", [6.0] * 5, [5.0] * 5),
    ]
    res = Results(machine={}, stacks=[], workloads=[], cells={(c.stack, c.workload): c for c in cells}, skipped={},
                  failed={}, unavailable={}, threads={}, rounds=5, seconds=1.0)
    targets = {(t.workload, t.name): t for t in ast.evaluate_asgi_targets(res)}
    assert len(targets) == len(ast.ASGI_TARGETS)
    w1 = targets[("W1", "asgi+starlette-mw overhead / asgi-compiled overhead")]
    assert w1.value == statistics.median([24.0, 20.0, 22.0, 21.0, 20.0]) / 4.0 and w1.status == "PASS"
    assert targets[("W1", "asgi+starlette-compress overhead / asgi-compiled overhead")].value == 2.5
    assert targets[("W1", "asgi+starlette-compress overhead / asgi-compiled overhead")].status == "MISS"
    assert targets[("W1", "asgi-compiled overhead / compiled overhead")].value == 1.0
    assert targets[("W4", "asgi+starlette-mw overhead / asgi-compiled overhead")].status == "PASS"  # a negative overhead: inf
    w3 = targets[("W3", "asgi-compiled overhead / compiled overhead")]
    assert w3.value is None and "not measured" in w3.why_missing
