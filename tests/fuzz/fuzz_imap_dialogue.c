/*
 * Fuzz imap.c through struct proto_ops: the client's commands before login
 * (LOGIN, AUTHENTICATE PLAIN/LOGIN, ID, STARTTLS, literals) and the backend's
 * replies to the login (greeting, STARTTLS, LITERAL+/synchronising literals,
 * ID, master AUTHENTICATE, CAPABILITY), via the session stub.  Input: a flag
 * byte, the client's bytes, then 0x01-separated backend replies, one per
 * login attempt (see session_stub.h for the flags and the invariants).
 */
#include "autoconf.h"

#include "fuzz.h"
#include "session_stub.h"

/* Flag bytes: 0xc0 whole input at once, 0x40 3-byte chunks, 0x01 1-byte
 * chunks + STARTTLS offered, 0x02 TLS required, 0x04 backend STARTTLS,
 * 0x08 master login, 0x10 backend user, 0x20 short lines. */
const char *const fuzz_seeds[] = {
	/* Plain LOGIN; LITERAL+ and ID backend. */
	"\xc0" "a LOGIN alice secret\r\n\x01"
	"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID] ready\r\n"
	"* ID NIL\r\nP0 OK ID done\r\nP1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n",
	/* Literals from the client, non-ASCII password, synchronising literal
	 * to the backend, capabilities asked after login. */
	"\x40" "a LOGIN {5}\r\nalice {4+}\r\np\xc3\xa4s\r\n\x01"
	"* OK hi\r\n+ go ahead\r\nP1 OK done\r\n* CAPABILITY IMAP4rev1 IDLE\r\nP2 OK\r\n",
	/* SASL-IR PLAIN refused, then LOGIN on the second backend reply. */
	"\x80" "a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\nb LOGIN \"bob\" \"p\\\"w\"\r\n\x01"
	"* OK\r\nP1 NO [AUTHENTICATIONFAILED] nope\r\n\x01"
	"* OK [CAPABILITY IMAP4rev1]\r\nP1 OK [CAPABILITY IMAP4rev1 MOVE] welcome\r\n",
	/* STARTTLS offered, byte by byte; AUTHENTICATE LOGIN in steps. */
	"\x01" "a CAPABILITY\r\nb STARTTLS\r\nc AUTHENTICATE LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n\x01"
	"* OK ready\r\nP1 OK [CAPABILITY IMAP4rev1] in\r\n",
	/* STARTTLS with the backend. */
	"\x44" "a LOGIN bob pw\r\n\x01"
	"* OK [CAPABILITY IMAP4rev1 STARTTLS]\r\nP0 OK begin\r\n"
	"* CAPABILITY IMAP4rev1 ID LITERAL+\r\nP0 OK\r\nP0 OK\r\nP1 OK [CAPABILITY IMAP4rev1] hi\r\n",
	/* Master login, backend user, no SASL-IR. */
	"\x58" "a AUTHENTICATE PLAIN\r\nAGJvYgBwdw==\r\n\x01"
	"* OK [CAPABILITY IMAP4rev1]\r\n+ \r\nP1 OK [CAPABILITY IMAP4rev1] ok\r\n",
	/* ID, unknown commands, cancelled AUTHENTICATE, LOGOUT. */
	"\xc0" "a ID (\"name\" \"x\" \"x-originating-ip\" \"6.6.6.6\")\r\nb NOOP\r\n"
	"c FOO\r\nd AUTHENTICATE PLAIN\r\n*\r\ne LOGOUT\r\n",
	/* TLS required, short lines, an overlong line, a bad literal. */
	"\x22" "a LOGIN x y\r\nb CAPABILITY\r\nc LOGIN {99999999999}\r\nd NOOP\r\n",
	/* Backend breaks protocol / sends control bytes. */
	"\xc0" "a LOGIN u p\r\nb LOGIN u p\r\n\x01"
	"* BYE go away\r\n\x01* OK\r\nP1 NO \x7f\x1b[31m\r\n",
	NULL
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	stub_dialogue(&imap_proto, PROTO_IMAP, data, size);
	return 0;
}
