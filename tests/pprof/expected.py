#!/usr/bin/env python3
"""What `dynostats pprof` must write, computed from the record files alone
(Python's msgpack, no dynostats code), as docs/pprof.md states it.

Usage: python3 tests/pprof/expected.py TIMER [--label-key KEY]... FILE...

Per distinct path of scope names (root first) and tuple of the label keys'
values: the sum over profile records of that timer of weight x the last
scope's exclusive amount and of weight x its calls; per endpoint (and
tuple), weight x detail.overhead under the frame `<overhead>`. Prints one
JSON object {"samples": [{"stack", "labels", "values"}], "period": N}
with every sample whose values are not all 0, in no particular order.
"""

import json
import sys

import msgpack


def main(argv):
    timer = argv[0]
    keys, files, rest = [], [], argv[1:]
    while rest:
        if rest[0] == "--label-key":
            keys.append(rest[1])
            rest = rest[2:]
        else:
            files.append(rest[0])
            rest = rest[1:]
    sums = {}
    weights = set()

    def add(stack, labels, amount, calls):
        key = (tuple(stack), tuple(sorted(labels.items())))
        values = sums.setdefault(key, [0, 0])
        values[0] += amount
        values[1] += calls

    for path in files:
        with open(path, "rb") as f:
            for r in msgpack.Unpacker(f, raw=False, strict_map_key=False):
                detail = r.get("detail") or {}
                if r.get("kind") != "profile" or detail.get("timer") != timer:
                    continue
                w = r["weight"]
                if w > 0:
                    weights.add(w)
                nodes = detail["nodes"]
                labels = {"endpoint": nodes[0]["name"]}
                for k in keys:
                    v = (r.get("labels") or {}).get(k)
                    if v is not None:
                        labels[k] = v
                stacks = []
                for n in nodes:
                    parent = n.get("parent")
                    stack = [n["name"]] if parent is None else stacks[parent] + [n["name"]]
                    stacks.append(stack)
                    add(stack, labels, w * n["exclusive"], w * n["calls"])
                add([nodes[0]["name"], "<overhead>"], labels, w * detail.get("overhead", 0), 0)

    samples = [
        {"stack": list(stack), "labels": dict(labels), "values": values}
        for (stack, labels), values in sums.items()
        if values != [0, 0]
    ]
    period = weights.pop() if len(weights) == 1 else 0
    json.dump({"samples": samples, "period": period}, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
