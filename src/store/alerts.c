/* store/alerts.h's calls, handed to the backend (alerts_backend.h), and
 * what both backends share: reading and binding rows. */
#include "store/alerts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/alerts_backend.h"
#include "store/backend.h"

static int unsupported(store_t *s, mf_error_t *err)
{
    return mf_error_plain(err, ENOTSUP, "store: %s keeps no alert rules", store_backend_name(s));
}

#define OPS(s) ((s)->be->alerts)

int store_alert_rule_put(store_t *s, const store_alert_rule_t *r, bool *created, mf_error_t *err)
{
    *created = false;
    return OPS(s) ? OPS(s)->put(s, r, created, err) : unsupported(s, err);
}

int store_alert_state_put(store_t *s, const char *name, const char *state_json, mf_error_t *err)
{
    return OPS(s) ? OPS(s)->state_put(s, name, state_json, err) : unsupported(s, err);
}

int store_alert_rule_delete(store_t *s, const char *name, mf_error_t *err)
{
    return OPS(s) ? OPS(s)->del(s, name, err) : unsupported(s, err);
}

int store_alert_rule_list(store_t *s, store_alert_rule_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    return OPS(s) ? OPS(s)->list(s, out, count, err) : unsupported(s, err);
}

void store_alert_rule_list_free(store_alert_rule_t *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++) {
        free(list[i].config_json);
        free(list[i].state_json);
    }
    free(list);
}

int store_alert_note_add(store_t *s, store_alert_note_t *n, mf_error_t *err)
{
    return OPS(s) ? OPS(s)->note_add(s, n, err) : unsupported(s, err);
}

int store_alert_note_claim(store_t *s, const char *node, int64_t now_ms, int64_t stale_ms,
                           int limit, store_alert_note_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    return OPS(s) ? OPS(s)->note_claim(s, node, now_ms, stale_ms, limit, out, count, err)
                  : unsupported(s, err);
}

int store_alert_note_finish(store_t *s, int64_t id, bool delivered, int64_t now_ms,
                            const char *last_error, mf_error_t *err)
{
    return OPS(s) ? OPS(s)->note_finish(s, id, delivered, now_ms, last_error, err)
                  : unsupported(s, err);
}

int store_alert_note_retry(store_t *s, int64_t id, int attempts, int64_t next_ms,
                           const char *last_error, mf_error_t *err)
{
    return OPS(s) ? OPS(s)->note_retry(s, id, attempts, next_ms, last_error, err)
                  : unsupported(s, err);
}

int store_alert_note_recover(store_t *s, const char *node, int64_t done_before_ms, mf_error_t *err)
{
    return OPS(s) ? OPS(s)->note_recover(s, node, done_before_ms, err) : unsupported(s, err);
}

void store_alert_note_list_free(store_alert_note_t *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++) {
        free(list[i].target);
        free(list[i].body);
    }
    free(list);
}

void store__fill_alert_rule(const store__row_t *row, void *item)
{
    store_alert_rule_t *r = item;
    void *c = row->ctx;
    memset(r, 0, sizeof *r);
    row->copy_text(c, 0, r->name, sizeof r->name);
    r->config_json = row->dup_text(c, 1);
    if (!r->config_json)
        r->config_json = xstrdup("{}");
    r->state_json = row->dup_text(c, 2);
    r->created_ms = row->int64(c, 3);
    r->updated_ms = row->int64(c, 4);
}

void store__fill_alert_note(const store__row_t *row, void *item)
{
    store_alert_note_t *n = item;
    void *c = row->ctx;
    memset(n, 0, sizeof *n);
    n->id = row->int64(c, 0);
    n->created_ms = row->int64(c, 1);
    row->copy_text(c, 2, n->tenant, sizeof n->tenant);
    row->copy_text(c, 3, n->kind, sizeof n->kind);
    n->target = row->dup_text(c, 4);
    if (!n->target)
        n->target = xstrdup("");
    n->body = row->dup_text(c, 5);
    if (!n->body)
        n->body = xstrdup("{}");
    n->attempts = (int)row->int64(c, 6);
    n->next_ms = row->int64(c, 7);
}

int store__bind_alert_rule(const store__binder_t *b, const store_alert_rule_t *r)
{
    void *c = b->ctx;
    return b->text(c, 1, r->name) || b->text(c, 2, r->config_json) ||
           b->int64(c, 3, r->created_ms) || b->int64(c, 4, r->updated_ms);
}

int store__bind_alert_note(const store__binder_t *b, const store_alert_note_t *n)
{
    void *c = b->ctx;
    return b->int64(c, 1, n->created_ms) || b->text(c, 2, n->tenant) || b->text(c, 3, n->kind) ||
           b->text(c, 4, n->target) || b->text(c, 5, n->body);
}

int store__no_alert_rule(mf_error_t *err, const char *name)
{
    return mf_error_plain(err, ENOENT, "no alert rule named %s", tenant_local(name));
}
