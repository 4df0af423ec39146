#!/usr/bin/env bash
# Run the benchmarks (see bench/README.md):  scripts/bench.sh [--only NAME ...] [--quick] [--out DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" --dev
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec python -m bench.run "$@"
