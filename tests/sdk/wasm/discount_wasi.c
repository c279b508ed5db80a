/* The discount of discount_core.h as a WASI command: input JSON on stdin, output JSON
 * on stdout, a log line on stderr. Rebuild: see README.md in this directory. */
#include <stdio.h>

#include "discount_core.h"

static char input[1 << 20];
static char output[1 << 16];

int main(void) {
    size_t n = fread(input, 1, sizeof input, stdin);
    size_t len = discount(input, n, output, sizeof output);
    if (len == 0 || len > sizeof output) {
        fprintf(stderr, "discount: cannot read the input (%zu bytes)\n", n);
        return 1;
    }
    fwrite(output, 1, len, stdout);
    fprintf(stderr, "discount: %zu input bytes\n", n);
    return 0;
}
