#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"
#include "util.h"

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

static int
set_protocol(SSL_CTX *ctx, const struct config *cfg, char *err, size_t errlen)
{
	int v = strcmp(cfg->tls.min_version, "TLSv1.3") == 0 ? TLS1_3_VERSION :
	    TLS1_2_VERSION;
	char e[256];

	SSL_CTX_set_min_proto_version(ctx, v);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Writes may be partial and come from a buffer that has moved;
	 * idle connections give their read and write buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (cfg->tls.ciphers[0] != '\0' &&
	    SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers) != 1) {
		snprintf(err, errlen, "%s: tls.ciphers: %s", cfg->path,
		    tls_error(e, sizeof(e)));
		return -1;
	}
	return 0;
}

static int
load_pair(SSL_CTX *ctx, const char *path, const char *cert, const char *key,
    char *err, size_t errlen)
{
	char e[256];

	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "%s: tls certificate %s: %s", path, cert,
		    tls_error(e, sizeof(e)));
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s: tls key %s: %s", path, key,
		    tls_error(e, sizeof(e)));
		return -1;
	}
	return 0;
}

/* SNI: switch to the context whose certificate names the requested host. */
static int
sni_callback(SSL *ssl, int *alert, void *arg)
{
	struct tls_ctxs *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX **sni = SSL_CTX_get_ex_data(t->server, 0);

	if (name == NULL || sni == NULL)
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; sni[i] != NULL; i++) {
		X509 *x = SSL_CTX_get0_certificate(sni[i]);

		if (x != NULL && X509_check_host(x, name, 0, 0, NULL) == 1) {
			SSL_set_SSL_CTX(ssl, sni[i]);
			break;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *
server_ctx(const struct config *cfg, const char *cert, const char *key,
    char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	if (set_protocol(ctx, cfg, err, errlen) < 0 ||
	    load_pair(ctx, cfg->path, cert, key, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postern", 7);
	return ctx;
}

static SSL_CTX *
client_ctx(const struct config *cfg, const char *ca_file, bool verify,
    char *err, size_t errlen)
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

		if (ok != 1) {
			snprintf(err, errlen, "%s: backend ca_file %s: %s", cfg->path,
			    ca_file, tls_error(e, sizeof(e)));
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
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
	if (need_server) {
		SSL_CTX **sni;

		if (cfg->tls.cert[0] == '\0' || cfg->tls.key[0] == '\0') {
			snprintf(err, errlen, "%s: tls.cert and tls.key are needed by "
			    "listeners with tls != \"none\"", cfg->path);
			return -1;
		}
		if ((t->server = server_ctx(cfg, cfg->tls.cert, cfg->tls.key,
		    err, errlen)) == NULL)
			return -1;
		sni = xcalloc(cfg->tls.ncertificates + 1, sizeof(*sni));
		SSL_CTX_set_ex_data(t->server, 0, sni);
		for (size_t i = 0; i < cfg->tls.ncertificates; i++) {
			if ((sni[i] = server_ctx(cfg, cfg->tls.certificates[i].cert,
			    cfg->tls.certificates[i].key, err, errlen)) == NULL) {
				tls_ctxs_free(t);
				return -1;
			}
		}
		SSL_CTX_set_tlsext_servername_callback(t->server, sni_callback);
		SSL_CTX_set_tlsext_servername_arg(t->server, t);
	}
	if (cfg->backend.tls != TLS_MODE_NONE &&
	    (t->backend_default = client_ctx(cfg, cfg->backend.ca_file,
	    cfg->backend.verify, err, errlen)) == NULL) {
		tls_ctxs_free(t);
		return -1;
	}
	t->nbackend = cfg->nbackends;
	t->backend = xcalloc(cfg->nbackends + 1, sizeof(*t->backend));
	for (size_t i = 0; i < cfg->nbackends; i++) {
		const struct backend_cfg *b = &cfg->backends[i];

		if (b->tls == TLS_MODE_NONE)
			continue;
		if ((t->backend[i] = client_ctx(cfg, b->ca_file, b->verify, err,
		    errlen)) == NULL) {
			tls_ctxs_free(t);
			return -1;
		}
	}
	return 0;
}

void
tls_ctxs_free(struct tls_ctxs *t)
{
	if (t->server != NULL) {
		SSL_CTX **sni = SSL_CTX_get_ex_data(t->server, 0);

		for (size_t i = 0; sni != NULL && sni[i] != NULL; i++)
			SSL_CTX_free(sni[i]);
		free(sni);
		SSL_CTX_free(t->server);
	}
	SSL_CTX_free(t->backend_default);
	for (size_t i = 0; i < t->nbackend; i++)
		SSL_CTX_free(t->backend[i]);
	free(t->backend);
	memset(t, 0, sizeof(*t));
}
