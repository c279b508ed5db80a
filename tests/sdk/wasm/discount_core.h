/* A small, realistic discount: "P% off every cart line bought at least N times".
 *
 * Input (the JSON an input query produces for cart.lines.discounts.generate.run):
 *   {"cart": {"lines": [{"id": "...", "quantity": 3, ...}, ...]},
 *    "discount": {"metafield": {"jsonValue": {"percentage": 10, "minimumQuantity": 2}}}}
 * Output: one productDiscountsAdd operation targeting the eligible lines, or no
 * operation. Everything else in the input is skipped.
 *
 * Freestanding on purpose (no libc), so that the same code builds both as a WASI
 * command (discount_wasi.c) and as an Extism-ABI plugin (discount_extism.c). */
#ifndef DISCOUNT_CORE_H
#define DISCOUNT_CORE_H

#include <stddef.h>

#define MAX_LINES 512

typedef struct {
    const char *s;
    size_t n, i;
    int err;
} P;

typedef struct {
    const char *id;
    size_t id_len;
    long quantity;
} Line;

static void ws(P *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\n' || p->s[p->i] == '\r' || p->s[p->i] == '\t')) p->i++;
}

static int eat(P *p, char c) {
    ws(p);
    if (p->i < p->n && p->s[p->i] == c) { p->i++; return 1; }
    return 0;
}

/* A string's raw span between the quotes (escapes kept as they are). */
static int string(P *p, const char **start, size_t *len) {
    ws(p);
    if (p->i >= p->n || p->s[p->i] != '"') { p->err = 1; return 0; }
    size_t b = ++p->i;
    while (p->i < p->n && p->s[p->i] != '"') p->i += (p->s[p->i] == '\\') ? 2 : 1;
    if (p->i >= p->n) { p->err = 1; return 0; }
    *start = p->s + b;
    *len = p->i - b;
    p->i++;
    return 1;
}

static long number(P *p) {
    ws(p);
    long sign = 1, v = 0;
    if (p->i < p->n && p->s[p->i] == '-') { sign = -1; p->i++; }
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') v = v * 10 + (p->s[p->i++] - '0');
    while (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E' ||
                           p->s[p->i] == '+' || p->s[p->i] == '-' ||
                           (p->s[p->i] >= '0' && p->s[p->i] <= '9'))) p->i++;
    return sign * v;
}

static void skip(P *p);

static void skip_container(P *p, char close) {
    if (eat(p, close)) return;
    do {
        if (close == '}') {
            const char *k; size_t kl;
            if (!string(p, &k, &kl) || !eat(p, ':')) { p->err = 1; return; }
        }
        skip(p);
    } while (!p->err && eat(p, ','));
    if (!eat(p, close)) p->err = 1;
}

static void skip(P *p) {
    ws(p);
    if (p->i >= p->n) { p->err = 1; return; }
    char c = p->s[p->i];
    if (c == '{') { p->i++; skip_container(p, '}'); }
    else if (c == '[') { p->i++; skip_container(p, ']'); }
    else if (c == '"') { const char *s; size_t l; string(p, &s, &l); }
    else if (c == '-' || (c >= '0' && c <= '9')) number(p);
    else { while (p->i < p->n && p->s[p->i] >= 'a' && p->s[p->i] <= 'z') p->i++; }
}

static int key_is(const char *k, size_t kl, const char *want) {
    size_t i = 0;
    for (; i < kl && want[i]; i++) if (k[i] != want[i]) return 0;
    return i == kl && want[i] == 0;
}

/* Iterate an object's members: for each key, the body must consume the value. A value
 * that is not an object (null, for instance) is skipped. */
#define OBJECT(p, k, kl, ...)                                                     \
    if (eat(p, '{')) {                                                            \
        if (!eat(p, '}')) {                                                       \
            do {                                                                  \
                const char *k;                                                    \
                size_t kl;                                                        \
                if (!string(p, &k, &kl) || !eat(p, ':')) { (p)->err = 1; break; } \
                __VA_ARGS__                                                       \
            } while (!(p)->err && eat(p, ','));                                   \
            if (!(p)->err && !eat(p, '}')) (p)->err = 1;                          \
        }                                                                         \
    } else {                                                                      \
        skip(p);                                                                  \
    }

typedef struct {
    char *buf;
    size_t cap, len;
} Out;

static void put(Out *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) { if (o->len < o->cap) o->buf[o->len] = s[i]; o->len++; }
}
static void puts_(Out *o, const char *s) { while (*s) put(o, s++, 1); }
static void putl(Out *o, long v) {
    char tmp[24]; int n = 0;
    if (v < 0) { put(o, "-", 1); v = -v; }
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) put(o, &tmp[--n], 1);
}

/* Returns the output length (may exceed cap: then the caller's buffer was too small),
 * or 0 when the input is not the expected JSON. */
static size_t discount(const char *in, size_t n, char *out, size_t cap) {
    static Line lines[MAX_LINES];
    size_t count = 0;
    long percentage = 10, minimum = 2;
    P p = {in, n, 0, 0};
    P *pp = &p;
    ws(pp);
    if (p.i >= p.n || p.s[p.i] != '{') return 0;
    OBJECT(pp, k, kl,
        if (key_is(k, kl, "cart")) {
            OBJECT(pp, ck, ckl,
                if (key_is(ck, ckl, "lines") && eat(pp, '[')) {
                    if (!eat(pp, ']')) {
                        do {
                            Line line = {0, 0, 0};
                            OBJECT(pp, lk, lkl,
                                if (key_is(lk, lkl, "id")) string(pp, &line.id, &line.id_len);
                                else if (key_is(lk, lkl, "quantity")) line.quantity = number(pp);
                                else skip(pp);
                            )
                            if (line.id && count < MAX_LINES) lines[count++] = line;
                        } while (!p.err && eat(pp, ','));
                        if (!eat(pp, ']')) p.err = 1;
                    }
                } else skip(pp);
            )
        } else if (key_is(k, kl, "discount")) {
            OBJECT(pp, dk, dkl,
                if (key_is(dk, dkl, "metafield")) {
                    OBJECT(pp, mk, mkl,
                        if (key_is(mk, mkl, "jsonValue")) {
                            OBJECT(pp, jk, jkl,
                                if (key_is(jk, jkl, "percentage")) percentage = number(pp);
                                else if (key_is(jk, jkl, "minimumQuantity")) minimum = number(pp);
                                else skip(pp);
                            )
                        } else skip(pp);
                    )
                } else skip(pp);
            )
        } else skip(pp);
    )
    if (p.err) return 0;

    Out o = {out, cap, 0};
    size_t eligible = 0;
    for (size_t i = 0; i < count; i++) if (lines[i].quantity >= minimum) eligible++;
    if (eligible == 0) { puts_(&o, "{\"operations\":[]}"); return o.len; }
    puts_(&o, "{\"operations\":[{\"productDiscountsAdd\":{\"candidates\":[{\"message\":\"");
    putl(&o, percentage);
    puts_(&o, "% off\",\"targets\":[");
    size_t written = 0;
    for (size_t i = 0; i < count; i++) {
        if (lines[i].quantity < minimum) continue;
        if (written++) puts_(&o, ",");
        puts_(&o, "{\"cartLine\":{\"id\":\"");
        put(&o, lines[i].id, lines[i].id_len);
        puts_(&o, "\"}}");
    }
    puts_(&o, "],\"value\":{\"percentage\":{\"value\":");
    putl(&o, percentage);
    puts_(&o, "}}}],\"selectionStrategy\":\"FIRST\"}}]}");
    return o.len;
}

#endif
