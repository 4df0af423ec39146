"""InputThread (nodes/input_thread.py): a node's worker thread takes its subscriptions itself, in
order, then runs ``step()``; close() says whether a step is still running; a handler's exception is
kept for the main thread (real rclpy over loopback DDS)."""

from __future__ import annotations

import threading
import time

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from std_msgs.msg import Int32

from conftest import spin_until
from minipamayo_ros.nodes.input_thread import InputThread
from minipamayo_ros.nodes.polled_subscription import PolledSubscription

QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)


def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_inputs_are_taken_in_order_then_step_runs_on_the_thread(ros_node: tuple) -> None:
    node, executor = ros_node
    first, second = (PolledSubscription(node, Int32, f"input_{n}", QOS, raw=True) for n in ("a", "b"))
    pubs = [node.create_publisher(Int32, f"input_{n}", 10) for n in ("a", "b")]
    assert spin_until(executor, lambda: all(p.get_subscription_count() == 1 for p in pubs), 10.0)
    seen: list[tuple[str, int]] = []
    steps: list[int] = []
    threads: set[str] = set()

    def handler(name: str):
        def handle(raw: bytes) -> None:
            threads.add(threading.current_thread().name)
            seen.append((name, deserialize_message(raw, Int32).data))
        return handle

    inside, release = threading.Event(), threading.Event()
    release.set()

    def step() -> float:
        steps.append(len(seen))
        inside.set()
        release.wait(10.0)
        return 0.05  # asked again after 50 ms without input: the wait's timeout is honoured

    worker = InputThread(node, [(first, handler("a")), (second, handler("b"))], step, "input-test").start()
    try:
        assert _until(lambda: len(steps) >= 2)
        release.clear()
        inside.clear()
        assert inside.wait(10.0)  # the thread is held inside step(): both messages queue meanwhile
        pubs[1].publish(Int32(data=7))  # published first, taken second: order is the inputs' order
        pubs[0].publish(Int32(data=3))
        time.sleep(0.3)
        release.set()
        assert _until(lambda: len(seen) == 2)
        assert seen == [("a", 3), ("b", 7)]
        for i in range(5):
            pubs[0].publish(Int32(data=10 + i))
        assert _until(lambda: len(seen) == 7)
        assert [v for n, v in seen if n == "a"] == [3, 10, 11, 12, 13, 14]  # each message, in order
        n_steps = len(steps)
        time.sleep(0.5)
        assert 4 <= len(steps) - n_steps <= 15, len(steps) - n_steps  # ~every 50 ms, not busy-looping
        assert threads == {"input-test"}
    finally:
        assert worker.close(5.0)
    assert worker.failure is None and not worker.running


def test_close_says_whether_the_step_in_progress_has_returned(ros_node: tuple) -> None:
    """What the policy node's shutdown relies on before freeing the backend: False while a step is
    still running after the timeout, True once it returned (and for a thread never started)."""
    node, _executor = ros_node
    sub = PolledSubscription(node, Int32, "input_c", QOS, raw=True)
    entered, release = threading.Event(), threading.Event()

    def step() -> float:
        entered.set()
        release.wait(10.0)
        return float("inf")

    assert InputThread(node, [(sub, lambda _raw: None)], step, "never-started").close(0.01) is True
    worker = InputThread(node, [(sub, lambda _raw: None)], step, "stuck").start()
    assert entered.wait(10.0)
    assert worker.close(0.05) is False
    release.set()
    assert _until(lambda: not worker.running)
    assert worker.close(1.0) is True


def test_an_exception_in_a_handler_ends_the_thread_and_is_kept(ros_node: tuple) -> None:
    node, executor = ros_node
    sub = PolledSubscription(node, Int32, "input_d", QOS, raw=True)
    pub = node.create_publisher(Int32, "input_d", 10)
    assert spin_until(executor, lambda: pub.get_subscription_count() == 1, 10.0)

    def handle(_raw: bytes) -> None:
        raise RuntimeError("bad input handler")

    worker = InputThread(node, [(sub, handle)], lambda: float("inf"), "failing").start()
    pub.publish(Int32(data=1))
    assert _until(lambda: not worker.running)
    assert isinstance(worker.failure, RuntimeError) and "bad input handler" in str(worker.failure)
