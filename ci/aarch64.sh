#!/usr/bin/env bash
# aarch64 Linux, run for real: the library's and the CLI's test suites,
# cross-built for aarch64-unknown-linux-gnu and run under qemu-user (user
# mode: the tests' system calls go to this host's kernel, so shared memory,
# futexes and signals are real; the CPU, its instructions and the copy
# path are aarch64's).
#
# The processes the tests start themselves (the test binary again in a
# child role, the CLI, the examples) are started through the same emulator:
# filemap-testkit prefixes them with FILEMAP_TEST_RUNNER. binfmt_misc would
# let the kernel do that instead, but a CI container usually may not
# register it.
#
# The tests that do not run here are skipped by name below, each with its
# reason in docs/platforms.md; every other test runs.
set -euo pipefail
target=aarch64-unknown-linux-gnu
runner="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
export FILEMAP_TEST_RUNNER="$runner"
skip=(
    # RSS counts qemu's translation cache, which grows as code is translated.
    --skip open_close_soak_leaks_no_fds_mappings_files_or_memory
    # qemu-user answers a process's reads of its own /proc/<pid>/stat with a
    # synthesized line, so the attach table's liveness (pid + start time)
    # disagrees between processes, and between threads of one process (the
    # start time it gives is the reading thread's).
    --skip a_region_whose_users_were_killed_is_stale_and_replaced
    --skip a_full_attach_table_is_a_clear_error
    --skip list_shows_regions_with_their_attached_processes
    --skip rm_stale_removes_regions_whose_users_died
    --skip a_second_instance_sees_the_text_and_the_edits
    --skip draws_text_indicators_help_and_cursor
    # The memo's terminal setup uses TCGETS2, which qemu-user 7.2 does not
    # implement (ENOSYS).
    --skip sigterm_restores_the_terminal_and_removes_the_region
    --skip init_file_starts_a_new_memo_and_loses_to_an_existing_one
    --skip two_memos_share_text_live
    --skip typing_past_capacity_keeps_both_texts
    --skip a_memo_grows_its_region_as_its_text_does
    --skip undecodable_bytes_are_not_rewritten_by_an_edit
)
cargo test --locked --no-fail-fast --target "$target" -p filemap -p filemap-cli -- "${skip[@]}"
# The portable copy too (the automatic choice there is the asm one).
FILEMAP_COPY=words cargo test --locked --target "$target" -p filemap --test read_into
