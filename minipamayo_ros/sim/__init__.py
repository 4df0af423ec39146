"""Built-in driving simulator (ROS-free): roads, vehicle, camera, expert, dataset, metrics."""
