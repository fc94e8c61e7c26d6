/* store/budgets.h's calls, handed to the backend (budgets_backend.h), and
 * what both backends share: reading and binding rows. */
#include "store/budgets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/backend.h"
#include "store/budgets_backend.h"

static int unsupported(store_t *s, mf_error_t *err)
{
    return mf_error_plain(err, ENOTSUP, "store: %s keeps no budgets", store_backend_name(s));
}

int store_budget_put(store_t *s, const store_budget_t *b, bool *created, mf_error_t *err)
{
    return s->be->budgets ? s->be->budgets->put(s, b, created, err) : unsupported(s, err);
}

int store_budget_delete(store_t *s, const char *name, mf_error_t *err)
{
    return s->be->budgets ? s->be->budgets->del(s, name, err) : unsupported(s, err);
}

int store_budget_list(store_t *s, store_budget_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    return s->be->budgets ? s->be->budgets->list(s, out, count, err) : unsupported(s, err);
}

void store_budget_list_free(store_budget_t *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        free(list[i].config_json);
    free(list);
}

int store_budget_crossing_add(store_t *s, const store_budget_crossing_t *c, bool *added,
                              mf_error_t *err)
{
    *added = false;
    return s->be->budgets ? s->be->budgets->crossing_add(s, c, added, err) : unsupported(s, err);
}

int store_budget_crossing_list(store_t *s, const char *budget, int64_t period_ms,
                               store_budget_crossing_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    return s->be->budgets ? s->be->budgets->crossing_list(s, budget, period_ms, out, count, err)
                          : unsupported(s, err);
}

void store__fill_budget(const store__row_t *row, void *item)
{
    store_budget_t *b = item;
    void *c = row->ctx;
    memset(b, 0, sizeof *b);
    row->copy_text(c, 0, b->name, sizeof b->name);
    b->config_json = row->dup_text(c, 1);
    if (!b->config_json)
        b->config_json = xstrdup("{}");
    b->created_ms = row->int64(c, 2);
    b->updated_ms = row->int64(c, 3);
}

void store__fill_crossing(const store__row_t *row, void *item)
{
    store_budget_crossing_t *x = item;
    void *c = row->ctx;
    memset(x, 0, sizeof *x);
    row->copy_text(c, 0, x->budget, sizeof x->budget);
    x->period_ms = row->int64(c, 1);
    x->threshold = row->real(c, 2);
    x->amount = row->real(c, 3);
    x->spend = row->real(c, 4);
    x->time_ms = row->int64(c, 5);
}

int store__bind_budget(const store__binder_t *b, const store_budget_t *bg)
{
    void *c = b->ctx;
    return b->text(c, 1, bg->name) || b->text(c, 2, bg->config_json) ||
           b->int64(c, 3, bg->created_ms) || b->int64(c, 4, bg->updated_ms);
}

int store__bind_crossing(const store__binder_t *b, const store_budget_crossing_t *x)
{
    void *c = b->ctx;
    return b->text(c, 1, x->budget) || b->int64(c, 2, x->period_ms) ||
           b->real(c, 3, x->threshold) || b->real(c, 4, x->amount) || b->real(c, 5, x->spend) ||
           b->int64(c, 6, x->time_ms);
}

int store__no_budget(mf_error_t *err, const char *name)
{
    return mf_error_plain(err, ENOENT, "no budget named %s", tenant_local(name));
}
