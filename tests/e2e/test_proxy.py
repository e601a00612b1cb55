"""End-to-end: the PROXY protocol.

A client (playing the load balancer) sends crafted v1 and v2 headers to
postern's proxy_protocol listeners from a trusted loopback address; the
backend must see the address the header gave (IMAP ID x-originating-ip, a
PROXY header of its own, POP3 XCLIENT), and postern's log must show it.
The same header from an untrusted address, a malformed header and a header
that never ends are refused.  limits.per_ip counts the header's address.
With HAProxy installed, one login goes through a real `send-proxy-v2`.

Backends are tiny threaded servers here (they parse the PROXY header
postern sends them), plus a HostileBackend for the IMAP ID fields.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import (free_ports, make_tempdir, make_test_ca,  # noqa: E402
                             remove_tempdir)
from fixtures.hostile import HostileBackend, wait_until  # noqa: E402
from fixtures.postern import Postern, binary  # noqa: E402
from lib import (V2_SIG, HAProxy as HAProxyProcess, Raw, haproxy_binary,  # noqa: E402
                 main, proxy_v1 as v1, proxy_v2 as v2)

TRUSTED = "127.0.0.1"      # the only address proxy.trusted_networks lists
UNTRUSTED = "127.0.0.3"    # loopback too, but not trusted
HEADER_TIMEOUT = 2
PER_IP = 2
PATIENCE = 15

P = None
ID_STORE = None            # HostileBackend: records the ID fields
BACKENDS = {}              # name -> TinyBackend
TMP = None
CERTS = None
IMAPS_PORT = None          # implicit TLS, proxy_protocol too


def read_proxy_header(sock: socket.socket) -> dict:
    """Read exactly one PROXY header (v1 or v2) from a backend socket."""
    first = _recv_exact(sock, 12)
    if first == V2_SIG:
        rest = _recv_exact(sock, 4)
        length = struct.unpack("!H", rest[2:4])[0]
        block = _recv_exact(sock, length)
        fam = rest[1] >> 4
        if rest[0] != 0x21 or (rest[1] & 0x0f) != 1 or fam not in (1, 2):
            raise ValueError("bad v2 header %r" % (first + rest + block))
        if fam == 1:
            src = socket.inet_ntoa(block[0:4])
            sport = struct.unpack("!H", block[8:10])[0]
        else:
            src = socket.inet_ntop(socket.AF_INET6, block[0:16])
            sport = struct.unpack("!H", block[32:34])[0]
        return {"version": 2, "src": src, "sport": sport}
    data = first
    while not data.endswith(b"\r\n"):
        data += _recv_exact(sock, 1)
        if len(data) > 107:
            raise ValueError("v1 header too long")
    parts = data[:-2].decode().split(" ")
    if parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ValueError("bad v1 header %r" % data)
    return {"version": 1, "src": parts[2], "sport": int(parts[4])}


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("closed after %r" % data)
        data += chunk
    return data


class TinyBackend:
    """A minimal IMAP or POP3 store that takes any login.  With `proxy` it
    first reads a PROXY header; with `xclient` its POP3 CAPA lists XCLIENT,
    with `xclient_greeting` its greeting offers it as Dovecot's does.
    Records, per connection, the header and every line received."""

    def __init__(self, proto: str, *, proxy: bool = False, xclient: bool = False,
                 xclient_greeting: bool = False, tls: ssl.SSLContext = None):
        self.proto, self.proxy, self.xclient, self.tls = proto, proxy, xclient, tls
        self.xclient_greeting = xclient_greeting
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.sessions = []
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            rec = {"header": None, "lines": []}
            self.sessions.append(rec)
            threading.Thread(target=self._serve, args=(conn, rec), daemon=True).start()

    def _serve(self, conn: socket.socket, rec: dict) -> None:
        conn.settimeout(PATIENCE)
        try:
            if self.proxy:
                rec["header"] = read_proxy_header(conn)
            if self.tls is not None:
                # The PROXY header came first, in clear; TLS after it.
                conn = self.tls.wrap_socket(conn, server_side=True)
            f = conn.makefile("rb")
            if self.proto == "imap":
                self._imap(conn, f, rec)
            else:
                self._pop3(conn, f, rec)
        except Exception as e:  # noqa: BLE001 -- recorded for the test
            self.errors.append(repr(e))
        finally:
            conn.close()

    def _imap(self, conn, f, rec) -> None:
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1] tiny ready\r\n")
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            rec["lines"].append(line)
            tag, _, rest = line.partition(" ")
            cmd = rest.split(" ")[0].upper()
            if cmd == "LOGOUT":
                conn.sendall(b"* BYE bye\r\n%s OK done\r\n" % tag.encode())
                return
            if cmd == "LOGIN":
                conn.sendall(b"%s OK [CAPABILITY IMAP4rev1] logged in\r\n" % tag.encode())
            elif cmd == "CAPABILITY":
                conn.sendall(b"* CAPABILITY IMAP4rev1\r\n%s OK done\r\n" % tag.encode())
            else:
                conn.sendall(b"%s OK done\r\n" % tag.encode())

    def _pop3(self, conn, f, rec) -> None:
        conn.sendall(b"+OK [XCLIENT] tiny ready\r\n" if self.xclient_greeting
                     else b"+OK tiny ready\r\n")
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            rec["lines"].append(line)
            cmd = line.split(" ")[0].upper()
            if cmd == "CAPA":
                caps = b"USER\r\nUIDL\r\n" + (b"XCLIENT\r\n" if self.xclient else b"")
                conn.sendall(b"+OK\r\n" + caps + b".\r\n")
            elif cmd == "XCLIENT" and not (self.xclient or self.xclient_greeting):
                conn.sendall(b"-ERR unknown command\r\n")
            elif cmd == "QUIT":
                conn.sendall(b"+OK bye\r\n")
                return
            else:
                conn.sendall(b"+OK\r\n")


def config(p: dict) -> str:
    b = BACKENDS
    return """
daemon = { threads = 2; log_level = "info"; drain = 3; control = "%s/ctl.sock"; };
limits = { per_ip = %d; };
timeouts = { login = 10; connect = 2; backend = 4; lookup = 2; proxy_header = %d; };
tls = { cert = "%s"; key = "%s"; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; proxy_protocol = true; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; proxy_protocol = true; },
           { protocol = "imap"; address = "127.0.0.1:%d"; tls = "implicit";
             proxy_protocol = true; } );
proxy = { trusted_networks = [ "%s/32", "::1/128" ]; };
directory = { type = "file"; file = { path = "%s"; }; };
# The fake stores record every connection and its PROXY header: no probes
# (v1 UNKNOWN / v2 LOCAL) among them.  Health checks have their own suite.
health = { active = false; };
backends = (
  { name = "idstore"; addresses = "127.0.0.1"; imap_port = %d; },
  { name = "ppv2"; addresses = "127.0.0.1"; imap_port = %d; proxy_protocol = "v2"; },
  { name = "ppv1"; addresses = "127.0.0.1"; pop3_port = %d; proxy_protocol = "v1"; },
  { name = "xc"; addresses = "127.0.0.1"; pop3_port = %d; xclient = true; },
  { name = "noxc"; addresses = "127.0.0.1"; pop3_port = %d; xclient = true; },
  { name = "xcg"; addresses = "127.0.0.1"; pop3_port = %d; xclient = true; },
  { name = "plain"; addresses = "127.0.0.1"; pop3_port = %d; },
  { name = "ppv2tls"; addresses = "127.0.0.1"; imap_port = %d; proxy_protocol = "v2";
    tls = "implicit"; ca_file = "%s"; }
);
""" % (p["dir"], PER_IP, HEADER_TIMEOUT, CERTS.cert, CERTS.key, p["imap"], p["pop3"], IMAPS_PORT,
       TRUSTED, p["popmap"], ID_STORE.port, b["ppv2"].port, b["ppv1"].port, b["xc"].port,
       b["noxc"].port, b["xcg"].port, b["plain"].port, b["ppv2tls"].port, CERTS.ca_cert)


POPMAP = """idcheck idstore
ppv2 ppv2
ppv1 ppv1
xc xc
noxc noxc
xcg xcg
plain plain
ppv2tls ppv2tls
"""


def setUpModule():
    global P, ID_STORE, TMP, CERTS, IMAPS_PORT
    TMP = make_tempdir("postern-proxy-")
    CERTS = make_test_ca(TMP, ["localhost", "127.0.0.1", "ppv2tls"])
    IMAPS_PORT, = free_ports(1)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(CERTS.cert, CERTS.key)
    ID_STORE = HostileBackend("imap").start()
    BACKENDS["ppv2"] = TinyBackend("imap", proxy=True)
    BACKENDS["ppv1"] = TinyBackend("pop3", proxy=True)
    BACKENDS["xc"] = TinyBackend("pop3", xclient=True)
    BACKENDS["noxc"] = TinyBackend("pop3")
    BACKENDS["xcg"] = TinyBackend("pop3", xclient_greeting=True)
    BACKENDS["plain"] = TinyBackend("pop3")
    BACKENDS["ppv2tls"] = TinyBackend("imap", proxy=True, tls=server_tls)
    P = Postern(config, popmap=POPMAP).start()


def tearDownModule():
    try:
        if P is not None:
            P.cleanup()
    finally:
        if ID_STORE is not None:
            ID_STORE.stop()
        for b in BACKENDS.values():
            b.stop()
        remove_tempdir(TMP)


def imap_through(header: bytes, user: str, *, source: str = TRUSTED) -> list:
    """Header, greeting, LOGIN, LOGOUT: every line received."""
    r = Raw(P.imap_port, timeout=PATIENCE, source=source)
    try:
        r.send(header)
        lines = [r.line()]
        r.send(b"a LOGIN %s pw\r\n" % user.encode())
        lines += r.until(b"a ")
        r.send(b"b LOGOUT\r\n")
        lines += r.until(b"b ")
        return lines
    finally:
        r.close()


def pop3_through(header: bytes, user: str) -> list:
    r = Raw(P.pop3_port, timeout=PATIENCE, source=TRUSTED)
    try:
        r.send(header)
        lines = [r.line()]
        r.send(b"USER %s\r\n" % user.encode())
        lines.append(r.line())
        r.send(b"PASS pw\r\n")
        lines.append(r.line())
        r.send(b"QUIT\r\n")
        lines.append(r.line())
        return lines
    finally:
        r.close()


def settle(predicate, timeout: float = 5) -> None:
    """Wait for predicate (a log line, a count); fail if it never holds."""
    if not wait_until(predicate, timeout=timeout):
        raise AssertionError("not within %ss: %s" % (timeout, predicate.__code__.co_names))


def id_field(session, name: str):
    return dict(session.id_fields or []).get(name)


class ProxyIn(unittest.TestCase):
    def test_v1_address_reaches_backend_and_log(self):
        lines = imap_through(v1("203.0.113.7", 40001), "idcheck")
        self.assertTrue(lines[0].startswith(b"* OK"), lines)
        self.assertTrue(lines[-3].startswith(b"a OK") or
                        any(l.startswith(b"a OK") for l in lines), lines)
        s = ID_STORE.sessions[-1]
        self.assertEqual(id_field(s, "x-originating-ip"), "203.0.113.7")
        self.assertEqual(id_field(s, "x-originating-port"), "40001")
        self.assertEqual(id_field(s, "x-connected-ip"), "198.51.100.1")
        settle(lambda: "login ok client=203.0.113.7:40001" in P.log(), timeout=5)
        self.assertIn("proxied connection client=203.0.113.7:40001 via=127.0.0.1:", P.log())

    def test_v2_ipv6_with_tlv_and_pipelined_command(self):
        # The header and the first command in one write: nothing is lost.
        r = Raw(P.imap_port, timeout=PATIENCE, source=TRUSTED)
        try:
            r.send(v2("2001:db8::7", 40002, tlv=b"\x02\x00\x03abc") + b"c CAPABILITY\r\n")
            self.assertTrue(r.line().startswith(b"* OK"))
            self.assertTrue(r.until(b"c ")[-1].startswith(b"c OK"))
            r.send(b"a LOGIN idcheck pw\r\n")
            self.assertTrue(r.until(b"a ")[-1].startswith(b"a OK"))
        finally:
            r.close()
        s = ID_STORE.sessions[-1]
        self.assertEqual(id_field(s, "x-originating-ip"), "2001:db8::7")
        self.assertEqual(id_field(s, "x-originating-port"), "40002")
        settle(lambda: "login ok client=[2001:db8::7]:40002" in P.log(), timeout=5)

    def test_ctl_sessions_shows_header_address(self):
        r = Raw(P.imap_port, timeout=PATIENCE, source=TRUSTED)
        try:
            r.send(v1("203.0.113.61", 40061))
            self.assertTrue(r.line().startswith(b"* OK"))
            r.send(b"a LOGIN idcheck pw\r\n")
            self.assertTrue(r.until(b"a ")[-1].startswith(b"a OK"))
            out = subprocess.run([binary(), "ctl", "-c", P.conf_path, "sessions"],
                                 capture_output=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn(b"client=203.0.113.61:40061", out.stdout)
        finally:
            r.close()

    def test_v2_local_keeps_peer(self):
        local = V2_SIG + bytes([0x20, 0x00, 0x00, 0x00])
        lines = imap_through(local, "idcheck")
        self.assertTrue(any(l.startswith(b"a OK") for l in lines), lines)
        self.assertEqual(id_field(ID_STORE.sessions[-1], "x-originating-ip"), "127.0.0.1")

    def test_untrusted_source_refused(self):
        r = Raw(P.imap_port, timeout=PATIENCE, source=UNTRUSTED)
        try:
            r.send(v1("203.0.113.8", 40003))
            self.assertTrue(r.closed(PATIENCE))
            self.assertEqual(r.buf, b"")        # not even a greeting
        finally:
            r.close()
        settle(lambda: "%s:" % UNTRUSTED in P.log(), timeout=5)
        self.assertIn("is not in proxy.trusted_networks", P.log())
        self.assertNotIn("203.0.113.8", P.log())

    def test_malformed_refused(self):
        for bad in (b"PROXY TCP4 203.0.113.9 nonsense 1 2\r\n",
                    b"a LOGIN idcheck pw\r\n",
                    b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n",
                    V2_SIG + b"\x21\x41\x00\x0c" + b"\x00" * 12,
                    V2_SIG + b"\x21\x11\xff\xff"):
            with self.subTest(bad=bad[:30]):
                r = Raw(P.imap_port, timeout=PATIENCE, source=TRUSTED)
                try:
                    r.send(bad)
                    self.assertTrue(r.closed(PATIENCE))
                    self.assertEqual(r.buf, b"")
                finally:
                    r.close()
        settle(lambda: P.log().count('outcome="bad PROXY header"') >= 5, timeout=5)

    def test_slow_header_hits_deadline(self):
        r = Raw(P.pop3_port, timeout=PATIENCE, source=TRUSTED)
        try:
            start = time.monotonic()
            r.send(b"PROXY TCP4 203.0.")
            self.assertTrue(r.closed(PATIENCE))
            took = time.monotonic() - start
            self.assertEqual(r.buf, b"")
            self.assertGreater(took, HEADER_TIMEOUT - 0.5)
            self.assertLess(took, HEADER_TIMEOUT + 3)
        finally:
            r.close()
        settle(lambda: 'outcome="PROXY header timeout"' in P.log(), timeout=5)

    def test_per_ip_counts_header_address(self):
        held = []
        try:
            for i in range(PER_IP):
                r = Raw(P.imap_port, timeout=PATIENCE, source=TRUSTED)
                r.send(v1("203.0.113.50", 41000 + i))
                self.assertTrue(r.line().startswith(b"* OK"))
                held.append(r)
            r = Raw(P.imap_port, timeout=PATIENCE, source=TRUSTED)
            r.send(v1("203.0.113.50", 41100))
            self.assertTrue(r.line().startswith(b"* BYE Too many connections"))
            self.assertTrue(r.closed(PATIENCE))
            r.close()
            # Another client behind the same balancer is not affected.
            r = Raw(P.imap_port, timeout=PATIENCE, source=TRUSTED)
            r.send(v1("203.0.113.51", 41101))
            self.assertTrue(r.line().startswith(b"* OK"))
            held.append(r)
        finally:
            for r in held:
                r.close()
        # Released on close: the first address may come back.
        def again():
            r = Raw(P.imap_port, timeout=PATIENCE, source=TRUSTED)
            try:
                r.send(v1("203.0.113.50", 41200))
                return r.line().startswith(b"* OK")
            finally:
                r.close()
        settle(again, timeout=5)


class ProxyTls(unittest.TestCase):
    """Implicit TLS: the PROXY header comes first on the TCP stream, both
    towards postern and from postern towards the backend."""

    def test_header_then_tls_both_ways(self):
        ctx = ssl.create_default_context(cafile=CERTS.ca_cert)
        raw = socket.create_connection(("127.0.0.1", IMAPS_PORT), timeout=PATIENCE,
                                       source_address=(TRUSTED, 0))
        # Header and ClientHello back to back: postern must read no byte
        # of the handshake as part of the header.
        raw.sendall(v2("203.0.113.41", 40041, dport=993))
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            f = t.makefile("rb")
            self.assertTrue(f.readline().startswith(b"* OK"))
            t.sendall(b"a LOGIN ppv2tls pw\r\n")
            line = f.readline()
            while line.startswith(b"* "):
                line = f.readline()
            self.assertTrue(line.startswith(b"a OK"), (line, [
                l for l in P.log().splitlines() if "203.0.113.41" in l]))
            t.sendall(b"b LOGOUT\r\n")
        b = BACKENDS["ppv2tls"]
        self.assertEqual(b.errors, [])
        self.assertEqual(b.sessions[-1]["header"],
                         {"version": 2, "src": "203.0.113.41", "sport": 40041})
        settle(lambda: "login ok client=203.0.113.41:40041" in P.log())


class ProxyOut(unittest.TestCase):
    def test_backend_gets_v2_header_with_client_address(self):
        lines = imap_through(v1("203.0.113.21", 40021), "ppv2")
        self.assertTrue(any(l.startswith(b"a OK") for l in lines), lines)
        b = BACKENDS["ppv2"]
        self.assertEqual(b.errors, [])
        self.assertEqual(b.sessions[-1]["header"],
                         {"version": 2, "src": "203.0.113.21", "sport": 40021})
        self.assertTrue(b.sessions[-1]["lines"][0].endswith("LOGIN ppv2 pw") or
                        any("LOGIN" in l for l in b.sessions[-1]["lines"]))

    def test_backend_gets_v1_header_over_pop3(self):
        lines = pop3_through(v2("2001:db8::22", 40022, dport=110), "ppv1")
        self.assertTrue(lines[2].startswith(b"+OK"), lines)
        b = BACKENDS["ppv1"]
        self.assertEqual(b.errors, [])
        self.assertEqual(b.sessions[-1]["header"],
                         {"version": 1, "src": "2001:db8::22", "sport": 40022})


class Xclient(unittest.TestCase):
    def test_xclient_sent_when_announced(self):
        lines = pop3_through(v1("203.0.113.31", 40031, dport=110), "xc")
        self.assertTrue(lines[2].startswith(b"+OK"), lines)
        got = BACKENDS["xc"].sessions[-1]["lines"]
        self.assertEqual(got[0], "CAPA")
        self.assertRegex(got[1], r"^XCLIENT ADDR=203\.0\.113\.31 PORT=40031 SESSION=[0-9a-f]{16}$")
        self.assertEqual(got[2], "USER xc")

    def test_xclient_offered_in_the_greeting_needs_no_capa(self):
        # Dovecot: "+OK [XCLIENT] ..." for trusted proxies; its CAPA does
        # not list XCLIENT.
        lines = pop3_through(v1("203.0.113.34", 40034, dport=110), "xcg")
        self.assertTrue(lines[2].startswith(b"+OK"), lines)
        got = BACKENDS["xcg"].sessions[-1]["lines"]
        self.assertRegex(got[0], r"^XCLIENT ADDR=203\.0\.113\.34 PORT=40034 SESSION=[0-9a-f]{16}$")
        self.assertEqual(got[1], "USER xcg")

    def test_xclient_not_sent_when_not_announced(self):
        lines = pop3_through(v1("203.0.113.32", 40032, dport=110), "noxc")
        self.assertTrue(lines[2].startswith(b"+OK"), lines)
        got = BACKENDS["noxc"].sessions[-1]["lines"]
        self.assertEqual(got[0], "CAPA")
        self.assertEqual(got[1], "USER noxc")
        self.assertFalse(any(l.startswith("XCLIENT") for l in got), got)

    def test_no_capa_when_not_configured(self):
        lines = pop3_through(v1("203.0.113.33", 40033, dport=110), "plain")
        self.assertTrue(lines[2].startswith(b"+OK"), lines)
        got = BACKENDS["plain"].sessions[-1]["lines"]
        self.assertEqual(got[0], "USER plain")


class HAProxy(unittest.TestCase):
    def test_send_proxy_v2(self):
        if haproxy_binary() is None:
            self.skipTest("haproxy is not installed (apt-get install haproxy)")
        port, = free_ports(1)
        proc = HAProxyProcess(TMP, """global
    log stderr format raw local0 err
    stats socket %%(sock)s mode 600 level admin
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen imap
    bind 127.0.0.1:%d
    server postern 127.0.0.1:%d send-proxy-v2
""" % (port, P.imap_port))
        try:
            proc.start("127.0.0.1", port)
            r = Raw(port, timeout=PATIENCE, source="127.0.0.5")
            try:
                self.assertTrue(r.line().startswith(b"* OK"))
                r.send(b"a LOGIN idcheck pw\r\n")
                self.assertTrue(r.until(b"a ")[-1].startswith(b"a OK"))
                local_port = r.sock.getsockname()[1]
            finally:
                r.close()
            s = ID_STORE.sessions[-1]
            self.assertEqual(id_field(s, "x-originating-ip"), "127.0.0.5")
            self.assertEqual(id_field(s, "x-originating-port"), str(local_port))
            settle(lambda: "login ok client=127.0.0.5:%d" % local_port in P.log(),
                   timeout=5)
        finally:
            proc.stop()


class Zz(unittest.TestCase):
    """Last: postern stops cleanly with no sanitizer report."""

    def test_no_sanitizer_report(self):
        rc = P.stop()
        self.assertEqual(P.leaks(), "")
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    sys.exit(main(__name__))
