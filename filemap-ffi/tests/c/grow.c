/*
 * A region that grows, from C, in two roles run as separate processes by
 * tests/c.rs:
 *
 *   grow NAME    create NAME with a capacity of 4096 bytes growing up to
 *                1 MiB (fm_open_ex), print "created CAPACITY MAX", and at
 *                each line on standard input take the next step:
 *                1. write 100000 bytes (past the capacity): "grown CAPACITY";
 *                2. write MAX + 1 bytes: FM_E_TOO_LARGE with the numbers and
 *                   the content kept: "refused LEN LIMIT";
 *                3. fm_update to 300000 bytes: "updated CAPACITY";
 *                then wait for the end of input and close.
 *   attach NAME  open the existing NAME (before it grows), print
 *                "attached CAPACITY MAX", then wait for each change and
 *                check the content whole: "read LEN CAPACITY", until it has
 *                read 300000 bytes.
 *
 * Every content is the pattern 'a' + i % 26, so a torn or short read shows.
 * A failed check is printed to stderr and the program exits 1.
 */
#include <filemap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAPACITY 4096
#define MAX (1 << 20)

static void die(const char *what, fm_status status) {
    fprintf(stderr, "grow.c: %s: %s (%s)\n", what, fm_last_error(), fm_status_name(status));
    exit(1);
}

#define TRY(call)                                  \
    do {                                           \
        fm_status s_ = (call);                     \
        if (s_ != FM_OK) die(#call, s_);           \
    } while (0)

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "grow.c:%d: check failed: %s (last error: %s)\n", __LINE__, \
                    #cond, fm_last_error());                                            \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

static void fill(uint8_t *buf, size_t len) {
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)('a' + i % 26);
}

static int is_pattern(const uint8_t *buf, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (buf[i] != (uint8_t)('a' + i % 26)) return 0;
    return 1;
}

static size_t capacity_of(const fm_map *map) {
    size_t capacity = 0;
    TRY(fm_capacity(map, &capacity));
    return capacity;
}

static void step(void) {
    char line[64];
    if (!fgets(line, sizeof line, stdin)) exit(0);
}

/* fm_update's callback: the pattern over *target bytes. */
static int32_t grow_to(void *user_data, uint8_t *buf, size_t capacity, size_t *len) {
    size_t target = *(const size_t *)user_data;
    if (target > capacity) return 1;
    fill(buf, target);
    *len = target;
    return 0;
}

static int grow(const char *name) {
    fm_open_options options = {
        .size = sizeof options,
        .flags = FM_CREATE_ONLY,
        .capacity = CAPACITY,
        .max_capacity = MAX,
    };
    fm_map *map = NULL;
    TRY(fm_open_ex(name, &options, &map));
    size_t max = 0;
    TRY(fm_max_capacity(map, &max));
    printf("created %zu %zu\n", capacity_of(map), max);
    fflush(stdout);

    uint8_t *buf = malloc(MAX + 1);
    CHECK(buf != NULL);
    fill(buf, MAX + 1);

    step();
    TRY(fm_write(map, buf, 100000, NULL));
    CHECK(capacity_of(map) >= 100000);
    printf("grown %zu\n", capacity_of(map));
    fflush(stdout);

    step();
    CHECK(fm_write(map, buf, MAX + 1, NULL) == FM_E_TOO_LARGE);
    fm_error_info info;
    TRY(fm_last_error_info(&info));
    CHECK(info.len == MAX + 1 && info.capacity == MAX);
    CHECK(strstr(fm_last_error(), "1048577") && strstr(fm_last_error(), "1048576"));
    size_t len = 0;
    memset(buf, 0, MAX + 1);
    TRY(fm_read(map, buf, MAX, &len, NULL));
    CHECK(len == 100000 && is_pattern(buf, len));
    printf("refused %llu %llu\n", (unsigned long long)info.len, (unsigned long long)info.capacity);
    fflush(stdout);

    step();
    size_t target = 300000;
    bool published = false;
    TRY(fm_update(map, grow_to, &target, NULL, &published));
    CHECK(published && capacity_of(map) >= 300000);
    printf("updated %zu\n", capacity_of(map));
    fflush(stdout);

    while (fgetc(stdin) != EOF) {
    }
    free(buf);
    TRY(fm_close(map));
    return 0;
}

static int attach(const char *name) {
    fm_map *map = NULL;
    TRY(fm_open(name, 0, FM_OPEN_ONLY, &map));
    size_t max = 0;
    TRY(fm_max_capacity(map, &max));
    uint8_t *buf = malloc(max);
    CHECK(buf != NULL);
    /* The generation before saying so: every change after the line counts. */
    uint64_t seen = 0;
    TRY(fm_generation(map, &seen));
    printf("attached %zu %zu\n", capacity_of(map), max);
    fflush(stdout);
    size_t len = 0;
    while (len < 300000) {
        /* No timeout: the test takes its time between steps (it may build
           the CLI), and kills this process if it hangs. */
        TRY(fm_wait(map, seen, FM_WAIT_SLEEP, -1, NULL, NULL));
        fm_stamp stamp;
        TRY(fm_read(map, buf, max, &len, &stamp));
        CHECK(is_pattern(buf, len));
        seen = stamp.generation;
        printf("read %zu %zu\n", len, capacity_of(map));
        fflush(stdout);
    }
    free(buf);
    TRY(fm_close(map));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    if (strcmp(argv[1], "grow") == 0) return grow(argv[2]);
    if (strcmp(argv[1], "attach") == 0) return attach(argv[2]);
    return 2;
}
