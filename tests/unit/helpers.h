/*
 * Helpers shared by the Check suites: temporary files under /tmp and a
 * directory lookup by login name.  Each fails the running test on error.
 */
#ifndef POSTERN_TEST_HELPERS_H
#define POSTERN_TEST_HELPERS_H

#include <stddef.h>
#include <stdio.h>

#include "directory.h"
#include "route.h"

/* Room for "/tmp/" + a prefix + "_XXXXXX". */
#define TEST_PATH_MAX	64

/*
 * Create a new file "/tmp/PREFIX_XXXXXX", its name in path, and open it for
 * writing; the caller closes it.
 */
FILE	*test_file_create(char path[TEST_PATH_MAX], const char *prefix);
/* The same, holding text, closed. */
void	 test_file_write(char path[TEST_PATH_MAX], const char *prefix,
	    const char *text);
/* Remove the file named in path, if any; path becomes "". */
void	 test_file_remove(char path[TEST_PATH_MAX]);

/*
 * Look login up in dir for IMAP, normalised as lower case with '@' as the
 * domain delimiter.  *r is NULL or the route, which the caller drops.
 */
enum dir_status test_lookup(struct directory *dir, const char *login,
	    struct route **r, char *detail, size_t detaillen);

#endif
