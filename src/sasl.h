/*
 * SASL pieces of the pre-login dialogue: base64 (RFC 4648) and the PLAIN
 * (RFC 4616) message.  Pure functions; the protocol modules drive the
 * exchange.
 */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stddef.h>

/* Credentials carried by a client's login; free with sasl_creds_clear. */
struct sasl_creds {
	char	*authzid;	/* NULL when absent or equal to authcid */
	char	*authcid;
	size_t	 authcid_len;
	char	*password;
	size_t	 password_len;
};

enum sasl_mech {
	SASL_MECH_NONE,
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
};

/* Case-insensitive mechanism name lookup; SASL_MECH_NONE if unsupported. */
enum sasl_mech sasl_mech_parse(const char *name);

/* Bytes needed to encode `len` bytes, including the NUL. */
#define BASE64_ENCODED_SIZE(len)	(((len) + 2) / 3 * 4 + 1)

/* Encode into out (NUL-terminated); returns the length without NUL. */
size_t	base64_encode(const void *in, size_t len, char *out);
/*
 * Decode `in` (no white space; padding optional) into out, which must hold
 * inlen / 4 * 3 + 3 bytes.  -1 on any character outside the alphabet or a
 * bad length.
 */
int	base64_decode(const char *in, size_t inlen, unsigned char *out,
	    size_t *outlen_r);

/* Decode into a fresh NUL-terminated string (malloc'd); NULL if invalid. */
char	*base64_decode_alloc(const char *in, size_t inlen, size_t *outlen_r);

/*
 * Parse a decoded PLAIN message "authzid NUL authcid NUL passwd".  -1 with a
 * reason if malformed or if authzid names someone other than authcid.
 */
int	sasl_plain_parse(const unsigned char *msg, size_t len,
	    struct sasl_creds *creds, const char **error_r);

/* Start Cyrus SASL's client side (once, before threads).  0 or -1. */
int	sasl_client_setup(void);
void	sasl_client_teardown(void);

/*
 * A master-user login (backend.login = "master"): the base64 initial
 * response of AUTHENTICATE PLAIN with authzid = the user and the master's
 * credentials, produced by Cyrus SASL's client.  *b64_r is malloc'd and
 * holds a secret (wipe it).  0 ok, -1 with a reason.
 */
int	sasl_master_plain(const char *service, const char *host,
	    const char *authzid, const char *authcid, const char *password,
	    char **b64_r, const char **error_r);

/* Set credentials from separate strings (LOGIN, USER/PASS). */
void	sasl_creds_set(struct sasl_creds *creds, const char *user, size_t ulen,
	    const char *pass, size_t plen);
/* Wipe and free. */
void	sasl_creds_clear(struct sasl_creds *creds);

#endif
