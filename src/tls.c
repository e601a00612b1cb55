#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "privsep.h"
#include "tls.h"
#include "util.h"

/*
 * TLS 1.2 suites when tls.ciphers is "": forward secret (ECDHE) and AEAD
 * only, in Mozilla's "intermediate" order, for ECDSA and RSA certificates
 * alike.  No finite-field DHE: clients that lack ECDHE are long gone, and
 * DHE would need parameters and a size policy of its own.
 */
#define TLS12_CIPHERS							\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* Key exchange groups, most preferred first. */
#define TLS_GROUPS	"X25519:P-256:P-384"

const char *
tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		str_copy(buf, "unknown TLS error", len);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Session-ticket keys. */

static int
ticket_key_make(struct tls_ticket_key *k, uint64_t now)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_bytes(k->hmac, sizeof(k->hmac)) != 1) {
		explicit_bzero(k, sizeof(*k));
		return -1;
	}
	k->made = now;
	return 0;
}

/*
 * Workers read the clock before they take the mutex, so `now` may be a
 * little older than the newest key: that is age 0, not a wrap-around that
 * would rotate again and drop the previous key early.
 */
static uint64_t
key_age(const struct tls_ticket_key *k, uint64_t now)
{
	return now > k->made ? now - k->made : 0;
}

/* Drop the previous key once no ticket under it may be accepted. */
static void
tickets_expire(struct tls_tickets *tk, uint64_t now)
{
	if (tk->have_prev && key_age(&tk->key[1], now) >= 2 * tk->lifetime) {
		explicit_bzero(&tk->key[1], sizeof(tk->key[1]));
		tk->have_prev = false;
	}
}

int
tls_tickets_init(struct tls_tickets *tk, uint64_t lifetime, uint64_t now)
{
	memset(tk, 0, sizeof(*tk));
	tk->lifetime = lifetime > 0 ? lifetime : 1;
	if (ticket_key_make(&tk->key[0], now) < 0)
		return -1;
	pthread_mutex_init(&tk->mtx, NULL);
	return 0;
}

void
tls_tickets_wipe(struct tls_tickets *tk)
{
	pthread_mutex_destroy(&tk->mtx);
	explicit_bzero(tk, sizeof(*tk));
}

int
tls_tickets_current(struct tls_tickets *tk, uint64_t now,
    struct tls_ticket_key *key_r)
{
	int ret = 0;

	pthread_mutex_lock(&tk->mtx);
	if (key_age(&tk->key[0], now) >= tk->lifetime) {
		struct tls_ticket_key fresh;

		if (ticket_key_make(&fresh, now) == 0) {
			/* Overwrites, and so wipes, the old previous key. */
			tk->key[1] = tk->key[0];
			tk->key[0] = fresh;
			tk->have_prev = true;
			explicit_bzero(&fresh, sizeof(fresh));
		} else
			ret = -1;
	}
	tickets_expire(tk, now);
	if (ret == 0)
		*key_r = tk->key[0];
	pthread_mutex_unlock(&tk->mtx);
	return ret;
}

int
tls_tickets_find(struct tls_tickets *tk, uint64_t now,
    const unsigned char name[TLS_TICKET_NAME_LEN], struct tls_ticket_key *key_r)
{
	int ret = 0;

	pthread_mutex_lock(&tk->mtx);
	tickets_expire(tk, now);
	if (memcmp(name, tk->key[0].name, TLS_TICKET_NAME_LEN) == 0 &&
	    key_age(&tk->key[0], now) < 2 * tk->lifetime) {
		*key_r = tk->key[0];
		ret = 1;
	} else if (tk->have_prev &&
	    memcmp(name, tk->key[1].name, TLS_TICKET_NAME_LEN) == 0) {
		*key_r = tk->key[1];
		ret = 2;
	}
	pthread_mutex_unlock(&tk->mtx);
	return ret;
}

/*
 * OpenSSL asks for ticket keys on the context the handshake started on,
 * even after SNI switched it; every server context can answer.  Tickets
 * are AES-256-CBC with HMAC-SHA256, the format OpenSSL's own keys use.
 */
static int
ticket_key_cb(SSL *ssl, unsigned char name[TLS_TICKET_NAME_LEN],
    unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_ctxs *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const EVP_CIPHER *cipher = EVP_aes_256_cbc();
	uint64_t now = clock_ms() / 1000;
	struct tls_ticket_key k;
	char digest[] = "SHA256";
	OSSL_PARAM params[3];
	int ret, ok;

	memset(&k, 0, sizeof(k));
	if (enc) {
		/* No randomness: the handshake could not go on either. */
		if (tls_tickets_current(t->tickets, now, &k) < 0 ||
		    RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) != 1) {
			explicit_bzero(&k, sizeof(k));
			return -1;
		}
		memcpy(name, k.name, sizeof(k.name));
		ret = 1;
	} else if ((ret = tls_tickets_find(t->tickets, now, name, &k)) == 0)
		return 0;
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
	    k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    digest, 0);
	params[2] = OSSL_PARAM_construct_end();
	ok = enc ? EVP_EncryptInit_ex(cctx, cipher, NULL, k.aes, iv) :
	    EVP_DecryptInit_ex(cctx, cipher, NULL, k.aes, iv);
	if (ok != 1 || EVP_MAC_CTX_set_params(hctx, params) != 1)
		ret = -1;
	explicit_bzero(&k, sizeof(k));
	return ret;
}

/* Contexts. */

static int
set_protocol(SSL_CTX *ctx, const struct config *cfg, char *err, size_t errlen)
{
	int v = strcmp(cfg->tls.min_version, "TLSv1.3") == 0 ? TLS1_3_VERSION :
	    TLS1_2_VERSION;
	const char *ciphers = cfg->tls.ciphers[0] != '\0' ? cfg->tls.ciphers :
	    TLS12_CIPHERS;
	char e[256];

	if (SSL_CTX_set_min_proto_version(ctx, v) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
		snprintf(err, errlen, "%s: TLS protocol settings: %s",
		    cfg->path, tls_error(e, sizeof(e)));
		return -1;
	}
	/*
	 * As a server, our order picks the suite, ChaCha20 first only for a
	 * client that prefers it (no AES hardware).  A peer that closes
	 * without close_notify is an ordinary EOF: IMAP and POP3 frame
	 * their own replies, so a truncation cannot pass for a whole one.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_PRIORITIZE_CHACHA | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Writes may be partial and come from a buffer that has moved;
	 * idle connections give their read and write buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		snprintf(err, errlen, "%s: tls.ciphers: %s", cfg->path,
		    tls_error(e, sizeof(e)));
		return -1;
	}
	return 0;
}

/*
 * The certificate chain from memory: the leaf, then any intermediates,
 * as SSL_CTX_use_certificate_chain_file() would take them from a file.
 */
static int
use_chain(SSL_CTX *ctx, const char *data, size_t len)
{
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	X509 *x;
	unsigned long e;
	int ok = 0;

	if (bio == NULL)
		return 0;
	if ((x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL)) == NULL)
		goto out;
	ok = SSL_CTX_use_certificate(ctx, x) == 1 &&
	    SSL_CTX_clear_chain_certs(ctx) == 1;
	X509_free(x);
	while (ok && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			ok = 0;
		}
	/* The end of the file reads as "no start line": not an error. */
	e = ERR_peek_last_error();
	if (ok && ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		ERR_clear_error();
out:
	BIO_free(bio);
	return ok;
}

/* The private key from memory; an encrypted key fails rather than prompt. */
static int
use_key(SSL_CTX *ctx, const char *data, size_t len)
{
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	EVP_PKEY *pkey;
	int ok;

	if (bio == NULL)
		return 0;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	ok = pkey != NULL && SSL_CTX_use_PrivateKey(ctx, pkey) == 1;
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return ok;
}

/*
 * Certificate and key come through privsep_read(): from the disk, or in
 * the unprivileged child from the copies the privileged parent read.
 * `what` is the key's group ("tls", "tls.certificates[1]") for errors.
 */
static int
load_pair(SSL_CTX *ctx, const struct config *cfg, const char *what,
    const char *cert, const char *key, char *err, size_t errlen)
{
	char k[64], e[256], *data;
	size_t len;
	int ok;

	snprintf(k, sizeof(k), "%s.cert", what);
	if (privsep_read(cert, &data, &len) < 0)
		return config_file_fail(cfg, k, cert, strerror(errno), err, errlen);
	ok = use_chain(ctx, data, len);
	free(data);
	if (!ok)
		return config_file_fail(cfg, k, cert, tls_error(e, sizeof(e)),
		    err, errlen);
	snprintf(k, sizeof(k), "%s.key", what);
	if (privsep_read(key, &data, &len) < 0)
		return config_file_fail(cfg, k, key, strerror(errno), err, errlen);
	ok = use_key(ctx, data, len) && SSL_CTX_check_private_key(ctx) == 1;
	explicit_bzero(data, len);
	free(data);
	if (!ok)
		return config_file_fail(cfg, k, key, tls_error(e, sizeof(e)),
		    err, errlen);
	return 0;
}

/* SNI: switch to the context whose certificate names the requested host. */
static int
sni_callback(SSL *ssl, int *alert, void *arg)
{
	struct tls_ctxs *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	if (name == NULL)
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; i < t->nsni; i++) {
		X509 *x = SSL_CTX_get0_certificate(t->sni[i]);

		if (x != NULL && X509_check_host(x, name, 0, 0, NULL) == 1) {
			SSL_set_SSL_CTX(ssl, t->sni[i]);
			break;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Resumption: TLS 1.2 clients without tickets use the session cache, the
 * rest tickets under t->tickets.  Cache and ticket keys live with this
 * config generation, as OpenSSL keeps them per SSL_CTX, so after SIGHUP
 * every client does one full handshake; in exchange no key outlives the
 * generation, and nothing is shared between generations but the code.
 */
static SSL_CTX *
server_ctx(const struct config *cfg, struct tls_ctxs *t, const char *what,
    const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	if (set_protocol(ctx, cfg, err, errlen) < 0 ||
	    load_pair(ctx, cfg, what, cert, key, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_app_data(ctx, t);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE);
	SSL_CTX_set_timeout(ctx, TLS_TICKET_ROTATE);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postern", 7);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
	return ctx;
}

static SSL_CTX *
client_ctx(const struct config *cfg, const char *key, const char *ca_file,
    bool verify, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char e[256];

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	if (set_protocol(ctx, cfg, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (verify) {
		int ok = ca_file[0] != '\0' ?
		    SSL_CTX_load_verify_locations(ctx, ca_file, NULL) :
		    SSL_CTX_set_default_verify_paths(ctx);

		if (ok != 1 && ca_file[0] != '\0' &&
		    config_file_check(cfg, key, ca_file, err, errlen) < 0) {
			SSL_CTX_free(ctx);
			return NULL;
		}
		if (ok != 1) {
			config_file_fail(cfg, key, ca_file[0] != '\0' ? ca_file :
			    "the system's CA store", tls_error(e, sizeof(e)),
			    err, errlen);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

static int
server_ctxs_new(const struct config *cfg, struct tls_ctxs *t, char *err,
    size_t errlen)
{
	if (cfg->tls.cert[0] == '\0' || cfg->tls.key[0] == '\0') {
		snprintf(err, errlen, "%s: tls.cert and tls.key are needed by "
		    "listeners with tls != \"none\"", cfg->path);
		return -1;
	}
	t->tickets = xmalloc(sizeof(*t->tickets));
	if (tls_tickets_init(t->tickets, TLS_TICKET_ROTATE,
	    clock_ms() / 1000) < 0) {
		free(t->tickets);
		t->tickets = NULL;
		snprintf(err, errlen, "cannot make session ticket keys");
		return -1;
	}
	if ((t->server = server_ctx(cfg, t, "tls", cfg->tls.cert,
	    cfg->tls.key, err, errlen)) == NULL)
		return -1;
	t->sni = xcalloc(cfg->tls.ncertificates + 1, sizeof(*t->sni));
	for (size_t i = 0; i < cfg->tls.ncertificates; i++) {
		const struct tls_cert *c = &cfg->tls.certificates[i];
		char what[40];

		snprintf(what, sizeof(what), "tls.certificates[%zu]", i);
		if ((t->sni[i] = server_ctx(cfg, t, what, c->cert, c->key, err,
		    errlen)) == NULL)
			return -1;
		t->nsni++;
	}
	SSL_CTX_set_tlsext_servername_callback(t->server, sni_callback);
	SSL_CTX_set_tlsext_servername_arg(t->server, t);
	return 0;
}

int
tls_ctxs_new(const struct config *cfg, struct tls_ctxs *t, char *err,
    size_t errlen)
{
	bool need_server = false;

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].tls != TLS_MODE_NONE)
			need_server = true;
	if (need_server && server_ctxs_new(cfg, t, err, errlen) < 0) {
		tls_ctxs_free(t);
		return -1;
	}
	if (cfg->backend.tls != TLS_MODE_NONE &&
	    (t->backend_default = client_ctx(cfg, "backend.ca_file",
	    cfg->backend.ca_file, cfg->backend.verify, err, errlen)) == NULL) {
		tls_ctxs_free(t);
		return -1;
	}
	t->nbackend = cfg->nbackends;
	t->backend = xcalloc(cfg->nbackends + 1, sizeof(*t->backend));
	for (size_t i = 0; i < cfg->nbackends; i++) {
		const struct backend_cfg *b = &cfg->backends[i];
		char key[40];

		if (b->tls == TLS_MODE_NONE)
			continue;
		snprintf(key, sizeof(key), "backends[%zu].ca_file", i);
		if ((t->backend[i] = client_ctx(cfg, key, b->ca_file, b->verify,
		    err, errlen)) == NULL) {
			tls_ctxs_free(t);
			return -1;
		}
	}
	return 0;
}

void
tls_ctxs_free(struct tls_ctxs *t)
{
	for (size_t i = 0; i < t->nsni; i++)
		SSL_CTX_free(t->sni[i]);
	free(t->sni);
	SSL_CTX_free(t->server);
	if (t->tickets != NULL) {
		tls_tickets_wipe(t->tickets);
		free(t->tickets);
	}
	SSL_CTX_free(t->backend_default);
	for (size_t i = 0; i < t->nbackend; i++)
		SSL_CTX_free(t->backend[i]);
	free(t->backend);
	memset(t, 0, sizeof(*t));
}
