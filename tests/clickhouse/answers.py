#!/usr/bin/env python3
"""What ClickHouse must answer over records loaded by `dynostats load` (or
`dynostats export` then an insert), computed three ways:

  python3 answers.py queries
      the queries, as JSON {name: sql}; `{db}` stands for the database
  python3 answers.py expected FILE...
      their answers from the record files alone (Python's msgpack, no
      dynostats code), as JSON {name: [row, ...]}, each row a list of
      strings, rows sorted
  python3 answers.py chdb SCHEMA_SQL FLEET_SCHEMA_SQL EXPORT_DIR BUCKETS_JSON FILE...
      builds the schema (`dynostats clickhouse schema`) in chdb (the
      current ClickHouse engine, in process), inserts the exported rows,
      checks the rollup against the raw rows and a sketch computed here
      from the exported rows, checks the SQL bucket expression against
      the library's buckets (BUCKETS_JSON: {"sql": expression over `v`,
      "values": [[v, bucket], ...]}). Then the collector's way in: builds
      the schema again in database `fleet` (FLEET_SCHEMA_SQL), inserts
      the record files as a collector writes them (each record map as one
      JSON object, with the `date` and `tag` keys Fluent Bit and Vector
      add) into `fleet.records_in`, and checks that every table holds
      exactly the rows of the export, and the rollup the same sums. Prints
      the queries' answers as `expected` does. Exits 1 naming the first
      disagreement.
  python3 answers.py parquet SCHEMA_SQL JSONL_DIR PARQUET_DIR STRUCTURES_JSON
      reads each table's export both ways in chdb: TABLE.parquet as
      Parquet (its own schema) and TABLE.jsonl as JSONEachRow with the
      table's structure (STRUCTURES_JSON: {table: "name Type, ..."}).
      Prints, per table, the Parquet file's columns as chdb reads them,
      both row counts, the rows of each not in the other (EXCEPT ALL, both
      ways, up to 3), the nulls per column and the array elements per
      array column on each side, as JSON. Then builds the schema and
      loads each Parquet file as docs/clickhouse.md says (`INSERT INTO
      dynostats.TABLE SELECT * FROM file(..., Parquet)`): "loaded" is the
      table's row count and "loaded_not_jsonl" its rows not in the JSON
      lines (and the other way).

The queries run unchanged on ClickHouse 18.16 (no Int128, no Map), so the
Rust test runs them there too and compares every answer.
"""

import json
import os
import re
import sys

QUERIES = {
    "records": """
        SELECT kind, name, build, host, method,
               toString(count()), toString(sum(weight)), toString(min(ts)), toString(max(ts)),
               toString(sum(weight * wall_ns)),
               toString(countIf(cpu_ns IS NULL)), toString(sum(weight * ifNull(cpu_ns, 0))),
               toString(countIf(instructions IS NULL)), toString(sum(weight * ifNull(instructions, 0))),
               toString(countIf(cycles IS NULL)), toString(sum(weight * ifNull(cycles, 0))),
               toString(countIf(page_faults IS NULL)), toString(sum(ifNull(page_faults, 0))),
               toString(countIf(rss_start IS NULL)), toString(sum(ifNull(rss_end, 0))),
               toString(countIf(status IS NULL)), toString(sum(ifNull(status, 0))),
               toString(sum(cancelled)), toString(countIf(error != ''))
        FROM {db}.records GROUP BY kind, name, build, host, method""",
    "labels": """
        SELECT kv, toString(count()) FROM (
            SELECT arrayJoin(arrayMap((k, v) -> concat(k, '=', v), label_keys, label_values)) AS kv
            FROM {db}.records)
        GROUP BY kv""",
    "minutes": """
        SELECT name, toString(toStartOfMinute(time), 'UTC'), toString(count()), toString(sum(weight))
        FROM {db}.records GROUP BY name, toStartOfMinute(time)""",
    "nodes": """
        SELECT name, timer, arrayStringConcat(path, ' > '), toString(depth),
               toString(count()), toString(sum(weight * calls)),
               toString(sum(weight * inclusive)), toString(sum(weight * exclusive))
        FROM {db}.profile_nodes GROUP BY name, timer, path, depth""",
    "roots": """
        SELECT name, timer, build, toString(count()), toString(sum(weight)),
               toString(sum(weight * assumeNotNull(total))), toString(sum(weight * overhead))
        FROM {db}.profile_nodes WHERE parent IS NULL GROUP BY name, timer, build""",
    "status": """
        SELECT host, toString(count()), toString(sum(arraySum(stat_values))),
               toString(sum(length(error_sinks)))
        FROM {db}.status GROUP BY host""",
}


def label(r, key):
    return (r.get("labels") or {}).get(key, "")


def records(files):
    import msgpack

    for path in files:
        with open(path, "rb") as f:
            yield from msgpack.Unpacker(f, raw=False, strict_map_key=False)


def rows_of(groups):
    return sorted([list(k) + [str(x) for x in v] for k, v in groups.items()])


def minute(ts, seconds=60):
    import datetime

    t = datetime.datetime.fromtimestamp(
        ts // 1_000_000_000 // seconds * seconds, datetime.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def expected(files):
    out = {name: {} for name in QUERIES}
    for r in records(files):
        kind, w = r["kind"], r["weight"]
        if kind in ("request", "region"):
            key = (kind, r["name"], label(r, "build"), label(r, "host"), r.get("method") or "")
            g = out["records"].setdefault(key, [0] * 19)
            g[0] += 1
            g[1] += w
            g[2] = r["ts"] if g[0] == 1 else min(g[2], r["ts"])
            g[3] = max(g[3], r["ts"])
            g[4] += w * r["wall_ns"]
            for i, (field, weighted) in enumerate(
                [("cpu_ns", True), ("instructions", True), ("cycles", True),
                 ("page_faults", False), ("rss_start", None), ("status", False)]):
                v = r.get(field)
                if field == "rss_start":
                    v = r.get("rss_start")
                    g[5 + 2 * i] += v is None
                    g[6 + 2 * i] += r.get("rss_end") or 0
                    continue
                g[5 + 2 * i] += v is None
                g[6 + 2 * i] += (w if weighted else 1) * (v or 0)
            g[17] += bool(r.get("cancelled"))
            g[18] += bool(r.get("error"))
            for k, v in (r.get("labels") or {}).items():
                kv = (f"{k}={v}",)
                out["labels"][kv] = [out["labels"].get(kv, [0])[0] + 1]
            mk = (r["name"], minute(r["ts"]))
            m = out["minutes"].setdefault(mk, [0, 0])
            m[0] += 1
            m[1] += w
        elif kind == "profile":
            d = r["detail"]
            timer = d.get("timer") or ""
            paths, depths = [], []
            for k, n in enumerate(d["nodes"]):
                p = n.get("parent")
                if p is not None and p >= k:
                    # A parent that does not come before its node: the
                    # root's child (docs/clickhouse.md).
                    p = 0 if k > 0 else None
                paths.append([n["name"]] if p is None else paths[p] + [n["name"]])
                depths.append(0 if p is None else depths[p] + 1)
                key = (r["name"], timer, " > ".join(paths[-1]), str(depths[-1]))
                g = out["nodes"].setdefault(key, [0, 0, 0, 0])
                g[0] += 1
                g[1] += w * n.get("calls", 0)
                g[2] += w * n.get("inclusive", 0)
                g[3] += w * n.get("exclusive", 0)
            key = (r["name"], timer, label(r, "build"))
            g = out["roots"].setdefault(key, [0, 0, 0, 0])
            g[0] += 1
            g[1] += w
            g[2] += w * (d.get("total") or 0)
            g[3] += w * (d.get("overhead") or 0)
        elif kind == "status":
            d = r.get("detail") or {}
            g = out["status"].setdefault((label(r, "host"),), [0, 0, 0])
            g[0] += 1
            g[1] += sum((d.get("stats") or {}).values())
            g[2] += len(d.get("errors") or {})
    return {name: rows_of(groups) for name, groups in out.items()}


def fail(what):
    print(f"answers.py: {what}", file=sys.stderr)
    sys.exit(1)


def bucket(x):
    """The sketch's bucket of a value, from its definition (docs/clickhouse.md):
    magnitudes below 128 are their own bucket; above, 64 buckets per power
    of 2; negative values map to -1 - bucket(|x|); magnitudes beyond 2^64-1
    clamp to it."""
    a = min(abs(x), 2**64 - 1)
    if a < 128:
        i = a
    else:
        e = a.bit_length() - 1
        i = 128 + (e - 7) * 64 + ((a >> (e - 6)) - 64)
    return -1 - i if x < 0 else i


def chdb_answers(schema_sql, fleet_sql, export_dir, buckets_json, files):
    from chdb import session

    s = session.Session(os.path.join(export_dir, "chdb"))

    def q(sql):
        return str(s.query(sql, "TabSeparated"))

    def run_script(path):
        for st in re.split(r";\s*\n", open(path).read()):
            st = "\n".join(l for l in st.splitlines() if not l.startswith("--")).strip()
            if st:
                q(st)

    run_script(schema_sql)
    version = q("SELECT max(version) FROM dynostats.schema_version").strip()
    if version == "0" or not version:
        fail("the schema wrote no schema_version row")
    for table in ("records", "profile_nodes", "status"):
        path = os.path.join(export_dir, f"{table}.jsonl")
        q(f"INSERT INTO dynostats.{table} FROM INFILE '{path}' FORMAT JSONEachRow")

    # The rollup equals the raw rows, per kind, name, method, build and
    # minute: forced records counted apart, the metrics over completed
    # records (not forced, cancelled or failed), absent counters counted.
    raw_rows = [json.loads(l) for l in open(os.path.join(export_dir, "records.jsonl"))]

    def metric_value(r, c):
        if c == "rss_change":
            if r["rss_start"] is None or r["rss_end"] is None:
                return None
            return r["rss_end"] - r["rss_start"]
        return r[c]

    counters = ["instructions", "cycles", "cpu_ns", "wall_ns", "rss_change"]
    want = {}
    for r in raw_rows:
        key = (r["kind"], r["name"], r["method"], r["build"], minute(r["ts"]))
        g = want.setdefault(key, {})
        if r["forced"]:
            g["forced"] = g.get("forced", 0) + 1
            continue
        g["samples"] = g.get("samples", 0) + 1
        g["events"] = g.get("events", 0) + r["weight"]
        if r["cancelled"] or r["error"] != "":
            continue
        for c in counters:
            v = metric_value(r, c)
            if v is None:
                g[c + "_absent"] = g.get(c + "_absent", 0) + 1
                continue
            w = r["weight"]
            g[c + "_samples"] = g.get(c + "_samples", 0) + 1
            g[c + "_n"] = g.get(c + "_n", 0) + (1 if w > 0 else 0)
            g[c + "_sum"] = g.get(c + "_sum", 0) + w * v
            g[c + "_sum_sq"] = g.get(c + "_sum_sq", 0) + w * v * v
            g[c + "_w2"] = g.get(c + "_w2", 0) + w * w
            g[c + "_w2_sum_sq"] = g.get(c + "_w2_sum_sq", 0) + w * w * v * v
            if w > 0:
                sk = g.setdefault(c + "_sketch", {})
                b = bucket(v)
                sk[b] = sk.get(b, 0) + w
    cols = ["samples", "events", "forced"]
    for c in counters:
        cols += [c + "_samples", c + "_absent", c + "_n", c + "_sum", c + "_sum_sq", c + "_w2",
                 c + "_w2_sum_sq"]
    sketches = [c + "_sketch" for c in counters]
    sql = (
        "SELECT kind, name, method, build, toString(bucket, 'UTC'), "
        + ", ".join(f"toString(sum({c}))" for c in cols)
        + ", "
        + ", ".join(f"toString(sumMapMerge({c}))" for c in sketches)
        + " FROM dynostats.rollup GROUP BY kind, name, method, build, bucket"
    )
    got = {}
    for line in q(sql).splitlines():
        f = line.split("\t")
        got[tuple(f[:5])] = f[5:]
    if set(got) != set(want):
        fail(f"rollup groups {sorted(set(got) ^ set(want))[:3]} differ from the raw rows'")
    for key, g in want.items():
        row = got[key]
        for i, c in enumerate(cols):
            if int(row[i]) != g.get(c, 0):
                fail(f"rollup {key} {c} = {row[i]}, raw rows {g.get(c, 0)}")
        for j, c in enumerate(sketches):
            keys, weights = json.loads(row[len(cols) + j].replace("(", "[").replace(")", "]"))
            have = dict(zip(keys, weights))
            if have != g.get(c, {}):
                fail(f"rollup {key} {c} = {sorted(have.items())[:4]}..., "
                     f"from the rows {sorted(g.get(c, {}).items())[:4]}...")

    # The sketches as rows (rollup_sketch): per kind, name, method, build,
    # hour, metric and bucket the summed weight of the completed records'
    # values of positive weight, and the least and greatest value.
    want_sketch = {}
    for r in raw_rows:
        if r["forced"] or r["cancelled"] or r["error"] != "" or r["weight"] == 0:
            continue
        for c in counters:
            v = metric_value(r, c)
            if v is None:
                continue
            key = (r["kind"], r["name"], r["method"], r["build"], minute(r["ts"], 3600), c,
                   str(bucket(v)))
            w, lo, hi = want_sketch.get(key, (0, v, v))
            want_sketch[key] = (w + r["weight"], min(lo, v), max(hi, v))
    sketch_sql = (
        "SELECT kind, name, method, build, toString(hour, 'UTC'), metric, toString(key), "
        "toString(sum(weight)), toString(min(lo)), toString(max(hi)) FROM {db}.rollup_sketch "
        "GROUP BY kind, name, method, build, hour, metric, key ORDER BY ALL")
    got = {}
    for line in q(sketch_sql.format(db="dynostats")).splitlines():
        f = line.split("\t")
        got[tuple(f[:7])] = tuple(int(x) for x in f[7:])
    if got != want_sketch:
        diff = sorted(set(got.items()) ^ set(want_sketch.items()))[:4]
        fail(f"rollup_sketch: {len(got)} rows, from the raw rows {len(want_sketch)}; "
             f"differing: {diff}")
    if len(got) == 0:
        fail("rollup_sketch is empty")

    # The SQL bucket expression equals the library's buckets (and this
    # file's definition of them).
    spec = json.load(open(buckets_json))
    values = [int(v) for v, _ in spec["values"]]
    expr = spec["sql"]
    lits = ", ".join(f"toInt128('{v}')" for v in values)
    got = q(f"SELECT v, {expr} FROM (SELECT arrayJoin([{lits}]) AS v)").split()
    got = [int(x) for x in got[1::2]]
    for (v, lib), sql_b in zip(spec["values"], got):
        v = int(v)
        if not (lib == sql_b == bucket(v)):
            fail(f"bucket of {v}: library {lib}, SQL {sql_b}, definition {bucket(v)}")
    if len(got) != len(values):
        fail(f"{len(got)} buckets for {len(values)} values")

    # The collector's way in: the same rows in every table.
    run_script(fleet_sql)
    collector = os.path.join(export_dir, "collector.jsonl")
    with open(collector, "w") as out:
        for r in records(files):
            r = dict(r)
            r["date"] = r["ts"] / 1e9
            r["tag"] = "dynostats.app"
            out.write(json.dumps(r) + "\n")
    q(f"INSERT INTO fleet.records_in FROM INFILE '{collector}' FORMAT JSONEachRow")
    for table in ("records", "profile_nodes", "status"):
        a = int(q(f"SELECT count() FROM dynostats.{table}"))
        b = int(q(f"SELECT count() FROM fleet.{table}"))
        if a != b or a == 0:
            fail(f"{table}: {a} rows by the export, {b} by the collector's way")
        for x, y in (("dynostats", "fleet"), ("fleet", "dynostats")):
            diff = q(f"SELECT * FROM {x}.{table} EXCEPT SELECT * FROM {y}.{table}")
            if diff.strip():
                ts = diff.split("\t", 1)[0]
                other = q(f"SELECT * FROM {y}.{table} WHERE ts = {ts}")
                fail(f"{table}: a row in {x} is not in {y}:\n{diff.splitlines()[0][:800]}\n"
                     f"{y} has at its ts:\n{other.strip()[:800]}")
    def same_in_both(table, by, sums):
        a = q(f"SELECT {by}, {sums} FROM dynostats.{table} GROUP BY {by} ORDER BY {by}")
        b = q(f"SELECT {by}, {sums} FROM fleet.{table} GROUP BY {by} ORDER BY {by}")
        if a != b:
            fail(f"the {table} fed by the collector's way differs from the export's")

    sums = ", ".join(f"toString(sum({c}))" for c in cols) + ", " + ", ".join(
        f"toString(sumMapMerge({c}))" for c in sketches)
    same_in_both("rollup", "kind, name, method, build, bucket", sums)
    if q(sketch_sql.format(db="dynostats")) != q(sketch_sql.format(db="fleet")):
        fail("the rollup_sketch fed by the collector's way differs from the export's")
    # The amounts per function: computed by the collector's view in SQL,
    # by the exporter in Rust; every profile record has them.
    moments = ["samples", "events", "n", "sum", "sum_sq", "w2", "w2_sum", "w2_sum_sq"]
    fsums = "toString(sum(profiles)), toString(sum(unknown)), " + ", ".join(
        f"toString(sum(amount_{m}))" for m in moments)
    same_in_both("rollup_functions", "name, build, timer, scope, bucket", fsums)
    totals = q("SELECT sum(profiles), sum(unknown), countIf(amount_samples > 0) "
               "FROM fleet.rollup_functions").split()
    if int(totals[0]) == 0 or int(totals[1]) != 0 or int(totals[2]) == 0:
        fail(f"rollup_functions: profiles, unknown, rows with amounts: {totals}")

    answers = {}
    for name, sql in QUERIES.items():
        rows = [l.split("\t") for l in q(sql.format(db="dynostats")).splitlines()]
        answers[name] = sorted(rows)
    return answers


def parquet_vs_jsonl(schema_sql, jsonl_dir, parquet_dir, structures_json):
    from chdb import session

    s = session.Session(os.path.join(parquet_dir, "chdb"))

    def q(sql):
        return str(s.query(sql, "TabSeparated"))

    def lit(s):
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

    out = {}
    for table, structure in json.load(open(structures_json)).items():
        pq = f"file({lit(os.path.join(parquet_dir, table + '.parquet'))}, Parquet)"
        js = (f"file({lit(os.path.join(jsonl_dir, table + '.jsonl'))}, JSONEachRow, "
              f"{lit(structure)})")
        types = [l.split("\t")[:2] for l in q(f"DESCRIBE {pq}").splitlines()]
        t = {"types": types}
        t["rows"] = [int(q(f"SELECT count() FROM {x}")) for x in (js, pq)]
        for side, a, b in (("only_jsonl", js, pq), ("only_parquet", pq, js)):
            t[side] = q(f"SELECT * FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) LIMIT 3")
            t[side] = t[side].splitlines()
        nullable = [n for n, ty in types if ty.startswith("Nullable(")]
        arrays = [n for n, ty in types if ty.startswith("Array(")]
        for side, x in (("jsonl", js), ("parquet", pq)):
            cols = [f"toString(countIf({n} IS NULL))" for n in nullable]
            cols += [f"toString(sum(length({n})))" for n in arrays]
            values = q(f"SELECT {', '.join(cols) or '1'} FROM {x}").split("\t")
            t["nulls_" + side] = dict(zip(nullable, map(int, values)))
            t["elements_" + side] = dict(zip(arrays, map(int, values[len(nullable):])))
        out[table] = t

    for st in re.split(r";\s*\n", open(schema_sql).read()):
        st = "\n".join(l for l in st.splitlines() if not l.startswith("--")).strip()
        if st:
            q(st)
    for table, structure in json.load(open(structures_json)).items():
        pq = f"file({lit(os.path.join(parquet_dir, table + '.parquet'))}, Parquet)"
        js = (f"file({lit(os.path.join(jsonl_dir, table + '.jsonl'))}, JSONEachRow, "
              f"{lit(structure)})")
        q(f"INSERT INTO dynostats.{table} SELECT * FROM {pq}")
        t = out[table]
        t["loaded"] = int(q(f"SELECT count() FROM dynostats.{table}"))
        # SELECT * leaves out the materialized `time`.
        diff = []
        for a, b in ((f"dynostats.{table}", js), (js, f"dynostats.{table}")):
            diff += q(f"SELECT * FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) LIMIT 3").splitlines()
        t["loaded_not_jsonl"] = diff
    return out


def main(argv):
    if argv[:1] == ["queries"]:
        print(json.dumps(QUERIES))
    elif argv[:1] == ["expected"]:
        print(json.dumps(expected(argv[1:])))
    elif argv[:1] == ["chdb"] and len(argv) >= 6:
        print(json.dumps(chdb_answers(*argv[1:5], argv[5:])))
    elif argv[:1] == ["parquet"] and len(argv) == 5:
        print(json.dumps(parquet_vs_jsonl(*argv[1:5])))
    else:
        fail(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
