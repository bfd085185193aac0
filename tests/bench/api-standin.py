#!/usr/bin/env python3
"""A fast stand-in for the Podio API, for the benchmark (tests/bench/ack).

Usage: api-standin.py PORT_FILE

Listens on 127.0.0.1 (a port of its own choosing, written to PORT_FILE
once it listens), one thread per connection, HTTP/1.1 with keep-alive,
and answers at once, without checking anything:

  POST /oauth/token                 an app token valid for 8 hours
  GET  /item/ID                     item ID of app APP_ID (a query string
                                    is ignored)
  POST /item/app/ID/filter/         the listed item ids, as items of that
                                    app (JSON {"filters": {"item_id": [..]}})

Every answer says that plenty of calls are left (X-Rate-Limit-Remaining),
so the budget never holds the processors back.  Anything else is 404.

GET /__stats answers the counts as JSON: requests per route and the TCP
connections that carried at least one API request (a connection that only
asked for /__stats is not counted); POST /__reset sets them to zero.
Python 3 standard library only.
"""

import http.server
import json
import os
import re
import socket
import sys
import threading

APP_ID = 4242
LOCK = threading.Lock()
STATS = {"connections": 0, "token": 0, "get": 0, "filter": 0,
         "filter_items": 0, "other": 0}

ITEM_RE = re.compile(r"^/item/([1-9][0-9]*)$")
FILTER_RE = re.compile(r"^/item/app/([1-9][0-9]*)/filter/$")


def item(item_id, app_id):
    """A small item as Podio shapes one."""
    title = "Item %d" % item_id
    return {
        "item_id": item_id,
        "app_item_id": item_id % 1000000,
        "app": {"app_id": app_id, "name": "Bench", "item_name": "Item"},
        "title": title,
        "current_revision": {"revision": 1},
        "fields": [{"field_id": 1, "type": "text", "external_id": "title",
                    "label": "Title", "values": [{"value": title}]}],
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counted = False

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Rate-Limit-Limit", "1000000")
        self.send_header("X-Rate-Limit-Remaining", "999999")
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def count(self, what, items=0):
        with LOCK:
            if not self.counted:
                STATS["connections"] += 1
            STATS[what] += 1
            STATS["filter_items"] += items
        self.counted = True

    def do_GET(self):
        if self.path == "/__stats":
            with LOCK:
                stats = dict(STATS)
            self.answer(200, stats)
            return
        m = ITEM_RE.match(self.path.split("?", 1)[0])
        if m:
            self.count("get")
            self.answer(200, item(int(m.group(1)), APP_ID))
            return
        self.count("other")
        self.answer(404, {"error": "not_found"})

    def do_POST(self):
        body = self.body()
        if self.path == "/__reset":
            with LOCK:
                for k in STATS:
                    STATS[k] = 0
            self.answer(200, {})
            return
        if self.path == "/oauth/token":
            self.count("token")
            self.answer(200, {
                "access_token": os.urandom(16).hex(), "token_type": "bearer",
                "expires_in": 28800, "refresh_token": os.urandom(16).hex(),
                "ref": {"type": "app", "id": APP_ID},
                "scope": "app:read"})
            return
        m = FILTER_RE.match(self.path.split("?", 1)[0])
        if m:
            try:
                ids = [int(i) for i in
                       json.loads(body)["filters"]["item_id"]]
            except (ValueError, KeyError, TypeError):
                ids = []
            self.count("filter", len(ids))
            items = [item(i, int(m.group(1))) for i in ids]
            self.answer(200, {"total": len(items), "filtered": len(items),
                              "items": items})
            return
        self.count("other")
        self.answer(404, {"error": "not_found"})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: api-standin.py PORT_FILE\n")
        return 2
    srv = Server(("127.0.0.1", 0), Handler)
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, sys.argv[1])
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
