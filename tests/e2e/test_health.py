"""End-to-end: backend health checks against real Dovecot stores and
hostile peers.

A named backend with two addresses on the same port (two Dovecots on two
loopback addresses): one stops, and after health.failures failures logins
go to the other without trying it; it starts again, and a probe brings it
back.  A backend whose every address is down answers at once, long before
timeouts.connect / timeouts.backend.  Probe targets that are mute, slow or
reset never disturb sessions; the table and the probes in flight are
bounded.  A store that takes the connection and gives no greeting sends
the login on to the route's next host; one that fails after its greeting
does not.  State is read through `postern ctl backends`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import (free_ports, loopback, make_server_cert,  # noqa: E402
                             make_tempdir, make_test_ca, remove_tempdir)
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.hostile import HostileBackend, wait_until  # noqa: E402
from fixtures.postern import Postern, binary  # noqa: E402
from lib import Raw, main  # noqa: E402

USERS = {"alice": "alice pw", "bob": "bob pw"}
PORT = None            # the IMAP port every store here listens on
POP3_PORT = None
STORES = {}            # loopback(n) -> Dovecot
PATIENCE = 20
# Far below timeouts.connect and timeouts.backend (5 s): "at once".
PROMPT = 1.0

HEALTH = {"failures": "2", "down_time": "2", "interval": "1", "timeout": "1"}


def health_group(extra: dict) -> str:
    keys = dict(HEALTH, **extra)
    return "health = { %s };" % " ".join("%s = %s;" % kv for kv in keys.items())


def config(backends: str, routes: dict, health: dict = None, backend_timeout: int = 5):
    """routes: user -> route (backend names, comma-separated, and an
    optional backend user after a space)."""
    def render(p: dict) -> str:
        return """
daemon = { threads = 2; log_level = "info"; drain = 2; control = "%s/ctl.sock"; };
limits = { throttle = false; };
timeouts = { login = 30; connect = 5; backend = %d; lookup = 3; idle = 60; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
directory = { type = "file"; file = { path = "%s"; }; };
backend = { imap_port = %d; pop3_port = %d; };
backends = ( %s );
%s
""" % (p["dir"], backend_timeout, p["imap"], p["pop3"], p["popmap"], PORT,
           POP3_PORT, backends, health_group(health or {}))
    return config_with(render, routes)


def config_with(render, routes: dict):
    render.popmap = "".join("%s %s\n" % (u, h) for u, h in routes.items())
    return render


def start(cfg) -> Postern:
    return Postern(cfg, popmap=cfg.popmap).start()


def setUpModule():
    global PORT, POP3_PORT
    PORT, POP3_PORT = free_ports(2)
    for n in (1, 2):
        STORES[n] = Dovecot("health%d" % n, USERS, host=loopback(n),
                            imap_port=PORT, pop3_port=POP3_PORT).start()


def tearDownModule():
    stop_all(*STORES.values())


def ctl(q: Postern, *args, json_out=True):
    argv = [binary(), "ctl", "-c", q.conf_path]
    if json_out:
        argv.append("--json")
    r = subprocess.run(argv + list(args), capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def backends(q: Postern) -> dict:
    """address -> record, from `postern ctl --json backends`."""
    rc, out, err = ctl(q, "backends")
    assert rc == 0, (rc, out, err)
    recs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return {r["address"]: r for r in recs}


def state(q: Postern, host: str, port: int = None) -> str:
    rec = backends(q).get("%s:%d" % (host, port or PORT))
    return rec["state"] if rec else None


def imap_login(q: Postern, user: str):
    """(reply line, seconds the reply took) for one IMAP LOGIN."""
    r = Raw(q.imap_port, timeout=PATIENCE)
    try:
        assert r.line().startswith(b"* OK")
        t0 = time.monotonic()
        r.send(b'a LOGIN %s "%s"\r\n' % (user.encode(), USERS.get(user, "x").encode()))
        line = r.until(b"a ")[-1]
        took = time.monotonic() - t0
        if line.startswith(b"a OK"):
            r.send(b"b LOGOUT\r\n")
            r.until(b"b ")
        return line, took
    finally:
        r.close()


def connects_failed(q: Postern, addr: str) -> int:
    return len(re.findall(r"backend connect failed .*backend=%s " % re.escape(addr),
                          q.log()))


def logins_to(q: Postern, addr: str) -> int:
    return len(re.findall(r"login ok .*backend=%s" % re.escape(addr), q.log()))


def stop_checked(test: unittest.TestCase, q: Postern) -> str:
    q.stop()
    leaks, log = q.leaks(), q.log()
    q.cleanup()
    test.assertEqual(leaks, "")
    return log


class FailoverAndRecovery(unittest.TestCase):
    """A stopped store is skipped after health.failures connects, and taken
    back once a probe finds it greeting again."""

    def test_store_stops_and_comes_back(self):
        a, b = loopback(2), loopback(1)
        q = start(config('{ name = "pair"; addresses = "%s %s"; }' % (a, b),
                         {"alice": "pair", "bob": "pair"}))
        dead = "%s:%d" % (a, PORT)
        try:
            self.assertEqual(state(q, a), "up")
            line, _ = imap_login(q, "alice")
            self.assertTrue(line.startswith(b"a OK"), line)
            self.assertEqual(logins_to(q, dead), 1)

            STORES[2].stop()
            # Logins fail over; they and the probes (which may come first,
            # even twice on a slow machine) take it down after
            # health.failures failures in all.
            for _ in range(2):
                line, _ = imap_login(q, "alice")
                self.assertTrue(line.startswith(b"a OK"), line)
            self.assertTrue(wait_until(lambda: state(q, a) in ("down", "probing"), 5))
            tried = connects_failed(q, dead)
            self.assertLessEqual(tried, 2)
            self.assertIn("health: backend %s (pair) is down after 2 consecutive "
                          "failures" % dead, q.log())
            # Now skipped: no more connects to it, however many logins.
            for _ in range(5):
                line, took = imap_login(q, "bob")
                self.assertTrue(line.startswith(b"a OK"), line)
                self.assertLess(took, PROMPT)
            self.assertEqual(connects_failed(q, dead), tried)
            rec = backends(q)[dead]
            self.assertGreaterEqual(rec["skipped"], 5)
            self.assertEqual(rec["backend"], "pair")
            self.assertEqual(rec["proto"], "imap")
            self.assertIn("refused", rec["last_error"])
            self.assertGreaterEqual(rec["failures"], 2)
            self.assertEqual(rec["probed"], "yes")
            # Probes keep failing while it is away, and it stays down.
            self.assertTrue(wait_until(lambda: backends(q)[dead]["probes_failed"] >= 1, 8))

            STORES[2].start()
            self.assertTrue(wait_until(lambda: state(q, a) == "up", 10),
                            backends(q)[dead])
            self.assertIn("health: backend %s (pair) is up again" % dead, q.log())
            before = logins_to(q, dead)
            line, _ = imap_login(q, "alice")
            self.assertTrue(line.startswith(b"a OK"), line)
            self.assertEqual(logins_to(q, dead), before + 1)
        finally:
            if not STORES[2].running:
                STORES[2].start()
            log = stop_checked(self, q)
        # One line per change, not one per login.
        self.assertEqual(log.count("health: backend %s (pair) is down" % dead), 1)

    def test_mute_address_goes_down(self):
        """A store that accepts but never greets costs each login
        timeouts.backend before the next address serves it, until it is
        down; then the next address serves at once."""
        with HostileBackend("imap", "mute", host=loopback(3), port=PORT) as mute:
            q = start(config('{ name = "m"; addresses = "%s %s"; }'
                             % (loopback(3), loopback(1)), {"alice": "m"},
                             {"active": "false", "down_time": "60"}, backend_timeout=2))
            try:
                for _ in range(2):
                    line, took = imap_login(q, "alice")
                    self.assertTrue(line.startswith(b"a OK"), line)
                    self.assertGreaterEqual(took, 1.5)
                self.assertEqual(len(mute.sessions), 2)
                self.assertEqual(len(re.findall(
                    r'backend connect failed client=\S+ user="alice" proto=imap '
                    r'backend=%s:%d reason="greeting: backend did not answer in time"'
                    % (re.escape(loopback(3)), PORT), q.log())), 2)
                self.assertEqual(state(q, loopback(3)), "down")
                for _ in range(3):
                    line, took = imap_login(q, "alice")
                    self.assertTrue(line.startswith(b"a OK"), line)
                    self.assertLess(took, PROMPT)
                self.assertEqual(len(mute.sessions), 2)
                rec = backends(q)["%s:%d" % (loopback(3), PORT)]
                self.assertEqual(rec["last_error"], "backend did not answer in time")
                self.assertEqual(rec["probes"], 0)      # active = false
            finally:
                stop_checked(self, q)


class AllDown(unittest.TestCase):
    """Every address of the route down: the temporary failure at once."""

    def test_immediate_temporary_failure(self):
        with HostileBackend("imap", "mute", host=loopback(4), port=PORT) as m1, \
                HostileBackend("imap", "mute", host=loopback(5), port=PORT) as m2, \
                HostileBackend("pop3", "mute", host=loopback(4), port=POP3_PORT) as p1, \
                HostileBackend("pop3", "mute", host=loopback(5), port=POP3_PORT) as p2:
            q = start(config('{ name = "gone"; addresses = "%s %s"; }'
                             % (loopback(4), loopback(5)), {"alice": "gone"},
                             {"down_time": "30"}))
            try:
                # Probes alone (mute greetings) take both down.
                self.assertTrue(wait_until(
                    lambda: all(r["state"] == "down" for r in backends(q).values())
                    and len(backends(q)) == 4, 15), backends(q))
                for _ in range(3):
                    line, took = imap_login(q, "alice")
                    self.assertEqual(line, b"a NO [UNAVAILABLE] Mail store "
                                     b"temporarily unavailable, try again later\r\n")
                    self.assertLess(took, PROMPT)
                r = Raw(q.pop3_port, timeout=PATIENCE)
                r.line()
                t0 = time.monotonic()
                r.send(b"USER alice\r\nPASS alice pw\r\n")
                r.line()
                self.assertTrue(r.line().startswith(b"-ERR [SYS/TEMP]"))
                self.assertLess(time.monotonic() - t0, PROMPT)
                r.close()
                self.assertIn('reason="every backend address of the route is down"',
                              q.log())
                # Not one login reached them: only probes did.
                for h in (m1, m2, p1, p2):
                    self.assertTrue(all(s.received == b"" for s in h.sessions))
            finally:
                stop_checked(self, q)


# How a store may take the connection and give no greeting (fixtures/hostile.py).
GREETING_WAYS = ("close", "reset", "garbage", "refuse", "mute")
# What postern then logs, per protocol; a reset may already fail the connect.
GREETING_REASONS = {
    "close": {"imap": "greeting: backend closed the connection",
              "pop3": "greeting: backend closed the connection"},
    "reset": {"imap": None, "pop3": None},
    "garbage": {"imap": "greeting: unexpected greeting",
                "pop3": "greeting: unexpected reply"},
    "refuse": {"imap": "greeting: backend refused the connection",
               "pop3": "greeting: [SYS/TEMP] hostile POP3 unavailable"},
    "mute": {"imap": "greeting: backend did not answer in time",
             "pop3": "greeting: backend did not answer in time"},
}
GOOD = loopback(1)


def login(q: Postern, proto: str, user: str, password: str = "alice pw"):
    """(final reply, seconds it took) for one login through postern."""
    port = q.imap_port if proto == "imap" else q.pop3_port
    r = Raw(port, timeout=PATIENCE)
    try:
        r.line()
        t0 = time.monotonic()
        if proto == "imap":
            r.send(b'a LOGIN %s "%s"\r\n' % (user.encode(), password.encode()))
            line = r.until(b"a ")[-1]
        else:
            r.send(b"USER %s\r\nPASS %s\r\n" % (user.encode(), password.encode()))
            r.line()
            line = r.line()
        took = time.monotonic() - t0
        if line.startswith(b"a OK"):
            r.send(b"b LOGOUT\r\n")
            r.until(b"b ")
        elif line.startswith(b"+OK"):
            r.send(b"QUIT\r\n")
            r.line()
        return line, took
    finally:
        r.close()


def ok(proto: str, line: bytes) -> bool:
    return line.startswith(b"a OK" if proto == "imap" else b"+OK")


def tempfail(proto: str, line: bytes) -> bool:
    return line.startswith(b"a NO [UNAVAILABLE]" if proto == "imap"
                           else b"-ERR [SYS/TEMP]")


class GreetingFailover(unittest.TestCase):
    """A store that takes the connection and then gives no greeting is
    given up like one that refuses the connect: the login goes on to the
    route's next host.  Not once a greeting was taken: a store that fails
    later in the login may have seen the credentials, and no other store
    is tried after it."""

    @classmethod
    def setUpClass(cls):
        cls.peers = {}
        backends, routes = ['{ name = "good"; addresses = "%s"; }' % GOOD], {}
        for i, way in enumerate(GREETING_WAYS):
            host = loopback(30 + i)
            for proto, port in (("imap", PORT), ("pop3", POP3_PORT)):
                cls.peers[proto, way] = HostileBackend(proto, way, host=host,
                                                       port=port).start()
            backends.append('{ name = "bad-%s"; addresses = "%s"; }' % (way, host))
            routes["g-" + way] = "bad-%s,good alice" % way
        routes["g-all"] = "bad-close,bad-garbage,bad-refuse alice"
        # Stores that fail after their greeting: at the login, at the ID.
        for proto, port in (("imap", PORT), ("pop3", POP3_PORT)):
            cls.peers[proto, "late-login"] = HostileBackend(
                proto, {"login": "close"}, host=loopback(40), port=port).start()
        cls.peers["imap", "late-id"] = HostileBackend(
            "imap", {"id": "mute"}, host=loopback(41), port=PORT).start()
        backends += ['{ name = "late-login"; addresses = "%s"; }' % loopback(40),
                     '{ name = "late-id"; addresses = "%s"; }' % loopback(41)]
        routes["late-login"] = "late-login,good alice"
        routes["late-id"] = "late-id,good alice"
        # Only logins report: nothing here is skipped as down meanwhile.
        cls.q = start(config(", ".join(backends), routes,
                             {"active": "false", "failures": "100"}, backend_timeout=2))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.q.stop()
            leaks = cls.q.leaks()
            cls.q.cleanup()
            assert leaks == "", leaks
        finally:
            for peer in cls.peers.values():
                peer.stop()

    def failed_lines(self, proto: str, user: str) -> list:
        return re.findall(r'backend connect failed client=\S+ user="%s" proto=%s '
                          r'backend=(\S+) reason="([^"]*)"' % (user, proto), self.q.log())

    def test_1_lands_on_the_next_host(self):
        for proto in ("imap", "pop3"):
            good = "%s:%d" % (GOOD, PORT if proto == "imap" else POP3_PORT)
            for way in GREETING_WAYS:
                with self.subTest(proto=proto, way=way):
                    user, bad = "g-" + way, self.peers[proto, way]
                    before = logins_to(self.q, good)
                    line, took = login(self.q, proto, user)
                    self.assertTrue(ok(proto, line), line)
                    self.assertTrue(wait_until(
                        lambda: logins_to(self.q, good) == before + 1, 5))
                    lines = self.failed_lines(proto, user)
                    self.assertEqual(len(lines), 1, lines)
                    self.assertEqual(lines[0][0], "%s:%d" % (bad.host, bad.port))
                    want = GREETING_REASONS[way][proto]
                    if want is not None:
                        self.assertEqual(lines[0][1], want)
                    if way != "mute":
                        self.assertLess(took, PROMPT)
                    # Nothing of the login reached the store that did not greet.
                    self.assertGreaterEqual(len(bad.sessions), 1)
                    self.assertTrue(all(s.received == b"" for s in bad.sessions),
                                    bad.received)

    def test_2_every_host_fails_at_the_greeting(self):
        for proto in ("imap", "pop3"):
            with self.subTest(proto=proto):
                line, took = login(self.q, proto, "g-all")
                self.assertTrue(tempfail(proto, line), line)
                self.assertLess(took, PROMPT)
                self.assertTrue(wait_until(lambda: re.search(
                    r'login failed client=\S+ user="g-all" proto=%s backend=\S+ '
                    r'reason="no backend host answered"' % proto, self.q.log()), 5))
                # Logged before it: one line per host.
                self.assertEqual(len(self.failed_lines(proto, "g-all")), 3)

    def test_3_failure_after_the_greeting_is_not_retried(self):
        for proto, user in (("imap", "late-login"), ("pop3", "late-login"),
                            ("imap", "late-id")):
            with self.subTest(proto=proto, user=user):
                good = "%s:%d" % (GOOD, PORT if proto == "imap" else POP3_PORT)
                late = self.peers[proto, user]
                before = logins_to(self.q, good)
                line, _ = login(self.q, proto, user)
                self.assertTrue(tempfail(proto, line), line)
                self.assertTrue(wait_until(lambda: re.search(
                    r'backend login failed client=\S+ user="%s" proto=%s backend=%s:%d '
                    % (user, proto, re.escape(late.host), late.port), self.q.log()), 5))
                # One store, once: the good one never heard of this login.
                self.assertEqual(len(late.sessions), 1)
                self.assertIn(b"alice", late.sessions[0].received)
                self.assertEqual(self.failed_lines(proto, user), [])
                self.assertEqual(logins_to(self.q, good), before)
                self.assertNotIn("backend=%s " % good, "\n".join(
                    l for l in self.q.log().splitlines() if "user=%s " % user in l))


class HostileProbeTargets(unittest.TestCase):
    """Probes of mute, slow and resetting stores time out or fail on their
    own; sessions to a good store go on promptly meanwhile."""

    def test_sessions_undisturbed(self):
        with HostileBackend("imap", "mute", host=loopback(6), port=PORT), \
                HostileBackend("imap", "slow", host=loopback(7), port=PORT,
                               slow_interval=0.3), \
                HostileBackend("imap", "reset", host=loopback(8), port=PORT):
            q = start(config('{ name = "bad"; addresses = "%s %s %s"; }, '
                             '{ name = "good"; addresses = "%s"; }'
                             % (loopback(6), loopback(7), loopback(8), loopback(1)),
                             {"alice": "good"}))
            try:
                end = time.monotonic() + 4
                n = 0
                while time.monotonic() < end:
                    line, took = imap_login(q, "alice")
                    self.assertTrue(line.startswith(b"a OK"), line)
                    self.assertLess(took, PROMPT)
                    n += 1
                self.assertGreater(n, 3)
                recs = backends(q)
                for h in (6, 7, 8):
                    rec = recs["%s:%d" % (loopback(h), PORT)]
                    self.assertGreaterEqual(rec["probes_failed"], 2, rec)
                    self.assertIn(rec["state"], ("down", "probing"), rec)
                self.assertEqual(recs["%s:%d" % (loopback(1), PORT)]["state"], "up")
                self.assertEqual(recs["%s:%d" % (loopback(1), PORT)]["probes_failed"], 0)
                errors = {recs["%s:%d" % (loopback(h), PORT)]["last_error"]
                          for h in (6, 7, 8)}
                self.assertIn("probe: no greeting in time", errors)
            finally:
                stop_checked(self, q)


class ImplicitTls(unittest.TestCase):
    """Probes of an implicit-TLS backend hand-shake and verify as logins
    do: the right name keeps it up, a wrong one takes it down."""

    def test_probe_handshakes(self):
        tmp = make_tempdir("postern-health-tls-")
        store = None
        try:
            ca = make_test_ca(tmp, ["localhost"])
            crt = make_server_cert(ca, tmp, ["tls.example.net"], stem="store")
            imaps, pop3s = free_ports(2, host=loopback(20))
            store = Dovecot("healthtls", USERS, host=loopback(20),
                            ssl={"cert": crt.cert, "key": crt.key, "mode": "implicit"},
                            imaps_port=imaps, pop3s_port=pop3s).start()
            b = ('{ name = "%s"; addresses = "%s"; imap_port = %d; pop3_port = %d; '
                 'tls = "implicit"; ca_file = "%s"; }')
            q = start(config(b % ("tls.example.net", loopback(20), imaps, pop3s, ca.ca_cert)
                             + ", " + b % ("wrong.example.net", loopback(20), imaps,
                                           pop3s, ca.ca_cert),
                             {"alice": "tls.example.net"}))
            try:
                # One address, two names: the table keeps the first name.
                self.assertTrue(wait_until(
                    lambda: all(r["probes"] >= 2 for r in backends(q).values()), 8))
                recs = backends(q)
                self.assertEqual(len(recs), 2, recs)
                for r in recs.values():
                    self.assertEqual(r["state"], "up", r)
                    self.assertEqual(r["probes_failed"], 0, r)
                line, _ = imap_login(q, "alice")
                self.assertTrue(line.startswith(b"a OK"), line)
            finally:
                stop_checked(self, q)
            # Only the wrong name now: its probes fail the certificate check.
            q = start(config(b % ("wrong.example.net", loopback(20), imaps, pop3s,
                                  ca.ca_cert), {"alice": "wrong.example.net"}))
            try:
                self.assertTrue(wait_until(
                    lambda: all(r["state"] == "down" for r in backends(q).values()), 10),
                    backends(q))
                for r in backends(q).values():
                    self.assertIn("TLS handshake failed", r["last_error"])
                line, took = imap_login(q, "alice")
                self.assertTrue(line.startswith(b"a NO [UNAVAILABLE]"), line)
                self.assertLess(took, PROMPT)
            finally:
                stop_checked(self, q)
        finally:
            if store is not None:
                stop_all(store)
            remove_tempdir(tmp)


class Bounds(unittest.TestCase):

    def test_table_full(self):
        """health.entries: addresses past it are not tracked, and always tried."""
        cfg = config('{ name = "three"; addresses = "%s %s %s"; }'
                     % (loopback(9), loopback(10), loopback(1)), {"alice": "three"},
                     {"entries": "2"})
        q = start(cfg)
        try:
            recs = backends(q)
            self.assertEqual(len(recs), 2, recs)
            self.assertIn("addresses tracked (health.entries)", q.log())
            for _ in range(3):
                line, _ = imap_login(q, "alice")
                self.assertTrue(line.startswith(b"a OK"), line)
            self.assertEqual(len(backends(q)), 2)
            self.assertEqual(logins_to(q, "%s:%d" % (loopback(1), PORT)), 3)
        finally:
            stop_checked(self, q)

    def test_probes_in_flight(self):
        """health.probes: one probe at a time per worker, so the mute
        targets of one backend are probed one after another, never together."""
        mutes = [HostileBackend("imap", "mute", host=loopback(11 + i), port=PORT).start()
                 for i in range(3)]
        cfg = config('{ name = "mutes"; addresses = "%s"; }'
                     % " ".join(loopback(11 + i) for i in range(3)), {},
                     {"probes": "1"})
        try:
            q = start(cfg)
            try:
                most = 0
                end = time.monotonic() + 4
                while time.monotonic() < end:
                    open_now = sum(1 for m in mutes for s in m.sessions if not s.closed)
                    most = max(most, open_now)
                    time.sleep(0.02)
                started = sum(r["probes"] for r in backends(q).values())
            finally:
                stop_checked(self, q)
            # One backend's addresses share one worker's prober: one at a time.
            self.assertLessEqual(most, 1)
            self.assertGreaterEqual(started, 3)
            self.assertLessEqual(started, 2 * 5 + 2)
        finally:
            for m in mutes:
                m.stop()


class Flapping(unittest.TestCase):
    """HEALTH_LOG_CHANGES: an address that keeps going down and up logs at
    most four changes a minute."""

    def test_state_change_lines_limited(self):
        store = HostileBackend("imap", "ok", host=loopback(21), port=PORT).start()
        q = start(config('{ name = "flappy"; addresses = "%s"; }' % loopback(21), {},
                         {"failures": "1", "down_time": "1"}))
        addr = "%s:%d" % (loopback(21), PORT)
        try:
            changes = 0
            for _ in range(4):
                store.stop()
                self.assertTrue(wait_until(lambda: state(q, loopback(21)) != "up", 6))
                store.start()
                self.assertTrue(wait_until(lambda: state(q, loopback(21)) == "up", 6))
                changes += 2
            lines = re.findall(r"health: backend %s \(flappy\) is (down|up)" %
                               re.escape(addr), q.log())
            self.assertEqual(changes, 8)
            self.assertEqual(len(lines), 4, lines)
            self.assertEqual(lines, ["down", "up", "down", "up"])
        finally:
            store.stop()
            stop_checked(self, q)


class Ctl(unittest.TestCase):

    def test_verb_and_exit_codes(self):
        q = start(config('{ name = "pair"; addresses = "%s %s"; }'
                         % (loopback(1), loopback(2)), {}))
        try:
            rc, out, err = ctl(q, "backends", json_out=False)
            self.assertEqual(rc, 0, err)
            lines = out.splitlines()
            self.assertEqual(len(lines), 4)   # two addresses, two protocols
            self.assertTrue(all("state=up" in l and "backend=pair" in l
                                for l in lines), out)
            rc, out, err = ctl(q, "backends", "extra")
            self.assertEqual(rc, 1)
            self.assertIn("backends", out + err)
            recs = backends(q)
            self.assertEqual({r["proto"] for r in recs.values()}, {"imap", "pop3"})
            for r in recs.values():
                for key in ("address", "backend", "state", "failures", "changed",
                            "last_error", "probes", "skipped", "transitions"):
                    self.assertIn(key, r)
            # Probed while up: counted, and still up.
            self.assertTrue(wait_until(
                lambda: all(r["probes"] >= 1 for r in backends(q).values()), 5))
            self.assertTrue(all(r["state"] == "up" for r in backends(q).values()))
        finally:
            stop_checked(self, q)


if __name__ == "__main__":
    sys.exit(main(__name__))
