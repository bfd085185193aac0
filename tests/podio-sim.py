#!/usr/bin/env python3
"""A Podio API simulator for the tests of podio-webhook.

Usage: podio-sim.py --port 0 --port-file FILE [--host 127.0.0.1]
                   [--parent-pid PID] [--tls-cert CERT --tls-key KEY]

Listens on a loopback address only, writes the chosen port to FILE (written
to a temporary name and renamed, so a reader never sees half a number) once
it is listening, and serves until SIGTERM or SIGINT (or, with
--parent-pid, until its parent is not that process any more).  HTTP/1.1
with keep-alive; every answer carries Content-Length (except 204), and the
whole answer goes out in one write with TCP_NODELAY, so a client reusing
its connection sees no Nagle delays.  Python 3 standard library only.

With --tls-cert and --tls-key (PEM files: the server's certificate, with
its chain after it, and its key) it also listens on a second port of the
same address for HTTPS: the same API and control routes, the same state.
That port is the second line of the port file (or of standard output).
Each TLS handshake runs in its connection's thread; a client that refuses
the certificate (or any handshake that fails) is counted as tls_failures
in /__sim/stats.  The "hang" fail rule peeks at the plain socket: meant
for HTTP only.

The simulated API is strict the way Podio is:

  POST /oauth/token                  form body; grant_type app (client_id,
                                     client_secret, app_id, app_token),
                                     password (username, password) or
                                     refresh_token (refresh_token).
                                     Bad client: bad_client_status (401) with
                                     error "invalid_client"; bad app token,
                                     password or refresh token: 400
                                     "invalid_grant".  Refresh tokens are
                                     single use: each grant issues a new one.
  POST /hook/{ref_type}/{ref_id}/    JSON {"url", "type"} -> {"hook_id"};
                                     an 11th hook of one type on one
                                     object answers 400 (Podio allows 10;
                                     the status and text it answers are
                                     unconfirmed, these are a guess)
  GET  /hook/{ref_type}/{ref_id}/    the hooks of that object
  POST /hook/{id}/verify/request     new code, hook.verify sent again
  POST /hook/{id}/verify/validate    JSON {"code"}; the last issued code
                                     activates the hook, anything else 400
  DELETE /hook/{id}
  GET  /item/{id}, GET /item/{id}/basic
  PUT  /item/{id}                    JSON {"title"}: a new revision made
                                     by the token's app or user (see
                                     Items); ?hook=false fires no hook
  GET  /user/status                  the user of a password grant's token
                                     ({"user": {"user_id", "mail"}});
                                     403 for an app's token
  POST /item/app/{app_id}/filter/    JSON {"filters": {"item_id": [...]},
                                     "limit", "offset", "sort_by",
                                     "sort_desc"}

The token endpoint takes only application/x-www-form-urlencoded bodies and
the JSON routes only application/json (400 otherwise).  List resources
need their trailing slash, single objects must not have one:
anything else is 404.  Authenticated calls need `Authorization: OAuth2 TOKEN`;
a missing header, another scheme (Bearer) or an unknown token answer 401
(invalid_token), an expired token 401 expired_token, both with
`WWW-Authenticate: Bearer realm="podio", error="..."`.  Every error body is
Podio-shaped ({"error", "error_description", "error_detail": null,
"error_parameters": {}, "error_propagate": false, "request": {"url",
"query_string", "method"}}) and every answer carries X-Podio-Request-Id,
X-Rate-Limit-Limit and X-Rate-Limit-Remaining.

Hook verification: every hook is created "inactive" with a fresh code.  When
deliver_verify is on and the hook URL is http:// on 127.0.0.1, localhost or
::1 (nothing else is ever contacted), a background thread POSTs the form
`type=hook.verify&hook_id=N&code=C` to it, with the URL's query parameters
moved into the body (after those three) as Podio does.  Delivery failures
are only recorded (see /__sim/deliveries).

Items: any id not added through the control API is served as an
auto-generated item of app 1234 titled "Item N" (id 0 answers 404, ids
above 2^64-1 match no route).  Deleted items answer 404
not_found, or 410 gone when deleted with gone=true.  The filter answers the
listed ids that exist in that app (auto-generated ones belong to app 1234),
without "comments"; total = filtered + the known items of that app outside
the filter.  With filter_enabled false it answers 400.  sort_by
"last_edit_on", "created_on" or "item_id" (anything else 400) orders the
matches by that key, then by item id, descending with sort_desc true;
without it they go by item id.  Every item has "last_edit_on": generated
ones the fixed date of the rest, added ones the time they were added
(unless `set` names it); an edit (PUT /item/{id}, or the control API's
edit) bumps the revision and sets it to now.

Revisions: an item's "current_revision" has "revision" (the number),
"item_revision_id" (the id hooks send: item_id mod 2^40 times 1000 plus
the number mod 1000, so the same for a generated item every time),
"created_on" and "created_by" ({"type": "user"|"app", "id", ...}; the
test user 5678 unless told otherwise).  PUT /item/{id} and the control
route /__sim/items/{id}/edit make a new revision: the number plus one, made
by the caller's credential (the token's "ref": {"type": "app", "id":
APP_ID} for an app token) or by the control call's "by".  Each new
revision fires item.update, as Podio does, to every active hook of type
item.update on the item's app (params item_id, item_revision_id, type,
hook_id, then the URL's query; delivered in the background to loopback
URLs only, recorded as deliveries of kind "item.update"), unless PUT has
?hook=false or the edit has "hook": false.

Rate limits (three classes, each a counter of calls):
  general  every call that passed authentication, except filter calls;
           limit header rate_limit_limit, 420 once the count exceeds
           rate_limit_after (None = never);
  filter   filter calls; filter_rate_limit_limit / filter_rate_limit_after;
           also 420 while the general class is exhausted;
  token    every call to /oauth/token; rate_limit_limit /
           token_rate_limit_after.
An app token also counts against its own app's limit when
app_rate_limit_after names that app (420 past it, the other apps' tokens
unaffected).
The 420 body: {"error": "rate_limit", "error_description": "You have hit the
rate limit. Please wait {rate_limit_wait} seconds before trying again"}.
Setting any *_rate_limit_after through /__sim/config resets that counter.

Order of work for each request: record it, hold it at a matching gate,
apply latency_ms (and token_latency_ms for the token endpoint), apply the
first matching fail rule, route (404 for unknown paths), authenticate,
rate-limit, answer.

Control API (JSON bodies and answers, no authentication, never recorded,
never delayed, failed or gated):

  POST   /__sim/reset        everything back to the start state; held
                             requests are released first.  -> {"ok": true}
  GET    /__sim/config       -> the configuration
  POST   /__sim/config       {key: value, ...} -> the configuration; 400 for
                             an unknown key.  Keys and defaults:
           token_lifetime 28800        seconds, for tokens issued after
           refresh_lifetime 2419200    seconds
           rate_limit_after null       rate_limit_wait 300
           rate_limit_limit 1000       filter_rate_limit_after null
           filter_rate_limit_limit 250 token_rate_limit_after null
           latency_ms 0                token_latency_ms 0
           deliver_verify true         filter_enabled true
           max_filter_limit 500        bad_client_status 401
           empty_status 204            (204, or 200 with an empty body, for
                                        verify, validate and delete)
           delivery_timeout 10         seconds
           gate_timeout 600            seconds a held request waits at most
           next_hook_id 1001           the id the next hook gets
           next_verify_code null       one-shot: the next code issued
           clients {"test-client": "test-secret"}
           apps {"1234": "app-token"}
           users {"user@example.com": {"password": "pw", "user_id": 5678}}
           app_scope false             true: an app token sees only its
                                       own app's items and hooks (GET
                                       /item of another app's item, a
                                       filter of another app, and listing
                                       or creating another app's hooks
                                       answer 403 forbidden)
           app_rate_limit_after {}     {"APP_ID": N}: 420 for the calls of
                                       that app's tokens after its first N
                                       (general and filter calls counted
                                       per app token; setting it resets
                                       the counts)
  GET    /__sim/fail         -> the fail rules
  POST   /__sim/fail         {"path_prefix": "/item/", "method": null,
                             "status": 503, "count": 1 (null = unlimited),
                             "drop": false, "body": null (raw text sent
                             as is), "headers": {}, "content_type": null,
                             "error": null, "error_description": null,
                             "delay_ms": 0, "body_base64": null,
                             "stream_bytes": null, "chunked": false,
                             "hang": false}
                             -> {"id"}.  The next `count`
                             matching requests wait delay_ms, then answer
                             `status` with a Podio-shaped body (or `body`),
                             or with drop close the connection without an
                             answer; status null with no drop only delays.
                             Note: a client that reused a connection
                             usually retries once on a dropped answer.
                             Hostile answers: body_base64 is a raw body
                             sent byte for byte (invalid UTF-8, say);
                             stream_bytes N answers `status` (200 when
                             null) with a JSON object of exactly N bytes
                             ({"pad": "xxx..."}), written piece by piece
                             and never held whole, until done or the
                             client hangs up (with chunked, in chunks and
                             without Content-Length); hang never answers:
                             the request is held until its client hangs
                             up (or reset, or gate_timeout), then the
                             connection is closed (status 0).
  DELETE /__sim/fail         removes all rules
  POST   /__sim/expire_tokens  {"access_token": null (= all),
                             "refresh_tokens": false} -> {"expired": n}
  GET    /__sim/tokens       -> [{"access_token", "refresh_token", "ref",
                             "grant_type", "issued", "expires_at",
                             "expired"}]
  GET    /__sim/requests     ?path_prefix=&method=&since=ID -> [{"id",
                             "conn", "method", "path", "query", "headers",
                             "body", "status", "time", "done", "mono",
                             "done_mono"}]; status is null while the
                             request is held or running and 0 when its
                             connection was dropped; conn numbers the TCP
                             connection; time and mono (time.monotonic(),
                             for intervals) are taken when the request
                             arrived, done and done_mono when its answer
                             went out (null before).
  DELETE /__sim/requests     clears the record
  POST   /__sim/gate         {"path_prefix", "method": null, "count": 1}
                             -> {"id"}: hold the next `count` matching
                             requests until released
  GET    /__sim/gate/{id}    -> {"id", "waiting", "held", "remaining",
                             "released"}
  POST   /__sim/gate/{id}/release  -> the same status
  GET    /__sim/verify_code/{hook_id} -> {"hook_id", "code"} (404 unknown)
  GET    /__sim/hooks        -> [{"hook_id", "status", "type", "url",
                             "ref_type", "ref_id", "code", "created_on"}]
  POST   /__sim/hooks        {"ref_type", "ref_id", "url", "type",
                             "status": "inactive"} -> the hook (no
                             delivery, no limit of 10)
  POST   /__sim/hooks/{id}   {"status": "inactive"} -> the hook: sets its
                             status (as Podio turns a failing hook
                             inactive); 404 for an unknown hook
  GET    /__sim/items        -> the items added
  POST   /__sim/items        {"item_id", "app_id": 1234, "set": {...},
                             "raw": null} -> the item.  `set` overrides
                             top-level keys of the generated item
                             ("revision" sets current_revision.revision and
                             its item_revision_id, "revision_by" its
                             created_by, "title" also the title field);
                             `raw` is served verbatim by GET /item/{id}.
                             Undeletes.
  POST   /__sim/items/{id}/edit  {"by": {"type": "user", "id": 5678},
                             "title": null, "hook": true,
                             "last_edit_on": null} -> {"revision",
                             "item_revision_id"}: a new revision made by
                             `by` (a user's edit in Podio, or another
                             app's), last edited now (or as given), firing
                             item.update (see Revisions) unless "hook" is
                             false (an edit nobody is told of)
  POST   /__sim/items/{id}/delete  {"gone": false}
  POST   /__sim/deliver      {"hook_id" or "url", "params": {} or [[k, v]],
                             "query_to_body": true, "body": null,
                             "content_type": null, "method": "POST",
                             "active_only": false}
                             -> {"status" (0 = no answer), "body",
                             "headers", "error"}, delivered synchronously
                             to a loopback URL only (400 otherwise); with
                             active_only, a hook that is not active gets
                             nothing, as Podio sends nothing to an
                             inactive hook (status 0, error "not
                             delivered: the hook is inactive")
  GET    /__sim/deliveries   -> [{"id", "kind", "hook_id", "url", "body",
                             "status", "response", "error", "time"}]
  DELETE /__sim/deliveries   clears them
  GET    /__sim/stats        -> {"api_calls", "filter_calls", "token_calls",
                             "tls_failures"}
"""

import argparse
import base64
import copy
import http.client
import ipaddress
import json
import os
import re
import secrets
import select
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024 * 1024
MAX_RECORDS = 200000
# The piece a streamed answer (fail rule stream_bytes) is written in.
STREAM_PIECE = 64 * 1024
U64_MAX = (1 << 64) - 1
# Podio keeps at most this many hooks of one type on one object.
HOOKS_PER_TYPE = 10

DEFAULT_CONFIG = {
    "token_lifetime": 28800,
    "refresh_lifetime": 28 * 86400,
    "rate_limit_after": None,
    "rate_limit_wait": 300,
    "rate_limit_limit": 1000,
    "filter_rate_limit_after": None,
    "filter_rate_limit_limit": 250,
    "token_rate_limit_after": None,
    "latency_ms": 0,
    "token_latency_ms": 0,
    "deliver_verify": True,
    "filter_enabled": True,
    "max_filter_limit": 500,
    "bad_client_status": 401,
    "empty_status": 204,
    "delivery_timeout": 10,
    "gate_timeout": 600,
    "next_hook_id": 1001,
    "next_verify_code": None,
    "clients": {"test-client": "test-secret"},
    "apps": {"1234": "app-token"},
    "users": {"user@example.com": {"password": "pw", "user_id": 5678}},
    "app_scope": False,
    "app_rate_limit_after": {},
}

REASONS = {
    200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 409: "Conflict", 410: "Gone",
    420: "Enhance Your Calm", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}

ERROR_NAMES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden",
    404: "not_found", 409: "conflict", 410: "gone", 420: "rate_limit",
    500: "server_error", 502: "bad_gateway", 503: "unavailable",
    504: "timeout",
}

LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1",
                  "::1": "::1"}

DATE = "2024-01-02 03:04:05"


def now_text():
    """The current UTC time the way Podio writes dates."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def parse_id(text):
    """A strict unsigned 64-bit decimal id, or None."""
    if not text or not text.isdigit() or not text.isascii():
        return None
    if len(text) > 1 and text[0] == "0":
        return None
    value = int(text)
    if value > U64_MAX:
        return None
    return value


class ApiError(Exception):
    """An answer other than success, raised from a route handler."""

    def __init__(self, status, error, description, headers=None):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}


class State:
    """Everything the simulator knows; every field is guarded by lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gates = {}
        self.reset()

    def reset(self):
        """Back to the start state (releases held requests first)."""
        for gate in list(getattr(self, "gates", {}).values()):
            gate["event"].set()
        self.config = copy.deepcopy(DEFAULT_CONFIG)
        self.tokens = {}
        self.refresh = {}
        self.hooks = {}
        self.items = {}
        self.requests = []
        self.deliveries = []
        self.fails = []
        self.gates = {}
        # Set to let go of every request a fail rule with hang holds.
        old = getattr(self, "hang_release", None)
        if old is not None:
            old.set()
        self.hang_release = threading.Event()
        self.counters = {"general": 0, "filter": 0, "token": 0}
        self.tls_failures = 0
        # General calls per app token (app_rate_limit_after).
        self.app_counters = {}
        self.next_request = 1
        self.next_fail = 1
        self.next_gate = 1
        self.next_delivery = 1


STATE = State()
CONN_COUNTER = [0]


def new_code():
    """A fresh verify code (or the one-shot configured one); lock held."""
    code = STATE.config.get("next_verify_code")
    if code is not None:
        STATE.config["next_verify_code"] = None
        return str(code)
    return secrets.token_hex(8)


# Who made a revision the tests did not say: the test user.
TEST_USER = {"type": "user", "id": 5678, "name": "Test User"}


def revision_id(item_id, revision):
    """The item_revision_id of an item's revision: unique within the item,
    the same every time (generated items are not stored), and below 2^53
    (as Podio's are)."""
    return (item_id % (1 << 40)) * 1000 + revision % 1000


def generated_item(item_id, app_id=1234):
    """The item the simulator serves for an id it was not told about."""
    title = "Item %d" % item_id
    user = dict(TEST_USER)
    return {
        "item_id": item_id,
        "app_item_id": item_id % 1000000,
        "app": {"app_id": app_id, "name": "Test App", "item_name": "Item",
                "url_label": "test-app"},
        "external_id": None,
        "title": title,
        "link": "https://podio.com/test-org/test-space/apps/test-app/items/%d"
                % item_id,
        "created_on": DATE,
        "created_by": user,
        "current_revision": {"revision": 1,
                             "item_revision_id": revision_id(item_id, 1),
                             "created_on": DATE, "created_by": dict(user)},
        "last_event_on": DATE,
        "last_edit_on": DATE,
        "fields": [{"field_id": 1001, "type": "text", "external_id": "title",
                    "label": "Title", "values": [{"value": title}]}],
        "tags": [],
        "files": [],
        "comments": [],
    }


def item_entry(item_id):
    """The stored entry of an item, generated if unknown; lock held."""
    entry = STATE.items.get(item_id)
    if entry is None:
        entry = {"item": generated_item(item_id), "raw": None,
                 "deleted": False, "gone": False, "known": False}
    return entry


def loopback_target(url):
    """(connect address, port, host header, path) for a loopback http URL,
    or raise ValueError: nothing but loopback is ever contacted."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise ValueError("only http:// URLs are delivered to")
    host = parts.hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError("not a loopback host: %r" % host)
    port = parts.port or 80
    path = parts.path or "/"
    return LOOPBACK_HOSTS[host], port, parts.netloc, path, parts.query


def deliver(kind, hook_id, url, pairs, query_to_body=True, body=None,
            content_type=None, method="POST"):
    """Sends one delivery and records it; returns the record."""
    record = {"kind": kind, "hook_id": hook_id, "url": url, "body": None,
              "status": 0, "response": None, "headers": {}, "error": None,
              "time": time.time()}
    try:
        addr, port, netloc, path, query = loopback_target(url)
        if body is None:
            pairs = list(pairs)
            if query_to_body:
                pairs += urllib.parse.parse_qsl(query, keep_blank_values=True)
            elif query:
                path += "?" + query
            body = urllib.parse.urlencode(pairs)
        elif not query_to_body and query:
            path += "?" + query
        record["body"] = body
        with STATE.lock:
            timeout = STATE.config["delivery_timeout"]
        conn = http.client.HTTPConnection(addr, port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_host=True,
                            skip_accept_encoding=True)
            conn.putheader("Host", netloc)
            conn.putheader("User-Agent", "Podio-Simulator")
            data = body.encode("utf-8")
            conn.putheader("Content-Type", content_type or
                           "application/x-www-form-urlencoded")
            conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data)
            resp = conn.getresponse()
            record["status"] = resp.status
            record["headers"] = {k.lower(): v for k, v in resp.getheaders()}
            record["response"] = resp.read(1 << 20).decode("utf-8", "replace")
        finally:
            conn.close()
    except Exception as exc:  # recorded, as Podio ignores failures
        record["error"] = "%s: %s" % (type(exc).__name__, exc)
    with STATE.lock:
        record["id"] = STATE.next_delivery
        STATE.next_delivery += 1
        STATE.deliveries.append(record)
    return record


def send_verify(hook):
    """Starts the hook.verify delivery of a hook if configured; lock held."""
    if not STATE.config["deliver_verify"]:
        return
    try:
        loopback_target(hook["url"])
    except ValueError as exc:
        STATE.deliveries.append({
            "id": STATE.next_delivery, "kind": "verify",
            "hook_id": hook["hook_id"], "url": hook["url"], "body": None,
            "status": 0, "response": None, "headers": {},
            "error": "not delivered: %s" % exc, "time": time.time()})
        STATE.next_delivery += 1
        return
    pairs = [("type", "hook.verify"), ("hook_id", str(hook["hook_id"])),
             ("code", hook["code"])]
    threading.Thread(target=deliver, daemon=True,
                     args=("verify", hook["hook_id"], hook["url"],
                           pairs)).start()


def send_item_event(item, event_type):
    """Starts the deliveries of event_type for item to the active hooks of
    that type on its app, the parameters as Podio sends them; lock
    held."""
    app_id = item["app"]["app_id"]
    for hook_id, hook in sorted(STATE.hooks.items()):
        if (hook["ref_type"] != "app" or hook["ref_id"] != app_id
                or hook["type"] != event_type or hook["status"] != "active"):
            continue
        pairs = [("item_id", str(item["item_id"])),
                 ("item_revision_id",
                  str(item["current_revision"]["item_revision_id"])),
                 ("type", event_type), ("hook_id", str(hook_id))]
        threading.Thread(target=deliver, daemon=True,
                         args=(event_type, hook_id, hook["url"],
                               pairs)).start()


def public_hook(hook):
    """A hook as GET /hook/{ref_type}/{ref_id}/ shows it."""
    return {"hook_id": hook["hook_id"], "status": hook["status"],
            "type": hook["type"], "url": hook["url"],
            "created_on": hook["created_on"],
            "created_by": hook["created_by"],
            "created_via": {"id": 1, "name": "podio-webhook tests",
                            "url": None, "display": False}}


def sim_hook(hook):
    """A hook as the control API shows it."""
    return {"hook_id": hook["hook_id"], "status": hook["status"],
            "type": hook["type"], "url": hook["url"],
            "ref_type": hook["ref_type"], "ref_id": hook["ref_id"],
            "code": hook["code"], "created_on": hook["created_on"]}


def issue_token(ref, grant_type, client_id):
    """A new access and refresh token for ref; lock held."""
    access = secrets.token_hex(16)
    refresh = secrets.token_hex(16)
    t = time.time()
    cfg = STATE.config
    STATE.tokens[access] = {
        "access_token": access, "refresh_token": refresh, "ref": ref,
        "grant_type": grant_type, "issued": t,
        "expires_at": t + cfg["token_lifetime"], "expired": False}
    STATE.refresh[refresh] = {"ref": ref, "client_id": client_id,
                              "expires_at": t + cfg["refresh_lifetime"],
                              "used": False}
    scope = ("app:read app:update app:delete app:create"
             if ref["type"] == "app" else "global:all")
    return {"access_token": access, "token_type": "bearer",
            "expires_in": cfg["token_lifetime"], "refresh_token": refresh,
            "ref": ref, "scope": scope}


def route_token(req):
    """POST /oauth/token."""
    ctype = req.headers.get("content-type", "").split(";")[0].strip()
    if ctype.lower() != "application/x-www-form-urlencoded":
        raise ApiError(400, "invalid_request",
                       "The body must be application/x-www-form-urlencoded")
    form = dict(urllib.parse.parse_qsl(req.body, keep_blank_values=True))
    grant = form.get("grant_type")
    with STATE.lock:
        cfg = STATE.config
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        if not client_id or not secret:
            raise ApiError(400, "invalid_request",
                           "client_id and client_secret are required")
        if cfg["clients"].get(client_id) != secret:
            raise ApiError(cfg["bad_client_status"], "invalid_client",
                           "Invalid client_id or client_secret")
        if grant == "app":
            app_id = form.get("app_id", "")
            token = form.get("app_token")
            if not app_id or not token:
                raise ApiError(400, "invalid_request",
                               "app_id and app_token are required")
            if parse_id(app_id) is None or cfg["apps"].get(app_id) != token:
                raise ApiError(400, "invalid_grant", "Invalid app token")
            return 200, issue_token({"type": "app", "id": int(app_id)},
                                    grant, client_id)
        if grant == "password":
            user = cfg["users"].get(form.get("username", ""))
            if "username" not in form or "password" not in form:
                raise ApiError(400, "invalid_request",
                               "username and password are required")
            if user is None or user.get("password") != form["password"]:
                raise ApiError(400, "invalid_grant",
                               "Invalid user credentials")
            return 200, issue_token({"type": "user", "id": user["user_id"]},
                                    grant, client_id)
        if grant == "refresh_token":
            rt = form.get("refresh_token")
            if not rt:
                raise ApiError(400, "invalid_request",
                               "refresh_token is required")
            entry = STATE.refresh.get(rt)
            if (entry is None or entry["used"]
                    or entry["client_id"] != client_id
                    or entry["expires_at"] < time.time()):
                raise ApiError(400, "invalid_grant", "Invalid refresh_token")
            entry["used"] = True
            return 200, issue_token(entry["ref"], grant, client_id)
        raise ApiError(400, "unsupported_grant_type",
                       "Unsupported grant type %r" % grant)


def json_body(req):
    """The request body parsed as a JSON object, or 400 (also when it is
    not sent as application/json)."""
    ctype = req.headers.get("content-type", "").split(";")[0].strip()
    if ctype.lower() != "application/json":
        raise ApiError(400, "invalid_value",
                       "The body must be sent as application/json")
    try:
        value = json.loads(req.body) if req.body else None
    except ValueError:
        raise ApiError(400, "invalid_value", "Invalid JSON body")
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_value", "A JSON object was expected")
    return value


def route_hook_create(req, ref_type, ref_id):
    """POST /hook/{ref_type}/{ref_id}/."""
    body = json_body(req)
    url = body.get("url")
    typ = body.get("type")
    if not isinstance(url, str) or not re.match(r"https?://[^/?#]+", url):
        raise ApiError(400, "invalid_value", "Invalid value for url")
    if not isinstance(typ, str) or not re.match(r"^[a-z_]+\.[a-z_]+$", typ):
        raise ApiError(400, "invalid_value", "Invalid value for type")
    with STATE.lock:
        if ref_type == "app":
            app_scope_check(req, ref_id)
        same = [h for h in STATE.hooks.values()
                if h["ref_type"] == ref_type and h["ref_id"] == ref_id
                and h["type"] == typ]
        if len(same) >= HOOKS_PER_TYPE:
            raise ApiError(400, "invalid_value",
                           "There can be at most %d hooks of type %s on "
                           "an object" % (HOOKS_PER_TYPE, typ))
        hook_id = STATE.config["next_hook_id"]
        STATE.config["next_hook_id"] = hook_id + 1
        hook = {"hook_id": hook_id, "ref_type": ref_type, "ref_id": ref_id,
                "url": url, "type": typ, "status": "inactive",
                "code": new_code(), "created_on": now_text(),
                "created_by": dict(req.token["ref"])}
        STATE.hooks[hook_id] = hook
        send_verify(hook)
    return 200, {"hook_id": hook_id}


def route_hook_list(req, ref_type, ref_id):
    """GET /hook/{ref_type}/{ref_id}/."""
    with STATE.lock:
        if ref_type == "app":
            app_scope_check(req, ref_id)
        return 200, [public_hook(h) for _, h in sorted(STATE.hooks.items())
                     if h["ref_type"] == ref_type and h["ref_id"] == ref_id]


def find_hook(hook_id):
    """The hook with that id or 404; lock held."""
    hook = STATE.hooks.get(hook_id)
    if hook is None:
        raise ApiError(404, "not_found", "Object not found")
    return hook


def route_hook_verify(req, hook_id):
    """POST /hook/{id}/verify/request."""
    with STATE.lock:
        hook = find_hook(hook_id)
        hook["code"] = new_code()
        send_verify(hook)
        return STATE.config["empty_status"], None


def route_hook_validate(req, hook_id):
    """POST /hook/{id}/verify/validate."""
    body = json_body(req)
    with STATE.lock:
        hook = find_hook(hook_id)
        code = body.get("code")
        if not isinstance(code, str) or code != hook["code"]:
            raise ApiError(400, "invalid_value", "Invalid verification code")
        hook["status"] = "active"
        return STATE.config["empty_status"], None


def route_hook_delete(req, hook_id):
    """DELETE /hook/{id}."""
    with STATE.lock:
        find_hook(hook_id)
        del STATE.hooks[hook_id]
        return STATE.config["empty_status"], None


def live_item(item_id):
    """The entry of a servable item, or 404/410; lock held."""
    if item_id == 0:
        raise ApiError(404, "not_found", "Object not found")
    entry = item_entry(item_id)
    if entry["deleted"]:
        if entry["gone"]:
            raise ApiError(410, "gone", "Object has been deleted")
        raise ApiError(404, "not_found", "Object not found")
    return entry


def route_item_get(req, item_id):
    """GET /item/{id} and /item/{id}/basic."""
    with STATE.lock:
        entry = live_item(item_id)
        app_scope_check(req, entry["item"]["app"]["app_id"])
        if entry["raw"] is not None:
            return 200, RawBody(entry["raw"])
        return 200, copy.deepcopy(entry["item"])


def new_revision(item_id, by, title, hook, when=None):
    """Makes a new revision of a live item, made by `by` ({"type", "id"})
    now (or at when, a date text, which last_edit_on takes too), with the
    title if one is given, and starts the item.update deliveries of the
    item's app unless hook is false; lock held.  Returns the item."""
    entry = live_item(item_id)
    item = entry["item"]
    rev = item["current_revision"]["revision"] + 1
    when = when or now_text()
    item["current_revision"] = {
        "revision": rev, "item_revision_id": revision_id(item_id, rev),
        "created_on": when, "created_by": dict(by)}
    item["last_edit_on"] = when
    if isinstance(title, str):
        item["title"] = title
    entry["known"] = True
    STATE.items[item_id] = entry
    if hook:
        send_item_event(item, "item.update")
    return item


def route_item_put(req, item_id):
    """PUT /item/{id}: a new revision, made by the token's app or user;
    ?hook=false fires no hook."""
    body = json_body(req)
    query = urllib.parse.parse_qs(req.query or "")
    with STATE.lock:
        item = new_revision(item_id, req.token["ref"], body.get("title"),
                            query.get("hook") != ["false"])
        return 200, {"revision": item["current_revision"]["revision"],
                     "title": item["title"]}


SORT_KEYS = ("last_edit_on", "created_on", "item_id")


def route_filter(req, app_id):
    """POST /item/app/{app_id}/filter/."""
    body = json_body(req)
    with STATE.lock:
        cfg = STATE.config
        app_scope_check(req, app_id)
        if not cfg["filter_enabled"]:
            raise ApiError(400, "invalid_value",
                           "Invalid filter key item_id")
        filters = body.get("filters", {})
        limit = body.get("limit", 30)
        offset = body.get("offset", 0)
        if (not isinstance(limit, int) or isinstance(limit, bool)
                or limit < 1 or limit > cfg["max_filter_limit"]):
            raise ApiError(400, "invalid_value", "Invalid value for limit")
        if not isinstance(offset, int) or offset < 0:
            raise ApiError(400, "invalid_value", "Invalid value for offset")
        sort_by = body.get("sort_by")
        sort_desc = body.get("sort_desc", False)
        if sort_by is not None and sort_by not in SORT_KEYS:
            raise ApiError(400, "invalid_value", "Invalid value for sort_by")
        if not isinstance(sort_desc, bool):
            raise ApiError(400, "invalid_value",
                           "Invalid value for sort_desc")
        if not isinstance(filters, dict) or set(filters) - {"item_id"}:
            raise ApiError(400, "invalid_value", "Invalid filter")
        known = [i for i, e in sorted(STATE.items.items())
                 if e["item"]["app"]["app_id"] == app_id
                 and not e["deleted"]]
        if "item_id" in filters:
            ids = filters["item_id"]
            if not isinstance(ids, list):
                raise ApiError(400, "invalid_value", "Invalid filter")
            wanted = []
            for raw in ids:
                value = raw if isinstance(raw, int) and not isinstance(
                    raw, bool) else parse_id(raw) if isinstance(
                        raw, str) else None
                if value is None or value < 0 or value > U64_MAX:
                    raise ApiError(400, "invalid_value", "Invalid filter")
                if value not in wanted:
                    wanted.append(value)
            matches = []
            for i in wanted:
                if i == 0:
                    continue
                e = item_entry(i)
                if not e["deleted"] and e["item"]["app"]["app_id"] == app_id:
                    matches.append(i)
        else:
            matches = known
        total = len(matches) + len([i for i in known if i not in matches])
        if sort_by is not None:
            matches = sorted(matches, key=lambda i: (
                item_entry(i)["item"].get(sort_by) or "", i),
                reverse=sort_desc)
        items = []
        for i in matches[offset:offset + limit]:
            item = copy.deepcopy(item_entry(i)["item"])
            item.pop("comments", None)
            items.append(item)
        return 200, {"total": total, "filtered": len(matches),
                     "items": items}


def route_user_status(req):
    """GET /user/status: the user a token was granted to."""
    ref = req.token["ref"]
    if ref.get("type") != "user":
        raise ApiError(403, "forbidden",
                       "This method is only available to users")
    with STATE.lock:
        mail = next((name for name, u in STATE.config["users"].items()
                     if u.get("user_id") == ref.get("id")), None)
    return 200, {"user": {"user_id": ref.get("id"), "mail": mail},
                 "profile": {"user_id": ref.get("id"), "name": mail}}


class RawBody(str):
    """A success body sent verbatim instead of as JSON."""


ID = r"(0|[1-9][0-9]*)"
ROUTES = [
    ("POST", re.compile(r"^/oauth/token$"), None, route_token),
    ("POST", re.compile(r"^/hook/([a-z_]+)/" + ID + r"/$"), "general",
     route_hook_create),
    ("GET", re.compile(r"^/hook/([a-z_]+)/" + ID + r"/$"), "general",
     route_hook_list),
    ("POST", re.compile(r"^/hook/" + ID + r"/verify/request$"), "general",
     route_hook_verify),
    ("POST", re.compile(r"^/hook/" + ID + r"/verify/validate$"), "general",
     route_hook_validate),
    ("DELETE", re.compile(r"^/hook/" + ID + r"$"), "general",
     route_hook_delete),
    ("GET", re.compile(r"^/item/" + ID + r"$"), "general", route_item_get),
    ("GET", re.compile(r"^/item/" + ID + r"/basic$"), "general",
     route_item_get),
    ("PUT", re.compile(r"^/item/" + ID + r"$"), "general", route_item_put),
    ("POST", re.compile(r"^/item/app/" + ID + r"/filter/$"), "filter",
     route_filter),
    ("GET", re.compile(r"^/user/status$"), "general", route_user_status),
]


def find_route(method, path):
    """(handler, rate class, args) or raise 404 like Podio."""
    for rmethod, pattern, klass, handler in ROUTES:
        m = pattern.match(path)
        if m and rmethod == method:
            args = []
            for g in m.groups():
                if g.isdigit():
                    value = parse_id(g)
                    if value is None:
                        break
                    args.append(value)
                else:
                    args.append(g)
            else:
                return handler, klass, args
    raise ApiError(404, "not_found",
                   "No matching operation could be found. The path '%s' "
                   "was not found for method %s" % (path, method))


def authenticate(req):
    """The token entry of the request's Authorization header, or 401."""
    header = req.headers.get("authorization")
    if header is None:
        raise ApiError(401, "unauthorized",
                       "Authentication as None is not allowed for this "
                       "method")
    parts = header.split(None, 1)
    bad = ApiError(401, "unauthorized", "invalid_token", {
        "WWW-Authenticate": 'Bearer realm="podio", error="invalid_token"'})
    if len(parts) != 2 or parts[0] != "OAuth2":
        raise bad
    with STATE.lock:
        token = STATE.tokens.get(parts[1].strip())
        if token is None:
            raise bad
        if token["expired"] or token["expires_at"] <= time.time():
            raise ApiError(401, "unauthorized", "expired_token", {
                "WWW-Authenticate":
                    'Bearer realm="podio", error="expired_token"'})
        return token


def rate_error():
    """The 420 answer; lock held."""
    return ApiError(420, "rate_limit",
                    "You have hit the rate limit. Please wait %d seconds "
                    "before trying again" % STATE.config["rate_limit_wait"])


def over(klass):
    """Whether a rate-limit class is exhausted; lock held."""
    after = STATE.config[{"general": "rate_limit_after",
                          "filter": "filter_rate_limit_after",
                          "token": "token_rate_limit_after"}[klass]]
    return after is not None and STATE.counters[klass] > after


def app_over(token):
    """Counts a call of an app token and says whether that app's own
    limit (app_rate_limit_after) is exhausted; lock held."""
    ref = token.get("ref") or {}
    if ref.get("type") != "app":
        return False
    key = str(ref.get("id"))
    after = STATE.config["app_rate_limit_after"].get(key)
    STATE.app_counters[key] = STATE.app_counters.get(key, 0) + 1
    return after is not None and STATE.app_counters[key] > after


def app_scope_check(req, app_id):
    """With app_scope on, an app token sees only its own app's items:
    403 for another app's (as Podio answers an app token for an object it
    has no right to); lock held."""
    ref = (getattr(req, "token", None) or {}).get("ref") or {}
    if (STATE.config["app_scope"] and ref.get("type") == "app"
            and ref.get("id") != app_id):
        raise ApiError(403, "forbidden",
                       "The app %s has no access to app %s" % (
                           ref.get("id"), app_id))


def rate_headers(klass):
    """The X-Rate-Limit headers for a class; lock held."""
    if klass == "filter":
        limit = STATE.config["filter_rate_limit_limit"]
    else:
        limit = STATE.config["rate_limit_limit"]
    remaining = max(0, limit - STATE.counters[klass or "general"])
    return {"X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(remaining)}


def matches(rule, req):
    """Whether a fail or gate rule applies to a request."""
    if rule.get("method") and rule["method"].upper() != req.method:
        return False
    return req.path.startswith(rule.get("path_prefix") or "")


class Request:
    """One parsed API request."""

    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.token = None


class Handler(BaseHTTPRequestHandler):
    """Answers API and control requests."""

    protocol_version = "HTTP/1.1"
    server_version = "PodioSim/1.0"
    timeout = 600

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            # Raises on a refused certificate: TlsServer.handle_error.
            self.request.do_handshake()
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with STATE.lock:
            CONN_COUNTER[0] += 1
            self.conn_id = CONN_COUNTER[0]

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    # -------------------------------------------------------------- I/O

    def read_body(self):
        """The request body as bytes (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    break
                size += n
                if size > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(n))
                self.rfile.readline(16)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def send(self, status, body=b"", headers=None, content_type=None):
        """Writes the whole answer in one write."""
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        hdrs = {"Server": self.server_version,
                "Date": self.date_time_string()}
        if content_type:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        if status != 204 and not (100 <= status < 200):
            hdrs["Content-Length"] = str(len(body))
        else:
            body = b""
        if self.close_connection:
            hdrs["Connection"] = "close"
        for k, v in hdrs.items():
            lines.append("%s: %s" % (k, v))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += body
        self.wfile.write(data)

    def send_json(self, status, value, headers=None):
        if isinstance(value, RawBody):
            data = value.encode("utf-8")
        elif value is None:
            data = b""
        else:
            data = json.dumps(value).encode("utf-8")
        self.send(status, data, headers,
                  "application/json; charset=utf-8" if data else None)

    # -------------------------------------------------------------- dispatch

    def dispatch(self):
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, split.query
        try:
            raw = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send(400, b"bad request body\n", None, "text/plain")
            return
        body = raw.decode("utf-8", "replace")
        if path.startswith("/__sim/"):
            self.control(path, query, body)
            return
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        req = Request(self.command, path, query, headers, body)
        record = {"conn": self.conn_id, "method": self.command, "path": path,
                  "query": query, "headers": headers, "body": body,
                  "status": None, "time": time.time(), "done": None,
                  "mono": time.monotonic(), "done_mono": None}
        with STATE.lock:
            record["id"] = STATE.next_request
            STATE.next_request += 1
            if len(STATE.requests) < MAX_RECORDS:
                STATE.requests.append(record)
        try:
            self.api(req, record)
        finally:
            record["done"] = time.time()
            record["done_mono"] = time.monotonic()

    def api(self, req, record):
        """Gate, latency, fail rules, then the simulated API."""
        self.hold_at_gate(req)
        with STATE.lock:
            latency = STATE.config["latency_ms"]
            if req.path == "/oauth/token":
                latency += STATE.config["token_latency_ms"]
            rule = None
            for r in STATE.fails:
                if r["count"] is not None and r["count"] <= 0:
                    continue
                if matches(r, req):
                    rule = r
                    if r["count"] is not None:
                        r["count"] -= 1
                    r["hits"] += 1
                    break
            self.request_id = secrets.token_hex(6)
        if latency:
            time.sleep(latency / 1000.0)
        if rule is not None:
            if rule["delay_ms"]:
                time.sleep(rule["delay_ms"] / 1000.0)
            if rule["hang"]:
                self.hang(record)
                return
            if rule["stream_bytes"] is not None:
                self.stream_answer(record, rule)
                return
            if rule["drop"]:
                record["status"] = 0
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if rule["status"] is not None:
                self.fail_answer(req, record, rule)
                return
        klass = None
        try:
            handler, klass, args = find_route(req.method, req.path)
            if klass is None:
                with STATE.lock:
                    STATE.counters["token"] += 1
                    if over("token"):
                        raise rate_error()
            else:
                req.token = authenticate(req)
                with STATE.lock:
                    STATE.counters[klass] += 1
                    if over("general") or over(klass):
                        raise rate_error()
                    if app_over(req.token):
                        raise rate_error()
            status, value = handler(req, *args)
        except ApiError as exc:
            self.error_answer(req, record, exc, klass)
            return
        except Exception as exc:  # a simulator bug: answer 500, keep going
            import traceback
            traceback.print_exc()
            self.error_answer(req, record, ApiError(
                500, "server_error", "simulator: %s" % exc), klass)
            return
        with STATE.lock:
            headers = rate_headers(klass)
        headers["X-Podio-Request-Id"] = self.request_id
        record["status"] = status
        self.send_json(status, value, headers)

    def podio_error(self, req, status, error, description):
        """A Podio-shaped error body."""
        host = self.headers.get("Host") or "api.podio.com"
        return {"error": error, "error_description": description,
                "error_detail": None, "error_parameters": {},
                "error_propagate": False,
                "request": {"url": "http://%s%s" % (host, req.path),
                            "query_string": req.query,
                            "method": req.method}}

    def error_answer(self, req, record, exc, klass):
        with STATE.lock:
            headers = rate_headers(klass)
        headers["X-Podio-Request-Id"] = self.request_id
        headers.update(exc.headers)
        record["status"] = exc.status
        self.send_json(exc.status, self.podio_error(
            req, exc.status, exc.error, exc.description), headers)

    def fail_answer(self, req, record, rule):
        status = rule["status"]
        with STATE.lock:
            headers = rate_headers(None)
        headers["X-Podio-Request-Id"] = self.request_id
        headers.update(rule["headers"] or {})
        record["status"] = status
        if rule["body_base64"] is not None:
            self.send(status, base64.b64decode(rule["body_base64"]),
                      headers, rule["content_type"] or
                      "application/json; charset=utf-8")
            return
        if rule["body"] is not None:
            ctype = rule["content_type"] or "text/html"
            self.send(status, rule["body"].encode("utf-8"), headers, ctype)
            return
        error = rule["error"] or ERROR_NAMES.get(status, "error")
        desc = rule["error_description"]
        if desc is None:
            if status == 420:
                with STATE.lock:
                    desc = rate_error().description
            elif status == 401:
                desc = "invalid_token"
            else:
                desc = "Simulated failure"
        value = self.podio_error(req, status, error, desc)
        if status == 204:
            value = None
        self.send(status, json.dumps(value).encode("utf-8") if value
                  else b"", headers,
                  rule["content_type"] or "application/json; charset=utf-8")

    def stream_answer(self, record, rule):
        """Answers with a JSON object of exactly stream_bytes bytes,
        written in pieces of STREAM_PIECE bytes, so that a huge answer
        never sits in memory; a client that hangs up ends it quietly.
        With the rule's chunked, the answer carries no Content-Length
        (each piece is a chunk): only reading it tells its size."""
        size = max(0, int(rule["stream_bytes"]))
        status = rule["status"] if rule["status"] is not None else 200
        head, tail = b'{"pad": "', b'"}'
        if size < len(head) + len(tail):
            head, tail = b"", b""
        with STATE.lock:
            headers = rate_headers(None)
        headers["X-Podio-Request-Id"] = self.request_id
        headers.update(rule["headers"] or {})
        record["status"] = status
        self.close_connection = True
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
                 "Server: " + self.server_version,
                 "Date: " + self.date_time_string(),
                 "Content-Type: " + (rule["content_type"] or
                                     "application/json; charset=utf-8"),
                 "Connection: close"]
        chunked = rule.get("chunked")
        lines.append("Transfer-Encoding: chunked" if chunked else
                     "Content-Length: %d" % size)
        lines += ["%s: %s" % kv for kv in headers.items()]

        def framed(data):
            if not chunked or not data:
                return data
            return b"%x\r\n" % len(data) + data + b"\r\n"
        piece = b"x" * STREAM_PIECE
        left = size - len(head) - len(tail)
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode(
                "latin-1") + framed(head))
            while left > 0:
                n = min(left, STREAM_PIECE)
                self.wfile.write(framed(piece[:n]))
                left -= n
            self.wfile.write(framed(tail) + (b"0\r\n\r\n" if chunked
                                             else b""))
            self.wfile.flush()
        except OSError:
            pass

    def hang(self, record):
        """Never answers: waits until the client hangs up (its end of the
        connection reads as closed), the simulator is reset, or
        gate_timeout passes; then closes the connection unanswered."""
        record["status"] = 0
        self.close_connection = True
        with STATE.lock:
            release = STATE.hang_release
            limit = STATE.config["gate_timeout"]
        deadline = time.monotonic() + limit
        conn = self.connection
        while not release.is_set() and time.monotonic() < deadline:
            try:
                ready, _, _ = select.select([conn], [], [], 0.2)
                if ready and not conn.recv(1, socket.MSG_PEEK):
                    break
                if ready:
                    # Something more than this request: not a hang-up.
                    release.wait(0.2)
            except OSError:
                break
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def hold_at_gate(self, req):
        """Waits while a gate holds this request."""
        with STATE.lock:
            gate = None
            for g in STATE.gates.values():
                if g["remaining"] > 0 and not g["event"].is_set() \
                        and matches(g, req):
                    gate = g
                    break
            if gate is None:
                return
            gate["remaining"] -= 1
            gate["held"] += 1
            gate["waiting"] += 1
            limit = STATE.config["gate_timeout"]
        try:
            gate["event"].wait(limit)
        finally:
            with STATE.lock:
                gate["waiting"] -= 1

    # -------------------------------------------------------------- control

    def control(self, path, query, body):
        try:
            value = json.loads(body) if body.strip() else {}
        except ValueError:
            self.send_json(400, {"error": "bad JSON"})
            return
        try:
            status, answer = self.control_route(path, query, value)
        except ApiError as exc:
            status, answer = exc.status, {"error": exc.description}
        except Exception as exc:
            import traceback
            traceback.print_exc()
            status, answer = 500, {"error": "%s: %s" % (type(exc).__name__,
                                                          exc)}
        self.send_json(status, answer)

    def control_route(self, path, query, body):
        m = self.command
        q = dict(urllib.parse.parse_qsl(query))
        parts = path[len("/__sim/"):].strip("/").split("/")
        name = parts[0]
        if name == "reset" and m == "POST":
            with STATE.lock:
                STATE.reset()
            return 200, {"ok": True}
        if name == "config":
            with STATE.lock:
                if m == "POST":
                    for key, v in body.items():
                        if key not in DEFAULT_CONFIG:
                            raise ApiError(400, "", "unknown key %r" % key)
                    for key, v in body.items():
                        STATE.config[key] = v
                        for klass in ("filter", "token"):
                            if key == klass + "_rate_limit_after":
                                STATE.counters[klass] = 0
                        if key == "rate_limit_after":
                            STATE.counters["general"] = 0
                        if key == "app_rate_limit_after":
                            STATE.app_counters = {}
                return 200, copy.deepcopy(STATE.config)
        if name == "fail":
            with STATE.lock:
                if m == "DELETE":
                    STATE.fails = []
                    return 200, {"ok": True}
                if m == "GET":
                    return 200, [dict(r) for r in STATE.fails]
                rule = {"id": STATE.next_fail,
                        "path_prefix": body.get("path_prefix", "/"),
                        "method": body.get("method"),
                        "status": body.get("status", 503),
                        "count": body.get("count", 1),
                        "drop": bool(body.get("drop", False)),
                        "body": body.get("body"),
                        "headers": body.get("headers") or {},
                        "content_type": body.get("content_type"),
                        "error": body.get("error"),
                        "error_description": body.get("error_description"),
                        "delay_ms": body.get("delay_ms") or 0,
                        "body_base64": body.get("body_base64"),
                        "stream_bytes": body.get("stream_bytes"),
                        "chunked": bool(body.get("chunked", False)),
                        "hang": bool(body.get("hang", False)),
                        "hits": 0}
                STATE.next_fail += 1
                STATE.fails.append(rule)
                return 200, {"id": rule["id"]}
        if name == "expire_tokens" and m == "POST":
            n = 0
            with STATE.lock:
                only = body.get("access_token")
                for tok in STATE.tokens.values():
                    if only is None or tok["access_token"] == only:
                        tok["expired"] = True
                        n += 1
                        if body.get("refresh_tokens"):
                            entry = STATE.refresh.get(tok["refresh_token"])
                            if entry:
                                entry["used"] = True
            return 200, {"expired": n}
        if name == "tokens":
            with STATE.lock:
                return 200, [dict(t, ref=dict(t["ref"]))
                             for t in STATE.tokens.values()]
        if name == "stats":
            with STATE.lock:
                return 200, {"api_calls": STATE.counters["general"],
                             "filter_calls": STATE.counters["filter"],
                             "token_calls": STATE.counters["token"],
                             "tls_failures": STATE.tls_failures}
        if name == "requests":
            with STATE.lock:
                if m == "DELETE":
                    STATE.requests = []
                    return 200, {"ok": True}
                since = int(q.get("since", 0))
                out = [dict(r) for r in STATE.requests
                       if r["id"] > since
                       and r["path"].startswith(q.get("path_prefix", ""))
                       and (not q.get("method")
                            or r["method"] == q["method"].upper())]
                return 200, out
        if name == "gate":
            with STATE.lock:
                if len(parts) == 1 and m == "POST":
                    gid = STATE.next_gate
                    STATE.next_gate += 1
                    STATE.gates[gid] = {
                        "id": gid, "path_prefix": body.get("path_prefix", "/"),
                        "method": body.get("method"),
                        "remaining": int(body.get("count", 1)), "held": 0,
                        "waiting": 0, "event": threading.Event()}
                    return 200, {"id": gid}
                gate = STATE.gates.get(int(parts[1])) if len(parts) > 1 \
                    and parts[1].isdigit() else None
                if gate is None:
                    raise ApiError(404, "", "no such gate")
                if len(parts) == 3 and parts[2] == "release" and m == "POST":
                    gate["event"].set()
                elif len(parts) != 2:
                    raise ApiError(404, "", "no such control")
                return 200, {"id": gate["id"], "waiting": gate["waiting"],
                             "held": gate["held"],
                             "remaining": gate["remaining"],
                             "released": gate["event"].is_set()}
        if name == "verify_code" and len(parts) == 2:
            with STATE.lock:
                hook = STATE.hooks.get(parse_id(parts[1]))
                if hook is None:
                    raise ApiError(404, "", "no such hook")
                return 200, {"hook_id": hook["hook_id"], "code": hook["code"]}
        if name == "hooks":
            with STATE.lock:
                if len(parts) == 2 and m == "POST":
                    hook = STATE.hooks.get(parse_id(parts[1]))
                    if hook is None:
                        raise ApiError(404, "", "no such hook")
                    status = body.get("status", hook["status"])
                    if status not in ("active", "inactive"):
                        raise ApiError(400, "", "bad status %r" % status)
                    hook["status"] = status
                    return 200, sim_hook(hook)
                if len(parts) != 1:
                    raise ApiError(404, "", "no such control")
                if m == "POST":
                    hook_id = STATE.config["next_hook_id"]
                    STATE.config["next_hook_id"] = hook_id + 1
                    hook = {"hook_id": hook_id,
                            "ref_type": body.get("ref_type", "app"),
                            "ref_id": int(body.get("ref_id", 1234)),
                            "url": body["url"],
                            "type": body.get("type", "item.create"),
                            "status": body.get("status", "inactive"),
                            "code": new_code(), "created_on": now_text(),
                            "created_by": {"type": "app", "id": 1234}}
                    STATE.hooks[hook_id] = hook
                    return 200, sim_hook(hook)
                return 200, [sim_hook(h) for _, h in
                             sorted(STATE.hooks.items())]
        if name == "items":
            with STATE.lock:
                if len(parts) == 1 and m == "POST":
                    item_id = int(body["item_id"])
                    item = generated_item(item_id,
                                          int(body.get("app_id", 1234)))
                    item["last_edit_on"] = now_text()
                    for key, v in (body.get("set") or {}).items():
                        if key == "revision":
                            item["current_revision"]["revision"] = v
                            item["current_revision"]["item_revision_id"] = (
                                revision_id(item_id, v))
                        elif key == "revision_by":
                            item["current_revision"]["created_by"] = v
                        else:
                            item[key] = v
                            if key == "title" and "fields" not in body.get(
                                    "set"):
                                item["fields"][0]["values"] = [{"value": v}]
                    STATE.items[item_id] = {"item": item,
                                            "raw": body.get("raw"),
                                            "deleted": False, "gone": False,
                                            "known": True}
                    return 200, item
                if len(parts) == 1:
                    return 200, [e["item"] for _, e in
                                 sorted(STATE.items.items())]
                if len(parts) == 3 and parts[2] == "edit" and m == "POST":
                    item = new_revision(
                        int(parts[1]), body.get("by") or TEST_USER,
                        body.get("title"), body.get("hook", True),
                        body.get("last_edit_on"))
                    rev = item["current_revision"]
                    return 200, {"revision": rev["revision"],
                                 "item_revision_id": rev["item_revision_id"]}
                if len(parts) == 3 and parts[2] == "delete" and m == "POST":
                    item_id = int(parts[1])
                    entry = item_entry(item_id)
                    entry["deleted"] = True
                    entry["gone"] = bool(body.get("gone", False))
                    STATE.items[item_id] = entry
                    return 200, {"ok": True}
        if name == "deliver" and m == "POST":
            url = body.get("url")
            hook_id = body.get("hook_id")
            if url is None or body.get("active_only"):
                with STATE.lock:
                    hook = STATE.hooks.get(hook_id)
                    if hook is None:
                        raise ApiError(404, "", "no such hook")
                    url = url or hook["url"]
                    inactive = hook["status"] != "active"
                if body.get("active_only") and inactive:
                    return 200, {"status": 0, "body": None, "headers": {},
                                 "error": "not delivered: the hook is "
                                          "inactive"}
            try:
                loopback_target(url)
            except ValueError as exc:
                raise ApiError(400, "", str(exc))
            params = body.get("params") or {}
            pairs = (list(params.items()) if isinstance(params, dict)
                     else [tuple(p) for p in params])
            pairs = [(str(k), str(v)) for k, v in pairs]
            rec = deliver("manual", hook_id, url, pairs,
                          body.get("query_to_body", True), body.get("body"),
                          body.get("content_type"),
                          body.get("method", "POST"))
            return 200, {"status": rec["status"], "body": rec["response"],
                         "headers": rec["headers"], "error": rec["error"]}
        if name == "deliveries":
            with STATE.lock:
                if m == "DELETE":
                    STATE.deliveries = []
                    return 200, {"ok": True}
                return 200, list(STATE.deliveries)
        raise ApiError(404, "", "no such control %s %s" % (m, path))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


class Server6(Server):
    address_family = socket.AF_INET6


def tls_server(cls, address, cert, key):
    """A server of class cls (Server or Server6) for HTTPS on address,
    with the certificate (and chain) and key of the PEM files; each
    handshake is left to the connection's thread (Handler.setup)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class TlsServer(cls):
        def get_request(self):
            sock, addr = self.socket.accept()
            return context.wrap_socket(sock, server_side=True,
                                       do_handshake_on_connect=False), addr

        def handle_error(self, request, client_address):
            if isinstance(sys.exc_info()[1], (ssl.SSLError, OSError)):
                with STATE.lock:
                    STATE.tls_failures += 1
                return
            super().handle_error(request, client_address)

    return TlsServer(address, Handler)


def main():
    parser = argparse.ArgumentParser(description="Podio API simulator")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--parent-pid", type=int,
                        help="exit when this parent process goes away")
    parser.add_argument("--tls-cert", help="also serve HTTPS with this "
                        "certificate (PEM, chain after it)")
    parser.add_argument("--tls-key", help="the key of --tls-cert (PEM)")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    host = "127.0.0.1" if args.host == "localhost" else args.host
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError
    except ValueError:
        parser.error("--host must be a loopback address")
    cls = Server6 if ":" in host else Server
    server = cls((host, args.port), Handler)
    servers_ = [server]
    if args.tls_cert:
        servers_.append(tls_server(cls, (host, 0), args.tls_cert,
                                   args.tls_key))

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    if args.parent_pid:
        def watch():
            while os.getppid() == args.parent_pid:
                time.sleep(0.5)
            stopping.set()

        threading.Thread(target=watch, daemon=True).start()
    for srv in servers_:
        threading.Thread(target=srv.serve_forever,
                         kwargs={"poll_interval": 0.1}, daemon=True).start()
    ports = "".join("%d\n" % srv.server_address[1] for srv in servers_)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(ports)
        os.rename(tmp, args.port_file)
    else:
        print(ports, end="", flush=True)
    while not stopping.wait(1.0):
        pass
    for srv in servers_:
        srv.shutdown()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
