/* The CPU kernel's thread pool: persistent pthreads that run one function on
 * every thread and then wait for the next. The caller of a run is thread 0, so
 * a pool of n threads starts n - 1 workers. Workers start on the first run
 * (not at load time), a size change restarts them, and a forked child starts
 * its own: threads do not survive fork, so the child forgets its parent's. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "cpu.h"

#define POOL_MAX_THREADS 1024

static struct {
    pthread_mutex_t run_lock; /* one run (or resize) at a time */
    pthread_mutex_t lock;     /* the fields below */
    pthread_cond_t wake, done;
    int wanted;               /* threads in use; 0 until chosen */
    int started;              /* workers running */
    pthread_t *workers;
    unsigned long generation; /* bumped for each run */
    unsigned long born;       /* the generation when the workers started */
    int pending;              /* workers still in the current run */
    int quit;
    void (*fn)(void *, int);
    void *arg;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, NULL, 0, 0, 0, 0, NULL, NULL};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_after_fork(void) {
    pthread_mutex_init(&pool.run_lock, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.started = 0;
    pool.workers = NULL; /* the parent's threads are not ours to join */
    pool.pending = 0;
    pool.quit = 0;
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, forget_after_fork); }

static void *worker_main(void *p) {
    int index = (int)(intptr_t)p;
    pthread_mutex_lock(&pool.lock);
    unsigned long seen = pool.born;
    for (;;) {
        while (!pool.quit && pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.quit)
            break;
        seen = pool.generation;
        void (*fn)(void *, int) = pool.fn;
        void *arg = pool.arg;
        pthread_mutex_unlock(&pool.lock);
        fn(arg, index);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

static void stop_workers(void) {
    pthread_mutex_lock(&pool.lock);
    pool.quit = 1;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.started; i++)
        pthread_join(pool.workers[i], NULL);
    free(pool.workers);
    pool.workers = NULL;
    pool.started = 0;
    pool.quit = 0;
}

/* Starts wanted - 1 workers; with fewer (no memory, no threads) the pool runs
 * on those it got, the caller included. Called with run_lock held. */
static void start_workers(void) {
    free(pool.workers);
    pool.workers = calloc((size_t)pool.wanted, sizeof *pool.workers);
    if (pool.workers == NULL)
        return;
    pthread_mutex_lock(&pool.lock);
    pool.born = pool.generation;
    for (int i = 1; i < pool.wanted; i++) {
        if (pthread_create(&pool.workers[pool.started], NULL, worker_main, (void *)(intptr_t)i) != 0)
            break;
        pthread_setname_np(pool.workers[pool.started], "chill-cpu");
        pool.started++;
    }
    pthread_mutex_unlock(&pool.lock);
}

static int cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)n;
}

int chill_set_num_threads(int n) {
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&pool.run_lock);
    int want = n <= 0 ? cores() : n > POOL_MAX_THREADS ? POOL_MAX_THREADS : n;
    if (want != pool.wanted) {
        stop_workers();
        pool.wanted = want;
    }
    pthread_mutex_unlock(&pool.run_lock);
    return want;
}

int chill_cpu_pool_run(void (*fn)(void *arg, int thread), void *arg) {
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&pool.run_lock);
    if (pool.wanted == 0)
        pool.wanted = cores();
    if (pool.started == 0 && pool.wanted > 1)
        start_workers();
    int n = pool.started + 1;
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.arg = arg;
    pool.pending = pool.started;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    fn(arg, 0);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.run_lock);
    return n;
}
