"""End-to-end: the Prometheus metrics endpoint (metrics.listen).

A postern in front of a real Dovecot store, scraped with curl.  Logins
that succeed and fail over IMAP and POP3 must move the counters they
claim to count; the exposition must parse as the text format; hostile
scrapers (mute, trickling, oversize, too many, resetting) must be closed
at their bound without disturbing mail clients or later scrapes.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import (free_port, free_ports, loopback,  # noqa: E402
                             make_tempdir, make_test_ca, remove_tempdir)
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.hostile import FakeLdap, wait_until  # noqa: E402
from fixtures.postern import Postern, binary as P_BINARY  # noqa: E402
from lib import Raw, main  # noqa: E402

USERS = {"alice": "alice pw", "bob": "bob pw"}
STORE = None
P = None
PATIENCE = 20
# src/metrics.h
CLIENTS_MAX = 8
REQUEST_MAX = 4096
READ_MS = 5000

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def config(metrics_addr: str, extra: str = "", *, directory: str = None,
           limits: str = "", listen: str = "", daemon: str = ""):
    def render(p: dict) -> str:
        d = directory or 'type = "file"; file = { path = "%s"; };' % p["popmap"]
        return """
daemon = { threads = 2; log_level = "info"; drain = 3; %s };
limits = { auth_failures = 3; throttle = false; %s };
timeouts = { login = 30; connect = 3; backend = 5; lookup = 3; idle = 60; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } %s );
auth = { failure_delay = 0; };
directory = { %s };
backend = { imap_port = %d; pop3_port = %d; };
metrics = { listen = "%s"; };
%s
""" % (daemon, limits, p["imap"], p["pop3"], listen, d, STORE.imap_port,
            STORE.pop3_port, metrics_addr, extra)
    return render


def popmap() -> str:
    # ghost's store refuses connections: a backend connect failure.
    return "".join("%s %s\n" % (u, STORE.host) for u in USERS) + \
        "ghost %s:1\n" % loopback(9)


def setUpModule():
    global STORE, P
    imap_port, pop3_port = free_ports(2)
    STORE = Dovecot("metrics", USERS, host=loopback(1), imap_port=imap_port,
                    pop3_port=pop3_port).start()
    host = loopback(3)
    port = free_port(host)
    P = Postern(config("%s:%d" % (host, port)), popmap=popmap())
    P.metrics = (host, port)
    P.start()


def tearDownModule():
    if P is not None:
        P.cleanup()
    if STORE is not None:
        stop_all(STORE)


def curl(path: str = "/metrics", *args, q: Postern = None) -> subprocess.CompletedProcess:
    host, port = (q or P).metrics
    r = subprocess.run(["curl", "-sS", "--max-time", "10", *args,
                        "http://%s:%d%s" % (host, port, path)],
                       capture_output=True, timeout=PATIENCE)
    # Bytes as sent: text mode would turn CRLF into LF.
    r.stdout = r.stdout.decode("utf-8")
    r.stderr = r.stderr.decode("utf-8", "replace")
    return r


def parse(text: str) -> dict:
    """{(name, frozenset(labels)): value}; asserts the text format."""
    types, out = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, "two TYPE lines for " + name
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample: %r" % line
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        family = re.sub(r"_(bucket|sum|count)$", "", name) \
            if re.sub(r"_(bucket|sum|count)$", "", name) in types else name
        assert family in types, "no TYPE before " + name
        if types[family] == "counter":
            assert name.endswith("_total"), name
        pairs = LABEL.findall(labels)
        assert "".join('%s="%s"%s' % p for p in pairs) == labels, line
        key = (name, frozenset((k, v) for k, v, _ in pairs))
        assert key not in out, "repeated series " + line
        out[key] = float(value)
    return out


def scrape(q: Postern = None) -> dict:
    r = curl(q=q)
    assert r.returncode == 0, r.stderr
    return parse(r.stdout)


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def imap_login(user: str, password: str, port: int = None) -> Raw:
    r = Raw(port or P.imap_port, timeout=PATIENCE)
    assert r.line().startswith(b"* OK")
    r.send(b'a LOGIN %s "%s"\r\n' % (user.encode(), password.encode()))
    r.reply = r.until(b"a ")[-1]
    return r


def pop3_login(user: str, password: str) -> Raw:
    r = Raw(P.pop3_port, timeout=PATIENCE)
    assert r.line().startswith(b"+OK")
    r.send(b"USER %s\r\n" % user.encode())
    r.line()
    r.send(b"PASS %s\r\n" % password.encode())
    r.reply = r.line()
    return r


def rst_close(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def connect_metrics() -> socket.socket:
    s = socket.create_connection(P.metrics, timeout=PATIENCE)
    return s


def read_all(s: socket.socket, timeout: float = PATIENCE) -> bytes:
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


class Counters(unittest.TestCase):
    """Logins, sessions, bytes and lookups move the counters."""

    def test_exposition_parses(self):
        r = curl("/metrics", "-D", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        head, _, body = r.stdout.partition("\r\n\r\n")
        self.assertTrue(head.startswith("HTTP/1.0 200 OK"), head)
        self.assertIn("Content-Type: text/plain; version=0.0.4; charset=utf-8", head)
        m = re.search(r"Content-Length: (\d+)", head)
        self.assertEqual(int(m.group(1)), len(body.encode()))
        s = parse(body)
        self.assertEqual(value(s, "postern_workers"), 2)
        self.assertEqual(value(s, "postern_config_generation"), 1)
        version = subprocess.run([P_BINARY(), "--version"], capture_output=True,
                                 text=True).stdout.splitlines()[0].split()[-1]
        self.assertEqual(value(s, "postern_build_info", version=version), 1)
        self.assertGreater(value(s, "postern_start_time_seconds"), 1.7e9)
        # The histogram: cumulative buckets, +Inf equal to the count.
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in s.items()
                         if k[0] == "postern_directory_lookup_seconds_bucket")
        self.assertEqual(buckets[-1][0], float("inf"))
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
        self.assertEqual(buckets[-1][1],
                         value(s, "postern_directory_lookup_seconds_count"))

    def test_http_versions_and_head(self):
        self.assertEqual(curl("/metrics", "--http1.0").returncode, 0)
        r = curl("/metrics", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}")
        self.assertEqual(r.stdout, "200")
        r = curl("/metrics", "-I")
        self.assertIn("200 OK", r.stdout)
        self.assertIn("Content-Length:", r.stdout)
        r = curl("/metrics?name[]=x", "-g", "-o", "/dev/null", "-w", "%{http_code}")
        self.assertEqual(r.stdout, "200")

    def test_other_paths_and_methods(self):
        for path, args, code in (("/", (), "404"), ("/metricsx", (), "404"),
                                 ("/metrics", ("-X", "POST", "-d", "x"), "405"),
                                 ("/metrics", ("-X", "DELETE"), "405")):
            r = curl(path, "-o", "/dev/null", "-w", "%{http_code}", *args)
            self.assertEqual(r.stdout, code, (path, args))
        r = curl("/metrics", "-X", "PUT", "-D", "-", "-o", "/dev/null")
        self.assertIn("Allow: GET, HEAD", r.stdout)
        s = scrape()
        self.assertGreaterEqual(value(s, "postern_metrics_requests_total", code="404"), 2)
        self.assertGreaterEqual(value(s, "postern_metrics_requests_total", code="405"), 3)

    def test_logins_move_the_counters(self):
        before = scrape()
        ok = imap_login("alice", USERS["alice"])
        self.assertTrue(ok.reply.startswith(b"a OK"), ok.reply)
        ok.send(b"b NOOP\r\n")
        ok.until(b"b ")
        bad = imap_login("alice", "wrong")
        self.assertTrue(bad.reply.startswith(b"a NO"), bad.reply)
        bad.close()
        nobody = imap_login("nobody", "x")
        self.assertIn(b"AUTHENTICATIONFAILED", nobody.reply)
        nobody.close()
        ghost = imap_login("ghost", "x")
        self.assertIn(b"UNAVAILABLE", ghost.reply)
        ghost.close()
        pok = pop3_login("bob", USERS["bob"])
        self.assertTrue(pok.reply.startswith(b"+OK"), pok.reply)
        pbad = pop3_login("bob", "wrong")
        self.assertTrue(pbad.reply.startswith(b"-ERR"), pbad.reply)
        pbad.close()
        pnobody = pop3_login("nobody", "x")
        self.assertTrue(pnobody.reply.startswith(b"-ERR [AUTH]"), pnobody.reply)
        pnobody.close()

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        after = scrape()
        L = "postern_logins_total"
        self.assertEqual(moved(L, proto="imap", outcome="ok"), 1)
        self.assertEqual(moved(L, proto="imap", outcome="auth_failed"), 1)
        self.assertEqual(moved(L, proto="imap", outcome="unknown_user"), 1)
        self.assertEqual(moved(L, proto="imap", outcome="backend_unreachable"), 1)
        self.assertEqual(moved(L, proto="pop3", outcome="ok"), 1)
        self.assertEqual(moved(L, proto="pop3", outcome="auth_failed"), 1)
        self.assertEqual(moved(L, proto="pop3", outcome="unknown_user"), 1)
        self.assertEqual(moved("postern_backend_connect_failures_total",
                               backend=loopback(9)), 1)
        self.assertEqual(moved("postern_connections_accepted_total", proto="imap"), 4)
        self.assertEqual(moved("postern_connections_accepted_total", proto="pop3"), 3)
        self.assertEqual(moved("postern_directory_lookup_seconds_count"), 7)
        self.assertGreater(moved("postern_relayed_bytes_total",
                                 direction="client_to_backend"), 0)
        self.assertGreater(moved("postern_relayed_bytes_total",
                                 direction="backend_to_client"), 0)
        # ghost's store refused: passive health tracks its address.
        failed = {dict(k[1])["address"]: v for k, v in after.items()
                  if k[0] == "postern_backend_health_failures_total"}
        self.assertTrue(any(a.startswith(loopback(9) + ":") and v >= 1
                            for a, v in failed.items()), failed)
        states = [dict(k[1]) for k, v in after.items()
                  if k[0] == "postern_backend_health" and v == 1]
        self.assertTrue(any(st["address"].startswith(loopback(9) + ":") and
                            st["state"] in ("suspect", "down")
                            for st in states), states)
        # The two held sessions are relayed, to the store.
        self.assertEqual(value(after, "postern_sessions", proto="imap", state="relay"), 1)
        self.assertEqual(value(after, "postern_sessions", proto="pop3", state="relay"), 1)
        self.assertEqual(value(after, "postern_backend_sessions", backend=STORE.host), 2)
        ok.close()
        pok.close()
        self.assertTrue(wait_until(lambda: value(
            scrape(), "postern_backend_sessions", backend=STORE.host) == 0, 10))


class HostileScrapers(unittest.TestCase):
    """Every bound of the responder, hit; mail clients never notice."""

    def test_mute_scraper_is_closed(self):
        before = value(scrape(), "postern_metrics_timeouts_total")
        s = connect_metrics()
        t0 = time.monotonic()
        self.assertEqual(read_all(s), b"")
        took = time.monotonic() - t0
        s.close()
        self.assertGreater(took, READ_MS / 1000 - 1)
        self.assertLess(took, READ_MS / 1000 + 5)
        self.assertEqual(value(scrape(), "postern_metrics_timeouts_total"), before + 1)

    def test_trickling_scraper_is_closed_at_the_same_deadline(self):
        s = connect_metrics()
        t0 = time.monotonic()
        closed = False
        for ch in b"GET /metrics HTTP/1.0\r\nX-Slow: " + b"a" * 100:
            try:
                s.send(bytes([ch]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            s.settimeout(0.25)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            if time.monotonic() - t0 > READ_MS / 1000 + 5:
                break
        s.close()
        self.assertTrue(closed)
        self.assertLess(time.monotonic() - t0, READ_MS / 1000 + 5)

    def test_oversize_request(self):
        s = connect_metrics()
        try:
            s.sendall(b"GET /metrics HTTP/1.0\r\nX-Big: " + b"a" * REQUEST_MAX)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = read_all(s)
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.0 400 Bad Request\r\n"), reply)
        # Just under the bound is served.
        s = connect_metrics()
        head = b"GET /metrics HTTP/1.0\r\nX-Big: "
        s.sendall(head + b"a" * (REQUEST_MAX - len(head) - 4) + b"\r\n\r\n")
        reply = read_all(s)
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.0 200 OK\r\n"), reply[:100])

    def test_malformed_request_lines(self):
        for req in (b"GET /metrics\r\n\r\n", b"\r\n\r\n", b"GET  /metrics HTTP/1.0\r\n\r\n",
                    b"GET /metrics SMTP/1.0\r\n\r\n"):
            s = connect_metrics()
            s.sendall(req)
            reply = read_all(s)
            s.close()
            self.assertTrue(reply.startswith(b"HTTP/1.0 400 "), (req, reply))

    def test_too_many_scrapers(self):
        held = [connect_metrics() for _ in range(CLIENTS_MAX)]
        try:
            # Let the metrics thread accept them all.
            time.sleep(0.5)
            extra = connect_metrics()
            reply = read_all(extra)
            extra.close()
            self.assertTrue(reply.startswith(b"HTTP/1.0 503 "), reply)
            # Mail is served meanwhile.
            r = imap_login("alice", USERS["alice"])
            self.assertTrue(r.reply.startswith(b"a OK"), r.reply)
            r.close()
        finally:
            for s in held:
                s.close()
        self.assertTrue(wait_until(lambda: curl().returncode == 0, 10))
        self.assertGreaterEqual(value(scrape(), "postern_metrics_requests_total",
                                      code="503"), 1)

    def test_resetting_scrapers(self):
        for _ in range(20):
            s = connect_metrics()
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            rst_close(s)
        for _ in range(5):
            rst_close(connect_metrics())
        self.assertEqual(curl().returncode, 0)

    def test_many_scrapes_in_a_row(self):
        for _ in range(30):
            self.assertEqual(curl().returncode, 0)


def metrics_postern(more_popmap: str = "", **kw) -> Postern:
    host = loopback(3)
    port = free_port(host)
    q = Postern(config("%s:%d" % (host, port), **kw), popmap=popmap() + more_popmap)
    q.metrics = (host, port)
    return q


def stop_checked(test: unittest.TestCase, q: Postern) -> None:
    q.stop()
    leaks = q.leaks()
    q.cleanup()
    test.assertEqual(leaks, "")


class Directory(unittest.TestCase):
    """An LDAP directory with a route cache: misses, hits, negative hits,
    stale routes once the directory is gone, its queues, the latency."""

    def test_route_cache_results(self):
        ldap = FakeLdap("ok", {"alice": {"mailhost": [STORE.host],
                                         "username": ["alice"]}}).start()
        directory = ('type = "ldap"; cache = { ttl = 1; negative_ttl = 30; '
                     'serve_stale = true; };\n  ldap = { uri = "%s"; '
                     'base = "dc=example,dc=net"; timeout = 2; queue = 64; '
                     'bind_dn = "cn=proxy,dc=example,dc=net"; '
                     'bind_password = "secret"; };' % ldap.uri)
        q = metrics_postern(directory=directory).start()
        try:
            s = scrape(q)
            self.assertEqual(value(s, "postern_directory_queue_capacity"), 64)
            self.assertIn(("postern_directory_queue_length",
                           frozenset({("queue", "search")})), s)
            self.assertTrue(wait_until(lambda: value(
                scrape(q), "postern_directory_connections_up") >= 1, 10))

            def login(user, pw):
                r = imap_login(user, pw, q.imap_port)
                r.close()
                return r.reply

            self.assertTrue(login("alice", USERS["alice"]).startswith(b"a OK"))
            self.assertTrue(login("alice", USERS["alice"]).startswith(b"a OK"))
            self.assertIn(b"AUTHENTICATIONFAILED", login("nobody", "x"))
            self.assertIn(b"AUTHENTICATIONFAILED", login("nobody", "x"))
            s = scrape(q)
            R = "postern_route_cache_lookups_total"
            self.assertEqual(value(s, R, result="miss"), 2)
            self.assertEqual(value(s, R, result="hit"), 1)
            self.assertEqual(value(s, R, result="negative_hit"), 1)
            self.assertEqual(value(s, R, result="stale"), 0)
            self.assertEqual(value(s, "postern_route_cache_entries"), 2)
            self.assertEqual(value(s, "postern_directory_lookup_seconds_count"), 4)
            # The directory goes away; the expired route still serves.
            ldap.stop()
            time.sleep(1.5)
            self.assertTrue(login("alice", USERS["alice"]).startswith(b"a OK"))
            s = scrape(q)
            self.assertEqual(value(s, R, result="stale"), 1)
            self.assertEqual(value(s, R, result="miss"), 2)
            self.assertEqual(value(s, "postern_directory_lookup_seconds_count"), 5)
        finally:
            ldap.stop()
            stop_checked(self, q)


class Refusals(unittest.TestCase):
    """Refused connections by reason, TLS handshakes by side and result."""

    def test_per_ip_and_tls(self):
        tmp = make_tempdir("postern-metrics-ca-")
        certs = make_test_ca(tmp, ["localhost", "127.0.0.1", "tls.example.net"])
        tls_port = free_port()
        store = Dovecot("metrics-tls", {"carol": "carol pw"}, host=loopback(4),
                        ssl={"cert": certs.cert, "key": certs.key,
                             "mode": "optional"}).start()
        backends = "".join(
            '{ name = "%s"; addresses = "%s"; tls = "starttls"; ca_file = "%s"; '
            'imap_port = %d; pop3_port = %d; },' % (name, loopback(4), certs.ca_cert,
                                                    store.imap_port, store.pop3_port)
            for name in ("tls.example.net", "wrong.example.net"))
        q = metrics_postern(
            "carol tls.example.net\nwrong wrong.example.net\n",
            limits="per_ip = 1;",
            listen=', { protocol = "imap"; address = "127.0.0.1:%d"; '
                   'tls = "implicit"; }' % tls_port,
            extra='tls = { cert = "%s"; key = "%s"; };\nbackends = ( %s );'
                  % (certs.cert, certs.key, backends.rstrip(",")))
        q.start()
        try:
            # The fixture's own probes of the ports must be gone first.
            self.assertTrue(wait_until(lambda: value(
                scrape(q), "postern_connections") == 0, 10))
            before = scrape(q)
            held = Raw(q.imap_port, timeout=PATIENCE)
            self.assertTrue(held.line().startswith(b"* OK"))
            extra = Raw(q.imap_port, timeout=PATIENCE)
            self.assertIn(b"Too many connections", extra.line())
            extra.close()
            held.close()
            self.assertTrue(wait_until(lambda: value(
                scrape(q), "postern_connections") == 0, 10))
            ctx = ssl.create_default_context(cafile=certs.ca_cert)
            with socket.create_connection(("127.0.0.1", tls_port),
                                          timeout=PATIENCE) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                    self.assertTrue(t.recv(100).startswith(b"* OK"))
            self.assertTrue(wait_until(lambda: value(
                scrape(q), "postern_connections") == 0, 10))
            with socket.create_connection(("127.0.0.1", tls_port),
                                          timeout=PATIENCE) as raw:
                raw.sendall(b"a LOGIN alice x\r\n" * 10)
                read_all(raw)
            s = scrape(q)

            def moved(name, **labels):
                return value(s, name, **labels) - value(before, name, **labels)

            self.assertEqual(moved("postern_connections_refused_total",
                                   reason="per_ip"), 1)
            self.assertEqual(moved("postern_connections_accepted_total",
                                   proto="imap"), 4)
            T = "postern_tls_handshakes_total"
            self.assertEqual(value(s, T, side="client", result="ok"), 1)
            self.assertEqual(value(s, T, side="client", result="failed"), 1)
            # Towards backends: a verified STARTTLS, and a name that does
            # not match the certificate.
            r = imap_login("carol", "carol pw", q.imap_port)
            self.assertTrue(r.reply.startswith(b"a OK"), r.reply)
            r.close()
            self.assertTrue(wait_until(lambda: value(
                scrape(q), "postern_connections") == 0, 10))
            r = imap_login("wrong", "x", q.imap_port)
            self.assertIn(b"UNAVAILABLE", r.reply)
            r.close()
            s = scrape(q)
            self.assertEqual(value(s, T, side="backend", result="ok"), 1)
            self.assertEqual(value(s, T, side="backend", result="failed"), 1)
            self.assertEqual(value(s, "postern_logins_total", proto="imap",
                                   outcome="backend_failed"), 1)
        finally:
            stop_checked(self, q)
            stop_all(store)
            remove_tempdir(tmp)


class Startup(unittest.TestCase):
    """The endpoint is bound at start; an address in use stops the start."""

    def test_address_in_use(self):
        host = loopback(3)
        taken = socket.socket()
        taken.bind((host, 0))
        taken.listen(1)
        q = Postern(config("%s:%d" % (host, taken.getsockname()[1])), popmap=popmap())
        try:
            try:
                # It may see the listeners bound before the daemon gives up.
                q.start()
            except (RuntimeError, TimeoutError):
                pass
            self.assertTrue(wait_until(lambda: q.proc.poll() is not None, 10))
            self.assertNotEqual(q.proc.returncode, 0)
            self.assertIn("metrics.listen %s:%d: Address already in use"
                          % (host, taken.getsockname()[1]), q.log())
        finally:
            taken.close()
            q.cleanup()


    def test_privileged_port_with_privileges_dropped(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        host = loopback(3)
        port = None
        for candidate in range(900, 1000):
            with socket.socket() as probe:
                try:
                    probe.bind((host, candidate))
                except OSError:
                    continue
                port = candidate
                break
        self.assertIsNotNone(port)
        q = Postern(config("%s:%d" % (host, port), daemon='user = "nobody";'),
                    popmap=popmap())
        q.metrics = (host, port)
        q.start()
        try:
            s = scrape(q)
            self.assertEqual(value(s, "postern_workers"), 2)
            # Privilege separation: the root parent (q.proc) bound the
            # port; its one child, which serves, runs as nobody.
            kids = subprocess.run(["ps", "-o", "pid=", "--ppid",
                                   str(q.proc.pid)], capture_output=True,
                                  text=True).stdout.split()
            self.assertEqual(len(kids), 1, kids)
            uid = int(subprocess.run(["ps", "-o", "uid=", "-p", kids[0]],
                                     capture_output=True, text=True).stdout)
            self.assertNotEqual(uid, 0)
        finally:
            stop_checked(self, q)


class ZReload(unittest.TestCase):
    """SIGHUP keeps the endpoint; a changed address waits for a restart."""

    def test_reload_keeps_serving(self):
        gen = value(scrape(), "postern_config_generation")
        with open(P.conf_path, encoding="utf-8") as f:
            text = f.read()
        host, port = P.metrics
        other = "%s:%d" % (host, free_port(host))
        with open(P.conf_path, "w", encoding="utf-8") as f:
            f.write(text.replace("%s:%d" % (host, port), other))
        P.reload()
        self.assertTrue(wait_until(lambda: value(
            scrape(), "postern_config_generation") == gen + 1, 10))
        self.assertIn("reload: metrics.listen changes only on restart", P.log())
        with open(P.conf_path, "w", encoding="utf-8") as f:
            f.write(text)

    def test_zz_shutdown_is_clean(self):
        # A scrape and a mute scraper are open while the daemon stops.
        mute = connect_metrics()
        self.assertEqual(curl().returncode, 0)
        P.stop()
        mute.close()
        self.assertEqual(P.leaks(), "")
        self.assertIn("stopped", P.log())


if __name__ == "__main__":
    sys.exit(main(__name__))
