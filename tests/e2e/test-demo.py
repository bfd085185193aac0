#!/usr/bin/env python3
"""The README's first quick-start command, tests/demo, works: its Python
part (tests/e2e/demo.py) runs against the build under test, ends with
exit 0 and leaves nothing running, and what it shows is what happened:
the events the `log *` rule wrote (an item.create fetched with its item,
one whose item was deleted before the fetch with "item": null and its
item_error; each item's events in arrival order) and one line of the
`on item.*` command per event.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import servers  # noqa: E402
import testlib  # noqa: E402

# What tests/e2e/demo.py delivers, in this order.
DELIVERED = [("item.create", 101), ("item.create", 102),
             ("item.update", 101), ("item.delete", 102)]


def main():
    t = testlib.Tap()
    servers.require_root(t)
    servers.require_programs(t, servers.NGINX, "setpriv")
    out = os.path.join(testlib.tmpdir(), "demo-output")
    r = subprocess.run([sys.executable, os.path.join(HERE, "demo.py"),
                        testlib.PODIO_WEBHOOK, out],
                       capture_output=True, text=True, timeout=600)
    t.ok(r.returncode == 0, "the demo ends with exit 0",
         (r.stdout + r.stderr)[-3000:])
    t.ok("done: nothing of the demo is left running" in r.stdout,
         "the demo stops everything it started", r.stdout[-1500:])
    events = []
    try:
        with open(os.path.join(out, "events.jsonl")) as f:
            events = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        t.diag("events.jsonl: %s" % e)
    items = [e for e in events if e.get("type", "").startswith("item.")]
    # Events run in arrival order per item; two items may interleave
    # either way (each gathers in its own settle window).
    seen = [(e["type"], e.get("item_id")) for e in items]
    t.ok(sorted(seen) == sorted(DELIVERED),
         "the log rule got the four item events, each once", repr(seen))
    t.ok(all([s for s in seen if s[1] == i] ==
             [d for d in DELIVERED if d[1] == i] for i in (101, 102)),
         "the events of each item are in arrival order", repr(seen))
    by = {(e.get("type"), e.get("item_id")): e for e in items}
    first = by.get(("item.create", 101), {})
    gone = by.get(("item.create", 102), {})
    t.ok(isinstance(first.get("item"), dict) and
         first["item"].get("item_id") == 101,
         "item 101 was fetched and handed on with the event")
    t.ok(isinstance(gone.get("item"), dict) or
         ("item" in gone and gone["item"] is None and
          gone.get("item_error") == "not_found"),
         "item 102 (deleted right after) comes with its item, or with "
         "\"item\": null and \"item_error\": \"not_found\"", repr(gone))
    try:
        with open(os.path.join(out, "on-item.txt")) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    t.ok(len(lines) == 4, "the on item.* command ran once per event",
         repr(lines))
    t.done()


testlib.main(main)
