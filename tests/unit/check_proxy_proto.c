/* Unit tests for the PROXY protocol header parser and writer (src/proxy_proto.h). */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h"

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/*
 * Feed `data` one byte more at a time: every proper prefix must ask for
 * more, the whole must give `want`.  Returns the whole's result.
 */
static int
parse_bytewise(const void *data, size_t len, int want, struct proxy_header *h)
{
	const char *error;
	int rc;

	for (size_t k = 0; k < len; k++) {
		rc = proxy_header_parse(data, k, h, &error);
		if (want == 1)
			ck_assert_msg(rc == 0, "prefix %zu gave %d (%s)", k, rc,
			    error ? error : "");
		else if (rc == -1) {
			ck_assert_ptr_nonnull(error);
			return rc;	/* refused early: as it should */
		} else
			ck_assert_int_eq(rc, 0);
	}
	rc = proxy_header_parse(data, len, h, &error);
	ck_assert_int_eq(rc, want);
	if (rc < 0)
		ck_assert_ptr_nonnull(error);
	return rc;
}

static void
check_v4(const struct proxy_header *h, const char *src, unsigned sport,
    const char *dst, unsigned dport)
{
	char a[INET_ADDRSTRLEN];

	ck_assert(!h->local);
	ck_assert_int_eq(h->src.sa.sa_family, AF_INET);
	inet_ntop(AF_INET, &h->src.in.sin_addr, a, sizeof(a));
	ck_assert_str_eq(a, src);
	ck_assert_uint_eq(ntohs(h->src.in.sin_port), sport);
	inet_ntop(AF_INET, &h->dst.in.sin_addr, a, sizeof(a));
	ck_assert_str_eq(a, dst);
	ck_assert_uint_eq(ntohs(h->dst.in.sin_port), dport);
}

static void
check_v6(const struct proxy_header *h, const char *src, unsigned sport)
{
	char a[INET6_ADDRSTRLEN];

	ck_assert(!h->local);
	ck_assert_int_eq(h->src.sa.sa_family, AF_INET6);
	inet_ntop(AF_INET6, &h->src.in6.sin6_addr, a, sizeof(a));
	ck_assert_str_eq(a, src);
	ck_assert_uint_eq(ntohs(h->src.in6.sin6_port), sport);
}

/* A v2 header: command, family byte, address block. */
static size_t
v2(unsigned char *out, unsigned char cmd, unsigned char fam,
    const void *block, size_t blen)
{
	memcpy(out, v2_sig, 12);
	out[12] = cmd;
	out[13] = fam;
	out[14] = (unsigned char)(blen >> 8);
	out[15] = (unsigned char)blen;
	if (blen > 0)
		memcpy(out + 16, block, blen);
	return 16 + blen;
}

START_TEST(test_v1_tcp4)
{
	const char *in = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 143\r\nA1 CAPABILITY\r\n";
	struct proxy_header h;
	size_t hl = strlen("PROXY TCP4 192.0.2.7 198.51.100.1 56324 143\r\n");
	const char *error;

	ck_assert_int_eq(parse_bytewise(in, hl, 1, &h), 1);
	ck_assert_int_eq(h.version, 1);
	ck_assert_uint_eq(h.len, hl);
	check_v4(&h, "192.0.2.7", 56324, "198.51.100.1", 143);
	/* What follows is the client's and is left alone. */
	ck_assert_int_eq(proxy_header_parse(in, strlen(in), &h, &error), 1);
	ck_assert_uint_eq(h.len, hl);
}
END_TEST

START_TEST(test_v1_tcp6_and_unknown)
{
	const char *in6 = "PROXY TCP6 2001:db8::5 2001:db8::1 65535 993\r\n";
	const char *unk = "PROXY UNKNOWN ffff:f...f:ffff 1 2 3\r\n";
	struct proxy_header h;

	ck_assert_int_eq(parse_bytewise(in6, strlen(in6), 1, &h), 1);
	check_v6(&h, "2001:db8::5", 65535);
	ck_assert_int_eq(parse_bytewise(unk, strlen(unk), 1, &h), 1);
	ck_assert(h.local);
	ck_assert_int_eq(parse_bytewise("PROXY UNKNOWN\r\n", 15, 1, &h), 1);
	ck_assert(h.local);
}
END_TEST

START_TEST(test_v1_malformed)
{
	static const char *const bad[] = {
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324 143 9\r\n",
		"PROXY TCP4 192.0.2.7  198.51.100.1 56324 143\r\n",
		"PROXY TCP4 192.0.2.700 198.51.100.1 56324 143\r\n",
		"PROXY TCP4 2001:db8::1 198.51.100.1 56324 143\r\n",
		"PROXY TCP6 192.0.2.7 2001:db8::1 56324 143\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.1 65536 143\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.1 0143 143\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.1 -1 143\r\n",
		"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
		"PROXY tcp4 192.0.2.7 198.51.100.1 1 2\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n",
		"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\rX",
		"PROXY TCP4 192.0.2.7\t198.51.100.1 1 2\r\n",
		"PROXY \r\n",
		"PROXYTCP4\r\n",
		"proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",
		"A1 LOGIN user pass\r\n",
		"USER bob\r\n",
		"\r\n\r\n\r",
	};
	struct proxy_header h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(parse_bytewise(bad[i], strlen(bad[i]), -1, &h), -1);
}
END_TEST

START_TEST(test_v1_oversize)
{
	char in[300];
	struct proxy_header h;
	const char *error;

	/* 107 bytes exactly, CRLF included, is the most allowed. */
	memset(in, 0, sizeof(in));
	strcpy(in, "PROXY UNKNOWN ");
	memset(in + 14, 'x', PROXY_V1_MAX - 14 - 2);
	strcpy(in + PROXY_V1_MAX - 2, "\r\n");
	ck_assert_uint_eq(strlen(in), PROXY_V1_MAX);
	ck_assert_int_eq(parse_bytewise(in, strlen(in), 1, &h), 1);
	ck_assert_uint_eq(h.len, PROXY_V1_MAX);
	/* One more byte: refused, and without waiting for the CRLF. */
	memset(in + 14, 'x', PROXY_V1_MAX - 14 - 1);
	strcpy(in + PROXY_V1_MAX - 1, "\r\n");
	ck_assert_int_eq(proxy_header_parse(in, strlen(in), &h, &error), -1);
	memset(in + 14, 'x', 200);
	ck_assert_int_eq(proxy_header_parse(in, PROXY_V1_MAX, &h, &error), -1);
	/* 106 bytes and no CR yet: the CRLF can no longer fit. */
	ck_assert_int_eq(proxy_header_parse(in, PROXY_V1_MAX - 1, &h, &error), -1);
	ck_assert_int_eq(proxy_header_parse(in, PROXY_V1_MAX - 2, &h, &error), 0);
}
END_TEST

START_TEST(test_v2_inet)
{
	static const unsigned char block[] = {
		192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x00, 0x8f,
		/* a TLV (PP2_TYPE_AUTHORITY) that is skipped */
		0x02, 0x00, 0x03, 'a', 'b', 'c',
	};
	unsigned char in[64];
	struct proxy_header h;
	size_t n = v2(in, 0x21, 0x11, block, sizeof(block));

	ck_assert_int_eq(parse_bytewise(in, n, 1, &h), 1);
	ck_assert_int_eq(h.version, 2);
	ck_assert_uint_eq(h.len, n);
	check_v4(&h, "192.0.2.7", 56324, "198.51.100.1", 143);
}
END_TEST

START_TEST(test_v2_inet6)
{
	unsigned char block[36] = { 0 }, in[64];
	struct proxy_header h;
	size_t n;

	inet_pton(AF_INET6, "2001:db8::5", block);
	inet_pton(AF_INET6, "2001:db8::1", block + 16);
	block[32] = 0x01; block[33] = 0x02;
	block[34] = 0x00; block[35] = 0x6e;
	n = v2(in, 0x21, 0x21, block, sizeof(block));
	ck_assert_int_eq(parse_bytewise(in, n, 1, &h), 1);
	check_v6(&h, "2001:db8::5", 258);
	ck_assert_uint_eq(ntohs(h.dst.in6.sin6_port), 110);
}
END_TEST

START_TEST(test_v2_local_and_unspec)
{
	unsigned char in[64], junk[12] = { 1, 2, 3 };
	struct proxy_header h;
	size_t n;

	/* LOCAL: the balancer's health check; the addresses are ignored. */
	n = v2(in, 0x20, 0x00, NULL, 0);
	ck_assert_int_eq(parse_bytewise(in, n, 1, &h), 1);
	ck_assert(h.local);
	ck_assert_uint_eq(h.len, 16);
	n = v2(in, 0x20, 0x11, junk, sizeof(junk));
	ck_assert_int_eq(parse_bytewise(in, n, 1, &h), 1);
	ck_assert(h.local);
	/* PROXY over UNSPEC or AF_UNIX: keep the peer. */
	n = v2(in, 0x21, 0x00, NULL, 0);
	ck_assert_int_eq(parse_bytewise(in, n, 1, &h), 1);
	ck_assert(h.local);
	n = v2(in, 0x21, 0x31, junk, sizeof(junk));
	ck_assert_int_eq(parse_bytewise(in, n, 1, &h), 1);
	ck_assert(h.local);
}
END_TEST

START_TEST(test_v2_malformed)
{
	unsigned char in[64], block[36] = { 0 };
	struct proxy_header h;
	size_t n;

	/* Unknown family, unknown transport, datagrams. */
	n = v2(in, 0x21, 0x41, block, 12);
	ck_assert_int_eq(parse_bytewise(in, n, -1, &h), -1);
	n = v2(in, 0x21, 0x13, block, 12);
	ck_assert_int_eq(parse_bytewise(in, n, -1, &h), -1);
	n = v2(in, 0x21, 0x12, block, 12);
	ck_assert_int_eq(parse_bytewise(in, n, -1, &h), -1);
	/* Version 1 or 3 in the v2 framing; an unknown command. */
	n = v2(in, 0x11, 0x11, block, 12);
	ck_assert_int_eq(parse_bytewise(in, n, -1, &h), -1);
	n = v2(in, 0x31, 0x11, block, 12);
	ck_assert_int_eq(parse_bytewise(in, n, -1, &h), -1);
	n = v2(in, 0x22, 0x11, block, 12);
	ck_assert_int_eq(parse_bytewise(in, n, -1, &h), -1);
	/* Address blocks too short for the family. */
	n = v2(in, 0x21, 0x11, block, 11);
	ck_assert_int_eq(parse_bytewise(in, n, -1, &h), -1);
	n = v2(in, 0x21, 0x21, block, 35);
	ck_assert_int_eq(parse_bytewise(in, n, -1, &h), -1);
	/* A broken signature. */
	n = v2(in, 0x21, 0x11, block, 12);
	in[7] = 'q';
	ck_assert_int_eq(parse_bytewise(in, n, -1, &h), -1);
}
END_TEST

START_TEST(test_v2_oversize_and_truncated)
{
	unsigned char *in = calloc(1, PROXY_HEADER_MAX + 64);
	unsigned char *tlvs = calloc(1, PROXY_V2_LEN_MAX);
	struct proxy_header h;
	const char *error;
	size_t n;

	/* The largest block allowed, mostly TLVs. */
	n = v2(in, 0x21, 0x11, tlvs, PROXY_V2_LEN_MAX);
	ck_assert_uint_eq(n, PROXY_HEADER_MAX);
	ck_assert_int_eq(proxy_header_parse(in, n, &h, &error), 1);
	ck_assert_uint_eq(h.len, PROXY_HEADER_MAX);
	/* One more: refused from the length field alone. */
	in[14] = (PROXY_V2_LEN_MAX + 1) >> 8;
	in[15] = (PROXY_V2_LEN_MAX + 1) & 0xff;
	ck_assert_int_eq(proxy_header_parse(in, 16, &h, &error), -1);
	ck_assert_ptr_nonnull(error);
	in[14] = in[15] = 0xff;
	ck_assert_int_eq(proxy_header_parse(in, 16, &h, &error), -1);
	/* Truncated: never done, always "more". */
	n = v2(in, 0x21, 0x11, tlvs, 12);
	for (size_t k = 0; k < n; k++)
		ck_assert_int_eq(proxy_header_parse(in, k, &h, &error), 0);
	free(tlvs);
	free(in);
}
END_TEST

START_TEST(test_format_round_trip)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(40000) };
	struct sockaddr_in d4 = { .sin_family = AF_INET, .sin_port = htons(143) };
	struct sockaddr_in6 d6 = { .sin6_family = AF_INET6, .sin6_port = htons(110) };
	unsigned char out[PROXY_HEADER_MAX];
	struct proxy_header h;
	const char *error;
	int n;

	inet_pton(AF_INET, "203.0.113.9", &s4.sin_addr);
	inet_pton(AF_INET, "10.0.0.1", &d4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::1", &d6.sin6_addr);

	n = proxy_header_format(PROXY_V1, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d4, out, sizeof(out));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(memcmp(out, "PROXY TCP4 203.0.113.9 10.0.0.1 40000 143\r\n", (size_t)n), 0);
	ck_assert_int_eq(proxy_header_parse(out, (size_t)n, &h, &error), 1);
	check_v4(&h, "203.0.113.9", 40000, "10.0.0.1", 143);

	n = proxy_header_format(PROXY_V2, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d4, out, sizeof(out));
	ck_assert_int_eq(n, 28);
	ck_assert_int_eq(proxy_header_parse(out, (size_t)n, &h, &error), 1);
	check_v4(&h, "203.0.113.9", 40000, "10.0.0.1", 143);

	/* Mixed families: IPv4 becomes v4-mapped. */
	n = proxy_header_format(PROXY_V2, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d6, out, sizeof(out));
	ck_assert_int_eq(n, 52);
	ck_assert_int_eq(proxy_header_parse(out, (size_t)n, &h, &error), 1);
	check_v6(&h, "::ffff:203.0.113.9", 40000);
	n = proxy_header_format(PROXY_V1, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d6, out, sizeof(out));
	ck_assert_int_eq(proxy_header_parse(out, (size_t)n, &h, &error), 1);
	check_v6(&h, "::ffff:203.0.113.9", 40000);

	/* Too small a buffer, or not IP. */
	ck_assert_int_eq(proxy_header_format(PROXY_V2, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d4, out, 27), -1);
	ck_assert_int_eq(proxy_header_format(PROXY_V1, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d4, out, 20), -1);
	s4.sin_family = AF_UNIX;
	ck_assert_int_eq(proxy_header_format(PROXY_V1, (struct sockaddr *)&s4,
	    (struct sockaddr *)&d4, out, sizeof(out)), -1);
}
END_TEST

static Suite *
proxy_proto_suite(void)
{
	Suite *s = suite_create("proxy_proto");
	TCase *tc = tcase_create("proxy_proto");

	tcase_add_test(tc, test_v1_tcp4);
	tcase_add_test(tc, test_v1_tcp6_and_unknown);
	tcase_add_test(tc, test_v1_malformed);
	tcase_add_test(tc, test_v1_oversize);
	tcase_add_test(tc, test_v2_inet);
	tcase_add_test(tc, test_v2_inet6);
	tcase_add_test(tc, test_v2_local_and_unspec);
	tcase_add_test(tc, test_v2_malformed);
	tcase_add_test(tc, test_v2_oversize_and_truncated);
	tcase_add_test(tc, test_format_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(proxy_proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
