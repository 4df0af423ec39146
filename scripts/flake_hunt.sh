#!/usr/bin/env bash
# Flake hunt: the whole test suite N times from a fresh clone of this checkout (as CI runs it),
# optionally with a CPU hog on one core and in a shuffled order; writes a per-test table
# (runs, failures, first failure's message) and what each run left behind (processes, /dev/shm).
#   scripts/flake_hunt.sh [--runs N] [--load | --load-runs M] [--shuffle] [--seed S] [--out DIR]
#                         [--keep] [-- PYTEST_ARGS...]                                (see --help)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" --dev >&2
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec python "$ROOT/scripts/flake_hunt.py" "$@"
