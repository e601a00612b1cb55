#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host_map.h"
#include "util.h"

/* Check the replacement: \1 .. \N for N groups, \\, nothing else. */
static int
check_template(const char *host, size_t ngroups, const char **error_r)
{
	for (const char *p = host; *p != '\0'; p++) {
		if (*p != '\\')
			continue;
		p++;
		if (*p == '\\')
			continue;
		if (*p < '1' || *p > '9') {
			*error_r = "a backslash in host must start \\1 .. \\9 or \\\\";
			return -1;
		}
		if ((size_t)(*p - '0') > ngroups) {
			*error_r = "host refers to a group the regex does not have";
			return -1;
		}
	}
	return 0;
}

int
host_map_add(struct host_map *m, const char *match, bool is_regex,
    const char *host, const char **error_r)
{
	struct host_map_rule r = { .is_regex = is_regex };

	if (m->n >= HOST_MAP_RULES_MAX) {
		*error_r = "too many rules";
		return -1;
	}
	if (match[0] == '\0' || host[0] == '\0') {
		*error_r = "a rule needs a value (or regex) and a host";
		return -1;
	}
	if (strlen(host) >= HOST_MAP_HOST_MAX) {
		*error_r = "host too long";
		return -1;
	}
	if (is_regex) {
		if (regcomp(&r.re, match, REG_EXTENDED | REG_ICASE) != 0) {
			*error_r = "not a POSIX extended regular expression";
			return -1;
		}
		if (check_template(host, r.re.re_nsub, error_r) < 0) {
			regfree(&r.re);
			return -1;
		}
	} else if (strchr(host, '\\') != NULL) {
		*error_r = "only a regex rule's host may hold \\N";
		return -1;
	}
	r.match = xstrdup(match);
	r.host = xstrdup(host);
	m->rules = xrealloc(m->rules, (m->n + 1) * sizeof(*m->rules));
	m->rules[m->n++] = r;
	return 0;
}

/* Write host with \N replaced by the groups of value; -1 if it overflows. */
static int
expand(const char *host, const char *value, const regmatch_t *g, char *out,
    size_t outlen)
{
	size_t o = 0;

	for (const char *p = host; *p != '\0'; p++) {
		const char *src = p;
		size_t len = 1;

		if (*p == '\\') {
			p++;
			if (*p == '\\')
				src = p;
			else {
				const regmatch_t *m = &g[*p - '0'];

				/* A group that took no part matches nothing. */
				src = value;
				len = 0;
				if (m->rm_so >= 0) {
					src = value + m->rm_so;
					len = (size_t)(m->rm_eo - m->rm_so);
				}
			}
		}
		if (o + len >= outlen)
			return -1;
		memcpy(out + o, src, len);
		o += len;
	}
	out[o] = '\0';
	return 0;
}

int
host_map_apply(const struct host_map *m, const char *value, char *out,
    size_t outlen)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct host_map_rule *r = &m->rules[i];
		regmatch_t g[10];

		if (!r->is_regex) {
			if (strcasecmp(r->match, value) != 0)
				continue;
			if (strlen(r->host) >= outlen)
				return -1;
			strcpy(out, r->host);
			return 1;
		}
		if (regexec(&r->re, value, 10, g, 0) != 0)
			continue;
		return expand(r->host, value, g, out, outlen) < 0 ? -1 : 1;
	}
	return 0;
}

void
host_map_free(struct host_map *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->rules[i].match);
		free(m->rules[i].host);
		if (m->rules[i].is_regex)
			regfree(&m->rules[i].re);
	}
	free(m->rules);
	m->rules = NULL;
	m->n = 0;
}
