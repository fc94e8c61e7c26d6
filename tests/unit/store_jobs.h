/* The store's writer jobs for the store tests (test_store_shared.c,
 * test_store_pg.c): records, log lines, purges and prunes written
 * through a writer thread, as the server writes them. Included after
 * store_backends.h. */
#ifndef MAYFLY_TESTS_STORE_JOBS_H
#define MAYFLY_TESTS_STORE_JOBS_H

#include "store_backends.h"

/* ---- writing through a writer thread, as the server does ---------------- */

typedef struct job {
    const store_record_t *recs;
    size_t n_recs;
    const store_log_t *lines;
    size_t n_lines;
    const char *purge;           /* a function to purge, or NULL */
    int64_t purged_records, purged_lines;
    bool prune;                  /* store_prune_write with these, into pruned */
    int64_t prune_before_ms, prune_max_bytes;
    int prune_batch;
    store_prune_t pruned;
    int fail_with;               /* the job fails after writing, when set */
    int r;                       /* what its done callback saw */
    char msg[512];
} job_t;

static inline int job_apply(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    int r = 0;
    if (j->n_recs)
        r = store_records_write(db, j->recs, j->n_recs, err);
    if (r == 0 && j->n_lines)
        r = store_logs_write(db, j->lines, j->n_lines, err);
    if (r == 0 && j->purge)
        r = store_function_purge_write(db, j->purge, &j->purged_records, &j->purged_lines, err);
    if (r == 0 && j->prune)
        r = store_prune_write(db, j->prune_before_ms, j->prune_max_bytes, j->prune_batch,
                              &j->pruned, err);
    if (r == 0 && j->fail_with)
        r = mf_error_plain(err, j->fail_with, "this job fails");
    return r;
}

static inline void job_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    j->r = r;
    snprintf(j->msg, sizeof j->msg, "%s", r < 0 ? err->msg : "");
}

static inline void barrier_reached(void *ud)
{
    ++*(int *)ud;
}

static inline void on_guard(uv_timer_t *t)
{
    fail_msg("the writer's barrier was not reached within 60 s");
}

/* Submits the jobs to a writer on s's database (one batch, in order) and
 * runs a loop until they are done. */
static inline void run_jobs(store_t *s, job_t **jobs, size_t n)
{
    uv_loop_t loop;
    store_writer_t *w = start_writer(s, &loop);
    int reached = 0;
    /* A writer does not keep a loop alive by itself: a guard timer does. */
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, 60000, 0);
    for (size_t i = 0; i < n; i++)
        store_writer_submit(w, false, job_apply, job_done, jobs[i]);
    store_writer_barrier(w, barrier_reached, &reached);
    while (!reached)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    store_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static inline void write_records(store_t *s, const store_record_t *recs, size_t n)
{
    job_t j = { .recs = recs, .n_recs = n };
    job_t *jobs[] = { &j };
    run_jobs(s, jobs, 1);
    if (j.r < 0)
        fail_msg("writing records: %s", j.msg);
}

#endif
