"""Print README's performance table from a saved ``asok-fast bench --json`` file.

    python results/render_table.py results/2026-12-04-99b907e.json

Overhead per request over the same framework's bare app, in microseconds (the run's
medians), for each framework's own stack beside asok_fast around the same app, so the
committed table always matches a committed JSON file.
"""

import json
import sys

COLUMNS = [
    ("flask+ext", "Flask-Compress + Flask-CORS + ETags"),
    ("flask+asok_fast", "Flask + asok_fast"),
    ("django+mw", "Django's middleware + django-cors-headers"),
    ("django+asok_fast", "Django + asok_fast"),
    ("starlette+mw", "Starlette's CORS + GZip"),
    ("starlette+asok_fast", "Starlette + asok_fast"),
]
ROWS = {
    "W1": "1.4 KB JSON, compressed",
    "W2": "revalidation (`304`)",
    "W3": "140 KB HTML, compressed",
    "W4": "CORS preflight",
    "W5": "100 B text",
    "W7": "1.4 KB JSON, new each time",
    "W8": "140 KB HTML, new each time",
}
#: What a cell says when its stack does not run the workload (by the reason's start).
ABSENT = {"Starlette's middlewares send no ETag": "(no ETags)"}


def micro(ns: float) -> str:
    us = ns / 1000
    return f"{us:+.0f}" if abs(us) >= 100 else f"{us:+.3g}"


def table(data: dict) -> str:
    lines = ["| workload | " + " | ".join(title for _, title in COLUMNS) + " |",
             "| --- | " + " | ".join("---:" for _ in COLUMNS) + " |"]
    for w, title in ROWS.items():
        cells = []
        for stack, _ in COLUMNS:
            cell = data["results"].get(stack, {}).get(w)
            if cell is not None and cell["overhead_ns"] is not None:
                cells.append(micro(cell["overhead_ns"]))
                continue
            reason = data["skipped"].get(f"{stack} {w}", "")
            cells.append(next((text for start, text in ABSENT.items() if reason.startswith(start)), "n/a"))
        lines.append(f"| {w} {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print(table(json.load(f)))
