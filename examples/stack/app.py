#!/usr/bin/env python3
"""The app of examples/stack.yaml: a tiny HTTP service that uses PostgreSQL and Redis.

Usage: app.py HTTP_PORT PG_PORT REDIS_PORT   (all on 127.0.0.1)

`GET /health` answers 200 when both answer (Redis: PING gets +PONG; PostgreSQL: a startup
message gets an authentication request, not "starting up"), else 503 with the reason;
`GET /` says hello with the same. Writes its pid to stack/run/app.pid once it listens.
"""
import http.server
import os
import socket
import struct
import sys

HTTP_PORT, PG_PORT, REDIS_PORT = (int(a) for a in sys.argv[1:4])


def redis_ok():
    with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1) as s:
        s.sendall(b"PING\r\n")
        reply = s.recv(64)
    return reply.startswith(b"+PONG"), "redis: " + reply.decode(errors="replace").strip()


def postgres_ok():
    params = b"user\0postgres\0database\0postgres\0\0"
    with socket.create_connection(("127.0.0.1", PG_PORT), timeout=1) as s:
        s.sendall(struct.pack(">II", 8 + len(params), 196608) + params)
        kind = s.recv(1)
    # R: authentication (trust: AuthenticationOk), the server runs; E: an error, such as
    # "the database system is starting up".
    return kind == b"R", "postgres: " + ("ok" if kind == b"R" else "not ready")


def check():
    reasons, ok = [], True
    for probe in (postgres_ok, redis_ok):
        try:
            good, why = probe()
        except OSError as e:
            good, why = False, f"{probe.__name__[:-3]}: {e}"
        ok = ok and good
        reasons.append(why)
    return ok, "; ".join(reasons)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok, why = check()
        if self.path == "/health":
            body = why
        else:
            body = f"hello from the app ({why})"
        data = (body + "\n").encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", HTTP_PORT), Handler)
with open("stack/run/app.pid.tmp", "w") as f:
    f.write(f"{os.getpid()}\n")
os.replace("stack/run/app.pid.tmp", "stack/run/app.pid")
server.serve_forever()
