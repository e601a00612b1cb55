"""The quick-start demo: a throwaway slapd loaded from schema/ and ldif/,
three Dovecot stores (store-a, store-b and the old Domino server of the
migration scene), and postern routing between them -- all on loopback, in
temp dirs.  Prints what to paste, and stops everything on Ctrl-C."""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

from fixtures.common import free_ports  # noqa: E402
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from fixtures.slapd import Slapd, load_expected_routes  # noqa: E402

STORES = {"store-a.example.net": "127.0.0.1", "store-b.example.net": "127.0.0.3",
          "domino.example.net": "127.0.0.4"}

imap_port, pop3_port = free_ports(2)
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


stores = [Dovecot(h.split(".")[0], users[h], host=a, imap_port=imap_port,
                  pop3_port=pop3_port, extra_config=listeners(a, ports[h])).start()
          for h, a in STORES.items()]
slapd = Slapd().start()


def config(p):
    backends = ",\n  ".join('{ name = "%s"; addresses = "%s"; }' % x for x in STORES.items())
    return """
daemon = { threads = 2; log_level = "info"; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
directory = { type = "ldap";
  ldap = { uri = "%s"; base = "%s"; bind_dn = "%s"; bind_password = "%s"; }; };
backends = ( %s );
backend = { imap_port = %d; pop3_port = %d; };
""" % (p["imap"], p["pop3"], slapd.uri, slapd.base, slapd.bind_dn,
       slapd.bind_password, backends, imap_port, pop3_port)


p = Postern(config).start()
print("""
postern is running: IMAP on 127.0.0.1:%(imap)d, POP3 on 127.0.0.1:%(pop3)d,
routing the users of ldif/users.ldif through slapd (%(ldap)s) to three
Dovecot stores.  Every user's password is <name>-secret.

Read alice's mail through postern (she lives on store-a):
  curl -u alice:alice-secret 'imap://127.0.0.1:%(imap)d/INBOX;UID=1'
Carol is logged in to store-a under her backend name c.jones:
  curl -u carol:carol-secret 'imap://127.0.0.1:%(imap)d/INBOX;UID=1'
Kim over POP3 (store-b):
  curl -u kim:kim-secret pop3://127.0.0.1:%(pop3)d/1
Ask the directory what postern would do:
  %(bin)s -c %(conf)s --lookup dave

Migrate mike from Domino to store-b with one attribute:
  ldapmodify -x -H %(ldap)s -D %(root)s -w %(rootpw)s -f ldif/move-mike.ldif

Log: %(log)s    Ctrl-C stops everything.
""" % {"imap": p.imap_port, "pop3": p.pop3_port, "ldap": slapd.uri,
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
