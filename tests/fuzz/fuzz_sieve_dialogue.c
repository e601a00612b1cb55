/*
 * Fuzz sieve.c through struct proto_ops: the client's commands before
 * login (AUTHENTICATE "PLAIN" with and without an initial response, quoted
 * strings and literals, CAPABILITY, NOOP, STARTTLS, LOGOUT) and the
 * backend's replies to the login (capabilities, STARTTLS, capabilities
 * again, AUTHENTICATE), via the session stub.  Input: a flag byte, the
 * client's bytes, then 0x01-separated backend replies, one per login
 * attempt (see session_stub.h for the flags and the invariants).
 */
#include "autoconf.h"

#include "fuzz.h"
#include "session_stub.h"

/* Flag bytes: 0xc0 whole input at once, 0x40 3-byte chunks, 0x01 1-byte
 * chunks + STARTTLS offered, 0x02 TLS required, 0x04 backend STARTTLS,
 * 0x08 master login, 0x10 backend user, 0x20 short lines. */
const char *const fuzz_seeds[] = {
	/* Initial response as a quoted string. */
	"\xc0" "AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHNlY3JldA==\"\r\n\x01"
	"\"IMPLEMENTATION\" \"Dovecot\"\r\n\"SASL\" \"PLAIN\"\r\nOK \"ready\"\r\n"
	"OK \"Logged in.\"\r\n",
	/* As a literal, byte by byte, with STARTTLS offered. */
	"\x01" "CAPABILITY\r\nNOOP \"t\\\"ag\"\r\nAUTHENTICATE \"PLAIN\" {20+}\r\n"
	"AGFsaWNlAHNlY3JldA==\r\n\x01"
	"\"SASL\" \"PLAIN\"\r\nOK\r\nNO \"Authentication failed.\"\r\n",
	/* The response after an empty challenge; backend STARTTLS. */
	"\x44" "AUTHENTICATE \"PLAIN\"\r\n{20}\r\nAGFsaWNlAHNlY3JldA==\r\n\x01"
	"\"STARTTLS\"\r\nOK \"hi\"\r\nOK \"Begin TLS\"\r\n\"SASL\" \"PLAIN\"\r\n"
	"OK\r\nOK\r\n",
	/* Cancelled, bad commands, master login, LOGOUT. */
	"\x58" "AUTHENTICATE \"PLAIN\"\r\n\"*\"\r\nPUTSCRIPT \"a\" {3+}\r\nabc\r\n"
	"AUTHENTICATE \"PLAIN\" \"AGJvYgBwdw==\"\r\nLOGOUT\r\n\x01"
	"OK\r\n\"c2FzbA==\"\r\n",
	/* STARTTLS with injected commands behind it; short lines. */
	"\x61" "STARTTLS\r\nAUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n"
	"AUTHENTICATE \"PLAIN\" {99999+}\r\nxx\r\n",
	NULL
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	stub_dialogue(&sieve_proto, PROTO_SIEVE, data, size);
	return 0;
}
