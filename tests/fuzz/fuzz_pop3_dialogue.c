/*
 * Fuzz pop3.c through struct proto_ops: USER/PASS, AUTH PLAIN/LOGIN, CAPA,
 * STLS before login, and the backend's replies to the login (greeting,
 * STLS, USER/PASS or the master's AUTH PLAIN), via the session stub.
 * Input: a flag byte, the client's bytes, then 0x01-separated backend
 * replies, one per login attempt (see session_stub.h).  Also runs the
 * POP3 line parser over every line of the input.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pop3_parse.h"
#include "session_stub.h"

const char *const fuzz_seeds[] = {
	"\xc0" "USER alice\r\nPASS secret\r\n\x01"
	"+OK POP3 ready\r\n+OK\r\n+OK Logged in.\r\n",
	"\x40" "CAPA\r\nAUTH\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n\x01"
	"+OK hi\r\n+OK\r\n+OK Mailbox locked and ready\r\n",
	"\x01" "CAPA\r\nSTLS\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n\x01"
	"+OK\r\n+OK\r\n+OK in\r\n",
	"\x44" "USER bob\r\nPASS p w d\r\n\x01"
	"+OK\r\n+OK Begin TLS\r\n+OK\r\n+OK\r\n",
	"\x58" "AUTH PLAIN\r\nAGJvYgBwdw==\r\n\x01+OK\r\n+OK master ok\r\n",
	"\xc0" "PASS x\r\nUSER\r\nNOOP\r\nAUTH CRAM-MD5\r\nAUTH LOGIN\r\n*\r\nQUIT\r\n",
	"\x22" "USER a\r\nSTLS\r\nUSER a\r\nPASS b\r\n",
	"\xc0" "USER u\r\nPASS p\r\nUSER u\r\nPASS q\r\n\x01"
	"+OK\r\n-ERR [AUTH] bad\r\n\x01" "+OK\r\n+OK\r\n-ERR \x1b[31mno\r\n",
	NULL
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct pop3_cmd cmd;
	size_t start = 0;

	memcpy(s, data, size);
	s[size] = '\0';
	for (size_t i = 0; i <= size; i++) {
		if (i == size || s[i] == '\n') {
			s[i] = '\0';
			(void)pop3_parse_line(s + start, i - start, &cmd);
			start = i + 1;
		}
	}
	free(s);
	stub_dialogue(&pop3_proto, PROTO_POP3, data, size);
	return 0;
}
