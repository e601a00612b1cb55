/*
 * The regex map (directory.type = "regex"): Perdition's posix_regex map,
 * its file read unchanged.  One rule a line, "pattern: result"; the
 * pattern is a POSIX extended regular expression matched against the
 * normalised login, the first rule that matches answers, and $0..$9 in the
 * result stand for what the pattern's groups matched.
 */
#ifndef POSTERN_DIRECTORY_REGEX_H
#define POSTERN_DIRECTORY_REGEX_H

#include <regex.h>
#include <stddef.h>

struct directory;
struct route;

#define REGEX_MAP_LINE_MAX	1024	/* bytes a line, end of line included */
#define REGEX_MAP_RULES_MAX	10000	/* rules in one map */
#define REGEX_MAP_GROUPS	10	/* $0 (the match) and $1..$9 */
#define REGEX_MAP_RESULT_MAX	1024	/* bytes of an expanded result */
/* (bound + 1) multiplied over a pattern's counted repetitions {m,n} */
#define REGEX_MAP_REPEAT_MAX	1000

struct regex_rule {
	regex_t		 re;
	char		*result;	/* the template, "$n" unexpanded */
	unsigned	 line;
};

/*
 * Parse one map line.  1 with *rule compiled (free it with
 * regex_rule_free), 0 for a blank or comment line, -1 with the reason in
 * why.  Patterns with back-references (\1..\9) are refused: glibc matches
 * them by backtracking, which a crafted login could make exponential; so
 * are counted repetitions past REGEX_MAP_REPEAT_MAX, which make regcomp's
 * automaton huge.
 */
int	regex_map_parse_line(const char *line, struct regex_rule *rule,
	    char *why, size_t whylen);
void	regex_rule_free(struct regex_rule *rule);

/*
 * Build the result for `login` that matched with groups m[0..9]: the part
 * of the login before the match, then the template with $0..$9 replaced
 * by their groups (a group that took no part: nothing) and $$ by $.  The
 * length, or -1 if it would not fit in outlen.
 */
int	regex_map_expand(const char *tmpl, const char *login,
	    const regmatch_t *m, char *out, size_t outlen);

/* Turn an expanded result into a route, as the file map reads its hosts. */
int	regex_map_route(const char *result, struct route **route_r,
	    const char **error_r);

int	dir_regex_open(const char *path, struct directory **dir_r, char *err,
	    size_t errlen);

#endif
