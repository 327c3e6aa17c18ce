"""Draw docs/bench.svg again from a saved ``asok-fast bench --json`` file.

    python results/render_svg.py results/2026-12-04-99b907e.json docs/bench.svg

The chart is the one ``asok-fast bench --svg`` draws (the runner's own ``render_svg``),
fed from the saved run instead of a new one, so the committed chart always matches a
committed JSON file.
"""

import json
import sys

from asok_fast.benchmarks import runner


def load(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    cells = {}
    for stack, per_workload in data["results"].items():
        for w, c in per_workload.items():
            # One diff equal to the saved overhead: its median is that overhead.
            diffs = [] if c["overhead_ns"] is None else [c["overhead_ns"]]
            cells[(stack, w)] = runner.CellResult(stack, w, c["requests_per_batch"], c["samples_ns"], diffs, c["bytes_out"], c["status"], c["coding"], c["gzip6_out"])
    failed = {tuple(k.split(" ", 1)): v for k, v in data["check_failed"].items()}
    skipped = {tuple(k.split(" ", 1)): v for k, v in data["skipped"].items()}
    return runner.Results(
        machine=data["machine"], stacks=data["stacks"], workloads=data["workloads"], cells=cells,
        skipped=skipped, failed=failed, unavailable=data["unavailable"], threads=data["threads"],
        rounds=data["rounds"], seconds=data["seconds"], clock=data["clock"], targets=data["targets"],
        shared_tier=data.get("shared_tier", {}),
    )


if __name__ == "__main__":
    source, target = sys.argv[1:3]
    with open(target, "w", encoding="utf-8") as f:
        f.write(runner.render_svg(load(source)))
    print(f"wrote {target} from {source}")
