/* Fuzz the config loader: any text must load or be refused with a message. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

const char *const fuzz_seeds[] = {
	"daemon = { threads = 2; };\nlimits = { per_ip = 3; };\n",
	"listen = ( { protocol = \"imap\"; address = \"127.0.0.1:143\"; tls = \"starttls\"; } );\n",
	"directory = { type = \"file\"; cache = { ttl = 1; }; file = { path = \"x\"; }; };\n",
	"backends = ( { name = \"a\"; addresses = \"127.0.0.1 ::1\"; tls = \"implicit\"; } );\n",
	"username = { domain_delimiter = \"%\"; default_domain = \"x.org\"; };\n",
	NULL
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[512];
	struct config *cfg = NULL;

	memcpy(text, data, size);
	text[size] = '\0';
	if (config_load_string("fuzz.conf", text, &cfg, err, sizeof(err)) == 0)
		config_free(&cfg);
	else if (err[0] == '\0')
		abort();	/* a refusal must say why */
	free(text);
	return 0;
}
