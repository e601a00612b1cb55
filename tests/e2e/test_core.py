"""End-to-end: postern routes IMAP and POP3 users by the file map to two
real Dovecot stores, driven by real clients (curl, imaplib, poplib) and by
raw sockets for what those won't send.  Fixtures start once for the suite.
"""

from __future__ import annotations

import base64
import imaplib
import os
import poplib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import free_ports, loopback  # noqa: E402
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from fixtures.hostile import wait_until  # noqa: E402
from lib import Raw, main  # noqa: E402

USERS_A = {
    "alice@example.org": "alice pw",
    "jürgen@example.org": 'p w "ü\\',
}
USERS_B = {
    "bob@example.org": 'bob"secret\\',
    "c.jones": "carol-pw",
}
CONNECT_TIMEOUT = 2
BACKEND_TIMEOUT = 6       # generous: 200 logins at once load a small box
LOGIN_TIMEOUT = 4

A = B = P = None
BLACKHOLE = None          # a listener that accepts and never speaks
DOWN_PORT = None          # nothing listens here
LINES_PORT = None         # nothing listens here either: FailureLines' own,
                          # so other tests' failures never mark it down


def popmap(a: Dovecot, b: Dovecot) -> str:
    return (
        "# e2e map\n"
        "alice@example.org   %s\n"
        "jürgen@example.org  %s\n"
        "bob@example.org     %s\n"
        "carol@example.org   %s  c.jones\n"
        "down@example.org    127.0.0.1:%d\n"
        "silent@example.org  127.0.0.1:%d\n"
        "failover@example.org 127.0.0.1:%d,%s\n"
        "lines@example.org   127.0.0.1:%d\n"
        % (a.host, a.host, b.host, b.host, DOWN_PORT, BLACKHOLE.getsockname()[1],
           DOWN_PORT, a.host, LINES_PORT)
    )


def config(imap_port: int, pop3_port: int):
    def render(p: dict) -> str:
        return """
daemon = { threads = 2; log_level = "info"; drain = 5; };
limits = { line_length = 8192; auth_failures = 3; bad_commands = 5;
           throttle = false; };  # one address fails on purpose all run long
timeouts = { login = %d; connect = %d; backend = %d; lookup = 3; idle = 60; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
username = { lower_case = true; default_domain = "example.org"; };
directory = { type = "file"; file = { path = "%s"; }; };
backend = { imap_port = %d; pop3_port = %d; };
""" % (LOGIN_TIMEOUT, CONNECT_TIMEOUT, BACKEND_TIMEOUT, p["imap"], p["pop3"], p["popmap"],
       imap_port, pop3_port)
    return render


def setUpModule():
    global A, B, P, BLACKHOLE, DOWN_PORT, LINES_PORT
    imap_port, pop3_port, DOWN_PORT, LINES_PORT = free_ports(4)
    # Two stores on two loopback addresses with the same ports, as real
    # stores would sit on two hosts at 143/110.
    A = Dovecot("store-a", USERS_A, host=loopback(1), imap_port=imap_port,
                pop3_port=pop3_port)
    B = Dovecot("store-b", USERS_B, host=loopback(3), imap_port=imap_port,
                pop3_port=pop3_port)
    A.start()
    B.start()
    BLACKHOLE = socket.socket()
    BLACKHOLE.bind(("127.0.0.1", 0))
    BLACKHOLE.listen(64)
    P = Postern(config(imap_port, pop3_port), popmap=popmap(A, B)).start()


def tearDownModule():
    try:
        if P is not None:
            P.cleanup()
    finally:
        if BLACKHOLE is not None:
            BLACKHOLE.close()
        stop_all(*(x for x in (A, B) if x is not None))


def imap():
    return imaplib.IMAP4("127.0.0.1", P.imap_port, timeout=15)


def fetch_body(m) -> bytes:
    typ, _ = m.select("INBOX")
    assert typ == "OK"
    typ, data = m.fetch("1", "(BODY[])")
    assert typ == "OK", data
    return data[0][1]


class Routing(unittest.TestCase):
    def test_imaplib_lands_on_each_store(self):
        for user, pw, store in (("alice@example.org", USERS_A["alice@example.org"], A),
                                ("bob@example.org", USERS_B["bob@example.org"], B)):
            m = imap()
            typ, data = m.login(user, pw)
            self.assertEqual(typ, "OK")
            self.assertIn(store.welcome_line.encode(), fetch_body(m))
            m.logout()

    def test_poplib_lands_on_each_store(self):
        for user, pw, store in (("alice@example.org", USERS_A["alice@example.org"], A),
                                ("bob@example.org", USERS_B["bob@example.org"], B)):
            p = poplib.POP3("127.0.0.1", P.pop3_port, timeout=15)
            p.user(user)
            p.pass_(pw)
            _, lines, _ = p.retr(1)
            self.assertIn(store.welcome_line.encode(), b"\n".join(lines))
            p.quit()

    def test_curl_imap_and_pop3(self):
        if shutil.which("curl") is None:
            self.skipTest("curl missing")
        out = subprocess.run(
            ["curl", "-s", "--max-time", "15", "-u", "alice:alice pw",
             "imap://127.0.0.1:%d/INBOX;UID=1" % P.imap_port],
            capture_output=True, check=True).stdout
        self.assertIn(A.welcome_line.encode(), out)
        out = subprocess.run(
            ["curl", "-s", "--max-time", "15", "-u", 'bob@example.org:bob"secret\\',
             "pop3://127.0.0.1:%d/1" % P.pop3_port],
            capture_output=True, check=True).stdout
        self.assertIn(B.welcome_line.encode(), out)

    def test_port_protocols_keeps_a_pinned_port_to_imap(self):
        """directory.port_protocols = "imap": a port from the directory
        (here one where nothing listens) is IMAP's; POP3 goes to the same
        host on backend.pop3_port."""
        base = config(A.imap_port, A.pop3_port)

        def render(p: dict) -> str:
            return base(p).replace('directory = { type = "file";',
                                   'directory = { type = "file"; '
                                   'port_protocols = "imap";')
        q = Postern(render, popmap="pinned@example.org %s:%d alice@example.org\n"
                    % (A.host, DOWN_PORT)).start()
        try:
            pw = USERS_A["alice@example.org"]
            p = poplib.POP3("127.0.0.1", q.pop3_port, timeout=15)
            p.user("pinned@example.org")
            p.pass_(pw)
            _, lines, _ = p.retr(1)
            self.assertIn(A.welcome_line.encode(), b"\n".join(lines))
            p.quit()
            r = Raw(q.imap_port)
            r.line()
            r.send(b'a LOGIN pinned "%s"\r\n' % pw.encode())
            self.assertIn(b"NO [UNAVAILABLE]", r.line())
            r.close()
        finally:
            q.cleanup()

    def test_default_domain_and_case(self):
        m = imap()
        m.login("ALICE", USERS_A["alice@example.org"])
        self.assertIn(A.welcome_line.encode(), fetch_body(m))
        m.logout()

    def test_rewritten_backend_user(self):
        m = imap()
        m.login("carol@example.org", "carol-pw")
        body = fetch_body(m)
        self.assertIn(B.welcome_line.encode(), body)
        self.assertIn(b"belongs to c.jones", body)
        m.logout()

    def test_utf8_user_and_password(self):
        user = "jürgen@example.org".encode()
        pw = USERS_A["jürgen@example.org"].encode()
        # imaplib cannot send 8-bit quoted strings: use literals by hand.
        r = Raw(P.imap_port)
        r.line()
        r.send(b"a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(user), user, len(pw), pw))
        self.assertTrue(r.until(b"a ")[-1].startswith(b"a OK"))
        r.send(b"b SELECT INBOX\r\n")
        self.assertTrue(r.until(b"b ")[-1].startswith(b"b OK"))
        r.send(b"c FETCH 1 BODY[]\r\n")
        text = b"".join(r.until(b"c "))
        self.assertIn(A.welcome_line.encode(), text)
        self.assertIn("belongs to jürgen@example.org".encode(), text)
        r.close()

    def test_200_simultaneous_logins(self):
        users = [("alice@example.org", USERS_A["alice@example.org"], A),
                 ("bob@example.org", USERS_B["bob@example.org"], B),
                 ("carol@example.org", "carol-pw", B)]
        errors = []

        def one(i):
            user, pw, store = users[i % len(users)]
            try:
                m = imap()
                m.login(user, pw)
                if store.welcome_line.encode() not in fetch_body(m):
                    errors.append("%s landed on the wrong store" % user)
                m.logout()
            except Exception as e:  # noqa: BLE001
                errors.append("%s: %r" % (user, e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])

    def test_client_address_reaches_the_store(self):
        # ID with x-originating-ip: the store logs the client, not postern.
        r = Raw(P.imap_port, source="127.0.0.9")
        r.line()
        r.send(b'a ID ("name" "e2e-client")\r\n')
        r.until(b"a ")
        r.send(b'b LOGIN alice "alice pw"\r\nc LOGOUT\r\n')
        self.assertTrue(r.until(b"b ")[-1].startswith(b"b OK"))
        r.close()
        deadline = time.monotonic() + 5
        while "rip=127.0.0.9" not in A.read_log():
            self.assertLess(time.monotonic(), deadline, A.read_log()[-1500:])
            time.sleep(0.1)

    def test_failover_to_second_host(self):
        # The first host refuses connections; the second (store-a) answers.
        # The user is unknown there, so the answer is Dovecot's own NO:
        # proof that postern moved on instead of failing temporarily.
        r = Raw(P.imap_port)
        r.line()
        r.send(b'a LOGIN failover@example.org "x"\r\n')
        reply = r.until(b"a ")[-1]
        self.assertTrue(reply.startswith(b"a NO"), reply)
        self.assertNotIn(b"UNAVAILABLE", reply)
        r.close()


class LoginForms(unittest.TestCase):
    def login_raw(self, wire: bytes, expect_cont: int = 0) -> Raw:
        r = Raw(P.imap_port)
        r.line()
        parts = wire.split(b"<CONT>")
        for i, part in enumerate(parts):
            r.send(part)
            if i < len(parts) - 1:
                self.assertTrue(r.line().startswith(b"+"))
        return r

    def assert_logged_in(self, r: Raw, store=None):
        reply = r.until(b"a ")[-1]
        self.assertTrue(reply.startswith(b"a OK"), reply)
        self.assertIn(b"CAPABILITY", reply)
        r.send(b"b SELECT INBOX\r\nc FETCH 1 BODY[]\r\n")
        text = b"".join(r.until(b"c "))
        self.assertIn((store or A).welcome_line.encode(), text)
        r.close()

    def test_quoted_with_escapes(self):
        r = self.login_raw(b'a LOGIN "bob@example.org" "bob\\"secret\\\\"\r\n')
        self.assert_logged_in(r, B)

    def test_sync_literals(self):
        r = self.login_raw(b"a LOGIN {17}\r\n<CONT>alice@example.org {8}\r\n<CONT>alice pw\r\n")
        self.assert_logged_in(r)

    def test_nonsync_literals(self):
        r = self.login_raw(b"a LOGIN {17+}\r\nalice@example.org {8+}\r\nalice pw\r\n")
        self.assert_logged_in(r)

    def test_authenticate_plain_sasl_ir(self):
        ir = base64.b64encode(b"\0alice@example.org\0alice pw")
        r = self.login_raw(b"a AUTHENTICATE PLAIN " + ir + b"\r\n")
        self.assert_logged_in(r)

    def test_authenticate_plain_continuation(self):
        ir = base64.b64encode(b"\0alice@example.org\0alice pw")
        r = self.login_raw(b"a AUTHENTICATE PLAIN\r\n<CONT>" + ir + b"\r\n")
        self.assert_logged_in(r)

    def test_authenticate_login(self):
        r = self.login_raw(b"a AUTHENTICATE LOGIN\r\n<CONT>" +
                           base64.b64encode(b"alice@example.org") + b"\r\n<CONT>" +
                           base64.b64encode(b"alice pw") + b"\r\n")
        self.assert_logged_in(r)

    def test_authenticate_cancel(self):
        r = self.login_raw(b"a AUTHENTICATE PLAIN\r\n<CONT>*\r\n")
        self.assertTrue(r.line().startswith(b"a BAD"))
        r.send(b"b NOOP\r\n")
        self.assertTrue(r.line().startswith(b"b OK"))
        r.close()

    def test_imaplib_authenticate_plain(self):
        m = imap()
        m.authenticate("PLAIN", lambda _: b"\0bob@example.org\0" + USERS_B["bob@example.org"].encode())
        self.assertIn(B.welcome_line.encode(), fetch_body(m))
        m.logout()

    def test_pipelined_after_login(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(b'a LOGIN alice "alice pw"\r\nb SELECT INBOX\r\nc LOGOUT\r\n')
        text = b"".join(r.until(b"c "))
        self.assertIn(b"a OK", text)
        self.assertIn(b"b OK", text)
        self.assertTrue(r.closed())

    def test_pop3_user_pass_with_spaces(self):
        p = poplib.POP3("127.0.0.1", P.pop3_port, timeout=15)
        p.user("alice@example.org")
        p.pass_("alice pw")
        self.assertEqual(p.stat()[0], 1)
        p.quit()

    def test_pop3_auth_plain(self):
        r = Raw(P.pop3_port)
        r.line()
        ir = base64.b64encode(b"\0bob@example.org\0" + USERS_B["bob@example.org"].encode())
        r.send(b"AUTH PLAIN " + ir + b"\r\n")
        self.assertTrue(r.line().startswith(b"+OK"))
        r.send(b"RETR 1\r\n")
        self.assertIn(B.welcome_line.encode(), b"".join(r.until(b".\r")))
        r.close()

    def test_pop3_auth_plain_continuation(self):
        r = Raw(P.pop3_port)
        r.line()
        r.send(b"AUTH PLAIN\r\n")
        self.assertTrue(r.line().startswith(b"+ "))
        r.send(base64.b64encode(b"\0alice@example.org\0alice pw") + b"\r\n")
        self.assertTrue(r.line().startswith(b"+OK"))
        r.close()

    def test_capabilities(self):
        r = Raw(P.imap_port)
        greeting = r.line()
        self.assertIn(b"AUTH=PLAIN", greeting)
        r.send(b"a CAPABILITY\r\n")
        lines = r.until(b"a ")
        self.assertIn(b"LITERAL+", lines[0])
        self.assertTrue(lines[-1].startswith(b"a OK"))
        r.send(b"b ID (\"name\" \"e2e\")\r\n")
        self.assertIn(b"postern", r.line())
        self.assertTrue(r.line().startswith(b"b OK"))
        r.send(b"c STARTTLS\r\n")
        self.assertTrue(r.line().startswith(b"c NO"))
        r.send(b"d LOGOUT\r\n")
        self.assertTrue(r.line().startswith(b"* BYE"))
        self.assertTrue(r.closed())
        r = Raw(P.pop3_port)
        r.line()
        r.send(b"CAPA\r\n")
        caps = b"".join(r.until(b".\r"))
        self.assertIn(b"SASL PLAIN LOGIN", caps)
        r.close()


class Failures(unittest.TestCase):
    def test_unknown_user_then_retry_on_same_connection(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(b'a LOGIN nobody "x"\r\n')
        reply = r.line()
        self.assertTrue(reply.startswith(b"a NO"), reply)
        r.send(b'b LOGIN alice "alice pw"\r\n')
        self.assertTrue(r.until(b"b ")[-1].startswith(b"b OK"))
        r.close()

    def test_wrong_password(self):
        t0 = time.monotonic()
        m = imap()
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("alice@example.org", "wrong")
        self.assertLess(time.monotonic() - t0, 10)
        # The connection stays usable after a refused login.
        m.login("alice@example.org", USERS_A["alice@example.org"])
        m.logout()

    def test_auth_failures_limit(self):
        r = Raw(P.imap_port)
        r.line()
        for tag in (b"a", b"b", b"c"):
            r.send(tag + b' LOGIN nobody "x"\r\n')
            self.assertTrue(r.line().startswith(tag + b" NO"))
        self.assertTrue(r.closed())

    def test_backend_down_is_temporary(self):
        t0 = time.monotonic()
        r = Raw(P.imap_port)
        r.line()
        r.send(b'a LOGIN down "x"\r\n')
        reply = r.line()
        self.assertIn(b"NO [UNAVAILABLE]", reply)
        self.assertLess(time.monotonic() - t0, CONNECT_TIMEOUT + 2)
        r.close()
        r = Raw(P.pop3_port)
        r.line()
        r.send(b"USER down\r\nPASS x\r\n")
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertIn(b"-ERR [SYS/TEMP]", r.line())
        r.close()

    def test_silent_backend_times_out(self):
        t0 = time.monotonic()
        r = Raw(P.imap_port)
        r.line()
        r.send(b'a LOGIN silent "x"\r\n')
        self.assertIn(b"NO [UNAVAILABLE]", r.line())
        self.assertLess(time.monotonic() - t0, BACKEND_TIMEOUT + 2)
        r.close()

    def test_pop3_unknown_and_wrong(self):
        r = Raw(P.pop3_port)
        r.line()
        r.send(b"USER nobody\r\nPASS x\r\n")
        r.line()
        self.assertIn(b"-ERR [AUTH]", r.line())
        r.send(b"USER alice\r\nPASS wrong\r\n")
        r.line()
        self.assertTrue(r.line().startswith(b"-ERR"))
        r.send(b"STAT\r\n")
        self.assertTrue(r.line().startswith(b"-ERR"))
        r.close()


class FailureLines(unittest.TestCase):
    """Failure lines: proto=, backend= when one is known, and user= is the
    login as the client sent it, escaped."""

    def wait_log(self, pattern):
        found = wait_until(lambda: re.search(pattern, P.log()), 5)
        self.assertTrue(found, pattern)

    def test_refusal_shows_the_attempted_login(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(b'a LOGIN "NoBody.Else" "x"\r\n')
        self.assertTrue(r.line().startswith(b"a NO"))
        r.close()
        # Not the normalised "nobody.else@example.org".
        self.wait_log(r'login refused client=127\.0\.0\.1:\d+ user="NoBody\.Else" '
                      r'proto=imap reason="unknown user')

    def test_control_bytes_are_escaped(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(b"a LOGIN {9}\r\n")
        self.assertTrue(r.line().startswith(b"+"))
        r.send(b'x\x01y\x1b[2J"\\ "x"\r\n')
        self.assertTrue(r.line().startswith(b"a NO"))
        r.close()
        self.wait_log(r'login refused client=\S+ user="x\\x01y\\x1b\[2J\\"\\\\" '
                      r'proto=imap reason=')
        log = P.log()
        self.assertNotIn("\x01", log)
        self.assertNotIn("\x1b", log)

    def test_a_long_login_is_cut_at_a_whole_escape(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(b"a LOGIN {1000}\r\n")
        self.assertTrue(r.line().startswith(b"+"))
        r.send(b"\x02" * 1000 + b' "x"\r\n')
        self.assertTrue(r.line().startswith(b"a NO"))
        r.close()
        # LOGIN_LOG_MAX: 1024 bytes, 256 whole escapes, then the quote.
        self.wait_log(r'login refused client=\S+ user="(\\x02){256}" proto=imap ')

    def test_backend_failures_name_proto_and_backend(self):
        # Two connect failures: below health.failures (3), so the address is
        # still tried, not skipped as down.
        for proto, port, login in (("imap", P.imap_port, b'a LOGIN Lines "x"\r\n'),
                                   ("pop3", P.pop3_port, b"USER Lines\r\nPASS x\r\n")):
            r = Raw(port)
            r.line()
            r.send(login)
            r.until(b"a " if proto == "imap" else b"-ERR")
            r.close()
            backend = r"backend=127\.0\.0\.1:%d " % LINES_PORT
            self.wait_log(r'backend connect failed client=\S+ user="Lines" proto=%s %s'
                          r'reason=' % (proto, backend))
            self.wait_log(r'login failed client=\S+ user="Lines" proto=%s %s'
                          r'reason="no backend host answered"' % (proto, backend))


class Abuse(unittest.TestCase):
    """Each gets an error or a close; the next client is served."""

    def tearDown(self):
        m = imap()
        m.login("alice@example.org", USERS_A["alice@example.org"])
        m.logout()

    def test_100k_line(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(b"a " + b"x" * 100000 + b"\r\n")
        self.assertIn(b"BAD", r.line())
        r.send(b"b NOOP\r\n")
        self.assertTrue(r.line().startswith(b"b OK"))
        r.close()
        r = Raw(P.pop3_port)
        r.line()
        r.send(b"USER " + b"x" * 100000 + b"\r\n")
        self.assertTrue(r.line().startswith(b"-ERR"))
        r.close()

    def test_binary_garbage(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(bytes(range(256)) * 64 + b"\r\n" + os.urandom(8192))
        self.assertTrue(r.closed(10))
        self.assertIn(b"BAD", r.buf)
        r = Raw(P.pop3_port)
        r.line()
        r.send(os.urandom(20000))
        self.assertTrue(r.closed(LOGIN_TIMEOUT + 5))

    def test_1000_pipelined_noops(self):
        # A pipelining client is served in full (Dovecot and Perdition
        # answer every one), and a LOGOUT behind them still gets its BYE.
        r = Raw(P.imap_port)
        r.line()
        r.send(b"".join(b"n%d NOOP\r\n" % i for i in range(1000)) + b"z LOGOUT\r\n")
        lines = r.until(b"z ")
        self.assertEqual(sum(1 for l in lines if l.startswith(b"n")), 1000)
        self.assertTrue(lines[-2].startswith(b"* BYE"), lines[-3:])
        self.assertTrue(lines[-1].startswith(b"z OK"))
        self.assertTrue(r.closed(5))

    def test_command_flood_is_cut_by_rate(self):
        # Past the burst, commands faster than the pre-login rate end the
        # session with a goodbye that arrives (no reset destroys it).
        r = Raw(P.imap_port)
        r.line()
        burst = b"".join(b"n%d NOOP\r\n" % i for i in range(6000))
        r.send(burst)
        self.assertTrue(r.closed(10))
        self.assertIn(b"* BYE Too many commands before login", r.buf)
        self.assertIn(b"n4000 OK", r.buf)
        self.assertNotIn(b"n5999 OK", r.buf)

    def test_oversize_literal_refused_before_continuation(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(b"a LOGIN {999999}\r\n")
        self.assertTrue(r.line().startswith(b"a BAD"))
        r.send(b"b NOOP\r\n")
        self.assertTrue(r.line().startswith(b"b OK"))
        r.close()

    def test_slow_trickle_is_cut_by_login_timeout(self):
        r = Raw(P.imap_port)
        r.line()
        t0 = time.monotonic()
        closed = False
        for ch in b"a LOGIN alice":
            try:
                r.send(bytes([ch]))
            except OSError:
                closed = True
                break
            time.sleep(0.5)
            if time.monotonic() - t0 > LOGIN_TIMEOUT + 3:
                break
        self.assertTrue(closed or r.closed(LOGIN_TIMEOUT + 3))
        self.assertLess(time.monotonic() - t0, LOGIN_TIMEOUT + 6)


class Operations(unittest.TestCase):
    def test_check_config_reports_file_and_line(self):
        bad = os.path.join(P.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write('daemon = { threads = 1; };\nlimits = { bogus = 1; };\n')
        res = subprocess.run([os.environ.get("POSTERN", ""), "-c", bad, "--check-config"],
                             capture_output=True, text=True)
        self.assertEqual(res.returncode, 1)
        self.assertIn("bad.conf:2: limits.bogus: unknown key", res.stderr)
        res = subprocess.run([os.environ.get("POSTERN", ""), "-c", P.conf_path,
                              "--check-config"], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_check_config_names_key_and_file(self):
        d = os.path.join(P.dir, "relative")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "postern.conf")
        with open(os.path.join(d, "map"), "w") as f:
            f.write("alice %s\n" % A.host)
        with open(conf, "w") as f:
            f.write('listen = ( { protocol = "imap"; address = "127.0.0.1:1"; '
                    'tls = "starttls"; } );\n'
                    'tls = { cert = "missing.pem"; key = "missing.key"; };\n'
                    'directory = { type = "file"; file = { path = "map"; }; };\n')
        # Named relative to another working directory: still next to the file.
        res = subprocess.run([os.environ.get("POSTERN", ""), "-c",
                              os.path.relpath(conf, P.dir), "--check-config"],
                             capture_output=True, text=True, cwd=P.dir)
        self.assertEqual(res.returncode, 1)
        self.assertIn("relative/postern.conf: tls.cert: %s/missing.pem: "
                      "No such file or directory" % d, res.stderr)

    def test_shipped_example_config_is_valid(self):
        top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        res = subprocess.run([os.environ.get("POSTERN", ""), "-c", "config/postern.conf",
                              "--check-config"], capture_output=True, text=True, cwd=top)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_lookup_command(self):
        res = subprocess.run([os.environ.get("POSTERN", ""), "-c", P.conf_path,
                              "--lookup", "Carol"], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("user: carol@example.org", res.stdout)
        self.assertIn("backend_user: c.jones", res.stdout)
        self.assertIn("host: %s" % B.host, res.stdout)

    def test_reload_moves_a_user(self):
        # Migration: move alice to store-b by editing one line, then SIGHUP.
        old = popmap(A, B)
        try:
            P.write_popmap(old.replace("alice@example.org   %s" % A.host,
                                       "alice@example.org   %s" % B.host))
            P.reload()
            deadline = time.monotonic() + 10
            while True:
                m = imap()
                try:
                    m.login("alice@example.org", "alice pw")
                    m.logout()
                    moved = False
                except imaplib.IMAP4.error:
                    moved = True  # store-b does not know alice: routed there
                if moved or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.assertTrue(moved)
            self.assertIn("configuration reloaded", P.log())
        finally:
            P.write_popmap(old)
            P.reload()
            time.sleep(0.5)

    def test_session_log_line(self):
        m = imap()
        m.login("bob@example.org", USERS_B["bob@example.org"])
        m.logout()
        time.sleep(0.3)
        log = P.log()
        self.assertIn("session end client=127.0.0.1:", log)
        self.assertIn("user=bob@example.org", log)
        self.assertNotIn(USERS_B["bob@example.org"], log)
        self.assertNotIn("alice pw", log)


class Limits(unittest.TestCase):
    def admitted_within(self, q, secs):
        """Connect until postern greets instead of refusing; the greeted one."""
        deadline = time.monotonic() + secs
        while True:
            again = Raw(q.imap_port)
            line = again.line()
            if line.startswith(b"* OK"):
                return again
            again.close()
            self.assertLess(time.monotonic(), deadline, line)
            time.sleep(0.1)

    def test_per_ip_and_connection_caps(self):
        def render(p):
            return config(A.imap_port, A.pop3_port)(p).replace(
                "limits = {", "limits = { per_ip = 3; connections = 4;")
        q = Postern(render, popmap=popmap(A, B)).start()
        held = []
        # The start-up probes (one connection per port) must be gone first.
        deadline = time.monotonic() + 5
        while q.log().count("session end") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            for _ in range(3):
                held.append(Raw(q.imap_port))
                self.assertTrue(held[-1].line().startswith(b"* OK"))
            # A fourth from this address is refused.  A closed start-up
            # probe may still count against the global cap for a moment
            # (freed after its close), so that refusal may come first.
            deadline = time.monotonic() + 5
            while True:
                extra = Raw(q.imap_port)
                self.assertIn(b"BYE Too many connections", extra.line())
                extra.close()
                if "limits.per_ip reached" in q.log():
                    break
                self.assertLess(time.monotonic(), deadline,
                                "no limits.per_ip refusal")
                time.sleep(0.05)
            # Another address still gets in, up to the global cap.
            held.append(Raw(q.imap_port, source="127.0.0.2"))
            self.assertTrue(held[-1].line().startswith(b"* OK"))
            extra = Raw(q.imap_port, source="127.0.0.3")
            self.assertIn(b"BYE Too many connections", extra.line())
            extra.close()
            held.pop(0).close()
            held.append(self.admitted_within(q, 5))
        finally:
            for r in held:
                r.close()
            q.stop()
            leaks, log = q.leaks(), q.log()
            q.cleanup()
        self.assertEqual(leaks, "")
        self.assertIn("limits.per_ip reached", log)

    def test_a_lingering_close_counts_until_it_ends(self):
        def render(p):
            return config(A.imap_port, A.pop3_port)(p).replace(
                "limits = {", "limits = { per_ip = 2;")
        q = Postern(render, popmap=popmap(A, B)).start()
        deadline = time.monotonic() + 5
        while q.log().count("session end") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = []
        try:
            # Closed by postern for bad commands; the client neither reads
            # to the end nor closes, so the close lingers (LINGER_MS, 2 s).
            bad = Raw(q.imap_port)
            held.append(bad)
            bad.line()
            bad.send(b"".join(b"x%d FROB\r\n" % i for i in range(6)))
            self.assertTrue(wait_until(lambda: "too many invalid commands" in q.log(), 5),
                            q.log()[-2000:])
            held.append(Raw(q.imap_port))
            self.assertTrue(held[-1].line().startswith(b"* OK"))
            # The lingering socket and one live session fill per_ip = 2.
            extra = Raw(q.imap_port)
            self.assertIn(b"BYE Too many connections", extra.line())
            extra.close()
            # Once the linger ends, the slot is free again.
            held.append(self.admitted_within(q, 10))
        finally:
            for r in held:
                r.close()
            q.stop()
            leaks = q.leaks()
            q.cleanup()
        self.assertEqual(leaks, "")


class ZZShutdown(unittest.TestCase):
    """Last: SIGTERM drains, exit is clean, and nothing leaked."""

    def test_sigterm_drains_and_no_leaks(self):
        m = imap()
        m.login("alice@example.org", USERS_A["alice@example.org"])
        P.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # A logged-in session keeps working while the daemon drains...
        self.assertEqual(m.noop()[0], "OK")
        # ...new connections are no longer accepted.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", P.imap_port), timeout=2).recv(1)
        m.logout()
        rc = P.stop()
        self.assertEqual(rc, 0, P.log()[-3000:])
        self.assertEqual(P.leaks(), "")


if __name__ == "__main__":
    sys.exit(main(__name__))
