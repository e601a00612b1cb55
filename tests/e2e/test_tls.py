"""End-to-end TLS: implicit TLS and STARTTLS/STLS towards clients, STARTTLS
and implicit TLS towards Dovecot stores that require it (verified against a
test CA, host names checked), bridging in both directions, the STARTTLS
plaintext-injection class, tls = "required", SNI, and certificate reload on
SIGHUP without dropping live sessions.
"""

from __future__ import annotations

import hashlib
import imaplib
import os
import poplib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import (free_ports, loopback, make_server_cert,  # noqa: E402
                             make_tempdir, make_test_ca, remove_tempdir)
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from lib import Raw, main  # noqa: E402

PLAIN = SECURE = IMPLICIT = P = None
CERTS = None
TMP = None
PORTS = {}
USERS = {"alice": "alice-pw", "sam": "sam-pw", "ivy": "ivy-pw", "wes": "wes-pw"}


def config(p: dict) -> str:
    return """
daemon = { threads = 2; log_level = "info"; drain = 2; };
timeouts = { login = 30; connect = 5; };
tls = { cert = "%(cert)s"; key = "%(key)s";
        certificates = ( { cert = "%(sni_cert)s"; key = "%(sni_key)s"; } ); };
listen = ( { protocol = "imap"; address = "127.0.0.1:%(imap)d"; tls = "starttls"; },
           { protocol = "pop3"; address = "127.0.0.1:%(pop3)d"; tls = "starttls"; },
           { protocol = "imap"; address = "127.0.0.1:%(imaps)d"; tls = "implicit"; },
           { protocol = "pop3"; address = "127.0.0.1:%(pop3s)d"; tls = "implicit"; },
           { protocol = "imap"; address = "127.0.0.1:%(imapr)d"; tls = "required"; },
           { protocol = "pop3"; address = "127.0.0.1:%(pop3r)d"; tls = "required"; },
           { protocol = "imap"; address = "127.0.0.1:%(imapn)d"; tls = "none"; } );
directory = { type = "file"; file = { path = "%(popmap)s"; }; };
backends = (
  { name = "secure.example.net"; addresses = "%(secure_addr)s"; tls = "starttls";
    ca_file = "%(ca)s"; },
  { name = "implicit.example.net"; addresses = "%(implicit_addr)s"; tls = "implicit";
    imap_port = %(b_imaps)d; pop3_port = %(b_pop3s)d; ca_file = "%(ca)s"; },
  { name = "wrongname.example.net"; addresses = "%(secure_addr)s"; tls = "starttls";
    ca_file = "%(ca)s"; }
);
backend = { imap_port = %(b_imap)d; pop3_port = %(b_pop3)d; };
""" % dict(PORTS, popmap=p["popmap"], imap=p["imap"], pop3=p["pop3"])


def setUpModule():
    global PLAIN, SECURE, IMPLICIT, P, CERTS, TMP
    TMP = make_tempdir("postern-tls-")
    CERTS = make_test_ca(TMP, ["localhost", "127.0.0.1", "mail.example.net"])
    sni = make_server_cert(CERTS, TMP, ["imap.example.org"], stem="sni")
    stores = make_server_cert(CERTS, TMP, ["secure.example.net", "implicit.example.net",
                                           loopback(2), loopback(5)], stem="stores")
    (PORTS["imaps"], PORTS["pop3s"], PORTS["imapr"], PORTS["pop3r"], PORTS["imapn"],
     PORTS["b_imap"], PORTS["b_pop3"], PORTS["b_imaps"], PORTS["b_pop3s"]) = free_ports(9)
    PORTS.update(cert=os.path.join(TMP, "postern.crt"), key=os.path.join(TMP, "postern.key"),
                 sni_cert=sni.cert, sni_key=sni.key, ca=CERTS.ca_cert,
                 secure_addr=loopback(2), implicit_addr=loopback(5))
    shutil.copy(CERTS.cert, PORTS["cert"])
    shutil.copy(CERTS.key, PORTS["key"])
    common = dict(imap_port=PORTS["b_imap"], pop3_port=PORTS["b_pop3"])
    PLAIN = Dovecot("plain", {"alice": USERS["alice"]}, host="127.0.0.1", **common).start()
    SECURE = Dovecot("secure", {"sam": USERS["sam"], "wes": USERS["wes"]}, host=loopback(2),
                     ssl={"cert": stores.cert, "key": stores.key, "mode": "required"},
                     **common).start()
    IMPLICIT = Dovecot("implicit", {"ivy": USERS["ivy"]}, host=loopback(5),
                       ssl={"cert": stores.cert, "key": stores.key, "mode": "implicit"},
                       imaps_port=PORTS["b_imaps"], pop3s_port=PORTS["b_pop3s"],
                       **common).start()
    P = Postern(config, popmap="alice 127.0.0.1\nsam secure.example.net\n"
                "ivy implicit.example.net\nwes wrongname.example.net\n").start()


def tearDownModule():
    if P is not None:
        P.cleanup()
    stop_all(*(x for x in (PLAIN, SECURE, IMPLICIT) if x is not None))
    remove_tempdir(TMP)


def client_ctx(server_hostname_check=True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=CERTS.ca_cert)
    ctx.check_hostname = server_hostname_check
    return ctx


def fetch(m) -> bytes:
    m.select("INBOX")
    _, data = m.fetch("1", "(BODY[])")
    return data[0][1]


def peer_fingerprint(port: int, sni: str = "localhost") -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with client_ctx(False).wrap_socket(s, server_hostname=sni) as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


class ClientSide(unittest.TestCase):
    def test_openssl_starttls_imap_and_pop3(self):
        r = subprocess.run(
            ["openssl", "s_client", "-quiet", "-starttls", "imap", "-connect",
             "127.0.0.1:%d" % P.imap_port, "-CAfile", CERTS.ca_cert,
             "-verify_return_error", "-verify_hostname", "localhost"],
            input=b"a LOGIN alice alice-pw\r\nb SELECT INBOX\r\nc FETCH 1 BODY[]\r\n"
                  b"d LOGOUT\r\n", capture_output=True, timeout=30)
        self.assertIn(b"a OK", r.stdout)
        self.assertIn(PLAIN.welcome_line.encode(), r.stdout)
        r = subprocess.run(
            ["openssl", "s_client", "-quiet", "-starttls", "pop3", "-connect",
             "127.0.0.1:%d" % P.pop3_port, "-CAfile", CERTS.ca_cert,
             "-verify_return_error"],
            input=b"USER alice\r\nPASS alice-pw\r\nRETR 1\r\nQUIT\r\n",
            capture_output=True, timeout=30)
        self.assertIn(PLAIN.welcome_line.encode(), r.stdout)

    def test_python_implicit_and_starttls(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", PORTS["imaps"], ssl_context=client_ctx(False))
        m.login("alice", "alice-pw")
        self.assertIn(PLAIN.welcome_line.encode(), fetch(m))
        m.logout()
        m = imaplib.IMAP4("127.0.0.1", P.imap_port, timeout=15)
        m.starttls(ssl_context=client_ctx(False))
        m.login("alice", "alice-pw")
        self.assertIn(PLAIN.welcome_line.encode(), fetch(m))
        m.logout()
        p = poplib.POP3_SSL("127.0.0.1", PORTS["pop3s"], context=client_ctx(False))
        p.user("alice")
        p.pass_("alice-pw")
        self.assertEqual(p.stat()[0], 1)
        p.quit()
        p = poplib.POP3("127.0.0.1", P.pop3_port, timeout=15)
        p.stls(context=client_ctx(False))
        p.user("alice")
        p.pass_("alice-pw")
        self.assertEqual(p.stat()[0], 1)
        p.quit()

    def test_curl_ssl_reqd_and_imaps(self):
        if shutil.which("curl") is None:
            self.skipTest("curl missing")
        for url, extra in (("imap://localhost:%d/INBOX;UID=1" % P.imap_port, ["--ssl-reqd"]),
                           ("imaps://localhost:%d/INBOX;UID=1" % PORTS["imaps"], []),
                           ("pop3s://localhost:%d/1" % PORTS["pop3s"], [])):
            out = subprocess.run(["curl", "-s", "--max-time", "20", "--cacert", CERTS.ca_cert,
                                  "--resolve", "localhost:%s:127.0.0.1" % url.split(":")[2].split("/")[0],
                                  "-u", "alice:alice-pw", url] + extra,
                                 capture_output=True, timeout=30)
            self.assertIn(PLAIN.welcome_line.encode(), out.stdout, (url, out.stderr))

    def test_starttls_injection_is_discarded(self):
        raw = socket.create_connection(("127.0.0.1", P.imap_port), timeout=10)
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
        self.assertTrue(f.readline().startswith(b"a OK"))
        t = client_ctx(False).wrap_socket(raw, server_hostname="localhost")
        t.sendall(b"c NOOP\r\n")
        got = b""
        while b"c OK" not in got:
            chunk = t.recv(4096)
            self.assertTrue(chunk)
            got += chunk
        self.assertNotIn(b"b OK", got)
        self.assertNotIn(b"* CAPABILITY", got)
        t.close()
        r = Raw(P.pop3_port)
        r.line()
        r.send(b"STLS\r\nCAPA\r\n")
        self.assertTrue(r.line().startswith(b"+OK"))
        t = client_ctx(False).wrap_socket(r.sock, server_hostname="localhost")
        t.sendall(b"NOOP\r\n")
        self.assertEqual(t.recv(4096), b"+OK\r\n")
        t.close()

    def test_required_hides_login_until_tls(self):
        r = Raw(PORTS["imapr"])
        greeting = r.line()
        self.assertIn(b"LOGINDISABLED", greeting)
        self.assertNotIn(b"AUTH=PLAIN", greeting)
        r.send(b"a LOGIN alice alice-pw\r\n")
        self.assertTrue(r.line().startswith(b"a NO"))
        r.close()
        m = imaplib.IMAP4("127.0.0.1", PORTS["imapr"], timeout=15)
        m.starttls(ssl_context=client_ctx(False))
        self.assertIn("AUTH=PLAIN", m.capabilities)
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        m.login("alice", "alice-pw")
        m.logout()
        r = Raw(PORTS["pop3r"])
        r.line()
        r.send(b"CAPA\r\n")
        caps = b"".join(r.until(b".\r"))
        self.assertIn(b"STLS", caps)
        self.assertNotIn(b"USER", caps)
        r.send(b"USER alice\r\n")
        self.assertTrue(r.line().startswith(b"-ERR"))
        r.close()

    def test_sni_chooses_certificate(self):
        default = peer_fingerprint(PORTS["imaps"], "localhost")
        other = peer_fingerprint(PORTS["imaps"], "imap.example.org")
        self.assertNotEqual(default, other)
        with socket.create_connection(("127.0.0.1", PORTS["imaps"]), timeout=10) as s:
            with client_ctx(True).wrap_socket(s, server_hostname="imap.example.org") as t:
                self.assertTrue(t.recv(100).startswith(b"* OK"))


class BackendSide(unittest.TestCase):
    def test_starttls_backend_verified(self):
        m = imaplib.IMAP4("127.0.0.1", PORTS["imapn"], timeout=15)   # plain client
        m.login("sam", "sam-pw")
        self.assertIn(SECURE.welcome_line.encode(), fetch(m))
        m.logout()
        p = poplib.POP3_SSL("127.0.0.1", PORTS["pop3s"], context=client_ctx(False))
        p.user("sam")
        p.pass_("sam-pw")
        self.assertEqual(p.stat()[0], 1)
        p.quit()

    def test_implicit_tls_backend_bridged_from_tls_client(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", PORTS["imaps"], ssl_context=client_ctx(False))
        m.login("ivy", "ivy-pw")
        body = fetch(m)
        self.assertIn(IMPLICIT.welcome_line.encode(), body)
        m.logout()

    def test_wrong_backend_name_is_refused(self):
        r = Raw(PORTS["imapn"])
        r.line()
        r.send(b"a LOGIN wes wes-pw\r\n")
        self.assertIn(b"NO [UNAVAILABLE]", r.line())
        r.close()
        time.sleep(0.2)
        log = P.log()
        self.assertIn("backend TLS handshake failed", log)
        self.assertIn("mismatch", log)

    def test_large_fetch_over_tls_both_sides(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", PORTS["imaps"], ssl_context=client_ctx(False))
        m.login("ivy", "ivy-pw")
        m.select("INBOX")
        big = b"x" * 1000 + b"\r\n"
        msg = b"Subject: big\r\n\r\n" + big * 1500
        m.append("INBOX", None, None, msg)
        _, data = m.fetch("2", "(BODY[])")
        self.assertEqual(data[0][1], msg)
        m.logout()


class ZReload(unittest.TestCase):
    def test_sighup_new_certificate_keeps_live_sessions(self):
        live = imaplib.IMAP4_SSL("127.0.0.1", PORTS["imaps"], ssl_context=client_ctx(False))
        live.login("alice", "alice-pw")
        before = peer_fingerprint(PORTS["imaps"])
        fresh = make_server_cert(CERTS, TMP, ["localhost", "127.0.0.1"], stem="renewed")
        shutil.copy(fresh.cert, PORTS["cert"])
        shutil.copy(fresh.key, PORTS["key"])
        P.reload()
        deadline = time.monotonic() + 10
        while peer_fingerprint(PORTS["imaps"]) == before:
            self.assertLess(time.monotonic(), deadline, "new certificate never served")
            time.sleep(0.2)
        self.assertEqual(live.noop()[0], "OK")
        self.assertIn(PLAIN.welcome_line.encode(), fetch(live))
        live.logout()

    def test_zz_clean_exit(self):
        rc = P.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, P.log()[-2000:])
        self.assertEqual(P.leaks(), "")


if __name__ == "__main__":
    sys.exit(main(__name__))
