"""On the vehicle: policy, follower (and text) nodes with config/drive.yaml.

    ros2 launch minipamayo_ros drive.launch.py [config_file:=my_car.yaml] [camera_topic:=...]
        [odom_topic:=...] [backend:=tensorrt] [engine:=/path/to/manifest.json]
        [use_sim_time:=false] [enable_text:=true] [namespace:=...]

The node set is described once in minipamayo_ros.bringup.stack (also used by the runner). Names are
relative: namespace:=car7 puts every topic under /car7 (/clock, /diagnostics stay global); relative
camera_topic/odom_topic values resolve there too, absolute ones are global.
"""

from minipamayo_ros.bringup.launch_actions import stack_launch_description
from minipamayo_ros.bringup.stack import drive_stack


def generate_launch_description():
    return stack_launch_description(lambda args, _values: drive_stack(args))
