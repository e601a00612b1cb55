/*
 * Fuzz the PROXY protocol header parser (proxy_proto.c).  Invariants: the
 * answer is -1 (with a reason), 0 or 1; a header is never longer than the
 * input or PROXY_HEADER_MAX; the answer never changes for a longer input
 * once it is 1 or -1 (a prefix of a header asks for more, or is already
 * refused); and a parsed address written back with proxy_header_format()
 * parses to the same addresses, in both versions.
 *
 * The driver's seeds are C strings, so in them byte 0xfe stands for NUL;
 * every input is tried as is and with that substitution.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proxy_proto.h"

#define V2SIG	"\r\n\r\n\xfe\r\nQUIT\n"

const char *const fuzz_seeds[] = {
	"PROXY TCP4 192.0.2.7 198.51.100.1 56324 143\r\nA1 CAPABILITY\r\n",
	"PROXY TCP6 2001:db8::5 2001:db8::1 65535 993\r\n",
	"PROXY UNKNOWN\r\n",
	"PROXY TCP4 192.0.2.7 198.51.100.1 0143 143\r\n",
	V2SIG "\x21\x11\xfe\x0c\xc0\xfe\x02\x07\xc6\x33\x64\x01\xdc\x04\xfe\x8f",
	V2SIG "\x21\x21\xfe\x24 \x01\x0d\xb8\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe"
	    "\xfe\xfe\xfe\xfe\x05 \x01\x0d\xb8\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe"
	    "\xfe\xfe\xfe\xfe\x01\x01\x02\xfe\x6e",
	V2SIG "\x20\xfe\xfe\xfe",
	V2SIG "\x21\x11\xfe\x12\xc0\xfe\x02\x07\xc6\x33\x64\x01\xdc\x04\xfe\x8f"
	    "\x02\xfe\x03" "abc",
	V2SIG "\x21\x41\x04\x01",
	NULL
};

static bool
same_addr(const union proxy_addr *a, const union proxy_addr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return memcmp(&a->in.sin_addr, &b->in.sin_addr, 4) == 0 &&
		    a->in.sin_port == b->in.sin_port;
	return memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0 &&
	    a->in6.sin6_port == b->in6.sin6_port;
}

static void
check_one(const unsigned char *data, size_t size)
{
	struct proxy_header h, h2;
	unsigned char out[PROXY_HEADER_MAX];
	const char *error;
	int rc, rc2, n;
	size_t k;

	rc = proxy_header_parse(data, size, &h, &error);
	if (rc < -1 || rc > 1 || (rc == -1 && error == NULL))
		abort();
	if (rc == 1 && (h.len == 0 || h.len > size || h.len > PROXY_HEADER_MAX ||
	    (h.version != 1 && h.version != 2)))
		abort();
	/* Some prefixes: never "done" before the header's end, never undecided after a "no". */
	for (k = 0; k < size && k <= PROXY_HEADER_MAX; k += 1 + k / 8) {
		rc2 = proxy_header_parse(data, k, &h2, &error);
		if (rc2 == 1 && (rc != 1 || h2.len != h.len))
			abort();
		if (rc2 == -1 && rc != -1)
			abort();
	}
	if (rc != 1 || h.local)
		return;
	for (int v = PROXY_V1; v <= PROXY_V2; v++) {
		n = proxy_header_format((enum proxy_version)v, &h.src.sa, &h.dst.sa,
		    out, sizeof(out));
		if (n <= 0 || proxy_header_parse(out, (size_t)n, &h2, &error) != 1 ||
		    h2.len != (size_t)n || h2.local ||
		    !same_addr(&h.src, &h2.src) || !same_addr(&h.dst, &h2.dst))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *copy;

	check_one(data, size);
	if (size == 0 || memchr(data, 0xfe, size) == NULL)
		return 0;
	copy = malloc(size);
	if (copy == NULL)
		return 0;
	for (size_t i = 0; i < size; i++)
		copy[i] = data[i] == 0xfe ? 0 : data[i];
	check_one(copy, size);
	free(copy);
	return 0;
}
