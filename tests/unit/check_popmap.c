/* Unit tests for the file map: line parsing and lookups (src/directory/file.c). */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "directory.h"
#include "directory/file.h"
#include "helpers.h"
#include "route.h"
#include "username.h"

/* Parse a line that must be a map entry. */
static struct route *
parse_ok(const char *line, const char *want_user)
{
	char *user = NULL;
	struct route *r = NULL;
	const char *err = NULL;
	int rc = popmap_parse_line(line, &user, &r, &err);

	ck_assert_msg(rc == 1, "\"%s\": rc %d (%s)", line, rc, err ? err : "");
	ck_assert_ptr_nonnull(user);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(user, want_user);
	free(user);
	return r;
}

static void
parse_bad(const char *line)
{
	char *user = NULL;
	struct route *r = NULL;
	const char *err = NULL;

	ck_assert_msg(popmap_parse_line(line, &user, &r, &err) == -1,
	    "\"%s\" accepted", line);
	ck_assert_ptr_nonnull(err);
	ck_assert_uint_gt(strlen(err), 0);
	ck_assert_ptr_null(user);
	ck_assert_ptr_null(r);
}

static void
parse_skip(const char *line)
{
	char *user = NULL;
	struct route *r = NULL;
	const char *err = NULL;

	ck_assert_msg(popmap_parse_line(line, &user, &r, &err) == 0,
	    "\"%s\" not skipped", line);
	ck_assert_ptr_null(user);
	ck_assert_ptr_null(r);
}

#define ASSERT_HOST(r, i, host_, port_) do {				\
	ck_assert_uint_gt((r)->nhosts, (i));				\
	ck_assert_str_eq((r)->hosts[i].host, (host_));			\
	ck_assert_uint_eq((r)->hosts[i].port, (port_));			\
} while (0)

/* popmap_parse_line. */

START_TEST(test_blank_and_comment)
{
	parse_skip("");
	parse_skip("\n");
	parse_skip("\r\n");
	parse_skip("   ");
	parse_skip(" \t \n");
	parse_skip("# comment");
	parse_skip("#alice host");
	parse_skip("   # indented comment\n");
	parse_skip("\t#x");
}
END_TEST

START_TEST(test_user_host)
{
	struct route *r = parse_ok("alice@example.net store-a.example.net\n",
	    "alice@example.net");

	ck_assert_uint_eq(r->nhosts, 1);
	ASSERT_HOST(r, 0, "store-a.example.net", 0);
	ck_assert_ptr_null(r->backend_user);
	route_unref(&r);
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_leading_spaces_and_tabs)
{
	struct route *r = parse_ok("  \t bob\t\tstore-b:1143  \r\n", "bob");

	ck_assert_uint_eq(r->nhosts, 1);
	ASSERT_HOST(r, 0, "store-b", 1143);
	ck_assert_ptr_null(r->backend_user);
	route_unref(&r);
}
END_TEST

START_TEST(test_user_host_port)
{
	struct route *r = parse_ok("bob host:1143", "bob");

	ASSERT_HOST(r, 0, "host", 1143);
	route_unref(&r);
	r = parse_ok("bob 192.0.2.7:65535", "bob");
	ASSERT_HOST(r, 0, "192.0.2.7", 65535);
	route_unref(&r);
	r = parse_ok("bob host:1", "bob");
	ASSERT_HOST(r, 0, "host", 1);
	route_unref(&r);
}
END_TEST

START_TEST(test_ipv6)
{
	struct route *r = parse_ok("user [::1]:143", "user");

	ASSERT_HOST(r, 0, "::1", 143);
	route_unref(&r);
	r = parse_ok("user [2001:db8::7]", "user");
	ASSERT_HOST(r, 0, "2001:db8::7", 0);
	route_unref(&r);
}
END_TEST

START_TEST(test_two_hosts)
{
	struct route *r = parse_ok("user h1,h2:144", "user");

	ck_assert_uint_eq(r->nhosts, 2);
	ASSERT_HOST(r, 0, "h1", 0);
	ASSERT_HOST(r, 1, "h2", 144);
	route_unref(&r);

	r = parse_ok("user [::1]:143,h2,10.0.0.1:9", "user");
	ck_assert_uint_eq(r->nhosts, 3);
	ASSERT_HOST(r, 0, "::1", 143);
	ASSERT_HOST(r, 1, "h2", 0);
	ASSERT_HOST(r, 2, "10.0.0.1", 9);
	route_unref(&r);
}
END_TEST

START_TEST(test_too_many_hosts)
{
	char line[256] = "user h0";

	for (int i = 1; i < ROUTE_HOSTS_MAX; i++) {
		char h[8];

		snprintf(h, sizeof(h), ",h%d", i);
		strcat(line, h);
	}
	struct route *r = parse_ok(line, "user");
	ck_assert_uint_eq(r->nhosts, ROUTE_HOSTS_MAX);
	route_unref(&r);

	strcat(line, ",one-more");
	parse_bad(line);
}
END_TEST

START_TEST(test_backend_user)
{
	struct route *r = parse_ok("carol host c.jones", "carol");

	ASSERT_HOST(r, 0, "host", 0);
	ck_assert_ptr_nonnull(r->backend_user);
	ck_assert_str_eq(r->backend_user, "c.jones");
	route_unref(&r);
}
END_TEST

START_TEST(test_perdition_form)
{
	struct route *r = parse_ok("dave dsmith@host:2143", "dave");

	ASSERT_HOST(r, 0, "host", 2143);
	ck_assert_ptr_nonnull(r->backend_user);
	ck_assert_str_eq(r->backend_user, "dsmith");
	route_unref(&r);

	/* An explicit third field wins over the user@ part. */
	r = parse_ok("dave dsmith@host:2143 d.smith", "dave");
	ck_assert_str_eq(r->backend_user, "d.smith");
	ASSERT_HOST(r, 0, "host", 2143);
	route_unref(&r);

	/* A backend user with a domain: the last '@' splits. */
	r = parse_ok("dave d@example.org@host", "dave");
	ck_assert_str_eq(r->backend_user, "d@example.org");
	ASSERT_HOST(r, 0, "host", 0);
	route_unref(&r);

	parse_bad("dave @host");
}
END_TEST

START_TEST(test_trailing_comment)
{
	struct route *r = parse_ok("erin host c.jones # moved in May", "erin");

	ck_assert_str_eq(r->backend_user, "c.jones");
	ASSERT_HOST(r, 0, "host", 0);
	route_unref(&r);

	r = parse_ok("erin host #comment", "erin");
	ck_assert_ptr_null(r->backend_user);
	ASSERT_HOST(r, 0, "host", 0);
	route_unref(&r);

	r = parse_ok("erin host c.jones #comment with words", "erin");
	ck_assert_str_eq(r->backend_user, "c.jones");
	route_unref(&r);
}
END_TEST

START_TEST(test_trailing_comment_after_host)
{
	/* "# comment" (with a space) right after the host is a comment too. */
	struct route *r = parse_ok("erin host # moved in May", "erin");

	ck_assert_ptr_null(r->backend_user);
	ck_assert_uint_eq(r->nhosts, 1);
	ASSERT_HOST(r, 0, "host", 0);
	route_unref(&r);
}
END_TEST

START_TEST(test_comment_in_host_field)
{
	/* A comment where the host should be leaves the line without a host. */
	parse_bad("alice #comment");
	parse_bad("alice # not migrated yet");
	parse_bad("alice\t#");
}
END_TEST

START_TEST(test_too_many_fields)
{
	parse_bad("user host buser extra");
	parse_bad("user host buser extra # comment");
}
END_TEST

START_TEST(test_missing_host)
{
	parse_bad("user");
	parse_bad("  user  \n");
	parse_bad("user ,");
	parse_bad("user ,,,");
}
END_TEST

START_TEST(test_bad_port)
{
	parse_bad("user host:0");
	parse_bad("user host:70000");
	parse_bad("user host:65536");
	parse_bad("user host:abc");
	parse_bad("user host:");
	parse_bad("user host:-1");
	parse_bad("user host:14x");
	parse_bad("user [::1]:0");
	parse_bad("user h1,h2:0");
}
END_TEST

START_TEST(test_bad_hosts)
{
	parse_bad("user ::1");			/* IPv6 needs brackets */
	parse_bad("user 2001:db8::1:143");
	parse_bad("user [::1");
	parse_bad("user [::1]x");
	parse_bad("user :143");
	parse_bad("user host/x");
}
END_TEST

START_TEST(test_route_refcount)
{
	struct route *r = parse_ok("u h", "u"), *r2 = route_ref(r);

	ck_assert_ptr_eq(r, r2);
	route_unref(&r);
	ck_assert_ptr_null(r);
	ck_assert_str_eq(r2->hosts[0].host, "h");	/* still alive */
	route_unref(&r2);
	route_unref(&r2);	/* NULL: no-op */
}
END_TEST

/* dir_file_open and lookups. */

static char tmp_path[TEST_PATH_MAX];

static void
write_map(const char *text)
{
	test_file_write(tmp_path, "check_popmap", text);
}

static void
remove_map(void)
{
	test_file_remove(tmp_path);
}

START_TEST(test_file_duplicate_user)
{
	struct directory *dir = NULL;
	char err[256], want[256];

	write_map("# map\n"
	    "alice h1\n"
	    "\n"
	    "bob h2\n"
	    "alice h3\n"
	    "carol h4\n");
	ck_assert_int_eq(dir_file_open(tmp_path, FILE_MAP_BYTES_MAX, &dir, err, sizeof(err)), -1);
	ck_assert_ptr_null(dir);
	snprintf(want, sizeof(want), "%s:5: user listed twice", tmp_path);
	ck_assert_str_eq(err, want);
	remove_map();
}
END_TEST

START_TEST(test_file_bad_line)
{
	struct directory *dir = NULL;
	char err[256], prefix[128];

	write_map("alice h1\n# x\nbob h2:99999\n");
	ck_assert_int_eq(dir_file_open(tmp_path, FILE_MAP_BYTES_MAX, &dir, err, sizeof(err)), -1);
	ck_assert_ptr_null(dir);
	snprintf(prefix, sizeof(prefix), "%s:3: ", tmp_path);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "got \"%s\"", err);
	ck_assert_uint_gt(strlen(err), strlen(prefix));
	remove_map();
}
END_TEST

START_TEST(test_file_missing)
{
	struct directory *dir = NULL;
	char err[256];

	ck_assert_int_eq(dir_file_open("/nonexistent/check_popmap/map",
	    FILE_MAP_BYTES_MAX, &dir, err, sizeof(err)), -1);
	ck_assert_ptr_null(dir);
	ck_assert_msg(strncmp(err, "/nonexistent/check_popmap/map:0: ", 33) == 0,
	    "got \"%s\"", err);
}
END_TEST

START_TEST(test_file_lookup)
{
	struct directory *dir = NULL;
	struct route *r;
	char err[256], detail[160];

	write_map("# postern file map\n"
	    "alice@example.net\tstore-a.example.net\n"
	    "bob@example.net\t\tstore-b.example.net:1143\n"
	    "carol@example.net\tstore-a.example.net\tc.jones\n"
	    "dave@example.net\tdsmith@store-b.example.net:2143\n"
	    "erin@example.net\tstore-new.example.net,store-a.example.net\n"
	    "frank h6\r\n"
	    "last h7");		/* no final newline */
	ck_assert_int_eq(dir_file_open(tmp_path, FILE_MAP_BYTES_MAX, &dir, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(dir);

	ck_assert_int_eq(test_lookup(dir, "alice@example.net", &r, detail,
	    sizeof(detail)), DIR_OK);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->nhosts, 1);
	ASSERT_HOST(r, 0, "store-a.example.net", 0);
	ck_assert_ptr_null(r->backend_user);
	route_unref(&r);

	/* The login is normalised (lower-cased) before the lookup. */
	ck_assert_int_eq(test_lookup(dir, "Bob@Example.NET", &r, detail,
	    sizeof(detail)), DIR_OK);
	ASSERT_HOST(r, 0, "store-b.example.net", 1143);
	route_unref(&r);

	ck_assert_int_eq(test_lookup(dir, "carol@example.net", &r, detail,
	    sizeof(detail)), DIR_OK);
	ck_assert_str_eq(r->backend_user, "c.jones");
	route_unref(&r);

	ck_assert_int_eq(test_lookup(dir, "dave@example.net", &r, detail,
	    sizeof(detail)), DIR_OK);
	ck_assert_str_eq(r->backend_user, "dsmith");
	ASSERT_HOST(r, 0, "store-b.example.net", 2143);
	route_unref(&r);

	ck_assert_int_eq(test_lookup(dir, "erin@example.net", &r, detail,
	    sizeof(detail)), DIR_OK);
	ck_assert_uint_eq(r->nhosts, 2);
	ASSERT_HOST(r, 0, "store-new.example.net", 0);
	ASSERT_HOST(r, 1, "store-a.example.net", 0);
	route_unref(&r);

	ck_assert_int_eq(test_lookup(dir, "frank", &r, detail,
	    sizeof(detail)), DIR_OK);
	ASSERT_HOST(r, 0, "h6", 0);
	route_unref(&r);
	ck_assert_int_eq(test_lookup(dir, "last", &r, detail,
	    sizeof(detail)), DIR_OK);
	ASSERT_HOST(r, 0, "h7", 0);
	route_unref(&r);

	/* Unknown users, and near misses. */
	ck_assert_int_eq(test_lookup(dir, "mallory@example.net", &r, detail,
	    sizeof(detail)), DIR_NOT_FOUND);
	ck_assert_ptr_null(r);
	ck_assert_uint_gt(strlen(detail), 0);
	ck_assert_int_eq(test_lookup(dir, "alice", &r, detail, sizeof(detail)),
	    DIR_NOT_FOUND);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(test_lookup(dir, "alice@example.ne", &r, detail,
	    sizeof(detail)), DIR_NOT_FOUND);
	ck_assert_ptr_null(r);

	directory_close(&dir);
	ck_assert_ptr_null(dir);
	directory_close(&dir);	/* NULL: no-op */
	remove_map();
}
END_TEST

START_TEST(test_file_many_users)
{
	/* Enough entries to make the table grow several times. */
	struct directory *dir = NULL;
	struct route *r;
	char err[256], detail[160], name[32], host[32];
	FILE *fp = test_file_create(tmp_path, "check_popmap");

	for (int i = 0; i < 1000; i++)
		fprintf(fp, "user%d h%d:%d\n", i, i, 1000 + i);
	fclose(fp);

	ck_assert_int_eq(dir_file_open(tmp_path, FILE_MAP_BYTES_MAX, &dir, err, sizeof(err)), 0);
	for (int i = 0; i < 1000; i += 37) {
		snprintf(name, sizeof(name), "user%d", i);
		snprintf(host, sizeof(host), "h%d", i);
		ck_assert_int_eq(test_lookup(dir, name, &r, detail,
		    sizeof(detail)), DIR_OK);
		ASSERT_HOST(r, 0, host, 1000 + i);
		route_unref(&r);
	}
	ck_assert_int_eq(test_lookup(dir, "user1000", &r, detail,
	    sizeof(detail)), DIR_NOT_FOUND);
	directory_close(&dir);
	remove_map();
}
END_TEST

START_TEST(test_file_empty_map)
{
	struct directory *dir = NULL;
	struct route *r;
	char err[256], detail[160];

	write_map("# nothing here\n\n");
	ck_assert_int_eq(dir_file_open(tmp_path, FILE_MAP_BYTES_MAX, &dir, err, sizeof(err)), 0);
	ck_assert_int_eq(test_lookup(dir, "alice", &r, detail, sizeof(detail)),
	    DIR_NOT_FOUND);
	ck_assert_ptr_null(r);
	directory_close(&dir);
	remove_map();
}
END_TEST

START_TEST(test_file_size_bound)
{
	static const char map[] = "alice h1\nbob h2\n";	/* 16 bytes */
	struct directory *dir = NULL;
	struct route *r;
	char err[256], want[256], detail[160];

	write_map(map);
	/* A map of exactly the bound is read... */
	ck_assert_int_eq(dir_file_open(tmp_path, sizeof(map) - 1, &dir, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(test_lookup(dir, "bob", &r, detail, sizeof(detail)),
	    DIR_OK);
	route_unref(&r);
	directory_close(&dir);
	/* ...one byte over it is refused before a line is read. */
	ck_assert_int_eq(dir_file_open(tmp_path, sizeof(map) - 2, &dir, err,
	    sizeof(err)), -1);
	ck_assert_ptr_null(dir);
	snprintf(want, sizeof(want), "%s:0: 16 bytes: more than the 15 a file "
	    "map may have", tmp_path);
	ck_assert_str_eq(err, want);
	remove_map();
	/* Something that is not a regular file has no size to check. */
	ck_assert_int_eq(dir_file_open("/dev/null", FILE_MAP_BYTES_MAX, &dir,
	    err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/dev/null:0: not a regular file");
	ck_assert_ptr_null(dir);
}
END_TEST

START_TEST(test_directory_size_bound_names_key)
{
	struct config *cfg = NULL;
	struct directory *dir = NULL;
	char text[256], err[512], want[512];
	FILE *fp = test_file_create(tmp_path, "check_popmap");

	/* A sparse file: past the production bound without writing it. */
	ck_assert_int_eq(fseeko(fp, (off_t)FILE_MAP_BYTES_MAX, SEEK_SET), 0);
	ck_assert_int_eq(fputc('\n', fp), '\n');
	fclose(fp);
	snprintf(text, sizeof(text),
	    "directory = { type = \"file\"; file = { path = \"%s\"; }; };", tmp_path);
	ck_assert_int_eq(config_load_string("t.conf", text, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(directory_open(cfg, &dir, err, sizeof(err)), -1);
	ck_assert_ptr_null(dir);
	snprintf(want, sizeof(want), "t.conf: directory.file.path: %s:0: %ju "
	    "bytes: more than the %ju a file map may have", tmp_path,
	    (uintmax_t)FILE_MAP_BYTES_MAX + 1, (uintmax_t)FILE_MAP_BYTES_MAX);
	ck_assert_str_eq(err, want);
	config_free(&cfg);
	remove_map();
}
END_TEST

START_TEST(test_directory_open_from_config)
{
	struct config *cfg = NULL;
	struct directory *dir = NULL;
	struct route *r;
	char text[256], err[256], detail[160];

	write_map("alice h1:1143\n");
	snprintf(text, sizeof(text),
	    "directory = { type = \"file\"; file = { path = \"%s\"; }; };", tmp_path);
	ck_assert_int_eq(config_load_string("t.conf", text, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(directory_open(cfg, &dir, err, sizeof(err)), 0);
	ck_assert_int_eq(test_lookup(dir, "ALICE", &r, detail,
	    sizeof(detail)), DIR_OK);
	ASSERT_HOST(r, 0, "h1", 1143);
	route_unref(&r);
	directory_close(&dir);
	config_free(&cfg);
	remove_map();
}
END_TEST

static Suite *
popmap_suite(void)
{
	Suite *s = suite_create("popmap");
	TCase *tc;

	tc = tcase_create("parse_line");
	tcase_add_test(tc, test_blank_and_comment);
	tcase_add_test(tc, test_user_host);
	tcase_add_test(tc, test_leading_spaces_and_tabs);
	tcase_add_test(tc, test_user_host_port);
	tcase_add_test(tc, test_ipv6);
	tcase_add_test(tc, test_two_hosts);
	tcase_add_test(tc, test_too_many_hosts);
	tcase_add_test(tc, test_backend_user);
	tcase_add_test(tc, test_perdition_form);
	tcase_add_test(tc, test_trailing_comment);
	tcase_add_test(tc, test_trailing_comment_after_host);
	tcase_add_test(tc, test_comment_in_host_field);
	tcase_add_test(tc, test_too_many_fields);
	tcase_add_test(tc, test_missing_host);
	tcase_add_test(tc, test_bad_port);
	tcase_add_test(tc, test_bad_hosts);
	tcase_add_test(tc, test_route_refcount);
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_add_checked_fixture(tc, NULL, remove_map);
	tcase_add_test(tc, test_file_duplicate_user);
	tcase_add_test(tc, test_file_bad_line);
	tcase_add_test(tc, test_file_missing);
	tcase_add_test(tc, test_file_lookup);
	tcase_add_test(tc, test_file_many_users);
	tcase_add_test(tc, test_file_empty_map);
	tcase_add_test(tc, test_file_size_bound);
	tcase_add_test(tc, test_directory_size_bound_names_key);
	tcase_add_test(tc, test_directory_open_from_config);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(popmap_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
