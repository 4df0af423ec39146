"""Read and write rosbag2 bags without a ROS distro (``rosbags``), with this package's messages.

One typestore serves every tool: the ROS 2 Humble standard messages (the vehicle's distro) plus
``msg/*.msg`` of this package, so bags without embedded definitions (sqlite3 bags before
metadata version 8) still decode. Reading goes through rosbags' rosbag2 directory reader
(metadata versions 1-9, sqlite3 and mcap, split multi-file bags, zstd); writing uses
``rosbags.rosbag2.Writer`` (metadata version 9, mcap or sqlite3).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = "minipamayo_ros"
MSG_DIR = Path(__file__).resolve().parents[2] / "msg"

#: ROS message types the tools understand (anything else is skipped and listed)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
ODOMETRY = "nav_msgs/msg/Odometry"
TRAJECTORY = f"{PACKAGE}/msg/Trajectory"
EXPLANATION = f"{PACKAGE}/msg/Explanation"
CONTROL = f"{PACKAGE}/msg/ControlCommand"
CLOCK = "rosgraph_msgs/msg/Clock"
STRING = "std_msgs/msg/String"  # the simulator's JSON scene frames (scoring.frames)
STORAGES = ("mcap", "sqlite3")


class BagError(RuntimeError):
    """The bag cannot be used; the message says why and what the bag contains."""


def _msg_dirs() -> list[Path]:
    """Where this package's .msg files are: the source tree, else the installed share directory."""
    dirs = [MSG_DIR]
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(PACKAGE)) / "msg")
    except Exception:  # not installed through colcon (plain checkout)
        pass
    return [d for d in dirs if d.is_dir()]


@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """Humble standard types + this package's messages (cached; rosbags ``Typestore``)."""
    try:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    except ImportError as exc:  # pragma: no cover - dev requirement
        raise BagError("the bag tools need the 'rosbags' package: pip install 'rosbags>=0.10'") from exc
    store = get_typestore(Stores.ROS2_HUMBLE)
    dirs = _msg_dirs()
    if not dirs:
        raise BagError(f"cannot find this package's msg/*.msg files (looked in {MSG_DIR})")
    types: dict[str, Any] = {}
    for path in sorted(dirs[0].glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


@dataclass(frozen=True)
class BagInfo:
    """What a bag holds (all bags given, merged)."""

    paths: tuple[Path, ...]
    topics: tuple[TopicInfo, ...]
    start_ns: int  # first log time [ns] (0 for an empty bag)
    end_ns: int  # last log time [ns]
    message_count: int
    storage: str  # mcap | sqlite3 | mixed
    versions: tuple[int, ...] = field(default=())  # metadata versions

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) * 1e-9

    def topics_of(self, *msgtypes: str) -> list[TopicInfo]:
        return [t for t in self.topics if t.msgtype in msgtypes]

    def topic(self, name: str) -> TopicInfo | None:
        return next((t for t in self.topics if t.name == name), None)

    def estimate_count(self, name: str, start_ns: int | None = None, end_ns: int | None = None) -> int:
        """Messages of topic ``name`` in log times [start_ns, end_ns): exact for the whole bag,
        else pro rata of the time span (for progress bars; counting exactly would read the bag)."""
        t = self.topic(name)
        if t is None:
            return 0
        lo = self.start_ns if start_ns is None else max(start_ns, self.start_ns)
        hi = self.end_ns + 1 if end_ns is None else min(end_ns, self.end_ns + 1)
        span = self.end_ns + 1 - self.start_ns
        if lo <= self.start_ns and hi >= self.end_ns + 1:
            return t.count
        return max(0, round(t.count * (hi - lo) / span)) if span > 0 else 0

    def listing(self) -> str:
        """``/a (type, n msgs), ...`` for error messages."""
        if not self.topics:
            return "no topics"
        return ", ".join(f"{t.name} ({t.msgtype}, {t.count} msgs)" for t in self.topics)


def _bag_dir(path: Path) -> Path:
    if (path / "metadata.yaml").is_file():
        return path
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        path = path.parent
        if (path / "metadata.yaml").is_file():
            return path
    raise BagError(f"{path} is not a rosbag2 bag (a folder with metadata.yaml)")


def _storage_and_version(path: Path) -> tuple[str, int]:
    import yaml

    meta = yaml.safe_load((path / "metadata.yaml").read_text()) or {}
    info = meta.get("rosbag2_bagfile_information", {})
    return str(info.get("storage_identifier", "?")), int(info.get("version", 0))


class BagReader:
    """Context manager over one or more bags: :attr:`info` and log-time-ordered message iteration.

    Uses rosbags' directory reader, which does not parse the bags' embedded definitions (so a
    bag with types rosbags cannot parse, e.g. recorded services, still opens); the topics the
    tools use are decoded with :func:`typestore`. Several bags are merged by log time.
    """

    def __init__(self, paths: Path | str | Sequence[Path | str]) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self._paths = [Path(p) for p in paths]
        self._readers: list[Any] = []
        self.info: BagInfo | None = None

    def __enter__(self) -> BagReader:
        from rosbags.rosbag2 import Reader

        dirs = [_bag_dir(p) for p in self._paths]
        try:
            for d in dirs:
                r = Reader(d)
                r.open()
                self._readers.append(r)
        except Exception as exc:
            self.__exit__()
            raise BagError(
                f"cannot read bag {', '.join(map(str, dirs))}: {type(exc).__name__}: {exc}"
            ) from exc
        counts: dict[tuple[str, str], int] = {}
        versions, storages = set(), set()
        for r in self._readers:
            for c in r.connections:
                counts[(c.topic, c.msgtype)] = counts.get((c.topic, c.msgtype), 0) + c.msgcount
        for d in dirs:
            s, v = _storage_and_version(d)
            storages.add(s)
            versions.add(v)
        n = sum(r.message_count for r in self._readers)
        self.info = BagInfo(
            paths=tuple(dirs),
            topics=tuple(TopicInfo(t, m, k) for (t, m), k in sorted(counts.items())),
            start_ns=min(r.start_time for r in self._readers if r.message_count) if n else 0,
            end_ns=max(r.end_time for r in self._readers if r.message_count) - 1 if n else 0,
            message_count=n,
            storage=storages.pop() if len(storages) == 1 else "mixed",
            versions=tuple(sorted(versions)),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        for r in self._readers:
            r.close()
        self._readers = []

    def messages(
        self, topics: Iterable[str], raw: bool = False, start_ns: int | None = None, end_ns: int | None = None
    ) -> Iterator[tuple[str, str, int, Any]]:
        """``(topic, msgtype, log_time_ns, message)`` in log-time order; ``raw`` gives CDR bytes.

        ``end_ns`` is exclusive.
        """
        import heapq

        wanted = set(topics)
        streams = []
        for r in self._readers:
            conns = [c for c in r.connections if c.topic in wanted]
            if conns:
                streams.append(r.messages(connections=conns, start=start_ns, stop=end_ns))
        for conn, t, data in heapq.merge(*streams, key=lambda m: m[1]):
            if raw:
                yield conn.topic, conn.msgtype, int(t), bytes(data)
            else:
                yield conn.topic, conn.msgtype, int(t), _store_for(conn).deserialize_cdr(data, conn.msgtype)


def _store_for(conn: Any) -> Any:
    """The typestore that decodes ``conn`` as it was recorded: :func:`typestore`, unless the bag
    embeds another definition of one of this package's messages (a bag recorded before a field was
    added, e.g. ``Trajectory.producer``): then that definition, so old bags stay readable (the
    fields they lack are absent from their messages)."""
    from rosbags.interfaces import MessageDefinitionFormat

    msgdef = getattr(conn, "msgdef", None)
    if (not conn.msgtype.startswith(f"{PACKAGE}/") or msgdef is None
            or msgdef.format != MessageDefinitionFormat.MSG or not msgdef.data):
        return typestore()
    return _store_for_definition(conn.msgtype, msgdef.data)


@functools.lru_cache(maxsize=16)
def _store_for_definition(msgtype: str, definition: str) -> Any:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = typestore()
    try:
        types = get_types_from_msg(definition, msgtype)
    except Exception:  # not parseable: decode with ours (fails loudly if it does not fit)
        return store
    if types.get(msgtype) == store.fielddefs.get(msgtype):
        return store
    recorded = get_typestore(Stores.ROS2_HUMBLE)
    recorded.register(types)
    return recorded


def bag_info(path: Path | str) -> BagInfo:
    with BagReader(path) as r:
        assert r.info is not None
        return r.info


class BagWriter:
    """A new rosbag2 (metadata version 9) that readers of every distro since Humble can open.

    ``write`` takes a message object of the typestore or, with ``raw=True``, CDR bytes as they
    came off DDS (no re-serialisation).
    """

    def __init__(self, path: Path | str, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"storage '{storage}' is not supported (choose {' or '.join(STORAGES)})")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {self.path} already exists (choose a new path)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic not in self._conns:
            store = typestore()
            if msgtype not in store.types:
                raise BagError(f"message type {msgtype} of topic {topic} is unknown to the bag tools")
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=store)
            self.counts[topic] = 0

    def write(self, topic: str, msgtype: str, log_time_ns: int, msg: Any, raw: bool = False) -> None:
        self.add_topic(topic, msgtype)
        data = msg if raw else typestore().serialize_cdr(msg, msgtype)
        self._writer.write(self._conns[topic], int(log_time_ns), data)
        self.counts[topic] += 1

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- helpers shared by the tools: builtin stamps -------------------------------------------------


def stamp_ns(header: Any) -> int:
    """``std_msgs/Header`` (or anything with ``.stamp.sec/.nanosec``) -> integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def time_msg(ns: int) -> Any:
    """Integer nanoseconds -> ``builtin_interfaces/Time`` of the typestore."""
    Time = typestore().types["builtin_interfaces/msg/Time"]
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def header_msg(ns: int, frame_id: str = "") -> Any:
    Header = typestore().types["std_msgs/msg/Header"]
    return Header(stamp=time_msg(ns), frame_id=frame_id)
