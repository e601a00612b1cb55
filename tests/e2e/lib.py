"""Small helpers shared by the end-to-end scenarios: a raw line client,
PROXY protocol headers, an HAProxy in front of postern, and a test runner
that ends with the 'N passed, N failed' line."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import unittest

from fixtures import postern as postern_fixture
from fixtures.common import ProcessGroup, wait_port

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v1(src: str, sport: int, dst: str = "198.51.100.1", dport: int = 143) -> bytes:
    """A PROXY protocol v1 header for a TCP client src:sport."""
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def proxy_v2(src: str, sport: int, dst: str = None, dport: int = 143, *,
             tlv: bytes = b"", command: int = 0x21) -> bytes:
    """A PROXY protocol v2 header (PROXY command, TCP over IPv4 or IPv6)."""
    if ":" in src:
        dst = dst or "2001:db8::1"
        block = (socket.inet_pton(socket.AF_INET6, src) +
                 socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport))
        fam = 0x21
    else:
        dst = dst or "198.51.100.1"
        block = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
        fam = 0x11
    block += tlv
    return V2_SIG + bytes([command, fam]) + struct.pack("!H", len(block)) + block


def haproxy_binary():
    """HAProxy's path, or None when it is not installed."""
    path = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return path if os.access(path, os.X_OK) else None


class HAProxy:
    """HAProxy in the foreground (-db) with a config text written to
    DIR/haproxy.cfg and an admin socket at DIR/haproxy.sock (the config
    must name it: ``stats socket %(sock)s``, filled in here).  Its output
    goes to DIR/haproxy.log.  ``start(host, port)`` waits until host:port
    answers; ``servers()`` reads each server's status from the socket."""

    def __init__(self, directory: str, config: str):
        self.dir = directory
        self.sock_path = os.path.join(directory, "haproxy.sock")
        self.cfg_path = os.path.join(directory, "haproxy.cfg")
        self.log_path = os.path.join(directory, "haproxy.log")
        self.config = config % {"sock": self.sock_path}
        self.group = ProcessGroup("haproxy")
        self.proc = None
        self._log = None

    def start(self, host: str, port: int) -> "HAProxy":
        with open(self.cfg_path, "w", encoding="utf-8") as f:
            f.write(self.config)
        self._log = open(self.log_path, "ab")
        self.proc = self.group.spawn([haproxy_binary(), "-db", "-f", self.cfg_path],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        wait_port(host, port, 10, proc=self.proc)
        # The admin socket may come up after the frontends.
        deadline = time.monotonic() + 10
        while True:
            try:
                self.command("show info")
                return self
            except (ConnectionRefusedError, FileNotFoundError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def command(self, line: str) -> str:
        """One command on the admin socket; its whole answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.sock_path)
            s.sendall(line.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out.decode("utf-8", "replace")
                out += chunk

    def servers(self) -> dict:
        """{(proxy, server): status} from "show stat" ("UP", "DOWN", ...)."""
        lines = self.command("show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            return {}
        cols = lines[0][2:].split(",")
        got = {}
        for l in lines[1:]:
            row = dict(zip(cols, l.split(",")))
            if row.get("svname") not in (None, "FRONTEND", "BACKEND"):
                got[(row["pxname"], row["svname"])] = row["status"].split(" ")[0]
        return got

    def stop(self) -> None:
        self.group.stop()
        if self._log is not None:
            self._log.close()



class Raw:
    """A plain socket speaking lines, for what client libraries won't send."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10,
                 source: str = None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; got %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def until(self, prefix: bytes) -> list:
        """Lines up to and including the first that starts with prefix."""
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(prefix):
                return lines

    def closed(self, timeout: float = 10) -> bool:
        """True if the peer closes within timeout (data before EOF is read)."""
        self.sock.settimeout(timeout)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False

    def close(self) -> None:
        self.sock.close()


def main(module_name: str) -> int:
    # Test names on the command line (Class or Class.test_name) run alone.
    module = sys.modules[module_name]
    if len(sys.argv) > 1:
        suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:], module)
    else:
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    # A test with failing subtests is one failed test.
    failed = len({t.id() for t, _ in result.failures + result.errors})
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if postern_fixture.SANITIZER_REPORTS:
        print("FAIL: sanitizer reports from postern processes of this run:")
        print("\n".join(postern_fixture.SANITIZER_REPORTS))
        return 1
    if result.testsRun == skipped and skipped > 0:
        return 77
    return 0 if failed == 0 else 1
