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
# Without a ROS_DOMAIN_ID, this shell leases one (the flock of minipamayo_ros/dds_env.lease_domain_id,
# held on a descriptor of this shell until it exits): tests, demos and benchmarks started elsewhere
# on this machine then never share its domain.
if [ -z "${ROS_DOMAIN_ID:-}" ]; then
    _MP_LEASES="${MINIPAMAYO_DOMAIN_LEASE_DIR:-/tmp/minipamayo_ros-domain-leases}"
    mkdir -p "$_MP_LEASES"
    for _mp_i in $(seq 0 99); do
        _mp_id=$(( 1 + ($$ + _mp_i) % 100 ))
        exec {_MP_LEASE_FD}>>"$_MP_LEASES/$_mp_id.lock"
        if flock -n "$_MP_LEASE_FD"; then ROS_DOMAIN_ID=$_mp_id; break; fi
        exec {_MP_LEASE_FD}>&-
    done
    unset _MP_LEASES _mp_i _mp_id
fi
eval "$("$VIRTUAL_ENV/bin/python" -m minipamayo_ros.dds_env --domain-id "${ROS_DOMAIN_ID:-$(( 1 + $$ % 100 ))}")"
unset _MP_ROOT
