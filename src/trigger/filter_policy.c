/* SNS filter policies and message attributes (see filter_policy.h). */
#include "trigger/filter_policy.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/json.h"
#include "core/xalloc.h"

/* Numbers compare as integers of 10^-5: SNS matches to five decimals, and
 * integers make equality exact. */
#define FIXED_SCALE 100000.0
#define NUMBER_LIMIT 1e9

typedef enum {
    C_STRING,     /* "text" */
    C_NUMBER,     /* 12.5 */
    C_PREFIX,     /* {"prefix": "text"} */
    C_BUT,        /* {"anything-but": [values]} */
    C_BUT_PREFIX, /* {"anything-but": {"prefix": "text"}} */
    C_NUMERIC,    /* {"numeric": [...]} */
    C_EXISTS,     /* {"exists": bool} */
} cond_kind_t;

/* A value of a policy, or one of an attribute's values. */
typedef struct fval {
    bool is_str, is_num;
    const char *s; /* is_str: the string (owned by its policy or attributes) */
    size_t len;
    int64_t fx; /* is_num: the number in units of 10^-5 */
} fval_t;

typedef struct cond {
    cond_kind_t kind;
    fval_t v;    /* STRING, NUMBER, PREFIX, BUT_PREFIX */
    fval_t *but; /* BUT */
    size_t nbut;
    bool has_lo, lo_incl, has_hi, hi_incl; /* NUMERIC */
    int64_t lo, hi;
    bool exists; /* EXISTS */
} cond_t;

typedef struct fkey {
    char *name;
    size_t name_len;
    cond_t *conds;
    size_t n;
} fkey_t;

struct filter_policy {
    fkey_t keys[FILTER_POLICY_MAX_KEYS];
    size_t n;
};

typedef enum { A_STRING, A_NUMBER, A_STRING_ARRAY, A_BINARY } attr_type_t;

static const char *const attr_type_names[] = {"String", "Number", "String.Array", "Binary"};

typedef struct attr {
    char *name;
    size_t name_len;
    attr_type_t type;
    char *value; /* as SNS hands it on: always a string */
    size_t value_len;
    fval_t *vals; /* what policies compare (none for Binary) */
    size_t nvals;
    json_t *array; /* String.Array: the parsed array the strings point into */
} attr_t;

struct filter_attrs {
    attr_t a[FILTER_ATTRS_MAX];
    size_t n;
};

/* ---- numbers ------------------------------------------------------------ */

static int64_t to_fixed(double v)
{
    /* Beyond the policies' range a value only needs to stay beyond it. */
    if (v > NUMBER_LIMIT + 1)
        v = NUMBER_LIMIT + 1;
    else if (v < -NUMBER_LIMIT - 1)
        v = -NUMBER_LIMIT - 1;
    return llround(v * FIXED_SCALE);
}

static json_t *fixed_json(int64_t fx)
{
    if (fx % 100000 == 0)
        return json_integer(fx / 100000);
    return json_real((double)fx / FIXED_SCALE);
}

/* A JSON number's text: -?digits(.digits)?([eE][+-]?digits)?. strtod alone
 * would also take "inf", "nan", hex and leading blanks. */
static bool number_text(const char *s, size_t len, double *out)
{
    size_t i = 0;
    if (i < len && s[i] == '-')
        i++;
    size_t d = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == d)
        return false;
    if (i < len && s[i] == '.') {
        size_t f = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f)
            return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e = i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == e)
            return false;
    }
    if (i != len || len > 64)
        return false;
    char tmp[72];
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    double v = strtod(tmp, NULL);
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

/* ---- policies ------------------------------------------------------------ */

/* "filter.NAME[i]" for messages, the name made printable and short. */
static const char *where(char *out, size_t size, const char *field, const char *name, long idx)
{
    char shown[80];
    mf_error_show(name, 60, shown, sizeof shown);
    if (idx < 0)
        snprintf(out, size, "%s.%s", field, shown);
    else
        snprintf(out, size, "%s.%s[%ld]", field, shown, idx);
    return out;
}

static void fval_free(fval_t *v)
{
    free((char *)v->s);
    v->s = NULL;
}

static void cond_free(cond_t *c)
{
    fval_free(&c->v);
    for (size_t i = 0; i < c->nbut; i++)
        fval_free(&c->but[i]);
    free(c->but);
}

void filter_policy_free(filter_policy_t *p)
{
    if (!p)
        return;
    for (size_t k = 0; k < p->n; k++) {
        for (size_t i = 0; i < p->keys[k].n; i++)
            cond_free(&p->keys[k].conds[i]);
        free(p->keys[k].conds);
        free(p->keys[k].name);
    }
    free(p);
}

/* A literal string or number of a policy; what names it in errors. */
static int policy_literal(const json_t *v, const char *what, fval_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        char *s = xmalloc(n + 1);
        memcpy(s, json_string_value(v), n);
        s[n] = '\0';
        out->is_str = true;
        out->s = s;
        out->len = n;
        return 0;
    }
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (!(d >= -NUMBER_LIMIT && d <= NUMBER_LIMIT))
            return mf_error_plain(err, EINVAL,
                                  "%s: numbers in a filter policy must be from -1e9 to 1e9", what);
        out->is_num = true;
        out->fx = to_fixed(d);
        return 0;
    }
    if (json_is_boolean(v) || json_is_null(v))
        return mf_error_plain(err, EINVAL,
                              "%s: true, false and null are not supported here; use strings, "
                              "numbers or an operator object",
                              what);
    return mf_error_plain(err, EINVAL, "%s: must be a string or a number", what);
}

static bool numeric_op(const json_t *v, const char **op)
{
    static const char *const ops[] = {"=", "<", "<=", ">", ">=", NULL};
    const char *s = json_string_value(v);
    for (int i = 0; s && ops[i]; i++)
        if (!strcmp(s, ops[i])) {
            *op = ops[i];
            return true;
        }
    return false;
}

static int parse_numeric(const json_t *v, const char *what, cond_t *c, mf_error_t *err)
{
    size_t n = json_array_size(v);
    const char *op1 = NULL, *op2 = NULL;
    if (!json_is_array(v) || (n != 2 && n != 4))
        return mf_error_plain(
            err, EINVAL, "%s: numeric needs [OP, N] or [\">\"|\">=\", A, \"<\"|\"<=\", B]", what);
    for (size_t i = 1; i < n; i += 2) {
        const json_t *num = json_array_get(v, i);
        if (!json_is_number(num))
            return mf_error_plain(err, EINVAL, "%s: numeric[%zu] must be a number", what, i);
        double d = json_number_value(num);
        if (!(d >= -NUMBER_LIMIT && d <= NUMBER_LIMIT))
            return mf_error_plain(err, EINVAL,
                                  "%s: numbers in a filter policy must be from -1e9 to 1e9", what);
    }
    if (!numeric_op(json_array_get(v, 0), &op1))
        return mf_error_plain(err, EINVAL, "%s: numeric[0] must be one of =, <, <=, >, >=", what);
    int64_t a = to_fixed(json_number_value(json_array_get(v, 1)));
    if (n == 2) {
        c->has_lo = op1[0] == '=' || op1[0] == '>';
        c->has_hi = op1[0] == '=' || op1[0] == '<';
        c->lo = c->hi = a;
        c->lo_incl = c->hi_incl = op1[0] == '=' || op1[1] == '=';
        return 0;
    }
    if (op1[0] != '>')
        return mf_error_plain(err, EINVAL,
                              "%s: a numeric range starts with its lower bound (> or >=)", what);
    if (!numeric_op(json_array_get(v, 2), &op2) || op2[0] != '<')
        return mf_error_plain(err, EINVAL,
                              "%s: a numeric range ends with its upper bound (< or <=)", what);
    int64_t b = to_fixed(json_number_value(json_array_get(v, 3)));
    if (a >= b)
        return mf_error_plain(err, EINVAL,
                              "%s: the lower bound of a numeric range must be below its upper "
                              "bound",
                              what);
    c->has_lo = c->has_hi = true;
    c->lo = a;
    c->hi = b;
    c->lo_incl = op1[1] == '=';
    c->hi_incl = op2[1] == '=';
    return 0;
}

static int parse_prefix_object(const json_t *v, const char *what, const char *op, fval_t *out,
                               mf_error_t *err)
{
    const json_t *p = json_object_get(v, "prefix");
    if (json_object_size(v) != 1 || !json_is_string(p))
        return mf_error_plain(err, EINVAL, "%s: %s must be {\"prefix\": \"text\"}", what, op);
    return policy_literal(p, what, out, err);
}

static int parse_anything_but(const json_t *v, const char *what, cond_t *c, mf_error_t *err)
{
    if (json_is_object(v)) {
        c->kind = C_BUT_PREFIX;
        return parse_prefix_object(v, what, "anything-but with an object", &c->v, err);
    }
    c->kind = C_BUT;
    if (!json_is_array(v)) {
        c->but = xcalloc(1, sizeof *c->but);
        c->nbut = 1;
        return policy_literal(v, what, &c->but[0], err);
    }
    size_t n = json_array_size(v);
    if (n == 0)
        return mf_error_plain(err, EINVAL, "%s: anything-but needs at least one value", what);
    if (n > FILTER_POLICY_MAX_COMBINATIONS)
        return mf_error_plain(err, EINVAL, "%s: anything-but may list at most %d values", what,
                              FILTER_POLICY_MAX_COMBINATIONS);
    c->but = xcalloc(n, sizeof *c->but);
    for (size_t i = 0; i < n; i++) {
        int r = policy_literal(json_array_get(v, i), what, &c->but[i], err);
        c->nbut = i + 1;
        if (r < 0)
            return r;
    }
    return 0;
}

static int parse_cond(const json_t *v, const char *what, cond_t *c, mf_error_t *err)
{
    memset(c, 0, sizeof *c);
    if (!json_is_object(v)) {
        if (json_is_array(v))
            return mf_error_plain(err, EINVAL,
                                  "%s: a list inside a list; give the values in one list", what);
        int r = policy_literal(v, what, &c->v, err);
        c->kind = c->v.is_str ? C_STRING : C_NUMBER;
        return r;
    }
    if (json_object_size(v) != 1)
        return mf_error_plain(err, EINVAL,
                              "%s: an operator object holds exactly one of prefix, anything-but, "
                              "numeric or exists",
                              what);
    const char *op = json_object_iter_key(json_object_iter((json_t *)v));
    const json_t *arg = json_object_iter_value(json_object_iter((json_t *)v));
    if (!strcmp(op, "prefix")) {
        c->kind = C_PREFIX;
        if (!json_is_string(arg))
            return mf_error_plain(err, EINVAL, "%s: prefix must be a string", what);
        return policy_literal(arg, what, &c->v, err);
    }
    if (!strcmp(op, "anything-but"))
        return parse_anything_but(arg, what, c, err);
    if (!strcmp(op, "numeric")) {
        c->kind = C_NUMERIC;
        return parse_numeric(arg, what, c, err);
    }
    if (!strcmp(op, "exists")) {
        c->kind = C_EXISTS;
        if (!json_is_boolean(arg))
            return mf_error_plain(err, EINVAL, "%s: exists must be true or false", what);
        c->exists = json_is_true(arg);
        return 0;
    }
    char shown[48];
    return mf_error_plain(err, EINVAL,
                          "%s: unknown operator `%s`; use prefix, anything-but, numeric or "
                          "exists",
                          what, mf_error_show(op, 32, shown, sizeof shown));
}

int filter_policy_parse(const json_t *policy, const char *field, filter_policy_t **out,
                        mf_error_t *err)
{
    *out = NULL;
    if (!json_is_object(policy))
        return mf_error_plain(err, EINVAL,
                              "%s: must be a JSON object of attribute names, each with a list of "
                              "values",
                              field);
    size_t nkeys = json_object_size(policy);
    if (nkeys > FILTER_POLICY_MAX_KEYS)
        return mf_error_plain(err, EINVAL, "%s: has %zu attribute names; at most %d", field, nkeys,
                              FILTER_POLICY_MAX_KEYS);
    filter_policy_t *p = xcalloc(1, sizeof *p);
    char what[256];
    size_t combinations = 1;
    const char *name;
    json_t *list;
    int r = 0;
    json_object_foreach((json_t *)policy, name, list)
    {
        size_t name_len = strlen(name);
        if (name_len == 0 || name_len > FILTER_ATTR_NAME_MAX) {
            r = mf_error_plain(err, EINVAL, "%s: attribute names are 1 to %d characters", field,
                               FILTER_ATTR_NAME_MAX);
            break;
        }
        fkey_t *k = &p->keys[p->n++];
        k->name = xstrdup(name);
        k->name_len = name_len;
        where(what, sizeof what, field, name, -1);
        size_t n = json_array_size(list);
        if (!json_is_array(list) || n == 0) {
            r = mf_error_plain(err, EINVAL,
                               "%s: must be a non-empty list of values (attribute policies do "
                               "not nest)",
                               what);
            break;
        }
        combinations *= n;
        if (combinations > FILTER_POLICY_MAX_COMBINATIONS) {
            r = mf_error_plain(err, EINVAL,
                               "%s: more than %d combinations of values (the product of the "
                               "lists' lengths)",
                               field, FILTER_POLICY_MAX_COMBINATIONS);
            break;
        }
        k->conds = xcalloc(n, sizeof *k->conds);
        for (size_t i = 0; i < n && r == 0; i++) {
            where(what, sizeof what, field, name, (long)i);
            r = parse_cond(json_array_get(list, i), what, &k->conds[i], err);
            k->n = i + 1;
        }
        if (r < 0)
            break;
    }
    if (r < 0) {
        filter_policy_free(p);
        return r;
    }
    *out = p;
    return 0;
}

static json_t *fval_json(const fval_t *v)
{
    return v->is_str ? json_stringn(v->s, v->len) : fixed_json(v->fx);
}

static json_t *cond_json(const cond_t *c)
{
    switch (c->kind) {
    case C_STRING:
    case C_NUMBER: return fval_json(&c->v);
    case C_PREFIX: return json_pack("{so}", "prefix", fval_json(&c->v));
    case C_BUT_PREFIX: return json_pack("{s{so}}", "anything-but", "prefix", fval_json(&c->v));
    case C_BUT: {
        json_t *list = json_array();
        for (size_t i = 0; i < c->nbut; i++)
            json_array_append_new(list, fval_json(&c->but[i]));
        return json_pack("{so}", "anything-but", list);
    }
    case C_NUMERIC: {
        json_t *a = json_array();
        if (c->has_lo && c->has_hi && c->lo == c->hi && c->lo_incl && c->hi_incl) {
            json_array_append_new(a, json_string("="));
            json_array_append_new(a, fixed_json(c->lo));
        } else {
            if (c->has_lo) {
                json_array_append_new(a, json_string(c->lo_incl ? ">=" : ">"));
                json_array_append_new(a, fixed_json(c->lo));
            }
            if (c->has_hi) {
                json_array_append_new(a, json_string(c->hi_incl ? "<=" : "<"));
                json_array_append_new(a, fixed_json(c->hi));
            }
        }
        return json_pack("{so}", "numeric", a);
    }
    case C_EXISTS: return json_pack("{sb}", "exists", c->exists);
    }
    return json_null();
}

json_t *filter_policy_json(const filter_policy_t *p)
{
    json_t *doc = json_object();
    for (size_t k = 0; k < p->n; k++) {
        json_t *list = json_array();
        for (size_t i = 0; i < p->keys[k].n; i++)
            json_array_append_new(list, cond_json(&p->keys[k].conds[i]));
        json_object_set_new(doc, p->keys[k].name, list);
    }
    return doc;
}

/* ---- matching ------------------------------------------------------------ */

static bool fval_equal(const fval_t *a, const fval_t *b)
{
    if (a->is_str && b->is_str)
        return a->len == b->len && !memcmp(a->s, b->s, a->len);
    return a->is_num && b->is_num && a->fx == b->fx;
}

static bool has_prefix(const fval_t *v, const fval_t *prefix)
{
    return v->is_str && v->len >= prefix->len && !memcmp(v->s, prefix->s, prefix->len);
}

static bool cond_meets(const cond_t *c, const fval_t *v)
{
    switch (c->kind) {
    case C_STRING:
    case C_NUMBER: return fval_equal(&c->v, v);
    case C_PREFIX: return has_prefix(v, &c->v);
    case C_BUT_PREFIX: return !has_prefix(v, &c->v);
    case C_BUT:
        for (size_t i = 0; i < c->nbut; i++)
            if (fval_equal(&c->but[i], v))
                return false;
        return true;
    case C_NUMERIC:
        if (!v->is_num)
            return false;
        if (c->has_lo && (c->lo_incl ? v->fx < c->lo : v->fx <= c->lo))
            return false;
        if (c->has_hi && (c->hi_incl ? v->fx > c->hi : v->fx >= c->hi))
            return false;
        return true;
    case C_EXISTS: return c->exists;
    }
    return false;
}

static const attr_t *find_attr(const filter_attrs_t *a, const fkey_t *k)
{
    for (size_t i = 0; a && i < a->n; i++)
        if (a->a[i].type != A_BINARY && a->a[i].name_len == k->name_len &&
            !memcmp(a->a[i].name, k->name, k->name_len))
            return &a->a[i];
    return NULL;
}

static bool key_meets(const fkey_t *k, const attr_t *at)
{
    for (size_t i = 0; i < k->n; i++) {
        const cond_t *c = &k->conds[i];
        if (c->kind == C_EXISTS) {
            if (c->exists == (at != NULL))
                return true;
            continue;
        }
        for (size_t j = 0; at && j < at->nvals; j++)
            if (cond_meets(c, &at->vals[j]))
                return true;
    }
    return false;
}

bool filter_policy_matches(const filter_policy_t *p, const filter_attrs_t *a)
{
    for (size_t k = 0; k < p->n; k++)
        if (!key_meets(&p->keys[k], find_attr(a, &p->keys[k])))
            return false;
    return true;
}

/* ---- attributes ------------------------------------------------------------ */

void filter_attrs_free(filter_attrs_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->a[i].name);
        free(a->a[i].value);
        free(a->a[i].vals);
        json_decref(a->a[i].array);
    }
    free(a);
}

/* SNS's rules for names: letters, digits, _ - and ., no leading or
 * trailing dot, no two dots in a row, and not AWS.* or Amazon.*. */
static bool attr_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > FILTER_ATTR_NAME_MAX || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok || (c == '.' && s[i + 1] == '.'))
            return false;
    }
    return strncasecmp(s, "AWS.", 4) != 0 && strncasecmp(s, "Amazon.", 7) != 0;
}

static char *dump_text(const json_t *v, size_t *len)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    *len = strlen(s);
    return s;
}

static void set_value(attr_t *at, const char *s, size_t len)
{
    at->value = xmalloc(len + 1);
    memcpy(at->value, s, len);
    at->value[len] = '\0';
    at->value_len = len;
}

/* Fills at's value and its values for matching from v (a string, or for
 * Number a number, for String.Array an array). */
static int attr_value(attr_t *at, const json_t *v, const char *what, mf_error_t *err)
{
    switch (at->type) {
    case A_STRING:
        if (!json_is_string(v) || json_string_length(v) == 0)
            return mf_error_plain(err, EINVAL, "%s: a String's value must be a non-empty string",
                                  what);
        set_value(at, json_string_value(v), json_string_length(v));
        at->vals = xcalloc(1, sizeof *at->vals);
        at->vals[0] = (fval_t){.is_str = true, .s = at->value, .len = at->value_len};
        at->nvals = 1;
        return 0;
    case A_NUMBER: {
        double d;
        if (json_is_number(v)) {
            at->value = dump_text(v, &at->value_len);
        } else if (json_is_string(v)) {
            set_value(at, json_string_value(v), json_string_length(v));
        } else {
            return mf_error_plain(err, EINVAL, "%s: a Number's value must be a number", what);
        }
        if (!number_text(at->value, at->value_len, &d))
            return mf_error_plain(err, EINVAL, "%s: a Number's value must be a number", what);
        at->vals = xcalloc(1, sizeof *at->vals);
        at->vals[0] = (fval_t){.is_num = true, .fx = to_fixed(d)};
        at->nvals = 1;
        return 0;
    }
    case A_STRING_ARRAY: {
        json_t *arr = NULL;
        if (json_is_array(v)) {
            arr = json_incref((json_t *)v);
            at->value = dump_text(v, &at->value_len);
        } else if (json_is_string(v)) {
            set_value(at, json_string_value(v), json_string_length(v));
            arr = json_loadb(at->value, at->value_len, 0, NULL);
        }
        if (!json_is_array(arr)) {
            json_decref(arr);
            return mf_error_plain(
                err, EINVAL, "%s: a String.Array's value must be a JSON array (in a string)", what);
        }
        at->array = arr;
        size_t n = json_array_size(arr);
        at->vals = xcalloc(n ? n : 1, sizeof *at->vals);
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(arr, i);
            fval_t *f = &at->vals[at->nvals++];
            if (json_is_string(e)) {
                *f = (fval_t){
                    .is_str = true, .s = json_string_value(e), .len = json_string_length(e)};
            } else if (json_is_number(e)) {
                *f = (fval_t){.is_num = true, .fx = to_fixed(json_number_value(e))};
            } else if (!json_is_boolean(e) && !json_is_null(e)) {
                return mf_error_plain(err, EINVAL,
                                      "%s: a String.Array holds strings, numbers, true, false "
                                      "and null, not lists or objects",
                                      what);
            }
        }
        return 0;
    }
    case A_BINARY: {
        buf_t bin = BUF_INIT;
        int ok =
            json_is_string(v) && json_string_length(v) > 0 &&
            codec_base64_decode(&bin, json_string_value(v), json_string_length(v), SIZE_MAX) == 0;
        buf_release(&bin);
        if (!ok)
            return mf_error_plain(err, EINVAL, "%s: a Binary's value must be base64", what);
        set_value(at, json_string_value(v), json_string_length(v));
        return 0;
    }
    }
    return -EINVAL;
}

/* The long form: {"Type": T, "Value": V}, or the SNS API's spelling
 * {"DataType": T, "StringValue"|"BinaryValue": V}. */
static int attr_long(attr_t *at, const json_t *v, const char *what, mf_error_t *err)
{
    const json_t *type = NULL, *value = NULL;
    const char *key;
    json_t *m;
    json_object_foreach((json_t *)v, key, m)
    {
        if (!strcmp(key, "Type") || !strcmp(key, "DataType")) {
            if (type)
                return mf_error_plain(err, EINVAL, "%s: give Type once", what);
            type = m;
        } else if (!strcmp(key, "Value") || !strcmp(key, "StringValue") ||
                   !strcmp(key, "BinaryValue")) {
            if (value)
                return mf_error_plain(err, EINVAL, "%s: give Value once", what);
            value = m;
        } else {
            char shown[48];
            return mf_error_plain(err, EINVAL, "%s: unknown member `%s` (Type and Value)", what,
                                  mf_error_show(key, 32, shown, sizeof shown));
        }
    }
    if (!json_is_string(type))
        return mf_error_plain(err, EINVAL,
                              "%s: needs a Type: String, Number, String.Array or Binary", what);
    size_t t;
    for (t = 0; t < sizeof attr_type_names / sizeof *attr_type_names; t++)
        if (!strcmp(json_string_value(type), attr_type_names[t]))
            break;
    if (t == sizeof attr_type_names / sizeof *attr_type_names)
        return mf_error_plain(err, EINVAL,
                              "%s: Type must be String, Number, String.Array or Binary", what);
    if (!value)
        return mf_error_plain(err, EINVAL, "%s: needs a Value", what);
    at->type = (attr_type_t)t;
    return attr_value(at, value, what, err);
}

int filter_attrs_parse(const json_t *attrs, bool allow_short, const char *field,
                       filter_attrs_t **out, mf_error_t *err)
{
    *out = NULL;
    if (!attrs || json_is_null(attrs)) {
        *out = xcalloc(1, sizeof **out);
        return 0;
    }
    if (!json_is_object(attrs))
        return mf_error_plain(err, EINVAL,
                              "%s: must be an object of names to {\"Type\", \"Value\"}%s", field,
                              allow_short ? " or to values" : "");
    if (json_object_size(attrs) > FILTER_ATTRS_MAX)
        return mf_error_plain(err, EINVAL, "%s: %zu attributes; a message may have %d at most",
                              field, json_object_size(attrs), FILTER_ATTRS_MAX);
    filter_attrs_t *a = xcalloc(1, sizeof *a);
    char what[320];
    const char *name;
    json_t *v;
    int r = 0;
    json_object_foreach((json_t *)attrs, name, v)
    {
        size_t n = strlen(name);
        where(what, sizeof what, field, name, -1);
        if (!attr_name_ok(name, n)) {
            r = mf_error_plain(err, EINVAL,
                               "%s: a name is 1 to %d of A-Z a-z 0-9 _ - . (no leading, "
                               "trailing or double dots; not AWS.* or Amazon.*)",
                               what, FILTER_ATTR_NAME_MAX);
            break;
        }
        attr_t *at = &a->a[a->n++];
        at->name = xstrdup(name);
        at->name_len = n;
        if (json_is_object(v)) {
            r = attr_long(at, v, what, err);
        } else if (!allow_short) {
            r = mf_error_plain(err, EINVAL, "%s: must be {\"Type\": …, \"Value\": …}", what);
        } else if (json_is_string(v)) {
            at->type = A_STRING;
            r = attr_value(at, v, what, err);
        } else if (json_is_number(v)) {
            at->type = A_NUMBER;
            r = attr_value(at, v, what, err);
        } else if (json_is_array(v)) {
            at->type = A_STRING_ARRAY;
            r = attr_value(at, v, what, err);
        } else {
            r = mf_error_plain(err, EINVAL,
                               "%s: must be a string, a number, a list or {\"Type\", \"Value\"}",
                               what);
        }
        if (r < 0)
            break;
    }
    if (r < 0) {
        filter_attrs_free(a);
        return r;
    }
    *out = a;
    return 0;
}

json_t *filter_attrs_sns(const filter_attrs_t *a)
{
    json_t *doc = json_object();
    for (size_t i = 0; a && i < a->n; i++)
        json_object_set_new(doc, a->a[i].name,
                            json_pack("{ss s:s%}", "Type", attr_type_names[a->a[i].type], "Value",
                                      a->a[i].value, a->a[i].value_len));
    return doc;
}

size_t filter_attrs_bytes(const filter_attrs_t *a)
{
    size_t n = 0;
    for (size_t i = 0; a && i < a->n; i++)
        n += a->a[i].name_len + strlen(attr_type_names[a->a[i].type]) + a->a[i].value_len;
    return n;
}
