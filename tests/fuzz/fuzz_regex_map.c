/*
 * Fuzz the regex map (directory.regex): regex_map_parse_line() on every
 * line of the input, as dir_regex_open() reads them.  An accepted rule is
 * matched against a few logins (and the line itself, cut to a login's
 * length); every match must expand within bounds, and a result that makes
 * a route must pass fuzz_check_route().
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "directory/regex.h"
#include "fuzz.h"
#include "fuzz_route.h"
#include "route.h"

const char *const fuzz_seeds[] = {
	"# map\n^([^@]+)@example\\.net$:  $1@store-a:1143  # c\n",
	"^(.*)@(sub)?legacy\\.example$: $1@$2host\n^bob(.*)$: h1,h2:993\n",
	"^(a)(b)(c)(d)(e)(f)(g)(h)(i)$: $9$8$7$6$5$4$3$2$1$0$$\n",
	"@example\\.net$: @store\n^(a+)\\1$: h\n^[]\\1[=a=]]x{3,9}$: h\n",
	"^(a{9}){1,99}$: h\n^a{,32767}$: h\n^(b: h\n: h\nx:\n",
	NULL
};

static const char *const logins[] = {
	"alice@example.net", "jim@sublegacy.example", "abcdefghi", "bob",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "",
};

static void
try_login(const struct regex_rule *rule, const char *login)
{
	regmatch_t m[REGEX_MAP_GROUPS];
	char out[REGEX_MAP_RESULT_MAX];
	struct route *route;
	const char *error;
	int n;

	if (regexec(&rule->re, login, REGEX_MAP_GROUPS, m, 0) != 0)
		return;
	if ((n = regex_map_expand(rule->result, login, m, out, sizeof(out))) < 0)
		return;
	if ((size_t)n != strlen(out) || (size_t)n >= sizeof(out))
		abort();
	if (regex_map_route(out, &route, &error) == 0) {
		fuzz_check_route(route);
		route_unref(&route);
	} else if (error == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *line, *save = NULL;

	memcpy(text, data, size);
	text[size] = '\0';
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		struct regex_rule rule = { 0 };
		char why[512] = "", self[65];
		int rc = regex_map_parse_line(line, &rule, why, sizeof(why));

		if (rc < -1 || rc > 1 || (rc < 0 && why[0] == '\0'))
			abort();
		if (rc != 1)
			continue;
		if (rule.result == NULL || rule.result[0] == '\0')
			abort();
		for (size_t i = 0; i < sizeof(logins) / sizeof(logins[0]); i++)
			try_login(&rule, logins[i]);
		strncpy(self, line, sizeof(self) - 1);
		self[sizeof(self) - 1] = '\0';
		try_login(&rule, self);
		regex_rule_free(&rule);
	}
	free(text);
	return 0;
}
