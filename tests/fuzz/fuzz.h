/*
 * Fuzz targets share the libFuzzer entry point, so each builds both ways:
 * with clang -fsanitize=fuzzer for real fuzzing, and (default) linked with
 * driver.c, which replays any files given and then runs a bounded,
 * deterministic stream of mutated inputs -- a smoke run for `make check`.
 */
#ifndef POSTERN_FUZZ_H
#define POSTERN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Seeds the driver mutates; each target defines them. */
extern const char *const fuzz_seeds[];

#endif
