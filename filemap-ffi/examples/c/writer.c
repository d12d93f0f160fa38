/*
 * Publish each line typed on standard input into region "demo" (or the
 * region named by the first argument). The C twin of
 * filemap/examples/writer.rs.
 *
 * Run these in two terminals (after `cargo build -p filemap-ffi`):
 *
 *   cc -Ifilemap-ffi/include filemap-ffi/examples/c/reader.c \
 *      -Ltarget/debug -lfilemap_ffi -Wl,-rpath,$PWD/target/debug -o reader
 *   cc ... writer.c ... -o writer
 *   ./reader        # prints every change
 *   ./writer        # type lines here
 */
#include <filemap.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, fm_status status) {
    fprintf(stderr, "writer: %s: %s (%s)\n", what, fm_last_error(), fm_status_name(status));
    return 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "demo";
    fm_map *map = NULL;
    fm_status status = fm_open(name, 0, 0, &map);
    if (status != FM_OK) return fail("open", status);

    size_t capacity = 0;
    bool existed = false;
    fm_capacity(map, &capacity);
    fm_existed_already(map, &existed);
    fprintf(stderr, "writer: region \"%s\" (%zu bytes, %s); type lines, Ctrl-D to quit\n",
            name, capacity, existed ? "attached" : "created");

    char line[65536];
    int rc = 0;
    while (fgets(line, sizeof line, stdin)) {
        size_t len = strcspn(line, "\r\n");
        uint64_t generation = 0;
        status = fm_write(map, (const uint8_t *)line, len, &generation);
        if (status == FM_E_TOO_LARGE) {
            /* Nothing was written; the previous content stays. */
            fprintf(stderr, "writer: %s\n", fm_last_error());
            continue;
        }
        if (status != FM_OK) {
            rc = fail("write", status);
            break;
        }
        printf("published generation %llu\n", (unsigned long long)generation);
        fflush(stdout);
    }
    fm_close(map);
    return rc;
}
