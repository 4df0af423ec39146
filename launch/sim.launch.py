"""The built-in simulator plus the drive stack on simulated time.

    ros2 launch minipamayo_ros sim.launch.py [seed:=0] [real_time_factor:=1.0] [backend:=...]
        [namespace:=car7] [use_sim_time:=true]

``namespace``: every node and topic under it (``/car7/vla/trajectory``); ``/clock`` stays global.
``use_sim_time:=true``: the simulator follows the ``/clock`` another simulator on the domain
publishes instead of publishing its own (a second simulated car: one clock per domain).
"""

from minipamayo_ros.bringup.launch_actions import stack_launch_description
from minipamayo_ros.bringup.stack import sim_stack


def generate_launch_description():
    return stack_launch_description(
        lambda args, values: sim_stack(args, seed=int(values["seed"]),
                                       real_time_factor=float(values["real_time_factor"])),
        extra_arguments={
            "seed": ("0", "simulator road seed"),
            "real_time_factor": ("1.0", "simulation speed relative to wall time"),
        },
    )
