"""The Podio API client of libpodio (lib/podio.c, lib/http.c, lib/errors.c
and the token store behind them) driven through tests/podio-test-client
against the simulator: token reuse across calls and threads, refresh and
replay on expiry, error mapping, transport failures, the size cap,
timeouts, what goes on the wire, connection reuse, and the observers a
program gives its clients to count their calls."""

import json
import re
import urllib.parse

import testlib

t = testlib.Tap()

RESULTS = []
EXPIRED_HEADERS = {"WWW-Authenticate":
                   'Bearer realm="podio", error="expired_token"'}


class Result:
    """What one run of podio-test-client printed."""

    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err
        self.failures = []
        self.ok = self.failed = self.token_requests = None
        self.last = {}
        self.observed = None
        self.rest = []
        RESULTS.append(self)
        for line in self.out.splitlines():
            m = re.match(r"ok=(\d+) failed=(\d+) token_requests=(\d+)$",
                         line)
            if line.startswith("call failed: "):
                self.failures.append(line[len("call failed: "):])
            elif m:
                self.ok, self.failed, self.token_requests = map(
                    int, m.groups())
            elif line.startswith("last: "):
                for word in line[len("last: "):].split():
                    k, _, v = word.partition("=")
                    self.last[k] = v
            elif line.startswith("observed: "):
                self.observed = line[len("observed: "):]
            else:
                self.rest.append(line)

    def failure_names(self):
        return [f.split(":", 1)[0] for f in self.failures]

    def show(self):
        return "exit %s\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.out,
                                                       self.err)


def client(env, *args, timeout=120):
    p = testlib.run([testlib.PODIO_TEST_CLIENT] + list(args), env=env,
                    timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)


def start_client(env, *args):
    """Starts podio-test-client; finish() waits for its Result."""
    return testlib.popen([testlib.PODIO_TEST_CLIENT] + list(args), env=env)


def finish(p):
    out, err = p.communicate(timeout=600)
    return Result(p.returncode, out, err)


def form(req):
    return dict(urllib.parse.parse_qsl(req["body"], keep_blank_values=True))


def grants(sim):
    return [form(r).get("grant_type") for r in sim.token_requests()]


def statuses(reqs):
    return [r["status"] for r in reqs]


def fresh(sim, **config):
    """The simulator back to its start state, then configured."""
    sim.reset()
    if config:
        sim.configure(**config)


version = testlib.run([testlib.PODIO_TEST_CLIENT, "--version"],
                      wrap=False).stdout.strip()
t.ok(re.match(r"^\d+\.\d+\.\d+$", version), "the library has a version",
     version)

with testlib.Sim() as sim:
    # ---------------------------------------------------- sequential calls
    fresh(sim, rate_limit_limit=777)
    env = testlib.base_env(sim)
    r = client(env, "--calls", "100")
    t.ok(r.rc == 0 and r.ok == 100 and r.failed == 0,
         "100 sequential item calls succeed", r.show())
    t.is_(r.token_requests, 1, "100 calls in one process: 1 token request "
          "counted by the client")
    t.is_(len(sim.token_requests()), 1, "... and 1 seen by the simulator")
    items = sim.requests("/item/")
    t.is_(len(items), 100, "100 item requests reached the simulator")
    t.is_(r.last.get("rate_limit"), "777",
          "X-Rate-Limit-Limit is reported for the last call")
    t.ok(r.last.get("rate_remaining", "").isdigit() and
         int(r.last["rate_remaining"]) < 777,
         "X-Rate-Limit-Remaining is reported (%s)"
         % r.last.get("rate_remaining"))
    t.ok(re.match(r"^[0-9a-f]+$", r.last.get("request_id", "")),
         "X-Podio-Request-Id is reported", r.last)

    # ---------------------------------------------------- on the wire
    token = sim.tokens()[0]["access_token"]
    auths = set(q["headers"].get("authorization") for q in items)
    t.is_(auths, {"OAuth2 " + token},
          "every API call carries 'Authorization: OAuth2 <token>'")
    t.ok(not any("bearer" in (q["headers"].get("authorization") or "").lower()
                 for q in sim.requests()),
         "no request uses the Bearer scheme")
    t.is_(set(q["headers"].get("user-agent") for q in sim.requests()),
          {"podio-webhook/" + version},
          "User-Agent is podio-webhook/VERSION on every request")
    t.ok(all(q["method"] == "GET" and q["path"] == "/item/1" and
             urllib.parse.parse_qs(q["query"]).get("mark_as_viewed") == ["0"]
             for q in items), "item GETs carry mark_as_viewed=0",
         items[0])
    t.ok(all("expect" not in q["headers"] for q in sim.requests()),
         "no Expect header is sent")
    tok = sim.token_requests()[0]
    t.ok("authorization" not in tok["headers"] and
         form(tok).get("grant_type") == "app" and
         form(tok).get("client_secret") == "test-secret",
         "the token request is an app grant with the credentials in the "
         "form body, no Authorization header")
    t.ok("test-secret" not in r.out + r.err and token not in r.out + r.err,
         "neither the secret nor the token is printed or logged")

    # ---------------------------------------------------- connection reuse
    fresh(sim)
    r = client(testlib.base_env(sim), "--calls", "10")
    conns = [q["conn"] for q in sim.requests()]
    t.ok(r.rc == 0 and len(conns) == 11 and len(set(conns)) == 1,
         "10 calls (and the token request) used one connection",
         "conns: %r\n%s" % (conns, r.show()))

    # ---------------------------------------------------- threads
    fresh(sim)
    r = client(testlib.base_env(sim), "--threads", "8", "--calls", "50",
               "--barrier")
    t.ok(r.rc == 0 and r.ok == 400 and r.failed == 0,
         "8 threads x 50 calls all succeed", r.show())
    t.is_((r.token_requests, len(sim.token_requests())), (1, 1),
          "8 concurrent threads share 1 token request")
    t.is_([q for q in sim.requests("/item/") if q["status"] != 200], [],
          "no concurrent call was refused")

    # ---------------------------------------------------- observers
    fresh(sim)
    r = client(testlib.base_env(sim), "--threads", "4", "--calls", "5",
               "--observe")
    t.is_(r.observed, "calls=21 token=1 no_answer=0 last=GET "
          "/item/1?mark_as_viewed=0 200", "the observer of each client "
          "sees its calls, the shared token request among them, each "
          "with its path relative to api_url and its status")
    fresh(sim)
    sim.fail("/item/", status=401, count=1, error="unauthorized",
             error_description="expired_token", headers=EXPIRED_HEADERS)
    r = client(testlib.base_env(sim), "--observe")
    t.is_(r.observed, "calls=4 token=2 no_answer=0 last=GET "
          "/item/1?mark_as_viewed=0 200", "a call replayed after a "
          "refused token is seen twice, the refresh once")
    fresh(sim)
    r = client(testlib.base_env(sim, api_url="http://127.0.0.1:1"),
               "--observe")
    t.is_(r.observed, "calls=1 token=1 no_answer=1 last=POST /oauth/token "
          "0", "a token request that got no answer is seen with status 0")

    # ---------------------------------------------------- hooks
    fresh(sim, deliver_verify=False)
    env = testlib.base_env(sim)
    r = client(env, "--op", "hookcreate", "--ref-type", "app", "--ref-id",
               "1234", "--url", "http://127.0.0.1:9/podio?secret=S3", "--event",
               "item.update", "--print")
    m = re.search(r"^hook_id=(\d+)$", r.out, re.M)
    hooks = sim.hooks()
    t.ok(r.rc == 0 and m and len(hooks) == 1 and
         hooks[0]["hook_id"] == int(m.group(1)),
         "hook create returns the new hook's id", r.show())
    create = sim.requests("/hook/")[-1]
    t.ok(create["method"] == "POST" and create["path"] == "/hook/app/1234/"
         and create["headers"].get("content-type") == "application/json"
         and json.loads(create["body"]) == {
             "url": "http://127.0.0.1:9/podio?secret=S3",
             "type": "item.update"},
         "hook create posts JSON {url, type} to /hook/app/1234/", create)
    hook_id = hooks[0]["hook_id"] if hooks else 0
    r = client(env, "--op", "hooklist", "--ref-type", "app", "--ref-id",
               "1234", "--print")
    listed = sim.requests("/hook/")[-1]
    t.ok(r.rc == 0 and listed["path"] == "/hook/app/1234/" and
         any(h.get("hook_id") == hook_id for h in json.loads(r.rest[-1])),
         "hook list asks for /hook/app/1234/ (trailing slash) and gets the "
         "hook", r.show())
    r = client(env, "--op", "hookcreate", "--ref-type", "App", "--ref-id",
               "1234")
    t.ok(r.rc == 1 and r.failure_names() == ["INVALID"] and
         len(sim.requests("/hook/")) == 2,
         "a reference type outside [a-z_] is refused before any request",
         r.show())
    r = client(env, "--op", "verify", "--hook", str(hook_id))
    verify = sim.requests("/hook/")[-1]
    t.ok(r.rc == 0 and verify["method"] == "POST" and
         verify["path"] == "/hook/%d/verify/request" % hook_id and
         verify["body"] == "" and
         verify["headers"].get("content-length") == "0",
         "verify request posts no body (Content-Length: 0)",
         "%s\n%s" % (verify, r.show()))
    r = client(env, "--op", "validate", "--hook", str(hook_id), "--code",
               "not-the-code")
    t.ok(r.rc == 1 and r.failure_names() == ["BAD_REQUEST"] and
         "HTTP 400" in r.failures[0],
         "validate with a wrong code is a bad request", r.show())
    code = sim.verify_code(hook_id)
    r = client(env, "--op", "validate", "--hook", str(hook_id), "--code",
               code)
    validate = sim.requests("/hook/")[-1]
    t.ok(r.rc == 0 and json.loads(validate["body"]) == {"code": code} and
         validate["path"] == "/hook/%d/verify/validate" % hook_id and
         sim.hooks()[0]["status"] == "active",
         "validate posts JSON {code} and activates the hook", r.show())
    r = client(env, "--op", "delete", "--hook", str(hook_id))
    t.ok(r.rc == 0 and sim.requests("/hook/")[-1]["method"] == "DELETE" and
         sim.requests("/hook/")[-1]["path"] == "/hook/%d" % hook_id and
         sim.hooks() == [], "delete removes the hook", r.show())
    r = client(env, "--op", "call", "--method", "GET", "--path",
               "/hook/app/1234")
    t.ok(r.rc == 1 and r.failure_names() == ["NOT_FOUND"] and
         "HTTP 404" in r.failures[0],
         "a list path without its trailing slash is not found", r.show())

    # ---------------------------------------------------- expiry and replay
    fresh(sim)
    env = testlib.base_env(sim)
    gid = sim.gate("/item/")
    p = start_client(env, "--calls", "1")
    sim.wait_until(lambda: sim.gate_waiting(gid) == 1,
                   what="the item request at the gate")
    sim.expire_tokens()
    sim.release(gid)
    r = finish(p)
    seq = [(q["path"], q["status"]) for q in sim.requests()]
    t.ok(r.rc == 0 and r.ok == 1, "a call whose token expired succeeds",
         r.show())
    t.is_(seq, [("/oauth/token", 200), ("/item/1", 401),
                ("/oauth/token", 200), ("/item/1", 200)],
          "token, item 401, one refresh, item replayed once with 200")
    t.is_(grants(sim), ["app", "refresh_token"],
          "the refresh uses grant_type=refresh_token")
    reqs = sim.requests("/item/")
    t.ok(len(reqs) == 2 and reqs[0]["headers"]["authorization"] !=
         reqs[1]["headers"]["authorization"],
         "the replay carries the new token")

    fresh(sim)
    env = testlib.base_env(sim)
    sim.fail("/item/", status=401, count=2, error="unauthorized",
             error_description="expired_token", headers=EXPIRED_HEADERS)
    r = client(env, "--calls", "1")
    t.ok(r.rc == 1 and r.failure_names() == ["TOKEN_EXPIRED"] and
         "HTTP 401" in r.failures[0],
         "two 401 expired_token in a row are reported", r.show())
    t.is_((statuses(sim.requests("/item/")), grants(sim)),
          ([401, 401], ["app", "refresh_token"]),
          "the request was replayed only once, after one refresh")
    r2 = client(env, "--calls", "1")
    t.ok(r2.rc == 0, "the next call works again", r2.show())

    fresh(sim)
    sim.fail("/item/", status=401, count=1, error="unauthorized",
             error_description="Authentication required")
    r = client(testlib.base_env(sim))
    t.ok(r.rc == 1 and r.failure_names() == ["UNAUTHORIZED"] and
         len(sim.requests("/item/")) == 1 and grants(sim) == ["app"],
         "a 401 that is not about the token is reported without a refresh",
         r.show())

    # ---------------------------------------------------- short lifetimes
    # A 6 s token: the client must renew it ahead of its expiry (auth.h's
    # margin, shortened for a short lifetime), so no call gets a 401.
    fresh(sim, token_lifetime=6)
    r = client(testlib.base_env(sim), "--calls", "4", "--interval", "2000")
    t.ok(r.rc == 0 and r.ok == 4, "calls spread over more than a token "
         "lifetime succeed", r.show())
    t.is_([q for q in sim.requests("/item/") if q["status"] == 401], [],
          "no call was refused with 401: the token was renewed in time")
    g = grants(sim)
    t.ok(2 <= len(g) < 4 and g[0] == "app" and
         all(x == "refresh_token" for x in g[1:]),
         "the token was refreshed (refresh grant), not fetched for every "
         "call", g)

    # ---------------------------------------------------- invalid_grant
    fresh(sim)
    env = testlib.base_env(sim)
    gid = sim.gate("/item/")
    p = start_client(env)
    sim.wait_until(lambda: sim.gate_waiting(gid) == 1,
                   what="the item request at the gate")
    sim.expire_tokens(refresh_tokens=True)
    sim.release(gid)
    r = finish(p)
    toks = sim.token_requests()
    t.ok(r.rc == 0, "a refused refresh token is recovered from", r.show())
    t.is_([(form(q).get("grant_type"), q["status"]) for q in toks],
          [("app", 200), ("refresh_token", 400), ("app", 200)],
          "invalid_grant on refresh: dropped, one new app grant")
    t.is_(statuses(sim.requests("/item/")), [401, 200],
          "the item request was replayed once")

    # ---------------------------------------------------- password flow
    fresh(sim)
    env = testlib.base_env(sim, app_id=None, app_token=None,
                           username="user@example.com", password="pw")
    r = client(env, "--calls", "3")
    toks = sim.token_requests()
    t.ok(r.rc == 0 and r.ok == 3 and len(toks) == 1 and
         form(toks[0]).get("grant_type") == "password" and
         "app_token" not in form(toks[0]),
         "the password flow works with one password grant", r.show())
    t.ok("pw" not in [w for line in (r.out + r.err).splitlines()
                      for w in re.split(r"[\s:=']+", line)],
         "the password is not printed")

    # ---------------------------------------------------- rate limits
    fresh(sim, rate_limit_after=2, rate_limit_wait=123)
    r = client(testlib.base_env(sim), "--calls", "3")
    t.ok(r.rc == 1 and r.ok == 2 and r.failure_names() == ["RATE_LIMITED"],
         "the third call is rate limited (420)", r.show())
    t.ok(r.last.get("http_status") == "420" and
         r.last.get("retry_after") == "123" and
         r.last.get("error") == "rate_limit",
         "the wait comes from the description (123 s)", r.last)
    t.ok("123 seconds" in r.failures[0] and "HTTP 420" in r.failures[0],
         "the message carries Podio's description", r.failures)

    fresh(sim)
    sim.fail("/item/", status=420, count=1, headers={"Retry-After": "77"},
             error_description="Slow down")
    r = client(testlib.base_env(sim))
    t.ok(r.failure_names() == ["RATE_LIMITED"] and
         r.last.get("retry_after") == "77",
         "a Retry-After header gives the wait", r.show())

    fresh(sim, token_rate_limit_after=0, rate_limit_wait=456)
    r = client(testlib.base_env(sim))
    t.ok(r.rc == 1 and r.failure_names() == ["RATE_LIMITED"] and
         r.last.get("retry_after") == "456" and
         sim.requests("/item/") == [],
         "a rate-limited token endpoint is reported with its wait",
         r.show())

    # ---------------------------------------------------- server errors
    seen = {}
    for status, name in ((503, "UNAVAILABLE"), (502, "UNAVAILABLE"),
                         (500, "SERVER"), (504, "UNAVAILABLE")):
        fresh(sim)
        sim.fail("/item/", status=status, count=1)
        r = client(testlib.base_env(sim))
        seen[status] = r.failures[0] if r.failures else None
        t.ok(r.rc == 1 and r.failure_names() == [name] and
             "HTTP %d" % status in r.failures[0] and
             r.last.get("http_status") == str(status) and
             len(sim.requests("/item/")) == 1,
             "%d is reported as %s, without a retry" % (status, name),
             r.show())
    t.is_(len(set(seen.values())), len(seen),
          "503, 502, 500 and 504 give distinct messages")

    fresh(sim)
    sim.fail("/item/", status=502, count=1, content_type="text/html",
             body="<html><head><title>502 Bad Gateway</title></head>\n"
                  "<body>nginx</body></html>\n")
    r = client(testlib.base_env(sim))
    t.ok(r.failure_names() == ["UNAVAILABLE"] and
         "not JSON" in r.failures[0] and "HTTP 502" in r.failures[0] and
         "nginx" not in r.out,
         "an HTML 502 from a proxy is UNAVAILABLE and says it was not "
         "JSON", r.show())

    fresh(sim)
    sim.delete_item(41)
    sim.delete_item(42, gone=True)
    r1 = client(testlib.base_env(sim), "--item", "41")
    r2 = client(testlib.base_env(sim), "--item", "42")
    t.ok(r1.failure_names() == ["NOT_FOUND"] and
         r2.failure_names() == ["GONE"] and
         re.match(r"^NOT_FOUND: not found: .+ \(HTTP 404, not_found\)$",
                  r1.failures[0]),
         "deleted items: 404 NOT_FOUND and 410 GONE, one-line messages",
         r1.show() + r2.show())

    fresh(sim)
    sim.add_item(43, raw='{"item_id": 43, "title": "cut')
    r = client(testlib.base_env(sim), "--item", "43")
    t.ok(r.rc == 1 and r.failure_names() == ["BAD_JSON"],
         "a malformed item answer is BAD_JSON", r.show())
    fresh(sim)
    sim.add_item(44, raw='[1, 2]')
    r = client(testlib.base_env(sim), "--item", "44")
    t.ok(r.rc == 1 and r.failure_names() == ["BAD_JSON"],
         "an item answer that is not an object is BAD_JSON", r.show())
    fresh(sim)
    raw = '{"item_id": 45,   "title": "Caf\u00e9 \\u00e9",\n "x": 1.50}'
    sim.add_item(45, raw=raw)
    r = client(testlib.base_env(sim), "--item", "45", "--print")
    t.ok(r.rc == 0 and r.rest and r.rest[-2:] == raw.split("\n"),
         "the item's raw JSON is passed on exactly as received", r.show())

    # ---------------------------------------------------- transport
    fresh(sim)
    sim.fail("/item/", drop=True, count=None)
    r = client(testlib.base_env(sim))
    t.ok(r.rc == 1 and r.failure_names() == ["TRANSPORT"] and
         r.last.get("http_status") == "0",
         "a dropped connection is a transport failure", r.show())

    fresh(sim)
    env = testlib.base_env(sim, api_url="http://127.0.0.1:1")
    r = client(env)
    t.ok(r.rc == 1 and r.failure_names() == ["TRANSPORT"],
         "a refused connection is a transport failure", r.show())

    # TLS is always verified: https to the plain-HTTP simulator fails the
    # handshake, and that is reported as a TLS failure.
    fresh(sim)
    r = client(testlib.base_env(sim, api_url=sim.url.replace("http:",
                                                             "https:")))
    t.ok(r.rc == 1 and r.failure_names() == ["TLS"],
         "a failed TLS handshake is a TLS failure", r.show())

    fresh(sim)
    sim.add_item(46, title="x" * 5000)
    r = client(testlib.base_env(sim, max_response="2K"), "--item", "46")
    t.ok(r.rc == 1 and r.failure_names() == ["TOO_LARGE"],
         "an answer over max_response is refused", r.show())
    r = client(testlib.base_env(sim, max_response="64K"), "--item", "46")
    t.ok(r.rc == 0, "the same answer under a larger cap is accepted",
         r.show())

    fresh(sim)
    sim.fail("/item/", status=None, delay_ms=5000, count=1)
    r = client(testlib.base_env(sim, timeout="1s"))
    t.ok(r.rc == 1 and r.failure_names() == ["TIMEOUT"],
         "an item answer slower than the timeout is a timeout", r.show())

    fresh(sim, latency_ms=5000)
    r = client(testlib.base_env(sim, timeout="1s"))
    t.ok(r.rc == 1 and r.failure_names() == ["TIMEOUT"],
         "a simulator slower than the timeout (token endpoint included) is "
         "a timeout", r.show())

    # ---------------------------------------------------- bad credentials
    fresh(sim)
    secret = "wrong-secret-8c1f"
    r = client(testlib.base_env(sim, client_secret=secret))
    t.ok(r.rc == 1 and r.failure_names() == ["AUTH"] and
         len(r.failures) == 1,
         "a bad client secret is an AUTH failure", r.show())
    t.ok(r.failures and re.search(r"credential", r.failures[0], re.I),
         "its one-line message speaks of the refused credentials",
         r.failures)
    t.ok(secret not in r.out + r.err, "the secret is never printed",
         r.show())
    t.ok(sim.requests("/item/") == [], "no API call was attempted")

    fresh(sim)
    r = client(testlib.base_env(sim, app_token="wrong-app-token-77"))
    t.ok(r.rc == 1 and r.failure_names() == ["AUTH"] and
         "wrong-app-token-77" not in r.out + r.err,
         "a bad app token (400 invalid_grant) is an AUTH failure",
         r.show())

    # ---------------------------------------------------- item filter
    def filtered(r):
        """{position: text or None} from the "filter ID TEXT" lines."""
        out = []
        for line in r.rest:
            m = re.match(r"^filter (\d+) (.*)$", line)
            if m:
                out.append((int(m.group(1)),
                            None if m.group(2) == "missing" else m.group(2)))
        return out

    fresh(sim)
    env = testlib.base_env(sim)
    big = 123456789012345678901234567890
    sim.add_item(501, big=big, neg=-18446744073709551617,
                 tricky='a "q" ]}[{, \\ \u00e9 \u2028',
                 nested={"a": [[{"b": [], "c": "}"}]], "d": {}})
    sim.add_item(502, title="second")
    sim.add_item(503, app_id=999)
    sim.add_item(504)
    sim.delete_item(504)
    ids = [501, 502, 503, 504, 501, 505]
    body = {"filters": {"item_id": ids}, "limit": len(ids)}
    sim.clear_requests()
    r = client(env, "--op", "filter", "--app", "1234", "--ids",
               ",".join(map(str, ids)), "--print")
    got = filtered(r)
    t.ok(r.rc == 0 and [i for i, _ in got] == ids,
         "item filter: one line per id, in order", r.show())
    reqs = [q for q in sim.requests() if q["path"] != "/oauth/token"]
    t.ok(len(reqs) == 1 and reqs[0]["method"] == "POST" and
         reqs[0]["path"] == "/item/app/1234/filter/" and
         reqs[0]["status"] == 200,
         "item filter: exactly one POST /item/app/1234/filter/", reqs)
    sent = reqs[0]["body"] if reqs else ""
    t.ok(reqs and json.loads(sent) == body and
         reqs[0]["headers"].get("content-type") == "application/json",
         "item filter: the JSON body names the ids and limit n", sent)
    t.ok(reqs and reqs[0]["headers"].get("authorization", "").startswith(
        "OAuth2 "), "item filter: authenticated with OAuth2")
    texts = dict(got)
    t.ok(texts.get(503, "x") is None and texts.get(504, "x") is None,
         "item filter: an item of another app and a deleted one are "
         "missing (NULL)", got)
    t.ok(all(texts.get(i) for i in (501, 502, 505)) and
         got[0][1] == got[4][1],
         "item filter: the others are there, a duplicated id in each place",
         got)
    t.is_(r.last.get("rate_limit"), "250",
          "item filter: its rate-limit headers (the filter class) are "
          "reported")

    # the same answer, raw: each text is a slice of it, byte for byte
    raw = client(env, "--op", "call", "--method", "POST", "--path",
                 "/item/app/1234/filter/", "--body", json.dumps(body),
                 "--print")
    answer = raw.rest[-1] if raw.rc == 0 and raw.rest else ""
    items = {it["item_id"]: it for it in json.loads(answer or "{}").get(
        "items", [])}
    exact = [i for i in (501, 502, 505) if texts.get(i) and
             texts[i] in answer and
             texts[i] == json.dumps(items.get(i)) and
             json.loads(texts[i]) == items.get(i)]
    t.is_(exact, [501, 502, 505],
          "item filter: each text is its element of the answer, byte for "
          "byte")
    t.ok(texts.get(501) and str(big) in texts[501] and
         "-18446744073709551617" in texts[501] and
         "comments" not in texts[501],
         "item filter: numbers beyond 64 bits are not re-printed",
         texts.get(501))

    # 401 on the filter: token refreshed, the call sent once more
    fresh(sim)
    env = testlib.base_env(sim)
    client(env, "--op", "auth")
    sim.expire_tokens()
    sim.clear_requests()
    r = client(env, "--op", "filter", "--app", "1234", "--ids", "7,8",
               "--print")
    t.ok(r.rc == 0 and statuses(sim.requests("/item/app/")) == [401, 200]
         and [x for x, v in filtered(r) if v] == [7, 8],
         "item filter: an expired token is refreshed and the filter "
         "replayed", r.show())

    # Podio refusing the filter key: 400, a distinct error
    fresh(sim, filter_enabled=False)
    env = testlib.base_env(sim)
    r = client(env, "--op", "filter", "--app", "1234", "--ids", "7,8")
    t.ok(r.rc == 1 and r.failure_names() == ["BAD_REQUEST"] and
         r.last.get("http_status") == "400" and
         len(sim.requests("/item/app/")) == 1 and
         sim.requests("/item/7") == [],
         "item filter: a refused filter (400) is BAD_REQUEST, nothing "
         "else is called", r.show())

    # answers of the wrong shape
    for bad_body, what in (('{"total": 0}', "no items"),
                           ('[]', "not an object"),
                           ('{"items": {}}', "items not an array"),
                           ('{"items": [{"title": "x"}]}',
                            "an item without item_id"),
                           ('{"items": [{"item_id": 7}, {"item_id": 8}, '
                            '{"item_id": 9}]}', "more items than asked"),
                           ('{"items": [{"item_id": 7}', "truncated")):
        fresh(sim)
        env = testlib.base_env(sim)
        sim.fail("/item/app/", status=200, body=bad_body)
        r = client(env, "--op", "filter", "--app", "1234", "--ids", "7,8",
                   "--print")
        t.ok(r.rc == 1 and r.failure_names() == ["BAD_JSON"] and
             filtered(r) == [],
             "item filter: an answer with %s is BAD_JSON" % what, r.show())
    fresh(sim)
    env = testlib.base_env(sim)
    sim.fail("/item/app/", status=200,
             body='{"filtered": 1, "items": [ {"item_id": 8, "x": '
             '"]\\"}"} \n], "total": 1}')
    r = client(env, "--op", "filter", "--app", "1234", "--ids", "7,8",
               "--print")
    t.ok(r.rc == 0 and filtered(r) == [(7, None), (8, '{"item_id": 8, '
                                         '"x": "]\\"}"}')],
         "item filter: items found wherever \"items\" is, white space "
         "around them left out", r.show())

    # limits: 1 to 500 ids
    fresh(sim)
    env = testlib.base_env(sim)
    many = list(range(1, 502))
    r = client(env, "--op", "filter", "--app", "1234", "--ids",
               ",".join(map(str, many)))
    t.ok(r.rc == 1 and r.failure_names() == ["INVALID"] and
         sim.requests("/item/") == [],
         "item filter: 501 ids are refused before any call", r.show())
    r = client(env, "--op", "filter", "--app", "1234", "--ids",
               ",".join(map(str, many[:500])), "--print")
    got = filtered(r)
    t.ok(r.rc == 0 and len(got) == 500 and all(v for _, v in got) and
         len(sim.requests("/item/app/")) == 1 and
         json.loads(sim.requests("/item/app/")[0]["body"])["limit"] == 500,
         "item filter: 500 ids in one call, all found",
         r.show()[:2000])
    r = client(env, "--op", "filter", "--app", "1234", "--ids", "0,5")
    t.ok(r.rc == 1 and r.failure_names() == ["INVALID"],
         "item filter: item id 0 is refused", r.show())

    # ---------------------------------------------------- usage
    fresh(sim)
    r = client(testlib.base_env(sim, client_id=None), "--calls", "1")
    t.ok(r.rc == 2 and sim.requests() == [],
         "missing credentials are a configuration error (exit 2)",
         r.show())
    r = client(testlib.base_env(sim), "--op", "nonsense")
    t.is_(r.rc, 2, "an unknown operation is a usage error (exit 2)")

# Under PODIO_TEST_WRAPPER=valgrind --error-exitcode=99, a memory error or
# leak in any run (also those expected to fail) shows here.
bad = [r for r in RESULTS if r.rc not in (0, 1, 2) or
       re.search(r"^==\d+==|runtime error:", r.err, re.M)]
t.ok(not bad, "no run crashed or reported memory errors (%d runs)"
     % len(RESULTS), "\n".join(r.show() for r in bad[:3]))

t.done()
