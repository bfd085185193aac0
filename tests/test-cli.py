#!/usr/bin/env python3
"""The command line of podio-webhook (hooks, check, config) against the
Podio API simulator: what it prints, what it sends, its exit statuses, the
configuration sources and their precedence, and that no secret ever
reaches its output."""

import json
import os
import re
import socket
import urllib.parse

import testlib

t = testlib.Tap()

# Every stdout and stderr of the program, checked at the end for secrets.
OUTPUTS = []

HOOK_SECRET = "Wh s3cr&t=/?#%+x"
HOOK_SECRET_ENC = urllib.parse.quote(HOOK_SECRET, safe="")
BAD_CLIENT_SECRET = "not-the-client-secret-4711"
HOOK_URL = "https://hooks.example.com/podio"
# What a hook of app 1234 made with `hooks create` points at: the URL with
# the hook's app added (podio_app), which picks the credential of its
# events' calls.
APP_URL = HOOK_URL + "?podio_app=1234"


def pw(args, env, label=None, input=None):
    """Runs podio-webhook with args; records its output."""
    r = testlib.run([testlib.PODIO_WEBHOOK] + list(args), env=env,
                    input=input)
    OUTPUTS.append((label or " ".join(args), r.stdout, r.stderr,
                    r.returncode))
    return r


def show(r):
    return "exit %d\nstdout: %r\nstderr: %r" % (r.returncode, r.stdout,
                                               r.stderr)


def lines(text):
    return text.splitlines()


def one_error_line(r, command):
    """Whether stderr is exactly one line "podio-webhook: COMMAND: ..."."""
    ls = lines(r.stderr)
    return len(ls) == 1 and ls[0].startswith("podio-webhook: %s: " % command)


def closed_port():
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def package_version():
    """PACKAGE_VERSION from the build's config.h (None if not found)."""
    path = os.path.join(testlib.BUILDDIR, "config.h")
    try:
        with open(path) as f:
            m = re.search(r'#define PACKAGE_VERSION "([^"]*)"', f.read())
    except OSError:
        return None
    return m.group(1) if m else None


def duration_ms(text):
    """Parses a duration as the configuration does (bare number: s)."""
    m = re.match(r"^(\d+)(ms|s|m|h|d)?$", text.strip())
    if not m:
        return None
    mult = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000,
            "d": 86400000}[m.group(2) or "s"]
    return int(m.group(1)) * mult


def config_value(r, key):
    """The value of key in `podio-webhook config` output, or None."""
    for line in lines(r.stdout):
        k, sep, v = line.partition(" = ")
        if sep and k == key:
            return v
        if line == key + " =":
            return ""
    return None


def parse_table(text):
    """The hooks table: (header line, [row dicts]) by column positions."""
    ls = lines(text)
    if not ls:
        return None, []
    header = ls[0]
    cols = ["ID", "STATUS", "TYPE", "URL"]
    pos = [header.find(c) for c in cols]
    rows = []
    for line in ls[1:]:
        row = {}
        for i, c in enumerate(cols):
            end = pos[i + 1] if i + 1 < len(cols) else len(line)
            row[c] = line[pos[i]:end].strip()
        row["_line"] = line
        rows.append(row)
    return header, rows


def requests_of(sim, method, path):
    return [q for q in sim.requests(method=method) if q["path"] == path]


with testlib.Sim() as sim:
    env = testlib.base_env(sim)

    # ------------------------------------------------ help, version, usage
    r = pw(["--version"], env)
    version = package_version()
    t.ok(r.returncode == 0 and r.stdout == "podio-webhook %s\n" % version
         and version is not None, "--version prints podio-webhook VERSION",
         show(r))

    r = pw(["--help"], env)
    missing = [w for w in ("hooks create", "hooks list", "hooks verify",
                           "hooks validate", "hooks delete", "check",
                           "config", "--config", "--set", "--help",
                           "--version", "--json", "--keys")
               if w not in r.stdout]
    t.ok(r.returncode == 0 and not missing and r.stderr == "",
         "--help lists every command and global option on stdout",
         show(r) + "\nmissing: %r" % missing)

    r = pw(["hooks", "create", "--help"], env)
    t.ok(r.returncode == 0 and r.stdout.startswith("Usage:")
         and "hooks create REF_TYPE REF_ID URL EVENT" in r.stdout,
         "hooks create --help prints that command's usage", show(r))

    r = pw(["config", "--help"], env)
    t.ok(r.returncode == 0 and "--keys" in r.stdout,
         "config --help prints its usage with --keys", show(r))

    # Every command the program lists: its words (up to the first
    # argument) and where its summary starts.
    r = pw(["--help"], env)
    listed = []
    in_commands = False
    for line in lines(r.stdout):
        if line == "Commands:":
            in_commands = True
            continue
        if in_commands and not line.strip():
            break
        if in_commands:
            m = re.match(r"^  (\S.*?\S)\s{2,}(\S.*)$", line)
            if not m:
                listed.append((line, None, None))
                continue
            words = []
            for w in m.group(1).split():
                if not re.match(r"^[a-z]+$", w):
                    break
                words.append(w)
            listed.append((line, words, line.index(m.group(2))))
    t.ok(len(listed) >= 15 and all(w for _, w, _ in listed),
         "--help lists the commands, each with a summary", listed)
    columns = sorted(set(c for _, _, c in listed))
    t.ok(len(columns) == 1 and all(len(ln) <= 80 for ln, _, _ in listed),
         "--help: every command's summary starts in the same column, "
         "lines fit 80 columns", "\n".join(ln for ln, _, _ in listed))
    commands = [w for _, w, _ in listed if w]
    groups = sorted(set(w[0] for w in commands if len(w) > 1))
    t.ok(groups == ["hooks", "spool"], "the command groups are hooks and "
         "spool", groups)
    # Nothing runs: no Podio, no spool (an unusable spool_dir).
    henv = dict(env, PODIO_SPOOL_DIR="/nonexistent/podio-webhook-spool",
                PODIO_API_URL="http://127.0.0.1:%d" % closed_port())
    for words in commands + [[g] for g in groups]:
        for flag in ("--help", "-h"):
            r = pw(words + [flag], henv)
            first = lines(r.stdout)[0] if r.stdout else ""
            t.ok(r.returncode == 0 and r.stderr == "" and
                 first.startswith("Usage: podio-webhook ") and
                 " ".join(words) in first,
                 "%s %s: its usage on stdout, exit 0" % (" ".join(words),
                                                         flag), show(r))
    r = pw(["spool", "status", "--json", "--help"], henv)
    t.ok(r.returncode == 0 and "--json" in r.stdout and r.stderr == "",
         "spool status --json --help: the usage, with --json", show(r))
    r = pw(["spool", "status", "--bogus"], henv)
    t.ok(r.returncode == 2 and r.stdout == "" and "--bogus" not in
         r.stdout and "Usage: podio-webhook" in r.stderr and
         "spool status [--json]" in r.stderr,
         "spool status --bogus: exit 2, the command's usage on stderr",
         show(r))

    sim.clear_requests()
    r = pw([], env)
    t.ok(r.returncode == 2 and "Usage:" in r.stderr and r.stdout == "",
         "no command: usage on stderr, exit 2", show(r))

    r = pw(["frobnicate"], env)
    t.ok(r.returncode == 2 and "frobnicate" in r.stderr
         and "--help" in r.stderr, "unknown command: exit 2, named, hint",
         show(r))

    r = pw(["hooks", "frobnicate", "app", "1"], env)
    t.ok(r.returncode == 2 and "frobnicate" in r.stderr,
         "unknown hooks command: exit 2", show(r))

    r = pw(["--bogus", "check"], env)
    t.ok(r.returncode == 2 and "--bogus" in r.stderr,
         "unknown global option: exit 2", show(r))

    r = pw(["hooks", "list", "app", "1234", "--bogus"], env)
    t.ok(r.returncode == 2 and "--bogus" in r.stderr,
         "unknown command option: exit 2", show(r))

    r = pw(["hooks", "list", "app", "12x4"], env)
    t.ok(r.returncode == 2 and one_error_line(r, "hooks list")
         and "12x4" in r.stderr, "bad reference id: exit 2, one line",
         show(r))

    r = pw(["hooks", "verify", "-5"], env)
    t.ok(r.returncode == 2, "negative hook id: exit 2", show(r))

    r = pw(["hooks", "delete", "abc"], env)
    t.ok(r.returncode == 2 and "abc" in r.stderr, "bad hook id: exit 2",
         show(r))

    r = pw(["hooks", "create", "app", "1234", HOOK_URL], env)
    t.ok(r.returncode == 2 and "Usage:" in r.stderr,
         "hooks create with a missing argument: exit 2 with usage", show(r))

    r = pw(["hooks", "delete", "1", "2"], env)
    t.ok(r.returncode == 2 and "Usage:" in r.stderr,
         "hooks delete with an extra argument: exit 2 with usage", show(r))

    r = pw(["hooks", "create", "app", "1234", "ftp://example.com/x",
            "item.create"], env)
    t.ok(r.returncode == 2, "hooks create with a non-http URL: exit 2",
         show(r))

    r = pw(["hooks", "create", "app", "1234", HOOK_URL, "Item Create"], env)
    t.ok(r.returncode == 2, "hooks create with a bad event type: exit 2",
         show(r))

    r = pw(["-o", "timeout", "config"], env)
    t.ok(r.returncode == 2, "-o without '=': exit 2", show(r))

    t.ok(sim.requests() == [], "usage errors sent nothing to the API",
         sim.requests())

    # ------------------------------------------------------------ create
    sim.clear_requests()
    r = pw(["hooks", "create", "app", "1234", HOOK_URL, "item.create"], env)
    m = re.match(r"^(\d+)\n$", r.stdout)
    t.ok(r.returncode == 0 and m is not None,
         "hooks create prints the new hook id alone", show(r))
    hook1 = int(m.group(1)) if m else -1
    posts = requests_of(sim, "POST", "/hook/app/1234/")
    body = json.loads(posts[0]["body"]) if len(posts) == 1 else None
    t.ok(body is not None and body.get("url") == APP_URL
         and body.get("type") == "item.create",
         "POST /hook/app/1234/ with JSON {url, type}, the URL naming the "
         "app (podio_app=1234)", posts)
    t.ok(hook1 in [h["hook_id"] for h in sim.hooks()],
         "the printed id is the simulator's hook", sim.hooks())

    # ------------------------------------------------------------ list
    r = pw(["hooks", "list", "app", "1234"], env)
    header, rows = parse_table(r.stdout)
    t.ok(r.returncode == 0 and header is not None
         and header.split() == ["ID", "STATUS", "TYPE", "URL"],
         "hooks list prints a header ID STATUS TYPE URL", show(r))
    mine = [x for x in rows if x["ID"] == str(hook1)]
    t.ok(len(mine) == 1 and mine[0]["STATUS"] == "inactive"
         and mine[0]["TYPE"] == "item.create" and mine[0]["URL"] == APP_URL,
         "hooks list shows the new hook, inactive, in aligned columns",
         show(r))

    r = pw(["hooks", "list", "app", "1234", "--json"], env)
    try:
        arr = json.loads(r.stdout)
    except ValueError:
        arr = None
    ok = (isinstance(arr, list) and
          any(h.get("hook_id") == hook1 and h.get("status") == "inactive"
              and h.get("type") == "item.create" and h.get("url") == APP_URL
              for h in arr))
    t.ok(r.returncode == 0 and ok, "hooks list --json prints a JSON array "
         "holding the hook", show(r))

    r = pw(["hooks", "list", "app", "999"], env)
    t.ok(r.returncode == 0 and len(lines(r.stdout)) == 1,
         "hooks list of an object without hooks prints only the header",
         show(r))

    r = pw(["hooks", "list", "app", "999", "--json"], env)
    t.ok(r.returncode == 0 and r.stdout.strip() == "[]",
         "hooks list --json of an object without hooks prints []", show(r))

    # ------------------------------------------------- webhook_secret
    env_s = dict(env)
    env_s["PODIO_WEBHOOK_SECRET"] = HOOK_SECRET
    sim.clear_requests()
    r = pw(["hooks", "create", "app", "1234", HOOK_URL, "item.update"],
           env_s)
    m = re.match(r"^(\d+)\n$", r.stdout)
    hook2 = int(m.group(1)) if m else -1
    posts = requests_of(sim, "POST", "/hook/app/1234/")
    sent = json.loads(posts[0]["body"])["url"] if len(posts) == 1 else None
    t.is_(sent, APP_URL + "&secret=" + HOOK_SECRET_ENC,
          "webhook_secret: ?secret=<percent-encoded> appended to the URL")
    t.ok(sent is not None and
         urllib.parse.parse_qs(urllib.parse.urlsplit(sent).query)
         .get("secret") == [HOOK_SECRET],
         "the appended secret decodes to the configured value", sent)

    url3 = "https://hooks.example.com/podio?app=crm&x=1#frag"
    sim.clear_requests()
    r = pw(["hooks", "create", "app", "1234", url3, "item.delete"], env_s)
    m = re.match(r"^(\d+)\n$", r.stdout)
    hook3 = int(m.group(1)) if m else -1
    posts = requests_of(sim, "POST", "/hook/app/1234/")
    sent = json.loads(posts[0]["body"])["url"] if len(posts) == 1 else None
    t.is_(sent, "https://hooks.example.com/podio?app=crm&x=1&podio_app=1234"
          "&secret=" + HOOK_SECRET_ENC + "#frag",
          "with an existing query: &secret=... before the #fragment")

    sim.clear_requests()
    r = pw(["hooks", "create", "app", "1234", HOOK_URL + "?secret=mine",
            "item.create"], env_s)
    t.ok(r.returncode == 2 and one_error_line(r, "hooks create") and
         sim.requests() == [],
         "a URL with its own secret= and webhook_secret set: exit 2",
         show(r))

    for e, what in ((env_s, "with webhook_secret"),
                    (env, "without webhook_secret")):
        r = pw(["hooks", "list", "app", "1234"], e)
        header, rows = parse_table(r.stdout)
        urls = {x["ID"]: x["URL"] for x in rows}
        t.ok(r.returncode == 0
             and urls.get(str(hook2)) == APP_URL + "&secret=***"
             and urls.get(str(hook3)) ==
             "https://hooks.example.com/podio?app=crm&x=1&podio_app=1234"
             "&secret=***#frag",
             "hooks list masks secret= in the table (%s)" % what, show(r))
    r = pw(["hooks", "list", "app", "1234", "--json"], env_s)
    try:
        urls = {h["hook_id"]: h["url"] for h in json.loads(r.stdout)}
    except (ValueError, KeyError, TypeError):
        urls = {}
    t.ok(urls.get(hook2) == APP_URL + "&secret=***" and
         urls.get(hook3) ==
         "https://hooks.example.com/podio?app=crm&x=1&podio_app=1234"
         "&secret=***#frag",
         "hooks list --json masks secret=", show(r))

    # ------------------------------------------------ verify, validate
    sim.clear_requests()
    r = pw(["hooks", "verify", str(hook1)], env)
    t.ok(r.returncode == 0 and
         r.stdout == "hook %d: verification requested\n" % hook1,
         "hooks verify prints a confirmation", show(r))
    t.ok(len(requests_of(sim, "POST", "/hook/%d/verify/request"
                         % hook1)) == 1,
         "POST /hook/ID/verify/request sent", sim.requests())

    code = sim.verify_code(hook1)
    r = pw(["hooks", "validate", str(hook1), "wrong-" + str(code)], env)
    t.ok(r.returncode == 1 and one_error_line(r, "hooks validate")
         and "Invalid verification code" in r.stderr,
         "validate with a wrong code: exit 1 with Podio's message", show(r))

    # Podio's own description is what reaches the user.
    sim.fail("/hook/%d/verify/validate" % hook1, status=400,
             error="invalid_value",
             error_description="The code has expired, request a new one")
    r = pw(["hooks", "validate", str(hook1), code], env)
    t.ok(r.returncode == 1 and one_error_line(r, "hooks validate") and
         "The code has expired, request a new one" in r.stderr,
         "Podio's error_description is printed verbatim", show(r))
    status = {h["hook_id"]: h["status"] for h in sim.hooks()}
    t.is_(status.get(hook1), "inactive", "the refused codes left the hook "
          "inactive")

    sim.clear_requests()
    r = pw(["hooks", "validate", str(hook1), code], env)
    t.ok(r.returncode == 0 and r.stdout.startswith("hook %d: " % hook1)
         and len(lines(r.stdout)) == 1,
         "validate with the issued code: exit 0, one line", show(r))
    posts = requests_of(sim, "POST", "/hook/%d/verify/validate" % hook1)
    t.ok(len(posts) == 1 and json.loads(posts[0]["body"]) == {"code": code},
         "POST /hook/ID/verify/validate with JSON {code}", posts)
    r = pw(["hooks", "list", "app", "1234"], env)
    header, rows = parse_table(r.stdout)
    t.ok([x["STATUS"] for x in rows if x["ID"] == str(hook1)] == ["active"],
         "hooks list shows the hook active", show(r))

    # ------------------------------------------------------------ delete
    sim.clear_requests()
    r = pw(["hooks", "delete", str(hook1)], env)
    t.ok(r.returncode == 0 and r.stdout == "hook %d: deleted\n" % hook1,
         "hooks delete prints a confirmation", show(r))
    t.ok(len(requests_of(sim, "DELETE", "/hook/%d" % hook1)) == 1,
         "DELETE /hook/ID sent (no trailing slash)", sim.requests())
    r = pw(["hooks", "list", "app", "1234"], env)
    header, rows = parse_table(r.stdout)
    t.ok(r.returncode == 0 and str(hook1) not in [x["ID"] for x in rows]
         and len(rows) == 2, "the deleted hook is gone from the list",
         show(r))
    r = pw(["hooks", "delete", str(hook1)], env)
    t.ok(r.returncode == 1 and one_error_line(r, "hooks delete")
         and "not found" in r.stderr.lower(),
         "deleting an unknown hook: exit 1, Podio's message", show(r))

    # ------------------------------------------------------------ check
    r = pw(["check"], env)
    t.ok(r.returncode == 0 and r.stdout ==
         "ok: authenticated to %s as app 1234 (client test-client)\n"
         % sim.url, "check: exit 0, one line naming the app", show(r))

    env_u = testlib.base_env(sim, app_id=None, app_token=None,
                             username="user@example.com", password="pw")
    r = pw(["check"], env_u)
    t.ok(r.returncode == 0 and r.stdout ==
         "ok: authenticated to %s as user user@example.com "
         "(client test-client)\n" % sim.url,
         "check with the password flow names the user", show(r))

    env_bad = testlib.base_env(sim, client_secret=BAD_CLIENT_SECRET)
    r = pw(["check"], env_bad)
    t.ok(r.returncode == 1 and one_error_line(r, "check") and
         "refused" in r.stderr and BAD_CLIENT_SECRET not in r.stderr,
         "check with a wrong client secret: exit 1, one line, no secret",
         show(r))

    env_down = testlib.base_env(sim, api_url="http://127.0.0.1:%d"
                                % closed_port(), connect_timeout="5s",
                                timeout="10s")
    r = pw(["check"], env_down)
    t.ok(r.returncode == 3 and one_error_line(r, "check"),
         "check with an unreachable api_url: exit 3, one line", show(r))
    r = pw(["hooks", "list", "app", "1234"], env_down)
    t.ok(r.returncode == 3 and one_error_line(r, "hooks list"),
         "hooks list with an unreachable api_url: exit 3", show(r))

    env_nocred = testlib.base_env(sim, client_secret=None, app_token=None)
    r = pw(["check"], env_nocred)
    t.ok(r.returncode == 2 and one_error_line(r, "check") and
         "client_secret" in r.stderr and "app_token" in r.stderr,
         "check with missing credentials: exit 2 naming the keys", show(r))

    r = pw(["-o", "api_url=ftp://example.com", "check"], env)
    t.ok(r.returncode == 2, "an api_url that is not http(s): exit 2",
         show(r))

    # --------------------------------------------------------- rate limit
    sim.fail("/hook/app/1234/", status=420, method="GET",
             error="rate_limit",
             error_description="You have hit the rate limit. Please wait "
             "137 seconds before trying again")
    r = pw(["hooks", "list", "app", "1234"], env)
    t.ok(r.returncode == 1 and one_error_line(r, "hooks list") and
         "137" in r.stderr, "420: exit 1 with the wait", show(r))
    sim.fail("/hook/app/1234/", status=420, method="GET", error="rate_limit",
             error_description="Slow down", headers={"Retry-After": "61"})
    r = pw(["hooks", "list", "app", "1234"], env)
    t.ok(r.returncode == 1 and "61 s" in r.stderr,
         "420 with Retry-After: the wait is printed", show(r))

    # ------------------------------------------------------------ config
    d = testlib.tmpdir()
    missing = os.path.join(d, "no-such.conf")
    r = pw(["-c", missing, "config"], env)
    t.ok(r.returncode == 2 and missing in r.stderr and r.stdout == "",
         "-c with a missing file: exit 2 naming it", show(r))

    env_m = dict(env)
    env_m["PODIO_WEBHOOK_CONFIG"] = missing
    r = pw(["config"], env_m)
    t.ok(r.returncode == 2 and missing in r.stderr,
         "PODIO_WEBHOOK_CONFIG naming a missing file: exit 2", show(r))

    bad = testlib.write_config(os.path.join(d, "bad.conf"),
                               lines=["# comment", "timeout = 5s",
                                      "this line is not valid"])
    r = pw(["-c", bad, "config"], env)
    t.ok(r.returncode == 2 and ("%s:3" % bad) in r.stderr,
         "malformed configuration: exit 2 with file:line", show(r))

    conf = testlib.write_config(os.path.join(d, "good.conf"),
                                timeout="11s", connect_timeout="4s",
                                webhook_secret=HOOK_SECRET)
    env_c = dict(env)
    env_c.pop("PODIO_TIMEOUT", None)
    r = pw(["-c", conf, "config"], env_c)
    t.is_(duration_ms(config_value(r, "timeout") or ""), 11000,
          "precedence: the file sets timeout")
    env_c["PODIO_TIMEOUT"] = "22s"
    r = pw(["-c", conf, "config"], env_c)
    t.is_(duration_ms(config_value(r, "timeout") or ""), 22000,
          "precedence: the environment beats the file")
    r = pw(["-c", conf, "-o", "timeout=33s", "config"], env_c)
    t.is_(duration_ms(config_value(r, "timeout") or ""), 33000,
          "precedence: -o beats the environment")
    r = pw(["-c", conf, "-o", "timeout=33s", "--set", "timeout=44s",
            "config"], env_c)
    t.is_(duration_ms(config_value(r, "timeout") or ""), 44000,
          "precedence: the last -o wins")
    t.is_(duration_ms(config_value(r, "connect_timeout") or ""), 4000,
          "keys set only in the file keep its value")

    env_cfg = dict(env_c)
    env_cfg["PODIO_WEBHOOK_CONFIG"] = conf
    r = pw(["config"], env_cfg)
    t.is_(duration_ms(config_value(r, "timeout") or ""), 22000,
          "PODIO_WEBHOOK_CONFIG names the file")

    r = pw(["-c", conf, "config"], env_c)
    t.ok(config_value(r, "client_secret") == "(set)" and
         config_value(r, "app_token") == "(set)" and
         config_value(r, "webhook_secret") == "(set)",
         "config shows set secrets as (set)", show(r))
    t.ok(config_value(r, "password") == "" and
         config_value(r, "username") == "" and
         config_value(r, "client_id") == "test-client" and
         config_value(r, "api_url") == sim.url,
         "config shows unset keys empty and plain values as they are",
         show(r))
    r2 = pw(["config", "--keys"], env)
    keys = lines(r2.stdout)
    shown = [line.split(" =")[0] for line in lines(r.stdout)]
    t.ok(r2.returncode == 0 and keys and shown == keys and
         all(re.match(r"^[a-z_]+$", k) for k in keys),
         "config prints every key of config --keys, in order", show(r2))

    # ------------------------------------------- one token for many runs
    env_t = testlib.base_env(sim)
    sim.clear_requests()
    statuses = []
    for args in (["check"], ["hooks", "list", "app", "1234"],
                 ["hooks", "list", "app", "1234", "--json"],
                 ["hooks", "create", "app", "1234", HOOK_URL,
                  "comment.create"], ["check"],
                 ["hooks", "list", "app", "777"]):
        statuses.append(pw(args, env_t).returncode)
    t.ok(statuses == [0] * 6 and len(sim.token_requests()) == 1,
         "six commands in a row make one token request (token cache)",
         "statuses %r, token requests %d" % (statuses,
                                             len(sim.token_requests())))

    # ------------------------------------------- exit codes in the manual
    man = os.path.join(testlib.BUILDDIR, "handler", "podio-webhook.1")
    if not os.path.exists(man):
        man = os.path.join(testlib.SRCDIR, "handler", "podio-webhook.1.in")
    with open(man) as f:
        text = f.read()
    section = re.search(r"^\.SH \"?EXIT STATUS\"?\n(.*?)(?=^\.SH )", text,
                        re.S | re.M)
    documented = {}
    if section:
        ls = section.group(1).splitlines()
        for i, line in enumerate(ls[:-1]):
            m = re.match(r"^\.B (\d+)$", ls[i + 1])
            if line == ".TP" and m:
                desc = []
                for more in ls[i + 2:]:
                    if more.startswith(".TP"):
                        break
                    desc.append(more)
                documented[int(m.group(1))] = " ".join(desc).lower()
    t.ok(sorted(documented) == [0, 1, 2, 3] and
         "podio answered" in documented.get(1, "") and
         "usage" in documented.get(2, "") and
         "configuration" in documented.get(2, "") and
         "could not be reached" in documented.get(3, ""),
         "the manual documents exit statuses 0-3 as the program uses them",
         documented)

    # ------------------------------------------- no secret in any output
    secrets = {"client_secret": "test-secret", "app_token": "app-token",
               "bad client secret": BAD_CLIENT_SECRET,
               "webhook_secret": HOOK_SECRET,
               "webhook_secret encoded": HOOK_SECRET_ENC}
    for i, tok in enumerate(sim.tokens()):
        secrets["access token %d" % i] = tok["access_token"]
        if tok.get("refresh_token"):
            secrets["refresh token %d" % i] = tok["refresh_token"]
    leaks = []
    for name, value in secrets.items():
        for label, out, err, _ in OUTPUTS:
            if value in out or value in err:
                leaks.append("%s in the output of %r" % (name, label))
    t.ok(len(OUTPUTS) > 40 and len(secrets) > 5 and not leaks,
         "no secret or token in the output of any of %d runs"
         % len(OUTPUTS), "\n".join(leaks))

    # Under valgrind (exit 99) or the sanitizers a memory error shows in
    # the exit status or on stderr of some run, even one whose output
    # looked right.
    broken = ["%r: exit %d: %s" % (label, rc, err[-300:])
              for label, out, err, rc in OUTPUTS
              if rc not in (0, 1, 2, 3) or "Sanitizer" in err
              or "runtime error:" in err]
    t.ok(not broken, "every run exited 0-3 with no memory error reported",
         "\n".join(broken))

t.done()
