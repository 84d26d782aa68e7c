#!/usr/bin/env python3
"""strict.py: a dyno for t/route-hostile.bats that records, byte for byte,
every request the router sent it, and parses them by equality.

    strict.py PORTFILE DIR

Listens on 127.0.0.1 on a port of the kernel's choosing and writes that port
to PORTFILE (by rename).  A thread per connection, keep-alive.  Request
number N (counted from 1 over all connections) is written whole, head and
body exactly as they came, to DIR/req.N (by rename, once complete), and
"N REQUEST-LINE" is printed.

It accepts only what the router is meant to send, and nothing more:
header lines "Name: value" with no other spaces around the colon; a body
framed by "Content-Length: DIGITS" or by "Transfer-Encoding: chunked"
exactly, whose chunk lines are lowercase hex with no extension and whose
last chunk is "0" with no trailer.  Anything else is written to DIR/bad.N
with what was read so far, and the connection closed unanswered: a test
sees that no smuggling reached the dyno.

The answer depends on the request's path (all keep-alive but the last):

    /resp/conn-cl     Connection: content-length in the response
    /resp/conn-te     Connection: transfer-encoding, chunked
    /resp/ext         chunked, with chunk extensions and a trailer
    /resp/gzip        Transfer-Encoding: gzip, chunked (the body as is)
    /resp/bad-ext     a chunk line "5 zz"
    /resp/bad-trailer a trailer section holding a request line
    /resp/bare-lf     a chunk line ended by a bare LF
    Upgrade: websocket  101, then every byte read is written back
    anything else     200, "ok N\\n" with Content-Length
"""
import os
import re
import socket
import sys
import threading

PORTFILE, DIR = sys.argv[1], sys.argv[2]
lock = threading.Lock()
count = [0]

FIELD = re.compile(rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ([\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$")
CHUNK = re.compile(rb"^([0-9a-f]+)\r\n")


class Bad(Exception):
    pass


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.raw = b""       # this request's bytes so far

    def fill(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError
        self.buf += data

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        self.raw += out
        return out

    def until(self, sep, limit):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise Bad("too long")
            self.fill()
        i = self.buf.index(sep) + len(sep)
        return self.take(i)


def number():
    with lock:
        count[0] += 1
        return count[0]


def save(name, data):
    path = os.path.join(DIR, name)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)


def read_request(conn):
    """One request, parsed by equality: (line, fields)."""
    head = conn.until(b"\r\n\r\n", 1 << 17)
    lines = head[:-4].split(b"\r\n")
    if not re.match(rb"^[A-Z]+ /[\x21-\x7e]* HTTP/1\.[01]$", lines[0]):
        raise Bad("request line")
    fields = []
    for l in lines[1:]:
        m = FIELD.match(l)
        if not m:
            raise Bad("field line")
        fields.append((m.group(1).lower(), m.group(2) or b""))
    names = [k for k, _ in fields]
    for k in (b"host", b"content-length", b"transfer-encoding"):
        if names.count(k) > 1:
            raise Bad("twice: " + k.decode())
    f = dict(fields)
    if b"content-length" in f and b"transfer-encoding" in f:
        raise Bad("CL and TE")
    if b"transfer-encoding" in f:
        if f[b"transfer-encoding"] != b"chunked":
            raise Bad("TE not chunked")
        while True:
            line = conn.until(b"\r\n", 64)
            m = CHUNK.match(line)
            if not m or len(line) != m.end():
                raise Bad("chunk line")
            size = int(m.group(1), 16)
            if size == 0:
                if conn.take(2) != b"\r\n":
                    raise Bad("trailer")
                break
            conn.take(size)
            if conn.take(2) != b"\r\n":
                raise Bad("chunk end")
    elif b"content-length" in f:
        if not re.match(rb"^[0-9]+$", f[b"content-length"]):
            raise Bad("CL")
        conn.take(int(f[b"content-length"]))
    return lines[0], f


def answer(sock, path, n):
    ok = b"ok %d\n" % n
    if path == b"/resp/conn-cl":
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: content-length\r\n"
                     b"Content-Length: 3\r\n\r\nok\n")
    elif path == b"/resp/conn-te":
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n")
    elif path == b"/resp/ext":
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3;a=b ;c=\"d;e\"\r\nabc\r\n2 ; x\r\nde\r\n"
                     b"0\r\nX-Trailer: 1\r\n\r\n")
    elif path == b"/resp/gzip":
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n"
                     b"\r\n4\r\nGZIP\r\n0\r\n\r\n")
    elif path == b"/resp/bad-ext":
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5 zz\r\nhello\r\n0\r\n\r\n")
    elif path == b"/resp/bad-trailer":
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\r\nhi\r\n0\r\nGET /admin HTTP/1.1\r\n\r\n")
    elif path == b"/resp/bare-lf":
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\nhi\r\n0\r\n\r\n")
    else:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(ok), ok))


def serve(sock):
    conn = Conn(sock)
    try:
        while True:
            conn.raw = b""
            try:
                line, f = read_request(conn)
            except Bad as e:
                n = number()
                save("bad.%d" % n, conn.raw + conn.buf)
                print("%d bad: %s" % (n, e), flush=True)
                return
            n = number()
            save("req.%d" % n, conn.raw)
            print("%d %s" % (n, line.decode()), flush=True)
            path = line.split(b" ")[1]
            if f.get(b"upgrade", b"").lower() == b"websocket":
                sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                             b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                if conn.buf:
                    sock.sendall(conn.buf)
                while True:
                    data = sock.recv(65536)
                    if not data:
                        return
                    sock.sendall(data)
            answer(sock, path, n)
            if path.startswith(b"/resp/"):
                return
    except (EOFError, OSError):
        pass
    finally:
        sock.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(256)
    with open(PORTFILE + ".tmp", "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(PORTFILE + ".tmp", PORTFILE)
    while True:
        s, _ = srv.accept()
        threading.Thread(target=serve, args=(s,), daemon=True).start()


main()
