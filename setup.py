"""pip-installable ROS-free part of minipamayo_ros, for machines without ROS 2.

The ROS package (messages, nodes, launch files) is built by colcon from CMakeLists.txt and
package.xml; this file is NOT used by colcon. It exists for offline tooling on training
workstations and GPU boxes (simulator, dataset generation, training, ONNX export, engine build and
verification, benchmarks), where ``pip install -e .[train]`` is all that is needed.
Importing ``minipamayo_ros.nodes`` or ``minipamayo_ros.msg`` still requires a ROS 2 install.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["minipamayo_ros", "minipamayo_ros.*"]),
)
