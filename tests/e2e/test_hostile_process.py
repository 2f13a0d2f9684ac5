"""What aiohttp's parser refuses, through the real `p38 serve`: answered as JSON naming the
problem without echoing the request, and not one configured secret in anything the process
writes, whatever a sender put in a request line or header."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
from pathlib import Path

from tests.helpers import GITHUB_SECRET, env_for, github_request, p38_running, terminate

SECRETS = {"RAILWAY_WEBHOOK_SECRET": "rw-secret-123456", "GITHUB_WEBHOOK_SECRET":
           "gh-secret-123456", "P38_API_TOKEN": "api-token-123456"}


def serving_port(process: subprocess.Popen[str]) -> tuple[str, int]:
    """Read the log up to the `serving` line: that line, and the port it names."""
    assert process.stderr is not None
    line = process.stderr.readline()
    while '"serving"' not in line:
        line = process.stderr.readline()
    return line, int(json.loads(line)["url"].rsplit(":", 1)[1])


def exchange(port: int, data: bytes) -> tuple[int, dict[str, object]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += conn.recv(65536)
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines
                      if line.lower().startswith("content-length:"))
        while len(body) < length:
            body += conn.recv(65536)
    assert "content-type: application/json" in head.decode("latin-1").lower()
    return int(lines[0].split(" ", 2)[1]), json.loads(body)


def leave_mid_body(port: int) -> None:
    """A sender that resets the connection once the server is reading its body (it answers
    a small `Expect: 100-continue` first, so the handler is running when the reset comes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 100")
        conn.sendall(b'{"a"')
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_parser_refusals_are_json_and_secrets_never_logged(dsn: str, tmp_path: Path) -> None:
    """Malformed request lines, oversized and conflicting headers carrying the tokens."""
    env = {**env_for(dsn), **SECRETS, "P38_HOME": str(tmp_path)}
    with p38_running("serve", "--port", "0", env=env, cwd=tmp_path) as process:
        line, port = serving_port(process)
        token = SECRETS["RAILWAY_WEBHOOK_SECRET"].encode()
        cases = {
            b"POST /webhooks/railway?token=" + token + b" HTTP/1.1 junk\r\nHost: x\r\n\r\n":
                "the request line is malformed",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-P38-Token: " + token + b"A" * 10000
            + b"\r\n\r\n": "a request line or header is too long",
            b"POST /webhooks/railway HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\nX-P38-Token: " + token + b"\r\n\r\nhello":
                "Content-Length and Transfer-Encoding cannot both be sent",
            b"GET /api/deliveries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            b"api-token-123456\x00\r\n\r\n": "a header is malformed",
        }
        cut_off = (b"POST /webhooks/railway?p=" + b"x" * 65 + b"&token=" + token + b"&"
                   + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")  # the parser quotes ~100 bytes
        encoded = (b"POST /webhooks/railway?token=" + token.replace(b"-", b"%2D") + b"&"
                   + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        cases[cut_off] = cases[encoded] = "a request line or header is too long"
        cases[b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"zz\r\n"] = "the request is malformed HTTP"  # a broken chunk
        for request, reason in cases.items():
            status, body = exchange(port, request)
            assert (status, body["reason"]) == (400, reason), request[:60]
            assert token.decode() not in json.dumps(body)
        assert exchange(port, b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: "
                              b"application/json\r\nContent-Encoding: gzip\r\nX-GitHub-Event: "
                              b"ping\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: 4\r\n"
                              b"\r\n\x1f\x8bxx")[0] == 415  # compressed: refused before decoding
        leave_mid_body(port)
        code, rest = terminate(process)
    assert code == 0
    written = line + rest
    refused = [entry for entry in written.splitlines() if '"request_refused"' in entry]
    assert len(refused) == len(cases) and all('"level":"info"' in entry for entry in refused)
    assert '"outcome":"client_gone"' in written
    assert "Traceback" not in written and '"level":"error"' not in written, written
    for secret in SECRETS.values():
        assert secret not in written and secret[:-1] not in written
    assert all(entry.startswith("{") for entry in written.splitlines() if entry.strip())


def test_a_body_still_arriving_at_sigterm_is_answered(dsn: str, tmp_path: Path) -> None:
    """SIGTERM while a delivery's body is on its way: the server stops listening, reads the
    rest, stores and answers the delivery, then exits 0."""
    env = {**env_for(dsn), "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET, "P38_HOME": str(tmp_path)}
    headers, body = github_request("ping", "app-hook")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with p38_running("serve", "--port", "0", env=env, cwd=tmp_path) as process:
        line, port = serving_port(process)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(f"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n{head}Content-Length: "
                         f"{len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
            assert conn.recv(100).startswith(b"HTTP/1.1 100")  # the handler is reading
            conn.sendall(body[:1])
            process.send_signal(signal.SIGTERM)
            while '"shutting_down"' not in line:
                line = process.stderr.readline()
            assert '"requests_in_flight":1' in line.replace(" ", "")
            conn.sendall(body[1:])
            answer = conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b'"status":"pong"' in answer.replace(b" ", b"")
        assert b"connection: close" in answer.lower()  # a keep-alive client goes elsewhere
        code, _rest = terminate(process)
    assert code == 0


def _busy(port: int) -> socket.socket:
    """A connection whose request is being handled: a GitHub delivery's head, and the server
    has said it reads the body (100 Continue)."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert conn.recv(100).startswith(b"HTTP/1.1 100")
    return conn


def test_connections_that_send_nothing_are_closed_and_capped(dsn: str, tmp_path: Path) -> None:
    """A request head must arrive within P38_HEADER_TIMEOUT_SECONDS: a connection that sends
    nothing, trickles its head, or trickles the next head on a keep-alive connection is closed.
    At P38_MAX_CONNECTIONS, the oldest idle connection makes room for a new one; only when
    every one is handling a request is the new one closed."""
    env = {**env_for(dsn), "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET, "P38_HOME": str(tmp_path),
           "P38_HEADER_TIMEOUT_SECONDS": "0.5", "P38_MAX_CONNECTIONS": "3"}
    with p38_running("serve", "--port", "0", env=env, cwd=tmp_path) as process:
        line, port = serving_port(process)
        silent = socket.create_connection(("127.0.0.1", port), timeout=30)
        trickle = socket.create_connection(("127.0.0.1", port), timeout=30)
        trickle.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n")  # never ends
        again = socket.create_connection(("127.0.0.1", port), timeout=30)
        again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert again.recv(1000).startswith(b"HTTP/1.1 200")
        again.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next head, never finished
        for conn in (silent, trickle, again):
            assert conn.recv(100) == b""  # closed by the server, not after the keep-alive time
            conn.close()
        busy = [_busy(port) for _ in range(3)]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as extra:
            assert extra.recv(100) == b""  # all three handle a request: the new one is closed
        busy[0].sendall(b"{}")  # unsigned: 401, then the connection is idle (kept alive)
        assert busy[0].recv(1000).startswith(b"HTTP/1.1 401")
        headers, body = github_request("ping", "app-hook")
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        with socket.create_connection(("127.0.0.1", port), timeout=30) as newcomer:
            newcomer.sendall(f"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n{head}"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            assert newcomer.recv(100).startswith(b"HTTP/1.1 200")  # room was made for it
        assert busy[0].recv(100) == b""  # the idle one was closed to make it
        for conn in busy:
            conn.close()
        code, rest = terminate(process)
    assert code == 0
    assert '"connections_closed_at_cap"' in line + rest


def test_a_body_that_breaks_off_and_odd_expectations(dsn: str, tmp_path: Path) -> None:
    """A chunked body that breaks after its first chunk is a 400 at once (not a 408 after the
    body timeout); an Expect on a path no route takes is a JSON 417 that does not quote it."""
    env = {**env_for(dsn), **SECRETS, "P38_HOME": str(tmp_path)}
    with p38_running("serve", "--port", "0", env=env, cwd=tmp_path) as process:
        _line, port = serving_port(process)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nTransfer-Encoding: chunked\r\nExpect: "
                         b"100-continue\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 100")
            conn.sendall(b"10\r\n0123456789abcdef\r\n")
            conn.sendall(b"zz\r\nbroken\r\n")
            answer = conn.recv(1000)  # within the socket timeout, far under the body timeout
        assert answer.startswith(b"HTTP/1.1 400") and b"a broken chunk" in answer
        status, body = exchange(port, b"GET /nowhere HTTP/1.1\r\nHost: x\r\nExpect: "
                                      b"rw-secret-123456 <b>\r\n\r\n")
        assert status == 417 and "rw-secret" not in json.dumps(body)
        code, _rest = terminate(process)
    assert code == 0
