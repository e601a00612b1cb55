#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sasl/sasl.h>

#include "sasl.h"
#include "util.h"

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum sasl_mech
sasl_mech_parse(const char *name)
{
	if (strcasecmp(name, "PLAIN") == 0)
		return SASL_MECH_PLAIN;
	if (strcasecmp(name, "LOGIN") == 0)
		return SASL_MECH_LOGIN;
	return SASL_MECH_NONE;
}

size_t
base64_encode(const void *in, size_t len, char *out)
{
	const unsigned char *s = in;
	size_t o = 0, i;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];

		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = b64chars[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)s[i] << 16;

		if (i + 1 < len)
			v |= (unsigned)s[i + 1] << 8;
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode(const char *in, size_t inlen, unsigned char *out, size_t *outlen_r)
{
	size_t o = 0, pad = 0;
	unsigned acc = 0;
	int bits = 0;

	while (inlen > 0 && in[inlen - 1] == '=' && pad < 2) {
		inlen--;
		pad++;
	}
	if (inlen % 4 == 1 || (pad > 0 && (inlen + pad) % 4 != 0))
		return -1;
	for (size_t i = 0; i < inlen; i++) {
		int v = b64_value((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero in canonical encodings. */
	if (acc != 0)
		return -1;
	*outlen_r = o;
	return 0;
}

char *
base64_decode_alloc(const char *in, size_t inlen, size_t *outlen_r)
{
	unsigned char *out = xmalloc(inlen / 4 * 3 + 3);

	if (base64_decode(in, inlen, out, outlen_r) < 0) {
		free(out);
		return NULL;
	}
	out[*outlen_r] = '\0';
	return (char *)out;
}

void
sasl_creds_set(struct sasl_creds *creds, const char *user, size_t ulen,
    const char *pass, size_t plen)
{
	sasl_creds_clear(creds);
	creds->authcid = xstrndup(user, ulen);
	creds->authcid_len = ulen;
	creds->password = xstrndup(pass, plen);
	creds->password_len = plen;
}

int
sasl_plain_parse(const unsigned char *msg, size_t len, struct sasl_creds *creds,
    const char **error_r)
{
	const unsigned char *nul1, *nul2;
	size_t zlen, clen, plen;

	if ((nul1 = memchr(msg, '\0', len)) == NULL ||
	    (nul2 = memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg))) == NULL) {
		*error_r = "malformed PLAIN message";
		return -1;
	}
	zlen = (size_t)(nul1 - msg);
	clen = (size_t)(nul2 - nul1 - 1);
	plen = len - (size_t)(nul2 + 1 - msg);
	if (clen == 0) {
		*error_r = "empty user name";
		return -1;
	}
	if (memchr(nul2 + 1, '\0', plen) != NULL) {
		*error_r = "malformed PLAIN message";
		return -1;
	}
	if (zlen > 0 && (zlen != clen || memcmp(msg, nul1 + 1, clen) != 0)) {
		*error_r = "authorization identity must match the user";
		return -1;
	}
	sasl_creds_set(creds, (const char *)nul1 + 1, clen,
	    (const char *)nul2 + 1, plen);
	return 0;
}

void
sasl_creds_clear(struct sasl_creds *creds)
{
	secret_free(&creds->password);
	free(creds->authzid);
	free(creds->authcid);
	creds->authzid = creds->authcid = NULL;
	creds->authcid_len = creds->password_len = 0;
}

/* Cyrus SASL client: callbacks hand it the master identity. */
struct master_ctx {
	const char	*authzid;
	const char	*authcid;
	sasl_secret_t	*secret;
};

static int
cb_name(void *arg, int id, const char **result, unsigned *len)
{
	struct master_ctx *m = arg;

	*result = id == SASL_CB_USER ? m->authzid : m->authcid;
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int
cb_pass(sasl_conn_t *conn, void *arg, int id, sasl_secret_t **secret_r)
{
	struct master_ctx *m = arg;

	*secret_r = m->secret;
	return SASL_OK;
}

int
sasl_client_setup(void)
{
	return sasl_client_init(NULL) == SASL_OK ? 0 : -1;
}

void
sasl_client_teardown(void)
{
	sasl_client_done();
}

int
sasl_master_plain(const char *service, const char *host, const char *authzid,
    const char *authcid, const char *password, char **b64_r,
    const char **error_r)
{
	size_t plen = strlen(password);
	struct master_ctx m = { authzid, authcid,
	    xcalloc(1, sizeof(sasl_secret_t) + plen + 1) };
	sasl_callback_t cbs[] = {
		{ SASL_CB_USER, (int (*)(void))(void (*)(void))cb_name, &m },
		{ SASL_CB_AUTHNAME, (int (*)(void))(void (*)(void))cb_name, &m },
		{ SASL_CB_PASS, (int (*)(void))(void (*)(void))cb_pass, &m },
		{ SASL_CB_LIST_END, NULL, NULL },
	};
	sasl_conn_t *conn = NULL;
	const char *out, *mech;
	unsigned outlen;
	int rc;

	m.secret->len = plen;
	memcpy(m.secret->data, password, plen);
	rc = sasl_client_new(service, host, NULL, NULL, cbs, 0, &conn);
	if (rc == SASL_OK)
		rc = sasl_client_start(conn, "PLAIN", NULL, &out, &outlen, &mech);
	if (rc == SASL_OK || rc == SASL_CONTINUE) {
		*b64_r = xmalloc(BASE64_ENCODED_SIZE(outlen));
		base64_encode(out, outlen, *b64_r);
		rc = SASL_OK;
	} else
		*error_r = sasl_errstring(rc, NULL, NULL);
	if (conn != NULL)
		sasl_dispose(&conn);
	explicit_bzero(m.secret->data, plen);
	free(m.secret);
	return rc == SASL_OK ? 0 : -1;
}
