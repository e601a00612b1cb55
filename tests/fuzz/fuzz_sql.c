/*
 * Fuzz the sql back-end's parsers: directory.sql.query's placeholder
 * translation (first byte: the driver) and an answered row's values to a
 * route (the rest split at NUL bytes into host, username and port).
 */
#include "autoconf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "directory/sql.h"
#include "fuzz.h"
#include "fuzz_route.h"
#include "route.h"

const char *const fuzz_seeds[] = {
	"pSELECT host, username, port FROM mailboxes WHERE address = $1",
	"mSELECT storage_ip, NULL, 143 FROM mailboxes WHERE address = $1",
	"mSELECT '$1?', \"a$1\", `x?` FROM t -- $2 ?\nWHERE a = $1 /* ? */ # ?",
	"pSELECT $x$ FROM t WHERE a = $1 OR b = $10",
	"mSELECT 'a\\'$1' FROM t WHERE a = ? AND b = '",
	NULL
};

static void
fuzz_query(const char *q, enum sql_driver d)
{
	char out[SQL_QUERY_MAX];
	const char *why = NULL;
	unsigned n = 0;

	if (sql_query_translate(q, d, out, sizeof(out), &n, &why) == 0) {
		size_t dollars = 0, marks = 0;

		if (n == 0 || strlen(out) >= sizeof(out))
			abort();
		for (const char *p = out; *p != '\0'; p++) {
			dollars += p[0] == '$' && p[1] == '1';
			marks += *p == '?';
		}
		/* Every placeholder is still there, in the driver's spelling. */
		if (d == SQL_DRIVER_MYSQL ? marks < n : dollars < 1)
			abort();
	} else if (why == NULL)
		abort();
}

static void
fuzz_answer(const uint8_t *data, size_t size)
{
	struct sql_answer *a = calloc(1, sizeof(*a));
	struct route *r = NULL;
	char detail[512];
	size_t i = 0, start = 0;

	a->nrows = size > 0 && data[0] == 'x' ? 2 : 1;
	for (size_t k = 0; k <= size && i < SQL_COLUMNS_MAX; k++) {
		if (k == size || data[k] == '\0') {
			/* "\\N" stands for NULL. */
			bool null = k - start == 2 && data[start] == '\\' &&
			    data[start + 1] == 'N';

			sql_answer_set(a, i++, null ? NULL : (const char *)data + start,
			    k - start);
			start = k + 1;
		}
	}
	a->ncols = i;
	if (sql_answer_route(a, NULL, &r, detail, sizeof(detail)) == DIR_OK) {
		fuzz_check_route(r);
		route_unref(&r);
	} else if (r != NULL)
		abort();
	if (memchr(detail, '\0', sizeof(detail)) == NULL)
		abort();
	free(a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size == 0)
		return 0;
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	fuzz_query(s, data[0] == 'm' ? SQL_DRIVER_MYSQL : SQL_DRIVER_POSTGRESQL);
	free(s);
	fuzz_answer(data + 1, size - 1);
	return 0;
}
