#include "autoconf.h"

#include <string.h>

#include "pop3_parse.h"

int
pop3_parse_line(const char *line, size_t len, struct pop3_cmd *cmd)
{
	size_t i;

	/* A bare CR (or a NUL) would split the line at the backend. */
	if (memchr(line, '\r', len) != NULL || memchr(line, '\0', len) != NULL)
		return -1;
	for (i = 0; i < len && line[i] != ' '; i++) {
		char c = line[i];

		if (i == POP3_KEYWORD_MAX)
			return -1;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (c < 'A' || c > 'Z')
			return -1;
		cmd->keyword[i] = c;
	}
	if (i == 0)
		return -1;
	cmd->keyword[i] = '\0';
	if (i < len) {
		cmd->arg = line + i + 1;
		cmd->arglen = len - i - 1;
	} else {
		cmd->arg = NULL;
		cmd->arglen = 0;
	}
	return 0;
}
