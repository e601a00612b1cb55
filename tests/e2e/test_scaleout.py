"""End-to-end: scale-out (doc/scale-out.md), as tested.

    client (CLIENT) -> HAProxy (send-proxy-v2, roundrobin, checks)
                        -> postern A, postern B (search mode, route cache)
                             -> LDAP: the consumer first, the provider second
                             -> Dovecot store-a / store-b (IMAP ID, XCLIENT)

An OpenLDAP provider with syncprov and a consumer replicating from it
(syncrepl refreshAndPersist); two postern instances whose
directory.ldap.uri lists the consumer, then the provider; two real Dovecot
stores that trust postern's forwarded client address; HAProxy in TCP mode
in front, sending PROXY v2 to both instances.  Clients connect to HAProxy
from their own loopback address, CLIENT, and the stores must log THAT
address.

Scenarios, in order (classes run alphabetically):
  A  logins through HAProxy land on the right store, both instances serve,
     the stores log CLIENT, the consumer answers the lookups;
  B  a route changed on the provider (consumer up) reaches the consumer
     by syncrepl and both instances within the route cache's ttl;
  C  the consumer stops: both instances fail over to the provider and
     logins go on; a change made meanwhile is routed at once; the consumer
     comes back, resyncs, and the instances fail back to it;
  D  the consumer hangs: each pooled connection to it costs at most one
     login (a temporary failure at directory.ldap.timeout), then the
     instance answers from the provider;
  E  postern A stops (SIGTERM): once HAProxy's check marks it down, every
     login goes through B.
Only waits poll; nothing asserts how long anything took.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import poplib
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures.common import (free_ports, loopback, make_tempdir,  # noqa: E402
                             remove_tempdir)
from fixtures.dovecot import Dovecot, stop_all  # noqa: E402
from fixtures.postern import Postern  # noqa: E402
from fixtures.slapd import Slapd, load_expected_routes  # noqa: E402
from lib import HAProxy, Raw, main, proxy_v2  # noqa: E402

STORES = {"store-a.example.net": loopback(1), "store-b.example.net": loopback(3)}
LB_SOURCE = loopback(9)     # HAProxy's source towards postern: the one trusted
FRONT = loopback(8)         # HAProxy's listeners
CLIENT = loopback(20)       # where the clients come from
ROUTES = {r.login: r for r in load_expected_routes() if r.host in STORES and not r.port}
CACHE_TTL = 2               # seconds; bounds how late a route change is seen
FAILBACK = 2                # seconds on the provider before the consumer again
CHECK_MS = 300              # HAProxy's check interval
POOL = 2                    # directory.ldap.pool
PATIENCE = 20               # the longest any poll waits, for slow CI
GHOSTS = itertools.count()  # logins nobody has

PROVIDER = CONSUMER = None
P = {}                      # "a", "b" -> Postern
STORE = {}                  # host name -> Dovecot
LB = None
TMP = None
FRONT_IMAP = FRONT_POP3 = None
IMAP_PORT = POP3_PORT = None


def password(login: str) -> str:
    return login.split("@")[0] + "-secret"


def postern_config(p: dict) -> str:
    backends = ",\n  ".join(
        '{ name = "%s"; addresses = "%s"; xclient = true; }' % (n, a)
        for n, a in STORES.items())
    return """
daemon = { threads = 2; log_level = "info"; drain = 2; };
timeouts = { login = 30; connect = 3; lookup = 3; };
limits = { auth_failures = 10; throttle = false; };  # one client address
listen = ( { protocol = "imap"; address = "127.0.0.1:%d"; tls = "none";
             proxy_protocol = true; },
           { protocol = "pop3"; address = "127.0.0.1:%d"; tls = "none";
             proxy_protocol = true; } );
proxy = { trusted_networks = [ "%s/32" ]; };
directory = {
  type = "ldap";
  cache = { ttl = %d; negative_ttl = %d; serve_stale = false; };
  ldap = { uri = "%s %s"; base = "%s"; bind_dn = "%s"; bind_password = "%s";
           pool = %d; timeout = 2; failback = %d; };
};
backends = ( %s );
backend = { imap_port = %d; pop3_port = %d; };
""" % (p["imap"], p["pop3"], LB_SOURCE, CACHE_TTL, CACHE_TTL, CONSUMER.uri,
       PROVIDER.uri, PROVIDER.base, PROVIDER.bind_dn, PROVIDER.bind_password,
       POOL, FAILBACK, backends, IMAP_PORT, POP3_PORT)


HAPROXY_CFG = """global
    log stderr format raw local0 info
    stats socket %%(sock)s mode 600 level admin
defaults
    mode tcp
    log global
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 2s
    retries 2
    option redispatch 1
    source %(lb)s
    default-server send-proxy-v2 check inter %(check)dms fall 2 rise 1
listen imap
    bind %(front)s:%(front_imap)d
    balance roundrobin
    option tcp-check
    tcp-check expect string "* OK"
    tcp-check send "a LOGOUT\\r\\n"
    tcp-check expect string "a OK"
    server a 127.0.0.1:%(a_imap)d
    server b 127.0.0.1:%(b_imap)d
listen pop3
    bind %(front)s:%(front_pop3)d
    balance roundrobin
    option tcp-check
    tcp-check expect string "+OK"
    tcp-check send "QUIT\\r\\n"
    tcp-check expect string "+OK"
    server a 127.0.0.1:%(a_pop3)d
    server b 127.0.0.1:%(b_pop3)d
"""


def setUpModule():
    global PROVIDER, CONSUMER, LB, TMP, FRONT_IMAP, FRONT_POP3, IMAP_PORT, POP3_PORT
    TMP = make_tempdir("postern-scaleout-")
    IMAP_PORT, POP3_PORT = free_ports(2)
    users = {r.backend_user: password(r.login) for r in load_expected_routes()}
    for name, addr in STORES.items():
        # Every mailbox on both stores: a move only changes where one lands.
        STORE[name] = Dovecot(name.split(".")[0], users, host=addr,
                              imap_port=IMAP_PORT, pop3_port=POP3_PORT)
        STORE[name].start()
    # "stats" logs every search: the test tells who answered a lookup.
    PROVIDER = Slapd(syncprov=True, debug_level="stats").start()
    CONSUMER = Slapd(provider=PROVIDER, ldif=[], debug_level="stats").start()
    poll(lambda: CONSUMER.search("(uid=alice)"), "the consumer's first refresh")
    for name in ("a", "b"):
        P[name] = Postern(postern_config).start()
    FRONT_IMAP, FRONT_POP3 = free_ports(2, host=FRONT)
    LB = HAProxy(TMP, HAPROXY_CFG % {
        "lb": LB_SOURCE, "check": CHECK_MS, "front": FRONT,
        "front_imap": FRONT_IMAP, "front_pop3": FRONT_POP3,
        "a_imap": P["a"].imap_port, "b_imap": P["b"].imap_port,
        "a_pop3": P["a"].pop3_port, "b_pop3": P["b"].pop3_port})
    LB.start(FRONT, FRONT_IMAP)
    poll(lambda: set(LB.servers().values()) == {"UP"}, "HAProxy's checks pass")


def tearDownModule():
    try:
        if LB is not None:
            LB.stop()
        for x in list(P.values()) + [CONSUMER, PROVIDER]:
            if x is not None:
                x.cleanup()
        stop_all(*STORE.values())
    finally:
        remove_tempdir(TMP)


def poll(predicate, what: str, limit: float = PATIENCE):
    """Wait until predicate() is true; fail naming what never happened."""
    deadline = time.monotonic() + limit
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("not within %ss: %s" % (limit, what))
        time.sleep(0.05)


class ClientImap(imaplib.IMAP4):
    """imaplib from CLIENT, the address the stores must log."""

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(CLIENT, 0))


class ClientPop3(poplib.POP3):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(CLIENT, 0))


def store_of(text: bytes) -> str:
    for name, store in STORE.items():
        if store.welcome_line.encode() in text:
            return name
    return "?"


def login(user: str) -> str:
    """IMAP through HAProxy: the store the login lands on, or the error."""
    try:
        m = ClientImap(FRONT, FRONT_IMAP, timeout=PATIENCE)
    except OSError as e:
        return "CONNECT: %r" % e
    try:
        m.login(user, password(user))
        m.select("INBOX")
        _, data = m.fetch("1", "(BODY[])")
        return store_of(data[0][1])
    except (imaplib.IMAP4.error, OSError) as e:
        return "NO: %s" % e
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def pop3_login(user: str) -> str:
    """POP3 through HAProxy: the store, or the error."""
    try:
        m = ClientPop3(FRONT, FRONT_POP3, timeout=PATIENCE)
    except OSError as e:
        return "CONNECT: %r" % e
    try:
        m.user(user)
        m.pass_(password(user))
        _, lines, _ = m.retr(1)
        return store_of(b"\n".join(lines))
    except (poplib.error_proto, OSError) as e:
        return "ERR: %s" % e
    finally:
        try:
            m.quit()
        except (poplib.error_proto, OSError):
            pass


def login_at(name: str, user: str) -> str:
    """IMAP straight to one instance, playing HAProxy (PROXY v2 from the
    trusted source): which store that instance routes user to."""
    try:
        r = Raw(P[name].imap_port, timeout=PATIENCE, source=LB_SOURCE)
    except OSError as e:
        return "CONNECT: %r" % e
    try:
        r.send(proxy_v2(CLIENT, 40000))
        r.line()
        r.send(b"a LOGIN %s %s\r\n" % (user.encode(), password(user).encode()))
        reply = r.until(b"a ")[-1]
        if not reply.startswith(b"a OK"):
            return "NO: %r" % reply
        r.send(b"b SELECT INBOX\r\nc FETCH 1 BODY[]\r\nd LOGOUT\r\n")
        return store_of(b"".join(r.until(b"c ")))
    except (OSError, EOFError) as e:
        return "ERR: %r" % e
    finally:
        r.close()


def store_logged(user: str, store: str, service: str = "imap-login") -> bool:
    """The store logged a login of user from CLIENT."""
    pat = re.compile(r"%s: (Info: )?Login: user=<%s>, .*rip=%s," % (
        service, re.escape(ROUTES[user].backend_user), re.escape(CLIENT)))
    return bool(pat.search(STORE[store].read_log()))


def searched(slapd: Slapd, user: str) -> int:
    """How many of postern's searches for user slapd logged."""
    with open(slapd.log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return text.count("(uid=%s)" % user)


def served(name: str) -> int:
    """Logins instance name logged from CLIENT."""
    return P[name].log().count("login ok client=%s:" % CLIENT)


class A_Spread(unittest.TestCase):
    def test_logins_land_on_their_stores_which_log_the_client(self):
        before = {n: served(n) for n in P}
        for user in ("alice", "carol", "kim", "frank@example.net"):
            with self.subTest(user=user):
                want = ROUTES[user].host
                self.assertEqual(login(user), want)
                poll(lambda: store_logged(user, want), "%s logs %s from %s"
                     % (want, user, CLIENT))
        # roundrobin: both instances took some.
        for n in P:
            self.assertGreater(served(n), before[n], n)

    def test_pop3_client_address_reaches_the_store_by_xclient(self):
        self.assertEqual(pop3_login("leo@example.net"), "store-b.example.net")
        poll(lambda: store_logged("leo@example.net", "store-b.example.net",
                                  "pop3-login"), "the POP3 store logs the client")

    def test_the_consumer_answers_the_lookups(self):
        self.assertEqual(login("alice"), "store-a.example.net")
        self.assertGreater(searched(CONSUMER, "alice"), 0)
        self.assertEqual(searched(PROVIDER, "alice"), 0)


class B_RouteChange(unittest.TestCase):
    """Consumer up: provider -> syncrepl -> consumer -> postern, whose
    route cache may hold the old route for at most its ttl."""

    def test_change_on_the_provider_reaches_both_instances(self):
        dn = PROVIDER.user_dn("kim")
        for n in P:
            self.assertEqual(login_at(n, "kim"), "store-b.example.net")
        PROVIDER.set_attr(dn, "mailHost", "store-a.example.net")
        poll(lambda: CONSUMER.search("(uid=kim)", ["mailHost"])[0]["mailHost"]
             == ["store-a.example.net"], "the consumer has the change")
        for n in P:
            poll(lambda: login_at(n, "kim") == "store-a.example.net",
                 "instance %s routes kim to store-a" % n)
        for _ in range(4):
            self.assertEqual(login("kim"), "store-a.example.net")
        self.assertEqual(searched(PROVIDER, "kim"), 0)


class C_ConsumerDown(unittest.TestCase):
    def test_logins_go_on_through_the_provider(self):
        CONSUMER.stop()
        try:
            # A login may meet a connection that is just noticing; after
            # the first success through each instance, none may fail.
            for n in P:
                poll(lambda: login_at(n, "carol") == "store-a.example.net",
                     "instance %s answers from the provider" % n)
            for _ in range(3):
                for user in ("alice", "carol", "frank@example.net", "leo@example.net"):
                    self.assertEqual(login(user), ROUTES[user].host, user)
                time.sleep(CACHE_TTL / 2)    # let cached routes expire
            self.assertGreater(searched(PROVIDER, "alice"), 0)
            for n in P:
                self.assertIn("up: %s" % PROVIDER.uri, P[n].log())
            # A change made now is seen through the provider.
            PROVIDER.set_attr(PROVIDER.user_dn("alice"), "mailHost", "store-b.example.net")
            for n in P:
                poll(lambda: login_at(n, "alice") == "store-b.example.net",
                     "instance %s routes alice to store-b" % n)
        finally:
            CONSUMER.start()
        # The consumer catches up, and the instances go back to it.
        poll(lambda: CONSUMER.search("(uid=alice)", ["mailHost"])[0]["mailHost"]
             == ["store-b.example.net"], "the consumer resyncs")
        seen = searched(CONSUMER, "alice")
        poll(lambda: login("alice") == "store-b.example.net"
             and searched(CONSUMER, "alice") > seen, "failback to the consumer")
        for n in P:
            self.assertEqual(login_at(n, "alice"), "store-b.example.net")


class D_ConsumerMute(unittest.TestCase):
    """The consumer hangs (SIGSTOP): a search on a pooled connection to it
    times out (directory.ldap.timeout), that login gets a temporary
    failure and the connection moves to the provider.  So at most one
    failed login per pooled connection, then logins go on."""

    def test_mute_consumer_costs_at_most_one_login_per_connection(self):
        # Names nobody has: never cached, so every login is a search; the
        # directory's answer is a plain refusal, its absence UNAVAILABLE.
        CONSUMER.freeze()
        try:
            for n in P:
                failed, answered = [], 0
                while answered < 2 * POOL:
                    got = login_at(n, "ghost%d" % next(GHOSTS))
                    self.assertTrue(got.startswith("NO"), got)
                    if "UNAVAILABLE" not in got:
                        answered += 1
                        continue
                    failed.append(got)
                    self.assertLessEqual(len(failed), POOL, (n, failed))
                    answered = 0
        finally:
            CONSUMER.thaw()


class E_PosternDown(unittest.TestCase):
    def test_stop_one_instance_logins_go_through_the_other(self):
        rc = P["a"].stop()
        self.assertEqual(rc, 0, P["a"].log()[-3000:])
        self.assertEqual(P["a"].leaks(), "")
        poll(lambda: LB.servers().get(("imap", "a")) == "DOWN"
             and LB.servers().get(("pop3", "a")) == "DOWN", "HAProxy marks A down")
        before = served("b")
        users = ("carol", "frank@example.net", "grace@example.net", "leo@example.net")
        for _ in range(2):
            for user in users:
                self.assertEqual(login(user), ROUTES[user].host, user)
        self.assertEqual(pop3_login("leo@example.net"), "store-b.example.net")
        self.assertEqual(served("b"), before + 2 * len(users) + 1)


class ZZShutdown(unittest.TestCase):
    def test_clean_exit_no_sanitizer_reports(self):
        for n, p in P.items():
            rc = p.stop()
            self.assertEqual(rc, 0, p.log()[-3000:])
            self.assertEqual(p.leaks(), "", n)


if __name__ == "__main__":
    sys.exit(main(__name__))
