"""Hostile clients and measurements for the attack suite
(tests/e2e/test-attacks.py).

    import attack
    st, secs, raw = attack.post(port, "/podio-hook", body, timeout=10)
    slow = attack.SlowClients(port, "/podio-hook", 64, 60000, 600)
    slow.start(); ...; slow.stop(); slow.outcomes
    attack.fcgi_raw(sock, data)       # raw records, then the answer
    attack.fcgi_streams(delivery)     # records of every type and length
    attack.vm_hwm(pid), attack.descriptors(pid, api_port)

Every client here bounds each of its waits, so that a case against a
server that misbehaves fails in bounded time instead of hanging.
"""

import os
import select
import socket
import struct
import threading
import time

import fcgi

FORM = "application/x-www-form-urlencoded"

# ------------------------------------------------------------------ HTTP


def _status_of(raw):
    """The status of an HTTP answer (0 when there is none)."""
    line = raw.split(b"\r\n", 1)[0].split()
    try:
        return int(line[1]) if line[:1] and line[0].startswith(
            b"HTTP/") else 0
    except (IndexError, ValueError):
        return 0


def _http_complete(raw):
    """Whether raw holds a whole HTTP answer: its head and as much body as
    its Content-Length says (without one, only the end of the connection
    tells)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return len(body) >= int(value.strip())
            except ValueError:
                return False
    return False


def http_head(port, path, length, ctype=FORM, extra=None):
    """The head of a POST declaring a body of length bytes (None: no
    Content-Length), with Connection: close."""
    lines = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port,
             "User-Agent: podio-attack", "Connection: close",
             "Content-Type: " + ctype]
    if length is not None:
        lines.append("Content-Length: %d" % length)
    lines += list(extra or [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(port, path, body, timeout=10.0, length=None, half_close=False):
    """One POST of body (bytes or str) on a fresh connection; length
    overrides the Content-Length declared; half_close shuts the sending
    side after the body.  Returns (status, seconds, whole answer): status
    0 when no answer came within timeout seconds in all, or the
    connection ended without one.  Reading stops at the end of the
    answer."""
    if isinstance(body, str):
        body = body.encode()
    t0 = time.monotonic()
    raw = b""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return 0, time.monotonic() - t0, b""
    try:
        s.sendall(http_head(port, path, len(body) if length is None
                            else length) + body)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                break
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
            if _http_complete(raw):
                break
    except OSError:
        pass
    finally:
        s.close()
    return _status_of(raw), time.monotonic() - t0, raw


def big_post(port, path, declared, total, timeout=10.0, rate=None):
    """A POST declaring declared bytes and sending total bytes of body
    (in pieces of 64 KiB, or rate bytes a second when given) while
    waiting for the answer; the sending stops at the answer.  Returns
    (status, seconds to the answer, bytes of body sent by then); see
    push()."""
    def pieces():
        step = rate or 65536
        for i in range(0, total, step):
            n = min(step, total - i)
            yield b"x" * n, n
            if rate:
                yield None, 1.0
    return push(lambda: socket.create_connection(("127.0.0.1", port),
                                                 timeout=timeout),
                http_head(port, path, declared), pieces(), timeout,
                _status_of, _http_complete)


def push(connect, first, pieces, timeout, status_of, complete):
    """Sends first (bytes) on the connection connect() makes, then the
    pieces from a thread: (data, n) pairs, n counting what data carries
    (None as data: a pause of n seconds), while reading the answer until
    complete(what came) or the end; the sending stops at the answer.
    Returns (status_of(answer), seconds to
    the first byte of the answer or to the end, the sum of n sent by
    then); the status is None when no connection could be made."""
    t0 = time.monotonic()
    try:
        s = connect()
    except OSError:
        return None, time.monotonic() - t0, 0
    sent = [0]
    answered = threading.Event()

    def sender():
        try:
            for data, n in pieces:
                if answered.is_set():
                    break
                if data is None:
                    answered.wait(n)
                    continue
                s.sendall(data)
                sent[0] += n
        except OSError:
            pass
    raw, at_answer, at = b"", None, 0
    try:
        s.sendall(first)
        threading.Thread(target=sender, daemon=True).start()
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                break
            s.settimeout(left)
            chunk = s.recv(65536)
            if at_answer is None:
                at_answer = time.monotonic() - t0
                at = sent[0]
                answered.set()
            if not chunk:
                break
            raw += chunk
            if complete(raw):
                break
    except OSError:
        pass
    finally:
        answered.set()
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
    if at_answer is None:
        at_answer, at = time.monotonic() - t0, sent[0]
    return status_of(raw), at_answer, at


class SlowClients:
    """n HTTP clients of one web server, driven by one thread: each
    declares a body of declared bytes, sends first bytes of it at once,
    then rate bytes a second (0: nothing more: a stalled client).  When
    the other side answers or closes, the outcome is kept and, until
    stop(), the client connects again, as an attacker would.

    outcomes: [(start, end, status, bytes sent)], times relative to
    start(), status 0 for a connection closed without an answer."""

    TICK = 0.1

    def __init__(self, port, path, n, declared, rate, first=0):
        self.port, self.path, self.n = port, path, n
        self.declared, self.rate, self.first = declared, rate, first
        self.outcomes = []
        self.failed_connects = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = None
        self.t0 = None

    def _open(self):
        now = time.monotonic() - self.t0
        try:
            s = socket.create_connection(("127.0.0.1", self.port),
                                         timeout=5)
            s.sendall(http_head(self.port, self.path, self.declared) +
                      b"x" * self.first)
            s.setblocking(False)
        except OSError:
            with self.lock:
                self.failed_connects += 1
            return None
        return {"sock": s, "start": now, "sent": self.first, "raw": b"",
                "credit": 0.0}

    def _end(self, c, status):
        try:
            c["sock"].close()
        except OSError:
            pass
        with self.lock:
            self.outcomes.append((c["start"], time.monotonic() - self.t0,
                                  status, c["sent"]))

    def _run(self):
        conns = [self._open() for _ in range(self.n)]
        last = time.monotonic()
        while not self.stopping.is_set():
            live = [c for c in conns if c is not None]
            socks = {c["sock"]: c for c in live}
            try:
                ready, _, _ = select.select(list(socks), [], [], self.TICK)
            except (OSError, ValueError):
                ready = []
            for s in ready:
                c = socks[s]
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                c["raw"] += chunk
                if not chunk or b"\r\n\r\n" in c["raw"]:
                    self._end(c, _status_of(c["raw"]))
                    conns[conns.index(c)] = None
            now = time.monotonic()
            step, last = now - last, now
            for i, c in enumerate(conns):
                if c is None:
                    if not self.stopping.is_set():
                        conns[i] = self._open()
                    continue
                c["credit"] += self.rate * step
                n = min(int(c["credit"]), self.declared - c["sent"])
                if n <= 0:
                    continue
                try:
                    k = c["sock"].send(b"x" * n)
                except BlockingIOError:
                    continue
                except OSError:
                    self._end(c, _status_of(c["raw"]))
                    conns[i] = None
                    continue
                c["sent"] += k
                c["credit"] -= k
        for c in conns:
            if c is not None:
                c["sock"].close()

    def start(self):
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Closes every connection still open; returns the outcomes."""
        self.stopping.set()
        self.thread.join(30)
        return list(self.outcomes)

# ------------------------------------------------------------------ FastCGI


def record(rtype, req_id, content=b"", pad=None, version=fcgi.VERSION):
    """One FastCGI record, padded to 8 bytes unless pad is given."""
    if pad is None:
        pad = (8 - len(content) % 8) % 8
    return struct.pack("!BBHHBx", version, rtype, req_id, len(content),
                       pad) + content + b"\0" * pad


def begin(req_id=1, role=fcgi.RESPONDER, flags=0):
    return record(fcgi.BEGIN_REQUEST, req_id, struct.pack("!HB5x", role,
                                                          flags))


def head(params, req_id=1, flags=0):
    """BEGIN_REQUEST and the whole PARAMS stream of params (a dict)."""
    return begin(req_id, flags=flags) + fcgi._stream(
        fcgi.PARAMS, req_id, fcgi.encode_params(params))


def request(body, req_id=1, **params):
    """A whole responder request for the form body (bytes), with more
    CGI variables in params."""
    return head(fcgi.cgi_params(body, **params), req_id) + fcgi._stream(
        fcgi.STDIN, req_id, body)


class FcgiAnswer:
    """What came back on a raw FastCGI connection: status (0 when no
    STDOUT with a Status header), ended (the server closed the
    connection, or it answered END_REQUEST; never when it could not be
    reached), seconds, the record types seen, the protocol status of
    END_REQUEST (None without one), error (what failed, or None)."""

    def __init__(self, status, ended, seconds, types, proto, error):
        self.status, self.ended, self.seconds = status, ended, seconds
        self.types, self.proto, self.error = types, proto, error

    def __repr__(self):
        return "<status %d ended %s %.2fs types %r proto %r %s>" % (
            self.status, self.ended, self.seconds, self.types, self.proto,
            self.error or "")


def parse_records(data):
    """The complete records at the start of data: [(type, id, content)]."""
    out, i = [], 0
    while len(data) - i >= 8:
        _v, rtype, rid, clen, pad = struct.unpack("!BBHHBx", data[i:i + 8])
        if len(data) - i < 8 + clen + pad:
            break
        out.append((rtype, rid, data[i + 8:i + 8 + clen]))
        i += 8 + clen + pad
    return out


def fcgi_raw(path, data, timeout=5.0, half_close=True, until_end=True):
    """Sends data (bytes) on a new connection to the unix socket path,
    shuts the sending side (half_close), then reads until the server
    closes or, with until_end, answers END_REQUEST; at most timeout
    seconds in all.  Returns a FcgiAnswer."""
    t0 = time.monotonic()
    raw, ended, error = b"", False, None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError as exc:   # the server may close before it all went
            error = "send: %s" % exc
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except OSError as exc:
                ended = isinstance(exc, ConnectionResetError)
                break
            if not chunk:
                ended = True
                break
            raw += chunk
            if until_end and any(r[0] == fcgi.END_REQUEST
                                 for r in parse_records(raw)):
                ended = True
                break
    except OSError as exc:
        error = "%s" % exc
    finally:
        s.close()
    recs = parse_records(raw)
    out = b"".join(c for t, _i, c in recs if t == fcgi.STDOUT)
    proto = [c[4] for t, _i, c in recs if t == fcgi.END_REQUEST and
             len(c) >= 5]
    status = fcgi.parse_cgi(out)[0] if out else 0
    return FcgiAnswer(status, ended, time.monotonic() - t0,
                      sorted({t for t, _i, _c in recs}),
                      proto[0] if proto else None, error)


def _unix(path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s


def _fcgi_complete(raw):
    return any(t == fcgi.END_REQUEST for t, _i, _c in parse_records(raw))


def _fcgi_status(raw):
    out = b"".join(c for t, _i, c in parse_records(raw) if t == fcgi.STDOUT)
    return fcgi.parse_cgi(out)[0] if out else 0


def framed(rtype, data):
    """data as records of rtype (request 1), at most MAX_CONTENT bytes
    each."""
    return b"".join(record(rtype, 1, data[i:i + fcgi.MAX_CONTENT])
                    for i in range(0, len(data), fcgi.MAX_CONTENT))


def fcgi_push(path, params, total, timeout=10.0):
    """A request whose head is params (a dict) followed by total bytes of
    STDIN, sent while its answer is read; the sending stops at the
    answer.  Returns (status, seconds, bytes of body sent by then); see
    push()."""
    def pieces():
        for i in range(0, total, 65536):
            n = min(65536, total - i)
            yield framed(fcgi.STDIN, b"x" * n), n
    return push(lambda: _unix(path, timeout), head(params), pieces(),
                timeout, _fcgi_status, _fcgi_complete)


def fcgi_params_flood(path, pairs, value_len, body, timeout=10.0):
    """A request whose PARAMS stream holds pairs parameters of value_len
    bytes each (streamed, never built whole), then the CGI variables of
    the form body and the body itself.  Returns (status, seconds, bytes
    of parameters sent by then); see push()."""
    def pieces():
        value = b"v" * 65536
        for k in range(pairs):
            name = b"HTTP_X_FLOOD_%d" % k
            yield framed(fcgi.PARAMS, fcgi._length(len(name)) +
                         fcgi._length(value_len) + name), len(name)
            for i in range(0, value_len, 65536):
                n = min(65536, value_len - i)
                yield framed(fcgi.PARAMS, value[:n]), n
        yield fcgi._stream(fcgi.PARAMS, 1, fcgi.encode_params(
            fcgi.cgi_params(body))) + fcgi._stream(fcgi.STDIN, 1, body), 0
    return push(lambda: _unix(path, timeout), begin(), pieces(), timeout,
                _fcgi_status, _fcgi_complete)

def fcgi_streams(delivery):
    """(name, bytes, item_id) of FastCGI streams with records of every
    type and length, in and out of their order.  Each holds a whole valid
    request somewhere (delivery() gives its (item_id, form body)), so
    that a server that skips what it does not understand may answer
    it."""
    out = []

    def add(name, build):
        item_id, body = delivery()
        out.append((name, build(body), item_id))
    lengths = (0, 1, 8, 65535)
    for rtype in list(range(0, 13)) + [100, 255]:
        for n in lengths:
            content = bytes((i * 7 + rtype) % 256 for i in range(n))
            add("type %d, %d bytes, before the request" % (rtype, n),
                lambda b, r=rtype, c=content: record(r, 1, c) +
                request(b))
            add("type %d, %d bytes, after BEGIN_REQUEST" % (rtype, n),
                lambda b, r=rtype, c=content: begin() +
                record(r, 1, c) + fcgi._stream(
                    fcgi.PARAMS, 1, fcgi.encode_params(fcgi.cgi_params(b))) +
                fcgi._stream(fcgi.STDIN, 1, b))
            add("type %d, %d bytes, request id 0" % (rtype, n),
                lambda b, r=rtype, c=content: record(r, 0, c) +
                request(b))
        add("type %d, padding 255" % rtype,
            lambda b, r=rtype: record(r, 1, b"\x01", pad=255) +
            request(b))
    for version in (0, 2, 255):
        add("version %d" % version, lambda b, v=version: record(
            fcgi.BEGIN_REQUEST, 1, struct.pack("!HB5x", 1, 0), version=v) +
            request(b)[16:])
    for role in (0, 2, 3, 65535):
        add("role %d" % role, lambda b, r=role: begin(role=r) +
            request(b)[16:])
    for n in (0, 7, 9, 65535):
        add("BEGIN_REQUEST of %d bytes" % n, lambda b, k=n: record(
            fcgi.BEGIN_REQUEST, 1, (b"\0\x01" + b"\0" * k)[:k]) +
            request(b)[16:])
    add("two BEGIN_REQUEST, same id", lambda b: begin() +
        request(b))
    add("a second request id in the middle", lambda b: begin() +
        begin(2) + request(b)[16:])
    add("a whole request under id 2 first", lambda b: request(
        b, req_id=2) + request(b))
    add("STDIN before PARAMS", lambda b: begin() + fcgi._stream(
        fcgi.STDIN, 1, b) + fcgi._stream(fcgi.PARAMS, 1, fcgi.encode_params(
            fcgi.cgi_params(b))))
    add("PARAMS again after STDIN", lambda b: request(b) +
        fcgi._stream(fcgi.PARAMS, 1, fcgi.encode_params({"X": "y"})))
    add("ABORT_REQUEST before STDIN", lambda b: head(
        fcgi.cgi_params(b)) + record(fcgi.ABORT_REQUEST, 1) +
        fcgi._stream(fcgi.STDIN, 1, b))
    add("END_REQUEST from the client", lambda b: record(
        fcgi.END_REQUEST, 1, b"\0" * 8) + request(b))
    add("STDOUT from the client", lambda b: head(
        fcgi.cgi_params(b)) + record(fcgi.STDOUT, 1, b"Status: 200"
                                            b"\r\n\r\n") +
        fcgi._stream(fcgi.STDIN, 1, b))
    add("a name length past the record", lambda b: begin() +
        record(fcgi.PARAMS, 1, b"\x7f\x7fabc") + record(
            fcgi.PARAMS, 1) + fcgi._stream(fcgi.STDIN, 1, b))
    add("4-byte lengths of 2 GiB", lambda b: begin() +
        record(fcgi.PARAMS, 1, b"\xff\xff\xff\xff\xff\xff\xff\xff"
                      b"ab") + record(fcgi.PARAMS, 1) +
        fcgi._stream(fcgi.STDIN, 1, b))
    add("GET_VALUES", lambda b: record(9, 0, fcgi.encode_params({
        "FCGI_MAX_CONNS": "", "FCGI_MAX_REQS": "", "FCGI_MPXS_CONNS": ""}))
        + request(b))
    add("STDIN past CONTENT_LENGTH in one record", lambda b: head(
        fcgi.cgi_params(b)) + record(fcgi.STDIN, 1, b + b"x" * 60000)
        + record(fcgi.STDIN, 1))
    add("a record header cut short", lambda b: request(b)[:3])
    add("a record cut short", lambda b: request(b)[:-20])
    add("the body's records shuffled", lambda b: head(
        fcgi.cgi_params(b)) + record(fcgi.STDIN, 1) +
        record(fcgi.STDIN, 1, b))
    return out


def stalled(path, data):
    """A connection to the unix socket path that sends data and then
    nothing (non-blocking, for wait_closed())."""
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    if data:
        c.sendall(data)
    c.setblocking(False)
    return c


def wait_closed(conns, timeout):
    """{index: seconds after t0 when the server closed it} for conns
    [(socket, t0)], waiting up to timeout seconds."""
    closed = {}
    deadline = time.monotonic() + timeout
    while len(closed) < len(conns) and time.monotonic() < deadline:
        open_ = {c: i for i, (c, _t) in enumerate(conns) if i not in closed}
        ready, _, _ = select.select(list(open_), [], [], 0.1)
        for c in ready:
            try:
                data = c.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                i = open_[c]
                closed[i] = time.monotonic() - conns[i][1]
    return closed


# ------------------------------------------------------------------ process


def proc_status(pid):
    """The fields of /proc/PID/status ({} when the process is gone)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def vm_hwm(pid):
    """The peak resident set size of pid in bytes (0 when gone)."""
    v = proc_status(pid).get("VmHWM", "0 kB").split()
    return int(v[0]) * 1024 if v and v[0].isdigit() else 0


def _tcp_remote_ports():
    """{socket inode: remote port} of every TCP socket of the host."""
    out = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    w = line.split()
                    out[w[9]] = int(w[2].rsplit(":", 1)[1], 16)
        except (OSError, StopIteration, IndexError, ValueError):
            pass
    return out


def _unnamed_unix():
    """The inodes of the host's unix sockets that have no path: socket
    pairs (the connections a listening socket accepted carry its path)."""
    out = set()
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                w = line.split()
                if len(w) == 7:
                    out.add(w[6])
    except (OSError, StopIteration):
        pass
    return out


def descriptors(pid, api_port):
    """The open descriptors of pid: (others, kept), each a sorted list of
    link targets.  kept is what libcurl keeps per handle, one handle per
    thread: its connections to the API on api_port (for reuse) and its
    socket pairs (to wake a transfer up); others is everything else."""
    ports = _tcp_remote_ports()
    pairs = _unnamed_unix()
    others, kept = [], []
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return [], []
    for name in names:
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            continue
        inode = target[len("socket:["):-1] if target.startswith(
            "socket:[") else None
        if inode is not None and (ports.get(inode) == api_port or
                                  inode in pairs):
            kept.append(target)
        else:
            others.append(target)
    return sorted(others), sorted(kept)
