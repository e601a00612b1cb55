/* Unit tests for the bounded byte buffer (src/buf.h). */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

START_TEST(test_init_allocates_nothing)
{
	struct buf b;

	buf_init(&b, 4096);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(buf_len(&b), 0);
	ck_assert_uint_eq(buf_room(&b), 4096);
	ck_assert_uint_eq(b.max, 4096);
	buf_free(&b);
	ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(test_append_consume)
{
	struct buf b;

	buf_init(&b, 4096);
	ck_assert_int_eq(buf_append(&b, "hello ", 6), 0);
	ck_assert_int_eq(buf_append_str(&b, "world"), 0);
	ck_assert_ptr_nonnull(b.data);
	ck_assert_uint_eq(buf_len(&b), 11);
	ck_assert_uint_eq(buf_room(&b), 4096 - 11);
	ck_assert_mem_eq(buf_head(&b), "hello world", 11);

	buf_consume(&b, 6);
	ck_assert_uint_eq(buf_len(&b), 5);
	ck_assert_mem_eq(buf_head(&b), "world", 5);
	ck_assert_uint_eq(buf_room(&b), 4096 - 5);

	ck_assert_int_eq(buf_append(&b, "!", 1), 0);
	ck_assert_mem_eq(buf_head(&b), "world!", 6);

	buf_consume(&b, 0);
	ck_assert_uint_eq(buf_len(&b), 6);
	buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(buf_len(&b), 0);
	/* Usable again after buf_free. */
	ck_assert_int_eq(buf_append_str(&b, "again"), 0);
	ck_assert_mem_eq(buf_head(&b), "again", 5);
	buf_free(&b);
}
END_TEST

START_TEST(test_append_empty)
{
	struct buf b;

	buf_init(&b, 16);
	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	ck_assert_int_eq(buf_append_str(&b, ""), 0);
	ck_assert_ptr_null(b.data);	/* nothing to hold, nothing allocated */
	ck_assert_uint_eq(buf_len(&b), 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_released_when_drained)
{
	struct buf b;

	buf_init(&b, 4096);
	ck_assert_int_eq(buf_append_str(&b, "abcdef"), 0);
	buf_consume(&b, 3);
	ck_assert_ptr_nonnull(b.data);
	buf_consume(&b, 3);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(buf_len(&b), 0);
	ck_assert_uint_eq(b.cap, 0);

	/* Consuming more than there is drains it too. */
	ck_assert_int_eq(buf_append_str(&b, "xyz"), 0);
	buf_consume(&b, 100);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(buf_len(&b), 0);

	/* And consuming an empty buffer is harmless. */
	buf_consume(&b, 0);
	buf_consume(&b, 5);
	ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(test_max_enforced)
{
	struct buf b;
	char big[100];

	memset(big, 'x', sizeof(big));
	buf_init(&b, 10);
	ck_assert_int_eq(buf_append(&b, big, 11), -1);
	ck_assert_uint_eq(buf_len(&b), 0);
	ck_assert_int_eq(buf_append(&b, big, 6), 0);
	ck_assert_int_eq(buf_append(&b, big, 5), -1);	/* 11 > 10 */
	ck_assert_uint_eq(buf_len(&b), 6);		/* unchanged */
	ck_assert_int_eq(buf_append(&b, big, 4), 0);	/* exactly full */
	ck_assert_uint_eq(buf_len(&b), 10);
	ck_assert_uint_eq(buf_room(&b), 0);
	ck_assert_int_eq(buf_append(&b, big, 1), -1);
	ck_assert_int_eq(buf_append_str(&b, "y"), -1);
	ck_assert_int_eq(buf_printf(&b, "%d", 7), -1);
	ck_assert_uint_lt(b.cap, 1024);			/* never past what max needs */
	ck_assert_uint_ge(b.cap, 10);

	/* Room comes back after consuming. */
	buf_consume(&b, 3);
	ck_assert_uint_eq(buf_room(&b), 3);
	ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
	ck_assert_uint_eq(buf_len(&b), 10);
	ck_assert_mem_eq(buf_head(&b) + 7, "abc", 3);
	buf_free(&b);
}
END_TEST

START_TEST(test_reserve_commit)
{
	struct buf b;
	char *p;
	size_t avail;

	buf_init(&b, 1 << 20);
	ck_assert_int_eq(buf_reserve(&b, 100, &p, &avail), 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_ge(avail, 100);
	memcpy(p, "0123456789", 10);
	buf_commit(&b, 10);
	ck_assert_uint_eq(buf_len(&b), 10);
	ck_assert_mem_eq(buf_head(&b), "0123456789", 10);

	/* Growth: a large reservation gets at least what was asked. */
	ck_assert_int_eq(buf_reserve(&b, 100000, &p, &avail), 0);
	ck_assert_uint_ge(avail, 100000);
	ck_assert_ptr_eq(p, buf_head(&b) + 10);
	memset(p, 'z', 100000);
	buf_commit(&b, 100000);
	ck_assert_uint_eq(buf_len(&b), 100010);
	ck_assert_mem_eq(buf_head(&b), "0123456789zz", 12);
	ck_assert_int_eq(buf_head(&b)[100009], 'z');
	buf_free(&b);
}
END_TEST

START_TEST(test_reserve_compacts)
{
	/* Consumed head space is reused before growing. */
	struct buf b;
	char *p;
	size_t avail, cap;

	buf_init(&b, 1 << 20);
	ck_assert_int_eq(buf_reserve(&b, 1, &p, &avail), 0);
	cap = b.cap;
	memset(p, 'a', avail);
	buf_commit(&b, avail);			/* fill the allocation */
	buf_consume(&b, avail - 4);		/* keep 4 bytes */
	ck_assert_int_eq(buf_reserve(&b, cap - 8, &p, &avail), 0);
	ck_assert_uint_eq(b.cap, cap);		/* no realloc needed */
	ck_assert_uint_ge(avail, cap - 8);
	ck_assert_mem_eq(buf_head(&b), "aaaa", 4);
	buf_free(&b);
}
END_TEST

START_TEST(test_reserve_clamped_to_room)
{
	struct buf b;
	char *p;
	size_t avail;

	buf_init(&b, 100);
	ck_assert_int_eq(buf_reserve(&b, 1000, &p, &avail), 0);
	ck_assert_uint_eq(avail, 100);		/* clamped to the room left */
	memset(p, 'q', avail);
	buf_commit(&b, 60);
	ck_assert_int_eq(buf_reserve(&b, 1000, &p, &avail), 0);
	ck_assert_uint_eq(avail, 40);
	buf_commit(&b, 40);
	ck_assert_uint_eq(buf_len(&b), 100);
	ck_assert_int_eq(buf_reserve(&b, 1, &p, &avail), -1);	/* full */
	buf_free(&b);
}
END_TEST

START_TEST(test_grow_in_steps)
{
	/* Many small appends that cross several reallocations. */
	struct buf b;
	char chunk[37];

	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < 3000; i++) {
		memset(chunk, 'a' + (int)(i % 26), sizeof(chunk));
		ck_assert_int_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
		if (i % 7 == 0)
			buf_consume(&b, 5);
	}
	ck_assert_uint_le(b.cap, 1 << 20);
	ck_assert_uint_ge(b.cap, buf_len(&b));
	/* The tail holds the last chunk. */
	ck_assert_int_eq(buf_head(&b)[buf_len(&b) - 1], 'a' + (2999 % 26));
	buf_free(&b);
}
END_TEST

START_TEST(test_find_line)
{
	struct buf b;
	size_t len = 12345;

	buf_init(&b, 1024);
	ck_assert_int_eq(buf_find_line(&b, 100, &len), 0);	/* empty */
	ck_assert_int_eq(buf_append_str(&b, "abc"), 0);
	ck_assert_int_eq(buf_find_line(&b, 100, &len), 0);	/* need more */
	ck_assert_int_eq(buf_append_str(&b, "\r\nnext\n"), 0);
	ck_assert_int_eq(buf_find_line(&b, 100, &len), 1);
	ck_assert_uint_eq(len, 5);				/* incl. CRLF */
	buf_consume(&b, len);
	ck_assert_int_eq(buf_find_line(&b, 100, &len), 1);
	ck_assert_uint_eq(len, 5);
	buf_consume(&b, len);
	ck_assert_ptr_null(b.data);

	/* A lone LF is an empty line of length 1. */
	ck_assert_int_eq(buf_append_str(&b, "\nx"), 0);
	ck_assert_int_eq(buf_find_line(&b, 100, &len), 1);
	ck_assert_uint_eq(len, 1);
	buf_free(&b);
}
END_TEST

START_TEST(test_find_line_max)
{
	struct buf b;
	size_t len = 0;

	buf_init(&b, 1024);
	ck_assert_int_eq(buf_append_str(&b, "0123456789"), 0);
	/* Fewer than max bytes, no LF: wait for more. */
	ck_assert_int_eq(buf_find_line(&b, 11, &len), 0);
	/* max bytes with no LF: too long. */
	ck_assert_int_eq(buf_find_line(&b, 10, &len), -1);
	ck_assert_int_eq(buf_find_line(&b, 5, &len), -1);
	ck_assert_int_eq(buf_append_str(&b, "\n"), 0);
	/* The LF is byte 11: found with max 11, not with max 10. */
	ck_assert_int_eq(buf_find_line(&b, 11, &len), 1);
	ck_assert_uint_eq(len, 11);
	ck_assert_int_eq(buf_find_line(&b, 10, &len), -1);
	ck_assert_int_eq(buf_find_line(&b, 1000, &len), 1);
	ck_assert_uint_eq(len, 11);
	buf_free(&b);

	/* An LF beyond max does not count. */
	buf_init(&b, 1024);
	ck_assert_int_eq(buf_append_str(&b, "abcdef\n"), 0);
	ck_assert_int_eq(buf_find_line(&b, 3, &len), -1);
	buf_free(&b);
}
END_TEST

START_TEST(test_find_line_after_consume)
{
	/* The search starts at the head, not at the allocation. */
	struct buf b;
	size_t len = 0;

	buf_init(&b, 1024);
	ck_assert_int_eq(buf_append_str(&b, "a\nbbbb"), 0);
	buf_consume(&b, 2);
	ck_assert_int_eq(buf_find_line(&b, 100, &len), 0);
	ck_assert_int_eq(buf_find_line(&b, 4, &len), -1);
	ck_assert_int_eq(buf_append_str(&b, "\n"), 0);
	ck_assert_int_eq(buf_find_line(&b, 100, &len), 1);
	ck_assert_uint_eq(len, 5);
	buf_free(&b);
}
END_TEST

START_TEST(test_printf)
{
	struct buf b;

	buf_init(&b, 1 << 16);
	ck_assert_int_eq(buf_printf(&b, "%s %d %c", "tag", 42, 'x'), 0);
	ck_assert_uint_eq(buf_len(&b), 8);
	ck_assert_mem_eq(buf_head(&b), "tag 42 x", 8);
	ck_assert_int_eq(buf_printf(&b, "%s", ""), 0);
	ck_assert_uint_eq(buf_len(&b), 8);
	buf_free(&b);
}
END_TEST

START_TEST(test_printf_long)
{
	/* Longer than any stack buffer the implementation might use. */
	static const size_t sizes[] = { 511, 512, 513, 1023, 1024, 4000, 20000 };
	struct buf b;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		char *s = malloc(n + 1);

		ck_assert_ptr_nonnull(s);
		for (size_t i = 0; i < n; i++)
			s[i] = (char)('A' + i % 26);
		s[n] = '\0';
		buf_init(&b, 1 << 16);
		ck_assert_int_eq(buf_append_str(&b, "<"), 0);
		ck_assert_int_eq(buf_printf(&b, "[%s]%zu", s, n), 0);
		ck_assert_uint_eq(buf_head(&b)[0], '<');
		ck_assert_uint_eq(buf_head(&b)[1], '[');
		ck_assert_mem_eq(buf_head(&b) + 2, s, n);
		ck_assert_int_eq(buf_head(&b)[2 + n], ']');
		buf_free(&b);

		/* Too long for the maximum: refused, buffer unchanged. */
		buf_init(&b, n);
		ck_assert_int_eq(buf_append_str(&b, "x"), 0);
		ck_assert_int_eq(buf_printf(&b, "%s", s), -1);
		ck_assert_uint_eq(buf_len(&b), 1);
		buf_free(&b);
		free(s);
	}
}
END_TEST

START_TEST(test_wipe)
{
	struct buf b;

	buf_init(&b, 1024);
	ck_assert_int_eq(buf_append_str(&b, "PASS hunter2\r\n"), 0);
	buf_consume(&b, 5);
	buf_wipe(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(buf_len(&b), 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 1024);		/* still usable */
	ck_assert_int_eq(buf_append_str(&b, "next"), 0);
	ck_assert_mem_eq(buf_head(&b), "next", 4);
	buf_free(&b);

	/* Wiping an empty buffer is fine. */
	buf_init(&b, 8);
	buf_wipe(&b);
	ck_assert_ptr_null(b.data);
}
END_TEST

static Suite *
buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");

	tcase_add_test(tc, test_init_allocates_nothing);
	tcase_add_test(tc, test_append_consume);
	tcase_add_test(tc, test_append_empty);
	tcase_add_test(tc, test_released_when_drained);
	tcase_add_test(tc, test_max_enforced);
	tcase_add_test(tc, test_reserve_commit);
	tcase_add_test(tc, test_reserve_compacts);
	tcase_add_test(tc, test_reserve_clamped_to_room);
	tcase_add_test(tc, test_grow_in_steps);
	tcase_add_test(tc, test_find_line);
	tcase_add_test(tc, test_find_line_max);
	tcase_add_test(tc, test_find_line_after_consume);
	tcase_add_test(tc, test_printf);
	tcase_add_test(tc, test_printf_long);
	tcase_add_test(tc, test_wipe);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(buf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
