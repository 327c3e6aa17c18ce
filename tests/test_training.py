"""The profile-guided build's training mix takes the paths it is there to train.

A part that silently stopped reaching its path (a 304 that became a 200, a
stream that got buffered) would leave that path untrained: GCC would lay it
out as cold code.  The mix runs on whichever core is the default; the layout
matters only for the compiled one, but the paths are the same on both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, Tuple

import pytest

import asok_fast
from asok_fast.benchmarks import training
from asok_fast.benchmarks import workloads as wl


@pytest.fixture(scope="module")
def parts() -> Dict[str, Tuple[str, Dict[str, str], int]]:
    return {name: (status, dict(headers), length) for name, (status, headers, length) in training.train().items()}


W1_BODY = wl.ROUTES[wl.by_id("W1").path][1]


def test_the_six_workloads(parts) -> None:
    status, headers, length = parts["W1"]
    assert status == "200 OK" and headers["Content-Encoding"] == "gzip"
    assert headers["ETag"].endswith('-gzip"') and headers["Access-Control-Allow-Origin"] == wl.ORIGIN
    assert int(headers["Content-Length"]) == length < len(W1_BODY)
    assert parts["W2"][0] == "304 Not Modified" and parts["W2"][2] == 0
    assert parts["W3"][1]["Content-Encoding"] == "gzip"
    assert parts["W4"][0] == "204 No Content" and parts["W4"][1]["Access-Control-Allow-Origin"] == wl.ORIGIN
    for name, size in (("W5", 100), ("W6", 20 * 1024)):
        status, headers, length = parts[name]
        assert status == "200 OK" and "Content-Encoding" not in headers and "ETag" in headers and length == size


def test_the_other_paths(parts) -> None:
    status, headers, length = parts["head"]
    assert status == "200 OK" and length == 0 and headers["Content-Length"] == parts["W1"][1]["Content-Length"]
    status, headers, length = parts["no gzip"]
    assert "Content-Encoding" not in headers and length == len(W1_BODY)
    assert "Access-Control-Allow-Origin" not in parts["other origin"][1]
    assert "Access-Control-Allow-Origin" not in parts["no origin"][1]
    assert parts["no origin"][1]["Vary"] == "Accept-Encoding, Origin"
    status, headers, length = parts["sized body"]
    assert headers["Content-Encoding"] == "gzip" and headers["ETag"] == parts["W1"][1]["ETag"]
    status, headers, length = parts["stream"]
    assert headers["Content-Encoding"] == "gzip" and "Content-Length" not in headers and "ETag" not in headers
    assert parts["if-modified-since"][0] == "304 Not Modified"
    assert parts["wildcard preflight"][0] == "204 No Content"
    assert parts["wildcard preflight"][1]["Access-Control-Allow-Origin"] == "*"
    assert parts["wildcard"][1]["Access-Control-Allow-Origin"] == "*"
    status, headers, length = parts["features off"]
    assert set(headers) == {"Content-Type", "Content-Length"} and length == 100


def test_main_refuses_to_train_the_pure_core(monkeypatch, capsys) -> None:
    monkeypatch.setattr(asok_fast, "IMPLEMENTATION", "python")
    assert training.main() == 1
    assert "compiled core is not in use" in capsys.readouterr().err


@pytest.mark.compiled
@pytest.mark.skipif(asok_fast.IMPLEMENTATION != "compiled", reason="the compiled core is not the default here")
def test_main_trains_the_compiled_core(tmp_path) -> None:
    # The package this process imported, whether installed or a built
    # checkout: from an empty directory (``-m`` puts the working directory
    # first on sys.path), with that package's parent on the path.
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(asok_fast.__file__))))
    done = subprocess.run(
        [sys.executable, "-m", "asok_fast.benchmarks.training"], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "trained on 16 kinds of request through the compiled core"
