/* A writer thread and its group commits (see store/writer.h). */
#include "store/writer.h"

#include <stdlib.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"

typedef struct writer_job {
    struct writer_job *next;
    bool durable;
    bool waited_on;              /* a durable job, or a read: its batch does not linger */
    store_job_apply_fn apply;
    store_job_done_fn done;
    void *arg;
    int r;
    mf_error_t err;
} writer_job_t;

typedef struct writer_commit {
    unsigned jobs;
    bool durable;
    uint64_t ns;
} writer_commit_t;

struct store_writer {
    uv_async_t *wake;            /* the thread → the loop: callbacks are due */
    uv_idle_t *handoff;          /* the loop → the thread, once per loop iteration */
    writer_job_t *local_head, *local_tail; /* submitted this iteration (loop only) */
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;              /* the thread waits here for jobs */
    uv_cond_t done;              /* store_writer_wait waits here for commits */
    /* Under lock: */
    writer_job_t *in_head, *in_tail;     /* submitted, not yet taken */
    writer_job_t *out_head, *out_tail;   /* finished, callbacks due */
    writer_commit_t *commits;            /* finished batches, to report */
    size_t n_commits, cap_commits;
    bool stopping;
    uint64_t submitted, committed; /* jobs, for store_writer_wait */
    /* The thread's own: */
    store_writer_db_t db;
    store_commit_cb on_commit;
    void *ud;
};

/* Runs one batch in one transaction and returns whether any job asked for
 * durability. */
static bool writer__run_batch(store_writer_t *w, writer_job_t *batch, unsigned *n)
{
    bool durable = false;
    *n = 0;
    for (writer_job_t *j = batch; j; j = j->next) {
        durable |= j->durable;
        ++*n;
    }
    mf_error_t err = MF_ERROR_INIT;
    const store_writer_db_t *db = &w->db;
    int r = db->begin(db->db, durable, &err);
    for (writer_job_t *j = batch; j; j = j->next) {
        if (r < 0) {
            j->r = r;
            j->err = err;
            continue;
        }
        if (!j->apply)
            continue;
        j->r = db->savepoint(db->db, &j->err);
        if (j->r == 0)
            j->r = j->apply(db->db, j->arg, &j->err);
        db->release(db->db, j->r == 0);
    }
    if (r == 0 && (r = db->commit(db->db, &err)) < 0) {
        for (writer_job_t *j = batch; j; j = j->next) {
            j->r = r;
            j->err = err;
        }
    }
    return durable;
}

/* Runs a batch and queues its outcome for the loop. */
static void writer__commit(store_writer_t *w, writer_job_t *batch)
{
    uint64_t t0 = clock_mono_ns();
    unsigned n;
    bool durable = writer__run_batch(w, batch, &n);
    writer_commit_t c = { n, durable, clock_mono_ns() - t0 };

    writer_job_t *last = batch;
    while (last->next)
        last = last->next;
    uv_mutex_lock(&w->lock);
    if (w->out_tail)
        w->out_tail->next = batch;
    else
        w->out_head = batch;
    w->out_tail = last;
    if (w->n_commits == w->cap_commits) {
        w->cap_commits = w->cap_commits ? w->cap_commits * 2 : 16;
        w->commits = xrealloc(w->commits, w->cap_commits * sizeof *w->commits);
    }
    w->commits[w->n_commits++] = c;
    w->committed += n;
    uv_cond_broadcast(&w->done);
    uv_mutex_unlock(&w->lock);
}

/* A batch nobody waits on (no durable job or read in it) waits a little
 * for more jobs before it commits: each commit writes every page it
 * touched, and the same few pages (the tails of the tables and their
 * indexes) are touched by nearly every job, so fewer, larger commits write
 * far less. A durable job or a read ends the wait at once: a client is
 * waiting for its fsync or its answer. Under w->lock. */
#define WRITER_LINGER_NS 2000000u
#define WRITER_LINGER_JOBS 512u

static void writer__linger(store_writer_t *w, writer_job_t **batch, writer_job_t **tail)
{
    if (!*batch)
        return;
    unsigned n = 0;
    for (writer_job_t *j = *batch; j; j = j->next) {
        if (j->waited_on)
            return;
        n++;
    }
    uint64_t deadline = clock_mono_ns() + WRITER_LINGER_NS;
    while (n < WRITER_LINGER_JOBS && !w->stopping) {
        uint64_t now = clock_mono_ns();
        if (now >= deadline)
            return;
        if (!w->in_head) {
            uv_cond_timedwait(&w->cond, &w->lock, deadline - now);
            continue;
        }
        bool waited_on = false;
        for (writer_job_t *j = w->in_head; j; j = j->next) {
            waited_on |= j->waited_on;
            n++;
        }
        (*tail)->next = w->in_head;
        *tail = w->in_tail;
        w->in_head = w->in_tail = NULL;
        if (waited_on)
            return;
    }
}

static void writer__thread(void *arg)
{
    store_writer_t *w = arg;
    for (;;) {
        uv_mutex_lock(&w->lock);
        while (!w->in_head && !w->stopping)
            uv_cond_wait(&w->cond, &w->lock);
        writer_job_t *batch = w->in_head, *tail = w->in_tail;
        w->in_head = w->in_tail = NULL;
        writer__linger(w, &batch, &tail);
        uv_mutex_unlock(&w->lock);
        if (!batch)
            return; /* stopping, and nothing left */
        writer__commit(w, batch);
        uv_async_send(w->wake);
    }
}

/* On the loop: reports finished batches and calls their jobs' callbacks. */
static void writer__deliver(store_writer_t *w)
{
    uv_mutex_lock(&w->lock);
    writer_job_t *done = w->out_head;
    w->out_head = w->out_tail = NULL;
    writer_commit_t *commits = w->commits;
    size_t n_commits = w->n_commits;
    w->commits = NULL;
    w->n_commits = w->cap_commits = 0;
    uv_mutex_unlock(&w->lock);

    for (size_t i = 0; i < n_commits && w->on_commit; i++)
        w->on_commit(w->ud, commits[i].jobs, commits[i].durable, commits[i].ns);
    free(commits);
    while (done) {
        writer_job_t *j = done;
        done = j->next;
        if (j->done)
            j->done(j->arg, j->r, &j->err);
        free(j);
    }
}

static void writer__free_handle(uv_handle_t *h)
{
    free(h);
}

static void writer__on_wake(uv_async_t *h)
{
    writer__deliver(h->data);
}

int store_writer_start(uv_loop_t *loop, const store_writer_db_t *db, store_commit_cb on_commit,
                       void *ud, store_writer_t **out, mf_error_t *err)
{
    store_writer_t *w = xcalloc(1, sizeof *w);
    int r;
    w->db = *db;
    w->on_commit = on_commit;
    w->ud = ud;
    w->wake = xmalloc(sizeof *w->wake);
    uv_async_init(loop, w->wake, writer__on_wake);
    w->wake->data = w;
    /* A writer does not keep the loop alive on its own (a server's loop
     * ends once its work is done): store_writer_stop delivers what is
     * left. */
    uv_unref((uv_handle_t *)w->wake);
    w->handoff = xmalloc(sizeof *w->handoff);
    uv_idle_init(loop, w->handoff);
    w->handoff->data = w;
    uv_mutex_init(&w->lock);
    uv_cond_init(&w->cond);
    uv_cond_init(&w->done);
    if ((r = uv_thread_create(&w->thread, writer__thread, w)) < 0) {
        mf_error_plain(err, -r, "start a writer thread: %s", uv_strerror(r));
        uv_close((uv_handle_t *)w->wake, writer__free_handle);
        uv_close((uv_handle_t *)w->handoff, writer__free_handle);
        uv_cond_destroy(&w->cond);
        uv_cond_destroy(&w->done);
        uv_mutex_destroy(&w->lock);
        w->db.close(w->db.db);
        free(w);
        return r;
    }
    *out = w;
    return 0;
}

/* Hands the jobs submitted since the last hand-off to the thread: one lock
 * and one wake-up for all of them, not one per job. */
static void writer__handoff(store_writer_t *w)
{
    if (!w->local_head)
        return;
    uv_mutex_lock(&w->lock);
    if (w->in_tail)
        w->in_tail->next = w->local_head;
    else
        w->in_head = w->local_head;
    w->in_tail = w->local_tail;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
    w->local_head = w->local_tail = NULL;
}

static void writer__on_handoff(uv_idle_t *h)
{
    uv_idle_stop(h);
    writer__handoff(h->data);
}

static void writer__submit(store_writer_t *w, bool durable, bool waited_on,
                           store_job_apply_fn apply, store_job_done_fn done, void *arg)
{
    writer_job_t *j = xcalloc(1, sizeof *j);
    j->durable = durable;
    j->waited_on = waited_on;
    j->apply = apply;
    j->done = done;
    j->arg = arg;
    w->submitted++;
    if (w->stopping) {
        /* A callback during the stop: the stop loop runs it. */
        if (w->in_tail)
            w->in_tail->next = j;
        else
            w->in_head = j;
        w->in_tail = j;
        return;
    }
    if (w->local_tail)
        w->local_tail->next = j;
    else
        w->local_head = j;
    w->local_tail = j;
    /* Jobs submitted while the loop handles this iteration's events go
     * together at the start of the next (an idle handle also keeps the
     * loop from blocking before then). */
    if (!uv_is_active((uv_handle_t *)w->handoff))
        uv_idle_start(w->handoff, writer__on_handoff);
}

void store_writer_submit(store_writer_t *w, bool durable, store_job_apply_fn apply,
                         store_job_done_fn done, void *arg)
{
    writer__submit(w, durable, durable, apply, done, arg);
}

void store_writer_submit_read(store_writer_t *w, store_job_apply_fn apply, store_job_done_fn done,
                              void *arg)
{
    writer__submit(w, false, true, apply, done, arg);
}

typedef struct writer_barrier {
    void (*cb)(void *ud);
    void *ud;
} writer_barrier_t;

static void writer__barrier_done(void *arg, int r, const mf_error_t *err)
{
    writer_barrier_t *b = arg;
    b->cb(b->ud);
    free(b);
}

void store_writer_barrier(store_writer_t *w, void (*cb)(void *ud), void *ud)
{
    writer_barrier_t *b = xmalloc(sizeof *b);
    b->cb = cb;
    b->ud = ud;
    store_writer_submit(w, false, NULL, writer__barrier_done, b);
}

void store_writer_wait(store_writer_t *w)
{
    writer__handoff(w);
    uv_idle_stop(w->handoff);
    uv_mutex_lock(&w->lock);
    while (w->committed < w->submitted)
        uv_cond_wait(&w->done, &w->lock);
    uv_mutex_unlock(&w->lock);
}

void store_writer_stop(store_writer_t *w)
{
    if (!w)
        return;
    writer__handoff(w);
    uv_idle_stop(w->handoff);
    uv_mutex_lock(&w->lock);
    w->stopping = true;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
    uv_thread_join(&w->thread);
    /* The thread ran everything before it returned; callbacks may submit
     * more (a finished job that queues a follow-up), so run until quiet. */
    for (;;) {
        writer__deliver(w);
        if (!w->in_head)
            break;
        writer_job_t *batch = w->in_head;
        w->in_head = w->in_tail = NULL;
        writer__commit(w, batch);
    }
    w->db.close(w->db.db);
    uv_cond_destroy(&w->cond);
    uv_cond_destroy(&w->done);
    uv_mutex_destroy(&w->lock);
    uv_close((uv_handle_t *)w->wake, writer__free_handle);
    uv_close((uv_handle_t *)w->handoff, writer__free_handle);
    free(w);
}
