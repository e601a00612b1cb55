"""postern-migrate end to end: a Perdition popmap becomes LDAP entries in a
throwaway slapd and postern routes every user as the popmap did; a
Perdition configuration set (IMAP, IMAPS, POP3, POP3S) becomes one
postern.conf that passes --check-config against that slapd; `move` changes
a route and copes with no running daemon.  Plus the parsers on their own
(bad lines, DN and LDIF escaping, Perdition's config syntax)."""

from __future__ import annotations

import base64
import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import free_ports  # noqa: E402
from fixtures.postern import Postern, binary  # noqa: E402
from fixtures.slapd import REPO_ROOT, Slapd  # noqa: E402
from lib import main  # noqa: E402

SCRIPT = str(REPO_ROOT / "scripts" / "postern-migrate")
DATA = REPO_ROOT / "tests" / "e2e" / "data"
PEOPLE = "ou=people,dc=example,dc=net"

_loader = importlib.machinery.SourceFileLoader("postern_migrate", SCRIPT)
_spec = importlib.util.spec_from_loader("postern_migrate", _loader)
pm = importlib.util.module_from_spec(_spec)
_loader.exec_module(pm)

S = None
TMP = None


def run(args, input_text=None, env=None):
    return subprocess.run([sys.executable, SCRIPT] + args, input=input_text,
                          capture_output=True, text=True, env=env, timeout=60)


def lookup(conf, user):
    """postern --lookup: {'status':..., 'backend_user':..., 'hosts': [(host, port)]}."""
    p = subprocess.run([binary(), "-c", conf, "--lookup", user], capture_output=True,
                       text=True, timeout=30)
    res = {"hosts": [], "rc": p.returncode, "out": p.stdout + p.stderr}
    for line in p.stdout.splitlines():
        m = re.match(r"^host: (\S+) port: (\d+)", line)
        if m:
            res["hosts"].append((m.group(1), int(m.group(2))))
        elif ":" in line:
            k, v = line.split(":", 1)
            res[k.strip()] = v.strip()
    return res


def route_config(path):
    imap, pop3 = free_ports(2)
    with open(path, "w") as f:
        f.write("""
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
directory = { type = "ldap"; cache = { entries = 0; };
  ldap = { uri = "%s"; base = "%s"; scope = "one"; filter = "(uid=%%u)";
           bind_dn = "%s"; bind_password = "%s";
           attributes = { username = "username"; host = "mailHost"; port = "port"; }; }; };
backend = { imap_port = 143; pop3_port = 110; };
""" % (imap, pop3, S.uri, PEOPLE, S.bind_dn, S.bind_password))
    return path


def setUpModule():
    global S, TMP
    TMP = tempfile.mkdtemp(prefix="postern-migrate-")
    S = Slapd(ldif=[REPO_ROOT / "ldif" / "base.ldif"]).start()
    p = run(["popmap2ldif", "--base", PEOPLE, str(DATA / "popmap")])
    assert p.returncode == 0, p.stderr
    S.add(p.stdout)


def tearDownModule():
    if S is not None:
        S.cleanup()
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


def popmap_routes():
    """user -> (host, port or None, backend user or None), from the fixture
    popmap, parsed here independently of the tool."""
    routes = {}
    for line in (DATA / "popmap").read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        first = line.split()[0]
        if ":" in first:
            user, value = line.split(":", 1)
            value, buser = value.strip(), None
        else:
            f = line.split()
            user, value, buser = f[0], f[1], (f[2] if len(f) > 2 else None)
        if "@" in value:
            buser, value = value.split("@", 1)
        host, _, port = value.partition(":")
        routes[user.strip()] = (host, int(port) if port else None, buser)
    return routes


class PopmapToLdap(unittest.TestCase):
    def test_every_user_routes_as_the_popmap_said(self):
        conf = route_config(os.path.join(TMP, "route.conf"))
        routes = popmap_routes()
        self.assertGreaterEqual(len(routes), 8)
        for user, (host, port, buser) in routes.items():
            with self.subTest(user=user):
                r = lookup(conf, user)
                self.assertEqual(r["rc"], 0, r["out"])
                self.assertEqual(r["hosts"], [(host, port or 143)], r["out"])
                self.assertEqual(r["backend_user"], buser or user, r["out"])

    def test_bad_lines_are_reported_with_their_number(self):
        p = run(["popmap2ldif", "--base", PEOPLE, str(DATA / "popmap-bad")])
        self.assertEqual(p.returncode, 1)
        self.assertIn("popmap-bad:3:", p.stderr)
        self.assertEqual(p.stdout, "")
        p = run(["popmap2ldif", "--base", PEOPLE, "--skip-bad", str(DATA / "popmap-bad")])
        self.assertEqual(p.returncode, 0, p.stderr)
        for n in (3, 4, 5):
            self.assertIn("popmap-bad:%d:" % n, p.stderr)
        self.assertEqual(p.stdout.count("dn: "), 1)

    def test_inetlocal_form_loads(self):
        p = run(["popmap2ldif", "--base", "ou=system,dc=example,dc=net", "--form", "inetlocal"],
                input_text="x.y@example.com: store-a.example.net:1143\n"
                           "z@example.com zz.example.net Zed\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("objectClass: posternRoute", p.stdout)
        self.assertIn("port: 1143", p.stdout)
        S.add(p.stdout)
        e = S.search("(mail=x.y@example.com)", ["mailHost", "port"])
        self.assertEqual(e[0]["mailHost"], ["store-a.example.net"])

    def test_stdin_and_escaped_dn_load(self):
        p = run(["popmap2ldif", "--base", PEOPLE, "-"],
                input_text="we,ird+user: store-a.example.net\n"
                           "j\u00fcrgen: store-b.example.net\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("dn: uid=we\\,ird\\+user,%s" % PEOPLE, p.stdout)
        self.assertIn("uid:: " + base64.b64encode("j\u00fcrgen".encode()).decode(), p.stdout)
        S.add(p.stdout)
        conf = route_config(os.path.join(TMP, "route2.conf"))
        self.assertEqual(lookup(conf, "we,ird+user")["hosts"], [("store-a.example.net", 143)])


class Parsers(unittest.TestCase):
    def test_popmap_lines(self):
        P = pm.parse_popmap_line
        self.assertIsNone(P("# comment\n"))
        self.assertIsNone(P("   \n"))
        r = P("bob: store-b.example.net:1143  # note\n")
        self.assertEqual((r["user"], r["host"], r["port"]), ("bob", "store-b.example.net", "1143"))
        r = P("dave:dsmith@h.example.net:2143")
        self.assertEqual((r["user_in_host"], r["host"], r["port"]), ("dsmith", "h.example.net", "2143"))
        r = P("carol\th.example.net\tc.jones")
        self.assertEqual(r["backend_user"], "c.jones")
        for bad in ("lonely", "u: ", "u: a b", "u h1,h2", "u h x y", "u h:99999",
                    "u bad/host", ": h", "u h\x01"):
            with self.subTest(line=bad):
                self.assertRaises(pm.ParseError, P, bad)

    def test_dn_escape(self):
        E = pm.dn_escape
        self.assertEqual(E("a,b+c"), "a\\,b\\+c")
        self.assertEqual(E(" lead"), "\\ lead")
        self.assertEqual(E("trail "), "trail\\ ")
        self.assertEqual(E("#x"), "\\#x")
        self.assertEqual(E('q"<>;\\='), 'q\\"\\<\\>\\;\\\\\\=')

    def test_ldif_values(self):
        L = pm.ldif_line
        self.assertEqual(L("uid", "plain"), "uid: plain")
        for v in (" lead", ":colon", "<lt", "trail ", "n\u00e9", "a\nb"):
            with self.subTest(v=v):
                self.assertEqual(L("x", v), "x:: " + base64.b64encode(v.encode()).decode())

    def test_filter_escape(self):
        self.assertEqual(pm.value_bytes_to_filter("a*(b)\\"), "a\\2a\\28b\\29\\5c")

    def test_perdition_conf_syntax(self):
        path = os.path.join(TMP, "p.conf")
        with open(path, "w") as f:
            f.write('# c\nl 110\nprotocol=IMAP4\nimap_capability "A  B" # tail\n'
                    "pop_capability 'X.Y'\nssl_mode \\\n  tls_listen\n")
        items = pm.read_perdition_conf(path)
        self.assertEqual([(k, v) for _, k, v in items],
                         [("listen_port", "110"), ("protocol", "IMAP4"),
                          ("imap_capability", "A  B"), ("pop_capability", "X.Y"),
                          ("ssl_mode", "tls_listen")])

    def test_ldap_url(self):
        u = pm.parse_ldap_url("3:ldap://h1 h2:389/ou=m%2cdc=x?u,mh?sub?(uid=%10s)?!bindname=cn=a%2cdc=x")
        self.assertEqual(u["uri"], "ldap://h1/ ldap://h2:389/")
        self.assertEqual(u["base"], "ou=m,dc=x")
        self.assertEqual(u["filter"], "(uid=%u)")
        self.assertEqual(u["attrs"], ["u", "mh"])
        self.assertEqual(u["bind_dn"], "cn=a,dc=x")
        self.assertTrue(u["padded"])


class FromPerdition(unittest.TestCase):
    def convert(self):
        d = os.path.join(TMP, "perdition")
        os.makedirs(d, exist_ok=True)
        cert, key = os.path.join(d, "crt.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=mail.example.net", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        files = []
        for src in sorted((DATA / "perdition").glob("perdition.*.conf")):
            text = src.read_text()
            text = text.replace("ldap1.example.net ldap2.example.net", "127.0.0.1:%d" % S.port)
            text = text.replace("/etc/perdition/perdition.crt.pem", cert)
            text = text.replace("/etc/perdition/perdition.key.pem", key)
            dst = os.path.join(d, src.name)
            with open(dst, "w") as f:
                f.write(text)
            files.append(dst)
        out = os.path.join(d, "postern.conf")
        p = run(["from-perdition", "--output", out] + files)
        self.assertEqual(p.returncode, 0, p.stderr)
        return d, out, p.stderr

    def test_converted_config_checks_against_slapd(self):
        d, out, report = self.convert()
        text = open(out).read()
        for want in ('tls = "starttls"', 'tls = "implicit"', 'tls = "required"',
                     'default_domain = "example.net"', 'lower_case = true',
                     'filter = "(uid=%u)"', 'scope = "one"', 'imap = "IMAP4 IMAP4REV1 LITERAL+"',
                     'pop3 = "UIDL USER TOP"', 'idle = 1800', 'login = 120',
                     '"192.0.2.10:993"', '"192.0.2.10:995"', 'user = "perdition"'):
            self.assertIn(want, text)
        p = subprocess.run([binary(), "-c", out, "--check-config"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + "\n" + text)
        # lower_case + explicit_domain: "JUDY" is looked up as judy@example.net
        r = lookup(out, "JUDY")
        self.assertEqual(r["hosts"], [("domino.example.net", 143)], r["out"])

    def test_report_lists_unconverted_lines(self):
        d, out, report = self.convert()
        for fname, line, opt in (("perdition.imap4.conf", 9, "group"),
                                 ("perdition.imap4.conf", 15, "server_resp_line"),
                                 ("perdition.imap4s.conf", 14, "connect_relog"),
                                 ("perdition.pop3.conf", 26, "outgoing_server"),
                                 ("perdition.pop3s.conf", 18, "ssl_ca_chain_file")):
            self.assertRegex(report, r"(?m)^%s:%d: %s: not converted: \S" %
                             (re.escape(os.path.join(d, fname)), line, opt))
        self.assertNotIn("map_library_opt: not converted", report)


class Move(unittest.TestCase):
    # Users of their own, so that the popmap routes above stay as loaded.
    @classmethod
    def setUpClass(cls):
        p = run(["popmap2ldif", "--base", PEOPLE],
                input_text="".join("mv%d: domino.example.net\n" % i for i in range(1, 7)))
        assert p.returncode == 0, p.stderr
        S.add(p.stdout)

    def test_move_prints_ldif_without_apply(self):
        p = run(["move", "--to", "store-b.example.net", "--ldap-uri", S.uri, "--base", S.base,
                 "--bind-dn", S.root_dn, "-w", S.root_password, "mv1"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "dn: uid=mv1,%s\nchangetype: modify\nreplace: mailhost\n"
                                   "mailhost: store-b.example.net\n-\n\n" % PEOPLE)
        self.assertEqual(S.search("(uid=mv1)", ["mailHost"])[0]["mailHost"], ["domino.example.net"])

    def test_move_apply_without_daemon(self):
        conf = route_config(os.path.join(TMP, "move.conf"))
        self.assertEqual(lookup(conf, "mv2")["hosts"], [("domino.example.net", 143)])
        env = dict(os.environ, POSTERN=binary())
        p = run(["move", "--to", "store-b.example.net", "--apply", "--ldap-uri", S.uri,
                 "--base", S.base, "--bind-dn", S.root_dn, "-w", S.root_password, "mv2"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("no running postern to kick", p.stderr)
        self.assertNotIn(S.root_password, p.stdout + p.stderr)
        self.assertEqual(lookup(conf, "mv2")["hosts"], [("store-b.example.net", 143)])

    def test_move_apply_ctl_contract(self):
        # A stand-in for `postern ctl` with its exit codes: 2 = no daemon,
        # 1 = error, 0 = kicked; it records its arguments.
        stub = os.path.join(TMP, "postern-stub")
        log = os.path.join(TMP, "stub.log")
        with open(stub, "w") as f:
            f.write('#!/bin/sh\necho "$@" >> %s\ncase "$5" in mv3) exit 0;; '
                    'mv4) exit 2;; *) echo boom >&2; exit 1;; esac\n' % log)
        os.chmod(stub, 0o755)
        pwfile = os.path.join(TMP, "pw")
        with open(pwfile, "w") as f:
            f.write(S.root_password)
        p = run(["move", "--to", "store-a.example.net", "--apply", "--ldap-uri", S.uri,
                 "--base", S.base, "--bind-dn", S.root_dn, "-y", pwfile, "--control",
                 "/run/x.sock", "--postern", stub, "mv3", "mv4"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("mv3: kicked", p.stderr)
        self.assertIn("mv4: no running postern to kick", p.stderr)
        self.assertEqual(open(log).read(), "ctl -s /run/x.sock kick mv3\nctl -s /run/x.sock kick mv4\n")
        p = run(["move", "--to", "store-a.example.net", "--apply", "--ldap-uri", S.uri,
                 "--base", S.base, "--bind-dn", S.root_dn, "-y", pwfile, "--postern", stub,
                 "mv5"])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("kick failed", p.stderr)

    def test_move_apply_kicks_through_a_running_daemon(self):
        # The real `postern ctl` against a running postern's control socket.
        def config(ports):
            return """
daemon = { control = "%s/ctl.sock"; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
directory = { type = "ldap"; cache = { entries = 0; };
  ldap = { uri = "%s"; base = "%s"; scope = "one"; filter = "(uid=%%u)";
           bind_dn = "%s"; bind_password = "%s"; }; };
""" % (ports["dir"], ports["imap"], ports["pop3"], S.uri, PEOPLE, S.bind_dn, S.bind_password)
        d = Postern(config).start()
        try:
            sock = os.path.join(d.dir, "ctl.sock")
            p = run(["move", "--to", "store-a.example.net", "--apply", "--ldap-uri", S.uri,
                     "--base", S.base, "--bind-dn", S.root_dn, "-w", S.root_password,
                     "--control", sock, "--postern", binary(), "mv6"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("mv6: kicked", p.stderr)
            r = subprocess.run([binary(), "ctl", "-s", sock, "route", "mv6"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("store-a.example.net", r.stdout)
        finally:
            rc = d.stop()
            leaks = d.leaks()
            d.cleanup()
        self.assertEqual((rc, leaks), (0, ""))

    def test_move_unknown_user_fails(self):
        p = run(["move", "--to", "store-b.example.net", "--ldap-uri", S.uri, "--base", S.base,
                 "nobody-here"])
        self.assertEqual(p.returncode, 1)
        self.assertIn("no entry found", p.stderr)


if __name__ == "__main__":
    sys.exit(main(__name__))
