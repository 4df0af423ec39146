#!/usr/bin/env bash
# Soak test: the closed-loop demo stack for N minutes with a report (crashes, restarts, RSS per node,
# latency p99 per window, departures): soak.json, summary.md, soak.png.
#   scripts/soak.sh [--minutes 30] [--window-minutes 5] [--out DIR] ...   (see --help)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec python -m minipamayo_ros.bringup.soak "$@"
