/* Unit tests for user-name normalisation and UTF-8 checks (src/username.h). */
#include "autoconf.h"

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "username.h"

static struct username_cfg
cfg_make(bool lower, char delim, const char *domain, bool strip)
{
	struct username_cfg c = {
		.lower_case = lower,
		.delimiter = delim,
		.default_domain = (char *)(uintptr_t)domain,	/* never written */
		.strip_domain = strip,
	};

	return c;
}

static int
norm(const struct username_cfg *cfg, const char *in, struct username *out,
    const char **error)
{
	*error = NULL;
	memset(out, 0x5a, sizeof(*out));
	return username_normalise(cfg, in, strlen(in), out, error);
}

#define ASSERT_NAME(cfg, in, full_, local_, domain_) do {		\
	struct username u_;						\
	const char *e_;							\
	int rc_ = norm((cfg), (in), &u_, &e_);				\
	ck_assert_msg(rc_ == 0, "\"%s\" rejected: %s", (in), e_ ? e_ : "?"); \
	ck_assert_str_eq(u_.full, (full_));				\
	ck_assert_str_eq(u_.local, (local_));				\
	ck_assert_str_eq(u_.domain, (domain_));				\
} while (0)

#define ASSERT_REJECTED_N(cfg, in, len) do {				\
	struct username u_;						\
	const char *e_ = NULL;						\
	ck_assert_msg(username_normalise((cfg), (in), (len), &u_, &e_) == -1, \
	    "accepted a bad name (%s:%d)", __FILE__, __LINE__);		\
	ck_assert_ptr_nonnull(e_);					\
	ck_assert_uint_gt(strlen(e_), 0);				\
} while (0)

#define ASSERT_REJECTED(cfg, in) ASSERT_REJECTED_N(cfg, in, strlen(in))

START_TEST(test_plain)
{
	struct username_cfg c = cfg_make(false, '@', "", false);

	ASSERT_NAME(&c, "alice@example.org", "alice@example.org", "alice",
	    "example.org");
	ASSERT_NAME(&c, "bob", "bob", "bob", "");
}
END_TEST

START_TEST(test_lower_case_on)
{
	struct username_cfg c = cfg_make(true, '@', "", false);

	ASSERT_NAME(&c, "Alice@Example.ORG", "alice@example.org", "alice",
	    "example.org");
	ASSERT_NAME(&c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz",
	    "abcdefghijklmnopqrstuvwxyz", "");
	/* Only ASCII is folded: "Ü" (C3 9C) stays as it is. */
	ASSERT_NAME(&c, "J\xc3\x9cRGEN@Example.ORG", "j\xc3\x9crgen@example.org",
	    "j\xc3\x9crgen", "example.org");
	/* Non-letters are untouched. */
	ASSERT_NAME(&c, "A.B-C_D+E[1]", "a.b-c_d+e[1]", "a.b-c_d+e[1]", "");
}
END_TEST

START_TEST(test_lower_case_off)
{
	struct username_cfg c = cfg_make(false, '@', "", false);

	ASSERT_NAME(&c, "Alice@Example.ORG", "Alice@Example.ORG", "Alice",
	    "Example.ORG");
	ASSERT_NAME(&c, "J\xc3\x9cRGEN", "J\xc3\x9cRGEN", "J\xc3\x9cRGEN", "");
}
END_TEST

START_TEST(test_default_domain)
{
	struct username_cfg c = cfg_make(true, '@', "example.net", false);

	ASSERT_NAME(&c, "Alice", "alice@example.net", "alice", "example.net");
	/* A login with a domain keeps its own. */
	ASSERT_NAME(&c, "alice@example.org", "alice@example.org", "alice",
	    "example.org");
}
END_TEST

START_TEST(test_strip_domain)
{
	struct username_cfg c = cfg_make(true, '@', "", true);

	ASSERT_NAME(&c, "Alice@Example.org", "alice", "alice", "example.org");
	ASSERT_NAME(&c, "alice", "alice", "alice", "");
	/* The last delimiter separates the domain. */
	ASSERT_NAME(&c, "a@b@c", "a@b", "a@b", "c");
}
END_TEST

START_TEST(test_default_and_strip)
{
	struct username_cfg c = cfg_make(true, '@', "example.net", true);

	/* default_domain first, then strip: the domain is still known. */
	ASSERT_NAME(&c, "Alice", "alice", "alice", "example.net");
	ASSERT_NAME(&c, "alice@example.org", "alice", "alice", "example.org");
}
END_TEST

START_TEST(test_custom_delimiter)
{
	struct username_cfg c = cfg_make(true, '%', "example.net", false);

	ASSERT_NAME(&c, "Alice%Example.org", "alice%example.org", "alice",
	    "example.org");
	/* '@' is an ordinary character now. */
	ASSERT_NAME(&c, "alice@x", "alice@x%example.net", "alice@x",
	    "example.net");

	c.strip_domain = true;
	ASSERT_NAME(&c, "bob%y", "bob", "bob", "y");
}
END_TEST

START_TEST(test_no_delimiter)
{
	/* delimiter '\0': no domain handling at all. */
	struct username_cfg c = cfg_make(false, '\0', "", false);

	ASSERT_NAME(&c, "a@b", "a@b", "a@b", "");
}
END_TEST

START_TEST(test_reject_empty_and_parts)
{
	struct username_cfg c = cfg_make(true, '@', "", false);
	struct username_cfg d = cfg_make(true, '@', "example.net", true);

	ASSERT_REJECTED(&c, "");
	ASSERT_REJECTED(&c, "@x");
	ASSERT_REJECTED(&c, "x@");
	ASSERT_REJECTED(&c, "@");
	ASSERT_REJECTED(&d, "@x");
	ASSERT_REJECTED(&d, "x@");
	ASSERT_REJECTED(&d, "");
}
END_TEST

START_TEST(test_reject_space_and_controls)
{
	struct username_cfg c = cfg_make(true, '@', "", false);
	char name[8];

	ASSERT_REJECTED(&c, "al ice");
	ASSERT_REJECTED(&c, " alice");
	ASSERT_REJECTED(&c, "alice ");
	ASSERT_REJECTED(&c, "al\tice");
	ASSERT_REJECTED(&c, "al\r\nice");
	ASSERT_REJECTED(&c, "al\x7f" "ice");
	ASSERT_REJECTED_N(&c, "al\0ice", 6);
	for (int ch = 1; ch <= 0x20; ch++) {
		name[0] = 'a';
		name[1] = (char)ch;
		name[2] = 'b';
		ASSERT_REJECTED_N(&c, name, 3);
	}
}
END_TEST

START_TEST(test_reject_invalid_utf8)
{
	struct username_cfg c = cfg_make(true, '@', "", false);

	ASSERT_REJECTED(&c, "a\xc0\x80" "b");		/* overlong NUL */
	ASSERT_REJECTED(&c, "a\xc1\xbf");		/* overlong '\x7f' */
	ASSERT_REJECTED(&c, "a\xe0\x80\xaf");		/* overlong '/' */
	ASSERT_REJECTED(&c, "a\xed\xa0\x80" "b");	/* surrogate D800 */
	ASSERT_REJECTED(&c, "a\xed\xbf\xbf");		/* surrogate DFFF */
	ASSERT_REJECTED(&c, "a\xc3");			/* truncated */
	ASSERT_REJECTED(&c, "a\xe2\x82");		/* truncated */
	ASSERT_REJECTED(&c, "a\xe2\x82@b");		/* truncated mid-name */
	ASSERT_REJECTED(&c, "a\xff" "b");
	ASSERT_REJECTED(&c, "a\xfe");
	ASSERT_REJECTED(&c, "a\x80" "b");		/* lone continuation */
	ASSERT_REJECTED(&c, "a\xf4\x90\x80\x80");	/* > U+10FFFF */
	ASSERT_REJECTED(&c, "a\xf8\x88\x80\x80\x80");	/* 5-byte form */
}
END_TEST

START_TEST(test_length_limit)
{
	struct username_cfg c = cfg_make(true, '@', "", false);
	struct username_cfg d = cfg_make(true, '@', "example.net", false);
	char name[USERNAME_MAX + 2];
	struct username u;
	const char *e;

	memset(name, 'a', USERNAME_MAX);
	name[USERNAME_MAX] = '\0';
	ck_assert_int_eq(norm(&c, name, &u, &e), 0);
	ck_assert_uint_eq(strlen(u.full), USERNAME_MAX);
	ck_assert_str_eq(u.local, name);

	name[USERNAME_MAX] = 'a';
	name[USERNAME_MAX + 1] = '\0';
	ck_assert_int_eq(norm(&c, name, &u, &e), -1);
	ck_assert_ptr_nonnull(e);

	/* The limit applies after the default domain is added. */
	memset(name, 'a', USERNAME_MAX - 12);
	name[USERNAME_MAX - 12] = '\0';		/* + "@example.net" = 256 */
	ck_assert_int_eq(norm(&d, name, &u, &e), 0);
	ck_assert_uint_eq(strlen(u.full), USERNAME_MAX);
	strcat(name, "a");
	ck_assert_int_eq(norm(&d, name, &u, &e), -1);
	ck_assert_ptr_nonnull(e);
}
END_TEST

START_TEST(test_input_not_nul_terminated)
{
	struct username_cfg c = cfg_make(true, '@', "", false);
	struct username u;
	const char *e = NULL;

	ck_assert_int_eq(username_normalise(&c, "Bob@X.org trailing", 9, &u, &e), 0);
	ck_assert_str_eq(u.full, "bob@x.org");
	ck_assert_str_eq(u.domain, "x.org");
}
END_TEST

/* What domain_from_host() makes of a name, or NULL when it refuses it. */
static const char *
from_host(const char *name)
{
	static char out[DOMAIN_NAME_MAX + 1];
	const char *e = NULL;

	memset(out, 0x5a, sizeof(out));
	if (domain_from_host(name, strlen(name), out, sizeof(out), &e) < 0) {
		ck_assert_ptr_nonnull(e);
		return NULL;
	}
	return out;
}

START_TEST(test_domain_from_host)
{
	/* A service name stands for its domain; a domain for itself. */
	ck_assert_str_eq(from_host("imap.example.net"), "example.net");
	ck_assert_str_eq(from_host("pop3.example.net"), "example.net");
	ck_assert_str_eq(from_host("mail.example.co.uk"), "example.co.uk");
	ck_assert_str_eq(from_host("example.net"), "example.net");
	ck_assert_str_eq(from_host("a.b.example.net"), "b.example.net");
	/* Lower-cased; one final dot is the root, not an empty label. */
	ck_assert_str_eq(from_host("IMAP.Example.NET"), "example.net");
	ck_assert_str_eq(from_host("imap.example.net."), "example.net");
	ck_assert_str_eq(from_host("x-1.ex-ample.n3t"), "ex-ample.n3t");
	/* A single label is no domain, nor is an address. */
	ck_assert_ptr_null(from_host("localhost"));
	ck_assert_ptr_null(from_host("localhost."));
	ck_assert_ptr_null(from_host("192.0.2.1"));
	ck_assert_ptr_null(from_host("10.0.0.300"));
	ck_assert_ptr_null(from_host(""));
	ck_assert_ptr_null(from_host("."));
}
END_TEST

/* A client-chosen name cannot carry anything into a login. */
START_TEST(test_domain_hostile_names)
{
	static const char *const bad[] = {
		"a@b.example", "imap.example.net@evil.example",
		"imap.example .net", "imap.example.net\r\nA1 LOGIN",
		"imap.exa\tmple.net", "imap.exa\x7fmple.net",
		"imap.ex\xc3\xa9mple.net", "imap.example..net", ".example.net",
		"imap.example.net..", "-imap.example.net", "imap-.example.net",
		"imap.example.net/x", "imap.example.net%00", "imap_x.example.net",
		"*.example.net", "imap.example.net:993", "[::1]", "\"x\".example",
	};
	char out[DOMAIN_NAME_MAX + 1];
	const char *e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(from_host(bad[i]) == NULL, "accepted \"%s\"", bad[i]);
	/* Bytes after a NUL are not ignored. */
	e = NULL;
	ck_assert_int_eq(domain_check("example.net\0@x", 15, out, sizeof(out),
	    &e), -1);
	ck_assert_ptr_nonnull(e);
}
END_TEST

START_TEST(test_domain_bounds)
{
	char name[400], out[DOMAIN_NAME_MAX + 1], small[12];
	const char *e;
	size_t n = 0;

	/* A label of DOMAIN_LABEL_MAX passes, one more fails. */
	memset(name, 'a', DOMAIN_LABEL_MAX);
	memcpy(name + DOMAIN_LABEL_MAX, ".net", 5);
	ck_assert_ptr_nonnull(from_host(name));
	memset(name, 'a', DOMAIN_LABEL_MAX + 1);
	memcpy(name + DOMAIN_LABEL_MAX + 1, ".net", 5);
	ck_assert_ptr_null(from_host(name));
	/* DOMAIN_NAME_MAX bytes pass (with a final dot too), one more fails. */
	while (n + 2 <= DOMAIN_NAME_MAX - 4) {
		name[n++] = 'b';
		name[n++] = '.';
	}
	while (n < DOMAIN_NAME_MAX - 3)
		name[n++] = 'c';
	memcpy(name + n, "net", 4);
	n += 3;
	ck_assert_uint_eq(strlen(name), DOMAIN_NAME_MAX);
	ck_assert_int_eq(domain_check(name, n, out, sizeof(out), &e), 0);
	name[n] = '.';
	ck_assert_int_eq(domain_check(name, n + 1, out, sizeof(out), &e), 0);
	name[n] = '\0';
	memmove(name + 1, name, n + 1);
	name[0] = 'd';
	ck_assert_int_eq(domain_check(name, n + 1, out, sizeof(out), &e), -1);
	/* The output buffer is a bound too. */
	ck_assert_int_eq(domain_check("imap.example.net", 16, small,
	    sizeof(small), &e), -1);
}
END_TEST

/* A session's domain goes before username.default_domain, for bare names. */
START_TEST(test_domain_override)
{
	struct username_cfg c = cfg_make(true, '@', "global.example", false);
	struct username u;
	const char *e;

	ck_assert_int_eq(username_normalise_domain(&c, "site.example", "Bob",
	    3, &u, &e), 0);
	ck_assert_str_eq(u.full, "bob@site.example");
	ck_assert_str_eq(u.local, "bob");
	ck_assert_str_eq(u.domain, "site.example");
	/* NULL is the global default; "" is none. */
	ck_assert_int_eq(username_normalise_domain(&c, NULL, "bob", 3, &u, &e), 0);
	ck_assert_str_eq(u.full, "bob@global.example");
	ck_assert_int_eq(username_normalise_domain(&c, "", "bob", 3, &u, &e), 0);
	ck_assert_str_eq(u.full, "bob");
	ck_assert_str_eq(u.domain, "");
	/* A login with a domain keeps its own. */
	ck_assert_int_eq(username_normalise_domain(&c, "site.example",
	    "bob@own.example", 15, &u, &e), 0);
	ck_assert_str_eq(u.full, "bob@own.example");
	/* strip_domain applies after the domain is added. */
	c.strip_domain = true;
	ck_assert_int_eq(username_normalise_domain(&c, "site.example", "bob",
	    3, &u, &e), 0);
	ck_assert_str_eq(u.full, "bob");
	ck_assert_str_eq(u.domain, "site.example");
	/* The whole name still fits USERNAME_MAX. */
	{
		char big[USERNAME_MAX];

		memset(big, 'x', sizeof(big));
		c.strip_domain = false;
		ck_assert_int_eq(username_normalise_domain(&c, "site.example",
		    big, USERNAME_MAX - 13, &u, &e), 0);
		ck_assert_int_eq(username_normalise_domain(&c, "site.example",
		    big, USERNAME_MAX - 12, &u, &e), -1);
	}
}
END_TEST

START_TEST(test_utf8_valid)
{
	static const struct {
		const char	*s;
		bool		 ok;
	} cases[] = {
		{ "", true },
		{ "plain ascii", true },
		{ "\x7f", true },
		{ "\xc2\x80", true },			/* U+0080 */
		{ "\xc3\xa9", true },			/* é */
		{ "\xdf\xbf", true },			/* U+07FF */
		{ "\xe0\xa0\x80", true },		/* U+0800 */
		{ "\xe2\x82\xac", true },		/* € */
		{ "\xed\x9f\xbf", true },		/* U+D7FF */
		{ "\xee\x80\x80", true },		/* U+E000 */
		{ "\xef\xbf\xbf", true },		/* U+FFFF */
		{ "\xf0\x90\x80\x80", true },		/* U+10000 */
		{ "\xf0\x9f\x94\x91", true },		/* 🔑 */
		{ "\xf4\x8f\xbf\xbf", true },		/* U+10FFFF */
		{ "a\xc3\xa9z\xe2\x82\xac!", true },
		{ "\x80", false },
		{ "\xbf", false },
		{ "\xc0\x80", false },
		{ "\xc1\xbf", false },
		{ "\xe0\x80\x80", false },
		{ "\xe0\x9f\xbf", false },		/* overlong U+07FF */
		{ "\xf0\x80\x80\x80", false },
		{ "\xf0\x8f\xbf\xbf", false },		/* overlong U+FFFF */
		{ "\xed\xa0\x80", false },		/* U+D800 */
		{ "\xed\xbf\xbf", false },		/* U+DFFF */
		{ "\xf4\x90\x80\x80", false },		/* U+110000 */
		{ "\xf5\x80\x80\x80", false },
		{ "\xf8\x88\x80\x80\x80", false },
		{ "\xfc\x84\x80\x80\x80\x80", false },
		{ "\xfe", false },
		{ "\xff", false },
		{ "\xc3", false },
		{ "\xe2\x82", false },
		{ "\xf0\x9f\x94", false },
		{ "\xc3z", false },
		{ "\xe2\x82z", false },
		{ "\xc3\xa9\xc3", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(utf8_valid(cases[i].s, strlen(cases[i].s)) == cases[i].ok,
		    "case %zu: expected %s", i, cases[i].ok ? "valid" : "invalid");

	/* Embedded NUL is a valid code point; length is what counts. */
	ck_assert(utf8_valid("a\0b", 3));
	ck_assert(utf8_valid("\xe2\x82\xac", 2) == false);
	ck_assert(utf8_valid("\xff", 0));
}
END_TEST

static Suite *
username_suite(void)
{
	Suite *s = suite_create("username");
	TCase *tc = tcase_create("normalise");

	tcase_add_test(tc, test_plain);
	tcase_add_test(tc, test_lower_case_on);
	tcase_add_test(tc, test_lower_case_off);
	tcase_add_test(tc, test_default_domain);
	tcase_add_test(tc, test_strip_domain);
	tcase_add_test(tc, test_default_and_strip);
	tcase_add_test(tc, test_custom_delimiter);
	tcase_add_test(tc, test_no_delimiter);
	tcase_add_test(tc, test_reject_empty_and_parts);
	tcase_add_test(tc, test_reject_space_and_controls);
	tcase_add_test(tc, test_reject_invalid_utf8);
	tcase_add_test(tc, test_length_limit);
	tcase_add_test(tc, test_input_not_nul_terminated);
	tcase_add_test(tc, test_domain_from_host);
	tcase_add_test(tc, test_domain_hostile_names);
	tcase_add_test(tc, test_domain_bounds);
	tcase_add_test(tc, test_domain_override);
	suite_add_tcase(s, tc);

	tc = tcase_create("utf8");
	tcase_add_test(tc, test_utf8_valid);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(username_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
