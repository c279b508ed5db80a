/*
 * Cartwheel example function: a delivery customization in C.
 *
 * Target cart.delivery-options.transform.run. A WASI command: the input JSON (shaped by
 * input.graphql) arrives on stdin, the operations JSON leaves on stdout.
 *
 * Configuration: the JSON metafield cartwheel.function-configuration on the delivery
 * customization, e.g.
 *   {"provinceCodes": ["AK", "HI"], "hideTitleContaining": "express",
 *    "renameSuffix": " (allow 3-5 extra days)", "hideLocalDeliveryBelow": "50.00"}
 * - In delivery groups shipping to one of `provinceCodes`, options whose title contains
 *   `hideTitleContaining` (ASCII case-insensitive) are hidden and the other options get
 *   `renameSuffix` appended to their title.
 * - When the cart subtotal is below `hideLocalDeliveryBelow`, LOCAL delivery options
 *   are hidden everywhere.
 * Every key is optional; without the metafield the function does nothing. A malformed
 * input or configuration fails the run (exit status 1, reason on stderr).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef struct {
    const json_value *province_codes; /* array of strings, or NULL */
    const json_value *hide_title_containing; /* string, or NULL */
    const json_value *rename_suffix; /* string, or NULL */
    bool has_local_minimum;
    int64_t local_minimum; /* millionths of the cart currency */
} config;

static _Noreturn void die(const char *message) {
    fprintf(stderr, "delivery-customization: %s\n", message);
    exit(1);
}

/* Parses a Decimal ("-?digits(.digits)?", at most 6 decimals) into millionths. */
static bool parse_decimal(const char *s, size_t len, int64_t *out) {
    size_t i = 0;
    bool negative = len > 0 && s[0] == '-';
    if (negative) i++;
    int64_t units = 0;
    size_t whole_digits = 0;
    for (; i < len && isdigit((unsigned char)s[i]); i++, whole_digits++) {
        if (units > (INT64_MAX / 10 - 9) / 1000000) return false;
        units = units * 10 + (s[i] - '0');
    }
    if (whole_digits == 0) return false;
    units *= 1000000;
    if (i < len) {
        if (s[i++] != '.' || i == len) return false;
        int64_t scale = 100000;
        for (; i < len; i++, scale /= 10) {
            if (!isdigit((unsigned char)s[i]) || scale == 0) return false;
            units += (s[i] - '0') * scale;
        }
    }
    *out = negative ? -units : units;
    return true;
}

static bool contains_ignoring_case(const json_value *haystack, const json_value *needle) {
    size_t n = needle->len, h = haystack->len;
    if (n == 0) return true;
    for (size_t i = 0; i + n <= h; i++) {
        size_t j = 0;
        while (j < n && tolower((unsigned char)haystack->text[i + j]) ==
                            tolower((unsigned char)needle->text[j])) {
            j++;
        }
        if (j == n) return true;
    }
    return false;
}

static bool in_string_list(const json_value *list, const json_value *value) {
    if (list == NULL || value == NULL || value->type != JSON_STRING) return false;
    for (const json_value *item = list->child; item != NULL; item = item->next) {
        if (item->len == value->len && memcmp(item->text, value->text, value->len) == 0) {
            return true;
        }
    }
    return false;
}

/* An optional string member: NULL when absent or null, exits when of another type. */
static const json_value *optional_string(const json_value *object, const char *key) {
    const json_value *v = json_get(object, key);
    if (v == NULL || v->type == JSON_NULL) return NULL;
    if (v->type != JSON_STRING) {
        fprintf(stderr, "delivery-customization: configuration %s must be a string\n", key);
        exit(1);
    }
    return v;
}

static config read_config(const json_value *json) {
    config c = {0};
    if (json->type != JSON_OBJECT) die("the configuration must be a JSON object");
    c.province_codes = json_get(json, "provinceCodes");
    if (c.province_codes != NULL && c.province_codes->type == JSON_NULL) {
        c.province_codes = NULL;
    }
    if (c.province_codes != NULL) {
        bool ok = c.province_codes->type == JSON_ARRAY;
        for (const json_value *p = ok ? c.province_codes->child : NULL; p; p = p->next) {
            ok = ok && p->type == JSON_STRING;
        }
        if (!ok) die("configuration provinceCodes must be an array of strings");
    }
    c.hide_title_containing = optional_string(json, "hideTitleContaining");
    c.rename_suffix = optional_string(json, "renameSuffix");
    const json_value *minimum = optional_string(json, "hideLocalDeliveryBelow");
    if (minimum != NULL) {
        if (!parse_decimal(minimum->text, minimum->len, &c.local_minimum)) {
            die("configuration hideLocalDeliveryBelow must be a decimal string such as "
                "\"50.00\"");
        }
        c.has_local_minimum = true;
    }
    return c;
}

static void write_hide(json_writer *w, bool *first, const json_value *handle) {
    json_write_raw(w, *first ? "" : ",");
    *first = false;
    json_write_raw(w, "{\"deliveryOptionHide\":{\"deliveryOptionHandle\":");
    json_write_string(w, handle->text, handle->len);
    json_write_raw(w, "}}");
}

static void write_rename(json_writer *w, bool *first, const json_value *handle,
                         const json_value *title, const json_value *suffix) {
    json_write_raw(w, *first ? "" : ",");
    *first = false;
    json_write_raw(w, "{\"deliveryOptionRename\":{\"deliveryOptionHandle\":");
    json_write_string(w, handle->text, handle->len);
    json_write_raw(w, ",\"title\":");
    /* title + suffix, escaped as one string */
    size_t len = title->len + suffix->len;
    char *joined = malloc(len + 1);
    if (joined == NULL) die("out of memory");
    memcpy(joined, title->text, title->len);
    memcpy(joined + title->len, suffix->text, suffix->len);
    json_write_string(w, joined, len);
    free(joined);
    json_write_raw(w, "}}");
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

    json_writer out = {0};
    bool first = true;
    json_write_raw(&out, "{\"operations\":[");

    const json_value *metafield = json_get(json_get(input, "deliveryCustomization"), "metafield");
    const json_value *config_json = json_get(metafield, "jsonValue");
    const json_value *cart = json_get(input, "cart");
    if (config_json != NULL && config_json->type != JSON_NULL) {
        config c = read_config(config_json);
        bool hide_local = false;
        if (c.has_local_minimum) {
            const json_value *amount =
                json_get(json_get(json_get(cart, "cost"), "subtotalAmount"), "amount");
            int64_t subtotal;
            if (amount == NULL || amount->type != JSON_STRING ||
                !parse_decimal(amount->text, amount->len, &subtotal)) {
                die("the input lacks cart.cost.subtotalAmount.amount; check input.graphql");
            }
            hide_local = subtotal < c.local_minimum;
        }
        const json_value *groups = json_get(cart, "deliveryGroups");
        for (const json_value *g = groups ? groups->child : NULL; g != NULL; g = g->next) {
            const json_value *province =
                json_get(json_get(g, "deliveryAddress"), "provinceCode");
            bool remote = in_string_list(c.province_codes, province);
            const json_value *options = json_get(g, "deliveryOptions");
            for (const json_value *o = options ? options->child : NULL; o; o = o->next) {
                const json_value *handle = json_get(o, "handle");
                const json_value *title = json_get(o, "title");
                if (handle == NULL || handle->type != JSON_STRING) {
                    die("a delivery option lacks its handle; check input.graphql");
                }
                bool titled = title != NULL && title->type == JSON_STRING;
                bool hide =
                    (remote && c.hide_title_containing != NULL && titled &&
                     contains_ignoring_case(title, c.hide_title_containing)) ||
                    (hide_local && json_string_equals(json_get(o, "deliveryMethodType"), "LOCAL"));
                if (hide) {
                    write_hide(&out, &first, handle);
                } else if (remote && c.rename_suffix != NULL && titled) {
                    write_rename(&out, &first, handle, title, c.rename_suffix);
                }
            }
        }
    }
    json_write_raw(&out, "]}");
    if (out.failed) die("out of memory writing the output");
    if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        die("cannot write the output");
    }
    return 0;
}
