/* How store/budgets.h's calls reach a backend (store__backend_t's
 * budgets), and the statements both word alike. Not for other modules. */
#ifndef MAYFLY_STORE_BUDGETS_BACKEND_H
#define MAYFLY_STORE_BUDGETS_BACKEND_H

#include "store/budgets.h"
#include "store/rows.h"

typedef struct store__budget_ops {
    int (*put)(store_t *s, const store_budget_t *b, bool *created, mf_error_t *err);
    int (*del)(store_t *s, const char *name, mf_error_t *err);
    int (*list)(store_t *s, store_budget_t **out, size_t *count, mf_error_t *err);
    int (*crossing_add)(store_t *s, const store_budget_crossing_t *c, bool *added,
                        mf_error_t *err);
    int (*crossing_list)(store_t *s, const char *budget, int64_t period_ms,
                         store_budget_crossing_t **out, size_t *count, mf_error_t *err);
} store__budget_ops_t;

extern const store__budget_ops_t store__sqlite_budget_ops;
extern const store__budget_ops_t store__pg_budget_ops;

/* The tables (each backend's migration words its types): TEXT and INT
 * and REAL the backend's names for them. */
#define STORE_BUDGETS_TABLES(TEXT, INT, REAL)                                                      \
    "CREATE TABLE budgets ("                                                                       \
    "  name        " TEXT " PRIMARY KEY NOT NULL,"                                                 \
    "  config_json " TEXT " NOT NULL,"                                                             \
    "  created_ms  " INT " NOT NULL,"                                                              \
    "  updated_ms  " INT " NOT NULL"                                                               \
    ")"                                                                                            \
    ";CREATE TABLE budget_crossings ("                                                             \
    "  budget    " TEXT " NOT NULL,"                                                               \
    "  period_ms " INT " NOT NULL,"                                                                \
    "  threshold " REAL " NOT NULL,"                                                               \
    "  amount    " REAL " NOT NULL,"                                                               \
    "  spend     " REAL " NOT NULL,"                                                               \
    "  time_ms   " INT " NOT NULL,"                                                                \
    "  PRIMARY KEY (budget, period_ms, threshold, amount)"                                         \
    ")"

#define STORE_BUDGET_COLUMNS "name, config_json, created_ms, updated_ms"
#define STORE_BUDGET_COUNT(P) "SELECT count(*) FROM budgets WHERE name = " P(1)
#define STORE_BUDGET_PUT(P)                                                                        \
    "INSERT INTO budgets (" STORE_BUDGET_COLUMNS ") VALUES (" P(1) ", " P(2) ", " P(3) ", " P(4)  \
    ") ON CONFLICT (name) DO UPDATE SET config_json = excluded.config_json,"                      \
    " updated_ms = excluded.updated_ms"
#define STORE_BUDGET_DELETE_CROSSINGS(P) "DELETE FROM budget_crossings WHERE budget = " P(1)
#define STORE_BUDGET_DELETE(P) "DELETE FROM budgets WHERE name = " P(1)
#define STORE_BUDGET_LIST "SELECT " STORE_BUDGET_COLUMNS " FROM budgets ORDER BY name"
#define STORE_CROSSING_COLUMNS "budget, period_ms, threshold, amount, spend, time_ms"
/* Only while the budget is there: a crossing on its way when the budget
 * was deleted is not left behind. */
#define STORE_CROSSING_ADD(P)                                                                      \
    "INSERT INTO budget_crossings (" STORE_CROSSING_COLUMNS ") SELECT " P(1) ", " P(2) ", " P(3)  \
    ", " P(4) ", " P(5) ", " P(6) " WHERE EXISTS (SELECT 1 FROM budgets WHERE name = " P(1)       \
    ") ON CONFLICT DO NOTHING"
#define STORE_CROSSING_LIST(P)                                                                     \
    "SELECT " STORE_CROSSING_COLUMNS " FROM budget_crossings WHERE budget = " P(1)                \
    " AND period_ms = " P(2) " ORDER BY time_ms, threshold"

void store__fill_budget(const store__row_t *row, void *item);
void store__fill_crossing(const store__row_t *row, void *item);
/* STORE_BUDGET_PUT's parameters, STORE_CROSSING_ADD's. */
int store__bind_budget(const store__binder_t *b, const store_budget_t *bg);
int store__bind_crossing(const store__binder_t *b, const store_budget_crossing_t *c);
int store__no_budget(mf_error_t *err, const char *name);

#endif
