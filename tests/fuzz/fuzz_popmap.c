/*
 * Fuzz the file map (directory.file): popmap_parse_line() on every line of
 * the input, as dir_file_open() reads them.  Accepted lines must give a
 * user with no white space and a route that passes fuzz_check_route().
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "directory/file.h"
#include "fuzz.h"
#include "fuzz_route.h"

const char *const fuzz_seeds[] = {
	"alice@example.net store-a:143,store-b bob # c\n",
	"# comment\n\n   \t\ndsmith@example.net store-b.example.net:2143\n",
	"carol [2001:db8::5]:110,mbox@store-c\r\n",
	"dave h1,h2,h3,h4,h5,h6,h7,h8,h9\n",
	"erin store:99999\nfrank\nx y z w\n",
	"gina\tstore-a\tgina-mbox#not-a-comment\n",
	NULL
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *line, *save = NULL;

	memcpy(text, data, size);
	text[size] = '\0';
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *user = NULL;
		struct route *route = NULL;
		const char *error = NULL;
		int rc = popmap_parse_line(line, &user, &route, &error);

		if (rc == 1) {
			if (user == NULL || user[0] == '\0' ||
			    strpbrk(user, " \t\r\n") != NULL)
				abort();
			fuzz_check_route(route);
			free(user);
			route_unref(&route);
		} else if (user != NULL || route != NULL ||
		    (rc < 0 && error == NULL) || rc < -1 || rc > 1)
			abort();
	}
	free(text);
	return 0;
}
