/* POP3 command lines (RFC 1939, RFC 2449, RFC 5034).  Pure; no I/O. */
#ifndef POSTERN_POP3_PARSE_H
#define POSTERN_POP3_PARSE_H

#include <stddef.h>

#define POP3_KEYWORD_MAX	8

struct pop3_cmd {
	char		 keyword[POP3_KEYWORD_MAX + 1];	/* upper-cased */
	const char	*arg;		/* after the first space; NULL if none */
	size_t		 arglen;
};

/*
 * Split a line (CRLF already stripped) into keyword and argument.  The
 * argument is everything after the first space, so PASS keeps spaces in
 * passwords.  -1 if the keyword is empty, too long or not letters, or the
 * line holds a CR or a NUL (a backend would see two lines).
 */
int	pop3_parse_line(const char *line, size_t len, struct pop3_cmd *cmd);

#endif
