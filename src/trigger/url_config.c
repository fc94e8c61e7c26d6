/* A function URL's settings: checked as they come in, shown as /v1 shows
 * them, and kept in the store with an in-memory table the request path
 * reads (a URL request must not wait on SQLite). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/request.h"
#include "trigger/url.h"

const char *url_auth_name(url_auth_t a)
{
    return a == URL_AUTH_NONE ? "none" : "key";
}

const char *url_invoke_mode_name(url_invoke_mode_t m)
{
    return m == URL_INVOKE_RESPONSE_STREAM ? "RESPONSE_STREAM" : "BUFFERED";
}

static void list_clear(url_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void list_copy(url_list_t *dst, const url_list_t *src)
{
    dst->n = src->n;
    dst->v = src->n ? xcalloc(src->n, sizeof *dst->v) : NULL;
    for (size_t i = 0; i < src->n; i++)
        dst->v[i] = xstrdup(src->v[i]);
}

void url_config_clear(url_config_t *c)
{
    list_clear(&c->cors.allow_origins);
    list_clear(&c->cors.allow_methods);
    list_clear(&c->cors.allow_headers);
    list_clear(&c->cors.expose_headers);
    memset(&c->cors, 0, sizeof c->cors);
}

void url_config_copy(url_config_t *dst, const url_config_t *src)
{
    *dst = *src;
    list_copy(&dst->cors.allow_origins, &src->cors.allow_origins);
    list_copy(&dst->cors.allow_methods, &src->cors.allow_methods);
    list_copy(&dst->cors.allow_headers, &src->cors.allow_headers);
    list_copy(&dst->cors.expose_headers, &src->cors.expose_headers);
}

/* ---- checking -------------------------------------------------------------- */

/* An origin as browsers send it: "*", or scheme://host[:port] with no
 * path, no spaces and no control characters. */
static bool is_origin(const char *s)
{
    if (!strcmp(s, "*"))
        return true;
    const char *sep = strstr(s, "://");
    if (!sep || sep == s || !sep[3])
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c >= 0x7f)
            return false;
        if (p > sep + 2 && c == '/')
            return false;
    }
    return true;
}

typedef enum { ITEM_ORIGIN, ITEM_METHOD, ITEM_HEADER } item_kind_t;

static int parse_list(const json_t *v, const char *field, item_kind_t kind, url_list_t *out,
                      mf_error_t *err)
{
    size_t max = kind == ITEM_ORIGIN   ? URL_CORS_ORIGINS_MAX
                 : kind == ITEM_METHOD ? URL_CORS_METHODS_MAX
                                       : URL_CORS_HEADERS_MAX;
    if (!json_is_array(v))
        return mf_error_plain(err, EINVAL, "cors.%s: must be an array of strings", field);
    if (json_array_size(v) > max)
        return mf_error_plain(err, EINVAL, "cors.%s: at most %zu items, not %zu", field, max,
                              json_array_size(v));
    out->v = json_array_size(v) ? xcalloc(json_array_size(v), sizeof *out->v) : NULL;
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        const char *s = json_string_value(item);
        if (!s)
            return mf_error_plain(err, EINVAL, "cors.%s[%zu]: must be a string", field, i);
        size_t len = strlen(s);
        if (kind == ITEM_ORIGIN) {
            if (len == 0 || len > URL_CORS_ORIGIN_LEN_MAX || !is_origin(s))
                return mf_error_plain(err, EINVAL,
                                      "cors.%s[%zu]: `%.64s` is not an origin: \"*\" or "
                                      "scheme://host[:port], at most %d characters",
                                      field, i, s, URL_CORS_ORIGIN_LEN_MAX);
            out->v[out->n++] = xstrdup(s);
        } else if (kind == ITEM_METHOD) {
            static const char *const methods[] = { "GET", "PUT", "HEAD", "POST",
                                                   "PATCH", "DELETE", "*" };
            const char *known = NULL;
            for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++)
                if (!strcasecmp(s, methods[k]))
                    known = methods[k];
            if (!known)
                return mf_error_plain(err, EINVAL,
                                      "cors.%s[%zu]: `%.64s` is not one of GET, PUT, HEAD, POST, "
                                      "PATCH, DELETE or *",
                                      field, i, s);
            out->v[out->n++] = xstrdup(known);
        } else {
            if (len > URL_CORS_HEADER_LEN_MAX || !http_token(s))
                return mf_error_plain(err, EINVAL,
                                      "cors.%s[%zu]: `%.64s` is not a header name (letters, "
                                      "digits and !#$%%&'*+-.^_`|~, at most %d characters)",
                                      field, i, s, URL_CORS_HEADER_LEN_MAX);
            out->v[out->n++] = xstrdup(s);
        }
    }
    return 0;
}

static int parse_cors(const json_t *v, url_cors_t *c, mf_error_t *err)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return mf_error_plain(err, EINVAL, "cors: must be an object or null");
    c->set = true;
    const char *key;
    json_t *val;
    int r = 0;
    json_object_foreach((json_t *)v, key, val)
    {
        if (!strcmp(key, "allow_origins"))
            r = parse_list(val, key, ITEM_ORIGIN, &c->allow_origins, err);
        else if (!strcmp(key, "allow_methods"))
            r = parse_list(val, key, ITEM_METHOD, &c->allow_methods, err);
        else if (!strcmp(key, "allow_headers"))
            r = parse_list(val, key, ITEM_HEADER, &c->allow_headers, err);
        else if (!strcmp(key, "expose_headers"))
            r = parse_list(val, key, ITEM_HEADER, &c->expose_headers, err);
        else if (!strcmp(key, "max_age")) {
            if (!json_is_integer(val) || json_integer_value(val) < 0 ||
                json_integer_value(val) > URL_CORS_MAX_AGE_MAX)
                return mf_error_plain(err, EINVAL,
                                      "cors.max_age: must be an integer from 0 to %d (seconds)",
                                      URL_CORS_MAX_AGE_MAX);
            c->max_age = (int)json_integer_value(val);
        } else if (!strcmp(key, "allow_credentials")) {
            if (!json_is_boolean(val))
                return mf_error_plain(err, EINVAL, "cors.allow_credentials: must be true or false");
            c->allow_credentials = json_is_true(val);
        } else {
            return mf_error_plain(err, EINVAL,
                                  "cors.%.64s: unknown field (allow_origins, allow_methods, "
                                  "allow_headers, expose_headers, max_age, allow_credentials)",
                                  key);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static int parse_settings(const json_t *body, url_config_t *out, mf_error_t *err)
{
    if (!json_is_object(body))
        return mf_error_plain(err, EINVAL,
                              "body: must be a JSON object {\"auth\", \"cors\", \"invoke_mode\"}");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)body, key, val)
    {
        if (!strcmp(key, "auth")) {
            const char *s = json_string_value(val);
            if (s && !strcmp(s, "none"))
                out->auth = URL_AUTH_NONE;
            else if (s && !strcmp(s, "key"))
                out->auth = URL_AUTH_KEY;
            else
                return mf_error_plain(err, EINVAL, "auth: must be \"none\" or \"key\"");
        } else if (!strcmp(key, "invoke_mode")) {
            const char *s = json_string_value(val);
            if (s && !strcmp(s, "BUFFERED"))
                out->invoke_mode = URL_INVOKE_BUFFERED;
            else if (s && !strcmp(s, "RESPONSE_STREAM"))
                out->invoke_mode = URL_INVOKE_RESPONSE_STREAM;
            else
                return mf_error_plain(err, EINVAL,
                                      "invoke_mode: must be \"BUFFERED\" or \"RESPONSE_STREAM\"");
        } else if (!strcmp(key, "cors")) {
            int r = parse_cors(val, &out->cors, err);
            if (r < 0)
                return r;
        } else {
            return mf_error_plain(err, EINVAL,
                                  "%.64s: unknown field (auth, cors, invoke_mode)", key);
        }
    }
    return 0;
}

int url_config_parse(const json_t *body, url_config_t *out, mf_error_t *err)
{
    memset(&out->cors, 0, sizeof out->cors);
    out->auth = URL_AUTH_KEY;
    out->invoke_mode = URL_INVOKE_BUFFERED;
    int r = parse_settings(body, out, err);
    if (r < 0)
        url_config_clear(out);
    return r;
}

static json_t *list_json(const url_list_t *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_string(l->v[i]));
    return a;
}

json_t *url_config_settings_json(const url_config_t *c)
{
    json_t *o = json_pack("{ss ss}", "auth", url_auth_name(c->auth), "invoke_mode",
                          url_invoke_mode_name(c->invoke_mode));
    if (c->cors.set)
        json_object_set_new(
            o, "cors",
            json_pack("{so so so so si sb}", "allow_origins", list_json(&c->cors.allow_origins),
                      "allow_methods", list_json(&c->cors.allow_methods), "allow_headers",
                      list_json(&c->cors.allow_headers), "expose_headers",
                      list_json(&c->cors.expose_headers), "max_age", c->cors.max_age,
                      "allow_credentials", c->cors.allow_credentials));
    return o;
}

/* ---- the table -------------------------------------------------------------- */

static void table_set(url_table_t *t, url_config_t *c)
{
    url_config_t *old = map_put(&t->by_function, c->function, c);
    if (old) {
        url_config_clear(old);
        free(old);
    }
}

/* A stored row's settings. Written by this code, so never unreadable
 * unless the database was edited by hand. */
static int url__from_row(const store_url_t *row, url_config_t **out, mf_error_t *err)
{
    json_error_t jerr;
    json_t *doc = json_loads(row->config_json, 0, &jerr);
    url_config_t *c = xcalloc(1, sizeof *c);
    mf_error_t e = MF_ERROR_INIT;
    if (!doc || url_config_parse(doc, c, &e) < 0) {
        int r = mf_error_plain(err, EINVAL, "store: the URL of function %s cannot be read: %s",
                               row->function, doc ? e.msg : jerr.text);
        json_decref(doc);
        url_config_clear(c);
        free(c);
        return r;
    }
    json_decref(doc);
    snprintf(c->function, sizeof c->function, "%s", row->function);
    c->created_ms = row->created_ms;
    c->updated_ms = row->updated_ms;
    *out = c;
    return 0;
}

int url_table_open(store_t *store, url_table_t **out, mf_error_t *err)
{
    store_url_t *list = NULL;
    size_t n = 0;
    int r = store_url_list(store, &list, &n, err);
    if (r < 0)
        return r;
    url_table_t *t = xcalloc(1, sizeof *t);
    t->store = store;
    for (size_t i = 0; i < n; i++) {
        url_config_t *c;
        if ((r = url__from_row(&list[i], &c, err)) < 0) {
            store_url_list_free(list, n);
            url_table_close(t);
            return r;
        }
        table_set(t, c);
    }
    store_url_list_free(list, n);
    *out = t;
    return 0;
}

void url_table_replace(url_table_t *t, const store_url_t *list, size_t n)
{
    map_t now = MAP_INIT;
    for (size_t i = 0; i < n; i++) {
        map_put(&now, list[i].function, (void *)1);
        const url_config_t *old = url_table_get(t, list[i].function);
        if (old && old->updated_ms == list[i].updated_ms && old->created_ms == list[i].created_ms)
            continue;
        url_config_t *c;
        mf_error_t err = MF_ERROR_INIT;
        if (url__from_row(&list[i], &c, &err) < 0) {
            log_error("urls", "%s; it is left as it was", err.msg);
            continue;
        }
        table_set(t, c);
    }
    const char *key;
    void *val;
    for (size_t i = 0; map_next(&t->by_function, &i, &key, &val);) {
        if (map_get(&now, key))
            continue;
        url_config_t *gone = map_remove(&t->by_function, key);
        url_config_clear(gone);
        free(gone);
    }
    map_release(&now);
}

uint64_t url_table_changes(const url_table_t *t)
{
    return t ? t->changes : 0;
}

void url_table_close(url_table_t *t)
{
    if (!t)
        return;
    const char *key;
    void *val;
    for (size_t i = 0; map_next(&t->by_function, &i, &key, &val);) {
        url_config_clear(val);
        free(val);
    }
    map_release(&t->by_function);
    free(t);
}

const url_config_t *url_table_get(const url_table_t *t, const char *function)
{
    return t ? map_get(&t->by_function, function) : NULL;
}

void url_table_set_writer(url_table_t *t, store_writer_t *w)
{
    t->writer = w;
}

/* A put or a delete on its way to the store. */
typedef struct url_change {
    url_table_t *t;
    url_config_t *c;           /* a put's new settings; NULL for a delete */
    char function[TENANT_QNAME_MAX + 1];
    bool created;
    store_url_t row;           /* a put's, its text in row_text */
    buf_t row_text;
    url_table_done_fn done;
    void *ud;
} url_change_t;

static int change_write(void *db, void *arg, mf_error_t *err)
{
    url_change_t *ch = arg;
    if (ch->c)
        return store_url_put(db, &ch->row, err);
    return store_url_delete(db, ch->function, err);
}

static void change_done(void *arg, int r, const mf_error_t *err)
{
    url_change_t *ch = arg;
    url_table_t *t = ch->t;
    if (ch->c && r == 0) {
        table_set(t, ch->c);
        ch->c = NULL;
        t->changes++;
    } else if (!ch->c && (r == 0 || r == -ENOENT)) {
        bool had = url_table_get(t, ch->function) != NULL;
        url_table_forget(t, ch->function);
        if (had)
            r = 0;
    }
    if (ch->c) {
        url_config_clear(ch->c);
        free(ch->c);
    }
    buf_release(&ch->row_text);
    ch->done(ch->ud, r, ch->created, err);
    free(ch);
}

void url_table_put(url_table_t *t, const url_config_t *c, url_table_done_fn done, void *ud)
{
    const url_config_t *old = url_table_get(t, c->function);
    url_change_t *ch = xcalloc(1, sizeof *ch);
    ch->t = t;
    ch->done = done;
    ch->ud = ud;
    ch->created = old == NULL;
    snprintf(ch->function, sizeof ch->function, "%s", c->function);
    url_config_t *n = ch->c = xcalloc(1, sizeof *n);
    url_config_copy(n, c);
    n->updated_ms = clock_wall_ms();
    n->created_ms = old ? old->created_ms : n->updated_ms;
    json_t *settings = url_config_settings_json(n);
    buf_init(&ch->row_text, 0);
    json_dump_buf(&ch->row_text, settings);
    json_decref(settings);
    ch->row = (store_url_t){ .config_json = ch->row_text.data,
                             .created_ms = n->created_ms,
                             .updated_ms = n->updated_ms };
    snprintf(ch->row.function, sizeof ch->row.function, "%s", n->function);
    store_writer_submit_or_run(t->writer, t->store, true, change_write, change_done, ch);
}

void url_table_delete(url_table_t *t, const char *function, url_table_done_fn done, void *ud)
{
    url_change_t *ch = xcalloc(1, sizeof *ch);
    ch->t = t;
    ch->done = done;
    ch->ud = ud;
    snprintf(ch->function, sizeof ch->function, "%s", function);
    store_writer_submit_or_run(t->writer, t->store, true, change_write, change_done, ch);
}

void url_table_forget(url_table_t *t, const char *function)
{
    if (!t)
        return;
    t->changes++;
    url_config_t *old = map_remove(&t->by_function, function);
    if (old) {
        url_config_clear(old);
        free(old);
    }
}
