#!/usr/bin/env bash
# The main command (README): closed-loop demo on the built-in simulator.
#   scripts/demo.sh [--seed N] [--duration S] [--out DIR] ...   (see --help)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec python -m minipamayo_ros.bringup.demo "$@"
