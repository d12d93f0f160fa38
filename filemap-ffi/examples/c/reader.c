/*
 * Print every change published into region "demo" (or the region named by
 * the first argument) by another process, from fm_watch's callback. The C
 * twin of filemap/examples/reader.rs; see writer.c for how to build and
 * run the pair. Quits at end of input (Ctrl-D).
 */
#include <filemap.h>
#include <stdio.h>

/* Runs on the watcher's thread; data is lent for the call only. */
static void on_change(void *user_data, fm_status status, const fm_stamp *stamp,
                      const uint8_t *data, size_t len) {
    (void)user_data;
    if (status != FM_OK) {
        fprintf(stderr, "reader: %s\n", fm_last_error());
        return;
    }
    printf("generation %llu from pid %u: %.*s\n", (unsigned long long)stamp->generation,
           stamp->writer.pid, (int)len, (const char *)data);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "demo";
    fm_map *map = NULL;
    fm_status status = fm_open(name, 0, 0, &map);
    if (status != FM_OK) {
        fprintf(stderr, "reader: open: %s\n", fm_last_error());
        return 1;
    }
    fm_watcher *watcher = NULL;
    status = fm_watch(map, on_change, NULL, &watcher);
    if (status != FM_OK) {
        fprintf(stderr, "reader: watch: %s\n", fm_last_error());
        fm_close(map);
        return 1;
    }
    fprintf(stderr, "reader: watching region \"%s\"; Ctrl-D to quit\n", name);
    printf("ready\n");
    fflush(stdout);
    while (getchar() != EOF) {
    }
    /* Returns once no callback runs any more. */
    fm_watch_stop(watcher);
    fm_close(map);
    return 0;
}
