/* Helpers shared by the Check suites (helpers.h). */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "username.h"

FILE *
test_file_create(char path[TEST_PATH_MAX], const char *prefix)
{
	FILE *fp;
	int fd, n;

	n = snprintf(path, TEST_PATH_MAX, "/tmp/%s_XXXXXX", prefix);
	ck_assert_int_lt(n, TEST_PATH_MAX);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fp = fdopen(fd, "w");
	ck_assert_ptr_nonnull(fp);
	return fp;
}

void
test_file_write(char path[TEST_PATH_MAX], const char *prefix, const char *text)
{
	FILE *fp = test_file_create(path, prefix);

	fputs(text, fp);
	ck_assert_int_eq(fclose(fp), 0);
}

void
test_file_remove(char path[TEST_PATH_MAX])
{
	if (path[0] != '\0')
		unlink(path);
	path[0] = '\0';
}

enum dir_status
test_lookup(struct directory *dir, const char *login, struct route **r,
    char *detail, size_t detaillen)
{
	struct username_cfg cfg = { .lower_case = true, .delimiter = '@',
	    .default_domain = NULL, .strip_domain = false };
	struct username name;
	const char *err = NULL;

	ck_assert_int_eq(username_normalise(&cfg, login, strlen(login), &name,
	    &err), 0);
	*r = NULL;
	return directory_lookup_sync(dir, &name, PROTO_IMAP, r, detail, detaillen);
}
