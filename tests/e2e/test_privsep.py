"""End-to-end privilege separation: with daemon.user set and started as
root, postern is a privileged parent (pid file, port 993, root-only 0600
TLS key, LDAP bind password file and configuration) and a serving child
that runs as nobody with no capabilities.  SIGHUP to the parent and
`postern ctl reload` bring a new certificate and a new LDAP password to
the child; bounds and broken files fail the reload and keep the running
generation; either process dying ends the other; SIGTERM stops both and
removes the pid file.
"""

from __future__ import annotations

import hashlib
import imaplib
import os
import pwd
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
from fixtures.postern import Postern, binary  # noqa: E402
from fixtures.slapd import Slapd  # noqa: E402
from lib import main  # noqa: E402

USER = "nobody"
TLS_ADDR = loopback(9)
TLS_PORT = 993
STORE_HOST = "store-a.example.net"

S = STORE = P = None
CA = CERT2 = CERT3 = None
TMP = SECRET = None
IMAP_PORT = POP3_PORT = None


def secret_path(name: str) -> str:
    return os.path.join(SECRET, name)


def write_secret(name: str, data: bytes) -> None:
    """A root-owned 0600 file, replaced in place."""
    path = secret_path(name)
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chown(tmp, 0, 0)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def install_cert(bundle) -> None:
    with open(bundle.cert, "rb") as f:
        write_secret("tls.crt", f.read())
    with open(bundle.key, "rb") as f:
        write_secret("tls.key", f.read())


def fingerprint_of(path: str) -> str:
    der = ssl.PEM_cert_to_DER_cert(open(path).read())
    return hashlib.sha256(der).hexdigest()


def config(extra_daemon: str = "", directory: str = None, tls_listener: bool = True,
           cert: str = "tls.crt"):
    def render(p: dict) -> str:
        listeners = ['{ protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; }'
                     % p["imap"],
                     '{ protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; }'
                     % p["pop3"]]
        if tls_listener:
            listeners.append('{ protocol = "imap"; address = "%s:%d"; tls = "implicit"; }'
                             % (TLS_ADDR, TLS_PORT))
        return """
daemon = { threads = 2; log_level = "info"; drain = 2; user = "%(user)s";
           pid_file = "%(dir)s/postern.pid"; control = "%(dir)s/control"; %(extra)s };
timeouts = { login = 30; connect = 3; lookup = 3; };
limits = { throttle = false; };
tls = { cert = "%(cert)s"; key = "%(key)s"; };
listen = ( %(listen)s );
directory = %(directory)s;
backends = ( { name = "%(host)s"; addresses = "%(addr)s"; } );
backend = { imap_port = %(b_imap)d; pop3_port = %(b_pop3)d;
            master_password_file = "%(master)s"; };
""" % dict(user=USER, dir=p["dir"], extra=extra_daemon, cert=secret_path(cert),
           key=secret_path("tls.key"), listen=",\n  ".join(listeners),
           directory=directory or """{
  type = "ldap";
  cache = { ttl = 0; negative_ttl = 0; entries = 0; negative_entries = 0; };
  ldap = { uri = "%s"; base = "%s"; bind_dn = "%s";
           bind_password_file = "%s"; timeout = 3; pool = 2; };
}""" % (S.uri, S.base, S.bind_dn, secret_path("ldap.pw")),
           host=STORE_HOST, addr=loopback(1), b_imap=IMAP_PORT, b_pop3=POP3_PORT,
           master=secret_path("master.pw"))
    return render


def children(pid: int) -> list:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def status(pid: int) -> dict:
    with open("/proc/%d/status" % pid) as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)


def wait_for(pred, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def tls_fingerprint() -> str:
    ctx = ssl.create_default_context(cafile=CA.ca_cert)
    ctx.check_hostname = False
    with socket.create_connection((TLS_ADDR, TLS_PORT), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def fingerprint_now() -> str:
    try:
        return tls_fingerprint()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        return status(pid)["State"][0] != "Z"
    except (OSError, KeyError):
        return False


def tls_login(user: str = "alice", pw: str = "alice-secret") -> bool:
    ctx = ssl.create_default_context(cafile=CA.ca_cert)
    ctx.check_hostname = False
    m = imaplib.IMAP4_SSL(TLS_ADDR, TLS_PORT, ssl_context=ctx, timeout=15)
    try:
        m.login(user, pw)
        m.select("INBOX")
        _, data = m.fetch("1", "(BODY[])")
        return STORE.welcome_line.encode() in data[0][1]
    finally:
        try:
            m.logout()
        except Exception:  # noqa: BLE001
            pass


def ctl(p: Postern, *args) -> subprocess.CompletedProcess:
    return subprocess.run([binary(), "ctl", "-s", os.path.join(p.dir, "control")]
                          + list(args), capture_output=True, text=True, timeout=60)


def set_ldap_password(pw: str) -> None:
    S.modify("dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n"
             % (S.bind_dn, pw))
    write_secret("ldap.pw", (pw + "\n").encode())


def setUpModule():
    global S, STORE, P, CA, CERT2, CERT3, TMP, SECRET, IMAP_PORT, POP3_PORT
    try:
        pwd.getpwnam(USER)
    except KeyError:
        raise unittest.SkipTest("no user %s" % USER)
    TMP = make_tempdir("postern-privsep-")
    SECRET = os.path.join(TMP, "secret")
    os.mkdir(SECRET, 0o700)
    CA = make_test_ca(TMP, ["localhost", TLS_ADDR])
    CERT2 = make_server_cert(CA, TMP, ["localhost", TLS_ADDR], stem="second")
    CERT3 = make_server_cert(CA, TMP, ["localhost", TLS_ADDR], stem="third")
    install_cert(CA)
    IMAP_PORT, POP3_PORT = free_ports(2)
    STORE = Dovecot("store-a", {"alice": "alice-secret"}, host=loopback(1),
                    imap_port=IMAP_PORT, pop3_port=POP3_PORT).start()
    S = Slapd().start()
    write_secret("ldap.pw", (S.bind_password + "\n").encode())
    write_secret("master.pw", b"master-secret\n")
    P = Postern(config()).start()
    os.chmod(P.conf_path, 0o600)


def tearDownModule():
    for x in (P, S):
        if x is not None:
            x.cleanup()
    if STORE is not None:
        stop_all(STORE)
    remove_tempdir(TMP)


def child_of(p: Postern) -> int:
    """The serving child, once it has started (the listeners accept before:
    the parent bound them)."""
    assert wait_for(lambda: len(children(p.proc.pid)) == 1 and
                    " started: " in p.log()), "no serving child:\n" + p.log()
    return children(p.proc.pid)[0]


class A_Start(unittest.TestCase):
    def test_secrets_are_root_only(self):
        for name in ("tls.key", "ldap.pw", "master.pw"):
            st = os.stat(secret_path(name))
            self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o600))
        self.assertEqual(os.stat(P.conf_path).st_mode & 0o777, 0o600)

    def test_pid_file_holds_the_parent(self):
        path = os.path.join(P.dir, "postern.pid")
        self.assertTrue(wait_for(lambda: os.path.exists(path)))
        with open(path) as f:
            self.assertEqual(int(f.read().strip()), P.proc.pid)
        self.assertEqual(status(P.proc.pid)["Uid"].split()[0], "0")

    def test_child_runs_as_the_user_without_capabilities(self):
        child = child_of(P)
        st = status(child)
        uid = pwd.getpwnam(USER).pw_uid
        gid = pwd.getpwnam(USER).pw_gid
        self.assertEqual(st["Uid"].split(), [str(uid)] * 4)
        self.assertEqual(st["Gid"].split(), [str(gid)] * 4)
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            self.assertEqual(int(st[cap], 16), 0, cap)
        self.assertNotIn(" 0", " " + st["Groups"])
        # Not dumpable: its /proc entries stay root's, out of the user's reach.
        self.assertEqual(os.stat("/proc/%d/mem" % child).st_uid, 0)

    def test_the_child_serves_the_sessions(self):
        m = imaplib.IMAP4("127.0.0.1", P.imap_port, timeout=15)
        try:
            m.login("alice", "alice-secret")
        finally:
            m.logout()
        self.assertIn("serving as %s" % USER, P.log())

    def test_login_over_tls_on_a_low_port(self):
        self.assertEqual(tls_fingerprint(), fingerprint_of(CA.cert))
        self.assertTrue(tls_login())


class B_Reload(unittest.TestCase):
    def test_1_sighup_brings_a_new_certificate_and_password(self):
        install_cert(CERT2)
        set_ldap_password("rotated-1")
        os.kill(P.proc.pid, signal.SIGHUP)
        want = fingerprint_of(CERT2.cert)
        self.assertTrue(wait_for(lambda: fingerprint_now() == want), P.log())
        # No route cache: this lookup binds with the new password.
        self.assertTrue(tls_login())
        self.assertIn("configuration reloaded", P.log())

    def test_2_ctl_reload(self):
        install_cert(CERT3)
        set_ldap_password("rotated-2")
        r = ctl(P, "reload")
        self.assertEqual(r.returncode, 0, r.stderr + P.log())
        self.assertEqual(tls_fingerprint(), fingerprint_of(CERT3.cert))
        self.assertTrue(tls_login())

    def test_3_sighup_to_the_child_goes_through_the_parent(self):
        before = P.log().count("privsep: reading")
        os.kill(child_of(P), signal.SIGHUP)
        self.assertTrue(wait_for(lambda: P.log().count("privsep: reading") > before))
        self.assertTrue(wait_for(lambda: P.log().count("configuration reloaded") >= 3))
        self.assertTrue(tls_login())

    def test_4_broken_key_keeps_the_running_generation(self):
        good = open(secret_path("tls.key"), "rb").read()
        write_secret("tls.key", b"not a key\n")
        try:
            r = ctl(P, "reload")
            self.assertEqual(r.returncode, 1)
            self.assertIn("tls.key", r.stderr)
            self.assertEqual(tls_fingerprint(), fingerprint_of(CERT3.cert))
            self.assertTrue(tls_login())
        finally:
            write_secret("tls.key", good)

    def test_5_key_over_the_file_bound(self):
        good = open(secret_path("tls.key"), "rb").read()
        write_secret("tls.key", good + b"#" * (1024 * 1024))
        try:
            r = ctl(P, "reload")
            self.assertEqual(r.returncode, 1)
            self.assertIn("too large", r.stderr)
            self.assertTrue(tls_login())
        finally:
            write_secret("tls.key", good)

    def test_6_missing_password_file(self):
        os.unlink(secret_path("ldap.pw"))
        try:
            r = ctl(P, "reload")
            self.assertEqual(r.returncode, 1)
            self.assertIn("bind_password_file", r.stderr)
            self.assertIn("No such file", r.stderr)
        finally:
            write_secret("ldap.pw", b"rotated-2\n")
        self.assertEqual(ctl(P, "reload").returncode, 0)
        self.assertTrue(tls_login())


class B_Reload_Master(unittest.TestCase):
    def test_master_password_file_is_read_by_the_parent(self):
        # The loader's own read (backend.master_password_file) goes through
        # the parent too: root-only, it reloads; gone, the reason names it.
        self.assertEqual(ctl(P, "reload").returncode, 0)
        os.unlink(secret_path("master.pw"))
        try:
            r = ctl(P, "reload")
            self.assertEqual(r.returncode, 1)
            self.assertIn("master_password_file", r.stderr)
            self.assertIn("No such file", r.stderr)
        finally:
            write_secret("master.pw", b"master-secret\n")
        self.assertEqual(ctl(P, "reload").returncode, 0)
        self.assertTrue(tls_login())


def file_config(p: dict, cert: str = "tls.crt") -> str:
    return config(directory='{ type = "file"; file = { path = "%s"; }; }'
                  % p["popmap"], tls_listener=False, cert=cert)(p)


def big_cert_config(p: dict) -> str:
    return file_config(p, cert="big.crt")


class C_Peers(unittest.TestCase):
    """Each process dying ends the other; the pid file goes."""

    def start(self) -> Postern:
        p = Postern(file_config, popmap="alice %s\n" % STORE_HOST).start()
        self.addCleanup(p.cleanup)
        return p

    def test_child_killed_ends_the_parent(self):
        p = self.start()
        pidfile = os.path.join(p.dir, "postern.pid")
        os.kill(child_of(p), signal.SIGKILL)
        p.proc.wait(10)
        self.assertEqual(p.proc.returncode, 128 + signal.SIGKILL)
        self.assertFalse(os.path.exists(pidfile))
        self.assertFalse(os.path.exists(os.path.join(p.dir, "control")))

    def test_parent_killed_ends_the_child(self):
        p = self.start()
        child = child_of(p)
        p.proc.kill()
        p.proc.wait(10)
        self.assertTrue(wait_for(lambda: not alive(child), 15),
                        p.log())
        self.assertIn("draining", p.log())

    def test_stopped_child_does_not_hold_the_parent(self):
        # A message larger than the socket buffer waits in the parent while
        # the child is stopped; the parent still takes signals.
        with open(CA.cert, "rb") as f:
            write_secret("big.crt", f.read() + b"# padding\n" * 90000)
        p = Postern(big_cert_config, popmap="alice %s\n" % STORE_HOST).start()
        self.addCleanup(p.cleanup)
        child = child_of(p)
        # Stopped during a reload: the files arrive when it goes on.
        os.kill(child, signal.SIGSTOP)
        try:
            os.kill(p.proc.pid, signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "privsep: reading" in p.log()))
            time.sleep(0.5)
            self.assertNotIn("configuration reloaded", p.log())
        finally:
            os.kill(child, signal.SIGCONT)
        self.assertTrue(wait_for(lambda: "configuration reloaded" in p.log()), p.log())
        # Stopped with a message pending: SIGTERM still goes through.
        os.kill(child, signal.SIGSTOP)
        try:
            os.kill(p.proc.pid, signal.SIGHUP)
            self.assertTrue(wait_for(lambda: p.log().count("privsep: reading") == 2))
            os.kill(p.proc.pid, signal.SIGTERM)
            self.assertTrue(wait_for(lambda: "passing it to the child" in p.log()),
                            p.log())
        finally:
            os.kill(child, signal.SIGCONT)
        p.proc.wait(20)
        self.assertEqual(p.proc.returncode, 0, p.log())
        self.assertEqual(p.leaks(), "")

    def test_stopped_parent_does_not_hold_the_sessions(self):
        p = self.start()
        child = child_of(p)
        os.kill(p.proc.pid, signal.SIGSTOP)
        try:
            m = imaplib.IMAP4("127.0.0.1", p.imap_port, timeout=15)
            m.login("alice", "alice-secret")
            m.logout()
            # The child's request waits in the socketpair for the parent.
            os.kill(child, signal.SIGHUP)
            time.sleep(0.5)
            self.assertNotIn("privsep: reading", p.log())
        finally:
            os.kill(p.proc.pid, signal.SIGCONT)
        self.assertTrue(wait_for(lambda: "configuration reloaded" in p.log()), p.log())
        self.assertEqual(p.stop(), 0, p.log())

    def test_sigint_stops_both(self):
        p = self.start()
        child = child_of(p)
        self.assertEqual(p.stop(signal.SIGINT), 0, p.log())
        self.assertFalse(alive(child))
        self.assertEqual(p.leaks(), "")


class D_Notify(unittest.TestCase):
    """sd_notify states come from the parent, the unit's main process."""

    def test_states_are_sent_by_the_parent(self):
        res = subprocess.run([binary(), "--version"], stdout=subprocess.PIPE,
                             text=True, timeout=60)
        if "systemd=yes" not in res.stdout:
            self.skipTest("built without libsystemd")
        tmp = make_tempdir("postern-notify-")
        self.addCleanup(remove_tempdir, tmp)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        path = os.path.join(tmp, "notify")
        sock.bind(path)
        os.chmod(path, 0o600)       # root's only: the child could not send
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.settimeout(20)
        os.environ["NOTIFY_SOCKET"] = path
        try:
            p = Postern(file_config, popmap="alice %s\n" % STORE_HOST).start()
        finally:
            os.environ.pop("NOTIFY_SOCKET")
        self.addCleanup(p.cleanup)

        def message():
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(payload[:4], sys.byteorder)
            return data.decode(), pid

        self.assertEqual(message(), ("READY=1", p.proc.pid))
        p.reload()
        self.assertEqual(message(), ("RELOADING=1", p.proc.pid))
        self.assertEqual(message(), ("READY=1", p.proc.pid))
        ctl(p, "reload")
        self.assertEqual(message(), ("RELOADING=1", p.proc.pid))
        self.assertEqual(message(), ("READY=1", p.proc.pid))
        p.proc.send_signal(signal.SIGTERM)
        self.assertEqual(message(), ("STOPPING=1", p.proc.pid))
        self.assertEqual(p.stop(), 0, p.log())


class Z_Stop(unittest.TestCase):
    def test_sigterm_stops_both_and_removes_the_pid_file(self):
        child = child_of(P)
        pidfile = os.path.join(P.dir, "postern.pid")
        self.assertEqual(P.stop(), 0, P.log())
        self.assertFalse(alive(child))
        self.assertFalse(os.path.exists(pidfile))
        self.assertFalse(os.path.exists(os.path.join(P.dir, "control")))
        self.assertEqual(P.leaks(), "", P.log())


if __name__ == "__main__":
    sys.exit(main(__name__))
