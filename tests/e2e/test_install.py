"""End-to-end: `make install DESTDIR=...` from the build tree puts the
daemon, its manual pages, the example configuration, the schema and LDIF
files and the systemd unit where configure said; the unit passes
`systemd-analyze verify`, the pages format without groff warnings, and the
installed daemon reports its version, reads the default configuration path
and greets with daemon.greeting.

Run by `make check` (top_builddir comes from TESTS_ENVIRONMENT) or by hand:
    top_builddir=build python3 tests/e2e/test_install.py
"""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import make_tempdir, remove_tempdir  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from lib import Raw, main  # noqa: E402

SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("top_builddir") or os.path.join(SRCDIR, "build")
VARS = ("PACKAGE_VERSION", "sbindir", "sysconfdir", "pkgdatadir", "man5dir",
        "man8dir", "systemdsystemunitdir", "SYSTEMD_SERVICE_TYPE")
MAN_PAGES = (("man8dir", "postern.8"), ("man5dir", "postern.conf.5"),
             ("man8dir", "postern-ctl.8"))
SCHEMA = ("perdition.schema", "perdition.ldif", "perdition-nomisc.schema",
          "perdition-nomisc.ldif")
LDIF = ("README.md", "base.ldif", "users.ldif", "syncprov.ldif")

V = {}            # the build's installation variables, expanded
DEST = None       # DESTDIR of the install every test looks at


def make_env() -> dict:
    """The environment for a nested make: not the outer make's jobserver."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR"):
        env.pop(k, None)
    env["LC_ALL"] = "C"
    return env


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", BUILDDIR] + list(args), env=make_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)


def build_vars() -> dict:
    """Ask the build's Makefile for the expanded installation directories."""
    rule = "_postern_print_vars:\n" + "".join(
        "\t@echo '%s=$(%s)'\n" % (v, v) for v in VARS)
    res = subprocess.run(["make", "-s", "--no-print-directory", "-C", BUILDDIR,
                          "-f", "Makefile", "-f", "-", "_postern_print_vars"],
                         input=rule, env=make_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError("cannot read the build's variables: " + res.stderr)
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


def install(dest: str) -> None:
    res = make("install", "DESTDIR=" + dest)
    if res.returncode != 0:
        raise AssertionError("make install DESTDIR=%s failed:\n%s" % (dest, res.stdout[-4000:]))


def dpath(var: str, *names: str, dest: str = None) -> str:
    """Where the installed file is under DESTDIR."""
    return os.path.join(dest or DEST, V[var].lstrip("/"), *names)


def setUpModule():
    global DEST
    if not os.path.exists(os.path.join(BUILDDIR, "Makefile")):
        raise unittest.SkipTest("no configured build tree at %s" % BUILDDIR)
    V.update(build_vars())
    DEST = make_tempdir("postern-install-")
    install(DEST)


def tearDownModule():
    remove_tempdir(DEST)


class InstalledFiles(unittest.TestCase):
    def test_binary(self):
        path = dpath("sbindir", "postern")
        self.assertTrue(os.access(path, os.X_OK), path)

    def test_man_pages(self):
        for var, page in MAN_PAGES:
            with self.subTest(page=page):
                self.assertTrue(os.path.isfile(dpath(var, page)), dpath(var, page))

    def test_example_config(self):
        path = dpath("sysconfdir", "postern", "postern.conf")
        self.assertTrue(os.path.isfile(path), path)
        self.assertTrue(filecmp.cmp(path, os.path.join(SRCDIR, "config", "postern.conf"),
                                    shallow=False))

    def test_schema_and_ldif(self):
        for name in SCHEMA:
            with self.subTest(name=name):
                self.assertTrue(os.path.isfile(dpath("pkgdatadir", "schema", name)))
        for name in LDIF:
            with self.subTest(name=name):
                self.assertTrue(os.path.isfile(dpath("pkgdatadir", "ldif", name)))

    def test_unit(self):
        path = dpath("systemdsystemunitdir", "postern.service")
        with open(path, encoding="utf-8") as f:
            unit = f.read()
        self.assertIn("\nExecStart=%s/postern -c %s/postern/postern.conf\n"
                      % (V["sbindir"], V["sysconfdir"]), unit)
        self.assertIn("\nType=%s\n" % V["SYSTEMD_SERVICE_TYPE"], unit)
        self.assertIn("\nExecReload=/bin/kill -HUP $MAINPID\n", unit)
        self.assertIn("\nRuntimeDirectory=postern\n", unit)
        self.assertIn("\nRestart=on-failure\n", unit)
        self.assertNotRegex(unit, r"@[A-Za-z_]+@", "an unsubstituted @VAR@")


class Unit(unittest.TestCase):
    def test_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if tool is None:
            self.skipTest("SKIP systemd-analyze verify: systemd-analyze is not "
                          "installed (apt-get install systemd)")
        # The unit names the final path of the binary; point it at the copy
        # under DESTDIR so that verify can check that it is executable, and
        # let man(1) find the pages Documentation= names.
        tmp = make_tempdir("postern-unit-")
        try:
            with open(dpath("systemdsystemunitdir", "postern.service"), encoding="utf-8") as f:
                unit = f.read()
            unit = unit.replace(V["sbindir"] + "/postern", dpath("sbindir", "postern"))
            path = os.path.join(tmp, "postern.service")
            with open(path, "w", encoding="utf-8") as f:
                f.write(unit)
            env = dict(os.environ, MANPATH=os.path.join(DEST, V["man8dir"].lstrip("/"), ".."),
                       SYSTEMD_LOG_LEVEL="notice")
            res = subprocess.run([tool, "verify", path], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=60)
            out = res.stdout.strip()
            if res.returncode != 0 and ("Failed to connect to bus" in out or
                                        "Failed to initialize manager" in out or
                                        "System has not been booted with systemd" in out):
                self.skipTest("SKIP systemd-analyze verify: no usable systemd here: " + out)
            self.assertEqual(res.returncode, 0, out)
            self.assertEqual(out, "", "systemd-analyze verify complained")
        finally:
            remove_tempdir(tmp)


class ManPages(unittest.TestCase):
    def test_no_groff_warnings(self):
        if shutil.which("man") is None or shutil.which("groff") is None:
            self.skipTest("SKIP man --warnings: man-db or groff is not installed "
                          "(apt-get install man-db groff-base)")
        env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MAN_DISABLE_SECCOMP="1")
        for var, page in MAN_PAGES:
            with self.subTest(page=page):
                res = subprocess.run(["man", "--warnings", "-l", dpath(var, page)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, timeout=60)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(res.stderr, "", "groff warnings in %s" % page)
                self.assertIn("postern", res.stdout)


class Binary(unittest.TestCase):
    def run_postern(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        return subprocess.run([dpath("sbindir", "postern")] + list(args), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=60)

    def test_version(self):
        res = self.run_postern("--version")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(res.stdout.startswith("postern %s\n" % V["PACKAGE_VERSION"]), res.stdout)
        for word in ("OpenSSL", "libldap", "libconfig", "Cyrus SASL", "systemd=",
                     "sanitizers=", "fuzzing="):
            self.assertIn(word, res.stdout)

    def test_default_config_path(self):
        default = V["sysconfdir"] + "/postern/postern.conf"
        res = self.run_postern("--help")
        self.assertEqual(res.returncode, 0)
        self.assertIn(default, res.stdout)
        if os.path.exists(default):
            self.skipTest("SKIP the missing-file error: %s exists on this system" % default)
        # No -c: the compiled-in path, named in the error.
        res = self.run_postern()
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("%s:0: No such file or directory" % default, res.stderr)
        res = self.run_postern("--check-config")
        self.assertEqual(res.returncode, 1)
        self.assertIn(default, res.stderr)
        res = self.run_postern("ctl", "stats")
        self.assertEqual(res.returncode, 2)
        self.assertIn(default, res.stderr)


class ConfigOnReinstall(unittest.TestCase):
    def test_existing_config_kept_and_uninstall(self):
        dest = make_tempdir("postern-reinstall-")
        try:
            install(dest)
            conf = dpath("sysconfdir", "postern", "postern.conf", dest=dest)
            with open(conf, "a", encoding="utf-8") as f:
                f.write("# edited by the administrator\n")
            install(dest)
            with open(conf, encoding="utf-8") as f:
                self.assertIn("# edited by the administrator", f.read())
            res = make("uninstall", "DESTDIR=" + dest)
            self.assertEqual(res.returncode, 0, res.stdout[-4000:])
            left = sorted(os.path.relpath(os.path.join(d, n), dest)
                          for d, _, names in os.walk(dest) for n in names)
            # Only the administrator's edited file survives.
            self.assertEqual(left, [os.path.relpath(conf, dest)])
            os.unlink(conf)
            install(dest)
            make("uninstall", "DESTDIR=" + dest)
            left = [n for _, _, names in os.walk(dest) for n in names]
            self.assertEqual(left, [], "uninstall left files behind")
        finally:
            remove_tempdir(dest)


def greeting_config(greeting):
    def render(p: dict) -> str:
        daemon = 'greeting = "%s";' % greeting if greeting is not None else ""
        return """
daemon = { threads = 1; %s };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; } );
directory = { type = "file"; file = { path = "%s"; }; };
""" % (daemon, p["imap"], p["pop3"], p["popmap"])
    return render


class Greeting(unittest.TestCase):
    def greetings(self, greeting):
        with Postern(greeting_config(greeting), popmap="alice 127.0.0.1\n") as p:
            imap = Raw(p.imap_port)
            pop3 = Raw(p.pop3_port)
            try:
                return imap.line(), pop3.line()
            finally:
                imap.close()
                pop3.close()

    def test_configured(self):
        imap, pop3 = self.greetings("Mail gate of example.org at your service")
        self.assertRegex(imap, rb"^\* OK \[CAPABILITY IMAP4rev1 [^\]]*\] "
                         rb"Mail gate of example\.org at your service\r\n$")
        self.assertEqual(pop3, b"+OK Mail gate of example.org at your service\r\n")

    def test_default_is_neutral(self):
        imap, pop3 = self.greetings(None)
        self.assertRegex(imap, rb"^\* OK \[CAPABILITY [^\]]*\] ready\.\r\n$")
        self.assertEqual(pop3, b"+OK ready.\r\n")
        for line in (imap, pop3):
            self.assertNotIn(b"postern", line.lower())
            self.assertNotIn(V["PACKAGE_VERSION"].encode(), line)


class Notify(unittest.TestCase):
    """sd_notify(3): READY=1 with the listeners up, RELOADING=1 and READY=1
    around SIGHUP, STOPPING=1 on SIGTERM; a socket stands in for systemd."""

    def test_notify_protocol(self):
        res = subprocess.run([dpath("sbindir", "postern"), "--version"],
                             stdout=subprocess.PIPE, text=True, timeout=60)
        if "systemd=yes" not in res.stdout:
            self.skipTest("SKIP sd_notify: built without libsystemd (systemd=no)")
        tmp = make_tempdir("postern-notify-")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = os.path.join(tmp, "notify")
        sock.bind(path)
        sock.settimeout(20)
        old = os.environ.get("NOTIFY_SOCKET")
        os.environ["NOTIFY_SOCKET"] = path
        p = Postern(greeting_config(None), popmap="alice 127.0.0.1\n")
        try:
            p.start()
            os.environ.pop("NOTIFY_SOCKET")

            def message() -> str:
                return sock.recv(4096).decode()

            # The ports accepted before READY=1 is read, so it came first.
            self.assertIn("READY=1", message())
            p.reload()
            self.assertIn("RELOADING=1", message())
            self.assertIn("READY=1", message())
            p.proc.send_signal(signal.SIGTERM)
            self.assertIn("STOPPING=1", message())
            self.assertEqual(p.stop(), 0, p.log())
        finally:
            if old is not None:
                os.environ["NOTIFY_SOCKET"] = old
            else:
                os.environ.pop("NOTIFY_SOCKET", None)
            p.cleanup()
            sock.close()
            remove_tempdir(tmp)


if __name__ == "__main__":
    sys.exit(main(__name__))
