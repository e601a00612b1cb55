"""End-to-end TLS audit: testssl.sh against postern's default TLS settings
(only tls.cert and tls.key set) on implicit TLS (IMAP), STARTTLS (IMAP)
and STLS (POP3).  Each scan checks protocols, cipher categories, forward
secrecy, server preferences, server defaults, vulnerabilities and every
cipher per protocol (-p -s -f -P -S -U -E; client simulation and HTTP
headers are left out: they say nothing about postern's settings).  No
finding may be MEDIUM or worse; only TLS 1.2 and 1.3 may be offered, and
only forward-secret suites.  Resumption (tickets and the session cache)
is checked with Python's ssl, which, unlike a scanner's one-shot
s_client, waits for the TLS 1.3 tickets.

The certificate is one a real deployment would have, so that findings
are about postern, not about the throwaway PKI: issued by the test CA
(trusted with --add-ca), SAN for localhost and 127.0.0.1, valid 90 days,
and with a CRL distribution point (never fetched: no --phone-out).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import free_ports, make_server_cert, make_tempdir, make_test_ca, remove_tempdir, wait_port  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from lib import main  # noqa: E402

TESTSSL = shutil.which("testssl.sh") or shutil.which("testssl")
BAD = ("MEDIUM", "HIGH", "CRITICAL", "FATAL")
LISTED = ("LOW", "WARN")
# Seconds a scan may take before it counts as hung (one takes about 30).
SCAN_TIMEOUT = 600
# src/tls.h TLS_TICKET_ROTATE: the session lifetime and ticket hint.
TICKET_LIFETIME = 4 * 3600
TLS12_SUITES = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-CHACHA20-POLY1305"}

P = CERTS = TMP = None
PORTS = {}
SCANS = {}


def config(p: dict) -> str:
    return """
daemon = { threads = 2; log_level = "info"; drain = 2; };
tls = { cert = "%(cert)s"; key = "%(key)s"; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%(imaps)d"; tls = "implicit"; },
           { protocol = "imap"; address = "127.0.0.1:%(imap)d"; tls = "starttls"; },
           { protocol = "pop3"; address = "127.0.0.1:%(pop3)d"; tls = "starttls"; } );
directory = { type = "file"; file = { path = "%(popmap)s"; }; };
""" % dict(PORTS, popmap=p["popmap"], imap=p["imap"], pop3=p["pop3"])


def setUpModule():
    global P, CERTS, TMP
    if TESTSSL is None:
        raise unittest.SkipTest("testssl.sh not installed")
    TMP = make_tempdir("postern-tlsscan-")
    ca = make_test_ca(TMP)
    CERTS = make_server_cert(ca, TMP, ["localhost", "127.0.0.1"], stem="scan", days=90,
                             extensions=["crlDistributionPoints = "
                                         "URI:http://127.0.0.1/postern-test-ca.crl"])
    PORTS["imaps"], = free_ports(1)
    PORTS.update(cert=CERTS.cert, key=CERTS.key)
    P = Postern(config).start()
    wait_port("127.0.0.1", PORTS["imaps"], 10, proc=P.proc)


def tearDownModule():
    if P is not None:
        P.cleanup()
    remove_tempdir(TMP)


def scan(name: str, port: int, starttls: str = None) -> dict:
    """Run testssl.sh once per target; its findings by id."""
    if name in SCANS:
        if isinstance(SCANS[name], Exception):
            raise SCANS[name]
        return SCANS[name]
    try:
        return run_scan(name, port, starttls)
    except (AssertionError, subprocess.TimeoutExpired) as e:
        # One failed scan fails each check once, without scanning again.
        SCANS[name] = AssertionError("scan %s failed: %s" % (name, e))
        raise


def run_scan(name: str, port: int, starttls: str = None) -> dict:
    out = os.path.join(TMP, name + ".json")
    if os.path.exists(out):
        os.unlink(out)      # testssl.sh refuses to overwrite a report
    argv = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
            "--add-ca", CERTS.ca_cert, "--jsonfile", out,
            "-p", "-s", "-f", "-P", "-S", "-U", "-E"]
    if starttls:
        argv += ["--starttls", starttls]
    argv.append("127.0.0.1:%d" % port)
    start = time.monotonic()
    r = subprocess.run(argv, cwd=TMP, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=SCAN_TIMEOUT)
    took = time.monotonic() - start
    print("\n  scan %s: %.1f s: %s" % (name, took, " ".join(argv[1:])))
    # Below 240 the exit status counts findings; 240 and up is a failed run.
    if r.returncode >= 240 or not os.path.exists(out):
        raise AssertionError("testssl.sh failed (%d):\n%s\n%s" % (
            r.returncode, r.stdout.decode(errors="replace")[-3000:],
            r.stderr.decode(errors="replace")[-3000:]))
    with open(out, encoding="utf-8") as f:
        findings = json.load(f)
    for f in findings:
        if f["severity"] in LISTED:
            print("  %s %s %s: %s" % (name, f["severity"], f["id"], f["finding"]))
    SCANS[name] = {f["id"]: f for f in findings}
    SCANS[name]["_list"] = findings
    return SCANS[name]


# "TLS 1.2   xc02b   ECDHE-ECDSA-AES128-GCM-SHA256   ECDH 253   AESGCM ..."
CIPHER_LINE = re.compile(r"^(?P<proto>SSLv[23]|TLS 1(?:\.[0-3])?)\s+(?P<hex>x[0-9a-f]+)\s+"
                         r"(?P<name>\S+)\s+(?P<kx>\S+)")


class Scan:
    """The checks, run against each target (mixed into a TestCase)."""
    name = port = starttls = None

    def findings(self) -> dict:
        return scan(self.name, self.port(), self.starttls)

    def test_no_medium_or_worse(self):
        bad = ["%s %s: %s" % (f["severity"], f["id"], f["finding"])
               for f in self.findings()["_list"] if f["severity"] in BAD]
        self.assertEqual(bad, [], "\n" + "\n".join(bad))

    def test_only_tls12_and_tls13(self):
        d = self.findings()
        for pid in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            self.assertTrue(d[pid]["finding"].startswith("not offered"), d[pid])
        for pid in ("TLS1_2", "TLS1_3"):
            self.assertTrue(d[pid]["finding"].startswith("offered"), d[pid])
        protos = {CIPHER_LINE.match(f["finding"]).group("proto")
                  for f in d["_list"] if f["id"].startswith("cipher-")}
        self.assertEqual(protos, {"TLS 1.2", "TLS 1.3"})

    def test_forward_secret_aead_suites_only(self):
        d = self.findings()
        offered = [CIPHER_LINE.match(f["finding"]) for f in d["_list"]
                   if f["id"].startswith("cipher-")]
        self.assertTrue(offered)
        not_fs = [m.group(0) for m in offered if m.group("kx") not in ("ECDH", "DH")]
        self.assertEqual(not_fs, [], "not forward secret: %s" % not_fs)
        self.assertEqual(d["PFS"]["finding"], "offered")
        fs = set(d["PFS_ciphers"]["finding"].split())
        self.assertLessEqual({m.group("name") for m in offered}, fs)
        self.assertEqual({m.group("name") for m in offered if m.group("proto") == "TLS 1.2"},
                         TLS12_SUITES)
        for cat in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"):
            self.assertEqual(d["cipherlist_" + cat]["finding"], "not offered", cat)

    def test_server_preferences(self):
        d = self.findings()
        self.assertEqual(d["cipher_order"]["finding"], "server")
        self.assertIn("X25519", d["cipher_negotiated"]["finding"])
        self.assertEqual(set(d["PFS_ECDHE_curves"]["finding"].split()),
                         {"X25519", "prime256v1", "secp384r1"})

    def test_server_defaults(self):
        d = self.findings()
        self.assertEqual(d["cert_trust"]["severity"], "OK", d["cert_trust"])
        self.assertEqual(d["cert_chain_of_trust"]["severity"], "OK", d["cert_chain_of_trust"])
        self.assertEqual(d["CRIME_TLS"]["severity"], "OK")
        self.assertEqual(d["secure_client_renego"]["severity"], "OK")
        self.assertIn("%d seconds" % TICKET_LIFETIME, d["TLS_session_ticket"]["finding"])


class ImapImplicit(Scan, unittest.TestCase):
    name = "imap-implicit"

    def port(self):
        return PORTS["imaps"]


class ImapStarttls(Scan, unittest.TestCase):
    name = "imap-starttls"
    starttls = "imap"

    def port(self):
        return P.imap_port


class Pop3Stls(Scan, unittest.TestCase):
    name = "pop3-stls"
    starttls = "pop3"

    def port(self):
        return P.pop3_port


def connect(ctx: ssl.SSLContext, session=None) -> ssl.SSLSocket:
    """Implicit TLS, greeting read: TLS 1.3 tickets come before it."""
    s = socket.create_connection(("127.0.0.1", PORTS["imaps"]), timeout=10)
    t = ctx.wrap_socket(s, server_hostname="localhost", session=session)
    assert t.recv(100).startswith(b"* OK")
    return t


def client_ctx(version=None, tickets=True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=CERTS.ca_cert)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def close(t: ssl.SSLSocket) -> None:
    t.unwrap()      # close_notify, or the client drops the session
    t.close()


class Resumption(unittest.TestCase):
    def resumed(self, ctx, want_ticket: bool) -> bool:
        t = connect(ctx)
        sess = t.session
        self.assertEqual(sess.has_ticket, want_ticket)
        if want_ticket:
            self.assertEqual(sess.ticket_lifetime_hint, TICKET_LIFETIME)
        close(t)
        t = connect(ctx, sess)
        reused = t.session_reused
        close(t)
        return reused

    def test_tls13_ticket(self):
        self.assertTrue(self.resumed(client_ctx(ssl.TLSVersion.TLSv1_3), True))

    def test_tls12_ticket(self):
        self.assertTrue(self.resumed(client_ctx(ssl.TLSVersion.TLSv1_2), True))

    def test_tls12_session_cache(self):
        self.assertTrue(self.resumed(client_ctx(ssl.TLSVersion.TLSv1_2, tickets=False), False))


class ZReload(unittest.TestCase):
    def test_sighup_retires_tickets(self):
        ctx = client_ctx(ssl.TLSVersion.TLSv1_3)
        t = connect(ctx)
        sess = t.session
        close(t)
        P.reload()
        deadline = time.monotonic() + 10
        while True:
            t = connect(ctx, sess)
            reused = t.session_reused
            close(t)
            if not reused:
                break
            self.assertLess(time.monotonic(), deadline, "old ticket still accepted")
            time.sleep(0.2)

    def test_zz_clean_exit(self):
        rc = P.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, P.log()[-2000:])
        self.assertEqual(P.leaks(), "")


if __name__ == "__main__":
    sys.exit(main(__name__))
