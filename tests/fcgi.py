"""A small FastCGI client for the tests (Python standard library only),
speaking to the handler the way nginx and Apache do: one responder
request per connection, or several over a kept connection.

    import fcgi
    r = fcgi.request("/tmp/x.sock", fcgi.cgi_params(body, query="a=b"),
                     body)
    r.status, r.headers["content-type"], r.body

Addresses are a unix socket path (str) or a (host, port) tuple.
parse_cgi() also splits the output of a CGI run into status, headers and
body.  HttpFront passes HTTP requests on to a FastCGI server, as a web
server would, for the tests in which the Podio simulator must reach the
handler (its hook.verify).
"""

import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = 1
BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
RESPONDER = 1
KEEP_CONN = 1
MAX_CONTENT = 65535

FORM = "application/x-www-form-urlencoded"


class ProtocolError(Exception):
    pass


class Response:
    """One answer: status (int, 0 when no Status header), headers (dict,
    lower-case names), body (bytes), raw (the whole stdout), stderr
    (bytes), app_status (from END_REQUEST)."""

    def __init__(self, raw, stderr, app_status):
        self.raw = raw
        self.stderr = stderr
        self.app_status = app_status
        self.status, self.headers, self.body = parse_cgi(raw)

    @property
    def text(self):
        """The body as text, without its final newline."""
        return self.body.decode("utf-8", "replace").rstrip("\n")

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers, self.body)


def parse_cgi(raw):
    """Splits a CGI response (bytes) into (status, headers, body).  The
    header block ends at the first empty line (CRLF or LF); status comes
    from the Status header (0 if none)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            head, body = raw[:i], raw[i + len(sep):]
            break
    else:
        return 0, {}, raw
    headers = {}
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if b":" not in line:
            continue
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = \
            value.decode("latin-1").strip()
    status = 0
    if "status" in headers:
        try:
            status = int(headers["status"].split()[0])
        except (ValueError, IndexError):
            status = 0
    return status, headers, body


def cgi_params(body=b"", query="", method="POST", content_type=FORM,
               content_length=True, **more):
    """The variables a web server passes for a request: REQUEST_METHOD,
    QUERY_STRING, CONTENT_TYPE and CONTENT_LENGTH (from body, unless
    content_length is False (left out) or a string (used as is)), plus
    more (names as given)."""
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "fcgi.py",
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "/podio",
        "REQUEST_URI": "/podio" + ("?" + query if query else ""),
        "REMOTE_ADDR": "127.0.0.1",
    }
    if content_type is not None:
        params["CONTENT_TYPE"] = content_type
    if content_length is True:
        params["CONTENT_LENGTH"] = str(len(body))
    elif isinstance(content_length, str):
        params["CONTENT_LENGTH"] = content_length
    params.update(more)
    return params


def _record(rtype, req_id, content=b""):
    pad = (8 - len(content) % 8) % 8
    return struct.pack("!BBHHBx", VERSION, rtype, req_id, len(content),
                       pad) + content + b"\0" * pad


def _stream(rtype, req_id, data):
    """data as records of at most MAX_CONTENT bytes, then the empty one
    that ends the stream."""
    out = []
    for i in range(0, len(data), MAX_CONTENT):
        out.append(_record(rtype, req_id, data[i:i + MAX_CONTENT]))
    out.append(_record(rtype, req_id))
    return b"".join(out)


def _length(n):
    return struct.pack("!B", n) if n < 128 else struct.pack(
        "!I", n | 0x80000000)


def encode_params(params):
    """Name-value pairs as FastCGI encodes them."""
    out = []
    for name, value in params.items():
        n = name.encode() if isinstance(name, str) else name
        v = value.encode() if isinstance(value, str) else value
        out.append(_length(len(n)) + _length(len(v)) + n + v)
    return b"".join(out)


def _connect(address, timeout):
    if isinstance(address, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(socket.AF_INET6 if ":" in address[0]
                          else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(address)
    except OSError:
        s.close()
        raise
    return s


class Connection:
    """One connection to a FastCGI server; request() may be called again
    when the previous request asked to keep the connection."""

    def __init__(self, address, timeout=60):
        self.sock = _connect(address, timeout)
        self.buf = b""
        self.next_id = 1

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProtocolError("connection closed by the server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send_head(self, params, keep_conn=False):
        """Sends BEGIN_REQUEST and the parameters; returns the request
        id.  The body follows with send_body()."""
        req_id = self.next_id
        self.next_id += 1
        flags = KEEP_CONN if keep_conn else 0
        self.sock.sendall(
            _record(BEGIN_REQUEST, req_id,
                    struct.pack("!HB5x", RESPONDER, flags)) +
            _stream(PARAMS, req_id, encode_params(params)))
        return req_id

    def send_body(self, req_id, body):
        self.sock.sendall(_stream(STDIN, req_id, body))

    def read_response(self, req_id):
        """Reads records until END_REQUEST of req_id; returns the
        Response."""
        out, err = [], []
        while True:
            version, rtype, rid, clen, pad = struct.unpack(
                "!BBHHBx", self._read(8))
            if version != VERSION:
                raise ProtocolError("bad record version %d" % version)
            content = self._read(clen)
            self._read(pad)
            if rid != req_id:
                continue
            if rtype == STDOUT:
                out.append(content)
            elif rtype == STDERR:
                err.append(content)
            elif rtype == END_REQUEST:
                app_status = struct.unpack("!I", content[:4])[0]
                return Response(b"".join(out), b"".join(err), app_status)

    def request(self, params, body=b"", keep_conn=False):
        """One whole request; returns its Response."""
        if isinstance(body, str):
            body = body.encode()
        req_id = self.send_head(params, keep_conn)
        self.send_body(req_id, body)
        return self.read_response(req_id)


def request(address, params, body=b"", timeout=60):
    """One request on a new connection, closed after the answer (as the
    server closes its end too)."""
    with Connection(address, timeout) as conn:
        return conn.request(params, body)


def delivery(address, body, query="", timeout=60, **more):
    """POSTs the form body (str or bytes) with its length and the form
    content type; returns the Response."""
    if isinstance(body, str):
        body = body.encode()
    return request(address, cgi_params(body, query=query, **more), body,
                   timeout=timeout)


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path, _, query = self.path.partition("?")
        try:
            r = delivery(self.server.address, body, query=query,
                         content_type=self.headers.get("Content-Type"),
                         timeout=self.server.timeout_s,
                         SCRIPT_NAME=path,
                         REQUEST_URI=self.path)
            status, text = r.status or 200, r.body
        except (OSError, ProtocolError) as exc:
            status, text = 502, ("no answer from FastCGI: %s\n" %
                                 exc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


class HttpFront:
    """An HTTP server on 127.0.0.1, on a free port, that passes each POST
    to the FastCGI server at address (its path, query, content type and
    body, as a web server would) and answers with that server's status
    and body.  url is its base, "http://127.0.0.1:PORT".  stop() ends
    it."""

    def __init__(self, address, timeout=60):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _FrontHandler)
        self.server.daemon_threads = True
        self.server.address = address
        self.server.timeout_s = timeout
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
