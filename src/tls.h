/*
 * OpenSSL for both sides.  The server context terminates clients' TLS
 * (implicit or after STARTTLS/STLS), choosing a certificate by SNI; client
 * contexts talk TLS to backends, verifying certificates and host names
 * unless a backend explicitly opts out.  Contexts belong to a config
 * generation, so SIGHUP brings new certificates to new handshakes while
 * live sessions keep theirs.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

struct tls_ctxs {
	SSL_CTX		*server;		/* NULL: no client-side TLS */
	SSL_CTX		*backend_default;	/* backend.* settings */
	SSL_CTX		**backend;		/* per cfg->backends[i], or NULL */
	size_t		 nbackend;
};

/* Build every context the config needs.  -1 with a message in err. */
int	tls_ctxs_new(const struct config *cfg, struct tls_ctxs *t, char *err,
	    size_t errlen);
void	tls_ctxs_free(struct tls_ctxs *t);

/* Describe the last OpenSSL error (for logs); clears the error queue. */
const char *tls_error(char *buf, size_t len);

#endif
