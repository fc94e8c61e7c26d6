/* A writer thread and its group commits (see store/writer.h). */
#include "store/writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/pace.h"
#include "core/xalloc.h"
#include "store/health.h"

typedef struct writer_job {
    struct writer_job *next;
    bool durable;
    /* A durable job, or a read: its batch does not linger, and it fails at
     * once while the database is away. */
    bool waited_on;
    size_t bytes;                /* what it counts for while held */
    store_job_apply_fn apply;
    store_job_done_fn done;
    void *arg;
    int r;
    mf_error_t err;
} writer_job_t;

/* Jobs in order, and what they hold. */
typedef struct writer_list {
    writer_job_t *head, *tail;
    size_t n, bytes;
} writer_list_t;

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
    bool poked;                  /* the store came back: try to reconnect now */
    uint64_t submitted, committed; /* jobs, for store_writer_wait */
    uint64_t held;               /* of those, held for a database that is away */
    /* The thread's own (the stop's, once it has joined the thread): */
    store_writer_db_t db;
    store_commit_cb on_commit;
    void *ud;
    /* While the database is away (see writer__go_down): */
    bool down;
    bool gave_up;                /* stopped while it was away: every job fails */
    writer_list_t doubt;         /* owed jobs of the batch whose COMMIT was cut off */
    writer_list_t owed;          /* owed jobs to run once it is back, in order */
    uint64_t retry_ms, next_try_ns;
    uint64_t refused;            /* owed jobs refused past the bound, this outage */
    store__health_watch_t watch;
};

static void list_add(writer_list_t *l, writer_job_t *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
    l->bytes += j->bytes;
}

/* Puts front's jobs before l's. */
static void list_prepend(writer_list_t *l, writer_list_t *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    l->head = front->head;
    if (!l->tail)
        l->tail = front->tail;
    l->n += front->n;
    l->bytes += front->bytes;
    *front = (writer_list_t){ 0 };
}

/* Takes at most max jobs off l's front. */
static writer_job_t *list_take(writer_list_t *l, size_t max)
{
    writer_job_t *head = l->head, *last = NULL;
    size_t n = 0;
    for (writer_job_t *j = head; j && n < max; j = j->next) {
        last = j;
        n++;
        l->bytes -= j->bytes;
    }
    if (!last)
        return NULL;
    l->head = last->next;
    if (!l->head)
        l->tail = NULL;
    l->n -= n;
    last->next = NULL;
    return head;
}

/* A read: waited on, and not a durable write. Its apply fills its answer
 * as it goes, so it runs once. */
static bool writer__is_read(const writer_job_t *j)
{
    return j->apply && j->waited_on && !j->durable;
}

/* Runs one batch in one transaction: each job's own outcome in its r,
 * and the transaction's (begin or commit) returned. */
static int writer__run_batch(store_writer_t *w, writer_job_t *batch, unsigned *n, bool *durable,
                             mf_error_t *err)
{
    *durable = false;
    *n = 0;
    for (writer_job_t *j = batch; j; j = j->next) {
        *durable |= j->durable;
        ++*n;
        j->r = 0;
        j->err = (mf_error_t)MF_ERROR_INIT;
    }
    const store_writer_db_t *db = &w->db;
    int r;
    /* A read's apply fills its answer as it goes: it runs once. */
    bool reads = false;
    for (writer_job_t *j = batch; j; j = j->next)
        reads |= writer__is_read(j);
    if (db->link_ops && db->link_ops->rollback && !reads) {
        /* Optimistic: no savepoints, unless a job fails (writer.h). */
        if ((r = db->begin(db->db, *durable, err)) < 0)
            return r;
        const store_writer_link_t *lo = db->link_ops;
        if (lo->defer)
            lo->defer(db->link, true, err);
        writer_job_t *failed = NULL;
        for (writer_job_t *j = batch; j && !failed; j = j->next)
            if (j->apply && (j->r = j->apply(db->db, j->arg, &j->err)) < 0)
                failed = j;
        /* A deferred write that failed is found again below, with a
         * savepoint per job and nothing deferred. */
        mf_error_t deferred = MF_ERROR_INIT;
        if (lo->defer && lo->defer(db->link, false, &deferred) < 0 && !failed)
            failed = batch;
        if (!failed)
            return db->commit(db->db, err);
        db->link_ops->rollback(db->link);
        for (writer_job_t *j = batch; j; j = j->next) {
            j->r = 0;
            j->err = (mf_error_t)MF_ERROR_INIT;
        }
    }
    if ((r = db->begin(db->db, *durable, err)) < 0)
        return r;
    for (writer_job_t *j = batch; j; j = j->next) {
        if (!j->apply)
            continue;
        j->r = db->savepoint(db->db, &j->err);
        if (j->r == 0)
            j->r = j->apply(db->db, j->arg, &j->err);
        db->release(db->db, j->r == 0);
    }
    return db->commit(db->db, err);
}

static void writer__fail(writer_job_t *j, int r, const mf_error_t *err)
{
    j->r = r;
    j->err = *err;
}

/* Hands jobs (a list, may be NULL) to the loop, with the commit that
 * finished them (or none), and takes released of them off the held. */
static void writer__finish(store_writer_t *w, writer_job_t *jobs, const writer_commit_t *c,
                           size_t released)
{
    size_t n = 0;
    writer_job_t *last = NULL;
    for (writer_job_t *j = jobs; j; j = j->next) {
        last = j;
        n++;
    }
    uv_mutex_lock(&w->lock);
    if (jobs) {
        if (w->out_tail)
            w->out_tail->next = jobs;
        else
            w->out_head = jobs;
        w->out_tail = last;
    }
    if (c) {
        if (w->n_commits == w->cap_commits) {
            w->cap_commits = w->cap_commits ? w->cap_commits * 2 : 16;
            w->commits = xrealloc(w->commits, w->cap_commits * sizeof *w->commits);
        }
        w->commits[w->n_commits++] = *c;
    }
    w->committed += n;
    w->held -= released;
    uv_cond_broadcast(&w->done);
    uv_mutex_unlock(&w->lock);
}

/* Counts jobs in (delta > 0) or out of the held, for store_writer_wait. */
static void writer__held(store_writer_t *w, int64_t delta)
{
    uv_mutex_lock(&w->lock);
    w->held += (uint64_t)delta;
    uv_mutex_unlock(&w->lock);
}

/* The store's health calls this when the store comes back. */
static void writer__poke(void *ud)
{
    store_writer_t *w = ud;
    uv_mutex_lock(&w->lock);
    w->poked = true;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
}

/* What a job someone waits for is told when the database is away: tried
 * (and lost) or not, and whether its commit's outcome is unknown. */
static void writer__unreachable(int code, bool in_doubt, const char *why, mf_error_t *err)
{
    if (in_doubt) {
        mf_error_plain(err, code,
                       "the store (PostgreSQL) cannot be reached: the connection was lost while "
                       "this was being committed, so it may or may not have been done; retry "
                       "later");
        return;
    }
    if (store_check_up(err) < 0) {
        err->code = code;
        return;
    }
    mf_error_plain(err, code, "the store (PostgreSQL) cannot be reached: %s; retry later",
                   why && *why ? why : "the connection was lost again as soon as it was made");
}

/* Sorts a job that arrives while the database is away: someone waits for
 * it, so it fails at once; or the server owes it, and it is held (within
 * the bound); a barrier with nothing held before it is passed at once.
 * Jobs answered at once go onto *now. */
static void writer__sort(store_writer_t *w, writer_job_t *j, writer_list_t *now)
{
    mf_error_t e = MF_ERROR_INIT;
    if (w->gave_up) {
        mf_error_plain(&e, ENOTCONN,
                       "the store (PostgreSQL) cannot be reached, and the server is stopping: "
                       "this was not written");
        writer__fail(j, -ENOTCONN, &e);
        list_add(now, j);
    } else if (j->waited_on) {
        writer__unreachable(ENOTCONN, false, NULL, &e);
        writer__fail(j, -ENOTCONN, &e);
        list_add(now, j);
    } else if (!j->apply && !w->owed.head && !w->doubt.head) {
        j->r = 0;
        list_add(now, j); /* a barrier with nothing before it to wait for */
    } else if (w->owed.n + w->doubt.n >= WRITER_HELD_MAX_JOBS ||
               w->owed.bytes + w->doubt.bytes + j->bytes > WRITER_HELD_MAX_BYTES) {
        if (w->refused++ == 0)
            log_error("store",
                      "holding %zu writes (%zu MiB) until PostgreSQL is back, as many as a "
                      "writer holds: newer ones are dropped meanwhile",
                      w->owed.n + w->doubt.n, (w->owed.bytes + w->doubt.bytes) >> 20);
        mf_error_plain(&e, ENOBUFS,
                       "dropped: the store (PostgreSQL) has been away so long that the writes "
                       "held for it reached their bound");
        writer__fail(j, -ENOBUFS, &e);
        list_add(now, j);
    } else {
        list_add(&w->owed, j);
        writer__held(w, 1);
    }
}

/* The database is away: batch's waited-on jobs fail, its owed ones are
 * held before those held already (they are older), those of a batch in
 * doubt apart, and the thread retries its connection with backoff. */
static void writer__go_down(store_writer_t *w, writer_job_t *batch, bool in_doubt,
                            const char *why)
{
    writer_list_t failed = { 0 }, owed = { 0 };
    size_t held = 0;
    for (writer_job_t *j = batch, *next; j; j = next) {
        next = j->next;
        if (j->waited_on) {
            mf_error_t e = MF_ERROR_INIT;
            writer__unreachable(ECONNRESET, in_doubt, why, &e);
            writer__fail(j, -ECONNRESET, &e);
            list_add(&failed, j);
        } else if (in_doubt) {
            list_add(&w->doubt, j); /* keeps its own outcome, for if it was applied */
            held++;
        } else {
            j->r = 0;
            list_add(&owed, j);
            held++;
        }
    }
    list_prepend(&w->owed, &owed);
    writer__held(w, (int64_t)held);
    if (!w->down) {
        w->down = true;
        w->retry_ms = STORE_RETRY_FIRST_MS;
        w->refused = 0;
        w->watch = (store__health_watch_t){ .wake = writer__poke, .ud = w };
        store__health_watch(&w->watch);
    }
    w->next_try_ns = clock_mono_ns() + (uint64_t)w->retry_ms * 1000000u;
    writer__finish(w, failed.head, NULL, 0);
}

/* Asks what became of the transaction in doubt, waiting a little while
 * its old session ends (-EAGAIN after that). */
static int writer__settle(store_writer_t *w, mf_error_t *err)
{
    const store_writer_link_t *link = w->db.link_ops;
    for (int i = 0;; i++) {
        int c = link->committed(w->db.link, err);
        if (c != -EAGAIN || i == 100)
            return c;
        uv_sleep(20);
    }
}

/* A read's apply fills its answer as it goes, so it runs once: when its
 * batch is to run again on a new connection, the reads leave it and fail
 * as they would with the store away (their callers answer 503, and may
 * ask again). What is left of batch is returned. */
static writer_job_t *writer__fail_reads(store_writer_t *w, writer_job_t *batch)
{
    writer_list_t keep = { 0 }, reads = { 0 };
    for (writer_job_t *j = batch, *next; j; j = next) {
        next = j->next;
        if (writer__is_read(j)) {
            mf_error_t e = MF_ERROR_INIT;
            writer__unreachable(ECONNRESET, false, "the connection was lost during the read", &e);
            writer__fail(j, -ECONNRESET, &e);
            list_add(&reads, j);
        } else {
            list_add(&keep, j);
        }
    }
    if (reads.head)
        writer__finish(w, reads.head, NULL, 0);
    return keep.head;
}

/* Runs batch until it is done with: committed (or failed on its own), or,
 * its connection lost and none to be had at once, handed to go_down. */
static void writer__run(store_writer_t *w, writer_job_t *batch)
{
    const store_writer_link_t *link = w->db.link_ops;
    for (int tries = 0;; tries++) {
        bool in_doubt = false;
        /* While the store is known to be away, a connection made before
         * is not worth a statement (it could wait long on a network that
         * lost its packets): straight to reconnecting. */
        if (!link || !store_down_since_ms()) {
            uint64_t t0 = clock_mono_ns();
            unsigned n;
            bool durable;
            mf_error_t err = MF_ERROR_INIT;
            int r = writer__run_batch(w, batch, &n, &durable, &err);
            if (!link || !link->lost(w->db.link, &in_doubt)) {
                if (r < 0)
                    for (writer_job_t *j = batch; j; j = j->next)
                        writer__fail(j, r, &err);
                writer_commit_t c = { n, durable, clock_mono_ns() - t0 };
                writer__finish(w, batch, &c, 0);
                return;
            }
        }
        mf_error_t why = MF_ERROR_INIT;
        int r = link->reconnect(w->db.link, &why);
        if (r == 0 && in_doubt) {
            int c = writer__settle(w, &why);
            if (c == 1) {
                /* It was applied: each job's outcome is its own. */
                unsigned n = 0;
                for (writer_job_t *j = batch; j; j = j->next)
                    n++;
                writer__finish(w, batch, &(writer_commit_t){ n, false, 0 }, 0);
                return;
            }
            if (c == -EAGAIN) {
                writer__go_down(w, batch, true, NULL);
                return;
            }
            if (c < 0)
                log_warn("store", "a batch whose commit was cut off is run again, as PostgreSQL "
                                  "cannot say whether it was applied: %s", why.msg);
            in_doubt = false;
        }
        if (r == 0 && tries == 0) {
            if (!(batch = writer__fail_reads(w, batch)))
                return;
            continue;
        }
        writer__go_down(w, batch, in_doubt, r < 0 ? why.msg : NULL);
        return;
    }
}

/* Held jobs run in batches of at most this many once the database is
 * back, each a transaction of its own. */
#define WRITER_BACK_BATCH 512u

/* While the database is away: sorts the new jobs of batch, and when it is
 * time (the backoff ran out, the store came back, a stop), tries to
 * reconnect and runs what is held. Stopping, a failed try gives up: what
 * is held fails. */
static void writer__while_down(store_writer_t *w, writer_job_t *batch, bool poked, bool stopping)
{
    /* A client waits on one of the new jobs while another connection has
     * found the store back: try now rather than fail it. */
    for (writer_job_t *j = batch; j && !poked; j = j->next)
        poked = j->waited_on && !store_down_since_ms();
    if (!w->gave_up && (poked || stopping || clock_mono_ns() >= w->next_try_ns)) {
        mf_error_t why = MF_ERROR_INIT;
        const store_writer_link_t *link = w->db.link_ops;
        int r = link->reconnect(w->db.link, &why);
        if (r == 0 && w->doubt.head) {
            int c = writer__settle(w, &why);
            if (c == 1) {
                size_t n = w->doubt.n;
                writer_job_t *jobs = w->doubt.head;
                w->doubt = (writer_list_t){ 0 };
                writer__finish(w, jobs, &(writer_commit_t){ (unsigned)n, false, 0 }, n);
            } else if (c != -EAGAIN) {
                if (c < 0)
                    log_warn("store", "a batch whose commit was cut off is run again, as "
                                      "PostgreSQL cannot say whether it was applied: %s",
                             why.msg);
                for (writer_job_t *j = w->doubt.head; j; j = j->next)
                    j->r = 0;
                list_prepend(&w->owed, &w->doubt);
            } else {
                r = -EAGAIN; /* its old session still ends: soon */
                w->retry_ms = STORE_RETRY_FIRST_MS;
            }
        }
        if (r == 0) {
            w->down = false;
            store__health_unwatch(&w->watch);
            if (w->refused)
                log_warn("store", "%llu writes were dropped while PostgreSQL was away",
                         (unsigned long long)w->refused);
            while (w->owed.head && !w->down) {
                size_t n = w->owed.n;
                writer_job_t *chunk = list_take(&w->owed, WRITER_BACK_BATCH);
                writer__held(w, -(int64_t)(n - w->owed.n));
                writer__run(w, chunk);
            }
            if (!w->down) {
                if (batch)
                    writer__run(w, batch);
                return;
            }
        } else if (stopping) {
            size_t n = w->doubt.n + w->owed.n;
            if (n)
                log_error("store", "stopping while PostgreSQL is away: %zu writes it was owed "
                                   "are dropped (the queue's events they were about run again "
                                   "after a restart)",
                          n);
            w->gave_up = true;
            list_prepend(&w->owed, &w->doubt);
            mf_error_t e = MF_ERROR_INIT;
            mf_error_plain(&e, ENOTCONN,
                           "the store (PostgreSQL) cannot be reached, and the server is "
                           "stopping: this was not written");
            for (writer_job_t *j = w->owed.head; j; j = j->next)
                writer__fail(j, -ENOTCONN, &e);
            writer_job_t *jobs = w->owed.head;
            w->owed = (writer_list_t){ 0 };
            writer__finish(w, jobs, NULL, n);
            store__health_unwatch(&w->watch);
        } else if (r != -EAGAIN) {
            w->retry_ms = w->retry_ms * 2 > STORE_RETRY_LAST_MS ? STORE_RETRY_LAST_MS
                                                                 : w->retry_ms * 2;
        }
        w->next_try_ns = clock_mono_ns() + (uint64_t)w->retry_ms * 1000000u;
    }
    writer_list_t now = { 0 };
    for (writer_job_t *j = batch, *next; j; j = next) {
        next = j->next;
        writer__sort(w, j, &now);
    }
    writer__finish(w, now.head, NULL, 0);
}

/* Runs a batch that the thread (or the stop) took. */
static void writer__commit(store_writer_t *w, writer_job_t *batch, bool poked, bool stopping)
{
    if (w->down)
        writer__while_down(w, batch, poked, stopping);
    else if (batch)
        writer__run(w, batch);
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
    pthread_setname_np(pthread_self(), "mayfly-writer");
    pace_background();
    for (;;) {
        uv_mutex_lock(&w->lock);
        for (;;) {
            if (w->in_head || w->stopping || w->poked)
                break;
            if (!w->down || w->gave_up) {
                uv_cond_wait(&w->cond, &w->lock);
                continue;
            }
            /* Away: wake for the next try, or for a job to sort. */
            uint64_t now = clock_mono_ns();
            if (now >= w->next_try_ns)
                break;
            uv_cond_timedwait(&w->cond, &w->lock, w->next_try_ns - now);
        }
        writer_job_t *batch = w->in_head, *tail = w->in_tail;
        w->in_head = w->in_tail = NULL;
        bool poked = w->poked, stopping = w->stopping;
        w->poked = false;
        if (!w->down)
            writer__linger(w, &batch, &tail);
        uv_mutex_unlock(&w->lock);
        if (!batch && stopping && (!w->down || w->gave_up))
            return; /* stopping, and nothing left */
        writer__commit(w, batch, poked, stopping);
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

static void writer__submit(store_writer_t *w, bool durable, bool waited_on, size_t bytes,
                           store_job_apply_fn apply, store_job_done_fn done, void *arg)
{
    writer_job_t *j = xcalloc(1, sizeof *j);
    j->durable = durable;
    j->waited_on = waited_on;
    j->bytes = bytes + sizeof *j;
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
    writer__submit(w, durable, durable, apply ? WRITER_JOB_BYTES : 0, apply, done, arg);
}

void store_writer_submit_or_run(store_writer_t *w, void *db, bool durable,
                                store_job_apply_fn apply, store_job_done_fn done, void *arg)
{
    if (w) {
        store_writer_submit(w, durable, apply, done, arg);
        return;
    }
    mf_error_t err = MF_ERROR_INIT;
    int r = apply(db, arg, &err);
    done(arg, r, &err);
}

void store_writer_submit_sized(store_writer_t *w, bool durable, size_t bytes,
                               store_job_apply_fn apply, store_job_done_fn done, void *arg)
{
    writer__submit(w, durable, durable, bytes, apply, done, arg);
}

void store_writer_submit_read(store_writer_t *w, store_job_apply_fn apply, store_job_done_fn done,
                              void *arg)
{
    writer__submit(w, false, true, WRITER_JOB_BYTES, apply, done, arg);
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
    while (w->committed + w->held < w->submitted)
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
    /* The thread ran everything before it returned (or gave up on a
     * database that stayed away); callbacks may submit more (a finished
     * job that queues a follow-up), so run until quiet. */
    for (;;) {
        writer__deliver(w);
        if (!w->in_head)
            break;
        writer_job_t *batch = w->in_head;
        w->in_head = w->in_tail = NULL;
        writer__commit(w, batch, false, true);
        while (w->down && !w->gave_up)
            writer__commit(w, NULL, false, true);
    }
    store__health_unwatch(&w->watch);
    w->db.close(w->db.db);
    uv_cond_destroy(&w->cond);
    uv_cond_destroy(&w->done);
    uv_mutex_destroy(&w->lock);
    uv_close((uv_handle_t *)w->wake, writer__free_handle);
    uv_close((uv_handle_t *)w->handoff, writer__free_handle);
    free(w);
}
