/*
 * io.h — file helpers the parts of libgptq share (not installed):
 * reading JSON files with clear errors, typed getters for config loaders,
 * and atomic file / folder replacement for the checkpoint writer.
 *
 * Every function returns GPTQ_OK or a negative gptq_status and sets this
 * thread's message (gptq_last_error) naming the file and key at fault.
 */
#ifndef GPTQ_IO_H
#define GPTQ_IO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../internal.h"

/* ------------------------------------------------------------------ */
/* Input files (input.c)                                               */
/* ------------------------------------------------------------------ */

/* Open `path` for reading without ever blocking: O_RDONLY | O_NONBLOCK |
 * O_CLOEXEC, fstat, and anything but a regular file refused with
 * GPTQ_ERR_IO "<path>: not a regular file (a FIFO)" (a directory, a
 * character device, ...), so a FIFO or /dev/zero never hangs a reader;
 * then O_NONBLOCK is cleared. Open errors: "<path>: cannot open: <strerror>"
 * (a symlink loop says so). *fd gets the descriptor (close it), *size
 * (may be NULL) the file's size. */
int gptq_open_input(const char *path, int *fd, uint64_t *size);

/* 1 when something (a file, a FIFO, a dangling or looping symlink) is at
 * `path`, so that a caller reports what is wrong with it instead of
 * treating it as absent; 0 when nothing is there (ENOENT, ENOTDIR). */
int gptq_input_present(const char *path);

/* Read at most `max` bytes (SIZE_MAX: all) of an open descriptor into a
 * malloc'd buffer, NUL-terminated (*len excludes the NUL). *more (may be
 * NULL) is set to 1 when the file holds more than `max` bytes; nothing
 * past max + 1 bytes is read. size_hint sizes the first buffer. Errors
 * name `path`. */
int gptq_read_fd(int fd, const char *path, size_t max, uint64_t size_hint, char **out,
                 size_t *len, int *more);
/* gptq_open_input + gptq_read_fd. */
int gptq_read_input(const char *path, size_t max, char **out, size_t *len, int *more);

/* ------------------------------------------------------------------ */
/* JSON files                                                          */
/* ------------------------------------------------------------------ */

/* Largest JSON file gptq_json_read_file accepts (tokenizer.json files of
 * big vocabularies are tens of MiB). */
#define GPTQ_JSON_MAX_BYTES ((size_t)256 << 20)

/* Read and parse a whole JSON file (opened with gptq_open_input: a FIFO,
 * directory or device is refused, never waited on). On success *out is
 * the root (any JSON type; free it with cJSON_Delete). Errors: GPTQ_ERR_IO
 * (cannot open/read, not a regular file: "path: ..."), GPTQ_ERR_FORMAT
 * (too big, not valid JSON: the message gives the byte offset, line and
 * column of the first error and a short excerpt there; a duplicate key,
 * as gptq_json_check_unique). Trailing whitespace after the value is
 * allowed. */
int gptq_json_read_file(const char *path, cJSON **out);

/* Parse JSON text of n bytes (need not be NUL-terminated); `what` names
 * the source in messages (a file name). Same errors as above. */
int gptq_json_parse(const char *text, size_t n, const char *what, cJSON **out);

/* GPTQ_ERR_FORMAT when an object anywhere in the tree repeats a key:
 * cJSON keeps both (lookups find the first) while Python's json keeps the
 * last, so the same file would mean two things. The message names `what`,
 * the key and the object it is in ("quantization_config", "added_tokens[3]").
 * gptq_json_parse calls it on everything it parses. */
int gptq_json_check_unique(const cJSON *root, const char *what);

/* Typed getters for object members. Return values:
 *   GPTQ_OK          the key is present with the right type; *out is set.
 *   GPTQ_JSON_ABSENT (1, not an error) the key is absent or null and
 *                    `required` is 0; *out is left as it was, so set the
 *                    default before the call.
 *   GPTQ_ERR_FORMAT  the key is absent/null and required, or has the
 *                    wrong type: "config.json: \"hidden_size\" must be an
 *                    integer (got string)".
 * `obj` must be a JSON object (else GPTQ_ERR_FORMAT); `file` names the
 * source in messages. */
#define GPTQ_JSON_ABSENT 1
/* An integral number with |x| < 2^53 (exactly representable in the
 * double cJSON stores): 4096 and 4096.0 pass, 1.5 and 1e300 do not. */
int gptq_json_get_int(const cJSON *obj, const char *key, int64_t *out, int required,
                      const char *file);
/* Any finite number. */
int gptq_json_get_num(const cJSON *obj, const char *key, double *out, int required,
                      const char *file);
/* A string; *out points into the tree (valid while the tree lives). */
int gptq_json_get_str(const cJSON *obj, const char *key, const char **out, int required,
                      const char *file);
/* true or false; *out = 1 or 0. */
int gptq_json_get_bool(const cJSON *obj, const char *key, int *out, int required,
                       const char *file);
/* A JSON object / array member; *out points into the tree. */
int gptq_json_get_object(const cJSON *obj, const char *key, const cJSON **out, int required,
                         const char *file);
int gptq_json_get_array(const cJSON *obj, const char *key, const cJSON **out, int required,
                        const char *file);

/* ------------------------------------------------------------------ */
/* Atomic files and folders                                            */
/* ------------------------------------------------------------------ */

/* Write n bytes to `path` atomically: a temporary "path.tmp.XXXXXX" in the
 * same directory is written, fsync'd, made 0644 and renamed over `path`,
 * then the directory is fsync'd. On failure the temporary is removed and
 * whatever was at `path` is unchanged. */
int gptq_write_file_atomic(const char *path, const void *data, size_t n);

/* Create an empty folder "<final_dir>.tmp.XXXXXX" beside final_dir (same
 * file system, so a rename can move it into place); its path goes to
 * out[size]. Trailing slashes of final_dir are ignored. */
int gptq_mkdtemp_beside(const char *final_dir, char *out, size_t size);

/* Move the finished folder `tmp` to `final` without ever leaving a
 * half-written `final`:
 *   - final absent: rename(tmp, final).
 *   - final is a folder: swap the two atomically with
 *     renameat2(RENAME_EXCHANGE) where the file system supports it;
 *     otherwise move final aside to "<final>.old-XXXXXX", rename tmp in
 *     (moving the old one back if that fails). Either way the old contents
 *     end up in a side folder that is then removed recursively. At every
 *     instant `final` is either the complete old folder, absent (only in
 *     the fallback, between two renames), or the complete new one.
 *   - final exists but is not a folder: GPTQ_ERR_IO, nothing changes.
 * The parent directory is fsync'd after the renames. If only the removal
 * of the old copy fails, the new folder is in place and GPTQ_ERR_IO says
 * where the old copy was left. */
int gptq_rename_dir_into_place(const char *tmp, const char *final);

/* The fallback of gptq_rename_dir_into_place without RENAME_EXCHANGE
 * (move aside, rename in, remove the old), callable on its own so that
 * tests can run it on file systems that have the swap. */
int gptq_rename_dir_aside(const char *tmp, const char *final);

/* Remove a folder and everything under it, not following symlinks (a
 * symlink inside is removed, not its target). Absent path: GPTQ_OK. */
int gptq_remove_tree(const char *path);

/* fsync the directory that contains `path` (for after a rename). */
int gptq_fsync_parent_dir(const char *path);

/* ------------------------------------------------------------------ */
/* Output targets                                                      */
/* ------------------------------------------------------------------ */

/* The absolute, symlink-free name of `path` into out[size]: the real path
 * of the folder that holds it joined with its last component (itself not
 * followed, so a symlink stays the symlink); a path ending in "." or ".."
 * resolves whole. Trailing slashes are ignored. GPTQ_ERR_IO when the
 * holding folder does not exist. */
int gptq_path_canon(const char *path, char *out, size_t size);

/* 1 when `path` is folder `dir` or lies below it, 0 otherwise (also when
 * dir is absent). Compared by device and inode at every level of path's
 * resolved chain of folders, so symlinks, ".", "..", bind mounts,
 * relative and absolute spellings all count; an existing `path` counts
 * where it resolves to (symlinks followed), an absent one by the folder
 * that would hold it. */
int gptq_path_within(const char *path, const char *dir);

/* 1 when a and b both exist and are the same file (device and inode,
 * following symlinks). */
int gptq_same_file(const char *a, const char *b);

/* The policy for a single output file (`gptq layer -o`, `gptq matmul -o`),
 * written beside its name and renamed over it: OUT may be absent or an
 * existing regular file; it may not be a symlink, a folder, a FIFO, a
 * device or a socket, nor the same file as any of inputs[0..n) (by inode:
 * hard links and other spellings count), nor lie inside an input that is a
 * folder; the folder that holds it must exist and be writable. Checked
 * before any work; GPTQ_ERR_INVALID (GPTQ_ERR_IO for a missing folder)
 * with a message naming OUT and the reason. */
int gptq_out_check_file(const char *out, const char *const *inputs, int n);

/* ------------------------------------------------------------------ */
/* Cleanup on a signal (cleanup.c)                                     */
/* ------------------------------------------------------------------ */

/* Temporaries on disk are registered while they exist, so that a process
 * ending on a signal can remove them. Creating a temporary and registering
 * it, renaming or removing it and unregistering it, happen between
 * gptq_tmp_enter and gptq_tmp_leave (sections may run on several threads
 * at once; they must not nest within one thread). Once
 * gptq_tmp_cleanup_for_exit has run, gptq_tmp_enter never returns. */
void gptq_tmp_enter(void);
void gptq_tmp_leave(void);
/* Up to 16 at once; GPTQ_ERR_INVALID past that. The path is copied;
 * relative paths are taken from the working folder at cleanup time. */
int gptq_tmp_register(const char *path);
void gptq_tmp_unregister(const char *path); /* not registered: nothing */

/* For a process about to _exit on a signal. Async-signal-safe. Stops new
 * sections, waits up to 5 s for running ones, then removes every
 * registered temporary (recursively, never following symlinks). Returns
 * how many were removed, the first one's path into first[size]. */
int gptq_tmp_cleanup_for_exit(char *first, size_t size);

/* Memory-mapped input files (the safetensors reader registers its maps):
 * gptq_map_lookup names the file an address belongs to (async-signal-safe;
 * NULL when none), for the message of a SIGBUS that a file shrinking under
 * its mapping raises. `path` must live until unregistered. */
void gptq_map_register(const void *base, size_t len, const char *path);
void gptq_map_unregister(const void *base);
const char *gptq_map_lookup(const void *addr);

#endif /* GPTQ_IO_H */
