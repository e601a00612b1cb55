/*
 * Unit tests for TLS (src/tls.h): the session-ticket key ring, driven by
 * the clock it is handed, and the contexts tls_ctxs_new builds from a
 * config, checked through in-memory handshakes.
 */
#include "autoconf.h"

#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "privsep.h"
#include "tls.h"
#include "util.h"

#define LIFE	100
#define T0	1000

/* Ticket keys. */

static bool
zeroed(const void *p, size_t len)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		if (c[i] != 0)
			return false;
	return true;
}

START_TEST(test_current_is_stable_until_due)
{
	struct tls_tickets tk;
	struct tls_ticket_key a, b;

	ck_assert_int_eq(tls_tickets_init(&tk, LIFE, T0), 0);
	ck_assert_int_eq(tls_tickets_current(&tk, T0, &a), 0);
	ck_assert(!zeroed(a.name, sizeof(a.name)));
	ck_assert(!zeroed(a.aes, sizeof(a.aes)));
	ck_assert(!zeroed(a.hmac, sizeof(a.hmac)));
	ck_assert_int_eq(tls_tickets_current(&tk, T0 + LIFE - 1, &b), 0);
	ck_assert_mem_eq(a.name, b.name, sizeof(a.name));
	ck_assert_mem_eq(a.aes, b.aes, sizeof(a.aes));
	ck_assert(!tk.have_prev);
	tls_tickets_wipe(&tk);
	ck_assert(zeroed(&tk, sizeof(tk)));
}
END_TEST

START_TEST(test_rotation_keeps_previous_for_decryption)
{
	struct tls_tickets tk;
	struct tls_ticket_key old, cur, got;

	ck_assert_int_eq(tls_tickets_init(&tk, LIFE, T0), 0);
	ck_assert_int_eq(tls_tickets_current(&tk, T0 + LIFE - 1, &old), 0);
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + LIFE - 1, old.name, &got), 1);
	ck_assert_int_eq(tls_tickets_current(&tk, T0 + LIFE, &cur), 0);
	ck_assert_mem_ne(old.name, cur.name, sizeof(old.name));
	ck_assert_mem_ne(old.aes, cur.aes, sizeof(old.aes));
	ck_assert_uint_eq(cur.made, T0 + LIFE);
	/* The previous key decrypts and asks for a renewed ticket. */
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + LIFE, old.name, &got), 2);
	ck_assert_mem_eq(got.aes, old.aes, sizeof(got.aes));
	ck_assert_mem_eq(got.hmac, old.hmac, sizeof(got.hmac));
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + LIFE, cur.name, &got), 1);
	/* A ticket made just before the rotation lives a full lifetime. */
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + 2 * LIFE - 1, old.name,
	    &got), 2);
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + 2 * LIFE, old.name, &got),
	    0);
	ck_assert(!tk.have_prev);
	ck_assert(zeroed(&tk.key[1], sizeof(tk.key[1])));
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + 2 * LIFE, cur.name, &got),
	    1);
	tls_tickets_wipe(&tk);
}
END_TEST

START_TEST(test_second_rotation_drops_oldest)
{
	struct tls_tickets tk;
	struct tls_ticket_key k0, k1, k2, got;

	ck_assert_int_eq(tls_tickets_init(&tk, LIFE, T0), 0);
	ck_assert_int_eq(tls_tickets_current(&tk, T0, &k0), 0);
	ck_assert_int_eq(tls_tickets_current(&tk, T0 + LIFE, &k1), 0);
	ck_assert_int_eq(tls_tickets_current(&tk, T0 + 2 * LIFE, &k2), 0);
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + 2 * LIFE, k0.name, &got), 0);
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + 2 * LIFE, k1.name, &got), 2);
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + 2 * LIFE, k2.name, &got), 1);
	tls_tickets_wipe(&tk);
}
END_TEST

/* After a quiet spell no key older than 2 * lifetime decrypts. */
START_TEST(test_idle_gap_expires_everything_old)
{
	struct tls_tickets tk;
	struct tls_ticket_key k0, got, fresh;
	uint64_t later = T0 + 10 * LIFE;

	ck_assert_int_eq(tls_tickets_init(&tk, LIFE, T0), 0);
	ck_assert_int_eq(tls_tickets_current(&tk, T0, &k0), 0);
	ck_assert_int_eq(tls_tickets_find(&tk, later, k0.name, &got), 0);
	ck_assert_int_eq(tls_tickets_current(&tk, later, &fresh), 0);
	ck_assert_mem_ne(k0.name, fresh.name, sizeof(k0.name));
	ck_assert(!tk.have_prev);
	ck_assert_int_eq(tls_tickets_find(&tk, later, k0.name, &got), 0);
	tls_tickets_wipe(&tk);
}
END_TEST

START_TEST(test_unknown_name_and_stale_clock)
{
	struct tls_tickets tk;
	struct tls_ticket_key k1, k2, got;
	unsigned char name[TLS_TICKET_NAME_LEN];

	memset(name, 0xa5, sizeof(name));
	ck_assert_int_eq(tls_tickets_init(&tk, LIFE, T0), 0);
	ck_assert_int_eq(tls_tickets_find(&tk, T0, name, &got), 0);
	ck_assert_int_eq(tls_tickets_current(&tk, T0 + LIFE, &k1), 0);
	/* A worker that read the clock before the rotation. */
	ck_assert_int_eq(tls_tickets_current(&tk, T0 + LIFE - 1, &k2), 0);
	ck_assert_mem_eq(k1.name, k2.name, sizeof(k1.name));
	ck_assert(tk.have_prev);
	ck_assert_int_eq(tls_tickets_find(&tk, T0 + LIFE - 1, k1.name, &got), 1);
	tls_tickets_wipe(&tk);
}
END_TEST

struct hammer_arg {
	struct tls_tickets	*tk;
	_Atomic uint64_t	*clock;		/* shared: steps of 1/40 s */
	int			 found, failures;
};

/*
 * Workers rotate and look up keys at once on one clock.  A key handed out
 * is whole: when its name is found, the material is the same.  (A lookup
 * may miss if two rotations pass in between, as after a long stall.)
 */
static void *
hammer(void *arg)
{
	struct hammer_arg *h = arg;

	for (int i = 0; i < 20000; i++) {
		struct tls_ticket_key k, got;
		uint64_t now = T0 + atomic_fetch_add(h->clock, 1) / 40;
		int r;

		if (tls_tickets_current(h->tk, now, &k) != 0) {
			h->failures++;
			continue;
		}
		if ((r = tls_tickets_find(h->tk, now, k.name, &got)) == 0)
			continue;
		h->found++;
		if (memcmp(k.aes, got.aes, sizeof(k.aes)) != 0 ||
		    memcmp(k.hmac, got.hmac, sizeof(k.hmac)) != 0 ||
		    k.made != got.made)
			h->failures++;
	}
	return NULL;
}

START_TEST(test_threads)
{
	struct tls_tickets tk;
	struct hammer_arg h[4];
	_Atomic uint64_t clock = 0;
	pthread_t t[4];

	ck_assert_int_eq(tls_tickets_init(&tk, 7, T0), 0);
	for (int i = 0; i < 4; i++) {
		h[i].tk = &tk;
		h[i].clock = &clock;
		h[i].found = h[i].failures = 0;
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(h[i].failures, 0);
		ck_assert_int_gt(h[i].found, 0);
	}
	tls_tickets_wipe(&tk);
}
END_TEST

/* Contexts and handshakes. */

static char dir[256];
static char ec_cert[320], ec_key[320], rsa_cert[320], rsa_key[320];

/* A self-signed certificate for `cn`, written as PEM. */
static void
write_pair(EVP_PKEY *pk, const char *cn, const char *cert, const char *key)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_get_subject_name(x);
	FILE *f;

	ck_assert_ptr_nonnull(pk);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_set_pubkey(x, pk);
	ck_assert_int_gt(X509_sign(x, pk, EVP_sha256()), 0);
	ck_assert_ptr_nonnull(f = fopen(cert, "w"));
	PEM_write_X509(f, x);
	fclose(f);
	ck_assert_ptr_nonnull(f = fopen(key, "w"));
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pk);
}

/* Written to the current directory: the build tree under make check. */
static void
make_certs(void)
{
	char rel[64];

	/* Absolute: the configuration resolves relative paths from its own. */
	str_copy(rel, "check_tls.XXXXXX", sizeof(rel));
	ck_assert_ptr_nonnull(mkdtemp(rel));
	ck_assert_ptr_nonnull(getcwd(dir, sizeof(dir) - sizeof(rel) - 1));
	strcat(dir, "/");
	strcat(dir, rel);
	snprintf(ec_cert, sizeof(ec_cert), "%s/ec.crt", dir);
	snprintf(ec_key, sizeof(ec_key), "%s/ec.key", dir);
	snprintf(rsa_cert, sizeof(rsa_cert), "%s/rsa.crt", dir);
	snprintf(rsa_key, sizeof(rsa_key), "%s/rsa.key", dir);
	write_pair(EVP_EC_gen("P-256"), "localhost", ec_cert, ec_key);
	write_pair(EVP_RSA_gen(2048), "rsa.example.org", rsa_cert, rsa_key);
}

static void
remove_certs(void)
{
	unlink(ec_cert);
	unlink(ec_key);
	unlink(rsa_cert);
	unlink(rsa_key);
	rmdir(dir);
}

static struct config *cfg;
static struct tls_ctxs t;

/* Contexts for a config with the TLS settings `tls` (inside tls = {}). */
static void
ctxs_up(const char *tls)
{
	char text[2048], err[512] = "";

	snprintf(text, sizeof(text),
	    "tls = { cert = \"%s\"; key = \"%s\"; %s\n"
	    "  certificates = ( { cert = \"%s\"; key = \"%s\"; } ); };\n"
	    "listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1993\"; "
	    "tls = \"implicit\"; } );\n"
	    "directory = { type = \"file\"; };\n"
	    "backend = { tls = \"starttls\"; verify = false; };\n",
	    ec_cert, ec_key, tls, rsa_cert, rsa_key);
	if (config_load_string("test.conf", text, &cfg, err, sizeof(err)) != 0)
		ck_abort_msg("config rejected: %s", err);
	if (tls_ctxs_new(cfg, &t, err, sizeof(err)) != 0)
		ck_abort_msg("contexts: %s", err);
}

static void
ctxs_down(void)
{
	tls_ctxs_free(&t);
	config_free(&cfg);
}

static void
setup(void)
{
	make_certs();
}

static void
teardown(void)
{
	remove_certs();
}

struct pair {
	SSL	*client, *server;
};

/* A client with at most version `max` (0: any) and cipher list `ciphers`. */
static SSL_CTX *
test_client_ctx(int max, const char *ciphers, bool tickets)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	ck_assert_ptr_nonnull(ctx);
	SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	if (max != 0)
		SSL_CTX_set_max_proto_version(ctx, max);
	/* Let the server refuse what it refuses, not the client. */
	SSL_CTX_set_security_level(ctx, 0);
	if (ciphers != NULL)
		ck_assert_int_eq(SSL_CTX_set_cipher_list(ctx, ciphers), 1);
	if (!tickets)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	return ctx;
}

/* Handshake over a BIO pair.  1 done, 0 failed. */
static int
handshake(struct pair *p, SSL_CTX *cctx, const char *sni, SSL_SESSION *sess)
{
	BIO *cb, *sb;

	ck_assert_int_eq(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	p->client = SSL_new(cctx);
	p->server = SSL_new(t.server);
	SSL_set_bio(p->client, cb, cb);
	SSL_set_bio(p->server, sb, sb);
	SSL_set_connect_state(p->client);
	SSL_set_accept_state(p->server);
	if (sni != NULL)
		SSL_set_tlsext_host_name(p->client, sni);
	if (sess != NULL)
		SSL_set_session(p->client, sess);
	for (int i = 0; i < 20; i++) {
		int c = SSL_do_handshake(p->client);
		int s = SSL_do_handshake(p->server);

		if (c == 1 && s == 1)
			return 1;
		if ((c <= 0 && SSL_get_error(p->client, c) != SSL_ERROR_WANT_READ) ||
		    (s <= 0 && SSL_get_error(p->server, s) != SSL_ERROR_WANT_READ))
			break;
	}
	ERR_clear_error();
	return 0;
}

/* A greeting from the server; the client reads it, tickets first. */
static void
greet(struct pair *p)
{
	char buf[64];

	ck_assert_int_eq(SSL_write(p->server, "* OK\r\n", 6), 6);
	ck_assert_int_eq(SSL_read(p->client, buf, sizeof(buf)), 6);
}

/*
 * Close as postern does, with close_notify: OpenSSL marks the session of
 * an SSL freed without one as not resumable.
 */
static void
pair_free(struct pair *p)
{
	(void)SSL_shutdown(p->client);
	(void)SSL_shutdown(p->server);
	ERR_clear_error();
	SSL_free(p->client);
	SSL_free(p->server);
}

START_TEST(test_contexts_defaults)
{
	SSL_CTX *all[3];

	ctxs_up("");
	all[0] = t.server;
	all[1] = t.sni[0];
	all[2] = t.backend_default;
	ck_assert_uint_eq(t.nsni, 1);
	for (size_t i = 0; i < 3; i++) {
		STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(all[i]);
		uint64_t opts = SSL_CTX_get_options(all[i]);
		int n12 = 0;

		ck_assert_int_eq(SSL_CTX_get_min_proto_version(all[i]),
		    TLS1_2_VERSION);
		ck_assert(opts & SSL_OP_NO_COMPRESSION);
		ck_assert(opts & SSL_OP_NO_RENEGOTIATION);
		ck_assert(opts & SSL_OP_CIPHER_SERVER_PREFERENCE);
		ck_assert(opts & SSL_OP_IGNORE_UNEXPECTED_EOF);
		for (int j = 0; j < sk_SSL_CIPHER_num(sk); j++) {
			const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, j);

			if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any)
				continue;	/* TLS 1.3 */
			ck_assert_msg(SSL_CIPHER_get_kx_nid(c) == NID_kx_ecdhe &&
			    SSL_CIPHER_is_aead(c), "%s offered",
			    SSL_CIPHER_get_name(c));
			n12++;
		}
		ck_assert_int_eq(n12, 6);
	}
	ck_assert_int_eq(SSL_CTX_get_timeout(t.server), TLS_TICKET_ROTATE);
	ctxs_down();
}
END_TEST

START_TEST(test_contexts_settings_used_as_given)
{
	STACK_OF(SSL_CIPHER) *sk;
	int n12 = 0;

	ctxs_up("min_version = \"TLSv1.3\"; ciphers = \"ECDHE-ECDSA-AES128-SHA\";");
	ck_assert_int_eq(SSL_CTX_get_min_proto_version(t.server),
	    TLS1_3_VERSION);
	ck_assert_int_eq(SSL_CTX_get_min_proto_version(t.backend_default),
	    TLS1_3_VERSION);
	sk = SSL_CTX_get_ciphers(t.server);
	for (int j = 0; j < sk_SSL_CIPHER_num(sk); j++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, j);

		if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any)
			continue;
		ck_assert_str_eq(SSL_CIPHER_get_name(c), "ECDHE-ECDSA-AES128-SHA");
		n12++;
	}
	ck_assert_int_eq(n12, 1);
	ctxs_down();
}
END_TEST

START_TEST(test_handshakes_ecdsa_and_rsa)
{
	SSL_CTX *c12 = test_client_ctx(TLS1_2_VERSION, NULL, true);
	SSL_CTX *c13 = test_client_ctx(0, NULL, true);
	struct pair p;

	ctxs_up("");
	ck_assert_int_eq(handshake(&p, c13, "localhost", NULL), 1);
	ck_assert_int_eq(SSL_version(p.client), TLS1_3_VERSION);
	pair_free(&p);
	ck_assert_int_eq(handshake(&p, c12, "localhost", NULL), 1);
	ck_assert_str_eq(SSL_get_cipher_name(p.client),
	    "ECDHE-ECDSA-AES128-GCM-SHA256");
	pair_free(&p);
	/* SNI picks the RSA certificate: the RSA suites follow. */
	ck_assert_int_eq(handshake(&p, c12, "rsa.example.org", NULL), 1);
	ck_assert_str_eq(SSL_get_cipher_name(p.client),
	    "ECDHE-RSA-AES128-GCM-SHA256");
	pair_free(&p);
	ctxs_down();
	SSL_CTX_free(c12);
	SSL_CTX_free(c13);
}
END_TEST

START_TEST(test_handshakes_refused)
{
	SSL_CTX *c11 = test_client_ctx(TLS1_1_VERSION, NULL, true);
	SSL_CTX *cbc = test_client_ctx(TLS1_2_VERSION,
	    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-GCM-SHA256",
	    true);
	struct pair p;

	ctxs_up("");
	ck_assert_int_eq(handshake(&p, c11, "localhost", NULL), 0);
	pair_free(&p);
	ck_assert_int_eq(handshake(&p, cbc, "localhost", NULL), 0);
	pair_free(&p);
	ctxs_down();
	SSL_CTX_free(c11);
	SSL_CTX_free(cbc);
}
END_TEST

/* Full handshake, then a second one on its session: resumed? */
static bool
resumes(SSL_CTX *cctx, bool want_ticket)
{
	struct pair p;
	SSL_SESSION *sess;
	bool reused;

	ck_assert_int_eq(handshake(&p, cctx, "localhost", NULL), 1);
	greet(&p);
	ck_assert_ptr_nonnull(sess = SSL_get1_session(p.client));
	ck_assert_int_eq(SSL_SESSION_has_ticket(sess), want_ticket);
	ck_assert_uint_eq(SSL_SESSION_get_ticket_lifetime_hint(sess),
	    want_ticket ? TLS_TICKET_ROTATE : 0);
	pair_free(&p);
	ck_assert_int_eq(handshake(&p, cctx, "localhost", sess), 1);
	reused = SSL_session_reused(p.client) == 1;
	pair_free(&p);
	SSL_SESSION_free(sess);
	return reused;
}

START_TEST(test_resumption)
{
	SSL_CTX *c13 = test_client_ctx(0, NULL, true);
	SSL_CTX *c12 = test_client_ctx(TLS1_2_VERSION, NULL, true);
	SSL_CTX *c12id = test_client_ctx(TLS1_2_VERSION, NULL, false);

	ctxs_up("");
	ck_assert(resumes(c13, true));
	ck_assert(resumes(c12, true));		/* ticket */
	ck_assert(resumes(c12id, false));	/* session cache */
	ctxs_down();
	SSL_CTX_free(c13);
	SSL_CTX_free(c12);
	SSL_CTX_free(c12id);
}
END_TEST

/* Tickets do not outlive the contexts: a rebuilt set refuses them. */
START_TEST(test_tickets_die_with_contexts)
{
	SSL_CTX *c13 = test_client_ctx(0, NULL, true);
	SSL_SESSION *sess;
	struct pair p;

	ctxs_up("");
	ck_assert_int_eq(handshake(&p, c13, "localhost", NULL), 1);
	greet(&p);
	sess = SSL_get1_session(p.client);
	pair_free(&p);
	ctxs_down();
	ctxs_up("");
	ck_assert_int_eq(handshake(&p, c13, "localhost", sess), 1);
	ck_assert_int_eq(SSL_session_reused(p.client), 0);
	pair_free(&p);
	SSL_SESSION_free(sess);
	ctxs_down();
	SSL_CTX_free(c13);
}
END_TEST

START_TEST(test_eof_without_close_notify)
{
	SSL_CTX *c13 = test_client_ctx(0, NULL, true);
	struct pair p;
	char buf[16];
	int n;

	ctxs_up("");
	ck_assert_int_eq(handshake(&p, c13, "localhost", NULL), 1);
	BIO_shutdown_wr(SSL_get_wbio(p.client));
	n = SSL_read(p.server, buf, sizeof(buf));
	ck_assert_int_le(n, 0);
	ck_assert_int_eq(SSL_get_error(p.server, n), SSL_ERROR_ZERO_RETURN);
	pair_free(&p);
	ctxs_down();
	SSL_CTX_free(c13);
}
END_TEST

/* Contents of a file, malloc'd and NUL-terminated. */
static char *
slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "r");
	char *data = malloc(65536);
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(data, 1, 65535, f);
	data[n] = '\0';
	fclose(f);
	*len_r = n;
	return data;
}

/*
 * Certificate chains load from memory as from a file (leaf, then the
 * intermediates), and from the privileged parent's copies once the file
 * itself is gone.
 */
START_TEST(test_chain_and_key_from_memory)
{
	struct privsep_files *files = privsep_files_new();
	char chain[PATH_MAX], text[3 * PATH_MAX], err[512] = "", *leaf, *mid, *key;
	size_t nleaf, nmid, nkey;
	const char *error;
	STACK_OF(X509) *extra = NULL;
	FILE *f;

	snprintf(chain, sizeof(chain), "%s/chain.crt", dir);
	leaf = slurp(ec_cert, &nleaf);
	mid = slurp(rsa_cert, &nmid);
	key = slurp(ec_key, &nkey);
	ck_assert_ptr_nonnull(f = fopen(chain, "w"));
	fwrite(leaf, 1, nleaf, f);
	fwrite(mid, 1, nmid, f);
	fclose(f);
	snprintf(text, sizeof(text),
	    "tls = { cert = \"%s\"; key = \"%s\"; };\n"
	    "listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1993\"; "
	    "tls = \"implicit\"; } );\n"
	    "directory = { type = \"file\"; };\n", chain, ec_key);
	ck_assert_int_eq(config_load_string("test.conf", text, &cfg, err,
	    sizeof(err)), 0);
	if (tls_ctxs_new(cfg, &t, err, sizeof(err)) != 0)
		ck_abort_msg("contexts: %s", err);
	ck_assert_int_eq(SSL_CTX_get0_chain_certs(t.server, &extra), 1);
	ck_assert_int_eq(sk_X509_num(extra), 1);
	tls_ctxs_free(&t);
	/* Again with the files only in memory, as the serving child has them. */
	ck_assert_int_eq(privsep_files_read(files, chain, &error), 0);
	ck_assert_int_eq(privsep_files_add(files, ec_key, 0, key, nkey, &error), 0);
	ck_assert_int_eq(unlink(chain), 0);
	privsep_install(files);
	if (tls_ctxs_new(cfg, &t, err, sizeof(err)) != 0)
		ck_abort_msg("contexts from memory: %s", err);
	ck_assert_int_eq(SSL_CTX_get0_chain_certs(t.server, &extra), 1);
	ck_assert_int_eq(sk_X509_num(extra), 1);
	tls_ctxs_free(&t);
	privsep_install(NULL);
	/* Gone from the disk and not served: the reason names the file. */
	ck_assert_int_eq(tls_ctxs_new(cfg, &t, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "No such file"));
	config_free(&cfg);
	free(leaf);
	free(mid);
	free(key);
}
END_TEST

/* An encrypted key fails at once: no passphrase prompt on the terminal. */
START_TEST(test_encrypted_key_refused)
{
	char enc[PATH_MAX], text[3 * PATH_MAX], err[512] = "";
	EVP_PKEY *pk;
	FILE *f;

	snprintf(enc, sizeof(enc), "%s/enc.key", dir);
	ck_assert_ptr_nonnull(f = fopen(ec_key, "r"));
	ck_assert_ptr_nonnull(pk = PEM_read_PrivateKey(f, NULL, NULL, NULL));
	fclose(f);
	ck_assert_ptr_nonnull(f = fopen(enc, "w"));
	ck_assert_int_eq(PEM_write_PrivateKey(f, pk, EVP_aes_128_cbc(),
	    (unsigned char *)"secret", 6, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(pk);
	snprintf(text, sizeof(text),
	    "tls = { cert = \"%s\"; key = \"%s\"; };\n"
	    "listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1993\"; "
	    "tls = \"implicit\"; } );\n"
	    "directory = { type = \"file\"; };\n", ec_cert, enc);
	ck_assert_int_eq(config_load_string("test.conf", text, &cfg, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(tls_ctxs_new(cfg, &t, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "tls.key"));
	config_free(&cfg);
	unlink(enc);
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tk = tcase_create("tickets");
	TCase *ctx = tcase_create("contexts");

	tcase_add_test(tk, test_current_is_stable_until_due);
	tcase_add_test(tk, test_rotation_keeps_previous_for_decryption);
	tcase_add_test(tk, test_second_rotation_drops_oldest);
	tcase_add_test(tk, test_idle_gap_expires_everything_old);
	tcase_add_test(tk, test_unknown_name_and_stale_clock);
	tcase_add_test(tk, test_threads);
	suite_add_tcase(s, tk);
	/* Once for the test case: RSA key generation is slow under the
	 * sanitizers. */
	tcase_set_timeout(ctx, 60);
	tcase_add_unchecked_fixture(ctx, setup, teardown);
	tcase_add_test(ctx, test_contexts_defaults);
	tcase_add_test(ctx, test_contexts_settings_used_as_given);
	tcase_add_test(ctx, test_handshakes_ecdsa_and_rsa);
	tcase_add_test(ctx, test_handshakes_refused);
	tcase_add_test(ctx, test_resumption);
	tcase_add_test(ctx, test_tickets_die_with_contexts);
	tcase_add_test(ctx, test_eof_without_close_notify);
	tcase_add_test(ctx, test_chain_and_key_from_memory);
	tcase_add_test(ctx, test_encrypted_key_refused);
	suite_add_tcase(s, ctx);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(tls_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
