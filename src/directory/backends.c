#include "autoconf.h"

#include "directory/backend.h"
#include "util.h"

/* The one list of back-ends, indexed by directory.type. */
static const struct dir_backend *const backends[] = {
	[DIR_TYPE_LDAP] = &dir_backend_ldap,
	[DIR_TYPE_FILE] = &dir_backend_file,
	[DIR_TYPE_REGEX] = &dir_backend_regex,
	[DIR_TYPE_HTTP] = &dir_backend_http,
	[DIR_TYPE_SQL] = &dir_backend_sql,
};
_Static_assert(nitems(backends) == DIR_TYPE_COUNT, "one back-end per type");

const struct dir_backend *
dir_backend_get(enum dir_type type)
{
	return backends[type];
}
