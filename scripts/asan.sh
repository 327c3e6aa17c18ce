#!/usr/bin/env bash
# Run the test suite against a compiled core built with AddressSanitizer.
#
#   scripts/asan.sh [pytest arguments...]      (default: the whole suite, -q)
#
# 1. copies the checkout (no build products) to a throwaway directory and
#    builds asok_fast there into a throwaway venv with
#    CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g", LDFLAGS="-fsanitize=address";
# 2. runs pytest from that copy with libasan preloaded (CPython itself is not
#    instrumented, so the runtime must come first), every allocation going
#    through malloc (PYTHONMALLOC=malloc: without it small bytes objects live
#    in pymalloc arenas and an overflow into a neighbour would go unseen), and
#    ASAN_OPTIONS=detect_leaks=0 (CPython "leaks" at exit by design);
# 3. fails when pytest fails or when any process (the test run, or a server
#    subprocess started by the tests, which inherit the environment) wrote an
#    AddressSanitizer report.  Reports go to $work/asan.<pid>.
#
# The tests run the compiled core through the `core` fixture's "compiled"
# parameter and as the package default (asok_fast.IMPLEMENTATION == "compiled"),
# so the whole suite is the compiled suite plus the pure twin's half; pass
# `-m compiled` to run only the compiled half.  Tools the tests run that are
# not Python (curl, chromium) hang with libasan preloaded: they are reached
# through shims on PATH that drop LD_PRELOAD; the Python servers the tests start
# (waitress, gunicorn, asok-fast serve) keep it, so they run the ASan build too.
#
# PYTHON       interpreter to build for (default python3)
# ASAN_WORKDIR where to build (default: a new temporary directory, removed on success)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python3}"
cc="${CC:-gcc}"
keep=0
if [ -n "${ASAN_WORKDIR:-}" ]; then work="$ASAN_WORKDIR"; keep=1; mkdir -p "$work"; else work="$(mktemp -d "${TMPDIR:-/tmp}/asok-asan.XXXXXX")"; fi

libasan="$("$cc" -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
  echo "no libasan.so for $cc (Debian: apt-get install libasan8, or gcc)" >&2
  exit 2
fi

echo "== copying the checkout to $work/src" >&2
rm -rf "$work/src"
mkdir -p "$work/src"
tar -C "$root" \
  --exclude=./.git --exclude=./build --exclude=./dist --exclude=./.venv \
  --exclude='*.so' --exclude='./asok_fast/_core_c.c' --exclude='*.egg-info' \
  --exclude=__pycache__ --exclude=.hypothesis --exclude=.pytest_cache --exclude=.benchmarks \
  -cf - . | tar -C "$work/src" -xf -

echo "== building with AddressSanitizer ($("$py" -V), $cc)" >&2
"$py" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
CC="$cc" \
CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" \
LDFLAGS="-fsanitize=address" \
ASOK_FAST_REQUIRE_EXTENSIONS=1 \
  "$work/venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir "$work/src[test]" 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "the ASan build failed" >&2; exit 2; }

so="$(cd / && LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0 "$work/venv/bin/python" -c 'from asok_fast._core import load_compiled; print(load_compiled().__file__)')"
if ! ldd "$so" | grep libasan >/dev/null; then  # not grep -q: with pipefail, ldd's SIGPIPE would count
  echo "the built extension $so is not linked with libasan" >&2
  exit 2
fi
echo "== built $so (linked with $(ldd "$so" | grep -o 'libasan[^ ]*' | sed -n 1p))" >&2

shims="$work/shims"
mkdir -p "$shims"
for tool in curl chromium chromium-browser google-chrome; do
  real="$(command -v "$tool" || true)"
  [ -n "$real" ] || continue
  printf '#!/bin/sh\nunset LD_PRELOAD\nexec %s "$@"\n' "$real" > "$shims/$tool"
  chmod +x "$shims/$tool"
done

if [ $# -eq 0 ]; then set -- -q; fi
rm -f "$work"/asan.*
echo "== pytest $* (LD_PRELOAD=$libasan PYTHONMALLOC=malloc)" >&2
set +e
(
  cd "$work/src"
  PATH="$shims:$PATH" \
  LD_PRELOAD="$libasan" \
  PYTHONMALLOC=malloc \
  ASAN_OPTIONS="detect_leaks=0:log_path=$work/asan:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1" \
    "$work/venv/bin/pytest" -p no:cacheprovider "$@"
)
status=$?
set -e

reports=$(ls "$work"/asan.* 2>/dev/null || true)
if [ -n "$reports" ]; then
  echo "== AddressSanitizer reports:" >&2
  for report in $reports; do echo "--- $report" >&2; cat "$report" >&2; done
  echo "ASAN: FAILED (reports above; build kept in $work)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "ASAN: no AddressSanitizer report, but pytest exited with $status (build kept in $work)" >&2
  exit "$status"
fi
echo "ASAN: OK: pytest passed and AddressSanitizer reported no error" >&2
if [ "$keep" -eq 0 ]; then rm -rf "$work"; fi
