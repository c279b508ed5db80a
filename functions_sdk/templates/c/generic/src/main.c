/*
 * A Cartwheel function for __CARTWHEEL_TARGET__.
 *
 * A WASI command: the input JSON (shaped by input.graphql) on stdin, the operations JSON
 * on stdout. It starts with no operations: write the target's operations (see
 * `cartwheel fn schema --target __CARTWHEEL_TARGET__`) as your logic decides.
 */
#include <stdio.h>
#include <stdlib.h>

#include "json.h"

static _Noreturn void die(const char *message) {
    fprintf(stderr, "%s\n", message);
    exit(1);
}

static char *read_stdin(size_t *len) {
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) die("out of memory reading the input");
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            continue;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) die("cannot read the input");
    buf[n] = '\0';
    *len = n;
    return buf;
}

int main(void) {
    size_t len;
    char *buf = read_stdin(&len);
    char error[160];
    json_value *input = json_parse(buf, len, error, sizeof error);
    if (input == NULL) die(error);

    const json_value *lines = json_get(json_get(input, "cart"), "lines");
    long items = 0;
    for (const json_value *line = lines ? lines->child : NULL; line; line = line->next) {
        const json_value *quantity = json_get(line, "quantity");
        if (quantity != NULL && quantity->type == JSON_NUMBER) items += atol(quantity->text);
    }
    const json_value *config =
        json_get(json_get(json_get(input, "__CARTWHEEL_OWNER__"), "metafield"), "jsonValue");
    /* Logs (stderr) are kept with every run, up to 1,000 bytes. */
    fprintf(stderr, "%ld items, configured: %s\n", items,
            config != NULL && config->type != JSON_NULL ? "true" : "false");

    json_writer out = {0};
    json_write_raw(&out, "{\"operations\":[]}");
    if (out.failed) die("out of memory writing the output");
    if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        die("cannot write the output");
    }
    return 0;
}
