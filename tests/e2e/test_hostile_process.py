"""What aiohttp's parser refuses, through the real `p38 serve`: answered as JSON naming the
problem without echoing the request, and not one configured secret in anything the process
writes, whatever a sender put in a request line or header."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.helpers import env_for, p38_running, terminate

SECRETS = {"RAILWAY_WEBHOOK_SECRET": "rw-secret-123456", "GITHUB_WEBHOOK_SECRET":
           "gh-secret-123456", "P38_API_TOKEN": "api-token-123456"}


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


def test_parser_refusals_are_json_and_secrets_never_logged(dsn: str, tmp_path: Path) -> None:
    """Malformed request lines, oversized and conflicting headers carrying the tokens."""
    env = {**env_for(dsn), **SECRETS, "P38_HOME": str(tmp_path)}
    with p38_running("serve", "--port", "0", env=env, cwd=tmp_path) as process:
        assert process.stderr is not None
        line = process.stderr.readline()
        while '"serving"' not in line:
            line = process.stderr.readline()
        port = int(json.loads(line)["url"].rsplit(":", 1)[1])
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
        for request, reason in cases.items():
            status, body = exchange(port, request)
            assert (status, body["reason"]) == (400, reason), request[:60]
            assert token.decode() not in json.dumps(body)
        code, rest = terminate(process)
    assert code == 0
    written = line + rest
    assert "Error handling request" in written  # aiohttp's lines are there, redacted
    for secret in SECRETS.values():
        assert secret not in written
    assert all(entry.startswith("{") for entry in written.splitlines() if entry.strip())
