"""minipamayo_ros: on-vehicle runtime for the minipamayo driving VLA.

In a colcon install this directory sits next to the message bindings that rosidl generates into
the same package (``minipamayo_ros.msg``). When the source tree is imported directly (offline
tooling, a pip install of the core), ``extend_path`` lets a built install on ``sys.path`` still
provide ``minipamayo_ros.msg``.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
