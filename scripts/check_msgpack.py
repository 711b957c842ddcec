#!/usr/bin/env python3
"""Independent check of a dynostats record file, with Python's msgpack.

Usage: python3 scripts/check_msgpack.py FILE

Decodes FILE as a plain concatenation of MessagePack objects, without any
dynostats code, and checks every record against the schema in
docs/records.md: each record is a map with string keys; required fields
are present with the right types; counters that were not measured are
absent (never nil); flags are written only when true. Prints the decoded
records as a JSON array on stdout and exits 0, or prints every violation on
stderr and exits 1.
"""

import json
import os
import sys

import msgpack

SCHEMA_VERSION = 1
KINDS = {"request", "region", "profile", "status"}
SOURCES = {"rdpmc", "read", "software"}
MAX_LABELS = 16
MAX_LABEL_LEN = 128
MAX_NAME_LEN = 256
U64_MAX = 2**64 - 1

REQUIRED = {
    "v": "u8",
    "kind": "kind",
    "ts": "u64",
    "name": "name",
    "weight": "u64",
    "wall_ns": "u64",
    "source": "source",
    "pid": "u32",
}
OPTIONAL = {
    "method": "str",
    "status": "u16",
    "labels": "labels",
    "cpu_ns": "u64",
    "instructions": "u64",
    "cycles": "u64",
    "page_faults": "u64",
    "context_switches": "u64",
    "rss_start": "u64",
    "rss_end": "u64",
    "peak_rss": "u64",
    "polls": "u64",
    "threads": "u64",
    "scaled": "true",
    "cancelled": "true",
    "forced": "true",
    "error": "str",
    "id": "u64",
    "trace_id": "hex32",
    "span_id": "hex16",
    "detail": "detail",
}
TIMERS = {"instructions", "cycles", "cpu_ns", "wall_ns", "rss"}
COUNTER_SOURCES = {"rdpmc", "read", "software_event", "clock", "statm", "getrusage"}
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


def is_uint(value, bits):
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value < 2**bits
    )


def is_int(value):
    """A signed 64-bit integer (profile amounts can be negative)."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and I64_MIN <= value <= I64_MAX
    )


def check_nodes(nodes):
    """The call tree of a profile record: root first, parents first."""
    if not isinstance(nodes, list) or not nodes:
        return ["detail.nodes is not a non-empty array"]
    problems = []
    node_keys = {"name", "parent", "calls", "inclusive", "exclusive", "recursive"}
    for i, node in enumerate(nodes):
        where = f"detail.nodes[{i}]"
        if not isinstance(node, dict):
            problems.append(f"{where} is not a map")
            continue
        for key in node:
            if key not in node_keys:
                problems.append(f"{where} has an undocumented key {key!r}")
        if not isinstance(node.get("name"), str):
            problems.append(f"{where}.name is not a string")
        if not is_uint(node.get("calls"), 64):
            problems.append(f"{where}.calls is not an unsigned integer")
        for key in ("inclusive", "exclusive"):
            if not is_int(node.get(key)):
                problems.append(f"{where}.{key} is not a signed 64-bit integer")
        if "recursive" in node and node["recursive"] is not True:
            problems.append(f"{where}.recursive must be absent or true")
        parent = node.get("parent")
        if i == 0:
            if parent is not None:
                problems.append("detail.nodes[0] is the root and has no parent")
        elif not (is_uint(parent, 32) and parent < i):
            problems.append(f"{where}.parent is not the index of an earlier node")
    return problems


def check_profile(record):
    """What a profile record must hold, and that its tree adds up."""
    detail = record.get("detail")
    if not isinstance(detail, dict):
        return ["a profile record needs a detail map"]
    problems = []
    for key in ("timer", "nodes", "overhead"):
        if key not in detail:
            problems.append(f"a profile record needs detail.{key}")
    if "id" not in record:
        problems.append("a profile record needs the id of its region or request")
    if problems:
        return problems
    nodes = detail["nodes"]
    if all(isinstance(n, dict) and is_int(n.get("exclusive")) for n in nodes) and is_int(
        detail["overhead"]
    ):
        exclusive = sum(n["exclusive"] for n in nodes)
        root = nodes[0].get("inclusive")
        if exclusive + detail["overhead"] != root:
            problems.append(
                f"exclusive amounts ({exclusive}) plus overhead ({detail['overhead']}) "
                f"are not the root's inclusive amount ({root})"
            )
        if "total" in detail and detail["total"] != root:
            problems.append("detail.total is not the root's inclusive amount")
    return problems


def str_map(value, check_value):
    return (
        isinstance(value, dict)
        and all(isinstance(k, str) for k in value)
        and all(check_value(v) for v in value.values())
    )


def check_detail(detail):
    problems = []
    known = {"counters", "sources", "stats", "sinks", "errors"}
    status = {"sink"}
    profile = {"timer", "timer_requested", "timer_fallback", "total", "overhead", "nodes"}
    if not isinstance(detail, dict):
        return ["detail is not a map"]
    for key in detail:
        if key not in known and key not in status and key not in profile:
            problems.append(f"detail has an undocumented key {key!r}")
    for key in ("timer", "timer_requested"):
        if key in detail and detail[key] not in TIMERS:
            problems.append(f"detail.{key} is not one of {sorted(TIMERS)}")
    if "timer_fallback" in detail and not isinstance(detail["timer_fallback"], str):
        problems.append("detail.timer_fallback is not a string")
    for key in ("total", "overhead"):
        if key in detail and not is_int(detail[key]):
            problems.append(f"detail.{key} is not a signed 64-bit integer")
    if "nodes" in detail:
        problems.extend(check_nodes(detail["nodes"]))
    if "counters" in detail and not str_map(detail["counters"], lambda v: isinstance(v, str)):
        problems.append("detail.counters is not a map of strings")
    if "sources" in detail and not str_map(detail["sources"], lambda v: v in COUNTER_SOURCES):
        problems.append(f"detail.sources is not a map of counter sources {sorted(COUNTER_SOURCES)}")
    elif "sources" in detail:
        for name in detail["sources"]:
            if detail.get("counters", {}).get(name) != "ok":
                problems.append(f"detail.sources names {name!r}, which detail.counters does not call ok")
    if "stats" in detail and not str_map(detail["stats"], lambda v: is_uint(v, 64)):
        problems.append("detail.stats is not a map of unsigned integers")
    if "sinks" in detail and not str_map(
        detail["sinks"], lambda m: str_map(m, lambda v: is_uint(v, 64))
    ):
        problems.append("detail.sinks is not a map of maps of unsigned integers")
    if "errors" in detail and not str_map(detail["errors"], lambda v: isinstance(v, str)):
        problems.append("detail.errors is not a map of strings")
    if "sink" in detail and not isinstance(detail["sink"], str):
        problems.append("detail.sink is not a string")
    elif "sink" in detail and detail["sink"] not in detail.get("sinks", {}):
        problems.append("detail.sink names no entry of detail.sinks")
    for key in known:
        if key in detail and not detail[key]:
            problems.append(f"detail.{key} is present but empty (should be absent)")
    return problems


def check_value(kind, value):
    """Returns a problem string, or None."""
    if kind == "u8":
        return None if is_uint(value, 8) else "not an unsigned 8-bit integer"
    if kind == "u16":
        return None if is_uint(value, 16) else "not an unsigned 16-bit integer"
    if kind == "u32":
        return None if is_uint(value, 32) else "not an unsigned 32-bit integer"
    if kind == "u64":
        return None if is_uint(value, 64) else "not an unsigned 64-bit integer"
    if kind == "str":
        return None if isinstance(value, str) else "not a string"
    if kind == "name":
        if not isinstance(value, str):
            return "not a string"
        if len(value.encode()) > MAX_NAME_LEN:
            return f"longer than {MAX_NAME_LEN} bytes"
        return None
    if kind == "kind":
        return None if value in KINDS else f"not one of {sorted(KINDS)}"
    if kind == "source":
        return None if value in SOURCES else f"not one of {sorted(SOURCES)}"
    if kind == "true":
        return None if value is True else "a flag must be absent or true"
    if kind == "labels":
        if not str_map(value, lambda v: isinstance(v, str)):
            return "not a map of strings"
        if not value:
            return "present but empty (should be absent)"
        if len(value) > MAX_LABELS:
            return f"more than {MAX_LABELS} labels"
        for k, v in value.items():
            if len(k.encode()) > MAX_LABEL_LEN or len(v.encode()) > MAX_LABEL_LEN:
                return f"label {k!r} longer than {MAX_LABEL_LEN} bytes"
        return None
    if kind in ("hex32", "hex16"):
        digits = int(kind[3:])
        if not (
            isinstance(value, str)
            and len(value) == digits
            and all(c in "0123456789abcdef" for c in value)
        ):
            return f"not {digits} lowercase hex digits"
        if value == "0" * digits:
            return "all zeros: not an id"
        return None
    if kind == "detail":
        problems = check_detail(value)
        return "; ".join(problems) if problems else None
    return f"unknown check {kind}"


def check_record(record):
    problems = []
    if not isinstance(record, dict):
        return [f"not a map but {type(record).__name__}"]
    for key in record:
        if not isinstance(key, str):
            problems.append(f"key {key!r} is not a string")
        elif key not in REQUIRED and key not in OPTIONAL:
            problems.append(f"undocumented field {key!r}")
    for key, kind in REQUIRED.items():
        if key not in record:
            problems.append(f"missing required field {key!r}")
            continue
        problem = check_value(kind, record[key])
        if problem:
            problems.append(f"{key}: {problem} ({record[key]!r})")
    for key, kind in OPTIONAL.items():
        if key not in record:
            continue
        if record[key] is None:
            problems.append(f"{key} is nil: unmeasured values must be absent")
            continue
        problem = check_value(kind, record[key])
        if problem:
            problems.append(f"{key}: {problem} ({record[key]!r})")
    if record.get("v") != SCHEMA_VERSION:
        problems.append(f"schema version {record.get('v')!r}, expected {SCHEMA_VERSION}")
    if record.get("kind") == "status":
        detail = record.get("detail")
        if not isinstance(detail, dict) or "counters" not in detail or "stats" not in detail:
            problems.append("a status record needs detail.counters and detail.stats")
        if record.get("weight") != 0:
            problems.append("a status record has weight 0")
    if record.get("kind") == "profile":
        problems.extend(check_profile(record))
    if record.get("forced") is True and record.get("weight") != 0:
        problems.append("a forced record has weight 0")
    return problems


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    size = os.path.getsize(path)
    records = []
    problems = []
    with open(path, "rb") as f:
        unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=False)
        offset = 0
        for record in unpacker:
            for problem in check_record(record):
                problems.append(f"record {len(records)} at byte {offset}: {problem}")
            records.append(record)
            offset = unpacker.tell()
    if offset != size:
        problems.append(
            f"{size - offset} bytes after the last complete record at byte {offset}"
        )
    if not records:
        problems.append("no record in the file")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    json.dump(records, sys.stdout)
    print()
    print(f"{path}: {len(records)} records, all valid", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
