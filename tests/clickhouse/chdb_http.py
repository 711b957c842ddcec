#!/usr/bin/env python3
"""A minimal stand-in for ClickHouse's HTTP query interface, answered by
chdb (the current ClickHouse engine, in process), for the tests of
`dynostats ... --clickhouse URL` on the SQL that ClickHouse 18.16 cannot
run. The SQL and the engine are real; the HTTP client itself is tested
against the real 18.16 server.

    python3 chdb_http.py DATA_DIR PORT_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE once listening).
Each POST runs one query in one chdb session kept in DATA_DIR:

- the SQL is the body, or the `query` URL parameter followed by the body
  (an insert's rows), as the HTTP interface takes them;
- `param_NAME` URL parameters are the query's parameters (in the escaped
  format, as the HTTP interface takes them);
- other URL parameters (settings) are ignored;
- the answer is the query's output (TabSeparated unless the SQL says
  `FORMAT`); an error is HTTP 500 with ClickHouse's message
  (`Code: N. DB::Exception: ...`).
"""

import http.server
import sys
import urllib.parse

from chdb import session


def main():
    data_dir, port_file = sys.argv[1], sys.argv[2]
    sess = session.Session(data_dir)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            url = urllib.parse.urlparse(self.path)
            params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "surrogateescape")
            sql = body
            if "query" in params:
                sql = params["query"][0] + "\n" + body
            query_params = {
                k[len("param_"):]: v[0] for k, v in params.items() if k.startswith("param_")
            }
            try:
                out = sess.query(sql, "TabSeparated", params=query_params or None).bytes()
                status = 200
            except Exception as e:  # the engine's error, as the server says it
                out = str(e).encode()
                status = 500
            self.send_response(status)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os

    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
