/* Connecting to PostgreSQL, running statements and reading their rows,
 * and the errors libpq's failures become (store/postgres_internal.h). */
#include "store/postgres_internal.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/xalloc.h"

/* The built-in types' OIDs (PostgreSQL's pg_type.dat; they never change). */
#define PG_BOOLOID 16
#define PG_BYTEAOID 17
#define PG_INT8OID 20
#define PG_INT2OID 21
#define PG_INT4OID 23
#define PG_TEXTOID 25
#define PG_FLOAT4OID 700
#define PG_FLOAT8OID 701

/* ---- messages ------------------------------------------------------------ */

/* The password a URL carries, in its user info or as ?password=, as it is
 * written there; "" when none. */
static void url_password(const char *url, const char **pw, size_t *len)
{
    *pw = "";
    *len = 0;
    const char *auth = strstr(url, "://");
    if (auth) {
        auth += 3;
        size_t n = strcspn(auth, "/?");
        const char *at = memrchr(auth, '@', n);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            *pw = colon + 1;
            *len = (size_t)(at - colon - 1);
            return;
        }
    }
    const char *q = strchr(url, '?');
    for (const char *p = q; p; p = strchr(p + 1, '&')) {
        if (!strncmp(p + 1, "password=", 9)) {
            *pw = p + 10;
            *len = strcspn(*pw, "&");
            return;
        }
    }
}

/* Copies text into out as one line, with url's password (wherever text
 * repeats it: libpq's complaints about a URL quote it) shown as "***". */
static void pg__mask(const char *url, const char *text, char *out, size_t size)
{
    const char *pw;
    size_t pw_len, j = 0;
    url_password(url, &pw, &pw_len);
    for (size_t i = 0; text[i] && j + 4 < size;) {
        if (pw_len > 0 && !strncmp(text + i, pw, pw_len)) {
            memcpy(out + j, "***", 3);
            j += 3;
            i += pw_len;
            continue;
        }
        char ch = text[i++];
        if (ch == '\n') {
            /* libpq ends its messages with a newline and puts the lines
             * of a longer one on new, indented lines. */
            i += strspn(text + i, " \t");
            if (text[i] && j > 0)
                out[j++] = ' ';
            continue;
        }
        out[j++] = ch == '\t' ? ' ' : ch;
    }
    out[j] = '\0';
}

int store__pg_fail(PGconn *c, const PGresult *res, const char *what, mf_error_t *err)
{
    char why[400];
    if (PQstatus(c) == CONNECTION_BAD) {
        pg__mask("", PQerrorMessage(c), why, sizeof why);
        return mf_error_plain(err, ECONNRESET, "store: %s: lost the connection to PostgreSQL (%s)",
                              what, why[0] ? why : "no reason given");
    }
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    pg__mask("", msg ? msg : PQerrorMessage(c), why, sizeof why);
    if (state)
        return mf_error_plain(err, EIO, "store: %s: %s (SQLSTATE %s)", what, why, state);
    return mf_error_plain(err, EIO, "store: %s: %s", what, why[0] ? why : "unknown error");
}

/* Warnings from the server go to the log; notices (say, "relation already
 * exists, skipping") are for people at a prompt, not for a server's log. */
static void pg__notice(void *arg, const PGresult *res)
{
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (severity && !strcmp(severity, "WARNING") && msg)
        log_warn("store", "PostgreSQL: %s", msg);
}

/* ---- connecting ---------------------------------------------------------- */

/* The oldest server with everything the schema and statements use
 * (starts_with, identity columns, ON CONFLICT). */
#define PG_MIN_SERVER 110000

int store__pg_connect(const char *url, PGconn **out, mf_error_t *err)
{
    return store__pg_connect_as(url, NULL, out, err);
}

int store__pg_connect_as(const char *url, const char *application_name, PGconn **out,
                         mf_error_t *err)
{
    char shown[256], why[400];
    pg__mask(url, url, shown, sizeof shown);
    char *parse_err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &parse_err);
    if (!opts) {
        pg__mask(url, parse_err ? parse_err : "out of memory", why, sizeof why);
        PQfreemem(parse_err);
        return mf_error_plain(err, EINVAL, "store: `%s` is not a PostgreSQL URL: %s", shown, why);
    }
    PQconninfoFree(opts);
    /* Keywords are taken in order, and the URL's own words (dbname is
     * expanded into them) override the defaults before it: a connect
     * timeout, so that an unreachable host cannot hang a start for
     * minutes, unless the URL sets its own. */
    static const char *const keys[] = { "connect_timeout", "dbname", "fallback_application_name",
                                        NULL };
    const char *values[] = { "10", url, "mayfly", NULL };
    /* A connection with a name of its own, which the URL does not
     * override, and TCP keepalives that notice a database host gone
     * silent within a minute rather than the system's two hours: a
     * connection that only waits for the server to speak would otherwise
     * never learn that it is gone. */
    static const char *const named_keys[] = { "connect_timeout", "dbname", "application_name",
                                              "keepalives", "keepalives_idle",
                                              "keepalives_interval", "keepalives_count", NULL };
    const char *named_values[] = { "10", url, application_name, "1", "20", "10", "3", NULL };
    PGconn *c = application_name ? PQconnectdbParams(named_keys, named_values, 1)
                                 : PQconnectdbParams(keys, values, 1);
    if (!c)
        return mf_error_plain(err, ENOMEM, "store: out of memory connecting to PostgreSQL");
    int r = 0;
    if (PQstatus(c) != CONNECTION_OK) {
        pg__mask(url, PQerrorMessage(c), why, sizeof why);
        r = mf_error_plain(err, ECONNREFUSED, "store: cannot connect to PostgreSQL at `%s`: %s",
                           shown, why);
    } else if (PQserverVersion(c) < PG_MIN_SERVER) {
        r = mf_error_plain(err, ENOTSUP,
                           "store: PostgreSQL at `%s` is version %d; mayfly needs %d or newer",
                           shown, PQserverVersion(c) / 10000, PG_MIN_SERVER / 10000);
    }
    if (r < 0) {
        PQfinish(c);
        return r;
    }
    PQsetNoticeReceiver(c, pg__notice, NULL);
    *out = c;
    return 0;
}

/* ---- statements ---------------------------------------------------------- */

static bool pg__ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

int store__pg_exec(PGconn *c, const char *sql, const char *what, mf_error_t *err)
{
    PGresult *res = PQexec(c, sql);
    int r = pg__ok(res) ? 0 : store__pg_fail(c, res, what, err);
    PQclear(res);
    return r;
}

int store__pg_prepare(PGconn *c, const store_pg_stmt_t *stmts, size_t count, mf_error_t *err)
{
    for (size_t i = 0; i < count; i++) {
        const store_pg_stmt_t *st = &stmts[i];
        if (!st->sql)
            continue;
        Oid types[STORE_PG_MAX_PARAMS];
        int n = 0;
        for (const char *t = st->types; *t && n < STORE_PG_MAX_PARAMS; t++)
            types[n++] = *t == 'i' ? PG_INT8OID
                         : *t == 'd' ? PG_FLOAT8OID
                         : *t == 'b' ? PG_BYTEAOID
                                     : PG_TEXTOID;
        PGresult *res = PQprepare(c, st->name, st->sql, n, types);
        int r = 0;
        if (!pg__ok(res)) {
            char what[96];
            snprintf(what, sizeof what, "prepare the statement %s", st->name);
            r = store__pg_fail(c, res, what, err);
        }
        PQclear(res);
        if (r < 0)
            return r;
    }
    return 0;
}

int store__pg_run(PGconn *c, const char *stmt, const store_pg_params_t *p, PGresult **out,
                  const char *what, mf_error_t *err)
{
    *out = NULL;
    if (p && p->too_big)
        return mf_error_plain(err, EFBIG, "store: %s: a value too large to send to PostgreSQL",
                              what);
    PGresult *res = PQexecPrepared(c, stmt, p ? p->n : 0, p ? p->values : NULL,
                                   p ? p->lengths : NULL, p ? p->formats : NULL, 1);
    if (!pg__ok(res)) {
        int r = store__pg_fail(c, res, what, err);
        PQclear(res);
        return r;
    }
    *out = res;
    return 0;
}

int store__pg_run_keyed(PGconn *c, const char *stmt, const char *key, int64_t *changed,
                        const char *what, mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, key);
    PGresult *res;
    int r = store__pg_run(c, stmt, &p, &res, what, err);
    if (r < 0)
        return r;
    if (changed)
        *changed = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

/* ---- parameters ---------------------------------------------------------- */

/* A parameter's place in p: a number past them is a bug in a statement's
 * table, not something a request can cause. */
static int slot(int i)
{
    if (i < 1 || i > STORE_PG_MAX_PARAMS) {
        log_error("store", "parameter $%d of a PostgreSQL statement is out of range", i);
        abort();
    }
    return i - 1;
}

static int param(store_pg_params_t *p, int i, const char *v, size_t len)
{
    int k = slot(i);
    if (len > INT_MAX) {
        p->too_big = true;
        len = 0;
    }
    if (i > p->n)
        p->n = i;
    p->values[k] = v;
    p->lengths[k] = (int)len;
    p->formats[k] = 1;
    return 0;
}

/* Numbers in binary are 8 bytes in network byte order, kept in the params
 * themselves so that they live as long as the values pointing at them. */
static int param_u64(store_pg_params_t *p, int i, uint64_t v)
{
    int k = slot(i);
    p->numbers[k] = htobe64(v);
    return param(p, i, (const char *)&p->numbers[k], 8);
}

static int bind_int64(void *ctx, int i, int64_t v)
{
    return param_u64(ctx, i, (uint64_t)v);
}

static int bind_real(void *ctx, int i, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return param_u64(ctx, i, bits);
}

static int bind_text(void *ctx, int i, const char *v)
{
    return param(ctx, i, v, v ? strlen(v) : 0);
}

static int bind_blob(void *ctx, int i, const void *v, size_t len)
{
    return param(ctx, i, v, v ? len : 0);
}

store__binder_t store__pg_binder(store_pg_params_t *p)
{
    return (store__binder_t){ .ctx = p,
                              .int64 = bind_int64,
                              .real = bind_real,
                              .text = bind_text,
                              .blob = bind_blob };
}

/* ---- rows ---------------------------------------------------------------- */

static uint64_t be_bytes(const unsigned char *v, int len)
{
    uint64_t x = 0;
    for (int i = 0; i < len; i++)
        x = x << 8 | v[i];
    return x;
}

int64_t store__pg_int(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const unsigned char *v = (const unsigned char *)PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case PG_INT8OID: return (int64_t)be_bytes(v, 8);
    case PG_INT4OID: return (int32_t)(uint32_t)be_bytes(v, 4);
    case PG_INT2OID: return (int16_t)(uint16_t)be_bytes(v, 2);
    case PG_BOOLOID: return v[0] != 0;
    default: return 0;
    }
}

static double pg__real(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const unsigned char *v = (const unsigned char *)PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case PG_FLOAT8OID: {
        uint64_t bits = be_bytes(v, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    case PG_FLOAT4OID: {
        uint32_t bits = (uint32_t)be_bytes(v, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    default: return (double)store__pg_int(res, row, col);
    }
}

static int64_t row_int64(void *ctx, int col)
{
    store_pg_row_t *at = ctx;
    return store__pg_int(at->res, at->row, col);
}

static double row_real(void *ctx, int col)
{
    store_pg_row_t *at = ctx;
    return pg__real(at->res, at->row, col);
}

/* Text and bytea in binary are their bytes; libpq ends every value with a
 * NUL of its own. */
static void row_copy_text(void *ctx, int col, char *dst, size_t size)
{
    store_pg_row_t *at = ctx;
    snprintf(dst, size, "%.*s", PQgetlength(at->res, at->row, col),
             PQgetvalue(at->res, at->row, col));
}

static char *row_dup_text(void *ctx, int col)
{
    store_pg_row_t *at = ctx;
    if (PQgetisnull(at->res, at->row, col))
        return NULL;
    return xstrndup(PQgetvalue(at->res, at->row, col),
                    (size_t)PQgetlength(at->res, at->row, col));
}

static void *row_dup_blob(void *ctx, int col, size_t *len)
{
    store_pg_row_t *at = ctx;
    *len = 0;
    if (PQgetisnull(at->res, at->row, col))
        return NULL;
    size_t n = (size_t)PQgetlength(at->res, at->row, col);
    char *out = xmalloc(n + 1);
    memcpy(out, PQgetvalue(at->res, at->row, col), n);
    out[n] = '\0';
    *len = n;
    return out;
}

store__row_t store__pg_row(store_pg_row_t *at)
{
    return (store__row_t){ .ctx = at,
                           .int64 = row_int64,
                           .real = row_real,
                           .copy_text = row_copy_text,
                           .dup_text = row_dup_text,
                           .dup_blob = row_dup_blob };
}

void store__pg_rows(const PGresult *res, size_t size, store__fill_fn fill, void **out,
                    size_t *count)
{
    int n = PQntuples(res);
    char *list = n > 0 ? xcalloc((size_t)n, size) : NULL;
    store_pg_row_t at = { res, 0 };
    store__row_t row = store__pg_row(&at);
    for (at.row = 0; at.row < n; at.row++)
        fill(&row, list + (size_t)at.row * size);
    *out = list;
    *count = (size_t)n;
}

/* ---- transactions -------------------------------------------------------- */

int store__pg_begin(PGconn *c, bool durable, mf_error_t *err)
{
    /* PostgreSQL only warns of a BEGIN inside a transaction, and goes on
     * in the one that is open: said here as the error it is. */
    if (PQtransactionStatus(c) != PQTRANS_IDLE && PQstatus(c) == CONNECTION_OK)
        return mf_error_plain(err, EBUSY,
                              "store: begin a transaction: one is already open on this "
                              "connection");
    return store__pg_exec(c, durable ? "BEGIN" : "BEGIN; SET LOCAL synchronous_commit = off",
                          "begin a transaction", err);
}

int store__pg_savepoint(PGconn *c, mf_error_t *err)
{
    return store__pg_exec(c, "SAVEPOINT job", "start a job's savepoint", err);
}

void store__pg_release(PGconn *c, bool keep)
{
    mf_error_t ignored = MF_ERROR_INIT;
    store__pg_exec(c,
                   keep ? "RELEASE SAVEPOINT job"
                        : "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job",
                   "end a job's savepoint", &ignored);
}

int store__pg_commit(PGconn *c, mf_error_t *err)
{
    if (PQtransactionStatus(c) == PQTRANS_INERROR) {
        store__pg_rollback(c);
        return mf_error_plain(err, EIO,
                              "store: commit: a statement of the transaction failed, so it was "
                              "rolled back");
    }
    PGresult *res = PQexec(c, "COMMIT");
    int r = 0;
    if (!pg__ok(res))
        r = store__pg_fail(c, res, "commit", err);
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        /* COMMIT of a transaction that failed answers ROLLBACK, no error. */
        r = mf_error_plain(err, EIO, "store: commit: PostgreSQL rolled the transaction back");
    PQclear(res);
    if (r < 0)
        store__pg_rollback(c);
    return r;
}

void store__pg_rollback(PGconn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c);
    if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
        PQclear(PQexec(c, "ROLLBACK"));
}
