/* expr.c: the small integer formula language of the registry (dispatch sizes, bytes moved, workgroup
 * sizes): + - * / % with parentheses, names looked up by the caller, and cdiv/min/max. Recursive descent;
 * depth is bounded so a hostile registry cannot overflow the stack. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "kpath/kpath.h"

struct parser {
    const char *s, *p;
    dg_expr_lookup lookup;
    void *ctx;
    const char *what;
    int depth;
    dg_status st;
};

static int64_t parse_sum(struct parser *ps);

static int64_t fail(struct parser *ps, const char *msg)
{
    if (ps->st == DG_OK)
        ps->st = dg_fail(DG_E_FORMAT, "%s: formula \"%s\": %s at offset %d", ps->what, ps->s, msg,
                         (int)(ps->p - ps->s));
    return 0;
}

static void skip(struct parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

static int64_t parse_atom(struct parser *ps)
{
    skip(ps);
    if (ps->st != DG_OK)
        return 0;
    if (++ps->depth > 64)
        return fail(ps, "nested too deeply");
    int64_t v = 0;
    if (*ps->p == '(') {
        ps->p++;
        v = parse_sum(ps);
        skip(ps);
        if (*ps->p != ')')
            v = fail(ps, "expected ')'");
        else
            ps->p++;
    } else if (*ps->p == '-') {
        ps->p++;
        v = -parse_atom(ps);
    } else if (isdigit((unsigned char)*ps->p)) {
        while (isdigit((unsigned char)*ps->p)) {
            if (v > (INT64_MAX - 9) / 10)
                return fail(ps, "number too large");
            v = v * 10 + (*ps->p++ - '0');
        }
    } else if (isalpha((unsigned char)*ps->p) || *ps->p == '_') {
        char name[64];
        size_t n = 0;
        while ((isalnum((unsigned char)*ps->p) || *ps->p == '_') && n + 1 < sizeof name)
            name[n++] = *ps->p++;
        name[n] = 0;
        skip(ps);
        if (*ps->p == '(') {
            ps->p++;
            int64_t a = parse_sum(ps);
            skip(ps);
            if (*ps->p != ',')
                return fail(ps, "expected ',' in function call");
            ps->p++;
            int64_t b = parse_sum(ps);
            skip(ps);
            if (*ps->p != ')')
                return fail(ps, "expected ')' after function arguments");
            ps->p++;
            if (strcmp(name, "cdiv") == 0) {
                if (b <= 0)
                    return fail(ps, "cdiv by a value <= 0");
                v = (a + b - 1) / b;
            } else if (strcmp(name, "min") == 0) {
                v = a < b ? a : b;
            } else if (strcmp(name, "max") == 0) {
                v = a > b ? a : b;
            } else {
                char msg[128];
                snprintf(msg, sizeof msg, "unknown function %s (known: cdiv, min, max)", name);
                return fail(ps, msg);
            }
        } else if (!ps->lookup || !ps->lookup(ps->ctx, name, &v)) {
            char msg[128];
            snprintf(msg, sizeof msg, "unknown name %s", name);
            return fail(ps, msg);
        }
    } else {
        return fail(ps, "expected a number, a name or '('");
    }
    ps->depth--;
    return v;
}

static int64_t parse_prod(struct parser *ps)
{
    int64_t v = parse_atom(ps);
    for (;;) {
        skip(ps);
        char op = *ps->p;
        if (op != '*' && op != '/' && op != '%')
            return v;
        ps->p++;
        int64_t r = parse_atom(ps);
        if (ps->st != DG_OK)
            return 0;
        if (op == '*')
            v *= r;
        else if (r == 0)
            return fail(ps, "division by zero");
        else if (op == '/')
            v /= r;
        else
            v %= r;
    }
}

static int64_t parse_sum(struct parser *ps)
{
    int64_t v = parse_prod(ps);
    for (;;) {
        skip(ps);
        char op = *ps->p;
        if (op != '+' && op != '-')
            return v;
        ps->p++;
        int64_t r = parse_prod(ps);
        v = op == '+' ? v + r : v - r;
    }
}

dg_status dg_expr_eval(const char *expr, dg_expr_lookup lookup, void *ctx, const char *what, int64_t *out)
{
    struct parser ps = {expr, expr, lookup, ctx, what, 0, DG_OK};
    int64_t v = parse_sum(&ps);
    skip(&ps);
    if (ps.st == DG_OK && *ps.p)
        fail(&ps, "unexpected character");
    if (ps.st != DG_OK)
        return ps.st;
    *out = v;
    return DG_OK;
}
