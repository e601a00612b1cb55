"""The quick-start demo: a throwaway slapd loaded from schema/ and ldif/,
three Dovecot stores (store-a, store-b and the old Domino server of the
migration scene), and postern routing between them -- all on loopback, in
temp dirs.  Clients may use STARTTLS or implicit TLS with a throwaway CA
made here.  Prints what to paste, and stops everything on Ctrl-C."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

from fixtures.common import free_ports  # noqa: E402
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from fixtures.slapd import Slapd, load_expected_routes  # noqa: E402

STORES = {"store-a.example.net": "127.0.0.1", "store-b.example.net": "127.0.0.3",
          "domino.example.net": "127.0.0.4"}

imap_port, pop3_port, imaps_port, pop3s_port = free_ports(4)


def step(text):
    print("demo: " + text, flush=True)


def throwaway_ca(d):
    """A CA and a certificate for 127.0.0.1 and localhost it signed."""
    def run(*args):
        subprocess.run(("openssl",) + args, cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=postern demo CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return [os.path.join(d, n) for n in ("ca.pem", "server.pem", "server.key")]


tls_dir = tempfile.mkdtemp(prefix="postern-demo-tls-")
step("making a throwaway CA and certificate in " + tls_dir)
ca, cert, key = throwaway_ca(tls_dir)
users = {h: {} for h in STORES}
ports = {h: set() for h in STORES}
for r in load_expected_routes():
    users[r.host][r.backend_user] = r.login.split("@")[0] + "-secret"
    if r.port:
        ports[r.host].add(r.port)
users["store-b.example.net"]["mike"] = "mike-secret"    # mid-move


def listeners(addr, extra):
    body = "".join("  inet_listener imap_%d {\n    address = %s\n    port = %d\n  }\n"
                   % (p, addr, p) for p in sorted(extra))
    return "service imap-login {\n%s}\n" % body if extra else ""


step("starting the Dovecot stores")
stores = [Dovecot(h.split(".")[0], users[h], host=a, imap_port=imap_port,
                  pop3_port=pop3_port, extra_config=listeners(a, ports[h])).start()
          for h, a in STORES.items()]
step("starting slapd with schema/ and ldif/")
slapd = Slapd().start()


def config(p):
    backends = ",\n  ".join('{ name = "%s"; addresses = "%s"; }' % x for x in STORES.items())
    return """
daemon = { threads = 2; log_level = "info"; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "starttls"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "starttls"; },
           { protocol = "imap"; address = "127.0.0.1:%d"; tls = "implicit"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "implicit"; } );
tls = { cert = "%s"; key = "%s"; };
directory = { type = "ldap";
  cache = { ttl = 5; negative_ttl = 5; };  # a move shows within seconds
  port_protocols = "imap";  # the entries' ports are IMAP ports
  ldap = { uri = "%s"; base = "%s"; bind_dn = "%s"; bind_password = "%s"; }; };
backends = ( %s );
backend = { imap_port = %d; pop3_port = %d; };
""" % (p["imap"], p["pop3"], imaps_port, pop3s_port, cert, key, slapd.uri,
       slapd.base, slapd.bind_dn, slapd.bind_password, backends, imap_port,
       pop3_port)


step("starting postern")
p = Postern(config).start()
print("""
postern is running: IMAP on 127.0.0.1:%(imap)d, POP3 on 127.0.0.1:%(pop3)d
(both offer STARTTLS), IMAPS on 127.0.0.1:%(imaps)d and POP3S on
127.0.0.1:%(pop3s)d (implicit TLS), routing the users of ldif/users.ldif
through slapd (%(ldap)s) to three Dovecot stores.  Every user's password
is <name>-secret.  The certificate is signed by a throwaway CA: %(ca)s

Read alice's mail through postern (she lives on store-a):
  curl -u alice:alice-secret 'imap://127.0.0.1:%(imap)d/INBOX;UID=1'
Carol is logged in to store-a under her backend name c.jones:
  curl -u carol:carol-secret 'imap://127.0.0.1:%(imap)d/INBOX;UID=1'
Kim over POP3 (store-b):
  curl -u kim:kim-secret pop3://127.0.0.1:%(pop3)d/1
Users whose entry pins a port (bob, dave, erin, heidi) read mail over POP3
too: directory.port_protocols = "imap" sends their POP3 to the same store's
POP3 port:
  curl -u bob:bob-secret pop3://127.0.0.1:%(pop3)d/

Over TLS: implicit, then STARTTLS (curl --ssl-reqd), then by hand:
  curl --cacert %(ca)s -u alice:alice-secret 'imaps://127.0.0.1:%(imaps)d/INBOX;UID=1'
  curl --cacert %(ca)s -u kim:kim-secret pop3s://127.0.0.1:%(pop3s)d/1
  curl --ssl-reqd --cacert %(ca)s -u alice:alice-secret 'imap://127.0.0.1:%(imap)d/INBOX;UID=1'
  openssl s_client -quiet -CAfile %(ca)s -verify_return_error -connect 127.0.0.1:%(imaps)d
  openssl s_client -quiet -CAfile %(ca)s -verify_return_error -starttls pop3 -connect 127.0.0.1:%(pop3)d
Ask the directory what postern would do:
  %(bin)s -c %(conf)s --lookup dave

Where mike lives now (the old Domino server):
  %(bin)s -c %(conf)s --lookup mike
Migrate mike from Domino to store-b with one attribute:
  ldapmodify -x -H %(ldap)s -D %(root)s -w %(rootpw)s -f ldif/move-mike.ldif
Then see the move: the same --lookup now says store-b.example.net, and his
next login (after the demo's 5 s route cache) lands on store-b:
  %(bin)s -c %(conf)s --lookup mike
  curl -u mike:mike-secret 'imap://127.0.0.1:%(imap)d/INBOX'
  grep 'login ok.*user=mike' %(log)s

Log: %(log)s    Ctrl-C stops everything.
""" % {"imap": p.imap_port, "pop3": p.pop3_port, "imaps": imaps_port,
       "pop3s": pop3s_port, "ca": ca, "ldap": slapd.uri,
       "bin": os.environ.get("POSTERN", "postern"), "conf": p.conf_path,
       "log": p.log_path, "root": slapd.root_dn, "rootpw": slapd.root_password},
      flush=True)

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
try:
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
finally:
    p.cleanup()
    slapd.cleanup()
    stop_all(*stores)
    shutil.rmtree(tls_dir, ignore_errors=True)
