"""End-to-end: the sql directory back-end.  A throwaway PostgreSQL (and,
when installed, MariaDB) answers directory.sql.query with the login bound
as $1; real logins land on real Dovecot stores.  The MariaDB scenario is
Perdition's ISP setup: a `mailboxes` table keyed by address, the store's
address in `storage_ip`, the port fixed at 143.  A database that is down,
mute, refuses our password or answers something unusable gives a prompt
temporary failure and a log line, never a hang.  A pool that failed over
to a later host returns to the first once it is back (failback).
"""

from __future__ import annotations

import imaplib
import os
import poplib
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import (free_port, free_ports, loopback,  # noqa: E402
                             make_tempdir, make_test_ca, remove_tempdir)
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.mariadb import MariaDB, mariadb_available  # noqa: E402
from fixtures.postern import Postern, binary  # noqa: E402
from fixtures.postgres import Postgres, postgres_available  # noqa: E402
from lib import Raw, main  # noqa: E402

SQL_TIMEOUT = 2
PROMPT = 1.5            # seconds: a database that is down answers at once
STORE_A, STORE_B, STORE_ISP = loopback(1), loopback(3), loopback(5)
USERS = {
    STORE_A: {"alice": "alice-secret", "carol": "carol-secret"},
    STORE_B: {"bob-store": "bob-secret"},
    STORE_ISP: {"isp@example.net": "isp-secret"},
}
QUERY = "SELECT host, username, port FROM mailboxes WHERE address = $1"

PG = None
PKI_DIR = None
CA = WRONG_CA = None    # the databases' CA; one that issued none of theirs
STORE = {}
IMAP_PORT = POP3_PORT = None


def refused_port(host: str = "127.0.0.1") -> int:
    return free_port(host)


def sql_config(sql: str, types: str = '"sql"', daemon: str = "",
               lookup_timeout: int = SQL_TIMEOUT + 2):
    def render(p: dict) -> str:
        return """
daemon = { threads = 2; log_level = "info"; drain = 2; %s };
timeouts = { login = 30; connect = 3; lookup = %d; };
limits = { auth_failures = 10; throttle = false; };
auth = { failure_delay = 0; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
directory = {
  type = %s;
  cache = { entries = 0; };
  file = { path = "%s"; };
  sql = { %s };
};
backend = { imap_port = %d; pop3_port = %d; };
""" % (daemon % p, lookup_timeout, p["imap"], p["pop3"], types, p["popmap"],
       sql, IMAP_PORT, POP3_PORT)
    return render


def pg_sql(hosts: str = None, *, password: str = None, query: str = QUERY,
           extra: str = "") -> str:
    return ('driver = "postgresql"; hosts = "%s"; database = "%s"; user = "%s"; '
            'password = "%s"; query = "%s"; timeout = %d; pool = 2; %s'
            % (hosts or "%s:%d" % (PG.host, PG.port), PG.database, PG.user,
               PG.password if password is None else password, query,
               SQL_TIMEOUT, extra))


def built_with(driver: str) -> bool:
    """Was the binary built with the driver's client library?"""
    conf = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                        "postern-sql-probe-%d.conf" % os.getpid())
    with open(conf, "w", encoding="utf-8") as f:
        f.write('directory = { type = "sql"; sql = { driver = "%s"; '
                'hosts = "127.0.0.1:1"; query = "SELECT h FROM t WHERE a = $1"; '
                'timeout = 1; }; };\n' % driver)
    try:
        res = check_config(conf)
    finally:
        os.unlink(conf)
    return "needs postern built with" not in res.stderr


def setUpModule():
    global PG, IMAP_PORT, POP3_PORT, PKI_DIR, CA, WRONG_CA
    if not postgres_available():
        raise unittest.SkipTest("PostgreSQL server not installed")
    if not built_with("postgresql"):
        raise unittest.SkipTest("postern built without libpq")
    IMAP_PORT, POP3_PORT = free_ports(2)
    PKI_DIR = make_tempdir("postern-sql-pki-")
    CA = make_test_ca(os.path.join(PKI_DIR, "ca"), names=[loopback(20),
                                                          loopback(21)])
    WRONG_CA = make_test_ca(os.path.join(PKI_DIR, "wrong"))
    for addr in (STORE_A, STORE_B):
        STORE[addr] = Dovecot(addr.replace(".", "-"), USERS[addr], host=addr,
                              imap_port=IMAP_PORT, pop3_port=POP3_PORT)
        STORE[addr].start()
    PG = Postgres(host=loopback(20), tls=CA).start()
    PG.sql("""
CREATE TABLE mailboxes (address text NOT NULL, host text, username text,
                        port integer);
INSERT INTO mailboxes VALUES
  ('alice@example.net', '%(a)s', 'alice', NULL),
  ('carol@example.net', '%(a)s', 'carol', 0),
  ('bob@example.net', '%(b)s', 'bob-store', %(port)d),
  ('nullhost@example.net', NULL, NULL, NULL),
  ('twin@example.net', '%(a)s', NULL, NULL),
  ('twin@example.net', '%(b)s', NULL, NULL),
  ('badport@example.net', '%(a)s', NULL, 70000);
GRANT SELECT ON mailboxes TO %(user)s;
""" % {"a": STORE_A, "b": STORE_B, "port": IMAP_PORT, "user": PG.user})


def tearDownModule():
    if PG is not None:
        PG.cleanup()
    stop_all(*STORE.values())
    remove_tempdir(PKI_DIR)


def lands(port: int, login: str, pw: str, addr: str, user: str) -> bool:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=15)
    try:
        m.login(login, pw)
        m.select("INBOX")
        _, data = m.fetch("1", "(BODY[])")
        body = data[0][1]
        return (STORE[addr].welcome_line.encode() in body and
                ("belongs to %s." % user).encode() in body)
    finally:
        try:
            m.logout()
        except Exception:  # noqa: BLE001
            pass


def login_reply(port: int, login: str, pw: str) -> tuple[bytes, float]:
    """The tagged reply to a LOGIN and how long it took."""
    r = Raw(port)
    try:
        r.line()
        t0 = time.monotonic()
        r.send(b'a LOGIN "%s" "%s"\r\n' % (login.encode(), pw.encode()))
        return r.line(), time.monotonic() - t0
    finally:
        r.close()


def lookup(conf: str, user: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary(), "-c", conf, "--lookup", user],
                          capture_output=True, text=True, timeout=30)


def check_config(conf: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary(), "-c", conf, "--check-config"],
                          capture_output=True, text=True, timeout=30)


def finish(tc: unittest.TestCase, p: Postern) -> None:
    rc = p.stop()
    leaks = p.leaks()
    p.cleanup()
    tc.assertEqual(rc, 0)
    tc.assertEqual(leaks, "")


class Mute:
    """A listener that accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class Reset:
    """A listener that takes each connection and resets it at once."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            c.close()

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


class Trickle:
    """A TCP relay to a real server that, once the client has sent `word`,
    passes the server's bytes on one a second: a server that is never
    quite silent, so no per-read timeout fires."""

    def __init__(self, host: str, port: int, word: bytes):
        self.target = (host, port)
        self.word = word
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(self.target, timeout=10)
            s.settimeout(None)
            self.conns += [c, s]
            slow = threading.Event()
            threading.Thread(target=self.up, args=(c, s, slow), daemon=True).start()
            threading.Thread(target=self.down, args=(s, c, slow), daemon=True).start()

    def up(self, src, dst, slow):
        try:
            while (data := src.recv(65536)):
                if self.word in data:
                    slow.set()
                dst.sendall(data)
        except OSError:
            pass
        self.shut(dst)

    def down(self, src, dst, slow):
        try:
            while (data := src.recv(65536)):
                if not slow.is_set():
                    dst.sendall(data)
                    continue
                for i in range(len(data)):
                    dst.sendall(data[i:i + 1])
                    time.sleep(1)
        except OSError:
            pass
        self.shut(dst)

    @staticmethod
    def shut(s):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self):
        self.shut(self.sock)
        self.sock.close()
        for c in self.conns:
            self.shut(c)
            c.close()


class Relay:
    """A TCP relay in front of a real server, which the test stops and
    restarts on the same port.  Stopped, it cuts the connections it
    carries and resets each new one at once, counting them: the attempts
    made on a host that is down.  It counts the connections it carries and
    the logins that pass through them to the server, in clear text with
    tls = "none": the queries."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.up = True
        self.conns = []
        self.queries = self.refused = self.carried = 0
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if not self.up:
                    self.refused += 1
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                    c.close()
                    continue
            try:
                s = socket.create_connection(self.target, timeout=10)
            except OSError:
                c.close()
                continue
            s.settimeout(None)
            with self.lock:
                self.conns += [c, s]
                self.carried += 1
            threading.Thread(target=self.pump, args=(c, s, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(s, c, False), daemon=True).start()

    def pump(self, src, dst, count):
        try:
            while (data := src.recv(65536)):
                if count:
                    with self.lock:
                        self.queries += data.count(b"@example.net")
                dst.sendall(data)
        except OSError:
            pass
        Trickle.shut(dst)

    def counts(self) -> tuple[int, int, int]:
        """Queries, connections reset while down, connections carried."""
        with self.lock:
            return self.queries, self.refused, self.carried

    def stop(self):
        with self.lock:
            self.up = False
            conns, self.conns = self.conns, []
        for c in conns:
            Trickle.shut(c)
            c.close()

    def start(self):
        with self.lock:
            self.up = True

    def close(self):
        self.stop()
        Trickle.shut(self.sock)
        self.sock.close()


class PlainMySQL:
    """A MySQL server that offers no TLS and lets anyone in: its greeting
    (protocol 10, mysql_native_password, no CLIENT_SSL), then an OK to
    whatever login comes, then silence."""

    CAPS = 0x0200 | 0x8000 | 0x80000 | 0x0008  # PROTOCOL_41, SECURE_CONNECTION,
    #                                            PLUGIN_AUTH, CONNECT_WITH_DB

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()

    @staticmethod
    def packet(seq: int, payload: bytes) -> bytes:
        return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload

    def greeting(self) -> bytes:
        return (b"\x0a" + b"5.5.5-10.11.0-fake\0" + struct.pack("<I", 1) +
                b"abcdefgh\0" + struct.pack("<H", self.CAPS & 0xffff) +
                b"\x21" + struct.pack("<H", 2) +
                struct.pack("<H", self.CAPS >> 16) + b"\x15" + b"\0" * 10 +
                b"ijklmnopqrst\0" + b"mysql_native_password\0")

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            try:
                c.sendall(self.packet(0, self.greeting()))
                c.recv(65536)                       # the login
                c.sendall(self.packet(2, b"\0\0\0" + struct.pack("<HH", 2, 0)))
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class A_Postgres(unittest.TestCase):
    """PostgreSQL through libpq; the first host listed is down (failover)."""

    @classmethod
    def setUpClass(cls):
        hosts = "127.0.0.1:%d %s:%d" % (refused_port(), PG.host, PG.port)
        cls.p = Postern(sql_config(pg_sql(hosts))).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.p.stop()
        leaks = cls.p.leaks()
        cls.p.cleanup()
        assert rc == 0 and leaks == "", (rc, leaks)

    def test_imap_login_through_the_table(self):
        self.assertTrue(lands(self.p.imap_port, "alice@example.net",
                              "alice-secret", STORE_A, "alice"))
        # Port 0 keeps the default.
        self.assertTrue(lands(self.p.imap_port, "carol@example.net",
                              "carol-secret", STORE_A, "carol"))

    def test_username_and_port_columns(self):
        self.assertTrue(lands(self.p.imap_port, "bob@example.net", "bob-secret",
                              STORE_B, "bob-store"))

    def test_pop3_login(self):
        p = poplib.POP3("127.0.0.1", self.p.pop3_port, timeout=15)
        p.user("alice@example.net")
        p.pass_("alice-secret")
        _, lines, _ = p.retr(1)
        self.assertIn(STORE[STORE_A].welcome_line.encode(), b"\n".join(lines))
        p.quit()

    def test_no_row_is_an_unknown_user(self):
        reply, _ = login_reply(self.p.imap_port, "nobody@example.net", "x")
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)

    def test_login_is_bound_never_spliced(self):
        reply, _ = login_reply(self.p.imap_port, "x'OR'1'='1", "x")
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)

    def test_unusable_rows_are_temporary(self):
        for login, text in (("nullhost@example.net", "malformed answer: NULL host"),
                            ("twin@example.net", "ambiguous: 2 rows"),
                            ("badport@example.net", "(bad port value)")):
            with self.subTest(login=login):
                reply, took = login_reply(self.p.imap_port, login, "x")
                self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
                self.assertLess(took, PROMPT)
                self.assertIn(text, self.p.log())
                res = lookup(self.p.conf_path, login)
                self.assertEqual(res.returncode, 1)
                self.assertIn("status: tempfail", res.stdout)
                self.assertIn(text, res.stdout)

    def test_lookup(self):
        res = lookup(self.p.conf_path, "bob@example.net")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("directory: sql", res.stdout)
        self.assertIn("source: sql username=bob-store port=%d host=%s"
                      % (IMAP_PORT, STORE_B), res.stdout)
        self.assertIn("backend_user: bob-store\n", res.stdout)
        res = lookup(self.p.conf_path, "nobody@example.net")
        self.assertEqual(res.returncode, 1)
        self.assertIn("status: not-found", res.stdout)

    def test_check_config(self):
        res = check_config(self.p.conf_path)
        self.assertEqual(res.returncode, 1, res.stderr)  # the first host is down
        self.assertIn("directory.sql.hosts: 127.0.0.1:", res.stderr)
        p = Postern(sql_config(pg_sql()))
        p.start()
        try:
            res = check_config(p.conf_path)
            self.assertEqual(res.returncode, 0, res.stderr)
        finally:
            finish(self, p)


class B_PostgresTrouble(unittest.TestCase):
    """Down, mute, wrong password, wrong columns, the queue's bound."""

    def test_server_down_is_temporary_at_once(self):
        p = Postern(sql_config(pg_sql("127.0.0.1:%d" % refused_port()))).start()
        try:
            for _ in range(2):      # the second within the back-off
                reply, took = login_reply(p.imap_port, "alice@example.net", "x")
                self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
                self.assertLess(took, PROMPT)
            self.assertIn("sql: 127.0.0.1:", p.log())
            self.assertIn("connect: ", p.log())
        finally:
            finish(self, p)

    def test_z_database_restart_costs_no_login(self):
        """Connections the restart cut off are replaced on first use."""
        p = Postern(sql_config(pg_sql())).start()
        try:
            for _ in range(3):      # both pool connections up
                self.assertTrue(lands(p.imap_port, "alice@example.net",
                                      "alice-secret", STORE_A, "alice"))
            PG.restart()
            for _ in range(3):
                self.assertTrue(lands(p.imap_port, "alice@example.net",
                                      "alice-secret", STORE_A, "alice"))
            self.assertIn("sql: %s:%d: connection lost: " % (PG.host, PG.port), p.log())
        finally:
            finish(self, p)

    def test_resetting_server_is_temporary_at_once(self):
        reset = Reset()
        p = Postern(sql_config(pg_sql("127.0.0.1:%d" % reset.port))).start()
        try:
            reply, took = login_reply(p.imap_port, "alice@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn("sql: database unreachable (127.0.0.1:%d: connect: "
                          % reset.port, p.log())
        finally:
            finish(self, p)
            reset.close()

    def test_mute_server_fails_at_its_deadline(self):
        mute = Mute()
        p = Postern(sql_config(pg_sql("127.0.0.1:%d" % mute.port))).start()
        try:
            reply, took = login_reply(p.imap_port, "alice@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertGreater(took, SQL_TIMEOUT - 0.5)
            self.assertLess(took, SQL_TIMEOUT + 1.5)
            self.assertIn("no answer in time (directory.sql.timeout)", p.log())
            t0 = time.monotonic()
            res = check_config(p.conf_path)
            self.assertEqual(res.returncode, 1)
            self.assertLess(time.monotonic() - t0, SQL_TIMEOUT + 3)
        finally:
            finish(self, p)
            mute.close()

    def test_wrong_password(self):
        p = Postern(sql_config(pg_sql(password="wrong"))).start()
        try:
            reply, took = login_reply(p.imap_port, "alice@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn("password authentication failed", p.log())
            res = check_config(p.conf_path)
            self.assertEqual(res.returncode, 1)
            self.assertIn("directory.sql.password", res.stderr)
            self.assertIn("password authentication failed", res.stderr)
        finally:
            finish(self, p)

    def test_password_file(self):
        def render(ports):
            path = os.path.join(ports["dir"], "sql.pw")
            with open(path, "w", encoding="utf-8") as f:
                f.write(PG.password + "\n")
            os.chmod(path, 0o600)
            return sql_config(pg_sql(password="") + 'password_file = "sql.pw";')(ports)
        p = Postern(render).start()
        try:
            self.assertTrue(lands(p.imap_port, "alice@example.net",
                                  "alice-secret", STORE_A, "alice"))
        finally:
            finish(self, p)

    def test_root_only_password_file_with_privilege_separation(self):
        """The privileged parent reads the file; the child runs as nobody."""
        def render(ports):
            path = os.path.join(ports["dir"], "sql.pw")
            with open(path, "w", encoding="utf-8") as f:
                f.write(PG.password + "\n")
            os.chmod(path, 0o600)
            daemon = ('user = "nobody"; pid_file = "%(dir)s/postern.pid"; '
                      'control = "%(dir)s/control";')
            return sql_config(pg_sql(password="") + 'password_file = "sql.pw";',
                              daemon=daemon)(ports)
        p = Postern(render).start()
        try:
            self.assertTrue(lands(p.imap_port, "alice@example.net",
                                  "alice-secret", STORE_A, "alice"))
            self.assertIn("privsep", p.log())
        finally:
            finish(self, p)

    def test_wrong_column_count(self):
        q = "SELECT host, username, port, address FROM mailboxes WHERE address = $1"
        p = Postern(sql_config(pg_sql(query=q))).start()
        try:
            reply, took = login_reply(p.imap_port, "alice@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn("malformed answer: 4 columns", p.log())
            res = check_config(p.conf_path)
            self.assertEqual(res.returncode, 1)
            self.assertIn("directory.sql.query: answers 4 columns", res.stderr)
        finally:
            finish(self, p)

    def test_query_the_server_refuses(self):
        q = "SELECT host FROM no_such_table WHERE address = $1"
        p = Postern(sql_config(pg_sql(query=q))).start()
        try:
            reply, took = login_reply(p.imap_port, "alice@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn("no_such_table", p.log())
            res = check_config(p.conf_path)
            self.assertEqual(res.returncode, 1)
            self.assertIn("no_such_table", res.stderr)
        finally:
            finish(self, p)

    def test_queue_bound_sheds_load(self):
        mute = Mute()
        p = Postern(sql_config(pg_sql("127.0.0.1:%d" % mute.port,
                                      extra="queue = 1;"))).start()
        first = Raw(p.imap_port)
        try:
            first.line()
            first.send(b"a LOGIN alice@example.net x\r\n")
            time.sleep(0.5)                 # the one slot is taken
            reply, took = login_reply(p.imap_port, "alice@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn(b"a NO [UNAVAILABLE]", first.line())   # its deadline
            self.assertIn("(directory.sql.queue)", p.log())
        finally:
            first.close()
            finish(self, p)
            mute.close()

    def test_chain_falls_through_on_no_row(self):
        def render(ports):
            return sql_config(pg_sql(), '[ "sql", "file" ]')(ports)
        p = Postern(render, popmap="dave@example.net %s bob-store\n" % STORE_B).start()
        try:
            self.assertTrue(lands(p.imap_port, "dave@example.net", "bob-secret",
                                  STORE_B, "bob-store"))
            self.assertTrue(lands(p.imap_port, "alice@example.net",
                                  "alice-secret", STORE_A, "alice"))
        finally:
            finish(self, p)


class C_MariaDB(unittest.TestCase):
    """Perdition's ISP setup: MySQL table mailboxes, key column address,
    host column storage_ip, the port fixed at 143."""

    @classmethod
    def setUpClass(cls):
        if not mariadb_available():
            raise unittest.SkipTest("MariaDB server not installed")
        if not built_with("mysql"):
            raise unittest.SkipTest("postern built without libmariadb")
        cls.isp = Dovecot("isp", USERS[STORE_ISP], host=STORE_ISP, imap_port=143,
                          pop3_port=free_port(STORE_ISP))
        cls.isp.start()
        STORE[STORE_ISP] = cls.isp
        cls.db = MariaDB(host=loopback(21), tls=CA).start()
        cls.db.sql("""
CREATE TABLE mailboxes (address VARCHAR(255) NOT NULL PRIMARY KEY,
                        storage_ip VARCHAR(64));
INSERT INTO mailboxes VALUES ('isp@example.net', '%s'),
                             ('slow@example.net', '%s'),
                             ('nullhost@example.net', NULL);
""" % (STORE_ISP, STORE_ISP))

    @classmethod
    def tearDownClass(cls):
        cls.db.cleanup()

    def my_sql(self, password=None, query=None, hosts=None, pool=2, extra=""):
        q = query or ("SELECT storage_ip, NULL, 143 FROM mailboxes "
                      "WHERE address = $1")
        return ('driver = "mysql"; hosts = "%s"; database = "%s"; user = "%s"; '
                'password = "%s"; query = "%s"; timeout = %d; pool = %d; %s'
                % (hosts or "%s:%d" % (self.db.host, self.db.port),
                   self.db.database, self.db.user,
                   self.db.password if password is None else password, q,
                   SQL_TIMEOUT, pool, extra))

    def test_isp_login_on_port_143(self):
        p = Postern(sql_config(self.my_sql())).start()
        try:
            self.assertTrue(lands(p.imap_port, "isp@example.net", "isp-secret",
                                  STORE_ISP, "isp@example.net"))
            reply, _ = login_reply(p.imap_port, "nobody@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
            reply, took = login_reply(p.imap_port, "nullhost@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn("malformed answer: NULL host", p.log())
            reply, _ = login_reply(p.imap_port, "x'OR'1'='1", "x")
            self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
            res = lookup(p.conf_path, "isp@example.net")
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertIn("source: sql port=143 host=%s" % STORE_ISP, res.stdout)
            res = check_config(p.conf_path)
            self.assertEqual(res.returncode, 0, res.stderr)
        finally:
            finish(self, p)

    def test_trouble(self):
        mute = Mute()
        for sql, within, text in (
                (self.my_sql(password="wrong"), PROMPT, "Access denied"),
                (self.my_sql(hosts="127.0.0.1:%d" % refused_port()), PROMPT,
                 "connect: "),
                (self.my_sql(query="SELECT storage_ip, NULL, 143, address FROM "
                             "mailboxes WHERE address = $1"), PROMPT,
                 "malformed answer: 4 columns"),
                (self.my_sql(hosts="127.0.0.1:%d" % mute.port),
                 SQL_TIMEOUT + 1.5, "connect: timed out (directory.sql.timeout)")):
            with self.subTest(text=text):
                p = Postern(sql_config(sql)).start()
                try:
                    reply, took = login_reply(p.imap_port, "isp@example.net", "x")
                    self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
                    self.assertLess(took, within)
                    self.assertIn(text, p.log())
                    self.assertEqual(check_config(p.conf_path).returncode, 1)
                finally:
                    finish(self, p)
        mute.close()

    def test_trickling_server_fails_at_the_deadline(self):
        """A server that answers a byte a second trips no per-read
        timeout; the deadline still ends the query (or the login to the
        server), and the pool's one connection is replaced for the next
        login."""
        # After the query for slow@; after our first packet (the login;
        # with TLS, the request to start it: the handshake trickles, read
        # by OpenSSL in blocking mode, where only the watchdog ends it).
        for word, what, tls in ((b"slow@example.net", "query", "none"),
                                (b"", "connect", "none"),
                                (b"", "connect", "require")):
            with self.subTest(what=what, tls=tls):
                trickle = Trickle(self.db.host, self.db.port, word)
                hosts = "127.0.0.1:%d" % trickle.port
                p = Postern(sql_config(self.my_sql(hosts=hosts, pool=1,
                                                   extra='tls = "%s";' % tls),
                                       lookup_timeout=60)).start()
                try:
                    reply, took = login_reply(p.imap_port, "slow@example.net", "x")
                    self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
                    self.assertLess(took, SQL_TIMEOUT + 5)
                    line = "sql: %s: %s: timed out" % (hosts, what)
                    self.assertEqual(p.log().count(line), 1, p.log())
                    if what == "query":
                        self.assertTrue(lands(p.imap_port, "isp@example.net",
                                              "isp-secret", STORE_ISP,
                                              "isp@example.net"))
                finally:
                    finish(self, p)
                    trickle.close()
    def test_tls(self):
        """tls = "verify" with the server's CA logs in; with another CA
        it is a prompt temporary failure that says why; "require" and the
        default ("prefer") get on with the certificate unchecked."""
        for tls, within in (('tls = "verify"; ca_file = "%s";' % CA.ca_cert, None),
                            ('tls = "require";', None), ("", None),
                            ('tls = "verify"; ca_file = "%s";' % WRONG_CA.ca_cert,
                             PROMPT)):
            with self.subTest(tls=tls):
                p = Postern(sql_config(self.my_sql(extra=tls))).start()
                try:
                    if within is None:
                        self.assertTrue(lands(p.imap_port, "isp@example.net",
                                              "isp-secret", STORE_ISP,
                                              "isp@example.net"))
                        continue
                    reply, took = login_reply(p.imap_port, "isp@example.net", "x")
                    self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
                    self.assertLess(took, within)
                    self.assertIn("sql: %s:%d: connect: " % (self.db.host,
                                                            self.db.port), p.log())
                    self.assertIn("certificate", p.log())
                    res = check_config(p.conf_path)
                    self.assertEqual(res.returncode, 1)
                    self.assertIn("directory.sql.hosts", res.stderr)
                    self.assertIn("tls and ca_file", res.stderr)
                finally:
                    finish(self, p)


    def test_verify_checks_the_name(self):
        """Through a relay on 127.0.0.1, which the certificate does not name."""
        relay = Trickle(self.db.host, self.db.port, b"never in the stream")
        p = Postern(sql_config(self.my_sql(
            hosts="127.0.0.1:%d" % relay.port,
            extra='tls = "verify"; ca_file = "%s";' % CA.ca_cert))).start()
        try:
            reply, took = login_reply(p.imap_port, "isp@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn("sql: 127.0.0.1:%d: connect: TLS/SSL error: Validation "
                          "of SSL server certificate failed" % relay.port, p.log())
        finally:
            finish(self, p)
            relay.close()

    def test_require_refuses_a_server_without_tls(self):
        plain = PlainMySQL()
        p = Postern(sql_config(self.my_sql(hosts="127.0.0.1:%d" % plain.port,
                                           extra='tls = "require";'))).start()
        try:
            reply, took = login_reply(p.imap_port, "isp@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn("sql: 127.0.0.1:%d: connect: the server offers no TLS "
                          '(directory.sql.tls = "require")' % plain.port, p.log())
        finally:
            finish(self, p)
            plain.close()


class E_PostgresFailback(unittest.TestCase):
    """hosts = "A B", A a relay in front of the PostgreSQL that B names
    directly.  A goes down: logins go on through B.  A comes back: within
    directory.sql.failback (plus a little) the queries go through A again,
    and while A was down the pool tried it about once per period, not once
    per connection."""

    FAILBACK = 1
    DOWN = 4

    def login(self, p: Postern) -> None:
        self.assertTrue(lands(p.imap_port, "alice@example.net", "alice-secret",
                              STORE_A, "alice"))

    def test_failover_then_failback(self):
        relay = Relay(PG.host, PG.port)
        hosts = "127.0.0.1:%d %s:%d" % (relay.port, PG.host, PG.port)
        p = Postern(sql_config(pg_sql(hosts, extra='tls = "none"; failback = %d;'
                                      % self.FAILBACK))).start()
        try:
            for _ in range(3):
                self.login(p)
            self.assertEqual(relay.counts()[0], 3)
            relay.stop()
            for _ in range(3):
                self.login(p)
            self.assertEqual(relay.counts()[0], 3)
            self.assertIn("sql: connected to %s:%d" % (PG.host, PG.port), p.log())
            before = relay.counts()[1]
            time.sleep(self.DOWN)
            tries = relay.counts()[1] - before
            self.assertGreaterEqual(tries, 1)
            self.assertLessEqual(tries, self.DOWN // self.FAILBACK + 1)  # not per connection
            relay.start()
            time.sleep(self.FAILBACK + 2)
            queries = relay.counts()[0]
            for _ in range(4):
                self.login(p)
            self.assertEqual(relay.counts()[0], queries + 4)
            self.assertIn("sql: connected to 127.0.0.1:%d" % relay.port, p.log())
        finally:
            finish(self, p)
            relay.close()

    def test_failback_zero_stays(self):
        """failback = 0: a connection on B stays there, A or not."""
        relay = Relay(PG.host, PG.port)
        relay.stop()
        hosts = "127.0.0.1:%d %s:%d" % (relay.port, PG.host, PG.port)
        p = Postern(sql_config(pg_sql(hosts, extra='tls = "none"; failback = 0;'))).start()
        try:
            self.login(p)
            relay.start()
            time.sleep(3)
            self.assertEqual(relay.counts()[2], 0)
        finally:
            finish(self, p)
            relay.close()


class D_PostgresTLS(unittest.TestCase):
    """directory.sql.tls against a PostgreSQL that offers TLS."""

    def ssl_in_use(self) -> list[str]:
        """pg_stat_ssl's answer for postern's connections: t or f each."""
        out = PG.sql("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a "
                     "USING (pid) WHERE a.application_name = 'postern';")
        return [line.strip() for line in out.splitlines()
                if line.strip() in ("t", "f")]

    def test_verify_with_the_right_ca(self):
        p = Postern(sql_config(pg_sql(extra='tls = "verify"; ca_file = "%s";'
                                      % CA.ca_cert))).start()
        try:
            self.assertTrue(lands(p.imap_port, "alice@example.net",
                                  "alice-secret", STORE_A, "alice"))
            self.assertIn("t", self.ssl_in_use())
            self.assertEqual(check_config(p.conf_path).returncode, 0)
        finally:
            finish(self, p)

    def test_verify_with_another_ca_is_temporary(self):
        p = Postern(sql_config(pg_sql(extra='tls = "verify"; ca_file = "%s";'
                                      % WRONG_CA.ca_cert))).start()
        try:
            reply, took = login_reply(p.imap_port, "alice@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn("sql: %s:%d: connect: " % (PG.host, PG.port), p.log())
            self.assertIn("certificate verify failed", p.log())
            res = check_config(p.conf_path)
            self.assertEqual(res.returncode, 1)
            self.assertIn("certificate verify failed", res.stderr)
            self.assertIn("tls and ca_file", res.stderr)
        finally:
            finish(self, p)

    def test_require_and_none(self):
        for tls, ssl in (("require", "t"), ("none", "f")):
            with self.subTest(tls=tls):
                p = Postern(sql_config(pg_sql(extra='tls = "%s";' % tls))).start()
                try:
                    self.assertTrue(lands(p.imap_port, "alice@example.net",
                                          "alice-secret", STORE_A, "alice"))
                    self.assertIn(ssl, self.ssl_in_use())
                finally:
                    finish(self, p)

    def test_verify_checks_the_name(self):
        """Through a relay on 127.0.0.1, which the certificate does not name."""
        relay = Trickle(PG.host, PG.port, b"never in the stream")
        p = Postern(sql_config(pg_sql("127.0.0.1:%d" % relay.port,
                                      extra='tls = "verify"; ca_file = "%s";'
                                      % CA.ca_cert))).start()
        try:
            reply, took = login_reply(p.imap_port, "alice@example.net", "x")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn('does not match host name "127.0.0.1"', p.log())
        finally:
            finish(self, p)
            relay.close()

    def test_missing_ca_file(self):
        conf = os.path.join(PKI_DIR, "missing-ca.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write('directory = { type = "sql"; sql = { hosts = "%s:%d"; '
                    'query = "%s"; tls = "verify"; ca_file = "no-such-ca.pem"; '
                    '}; };\n' % (PG.host, PG.port, QUERY))
        res = check_config(conf)
        self.assertEqual(res.returncode, 1)
        self.assertIn("directory.sql.ca_file: %s: No such file or directory"
                      % os.path.join(PKI_DIR, "no-such-ca.pem"), res.stderr)


if __name__ == "__main__":
    sys.exit(main(__name__))
