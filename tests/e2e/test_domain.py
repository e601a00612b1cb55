"""End-to-end: the mail domain from the address the client reached.

One Dovecot store holds "bob" in several domains, each with its own
password, so a login that succeeds proves which name postern made of the
bare "bob":

- listen[].default_domain: two listeners route the same bare login to two
  users; a login with a domain keeps its own;
- domain_from = "sni": the TLS server name (implicit TLS, and STARTTLS with
  openssl s_client) gives the domain; no server name, or a hostile one
  (an '@', control bytes, a space), leaves the listener's default and is
  logged;
- domain_from = "local_name": 127.0.0.1 is "localhost" (one label: the
  default stays); in a private mount namespace with its own /etc/hosts an
  address named "imap.d.example" gives "d.example", and a DNS server that
  never answers, or fails, makes the login a prompt temporary failure; behind a
  balancer, the PROXY header's destination is the address reached.
"""

from __future__ import annotations

import imaplib
import os
import poplib
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
from fixtures.hostile import wait_until  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from lib import Raw, main, proxy_v1  # noqa: E402

STORE = P = Q = None
CERTS = None
TMP = None
MUTE = None
PORTS = {}
USERS = {"bob@a.example": "a-pw", "bob@b.example": "b-pw",
         "bob@example.net": "net-pw", "bob@c.example": "c-pw",
         "bob@d.example": "d-pw"}
POPMAP = "".join("%s 127.0.0.1\n" % u for u in USERS)


def config(p: dict) -> str:
    return """
daemon = { threads = 2; log_level = "info"; drain = 2; };
timeouts = { login = 30; connect = 5; };
tls = { cert = "%(cert)s"; key = "%(key)s"; };
username = { default_domain = "example.net"; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%(imap)d"; default_domain = "a.example"; },
           { protocol = "pop3"; address = "127.0.0.1:%(pop3)d"; default_domain = "B.Example"; },
           { protocol = "imap"; address = "127.0.0.1:%(imap_b)d"; default_domain = "b.example"; },
           { protocol = "imap"; address = "127.0.0.1:%(imap_g)d"; },
           { protocol = "imap"; address = "127.0.0.1:%(imaps)d"; tls = "implicit";
             domain_from = "sni"; default_domain = "a.example"; },
           { protocol = "imap"; address = "127.0.0.1:%(imap_tls)d"; tls = "starttls";
             domain_from = "sni"; },
           { protocol = "imap"; address = "127.0.0.1:%(imap_local)d";
             domain_from = "local_name"; default_domain = "a.example"; } );
directory = { type = "file"; file = { path = "%(popmap)s"; }; };
backend = { imap_port = %(b_imap)d; pop3_port = %(b_pop3)d; };
""" % dict(PORTS, popmap=p["popmap"], imap=p["imap"], pop3=p["pop3"])


def ns_config(p: dict) -> str:
    return """
daemon = { threads = 1; log_level = "info"; drain = 2; };
timeouts = { login = 30; connect = 5; lookup = 1; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%(imap)d"; },
           { protocol = "pop3"; address = "127.0.0.1:%(pop3)d"; },
           { protocol = "imap"; address = "%(named)s:%(imap)d"; domain_from = "local_name";
             default_domain = "a.example"; },
           { protocol = "imap"; address = "%(mute)s:%(imap)d"; domain_from = "local_name";
             default_domain = "a.example"; },
           { protocol = "imap"; address = "%(failing)s:%(imap)d"; domain_from = "local_name";
             default_domain = "a.example"; },
           { protocol = "imap"; address = "127.0.0.1:%(q_proxy)d"; proxy_protocol = true;
             domain_from = "local_name"; default_domain = "a.example"; } );
proxy = { trusted_networks = [ "127.0.0.0/8" ]; };
directory = { type = "file"; file = { path = "%(popmap)s"; }; };
backend = { imap_port = %(b_imap)d; pop3_port = %(b_pop3)d; };
""" % dict(PORTS, popmap=p["popmap"], imap=p["imap"], pop3=p["pop3"])


class MuteDns:
    """A UDP port that takes DNS queries and never answers, except that a
    PTR query for an address ending in .43 gets SERVFAIL at once."""

    def __init__(self, host: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 53))
        self.sock.settimeout(0.2)
        self.queries = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                query, peer = self.sock.recvfrom(512)
                self.queries += 1
            except OSError:
                continue
            if len(query) > 15 and query[12:15] == b"\x0243":
                # Same id and question; QR set, RCODE 2 (SERVFAIL).
                reply = query[:2] + bytes([0x80 | (query[2] & 0x01), 0x02]) + query[4:]
                self.sock.sendto(reply, peer)

    def stop(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()


def namespace_works() -> bool:
    try:
        r = subprocess.run(["unshare", "-m", "sh", "-c",
                            "mount --bind /etc/hosts /etc/hosts"],
                           capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def start_namespaced() -> None:
    """A second postern in a mount namespace with its own hosts and
    resolv.conf: loopback(41) is imap.d.example, loopback(42) has no entry
    and its name is asked of a DNS server that never answers."""
    global Q, MUTE
    PORTS.update(named=loopback(41), mute=loopback(42), failing=loopback(43),
                 q_proxy=free_ports(1)[0])
    MUTE = MuteDns(loopback(53))
    hosts = os.path.join(TMP, "hosts")
    resolv = os.path.join(TMP, "resolv.conf")
    with open(hosts, "w", encoding="ascii") as f:
        f.write("127.0.0.1 localhost\n%s imap.d.example\n" % loopback(41))
    with open(resolv, "w", encoding="ascii") as f:
        f.write("nameserver %s\noptions timeout:3 attempts:1\n" % loopback(53))
    prefix = ["unshare", "-m", "sh", "-c",
              'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf '
              '&& shift && exec "$@"', hosts, resolv]
    Q = Postern(ns_config, popmap=POPMAP, argv_prefix=prefix).start()


def setUpModule():
    global STORE, P, CERTS, TMP
    TMP = make_tempdir("postern-domain-")
    CERTS = make_test_ca(TMP, ["localhost", "127.0.0.1", "imap.example.net"])
    (PORTS["imap_b"], PORTS["imap_g"], PORTS["imaps"], PORTS["imap_tls"],
     PORTS["imap_local"], PORTS["b_imap"], PORTS["b_pop3"]) = free_ports(7)
    PORTS.update(cert=CERTS.cert, key=CERTS.key)
    STORE = Dovecot("domains", USERS, host="127.0.0.1", imap_port=PORTS["b_imap"],
                    pop3_port=PORTS["b_pop3"]).start()
    P = Postern(config, popmap=POPMAP).start()
    if namespace_works():
        start_namespaced()


def tearDownModule():
    for x in (P, Q):
        if x is not None:
            x.cleanup()
    if MUTE is not None:
        MUTE.stop()
    if STORE is not None:
        stop_all(STORE)
    remove_tempdir(TMP)


def imap_login(port: int, user: str, password: str, host: str = "127.0.0.1") -> bool:
    m = imaplib.IMAP4(host, port, timeout=15)
    try:
        m.login(user, password)
    except imaplib.IMAP4.error:
        m.logout()
        return False
    m.logout()
    return True


def imaps_login(port: int, user: str, password: str, sni) -> bool:
    ctx = ssl.create_default_context(cafile=CERTS.ca_cert)
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            f = t.makefile("rwb")
            assert f.readline().startswith(b"* OK")
            f.write(b"a LOGIN %s %s\r\n" % (user.encode(), password.encode()))
            f.flush()
            while True:
                line = f.readline()
                if not line or line.startswith(b"a "):
                    break
            f.write(b"b LOGOUT\r\n")
            f.flush()
            return line.startswith(b"a OK")


def s_client_login(port: int, servername: bytes, user: str, password: str,
                   starttls: bool) -> bytes:
    """Log in through openssl s_client, which sends any server name."""
    argv = [b"openssl", b"s_client", b"-quiet", b"-connect",
            b"127.0.0.1:%d" % port, b"-servername", servername]
    if starttls:
        argv[2:2] = [b"-starttls", b"imap"]
    script = b"a LOGIN %s %s\r\nb LOGOUT\r\n" % (user.encode(), password.encode())
    r = subprocess.run(argv, input=script, capture_output=True, timeout=30)
    return r.stdout


def logged(p: Postern, needle: str) -> bool:
    return wait_until(lambda: needle in p.log(), 5)


class DefaultDomainPerListener(unittest.TestCase):
    def test_same_bare_login_two_users(self):
        self.assertTrue(imap_login(P.imap_port, "bob", "a-pw"))
        self.assertTrue(imap_login(PORTS["imap_b"], "bob", "b-pw"))
        # Each listener's domain, not the other's.
        self.assertFalse(imap_login(P.imap_port, "bob", "b-pw"))
        self.assertFalse(imap_login(PORTS["imap_b"], "bob", "a-pw"))
        self.assertTrue(logged(P, "user=bob@a.example"))
        self.assertTrue(logged(P, "user=bob@b.example"))

    def test_pop3_listener_lower_cased_domain(self):
        c = poplib.POP3("127.0.0.1", P.pop3_port, timeout=15)
        c.user("BOB")
        c.pass_("b-pw")
        self.assertGreaterEqual(c.stat()[0], 1)
        c.quit()

    def test_login_with_domain_keeps_it(self):
        self.assertTrue(imap_login(P.imap_port, "bob@b.example", "b-pw"))
        self.assertTrue(imap_login(PORTS["imap_b"], "bob@c.example", "c-pw"))

    def test_listener_without_one_takes_username_default(self):
        self.assertTrue(imap_login(PORTS["imap_g"], "bob", "net-pw"))
        self.assertFalse(imap_login(PORTS["imap_g"], "bob", "a-pw"))


class DomainFromSni(unittest.TestCase):
    def test_implicit_tls_server_name(self):
        self.assertTrue(imaps_login(PORTS["imaps"], "bob", "net-pw", "imap.example.net"))
        self.assertTrue(imaps_login(PORTS["imaps"], "bob", "c-pw", "mail.c.example"))
        # A bare domain stands for itself.
        self.assertTrue(imaps_login(PORTS["imaps"], "bob", "b-pw", "b.example"))

    def test_no_server_name_keeps_default(self):
        self.assertTrue(imaps_login(PORTS["imaps"], "bob", "a-pw", None))
        self.assertFalse(imaps_login(PORTS["imaps"], "bob", "net-pw", None))

    def test_starttls_server_name(self):
        out = s_client_login(PORTS["imap_tls"], b"imap.c.example", "bob", "c-pw", True)
        self.assertIn(b"a OK", out)
        # Without one: username.default_domain.
        out = s_client_login(PORTS["imap_tls"], b"localhost", "bob", "net-pw", True)
        self.assertIn(b"a OK", out)
        self.assertTrue(logged(P, 'TLS server name "localhost" ignored: a single '
                              'label is no domain; domain=example.net'))

    def test_hostile_server_names_ignored_and_logged(self):
        for name, shown in ((b"a@b.example", "a@b.example"),
                            (b"imap.c.exa\x01mple", "imap.c.exa\\x01mple"),
                            (b"imap.c.example LOGIN", "imap.c.example LOGIN"),
                            (b"imap.c.example\x7f", "imap.c.example\\x7f"),
                            (b"x" * 70 + b".c.example", "x" * 70 + ".c.example"),
                            (b"127.0.0.1", "127.0.0.1")):
            with self.subTest(name=name):
                out = s_client_login(PORTS["imaps"], name, "bob", "a-pw", False)
                if b"* OK" not in out:
                    self.skipTest("openssl s_client did not send %r" % name)
                self.assertIn(b"a OK", out)
                self.assertTrue(logged(P, 'TLS server name "%s" ignored' % shown),
                                P.log()[-2000:])
        # Nothing of the names reached a login name.
        self.assertNotIn("@b.example@", P.log())


class DomainFromLocalName(unittest.TestCase):
    def test_single_label_name_keeps_default(self):
        self.assertTrue(imap_login(PORTS["imap_local"], "bob", "a-pw"))
        self.assertTrue(logged(P, 'local address name "localhost" ignored'))

    def test_name_from_hosts_in_namespace(self):
        if Q is None:
            self.skipTest("no mount namespace here (unshare -m)")
        self.assertTrue(imap_login(Q.imap_port, "bob", "d-pw", host=PORTS["named"]))
        self.assertFalse(imap_login(Q.imap_port, "bob", "a-pw", host=PORTS["named"]))

    def test_mute_dns_fails_the_login_for_now(self):
        if Q is None:
            self.skipTest("no mount namespace here (unshare -m)")
        m = imaplib.IMAP4(PORTS["mute"], Q.imap_port, timeout=15)
        started = time.monotonic()
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.login("bob", "a-pw")
        # timeouts.lookup (1 s), not the DNS timeout, and a temporary failure.
        self.assertLess(time.monotonic() - started, 2.5)
        self.assertIn("UNAVAILABLE", str(cm.exception))
        m.logout()
        self.assertTrue(logged(Q, "no DNS name for the local address within 1s"))
        self.assertGreater(MUTE.queries, 0)
        # Other listeners are served meanwhile.
        self.assertTrue(imap_login(Q.imap_port, "bob@b.example", "b-pw"))


    def test_failing_dns_fails_the_login_for_now(self):
        if Q is None:
            self.skipTest("no mount namespace here (unshare -m)")
        for _ in range(2):
            m = imaplib.IMAP4(PORTS["failing"], Q.imap_port, timeout=15)
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                m.login("bob", "a-pw")
            self.assertIn("UNAVAILABLE", str(cm.exception))
            m.logout()
        self.assertTrue(logged(Q, 'reason="DNS name of the local address: '))


class DomainBehindBalancer(unittest.TestCase):
    def test_proxy_header_destination_is_the_address_reached(self):
        if Q is None:
            self.skipTest("no mount namespace here (unshare -m)")
        for dst, password in ((PORTS["named"], b"d-pw"), ("127.0.0.1", b"a-pw")):
            with self.subTest(dst=dst):
                r = Raw(PORTS["q_proxy"])
                r.send(proxy_v1("198.51.100.7", 40000, dst, 143))
                self.assertTrue(r.line().startswith(b"* OK"))
                r.send(b"a LOGIN bob " + password + b"\r\n")
                self.assertTrue(r.until(b"a ")[-1].startswith(b"a OK"))
                r.send(b"b LOGOUT\r\n")
                r.close()


class ZZShutdown(unittest.TestCase):
    def test_zz_clean_exit(self):
        for x in (P, Q):
            if x is None:
                continue
            rc = x.stop(signal.SIGTERM)
            self.assertEqual(rc, 0, x.log()[-2000:])
            self.assertEqual(x.leaks(), "")


if __name__ == "__main__":
    sys.exit(main(__name__))
