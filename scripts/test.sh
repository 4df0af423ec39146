#!/usr/bin/env bash
# The test command (README, .ci/run): set up + build, lint, type-check the TensorRT backend, run pytest.
#   scripts/test.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" --dev
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
cd "$ROOT"
echo "[test] ruff check"
ruff check .
echo "[test] pytest"
exec python -m pytest "$@"
