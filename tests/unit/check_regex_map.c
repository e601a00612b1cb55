/*
 * Unit tests for the regex map (src/directory/regex.c) and for chains of
 * back-ends (src/directory/chain.c): line parsing, $n substitution, the
 * map's bounds, lookups, and what a chain does with each answer.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "directory.h"
#include "directory/regex.h"
#include "helpers.h"
#include "route.h"
#include "username.h"

#define ASSERT_HOST(r, i, host_, port_) do {				\
	ck_assert_uint_gt((r)->nhosts, (i));				\
	ck_assert_str_eq((r)->hosts[i].host, (host_));			\
	ck_assert_uint_eq((r)->hosts[i].port, (port_));			\
} while (0)

/* Parse a line that must be a rule; the caller frees it. */
static void
parse_ok(const char *line, struct regex_rule *rule)
{
	char why[512] = "";
	int rc = regex_map_parse_line(line, rule, why, sizeof(why));

	ck_assert_msg(rc == 1, "\"%s\": rc %d (%s)", line, rc, why);
}

/* Parse a line that must be refused; returns the reason (static). */
static const char *
parse_bad(const char *line)
{
	static char why[512];
	struct regex_rule rule = { 0 };
	int rc;

	why[0] = '\0';
	rc = regex_map_parse_line(line, &rule, why, sizeof(why));
	ck_assert_msg(rc == -1, "\"%s\": rc %d", line, rc);
	ck_assert_msg(why[0] != '\0', "\"%s\": no reason", line);
	return why;
}

#define ASSERT_BAD_CONTAINS(line, needle) do {				\
	const char *why_ = parse_bad(line);				\
	ck_assert_msg(strstr(why_, (needle)) != NULL,			\
	    "\"%s\": got \"%s\", want \"%s\"", (line), why_, (needle));	\
} while (0)

/* Match `login` against the rule and expand its result into out. */
static int
match_expand(const struct regex_rule *rule, const char *login, char *out,
    size_t outlen)
{
	regmatch_t m[REGEX_MAP_GROUPS];

	ck_assert_int_eq(regexec(&rule->re, login, REGEX_MAP_GROUPS, m, 0), 0);
	return regex_map_expand(rule->result, login, m, out, outlen);
}

START_TEST(test_blank_and_comment)
{
	struct regex_rule rule = { 0 };
	char why[128];

	ck_assert_int_eq(regex_map_parse_line("", &rule, why, sizeof(why)), 0);
	ck_assert_int_eq(regex_map_parse_line("\n", &rule, why, sizeof(why)), 0);
	ck_assert_int_eq(regex_map_parse_line(" \t\r\n", &rule, why, sizeof(why)), 0);
	ck_assert_int_eq(regex_map_parse_line("# ^a$: h\n", &rule, why, sizeof(why)), 0);
	ck_assert_int_eq(regex_map_parse_line("   # indented\n", &rule, why,
	    sizeof(why)), 0);
}
END_TEST

START_TEST(test_rule_and_blanks)
{
	struct regex_rule rule = { 0 };
	char out[256];

	/* Blanks around both fields go; '#' ends the line anywhere. */
	parse_ok("  ^([^@]+)@example\\.net$ :\t $1@store-a:1143  # comment\r\n", &rule);
	ck_assert_str_eq(rule.result, "$1@store-a:1143");
	ck_assert_int_eq(match_expand(&rule, "alice@example.net", out, sizeof(out)),
	    (int)strlen("alice@store-a:1143"));
	ck_assert_str_eq(out, "alice@store-a:1143");
	ck_assert_int_ne(regexec(&rule.re, "alice@example.org", 0, NULL, 0), 0);
	regex_rule_free(&rule);
}
END_TEST

START_TEST(test_groups_one_to_nine)
{
	struct regex_rule rule = { 0 };
	char out[256];

	parse_ok("^(a)(b)(c)(d)(e)(f)(g)(h)(i)$: $9$8$7$6$5$4$3$2$1-$0", &rule);
	match_expand(&rule, "abcdefghi", out, sizeof(out));
	ck_assert_str_eq(out, "ihgfedcba-abcdefghi");
	regex_rule_free(&rule);
}
END_TEST

START_TEST(test_group_not_taking_part)
{
	struct regex_rule rule = { 0 };
	char out[256];

	/* (sub)? did not match: $2 is empty, not left as "$2". */
	parse_ok("^(.*)@(sub)?legacy\\.example$: $1@$2host", &rule);
	match_expand(&rule, "jim@legacy.example", out, sizeof(out));
	ck_assert_str_eq(out, "jim@host");
	match_expand(&rule, "jim@sublegacy.example", out, sizeof(out));
	ck_assert_str_eq(out, "jim@subhost");
	regex_rule_free(&rule);
}
END_TEST

START_TEST(test_group_beyond_pattern)
{
	ASSERT_BAD_CONTAINS("^(a)(b)$: $3host", "$3 in \"$3host\" but the pattern has 2 groups");
	ASSERT_BAD_CONTAINS("^a$: h$1", "but the pattern has 0 groups");
}
END_TEST

START_TEST(test_dollar_escapes)
{
	struct regex_rule rule = { 0 };
	char out[256];

	/* $$ is one $; a $ not before a digit stays as it is. */
	parse_ok("^(x)$: $1$$1$", &rule);
	ck_assert_str_eq(rule.result, "$1$$1$");
	ck_assert_int_eq(regex_map_expand(rule.result, "x",
	    (regmatch_t [REGEX_MAP_GROUPS]){ { 0, 1 }, { 0, 1 }, { -1, -1 },
	    { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 },
	    { -1, -1 }, { -1, -1 } }, out, sizeof(out)), 4);
	ck_assert_str_eq(out, "x$1$");
	regex_rule_free(&rule);
}
END_TEST

START_TEST(test_prefix_before_match)
{
	struct regex_rule rule = { 0 };
	char out[256];

	/* As Perdition: the login before an unanchored match is kept. */
	parse_ok("@example\\.net$: @store-a", &rule);
	match_expand(&rule, "bob@example.net", out, sizeof(out));
	ck_assert_str_eq(out, "bob@store-a");
	regex_rule_free(&rule);
}
END_TEST

START_TEST(test_expand_bound)
{
	regmatch_t m[REGEX_MAP_GROUPS] = { { 0, 3 }, { 0, 3 } };
	char out[8];

	for (size_t i = 2; i < REGEX_MAP_GROUPS; i++)
		m[i].rm_so = m[i].rm_eo = -1;
	ck_assert_int_eq(regex_map_expand("$1$1", "abc", m, out, sizeof(out)), 6);
	ck_assert_str_eq(out, "abcabc");
	ck_assert_int_eq(regex_map_expand("$1$1x", "abc", m, out, sizeof(out)), 7);
	ck_assert_int_eq(regex_map_expand("$1$1xy", "abc", m, out, sizeof(out)), -1);
	ck_assert_int_eq(regex_map_expand("", "abc", m, out, 0), -1);
}
END_TEST

START_TEST(test_malformed)
{
	/* As in Perdition, the first ':' ends the pattern. */
	ASSERT_BAD_CONTAINS("^[[:digit:]]+$: host", "bad pattern \"^[[\"");
	ASSERT_BAD_CONTAINS("^alice$", "expected \"pattern: result\"");
	ASSERT_BAD_CONTAINS(": host", "empty pattern");
	ASSERT_BAD_CONTAINS("^alice$:   # no result", "empty result");
	ASSERT_BAD_CONTAINS("^(alice: host", "bad pattern \"^(alice\"");
	ASSERT_BAD_CONTAINS("^a$: host:99999", "is not a route");
	ASSERT_BAD_CONTAINS("^a$: h1 h2", "is not a route");
}
END_TEST

START_TEST(test_backrefs_refused)
{
	struct regex_rule rule = { 0 };

	ASSERT_BAD_CONTAINS("^(a+)\\1$: host", "back-references");
	ASSERT_BAD_CONTAINS("^([ab]*)c\\9: host", "back-references");
	/* Inside brackets, or escaped, a digit is no back-reference. */
	parse_ok("^[\\1]x$: host", &rule);
	regex_rule_free(&rule);
	parse_ok("^[]\\1]x$: host", &rule);
	regex_rule_free(&rule);
	parse_ok("^[[=a=]\\1]x$: host", &rule);
	regex_rule_free(&rule);
	parse_ok("^a\\\\1$: host", &rule);
	regex_rule_free(&rule);
}
END_TEST

START_TEST(test_repeat_bound)
{
	struct regex_rule rule = { 0 };

	/* (bound + 1) multiplied: 10 * 100 = 1000 is the most allowed. */
	parse_ok("^(a{9}){1,99}$: host", &rule);
	regex_rule_free(&rule);
	parse_ok("^a{999}$: host", &rule);
	regex_rule_free(&rule);
	ASSERT_BAD_CONTAINS("^a{1000}$: host", "counted repetitions");
	ASSERT_BAD_CONTAINS("^(a{9}){1,100}$: host", "counted repetitions");
	ASSERT_BAD_CONTAINS("^((a{32767}){32767}){32767}$: host", "counted repetitions");
	ASSERT_BAD_CONTAINS("^a{2,99999999999999999999}$: host", "counted repetitions");
	ASSERT_BAD_CONTAINS("^a{,32767}$: host", "counted repetitions");
	/* Stacked operators: undefined in POSIX, exponential in glibc. */
	ASSERT_BAD_CONTAINS("^ae++++++++++++++++$: host", "repetition operators follow");
	ASSERT_BAD_CONTAINS("^a*?$: host", "repetition operators follow");
	ASSERT_BAD_CONTAINS("^a{2}*$: host", "repetition operators follow");
	ASSERT_BAD_CONTAINS("^a+{2}$: host", "repetition operators follow");
	parse_ok("^((a+)+)*(b?)?[+*]\\*+$: host", &rule);
	regex_rule_free(&rule);
	/* In brackets or escaped, a brace is a character. */
	parse_ok("^[{]5000}x\\{5000}$: host", &rule);
	regex_rule_free(&rule);
}
END_TEST

START_TEST(test_line_bound)
{
	char line[REGEX_MAP_LINE_MAX + 2];
	struct regex_rule rule = { 0 };

	memset(line, 'a', sizeof(line));
	memcpy(line, "^a", 2);
	memcpy(line + REGEX_MAP_LINE_MAX - 4, "$: h", 4);
	line[REGEX_MAP_LINE_MAX] = '\0';
	parse_ok(line, &rule);		/* exactly at the bound */
	regex_rule_free(&rule);
	line[REGEX_MAP_LINE_MAX] = '\n';
	line[REGEX_MAP_LINE_MAX + 1] = '\0';
	ASSERT_BAD_CONTAINS(line, "line longer than 1024 bytes");
}
END_TEST

/* Map files and lookups. */

static char tmp_path[TEST_PATH_MAX], tmp_path2[TEST_PATH_MAX];

static void
write_file(char *path, const char *text)
{
	test_file_write(path, "check_regex_map", text);
}

static void
remove_files(void)
{
	test_file_remove(tmp_path);
	test_file_remove(tmp_path2);
}

START_TEST(test_map_errors_have_lines)
{
	struct directory *dir = NULL;
	char err[512], want[512];

	write_file(tmp_path, "# map\n^a$: h1\n\n^(b$: h2\n");
	ck_assert_int_eq(dir_regex_open(tmp_path, &dir, err, sizeof(err)), -1);
	ck_assert_ptr_null(dir);
	snprintf(want, sizeof(want), "%s:4: bad pattern \"^(b$\": ", tmp_path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got \"%s\"", err);
	remove_files();

	ck_assert_int_eq(dir_regex_open("/nonexistent/check_regex_map", &dir, err,
	    sizeof(err)), -1);
	ck_assert_msg(strncmp(err, "/nonexistent/check_regex_map:0: ", 32) == 0,
	    "got \"%s\"", err);
}
END_TEST

START_TEST(test_map_rules_bound)
{
	struct directory *dir = NULL;
	char err[512], want[512];
	FILE *fp = test_file_create(tmp_path, "check_regex_map");

	for (int i = 0; i < REGEX_MAP_RULES_MAX; i++)
		fprintf(fp, "^u%d$: h%d\n", i, i);
	fclose(fp);
	ck_assert_int_eq(dir_regex_open(tmp_path, &dir, err, sizeof(err)), 0);
	directory_close(&dir);

	fp = fopen(tmp_path, "a");
	fprintf(fp, "# a comment does not count\n^one-more$: h\n");
	fclose(fp);
	ck_assert_int_eq(dir_regex_open(tmp_path, &dir, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:%d: more than %d rules", tmp_path,
	    REGEX_MAP_RULES_MAX + 2, REGEX_MAP_RULES_MAX);
	ck_assert_str_eq(err, want);
	remove_files();
}
END_TEST

START_TEST(test_map_lookup)
{
	struct directory *dir = NULL;
	struct route *r;
	char err[512], detail[256];

	write_file(tmp_path,
	    "# first match wins\n"
	    "^vip@example\\.net$: vip-store:1143\n"
	    "^([^@]+)@example\\.net$: $1@store-a:2143,store-b\n"
	    "^(.*)$: h$1\n");
	ck_assert_int_eq(dir_regex_open(tmp_path, &dir, err, sizeof(err)), 0);

	ck_assert_int_eq(test_lookup(dir, "VIP@example.net", &r, detail,
	    sizeof(detail)), DIR_OK);
	ASSERT_HOST(r, 0, "vip-store", 1143);
	ck_assert_ptr_null(r->backend_user);
	ck_assert_str_eq(detail, "regex map line 2");
	route_unref(&r);

	ck_assert_int_eq(test_lookup(dir, "alice@example.net", &r, detail,
	    sizeof(detail)), DIR_OK);
	ck_assert_uint_eq(r->nhosts, 2);
	ASSERT_HOST(r, 0, "store-a", 2143);
	ASSERT_HOST(r, 1, "store-b", 0);
	ck_assert_str_eq(r->backend_user, "alice");
	ck_assert_str_eq(detail, "regex map line 3");
	route_unref(&r);

	/* The last rule's result is no route for this login: temporary. */
	ck_assert_int_eq(test_lookup(dir, "a:99999", &r, detail,
	    sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_ptr_null(r);
	ck_assert_msg(strstr(detail, "regex map line 4: \"ha:99999\" is not a "
	    "route") != NULL, "got \"%s\"", detail);
	directory_close(&dir);
	remove_files();

	write_file(tmp_path, "^a$: h\n");
	ck_assert_int_eq(dir_regex_open(tmp_path, &dir, err, sizeof(err)), 0);
	ck_assert_int_eq(test_lookup(dir, "b", &r, detail, sizeof(detail)),
	    DIR_NOT_FOUND);
	ck_assert_str_eq(detail, "no rule in the regex map matches");
	directory_close(&dir);
	remove_files();
}
END_TEST

/* Chains: file then regex, each answering for its own users. */

static struct directory *
open_chain(const char *types, struct config **cfg_r)
{
	struct directory *dir = NULL;
	char text[1024], err[512];

	snprintf(text, sizeof(text),
	    "directory = { type = %s; file = { path = \"%s\"; };"
	    " regex = { path = \"%s\"; }; };", types, tmp_path, tmp_path2);
	ck_assert_int_eq(config_load_string("t.conf", text, cfg_r, err,
	    sizeof(err)), 0);
	if (directory_open(*cfg_r, &dir, err, sizeof(err)) < 0)
		ck_abort_msg("directory_open: %s", err);
	return dir;
}

START_TEST(test_chain_order)
{
	struct config *cfg = NULL;
	struct directory *dir;
	struct route *r;
	char detail[256];

	write_file(tmp_path, "alice h-file:1143\n");
	write_file(tmp_path2, "^alice$: h-regex-alice\n^bob$: h-regex-bob\n");
	dir = open_chain("[ \"file\", \"regex\" ]", &cfg);
	ck_assert_ptr_null(dir->cache);		/* nothing worth caching */

	ck_assert_int_eq(test_lookup(dir, "alice", &r, detail,
	    sizeof(detail)), DIR_OK);
	ASSERT_HOST(r, 0, "h-file", 1143);
	ck_assert_str_eq(detail, "file: file map");
	route_unref(&r);
	ck_assert_int_eq(test_lookup(dir, "bob", &r, detail,
	    sizeof(detail)), DIR_OK);
	ASSERT_HOST(r, 0, "h-regex-bob", 0);
	ck_assert_str_eq(detail, "regex: regex map line 2");
	route_unref(&r);
	ck_assert_int_eq(test_lookup(dir, "carol", &r, detail, sizeof(detail)),
	    DIR_NOT_FOUND);
	ck_assert_ptr_null(r);
	ck_assert_str_eq(detail, "no back-end knows the user (last, regex: no "
	    "rule in the regex map matches)");
	directory_close(&dir);
	config_free(&cfg);

	/* The other order: the regex map answers for alice first. */
	dir = open_chain("[ \"regex\", \"file\" ]", &cfg);
	ck_assert_int_eq(test_lookup(dir, "alice", &r, detail,
	    sizeof(detail)), DIR_OK);
	ASSERT_HOST(r, 0, "h-regex-alice", 0);
	route_unref(&r);
	directory_close(&dir);
	config_free(&cfg);
	remove_files();
}
END_TEST

START_TEST(test_chain_tempfail_stops)
{
	struct config *cfg = NULL;
	struct directory *dir;
	struct route *r;
	char detail[256];

	/* The regex map fails for alice; the file map, asked next, knows her. */
	write_file(tmp_path, "alice h-file\n");
	write_file(tmp_path2, "^(.*)$: h$1\n");
	dir = open_chain("[ \"regex\", \"file\" ]", &cfg);
	ck_assert_int_eq(test_lookup(dir, "alice:99999", &r, detail,
	    sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_ptr_null(r);
	ck_assert_msg(strncmp(detail, "regex: regex map line 1: ", 25) == 0,
	    "got \"%s\"", detail);
	directory_close(&dir);
	config_free(&cfg);
	remove_files();
}
END_TEST

START_TEST(test_chain_open_fails_whole)
{
	struct config *cfg = NULL;
	struct directory *dir = NULL;
	char text[1024], err[512], want[256];

	write_file(tmp_path, "alice h-file\n");
	write_file(tmp_path2, "^(b: h\n");
	snprintf(text, sizeof(text),
	    "directory = { type = [ \"file\", \"regex\" ]; file = { path = \"%s\"; };"
	    " regex = { path = \"%s\"; }; };", tmp_path, tmp_path2);
	ck_assert_int_eq(config_load_string("t.conf", text, &cfg, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(directory_open(cfg, &dir, err, sizeof(err)), -1);
	ck_assert_ptr_null(dir);
	snprintf(want, sizeof(want), "%s:1: bad pattern", tmp_path2);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got \"%s\"", err);
	ck_assert_int_eq(directory_check(cfg, err, sizeof(err)), -1);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got \"%s\"", err);
	config_free(&cfg);
	remove_files();
}
END_TEST

static Suite *
regex_map_suite(void)
{
	Suite *s = suite_create("regex_map");
	TCase *tc;

	tc = tcase_create("parse_line");
	tcase_add_test(tc, test_blank_and_comment);
	tcase_add_test(tc, test_rule_and_blanks);
	tcase_add_test(tc, test_groups_one_to_nine);
	tcase_add_test(tc, test_group_not_taking_part);
	tcase_add_test(tc, test_group_beyond_pattern);
	tcase_add_test(tc, test_dollar_escapes);
	tcase_add_test(tc, test_prefix_before_match);
	tcase_add_test(tc, test_expand_bound);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_backrefs_refused);
	tcase_add_test(tc, test_repeat_bound);
	tcase_add_test(tc, test_line_bound);
	suite_add_tcase(s, tc);

	tc = tcase_create("map");
	/* 10,000 regcomp() calls under the sanitizers on a busy machine. */
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, remove_files);
	tcase_add_test(tc, test_map_errors_have_lines);
	tcase_add_test(tc, test_map_rules_bound);
	tcase_add_test(tc, test_map_lookup);
	suite_add_tcase(s, tc);

	tc = tcase_create("chain");
	tcase_add_checked_fixture(tc, NULL, remove_files);
	tcase_add_test(tc, test_chain_order);
	tcase_add_test(tc, test_chain_tempfail_stops);
	tcase_add_test(tc, test_chain_open_fails_whole);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(regex_map_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
