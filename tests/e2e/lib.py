"""Small helpers shared by the end-to-end scenarios: a raw line client and
a test runner that ends with the 'N passed, N failed' line."""

from __future__ import annotations

import socket
import sys
import time
import unittest


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
    if result.testsRun == skipped and skipped > 0:
        return 77
    return 0 if failed == 0 else 1
