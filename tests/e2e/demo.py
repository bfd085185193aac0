#!/usr/bin/env python3
"""The demo of podio-webhook on loopback (run by tests/demo).

nginx (deploy/nginx-serve.conf) in front of `podio-webhook serve`, the
Podio API simulator playing api.podio.com, hooks created and verified
with the command line, a few item events delivered as Podio delivers
them, and what the callbacks made of them.  Everything listens on
127.0.0.1 on free ports, so a web server already running on port 80 is
no obstacle; everything started here is stopped at the end, whatever
happens.

Usage: demo.py PODIO-WEBHOOK-BINARY [OUTPUT-DIR]
"""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import servers  # noqa: E402
import testlib  # noqa: E402

APP_ID = 1234
SECRET = "demo-secret-0123456789abcdef"

ON_ITEM = '''\
#!/usr/bin/env python3
# The demo's `on item.*` command: podio-webhook runs it for each item
# event, with the event as JSON on its standard input.
import json, sys
e = json.load(sys.stdin)
title = (e.get("item") or {}).get("title")
line = "%s: item %s%s (hook %s)" % (
    e["type"], e.get("item_id"),
    ' "%s"' % title if title else " (deleted: nothing to fetch)",
    e["hook_id"])
with open(@OUT@, "a") as f:
    f.write(line + "\\n")
'''


def say(text=""):
    print(text, flush=True)


def step(n, text):
    say()
    say("== %d. %s" % (n, text))


def show_cmd(argv):
    say("   $ " + " ".join(argv))


def indent(text, prefix="     "):
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: demo.py PODIO-WEBHOOK [OUTPUT-DIR]")
    binary = os.path.abspath(sys.argv[1])
    outdir = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
    root_user = os.geteuid() == 0
    # As root, podio-webhook runs as nobody with the web server's group and
    # nginx's workers as www-data, as deploy/README.md sets it up.
    user, group = ("nobody", servers.WEB_GROUP) if root_user else (None, None)

    def as_user(argv):
        return (servers.as_user(user, group) if user else []) + argv

    root = servers.make_root()
    bindir = servers.mkdir(os.path.join(root, "bin"))
    exe = os.path.join(bindir, "podio-webhook")
    shutil.copy(binary, exe)
    os.chmod(exe, 0o755)
    state = servers.mkdir(os.path.join(root, "state"), 0o700, user, group)
    events = servers.mkdir(os.path.join(root, "events"), 0o755, user, group)
    rundir = servers.mkdir(os.path.join(root, "run"), 0o750, user,
                           group or None)
    sock = os.path.join(rundir, "podio-webhook.sock")
    on_out = os.path.join(events, "on-item.txt")
    on_cmd = servers.write_file(os.path.join(bindir, "on-item"),
                                ON_ITEM.replace("@OUT@", repr(on_out)), 0o755)
    events_log = os.path.join(events, "events.jsonl")
    conf = os.path.join(root, "podio-webhook.conf")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

    step(1, "The Podio API simulator plays api.podio.com")
    sim = testlib.Sim().start()
    sim.configure(next_hook_id=5001)
    say("   tests/podio-sim.py listens on %s" % sim.url)
    for item_id, title in ((101, "Order #101: 3 chairs"),
                           (102, "Order #102: 1 table")):
        sim.add_item(item_id, app_id=APP_ID, title=title)
    say("   with app %d and its items 101 and 102" % APP_ID)

    step(2, "The configuration (%s)" % conf)
    text = "\n".join([
        "client_id = test-client",
        "client_secret = test-secret",
        "app_id = %d" % APP_ID,
        "app_token = app-token",
        "api_url = " + sim.url,
        "webhook_secret = " + SECRET,
        "token_cache = " + os.path.join(state, "token-cache.json"),
        "spool_dir = " + os.path.join(state, "spool"),
        "log * = " + events_log,
        "on item.* = " + on_cmd,
    ]) + "\n"
    servers.write_file(conf, text, 0o600, user, group)
    say(indent(text))

    step(3, "podio-webhook serve: FastCGI on a unix socket%s" % (
        " (as %s:%s)" % (user, group) if user else ""))
    argv = [exe, "-c", conf, "serve", "--listen", "unix:" + sock,
            "--socket-mode", "0660"]
    show_cmd(["podio-webhook"] + argv[1:])
    serve = servers.Proc("podio-webhook serve", as_user(argv),
                         os.path.join(root, "serve.log"), env=env).start()
    servers.wait_until(lambda: servers.socket_open(sock), 30,
                       "the socket of podio-webhook serve", serve)

    port = servers.free_port()
    url = "http://127.0.0.1:%d/podio-hook" % port
    step(4, "nginx in front of it, from deploy/nginx-serve.conf, on "
         "127.0.0.1:%d" % port)
    site = servers.substitute("nginx-serve.conf",
                              LISTEN="127.0.0.1:%d" % port,
                              SERVER_NAME="127.0.0.1", SOCKET=sock)
    ngx = servers.Nginx(root, site, port)
    ngx.start()
    say("   the hook URL is " + url)

    step(5, "Create the hooks with the command line")
    hooks = {}
    for ev in ("item.create", "item.update", "item.delete"):
        argv = [exe, "-c", conf, "hooks", "create", "app", str(APP_ID), url,
                ev]
        show_cmd(["podio-webhook"] + argv[1:])
        r = testlib.run(as_user(argv), env=env, wrap=False)
        if r.returncode != 0:
            raise servers.ServerError("hooks create failed:\n" + r.stderr)
        hooks[ev] = int(r.stdout.strip())
        say(indent(r.stdout))
    say("   (the URL Podio gets carries ?secret=...; Podio moves it into "
        "the body of each delivery)")

    step(6, "Podio sends hook.verify; podio-webhook validates the code")

    def all_active():
        return all(h["status"] == "active" for h in sim.hooks())
    sim.wait_until(all_active, timeout=30, what="the hooks to be verified")
    argv = [exe, "-c", conf, "hooks", "list", "app", str(APP_ID)]
    show_cmd(["podio-webhook"] + argv[1:])
    r = testlib.run(as_user(argv), env=env, wrap=False)
    say(indent(r.stdout + r.stderr))

    step(7, "Podio delivers item events to the hook URL")
    deliveries = [("item.create", 101), ("item.create", 102),
                  ("item.update", 101), ("item.delete", 102)]
    for ev, item_id in deliveries:
        if ev == "item.delete":
            sim.delete_item(item_id)
        params = [("type", ev), ("hook_id", str(hooks[ev])),
                  ("item_id", str(item_id)),
                  ("item_revision_id", str(item_id * 10))]
        status = sim.deliver(hooks[ev], params)
        say("   POST /podio-hook  type=%s item_id=%d  ->  %d" % (
            ev, item_id, status))

    def settled():
        try:
            with open(on_out) as f:
                return len(f.read().splitlines()) >= len(deliveries)
        except OSError:
            return False
    sim.wait_until(settled, timeout=30, what="the callbacks")

    step(8, "The `log *` rule appended each event to %s" % events_log)
    with open(events_log) as f:
        for line in f:
            e = json.loads(line)
            if e["type"] == "hook.verify":
                continue
            brief = {k: e[k] for k in ("type", "hook_id", "item_id")
                     if k in e}
            if isinstance(e.get("item"), dict):
                brief["item"] = {"title": e["item"].get("title"), "...": "..."}
            elif "item" in e:
                # Fetched after the settle window, when the item may be
                # gone already (102 is deleted right after its create).
                brief["item"] = None
                brief["item_error"] = e.get("item_error")
            say("     " + json.dumps(brief))

    step(9, "The `on item.*` command printed")
    with open(on_out) as f:
        say(indent(f.read()))

    step(10, "podio-webhook logged one line per request (its stderr, or "
         "log_target)")
    say(indent(servers.tail(serve.log, 12)))

    step(11, "What podio-webhook asked of Podio")
    reqs = sim.requests()
    tokens = [q for q in reqs if q["path"] == "/oauth/token"]
    validates = [q for q in reqs if q["path"].endswith("/verify/validate")]
    gets = [q for q in reqs if q["method"] == "GET" and
            q["path"].startswith("/item/")]
    say("     %d token request%s (the command line and the server share "
        "it through the token cache)" % (len(tokens),
                                         "" if len(tokens) == 1 else "s"))
    say("     %d hook validations, %d item fetches (item.delete needs "
        "none)" % (len(validates), len(gets)))

    if outdir:
        os.makedirs(outdir, exist_ok=True)
        for src in (events_log, on_out, conf):
            shutil.copy(src, outdir)
        say()
        say("   The event log, the command's output and the configuration "
            "are kept in " + outdir)

    step(12, "Stopping nginx, podio-webhook and the simulator")
    left = ngx.stop() + serve.stop()
    sim.stop()
    left += servers.cleanup()
    if left:
        say("   had to kill: " + ", ".join(left))
        return 1
    say("   done: nothing of the demo is left running")
    say()
    say("To run it for real, with Podio: deploy/README.md.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (servers.ServerError, testlib.SimError) as exc:
        print("demo failed: %s" % exc, file=sys.stderr)
        sys.exit(1)
