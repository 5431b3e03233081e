"""Prediction servers for tests: `bincls serve` in its own process, or an app under uvicorn in this one
(for limits too small or slow to set from the command line), and raw HTTP over a socket for what
clients like httpx hide (100 Continue, a closed connection, a body sent a byte at a time)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m bincls serve SOURCE` in its own process, up when /health answers."""

    def __init__(self, source: Path, log: Path, *args: str, env: dict | None = None):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.log = log
        cmd = [sys.executable, "-m", "bincls", "serve", str(source), "--port", str(port), "--no-access-log"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        with open(log, "w") as out:  # a file, not a pipe: a chatty server must never block on a full pipe
            self.proc = subprocess.Popen([*cmd, *args], cwd=ROOT, stdout=out, stderr=out, env=env)
        deadline = time.time() + 180  # a run folder is exported first
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the server did not come up: {log.read_text()[-3000:]}")

    def peak_rss(self) -> int:
        """The most memory the server process has held (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def running(app):
    """`app` under uvicorn on a free localhost port, in a thread of this process; yields its port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def multipart(items: list[tuple[str, bytes]], boundary: str = "bincls-test-boundary") -> tuple[bytes, str]:
    """A multipart form with each (name, bytes) in the `files` field; (body, content type)."""
    parts = []
    for name, data in items:
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
        parts.append(head + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Raw:
    """One HTTP/1.1 connection spoken by hand."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def head(self, method: str, path: str, headers: dict[str, str]) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response (status, headers, body); 1xx ones included, as they come."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before a response: {data!r}")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers.get("content-length", 0))
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(status_line.split()[1]), headers, rest[:length]

    def closed_by_server(self, within: float = 5.0) -> bool:
        """True when the server closes the connection (EOF or reset) within `within` seconds."""
        self.sock.settimeout(within)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()
