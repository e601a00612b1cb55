/*
 * Stand-alone driver for the fuzz targets: replays files named on the
 * command line, then feeds FUZZ_ITERATIONS inputs made by mutating the
 * target's seeds with a fixed-seed PRNG (byte flips, inserts, deletes,
 * splices, interesting bytes).  Deterministic, bounded, sanitizer-friendly.
 * FUZZ_WRITE_SEEDS=DIR writes the seeds to DIR/seed-N and exits (to start
 * a corpus under tests/fuzz/corpus/<target>/).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#ifndef FUZZ_ITERATIONS
#define FUZZ_ITERATIONS	20000
#endif
#define FUZZ_MAX	4096

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t
mutate(uint8_t *buf, size_t len, size_t max)
{
	static const uint8_t interesting[] = { 0, '\r', '\n', ' ', '"', '\\', '{',
	    '}', '+', '(', ')', '*', '%', '@', 0x7f, 0x80, 0xc3, 0xff, '=', ':' };
	int rounds = 1 + (int)(next() % 8);

	for (int r = 0; r < rounds; r++) {
		size_t pos = len ? next() % len : 0;

		switch (next() % 6) {
		case 0:
			if (len)
				buf[pos] ^= (uint8_t)(1u << (next() % 8));
			break;
		case 1:
			if (len)
				buf[pos] = interesting[next() % sizeof(interesting)];
			break;
		case 2:
			if (len < max) {
				memmove(buf + pos + 1, buf + pos, len - pos);
				buf[pos] = interesting[next() % sizeof(interesting)];
				len++;
			}
			break;
		case 3:
			if (len) {
				size_t n = 1 + next() % (len - pos);

				memmove(buf + pos, buf + pos + n, len - pos - n);
				len -= n;
			}
			break;
		case 4:
			/* Duplicate a chunk: long lines, repeated tokens. */
			if (len && len < max) {
				size_t n = 1 + next() % (len - pos);

				if (len + n > max)
					n = max - len;
				memmove(buf + pos + n, buf + pos, len - pos);
				len += n;
			}
			break;
		default:
			if (len)
				buf[pos] = (uint8_t)next();
			break;
		}
	}
	return len;
}

static int
write_seeds(const char *dir)
{
	char path[4096];

	for (size_t i = 0; fuzz_seeds[i] != NULL; i++) {
		FILE *fp;

		snprintf(path, sizeof(path), "%s/seed-%zu", dir, i);
		if ((fp = fopen(path, "wb")) == NULL ||
		    fwrite(fuzz_seeds[i], 1, strlen(fuzz_seeds[i]), fp) !=
		    strlen(fuzz_seeds[i]) || fclose(fp) != 0) {
			perror(path);
			return 1;
		}
	}
	return 0;
}

static void
run_file(const char *path)
{
	static uint8_t buf[1 << 20];
	FILE *fp = fopen(path, "rb");
	size_t n;

	if (fp == NULL) {
		perror(path);
		exit(1);
	}
	n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, n);
}

int
main(int argc, char **argv)
{
	static uint8_t buf[FUZZ_MAX];
	size_t nseeds = 0;
	unsigned long iterations = FUZZ_ITERATIONS;
	const char *env = getenv("FUZZ_ITERATIONS");

	if (env != NULL)
		iterations = strtoul(env, NULL, 10);
	if ((env = getenv("FUZZ_WRITE_SEEDS")) != NULL)
		return write_seeds(env);
	for (int i = 1; i < argc; i++)
		run_file(argv[i]);
	while (fuzz_seeds[nseeds] != NULL)
		nseeds++;
	for (size_t i = 0; i < nseeds; i++)
		LLVMFuzzerTestOneInput((const uint8_t *)fuzz_seeds[i], strlen(fuzz_seeds[i]));
	for (unsigned long it = 0; it < iterations; it++) {
		const char *seed = fuzz_seeds[next() % nseeds];
		size_t len = strlen(seed);

		if (len > FUZZ_MAX)
			len = FUZZ_MAX;
		memcpy(buf, seed, len);
		len = mutate(buf, len, FUZZ_MAX);
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("%s: %lu inputs, no crash\n", argv[0], iterations + nseeds);
	return 0;
}
