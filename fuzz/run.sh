#!/usr/bin/env bash
# Fuzz the compiled core against the pure one for a given time (atheris).
#
#   fuzz/run.sh SECONDS [extra libFuzzer flags...]
#
# PYTHON         interpreter to use (default: python3).  Plain mode: asok_fast
#                with its compiled core must be importable by it (pip install .).
# FUZZ_NATIVE=1  also instrument the C code: build the checkout's extension with
#                clang -fsanitize=address,fuzzer-no-link into a venv under the
#                work directory and run with atheris' ASan+libFuzzer runtime
#                preloaded (coverage of the C parsers guides the fuzzer, and every
#                out-of-bounds access in the extension is an ASan crash).  Needs
#                clang (CLANG=clang-14 ...; Debian: apt-get install clang).
# FUZZ_WORKDIR   where the growing corpus and any crash files go (default: a new
#                temporary directory, so that fuzz/corpus, the seeds, stays small)
# ASOK_FUZZ_KNOWN  comma-separated names of findings already reported (see
#                fuzz/fuzz_core.py), skipped so that a long run looks for new ones
#
# atheris is installed with pip when missing.  One process: the machines this
# runs on are small.  Exits non-zero when libFuzzer reports a crash (a
# divergence between the twins, an exception SPEC does not allow, a broken
# property, or a real crash of the extension); the input is kept as
# $FUZZ_WORKDIR/crash-* and replays with
#   $PYTHON fuzz/fuzz_core.py --replay $FUZZ_WORKDIR/crash-...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
seconds="${1:?usage: fuzz/run.sh SECONDS [libFuzzer flags...]}"
shift
py="${PYTHON:-python3}"
work="${FUZZ_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/asok-fuzz.XXXXXX")}"
mkdir -p "$work/corpus"

install_atheris() {  # install_atheris PYTHON
  if ! "$1" -c 'import atheris' 2>/dev/null; then
    echo "installing atheris for $("$1" -V)" >&2
    # atheris 3 has wheels for CPython 3.10+; for 3.9 only 2.3.0 has one
    # (a source build needs clang with libFuzzer).
    "$1" -m pip install -q atheris || "$1" -m pip install -q 'atheris<3'
  fi
}

preload=()
if [ "${FUZZ_NATIVE:-0}" = 1 ]; then
  clang="${CLANG:-$(command -v clang || command -v clang-14 || true)}"
  [ -n "$clang" ] || { echo "FUZZ_NATIVE=1 needs clang (set CLANG=...)" >&2; exit 2; }
  venv="$work/venv"
  if [ ! -x "$venv/bin/python" ]; then
    echo "building an instrumented asok_fast with $clang in $venv" >&2
    "$py" -m venv "$venv"
    install_atheris "$venv/bin/python"
    rm -rf "$work/src" && mkdir -p "$work/src"
    tar -C "$root" --exclude=./.git --exclude=./build --exclude=./dist --exclude='*.so' \
      --exclude=./asok_fast/_core_c.c --exclude='*.egg-info' --exclude=__pycache__ --exclude=.hypothesis \
      -cf - . | tar -C "$work/src" -xf -
    CC="$clang" LDSHARED="$clang -shared" \
    CFLAGS="-fsanitize=address,fuzzer-no-link -fno-omit-frame-pointer -g" \
    LDFLAGS="-fsanitize=address,fuzzer-no-link" \
    ASOK_FAST_REQUIRE_EXTENSIONS=1 \
      "$venv/bin/pip" install -q --no-cache-dir "$work/src"
  fi
  py="$venv/bin/python"
  runtime="$(cd / && "$py" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')"
  preload=(env "LD_PRELOAD=$runtime" PYTHONMALLOC=malloc
           "ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}")
else
  install_atheris "$py"
fi
(cd / && "${preload[@]}" "$py" -c '
import sys
from asok_fast import _core
compiled, why = _core.find_compiled()
if compiled is None:
    sys.exit(f"the fuzz target compares the compiled core with the pure one ({why})")') || {
  echo "fuzz/run.sh needs asok_fast's compiled core, loadable by $py (pip install . first)" >&2
  exit 2
}

cp -n "$here"/corpus/* "$work/corpus/" 2>/dev/null || true
echo "fuzzing for ${seconds}s with $("$py" -V)${preload:+ (native coverage + ASan)}; corpus and artifacts in $work" >&2

started=$(date +%s)
set +e
(cd "$work" && "${preload[@]}" "$py" "$here/fuzz_core.py" "$work/corpus" \
  -max_total_time="$seconds" \
  -max_len=4096 \
  -timeout=60 \
  -rss_limit_mb=4096 \
  -artifact_prefix="$work/" \
  -print_final_stats=1 \
  "$@") 2>&1 | tee "$work/fuzz.log"
status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - started ))

runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/fuzz.log" | grep -o '[0-9]*$' | tail -n 1)
echo "done: ${runs:-?} executions in ${elapsed}s (asked ${seconds}s), corpus $(ls "$work/corpus" | wc -l) inputs, exit $status" >&2
exit "$status"
