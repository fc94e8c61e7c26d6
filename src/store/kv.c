/* The key-value stores' calls (store/kv.h), the same on both backends:
 * what each call reads and writes, in which order, and what it answers,
 * said once as a sequence of statements (store/kv_backend.h) that the
 * backend the stores live in runs: SQLite's kv.db under a data directory
 * (kv_sqlite.c) or a PostgreSQL database (kv_pg.c). */
#include "store/kv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/codec.h"
#include "core/xalloc.h"
#include "store/backend.h"
#include "store/kv_backend.h"

/* ---- statements --------------------------------------------------------- */

#define ARG_TEXT(s) ((store__kv_arg_t){ .kind = STORE__KV_ARG_TEXT, .p = (s) })
#define ARG_BYTES(b, n) ((store__kv_arg_t){ .kind = STORE__KV_ARG_BYTES, .p = (b), .len = (n) })
#define ARG_INT(v) ((store__kv_arg_t){ .kind = STORE__KV_ARG_INT, .i = (v) })
#define ARG_NULL ((store__kv_arg_t){ .kind = STORE__KV_ARG_NULL })
#define NARGS(a) (sizeof(a) / sizeof((a)[0]))

int store__kv_bind(const store__binder_t *b, const store__kv_arg_t *args, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const store__kv_arg_t *a = &args[k];
        int i = (int)k + 1, r = 0;
        switch (a->kind) {
        case STORE__KV_ARG_NULL: r = b->text(b->ctx, i, NULL); break;
        case STORE__KV_ARG_INT: r = b->int64(b->ctx, i, a->i); break;
        case STORE__KV_ARG_TEXT: r = b->text(b->ctx, i, a->p); break;
        /* Never a NULL pointer: both backends bind one as SQL NULL. */
        case STORE__KV_ARG_BYTES: r = b->blob(b->ctx, i, a->len ? a->p : "", a->len); break;
        }
        if (r)
            return r;
    }
    return 0;
}

static int kv__run(store_kv_t *kv, int stmt, const store__kv_arg_t *args, size_t n,
                   store__fill_fn row, void *ud, const char *what, mf_error_t *err)
{
    return kv->be->run(kv, stmt, args, n, row, ud, what, err);
}

/* A statement with no parameters and no rows wanted. */
static int kv__exec(store_kv_t *kv, int stmt, const char *what, mf_error_t *err)
{
    return kv__run(kv, stmt, NULL, 0, NULL, NULL, what, err);
}

/* ---- small helpers ------------------------------------------------------ */

/* A key fit for a message: control bytes shown as '?', long ones cut. */
static const char *kv__show(const void *key, size_t len, char *out, size_t size)
{
    char tmp[160];
    size_t n = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
    memcpy(tmp, key, n);
    tmp[n] = '\0';
    return mf_error_show(tmp, 64, out, size);
}

static int64_t kv__op_bytes(size_t key_len, int64_t value_len)
{
    return (int64_t)key_len + value_len;
}

static void *kv__dup_bytes(const void *p, size_t len)
{
    char *out = xmalloc(len + 1);
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

void store_kv_set_limits(store_kv_t *kv, const store_kv_limits_t *limits)
{
    kv->limits = *limits;
}

/* ---- opening ------------------------------------------------------------ */

static int kv__open(const char *where, bool writer, store_kv_t **out, mf_error_t *err)
{
    *out = NULL;
    if (store__is_url(where))
        return store__kv_pg_open(where, writer, out, err);
    return store__kv_sqlite_open(where, writer, out, err);
}

int store_kv_open(const char *where, store_kv_t **out, mf_error_t *err)
{
    return kv__open(where, false, out, err);
}

void store_kv_close(store_kv_t *kv)
{
    if (kv)
        kv->be->close(kv);
}

const char *store_kv_backend_name(const store_kv_t *kv)
{
    return kv->be->name;
}

/* ---- transactions ------------------------------------------------------- */

int store_kv_begin(store_kv_t *kv, bool durable, mf_error_t *err)
{
    return kv->be->begin(kv, durable, err);
}

int store_kv_commit(store_kv_t *kv, mf_error_t *err)
{
    return kv->be->commit(kv, err);
}

void store_kv_rollback(store_kv_t *kv)
{
    kv->be->rollback(kv);
}

int store_kv_savepoint(store_kv_t *kv, mf_error_t *err)
{
    return kv__exec(kv, STORE__KV_SAVEPOINT, "open a savepoint", err);
}

/* A failure here (a lost connection) leaves the transaction failed, and
 * its commit says so for every job. */
void store_kv_release(store_kv_t *kv, bool keep)
{
    mf_error_t ignored = MF_ERROR_INIT;
    if (!keep)
        kv__exec(kv, STORE__KV_ROLLBACK_TO, "roll back a savepoint", &ignored);
    kv__exec(kv, STORE__KV_RELEASE, "release a savepoint", &ignored);
}

/* A write made outside a transaction of its caller's (not a writer's job)
 * runs in one of its own, durable: it is then whole or not at all, and
 * the store's lock (below) is held until it is committed. */
static int kv__own_begin(store_kv_t *kv, bool *own, mf_error_t *err)
{
    *own = !kv->be->in_transaction(kv);
    return *own ? kv->be->begin(kv, true, err) : 0;
}

static int kv__own_end(store_kv_t *kv, bool own, int r, mf_error_t *err)
{
    if (!own)
        return r;
    if (r < 0) {
        kv->be->rollback(kv);
        return r;
    }
    return kv->be->commit(kv, err);
}

/* Takes store's lock until the transaction ends. On PostgreSQL the
 * writers of every server wait on it, so that a write's look at its key,
 * its conditions, the store's bounds and counts, its version and the
 * write itself are one step however many servers write at once (and a
 * key's versions only go up). SQLite has one writer: no statement. */
static int kv__lock(store_kv_t *kv, const char *store, mf_error_t *err)
{
    store__kv_arg_t a[] = { ARG_TEXT(store) };
    return kv__run(kv, STORE__KV_LOCK, a, NARGS(a), NULL, NULL, "lock a store", err);
}

static void kv__row_bool(const store__row_t *row, void *ud)
{
    *(bool *)ud = row->int64(row->ctx, 0) != 0;
}

/* As kv__lock, without waiting: *got says whether it was taken. */
static int kv__try_lock(store_kv_t *kv, const char *store, bool *got, mf_error_t *err)
{
    store__kv_arg_t a[] = { ARG_TEXT(store) };
    *got = true;
    return kv__run(kv, STORE__KV_TRY_LOCK, a, NARGS(a), kv__row_bool, got, "lock a store", err);
}

static int kv__w_begin(void *db, bool durable, mf_error_t *err)
{
    return store_kv_begin(db, durable, err);
}

static int kv__w_savepoint(void *db, mf_error_t *err)
{
    return store_kv_savepoint(db, err);
}

static void kv__w_release(void *db, bool keep)
{
    store_kv_release(db, keep);
}

static int kv__w_commit(void *db, mf_error_t *err)
{
    return store_kv_commit(db, err);
}

static void kv__w_close(void *db)
{
    store_kv_close(db);
}

int store_kv_writer_db(const char *where, const store_kv_limits_t *limits,
                       store_writer_db_t *out, mf_error_t *err)
{
    store_kv_t *kv;
    int r = kv__open(where, true, &kv, err);
    if (r < 0)
        return r;
    kv->limits = *limits;
    *out = (store_writer_db_t){ .db = kv,
                                .begin = kv__w_begin,
                                .savepoint = kv__w_savepoint,
                                .release = kv__w_release,
                                .commit = kv__w_commit,
                                .close = kv__w_close };
    if (kv->be->writer_link)
        kv->be->writer_link(kv, out);
    return 0;
}

/* ---- reads -------------------------------------------------------------- */

void store_kv_item_clear(store_kv_item_t *item)
{
    if (!item)
        return;
    free(item->key);
    free(item->value);
    free(item->content_type);
    memset(item, 0, sizeof *item);
}

void store_kv_items_free(store_kv_item_t *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        store_kv_item_clear(&items[i]);
    free(items);
}

/* Fills an item from a row of STORE_KV_COLUMNS (the value included). */
static void kv__row_full(const store__row_t *row, void *ud)
{
    store_kv_item_t *item = ud;
    void *c = row->ctx;
    item->found = true;
    item->version = row->int64(c, 0);
    item->size = row->int64(c, 1);
    item->expires_ms = row->int64(c, 2);
    item->content_type = row->dup_text(c, 3);
    item->value = row->dup_blob(c, 4, &item->value_len);
}

static int kv__get(store_kv_t *kv, const char *store, const void *key, size_t key_len,
                   int64_t now_ms, store_kv_item_t *out, mf_error_t *err)
{
    store__kv_arg_t a[] = { ARG_TEXT(store), ARG_BYTES(key, key_len), ARG_INT(now_ms) };
    int r = kv__run(kv, STORE__KV_GET, a, NARGS(a), kv__row_full, out, "read a key", err);
    if (r == 0 && !out->found) {
        char shown[256];
        r = mf_error_plain(err, ENOENT, "store %s has no key `%s`", store,
                           kv__show(key, key_len, shown, sizeof shown));
    }
    return r;
}

int store_kv_get(store_kv_t *kv, const char *store, const void *key, size_t key_len, int64_t now_ms,
                 store_kv_item_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    int r = kv__get(kv, store, key, key_len, now_ms, out, err);
    if (r == 0) {
        out->key = kv__dup_bytes(key, key_len);
        out->key_len = key_len;
    } else {
        store_kv_item_clear(out);
    }
    return r;
}

int store_kv_get_many(store_kv_t *kv, const char *store, const slice_t *keys, size_t n,
                      int64_t now_ms, int64_t max_total_bytes, store_kv_item_t *items,
                      mf_error_t *err)
{
    /* One read transaction: every key is read at the same snapshot (in a
     * transaction of the caller's, as that one sees them). */
    bool own = !kv->be->in_transaction(kv);
    int r = own ? kv__exec(kv, STORE__KV_BEGIN_READ, "begin a read", err) : 0;
    if (r < 0)
        return r;
    int64_t total = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        store_kv_item_t *it = &items[i];
        r = kv__get(kv, store, keys[i].base, keys[i].len, now_ms, it, err);
        if (r == -ENOENT)
            r = 0; /* found stays false */
        it->key = kv__dup_bytes(keys[i].base, keys[i].len);
        it->key_len = keys[i].len;
        total += it->size;
        if (r == 0 && max_total_bytes > 0 && total > max_total_bytes)
            r = mf_error_plain(err, EFBIG,
                               "the values of these keys come to more than %" PRId64
                               " bytes: read fewer keys at once",
                               max_total_bytes);
    }
    mf_error_t ignored = MF_ERROR_INIT;
    if (own)
        kv__exec(kv, STORE__KV_COMMIT, "end a read", &ignored);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            store_kv_item_clear(&items[i]);
    }
    return r;
}

/* The smallest byte string greater than every string that starts with
 * prefix: prefix with its last byte below 0xff raised by one and the rest
 * cut. false when there is none (prefix is all 0xff bytes). */
static bool kv__prefix_end(const void *prefix, size_t len, buf_t *out)
{
    const unsigned char *p = prefix;
    while (len > 0 && p[len - 1] == 0xff)
        len--;
    if (len == 0)
        return false;
    buf_reset(out);
    buf_add(out, p, len);
    out->data[len - 1] = (char)(p[len - 1] + 1);
    return true;
}

/* A page of a listing as its rows come. */
typedef struct kv_page {
    const void *skip; /* the cursor's own key, or NULL */
    size_t skip_len;
    size_t limit;
    store_kv_item_t *items;
    size_t n;
    bool more;
} kv_page_t;

static void kv__list_row(const store__row_t *row, void *ud)
{
    kv_page_t *pg = ud;
    void *c = row->ctx;
    size_t klen;
    void *k = row->dup_blob(c, 0, &klen);
    if ((pg->skip && klen == pg->skip_len && !memcmp(k, pg->skip, klen)) || pg->more) {
        free(k);
        return;
    }
    if (pg->n == pg->limit) {
        pg->more = true;
        free(k);
        return;
    }
    store_kv_item_t *it = &pg->items[pg->n++];
    it->found = true;
    it->key = k;
    it->key_len = klen;
    it->version = row->int64(c, 1);
    it->size = row->int64(c, 2);
    it->expires_ms = row->int64(c, 3);
}

int store_kv_list(store_kv_t *kv, const char *store, const void *prefix, size_t prefix_len,
                  const void *after, size_t after_len, int limit, int64_t now_ms,
                  store_kv_item_t **out, size_t *count, bool *more, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    *more = false;
    if (limit < 1)
        return mf_error_plain(err, EINVAL, "limit: must be at least 1");
    /* The lower bound: the greater of the cursor and the prefix. */
    const void *from = prefix;
    size_t from_len = prefix_len;
    bool skip_from = false;
    if (after_len) {
        size_t m = after_len < prefix_len ? after_len : prefix_len;
        int c = memcmp(after, prefix, m);
        if (c > 0 || (c == 0 && after_len >= prefix_len)) {
            from = after;
            from_len = after_len;
            skip_from = true;
        }
    }
    cleanup_buf buf_t end = BUF_INIT;
    bool bounded = prefix_len && kv__prefix_end(prefix, prefix_len, &end);
    /* One more than asked says whether there are more; one more again
     * for the cursor's own key, skipped. */
    int want = limit + 1 + (skip_from ? 1 : 0);
    store__kv_arg_t a[] = { ARG_TEXT(store), ARG_BYTES(from, from_len), ARG_INT(now_ms),
                            ARG_INT(want), ARG_BYTES(end.data, end.len) };
    kv_page_t pg = { .skip = skip_from ? from : NULL,
                     .skip_len = from_len,
                     .limit = (size_t)limit,
                     .items = xcalloc((size_t)limit, sizeof *pg.items) };
    int r = kv__run(kv, bounded ? STORE__KV_LIST_PREFIX : STORE__KV_LIST, a,
                    bounded ? 5 : 4, kv__list_row, &pg, "list keys", err);
    if (r < 0) {
        store_kv_items_free(pg.items, pg.n);
        return r;
    }
    *out = pg.items;
    *count = pg.n;
    *more = pg.more;
    return 0;
}

static void kv__row_stats(const store__row_t *row, void *ud)
{
    store_kv_store_stats_t *s = ud;
    s->keys = row->int64(row->ctx, 0);
    s->bytes = row->int64(row->ctx, 1);
}

int store_kv_store_stats(store_kv_t *kv, const char *store, store_kv_store_stats_t *out,
                         mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", store);
    store__kv_arg_t a[] = { ARG_TEXT(store) };
    return kv__run(kv, STORE__KV_STORE_GET, a, NARGS(a), kv__row_stats, out,
                   "read a store's size", err);
}

/* A growing list of stores and what each holds. */
typedef struct kv_stats_list {
    store_kv_store_stats_t *list;
    size_t n, cap;
} kv_stats_list_t;

static store_kv_store_stats_t *kv__stats_add(kv_stats_list_t *l, const char *name)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->list = xrealloc(l->list, l->cap * sizeof *l->list);
    }
    store_kv_store_stats_t *s = &l->list[l->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

/* A row of (name, keys), a sweep's due store; of (name, keys, bytes),
 * a store's counts. */
static store_kv_store_stats_t *kv__row_named(const store__row_t *row, void *ud)
{
    char name[sizeof ((store_kv_store_stats_t *)0)->name];
    row->copy_text(row->ctx, 0, name, sizeof name);
    store_kv_store_stats_t *s = kv__stats_add(ud, name);
    s->keys = row->int64(row->ctx, 1);
    return s;
}

static void kv__row_due(const store__row_t *row, void *ud)
{
    kv__row_named(row, ud);
}

static void kv__row_named_stats(const store__row_t *row, void *ud)
{
    kv__row_named(row, ud)->bytes = row->int64(row->ctx, 2);
}

int store_kv_stores(store_kv_t *kv, store_kv_store_stats_t **out, size_t *count, mf_error_t *err)
{
    kv_stats_list_t l = { 0 };
    int r = kv__run(kv, STORE__KV_STORES, NULL, 0, kv__row_named_stats, &l, "list stores", err);
    if (r < 0) {
        free(l.list);
        l = (kv_stats_list_t){ 0 };
    }
    *out = l.list;
    *count = l.n;
    return r;
}

/* ---- writes ------------------------------------------------------------- */

/* What a write finds of its key: the row (even expired), and whether it
 * is live. */
typedef struct kv_found {
    bool row; /* a row is there, live or expired */
    bool live;
    int64_t version;
    int64_t size;
    int64_t expires_ms;
    char *content_type; /* with_value only: owned */
    void *value;
    size_t value_len;
    int64_t now_ms;  /* what "live" is measured against */
    bool with_value; /* whether to keep a live key's type and value */
} kv_found_t;

static void kv__found_clear(kv_found_t *f)
{
    free(f->content_type);
    free(f->value);
    memset(f, 0, sizeof *f);
}

static void kv__row_found(const store__row_t *row, void *ud)
{
    kv_found_t *f = ud;
    void *c = row->ctx;
    f->row = true;
    f->version = row->int64(c, 0);
    f->size = row->int64(c, 1);
    f->expires_ms = row->int64(c, 2);
    f->live = f->expires_ms == 0 || f->expires_ms > f->now_ms;
    if (f->with_value && f->live) {
        f->content_type = row->dup_text(c, 3);
        f->value = row->dup_blob(c, 4, &f->value_len);
    }
}

static int kv__lookup(store_kv_t *kv, const char *store, const void *key, size_t key_len,
                      int64_t now_ms, bool with_value, kv_found_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    out->now_ms = now_ms;
    out->with_value = with_value;
    store__kv_arg_t a[] = { ARG_TEXT(store), ARG_BYTES(key, key_len) };
    int r = kv__run(kv, STORE__KV_LOOKUP, a, NARGS(a), kv__row_found, out, "look a key up", err);
    if (r < 0)
        kv__found_clear(out);
    return r;
}

static int kv__store_add(store_kv_t *kv, const char *store, int64_t dkeys, int64_t dbytes,
                         mf_error_t *err)
{
    if (!dkeys && !dbytes)
        return 0;
    store__kv_arg_t a[] = { ARG_TEXT(store), ARG_INT(dkeys), ARG_INT(dbytes) };
    int r = kv__run(kv, STORE__KV_STORE_ADD, a, NARGS(a), NULL, NULL, "count a store's keys", err);
    if (r == 0 && dkeys < 0)
        /* A store with no keys left is no longer listed. */
        r = kv__run(kv, STORE__KV_STORE_GC, a, 1, NULL, NULL, "count a store's keys", err);
    return r;
}

static void kv__row_int(const store__row_t *row, void *ud)
{
    *(int64_t *)ud = row->int64(row->ctx, 0);
}

static int kv__next_version(store_kv_t *kv, int64_t *out, mf_error_t *err)
{
    *out = 0;
    int r = kv__run(kv, STORE__KV_VERSION_NEXT, NULL, 0, kv__row_int, out,
                    "advance the version counter", err);
    if (r == 0 && *out == 0)
        r = mf_error_plain(err, EIO, "store: advance the version counter: it gave no number");
    return r;
}

/* What a sweep takes from one store. */
typedef struct kv_swept {
    int64_t keys, bytes;
} kv_swept_t;

static void kv__row_swept(const store__row_t *row, void *ud)
{
    kv_swept_t *s = ud;
    s->keys++;
    s->bytes += row->int64(row->ctx, 0);
}

/* Removes up to limit expired keys of store, whose lock the caller holds,
 * and takes them off its counts; *out says what went. */
static int kv__sweep_store(store_kv_t *kv, const char *store, int64_t now_ms, int64_t limit,
                           kv_swept_t *out, mf_error_t *err)
{
    *out = (kv_swept_t){ 0 };
    store__kv_arg_t a[] = { ARG_TEXT(store), ARG_INT(now_ms), ARG_INT(limit) };
    int r = kv__run(kv, STORE__KV_SWEEP, a, NARGS(a), kv__row_swept, out, "remove expired keys",
                    err);
    if (r == 0)
        r = kv__store_add(kv, store, -out->keys, -out->bytes, err);
    return r;
}

/* Removes up to limit keys expired at now_ms, a store at a time, in the
 * order of their names. A store whose lock another server holds (it is
 * writing there) is left for a later sweep rather than waited for. */
static int kv__sweep(store_kv_t *kv, int64_t now_ms, int limit, int64_t *removed,
                     store_kv_store_stats_t **changed, size_t *nchanged, mf_error_t *err)
{
    *removed = 0;
    /* Per store: its expired keys among the first limit (in .keys). */
    kv_stats_list_t due = { 0 };
    store__kv_arg_t a[] = { ARG_INT(now_ms), ARG_INT(limit) };
    int r = kv__run(kv, STORE__KV_SWEEP_DUE, a, NARGS(a), kv__row_due, &due,
                    "remove expired keys", err);
    size_t n = 0; /* the stores keys went from, moved to the front of due */
    for (size_t i = 0; i < due.n && r == 0; i++) {
        char name[sizeof due.list[i].name];
        memcpy(name, due.list[i].name, sizeof name);
        bool got;
        kv_swept_t swept;
        if ((r = kv__try_lock(kv, name, &got, err)) < 0 || !got ||
            (r = kv__sweep_store(kv, name, now_ms, due.list[i].keys, &swept, err)) < 0 ||
            swept.keys == 0)
            continue;
        *removed += swept.keys;
        r = store_kv_store_stats(kv, name, &due.list[n++], err);
    }
    if (r == 0 && changed) {
        *changed = due.list;
        *nchanged = n;
    } else {
        free(due.list);
        if (changed) {
            *changed = NULL;
            *nchanged = 0;
        }
    }
    return r;
}

int store_kv_sweep(store_kv_t *kv, int64_t now_ms, int limit, int64_t *removed,
                   store_kv_store_stats_t **changed, size_t *nchanged, mf_error_t *err)
{
    if (limit < 1)
        return mf_error_plain(err, EINVAL, "sweep: limit must be at least 1");
    bool own;
    int r = kv__own_begin(kv, &own, err);
    if (r == 0)
        r = kv__sweep(kv, now_ms, limit, removed, changed, nchanged, err);
    r = kv__own_end(kv, own, r, err);
    if (r < 0 && changed) {
        free(*changed);
        *changed = NULL;
        *nchanged = 0;
    }
    return r;
}

/* Whether the store has room for dkeys more keys and dbytes more bytes. */
static int kv__room(store_kv_t *kv, const char *store, int64_t dkeys, int64_t dbytes, bool *fits,
                    store_kv_store_stats_t *s, mf_error_t *err)
{
    *fits = true;
    const store_kv_limits_t *l = &kv->limits;
    if ((dkeys <= 0 || !l->max_keys) && (dbytes <= 0 || !l->max_store_bytes))
        return 0;
    int r = store_kv_store_stats(kv, store, s, err);
    if (r < 0)
        return r;
    if ((dkeys > 0 && l->max_keys && s->keys + dkeys > l->max_keys) ||
        (dbytes > 0 && l->max_store_bytes && s->bytes + dbytes > l->max_store_bytes))
        *fits = false;
    return 0;
}

static int kv__full(store_kv_t *kv, const char *store, const store_kv_store_stats_t *s,
                    mf_error_t *err)
{
    const store_kv_limits_t *l = &kv->limits;
    return mf_error_plain(err, ENOSPC,
                          "store %s is full: it holds %" PRId64 " keys (at most %" PRId64
                          ") and %" PRId64 " bytes (at most %" PRId64 ")",
                          store, s->keys, l->max_keys, s->bytes, l->max_store_bytes);
}

/* How many of a full store's expired keys a write sweeps to make room. */
#define KV_ROOM_SWEEP 1000

/* Writes key = value with a new version, the store's counts adjusted for
 * what was there (f), once the bounds allow it. A store at its bound
 * first has its expired keys swept, and f looked up again. */
static int kv__put_row(store_kv_t *kv, const char *store, const void *key, size_t key_len,
                       const void *value, size_t value_len, const char *content_type,
                       int64_t expires_ms, kv_found_t *f, int64_t now_ms, int64_t *version,
                       mf_error_t *err)
{
    if (kv->limits.max_value_bytes && (int64_t)value_len > kv->limits.max_value_bytes)
        return mf_error_plain(
            err, EFBIG, "the value is %zu bytes, over the most a value may be (%" PRId64 " bytes)",
            value_len, kv->limits.max_value_bytes);
    int64_t dkeys = 0, dbytes = 0;
    for (int attempt = 0;; attempt++) {
        dkeys = f->row ? 0 : 1;
        dbytes = kv__op_bytes(key_len, (int64_t)value_len) -
                 (f->row ? kv__op_bytes(key_len, f->size) : 0);
        bool fits;
        store_kv_store_stats_t s;
        int r = kv__room(kv, store, dkeys, dbytes, &fits, &s, err);
        if (r < 0)
            return r;
        if (fits)
            break;
        if (attempt == 1)
            return kv__full(kv, store, &s, err);
        kv_swept_t swept;
        r = kv__sweep_store(kv, store, now_ms, KV_ROOM_SWEEP, &swept, err);
        if (r < 0)
            return r;
        if (swept.keys == 0)
            return kv__full(kv, store, &s, err);
        /* The sweep may have taken this very key (expired). */
        kv_found_t again;
        r = kv__lookup(kv, store, key, key_len, now_ms, false, &again, err);
        if (r < 0)
            return r;
        f->row = again.row;
        f->size = again.size;
    }
    int64_t v = 0;
    int r = kv__next_version(kv, &v, err);
    if (r < 0)
        return r;
    store__kv_arg_t a[] = { ARG_TEXT(store),
                            ARG_BYTES(key, key_len),
                            ARG_INT(v),
                            ARG_INT((int64_t)value_len),
                            expires_ms ? ARG_INT(expires_ms) : ARG_NULL,
                            ARG_TEXT(content_type),
                            ARG_BYTES(value, value_len) };
    r = kv__run(kv, STORE__KV_UPSERT, a, NARGS(a), NULL, NULL, "write a key", err);
    if (r == 0)
        r = kv__store_add(kv, store, dkeys, dbytes, err);
    if (r == 0 && version)
        *version = v;
    return r;
}

static int kv__expires(int64_t now_ms, int64_t ttl_ms, int64_t *out, mf_error_t *err)
{
    *out = 0;
    if (!ttl_ms)
        return 0;
    if (ttl_ms < 0 || __builtin_add_overflow(now_ms, ttl_ms, out)) {
        *out = 0;
        return mf_error_plain(err, EINVAL, "ttl: out of range");
    }
    return 0;
}

static int kv__check_key(const void *key, size_t key_len, mf_error_t *err)
{
    if (!key_len || key_len > STORE_KV_KEY_MAX)
        return mf_error_plain(err, EINVAL, "key: must be 1 to %d bytes", STORE_KV_KEY_MAX);
    return 0;
}

/* One op of store_kv_write, under the store's lock. */
static int kv__write(store_kv_t *kv, const char *store, const store_kv_op_t *op, int64_t now_ms,
                     int64_t *version, mf_error_t *err)
{
    if (version)
        *version = 0;
    int r = kv__check_key(op->key, op->key_len, err);
    if (r < 0)
        return r;
    kv_found_t f;
    r = kv__lookup(kv, store, op->key, op->key_len, now_ms, false, &f, err);
    if (r < 0)
        return r;
    char shown[256];
    if (op->kind == STORE_KV_DELETE) {
        if (!f.live)
            return mf_error_plain(err, ENOENT, "store %s has no key `%s`", store,
                                  kv__show(op->key, op->key_len, shown, sizeof shown));
        if (op->if_version && f.version != op->if_version)
            return mf_error_plain(
                err, ECANCELED, "key `%s` is at version %" PRId64 ", not %" PRId64,
                kv__show(op->key, op->key_len, shown, sizeof shown), f.version, op->if_version);
        store__kv_arg_t a[] = { ARG_TEXT(store), ARG_BYTES(op->key, op->key_len) };
        r = kv__run(kv, STORE__KV_DELETE, a, NARGS(a), NULL, NULL, "delete a key", err);
        if (r == 0)
            r = kv__store_add(kv, store, -1, -kv__op_bytes(op->key_len, f.size), err);
        return r;
    }
    if (op->if_absent && f.live)
        return mf_error_plain(err, ECANCELED, "key `%s` exists (at version %" PRId64 ")",
                              kv__show(op->key, op->key_len, shown, sizeof shown), f.version);
    if (op->if_version && !f.live)
        return mf_error_plain(err, ECANCELED,
                              "key `%s` does not exist, so it is not at version %" PRId64,
                              kv__show(op->key, op->key_len, shown, sizeof shown), op->if_version);
    if (op->if_version && f.version != op->if_version)
        return mf_error_plain(err, ECANCELED, "key `%s` is at version %" PRId64 ", not %" PRId64,
                              kv__show(op->key, op->key_len, shown, sizeof shown), f.version,
                              op->if_version);
    int64_t expires;
    if ((r = kv__expires(now_ms, op->ttl_ms, &expires, err)) < 0)
        return r;
    return kv__put_row(kv, store, op->key, op->key_len, op->value, op->value_len,
                       op->content_type ? op->content_type : STORE_KV_DEFAULT_CONTENT_TYPE, expires,
                       &f, now_ms, version, err);
}

int store_kv_write(store_kv_t *kv, const char *store, const store_kv_op_t *op, int64_t now_ms,
                   int64_t *version, mf_error_t *err)
{
    if (version)
        *version = 0;
    bool own;
    int r = kv__own_begin(kv, &own, err);
    if (r == 0 && (r = kv__lock(kv, store, err)) == 0)
        r = kv__write(kv, store, op, now_ms, version, err);
    r = kv__own_end(kv, own, r, err);
    if (r < 0 && version)
        *version = 0;
    return r;
}

static int kv__write_all(store_kv_t *kv, const char *store, const store_kv_op_t *ops, size_t n,
                         int64_t now_ms, int64_t *versions, size_t *failed, mf_error_t *err)
{
    int r = kv__exec(kv, STORE__KV_BATCH_SAVEPOINT, "open a savepoint", err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        r = kv__write(kv, store, &ops[i], now_ms, &versions[i], err);
        if (r == -ENOENT && ops[i].kind == STORE_KV_DELETE) {
            /* In a batch, deleting what is not there is done already;
             * unless the op asked for a version, which it cannot have. */
            char shown[256];
            r = ops[i].if_version
                    ? mf_error_plain(err, ECANCELED,
                                     "key `%s` does not exist, so it is not at version %" PRId64,
                                     kv__show(ops[i].key, ops[i].key_len, shown, sizeof shown),
                                     ops[i].if_version)
                    : 0;
        }
        if (r < 0) {
            *failed = i;
            mf_error_wrap(err, "ops[%zu]", i);
            break;
        }
    }
    mf_error_t ignored = MF_ERROR_INIT;
    if (r < 0)
        kv__exec(kv, STORE__KV_BATCH_ROLLBACK_TO, "roll back a batch", &ignored);
    int rr = kv__exec(kv, STORE__KV_BATCH_RELEASE, "release a batch", r < 0 ? &ignored : err);
    return r < 0 ? r : rr;
}

int store_kv_write_all(store_kv_t *kv, const char *store, const store_kv_op_t *ops, size_t n,
                       int64_t now_ms, int64_t *versions, size_t *failed, mf_error_t *err)
{
    *failed = 0;
    bool own;
    int r = kv__own_begin(kv, &own, err);
    if (r == 0 && (r = kv__lock(kv, store, err)) == 0)
        r = kv__write_all(kv, store, ops, n, now_ms, versions, failed, err);
    r = kv__own_end(kv, own, r, err);
    if (r < 0)
        memset(versions, 0, n * sizeof *versions);
    return r;
}

/* A whole decimal int64: an optional '-' and 1 to 19 digits. */
static int kv__parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    if (i == len)
        return -EDOM;
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EDOM;
        int d = s[i] - '0';
        if (__builtin_mul_overflow(v, 10, &v) ||
            (neg ? __builtin_sub_overflow(v, d, &v) : __builtin_add_overflow(v, d, &v)))
            return -ERANGE;
    }
    *out = v;
    return 0;
}

/* store_kv_incr under the store's lock. */
static int kv__incr(store_kv_t *kv, const char *store, const void *key, size_t key_len,
                    int64_t by, int64_t ttl_ms, int64_t now_ms, int64_t *value, int64_t *version,
                    mf_error_t *err)
{
    kv_found_t f;
    int r = kv__lookup(kv, store, key, key_len, now_ms, true, &f, err);
    if (r < 0)
        return r;
    char shown[256];
    int64_t old = 0, expires = f.live ? f.expires_ms : 0;
    if (f.live) {
        r = kv__parse_int64(f.value, f.value_len, &old);
        if (r < 0) {
            kv__found_clear(&f);
            return mf_error_plain(err, r == -ERANGE ? ERANGE : EDOM,
                                  "the value of key `%s` is not a decimal integer in the int64 "
                                  "range, so it cannot be incremented",
                                  kv__show(key, key_len, shown, sizeof shown));
        }
    }
    int64_t sum;
    if (__builtin_add_overflow(old, by, &sum)) {
        kv__found_clear(&f);
        return mf_error_plain(err, ERANGE,
                              "key `%s`: %" PRId64 " + %" PRId64 " overflows the int64 range",
                              kv__show(key, key_len, shown, sizeof shown), old, by);
    }
    if (ttl_ms && (r = kv__expires(now_ms, ttl_ms, &expires, err)) < 0) {
        kv__found_clear(&f);
        return r;
    }
    char text[24];
    int len = snprintf(text, sizeof text, "%" PRId64, sum);
    cleanup_free char *ctype =
        f.content_type ? xstrdup(f.content_type) : xstrdup("application/json");
    r = kv__put_row(kv, store, key, key_len, text, (size_t)len, ctype, expires, &f, now_ms, version,
                    err);
    kv__found_clear(&f);
    if (r == 0)
        *value = sum;
    return r;
}

int store_kv_incr(store_kv_t *kv, const char *store, const void *key, size_t key_len, int64_t by,
                  int64_t ttl_ms, int64_t now_ms, int64_t *value, int64_t *version, mf_error_t *err)
{
    int r = kv__check_key(key, key_len, err);
    if (r < 0)
        return r;
    bool own;
    if ((r = kv__own_begin(kv, &own, err)) == 0 && (r = kv__lock(kv, store, err)) == 0)
        r = kv__incr(kv, store, key, key_len, by, ttl_ms, now_ms, value, version, err);
    return kv__own_end(kv, own, r, err);
}

static int kv__drop(store_kv_t *kv, const char *store, mf_error_t *err)
{
    store_kv_store_stats_t s;
    int r = store_kv_store_stats(kv, store, &s, err);
    if (r < 0)
        return r;
    if (s.keys == 0)
        return mf_error_plain(err, ENOENT, "store %s holds no keys", store);
    store__kv_arg_t a[] = { ARG_TEXT(store) };
    r = kv__run(kv, STORE__KV_DROP_KEYS, a, NARGS(a), NULL, NULL, "delete a store", err);
    if (r == 0)
        r = kv__run(kv, STORE__KV_DROP_STORE, a, NARGS(a), NULL, NULL, "delete a store", err);
    return r;
}

int store_kv_drop(store_kv_t *kv, const char *store, mf_error_t *err)
{
    bool own;
    int r = kv__own_begin(kv, &own, err);
    if (r == 0 && (r = kv__lock(kv, store, err)) == 0)
        r = kv__drop(kv, store, err);
    return kv__own_end(kv, own, r, err);
}

/* ---- the listing cursor ------------------------------------------------- */

#define CURSOR_TAG "k1."

void store_kv_cursor_format(buf_t *out, const void *key, size_t key_len)
{
    /* base64url without padding: safe in a query as it is. */
    buf_t b = BUF_INIT;
    codec_base64_encode(&b, key, key_len);
    buf_adds(out, CURSOR_TAG);
    for (size_t i = 0; i < b.len && b.data[i] != '='; i++)
        buf_addch(out, b.data[i] == '+' ? '-' : b.data[i] == '/' ? '_' : b.data[i]);
    buf_release(&b);
}

int store_kv_cursor_parse(const char *s, size_t len, buf_t *out)
{
    size_t tag = sizeof CURSOR_TAG - 1;
    if (len <= tag || memcmp(s, CURSOR_TAG, tag) || len - tag > 4 * ((STORE_KV_KEY_MAX + 2) / 3))
        return -EINVAL;
    buf_t std = BUF_INIT;
    for (size_t i = tag; i < len; i++) {
        char c = s[i];
        if (c == '+' || c == '/' || c == '=') {
            buf_release(&std);
            return -EINVAL;
        }
        buf_addch(&std, c == '-' ? '+' : c == '_' ? '/' : c);
    }
    buf_reset(out);
    int r = codec_base64_decode(out, std.data, std.len, STORE_KV_KEY_MAX);
    buf_release(&std);
    if (r == 0 && out->len == 0)
        r = -EINVAL;
    if (r == 0) {
        /* Only the one spelling this server writes (no stray low bits in
         * the last character): a cursor is not to be edited. */
        buf_t again = BUF_INIT;
        store_kv_cursor_format(&again, out->data, out->len);
        if (again.len != len || memcmp(again.data, s, len))
            r = -EINVAL;
        buf_release(&again);
    }
    if (r < 0) {
        buf_reset(out);
        return -EINVAL;
    }
    return 0;
}
