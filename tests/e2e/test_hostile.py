"""End-to-end: postern against hostile clients, misbehaving backends and a
failing directory.  Every peer here is mute, slow, floods or resets at some
step; each test checks that the client concerned gets a clear answer or a
clean close (never a hang), that everybody else keeps being served, and
that postern ends with no sanitizer report.

The peers come from fixtures/hostile.py (HostileBackend, FakeLdap,
SlowLoris); one real Dovecot store serves the logins that must keep
working, and checks what a trusting store logs of a forged ID.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import (free_ports, loopback, make_tempdir,  # noqa: E402
                             make_test_ca, remove_tempdir)
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.hostile import (BARE_CR, ENTRY_DN, FakeLdap, HostileBackend,  # noqa: E402
                              SlowLoris, half_close, raise_fd_limit, rst_close,
                              wait_until)
from fixtures.postern import Postern, binary  # noqa: E402
from lib import Raw, main  # noqa: E402

USERS = {"alice": "alice pw", "bob": "bob pw"}
CONNECT_TIMEOUT = 2
BACKEND_TIMEOUT = 4
LOOKUP_TIMEOUT = 2
# A client waits at most this long for any answer: well past every postern
# deadline, so a hang is a failure and not a slow pass.
PATIENCE = 20

STORE = None          # the real Dovecot store
P = None              # the main postern: file map, default limits
BACKENDS = {}         # user -> HostileBackend
PEERS = []            # everything to stop at the end
TMP = None

IMAP_STEPS = ("greeting", "capability", "id", "login")
# A plain POP3 backend is asked nothing before USER/PASS: its CAPA step
# never fires during the login (the relay tests cover it after).
POP3_STEPS = ("greeting", "login")
ACTIONS = ("ok", "mute", "slow", "flood", "reset", "close", "garbage",
           "long_untagged", "long_capability", "bare_cr", "refuse")
# What the client sees when the backend does <action> at any login step.
SERVED = {"ok", "slow", "long_untagged", "long_capability", "bare_cr"}
REFUSED = {"refuse"}
CAPS_STEPS = {"imap": ("greeting", "capability", "login"), "pop3": ()}


def case_user(proto: str, step: str, action: str) -> str:
    return "%s-%s-%s" % (proto, step, action)


def cases(proto: str):
    steps = IMAP_STEPS if proto == "imap" else POP3_STEPS
    for step in steps:
        for action in ACTIONS:
            if action == "refuse" and step != "login":
                continue
            if proto == "pop3" and action == "long_untagged":
                continue
            if action == "long_capability" and step not in CAPS_STEPS[proto]:
                continue
            yield step, action


def hostile(proto: str, behaviour, **kw) -> HostileBackend:
    kw.setdefault("slow_interval", 0.005)
    b = HostileBackend(proto, behaviour, **kw).start()
    PEERS.append(b)
    return b


def base_config(p: dict, *, directory: str = None, limits: str = "", timeouts: str = "",
                threads: int = 2, listen: str = None, extra: str = "",
                connect: int = CONNECT_TIMEOUT, backend: int = BACKEND_TIMEOUT,
                lookup: int = LOOKUP_TIMEOUT) -> str:
    directory = directory or 'type = "file"; file = { path = "%s"; };' % p["popmap"]
    listen = listen or ('{ protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },\n'
                        '           { protocol = "pop3"; address = "127.0.0.1:%d"; '
                        'tls = "none"; }' % (p["imap"], p["pop3"]))
    return """
daemon = { threads = %d; log_level = "info"; drain = 3; };
limits = { %s };
timeouts = { login = 10; connect = %d; backend = %d; lookup = %d; idle = 60; %s };
listen = ( %s );
username = { lower_case = true; };
directory = { %s };
backend = { imap_port = %d; pop3_port = %d; };
%s
""" % (threads, limits, connect, backend, lookup, timeouts, listen,
       directory, STORE.imap_port, STORE.pop3_port, extra)


def popmap() -> str:
    lines = ["alice %s" % STORE.host, "bob %s" % STORE.host]
    lines += ["%s 127.0.0.1:%d" % (u, b.port) for u, b in BACKENDS.items()]
    return "\n".join(lines) + "\n"


def setUpModule():
    global STORE, P, TMP
    TMP = make_tempdir("postern-hostile-")
    imap_port, pop3_port = free_ports(2)
    STORE = Dovecot("store", USERS, host=loopback(1), imap_port=imap_port,
                    pop3_port=pop3_port).start()
    for proto in ("imap", "pop3"):
        for step, action in cases(proto):
            BACKENDS[case_user(proto, step, action)] = hostile(
                proto, {step: action}, caps_in_login_ok=(step != "capability"))
        for action in ("reset", "flood", "close", "mute"):
            BACKENDS["%s-relay-%s" % (proto, action)] = hostile(
                proto, {"relay": action}, flood_bytes=4 << 20)
    for user, behaviour in (("imap-plain", "ok"), ("pop3-plain", "ok"),
                            ("imap-login-stuck", {"login": "mute"})):
        BACKENDS[user] = hostile(user[:4], behaviour)
    P = Postern(lambda p: base_config(p), popmap=popmap()).start()


def tearDownModule():
    try:
        if P is not None:
            P.cleanup()
    finally:
        for peer in PEERS:
            peer.stop()
        if STORE is not None:
            stop_all(STORE)
        remove_tempdir(TMP)


def imap_login(port: int, user: str, password: str = "pw", *, source: str = None):
    """LOGIN on a fresh connection: (tagged reply, every line received)."""
    r = Raw(port, timeout=PATIENCE, source=source)
    try:
        lines = [r.line()]
        r.send(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), password.encode()))
        lines += r.until(b"a ")
        return lines[-1], lines, r
    except Exception:
        r.close()
        raise


def pop3_login(port: int, user: str, password: str = "pw"):
    r = Raw(port, timeout=PATIENCE)
    try:
        lines = [r.line()]
        r.send(b"USER %s\r\n" % user.encode())
        lines.append(r.line())
        if not lines[-1].startswith(b"+OK"):
            return lines[-1], lines, r
        r.send(b"PASS %s\r\n" % password.encode())
        lines.append(r.line())
        return lines[-1], lines, r
    except Exception:
        r.close()
        raise


def no_bare_cr(data: bytes) -> bool:
    return re.search(rb"\r(?!\n)", data) is None


def cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def real_login_works(port: int, user: str = "alice") -> bool:
    reply, _, r = imap_login(port, user, USERS[user])
    try:
        if not reply.startswith(b"a OK"):
            return False
        r.send(b"b LOGOUT\r\n")
        return r.until(b"b ")[-1].startswith(b"b OK")
    finally:
        r.close()


class BackendAtEachLoginStep(unittest.TestCase):
    """A backend that misbehaves at one login step: the client gets either
    its login (the misbehaviour was harmless) or a prompt, clear failure."""

    def run_case(self, proto: str, step: str, action: str):
        user = case_user(proto, step, action)
        if proto == "imap":
            reply, lines, r = imap_login(P.imap_port, user)
        else:
            reply, lines, r = pop3_login(P.pop3_port, user)
        try:
            if action in SERVED:
                if proto == "imap":
                    self.assertTrue(reply.startswith(b"a OK"), (user, reply[:200]))
                    r.send(b"b NOOP\r\n")
                    lines += r.until(b"b ")
                    self.assertTrue(lines[-1].startswith(b"b OK"), (user, lines[-1]))
                else:
                    self.assertTrue(reply.startswith(b"+OK"), (user, reply[:200]))
                    r.send(b"STAT\r\n")
                    lines.append(r.line())
                    self.assertTrue(lines[-1].startswith(b"+OK"), (user, lines[-1]))
            elif action in REFUSED:
                self.assertTrue(reply.startswith(b"a NO" if proto == "imap" else b"-ERR"),
                                (user, reply))
                self.assertNotIn(b"UNAVAILABLE", reply)
                self.assertNotIn(b"SYS/TEMP", reply)
            else:
                want = b"a NO [UNAVAILABLE]" if proto == "imap" else b"-ERR [SYS/TEMP]"
                self.assertTrue(reply.startswith(want), (user, reply[:200]))
                # ... and the operator gets one line saying why.
                self.assertTrue(wait_until(lambda: re.search(
                    r'(failed|refused) client=\S+ user="%s" proto=%s backend=\S+ '
                    % (re.escape(user), proto), P.log()), 5), user)
            data = b"".join(lines)
            # Nothing a backend sends reaches the client with a bare CR, and
            # every line the client gets is whole.
            self.assertTrue(no_bare_cr(data), (user, data[-300:]))
            self.assertTrue(all(l.endswith(b"\r\n") for l in lines), user)
            if action == "long_capability" and step != "greeting":
                # The full capability list (22 KB) reached the client intact.
                self.assertTrue(any(b"X3" in l and len(l) > 16000 for l in lines),
                                [len(l) for l in lines])
        finally:
            r.close()

    def run_all(self, proto: str):
        todo = list(cases(proto))
        with concurrent.futures.ThreadPoolExecutor(len(todo)) as pool:
            futures = {pool.submit(self.run_case, proto, s, a): (s, a) for s, a in todo}
            for fut, (step, action) in futures.items():
                with self.subTest(step=step, action=action):
                    fut.result()

    def test_imap(self):
        self.run_all("imap")

    def test_pop3(self):
        self.run_all("pop3")



class RelayPeers(unittest.TestCase):
    """After the login, a backend that resets, closes or floods."""

    def logged_in(self, proto: str, user: str) -> Raw:
        if proto == "imap":
            reply, _, r = imap_login(P.imap_port, user)
            self.assertTrue(reply.startswith(b"a OK"), reply)
        else:
            reply, _, r = pop3_login(P.pop3_port, user)
            self.assertTrue(reply.startswith(b"+OK"), reply)
        return r

    def test_reset_and_close_reach_the_client(self):
        for proto, cmd in (("imap", b"b NOOP\r\n"), ("pop3", b"STAT\r\n")):
            for action in ("reset", "close"):
                with self.subTest(proto=proto, action=action):
                    r = self.logged_in(proto, "%s-relay-%s" % (proto, action))
                    r.send(cmd)
                    self.assertTrue(r.closed(PATIENCE))
                    r.close()
        self.assertTrue(real_login_works(P.imap_port))

    def test_flood_is_relayed_whole(self):
        for proto, cmd in (("imap", b"b NOOP\r\n"), ("pop3", b"STAT\r\n")):
            with self.subTest(proto=proto):
                r = self.logged_in(proto, "%s-relay-flood" % proto)
                r.send(cmd)
                time.sleep(0.5)     # let the relay fill both buffers
                got = len(r.buf)
                r.sock.settimeout(PATIENCE)
                while got < (4 << 20):
                    chunk = r.sock.recv(1 << 20)
                    self.assertTrue(chunk, "closed after %d bytes" % got)
                    got += len(chunk)
                r.close()


class SlowClients(unittest.TestCase):
    def test_slow_loris_does_not_starve_real_logins(self):
        raise_fd_limit(4096)
        with SlowLoris("127.0.0.1", P.imap_port, n=1000, interval=1.0) as loris:
            self.assertTrue(wait_until(lambda: loris.opened + loris.failed >= 1000, 30))
            self.assertEqual(loris.failed, 0)
            for i in range(20):
                self.assertTrue(real_login_works(P.imap_port, ("alice", "bob")[i % 2]))
            # The login deadline (10 s) ends every trickler.
            self.assertTrue(wait_until(lambda: loris.closed == 1000, 10 + 15),
                            (loris.closed, loris.open))
            self.assertEqual(loris.errors, [])
        self.assertTrue(real_login_works(P.imap_port))

    def test_lingering_close_delivers_the_bye(self):
        # Bad commands past the limit, with 150 KB more behind them in the
        # same write: the BYE is read, not destroyed by a reset.
        r = Raw(P.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b"".join(b"x%d FROB\r\n" % i for i in range(20)) + b"y" * 150000 + b"\r\n")
        self.assertTrue(r.closed(PATIENCE))
        self.assertIn(b"* BYE", r.buf)
        r.close()

    def test_overlong_authenticate_response_is_skipped_whole(self):
        r = Raw(P.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b"a AUTHENTICATE PLAIN\r\n")
        self.assertTrue(r.line().startswith(b"+"))
        r.send(b"A" * 70000 + b" z NOOP\r\nd NOOP\r\n")
        lines = r.until(b"d ")
        tagged = [l for l in lines if not l.startswith(b"*")]
        self.assertEqual(len(tagged), 2, lines)
        self.assertTrue(tagged[0].startswith(b"a "), tagged)
        self.assertFalse(tagged[0].startswith(b"a OK"), tagged)
        self.assertTrue(tagged[1].startswith(b"d OK"), tagged)
        r.close()


class HalfClose(unittest.TestCase):
    """The client's FIN ends its input, never its output: whatever it asked
    for before the FIN is answered, then the connection closes."""

    def test_right_after_connect(self):
        r = Raw(P.imap_port, timeout=PATIENCE)
        half_close(r.sock)
        self.assertTrue(r.closed(PATIENCE))
        r.close()

    def test_nc_after_login_line(self):
        script = b'a LOGIN alice "alice pw"\r\nb SELECT INBOX\r\n'
        out = subprocess.run(["nc", "-N", "127.0.0.1", str(P.imap_port)], input=script,
                             capture_output=True, timeout=PATIENCE).stdout
        self.assertIn(b"a OK", out)
        self.assertIn(b"b OK", out)
        out = subprocess.run(["nc", "-N", "127.0.0.1", str(P.imap_port)],
                             input=b'a LOGIN alice "alice pw"\r\n',
                             capture_output=True, timeout=PATIENCE).stdout
        self.assertIn(b"a OK", out)

    def test_while_the_backend_greets_slowly(self):
        r = Raw(P.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b"a LOGIN imap-greeting-slow pw\r\nb NOOP\r\n")
        half_close(r.sock)
        self.assertTrue(r.closed(PATIENCE))
        self.assertIn(b"a OK", r.buf)
        self.assertIn(b"b OK", r.buf)
        r.close()

    def test_while_the_backend_login_hangs(self):
        r = Raw(P.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b"a LOGIN imap-login-stuck pw\r\n")
        half_close(r.sock)
        self.assertTrue(r.closed(PATIENCE))
        self.assertIn(b"a NO [UNAVAILABLE]", r.buf)
        r.close()

    def test_fetch_in_flight(self):
        r = Raw(P.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b'a LOGIN alice "alice pw"\r\nb SELECT INBOX\r\nc FETCH 1 BODY[]\r\n')
        half_close(r.sock)
        self.assertTrue(r.closed(PATIENCE))
        self.assertIn(STORE.welcome_line.encode(), r.buf)
        self.assertIn(b"c OK", r.buf)
        r.close()

    def test_pop3_retr_in_flight(self):
        r = Raw(P.pop3_port, timeout=PATIENCE)
        r.line()
        r.send(b"USER alice\r\nPASS alice pw\r\nRETR 1\r\n")
        half_close(r.sock)
        self.assertTrue(r.closed(PATIENCE))
        self.assertIn(STORE.welcome_line.encode(), r.buf)
        self.assertTrue(r.buf.endswith(b"\r\n.\r\n"), r.buf[-40:])
        r.close()

    def test_pop3_before_login(self):
        r = Raw(P.pop3_port, timeout=PATIENCE)
        r.line()
        r.send(b"CAPA\r\nUSER alice\r\n")
        half_close(r.sock)
        self.assertTrue(r.closed(PATIENCE))
        self.assertIn(b"\r\n.\r\n+OK", r.buf)
        r.close()


class IdForwarding(unittest.TestCase):
    def login_with_id(self, id_args: bytes, user: str = "imap-plain"):
        r = Raw(P.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b"a ID " + id_args + b"\r\n")
        id_reply = r.until(b"a ")[-1]
        r.send(b'b LOGIN "%s" "%s"\r\nc LOGOUT\r\n' % (user.encode(),
                                                        USERS.get(user, "pw").encode()))
        login = r.until(b"b ")[-1]
        r.close()
        return id_reply, login

    def last_id(self):
        b = BACKENDS["imap-plain"]
        self.assertTrue(wait_until(lambda: b.sessions and b.sessions[-1].id_fields, 5))
        return b.sessions[-1].id_fields

    def test_full_size_id_on_default_limits(self):
        # RFC 2971's limits: 30 pairs, values up to 1024 octets (~32 KB).
        pairs = b" ".join(b'"f%02d" "%s"' % (i, b"v" * 1024) for i in range(30))
        id_reply, login = self.login_with_id(b"(" + pairs + b")")
        self.assertTrue(id_reply.startswith(b"a OK"), id_reply)
        self.assertTrue(login.startswith(b"b OK"), login)
        fields = self.last_id()
        names = [n for n, _ in fields]
        self.assertEqual(names[0], "x-originating-ip", names)
        self.assertIn("x-originating-port", names[:4])
        self.assertLessEqual(len(fields), 30)
        self.assertIn(("f00", "v" * 1024), fields)

    def test_forged_fields_are_dropped(self):
        id_reply, login = self.login_with_id(
            b'("x-session-id" "S" "x-connected-ip" "7.7.7.7" "X-Originating-IP" "7.7.7.7" '
            b'"name" "evil")')
        self.assertTrue(id_reply.startswith(b"a OK"), id_reply)
        self.assertTrue(login.startswith(b"b OK"), login)
        fields = self.last_id()
        self.assertEqual(fields[0][0], "x-originating-ip")
        self.assertIn(("name", "evil"), fields)
        values = [v for _, v in fields]
        self.assertNotIn("7.7.7.7", values)
        self.assertNotIn("S", values)

    def test_forged_fields_never_reach_a_trusting_store(self):
        # Dovecot trusts loopback (login_trusted_networks): it would log
        # lip=7.7.7.7 session=<S> if postern passed the client's fields on.
        _, login = self.login_with_id(
            b'("x-session-id" "FORGEDSESSION" "x-connected-ip" "7.7.7.7" '
            b'"x-originating-ip" "7.7.7.8")', user="bob")
        self.assertTrue(login.startswith(b"b OK"), login)
        self.assertTrue(wait_until(lambda: "user=<bob>" in STORE.read_log(), 5))
        log = STORE.read_log()
        self.assertNotIn("7.7.7.7", log)
        self.assertNotIn("7.7.7.8", log)
        self.assertNotIn("FORGEDSESSION", log)

    def test_malformed_lists_are_refused(self):
        for bad in (b'("name")', b'("name" "a" "version")', b'("x" ("nested"))',
                    b'("name" "' + b"v" * 1025 + b'")'):
            with self.subTest(bad=bad[:40]):
                id_reply, login = self.login_with_id(bad)
                self.assertTrue(id_reply.startswith(b"a BAD"), id_reply)
                self.assertTrue(login.startswith(b"b OK"), login)
                # The client's address still reaches the store.
                self.assertEqual(self.last_id()[0][0], "x-originating-ip")


class Pop3Injection(unittest.TestCase):
    def test_bare_cr_in_pass_is_refused(self):
        b = BACKENDS["pop3-plain"]
        before = b.connections
        r = Raw(P.pop3_port, timeout=PATIENCE)
        r.line()
        r.send(b"USER pop3-plain\r\nPASS a\rQUIT\r\n")
        r.line()
        self.assertTrue(r.line().startswith(b"-ERR"))
        r.close()
        time.sleep(0.3)
        self.assertTrue(all(b"QUIT" not in x for x in b.received[before:]))
        self.assertTrue(all(b"\r" not in s.password for s in b.sessions[before:]
                            if s.password))



class StartTlsBackend:
    """An IMAP store that offers STARTTLS and changes its capabilities
    after it, as RFC 3501 6.2.1 allows: postern must ask again."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.commands = []          # (tls?, line) for every command
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self.session(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def session(self, conn):
        conn.settimeout(10)
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] plain\r\n")
        f, tls = conn.makefile("rb"), False
        while True:
            line = f.readline()
            if not line:
                return
            self.commands.append((tls, line))
            tag, _, rest = line.partition(b" ")
            verb = rest.split(b" ", 1)[0].strip().upper()
            if verb == b"STARTTLS" and not tls:
                conn.sendall(tag + b" OK begin TLS\r\n")
                conn = self.ctx.wrap_socket(conn, server_side=True)
                f, tls = conn.makefile("rb"), True
            elif verb == b"CAPABILITY":
                caps = b"IMAP4rev1 AUTH=PLAIN X-AFTER-TLS" if tls else \
                    b"IMAP4rev1 STARTTLS LOGINDISABLED"
                conn.sendall(b"* CAPABILITY " + caps + b"\r\n" + tag + b" OK\r\n")
            elif verb == b"LOGIN" and tls:
                conn.sendall(tag + b" OK [CAPABILITY IMAP4rev1 X-AFTER-TLS] in\r\n")
            elif verb == b"LOGOUT":
                conn.sendall(b"* BYE\r\n" + tag + b" OK\r\n")
                return
            elif verb in (b"ID", b"NOOP"):
                conn.sendall(tag + b" OK\r\n")
            else:
                conn.sendall(tag + b" NO not now\r\n")

    def stop(self):
        self.sock.close()


class SmallLimits(unittest.TestCase):
    """A postern with a 1 KB line limit and a TLS listener."""

    Q = CERTS = TLS_STORE = None

    @classmethod
    def setUpClass(cls):
        cls.CERTS = make_test_ca(TMP, ["localhost", "127.0.0.1", "tlsfake.example.net"])
        cls.TLS_STORE = StartTlsBackend(cls.CERTS.cert, cls.CERTS.key)
        cls.imaps_port = free_ports(1)[0]
        listen = ('{ protocol = "imap"; address = "127.0.0.1:%%d"; tls = "none"; },\n'
                  '{ protocol = "pop3"; address = "127.0.0.1:%%d"; tls = "none"; },\n'
                  '{ protocol = "imap"; address = "127.0.0.1:%d"; tls = "implicit"; }'
                  % cls.imaps_port)
        extra = """
tls = { cert = "%s"; key = "%s"; };
backends = ( { name = "tlsfake.example.net"; addresses = "127.0.0.1"; tls = "starttls";
               imap_port = %d; ca_file = "%s"; } );
health = { active = false; };  # the fake store counts connections: no probes
""" % (cls.CERTS.cert, cls.CERTS.key, cls.TLS_STORE.port, cls.CERTS.ca_cert)
        cls.Q = Postern(lambda p: base_config(
            p, limits="line_length = 1024;",
            listen=listen % (p["imap"], p["pop3"]), extra=extra),
            popmap=popmap() + "tlsuser tlsfake.example.net\n").start()

    @classmethod
    def tearDownClass(cls):
        if cls.Q is not None:
            rc = cls.Q.stop()
            leaks = cls.Q.leaks()
            cls.Q.cleanup()
            cls.TLS_STORE.stop()
            assert rc == 0 and not leaks, (rc, leaks)

    def tls_client(self) -> ssl.SSLSocket:
        ctx = ssl.create_default_context(cafile=self.CERTS.ca_cert)
        raw = socket.create_connection(("127.0.0.1", self.imaps_port), timeout=PATIENCE)
        return ctx.wrap_socket(raw, server_hostname="localhost")

    def test_fin_with_a_full_buffer_does_not_spin(self):
        # A command in progress (the backend's login hangs), 9 KB more than
        # the buffer takes, then FIN: the worker must sleep, not spin.
        r = Raw(self.Q.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b"a LOGIN imap-login-stuck wrong\r\n" + b"x" * 9000)
        half_close(r.sock)
        time.sleep(0.3)
        before = cpu_seconds(self.Q.proc.pid)
        time.sleep(3)
        used = cpu_seconds(self.Q.proc.pid) - before
        self.assertLess(used, 0.5, "postern used %.2f CPU-s in 3 s while idle" % used)
        self.assertTrue(r.closed(PATIENCE))
        r.close()

    def test_pipelined_noops_in_one_tls_record(self):
        # 1,300 NOOPs (15.6 KB) in one TLS record: far more than one line
        # buffer, so most of it waits inside OpenSSL.  Every one is answered.
        s = self.tls_client()
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"".join(b"t%04d NOOP\r\n" % i for i in range(1300)))
        tagged = 0
        while tagged < 1300:
            line = f.readline()
            self.assertTrue(line, "closed after %d replies" % tagged)
            if line.startswith(b"t"):
                self.assertIn(b" OK", line)
                tagged += 1
        s.close()

    def test_tls_eof_without_close_notify_is_a_normal_close(self):
        s = self.tls_client()
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"a NOOP\r\n")
        f.readline()
        port = s.getsockname()[1]
        # Python sends no close_notify on close(): the TCP FIN comes alone.
        f.close()
        s.close()
        pat = re.compile(r"session end client=127\.0\.0\.1:%d .*outcome=\"([^\"]*)\"" % port)
        self.assertTrue(wait_until(lambda: pat.search(self.Q.log()), 5), self.Q.log()[-1500:])
        outcome = pat.search(self.Q.log()).group(1)
        self.assertNotIn("TLS", outcome)
        self.assertNotIn("error", outcome.lower())

    def test_tls_half_close_after_login_is_passed_on(self):
        # After the login two commands, then the client's TCP FIN alone (no
        # close_notify): both reach the backend, the backend sees the close
        # after them, and every byte of the replies still reaches the client.
        backend = BACKENDS["imap-plain"]
        s = self.tls_client()
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"a LOGIN imap-plain pw\r\n")
        while True:
            line = f.readline()
            self.assertTrue(line, "closed during the login")
            if line.startswith(b"a "):
                break
        self.assertTrue(line.startswith(b"a OK"), line)
        s.sendall(b"hc1 NOOP\r\nhc2 FETCH 1 BODY[]\r\n")
        # The base class's shutdown: SSLSocket.shutdown would drop the TLS
        # state, and neither sends a close_notify.
        socket.socket.shutdown(s, socket.SHUT_WR)
        s.settimeout(PATIENCE)
        rest = f.read()
        f.close()
        s.close()
        self.assertIn(b"hc1 OK", rest)
        self.assertIn(backend.message + b")\r\nhc2 OK", rest)
        sessions = [x for x in backend.sessions if b"hc1 NOOP\r\n" in x.commands]
        self.assertEqual(len(sessions), 1)
        self.assertTrue(wait_until(lambda: sessions[0].closed, 10))
        self.assertEqual(sessions[0].commands[-2:],
                         [b"hc1 NOOP\r\n", b"hc2 FETCH 1 BODY[]\r\n"])

    def test_backend_capabilities_asked_again_after_starttls(self):
        reply, lines, r = imap_login(self.Q.imap_port, "tlsuser")
        self.assertTrue(reply.startswith(b"a OK"), reply)
        r.send(b"b CAPABILITY\r\n")
        caps = r.until(b"b ")
        r.close()
        cmds = self.TLS_STORE.commands
        after = [l.split(b" ")[1].strip().upper() for tls, l in cmds if tls]
        self.assertEqual(after[0], b"CAPABILITY", cmds)
        self.assertIn(b"LOGIN", after)
        self.assertIn(b"X-AFTER-TLS", b"".join(caps + lines))

    def test_long_lines_are_refused_and_the_session_goes_on(self):
        r = Raw(self.Q.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b"a NOOP " + b"x" * 5000 + b"\r\nb NOOP\r\n")
        lines = r.until(b"b ")
        self.assertTrue(lines[-1].startswith(b"b OK"), lines)
        self.assertTrue(any(l.startswith(b"a BAD") or l.startswith(b"* BAD") for l in lines),
                        lines)
        r.close()


def client_hello() -> bytes:
    """The first flight of a TLS client: a whole ClientHello."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class HalfCloseStates(unittest.TestCase):
    """The client's FIN in the states HalfClose does not reach: during the
    TLS handshake, before the PROXY header is complete, while the backend
    connect, greeting or STARTTLS hangs.  Each session ends promptly (at
    once, or with its login's answer when the state's timeout ends it), the
    worker does not spin meanwhile, and other clients are served."""

    Q = None

    @classmethod
    def setUpClass(cls):
        certs = make_test_ca(os.path.join(TMP, "halfclose"), ["localhost", "127.0.0.1"])
        # Accepts nothing: a backlog of 0 holds one connection, so with
        # that one queued every later SYN is dropped and connects hang.
        cls.full = socket.socket()
        cls.full.bind(("127.0.0.1", 0))
        cls.full.listen(0)
        cls.filler = socket.create_connection(cls.full.getsockname(), timeout=PATIENCE)
        cls.stalltls = hostile("imap", {"starttls": "ok"})
        cls.imaps_port, cls.proxy_port = free_ports(2)
        listen = ('{ protocol = "imap"; address = "127.0.0.1:%%d"; tls = "none"; },\n'
                  '{ protocol = "pop3"; address = "127.0.0.1:%%d"; tls = "none"; },\n'
                  '{ protocol = "imap"; address = "127.0.0.1:%d"; tls = "implicit"; },\n'
                  '{ protocol = "imap"; address = "127.0.0.1:%d"; proxy_protocol = true; }'
                  % (cls.imaps_port, cls.proxy_port))
        extra = """
tls = { cert = "%s"; key = "%s"; };
proxy = { trusted_networks = [ "127.0.0.1/32" ]; };
health = { active = false; };
backends = ( { name = "stalltls.example.net"; addresses = "127.0.0.1"; tls = "starttls";
               imap_port = %d; ca_file = "%s"; } );
""" % (certs.cert, certs.key, cls.stalltls.port, certs.ca_cert)
        users = ("hc-connect 127.0.0.1:%d\nhc-starttls stalltls.example.net\n"
                 % cls.full.getsockname()[1])
        # One worker: a spinning session would show in every other one.
        cls.Q = Postern(lambda p: base_config(
            p, threads=1, connect=4, backend=4,
            timeouts="proxy_header = 10;", listen=listen % (p["imap"], p["pop3"]),
            extra=extra), popmap=popmap() + users).start()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.Q is not None:
                rc = cls.Q.stop()
                leaks = cls.Q.leaks()
                cls.Q.cleanup()
                assert rc == 0 and not leaks, (rc, leaks)
        finally:
            cls.filler.close()
            cls.full.close()

    def test_fin_in_each_waiting_state(self):
        hello = client_hello()
        clients = {}
        # Half a ClientHello on the implicit-TLS listener.
        r = Raw(self.imaps_port, timeout=PATIENCE)
        r.send(hello[:len(hello) // 2])
        clients["tls handshake"] = r
        # Half a PROXY v1 header.
        r = Raw(self.proxy_port, timeout=PATIENCE)
        r.send(b"PROXY TCP4 192.0.2.1 127.0.0.1 5")
        clients["PROXY header"] = r
        # A LOGIN whose backend does not accept, does not greet, or stalls
        # its STARTTLS.
        for state, user in (("backend connect", "hc-connect"),
                            ("backend greeting", "imap-greeting-mute"),
                            ("backend STARTTLS", "hc-starttls")):
            r = Raw(self.Q.imap_port, timeout=PATIENCE)
            r.line()
            r.send(b"a LOGIN %s pw\r\n" % user.encode())
            clients[state] = r
        time.sleep(0.3)
        fin = time.monotonic()
        for r in clients.values():
            half_close(r.sock)
        time.sleep(0.3)
        before = cpu_seconds(self.Q.proc.pid)
        time.sleep(2)
        used = cpu_seconds(self.Q.proc.pid) - before
        self.assertLess(used, 1.0, "postern used %.2f CPU-s in 2 s" % used)
        # Served meanwhile, by the same (only) worker.
        self.assertTrue(real_login_works(self.Q.imap_port))
        for state, r in clients.items():
            with self.subTest(state=state):
                self.assertTrue(r.closed(PATIENCE), state)
                # At once, or when the state's timeout (4 s) answers the
                # login: long before the login timeout (10 s), the PROXY
                # header timeout (10 s) or the client's patience.
                self.assertLess(time.monotonic() - fin, 9, state)
                if state.startswith("backend"):
                    self.assertIn(b"a NO [UNAVAILABLE]", r.buf)
                r.close()
        log = self.Q.log()
        # The FIN found each session in the state meant.
        self.assertIn('state=TLS_HANDSHAKE outcome="client closed during the TLS handshake"',
                      log)
        self.assertIn('state=PROXY_HEADER outcome="client closed before the PROXY header"', log)
        self.assertIn('user="hc-connect" proto=imap backend=127.0.0.1:%d reason="connect timed out'
                      % self.full.getsockname()[1], log)
        # The handshake had begun: a TLS record followed the STARTTLS.
        self.assertIn(b"P0 STARTTLS\r\n\x16\x03", self.stalltls.received[-1])
        self.assertTrue(real_login_works(self.Q.imap_port))


def ldap_directory(uri: str, extra: str = "", timeout: int = 2) -> str:
    return ('type = "ldap"; cache = { ttl = 0; negative_ttl = 0; };\n'
            '  ldap = { uri = "%s"; base = "dc=example,dc=net"; timeout = %d; '
            'bind_dn = "cn=proxy,dc=example,dc=net"; bind_password = "secret"; %s };'
            % (uri, timeout, extra))


def ldap_entries(extra: dict = None) -> dict:
    pop3 = BACKENDS["pop3-plain"].port
    imap = BACKENDS["imap-plain"].port
    entries = {
        "alice": {"mailhost": [STORE.host], "username": ["alice"]},
        "slowuser": {"mailhost": [STORE.host], "username": ["alice"]},
        # A CR LF in a directory value must never become a backend command.
        "injpop": {"mailhost": ["127.0.0.1"], "port": [str(pop3)],
                   "username": ["pop3-plain\r\nDELE 1"]},
        "injimap": {"mailhost": ["127.0.0.1"], "port": [str(imap)],
                    "username": ["imap-plain\r\nx DELETE INBOX"]},
    }
    entries.update(extra or {})
    return entries


def fake_ldap(behaviour: str, **kw) -> FakeLdap:
    f = FakeLdap(behaviour, ldap_entries(), **kw).start()
    PEERS.append(f)
    return f


def write_config(p: Postern, text: str) -> None:
    with open(p.conf_path + ".new", "w") as f:
        f.write(text)
    os.replace(p.conf_path + ".new", p.conf_path)


def reload_to(p: Postern, text: str) -> None:
    n = p.log().count("configuration reloaded")
    write_config(p, text)
    p.reload()
    assert wait_until(lambda: p.log().count("configuration reloaded") > n, 10), \
        p.log()[-1000:]


def parallel_logins(port: int, users, password: str = "pw"):
    with concurrent.futures.ThreadPoolExecutor(min(len(users), 64)) as pool:
        def one(user):
            reply, _, r = imap_login(port, user, password)
            r.close()
            return reply
        return list(pool.map(one, users))


class DirectoryTrouble(unittest.TestCase):
    """An LDAP server that is mute, slow, resets, talks garbage or refuses
    the proxy's bind.  One postern, reloaded onto each in turn."""

    L = None

    @classmethod
    def setUpClass(cls):
        cls.ok = fake_ldap("ok")
        # One worker: every session shares it, so a stall shows everywhere.
        cls.L = Postern(lambda p: base_config(p, directory=ldap_directory(cls.ok.uri),
                                              threads=1), popmap=popmap()).start()
        cls.ports = None

    @classmethod
    def tearDownClass(cls):
        if cls.L is not None:
            rc = cls.L.stop()
            leaks = cls.L.leaks()
            cls.L.cleanup()
            assert rc == 0 and not leaks, (rc, leaks)

    def use(self, ldap: FakeLdap, extra: str = "") -> None:
        ports = {"imap": self.L.imap_port, "pop3": self.L.pop3_port,
                 "popmap": self.L.popmap_path}
        reload_to(self.L, base_config(ports, directory=ldap_directory(ldap.uri, extra),
                                      threads=1))

    def assert_serving(self):
        self.use(self.ok)
        self.assertTrue(real_login_works(self.L.imap_port))

    def test_routes_from_the_fake_directory(self):
        self.use(self.ok)
        self.assertTrue(real_login_works(self.L.imap_port))

    def test_backend_user_with_crlf_is_never_sent(self):
        self.use(self.ok)
        pop, imap = BACKENDS["pop3-plain"], BACKENDS["imap-plain"]
        before = (pop.connections, imap.connections)
        reply, _, r = pop3_login(self.L.pop3_port, "injpop")
        r.close()
        self.assertTrue(reply.startswith(b"-ERR"), reply)
        reply, _, r = imap_login(self.L.imap_port, "injimap")
        r.close()
        self.assertTrue(reply.startswith(b"a NO"), reply)
        time.sleep(0.3)
        self.assertTrue(all(b"DELE" not in x for x in pop.received[before[0]:]))
        self.assertTrue(all(b"DELETE" not in x for x in imap.received[before[1]:]))

    def test_mute_server_with_one_connection_and_320_logins(self):
        # pool = 1 and a server that never answers a search: every login
        # gets a prompt temporary failure, the queue never overruns.
        mute = fake_ldap("mute")
        self.use(mute, "pool = 1;")
        replies = parallel_logins(self.L.imap_port, ["u%d" % i for i in range(320)])
        self.assertEqual([r for r in replies if not r.startswith(b"a NO [UNAVAILABLE]")], [])
        self.assertEqual(self.L.leaks(), "")
        self.assert_serving()

    def test_each_failing_server(self):
        for behaviour in ("reset", "close_on_search", "garbage", "mute_bind"):
            with self.subTest(behaviour=behaviour):
                bad = fake_ldap(behaviour)
                self.use(bad)
                mark = len(self.L.log())
                replies = parallel_logins(self.L.imap_port, ["alice"] * 20, USERS["alice"])
                self.assertEqual([r for r in replies
                                  if not r.startswith(b"a NO [UNAVAILABLE]")], [])
                # One line per failed login at most, plus a few (rate-limited)
                # about the server: never a storm.
                lines = self.L.log()[mark:].splitlines()
                self.assertLess(len(lines), 20 * 2 + 10, "\n".join(lines[-20:]))
                self.assertEqual(self.L.leaks(), "")
        self.assert_serving()

    def test_slow_answer_for_one_user_does_not_hold_up_others(self):
        slow = fake_ldap("slow", delay=4.0, slow_logins={"slowuser"})
        self.use(slow)
        r = Raw(self.L.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b'a LOGIN slowuser "alice pw"\r\n')
        # While that search waits, others are answered at once.
        for _ in range(5):
            self.assertTrue(real_login_works(self.L.imap_port))
        self.assertTrue(r.until(b"a ")[-1].startswith(b"a NO [UNAVAILABLE]"))
        r.close()
        # Half-close while the lookup is pending: the answer still comes.
        r = Raw(self.L.imap_port, timeout=PATIENCE)
        r.line()
        r.send(b'a LOGIN slowuser "alice pw"\r\n')
        half_close(r.sock)
        self.assertTrue(r.closed(PATIENCE))
        self.assertIn(b"a NO [UNAVAILABLE]", r.buf)
        r.close()
        self.assert_serving()

    def test_refused_bind_is_reported_as_such(self):
        refusing = fake_ldap("refuse_bind")
        self.use(refusing)
        replies = parallel_logins(self.L.imap_port, ["alice"] * 5, USERS["alice"])
        self.assertTrue(all(r.startswith(b"a NO [UNAVAILABLE]") for r in replies), replies)
        self.assertTrue(wait_until(lambda: "bind_password" in self.L.log(), 5),
                        self.L.log()[-1500:])
        self.assert_serving()

    def test_sighup_never_stalls_a_relay(self):
        # A generation whose pool sits in a bind that never returns is
        # dropped by a reload: the worker relaying alice must not wait
        # for those threads (one worker, so her session is on it).
        self.use(self.ok)
        ports = {"imap": self.L.imap_port, "pop3": self.L.pop3_port,
                 "popmap": self.L.popmap_path}
        reply, _, r = imap_login(self.L.imap_port, "alice", USERS["alice"])
        self.assertTrue(reply.startswith(b"a OK"))
        stuck = fake_ldap("mute_bind")
        self.use(stuck)
        # Lookups in the new generation: its threads now block in bind.
        waiting = [Raw(self.L.imap_port, timeout=PATIENCE) for _ in range(4)]
        for i, w in enumerate(waiting):
            w.line()
            w.send(b"a LOGIN u%d pw\r\n" % i)
        time.sleep(0.5)
        done = threading.Event()

        def reload_back():
            reload_to(self.L, base_config(ports, directory=ldap_directory(self.ok.uri),
                                          threads=1))
            done.set()
        t = threading.Thread(target=reload_back)
        t.start()
        worst, n = 0.0, 0
        while not done.is_set() or n < 20:
            t0 = time.monotonic()
            r.send(b"n%d NOOP\r\n" % n)
            self.assertTrue(r.until(b"n%d " % n)[-1].startswith(b"n%d OK" % n))
            worst = max(worst, time.monotonic() - t0)
            n += 1
            time.sleep(0.05)
        t.join()
        for w in waiting:
            w.close()
        r.close()
        self.assertLess(worst, 1.5, "a NOOP waited %.1f s during the reload" % worst)


def metric(addr: tuple, name: str) -> float:
    """One sample of the daemon's /metrics (the first, labels ignored)."""
    s = socket.create_connection(addr, timeout=PATIENCE)
    try:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    m = re.search(rb"^%s(?:\{[^}]*\})? (\S+)\r?$" % re.escape(name.encode()), data, re.M)
    assert m is not None, (name, data[-800:])
    return float(m.group(1))


def send_logins(port: int, users, password: str = "pw") -> list:
    """A connection per user with its LOGIN sent, replies not read."""
    clients = []
    for user in users:
        r = Raw(port, timeout=PATIENCE)
        clients.append(r)
        r.line()
        r.send(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), password.encode()))
    return clients


class DirectoryQueues(unittest.TestCase):
    """The LDAP pool's queues: a bound past which logins fail at once,
    requests nobody waits for any more never sent, password binds apart
    from searches, and an operation error that costs one request and not
    the connection.  One postern (one worker, metrics on), reloaded onto a
    fresh FakeLdap for each test."""

    L = None

    @classmethod
    def setUpClass(cls):
        cls.metrics = ("127.0.0.1", free_ports(1)[0])
        first = fake_ldap("ok")
        cls.L = Postern(lambda p: cls.config(p, ldap_directory(first.uri)),
                        popmap=popmap()).start()

    @classmethod
    def tearDownClass(cls):
        if cls.L is not None:
            rc = cls.L.stop()
            leaks = cls.L.leaks()
            cls.L.cleanup()
            assert rc == 0 and not leaks, (rc, leaks)

    @classmethod
    def config(cls, p: dict, directory: str, **kw) -> str:
        extra = kw.pop("extra", "")
        return base_config(p, directory=directory, threads=1, extra=(
            'metrics = { listen = "%s:%d"; };\n%s' % (cls.metrics + (extra,))), **kw)

    def use(self, ldap: FakeLdap, ldap_extra: str = "", timeout: int = 2, **kw) -> None:
        ports = {"imap": self.L.imap_port, "pop3": self.L.pop3_port,
                 "popmap": self.L.popmap_path}
        reload_to(self.L, self.config(ports, ldap_directory(ldap.uri, ldap_extra, timeout),
                                      **kw))

    def quiet_ldap(self, behaviour: str, **kw) -> FakeLdap:
        """A FakeLdap stopped at the end of the test, whatever happens: a
        thread of the pool blocked in one of its binds is let go then."""
        ldap = fake_ldap(behaviour, **kw)
        self.addCleanup(ldap.stop)
        return ldap

    def test_queue_bound_sheds_the_excess_at_once(self):
        # The only connection sits in a bind the directory never answers,
        # so nothing leaves the queue: 4 logins wait in it, the other 16
        # are refused at once (while the directory is still quiet), and the
        # 4 are served as soon as it answers.
        quiet = self.quiet_ldap("mute_bind")
        self.use(quiet, "pool = 1; queue = 4;", timeout=20, lookup=20)
        self.assertTrue(wait_until(lambda: quiet.binds >= 1, 10))
        mark = len(self.L.log())
        clients = send_logins(self.L.imap_port, ["alice"] * 20, USERS["alice"])
        try:
            with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
                futures = [pool.submit(lambda r=r: r.until(b"a ")[-1]) for r in clients]
                # Prompt: long before timeouts.lookup (20 s) would answer them.
                self.assertTrue(wait_until(lambda: sum(f.done() for f in futures) >= 16, 10),
                                self.L.log()[-1500:])
                time.sleep(0.2)
                early = [f.result() for f in futures if f.done()]
                self.assertEqual(len(early), 16, early)
                self.assertEqual([r for r in early if not r.startswith(b"a NO [UNAVAILABLE]")],
                                 [])
                self.assertEqual(quiet.searches, 0)
                quiet.wake()
        finally:
            for r in clients:
                r.close()
        replies = [f.result() for f in futures]
        self.assertEqual(sum(r.startswith(b"a OK") for r in replies), 4, replies)
        log = self.L.log()[mark:]
        # Each refused login has its own line; the shedding itself one,
        # rate-limited.
        self.assertEqual(log.count("directory overloaded: too many lookups queued"), 16,
                         log[-2000:])
        self.assertEqual(log.count("refusing more until the directory catches up"), 1,
                         log[-2000:])
        self.assertEqual(metric(self.metrics, "postern_directory_queue_shed_total"), 16)
        self.assertTrue(real_login_works(self.L.imap_port))

    def test_abandoned_requests_are_never_sent(self):
        # Lookups queue behind a connection whose bind is not answered yet;
        # 5 clients hang up, 5 give up at timeouts.lookup (1 s, well before
        # the requests' own deadline, directory.ldap.timeout 20 s).  When the
        # directory wakes, none of them may reach it.  Nothing was in flight:
        # the only connection was never up (a connection that is up could
        # have had up to LDAP_PENDING_MAX searches sent, per pool connection).
        quiet = self.quiet_ldap("mute_bind")
        self.use(quiet, "pool = 1;", timeout=20, lookup=1)
        self.assertTrue(wait_until(lambda: quiet.binds >= 1, 10))
        mark = len(self.L.log())
        gone = send_logins(self.L.imap_port, ["gone%d" % i for i in range(5)])
        ports = [r.sock.getsockname()[1] for r in gone]
        for r in gone:
            r.close()
        late = send_logins(self.L.imap_port, ["late%d" % i for i in range(5)])
        try:
            for r in late:
                self.assertTrue(r.until(b"a ")[-1].startswith(b"a NO [UNAVAILABLE]"))
        finally:
            for r in late:
                r.close()
        self.assertTrue(wait_until(lambda: all(
            "session end client=127.0.0.1:%d " % port in self.L.log() for port in ports), 10),
            self.L.log()[-1500:])
        quiet.wake()
        self.assertTrue(wait_until(lambda: "connection 0 up: %s" % quiet.uri in
                                   self.L.log()[mark:], 10), self.L.log()[-1500:])
        self.assertTrue(real_login_works(self.L.imap_port))
        self.assertEqual(len(quiet.search_requests), 1, [s.values for s in quiet.search_requests])
        self.assertIn("alice", quiet.search_requests[0].values)
        # Dropped silently: neither was past its deadline.
        self.assertNotIn("past its deadline", self.L.log()[mark:])

    def test_abandoned_requests_behind_a_full_connection_are_never_sent(self):
        # The connection is up and the directory takes searches without
        # answering: it holds LDAP_PENDING_MAX (256) of them, the rest wait
        # in the queue.  Every session gives up at timeouts.lookup (1 s).
        # When the directory answers, what it held frees the connection,
        # and none of the 20 queued requests may follow: the server gets
        # exactly pool x LDAP_PENDING_MAX searches for these logins.
        quiet = self.quiet_ldap("mute")
        self.use(quiet, "pool = 1;", timeout=20, lookup=1)
        raise_fd_limit(2048)
        clients = send_logins(self.L.imap_port, ["held%d" % i for i in range(256 + 20)])
        try:
            for r in clients:
                self.assertTrue(r.until(b"a ")[-1].startswith(b"a NO [UNAVAILABLE]"))
        finally:
            for r in clients:
                r.close()
        self.assertEqual(quiet.searches, 256)
        quiet.wake()
        self.assertTrue(real_login_works(self.L.imap_port))
        self.assertEqual([s for s in quiet.search_requests[256:] if "alice" not in s.values],
                         [])
        self.assertEqual(len(quiet.search_requests), 257)

    def test_password_binds_never_hold_up_searches(self):
        # auth.verify binds as the user on the auth_pool connection; the
        # directory never answers those binds.  Searches have their own
        # connection: other logins' lookups are answered at once meanwhile
        # (an unknown user is refused, not failed at timeouts.lookup).
        ldap = self.quiet_ldap("mute_user_bind")
        self.use(ldap, "pool = 1; auth_pool = 1;", timeout=6, lookup=3,
                 limits="throttle = false;",
                 extra='auth = { verify = "ldap-bind"; failure_delay = 0; };')
        stuck = send_logins(self.L.imap_port, ["alice"] * 3, USERS["alice"])
        try:
            self.assertTrue(wait_until(lambda: (ENTRY_DN % "alice", USERS["alice"])
                                       in ldap.bind_requests, 10), ldap.bind_requests)
            self.assertTrue(wait_until(lambda: ldap.searches >= 3, 10))
            before = ldap.searches
            for i in range(5):
                reply, _, r = imap_login(self.L.imap_port, "nobody%d" % i)
                r.close()
                self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
            self.assertEqual(ldap.searches, before + 5)
            for r in stuck:
                self.assertTrue(r.until(b"a ")[-1].startswith(b"a NO [UNAVAILABLE]"))
        finally:
            for r in stuck:
                r.close()
        ldap.stop()
        self.use(fake_ldap("ok"))
        self.assertTrue(real_login_works(self.L.imap_port))

    def test_operation_error_fails_one_request_and_keeps_the_connection(self):
        for code in (1, 50):      # operationsError, insufficientAccessRights
            with self.subTest(code=code):
                ldap = self.quiet_ldap("op_error", error_logins={"opfail"}, result_code=code)
                self.use(ldap, "pool = 1;")
                self.assertTrue(real_login_works(self.L.imap_port))
                conns, binds = ldap.connections, ldap.binds
                mark = len(self.L.log())
                for _ in range(5):
                    reply, _, r = imap_login(self.L.imap_port, "opfail")
                    r.close()
                    self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
                    self.assertTrue(real_login_works(self.L.imap_port))
                # Every search came on the first connection, bound once.
                self.assertEqual((ldap.connections, ldap.binds), (conns, binds))
                self.assertEqual({s.connection for s in ldap.search_requests}, {1})
                self.assertEqual(len(ldap.search_requests), 11)
                log = self.L.log()[mark:]
                self.assertNotIn("ldap: connection", log)
                self.assertLess(len(log.splitlines()), 5 * 8, log[-2000:])


def logins_while(port: int, stop: threading.Event, results: list, user: str = "alice"):
    """Log in and out as *user* until *stop* is set; append each outcome."""
    while not stop.is_set():
        try:
            results.append(real_login_works(port, user))
        except OSError as e:
            results.append(e)


class Daemon(unittest.TestCase):
    """The process as a whole: its port, its descriptors, its signals."""

    def test_second_instance_refuses_the_port(self):
        # Same address as the running postern: it must fail, not share.
        ports = {"imap": P.imap_port, "pop3": P.pop3_port, "popmap": P.popmap_path}
        conf = os.path.join(TMP, "second.conf")
        with open(conf, "w") as f:
            f.write(base_config(ports))
        res = subprocess.run([binary(), "-c", conf], capture_output=True, text=True,
                             timeout=PATIENCE)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("Address already in use", res.stdout + res.stderr)
        self.assertTrue(real_login_works(P.imap_port))

    def test_check_config_asks_the_directory(self):
        conf = os.path.join(TMP, "check.conf")
        ports = {"imap": 1, "pop3": 2, "popmap": P.popmap_path}
        for behaviour, rc, text in (("ok", 0, "configuration ok"),
                                    ("refuse_bind", 1, "rejected: Invalid credentials: "
                                     "check bind_dn and bind_password")):
            with self.subTest(behaviour=behaviour):
                ldap = fake_ldap(behaviour)
                with open(conf, "w") as f:
                    f.write(base_config(ports, directory=ldap_directory(ldap.uri)))
                res = subprocess.run([binary(), "-c", conf, "--check-config"],
                                     capture_output=True, text=True, timeout=PATIENCE)
                self.assertEqual(res.returncode, rc, res.stdout + res.stderr)
                self.assertIn(text, res.stdout + res.stderr)
                self.assertNotIn("secret", res.stdout + res.stderr)

    def test_descriptor_exhaustion(self):
        # 64 descriptors and no connection cap: accept() meets EMFILE.  The
        # listener pauses (no busy loop, no log flood), the clients already
        # in are served, and accepting resumes once descriptors free up.
        q = Postern(lambda p: base_config(p, limits="connections = 1000;", threads=1),
                    popmap=popmap(), argv_prefix=["prlimit", "--nofile=64:64"]).start()
        socks = []
        try:
            inside = Raw(q.imap_port, timeout=PATIENCE)
            inside.line()
            for _ in range(120):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", q.imap_port),
                                                          timeout=PATIENCE))
                except OSError:
                    break
            self.assertTrue(wait_until(lambda: "not accepting" in q.log(), 10), q.log()[-800:])
            before = cpu_seconds(q.proc.pid)
            time.sleep(2)
            self.assertLess(cpu_seconds(q.proc.pid) - before, 1.0, "accept loop spins")
            self.assertLess(q.log().count("not accepting"), 10, q.log()[-800:])
            # The client that got in is still served.
            inside.send(b"a NOOP\r\n")
            self.assertTrue(inside.until(b"a ")[-1].startswith(b"a OK"))
            inside.close()
            for s in socks:
                s.close()
            socks = []
            self.assertTrue(wait_until(lambda: real_login_works(q.imap_port), 15))
        finally:
            for s in socks:
                s.close()
            rc = q.stop()
            leaks = q.leaks()
            q.cleanup()
        self.assertEqual((rc, leaks), (0, ""))

    def test_connection_cap_follows_the_descriptor_limit(self):
        q = Postern(lambda p: base_config(p, threads=1), popmap=popmap(),
                    argv_prefix=["prlimit", "--nofile=256:256"]).start()
        socks = []
        try:
            pat = re.compile(r"connections (\d+) \(from the descriptor limit\)")
            # The line follows the listeners' start: it may trail the port.
            self.assertTrue(wait_until(lambda: pat.search(q.log()), 10), q.log()[-800:])
            m = pat.search(q.log())
            cap = int(m.group(1))
            self.assertTrue(0 < cap < 256, cap)
            for _ in range(cap):
                s = Raw(q.imap_port, timeout=PATIENCE)
                socks.append(s)
                self.assertTrue(s.line().startswith(b"* OK"))
            extra = Raw(q.imap_port, timeout=PATIENCE)
            self.assertTrue(extra.line().startswith(b"* BYE"))
            extra.close()
        finally:
            for s in socks:
                s.close()
            rc = q.stop()
            leaks = q.leaks()
            q.cleanup()
        self.assertEqual((rc, leaks), (0, ""))

    def stop_with_lookups_in_flight(self, sig):
        slow = fake_ldap("slow", delay=3.0)
        q = Postern(lambda p: base_config(p, directory=ldap_directory(slow.uri)),
                    popmap=popmap()).start()
        waiting = []
        try:
            for i in range(30):
                w = Raw(q.imap_port, timeout=PATIENCE)
                w.line()
                w.send(b"a LOGIN u%d pw\r\n" % i)
                waiting.append(w)
            self.assertTrue(wait_until(lambda: slow.searches >= 10, 5), slow.searches)
        finally:
            rc = q.stop(sig)
            for w in waiting:
                w.close()
            leaks = q.leaks()
            q.cleanup()
        self.assertEqual((rc, leaks), (0, ""))

    def test_sigint_with_lookups_in_flight(self):
        self.stop_with_lookups_in_flight(signal.SIGINT)

    def test_sigterm_with_lookups_in_flight(self):
        self.stop_with_lookups_in_flight(signal.SIGTERM)

    def test_sighup_repeatedly_under_load(self):
        q = Postern(lambda p: base_config(p, directory=ldap_directory(
                        fake_ldap("ok").uri)), popmap=popmap()).start()
        ports = {"imap": q.imap_port, "pop3": q.pop3_port, "popmap": q.popmap_path}
        stop, results = threading.Event(), []
        workers = [threading.Thread(target=logins_while, args=(q.imap_port, stop, results))
                   for _ in range(4)]
        try:
            for t in workers:
                t.start()
            for i in range(10):
                # Alternate the directory: every reload makes and drops a pool.
                directory = (ldap_directory(fake_ldap("ok").uri) if i % 2 else
                             'type = "file"; file = { path = "%s"; };' % q.popmap_path)
                reload_to(q, base_config(ports, directory=directory))
                # Logins run between every two reloads, however slow the machine.
                n = len(results)
                self.assertTrue(wait_until(lambda: len(results) > n, 20))
        finally:
            stop.set()
            for t in workers:
                t.join()
            rc = q.stop()
            leaks = q.leaks()
            q.cleanup()
        self.assertEqual([r for r in results if r is not True], [])
        self.assertGreater(len(results), 10)
        self.assertEqual((rc, leaks), (0, ""))


class ZZShutdown(unittest.TestCase):
    """Last: the main daemon, after every hostile peer above, exits cleanly
    with nothing leaked and no sanitizer report."""

    def test_clean_exit_after_the_hostile_peers(self):
        rc = P.stop()
        self.assertEqual(rc, 0, P.log()[-3000:])
        self.assertEqual(P.leaks(), "")


if __name__ == "__main__":
    sys.exit(main(__name__))
