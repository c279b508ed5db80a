/* See json.h. */
#include "json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    char *end;
    char *error;
    size_t error_size;
    const char *start;
    int depth;
} parser;

static void *fail(parser *ps, const char *what) {
    if (ps->error[0] == '\0') {
        snprintf(ps->error, ps->error_size, "invalid JSON at byte %ld: %s",
                 (long)(ps->p - ps->start), what);
    }
    return NULL;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
        ps->p++;
    }
}

static json_value *new_value(parser *ps, json_type type) {
    json_value *v = calloc(1, sizeof *v);
    if (v == NULL) return fail(ps, "out of memory");
    v->type = type;
    return v;
}

static int hex4(const char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static char *put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        *out++ = (char)cp;
    } else if (cp < 0x800) {
        *out++ = (char)(0xC0 | (cp >> 6));
        *out++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *out++ = (char)(0xE0 | (cp >> 12));
        *out++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *out++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *out++ = (char)(0xF0 | (cp >> 18));
        *out++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *out++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *out++ = (char)(0x80 | (cp & 0x3F));
    }
    return out;
}

/* Parses the string at ps->p (on its opening quote), unescaping in place. */
static bool parse_string(parser *ps, const char **text, size_t *len) {
    char *out = ++ps->p;
    *text = out;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            *len = (size_t)(out - *text);
            *out = '\0'; /* out <= ps->p: never past the closing quote */
            ps->p++;
            return true;
        }
        if (c < 0x20) return fail(ps, "control character in string") != NULL;
        if (c != '\\') {
            *out++ = (char)c;
            ps->p++;
            continue;
        }
        if (ps->end - ps->p < 2) break;
        char e = ps->p[1];
        ps->p += 2;
        switch (e) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '/': *out++ = '/'; break;
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 't': *out++ = '\t'; break;
        case 'u': {
            if (ps->end - ps->p < 4) return fail(ps, "truncated \\u escape") != NULL;
            int cp = hex4(ps->p);
            if (cp < 0) return fail(ps, "bad \\u escape") != NULL;
            ps->p += 4;
            uint32_t code = (uint32_t)cp;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int low = (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u')
                              ? hex4(ps->p + 2)
                              : -1;
                if (low < 0xDC00 || low > 0xDFFF) {
                    return fail(ps, "unpaired UTF-16 surrogate") != NULL;
                }
                ps->p += 6;
                code = 0x10000 + (((uint32_t)cp - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(ps, "unpaired UTF-16 surrogate") != NULL;
            }
            /* 6 escaped bytes (12 for a pair) always hold the <= 4 UTF-8 bytes. */
            out = put_utf8(out, code);
            break;
        }
        default:
            return fail(ps, "bad escape") != NULL;
        }
    }
    return fail(ps, "unterminated string") != NULL;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static json_value *parse_number(parser *ps) {
    char *begin = ps->p;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p >= ps->end || !is_digit(*ps->p)) return fail(ps, "bad number");
    if (*ps->p == '0') {
        ps->p++;
    } else {
        while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p)) return fail(ps, "bad fraction");
        while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p)) return fail(ps, "bad exponent");
        while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
    }
    json_value *v = new_value(ps, JSON_NUMBER);
    if (v == NULL) return NULL;
    v->text = begin;
    v->len = (size_t)(ps->p - begin);
    return v;
}

static bool literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return false;
    ps->p += n;
    return true;
}

static json_value *parse_value(parser *ps);

/* Parses the elements (or members) of an array (or object) opened at ps->p. */
static json_value *parse_container(parser *ps, json_type type) {
    char close = type == JSON_ARRAY ? ']' : '}';
    if (++ps->depth > JSON_MAX_DEPTH) return fail(ps, "nesting too deep");
    json_value *v = new_value(ps, type);
    if (v == NULL) return NULL;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return v;
    }
    json_value **tail = &v->child;
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_ws(ps);
        if (type == JSON_OBJECT) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a member name");
            if (!parse_string(ps, &key, &key_len)) return NULL;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
        }
        json_value *item = parse_value(ps);
        if (item == NULL) return NULL;
        item->key = key;
        item->key_len = key_len;
        *tail = item;
        tail = &item->next;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            ps->depth--;
            return v;
        }
        return fail(ps, type == JSON_ARRAY ? "expected ',' or ']'" : "expected ',' or '}'");
    }
}

static json_value *parse_value(parser *ps) {
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input");
    switch (*ps->p) {
    case '{': return parse_container(ps, JSON_OBJECT);
    case '[': return parse_container(ps, JSON_ARRAY);
    case '"': {
        json_value *v = new_value(ps, JSON_STRING);
        if (v == NULL || !parse_string(ps, &v->text, &v->len)) return NULL;
        return v;
    }
    case 't': return literal(ps, "true") ? new_value(ps, JSON_TRUE) : fail(ps, "bad literal");
    case 'f': return literal(ps, "false") ? new_value(ps, JSON_FALSE) : fail(ps, "bad literal");
    case 'n': return literal(ps, "null") ? new_value(ps, JSON_NULL) : fail(ps, "bad literal");
    default: return parse_number(ps);
    }
}

json_value *json_parse(char *buf, size_t len, char *error, size_t error_size) {
    parser ps = {buf, buf + len, error, error_size, buf, 0};
    error[0] = '\0';
    json_value *root = parse_value(&ps);
    if (root == NULL) return NULL;
    skip_ws(&ps);
    if (ps.p != ps.end) return fail(&ps, "trailing characters after the document");
    return root;
}

const json_value *json_get(const json_value *object, const char *key) {
    if (object == NULL || object->type != JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (const json_value *m = object->child; m != NULL; m = m->next) {
        if (m->key_len == n && memcmp(m->key, key, n) == 0) return m;
    }
    return NULL;
}

bool json_string_equals(const json_value *value, const char *s) {
    return value != NULL && value->type == JSON_STRING && value->len == strlen(s) &&
           memcmp(value->text, s, value->len) == 0;
}

void json_write_bytes(json_writer *w, const char *s, size_t len) {
    if (w->failed) return;
    if (w->len + len > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + len) cap *= 2;
        char *data = realloc(w->data, cap);
        if (data == NULL) {
            w->failed = true;
            return;
        }
        w->data = data;
        w->cap = cap;
    }
    memcpy(w->data + w->len, s, len);
    w->len += len;
}

void json_write_raw(json_writer *w, const char *s) { json_write_bytes(w, s, strlen(s)); }

void json_write_string(json_writer *w, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    json_write_bytes(w, "\"", 1);
    size_t run = 0; /* bytes of s[...] not yet written that need no escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        json_write_bytes(w, s + i - run, run);
        run = 0;
        if (c == '"') json_write_bytes(w, "\\\"", 2);
        else if (c == '\\') json_write_bytes(w, "\\\\", 2);
        else if (c == '\n') json_write_bytes(w, "\\n", 2);
        else if (c == '\r') json_write_bytes(w, "\\r", 2);
        else if (c == '\t') json_write_bytes(w, "\\t", 2);
        else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
            json_write_bytes(w, esc, 6);
        }
    }
    json_write_bytes(w, s + len - run, run);
    json_write_bytes(w, "\"", 1);
}
