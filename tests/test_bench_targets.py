"""The benchmark runner's arithmetic: target ratios from the rounds, and the
interval that says how far this run's own noise could move them.

No timing happens here: the cells are made by hand, so every number is known.
"""

from __future__ import annotations

import json
import math
from typing import Dict, List, Optional, Tuple

import pytest

from asok_fast.benchmarks import runner
from asok_fast.benchmarks.runner import CellResult, Results


def _cell(stack: str, w: str, samples: List[float], diffs: Optional[List[float]] = None, bytes_out: Optional[int] = None) -> CellResult:
    return CellResult(stack, w, per_batch=1, samples=list(samples), diffs=list(diffs or []), bytes_out=bytes_out)


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


def test_ratio_is_of_the_medians_and_the_interval_holds_it() -> None:
    # python: 10 rounds around 1400 ns; compiled around 350 ns, with noise.
    python = [1400, 1380, 1500, 1350, 1420, 1600, 1390, 1410, 1300, 1450]
    compiled = [350, 360, 340, 420, 330, 355, 345, 365, 400, 338]
    res = _results([_cell("python", "W4", python), _cell("compiled", "W4", compiled)])
    t = _target(runner.evaluate_targets(res), "W4", "python time / compiled time")
    assert t.value == pytest.approx(1405 / 352.5)
    assert t.status == "MISS"  # 3.99 < 4
    lo, hi = t.interval
    assert lo <= t.value <= hi
    assert lo < 4.0 < hi
    assert t.decided is False


def test_pairs_measured_in_one_round_stay_paired() -> None:
    # A slow phase of the machine hits both cells of a round alike: the ratio is
    # 2.0 in every round, though the times themselves vary 4x between rounds.
    bare = [500, 900, 2000, 650, 1200, 800, 1700, 550, 1000, 600]
    compiled = [2 * b for b in bare]
    res = _results([_cell("bare", "W5", bare), _cell("compiled", "W5", compiled)])
    t = _target(runner.evaluate_targets(res), "W5", "compiled time / bare WSGI call")
    assert t.value == 2.0
    assert t.interval == (2.0, 2.0)
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


def test_every_round_the_same_gives_a_point_interval() -> None:
    res = _results([_cell("python", "W5", [9000] * 8), _cell("compiled", "W5", [1500] * 8)])
    t = _target(runner.evaluate_targets(res), "W5", "python time / compiled time")
    assert t.value == 6.0 and t.interval == (6.0, 6.0) and t.decided is True


def test_the_interval_does_not_depend_on_luck_between_calls() -> None:
    res = _results([_cell("python", "W4", [1300, 1500, 1400, 1350]), _cell("compiled", "W4", [300, 400, 350, 320])])
    a = _target(runner.evaluate_targets(res, seed=3), "W4", "python time / compiled time").interval
    b = _target(runner.evaluate_targets(res, seed=3), "W4", "python time / compiled time").interval
    assert a == b


def test_a_missing_cell_says_why_and_has_no_value() -> None:
    res = _results([_cell("compiled", "W4", [350, 360])], unavailable={"python": "no python core here"})
    t = _target(runner.evaluate_targets(res), "W4", "python time / compiled time")
    assert t.value is None and t.interval is None and t.status == "n/a"
    assert t.why_missing == "python: no python core here"


def test_thread_scaling_interval_resamples_the_repetitions() -> None:
    threads = {"compiled": {"stack": "compiled", "workload": "W3", "rps_1": 400.0, "rps_2": 780.0, "ratio": 1.95,
                            "samples_1": [400.0, 390.0, 410.0], "samples_2": [780.0, 760.0, 800.0]}}
    res = _results([_cell("compiled", "W3", [2_500_000] * 3, [2_400_000] * 3)], threads=threads)
    t = _target(runner.evaluate_targets(res), "W3", "two threads / one thread (req/s)")
    assert t.value == 1.95
    lo, hi = t.interval
    assert 760 / 410 <= lo <= hi <= 800 / 390


def test_size_target_has_no_interval() -> None:
    res = _results([
        _cell("compiled", "W3", [2_500_000] * 4, [2_400_000] * 4, bytes_out=23363),
        _cell("floor", "W3", [2_600_000] * 4, [2_600_000] * 4, bytes_out=23363),
    ])
    t = _target(runner.evaluate_targets(res), "W3", "compressed size / floor's size")
    assert t.value == 1.0 and t.interval is None and t.status == "PASS" and t.decided is None


def test_table_and_json_carry_interval_and_verdict() -> None:
    res = _results([
        _cell("python", "W4", [1400, 1380, 1500, 1350, 1420, 1600, 1390, 1410, 1300, 1450]),
        _cell("compiled", "W4", [350, 360, 340, 420, 330, 355, 345, 365, 400, 338]),
        _cell("bare", "W4", [400] * 10),
    ])
    res.targets = [t.as_dict() for t in runner.evaluate_targets(res)]
    table = runner.render_table(res)
    line = next(l for l in table.splitlines() if "python time / compiled time" in l and "W4" in l)
    assert line.split()[:2] == ["MISS*", "W4"]
    lo, hi = next(t for t in res.targets if t["target"] == "python time / compiled time" and t["workload"] == "W4")["interval_95"]
    assert f"[{lo:.2f}, {hi:.2f}]" in line
    assert "*: the interval straddles the limit" in table
    bare_line = next(l for l in table.splitlines() if "compiled time / bare WSGI call" in l and "W4" in l)
    assert bare_line.split()[:2] == ["PASS", "W4"]
    data = json.loads(json.dumps(runner.results_json(res)))
    t = next(t for t in data["targets"] if t["target"] == "python time / compiled time" and t["workload"] == "W4")
    assert t["decided"] is False and t["status"] == "MISS" and t["interval_95"] == [lo, hi]
    assert f"[{lo:.2f}, {hi:.2f}]" in runner.render_svg(res)


def test_percentiles_pick_the_ends_of_the_middle_95_percent() -> None:
    values = [float(v) for v in range(1001)]  # 0..1000
    assert runner._percentiles(values) == (25.0, 975.0)
    assert runner._percentiles([5.0, 1.0]) == (1.0, 5.0)
    assert math.isclose(runner._percentiles([2.0] * 7)[0], 2.0)
