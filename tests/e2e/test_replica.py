"""End-to-end: replica mode (directory.ldap.sync = true).  A slapd with the
syncprov overlay, two real Dovecot stores and two postern instances that
each keep an RFC 4533 replica of the directory.  Changes made with
ldapmodify reach both within a second (the route cache's TTL is an hour:
it must not hide them); a slapd outage leaves routing to the replica; the
changes made meanwhile arrive on reconnect; a slapd without syncprov is a
start-up error that names the overlay.
"""

from __future__ import annotations

import imaplib
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import free_ports, loopback  # noqa: E402
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.postern import Postern, binary  # noqa: E402
from fixtures.slapd import Slapd, load_expected_routes  # noqa: E402
from lib import main  # noqa: E402

LDAP_TIMEOUT = 2
STORES = {"store-a.example.net": loopback(1), "store-b.example.net": loopback(3)}
ROUTES = [r for r in load_expected_routes() if r.host in STORES and not r.port]
NEW_USERS = ("zoe", "yann", "xena")

S = None
P = []
METRICS_PORT = None     # the kicking instance's metrics.listen
STORE = {}
IMAP_PORT = POP3_PORT = None
TIMINGS = {}


def password(login: str) -> str:
    return login.split("@")[0] + "-secret"


def sync_config(uri: str, top: str = "", kick: bool = False):
    """kick: on_move = "kick" and a control socket in the instance's dir."""
    def render(p: dict) -> str:
        control = 'control = "%s/ctl.sock";' % p["dir"] if kick else ""
        on_move = 'on_move = "kick";' if kick else ""
        backends = ",\n  ".join('{ name = "%s"; addresses = "%s"; }' % (n, a)
                                for n, a in STORES.items())
        return """
daemon = { threads = 2; log_level = "info"; drain = 2; %s };
timeouts = { login = 30; connect = 3; lookup = %d; };
limits = { auth_failures = 10; throttle = false; };  # one client address, many refusals
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
directory = {
  type = "ldap"; %s
  cache = { ttl = 3600; negative_ttl = 3600; entries = 1000; };
  ldap = { uri = "%s"; base = "%s"; bind_dn = "%s"; bind_password = "%s";
           timeout = %d; sync = true; };
};
backends = ( %s );
backend = { imap_port = %d; pop3_port = %d; };
%s
""" % (control, LDAP_TIMEOUT + 1, p["imap"], p["pop3"], on_move, uri, S.base,
       S.bind_dn, S.bind_password, LDAP_TIMEOUT, backends, IMAP_PORT, POP3_PORT, top)
    return render


def setUpModule():
    global S, IMAP_PORT, POP3_PORT, METRICS_PORT
    IMAP_PORT, POP3_PORT, METRICS_PORT = free_ports(3)
    users = {r.backend_user: password(r.login) for r in load_expected_routes()}
    users.update({u: password(u) for u in NEW_USERS})
    users.update({u + "@example.net": password(u) for u in NEW_USERS})
    users.update({u: password(u) for u in ("oscar@example.net", "shared@example.net")})
    for name, addr in STORES.items():
        # Every mailbox on both stores: a move only changes where one lands.
        STORE[name] = Dovecot(name.split(".")[0], users, host=addr,
                              imap_port=IMAP_PORT, pop3_port=POP3_PORT)
        STORE[name].start()
    S = Slapd(syncprov=True).start()
    # The second instance kicks the sessions of a user who moved.
    for kick in (False, True):
        top = 'metrics = { listen = "127.0.0.1:%d"; };' % METRICS_PORT if kick else ""
        P.append(Postern(sync_config(S.uri, top=top, kick=kick)).start())


def tearDownModule():
    for x in P + [S]:
        if x is not None:
            x.cleanup()
    stop_all(*STORE.values())


def login(port, user, timeout=10):
    """The store the login lands on, or the server's refusal text."""
    m = imaplib.IMAP4("127.0.0.1", port, timeout=timeout)
    try:
        try:
            m.login(user, password(user))
        except imaplib.IMAP4.error as e:
            return "NO: " + str(e)
        try:
            m.select("INBOX")
            _, data = m.fetch("1", "(BODY[])")
        except imaplib.IMAP4.abort as e:
            # The kicking instance closed a session that landed on the old
            # store while the move was arriving: not there yet.
            return "KICKED: " + str(e)
        body = data[0][1]
        for name, store in STORE.items():
            if store.welcome_line.encode() in body:
                return name
        return "?"
    finally:
        try:
            m.logout()
        except Exception:  # noqa: BLE001
            pass


def wait_for(user, want, limit=10.0):
    """Seconds until every instance routes user as `want` (a store, or a
    prefix of the refusal); fails after limit."""
    t0 = time.monotonic()
    pending = list(P)
    last = {}
    while pending and time.monotonic() - t0 < limit:
        for p in list(pending):
            got = login(p.imap_port, user)
            last[p.imap_port] = got
            if got.startswith(want):
                pending.remove(p)
        if pending:
            time.sleep(0.02)
    if pending:
        raise AssertionError("%s: wanted %s, got %s" % (user, want, last))
    return time.monotonic() - t0


def host_of(user):
    return "mailHost"


def add_user(uid, host):
    S.add("""dn: uid={u},{base}
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: {u}
cn: {u}
sn: {u}
mail: {u}@example.net
mailHost: {h}
""".format(u=uid, base=S.people_base, h=host))


class A_Routing(unittest.TestCase):
    def test_every_user_routes_from_the_replica(self):
        for r in ROUTES:
            for p in P:
                with self.subTest(login=r.login, port=p.imap_port):
                    self.assertEqual(login(p.imap_port, r.login), r.host)

    def test_unknown_user_is_refused_not_unavailable(self):
        got = login(P[0].imap_port, "nobody-here")
        self.assertTrue(got.startswith("NO"), got)
        self.assertNotIn("UNAVAILABLE", got)

    def test_lookup_command_answers_from_a_fresh_replica(self):
        out = subprocess.run([binary(), "-c", P[0].conf_path, "--lookup", "alice"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("status: ok", out.stdout)
        self.assertIn("host: store-a.example.net", out.stdout)

    def test_check_config_accepts_syncprov(self):
        out = subprocess.run([binary(), "-c", P[0].conf_path, "--check-config"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


class B_Changes(unittest.TestCase):
    def test_modify_moves_within_a_second_on_both(self):
        dn = S.user_dn("alice")
        self.assertEqual(login(P[0].imap_port, "alice"), "store-a.example.net")
        t0 = time.monotonic()
        S.set_attr(dn, "mailHost", "store-b.example.net")
        wait_for("alice", "store-b.example.net", limit=5)
        TIMINGS["modify"] = time.monotonic() - t0
        S.set_attr(dn, "mailHost", "store-a.example.net")
        wait_for("alice", "store-a.example.net", limit=5)

    def test_delete_stops_routing(self):
        # oscar and olga both claim shared@: ambiguous, a temporary failure.
        self.assertIn("UNAVAILABLE", login(P[0].imap_port, "shared@example.net"))
        self.assertEqual(login(P[0].imap_port, "oscar@example.net"),
                         "store-a.example.net")
        S.delete(S.user_dn("oscar"))
        took = wait_for("oscar@example.net", "NO", limit=5)
        for p in P:
            self.assertNotIn("UNAVAILABLE", login(p.imap_port, "oscar@example.net"))
        TIMINGS["delete"] = took
        # olga alone claims shared@ now.
        wait_for("shared@example.net", "store-b.example.net", limit=5)

    def test_add_routes(self):
        add_user("zoe", "store-b.example.net")
        TIMINGS["add"] = wait_for("zoe", "store-b.example.net", limit=5)
        # The mail address is a key too.
        self.assertEqual(login(P[1].imap_port, "zoe@example.net"),
                         "store-b.example.net")

    def test_rename_changes_the_login(self):
        S.modify("""dn: uid=zoe,{base}
changetype: modrdn
newrdn: uid=zoe2
deleteoldrdn: 1
""".format(base=S.people_base))
        wait_for("zoe", "NO", limit=5)


class B2_Kick(unittest.TestCase):
    """on_move = "kick" (the second instance): a move closes the user's
    open session on the old store, so the client reconnects to the new."""

    def ctl(self, *args):
        r = subprocess.run([binary(), "ctl", "-c", P[1].conf_path, "--json"] +
                           list(args), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def test_move_kicks_the_open_session(self):
        dn = S.user_dn("kim")
        m = imaplib.IMAP4("127.0.0.1", P[1].imap_port, timeout=10)
        m.login("kim", password("kim"))
        m.select("INBOX")
        try:
            S.set_attr(dn, "mailHost", "store-a.example.net")
            # The server's BYE ends the session: the next command fails.
            deadline = time.monotonic() + 10
            with self.assertRaises((imaplib.IMAP4.abort, OSError)):
                while time.monotonic() < deadline:
                    m.noop()
                    time.sleep(0.05)
            self.assertIn("mailbox moved", P[1].log())
            self.assertEqual(login(P[1].imap_port, "kim"), "store-a.example.net")
        finally:
            S.set_attr(dn, "mailHost", "store-b.example.net")
            wait_for("kim", "store-b.example.net", limit=5)
            try:
                m.shutdown()
            except OSError:
                pass

    def test_stats_show_the_replica(self):
        st = self.ctl("stats")[0]
        self.assertEqual(st["replica_ready"], "yes")
        self.assertEqual(st["replica_connected"], "yes")
        self.assertGreaterEqual(st["replica_entries"], len(ROUTES))

    def test_metrics_show_the_replica(self):
        r = subprocess.run(["curl", "-sS", "--max-time", "10",
                            "http://127.0.0.1:%d/metrics" % METRICS_PORT],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = {}
        for line in r.stdout.splitlines():
            if line.startswith("postern_replica_"):
                name, value = line.split(" ")
                m[name] = float(value)
        self.assertGreaterEqual(m["postern_replica_entries"], len(ROUTES))
        self.assertGreaterEqual(m["postern_replica_logins"], len(ROUTES))
        self.assertEqual(m["postern_replica_connected"], 1)
        self.assertLess(m["postern_replica_age_seconds"], 60)
        self.assertGreater(m["postern_replica_last_update_timestamp_seconds"],
                           time.time() - 3600)
        # No route cache with a replica: no cache families either.
        self.assertNotIn("postern_route_cache_entries", r.stdout)

    def test_route_answers_from_the_replica(self):
        rec = self.ctl("route", "alice")
        self.assertIn("store-a.example.net", json.dumps(rec))


class C_Outage(unittest.TestCase):
    def test_1_slapd_down_logins_keep_working(self):
        S.stop()
        try:
            for p in P:
                self.assertEqual(login(p.imap_port, "alice"), "store-a.example.net")
                self.assertEqual(login(p.imap_port, "grace@example.net"),
                                 "store-b.example.net")
            time.sleep(1.5)
            for p in P:
                self.assertEqual(login(p.imap_port, "frank@example.net"),
                                 "store-a.example.net")
        finally:
            S.start()
        for p in P:
            self.assertIn("replica", p.log())

    def test_2_changes_after_restart_arrive(self):
        S.stop()
        time.sleep(0.5)
        S.start()
        S.set_attr(S.user_dn("grace"), "mailHost", "store-a.example.net")
        add_user("yann", "store-a.example.net")
        TIMINGS["after-restart"] = wait_for("grace@example.net",
                                            "store-a.example.net", limit=10)
        wait_for("yann", "store-a.example.net", limit=10)

    def test_3_changes_made_before_reconnect_resync(self):
        # Changed right after the start, most likely before either postern
        # reconnected: the refresh with the cookie brings them.
        S.stop()
        time.sleep(1.0)
        S.start()
        S.set_attr(S.user_dn("grace"), "mailHost", "store-b.example.net")
        add_user("xena", "store-b.example.net")
        S.delete(S.user_dn("yann"))
        wait_for("grace@example.net", "store-b.example.net", limit=10)
        wait_for("xena", "store-b.example.net", limit=10)
        wait_for("yann", "NO", limit=10)


class D_NoSyncprov(unittest.TestCase):
    def test_start_refused_naming_syncprov(self):
        plain = Slapd().start()
        try:
            p = Postern(sync_config(plain.uri))
            p.dir = None
            from fixtures.common import make_tempdir, remove_tempdir
            d = make_tempdir("postern-e2e-")
            try:
                conf = os.path.join(d, "postern.conf")
                with open(conf, "w") as f:
                    f.write(p.config({"imap": free_ports(1)[0],
                                      "pop3": free_ports(1)[0], "dir": d}))
                for extra in ([], ["--check-config"]):
                    out = subprocess.run([binary(), "-c", conf] + extra,
                                         capture_output=True, text=True, timeout=30)
                    self.assertNotEqual(out.returncode, 0)
                    text = out.stdout + out.stderr
                    self.assertIn("syncprov", text, text)
                    self.assertIn("content synchronisation", text)
                    self.assertNotIn("Sanitizer", text)
            finally:
                remove_tempdir(d)
        finally:
            plain.cleanup()


class ZZShutdown(unittest.TestCase):
    def test_clean_exit_no_sanitizer_reports(self):
        for p in P:
            rc = p.stop()
            self.assertEqual(rc, 0, p.log()[-3000:])
            self.assertEqual(p.leaks(), "")
        sys.stderr.write("replica timings (s): %s\n" % {
            k: round(v, 3) for k, v in TIMINGS.items()})


if __name__ == "__main__":
    sys.exit(main(__name__))
