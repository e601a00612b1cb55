/*
 * OpenSSL for both sides.  The server context terminates clients' TLS
 * (implicit or after STARTTLS/STLS), choosing a certificate by SNI; client
 * contexts talk TLS to backends, verifying certificates and host names
 * unless a backend explicitly opts out.  Contexts belong to a config
 * generation, so SIGHUP brings new certificates to new handshakes while
 * live sessions keep theirs.
 *
 * Every context gets the same protocol floor and suites: TLS 1.2 or later
 * (tls.min_version may raise it to 1.3); for TLS 1.2, unless tls.ciphers
 * says otherwise, ECDHE with AES-GCM or ChaCha20-Poly1305 only, for ECDSA
 * and RSA certificates; OpenSSL's TLS 1.3 suites; groups X25519, P-256,
 * P-384; no compression, no renegotiation.  Client-side TLS resumes
 * sessions from a server cache or from tickets (see tls_tickets below).
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"

/*
 * Seconds a ticket key encrypts new tickets, and the session lifetime
 * (a ticket or cached session older than this is not resumed).
 */
#define TLS_TICKET_ROTATE	(4 * 3600)
/* Sessions the server cache holds (TLS 1.2 session IDs); OpenSSL's default. */
#define TLS_SESSION_CACHE	20480

#define TLS_TICKET_NAME_LEN	16

struct tls_ticket_key {
	unsigned char	 name[TLS_TICKET_NAME_LEN];	/* in the ticket */
	unsigned char	 aes[32];		/* AES-256-CBC */
	unsigned char	 hmac[32];		/* HMAC-SHA256 */
	uint64_t	 made;			/* s, monotonic clock */
};

/*
 * Session-ticket keys: the current key and the one before it.  The current
 * key encrypts for `lifetime` seconds after it was made; the first use
 * after that makes a fresh key (RAND_bytes) current and keeps the old one
 * as previous, for decryption only.  A key decrypts until 2 * lifetime
 * after it was made, so a ticket is good for at least `lifetime` seconds
 * (the session lifetime) and no key outlives 2 * lifetime; a key that is
 * replaced or expires is wiped.  Thread-safe: workers share one SSL_CTX.
 */
struct tls_tickets {
	pthread_mutex_t		 mtx;
	struct tls_ticket_key	 key[2];	/* current, previous */
	bool			 have_prev;
	uint64_t		 lifetime;	/* seconds, > 0 */
};

/* A ring with one fresh key made at `now`.  0, or -1 without randomness. */
int	tls_tickets_init(struct tls_tickets *tk, uint64_t lifetime,
	    uint64_t now);
/* Wipe every key and release the mutex. */
void	tls_tickets_wipe(struct tls_tickets *tk);
/*
 * Copy the key to encrypt a ticket with at `now` into key_r, rotating
 * first if the current one is due.  0, or -1 if a due rotation found no
 * randomness (nothing changes then).  The caller wipes key_r.
 */
int	tls_tickets_current(struct tls_tickets *tk, uint64_t now,
	    struct tls_ticket_key *key_r);
/*
 * Copy the key called `name` into key_r if it still decrypts at `now`:
 * 1 it is the current key, 2 the previous one (the ticket should be
 * renewed), 0 unknown or expired (full handshake).  The caller wipes key_r.
 */
int	tls_tickets_find(struct tls_tickets *tk, uint64_t now,
	    const unsigned char name[TLS_TICKET_NAME_LEN],
	    struct tls_ticket_key *key_r);

/*
 * Every context one config needs.  It must not move once built: the
 * contexts' callbacks find it by its address.
 */
struct tls_ctxs {
	SSL_CTX		*server;		/* NULL: no client-side TLS */
	SSL_CTX		**sni;			/* tls.certificates[i] */
	size_t		 nsni;
	struct tls_tickets *tickets;		/* with server */
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
