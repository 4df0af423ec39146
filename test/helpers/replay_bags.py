"""Build the bags the replay tools must read, the way ``ros2 bag record`` of each distro lays them out.

No ``ros2 bag`` exists here, so bags are written with ``rosbags`` (metadata version 9) and rewritten
to older layouts: metadata.yaml keys of version N, and for sqlite3 the database schema of the
distro that wrote N (Foxy/Galactic v4: no schema table, no message definitions; Humble v5/v6 and
Iron v7: schema table version 3, no message definitions; v8/v9: definitions + type hashes).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import yaml

from minipamayo_ros.replay.bagio import BagReader, BagWriter

#: metadata keys introduced by each version (rosbag2's metadata history)
_ADDED_IN = {5: ["files"], 6: ["custom_data"], 8: ["ros_distro"]}


def copy_bag(
    src: Path,
    dst: Path,
    storage: str,
    topics: list[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> Path:
    """Re-write ``src`` (all or some topics, a log-time slice) into a new bag of ``storage``."""
    with BagReader(src) as r:
        assert r.info is not None
        names = topics or [t.name for t in r.info.topics]
        types = {t.name: t.msgtype for t in r.info.topics}
        with BagWriter(dst, storage) as w:
            for name in names:
                w.add_topic(name, types[name])
            for topic, msgtype, t, data in r.messages(names, raw=True, start_ns=start_ns, end_ns=end_ns):
                w.write(topic, msgtype, t, data, raw=True)
    return dst


def downgrade(bag: Path, version: int) -> Path:
    """Rewrite a version-9 bag (written by rosbags) in place as metadata ``version`` (4..9)."""
    assert 4 <= version <= 9
    meta_path = bag / "metadata.yaml"
    doc = yaml.safe_load(meta_path.read_text())
    info = doc["rosbag2_bagfile_information"]
    info["version"] = version
    for v, keys in _ADDED_IN.items():
        if version < v:
            for k in keys:
                info.pop(k, None)
    for t in info["topics_with_message_count"]:
        md = t["topic_metadata"]
        if version < 7:
            md.pop("type_description_hash", None)
        if version < 9:
            md["offered_qos_profiles"] = ""  # a YAML string before version 9
    meta_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    if info["storage_identifier"] == "sqlite3" and version < 8:
        for name in info["relative_file_paths"]:
            _old_sqlite_schema(bag / name, has_schema_table=version >= 5)
    return bag


def _old_sqlite_schema(db: Path, has_schema_table: bool) -> None:
    """Rebuild a rosbags-written database with an older rosbag2 schema (same messages)."""
    tmp = db.with_suffix(".old")
    src = sqlite3.connect(db)
    dst = sqlite3.connect(tmp)
    dst.executescript("""
        CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                            serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, timestamp INTEGER NOT NULL,
                              data BLOB NOT NULL);
        CREATE INDEX timestamp_idx ON messages (timestamp ASC);
    """)
    if has_schema_table:
        dst.executescript("""
            CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
            INSERT INTO schema VALUES (3, 'humble');
            CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,
                                  metadata TEXT NOT NULL);
        """)
    dst.executemany(
        "INSERT INTO topics VALUES (?, ?, ?, ?, '')",
        src.execute("SELECT id, name, type, serialization_format FROM topics").fetchall(),
    )
    dst.executemany(
        "INSERT INTO messages VALUES (?, ?, ?, ?)",
        src.execute("SELECT id, topic_id, timestamp, data FROM messages").fetchall(),
    )
    dst.commit()
    dst.close()
    src.close()
    shutil.move(tmp, db)


def split_bag(src: Path, dst: Path, storage: str) -> Path:
    """``src`` as one bag of two files (a recording split by size/duration), version 9."""
    with BagReader(src) as r:
        assert r.info is not None
        mid = (r.info.start_ns + r.info.end_ns) // 2
        first, last = r.info.start_ns, r.info.end_ns + 1
    a = copy_bag(src, dst.parent / (dst.name + "_a"), storage, start_ns=first, end_ns=mid)
    b = copy_bag(src, dst.parent / (dst.name + "_b"), storage, start_ns=mid, end_ns=last)
    dst.mkdir()
    ext = ".mcap" if storage == "mcap" else ".db3"
    meta_a = yaml.safe_load((a / "metadata.yaml").read_text())
    meta_b = yaml.safe_load((b / "metadata.yaml").read_text())
    ia, ib = meta_a["rosbag2_bagfile_information"], meta_b["rosbag2_bagfile_information"]
    names = [f"{dst.name}_0{ext}", f"{dst.name}_1{ext}"]
    shutil.move(a / ia["relative_file_paths"][0], dst / names[0])
    shutil.move(b / ib["relative_file_paths"][0], dst / names[1])
    ia["relative_file_paths"] = names
    ia["files"][0]["path"] = names[0]
    ib["files"][0]["path"] = names[1]
    ia["files"] = ia["files"] + ib["files"]
    ia["message_count"] += ib["message_count"]
    end = ib["starting_time"]["nanoseconds_since_epoch"] + ib["duration"]["nanoseconds"]
    ia["duration"]["nanoseconds"] = end - ia["starting_time"]["nanoseconds_since_epoch"]
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in ib["topics_with_message_count"]}
    for t in ia["topics_with_message_count"]:
        t["message_count"] += counts.get(t["topic_metadata"]["name"], 0)
    (dst / "metadata.yaml").write_text(yaml.safe_dump(meta_a, sort_keys=False))
    shutil.rmtree(a)
    shutil.rmtree(b)
    return dst


def add_service_events(src: Path, dst: Path, storage: str) -> Path:
    """``src`` plus a recorded service (Jazzy ``--all-services``: ``<srv>/_service_event`` topics)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    defs: dict = {}
    defs.update(
        get_types_from_msg("uint8 structure_needs_at_least_one_member", "std_srvs/msg/Trigger_Request")
    )
    defs.update(get_types_from_msg("bool success\nstring message", "std_srvs/msg/Trigger_Response"))
    defs.update(
        get_types_from_msg(
            "service_msgs/ServiceEventInfo info\nstd_srvs/Trigger_Request[<=1] request\n"
            "std_srvs/Trigger_Response[<=1] response",
            "std_srvs/msg/Trigger_Event",
        )
    )
    store.register(_as_srv(defs))
    copy_bag(src, dst, storage)
    # append the service topic through a second writer into a sibling bag, then merge as a split bag
    side = dst.parent / (dst.name + "_srv")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with BagReader(dst) as r:
        assert r.info is not None
        t0 = r.info.start_ns
    w = Writer(side, version=9, storage_plugin=plugin)
    w.open()
    conn = w.add_connection(
        "/reset_sim/_service_event",
        "std_srvs/srv/Trigger_Event",
        msgdef=_TRIGGER_EVENT_DEF,
        rihs01="RIHS01_" + "0" * 64,
    )
    T = store.types
    info = T["service_msgs/msg/ServiceEventInfo"](
        event_type=0,
        stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0),
        client_gid=np.zeros(16, np.uint8),
        sequence_number=1,
    )
    ev = T["std_srvs/srv/Trigger_Event"](
        info=info, request=[T["std_srvs/srv/Trigger_Request"]()], response=[]
    )
    w.write(conn, t0 + 1, store.serialize_cdr(ev, "std_srvs/srv/Trigger_Event"))
    w.close()
    # merge: the service file becomes a second file of the bag
    meta = yaml.safe_load((dst / "metadata.yaml").read_text())
    side_meta = yaml.safe_load((side / "metadata.yaml").read_text())
    info_d, side_i = meta["rosbag2_bagfile_information"], side_meta["rosbag2_bagfile_information"]
    name = side_i["relative_file_paths"][0]
    shutil.move(side / name, dst / name)
    info_d["relative_file_paths"].append(name)
    info_d["files"] += side_i["files"]
    info_d["message_count"] += side_i["message_count"]
    info_d["topics_with_message_count"] += side_i["topics_with_message_count"]
    (dst / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    shutil.rmtree(side)
    return dst


#: the definition Jazzy's recorder stores for std_srvs/srv/Trigger_Event (ros2msg, dependencies appended)
_TRIGGER_EVENT_DEF = """service_msgs/ServiceEventInfo info
std_srvs/Trigger_Request[<=1] request
std_srvs/Trigger_Response[<=1] response
================================================================================
MSG: service_msgs/ServiceEventInfo
uint8 REQUEST_SENT = 0
uint8 REQUEST_RECEIVED = 1
uint8 RESPONSE_SENT = 2
uint8 RESPONSE_RECEIVED = 3
uint8 event_type
builtin_interfaces/Time stamp
char[16] client_gid
int64 sequence_number
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
================================================================================
MSG: std_srvs/Trigger_Request
uint8 structure_needs_at_least_one_member
================================================================================
MSG: std_srvs/Trigger_Response
bool success
string message
"""


def _as_srv(obj: object) -> object:
    """rosbags parses .msg text only: move ``std_srvs/msg/*`` names to ``std_srvs/srv/*`` (service types)."""
    if isinstance(obj, str):
        return obj.replace("std_srvs/msg/", "std_srvs/srv/")
    if isinstance(obj, dict):
        return {_as_srv(k): _as_srv(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_as_srv(v) for v in obj)
    return obj
