/* Unit tests for RFC 4515 / RFC 4514 escaping and filter expansion (src/ldap_filter.c). */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"

static const char *
fesc(const char *in, size_t len)
{
	static char out[1024];

	ck_assert_uint_lt(ldap_filter_escape(in, len, out, sizeof(out)), sizeof(out));
	return out;
}

static const char *
desc(const char *in)
{
	static char out[1024];

	ck_assert_uint_lt(ldap_dn_escape(in, strlen(in), out, sizeof(out)), sizeof(out));
	return out;
}

START_TEST(test_filter_specials)
{
	ck_assert_str_eq(fesc("alice", 5), "alice");
	ck_assert_str_eq(fesc("*", 1), "\\2a");
	ck_assert_str_eq(fesc("(", 1), "\\28");
	ck_assert_str_eq(fesc(")", 1), "\\29");
	ck_assert_str_eq(fesc("\\", 1), "\\5c");
	ck_assert_str_eq(fesc("a\0b", 3), "a\\00b");
	ck_assert_str_eq(fesc("*)(uid=*", 8), "\\2a\\29\\28uid=\\2a");
	ck_assert_str_eq(fesc("alice)(|(uid=*", 14), "alice\\29\\28|\\28uid=\\2a");
}
END_TEST

START_TEST(test_filter_utf8_and_controls)
{
	/* Every byte outside printable ASCII becomes \XX: UTF-8 survives intact. */
	ck_assert_str_eq(fesc("j\xc3\xbcrgen", 7), "j\\c3\\bcrgen");
	ck_assert_str_eq(fesc("a\r\nb", 4), "a\\0d\\0ab");
	ck_assert_str_eq(fesc("\x7f", 1), "\\7f");
	ck_assert_str_eq(fesc("a b@c.d", 7), "a b@c.d");
}
END_TEST

START_TEST(test_filter_truncation_reports_length)
{
	char small[4];
	size_t n = ldap_filter_escape("***", 3, small, sizeof(small));

	ck_assert_uint_eq(n, 9);
	ck_assert_uint_lt(strlen(small), sizeof(small));
}
END_TEST

/* What a short buffer holds is a prefix of the full escape, never a hole. */
START_TEST(test_truncation_keeps_a_prefix)
{
	char buf[12];

	memset(buf, 'Z', sizeof(buf));
	ck_assert_uint_eq(ldap_filter_escape("\\2a(|(objectClass=*))", 21, buf,
	    sizeof(buf)), 33);
	ck_assert_str_eq(buf, "\\5c2a\\28|");
	memset(buf, 'Z', sizeof(buf));
	ck_assert_uint_eq(ldap_dn_escape("a,b,c,d,e,f,g", 13, buf, 6), 19);
	ck_assert_str_eq(buf, "a\\,b");
}
END_TEST

START_TEST(test_dn_escape)
{
	ck_assert_str_eq(desc("alice"), "alice");
	ck_assert_str_eq(desc("a,b"), "a\\,b");
	ck_assert_str_eq(desc("a+b"), "a\\+b");
	ck_assert_str_eq(desc("#x"), "\\#x");
	ck_assert_str_eq(desc(" x "), "\\ x\\ ");
	ck_assert_str_eq(desc("a\"b<c>d;e\\f"), "a\\\"b\\<c\\>d\\;e\\\\f");
	ck_assert_str_eq(desc("a=b"), "a\\3db");
}
END_TEST

static struct username
name_of(const char *full, const char *local, const char *domain)
{
	struct username u;

	strcpy(u.full, full);
	strcpy(u.local, local);
	strcpy(u.domain, domain);
	return u;
}

START_TEST(test_expand_placeholders)
{
	struct username u = name_of("bob@example.net", "bob", "example.net");
	char out[256];

	ck_assert_int_eq(ldap_expand("(&(uid=%l)(dc=%d)(mail=%u)(p=%p)(x=100%%))", &u,
	    PROTO_POP3, false, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "(&(uid=bob)(dc=example.net)(mail=bob@example.net)"
	    "(p=pop3)(x=100%))");
	ck_assert_int_eq(ldap_expand("ou=%p,dc=%d", &u, PROTO_IMAP, true, out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "ou=imap,dc=example.net");
}
END_TEST

START_TEST(test_expand_escapes_values)
{
	struct username u = name_of("*)(uid=*", "*)(uid=*", "");
	char out[256];

	ck_assert_int_eq(ldap_expand("(uid=%u)", &u, PROTO_IMAP, false, out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "(uid=\\2a\\29\\28uid=\\2a)");
	u = name_of("a,b", "a,b", "");
	ck_assert_int_eq(ldap_expand("uid=%u,dc=x", &u, PROTO_IMAP, true, out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "uid=a\\,b,dc=x");
}
END_TEST

START_TEST(test_expand_errors)
{
	struct username u = name_of("bob", "bob", "");
	char out[12];

	ck_assert_int_eq(ldap_expand("(uid=%x)", &u, PROTO_IMAP, false, out,
	    sizeof(out)), -1);
	ck_assert_int_eq(ldap_expand("(uid=%u)(uid=%u)", &u, PROTO_IMAP, false,
	    out, sizeof(out)), -1);
	ck_assert_int_eq(ldap_expand("(uid=%u)", &u, PROTO_IMAP, false, out,
	    sizeof(out)), 0);
	ck_assert_int_eq(ldap_expand("%", &u, PROTO_IMAP, false, out,
	    sizeof(out)), -1);
}
END_TEST

static void
filter_ok(const char *f)
{
	size_t off = 0;
	const char *error = NULL;

	ck_assert_msg(ldap_filter_check(f, &off, &error) == 0,
	    "refused %s: %s at %zu", f, error, off);
}

static void
filter_bad(const char *f, size_t offset, const char *why)
{
	size_t off = 0;
	const char *error = NULL;

	ck_assert_msg(ldap_filter_check(f, &off, &error) == -1, "accepted %s", f);
	ck_assert_uint_eq(off, offset);
	ck_assert_msg(strstr(error, why) != NULL, "%s: %s", f, error);
}

START_TEST(test_filter_grammar)
{
	filter_ok("(uid=alice)");
	filter_ok("(uid=)");
	filter_ok("(uid=*)");
	filter_ok("(cn=a*b*c)");
	filter_ok("(cn=*a*)");
	filter_ok("(cn=\\2a\\28\\29\\5c\\00)");
	filter_ok("(&(objectClass=perditionPopmap)(uid=x))");
	filter_ok("(|(&(a=1)(b=2))(!(c=3)))");
	filter_ok("(age>=5)");
	filter_ok("(age<=5)");
	filter_ok("(sn~=smith)");
	filter_ok("(cn;lang-en=x)");
	filter_ok("(2.5.4.3=x)");
	filter_ok("(cn:caseExactMatch:=Fred)");
	filter_ok("(cn:dn:=x)");
	filter_ok("(:dn:2.5.13.5:=x)");
	filter_ok("(:1.2.3:=x)");
	filter_ok("(mail=j\xc3\xbcrgen@example.org)");

	filter_bad("", 0, "expected '('");
	filter_bad("uid=x", 0, "expected '('");
	filter_bad("(uid=x", 6, "missing ')'");
	filter_bad("(uid=x))", 7, "text after");
	filter_bad("(uid=a(b)", 6, "'(' in a value");
	filter_bad("(uid=\\zz)", 5, "hex escape");
	filter_bad("(uid=\\4)", 5, "hex escape");
	filter_bad("(&)", 2, "at least one filter");
	filter_bad("(!)", 2, "expected '('");
	filter_bad("(=x)", 1, "attribute name");
	filter_bad("(1uid=x)", 2, "filter type");
	filter_bad("(01.2=x)", 1, "leading zero");
	filter_bad("(uid~x)", 4, "expected '='");
	filter_bad("(uid>=a*)", 7, "'*' in a value");
	filter_bad("(uid)", 4, "filter type");
	filter_bad("(cn;=x)", 4, "empty attribute option");
	filter_bad("(cn:=x", 6, "missing ')'");
}
END_TEST

START_TEST(test_filter_depth_bounded)
{
	char f[4096];
	size_t o = 0, off;
	const char *error;

	for (int i = 0; i < 40; i++)
		o += (size_t)snprintf(f + o, sizeof(f) - o, "(!");
	o += (size_t)snprintf(f + o, sizeof(f) - o, "(a=b)");
	for (int i = 0; i < 40; i++)
		f[o++] = ')';
	f[o] = '\0';
	ck_assert_int_eq(ldap_filter_check(f, &off, &error), -1);
	ck_assert_str_eq(error, "filter nested too deeply");
}
END_TEST

static Suite *
ldap_filter_suite(void)
{
	Suite *s = suite_create("ldap_filter");
	TCase *tc = tcase_create("escape");

	tcase_add_test(tc, test_filter_specials);
	tcase_add_test(tc, test_filter_utf8_and_controls);
	tcase_add_test(tc, test_filter_truncation_reports_length);
	tcase_add_test(tc, test_truncation_keeps_a_prefix);
	tcase_add_test(tc, test_dn_escape);
	tcase_add_test(tc, test_expand_placeholders);
	tcase_add_test(tc, test_expand_escapes_values);
	tcase_add_test(tc, test_expand_errors);
	tcase_add_test(tc, test_filter_grammar);
	tcase_add_test(tc, test_filter_depth_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ldap_filter_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
