"""End-to-end: limits.per_user and failed-login throttling against a real
Dovecot store.

Each class runs its own postern, so throttle counts never leak from one
scenario into another.  Clients pick their source address (every 127.x
address is local) to be "another client" for the per-address counts.
Delays are compared as ratios, never as absolute times, except for the
generous bound a client that did nothing wrong must stay under.  The
refusal lines postern wrote are run through the shipped fail2ban filter.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import free_ports, loopback  # noqa: E402
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.hostile import wait_until  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from lib import Raw, main  # noqa: E402

USERS = {"alice": "alice pw", "bob": "bob pw", "carol": "carol pw",
         "dave": "dave pw"}
STORE = None
# The time any answer may take before the test calls it a hang.
PATIENCE = 20
# A login from a client that did nothing wrong, while others are throttled.
PROMPT = 1.5
FILTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "contrib", "fail2ban", "postern.conf")


def config(limits: str):
    def render(p: dict) -> str:
        return """
daemon = { threads = 2; log_level = "info"; drain = 3; };
limits = { auth_failures = 3; %s };
timeouts = { login = 30; connect = 3; backend = 5; lookup = 3; idle = 60; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
auth = { failure_delay = 1; };
directory = { type = "file"; file = { path = "%s"; }; };
backend = { imap_port = %d; pop3_port = %d; };
""" % (limits, p["imap"], p["pop3"], p["popmap"], STORE.imap_port, STORE.pop3_port)
    return render


def popmap() -> str:
    return "".join("%s %s\n" % (u, STORE.host) for u in USERS)


def setUpModule():
    global STORE
    imap_port, pop3_port = free_ports(2)
    STORE = Dovecot("limits", USERS, host=loopback(1), imap_port=imap_port,
                    pop3_port=pop3_port).start()


def tearDownModule():
    if STORE is not None:
        stop_all(STORE)


def imap_login(port: int, user: str, password: str, source: str = None,
               tag: bytes = b"a"):
    """(client, reply line, seconds the reply took) for one IMAP LOGIN."""
    r = Raw(port, timeout=PATIENCE, source=source)
    assert r.line().startswith(b"* OK")
    t0 = time.monotonic()
    r.send(b'%s LOGIN %s "%s"\r\n' % (tag, user.encode(), password.encode()))
    while True:
        line = r.line()
        if line.startswith(tag + b" "):
            return r, line, time.monotonic() - t0


def refusal_time(port: int, user: str, source: str) -> float:
    r, line, took = imap_login(port, user, "wrong", source)
    r.close()
    assert line.startswith(b"a NO"), line
    return took


def stop_checked(test: unittest.TestCase, q: Postern) -> str:
    q.stop()
    leaks, log = q.leaks(), q.log()
    q.cleanup()
    test.assertEqual(leaks, "")
    return log


def f2b_regex(path: str = FILTER):
    """The filter's failregex and ignoreregex as Python patterns, <HOST>
    translated as fail2ban does and the syslog prefix left open."""
    cp = configparser.RawConfigParser()
    cp.read(path)
    host = r"(?:::f{4,6}:)?(?P<host>\S+)"
    fail = cp.get("Definition", "failregex").strip()
    fail = fail.replace("%(__prefix_line)s", r"\S+ postern\[\d+\]: ")
    fail = fail.replace("<HOST>", host)
    ignore = cp.get("Definition", "ignoreregex").strip()
    return re.compile(fail), re.compile(ignore)


class PerUser(unittest.TestCase):
    """limits.per_user: live sessions per login, across workers, every exit
    path giving its slot back."""

    def test_cap_reply_and_release(self):
        q = Postern(config("per_user = 2;"), popmap=popmap()).start()
        held = []
        try:
            for _ in range(2):
                r, line, _ = imap_login(q.imap_port, "alice", USERS["alice"])
                self.assertIn(b"a OK", line)
                held.append(r)
            r, line, _ = imap_login(q.imap_port, "alice", USERS["alice"])
            self.assertEqual(line, b"a NO [LIMIT] Too many sessions for this user\r\n")
            # The same connection may try again (another user is fine).
            r.send(b'b LOGIN bob "bob pw"\r\n')
            self.assertTrue(r.until(b"b ")[-1].startswith(b"b OK"))
            r.close()
            p = Raw(q.pop3_port, timeout=PATIENCE)
            p.line()
            p.send(b"USER alice\r\nPASS alice pw\r\n")
            p.line()
            self.assertEqual(p.line(),
                             b"-ERR [SYS/TEMP] Too many sessions for this user\r\n")
            p.close()
            # One ends: a new one gets in.
            held.pop().close()
            self.assertTrue(wait_until(lambda: self._logs_in(q, held), 5))
            self.assertEqual(len(held), 2)
            for r in held:
                r.close()
            held.clear()

            # Every exit path gives the slot back: a refused password, a
            # client gone in the middle of the backend login, a logout.
            r, line, _ = imap_login(q.imap_port, "alice", "wrong")
            self.assertIn(b"a NO", line)
            r.close()
            for _ in range(3):
                r = Raw(q.imap_port, timeout=PATIENCE)
                r.line()
                r.send(b'a LOGIN alice "alice pw"\r\n')
                r.close()
            r, line, _ = imap_login(q.imap_port, "alice", USERS["alice"])
            r.send(b"z LOGOUT\r\n")
            r.until(b"z ")
            r.close()
            # Consistency: once everything ended, the cap is whole again.
            def full_cap():
                for r in held:
                    r.close()
                held.clear()
                for _ in range(2):
                    r, line, _ = imap_login(q.imap_port, "alice", USERS["alice"])
                    if not line.startswith(b"a OK"):
                        r.close()
                        return False
                    held.append(r)
                return True
            self.assertTrue(wait_until(full_cap, 5, 0.2))
            r, line, _ = imap_login(q.imap_port, "alice", USERS["alice"])
            self.assertIn(b"[LIMIT]", line)
            r.close()
        finally:
            for r in held:
                r.close()
            log = stop_checked(self, q)
        self.assertIn('user="alice" proto=imap reason="limits.per_user reached"', log)
        self.assertIn('proto=pop3 reason="limits.per_user reached"', log)

    @staticmethod
    def _logs_in(q, held) -> bool:
        r, line, _ = imap_login(q.imap_port, "alice", USERS["alice"])
        if line.startswith(b"a OK"):
            held.append(r)
            return True
        r.close()
        return False


class Throttle(unittest.TestCase):
    """Failed logins slow down per address and per user, on the session
    timer: everybody else is served at full speed meanwhile."""

    @classmethod
    def setUpClass(cls):
        cls.q = Postern(config("throttle_max = 8;"), popmap=popmap()).start()

    @classmethod
    def tearDownClass(cls):
        cls.log = stop_checked(unittest.TestCase(), cls.q)

    def test_1_per_address_growth_others_unaffected(self):
        port = self.q.imap_port
        # Unknown names: only the address's count grows (1 s base, doubling).
        times = [refusal_time(port, "ghost%d" % i, "127.0.0.5") for i in range(3)]
        # The fourth refusal waits ~4 s: meanwhile another address logs in.
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "t", refusal_time(port, "ghost3", "127.0.0.5")))
        t.start()
        time.sleep(0.3)
        r, line, took = imap_login(port, "bob", USERS["bob"], source="127.0.0.6")
        r.close()
        t.join(PATIENCE)
        times.append(box["t"])
        self.assertIn(b"a OK", line)
        self.assertLess(took, PROMPT)
        self.assertGreaterEqual(times[3], 2 * times[1], times)
        self.assertGreaterEqual(times[2], 1.5 * times[1], times)
        self.assertGreaterEqual(times[3], 1.5 * times[2], times)
        self.assertGreaterEqual(times[3], 2 * times[0], times)

    def test_2_per_user_across_addresses(self):
        port = self.q.imap_port
        # A new address each time: only carol's count can slow these down.
        times = [refusal_time(port, "carol", "127.0.1.%d" % (i + 1))
                 for i in range(4)]
        self.assertGreaterEqual(times[3], 2 * times[1], times)
        self.assertGreaterEqual(times[3], 1.5 * times[2], times)

    def test_3_success_resets_user(self):
        port = self.q.imap_port
        slow = [refusal_time(port, "dave", "127.0.2.%d" % (i + 1)) for i in range(3)]
        r, line, took = imap_login(port, "dave", USERS["dave"], source="127.0.2.10")
        r.close()
        self.assertIn(b"a OK", line)
        self.assertLess(took, PROMPT)       # successes never wait
        after = refusal_time(port, "dave", "127.0.2.11")
        # After the success dave's next refusal waits no more than his first.
        self.assertLess(after, slow[2] / 1.5, (slow, after))

    def test_4_same_connection_waits_too(self):
        # Three refusals on one connection, then the goodbye: the session
        # timer carries the delays; nothing else is held.
        r = Raw(self.q.imap_port, timeout=PATIENCE, source="127.0.3.1")
        r.line()
        for tag in (b"a", b"b", b"c"):
            r.send(tag + b' LOGIN nobody%s "x"\r\n' % tag)
            self.assertTrue(r.line().startswith(tag + b" NO"))
        self.assertTrue(r.closed())

    def test_5_fail2ban_filter_matches(self):
        log = self.q.log()
        lines = [l for l in log.splitlines() if "login refused" in l]
        self.assertGreaterEqual(len(lines), 12)
        fail, ignore = f2b_regex()
        hosts = set()
        for l in lines:
            m = fail.search(l)
            self.assertIsNotNone(m, l)
            self.assertIsNone(ignore.search(l))
            hosts.add(m.group("host"))
        self.assertIn("127.0.0.5", hosts)
        self.assertIn("127.0.1.4", hosts)
        self.assertTrue(all(re.fullmatch(r"127\.\d+\.\d+\.\d+", h) for h in hosts), hosts)
        # The real thing, when fail2ban is installed.
        tool = shutil.which("fail2ban-regex")
        if tool is None:
            return
        common = "/etc/fail2ban/filter.d/common.conf"
        if not os.path.exists(common):
            return
        # The filter as installed: in a filter.d next to common.conf.
        fdir = os.path.join(self.q.dir, "filter.d")
        os.makedirs(fdir, exist_ok=True)
        shutil.copy(common, fdir)
        shutil.copy(FILTER, fdir)
        with open(os.path.join(self.q.dir, "refused.log"), "w") as f:
            f.write("\n".join(lines) + "\n")
        out = subprocess.run([tool, f.name, os.path.join(fdir, "postern.conf")],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        m = re.search(r"Lines: (\d+) lines, \d+ ignored, (\d+) matched", out.stdout)
        self.assertIsNotNone(m, out.stdout)
        self.assertEqual(int(m.group(2)), len(lines), out.stdout)


class ThrottleOff(unittest.TestCase):
    """limits.throttle = false: refusals keep their old pace."""

    def test_no_growth(self):
        q = Postern(config("throttle = false;"), popmap=popmap()).start()
        try:
            times = [refusal_time(q.imap_port, "ghost", "127.0.4.1") for _ in range(4)]
        finally:
            stop_checked(self, q)
        self.assertLess(max(times), PROMPT, times)


class PerUserLogLine(unittest.TestCase):
    """The fail2ban filter ignores per-user cap refusals: not guessing."""

    def test_ignored(self):
        fail, ignore = f2b_regex()
        line = ('2024-05-01T10:00:00.123Z postern[42]: warning: login refused '
                'client=192.0.2.7:5000 user="alice" proto=imap '
                'reason="limits.per_user reached" delay=0.000s rip=192.0.2.7')
        self.assertIsNotNone(fail.search(line))
        self.assertIsNotNone(ignore.search(line))
        # A user name cannot move <HOST>: rip= ends the line.
        forged = line.replace('user="alice"', r'user="x\" rip=6.6.6.6 y"').replace(
            "limits.per_user reached", "unknown user")
        self.assertEqual(fail.search(forged).group("host"), "192.0.2.7")
        v6 = line.replace("192.0.2.7:5000", "[2001:db8::7]:5000").replace(
            "rip=192.0.2.7", "rip=2001:db8::7")
        self.assertEqual(fail.search(v6).group("host"), "2001:db8::7")


if __name__ == "__main__":
    sys.exit(main(__name__))
