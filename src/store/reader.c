/* A pool of reader threads (see store/reader.h). */
#include "store/reader.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/pace.h"
#include "core/xalloc.h"

typedef struct reader_job {
    struct reader_job *next;
    store_job_apply_fn read;
    store_job_done_fn done;
    void *arg;
    int r;
    mf_error_t err;
} reader_job_t;

typedef struct reader_thread {
    store_readers_t *pool;
    uv_thread_t thread;
    void *db;
} reader_thread_t;

struct store_readers {
    uv_async_t *wake; /* a thread → the loop: callbacks are due */
    uv_mutex_t lock;
    uv_cond_t cond; /* the threads wait here for jobs */
    /* Under lock: */
    reader_job_t *in_head, *in_tail;   /* submitted, not yet taken */
    reader_job_t *out_head, *out_tail; /* read, callbacks due */
    bool stopping;
    /* Set at the start: */
    reader_thread_t *threads;
    size_t n, started;
    void (*close)(void *db);
};

static void readers__push(reader_job_t **head, reader_job_t **tail, reader_job_t *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void readers__run(reader_job_t *j, void *db)
{
    j->r = j->read(db, j->arg, &j->err);
}

static void readers__thread(void *arg)
{
    reader_thread_t *t = arg;
    pthread_setname_np(pthread_self(), "mayfly-reader");
    pace_background();
    store_readers_t *p = t->pool;
    uv_mutex_lock(&p->lock);
    for (;;) {
        while (!p->in_head && !p->stopping)
            uv_cond_wait(&p->cond, &p->lock);
        reader_job_t *j = p->in_head;
        if (!j)
            break; /* stopping, and nothing left */
        p->in_head = j->next;
        if (!p->in_head)
            p->in_tail = NULL;
        uv_mutex_unlock(&p->lock);
        readers__run(j, t->db);
        uv_mutex_lock(&p->lock);
        readers__push(&p->out_head, &p->out_tail, j);
        /* Sends coalesce: one wake-up of the loop for every read that
         * ends before it runs. */
        uv_async_send(p->wake);
    }
    uv_mutex_unlock(&p->lock);
}

/* On the loop: calls the callbacks of the reads that have ended. */
static void readers__deliver(store_readers_t *p)
{
    uv_mutex_lock(&p->lock);
    reader_job_t *done = p->out_head;
    p->out_head = p->out_tail = NULL;
    uv_mutex_unlock(&p->lock);
    while (done) {
        reader_job_t *j = done;
        done = j->next;
        j->done(j->arg, j->r, &j->err);
        free(j);
    }
}

static void readers__on_wake(uv_async_t *h)
{
    readers__deliver(h->data);
}

static void readers__free_handle(uv_handle_t *h)
{
    free(h);
}

/* Stops the threads started (they run what is left first), calls what is
 * still due and closes the connections. */
static void readers__shut(store_readers_t *p)
{
    uv_mutex_lock(&p->lock);
    p->stopping = true;
    uv_cond_broadcast(&p->cond);
    uv_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->started; i++)
        uv_thread_join(&p->threads[i].thread);
    /* Callbacks may submit more reads: with the threads gone, they run
     * here, on the first connection, until none is left. */
    for (;;) {
        readers__deliver(p);
        uv_mutex_lock(&p->lock);
        reader_job_t *j = p->in_head;
        p->in_head = p->in_tail = NULL;
        uv_mutex_unlock(&p->lock);
        if (!j)
            break;
        while (j) {
            reader_job_t *next = j->next;
            readers__run(j, p->threads[0].db);
            readers__push(&p->out_head, &p->out_tail, j);
            j = next;
        }
    }
    for (size_t i = 0; i < p->n; i++)
        p->close(p->threads[i].db);
    uv_cond_destroy(&p->cond);
    uv_mutex_destroy(&p->lock);
    uv_close((uv_handle_t *)p->wake, readers__free_handle);
    free(p->threads);
    free(p);
}

int store_readers_start(uv_loop_t *loop, void *const *dbs, size_t n, void (*close)(void *db),
                        store_readers_t **out, mf_error_t *err)
{
    store_readers_t *p = xcalloc(1, sizeof *p);
    p->n = n;
    p->close = close;
    p->threads = xcalloc(n, sizeof *p->threads);
    for (size_t i = 0; i < n; i++)
        p->threads[i] = (reader_thread_t){.pool = p, .db = dbs[i]};
    p->wake = xmalloc(sizeof *p->wake);
    uv_async_init(loop, p->wake, readers__on_wake);
    p->wake->data = p;
    /* The pool does not keep a server's loop alive on its own: those
     * waiting for a read (a request) do, and store_readers_stop answers
     * what is left. */
    uv_unref((uv_handle_t *)p->wake);
    uv_mutex_init(&p->lock);
    uv_cond_init(&p->cond);
    for (; p->started < n; p->started++) {
        int r = uv_thread_create(&p->threads[p->started].thread, readers__thread,
                                 &p->threads[p->started]);
        if (r < 0) {
            mf_error_plain(err, -r, "start a reader thread: %s", uv_strerror(r));
            readers__shut(p);
            return r;
        }
    }
    *out = p;
    return 0;
}

void store_readers_submit(store_readers_t *p, store_job_apply_fn read, store_job_done_fn done,
                          void *arg)
{
    reader_job_t *j = xcalloc(1, sizeof *j);
    j->read = read;
    j->done = done;
    j->arg = arg;
    uv_mutex_lock(&p->lock);
    readers__push(&p->in_head, &p->in_tail, j);
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->lock);
}

void store_readers_stop(store_readers_t *p)
{
    if (p)
        readers__shut(p);
}
