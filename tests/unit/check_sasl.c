/* Unit tests for base64, SASL PLAIN and mechanism names (src/sasl.h). */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

/* Decode a NUL-terminated string; -1 or the decoded length. */
static long
decode(const char *in, unsigned char *out, size_t outsize)
{
	size_t inlen = strlen(in), outlen = (size_t)-1;

	ck_assert_uint_ge(outsize, inlen / 4 * 3 + 3);
	if (base64_decode(in, inlen, out, &outlen) < 0)
		return -1;
	ck_assert_uint_le(outlen, inlen / 4 * 3 + 3);
	return (long)outlen;
}

/* Base64. */

START_TEST(test_rfc4648_vectors)
{
	static const struct {
		const char	*plain;
		const char	*b64;
	} v[] = {
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t len = strlen(v[i].plain);
		char enc[BASE64_ENCODED_SIZE(16)];
		unsigned char dec[32];

		ck_assert_uint_eq(base64_encode(v[i].plain, len, enc), strlen(v[i].b64));
		ck_assert_str_eq(enc, v[i].b64);
		ck_assert_int_eq(decode(v[i].b64, dec, sizeof(dec)), (long)len);
		ck_assert_mem_eq(dec, v[i].plain, len);
	}
}
END_TEST

START_TEST(test_alphabet_edges)
{
	static const unsigned char bytes[] = { 0xfb, 0xff, 0xbf, 0x00, 0x10, 0x83 };
	char enc[BASE64_ENCODED_SIZE(sizeof(bytes))];
	unsigned char dec[16];

	base64_encode(bytes, sizeof(bytes), enc);
	ck_assert_str_eq(enc, "+/+/ABCD");
	ck_assert_int_eq(decode("+/+/ABCD", dec, sizeof(dec)), 6);
	ck_assert_mem_eq(dec, bytes, 6);
}
END_TEST

START_TEST(test_round_trip_0_to_20)
{
	for (size_t len = 0; len <= 20; len++) {
		unsigned char in[20], dec[32];
		char enc[BASE64_ENCODED_SIZE(20)];
		size_t enclen;

		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)(i * 37 + len * 101 + 0x80);
		memset(enc, 'Z', sizeof(enc));
		enclen = base64_encode(in, len, enc);
		ck_assert_uint_eq(enclen, (len + 2) / 3 * 4);
		ck_assert_uint_eq(enclen + 1, BASE64_ENCODED_SIZE(len));
		ck_assert_int_eq(enc[enclen], '\0');
		ck_assert_int_eq(decode(enc, dec, sizeof(dec)), (long)len);
		ck_assert_mem_eq(dec, in, len);

		/* Padding is optional on input. */
		while (enclen > 0 && enc[enclen - 1] == '=')
			enc[--enclen] = '\0';
		ck_assert_int_eq(decode(enc, dec, sizeof(dec)), (long)len);
		ck_assert_mem_eq(dec, in, len);
	}
}
END_TEST

START_TEST(test_decode_without_padding)
{
	unsigned char dec[16];

	ck_assert_int_eq(decode("Zg", dec, sizeof(dec)), 1);
	ck_assert_mem_eq(dec, "f", 1);
	ck_assert_int_eq(decode("Zm8", dec, sizeof(dec)), 2);
	ck_assert_mem_eq(dec, "fo", 2);
	ck_assert_int_eq(decode("Zm9vYg", dec, sizeof(dec)), 4);
	ck_assert_mem_eq(dec, "foob", 4);
	ck_assert_int_eq(decode("Zm9vYmE", dec, sizeof(dec)), 5);
	ck_assert_mem_eq(dec, "fooba", 5);
}
END_TEST

START_TEST(test_decode_invalid_characters)
{
	static const char *const bad[] = {
		"Zm9v!", "Zm 9v", "Zm9v\n", "Zm9\r", "Zm-v", "Zm_v", "Zm.v",
		"Z\2009v", "Zm9v\xff", "Zg=a", "Zg==Zg==", "=Zm9", "Z=m9",
		"Zm9v=Zm9",
	};
	unsigned char dec[32];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(decode(bad[i], dec, sizeof(dec)) == -1,
		    "accepted \"%s\"", bad[i]);

	/* An embedded NUL is outside the alphabet too. */
	size_t outlen;
	ck_assert_int_eq(base64_decode("Zm\0v", 4, dec, &outlen), -1);
}
END_TEST

START_TEST(test_decode_bad_lengths)
{
	static const char *const bad[] = {
		"Z", "Zm9vY", "Zm9vYmFyZ", "Z===", "Zm9v=", "Zm9v==", "Zg=",
		"Zm9vYg=", "=", "==", "===", "====", "Zm8==",
	};
	unsigned char dec[32];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(decode(bad[i], dec, sizeof(dec)) == -1,
		    "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(test_decode_non_canonical)
{
	/* Unused trailing bits must be zero. */
	static const char *const bad[] = {
		"Zh==", "Zh", "Zm9=", "Zm9", "Zm9vYh==", "Zm9vYmF=", "AB==", "AAB=",
	};
	unsigned char dec[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(decode(bad[i], dec, sizeof(dec)) == -1,
		    "accepted non-canonical \"%s\"", bad[i]);
	ck_assert_int_eq(decode("AA==", dec, sizeof(dec)), 1);
	ck_assert_int_eq(dec[0], 0);
	ck_assert_int_eq(decode("AAA=", dec, sizeof(dec)), 2);
}
END_TEST

START_TEST(test_decode_long)
{
	unsigned char in[3000], dec[3000 + 3];
	char enc[BASE64_ENCODED_SIZE(3000)];
	size_t outlen = 0;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i ^ (i >> 8));
	base64_encode(in, sizeof(in), enc);
	ck_assert_int_eq(base64_decode(enc, strlen(enc), dec, &outlen), 0);
	ck_assert_uint_eq(outlen, sizeof(in));
	ck_assert_mem_eq(dec, in, sizeof(in));
}
END_TEST

/* PLAIN. */

#define PLAIN(s)	((const unsigned char *)(s)), (sizeof(s) - 1)

START_TEST(test_plain_no_authzid)
{
	struct sasl_creds c;
	const char *err = NULL;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sasl_plain_parse(PLAIN("\0user\0pass"), &c, &err), 0);
	ck_assert_ptr_null(c.authzid);
	ck_assert_str_eq(c.authcid, "user");
	ck_assert_uint_eq(c.authcid_len, 4);
	ck_assert_str_eq(c.password, "pass");
	ck_assert_uint_eq(c.password_len, 4);
	sasl_creds_clear(&c);
	ck_assert_ptr_null(c.authcid);
	ck_assert_ptr_null(c.password);
	ck_assert_uint_eq(c.password_len, 0);
}
END_TEST

START_TEST(test_plain_authzid_same)
{
	struct sasl_creds c;
	const char *err = NULL;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sasl_plain_parse(PLAIN("user\0user\0pass"), &c, &err), 0);
	ck_assert_ptr_null(c.authzid);	/* NULL when equal to authcid */
	ck_assert_str_eq(c.authcid, "user");
	ck_assert_str_eq(c.password, "pass");
	sasl_creds_clear(&c);
}
END_TEST

START_TEST(test_plain_authzid_other)
{
	static const struct {
		const char	*msg;
		size_t		 len;
	} bad[] = {
		{ "other\0user\0pass", 15 },
		{ "use\0user\0pass", 13 },
		{ "userx\0user\0pass", 15 },
		{ "USER\0user\0pass", 14 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sasl_creds c;
		const char *err = NULL;

		memset(&c, 0, sizeof(c));
		ck_assert_int_eq(sasl_plain_parse((const unsigned char *)bad[i].msg,
		    bad[i].len, &c, &err), -1);
		ck_assert_ptr_nonnull(err);
		ck_assert_ptr_null(c.authcid);
		ck_assert_ptr_null(c.password);
	}
}
END_TEST

START_TEST(test_plain_missing_nuls)
{
	struct sasl_creds c;
	const char *err;

	memset(&c, 0, sizeof(c));
	err = NULL;
	ck_assert_int_eq(sasl_plain_parse(PLAIN("userpass"), &c, &err), -1);
	ck_assert_ptr_nonnull(err);
	err = NULL;
	ck_assert_int_eq(sasl_plain_parse(PLAIN("\0userpass"), &c, &err), -1);
	ck_assert_ptr_nonnull(err);
	err = NULL;
	ck_assert_int_eq(sasl_plain_parse(PLAIN("user\0pass"), &c, &err), -1);
	ck_assert_ptr_nonnull(err);
	err = NULL;
	ck_assert_int_eq(sasl_plain_parse((const unsigned char *)"", 0, &c, &err), -1);
	ck_assert_ptr_nonnull(err);
	err = NULL;
	ck_assert_int_eq(sasl_plain_parse(PLAIN("\0"), &c, &err), -1);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_null(c.authcid);
}
END_TEST

START_TEST(test_plain_empty_user)
{
	struct sasl_creds c;
	const char *err = NULL;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sasl_plain_parse(PLAIN("\0\0pass"), &c, &err), -1);
	ck_assert_ptr_nonnull(err);
	err = NULL;
	ck_assert_int_eq(sasl_plain_parse(PLAIN("x\0\0pass"), &c, &err), -1);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_null(c.authcid);
}
END_TEST

START_TEST(test_plain_nul_in_password)
{
	struct sasl_creds c;
	const char *err = NULL;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sasl_plain_parse(PLAIN("\0user\0pa\0ss"), &c, &err), -1);
	ck_assert_ptr_nonnull(err);
	err = NULL;
	ck_assert_int_eq(sasl_plain_parse(PLAIN("\0user\0pass\0"), &c, &err), -1);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_null(c.password);
}
END_TEST

START_TEST(test_plain_8bit_and_spaces)
{
	struct sasl_creds c;
	const char *err = NULL;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sasl_plain_parse(
	    PLAIN("\0j\xc3\xbcrgen@example.org\0p \xc3\xa4ss "), &c, &err), 0);
	ck_assert_str_eq(c.authcid, "j\xc3\xbcrgen@example.org");
	ck_assert_str_eq(c.password, "p \xc3\xa4ss ");
	ck_assert_uint_eq(c.password_len, 7);
	sasl_creds_clear(&c);
}
END_TEST

START_TEST(test_plain_from_base64)
{
	/* "\0user\0pass" as a client sends it. */
	unsigned char msg[32];
	struct sasl_creds c;
	const char *err = NULL;
	long n = decode("AHVzZXIAcGFzcw==", msg, sizeof(msg));

	ck_assert_int_eq(n, 10);
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sasl_plain_parse(msg, (size_t)n, &c, &err), 0);
	ck_assert_str_eq(c.authcid, "user");
	ck_assert_str_eq(c.password, "pass");
	sasl_creds_clear(&c);
}
END_TEST

START_TEST(test_plain_reparse_replaces)
{
	/* Parsing into used credentials frees the old ones (ASan checks). */
	struct sasl_creds c;
	const char *err = NULL;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sasl_plain_parse(PLAIN("\0a\0b"), &c, &err), 0);
	ck_assert_int_eq(sasl_plain_parse(PLAIN("\0cc\0dd"), &c, &err), 0);
	ck_assert_str_eq(c.authcid, "cc");
	ck_assert_str_eq(c.password, "dd");
	sasl_creds_clear(&c);
	sasl_creds_clear(&c);	/* twice is harmless */
}
END_TEST

START_TEST(test_creds_set)
{
	struct sasl_creds c;

	memset(&c, 0, sizeof(c));
	sasl_creds_set(&c, "alice@x", 5, "secret!", 6);
	ck_assert_str_eq(c.authcid, "alice");
	ck_assert_uint_eq(c.authcid_len, 5);
	ck_assert_str_eq(c.password, "secret");
	ck_assert_uint_eq(c.password_len, 6);
	ck_assert_ptr_null(c.authzid);
	sasl_creds_set(&c, "bob", 3, "", 0);
	ck_assert_str_eq(c.authcid, "bob");
	ck_assert_str_eq(c.password, "");
	sasl_creds_clear(&c);
}
END_TEST

/* Mechanism names. */

START_TEST(test_mech_parse)
{
	ck_assert_int_eq(sasl_mech_parse("PLAIN"), SASL_MECH_PLAIN);
	ck_assert_int_eq(sasl_mech_parse("plain"), SASL_MECH_PLAIN);
	ck_assert_int_eq(sasl_mech_parse("PlAiN"), SASL_MECH_PLAIN);
	ck_assert_int_eq(sasl_mech_parse("LOGIN"), SASL_MECH_LOGIN);
	ck_assert_int_eq(sasl_mech_parse("login"), SASL_MECH_LOGIN);
	ck_assert_int_eq(sasl_mech_parse("Login"), SASL_MECH_LOGIN);
	ck_assert_int_eq(sasl_mech_parse(""), SASL_MECH_NONE);
	ck_assert_int_eq(sasl_mech_parse("PLAINX"), SASL_MECH_NONE);
	ck_assert_int_eq(sasl_mech_parse("PLAI"), SASL_MECH_NONE);
	ck_assert_int_eq(sasl_mech_parse("CRAM-MD5"), SASL_MECH_NONE);
	ck_assert_int_eq(sasl_mech_parse("XOAUTH2"), SASL_MECH_NONE);
	ck_assert_int_eq(sasl_mech_parse("SCRAM-SHA-256"), SASL_MECH_NONE);
	ck_assert_int_eq(sasl_mech_parse("PLAIN "), SASL_MECH_NONE);
}
END_TEST

static Suite *
sasl_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc;

	tc = tcase_create("base64");
	tcase_add_test(tc, test_rfc4648_vectors);
	tcase_add_test(tc, test_alphabet_edges);
	tcase_add_test(tc, test_round_trip_0_to_20);
	tcase_add_test(tc, test_decode_without_padding);
	tcase_add_test(tc, test_decode_invalid_characters);
	tcase_add_test(tc, test_decode_bad_lengths);
	tcase_add_test(tc, test_decode_non_canonical);
	tcase_add_test(tc, test_decode_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("plain");
	tcase_add_test(tc, test_plain_no_authzid);
	tcase_add_test(tc, test_plain_authzid_same);
	tcase_add_test(tc, test_plain_authzid_other);
	tcase_add_test(tc, test_plain_missing_nuls);
	tcase_add_test(tc, test_plain_empty_user);
	tcase_add_test(tc, test_plain_nul_in_password);
	tcase_add_test(tc, test_plain_8bit_and_spaces);
	tcase_add_test(tc, test_plain_from_base64);
	tcase_add_test(tc, test_plain_reparse_replaces);
	tcase_add_test(tc, test_creds_set);
	suite_add_tcase(s, tc);

	tc = tcase_create("mech");
	tcase_add_test(tc, test_mech_parse);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sasl_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
