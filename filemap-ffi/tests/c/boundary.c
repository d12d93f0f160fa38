/*
 * The C ABI's boundary cases, from C: NULLs, bad names, absurd lengths,
 * a small buffer, last-error numbers. Prints "ok" and exits 0 when every
 * check holds; otherwise names the failed check and exits 1.
 * Usage: boundary REGION-NAME
 */
#define _POSIX_C_SOURCE 200809L
#include <filemap.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
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

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *name = argv[1];
    fm_map *map = NULL;
    fm_error_info info;

    CHECK(fm_abi_version() == FM_ABI_VERSION);
    CHECK(fm_open(NULL, 0, 0, &map) == FM_E_NULL);
    CHECK(fm_open(name, 0, 0, NULL) == FM_E_NULL);
    CHECK(fm_open("\xff\xfe", 0, 0, &map) == FM_E_INVALID_NAME);
    CHECK(strstr(fm_last_error(), "UTF-8") != NULL);
    CHECK(fm_open(name, 0, 0x100, &map) == FM_E_INVALID_ARGUMENT);
    CHECK(fm_open(name, 8, FM_CREATE_ONLY, &map) == FM_E_INVALID_CAPACITY);
    CHECK(fm_last_error_info(&info) == FM_OK);
    CHECK(info.status == FM_E_INVALID_CAPACITY && info.len == 8 && info.min == FM_MIN_CAPACITY);
    CHECK(fm_open(name, 64, FM_OPEN_ONLY, &map) == FM_E_NOT_FOUND);

    /* fm_open_ex: NULL options, size left 0, a maximum below the capacity. */
    fm_open_options options = {.size = sizeof options, .capacity = 4096, .max_capacity = 100};
    CHECK(sizeof options == FM_OPEN_OPTIONS_SIZE);
    CHECK(fm_open_ex(name, NULL, &map) == FM_E_NULL);
    fm_open_options unsized = {.capacity = 4096};
    CHECK(fm_open_ex(name, &unsized, &map) == FM_E_INVALID_ARGUMENT);
    CHECK(strstr(fm_last_error(), "sizeof(fm_open_options)") != NULL);
    CHECK(fm_open_ex(name, &options, &map) == FM_E_INVALID_CAPACITY);
    CHECK(fm_last_error_info(&info) == FM_OK);
    CHECK(info.len == 100 && info.min == 4096 && info.max == FM_MAX_CAPACITY);
    CHECK(strstr(fm_last_error(), "100") && strstr(fm_last_error(), "4096"));

    CHECK(fm_open(name, 64, FM_CREATE_ONLY, &map) == FM_OK);
    CHECK(fm_write(map, (const uint8_t *)"kept", 4, NULL) == FM_OK);
    char big[65];
    memset(big, 'x', sizeof big);
    CHECK(fm_write(map, (const uint8_t *)big, sizeof big, NULL) == FM_E_TOO_LARGE);
    CHECK(fm_last_error_info(&info) == FM_OK);
    CHECK(info.len == 65 && info.capacity == 64);
    CHECK(strstr(fm_last_error(), "65") && strstr(fm_last_error(), "64"));
    CHECK(fm_write(map, (const uint8_t *)big, SIZE_MAX, NULL) == FM_E_TOO_LARGE);
    CHECK(fm_write(map, NULL, 3, NULL) == FM_E_NULL);
    CHECK(fm_write(NULL, NULL, 0, NULL) == FM_E_NULL);

    char small[2] = {'#', '#'};
    size_t len = 0;
    fm_stamp stamp;
    CHECK(fm_read(map, (uint8_t *)small, sizeof small, &len, &stamp) == FM_E_BUFFER_TOO_SMALL);
    CHECK(len == 4 && small[0] == '#' && stamp.generation == 1);
    char buf[64];
    CHECK(fm_read(map, (uint8_t *)buf, sizeof buf, &len, &stamp) == FM_OK);
    CHECK(len == 4 && memcmp(buf, "kept", 4) == 0);

    uint64_t generation = 0;
    CHECK(fm_wait(map, 1, FM_WAIT_SLEEP, 0, NULL, &generation) == FM_E_TIMEOUT);
    CHECK(fm_unlock(map) == FM_E_NOT_LOCKED);
    bool died = true;
    CHECK(fm_lock(map, &died) == FM_OK && !died);
    CHECK(fm_write(map, (const uint8_t *)"locked", 6, &generation) == FM_OK && generation == 2);
    CHECK(fm_unlock(map) == FM_OK);

    /* Compare-and-publish: the generation moved on, nothing written. */
    CHECK(fm_write_if(map, 1, (const uint8_t *)"stale", 5, NULL) == FM_E_CONFLICT);
    CHECK(fm_last_error_info(&info) == FM_OK);
    CHECK(info.expected == 1 && info.found == 2);
    CHECK(fm_write_if(map, 2, (const uint8_t *)"fresh", 5, &generation) == FM_OK && generation == 3);

    /* A handle inherited through fork() is refused in the child. */
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        fm_status s = fm_write(map, (const uint8_t *)"child", 5, NULL);
        fm_error_info ci;
        fm_last_error_info(&ci);
        _exit(s == FM_E_FORKED_HANDLE && ci.pid == (uint32_t)getpid() ? 0 : 1);
    }
    int wstatus = 0;
    CHECK(child > 0 && waitpid(child, &wstatus, 0) == child);
    CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    CHECK(fm_read(map, (uint8_t *)buf, sizeof buf, &len, NULL) == FM_OK);
    CHECK(len == 5 && memcmp(buf, "fresh", 5) == 0);

    /* A lock inherited through fork() stays the parent's: the child can
       neither publish under it nor release it, and is told so. */
    CHECK(fm_lock(map, NULL) == FM_OK);
    fflush(NULL);
    child = fork();
    if (child == 0) {
        fm_status unlocked = fm_unlock(map);
        fm_status wrote = fm_write(map, (const uint8_t *)"child", 5, NULL);
        _exit(unlocked == FM_E_FORKED_HANDLE && wrote == FM_E_FORKED_HANDLE ? 0 : 1);
    }
    CHECK(child > 0 && waitpid(child, &wstatus, 0) == child);
    CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    CHECK(fm_write(map, (const uint8_t *)"parent", 6, &generation) == FM_OK && generation == 4);
    CHECK(fm_unlock(map) == FM_OK);
    CHECK(fm_read(map, (uint8_t *)buf, sizeof buf, &len, NULL) == FM_OK);
    CHECK(len == 6 && memcmp(buf, "parent", 6) == 0);

    CHECK(strcmp(fm_status_name(FM_E_TOO_LARGE), "FM_E_TOO_LARGE") == 0);
    CHECK(fm_close(map) == FM_OK);
    /* The last handle of a non-persistent region took it along. */
    CHECK(fm_remove(name) == FM_E_NOT_FOUND);
    CHECK(fm_close(NULL) == FM_E_NULL);
    if (failures) return 1;
    printf("ok\n");
    return 0;
}
