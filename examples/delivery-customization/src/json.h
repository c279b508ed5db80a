/*
 * A small JSON reader and writer for Cartwheel functions.
 *
 * The reader parses a complete document held in a writable buffer into a tree of
 * `json_value` nodes. Strings are unescaped in place (an unescaped string is never
 * longer than its escaped form), so the tree points into the buffer and needs no
 * copies; nodes come from malloc and live until the process exits, which is the whole
 * life of a function run. It accepts RFC 8259 JSON: objects, arrays, strings with
 * every escape including \uXXXX surrogate pairs, numbers (kept as their text), true,
 * false, null; nesting deeper than JSON_MAX_DEPTH is rejected. Unescaped bytes of
 * strings are passed through without UTF-8 validation (the platform's input is UTF-8).
 *
 * The writer appends to a growable buffer and escapes strings for JSON.
 */
#ifndef CARTWHEEL_JSON_H
#define CARTWHEEL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 64

typedef enum {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

typedef struct json_value {
    json_type type;
    /* JSON_STRING: the unescaped text; JSON_NUMBER: the number as written.
       NUL-terminated unless the string itself contains \u0000 (len is exact). */
    const char *text;
    size_t len;
    /* Member name when this value sits in an object, else NULL. */
    const char *key;
    size_t key_len;
    /* First element or member of an array or object. */
    struct json_value *child;
    /* Next element or member of the enclosing array or object. */
    struct json_value *next;
} json_value;

/* Parses `len` bytes of `buf` (modified in place; buf[len] must be writable).
   Returns the root, or NULL with a message in `error` (at least 128 bytes). */
json_value *json_parse(char *buf, size_t len, char *error, size_t error_size);

/* Member `key` of an object; NULL when `object` is NULL, not an object, or lacks it. */
const json_value *json_get(const json_value *object, const char *key);

/* True for a string value equal to `s`. */
bool json_string_equals(const json_value *value, const char *s);

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed: the buffer is incomplete */
} json_writer;

void json_write_raw(json_writer *w, const char *s);
void json_write_bytes(json_writer *w, const char *s, size_t len);
/* Writes `s` (len bytes) as a quoted, escaped JSON string. */
void json_write_string(json_writer *w, const char *s, size_t len);

#endif
