/*
 * fm_wait and its cancel token, from C with pthreads: a wait with each
 * strategy wakes on a publish from another thread, times out, and ends
 * with FM_E_CANCELLED promptly when another thread cancels its token (a
 * sleeping one once it is asleep in the kernel). Prints "ok" and exits 0
 * when every check holds; otherwise names the failed check and exits 1.
 * Usage: wait REGION-NAME
 */
#define _GNU_SOURCE
#include <filemap.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,     \
                    __LINE__, #cond, fm_last_error());                                  \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct waiter {
    fm_map *map;
    uint32_t strategy;
    uint64_t seen;
    int64_t timeout_ns;
    fm_cancel_token *token;
    atomic_int tid;
    fm_status status;
    uint64_t generation;
    double ended;
};

static void *wait_thread(void *arg) {
    struct waiter *w = arg;
    atomic_store(&w->tid, (int)syscall(SYS_gettid));
    w->status = fm_wait(w->map, w->seen, w->strategy, w->timeout_ns, w->token, &w->generation);
    w->ended = now_s();
    return NULL;
}

/* The state letter of thread `tid` of this process ('R', 'S'...), or 0. */
static char thread_state(int tid) {
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = 0;
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    fm_map *map = NULL, *other = NULL;
    if (fm_open(argv[1], 0, FM_CREATE_ONLY, &map) != FM_OK ||
        fm_open(argv[1], 0, FM_OPEN_ONLY, &other) != FM_OK) {
        fprintf(stderr, "open: %s\n", fm_last_error());
        return 1;
    }
    const uint32_t strategies[] = {FM_WAIT_SLEEP, FM_WAIT_SPIN, FM_WAIT_ADAPTIVE};
    uint64_t generation = 0;
    fm_error_info info;

    CHECK(fm_wait(map, 0, 7, 0, NULL, NULL) == FM_E_INVALID_ARGUMENT);
    CHECK(fm_cancel(NULL) == FM_E_NULL);
    CHECK(fm_cancel_free(NULL) == FM_E_NULL);

    for (size_t i = 0; i < sizeof strategies / sizeof *strategies; i++) {
        uint32_t strategy = strategies[i];

        /* Nothing changes: a 20 ms wait times out, saying how long. */
        CHECK(fm_wait(map, generation, strategy, 20 * 1000 * 1000, NULL, NULL) == FM_E_TIMEOUT);
        CHECK(fm_last_error_info(&info) == FM_OK && info.waited_ms >= 20);

        /* A publish from another thread ends a wait with no timeout. */
        struct waiter w = {.map = map, .strategy = strategy, .seen = generation,
                           .timeout_ns = -1, .token = NULL};
        pthread_t thread;
        CHECK(pthread_create(&thread, NULL, wait_thread, &w) == 0);
        CHECK(fm_write(other, (const uint8_t *)"news", 4, &generation) == FM_OK);
        CHECK(pthread_join(thread, NULL) == 0);
        CHECK(w.status == FM_OK && w.generation == generation);

        /* Cancelling the token from this thread ends a wait that nothing
           else would end for a minute. */
        fm_cancel_token *token = NULL;
        CHECK(fm_cancel_new(&token) == FM_OK && token != NULL);
        struct waiter c = {.map = map, .strategy = strategy, .seen = generation,
                           .timeout_ns = 60LL * 1000 * 1000 * 1000, .token = token};
        atomic_init(&c.tid, 0);
        CHECK(pthread_create(&thread, NULL, wait_thread, &c) == 0);
        double deadline = now_s() + 20;
        while (atomic_load(&c.tid) == 0 && now_s() < deadline) sched_yield();
        if (strategy == FM_WAIT_SLEEP) {
            /* Asleep in the kernel: the token must wake it. */
            while (thread_state(atomic_load(&c.tid)) != 'S' && now_s() < deadline) sched_yield();
            CHECK(thread_state(atomic_load(&c.tid)) == 'S');
        }
        double cancelled = now_s();
        CHECK(fm_cancel(token) == FM_OK);
        CHECK(pthread_join(thread, NULL) == 0);
        CHECK(c.status == FM_E_CANCELLED);
        CHECK(c.ended - cancelled < 0.5);
        /* Cancelled stays cancelled. */
        CHECK(fm_wait(map, generation, strategy, 10LL * 1000 * 1000 * 1000, token, NULL) ==
              FM_E_CANCELLED);
        CHECK(strcmp(fm_status_name(FM_E_CANCELLED), "FM_E_CANCELLED") == 0);
        CHECK(fm_cancel_free(token) == FM_OK);
    }

    CHECK(fm_close(other) == FM_OK);
    CHECK(fm_close(map) == FM_OK);
    if (failures) return 1;
    printf("ok\n");
    return 0;
}
