"""End-to-end: postern routes the users of ldif/ through a throwaway slapd
(loaded only from schema/ and ldif/ plus Debian's core, cosine,
inetorgperson and misc schemas) to three real Dovecot stores.  Covers both
routing forms, rewrites, injection attempts, an outage during a login
storm, failover and failback across URIs, and SASL EXTERNAL over ldapi://.
"""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import free_ports, loopback  # noqa: E402
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from fixtures.slapd import Slapd, load_expected_routes  # noqa: E402
from lib import Raw, main  # noqa: E402

LDAP_TIMEOUT = 2
STORES = {"store-a.example.net": loopback(1), "store-b.example.net": loopback(3),
          "domino.example.net": loopback(4)}
ROUTES = load_expected_routes()

S = S2 = P = None
STORE = {}
IMAP_PORT = POP3_PORT = None


def password(login: str) -> str:
    return login.split("@")[0] + "-secret"


def store_users():
    users = {h: {} for h in STORES}
    ports = {h: set() for h in STORES}
    for r in ROUTES:
        users[r.host][r.backend_user] = password(r.login)
        if r.port:
            ports[r.host].add(r.port)
    # mike is mid-move: his mailbox exists on both sides.
    users["store-b.example.net"]["mike"] = password("mike")
    return users, ports


def extra_listeners(addr: str, ports) -> str:
    if not ports:
        return ""
    body = "".join("  inet_listener imap_%d {\n    address = %s\n    port = %d\n  }\n"
                   % (p, addr, p) for p in sorted(ports))
    return "service imap-login {\n%s}\n" % body


def ldap_config(uri: str, extra: str = "", *, auth: str = None, cache: str = None,
                stores: dict = None, top: str = "", directory: str = ""):
    def render(p: dict) -> str:
        backends = ",\n  ".join('{ name = "%s"; addresses = "%s"; }' % (n, a)
                                for n, a in (stores or STORES).items())
        return """
daemon = { threads = 2; log_level = "info"; drain = 2; };
timeouts = { login = 30; connect = 3; lookup = %d; };
limits = { auth_failures = 10; throttle = false; };  # one client address, many refusals
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
directory = {
  type = "ldap";
  cache = %s;
  ldap = { uri = "%s"; base = "%s"; %s timeout = %d; pool = 4; failback = 2; %s };
  %s
};
backends = ( %s );
backend = { imap_port = %d; pop3_port = %d; %s };
""" % (LDAP_TIMEOUT + 1, p["imap"], p["pop3"],
       cache or "{ ttl = 1; negative_ttl = 1; entries = 1000; serve_stale = true; }",
       uri, S.base, auth if auth is not None else
       'bind_dn = "%s"; bind_password = "%s";' % (S.bind_dn, S.bind_password),
       LDAP_TIMEOUT, extra, directory, backends, IMAP_PORT, POP3_PORT, top)
    return render


def setUpModule():
    global S, S2, P, IMAP_PORT, POP3_PORT
    IMAP_PORT, POP3_PORT = free_ports(2)
    users, ports = store_users()
    for name, addr in STORES.items():
        STORE[name] = Dovecot(name.split(".")[0], users[name], host=addr,
                              imap_port=IMAP_PORT, pop3_port=POP3_PORT,
                              extra_config=extra_listeners(addr, ports[name]))
        STORE[name].start()
    S = Slapd(debug_level="stats").start()
    S2 = Slapd().start()   # a replica, for failover
    P = Postern(ldap_config(S.uri)).start()


def tearDownModule():
    for x in (P, S, S2):
        if x is not None:
            x.cleanup()
    stop_all(*STORE.values())


def login_lands(port, login, pw, host, backend_user, timeout=15):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=timeout)
    try:
        m.login(login, pw)
        m.select("INBOX")
        _, data = m.fetch("1", "(BODY[])")
        body = data[0][1]
        store = STORE[host]
        return (store.welcome_line.encode() in body and
                ("belongs to %s." % backend_user).encode() in body)
    finally:
        try:
            m.logout()
        except Exception:  # noqa: BLE001
            pass


class A_Routing(unittest.TestCase):
    def test_every_ldif_user_lands_on_the_right_store(self):
        for r in ROUTES:
            if r.login == "mike":
                continue  # moved by another test
            with self.subTest(login=r.login):
                self.assertTrue(login_lands(P.imap_port, r.login, password(r.login),
                                            r.host, r.backend_user))

    def test_pop3_both_forms(self):
        for login, host in (("kim", "store-b.example.net"),
                            ("grace@example.net", "store-b.example.net"),
                            ("ivan", "domino.example.net")):
            p = poplib.POP3("127.0.0.1", P.pop3_port, timeout=15)
            p.user(login)
            p.pass_(password(login))
            _, lines, _ = p.retr(1)
            self.assertIn(STORE[host].welcome_line.encode(), b"\n".join(lines))
            p.quit()

    def test_injection_never_matches_another_entry(self):
        for login in ("*", "*)(uid=*", "alice)(|(uid=*", "a*", "alice)(uid=*",
                      "*)(objectClass=*"):
            with self.subTest(login=login):
                r = Raw(P.imap_port)
                r.line()
                q = login.replace("\\", "\\\\").replace('"', '\\"')
                r.send(b'a LOGIN "%s" "alice-secret"\r\n' % q.encode())
                reply = r.line()
                self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
                r.close()

    def test_ambiguous_entry_is_a_temporary_failure(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(b'a LOGIN shared@example.net "shared-secret"\r\n')
        self.assertIn(b"NO [UNAVAILABLE]", r.line())
        r.close()
        self.assertIn("more than one entry", P.log())

    def test_entry_without_host_is_refused(self):
        r = Raw(P.imap_port)
        r.line()
        r.send(b'a LOGIN nina "nina-secret"\r\n')
        self.assertIn(b"a NO", r.line())
        r.close()

    def test_migration_by_one_attribute(self):
        self.assertTrue(login_lands(P.imap_port, "mike", "mike-secret",
                                    "domino.example.net", "mike"))
        S.modify(os.path.join(S.repo_root, "ldif", "move-mike.ldif"))
        S2.modify(os.path.join(S2.repo_root, "ldif", "move-mike.ldif"))
        deadline = time.monotonic() + 10
        while not login_lands(P.imap_port, "mike", "mike-secret",
                              "store-b.example.net", "mike"):
            self.assertLess(time.monotonic(), deadline, "mike never moved")
            time.sleep(0.3)

    def test_lookup_shows_raw_attributes(self):
        res = subprocess.run([os.environ["POSTERN"], "-c", P.conf_path, "--lookup",
                              "Dave"], capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("cache: miss", res.stdout)
        self.assertIn("mailhost=dsmith@store-b.example.net:2143", res.stdout.lower())
        self.assertIn("backend_user: dsmith", res.stdout)
        self.assertIn("host: store-b.example.net port: 2143", res.stdout)


class B_SaslExternal(unittest.TestCase):
    def test_external_bind_over_ldapi(self):
        p = Postern(ldap_config(S.ldapi_uri, auth='sasl_mech = "EXTERNAL";')).start()
        try:
            self.assertTrue(login_lands(p.imap_port, "erin", "erin-secret",
                                        "store-a.example.net", "erin"))
        finally:
            p.cleanup()


class D_Outage(unittest.TestCase):
    def test_storm_during_outage_then_recovery(self):
        users = [r for r in ROUTES if r.login != "mike"]
        # Warm the cache for half the users; their routes will be served
        # stale during the outage.
        for r in users[::2]:
            login_lands(P.imap_port, r.login, password(r.login), r.host, r.backend_user)
        time.sleep(1.2)          # let every entry expire (ttl = 1)
        results = []
        lock = threading.Lock()

        def one(i):
            r = users[i % len(users)]
            t0 = time.monotonic()
            try:
                raw = Raw(P.imap_port, timeout=20)
                raw.line()
                raw.send(b'a LOGIN "%s" "%s"\r\n' % (r.login.encode(),
                                                     password(r.login).encode()))
                reply = raw.until(b"a ")[-1]
                raw.close()
            except Exception as e:  # noqa: BLE001
                reply = repr(e).encode()
            with lock:
                results.append((reply, time.monotonic() - t0))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
        try:
            for i, t in enumerate(threads):
                t.start()
                if i == 50:
                    S.kill()
            for t in threads:
                t.join(60)
        except BaseException:
            S.start()
            raise
        self.assertEqual(len(results), 200)
        for reply, took in results:
            self.assertTrue(reply.startswith(b"a OK") or b"NO [UNAVAILABLE]" in reply,
                            reply)
            self.assertLess(took, 20)
        # Known users still log in while the directory is down, from
        # their expired (stale) cache entries.
        time.sleep(1.2)
        warm = users[0]
        self.assertTrue(login_lands(P.imap_port, warm.login, password(warm.login),
                                    warm.host, warm.backend_user))
        self.assertIn("serving a stale route", P.log())
        # An unknown user gets a prompt temporary failure, not a refusal.
        r = Raw(P.imap_port)
        r.line()
        r.send(b'a LOGIN never-seen "x"\r\n')
        self.assertIn(b"NO [UNAVAILABLE]", r.line())
        r.close()
        # slapd returns: fresh logins succeed within 2 x timeout, no restart.
        S.start()
        t0 = time.monotonic()
        cold = users[1]
        while True:
            try:
                if login_lands(P.imap_port, cold.login, password(cold.login),
                               cold.host, cold.backend_user, timeout=10):
                    break
            except imaplib.IMAP4.error:
                pass
            self.assertLess(time.monotonic() - t0, 2 * LDAP_TIMEOUT + 1)
            time.sleep(0.1)


class D_StaleMax(unittest.TestCase):
    def test_route_past_stale_max_is_not_served(self):
        # ttl 1 s, stale_max 4 s: during an outage the route is served
        # until 5 s after it was stored, then the login fails for now.
        s = Slapd().start()
        p = Postern(ldap_config(s.uri, cache="{ ttl = 1; negative_ttl = 1; "
                                "entries = 1000; serve_stale = true; "
                                "stale_max = 4; }")).start()
        r = next(r for r in ROUTES if r.login != "mike")
        try:
            self.assertTrue(login_lands(p.imap_port, r.login, password(r.login),
                                        r.host, r.backend_user))
            t0 = time.monotonic()
            s.kill()
            time.sleep(1.5)
            self.assertTrue(login_lands(p.imap_port, r.login, password(r.login),
                                        r.host, r.backend_user))
            self.assertIn("serving a stale route", p.log())
            time.sleep(max(0.0, t0 + 5.5 - time.monotonic()))
            raw = Raw(p.imap_port)
            raw.line()
            raw.send(b'a LOGIN "%s" "%s"\r\n' % (r.login.encode(),
                                                  password(r.login).encode()))
            self.assertIn(b"NO [UNAVAILABLE]", raw.line())
            raw.close()
        finally:
            p.cleanup()
            s.cleanup()


class B2_AuthOptions(unittest.TestCase):
    """auth.verify = "ldap-bind" and backend.login = "master"."""

    def test_ldap_bind_checks_password_before_any_backend(self):
        p = Postern(lambda ports: ldap_config(S.uri)(ports) +
                    'auth = { verify = "ldap-bind"; failure_delay = 1; };\n').start()
        try:
            self.assertTrue(login_lands(p.imap_port, "kim", "kim-secret",
                                        "store-b.example.net", "kim"))
            store = STORE["store-b.example.net"]
            time.sleep(0.5)   # let the store log the session above
            before = store.read_log().count("kim")
            t0 = time.monotonic()
            r = Raw(p.imap_port)
            r.line()
            r.send(b'a LOGIN kim "not-kims-password"\r\n')
            reply = r.line()
            self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
            self.assertGreaterEqual(time.monotonic() - t0, 0.9)   # delayed
            # The worker was not blocked meanwhile: others still log in.
            r.close()
            time.sleep(0.5)
            self.assertEqual(store.read_log().count("kim"), before,
                             "the backend saw an attempt with a wrong password")
            self.assertIn("wrong password", p.log())
        finally:
            p.cleanup()

    def test_master_user_login(self):
        master = Dovecot("mstore", {"kim": "a-password-kim-never-typed"},
                         host=loopback(6), imap_port=IMAP_PORT, pop3_port=POP3_PORT,
                         master={"user": "proxy", "password": "master-pw"}).start()
        stores = dict(STORES, **{"store-b.example.net": loopback(6)})
        p = Postern(lambda ports: ldap_config(S.uri, stores=stores,
                    top='login = "master"; master_user = "proxy"; '
                        'master_password = "master-pw";')(ports) +
                    'auth = { verify = "ldap-bind"; failure_delay = 0; };\n').start()
        try:
            m = imaplib.IMAP4("127.0.0.1", p.imap_port, timeout=15)
            m.login("kim", "kim-secret")
            m.select("INBOX")
            _, data = m.fetch("1", "(BODY[])")
            self.assertIn(master.welcome_line.encode(), data[0][1])
            m.logout()
            pp = poplib.POP3("127.0.0.1", p.pop3_port, timeout=15)
            pp.user("kim")
            pp.pass_("kim-secret")
            self.assertEqual(pp.stat()[0], 1)
            pp.quit()
            with self.assertRaises(imaplib.IMAP4.error):
                imaplib.IMAP4("127.0.0.1", p.imap_port, timeout=15).login("kim", "wrong")
        finally:
            p.cleanup()
            stop_all(master)


class C_Failover(unittest.TestCase):
    def test_second_uri_serves_then_first_is_used_again(self):
        p = Postern(ldap_config("%s %s" % (S.uri, S2.uri),
                                cache="{ entries = 0; }")).start()
        try:
            self.assertTrue(login_lands(p.imap_port, "kim", "kim-secret",
                                        "store-b.example.net", "kim"))
            S.kill()
            t0 = time.monotonic()
            while True:
                try:
                    if login_lands(p.imap_port, "kim", "kim-secret",
                                   "store-b.example.net", "kim"):
                        break
                except imaplib.IMAP4.error:
                    pass
                self.assertLess(time.monotonic() - t0, 3 * LDAP_TIMEOUT)
                time.sleep(0.1)
            S.start()
            mark = len(open(S.log_path, "rb").read())
            deadline = time.monotonic() + 10
            while True:
                login_lands(p.imap_port, "leo@example.net", "leo-secret",
                            "store-b.example.net", "leo@example.net")
                with open(S.log_path, "rb") as f:
                    f.seek(mark)
                    if b"SRCH" in f.read():
                        break
                self.assertLess(time.monotonic(), deadline,
                                "the first URI was never used again")
                time.sleep(0.3)
        finally:
            p.cleanup()


class E_Enterprise(unittest.TestCase):
    """Exchange- and Domino-style entries name a server, not a host:
    attributes.host lists where to look, host_map names the store."""

    HOST_MAP = """host_map = (
    { value = "/o=Acme/ou=Exchange Administrative Group/cn=Configuration/cn=Servers/cn=EXCH01";
      host = "store-a.example.net"; },
    { regex = "^CN=([^/]+)/O=Acme$"; host = "\\\\1.example.net"; } );"""

    @classmethod
    def setUpClass(cls):
        top = os.environ.get("top_srcdir") or os.path.join(os.path.dirname(
            os.path.abspath(__file__)), "..", "..")
        cls.slapd = Slapd(extra_config="include %s/schema/test-enterprise.schema" % top,
                          extra_ldif=[os.path.join(top, "ldif", "enterprise.ldif")]).start()
        # The proxy account's ACL covers the Perdition attributes only.
        auth = 'bind_dn = "%s"; bind_password = "%s";' % (cls.slapd.root_dn,
                                                           cls.slapd.root_password)
        attrs = ('attributes = { username = "username"; port = "port"; host = '
                 '[ "mailHost", "msExchHomeServerName", "mailServer" ]; };')
        cls.p = Postern(ldap_config(cls.slapd.uri, attrs, auth=auth,
                                    directory=cls.HOST_MAP)).start()

    @classmethod
    def tearDownClass(cls):
        for x in (cls.p, cls.slapd):
            x.cleanup()

    def test_exchange_server_name_routes(self):
        self.assertTrue(login_lands(self.p.imap_port, "xavier", "alice-secret",
                                    "store-a.example.net", "alice"))

    def test_domino_server_name_routes_by_regex(self):
        self.assertTrue(login_lands(self.p.imap_port, "dominic", "bob-secret",
                                    "store-b.example.net", "bob"))

    def test_migrated_user_routes_by_mailhost_first(self):
        self.assertTrue(login_lands(self.p.imap_port, "morgan", "alice-secret",
                                    "store-a.example.net", "alice"))
        res = subprocess.run([os.environ["POSTERN"], "-c", self.p.conf_path, "--lookup",
                              "morgan"], capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("host: store-a.example.net", res.stdout)

    def test_unmapped_server_is_a_temporary_failure(self):
        m = imaplib.IMAP4("127.0.0.1", self.p.imap_port, timeout=15)
        try:
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                m.login("unmapped", "x")
            self.assertIn("UNAVAILABLE", str(cm.exception))
        finally:
            m.shutdown()
        self.assertIn("CN=Mail9/O=Elsewhere", self.p.log())
def ctl_config(uri: str):
    """ldap_config with a long cache, a control socket and on_move = kick."""
    base = ldap_config(uri, cache="{ ttl = 3600; negative_ttl = 60; "
                       "entries = 1000; serve_stale = true; }")

    def render(p: dict) -> str:
        text = base(p)
        text = text.replace("drain = 2; };",
                            'drain = 2; control = "%s/ctl.sock"; };' % p["dir"])
        return text.replace('type = "ldap";', 'type = "ldap"; on_move = "kick";')
    return render


def ctl(p, *args):
    r = subprocess.run([os.environ["POSTERN"], "ctl", "-c", p.conf_path, "--json"] +
                       list(args), capture_output=True, text=True, timeout=30)
    lines = r.stdout.splitlines()
    return r.returncode, json.loads(lines[-1]) if lines else {}, r.stderr


class E_Control(unittest.TestCase):
    def test_flush_after_an_ldap_change_moves_the_next_login(self):
        dn = S.user_dn("mike")
        old = "domino.example.net"
        new = "store-b.example.net"
        S.set_attr(dn, "mailHost", old)
        p = Postern(ctl_config(S.uri)).start()
        r = None
        try:
            self.assertTrue(login_lands(p.imap_port, "mike", "mike-secret", old, "mike"))
            rc, rec, err = ctl(p, "route", "mike")
            self.assertEqual((rc, rec["hosts"], rec["source"]), (0, old, "cache hit"), err)
            r = Raw(p.imap_port)
            r.line()
            r.send(b"a LOGIN mike mike-secret\r\n")
            self.assertTrue(r.until(b"a ")[-1].startswith(b"a OK"))
            S.set_attr(dn, "mailHost", new)
            # Cached for an hour: the change is not seen yet.
            self.assertTrue(login_lands(p.imap_port, "mike", "mike-secret", old, "mike"))
            rc, rec, err = ctl(p, "flush", "mike")
            self.assertEqual(rc, 0, err)
            self.assertEqual((rec["flushed"], rec["moved"]), (1, "yes"))
            # on_move = kick: the session on the old store is told to go.
            self.assertTrue(r.closed(10))
            self.assertIn(b"* BYE [UNAVAILABLE] mailbox moved, reconnect\r\n", r.buf)
            self.assertTrue(login_lands(p.imap_port, "mike", "mike-secret", new, "mike"))
            rc, rec, err = ctl(p, "route", "mike")
            self.assertEqual((rec["hosts"], rec["next"]), (new, new))
            rc, rec, err = ctl(p, "stats")
            self.assertGreaterEqual(rec["route_cache"], 1)
            rc, rec, err = ctl(p, "flush", "all")
            self.assertEqual(rc, 0, err)
            self.assertGreaterEqual(rec["flushed"], 1)
            self.assertEqual(ctl(p, "stats")[1]["route_cache"], 0)
        finally:
            if r is not None:
                r.close()
            # Where test_migration_by_one_attribute leaves him.
            S.set_attr(dn, "mailHost", new)
            self.assertEqual(p.stop(), 0, p.log()[-3000:])
            leaks = p.leaks()
            p.cleanup()
        self.assertEqual(leaks, "")


class ZZShutdown(unittest.TestCase):
    def test_clean_exit_no_leaks(self):
        rc = P.stop()
        self.assertEqual(rc, 0, P.log()[-3000:])
        self.assertEqual(P.leaks(), "")


if __name__ == "__main__":
    sys.exit(main(__name__))
