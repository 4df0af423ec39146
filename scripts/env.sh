# Source this to use the package built by scripts/setup.sh:  source scripts/env.sh
# Sets the venv, the colcon install overlay and loopback-only DDS (nothing leaves 127.0.0.1).
_MP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIRTUAL_ENV="$(cat "$_MP_ROOT/build/.minipamayo-venv")"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# shellcheck disable=SC1091
set +u  # colcon setup files use unset variables
source "$_MP_ROOT/install/setup.bash"
# loopback DDS: RMW, the loopback Fast DDS profile, ROS_DOMAIN_ID (kept if already set), and the
# discovery-range variable in the spelling of the running distro only (minipamayo_ros/dds_env.py)
eval "$("$VIRTUAL_ENV/bin/python" -m minipamayo_ros.dds_env --domain-id "${ROS_DOMAIN_ID:-$(( 1 + $$ % 100 ))}")"
unset _MP_ROOT
