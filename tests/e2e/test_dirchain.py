"""End-to-end: directory back-ends as a family.  A regex map (Perdition's
posix_regex format) routes real logins to real Dovecot stores; a chain
file -> regex -> ldap (a throwaway slapd) answers each user from the
back-end that knows it; a directory that is down or mute stops the chain
with a prompt temporary failure instead of letting a later back-end guess.
The http back-end speaks nginx's auth_http protocol to a small auth
service started here (http.server), which can answer, refuse, fail, be
mute or be down.
"""

from __future__ import annotations

import http.server
import imaplib
import os
import poplib
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import free_ports, loopback  # noqa: E402
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.hostile import FakeLdap  # noqa: E402
from fixtures.postern import Postern, binary  # noqa: E402
from fixtures.slapd import Slapd  # noqa: E402
from lib import Raw, main  # noqa: E402

LDAP_TIMEOUT = 2
PROMPT = 1.5            # seconds: a down directory answers at once
STORES = {"store-a.example.net": loopback(1), "store-b.example.net": loopback(3),
          "store-c.example.net": loopback(5)}
# Who lives where.  alice and kim are LDAP's (ldif/users.ldif); alice is
# also in the file map, which overrides LDAP because it comes first.
USERS = {
    "store-a.example.net": {"alice": "alice-secret"},
    "store-b.example.net": {"kim": "kim-secret"},
    "store-c.example.net": {"filly": "filly-secret", "rex": "rex-secret",
                            "rex_south": "rex-secret",
                            "alice-override": "alice-secret",
                            "hank": "hank-secret"},
}
POPMAP = ("# static overrides, asked first\n"
          "filly@example.net store-c.example.net filly\n"
          "alice store-c.example.net alice-override\n")
REGEXMAP = ("# Perdition posix_regex map: first match wins\n"
            "^([^@]+)@regex\\.example$:          $1@store-c.example.net\n"
            "^([^@]+)@([a-z]+)\\.regex\\.example$: $1_$2@store-c.example.net  # $1_$2\n")

S = None
STORE = {}
IMAP_PORT = POP3_PORT = None


def dir_config(types: str, ldap_uri: str = "", *, cache: str = "entries = 0;",
               regex: str = REGEXMAP, http: str = ""):
    """A config function for Postern: writes the regex map beside it."""
    def render(p: dict) -> str:
        path = os.path.join(p["dir"], "popmap.re")
        with open(path, "w", encoding="utf-8") as f:
            f.write(regex)
        backends = ",\n  ".join('{ name = "%s"; addresses = "%s"; }' % (n, a)
                                for n, a in STORES.items())
        ldap = ""
        if ldap_uri:
            ldap = ('ldap = { uri = "%s"; base = "%s"; bind_dn = "%s"; '
                    'bind_password = "%s"; timeout = %d; pool = 2; };'
                    % (ldap_uri, S.base, S.bind_dn, S.bind_password, LDAP_TIMEOUT))
        return """
daemon = { threads = 2; log_level = "info"; drain = 2; };
timeouts = { login = 30; connect = 3; lookup = %d; };
limits = { auth_failures = 10; throttle = false; };
auth = { failure_delay = 0; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
directory = {
  type = %s;
  cache = { %s };
  file = { path = "%s"; };
  regex = { path = "%s"; };
  %s
  %s
};
backends = ( %s );
backend = { imap_port = %d; pop3_port = %d; };
""" % (LDAP_TIMEOUT + 2, p["imap"], p["pop3"], types, cache, p["popmap"], path,
       ldap, http, backends, IMAP_PORT, POP3_PORT)
    return render


def setUpModule():
    global S, IMAP_PORT, POP3_PORT
    IMAP_PORT, POP3_PORT = free_ports(2)
    for name, addr in STORES.items():
        STORE[name] = Dovecot(name.split(".")[0], USERS[name], host=addr,
                              imap_port=IMAP_PORT, pop3_port=POP3_PORT)
        STORE[name].start()
    S = Slapd().start()


def tearDownModule():
    if S is not None:
        S.cleanup()
    stop_all(*STORE.values())


def lands(port: int, login: str, pw: str, host: str, user: str) -> bool:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=15)
    try:
        m.login(login, pw)
        m.select("INBOX")
        _, data = m.fetch("1", "(BODY[])")
        body = data[0][1]
        return (STORE[host].welcome_line.encode() in body and
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


class A_Regex(unittest.TestCase):
    """directory.type = "regex" alone, against real Dovecot stores."""

    @classmethod
    def setUpClass(cls):
        cls.p = Postern(dir_config('"regex"')).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.p.stop()
        leaks = cls.p.leaks()
        cls.p.cleanup()
        assert rc == 0 and leaks == "", (rc, leaks)

    def test_imap_login_through_the_regex_map(self):
        self.assertTrue(lands(self.p.imap_port, "rex@regex.example", "rex-secret",
                              "store-c.example.net", "rex"))

    def test_two_groups_in_the_result(self):
        self.assertTrue(lands(self.p.imap_port, "Rex@South.regex.example",
                              "rex-secret", "store-c.example.net", "rex_south"))

    def test_pop3_login_through_the_regex_map(self):
        p = poplib.POP3("127.0.0.1", self.p.pop3_port, timeout=15)
        p.user("rex@regex.example")
        p.pass_("rex-secret")
        _, lines, _ = p.retr(1)
        self.assertIn(STORE["store-c.example.net"].welcome_line.encode(),
                      b"\n".join(lines))
        p.quit()

    def test_no_rule_matches_is_an_unknown_user(self):
        reply, _ = login_reply(self.p.imap_port, "rex@elsewhere.example", "x")
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)

    def test_lookup_names_the_rule(self):
        res = lookup(self.p.conf_path, "rex@regex.example")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("directory: regex", res.stdout)
        self.assertIn("source: regex map line 2", res.stdout)
        self.assertIn("backend_user: rex\n", res.stdout)
        self.assertIn("host: store-c.example.net", res.stdout)

    def test_z_reload_reads_the_map_again(self):
        path = os.path.join(self.p.dir, "popmap.re")
        with open(path + ".new", "w", encoding="utf-8") as f:
            f.write("^([^@]+)@moved\\.example$: $1@store-c.example.net\n")
        os.replace(path + ".new", path)
        self.p.reload()
        deadline = time.monotonic() + 10
        while True:
            reply, _ = login_reply(self.p.imap_port, "rex@moved.example", "rex-secret")
            if reply.startswith(b"a OK"):
                break
            self.assertLess(time.monotonic(), deadline, reply)
            time.sleep(0.2)
        reply, _ = login_reply(self.p.imap_port, "rex@regex.example", "rex-secret")
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
        # A map that does not compile keeps the running one, with its line.
        with open(path + ".new", "w", encoding="utf-8") as f:
            f.write("# broken\n^(rex: store-c.example.net\n")
        os.replace(path + ".new", path)
        self.p.reload()
        deadline = time.monotonic() + 10
        while "popmap.re:2: bad pattern" not in self.p.log():
            self.assertLess(time.monotonic(), deadline, self.p.log()[-2000:])
            time.sleep(0.2)
        reply, _ = login_reply(self.p.imap_port, "rex@moved.example", "rex-secret")
        self.assertTrue(reply.startswith(b"a OK"), reply)


class B_Chain(unittest.TestCase):
    """file -> regex -> ldap: each user from the back-end that knows it."""

    @classmethod
    def setUpClass(cls):
        cls.p = Postern(dir_config('[ "file", "regex", "ldap" ]', S.uri,
                                   cache="ttl = 60; entries = 1000;"),
                        popmap=POPMAP).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.p.stop()
        leaks = cls.p.leaks()
        cls.p.cleanup()
        assert rc == 0 and leaks == "", (rc, leaks)

    def test_each_backend_answers_for_its_users(self):
        for login, pw, host, user in (
                ("filly@example.net", "filly-secret", "store-c.example.net", "filly"),
                ("rex@regex.example", "rex-secret", "store-c.example.net", "rex"),
                ("kim", "kim-secret", "store-b.example.net", "kim"),
                ("alice", "alice-secret", "store-c.example.net", "alice-override")):
            with self.subTest(login=login):
                self.assertTrue(lands(self.p.imap_port, login, pw, host, user))

    def test_unknown_to_all_is_refused(self):
        reply, _ = login_reply(self.p.imap_port, "nobody@nowhere.example", "x")
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)

    def test_lookup_says_which_backend_answered(self):
        for user, source in (("filly@example.net", "source: file: file map"),
                             ("rex@regex.example", "source: regex: regex map line 2"),
                             ("kim", "source: ldap: ldap dn=")):
            with self.subTest(user=user):
                res = lookup(self.p.conf_path, user)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertIn("directory: file, regex, ldap", res.stdout)
                self.assertIn(source, res.stdout)
                self.assertIn("cache: miss", res.stdout)
        res = lookup(self.p.conf_path, "nobody@nowhere.example")
        self.assertEqual(res.returncode, 1)
        self.assertIn("status: not-found", res.stdout)
        self.assertIn("no back-end knows the user (last, ldap:", res.stdout)

    def test_check_config_covers_every_backend(self):
        res = subprocess.run([binary(), "-c", self.p.conf_path, "--check-config"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("configuration ok", res.stdout)


def refused_port() -> int:
    """A loopback port where nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class C_DirectoryDown(unittest.TestCase):
    """A back-end that fails stops the chain; no later back-end guesses."""

    def check_unavailable(self, p: Postern, login: str, pw: str, within: float):
        reply, took = login_reply(p.imap_port, login, pw)
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.assertLess(took, within, "the temporary failure took %.1fs" % took)

    def test_ldap_down_after_a_regex_that_does_not_know_the_user(self):
        uri = "ldap://127.0.0.1:%d" % refused_port()
        p = Postern(dir_config('[ "regex", "ldap", "file" ]', uri),
                    popmap=POPMAP).start()
        try:
            # kim: the regex map does not know him, LDAP is down.
            self.check_unavailable(p, "kim", "kim-secret", PROMPT)
            # filly is in the file map, asked only after LDAP: not a guess.
            self.check_unavailable(p, "filly@example.net", "filly-secret", PROMPT)
            # Users of the regex map, asked first, still get in.
            self.assertTrue(lands(p.imap_port, "rex@regex.example", "rex-secret",
                                  "store-c.example.net", "rex"))
            res = lookup(p.conf_path, "kim")
            self.assertEqual(res.returncode, 1)
            self.assertIn("status: tempfail", res.stdout)
            self.assertIn("source: ldap: ", res.stdout)
        finally:
            rc = p.stop()
            leaks = p.leaks()
            p.cleanup()
        self.assertEqual(rc, 0)
        self.assertEqual(leaks, "")

    def test_mute_ldap_fails_at_its_deadline(self):
        fake = FakeLdap("mute").start()
        p = Postern(dir_config('[ "file", "ldap" ]', fake.uri), popmap=POPMAP).start()
        try:
            self.check_unavailable(p, "kim", "kim-secret", LDAP_TIMEOUT + 2)
            self.assertTrue(lands(p.imap_port, "filly@example.net", "filly-secret",
                                  "store-c.example.net", "filly"))
        finally:
            rc = p.stop()
            leaks = p.leaks()
            p.cleanup()
            fake.stop()
        self.assertEqual(rc, 0)
        self.assertEqual(leaks, "")


class D_CheckConfig(unittest.TestCase):
    def test_bad_regex_map_is_reported_with_its_line(self):
        p = Postern(dir_config('[ "file", "regex" ]',
                               regex="^a$: store-a.example.net\n^(a+)\\1$: x\n"),
                    popmap=POPMAP)
        # Started for its files only; the daemon refuses the map.
        with self.assertRaises(Exception):
            p.start()
        try:
            res = subprocess.run([binary(), "-c", p.conf_path, "--check-config"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 1)
            self.assertIn("popmap.re:2: back-references", res.stderr)
            self.assertIn("popmap.re:2: back-references", p.log())
        finally:
            p.cleanup()


class AuthService:
    """nginx auth_http peer: routes USERS' logins by Auth-User, records
    every request's headers; ``mode`` is "ok", "mute" (never answers),
    "500", "temp" (a 4xx Auth-Error-Code), "reset" (RST, no answer) or
    "bigbody" (an answer with a body past postern's bound) or "longvalue"
    (an Auth-User past postern's bound); "wait" and "tempwait" add
    Auth-Wait: WAIT to the refusal and to the "temp" answer."""

    def __init__(self):
        self.mode = "ok"
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(dict(self.headers.items()))
                if outer.mode == "mute":
                    time.sleep(HTTP_TIMEOUT + 3)
                    return
                if outer.mode == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if outer.mode == "bigbody":     # past HTTP_BODY_MAX (64 KiB)
                    self.send_response(200)
                    self.send_header("Auth-Status", "OK")
                    self.send_header("Auth-Server", STORES["store-c.example.net"])
                    self.send_header("Content-Length", str(65 * 1024))
                    self.end_headers()
                    self.wfile.write(b"x" * (65 * 1024))
                    return
                if outer.mode == "longvalue":   # past HTTP_VALUE_MAX (511)
                    self.send_response(200)
                    self.send_header("Auth-Status", "OK")
                    self.send_header("Auth-Server", STORES["store-c.example.net"])
                    self.send_header("Auth-User", "h" * 512)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if outer.mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    return
                self.send_response(200)
                user = self.headers.get("Auth-User", "")
                pw = self.headers.get("Auth-Pass", "")
                if outer.mode in ("temp", "tempwait"):
                    self.send_header("Auth-Status", "Temporary server problem")
                    self.send_header("Auth-Error-Code", "451 4.3.0")
                    if outer.mode == "tempwait":
                        self.send_header("Auth-Wait", str(WAIT))
                elif user == "hank@http.example" and pw == "hank-secret":
                    self.send_header("Auth-Status", "OK")
                    self.send_header("Auth-Server", STORES["store-c.example.net"])
                    self.send_header("Auth-Port", str(IMAP_PORT if
                                     self.headers.get("Auth-Protocol") == "imap"
                                     else POP3_PORT))
                    self.send_header("Auth-User", "hank")
                else:
                    self.send_header("Auth-Status", "Invalid login or password")
                    if outer.mode == "wait":
                        self.send_header("Auth-Wait", str(WAIT))
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/auth" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


HTTP_TIMEOUT = 2
WAIT = 2                # seconds of Auth-Wait


def http_config(url: str, extra: str = "pass_password = true;") -> str:
    return 'http = { url = "%s"; timeout = %d; %s };' % (url, HTTP_TIMEOUT, extra)


class E_Http(unittest.TestCase):
    """directory.type = "http": nginx's auth_http protocol."""

    @classmethod
    def setUpClass(cls):
        cls.auth = AuthService()
        cls.p = Postern(dir_config('[ "file", "http" ]',
                                   http=http_config(cls.auth.url)),
                        popmap=POPMAP).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.p.stop()
        leaks = cls.p.leaks()
        cls.p.cleanup()
        cls.auth.stop()
        assert rc == 0 and leaks == "", (rc, leaks)

    def setUp(self):
        self.auth.mode = "ok"
        self.auth.requests.clear()

    def test_ok_routes_to_auth_server_and_port(self):
        self.assertTrue(lands(self.p.imap_port, "hank@http.example", "hank-secret",
                              "store-c.example.net", "hank"))
        h = self.auth.requests[-1]
        self.assertEqual(h["Auth-Method"], "plain")
        self.assertEqual(h["Auth-User"], "hank@http.example")
        self.assertEqual(h["Auth-Pass"], "hank-secret")
        self.assertEqual(h["Auth-Protocol"], "imap")
        self.assertEqual(h["Auth-Login-Attempt"], "1")
        self.assertEqual(h["Client-IP"], "127.0.0.1")
        self.assertEqual(h["Client-Host"], "[UNAVAILABLE]")

    def test_pop3(self):
        p = poplib.POP3("127.0.0.1", self.p.pop3_port, timeout=15)
        p.user("hank@http.example")
        p.pass_("hank-secret")
        _, lines, _ = p.retr(1)
        self.assertIn(STORE["store-c.example.net"].welcome_line.encode(),
                      b"\n".join(lines))
        p.quit()
        self.assertEqual(self.auth.requests[-1]["Auth-Protocol"], "pop3")

    def test_refusal_is_an_authentication_failure(self):
        reply, _ = login_reply(self.p.imap_port, "hank@http.example", "wrong")
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)

    def test_auth_wait_delays_the_refusal(self):
        # The refusal waits Auth-Wait on the session's timer: the client
        # hears no sooner, and other clients are served meanwhile.
        self.auth.mode = "wait"
        r = Raw(self.p.imap_port)
        try:
            r.line()
            t0 = time.monotonic()
            r.send(b"a LOGIN hank@http.example wrong\r\n")
            self.assertTrue(lands(self.p.imap_port, "filly@example.net",
                                  "filly-secret", "store-c.example.net", "filly"))
            other = time.monotonic() - t0
            reply = r.line()
            took = time.monotonic() - t0
        finally:
            r.close()
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
        self.assertGreaterEqual(took, WAIT - 0.1)
        self.assertLess(other, took)
        self.assertRegex(self.p.log(), r"login refused .*user=\"hank@http.example\""
                         r".* delay=2\.000s")
        # A temporary refusal waits too, as nginx has it.
        self.auth.mode = "tempwait"
        reply, took = login_reply(self.p.imap_port, "hank@http.example",
                                  "hank-secret")
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.assertGreaterEqual(took, WAIT - 0.1)

    def test_values_are_escaped(self):
        # CR and LF never get this far (refused at the login); the rest of
        # what a client sends is escaped as nginx escapes it.
        r = Raw(self.p.imap_port)
        try:
            r.line()
            pw = "p%ss w\u00f6rd:\t1".encode()
            r.send(b"a LOGIN hank@http.example {%d+}\r\n%s\r\n" % (len(pw), pw))
            reply = r.line()
        finally:
            r.close()
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
        self.assertEqual(self.auth.requests[-1]["Auth-Pass"],
                         "p%25ss%20w%C3%B6rd:%091")

    def test_file_map_first(self):
        self.assertTrue(lands(self.p.imap_port, "filly@example.net", "filly-secret",
                              "store-c.example.net", "filly"))
        self.assertEqual(self.auth.requests, [])

    def test_service_trouble_is_temporary(self):
        for mode, within in (("500", PROMPT), ("temp", PROMPT), ("reset", PROMPT),
                             ("bigbody", PROMPT), ("longvalue", PROMPT),
                             ("mute", HTTP_TIMEOUT + 1.5)):
            with self.subTest(mode=mode):
                self.auth.mode = mode
                reply, took = login_reply(self.p.imap_port, "hank@http.example",
                                          "hank-secret")
                self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
                self.assertLess(took, within)
        # The body's bound, not anything else, fails the big answer.
        self.auth.mode = "bigbody"
        res = lookup(self.p.conf_path, "hank@http.example")
        self.assertIn("status: tempfail", res.stdout)
        self.assertIn("source: http: auth service: Failed writing received data", res.stdout)
        self.auth.mode = "longvalue"
        res = lookup(self.p.conf_path, "hank@http.example")
        self.assertIn("status: tempfail", res.stdout)
        self.assertIn("header value is longer than 511 bytes", res.stdout)

    def test_service_down_is_temporary_at_once(self):
        p = Postern(dir_config('"http"', http=http_config(
            "http://127.0.0.1:%d/auth" % refused_port()))).start()
        try:
            reply, took = login_reply(p.imap_port, "hank@http.example", "hank-secret")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
        finally:
            rc = p.stop()
            leaks = p.leaks()
            p.cleanup()
        self.assertEqual(rc, 0)
        self.assertEqual(leaks, "")

    def test_queue_bound_sheds_load(self):
        p = Postern(dir_config('"http"', http=http_config(self.auth.url,
                                                          "queue = 1;"))).start()
        first = Raw(p.imap_port)
        try:
            self.auth.mode = "mute"
            first.line()
            first.send(b"a LOGIN hank@http.example hank-secret\r\n")
            deadline = time.monotonic() + 5
            while not self.auth.requests:     # the one slot is taken
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            reply, took = login_reply(p.imap_port, "hank@http.example", "hank-secret")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(took, PROMPT)
            self.assertIn(b"a NO [UNAVAILABLE]", first.line())   # its deadline
            self.assertIn("directory overloaded", p.log())
            self.assertIn("(directory.http.queue)", p.log())
        finally:
            first.close()
            rc = p.stop()
            leaks = p.leaks()
            p.cleanup()
        self.assertEqual(rc, 0)
        self.assertEqual(leaks, "")

    def test_password_not_sent_unless_asked(self):
        p = Postern(dir_config('"http"', http=http_config(self.auth.url, ""))).start()
        try:
            login_reply(p.imap_port, "hank@http.example", "hank-secret")
            self.assertNotIn("Auth-Pass", self.auth.requests[-1])
        finally:
            rc = p.stop()
            leaks = p.leaks()
            p.cleanup()
        self.assertEqual(rc, 0)
        self.assertEqual(leaks, "")


if __name__ == "__main__":
    sys.exit(main(__name__))
