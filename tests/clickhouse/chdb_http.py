#!/usr/bin/env python3
"""A minimal stand-in for ClickHouse's HTTP query interface, answered by
chdb (the current ClickHouse engine, in process), for the tests of
`dynostats ... --clickhouse URL` and of `ClickHouseSink` on the SQL and
the settings that ClickHouse 18.16 does not have. The SQL, the settings
and the engine are real; the HTTP client itself is tested against the
real 18.16 server.

    python3 chdb_http.py DATA_DIR PORT_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE once listening).
Each POST runs one query in one chdb session kept in DATA_DIR:

- the SQL is the body, or the `query` URL parameter followed by the body
  (an insert's rows), as the HTTP interface takes them;
- `param_NAME` URL parameters are the query's parameters (in the escaped
  format, as the HTTP interface takes them);
- `database` is the query's current database (`USE`);
- every other URL parameter, except the few the HTTP interface takes
  for itself (`user`, `password`, `default_format`, `query_id`,
  `session_id`, ...; see NOT_SETTINGS), is a setting of that query
  alone: set in the session (`SET name = 'value'`) before it and back to
  its default (`SET name = DEFAULT`) after it, as each request of the
  HTTP interface starts from the defaults. The engine checks them: an
  unknown setting or a bad value is its error, and the query does not run;
- the answer is the query's output (TabSeparated unless the SQL says
  `FORMAT`); an error is HTTP 500 with ClickHouse's message
  (`Code: N. DB::Exception: ...`).

Beside PORT_FILE (in the same directory):

- `requests.jsonl` gets one line per request: the statement (an insert's
  `query` parameter, or the body's first 300 characters), the settings
  applied, the HTTP status, whether the answer was lost, and for an
  insert the lines of its body (`rows`, one per row in JSONEachRow);
- `lose`, while it exists, holds a number N: the Nth INSERT run while
  the file exists (counted from when it appeared) is executed, then the
  connection is closed without an answer, and the file is removed. The
  insert happened; the client cannot know. This is how a test makes a
  timeout or a broken connection after the server took the rows.
"""

import http.server
import json
import os
import re
import sys
import urllib.parse

from chdb import session

# URL parameters of the HTTP interface that are not settings.
NOT_SETTINGS = {
    "query",
    "database",
    "default_format",
    "user",
    "password",
    "quota_key",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "compress",
    "decompress",
    "buffer_size",
    "wait_end_of_query",
    "role",
    "stacktrace",
}

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote(value):
    """`value` as a ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def main():
    data_dir, port_file = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(port_file))
    log_path = os.path.join(here, "requests.jsonl")
    lose_path = os.path.join(here, "lose")
    sess = session.Session(data_dir)
    inserts_while_losing = [0]

    def run(sql, params=None):
        return sess.query(sql, "TabSeparated", params=params or None).bytes()

    def lose_this_insert():
        """Whether the answer of the insert just run is to be lost."""
        try:
            with open(lose_path) as f:
                n = int(f.read().strip() or "0")
        except (OSError, ValueError):
            inserts_while_losing[0] = 0
            return False
        inserts_while_losing[0] += 1
        if inserts_while_losing[0] < n:
            return False
        inserts_while_losing[0] = 0
        os.remove(lose_path)
        return True

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            url = urllib.parse.urlparse(self.path)
            params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "surrogateescape")
            sql = body
            statement = body[:300]
            if "query" in params:
                sql = params["query"][0] + "\n" + body
                statement = params["query"][0]
            query_params = {
                k[len("param_"):]: v[0] for k, v in params.items() if k.startswith("param_")
            }
            settings = {
                k: v[-1]
                for k, v in params.items()
                if k not in NOT_SETTINGS and not k.startswith("param_")
            }
            database = params.get("database", [None])[-1]
            applied = []
            lost = False
            try:
                for name, value in settings.items():
                    if not NAME.match(name):
                        raise ValueError(
                            f"Code: 115. DB::Exception: Unknown setting '{name}'. "
                            "(UNKNOWN_SETTING)"
                        )
                    run(f"SET {name} = {quote(value)}")
                    applied.append(name)
                if database is not None:
                    run("USE `" + database.replace("`", "\\`") + "`")
                out = run(sql, query_params)
                status = 200
                if re.match(r"\s*INSERT\b", statement, re.IGNORECASE):
                    lost = lose_this_insert()
            except Exception as e:  # the engine's error, as the server says it
                out = str(e).encode()
                status = 500
            finally:
                for name in applied:
                    run(f"SET {name} = DEFAULT")
                if database is not None:
                    run("USE default")
            with open(log_path, "a") as log:
                line = {
                    "statement": statement,
                    "settings": settings,
                    "status": status,
                    "lost": lost,
                }
                if "query" in params:
                    line["rows"] = sum(1 for l in body.splitlines() if l.strip())
                log.write(json.dumps(line) + "\n")
            if lost:
                # Executed, never answered: the connection just ends.
                self.close_connection = True
                return
            self.send_response(status)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
