"""Bringup: the node set described once, launched by launch files or by a plain-Python runner."""
