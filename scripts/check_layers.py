#!/usr/bin/env python3
"""Checks the crate's layering: no module of src/ imports one above it, and
nothing inside the crate imports through a root re-export.

Layers, bottom up (ARCHITECTURE.md): sys -> counters, sample, error ->
record -> sink, pipeline -> profile -> instrument, probe -> tower,
tracing, criterion -> report -> clickhouse -> the binary. A module may use its own layer and the
ones below. Inside the crate, paths name the defining module
(`crate::counters::Delta`), never a root re-export (`crate::Delta`).

Prints each offending line as FILE:LINE: text, and exits 1 if there is one.
Run from anywhere: `python3 scripts/check_layers.py`.
"""
import os
import re
import sys

LAYERS = [
    # The scripted kernel of the tests (`#[cfg(test)]`, tests/common/
    # fake_kernel.rs): below everything, any unit test may use it.
    ["fake_kernel"],
    ["sys"],
    ["counters", "sample", "error"],
    ["record"],
    ["sink", "pipeline"],
    ["profile"],
    ["instrument", "probe"],
    ["tower", "tracing", "criterion"],
    ["report"],
    ["clickhouse"],
]
LEVEL = {m: i for i, ms in enumerate(LAYERS) for m in ms}

# The rooms of `report` (ARCHITECTURE.md, "Sources, summaries, answers,
# output"), bottom up: the statistics and summaries' parts know nothing of
# output or answers; the output room knows no answer; answers and the
# summaries that hand them out sit on top. `mod.rs` (the `Summarize` trait)
# is the root of the module: any room may use it.
REPORT_ROOMS = [
    ["stats", "sketch", "metric", "summary", "filter", "drops"],
    ["output", "grid"],
    ["side", "groups", "table", "compare", "timeseries", "profiles"],
]
REPORT_LEVEL = {m: i for i, ms in enumerate(REPORT_ROOMS) for m in ms}
# `super::NAME` in a file directly under report/, `super::super::NAME` one
# folder down, `crate::report::NAME` anywhere.
REPORT_PATH = re.compile(r"\b(?:crate::report::|(super::)+)\{?\s*([A-Za-z_]\w*)")


def report_room(rel):
    """The room of a file under src/report/ and its depth below report/."""
    parts = rel.split(os.sep)
    if parts[0] != "report" or len(parts) < 2 or parts[1] == "mod.rs":
        return None, 0
    room = parts[1][:-3] if parts[1].endswith(".rs") else parts[1]
    return room, len(parts) - 1


def check_report_rooms(rel, lines, failures):
    room, depth = report_room(rel)
    if room is None:
        return
    mine = REPORT_LEVEL.get(room)
    if mine is None:
        failures.append(f"src/{rel}:1: room `report::{room}` has no level in scripts/check_layers.py")
        return
    for n, line in lines:
        for m in REPORT_PATH.finditer(line):
            supers = line[m.start():m.end()].count("super::")
            if supers and supers != depth:
                continue  # `super::` inside a room's own folder
            target = m.group(2)
            level = REPORT_LEVEL.get(target)
            if level is not None and level > mine:
                failures.append(
                    f"src/{rel}:{n}: {line.strip()}\n    `report::{room}` (room {mine}) imports `report::{target}` (room {level}), a higher room"
                )

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
# `crate::name` in code (not in comments): the first segment after `crate::`.
CRATE_PATH = re.compile(r"\bcrate::(\{?)\s*([A-Za-z_]\w*)")
USE_CRATE_GROUP = re.compile(r"\bcrate::\{((?:[^{}]|\{[^{}]*\})*)\}", re.S)


def module_of(rel):
    """The top-level module a file of src/ belongs to (None for lib.rs)."""
    parts = rel.split(os.sep)
    if parts[0] in ("bin", "lib.rs"):
        # The binary is its own crate (its `crate::` is itself) and reaches
        # the library only through its public API; lib.rs is the root.
        return None
    return parts[0][:-3] if parts[0].endswith(".rs") else parts[0]


def code_lines(text):
    """(line number, code) with comments and string contents blanked out."""
    for n, line in enumerate(text.split("\n"), 1):
        stripped = line.lstrip()
        if stripped.startswith("//"):
            continue
        line = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
        line = line.split("//", 1)[0]
        yield n, line


def main():
    failures = []
    for root, _, files in os.walk(SRC):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, SRC)
            me = module_of(rel)
            if me is None:
                continue
            my_level = LEVEL.get(me)
            if my_level is None:
                failures.append(f"src/{rel}:1: module `{me}` has no layer in scripts/check_layers.py")
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            lines = list(code_lines(text))
            code = "\n".join(line for _, line in lines)
            found = []
            for n, line in lines:
                found += [(n, line, m.group(2)) for m in CRATE_PATH.finditer(line) if not m.group(1)]
            # `crate::{a, b::c, ...}`, possibly over several lines.
            for group in USE_CRATE_GROUP.finditer(code):
                n, line = lines[code[: group.start()].count("\n")]
                depth, item = 0, ""
                for ch in group.group(1) + ",":
                    depth += (ch == "{") - (ch == "}")
                    if ch == "," and depth == 0:
                        head = re.match(r"\s*([A-Za-z_]\w*)", item)
                        if head:
                            found.append((n, line, head.group(1)))
                        item = ""
                    else:
                        item += ch
            check_report_rooms(rel, lines, failures)
            for n, line, target in found:
                    if target in ("self", "super"):
                        continue
                    level = LEVEL.get(target)
                    where = f"src/{rel}:{n}: {line.strip()}"
                    if level is None:
                        failures.append(f"{where}\n    `crate::{target}` is not a module: import from the defining module, not a root re-export")
                    elif level > my_level:
                        failures.append(f"{where}\n    `{me}` (layer {my_level}) imports `{target}` (layer {level}), a higher layer")
    if failures:
        print("layer check failed:")
        for f in failures:
            print(f)
        return 1
    print("layer check: every import in src/ goes to its own layer or below, through defining modules; report's rooms too")
    return 0


if __name__ == "__main__":
    sys.exit(main())
