/* A test function for every target: it outputs its owner's configuration.
 *
 * The input query is `query Input { <owner> { metafield(namespace: "test", key: "ops")
 * { jsonValue } } }`, so the input is {"<owner>":{"metafield":{"jsonValue":<value>}}}
 * (compact JSON, as the platform writes it) and the output is <value> itself: each
 * function instance's metafield holds the exact operations it should return. Without
 * the metafield the output is {"operations":[]}.
 *
 * Build: clang --target=wasm32-wasi -Oz -s -o echo_config.wasm echo_config.c
 */
#include <stdio.h>
#include <string.h>

static char input[1 << 20];

int main(void) {
    size_t n = fread(input, 1, sizeof input - 1, stdin);
    input[n] = '\0';
    const char *key = "\"jsonValue\":";
    const char *value = strstr(input, key);
    if (value == NULL) {
        fputs("{\"operations\":[]}", stdout);
        return 0;
    }
    value += strlen(key);
    size_t length = n - (size_t)(value - input);
    if (length < 3) {
        fputs("truncated input\n", stderr);
        return 1;
    }
    fwrite(value, 1, length - 3, stdout); /* drop the three closing braces */
    return 0;
}
