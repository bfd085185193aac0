#!/usr/bin/env python3
"""Self-test of the Podio API simulator through its own HTTP interface."""

import base64
import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

PODIO_ERROR_KEYS = {"error", "error_description", "error_detail",
                    "error_parameters", "error_propagate", "request"}


class Answer:
    def __init__(self, status, headers, text):
        self.status = status
        self.headers = headers
        self.text = text
        try:
            self.json = json.loads(text) if text else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.text[:300])


def call(sim, method, path, token=None, body=None, form=None,
         scheme="OAuth2"):
    """One API call on a fresh connection; returns an Answer."""
    data = None
    req = urllib.request.Request(sim.url + path, method=method)
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    elif body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    req.data = data
    if token is not None:
        req.add_header("Authorization", "%s %s" % (scheme, token))
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Answer(resp.status, resp.headers, resp.read().decode())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read().decode())


def grant(sim, **form):
    creds = dict(client_id="test-client", client_secret="test-secret")
    creds.update(form)
    return call(sim, "POST", "/oauth/token", form=creds)


def app_token(sim):
    a = grant(sim, grant_type="app", app_id="1234", app_token="app-token")
    return a.json["access_token"]


def podio_error(a, status, error=None, description=None):
    """Whether an answer is a Podio-shaped error with that status."""
    j = a.json
    return (a.status == status and isinstance(j, dict)
            and PODIO_ERROR_KEYS <= set(j)
            and j["error_detail"] is None and j["error_parameters"] == {}
            and j["error_propagate"] is False
            and set(j["request"]) == {"url", "query_string", "method"}
            and (error is None or j["error"] == error)
            and (description is None or j["error_description"] == description))


class Listener:
    """A small local HTTP server that records POSTs (hook deliveries)."""

    def __init__(self):
        self.posts = []
        self.cond = threading.Condition()
        owner = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode()
                with owner.cond:
                    owner.posts.append({
                        "path": self.path, "body": body,
                        "type": self.headers.get("Content-Type")})
                    owner.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_tokens(t, sim):
    a = grant(sim, grant_type="app", app_id="1234", app_token="app-token")
    j = a.json or {}
    t.ok(a.status == 200 and j.get("token_type") == "bearer"
         and j.get("expires_in") == 28800 and j.get("access_token")
         and j.get("refresh_token") and "scope" in j
         and j.get("ref") == {"type": "app", "id": 1234},
         "app grant issues a token", a)
    a2 = grant(sim, grant_type="password", username="user@example.com",
               password="pw")
    j2 = a2.json or {}
    t.ok(a2.status == 200 and (j2.get("ref") or {}).get("type") == "user"
         and j2.get("access_token") not in (None, j.get("access_token")),
         "password grant issues another token", a2)
    a3 = grant(sim, grant_type="refresh_token",
               refresh_token=j.get("refresh_token"))
    j3 = a3.json or {}
    t.ok(a3.status == 200 and j3.get("ref") == {"type": "app", "id": 1234}
         and j3.get("refresh_token") != j.get("refresh_token"),
         "refresh grant issues a new token and refresh token", a3)
    a4 = grant(sim, grant_type="refresh_token",
               refresh_token=j.get("refresh_token"))
    t.ok(podio_error(a4, 400, "invalid_grant"),
         "a refresh token works only once", a4)
    a5 = grant(sim, grant_type="app", app_id="1234", app_token="wrong")
    t.ok(podio_error(a5, 400, "invalid_grant"),
         "bad app token: 400 invalid_grant", a5)
    a6 = grant(sim, grant_type="password", username="user@example.com",
               password="nope")
    t.ok(podio_error(a6, 400, "invalid_grant"),
         "bad password: 400 invalid_grant", a6)
    a7 = call(sim, "POST", "/oauth/token", form=dict(
        client_id="test-client", client_secret="bad", grant_type="app",
        app_id="1234", app_token="app-token"))
    t.ok(podio_error(a7, 401, "invalid_client"),
         "bad client secret: 401 invalid_client", a7)
    toks = sim.tokens()
    t.ok(len(toks) == 3 and {x["access_token"] for x in toks} ==
         {j.get("access_token"), j2.get("access_token"),
          j3.get("access_token")}, "the control API lists issued tokens",
         toks)


def test_auth(t, sim):
    token = app_token(sim)
    a = call(sim, "GET", "/item/42", token)
    t.ok(a.status == 200 and a.headers.get("X-Podio-Request-Id")
         and a.headers.get("X-Rate-Limit-Limit") == "1000"
         and a.headers.get("X-Rate-Limit-Remaining") is not None,
         "OAuth2 token accepted, request id and rate headers present", a)
    b = call(sim, "GET", "/item/42", token)
    t.ok(int(b.headers.get("X-Rate-Limit-Remaining", -1)) ==
         int(a.headers.get("X-Rate-Limit-Remaining", -1)) - 1,
         "X-Rate-Limit-Remaining counts down",
         (a.headers.get("X-Rate-Limit-Remaining"),
          b.headers.get("X-Rate-Limit-Remaining")))
    a = call(sim, "GET", "/item/42", token, scheme="Bearer")
    t.ok(podio_error(a, 401, "unauthorized", "invalid_token"),
         "Bearer scheme refused with 401 invalid_token", a)
    a = call(sim, "GET", "/item/42", "no-such-token")
    t.ok(podio_error(a, 401, "unauthorized", "invalid_token")
         and "invalid_token" in a.headers.get("WWW-Authenticate", ""),
         "unknown token: 401 invalid_token with WWW-Authenticate", a)
    a = call(sim, "GET", "/item/42")
    t.ok(podio_error(a, 401, "unauthorized"), "no token: 401", a)
    a = call(sim, "GET", "/hook/app/1234", token)
    t.ok(podio_error(a, 404, "not_found"),
         "list resource without trailing slash: 404", a)
    a = call(sim, "DELETE", "/hook/5/", token)
    t.ok(podio_error(a, 404, "not_found"),
         "single object with a trailing slash: 404", a)
    n = sim.expire_tokens()
    a = call(sim, "GET", "/item/42", token)
    t.ok(n >= 1 and podio_error(a, 401, "unauthorized", "expired_token")
         and a.headers.get("WWW-Authenticate") ==
         'Bearer realm="podio", error="expired_token"',
         "expired token: 401 expired_token with WWW-Authenticate", a)
    sim.configure(token_lifetime=0)
    a = grant(sim, grant_type="app", app_id="1234", app_token="app-token")
    b = call(sim, "GET", "/item/42", a.json["access_token"])
    t.ok(a.json["expires_in"] == 0 and
         podio_error(b, 401, "unauthorized", "expired_token"),
         "a token past its lifetime is expired", b)
    sim.configure(token_lifetime=28800)


def test_hooks(t, sim):
    token = app_token(sim)
    lis = Listener()
    try:
        url = "http://127.0.0.1:%d/hook/cb?secret=s%%26cret&x=1" % lis.port
        a = call(sim, "POST", "/hook/app/1234/", token,
                 {"url": url, "type": "item.create"})
        hook_id = (a.json or {}).get("hook_id")
        t.ok(a.status == 200 and isinstance(hook_id, int),
             "hook create answers a hook_id", a)
        lst = call(sim, "GET", "/hook/app/1234/", token)
        t.ok(lst.status == 200 and len(lst.json) == 1
             and lst.json[0]["hook_id"] == hook_id
             and lst.json[0]["status"] == "inactive"
             and lst.json[0]["url"] == url
             and {"created_on", "created_by", "created_via", "type"}
             <= set(lst.json[0]),
             "a new hook is listed as inactive", lst)
        with lis.cond:
            lis.cond.wait_for(lambda: len(lis.posts) >= 1, 30)
        code = sim.verify_code(hook_id)
        post = lis.posts[0] if lis.posts else {}
        form = urllib.parse.parse_qs(post.get("body", ""))
        t.ok(post.get("path") == "/hook/cb"
             and post.get("type") == "application/x-www-form-urlencoded"
             and form == {"type": ["hook.verify"], "hook_id": [str(hook_id)],
                          "code": [code], "secret": ["s&cret"], "x": ["1"]},
             "hook.verify delivered with the URL query moved into the body",
             post)
        a = call(sim, "POST", "/hook/%d/verify/validate" % hook_id, token,
                 form={"code": code})
        t.ok(podio_error(a, 400) and sim.hooks()[0]["status"] == "inactive",
             "a validate body that is not JSON is refused", a)
        a = call(sim, "POST", "/hook/%d/verify/validate" % hook_id, token,
                 {"code": code + "x"})
        t.ok(podio_error(a, 400), "a wrong verify code is refused", a)
        t.ok(sim.hooks()[0]["status"] == "inactive",
             "the hook stays inactive after a wrong code")
        a = call(sim, "POST", "/hook/%d/verify/request" % hook_id, token)
        t.ok(a.status == 204, "verify request answers 204", a)
        with lis.cond:
            lis.cond.wait_for(lambda: len(lis.posts) >= 2, 30)
        code2 = sim.verify_code(hook_id)
        form2 = urllib.parse.parse_qs(lis.posts[-1]["body"])
        t.ok(code2 != code and form2.get("code") == [code2],
             "verify request issues and delivers a new code",
             (code, code2, form2))
        a = call(sim, "POST", "/hook/%d/verify/validate" % hook_id, token,
                 {"code": code})
        t.ok(podio_error(a, 400), "the previous code is refused", a)
        a = call(sim, "POST", "/hook/%d/verify/validate" % hook_id, token,
                 {"code": code2})
        lst = call(sim, "GET", "/hook/app/1234/", token)
        t.ok(a.status == 204 and lst.json[0]["status"] == "active",
             "the issued code activates the hook", (a, lst))
        a = call(sim, "POST", "/hook/999999/verify/validate", token,
                 {"code": code2})
        t.ok(podio_error(a, 404, "not_found"),
             "validate of an unknown hook: 404", a)
        r = sim.deliver(hook_id, {"type": "item.create", "item_id": "7"})
        form3 = urllib.parse.parse_qs(lis.posts[-1]["body"])
        t.ok(r == 200 and form3.get("item_id") == ["7"]
             and form3.get("secret") == ["s&cret"],
             "deliver() posts to the hook URL, query in the body", form3)
        # Podio turns a hook inactive, and then sends it nothing.
        h = sim.set_hook_status(hook_id, "inactive")
        lst = call(sim, "GET", "/hook/app/1234/", token)
        t.ok(h["status"] == "inactive" and
             lst.json[0]["status"] == "inactive",
             "/__sim/hooks/ID sets a hook's status", (h, lst))
        posts = len(lis.posts)
        r = sim.deliver_full(hook_id, {"type": "item.create"},
                             active_only=True)
        t.ok(r["status"] == 0 and "inactive" in (r["error"] or "") and
             len(lis.posts) == posts,
             "deliver with active_only sends nothing to an inactive hook",
             r)
        sim.set_hook_status(hook_id, "active")
        r = sim.deliver_full(hook_id, {"type": "item.create"},
                             active_only=True)
        t.ok(r["status"] == 200 and len(lis.posts) == posts + 1,
             "deliver with active_only sends to an active hook", r)
        try:
            sim.set_hook_status(999999, "inactive")
            unknown = None
        except testlib.SimError as exc:
            unknown = str(exc)
        t.ok(unknown and "404" in unknown,
             "/__sim/hooks/ID of an unknown hook: 404", unknown)
        # At most 10 hooks of one type on one object.
        sim.configure(deliver_verify=False)
        made = [call(sim, "POST", "/hook/app/77/", token,
                     {"url": "http://example.com/%d" % i,
                      "type": "item.delete"}).status for i in range(10)]
        a = call(sim, "POST", "/hook/app/77/", token,
                 {"url": "http://example.com/x", "type": "item.delete"})
        b = call(sim, "POST", "/hook/app/77/", token,
                 {"url": "http://example.com/x", "type": "item.update"})
        t.ok(made == [200] * 10 and podio_error(a, 400) and
             b.status == 200,
             "an 11th hook of one type on one object: 400; another type "
             "is fine", (made, a, b))
        sim.configure(deliver_verify=True)
        # A non-loopback URL is never contacted, only recorded.
        a = call(sim, "POST", "/hook/app/1234/", token,
                 {"url": "http://example.com/cb", "type": "item.update"})
        dl = [d for d in sim.deliveries()
              if d["hook_id"] == (a.json or {}).get("hook_id")]
        t.ok(a.status == 200 and len(dl) == 1 and dl[0]["status"] == 0
             and "not delivered" in (dl[0]["error"] or ""),
             "no delivery to a non-loopback host", dl)
        a = call(sim, "DELETE", "/hook/%d" % hook_id, token)
        b = call(sim, "DELETE", "/hook/%d" % hook_id, token)
        t.ok(a.status == 204 and podio_error(b, 404),
             "delete answers 204, then 404", (a, b))
    finally:
        lis.close()


def test_items(t, sim):
    token = app_token(sim)
    big = (1 << 63) + 5
    a = call(sim, "GET", "/item/%d?mark_as_viewed=0" % big, token)
    j = a.json or {}
    t.ok(a.status == 200 and j.get("item_id") == big
         and ('"item_id": %d' % big) in a.text
         and j.get("title") == "Item %d" % big
         and j.get("app", {}).get("app_id") == 1234
         and {"link", "created_on", "current_revision", "last_event_on",
              "fields", "tags", "files", "comments", "external_id"} <= set(j),
         "an unknown item is generated, large id exact", a)
    rec = sim.requests("/item/%d" % big)
    t.ok(len(rec) == 1 and rec[0]["query"] == "mark_as_viewed=0",
         "the query string is recorded", rec)
    sim.add_item(77, app_id=555, title="Seventy-seven", revision=4)
    a = call(sim, "GET", "/item/77", token)
    t.ok(a.status == 200 and a.json["title"] == "Seventy-seven"
         and a.json["app"]["app_id"] == 555
         and a.json["current_revision"]["revision"] == 4,
         "an added item is served as defined", a)
    sim.delete_item(77)
    sim.delete_item(78, gone=True)
    a = call(sim, "GET", "/item/77", token)
    b = call(sim, "GET", "/item/78", token)
    t.ok(podio_error(a, 404, "not_found") and podio_error(b, 410, "gone"),
         "deleted items answer 404, or 410 when gone", (a, b))
    a = call(sim, "POST", "/item/app/1234/filter/", token,
             {"filters": {"item_id": [10, 11, 78]}, "limit": 500})
    items = (a.json or {}).get("items", [])
    t.ok(a.status == 200 and a.json["filtered"] == 2
         and [i["item_id"] for i in items] == [10, 11]
         and all("comments" not in i for i in items)
         and all("title" in i for i in items),
         "filter answers the live items without comments", a)
    a = call(sim, "POST", "/item/app/1234/filter", token,
             {"filters": {"item_id": [10]}})
    t.ok(podio_error(a, 404), "filter without trailing slash: 404", a)
    sim.add_item(201, app_id=777, last_edit_on="2024-03-01 10:00:00")
    sim.add_item(202, app_id=777, last_edit_on="2024-03-01 09:00:00")
    sim.add_item(203, app_id=777, last_edit_on="2024-03-01 11:00:00")
    sim.edit_item(202, title="edited", hook=False)
    a = call(sim, "GET", "/item/202", token)
    t.ok(a.status == 200 and a.json["current_revision"]["revision"] == 2
         and a.json["last_edit_on"] > "2024-03-01 11:00:00"
         and a.json["title"] == "edited"
         and not sim.control("GET", "deliveries"),
         "an edit bumps the revision and last_edit_on, nothing delivered",
         a)
    pages = []
    for offset in (0, 2):
        a = call(sim, "POST", "/item/app/777/filter/", token,
                 {"sort_by": "last_edit_on", "sort_desc": True, "limit": 2,
                  "offset": offset})
        pages.append([i["item_id"] for i in (a.json or {}).get("items", [])])
    t.ok(pages == [[202, 203], [201]],
         "filter sorted by last_edit_on, newest first, paged", pages)
    a = call(sim, "POST", "/item/app/777/filter/", token,
             {"sort_by": "last_edit_on", "limit": 5})
    t.ok([i["item_id"] for i in (a.json or {}).get("items", [])]
         == [201, 203, 202], "sort_desc false: oldest first", a)
    a = call(sim, "POST", "/item/app/777/filter/", token,
             {"sort_by": "rating", "limit": 5})
    t.ok(podio_error(a, 400), "an unknown sort_by: 400", a)
    sim.configure(filter_enabled=False)
    a = call(sim, "POST", "/item/app/1234/filter/", token,
             {"filters": {"item_id": [10]}, "limit": 500})
    t.ok(podio_error(a, 400), "filter disabled: 400 Podio-shaped", a)
    sim.configure(filter_enabled=True)


def test_revisions(t, sim):
    token = app_token(sim)
    a = call(sim, "GET", "/item/42", token)
    rev = (a.json or {}).get("current_revision", {})
    t.ok(a.status == 200 and rev.get("revision") == 1 and
         rev.get("item_revision_id") == 42001 and
         rev.get("created_by", {}).get("type") == "user" and
         rev.get("created_by", {}).get("id") == 5678,
         "current_revision has its item_revision_id and created_by", rev)
    lis = Listener()
    try:
        url = "http://127.0.0.1:%d/in?secret=s" % lis.port
        sim.add_hook(url, type="item.update", status="active")
        sim.add_hook(url, type="item.create", status="active")
        sim.add_hook(url, type="item.update", status="inactive")
        sim.add_hook(url, ref_id=999, type="item.update", status="active")
        hook_id = sim.hooks()[0]["hook_id"]
        a = call(sim, "PUT", "/item/42", token, {"title": "Written back"})
        g = call(sim, "GET", "/item/42", token)
        rev = (g.json or {}).get("current_revision", {})
        t.ok(a.status == 200 and a.json == {"revision": 2,
                                            "title": "Written back"} and
             rev.get("item_revision_id") == 42002 and
             rev.get("created_by", {}).get("type") == "app" and
             rev.get("created_by", {}).get("id") == 1234,
             "PUT makes a revision created by the token's app", (a, rev))
        with lis.cond:
            lis.cond.wait_for(lambda: len(lis.posts) >= 1, 30)
        form = urllib.parse.parse_qsl(lis.posts[0]["body"]) \
            if lis.posts else []
        t.ok(form == [("item_id", "42"), ("item_revision_id", "42002"),
                      ("type", "item.update"), ("hook_id", str(hook_id)),
                      ("secret", "s")],
             "the new revision fires item.update to the active hook of "
             "the item's app, with its item_revision_id", lis.posts)
        a = call(sim, "PUT", "/item/42?hook=false", token, {})
        t.ok(a.status == 200 and a.json.get("revision") == 3,
             "PUT ?hook=false makes a revision too", a)
        e = sim.edit_item(42, by={"type": "user", "id": 9}, title="By hand")
        with lis.cond:
            lis.cond.wait_for(lambda: len(lis.posts) >= 2, 30)
        g = call(sim, "GET", "/item/42", token)
        rev = (g.json or {}).get("current_revision", {})
        revs = [dict(urllib.parse.parse_qsl(p["body"])).get(
            "item_revision_id") for p in lis.posts]
        t.ok(e == {"revision": 4, "item_revision_id": 42004} and
             rev.get("created_by") == {"type": "user", "id": 9} and
             g.json.get("title") == "By hand" and
             revs == ["42002", "42004"],
             "an edit by a user fires item.update; the hook=false one "
             "fired nothing", (e, rev, revs))
        pw = grant(sim, grant_type="password", username="user@example.com",
                   password="pw").json["access_token"]
        call(sim, "PUT", "/item/42?hook=false", pw, {})
        g = call(sim, "GET", "/item/42", token)
        t.ok(g.json["current_revision"]["created_by"] ==
             {"type": "user", "id": 5678},
             "a PUT with a user's token is created by that user",
             g.json["current_revision"])
        sim.wait_until(lambda: [d["kind"] for d in sim.deliveries()].count(
            "item.update") >= 2, what="the delivery records")
        kinds = [d["kind"] for d in sim.deliveries()]
        t.ok(kinds.count("item.update") == 2,
             "the deliveries are recorded as item.update", kinds)
    finally:
        lis.close()


def test_rate_limit(t, sim):
    token = app_token(sim)
    sim.configure(rate_limit_after=3, rate_limit_wait=17)
    st = [call(sim, "GET", "/item/1", token).status for _ in range(3)]
    a = call(sim, "GET", "/item/1", token)
    f = call(sim, "POST", "/item/app/1234/filter/", token,
             {"filters": {"item_id": [1]}, "limit": 10})
    t.ok(st == [200, 200, 200] and podio_error(a, 420, "rate_limit")
         and a.json["error_description"] ==
         "You have hit the rate limit. Please wait 17 seconds before "
         "trying again" and f.status == 420,
         "420 after N calls, with the wait in the description", (st, a, f))
    sim.configure(rate_limit_after=None, filter_rate_limit_after=1)
    f1 = call(sim, "POST", "/item/app/1234/filter/", token,
              {"filters": {"item_id": [1]}, "limit": 10})
    f2 = call(sim, "POST", "/item/app/1234/filter/", token,
              {"filters": {"item_id": [1]}, "limit": 10})
    g = call(sim, "GET", "/item/1", token)
    t.ok(f1.status == 200 and f1.headers.get("X-Rate-Limit-Limit") == "250"
         and f2.status == 420 and g.status == 200,
         "filter calls have their own rate-limit class", (f1, f2, g))
    sim.configure(filter_rate_limit_after=None, token_rate_limit_after=0)
    a = grant(sim, grant_type="app", app_id="1234", app_token="app-token")
    t.ok(podio_error(a, 420, "rate_limit"),
         "the token endpoint is rate limited too", a)
    sim.configure(token_rate_limit_after=None, rate_limit_wait=300)


def test_apps(t, sim):
    """Several apps with their own tokens: app_scope and per-app 420."""
    sim.configure(apps={"1234": "app-token", "777": "tok-777"},
                  app_scope=True, app_rate_limit_after={"777": 1})
    sim.add_item(70, app_id=777)
    a = grant(sim, grant_type="app", app_id="777", app_token="tok-777")
    t777 = a.json["access_token"]
    t1234 = app_token(sim)
    t.ok(a.json["ref"] == {"type": "app", "id": 777},
         "an app token of a second app", a)
    own = call(sim, "GET", "/item/70", t777)
    other = call(sim, "GET", "/item/70", t1234)
    filt = call(sim, "POST", "/item/app/777/filter/", t1234,
                {"filters": {"item_id": [70]}, "limit": 10})
    hooks = call(sim, "GET", "/hook/app/777/", t1234)
    t.ok(own.status == 200 and podio_error(other, 403, "forbidden")
         and podio_error(filt, 403, "forbidden")
         and podio_error(hooks, 403, "forbidden"),
         "app_scope: another app's item, filter and hooks answer 403",
         (own, other, filt, hooks))
    again = call(sim, "GET", "/item/70", t777)
    mine = call(sim, "GET", "/item/1", t1234)
    t.ok(podio_error(again, 420, "rate_limit") and mine.status == 200,
         "app_rate_limit_after: 420 for that app's token only",
         (again, mine))


def test_fail_and_gate(t, sim):
    token = app_token(sim)
    sim.fail("/item/", status=503, count=1)
    a = call(sim, "GET", "/item/5", token)
    b = call(sim, "GET", "/item/5", token)
    t.ok(podio_error(a, 503) and a.headers.get("X-Podio-Request-Id")
         and b.status == 200, "fail(): one 503, then normal", (a, b))
    sim.fail("/item/", status=502, body="<html>Bad gateway</html>",
             headers={"X-Proxy": "yes"})
    a = call(sim, "GET", "/item/5", token)
    t.ok(a.status == 502 and a.text == "<html>Bad gateway</html>"
         and a.headers.get("X-Proxy") == "yes",
         "fail() with a raw body and extra headers", a)
    sim.fail("/item/", drop=True, method="GET")
    err = None
    try:
        call(sim, "GET", "/item/6", token)
    except (urllib.error.URLError, http.client.HTTPException,
            ConnectionError) as exc:
        err = exc
    rec = sim.requests("/item/6")
    t.ok(err is not None and len(rec) == 1 and rec[0]["status"] == 0,
         "fail(drop=True) closes the connection without an answer",
         (err, rec))

    # Hostile answers: raw bytes, a streamed answer of any size, none.
    sim.fail("/item/", status=200,
             body_base64=base64.b64encode(b'{"t": "\xff\xfe"}').decode())
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=30)
    conn.request("GET", "/item/7", headers={"Authorization": "OAuth2 " +
                                            token})
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    t.ok(r.status == 200 and raw == b'{"t": "\xff\xfe"}',
         "fail(body_base64=...) sends the bytes as they are", raw)
    size = 20 * 1024 * 1024 + 3
    sim.fail("/item/", status=200, stream_bytes=size)
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=30)
    conn.request("GET", "/item/7", headers={"Authorization": "OAuth2 " +
                                            token})
    r = conn.getresponse()
    got, first = 0, b""
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        first = first or chunk[:9]
        got += len(chunk)
    conn.close()
    t.ok(r.status == 200 and got == size and
         r.getheader("Content-Length") == str(size) and
         first == b'{"pad": "',
         "fail(stream_bytes=N) answers a JSON object of N bytes",
         (r.status, got, first))
    sim.fail("/item/", status=200, stream_bytes=size, chunked=True)
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=30)
    conn.request("GET", "/item/7", headers={"Authorization": "OAuth2 " +
                                            token})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    t.ok(r.status == 200 and len(data) == size and
         r.getheader("Content-Length") is None and
         r.getheader("Transfer-Encoding") == "chunked" and
         json.loads(data) == {"pad": "x" * (size - 11)},
         "fail(stream_bytes=N, chunked=True): the same in chunks, no "
         "Content-Length", (r.status, len(data), r.getheaders()))
    sim.fail("/item/", stream_bytes=size)
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=30)
    conn.request("GET", "/item/8", headers={"Authorization": "OAuth2 " +
                                            token})
    r = conn.getresponse()
    r.read(1000)
    conn.close()
    after = call(sim, "GET", "/item/8", token)
    t.ok(after.status == 200,
         "a client hanging up on a streamed answer leaves the simulator "
         "serving", after)
    sim.fail("/item/", hang=True)
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=0.5)
    err = None
    try:
        conn.request("GET", "/item/9", headers={
            "Authorization": "OAuth2 " + token})
        conn.getresponse()
    except OSError as exc:
        err = exc
    conn.close()
    rec = sim.wait_until(lambda: [q for q in sim.requests("/item/9")
                                  if q["done"] is not None],
                         what="the hung request to end")
    t.ok(isinstance(err, TimeoutError) and rec[0]["status"] == 0,
         "fail(hang=True) never answers, and lets go once the client hangs "
         "up", (err, rec))

    # A gate holds a request until released; another request passes.
    gid = sim.gate("/item/900", method="GET")
    events = []
    done = threading.Event()

    def held():
        a = call(sim, "GET", "/item/900", token)
        events.append(("held-answered", a.status))
        done.set()

    th = threading.Thread(target=held, daemon=True)
    th.start()
    sim.wait_until(lambda: sim.gate_waiting(gid) == 1, what="gate waiting")
    other = call(sim, "GET", "/item/901", token)
    events.append(("other-answered", other.status))
    events.append(("still-held", not done.is_set()))
    sim.release(gid)
    th.join(30)
    t.ok(events == [("other-answered", 200), ("still-held", True),
                    ("held-answered", 200)]
         and sim.gate_status(gid)["held"] == 1
         and sim.gate_waiting(gid) == 0,
         "a gate holds a request until released", events)


def test_records(t, sim):
    sim.clear_requests()
    token = app_token(sim)
    a = call(sim, "POST", "/hook/app/1/", token,
             {"url": "http://127.0.0.1:1/x", "type": "item.update"})
    recs = sim.requests()
    tok = [r for r in recs if r["path"] == "/oauth/token"]
    hook = [r for r in recs if r["path"] == "/hook/app/1/"]
    t.ok(len(tok) == 1 and "grant_type=app" in tok[0]["body"]
         and tok[0]["headers"].get("content-type") ==
         "application/x-www-form-urlencoded" and tok[0]["status"] == 200
         and tok[0]["method"] == "POST",
         "token request recorded with headers and body", tok)
    t.ok(len(hook) == 1 and hook[0]["headers"].get("authorization") ==
         "OAuth2 " + token and json.loads(hook[0]["body"])["type"] ==
         "item.update" and hook[0]["status"] == a.status == 200,
         "API request recorded with headers, body and status", hook)
    t.ok(all(not r["path"].startswith("/__sim/") for r in recs)
         and len(recs) == 2, "control calls are not recorded", recs)
    sim.wait_until(lambda: sim.deliveries(), what="failed delivery record")
    d = sim.deliveries()[-1]
    t.ok(d["status"] == 0 and d["error"],
         "a failed delivery is recorded with its error", d)

    # Keep-alive: two calls on one connection.
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=30)
    for n in (1, 2):
        conn.request("GET", "/item/%d" % (300 + n),
                     headers={"Authorization": "OAuth2 " + token})
        r = conn.getresponse()
        r.read()
    conn.close()
    recs = sim.requests("/item/30")
    t.ok(len(recs) == 2 and recs[0]["conn"] == recs[1]["conn"]
         and r.status == 200, "a kept-alive connection serves two calls",
         recs)
    sim.clear_requests()
    t.ok(sim.requests() == [], "clear_requests empties the record")


def test_tls(t):
    """--tls-cert/--tls-key: the API over HTTPS on a second port."""
    if not shutil.which("openssl"):
        t.skip("the simulator over HTTPS", "no openssl command here")
        return
    host = "api.podio.test"
    ca, cert, key = testlib.make_certs(testlib.tmpdir(), host)

    class Conn(http.client.HTTPSConnection):
        # To 127.0.0.1, the certificate checked against host.
        def connect(self):
            self.sock = self._context.wrap_socket(
                socket.create_connection(("127.0.0.1", self.port), 30),
                server_hostname=host)

    form = urllib.parse.urlencode(dict(
        grant_type="app", client_id="test-client",
        client_secret="test-secret", app_id="1234", app_token="app-token"))
    with testlib.Sim(tls=(cert, key)) as sim:
        t.ok(sim.tls_port and sim.tls_port != sim.port,
             "with tls, the simulator has a second port", sim.tls_port)
        conn = Conn(host, sim.tls_port,
                    context=ssl.create_default_context(cafile=ca))
        conn.request("POST", "/oauth/token", form, {
            "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        body = json.loads(r.read() or b"null") or {}
        conn.close()
        t.ok(r.status == 200 and body.get("access_token"),
             "a token over HTTPS, the certificate verified against the "
             "test CA and the name %s" % host, body)
        t.ok(len(sim.token_requests()) == 1 and
             sim.stats()["tls_failures"] == 0,
             "recorded like any request; no TLS failure", sim.stats())
        refused = False
        try:
            # The system's CA store, without the test CA.
            Conn(host, sim.tls_port, context=ssl.create_default_context(
            )).request("GET", "/user/status")
        except ssl.SSLError:
            refused = True
        t.ok(refused, "a client that does not trust the test CA refuses "
             "the certificate")
        n = sim.wait_until(lambda: sim.stats()["tls_failures"],
                           what="the failed handshake counted")
        t.is_(n, 1, "the refused handshake is counted as tls_failures")


def main():
    t = testlib.Tap()
    test_tls(t)
    with testlib.Sim() as sim:
        for fn in (test_tokens, test_auth, test_hooks, test_items,
                   test_revisions, test_rate_limit, test_apps,
                   test_fail_and_gate, test_records):
            sim.reset()
            fn(t, sim)
        sim.reset()
        r = testlib.run([sys.executable, "-c", "print('hi')"], wrap=False)
        t.ok(r.returncode == 0 and r.stdout == "hi\n", "testlib.run works")
        env = testlib.base_env(sim, log_level="debug")
        t.ok(env["PODIO_API_URL"] == sim.url
             and env["PODIO_APP_TOKEN"] == "app-token"
             and env["PODIO_LOG_LEVEL"] == "debug"
             and env["PODIO_TOKEN_CACHE"].endswith("token-cache.json"),
             "base_env sets the simulator and credentials")
        proc = sim.proc
    t.ok(proc.poll() is not None, "the simulator is stopped on exit")
    t.done()


if __name__ == "__main__":
    testlib.main(main)
