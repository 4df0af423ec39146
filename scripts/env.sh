# Source this to use the package built by scripts/setup.sh:  source scripts/env.sh
# Sets the venv, the colcon install overlay and loopback-only DDS (nothing leaves 127.0.0.1).
_MP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIRTUAL_ENV="$(cat "$_MP_ROOT/build/.minipamayo-venv")"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# shellcheck disable=SC1091
set +u  # colcon setup files use unset variables
source "$_MP_ROOT/install/setup.bash"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE="$_MP_ROOT/minipamayo_ros/resources/fastdds_loopback.xml"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 1 + $$ % 100 ))}"

export ROS_LOCALHOST_ONLY=1  # Humble spelling of the same (Jazzy also honours it)
unset _MP_ROOT
