/*
 * Fuzz the SASL responses a client sends before login: base64 decoding
 * (both entry points), the PLAIN message, the mechanism name and the
 * user-name rules applied to the result.  Invariants: what decodes
 * re-encodes to an equivalent text and decodes back to the same bytes;
 * accepted PLAIN credentials hold no NUL and a non-empty user name; an
 * accepted user name is valid UTF-8 without spaces or control bytes.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sasl.h"
#include "username.h"

const char *const fuzz_seeds[] = {
	"AGFsaWNlAHNlY3JldA==",			/* \0alice\0secret */
	"YWxpY2UAYWxpY2UAc2VjcmV0",		/* alice\0alice\0secret */
	"Ym9iAGFsaWNlAHB3",			/* authzid != authcid */
	"AABwdw==",				/* empty user */
	"AGFsaWNlAHNlYwByZXQ=",			/* NUL in the password */
	"AGrDnHJnZW5AZXhhbXBsZS5vcmcAcHc",	/* UTF-8 user, no padding */
	"YWxpY2U=",
	"=",
	"QQ=Q",
	"PLAIN",
	NULL
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *error = NULL;
	unsigned char *dec = malloc(size / 4 * 3 + 3);
	struct sasl_creds creds = { 0 };
	struct username_cfg ucfg = { true, '@', (char *)"example.org", false };
	struct username name;
	size_t declen = 0, alen = 0;
	char *alloc, *mech;

	if (base64_decode(in, size, dec, &declen) == 0) {
		char *enc = malloc(BASE64_ENCODED_SIZE(declen));
		unsigned char *back = malloc(declen + 3);
		size_t enclen = base64_encode(dec, declen, enc), backlen = 0;

		if (declen > size / 4 * 3 + 2 || enclen != strlen(enc) ||
		    base64_decode(enc, enclen, back, &backlen) != 0 ||
		    backlen != declen || memcmp(back, dec, declen) != 0)
			abort();
		free(enc);
		free(back);

		if (sasl_plain_parse(dec, declen, &creds, &error) == 0) {
			if (creds.authcid == NULL || creds.password == NULL ||
			    creds.authcid_len == 0 ||
			    strlen(creds.authcid) != creds.authcid_len ||
			    strlen(creds.password) != creds.password_len)
				abort();
			if (username_normalise(&ucfg, creds.authcid,
			    creds.authcid_len, &name, &error) == 0 &&
			    (!utf8_valid(name.full, strlen(name.full)) ||
			    strpbrk(name.full, " \t\r\n") != NULL ||
			    name.full[0] == '\0'))
				abort();
			sasl_creds_clear(&creds);
			if (creds.authcid != NULL || creds.password != NULL)
				abort();
		} else if (error == NULL)
			abort();
	}
	alloc = base64_decode_alloc(in, size, &alen);
	if ((alloc != NULL) != (base64_decode(in, size, dec, &declen) == 0) ||
	    (alloc != NULL && (alen != declen || memcmp(alloc, dec, alen) != 0 ||
	    alloc[alen] != '\0')))
		abort();
	free(alloc);
	mech = strndup(in, size < 32 ? size : 32);
	(void)sasl_mech_parse(mech);
	free(mech);
	free(dec);
	return 0;
}
