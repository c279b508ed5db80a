/* The discount of discount_core.h as an Extism-ABI plugin: input and output through
 * the Extism kernel (`extism:host/env`), entry export `run`. No libc, no WASI.
 * Rebuild: see README.md in this directory. */
#include <stdint.h>

#include "discount_core.h"

#define IMPORT(name) __attribute__((import_module("extism:host/env"), import_name(name)))

IMPORT("input_length") uint64_t extism_input_length(void);
IMPORT("input_load_u8") uint8_t extism_input_load_u8(uint64_t offset);
IMPORT("alloc") uint64_t extism_alloc(uint64_t length);
IMPORT("store_u8") void extism_store_u8(uint64_t offset, uint8_t value);
IMPORT("output_set") void extism_output_set(uint64_t offset, uint64_t length);
IMPORT("error_set") void extism_error_set(uint64_t offset);

static char input[1 << 20];
static char output[1 << 16];

/* clang may lower loops or struct copies to these. */
void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

static uint64_t to_kernel(const char *data, size_t len) {
    uint64_t offset = extism_alloc(len);
    for (size_t i = 0; i < len; i++) extism_store_u8(offset + i, (uint8_t)data[i]);
    return offset;
}

__attribute__((export_name("run"))) int32_t run(void) {
    uint64_t n = extism_input_length();
    if (n > sizeof input) n = sizeof input;
    for (uint64_t i = 0; i < n; i++) input[i] = (char)extism_input_load_u8(i);
    size_t len = discount(input, (size_t)n, output, sizeof output);
    if (len == 0 || len > sizeof output) {
        static const char message[] = "discount: cannot read the input";
        extism_error_set(to_kernel(message, sizeof message - 1));
        return 1;
    }
    extism_output_set(to_kernel(output, len), len);
    return 0;
}
