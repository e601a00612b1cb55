"""The quick-start demo: two Dovecot stores, postern routing between them
by the file map, all on loopback in temp dirs.  Prints what to paste."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

from fixtures.common import free_ports  # noqa: E402
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.postern import Postern  # noqa: E402

imap_port, pop3_port = free_ports(2)
a = Dovecot("store-a", {"alice@example.org": "alice-pw"}, host="127.0.0.1",
            imap_port=imap_port, pop3_port=pop3_port).start()
b = Dovecot("store-b", {"bob@example.org": "bob-pw"}, host="127.0.0.3",
            imap_port=imap_port, pop3_port=pop3_port).start()


def config(p):
    return """
daemon = { threads = 2; log_level = "info"; };
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none"; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none"; } );
username = { default_domain = "example.org"; };
directory = { type = "file"; file = { path = "%s"; }; };
backend = { imap_port = %d; pop3_port = %d; };
""" % (p["imap"], p["pop3"], p["popmap"], imap_port, pop3_port)


p = Postern(config, popmap="alice@example.org %s\nbob@example.org %s\n"
            % (a.host, b.host)).start()
print("""
postern is running: IMAP on 127.0.0.1:%(imap)d, POP3 on 127.0.0.1:%(pop3)d
  alice (password alice-pw) lives on store-a, bob (bob-pw) on store-b.

Read alice's mail through postern:
  curl -u alice:alice-pw 'imap://127.0.0.1:%(imap)d/INBOX;UID=1'
Or bob's, over POP3:
  curl -u bob:bob-pw pop3://127.0.0.1:%(pop3)d/1

Config: %(conf)s   Map: %(map)s   Log: %(log)s
Ctrl-C stops postern and both stores.
""" % {"imap": p.imap_port, "pop3": p.pop3_port, "conf": p.conf_path,
       "map": p.popmap_path, "log": p.log_path}, flush=True)

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
try:
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
except KeyboardInterrupt:
    pass
finally:
    p.cleanup()
    stop_all(a, b)
