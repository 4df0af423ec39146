#!/usr/bin/env bash
# The test command (README, .ci/run): set up + build, lint, static checks for the vehicle's platform
# (Python 3.10 floor, types against the ROS 2 Humble API: scripts/check_static.py), run pytest.
#   scripts/test.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" --dev
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
cd "$ROOT"
echo "[test] ruff check"
ruff check .
echo "[test] static checks (vermin: Python 3.10; mypy: ROS 2 Humble API)"
python scripts/check_static.py
echo "[test] pytest"
exec python -m pytest "$@"
