#include "autoconf.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "directory/backend.h"
#include "directory/regex.h"
#include "route.h"
#include "util.h"

/*
 * The regex map, compiled once at (re)load; a reload builds a new
 * directory.  Lookups run on the asking worker, like the file map's: the
 * login is at most USERNAME_MAX bytes, patterns cannot backtrack (no
 * back-references), and a map has at most REGEX_MAP_RULES_MAX rules, so a
 * lookup's cost is bounded.  glibc's regexec() may be called on one
 * pattern from several threads at once.
 */

struct dir_regex {
	struct directory	 dir;
	struct regex_rule	*rules;
	size_t			 nrules;
};

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Skip a bracket expression that starts at p ('['); NULL if unterminated. */
static const char *
skip_bracket(const char *p)
{
	p++;
	if (*p == '^')
		p++;
	if (*p == ']')		/* a leading ']' is a member */
		p++;
	while (*p != '\0' && *p != ']') {
		if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
			char kind = p[1];

			for (p += 2; *p != '\0'; p++)
				if (p[0] == kind && p[1] == ']')
					break;
			if (*p == '\0')
				return NULL;
			p += 2;
			continue;
		}
		p++;
	}
	return *p == ']' ? p : NULL;
}

/* Read a repetition count; false if there are no digits. */
static bool
read_count(const char **pp, unsigned long *n_r)
{
	const char *p = *pp;
	unsigned long n = 0;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((n = n * 10 + (unsigned long)(*p - '0')) > 100000)
			n = 100000;
	*n_r = n;
	*pp = p;
	return true;
}

/*
 * Refuse what would make matching or compiling costly: back-references
 * (\\1..\\9) outside brackets, which glibc matches by backtracking;
 * repetition operators stacked on one another ("a++", "a*{2}": undefined
 * in POSIX EREs, exponential in glibc's regcomp and regexec); counted
 * repetitions whose bounds multiply past REGEX_MAP_REPEAT_MAX (nested,
 * each multiplies the automaton regcomp builds).  NULL if the pattern is
 * fine, else the reason.
 */
static const char *
pattern_unsafe(const char *p)
{
	static const char stacked[] = "repetition operators follow one another";
	unsigned long product = 1;
	bool after_op = false;

	for (; *p != '\0'; p++) {
		if (*p == '*' || *p == '+' || *p == '?') {
			if (after_op)
				return stacked;
			after_op = true;
			continue;
		}
		if (*p == '{') {
			const char *q = p + 1;
			unsigned long lo, hi;

			if (!read_count(&q, &lo)) {
				if (*q != ',') {
					after_op = false;
					continue;
				}
				lo = 0;		/* glibc reads {,n} as {0,n} */
			}
			if (after_op)
				return stacked;
			hi = lo;
			if (*q == ',' && (q++, !read_count(&q, &hi)))
				hi = lo;
			product *= (hi > lo ? hi : lo) + 1;
			if (product > REGEX_MAP_REPEAT_MAX)
				return "counted repetitions {m,n} allow more than "
				    "1000 repeats in all";
			p = *q == '}' ? q : q - 1;	/* else regcomp complains */
			after_op = true;
			continue;
		}
		after_op = false;
		if (*p == '\\') {
			if (p[1] >= '1' && p[1] <= '9')
				return "back-references (\\1..\\9) are not allowed "
				    "in patterns";
			if (p[1] == '\0')
				return NULL;
			p++;
		} else if (*p == '[') {
			if ((p = skip_bracket(p)) == NULL)
				return NULL;	/* regcomp says what is wrong */
		}
	}
	return NULL;
}

void
regex_rule_free(struct regex_rule *rule)
{
	regfree(&rule->re);
	free(rule->result);
	rule->result = NULL;
}

int
regex_map_expand(const char *tmpl, const char *login, const regmatch_t *m,
    char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen == 0 || m[0].rm_so < 0)
		return -1;
	/* Perdition keeps what the login had before the match. */
	if ((size_t)m[0].rm_so >= outlen)
		return -1;
	memcpy(out, login, (size_t)m[0].rm_so);
	o = (size_t)m[0].rm_so;
	for (const char *p = tmpl; *p != '\0'; p++) {
		const char *src = p;
		size_t n = 1;

		if (p[0] == '$' && p[1] == '$')
			p++;
		else if (p[0] == '$' && p[1] >= '0' && p[1] <= '9') {
			const regmatch_t *g = &m[p[1] - '0'];

			p++;
			if (g->rm_so < 0 || g->rm_eo < g->rm_so)
				continue;
			src = login + g->rm_so;
			n = (size_t)(g->rm_eo - g->rm_so);
		}
		if (n >= outlen - o)
			return -1;
		memcpy(out + o, src, n);
		o += n;
	}
	out[o] = '\0';
	return (int)o;
}

int
regex_map_route(const char *result, struct route **route_r,
    const char **error_r)
{
	char *copy = xstrdup(result), *save = NULL;
	struct route *r = route_new();

	for (char *h = strtok_r(copy, ",", &save); h != NULL;
	    h = strtok_r(NULL, ",", &save)) {
		if (route_add_host(r, h, error_r) < 0) {
			route_unref(&r);
			free(copy);
			return -1;
		}
	}
	free(copy);
	if (r->nhosts == 0) {
		route_unref(&r);
		*error_r = "no host";
		return -1;
	}
	*route_r = r;
	return 0;
}

/* $n in the result must name a group the pattern has. */
static int
check_template(const struct regex_rule *rule, char *why, size_t whylen)
{
	regmatch_t m[REGEX_MAP_GROUPS];
	char sample[REGEX_MAP_RESULT_MAX];
	struct route *route;
	const char *error;

	for (const char *p = rule->result; *p != '\0'; p++) {
		if (p[0] == '$' && p[1] == '$') {
			p++;
		} else if (p[0] == '$' && p[1] >= '0' && p[1] <= '9') {
			if ((size_t)(p[1] - '0') > rule->re.re_nsub) {
				snprintf(why, whylen, "$%c in \"%s\" but the pattern "
				    "has %zu group%s", p[1], rule->result,
				    rule->re.re_nsub, rule->re.re_nsub == 1 ? "" : "s");
				return -1;
			}
			p++;
		}
	}
	/*
	 * The result for a login "xx" whose match and groups are all the
	 * second "x" must be a route (the first is what went before the match).
	 */
	for (size_t i = 0; i < REGEX_MAP_GROUPS; i++) {
		m[i].rm_so = 1;
		m[i].rm_eo = 2;
	}
	if (regex_map_expand(rule->result, "xx", m, sample, sizeof(sample)) < 0) {
		snprintf(why, whylen, "the result is longer than %d bytes",
		    REGEX_MAP_RESULT_MAX - 1);
		return -1;
	}
	if (regex_map_route(sample, &route, &error) < 0) {
		snprintf(why, whylen, "\"%s\" is not a route: %s", rule->result,
		    error);
		return -1;
	}
	route_unref(&route);
	return 0;
}

int
regex_map_parse_line(const char *line, struct regex_rule *rule, char *why,
    size_t whylen)
{
	char buf[REGEX_MAP_LINE_MAX + 1], *pat, *res, *colon, *end;
	const char *unsafe;
	size_t len = strlen(line);
	int rc;

	if (len > REGEX_MAP_LINE_MAX) {
		snprintf(why, whylen, "line longer than %d bytes",
		    REGEX_MAP_LINE_MAX);
		return -1;
	}
	memcpy(buf, line, len + 1);
	/* As Perdition: '#' starts a comment anywhere, the line ends at CR/LF. */
	buf[strcspn(buf, "#\r\n")] = '\0';
	for (pat = buf; is_blank(*pat); pat++)
		;
	if (*pat == '\0')
		return 0;
	if ((colon = strchr(pat, ':')) == NULL) {
		snprintf(why, whylen, "expected \"pattern: result\"");
		return -1;
	}
	*colon = '\0';
	for (end = colon; end > pat && is_blank(end[-1]); end--)
		end[-1] = '\0';
	for (res = colon + 1; is_blank(*res); res++)
		;
	for (end = res + strlen(res); end > res && is_blank(end[-1]); end--)
		end[-1] = '\0';
	if (*pat == '\0' || *res == '\0') {
		snprintf(why, whylen, "%s", *pat == '\0' ? "empty pattern" :
		    "empty result");
		return -1;
	}
	if ((unsafe = pattern_unsafe(pat)) != NULL) {
		snprintf(why, whylen, "%s", unsafe);
		return -1;
	}
	if ((rc = regcomp(&rule->re, pat, REG_EXTENDED | REG_NEWLINE)) != 0) {
		char reason[200];

		regerror(rc, &rule->re, reason, sizeof(reason));
		snprintf(why, whylen, "bad pattern \"%s\": %s", pat, reason);
		return -1;
	}
	rule->result = xstrdup(res);
	if (check_template(rule, why, whylen) < 0) {
		regex_rule_free(rule);
		return -1;
	}
	return 1;
}

static void
dir_regex_lookup(struct directory *dir, struct dir_request *req)
{
	struct dir_regex *dr = (struct dir_regex *)dir;
	const char *login = dir_request_name(req)->full;
	regmatch_t m[REGEX_MAP_GROUPS];
	char result[REGEX_MAP_RESULT_MAX], detail[REGEX_MAP_RESULT_MAX + 128];
	struct route *route;
	const char *error;

	for (size_t i = 0; i < dr->nrules; i++) {
		const struct regex_rule *r = &dr->rules[i];

		if (regexec(&r->re, login, REGEX_MAP_GROUPS, m, 0) != 0)
			continue;
		if (regex_map_expand(r->result, login, m, result, sizeof(result)) < 0) {
			snprintf(detail, sizeof(detail), "regex map line %u: the "
			    "result is longer than %d bytes", r->line,
			    REGEX_MAP_RESULT_MAX - 1);
			dir_request_done(req, DIR_TEMPFAIL, NULL, detail);
		} else if (regex_map_route(result, &route, &error) < 0) {
			snprintf(detail, sizeof(detail), "regex map line %u: "
			    "\"%s\" is not a route: %s", r->line, result, error);
			dir_request_done(req, DIR_TEMPFAIL, NULL, detail);
		} else {
			snprintf(detail, sizeof(detail), "regex map line %u", r->line);
			dir_request_done(req, DIR_OK, route, detail);
		}
		return;
	}
	dir_request_done(req, DIR_NOT_FOUND, NULL, "no rule in the regex map matches");
}

static void
dir_regex_free(struct directory *dir)
{
	struct dir_regex *dr = (struct dir_regex *)dir;

	for (size_t i = 0; i < dr->nrules; i++)
		regex_rule_free(&dr->rules[i]);
	free(dr->rules);
	free(dr);
}

static const struct directory_ops dir_regex_ops = {
	.name = "regex",
	.lookup = dir_regex_lookup,
	.free = dir_regex_free,
};

int
dir_regex_open(const char *path, struct directory **dir_r, char *err,
    size_t errlen)
{
	struct dir_regex *dr = xcalloc(1, sizeof(*dr));
	char *line = NULL, why[512];
	size_t linecap = 0, cap = 0;
	unsigned lineno = 0;
	ssize_t len;
	FILE *fp;

	dr->dir.ops = &dir_regex_ops;
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s:0: %s", path, strerror(errno));
		dir_regex_free(&dr->dir);
		return -1;
	}
	while ((len = getline(&line, &linecap, fp)) >= 0) {
		struct regex_rule rule = { 0 };
		int rc;

		lineno++;
		if ((size_t)len != strlen(line))
			snprintf(why, sizeof(why), "NUL byte in the line");
		else if ((rc = regex_map_parse_line(line, &rule, why,
		    sizeof(why))) == 0)
			continue;
		else if (rc > 0 && dr->nrules >= REGEX_MAP_RULES_MAX) {
			regex_rule_free(&rule);
			snprintf(why, sizeof(why), "more than %d rules",
			    REGEX_MAP_RULES_MAX);
		} else if (rc > 0) {
			if (dr->nrules == cap) {
				cap = cap ? cap * 2 : 16;
				dr->rules = xrealloc(dr->rules,
				    cap * sizeof(*dr->rules));
			}
			rule.line = lineno;
			dr->rules[dr->nrules++] = rule;
			continue;
		}
		snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
		free(line);
		fclose(fp);
		dir_regex_free(&dr->dir);
		return -1;
	}
	free(line);
	fclose(fp);
	*dir_r = &dr->dir;
	return 0;
}

static int
regex_backend_open(const struct config *cfg, struct directory **dir_r,
    char *err, size_t errlen)
{
	return dir_regex_open(cfg->directory.regex_path, dir_r, err, errlen);
}

static int
regex_backend_check(const struct config *cfg, char *err, size_t errlen)
{
	struct directory *dir;

	if (dir_regex_open(cfg->directory.regex_path, &dir, err, errlen) < 0)
		return -1;
	dir->ops->free(dir);
	return 0;
}

const struct dir_backend dir_backend_regex = {
	.name = "regex",
	.open = regex_backend_open,
	.check = regex_backend_check,
	.cacheable = NULL,	/* in memory: answers cost no round trip */
};
