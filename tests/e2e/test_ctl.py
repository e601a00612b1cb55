"""End-to-end: the control socket (daemon.control) and `postern ctl`
against a live daemon routing by the file map to two real Dovecot stores.
Every verb is driven through the real client binary; sessions are real
IMAP/POP3 clients (imaplib, poplib, raw sockets).
"""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import socket
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import free_ports, loopback  # noqa: E402
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.postern import Postern, binary  # noqa: E402
from lib import Raw, main  # noqa: E402

USERS_A = {
    "alice@example.org": "alice pw",
    "fo@example.org": "fo-pw",
    "carol@example.org": "carol-pw",
}
USERS_B = {
    "alice@example.org": "alice pw",
    "bob@example.org": "bob-pw",
    "fo@example.org": "fo-pw",
    "carol@example.org": "carol-pw",
}

A = B = P = None
# What the config file says; tests change it and reload.
SETTINGS = {"popmap": None, "broken": False}


def popmap(alice_on=None, carol_on=None) -> str:
    return (
        "alice@example.org  %s\n"
        "bob@example.org    %s\n"
        "carol@example.org  %s\n"
        "fo@example.org     %s,%s\n"
        % ((alice_on or A).host, B.host, (carol_on or A).host, A.host, B.host)
    )


def config(imap_port: int, pop3_port: int):
    def render(p: dict) -> str:
        if SETTINGS["broken"]:
            return "daemon = { threads = ; };\n"
        return """
daemon = { threads = 2; log_level = "info"; drain = 5; control = "%s/ctl.sock"; };
timeouts = { login = 10; connect = 3; backend = 6; lookup = 3; idle = 60; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
username = { lower_case = true; default_domain = "example.org"; };
directory = { type = "file"; on_move = "kick"; file = { path = "%s"; }; };
backend = { imap_port = %d; pop3_port = %d; };
""" % (p["dir"], p["imap"], p["pop3"], SETTINGS["popmap"] or p["popmap"],
       imap_port, pop3_port)
    return render


def setUpModule():
    global A, B, P
    imap_port, pop3_port = free_ports(2)
    A = Dovecot("store-a", USERS_A, host=loopback(1), imap_port=imap_port,
                pop3_port=pop3_port)
    B = Dovecot("store-b", USERS_B, host=loopback(3), imap_port=imap_port,
                pop3_port=pop3_port)
    A.start()
    B.start()
    P = Postern(config(imap_port, pop3_port), popmap="").start()
    P.write_popmap(popmap())
    # The map was empty at start: load the real one.
    rc, out, err = ctl("reload")
    assert rc == 0, (rc, out, err)


def tearDownModule():
    try:
        if P is not None:
            P.cleanup()
    finally:
        stop_all(*(x for x in (A, B) if x is not None))


def sock_path() -> str:
    return os.path.join(P.dir, "ctl.sock")


def ctl(*args, json_out=False, sock=None, conf=None, timeout=30):
    argv = [binary(), "ctl"]
    if sock is not None:
        argv += ["-s", sock]
    else:
        argv += ["-c", conf or P.conf_path]
    if json_out:
        argv.append("--json")
    argv += list(args)
    r = subprocess.run(argv, capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def records(text: str) -> list:
    """Parse text-mode records (values here never need quotes but a few)."""
    out = []
    for line in text.splitlines():
        rec = {}
        for pair in line.split(" "):
            k, _, v = pair.partition("=")
            rec[k] = v
        out.append(rec)
    return out


def write_config() -> None:
    ports = {"imap": P.imap_port, "pop3": P.pop3_port, "dir": P.dir,
             "popmap": P.popmap_path}
    with open(P.conf_path, "w", encoding="utf-8") as f:
        f.write(P.config(ports))


def set_popmap(text: str) -> None:
    P.write_popmap(text)
    rc, out, err = ctl("reload")
    assert rc == 0, (rc, out, err)


def imap():
    return imaplib.IMAP4("127.0.0.1", P.imap_port, timeout=15)


def lands_on(user: str, pw: str) -> Dovecot:
    m = imap()
    m.login(user, pw)
    typ, _ = m.select("INBOX")
    assert typ == "OK"
    typ, data = m.fetch("1", "(BODY[])")
    m.logout()
    body = data[0][1]
    for store in (A, B):
        if store.welcome_line.encode() in body:
            return store
    raise AssertionError("landed nowhere known")


def raw_imap_login(user: str, pw: str) -> Raw:
    r = Raw(P.imap_port)
    r.line()
    r.send(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), pw.encode()))
    last = r.until(b"a ")[-1]
    assert last.startswith(b"a OK"), last
    return r


def raw_pop3_login(user: str, pw: str) -> Raw:
    r = Raw(P.pop3_port)
    r.line()
    r.send(b"USER %s\r\n" % user.encode())
    assert r.line().startswith(b"+OK")
    r.send(b"PASS %s\r\n" % pw.encode())
    line = r.line()
    assert line.startswith(b"+OK"), line
    return r


def stats_at(sock=None) -> dict:
    rc, out, err = ctl("stats", json_out=True, sock=sock)
    assert rc == 0, (rc, out, err)
    return json.loads(out)


def stats() -> dict:
    rc, out, err = ctl("stats", json_out=True)
    assert rc == 0, (rc, out, err)
    lines = out.splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


class Sessions(unittest.TestCase):
    def test_sessions_list_imap_and_pop3_with_bytes(self):
        m = imap()
        m.login("alice", USERS_A["alice@example.org"])
        m.select("INBOX")
        m.fetch("1", "(BODY[])")
        p = poplib.POP3("127.0.0.1", P.pop3_port, timeout=15)
        p.user("bob@example.org")
        p.pass_(USERS_B["bob@example.org"])
        p.retr(1)
        try:
            rc, out, err = ctl("sessions")
            self.assertEqual(rc, 0, err)
            recs = records(out)
            mine = {(r["user"], r["proto"]): r for r in recs}
            a = mine[("alice@example.org", "imap")]
            b = mine[("bob@example.org", "pop3")]
            for r, store in ((a, A), (b, B)):
                self.assertEqual(r["state"], "RELAY")
                self.assertEqual(r["backend"], store.host)
                self.assertTrue(r["backend_addr"].startswith(store.host + ":"), r)
                self.assertTrue(r["client"].startswith("127.0.0.1:"), r)
                self.assertGreater(int(r["bytes_in"]), 0)
                self.assertGreater(int(r["bytes_out"]), 0)
                self.assertLessEqual(abs(int(r["since"]) - time.time()), 60)
            # A user's own sessions only, the name normalised as at login.
            rc, out, err = ctl("sessions", "BOB")
            self.assertEqual(rc, 0, err)
            recs = records(out)
            self.assertEqual(len(recs), 1, out)
            self.assertEqual(recs[0]["user"], "bob@example.org")
            # --json: one object per record, numbers as numbers.
            rc, out, err = ctl("sessions", "alice@example.org", json_out=True)
            self.assertEqual(rc, 0, err)
            objs = [json.loads(l) for l in out.splitlines()]
            self.assertEqual(len(objs), 1, out)
            self.assertIsInstance(objs[0]["bytes_out"], int)
            self.assertEqual(objs[0]["proto"], "imap")
            rc, out, err = ctl("sessions", "nobody@example.org")
            self.assertEqual((rc, out), (0, ""))
        finally:
            m.logout()
            p.quit()


class Kick(unittest.TestCase):
    def test_kick_closes_imap_with_bye_and_pop3_by_close(self):
        mi = raw_imap_login("alice@example.org", USERS_A["alice@example.org"])
        mp = raw_pop3_login("alice@example.org", USERS_A["alice@example.org"])
        other = raw_imap_login("bob@example.org", USERS_B["bob@example.org"])
        try:
            rc, out, err = ctl("kick", "Alice")
            self.assertEqual(rc, 0, err)
            self.assertEqual(records(out), [{"user": "alice@example.org",
                                             "kicked": "2"}])
            self.assertTrue(mi.closed(10))
            self.assertIn(b"* BYE [UNAVAILABLE]", mi.buf)
            self.assertTrue(mi.buf.endswith(b"\r\n"), mi.buf)
            # POP3: no goodbye, just the close.
            self.assertTrue(mp.closed(10))
            self.assertEqual(mp.buf, b"")
            # Others go on.
            other.send(b"n NOOP\r\n")
            self.assertTrue(other.until(b"n ")[-1].startswith(b"n OK"))
            rc, out, err = ctl("kick", "alice")
            self.assertEqual(records(out), [{"user": "alice@example.org",
                                             "kicked": "0"}])
        finally:
            for r in (mi, mp, other):
                r.close()


class Route(unittest.TestCase):
    def test_route_agrees_with_the_next_login(self):
        rc, out, err = ctl("route", "alice")
        self.assertEqual(rc, 0, err)
        (r,) = records(out)
        self.assertEqual(r["status"], "ok")
        self.assertEqual(r["hosts"], A.host)
        self.assertEqual(r["next"], A.host)
        self.assertEqual(r["backend_user"], "alice@example.org")
        self.assertIs(lands_on("alice", USERS_A["alice@example.org"]), A)
        rc, out, err = ctl("route", "fo@example.org", "pop3")
        (r,) = records(out)
        self.assertEqual((r["proto"], r["hosts"], r["next"]),
                         ("pop3", "%s,%s" % (A.host, B.host), A.host))
        rc, out, err = ctl("route", "nobody")
        self.assertEqual(rc, 0, err)
        self.assertEqual(records(out)[0]["status"], "not-found")


class Drain(unittest.TestCase):
    def test_drain_uses_next_host_and_all_drained_is_temporary(self):
        try:
            rc, out, err = ctl("drain", A.host)
            self.assertEqual(rc, 0, err)
            self.assertEqual(records(out)[0]["changed"], "yes")
            (r,) = records(ctl("route", "fo")[1])
            self.assertEqual((r["drained"], r["next"]), (A.host, B.host))
            self.assertIs(lands_on("fo", "fo-pw"), B)
            ctl("drain", B.host)
            rc, out, err = ctl("route", "fo", json_out=True)
            r = json.loads(out)
            self.assertEqual(r["next"], "")
            self.assertEqual(r["drained"], "%s,%s" % (A.host, B.host))
            m = imap()
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                m.login("fo", "fo-pw")
            self.assertIn("[UNAVAILABLE]", str(cm.exception))
            m.shutdown()
            r = Raw(P.pop3_port)
            r.line()
            r.send(b"USER fo\r\nPASS fo-pw\r\n")
            r.line()
            self.assertTrue(r.line().startswith(b"-ERR [SYS/TEMP]"))
            r.close()
            self.assertIn("every backend host of the route is drained", P.log())
        finally:
            ctl("undrain", A.host)
            rc, out, err = ctl("undrain", B.host)
        self.assertEqual(rc, 0, err)
        self.assertIs(lands_on("fo", "fo-pw"), A)


class Reload(unittest.TestCase):
    def test_reload_takes_a_change_and_refuses_a_broken_config(self):
        g0 = stats()["generation"]
        try:
            path = os.path.join(P.dir, "popmap2")
            with open(path, "w", encoding="utf-8") as f:
                f.write(popmap(carol_on=B))
            SETTINGS["popmap"] = path
            write_config()
            rc, out, err = ctl("reload")
            self.assertEqual(rc, 0, err)
            self.assertEqual(records(out), [{"generation": str(g0 + 1)}])
            self.assertIs(lands_on("carol", "carol-pw"), B)
            # A map that is not there: the file parses, the reload fails.
            SETTINGS["popmap"] = os.path.join(P.dir, "no-such-popmap")
            write_config()
            rc, out, err = ctl("reload")
            self.assertEqual(rc, 1, (out, err))
            self.assertIn("reload failed", err)
            self.assertIn("no-such-popmap", err)
            # A map past FILE_MAP_BYTES_MAX (256 MiB; sparse: nothing
            # written): refused before a line is read.
            big = os.path.join(P.dir, "big-popmap")
            with open(big, "wb") as f:
                f.truncate((256 << 20) + 1)
            SETTINGS["popmap"] = big
            write_config()
            rc, out, err = ctl("reload")
            self.assertEqual(rc, 1, (out, err))
            self.assertIn("directory.file.path: %s:0: 268435457 bytes: more "
                          "than the 268435456 a file map may have" % big, err)
            # Not even libconfig syntax: the client needs -s to find the socket.
            SETTINGS["broken"] = True
            write_config()
            rc, out, err = ctl("reload", sock=sock_path())
            self.assertEqual(rc, 1, (out, err))
            self.assertIn("syntax error", err)
            self.assertEqual(stats_at(sock_path())["generation"], g0 + 1)
            # Still serving, with the running configuration.
            self.assertIs(lands_on("carol", "carol-pw"), B)
        finally:
            SETTINGS["popmap"] = None
            SETTINGS["broken"] = False
            write_config()
            rc, out, err = ctl("reload")
        self.assertEqual(rc, 0, err)
        self.assertIs(lands_on("carol", "carol-pw"), A)


class Stats(unittest.TestCase):
    def test_stats_numbers_move(self):
        s0 = stats()
        for k in ("uptime", "generation", "connections", "sessions_relay",
                  "logins_ok", "logins_failed", "logins_tempfail", "route_cache"):
            self.assertIsInstance(s0[k], int, k)
        m = imap()
        m.login("bob", USERS_B["bob@example.org"])
        s1 = stats()
        self.assertEqual(s1["logins_ok"], s0["logins_ok"] + 1)
        self.assertGreaterEqual(s1["sessions_relay"], 1)
        self.assertGreaterEqual(s1["connections"], 1)
        bad = imap()
        with self.assertRaises(imaplib.IMAP4.error):
            bad.login("bob", "wrong")
        bad.shutdown()
        m.logout()
        s2 = stats()
        self.assertEqual(s2["logins_failed"], s1["logins_failed"] + 1)


class Flush(unittest.TestCase):
    def test_flush_after_a_map_change_kicks_with_on_move(self):
        r = raw_imap_login("alice", USERS_A["alice@example.org"])
        stay = raw_imap_login("bob", USERS_B["bob@example.org"])
        try:
            set_popmap(popmap(alice_on=B))
            # The reload alone moves nobody.
            r.send(b"n NOOP\r\n")
            self.assertTrue(r.until(b"n ")[-1].startswith(b"n OK"))
            rc, out, err = ctl("flush", "alice")
            self.assertEqual(rc, 0, err)
            (rec,) = records(out)
            self.assertEqual((rec["user"], rec["moved"]), ("alice@example.org", "yes"))
            self.assertTrue(r.closed(10))
            self.assertIn(b"* BYE [UNAVAILABLE] mailbox moved, reconnect\r\n", r.buf)
            self.assertIs(lands_on("alice", USERS_A["alice@example.org"]), B)
            # A session already on the new store stays.
            again = raw_imap_login("alice", USERS_A["alice@example.org"])
            ctl("flush", "alice")
            again.send(b"n NOOP\r\n")
            self.assertTrue(again.until(b"n ")[-1].startswith(b"n OK"))
            again.close()
            stay.send(b"n NOOP\r\n")
            self.assertTrue(stay.until(b"n ")[-1].startswith(b"n OK"))
            rc, out, err = ctl("flush", "all")
            self.assertEqual(rc, 0, err)
            self.assertIn("flushed=", out)
        finally:
            r.close()
            stay.close()
            set_popmap(popmap())
        self.assertIs(lands_on("alice", USERS_A["alice@example.org"]), A)


class Errors(unittest.TestCase):
    def test_bad_verb_and_usage_exit_1(self):
        rc, out, err = ctl("frobnicate")
        self.assertEqual(rc, 1)
        self.assertIn("unknown command", err)
        rc, out, err = ctl("kick")
        self.assertEqual(rc, 1)
        self.assertIn("kick USER", err)
        rc, out, err = ctl("kick", "bad user\x01")
        self.assertEqual(rc, 1)

    def test_no_daemon_exit_2(self):
        rc, out, err = ctl("stats", sock=os.path.join(P.dir, "nothing.sock"))
        self.assertEqual(rc, 2)
        self.assertIn("cannot reach", err)

    def test_socket_is_owner_only(self):
        st = os.stat(sock_path())
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

    def test_bounds(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(sock_path())
        s.sendall(b"x" * 2048)
        self.assertIn(b"error: request line too long", s.recv(4096))
        s.close()
        held = []
        try:
            for _ in range(16):
                c = socket.socket(socket.AF_UNIX)
                c.settimeout(10)
                c.connect(sock_path())
                held.append(c)
            time.sleep(0.3)
            extra = socket.socket(socket.AF_UNIX)
            extra.settimeout(10)
            extra.connect(sock_path())
            self.assertIn(b"too many control clients", extra.recv(4096))
            extra.close()
        finally:
            for c in held:
                c.close()
        # Idle clients are closed after CONTROL_IDLE_MS.  The daemon may not
        # have seen the 16 closes yet: until it has, it still says "too many".
        deadline = time.monotonic() + 10
        while True:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(20)
            s.connect(sock_path())
            data = s.recv(4096)
            s.close()
            if b"too many control clients" not in data or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(data, b"")
        self.assertEqual(ctl("stats")[0], 0)

    def test_second_daemon_is_refused(self):
        imap_port, pop3_port = free_ports(2)
        conf = os.path.join(P.dir, "second.conf")
        with open(P.conf_path, encoding="utf-8") as f:
            text = f.read()
        text = text.replace(":%d\"" % P.imap_port, ":%d\"" % imap_port)
        text = text.replace(":%d\"" % P.pop3_port, ":%d\"" % pop3_port)
        with open(conf, "w", encoding="utf-8") as f:
            f.write(text)
        r = subprocess.run([binary(), "-c", conf], capture_output=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"another postern answers there", r.stderr + r.stdout)
        self.assertNotIn(b"Sanitizer", r.stderr + r.stdout)
        # The running daemon's socket is untouched.
        self.assertEqual(ctl("stats")[0], 0)


class ZzStop(unittest.TestCase):
    def test_stop_removes_the_socket_and_leaks_nothing(self):
        path = sock_path()
        rc = P.stop()
        self.assertEqual(rc, 0, P.log()[-3000:])
        self.assertEqual(P.leaks(), "")
        self.assertFalse(os.path.exists(path))
        # A stale socket left behind is replaced at start.
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
        P.start()
        try:
            self.assertEqual(ctl("stats")[0], 0)
        finally:
            self.assertEqual(P.stop(), 0)
            self.assertEqual(P.leaks(), "")


if __name__ == "__main__":
    sys.exit(main(__name__))
