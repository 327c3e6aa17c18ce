"""The benchmark runner's arithmetic: target ratios from the rounds, and the
interval that says how far this run's own noise could move them.

No timing happens here: the cells are made by hand, so every number is known.
One test runs the ``--redis`` measurement against a real ``redis-server`` and
asserts what it counts and serves, never its times.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Optional, Tuple

import pytest

from asok_fast.benchmarks import runner
from asok_fast.benchmarks.runner import CellResult, Results

#: (workload, target, op, limit) of every target, in the order the tool prints them.
TARGETS = [
    ("W1", "compiled overhead / C-work floor", "<=", 1.05),
    ("W2", "compiled overhead / MD5 floor", "<=", 1.5),
    ("W3", "compiled overhead / C-work floor", "<=", 1.05),
    ("W2", "flask+asok_fast overhead / flask time", "<=", 0.10),
    ("W4", "flask+asok_fast overhead / flask time", "<=", 0.05),
    ("W5", "flask+asok_fast overhead / flask time", "<=", 0.05),
    ("W2", "django+asok_fast overhead / django time", "<=", 0.10),
    ("W4", "django+asok_fast overhead / django time", "<=", 0.05),
    ("W5", "django+asok_fast overhead / django time", "<=", 0.05),
    ("W2", "django-nocommon+asok_fast overhead / django-nocommon time", "<=", 0.10),
    ("W4", "django-nocommon+asok_fast overhead / django-nocommon time", "<=", 0.05),
    ("W5", "django-nocommon+asok_fast overhead / django-nocommon time", "<=", 0.05),
    ("W1", "flask+ext overhead / flask+asok_fast overhead", ">=", 10.0),
    ("W1", "django+mw overhead / django+asok_fast overhead", ">=", 10.0),
    ("W1", "python time / compiled time", ">=", 1.5),
    ("W2", "python time / compiled time", ">=", 3.0),
    ("W7", "compiled overhead / gzip-6 floor", "<=", 0.65),
    ("W7", "compiled body / gzip-6 body", "<=", 1.0),
    ("W8", "compiled overhead / gzip-6 floor", "<=", 0.3),
    ("W8", "compiled body / gzip-6 body", "<=", 1.01),
    ("W9", "compiled overhead / gzip-6 floor", "<=", 0.75),
    ("W9", "compiled body / gzip-6 body", "<=", 0.95),
    ("W7", "flask+ext overhead / flask+asok_fast overhead", ">=", 10.0),
    ("W7", "django+mw overhead / django+asok_fast overhead", ">=", 10.0),
    ("W8", "flask+ext overhead / flask+asok_fast overhead", ">=", 1.0),
    ("W8", "django+mw overhead / django+asok_fast overhead", ">=", 1.0),
    ("W8", "compiled req/s two threads / one thread", ">=", 1.7),
    ("W10", "compiled overhead / gzip-6 floor", "<=", 0.4),
    ("W11", "compiled overhead / gzip-6 floor", "<=", 0.2),
    ("W7", "compiled overhead / compiled-nocache overhead", "<=", 1.03),
    ("W8", "compiled overhead / compiled-nocache overhead", "<=", 1.03),
    ("W9", "compiled overhead / compiled-nocache overhead", "<=", 1.03),
    ("W12", "compiled overhead / compiled-nocache overhead", "<=", 1.03),
    ("W13", "compiled overhead / compiled-nocache overhead", "<=", 1.03),
    ("W11", "compiled-isal overhead / gzip-6 floor", "<=", 0.3),
    ("W1", "asgi+starlette-mw overhead / asgi-compiled overhead", ">=", 5.0),
    ("W1", "asgi+starlette-compress overhead / asgi-compiled overhead", ">=", 3.0),
    ("W4", "asgi+starlette-mw overhead / asgi-compiled overhead", ">=", 10.0),
    ("W1", "asgi-compiled overhead / compiled overhead", "<=", 1.15),
    ("W3", "asgi-compiled overhead / compiled overhead", "<=", 1.15),
    ("W11", "shared tier: compressions by a 2nd process's 1st request", "<=", 0),
    ("W11", "shared tier: 2nd process's 1st request / gzip-6 of W3", "<=", 1.0),
]

PYTHON_W2 = [1050, 1040, 1120, 1010, 1060, 1200, 1045, 1055, 980, 1090]
COMPILED_W2 = [350, 360, 340, 420, 330, 355, 345, 365, 400, 338]


def _cell(
    stack: str,
    w: str,
    samples: List[float],
    diffs: Optional[List[float]] = None,
    bytes_out: Optional[int] = None,
    coding: Optional[str] = None,
    gzip6_out: Optional[int] = None,
) -> CellResult:
    return CellResult(stack, w, per_batch=1, samples=list(samples), diffs=list(diffs or []), bytes_out=bytes_out,
                      coding=coding, gzip6_out=gzip6_out)


def _results(cells: List[CellResult], threads: Optional[Dict[str, dict]] = None, unavailable: Optional[Dict[str, str]] = None) -> Results:
    by_key: Dict[Tuple[str, str], CellResult] = {(c.stack, c.workload): c for c in cells}
    rounds = max(len(c.samples) for c in cells)
    return Results(
        machine={"cpus": 2},
        stacks=[{"id": s, "framework": "wsgi", "role": "middleware", "label": s, "bare": None} for s in sorted({c.stack for c in cells})],
        workloads=[{"id": w, "name": w, "description": ""} for w in sorted({c.workload for c in cells})],
        cells=by_key,
        skipped={},
        failed={},
        unavailable=dict(unavailable or {}),
        threads=dict(threads or {}),
        rounds=rounds,
        seconds=1.0,
    )


def _target(targets: List[runner.Target], workload: str, name: str) -> runner.Target:
    found = [t for t in targets if t.workload == workload and t.name == name]
    assert len(found) == 1, [(t.workload, t.name) for t in targets]
    return found[0]


def test_the_targets_are_exactly_these() -> None:
    res = _results([_cell("compiled", "W1", [1.0, 1.0])])
    assert [(t.workload, t.name, t.op, t.limit) for t in runner.evaluate_targets(res)] == TARGETS


def test_ratio_is_of_the_medians_and_the_interval_holds_it() -> None:
    res = _results([_cell("python", "W2", PYTHON_W2), _cell("compiled", "W2", COMPILED_W2)])
    t = _target(runner.evaluate_targets(res), "W2", "python time / compiled time")
    assert t.value == pytest.approx(1052.5 / 352.5)
    assert t.status == "MISS"  # 2.99 < 3
    lo, hi = t.interval
    assert lo <= t.value <= hi
    assert lo < 3.0 < hi
    assert t.decided is False


def test_pairs_measured_in_one_round_stay_paired() -> None:
    # A slow phase of the machine hits both cells of a round alike: the overhead
    # is 4 % of bare Flask in every round, though the times vary 4x between rounds.
    flask = [500, 900, 2000, 650, 1200, 800, 1700, 550, 1000, 600]
    ours = [f * 26 // 25 for f in flask]
    diffs = [o - f for o, f in zip(ours, flask)]
    res = _results([_cell("flask", "W5", flask), _cell("flask+asok_fast", "W5", ours, diffs)])
    t = _target(runner.evaluate_targets(res), "W5", "flask+asok_fast overhead / flask time")
    assert t.value == pytest.approx(0.04)
    assert t.interval == (pytest.approx(0.04), pytest.approx(0.04))
    assert t.status == "PASS" and t.decided is True


def test_overhead_targets_use_the_paired_differences() -> None:
    diffs = [20_000, 21_000, 19_500, 20_500, 22_000]
    floor = [21_000, 21_500, 20_800, 21_200, 21_100]
    res = _results([
        _cell("compiled", "W1", [30_000] * 5, diffs),
        _cell("floor", "W1", floor, floor),
    ])
    t = _target(runner.evaluate_targets(res), "W1", "compiled overhead / C-work floor")
    assert t.value == pytest.approx(20_500 / 21_100)
    assert t.status == "PASS"
    lo, hi = t.interval
    assert lo <= t.value <= hi <= 22_000 / 20_800


def test_the_floor_limit_allows_five_percent() -> None:
    res = _results([
        _cell("compiled", "W3", [2_200_000] * 4, [2_090_000] * 4),
        _cell("floor", "W3", [2_000_000] * 4, [2_000_000] * 4),
    ])
    t = _target(runner.evaluate_targets(res), "W3", "compiled overhead / C-work floor")
    assert t.value == pytest.approx(1.045) and t.status == "PASS"
    res.cells[("compiled", "W3")].diffs[:] = [2_110_000] * 4
    t = _target(runner.evaluate_targets(res), "W3", "compiled overhead / C-work floor")
    assert t.value == pytest.approx(1.055) and t.status == "MISS"


def test_a_preflight_answered_without_the_app_has_a_negative_overhead_and_passes() -> None:
    django = [52_000, 53_000, 51_000, 54_000]
    ours = [900, 850, 950, 880]
    res = _results([_cell("django", "W4", django), _cell("django+asok_fast", "W4", ours, [o - d for o, d in zip(ours, django)])])
    res.targets = [t.as_dict() for t in runner.evaluate_targets(res)]
    t = next(t for t in res.targets if t["workload"] == "W4" and t["target"] == "django+asok_fast overhead / django time")
    assert t["value"] == pytest.approx(-51_625 / 52_500)  # median of the paired differences / median of django
    assert t["status"] == "PASS" and t["decided"] is True
    line = next(l for l in runner.render_table(res).splitlines() if "django+asok_fast overhead / django time" in l and " W4 " in l)
    assert line.split()[:4] == ["PASS", "W4", "django+asok_fast", "overhead"]
    assert f"{t['value']:.3f}" in line


def test_extensions_against_asok_fast_through_the_same_framework() -> None:
    res = _results([
        _cell("flask+ext", "W1", [150_000] * 3, [105_000, 100_000, 110_000]),
        _cell("flask+asok_fast", "W1", [55_000] * 3, [10_000, 9_000, 11_000]),
        _cell("django+mw", "W1", [160_000] * 3, [100_000] * 3),
        _cell("django+asok_fast", "W1", [70_000] * 3, [12_500] * 3),
    ])
    targets = runner.evaluate_targets(res)
    flask = _target(targets, "W1", "flask+ext overhead / flask+asok_fast overhead")
    assert flask.value == pytest.approx(10.5) and flask.status == "PASS"
    django = _target(targets, "W1", "django+mw overhead / django+asok_fast overhead")
    assert django.value == pytest.approx(8.0) and django.status == "MISS" and django.decided is True


def test_every_round_the_same_gives_a_point_interval() -> None:
    res = _results([_cell("python", "W1", [9000] * 8), _cell("compiled", "W1", [1500] * 8)])
    t = _target(runner.evaluate_targets(res), "W1", "python time / compiled time")
    assert t.value == 6.0 and t.interval == (6.0, 6.0) and t.decided is True


def test_the_interval_does_not_depend_on_luck_between_calls() -> None:
    res = _results([_cell("python", "W2", [1300, 1500, 1400, 1350]), _cell("compiled", "W2", [300, 400, 350, 320])])
    a = _target(runner.evaluate_targets(res, seed=3), "W2", "python time / compiled time").interval
    b = _target(runner.evaluate_targets(res, seed=3), "W2", "python time / compiled time").interval
    assert a == b


def test_a_missing_cell_says_why_and_has_no_value() -> None:
    res = _results([_cell("python", "W2", [1050, 1060])], unavailable={"compiled": "compiled core not loaded (no module)"})
    t = _target(runner.evaluate_targets(res), "W2", "python time / compiled time")
    assert t.value is None and t.interval is None and t.status == "n/a"
    assert t.why_missing == "compiled: compiled core not loaded (no module)"


def test_a_missing_framework_is_named_for_each_of_its_stacks() -> None:
    res = _results([_cell("compiled", "W5", [1500, 1600])], unavailable={"django": "django not importable"})
    t = _target(runner.evaluate_targets(res), "W5", "django-nocommon+asok_fast overhead / django-nocommon time")
    assert t.status == "n/a"
    assert t.why_missing == "django-nocommon+asok_fast: django not importable; django-nocommon: django not importable"


def _threads(workload: str, one: List[float], two: List[float]) -> Dict[str, dict]:
    m1, m2 = sorted(one)[len(one) // 2], sorted(two)[len(two) // 2]
    return {"compiled": {"stack": "compiled", "workload": workload, "rps_1": m1, "rps_2": m2, "ratio": m2 / m1,
                         "samples_1": list(one), "samples_2": list(two)}}


def test_sizes_and_threads_on_w3_are_information_and_the_table_says_which_coding() -> None:
    res = _results([
        _cell("compiled", "W3", [2_500_000] * 3, [2_400_000] * 3, bytes_out=23481, coding="zstd", gzip6_out=23363),
        _cell("floor", "W3", [2_600_000] * 3, [2_600_000] * 3, bytes_out=23363, coding="gzip", gzip6_out=23363),
    ], threads=_threads("W3", [400.0, 390.0, 410.0], [780.0, 760.0, 800.0]))
    res.targets = [t.as_dict() for t in runner.evaluate_targets(res)]
    measured = [t for t in res.targets if t["status"] != "n/a"]
    assert [(t["workload"], t["target"]) for t in measured] == [("W3", "compiled overhead / C-work floor")]
    threads = next(t for t in res.targets if "thread" in t["target"])
    assert threads["workload"] == "W8" and threads["value"] is None and threads["why_missing"] == "compiled: not measured"
    table = runner.render_table(res)
    assert "W3 compressed size: compiled zstd 23481 B, floor gzip 23363 B" in table
    assert "W3 throughput, compiled: one thread 400 req/s, two threads 780 req/s (x1.95)" in table


def test_two_threads_on_w8_is_a_target_with_an_interval_from_the_paired_reps() -> None:
    one, two = [400.0, 390.0, 410.0, 405.0, 395.0], [700.0, 690.0, 720.0, 640.0, 710.0]
    res = _results([_cell("compiled", "W8", [1.0, 1.0])], threads=_threads("W8", one, two))
    t = _target(runner.evaluate_targets(res), "W8", "compiled req/s two threads / one thread")
    assert t.value == pytest.approx(700.0 / 400.0) and t.status == "PASS"
    lo, hi = t.interval
    assert min(two) / max(one) <= lo <= t.value <= hi <= max(two) / min(one)
    res.threads["compiled"].update(rps_2=660.0, ratio=1.65)
    t = _target(runner.evaluate_targets(res), "W8", "compiled req/s two threads / one thread")
    assert t.status == "MISS"


def test_body_size_targets_compare_with_gzip6_of_the_same_body() -> None:
    res = _results([
        _cell("compiled", "W7", [9_000] * 3, [8_000] * 3, bytes_out=331, coding="zstd", gzip6_out=348),
        _cell("compiled", "W8", [400_000] * 3, [390_000] * 3, bytes_out=23_700, coding="zstd", gzip6_out=23_397),
        _cell("compiled", "W9", [900_000] * 3, [890_000] * 3, bytes_out=21_832, coding="br", gzip6_out=23_397),
        _cell("floor", "W7", [11_000] * 3, [11_000] * 3),
        _cell("floor", "W8", [1_500_000] * 3, [1_500_000] * 3),
        _cell("floor", "W9", [1_500_000] * 3, [1_500_000] * 3),
    ])
    targets = runner.evaluate_targets(res)
    w7 = _target(targets, "W7", "compiled body / gzip-6 body")
    assert w7.value == pytest.approx(331 / 348) and w7.status == "PASS" and w7.interval is None
    assert w7.detail == "zstd 331 B vs gzip-6 348 B of the same body"
    assert _target(targets, "W8", "compiled body / gzip-6 body").status == "MISS"  # 1.013 > 1.01
    assert _target(targets, "W9", "compiled body / gzip-6 body").value == pytest.approx(21_832 / 23_397)
    assert _target(targets, "W7", "compiled overhead / gzip-6 floor").value == pytest.approx(8 / 11)
    assert _target(targets, "W8", "compiled overhead / gzip-6 floor").value == pytest.approx(0.26)
    assert _target(targets, "W9", "compiled overhead / gzip-6 floor").status == "PASS"  # 0.593


def test_a_body_sent_as_is_has_no_size_ratio() -> None:
    res = _results([_cell("compiled", "W7", [900] * 3, [800] * 3, bytes_out=1433)])
    t = _target(runner.evaluate_targets(res), "W7", "compiled body / gzip-6 body")
    assert t.status == "n/a" and t.why_missing == "compiled: sent no compressed body"


def test_table_and_json_carry_interval_and_verdict() -> None:
    res = _results([
        _cell("python", "W2", PYTHON_W2),
        _cell("compiled", "W2", COMPILED_W2),
        _cell("floor", "W2", [400] * 10, [400] * 10),
    ])
    res.cells[("compiled", "W2")].diffs[:] = [c - 200 for c in COMPILED_W2]
    res.targets = [t.as_dict() for t in runner.evaluate_targets(res)]
    table = runner.render_table(res)
    line = next(l for l in table.splitlines() if "python time / compiled time" in l and "W2" in l)
    assert line.split()[:2] == ["MISS*", "W2"]
    lo, hi = next(t for t in res.targets if t["target"] == "python time / compiled time" and t["workload"] == "W2")["interval_95"]
    assert f"[{lo:.2f}, {hi:.2f}]" in line
    assert "*: the interval straddles the limit" in table
    floor_line = next(l for l in table.splitlines() if "compiled overhead / MD5 floor" in l)
    assert floor_line.split()[:2] == ["PASS", "W2"]
    assert "0.381" in floor_line  # (352.5 - 200) / 400: three decimals below 1
    data = json.loads(json.dumps(runner.results_json(res)))
    t = next(t for t in data["targets"] if t["target"] == "python time / compiled time" and t["workload"] == "W2")
    assert t["decided"] is False and t["status"] == "MISS" and t["interval_95"] == [lo, hi]
    assert [(t["workload"], t["target"], t["op"], t["limit"]) for t in data["targets"]] == TARGETS
    assert f"[{lo:.2f}, {hi:.2f}]" in runner.render_svg(res)


def test_percentiles_pick_the_ends_of_the_middle_95_percent() -> None:
    values = [float(v) for v in range(1001)]  # 0..1000
    assert runner._percentiles(values) == (25.0, 975.0)
    assert runner._percentiles([5.0, 1.0]) == (1.0, 5.0)
    assert math.isclose(runner._percentiles([2.0] * 7)[0], 2.0)


# --- issue 16: the compressed-body cache, ISA-L, the shared tier -------------------------------


def test_cache_hits_on_the_gzip_client_workloads_compare_with_the_gzip6_floor() -> None:
    res = _results([
        _cell("compiled", "W10", [7_000] * 4, [3_900, 4_000, 4_100, 4_000]),
        _cell("floor", "W10", [10_000] * 4, [10_000] * 4),
        _cell("compiled", "W11", [240_000] * 4, [230_000] * 4),
        _cell("floor", "W11", [1_800_000] * 4, [1_800_000] * 4),
    ])
    targets = runner.evaluate_targets(res)
    w10 = _target(targets, "W10", "compiled overhead / gzip-6 floor")
    assert w10.value == pytest.approx(0.4) and w10.status == "PASS"  # the limit itself passes
    assert w10.detail.startswith("cache hits: ")
    w11 = _target(targets, "W11", "compiled overhead / gzip-6 floor")
    assert w11.value == pytest.approx(230 / 1800) and w11.status == "PASS"
    res.cells[("compiled", "W11")].diffs[:] = [370_000] * 4
    assert _target(runner.evaluate_targets(res), "W11", "compiled overhead / gzip-6 floor").status == "MISS"  # 0.206


def test_cache_misses_compare_with_the_same_stack_cache_off_round_by_round() -> None:
    # The cache's misses add 2 % in every round, though the rounds vary 2x.
    off = [10_000, 12_000, 20_000, 11_000, 15_000, 10_500]
    on = [o * 102 // 100 for o in off]
    cells = []
    for w in runner.MISS_WORKLOADS:
        cells += [_cell("compiled", w, on, on), _cell("compiled-nocache", w, off, off)]
    targets = runner.evaluate_targets(_results(cells))
    for w in runner.MISS_WORKLOADS:
        t = _target(targets, w, "compiled overhead / compiled-nocache overhead")
        assert t.value == pytest.approx(1.02, abs=1e-4) and t.status == "PASS" and t.decided is True
        assert t.interval == (pytest.approx(1.02, abs=1e-3), pytest.approx(1.02, abs=1e-3))
    res = _results([_cell("compiled", "W12", [12_200] * 3, [12_200] * 3), _cell("compiled-nocache", "W12", [11_000] * 3, [11_000] * 3)])
    t = _target(runner.evaluate_targets(res), "W12", "compiled overhead / compiled-nocache overhead")
    assert t.value == pytest.approx(12.2 / 11) and t.status == "MISS"
    assert t.detail == "cache misses: 12.2 us vs cache off 11.0 us"


def test_isal_target_and_its_reason_when_isal_is_missing() -> None:
    res = _results([
        _cell("compiled-isal", "W11", [330_000] * 3, [320_000] * 3),
        _cell("floor", "W11", [1_800_000] * 3, [1_800_000] * 3),
    ])
    t = _target(runner.evaluate_targets(res), "W11", "compiled-isal overhead / gzip-6 floor")
    assert t.value == pytest.approx(320 / 1800) and t.status == "PASS"
    res = _results([_cell("floor", "W11", [1_800_000] * 3, [1_800_000] * 3)],
                   unavailable={"compiled-isal": "the isal package is not installed (pip install 'asok_fast[isal]')"})
    t = _target(runner.evaluate_targets(res), "W11", "compiled-isal overhead / gzip-6 floor")
    assert t.status == "n/a" and t.why_missing == "compiled-isal: the isal package is not installed (pip install 'asok_fast[isal]')"


def _tier_run(role: str, request_us: float, gzip6_us: float, encodes: int = 0) -> dict:
    return {"role": role, "core": "compiled", "request_ns": request_us * 1000, "gzip6_ns": gzip6_us * 1000,
            "encodes": encodes, "status": 200, "coding": "gzip", "decodes_to_page": True,
            "from_tier": encodes == 0, "stored_bytes": 23363, "bytes_out": 23363}


def _tier(cold: List[dict], warm: List[dict]) -> dict:
    return {"redis_version": "7.0.15", "port": 6390, "pid": 4242, "workload": "W11", "why_not": {},
            "cores": {"compiled": {"first": _tier_run("first", 3800, 1350, encodes=1), "cold": cold, "warm": warm}}}


def test_shared_tier_targets_count_compressions_and_time_the_first_request_for_the_page() -> None:
    cold = [_tier_run("cold", us, 1350) for us in (2400, 2500, 2300)]
    warm = [_tier_run("warm", us, g) for us, g in ((520, 1350), (540, 1300), (500, 1400))]
    res = _results([_cell("compiled", "W11", [1.0, 1.0])])
    res.shared_tier = _tier(cold, warm)
    targets = runner.evaluate_targets(res)
    count = _target(targets, "W11", runner.TIER_ENCODES)
    assert count.value == 0 and count.status == "PASS"
    assert count.detail.startswith("0 in 6 fresh processes (6 served the 1st process's bytes); the 1st process compressed 1x")
    time_ = _target(targets, "W11", runner.TIER_TIME)
    assert time_.value == pytest.approx(520 / 1350) and time_.status == "PASS"
    lo, hi = time_.interval
    assert 500 / 1400 <= lo <= time_.value <= hi <= 540 / 1300
    assert "very first request, opening its Redis connection: 2400 us (1.78x)" in time_.detail
    res.targets = [t.as_dict() for t in targets]
    table = runner.render_table(res)
    assert "shared tier: redis-server 7.0.15 on 127.0.0.1:6390 (pid 4242)" in table
    assert "0 compressions in 3), after another page 520 us (0 in 3)" in table
    assert json.loads(json.dumps(runner.results_json(res)))["shared_tier"]["cores"]["compiled"]["warm"][0]["request_ns"] == 520_000
    # A second process that compressed fails the count.
    res.shared_tier = _tier(cold, warm[:2] + [_tier_run("warm", 1900, 1350, encodes=1)])
    assert _target(runner.evaluate_targets(res), "W11", runner.TIER_ENCODES).status == "MISS"


def test_shared_tier_targets_say_why_they_were_not_measured() -> None:
    res = _results([_cell("compiled", "W11", [1.0, 1.0])])
    for tier, why in (
        ({}, "not measured (asok-fast bench --redis)"),
        ({"skipped": "redis-server not found (Debian: apt-get install redis-server)"}, "redis-server not found (Debian: apt-get install redis-server)"),
        ({"cores": {}, "why_not": {"compiled": "compiled core not loaded"}}, "compiled: compiled core not loaded"),
    ):
        res.shared_tier = tier
        for name in (runner.TIER_ENCODES, runner.TIER_TIME):
            t = _target(runner.evaluate_targets(res), "W11", name)
            assert t.status == "n/a" and t.value is None and t.why_missing == why
    res.shared_tier = {"skipped": "the redis package is not importable"}
    res.targets = [t.as_dict() for t in runner.evaluate_targets(res)]
    assert "shared tier (--redis): skipped: the redis package is not importable" in runner.render_table(res)


def test_the_shared_tier_is_skipped_with_a_reason_without_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    assert runner.measure_shared_tier(2) == {"skipped": "redis-server not found (Debian: apt-get install redis-server)"}


def test_the_shared_tier_measurement_against_a_real_redis_server() -> None:
    """``--redis`` end to end with one fresh process of each kind: the first process
    compresses W3's page once and fills the tier; the fresh ones compress nothing
    and send its bytes; the server is gone afterwards.  (No timing asserted.)"""
    why = runner._tier_unavailable()
    if why:
        pytest.skip(why)
    tier = runner.measure_shared_tier(1)
    assert tier.get("skipped") is None and tier["cores"], tier
    for name, data in tier["cores"].items():
        first = data["first"]
        assert first["encodes"] == 1 and first["from_tier"] and first["decodes_to_page"], (name, first)
        for run in data["cold"] + data["warm"]:
            assert run["encodes"] == 0 and run["from_tier"] and run["decodes_to_page"], (name, run)
            assert run["status"] == 200 and run["coding"] == "gzip" and run["bytes_out"] == first["stored_bytes"]
    with pytest.raises(ProcessLookupError):
        os.kill(tier["pid"], 0)
