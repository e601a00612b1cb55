"""End-to-end ManageSieve (RFC 5804): postern's sieve listeners in front of
Dovecot's Pigeonhole managesieved.  Scripts are uploaded, activated and
listed through postern, plain, with STARTTLS on the client side, and with
STARTTLS towards a store that requires it; refused and unknown logins; a
store that is down or mute; hostile clients (overlong lines, a huge
literal, bad commands, commands pipelined behind STARTTLS); after login,
UNAUTHENTICATE refused in front of a fake store that offers it.  The client is
a minimal RFC 5804 one below (the standard library has none), plus
sieve-connect when it is installed.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import (free_ports, loopback, make_server_cert,  # noqa: E402
                             make_tempdir, make_test_ca, remove_tempdir)
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.hostile import wait_until  # noqa: E402
from fixtures.postern import Postern, binary  # noqa: E402
from fixtures.slapd import Slapd, slapd_available  # noqa: E402
from lib import main  # noqa: E402

PLAIN = SECURE = P = None
CERTS = None
TMP = None
MUTE = None
FAKES = {}
PORTS = {}
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
SCRIPT = b'require ["fileinto"];\r\nif header :contains "subject" "x" {\r\n' \
         b'  fileinto "INBOX";\r\n}\r\nkeep;\r\n'
LINE_LENGTH = 4096
BAD_COMMANDS = 5
BACKEND_TIMEOUT = 3


def config(p: dict) -> str:
    return """
daemon = { threads = 2; log_level = "info"; drain = 2; control = "%(dir)s/ctl.sock";
           greeting = "postern \\"sieve\\" \\\\ ready"; };
timeouts = { login = 30; connect = 5; backend = %(backend_timeout)d; };
limits = { line_length = %(line_length)d; bad_commands = %(bad_commands)d;
           throttle = false; };
auth = { failure_delay = 0; };
tls = { cert = "%(cert)s"; key = "%(key)s"; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%(imap)d"; },
           { protocol = "pop3"; address = "127.0.0.1:%(pop3)d"; },
           { protocol = "sieve"; address = "127.0.0.1:%(sieve)d"; tls = "starttls"; },
           { protocol = "sieve"; address = "127.0.0.1:%(siever)d"; tls = "required"; },
           { protocol = "sieve"; address = "127.0.0.1:%(sieven)d"; } );
directory = { type = "file"; file = { path = "%(popmap)s"; }; };
backends = (
  { name = "secure.example.net"; addresses = "%(secure_addr)s"; tls = "starttls";
    ca_file = "%(ca)s"; sieve_port = %(b_sieve_secure)d; }
);
backend = { sieve_port = %(b_sieve)d; };
""" % dict(PORTS, popmap=p["popmap"], imap=p["imap"], pop3=p["pop3"], dir=p["dir"],
           line_length=LINE_LENGTH, bad_commands=BAD_COMMANDS,
           backend_timeout=BACKEND_TIMEOUT)


class FakeStore:
    """A ManageSieve store that misbehaves at login: one thread per
    connection, every byte it was sent recorded."""

    GREETING = b'"IMPLEMENTATION" "fake"\r\n"SASL" "PLAIN"\r\nOK "hi"\r\n'

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.received = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        got = b""
        try:
            if self.behaviour == "garbage":
                conn.sendall(b"* OK IMAP4rev1 ready\r\n")
            elif self.behaviour == "slow":
                for b in self.GREETING:
                    conn.sendall(bytes([b]))
                    time.sleep(0.5)
            else:
                conn.sendall(self.GREETING)
            conn.settimeout(10)
            while b"\r\n" not in got:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                got += chunk
            self.received.append(got)
            if self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            elif self.behaviour == "challenge":
                conn.sendall(b'"c2FsdA=="\r\n')
            elif self.behaviour == "bye":
                conn.sendall(b'BYE "going away"\r\n')
            elif self.behaviour == "unauth":
                conn.sendall(b'OK "welcome"\r\n')
                self._commands(conn, got.split(b"\r\n", 1)[1])
            elif self.behaviour == "accept":
                # Record what the relay brings after the login, too.
                conn.sendall(b'OK "welcome"\r\n')
                conn.settimeout(2)
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    self.received[-1] += chunk
        except OSError:
            pass
        finally:
            conn.close()

    CAPS = (b'"IMPLEMENTATION" "fake"\r\n"SIEVE" "fileinto"\r\n'
            b'"UNAUTHENTICATE"\r\n"VERSION" "1.0"\r\nOK\r\n')

    KNOWN = (b"CAPABILITY", b"UNAUTHENTICATE", b"AUTHENTICATE", b"SLOW",
             b"PUTSCRIPT", b"NOOP", b"LOGOUT", b"DIE")

    def _commands(self, conn, pending: bytes):
        """After the login, a store that offers UNAUTHENTICATE (RFC 5804
        2.14.1).  Commands are parsed as lines with literals; SLOW answers
        after a second, PUTSCRIPT echoes its script's length, DIE closes
        unanswered, every byte is recorded."""
        buf = pending
        conn.settimeout(10)

        def more():
            nonlocal buf
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError
            self.received[-1] += chunk
            buf += chunk

        try:
            while True:
                line = b""
                while True:
                    while b"\r\n" not in buf:
                        more()
                    l, buf = buf.split(b"\r\n", 1)
                    line += l
                    # Like Pigeonhole, an unknown command's line is
                    # rejected unread: its literal's octets are commands.
                    if line.split(b" ", 1)[0].upper() not in self.KNOWN:
                        break
                    # Pigeonhole reads "{}" and "{+}" as empty literals.
                    m = re.search(rb"\{(\d*)\+?\}$", l)
                    if not m:
                        break
                    n = int(m.group(1) or b"0")
                    while len(buf) < n:
                        more()
                    line += b"\r\n" + buf[:n]
                    buf = buf[n:]
                word = line.split(b" ", 1)[0].upper()
                if word == b"CAPABILITY":
                    conn.sendall(self.CAPS)
                elif word == b"UNAUTHENTICATE":
                    conn.sendall(b'OK "Unauthenticated"\r\n')
                elif word == b"AUTHENTICATE":
                    conn.sendall(b'OK "Logged in again"\r\n')
                elif word == b"SLOW":
                    time.sleep(1)
                    conn.sendall(b'OK "slow"\r\n')
                elif word == b"PUTSCRIPT":
                    conn.sendall(b'OK "stored %d"\r\n' % len(line))
                elif word == b"LOGOUT":
                    conn.sendall(b'OK "bye"\r\n')
                    return
                elif word == b"DIE":
                    return
                else:
                    conn.sendall(b'NO "what is %s"\r\n' % word)
        except (EOFError, OSError):
            return

    def close(self):
        self.sock.close()


def setUpModule():
    global PLAIN, SECURE, P, CERTS, TMP, MUTE
    TMP = make_tempdir("postern-sieve-")
    CERTS = make_test_ca(TMP, ["localhost", "127.0.0.1"])
    stores = make_server_cert(CERTS, TMP, ["secure.example.net", loopback(2)],
                              stem="stores")
    (PORTS["sieve"], PORTS["siever"], PORTS["sieven"], PORTS["b_sieve"],
     PORTS["b_sieve_secure"], PORTS["down"]) = free_ports(6)
    PORTS.update(cert=CERTS.cert, key=CERTS.key, ca=CERTS.ca_cert,
                 secure_addr=loopback(2))
    # A store that accepts connections and never says a word.
    MUTE = socket.socket()
    MUTE.bind(("127.0.0.1", 0))
    MUTE.listen(16)
    for b in ("garbage", "slow", "reset", "challenge", "bye", "accept",
              "unauth"):
        FAKES[b] = FakeStore(b)
    PLAIN = Dovecot("sieveplain", {"alice": USERS["alice"]}, host="127.0.0.1",
                    managesieve=True, sieve_port=PORTS["b_sieve"]).start()
    SECURE = Dovecot("sievesecure", {"bob": USERS["bob"]}, host=loopback(2),
                     ssl={"cert": stores.cert, "key": stores.key, "mode": "required"},
                     managesieve=True, sieve_port=PORTS["b_sieve_secure"]).start()
    P = Postern(config, popmap="alice 127.0.0.1\nbob secure.example.net\n"
                "carol 127.0.0.1\ndown 127.0.0.1:%d\nmute 127.0.0.1:%d\n"
                % (PORTS["down"], MUTE.getsockname()[1]) +
                "".join("fake-%s 127.0.0.1:%d\n" % (b, f.port) for b, f in FAKES.items()) +
                # The next host after one that gives no greeting, or one
                # that fails after it.
                "".join("fo-%s 127.0.0.1:%d,127.0.0.1 alice\n" % (b, port) for b, port in (
                    ("garbage", FAKES["garbage"].port), ("mute", MUTE.getsockname()[1]),
                    ("challenge", FAKES["challenge"].port)))
                ).start()


def tearDownModule():
    if P is not None:
        P.cleanup()
    stop_all(*(x for x in (PLAIN, SECURE) if x is not None))
    if MUTE is not None:
        MUTE.close()
    for f in FAKES.values():
        f.close()
    remove_tempdir(TMP)


def client_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=CERTS.ca_cert)
    ctx.check_hostname = False
    return ctx


def plain_b64(user: str, password: str, authzid: str = "") -> bytes:
    return base64.b64encode(b"%s\0%s\0%s" % (authzid.encode(), user.encode(),
                                              password.encode()))


class Sieve:
    """A minimal RFC 5804 client: lines, server literals, the final response."""

    def __init__(self, port: int, timeout: float = 15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; got %r" % self.buf)
        self.buf += chunk

    def line(self) -> bytes:
        """One logical line: a literal's data stays inside it."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            l, self.buf = self.buf.split(b"\r\n", 1)
            out += l
            m = re.search(rb"\{(\d+)\+?\}$", l)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def response(self):
        """(data lines, the OK/NO/BYE line)."""
        lines = []
        while True:
            l = self.line()
            if re.match(rb"(OK|NO|BYE)( |$)", l):
                return lines, l
            lines.append(l)

    def ok(self, command: bytes):
        self.send(command)
        lines, last = self.response()
        if not last.startswith(b"OK"):
            raise AssertionError("%r answered %r" % (command[:60], last))
        return lines

    def starttls(self) -> list:
        self.ok(b"STARTTLS\r\n")
        self.sock = client_ctx().wrap_socket(self.sock, server_hostname="localhost")
        return self.response()[0]

    def auth(self, user: str, password: str) -> bytes:
        self.send(b'AUTHENTICATE "PLAIN" "%s"\r\n' % plain_b64(user, password))
        return self.response()[1]

    def closed(self, timeout: float = 10) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


def caps(lines) -> dict:
    out = {}
    for l in lines:
        words = re.findall(rb'"([^"]*)"', l)
        if words:
            out[words[0].upper()] = words[1] if len(words) > 1 else b""
    return out


def upload_and_list(c: Sieve, name: bytes) -> list:
    c.ok(b'PUTSCRIPT "%s" {%d+}\r\n%s\r\n' % (name, len(SCRIPT), SCRIPT))
    c.ok(b'SETACTIVE "%s"\r\n' % name)
    lines = c.ok(b"LISTSCRIPTS\r\n")
    got = c.ok(b'GETSCRIPT "%s"\r\n' % name)
    assert got and got[0].endswith(SCRIPT), got
    return lines


class Greeting(unittest.TestCase):
    def test_capabilities_before_login(self):
        c = Sieve(PORTS["sieve"])
        lines, last = c.response()
        got = caps(lines)
        self.assertEqual(got[b"IMPLEMENTATION"], b"postern")
        self.assertEqual(got[b"SASL"], b"PLAIN")
        self.assertEqual(got[b"VERSION"], b"1.0")
        self.assertIn(b"STARTTLS", got)
        self.assertIn(b"fileinto", got[b"SIEVE"].split())
        self.assertIn(b"NOTIFY", got)
        # daemon.greeting, escaped inside the quoted string.
        self.assertEqual(last, b'OK "postern \\"sieve\\" \\\\ ready"')
        self.assertEqual(caps(c.ok(b"CAPABILITY\r\n")), got)
        self.assertEqual(c.ok(b'NOOP "t\\"1"\r\n'), [])
        c.send(b'NOOP "t\\"1"\r\n')
        self.assertEqual(c.response()[1], b'OK (TAG "t\\"1") "Done"')
        c.send(b"LOGOUT\r\n")
        self.assertTrue(c.response()[1].startswith(b"OK"))
        self.assertTrue(c.closed())

    def test_no_starttls_without_tls(self):
        c = Sieve(PORTS["sieven"])
        got = caps(c.response()[0])
        self.assertNotIn(b"STARTTLS", got)
        c.send(b"STARTTLS\r\n")
        self.assertTrue(c.response()[1].startswith(b"NO"))
        c.close()


class Scripts(unittest.TestCase):
    def test_upload_activate_list_plain(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        self.assertTrue(c.auth("alice", "alice-pw").startswith(b"OK"))
        # After login the capabilities are the store's, asked through the relay.
        self.assertIn(b"Pigeonhole", caps(c.ok(b"CAPABILITY\r\n"))[b"IMPLEMENTATION"])
        lines = upload_and_list(c, b"plain")
        self.assertIn(b'"plain" ACTIVE', lines)
        c.ok(b"LOGOUT\r\n")
        self.assertTrue(os.path.exists(os.path.join(PLAIN.home("alice"), "sieve",
                                                    "plain.sieve")))

    def test_starttls_client_side(self):
        c = Sieve(PORTS["sieve"])
        c.response()
        again = caps(c.starttls())
        self.assertNotIn(b"STARTTLS", again)
        self.assertEqual(again[b"SASL"], b"PLAIN")
        self.assertTrue(c.auth("alice", "alice-pw").startswith(b"OK"))
        self.assertIn(b'"tls" ACTIVE', upload_and_list(c, b"tls"))
        c.ok(b"LOGOUT\r\n")

    def test_backend_over_starttls(self):
        c = Sieve(PORTS["sieve"])
        c.response()
        c.starttls()
        self.assertTrue(c.auth("bob", "bob-pw").startswith(b"OK"))
        self.assertIn(b'"secure" ACTIVE', upload_and_list(c, b"secure"))
        c.ok(b"LOGOUT\r\n")
        self.assertIn("user=bob backend=%s:" % loopback(2), P.log())

    def test_authenticate_forms(self):
        b64 = plain_b64("alice", "alice-pw")
        # Initial response as a literal.
        c = Sieve(PORTS["sieven"])
        c.response()
        self.assertTrue(c.ok(b'AUTHENTICATE "PLAIN" {%d+}\r\n%s\r\n' % (len(b64), b64)) == [])
        c.ok(b"LISTSCRIPTS\r\n")
        c.close()
        # After the empty challenge, as a quoted string, then as a literal.
        for answer in (b'"%s"\r\n' % b64, b"{%d+}\r\n%s\r\n" % (len(b64), b64)):
            c = Sieve(PORTS["sieven"])
            c.response()
            c.send(b'AUTHENTICATE "PLAIN"\r\n')
            self.assertEqual(c.line(), b'""')
            c.send(answer)
            self.assertTrue(c.response()[1].startswith(b"OK"), answer)
            c.ok(b"LISTSCRIPTS\r\n")
            c.close()
        # Cancelled, then a wrong mechanism, then a login that works.
        c = Sieve(PORTS["sieven"])
        c.response()
        c.send(b'AUTHENTICATE "PLAIN"\r\n')
        self.assertEqual(c.line(), b'""')
        c.send(b'"*"\r\n')
        self.assertTrue(c.response()[1].startswith(b"NO"))
        c.send(b'AUTHENTICATE "DIGEST-MD5"\r\n')
        self.assertTrue(c.response()[1].startswith(b"NO"))
        self.assertTrue(c.auth("alice", "alice-pw").startswith(b"OK"))
        c.close()

    @unittest.skipUnless(shutil.which("sieve-connect"), "sieve-connect not installed")
    def test_sieve_connect(self):
        path = os.path.join(TMP, "connect.sieve")
        with open(path, "wb") as f:
            f.write(SCRIPT)
        base = ["sieve-connect", "--server", "127.0.0.1", "--port", str(PORTS["sieve"]),
                "--user", "alice", "--passwordfd", "0", "--tlscafile", CERTS.ca_cert,
                "--noclearauth", "--authmech", "PLAIN", "--notlsverify"]
        for extra in (["--upload", "--localsieve", path, "--remotesieve", "connect"],
                      ["--activate", "--remotesieve", "connect"], ["--list"]):
            r = subprocess.run(base + extra, input=b"alice-pw\n", capture_output=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, (extra, r.stdout, r.stderr))
        self.assertIn(b"connect", r.stdout)


class Refusals(unittest.TestCase):
    def test_wrong_password(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        last = c.auth("alice", "wrong")
        self.assertTrue(last.startswith(b"NO"), last)
        self.assertNotIn(b"TRYLATER", last)
        self.assertTrue(c.auth("alice", "alice-pw").startswith(b"OK"))
        c.close()

    def test_unknown_users(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        for user in ("nobody-here", "carol"):   # not in the directory; not on the store
            last = c.auth(user, "pw")
            self.assertTrue(last.startswith(b"NO"), (user, last))
            self.assertNotIn(b"TRYLATER", last)
        c.close()

    def test_required_listener(self):
        c = Sieve(PORTS["siever"])
        got = caps(c.response()[0])
        self.assertNotIn(b"PLAIN", got[b"SASL"])
        self.assertIn(b"STARTTLS", got)
        self.assertTrue(c.auth("alice", "alice-pw").startswith(b"NO (ENCRYPT-NEEDED)"))
        c.starttls()
        self.assertTrue(c.auth("alice", "alice-pw").startswith(b"OK"))
        c.close()

    def test_backend_down_is_trylater_promptly(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        t0 = time.monotonic()
        last = c.auth("down", "pw")
        self.assertTrue(last.startswith(b"NO (TRYLATER)"), last)
        self.assertLess(time.monotonic() - t0, 3)
        c.close()

    def test_backend_mute_is_trylater(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        t0 = time.monotonic()
        last = c.auth("mute", "pw")
        self.assertTrue(last.startswith(b"NO (TRYLATER)"), last)
        self.assertLess(time.monotonic() - t0, BACKEND_TIMEOUT + 3)
        # The session goes on: a real login still works.
        self.assertTrue(c.auth("alice", "alice-pw").startswith(b"OK"))
        c.close()


class BrokenStores(unittest.TestCase):
    def test_each_failure_is_trylater_and_the_session_goes_on(self):
        for b in ("garbage", "slow", "reset", "challenge", "bye"):
            c = Sieve(PORTS["sieven"])
            c.response()
            t0 = time.monotonic()
            last = c.auth("fake-" + b, "pw")
            self.assertTrue(last.startswith(b"NO (TRYLATER)"), (b, last))
            self.assertLess(time.monotonic() - t0, BACKEND_TIMEOUT + 3, b)
            self.assertTrue(c.auth("alice", "alice-pw").startswith(b"OK"), b)
            c.close()

    def test_no_greeting_moves_on_to_the_next_host(self):
        for b, reason in (("garbage", "greeting: unexpected capability line"),
                          ("mute", "greeting: backend did not answer in time")):
            c = Sieve(PORTS["sieven"])
            c.response()
            last = c.auth("fo-" + b, USERS["alice"])
            self.assertTrue(last.startswith(b"OK"), (b, last))
            c.close()
            port = FAKES[b].port if b in FAKES else MUTE.getsockname()[1]
            self.assertRegex(P.log(), r'backend connect failed client=\S+ user="fo-%s" '
                             r'proto=sieve backend=127\.0\.0\.1:%d reason="%s"'
                             % (b, port, re.escape(reason)))
            self.assertRegex(P.log(), r"login ok client=\S+ proto=sieve user=fo-%s "
                             r"backend=127\.0\.0\.1:%d\b" % (b, PORTS["b_sieve"]))

    def test_failure_after_the_greeting_is_not_retried(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        last = c.auth("fo-challenge", USERS["alice"])
        self.assertTrue(last.startswith(b"NO (TRYLATER)"), last)
        c.close()
        log = P.log()
        self.assertRegex(log, r'backend login failed client=\S+ user="fo-challenge" '
                         r'proto=sieve backend=127\.0\.0\.1:%d ' % FAKES["challenge"].port)
        self.assertNotRegex(log, r'user="?fo-challenge"? .*backend=127\.0\.0\.1:%d\b'
                            % PORTS["b_sieve"])

    def test_store_gets_only_what_postern_built(self):
        # Quotes, a backslash and UTF-8 in the password; commands pipelined
        # behind the login wait for the relay.
        pw = 'p"w\\ \u00fc {5}\r'.replace("\r", "")
        c = Sieve(PORTS["sieven"])
        c.response()
        c.send(b'AUTHENTICATE "PLAIN" "%s"\r\nLISTSCRIPTS\r\n'
               % plain_b64("fake-accept", pw))
        self.assertEqual(c.response()[1], b'OK "Logged in"')
        time.sleep(0.3)
        c.close()
        time.sleep(0.3)
        self.assertEqual(FAKES["accept"].received[-1],
                         b'AUTHENTICATE "PLAIN" "%s"\r\n' % plain_b64("fake-accept", pw)
                         + b"LISTSCRIPTS\r\n")


class Unauthenticate(unittest.TestCase):
    """After login the relay is a byte pump, but UNAUTHENTICATE (and the
    other commands of the unauthenticated state) is answered by postern
    and never reaches the store, which would let the client log in again
    as anyone."""

    def login(self) -> Sieve:
        c = Sieve(PORTS["sieven"])
        c.response()
        self.assertTrue(c.auth("fake-unauth", "pw").startswith(b"OK"))
        return c

    def test_refused_and_never_forwarded(self):
        c = self.login()
        caps_lines = c.ok(b"CAPABILITY\r\n")
        self.assertIn(b"UNAUTHENTICATE", caps(caps_lines))
        for cmd in (b"UNAUTHENTICATE\r\n", b"unAuthenticate\r\n",
                    b"  UNAUTHENTICATE\r\n", b'AUTHENTICATE "PLAIN" "eA=="\r\n',
                    b"STARTTLS\r\n"):
            c.send(cmd)
            lines, last = c.response()
            self.assertEqual(lines, [], cmd)
            self.assertTrue(last.startswith(b"NO "), (cmd, last))
        # Sent a byte at a time, it is caught all the same.
        for b in b"Unauthenticate\r\n":
            c.send(bytes([b]))
            time.sleep(0.01)
        self.assertEqual(c.response()[1],
                         b'NO "UNAUTHENTICATE is not available through this proxy"')
        # A script holding the word, as a literal and as a quoted string,
        # passes byte for byte.
        body = b"# UNAUTHENTICATE\r\nkeep; # UNAUTHENTICATE\r\n"
        put = (b'PUTSCRIPT "UNAUTHENTICATE" {%d+}\r\n%s\r\n' % (len(body), body) +
               b'PUTSCRIPT "x" "UNAUTHENTICATE"\r\n')
        c.send(put)
        self.assertTrue(c.response()[1].startswith(b'OK "stored'))
        self.assertTrue(c.response()[1].startswith(b'OK "stored'))
        c.ok(b"LOGOUT\r\n")
        self.assertTrue(c.closed())
        time.sleep(0.3)
        got = FAKES["unauth"].received[-1]
        after = got.split(b"\r\n", 1)[1]
        self.assertEqual(after, b"CAPABILITY\r\n" + put + b"LOGOUT\r\n")

    def test_pipelined_answers_stay_in_order(self):
        # The store takes a second over SLOW: postern's NO must wait for
        # its answer, and NOOP's after it.
        c = self.login()
        c.send(b"SLOW\r\nUNAUTHENTICATE\r\nNOOP\r\nUNAUTHENTICATE\r\n"
               b"CAPABILITY\r\n")
        self.assertEqual(c.response()[1], b'OK "slow"')
        r = c.response()[1]
        self.assertTrue(r.startswith(b"NO \"UNAUTHENTICATE"), r)
        self.assertEqual(c.response()[1], b'NO "what is NOOP"')
        r = c.response()[1]
        self.assertTrue(r.startswith(b"NO \"UNAUTHENTICATE"), r)
        self.assertEqual(c.response()[1], b"OK")
        c.close()

    def test_pipelined_behind_the_login(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        c.send(b'AUTHENTICATE "PLAIN" "%s"\r\nUNAUTHENTICATE\r\nSLOW\r\n'
               % plain_b64("fake-unauth", "pw"))
        self.assertEqual(c.response()[1], b'OK "Logged in"')
        r = c.response()[1]
        self.assertTrue(r.startswith(b"NO \"UNAUTHENTICATE"), r)
        self.assertEqual(c.response()[1], b'OK "slow"')
        c.close()
        time.sleep(0.3)
        self.assertNotIn(b"UNAUTHENTICATE", FAKES["unauth"].received[-1])

    def test_command_in_an_unread_literal_closes(self):
        # A store that rejects a line unread (Pigeonhole on an unknown
        # command, Cyrus on a parse error) takes its literal's octets as
        # commands: the session ends before the smuggled line's end.
        auth = b'AUTHENTICATE "PLAIN" "%s"' % plain_b64("other", "pw")
        for wire in (b"XFOO {16+}\r\nUNAUTHENTICATE\r\n\r\n",
                     b"NOOP{16+}\r\nUNAUTHENTICATE\r\n\r\n",
                     b'PUTSCRIPT x"\\q" {16+}\r\nUNAUTHENTICATE\r\n\r\n',
                     b"XFOO {%d+}\r\n%s\r\n\r\n" % (len(auth) + 2, auth),
                     b"XFOO {3+}\r\nx\n unauthenticate\r\n",
                     b"XFOO {0+}\r\nStartTLS\r\n"):
            c = self.login()
            c.send(b"NOOP\r\n" + wire)
            self.assertTrue(c.closed(), wire)
            time.sleep(0.3)
            got = FAKES["unauth"].received[-1].split(b"\r\n", 1)[1]
            self.assertNotIn(b"AUTHENTICATE\r\n", got.upper(), wire)
            self.assertNotIn(b"AUTHENTICATE \"", got.upper(), wire)
            self.assertNotIn(b"STARTTLS\r\n", got.upper(), wire)
        self.assertIn("refused command inside a literal", P.log())
        # A script line that is no such command passes; a refused
        # command's literal reaches nobody.
        c = self.login()
        body = b"keep;\r\n  # STARTTLS\r\n"
        c.send(b"XFOO {%d+}\r\n%s\r\nNOOP\r\n" % (len(body), body))
        # (This store answers each of those lines.)
        while c.response()[1] != b'NO "what is NOOP"':
            pass
        c.send(b"STARTTLS {16+}\r\nUNAUTHENTICATE\r\n\r\n")
        self.assertEqual(c.response()[1],
                         b'NO "STARTTLS is not available after login"')
        c.ok(b"LOGOUT\r\n")
        c.close()

    def test_empty_literal_keeps_the_count(self):
        # "{}" is a literal of nothing to the store: one command, one
        # answer, and the refusal behind it is not kept waiting.
        c = self.login()
        c.send(b"NOOP {}\r\nNOOP\r\nNOOP {+}\r\n\r\nUNAUTHENTICATE\r\n")
        self.assertEqual(c.response()[1], b'NO "what is NOOP"')
        self.assertEqual(c.response()[1], b'NO "what is NOOP"')
        r = c.response()[1]
        self.assertTrue(r.startswith(b"NO \"UNAUTHENTICATE"), r)
        c.close()

    def test_empty_lines_are_dropped(self):
        # The store would answer an empty line; postern drops it, so its
        # NO stays behind the store's answers and nothing else comes.
        c = self.login()
        c.send(b"\r\nSLOW\r\n\r\n \t\r\n\nUNAUTHENTICATE\r\n\r\n"
               b"CAPABILITY\r\n")
        self.assertEqual(c.response()[1], b'OK "slow"')
        r = c.response()[1]
        self.assertTrue(r.startswith(b"NO \"UNAUTHENTICATE"), r)
        self.assertEqual(c.response()[1], b"OK")
        c.ok(b"LOGOUT\r\n")
        self.assertTrue(c.closed())
        time.sleep(0.3)
        got = FAKES["unauth"].received[-1].split(b"\r\n", 1)[1]
        self.assertEqual(got, b"SLOW\r\nCAPABILITY\r\nLOGOUT\r\n")

    def test_store_closing_under_a_refusal(self):
        # The store closes without answering what the refusal waits for:
        # the refusal is dropped and the session ends with the client's
        # close, not at the idle timeout.
        ends = re.compile(r'session end .*proto=sieve user=fake-unauth .*'
                          r'outcome="closed"')
        before = len(ends.findall(P.log()))
        c = self.login()
        c.send(b"DIE\r\nUNAUTHENTICATE\r\nNOOP\r\n")
        self.assertTrue(c.closed())
        c.close()
        self.assertTrue(wait_until(
            lambda: len(ends.findall(P.log())) > before, 5))

    def test_oversized_literal_closes(self):
        c = self.login()
        c.send(b'PUTSCRIPT "x" {99999999999}\r\n')
        self.assertTrue(c.closed())


class Hostile(unittest.TestCase):
    def test_overlong_line(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        c.send(b'NOOP "' + b"x" * (LINE_LENGTH + 100) + b'"\r\n')
        last = c.response()[1]
        self.assertTrue(last.startswith(b"NO") and b"too long" in last, last)
        c.send(b'NOOP "ok"\r\n')
        self.assertEqual(c.response()[1], b'OK (TAG "ok") "Done"')
        c.close()

    def test_noop_tag_bound(self):
        # The tag comes back in a quoted string: 1024 octets at most.
        c = Sieve(PORTS["sieven"])
        c.response()
        c.send(b'NOOP "%s"\r\n' % (b"t" * 1024))
        self.assertEqual(c.response()[1], b'OK (TAG "%s") "Done"' % (b"t" * 1024))
        c.send(b'NOOP "%s"\r\n' % (b"t" * 1025))
        self.assertEqual(c.response()[1], b'NO "NOOP tag too long"')
        c.close()

    def test_huge_literal_closes(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        c.send(b'AUTHENTICATE "PLAIN" {100000000+}\r\n' + b"A" * 1000)
        last = c.response()[1]
        self.assertTrue(last.startswith(b"BYE") and b"literal too large" in last, last)
        self.assertTrue(c.closed())

    def test_literal_at_the_bound(self):
        # limits.line_length counts the whole command, literal and CRLF
        # included: at the bound it passes; a byte more is a long line
        # (read and refused); a literal that cannot fit even before its
        # data ends the session, since the client is already sending it.
        c = Sieve(PORTS["sieven"])
        c.response()
        head = b'PUTSCRIPT "x" {%d+}\r\n'
        n = LINE_LENGTH - len(head % LINE_LENGTH) - 2
        c.send(head % n + b"y" * n + b"\r\n")
        last = c.response()[1]    # read whole: refused as a command, not as long
        self.assertTrue(last.startswith(b"NO") and b"too long" not in last, last)
        c.send(head % (n + 1) + b"y" * (n + 1) + b"\r\n")
        last = c.response()[1]
        self.assertTrue(last.startswith(b"NO") and b"too long" in last, last)
        c.send(head % (n + 3) + b"y" * (n + 3) + b"\r\n")
        last = c.response()[1]
        self.assertTrue(last.startswith(b"BYE") and b"literal too large" in last, last)
        self.assertTrue(c.closed())

    def test_bad_commands_close(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        c.send(b"LISTSCRIPTS\r\nPUTSCRIPT \"a\" {1+}\r\nx\r\nBOGUS\r\n(\r\n"
               b"CAPABILITY \"x\"\r\n")
        answers = [c.response()[1] for _ in range(BAD_COMMANDS)]
        self.assertTrue(all(a.startswith(b"NO") for a in answers), answers)
        self.assertTrue(c.response()[1].startswith(b"BYE"))
        self.assertTrue(c.closed())
        self.assertFalse(os.path.exists(os.path.join(PLAIN.home("alice"), "sieve", "a.sieve")))

    def test_starttls_injection_is_discarded(self):
        c = Sieve(PORTS["sieve"])
        c.response()
        c.send(b'STARTTLS\r\nAUTHENTICATE "PLAIN" "%s"\r\nPUTSCRIPT "inj" {1+}\r\nx\r\n'
               % plain_b64("alice", "alice-pw"))
        self.assertTrue(c.response()[1].startswith(b"OK"))
        c.sock = client_ctx().wrap_socket(c.sock, server_hostname="localhost")
        self.assertNotIn(b"STARTTLS", caps(c.response()[0]))
        c.send(b'NOOP "after"\r\n')
        # The first answer is to this NOOP: nothing sent in plaintext ran.
        self.assertEqual(c.response()[1], b'OK (TAG "after") "Done"')
        c.send(b"LISTSCRIPTS\r\n")
        self.assertTrue(c.response()[1].startswith(b"NO"))
        c.close()
        self.assertFalse(os.path.exists(os.path.join(PLAIN.home("alice"), "sieve",
                                                     "inj.sieve")))

    def test_reset_mid_literal(self):
        c = Sieve(PORTS["sieven"])
        c.response()
        c.send(b'AUTHENTICATE "PLAIN" {200+}\r\nAGFs')
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        c.close()
        c = Sieve(PORTS["sieven"])
        c.response()
        self.assertTrue(c.auth("alice", "alice-pw").startswith(b"OK"))
        c.close()


class ConnectionLimit(unittest.TestCase):
    def test_per_ip_refusal_is_a_sieve_bye(self):
        port, = free_ports(1)
        conf = """
daemon = { threads = 1; drain = 1; };
limits = { per_ip = 1; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%%(imap)d"; },
           { protocol = "pop3"; address = "127.0.0.1:%%(pop3)d"; },
           { protocol = "sieve"; address = "127.0.0.1:%d"; } );
directory = { type = "file"; file = { path = "%%(popmap)s"; }; };
""" % port
        q = Postern(lambda p: conf % p).start()
        try:
            # The fixture's own probes may still hold the slot for a moment.
            deadline = time.monotonic() + 5
            while True:
                first = Sieve(port)
                if first.line().startswith(b'"IMPLEMENTATION"'):
                    break
                first.close()
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            first.response()
            second = Sieve(port)
            self.assertEqual(second.line(),
                             b'BYE (TRYLATER) "Too many connections, try again later"')
            self.assertTrue(second.closed())
            first.close()
        finally:
            q.stop()
            self.assertEqual(q.leaks(), "")
            q.cleanup()


class MasterLogin(unittest.TestCase):
    """backend.login = "master" with auth.verify = "ldap-bind": slapd checks
    the client's password, then postern authenticates to the store as the
    master user, authorised as the user (the store's own password for the
    user is one nobody types)."""

    @unittest.skipUnless(slapd_available(), "slapd not installed")
    def test_master_user_login(self):
        store = Dovecot("sievemaster", {"kim": "never-typed"}, host=loopback(7),
                        master={"user": "proxy", "password": "master-pw"},
                        managesieve=True).start()
        ldap = q = None
        port, = free_ports(1)
        try:
            ldap = Slapd().start()
            conf = """
daemon = { threads = 1; log_level = "info"; drain = 1; };
limits = { throttle = false; };
auth = { verify = "ldap-bind"; failure_delay = 0; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%%(imap)d"; },
           { protocol = "pop3"; address = "127.0.0.1:%%(pop3)d"; },
           { protocol = "sieve"; address = "127.0.0.1:%d"; } );
directory = { type = "ldap"; cache = { entries = 0; };
              ldap = { uri = "%s"; base = "%s"; bind_dn = "%s"; bind_password = "%s"; }; };
backends = ( { name = "store-b.example.net"; addresses = "%s"; sieve_port = %d; } );
backend = { login = "master"; master_user = "proxy"; master_password = "master-pw"; };
""" % (port, ldap.uri, ldap.base, ldap.bind_dn, ldap.bind_password, loopback(7),
                store.sieve_port)
            q = Postern(lambda p: conf % p).start()
            c = Sieve(port)
            c.response()
            self.assertTrue(c.auth("kim", "wrong").startswith(b"NO"))
            self.assertTrue(c.auth("kim", "kim-secret").startswith(b"OK"))
            self.assertIn(b'"master" ACTIVE', upload_and_list(c, b"master"))
            c.ok(b"LOGOUT\r\n")
            self.assertTrue(os.path.exists(os.path.join(store.home("kim"), "sieve",
                                                        "master.sieve")))
        finally:
            if q is not None:
                q.stop()
                self.assertEqual(q.leaks(), "")
                q.cleanup()
            if ldap is not None:
                ldap.cleanup()
            stop_all(store)


class Control(unittest.TestCase):
    def ctl(self, *args) -> str:
        r = subprocess.run([binary(), "ctl", "-c", P.conf_path] + list(args),
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    def test_route_knows_sieve(self):
        out = self.ctl("route", "bob", "sieve")
        self.assertIn("proto=sieve", out)
        self.assertIn("hosts=secure.example.net", out)
        self.assertIn("status=not-found", self.ctl("route", "nobody", "sieve"))


class ZZShutdown(unittest.TestCase):
    def test_zz_clean_exit(self):
        rc = P.stop()
        self.assertEqual(rc, 0, P.log()[-2000:])
        self.assertEqual(P.leaks(), "")


if __name__ == "__main__":
    sys.exit(main(__name__))
