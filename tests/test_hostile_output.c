/*
 * test_hostile_output.c — where the commands write (issue 9, output
 * safety): `quantize -o` may be absent, an empty folder or an earlier
 * output of gptq-c, anything else only with --overwrite, and never the
 * model, a folder holding it, one inside it, the current folder, a file, a
 * symlink or a FIFO, however the path is spelled; `layer -o` and `matmul
 * -o` replace only a regular file that is not an input; --log-json never
 * writes into the model or into a folder that the run replaces, and a run
 * that fails leaves it as it was. Each row lists in `keep` what must be
 * byte-identical afterwards (tests/cli_harness.h); the harness also checks
 * that no temporary is left in the row's folder.
 */
#include "cli_harness.h" /* first: it sets _GNU_SOURCE */

#include <gptq.h>

/* ------------------------------------------------------------------ */
/* Builders                                                            */
/* ------------------------------------------------------------------ */

static void mk_model(const char *dir)
{
    ch_sh("cp -a '%s/data/tiny-llama' '%s/model'", ch_source_root(), dir);
}

/* the model and an earlier output of gptq-c in @/out */
static void mk_ours(const char *dir)
{
    mk_model(dir);
    ch_sh("'%s' quantize '%s/model' -o '%s/out' --method rtn --quiet", ch_cli(), dir, dir);
}

static void mk_empty_out(const char *dir)
{
    mk_model(dir);
    ch_sh("mkdir '%s/out'", dir);
}

static void mk_foreign(const char *dir)
{
    mk_model(dir);
    ch_sh("mkdir '%s/out' && echo 'my notes' > '%s/out/notes.txt'", dir, dir);
}

static void mk_ours_extra(const char *dir)
{
    mk_ours(dir);
    ch_sh("echo 'results' > '%s/out/eval.txt'", dir);
}

/* a checkpoint of another quantizer: same file names, not ours */
static void mk_other_quantizer(const char *dir)
{
    mk_model(dir);
    ch_sh("mkdir '%s/out' && cp '%s/model/config.json' '%s/out/' && "
          "echo '{\"bits\": 4, \"meta\": {\"quantizer\": [\"gptqmodel:1.0\"]}}' > "
          "'%s/out/quantize_config.json'",
          dir, dir, dir, dir);
}

/* @/a/b/model */
static void mk_deep_model(const char *dir)
{
    ch_sh("mkdir -p '%s/a/b' && cp -a '%s/data/tiny-llama' '%s/a/b/model'", dir, ch_source_root(),
          dir);
}

static void mk_model_sub(const char *dir)
{
    mk_model(dir);
    ch_sh("mkdir '%s/model/sub'", dir);
}

static void mk_link_to_model(const char *dir)
{
    mk_model(dir);
    ch_sh("ln -s model '%s/link'", dir);
}

/* @/ln -> @ itself: @/ln/model is the model by another path */
static void mk_link_to_self(const char *dir)
{
    mk_model(dir);
    ch_sh("ln -s . '%s/ln'", dir);
}

/* @/mlink -> a/b/model: the model named through a symlink */
static void mk_deep_model_link(const char *dir)
{
    mk_deep_model(dir);
    ch_sh("ln -s a/b/model '%s/mlink'", dir);
}

static void mk_file_out(const char *dir)
{
    mk_model(dir);
    ch_sh("echo 'not a folder' > '%s/out'", dir);
}

static void mk_link_to_ours(const char *dir)
{
    mk_ours(dir);
    ch_sh("ln -s out '%s/lnk'", dir);
}

static void mk_dangling(const char *dir)
{
    mk_model(dir);
    ch_sh("ln -s nowhere '%s/lnk'", dir);
}

static void mk_fifo_out(const char *dir)
{
    mk_model(dir);
    ch_sh("mkfifo '%s/out'", dir);
}

static void mk_log(const char *dir)
{
    mk_model(dir);
    ch_sh("echo '{\"old\": \"log line\"}' > '%s/log.jsonl'", dir);
}

static void mk_log_bad_config(const char *dir)
{
    mk_log(dir);
    ch_sh("echo '{\"model_type\": ' > '%s/model/config.json'", dir);
}

static void mk_calib(const char *dir)
{
    mk_model(dir);
    ch_sh("cp '%s/data/text/calib.txt' '%s/c.txt'", ch_source_root(), dir);
}

/* A temporary folder a killed run left: its marker names a process that
 * no longer exists (a child that has been reaped). */
static void mk_stale_tmp(const char *dir)
{
    mk_ours(dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    char host[256] = "", boot[64] = "";
    gethostname(host, sizeof host - 1);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f)) boot[0] = '\0';
        fclose(f);
    }
    boot[strcspn(boot, "\n")] = '\0';
    ch_sh("mkdir '%s/out.tmp.Ab12Cd' && echo partial > '%s/out.tmp.Ab12Cd/model.safetensors'",
          dir, dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/out.tmp.Ab12Cd/.gptq-c-partial", dir);
    ch_writef(path, "gptq-c partial output: pid %ld host %s boot %s\n", (long)pid, host, boot);
}

/* A temporary folder of a run before the last reboot: this machine, the
 * live pid of this test, another boot id. */
static void mk_stale_tmp_other_boot(const char *dir)
{
    mk_ours(dir);
    char host[256] = "", path[1024];
    gethostname(host, sizeof host - 1);
    ch_sh("mkdir '%s/out.tmp.Bo0t12'", dir);
    snprintf(path, sizeof path, "%s/out.tmp.Bo0t12/.gptq-c-partial", dir);
    ch_writef(path, "gptq-c partial output: pid %ld host %s boot 00000000-dead\n",
              (long)getpid(), host);
}

/* layer input: W (32, 128) and X (64, 128) F32 */
static void mk_layer_in(const char *dir)
{
    static float W[32 * 128], X[64 * 128];
    uint64_t s = 12345;
    for (size_t i = 0; i < sizeof W / sizeof *W; i++)
        W[i] = (float)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 1e7f - 0.8f;
    for (size_t i = 0; i < sizeof X / sizeof *X; i++)
        X[i] = (float)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 1e7f - 0.8f;
    gptq_tensor t[2] = {{GPTQ_F32, 2, {32, 128}, W, 0}, {GPTQ_F32, 2, {64, 128}, X, 0}};
    const char *names[2] = {"W", "X"};
    char path[1024];
    cr_assert_eq(gptq_st_save(ch_join(path, dir, "in.safetensors"), 2, names, t), GPTQ_OK, "%s",
                 gptq_last_error());
}

static void mk_layer_existing(const char *dir)
{
    mk_layer_in(dir);
    ch_sh("echo 'an old result' > '%s/out.safetensors'", dir);
}

static void mk_layer_hardlink(const char *dir)
{
    mk_layer_in(dir);
    ch_sh("ln '%s/in.safetensors' '%s/out.safetensors'", dir, dir);
}

static void mk_layer_symlink(const char *dir)
{
    mk_layer_in(dir);
    ch_sh("ln -s in.safetensors '%s/out.safetensors'", dir);
}

static void mk_layer_fifo(const char *dir)
{
    mk_layer_in(dir);
    ch_sh("mkfifo '%s/out.safetensors'", dir);
}

static void mk_layer_folder(const char *dir)
{
    mk_layer_in(dir);
    ch_sh("mkdir '%s/out.safetensors' && echo keep > '%s/out.safetensors/f'", dir, dir);
}

/* A character device where root can make one (the null device, 1:3), a
 * FIFO otherwise: either way not a regular file. (Not /dev/null itself: a
 * broken environment where it is a regular file would get it replaced.) */
static void mk_layer_device(const char *dir)
{
    mk_layer_in(dir);
    if (geteuid() == 0) ch_sh("mknod '%s/dev' c 1 3", dir);
    else ch_sh("mkfifo '%s/dev'", dir);
}

static void mk_layer_sub(const char *dir)
{
    mk_layer_in(dir);
    ch_sh("mkdir '%s/sub'", dir);
}

/* a `gptq layer` output as matmul's source, and X (8, 128) */
static void mk_matmul(const char *dir)
{
    mk_layer_in(dir);
    ch_sh("'%s' layer '%s/in.safetensors' -o '%s/q.safetensors' --method rtn --group-size 32 "
          "--quiet",
          ch_cli(), dir, dir);
    static float X[8 * 128];
    for (size_t i = 0; i < sizeof X / sizeof *X; i++) X[i] = (float)(i % 17) / 17.0f - 0.5f;
    gptq_tensor t = {GPTQ_F32, 2, {8, 128}, X, 0};
    const char *name = "X";
    char path[1024];
    cr_assert_eq(gptq_st_save(ch_join(path, dir, "x.safetensors"), 1, &name, &t), GPTQ_OK, "%s",
                 gptq_last_error());
}

static void mk_matmul_hardlink_x(const char *dir)
{
    mk_matmul(dir);
    ch_sh("ln '%s/x.safetensors' '%s/y.safetensors'", dir, dir);
}

static void mk_matmul_fifo(const char *dir)
{
    mk_matmul(dir);
    ch_sh("mkfifo '%s/y.safetensors'", dir);
}

static void mk_matmul_device(const char *dir)
{
    mk_matmul(dir);
    if (geteuid() == 0) ch_sh("mknod '%s/dev' c 1 3", dir);
    else ch_sh("mkfifo '%s/dev'", dir);
}

static void mk_matmul_ckpt(const char *dir)
{
    mk_matmul(dir);
    mk_ours(dir);
}

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

#define RTN "--method", "rtn", "--quiet"
#define GPTQ_FAST "--calib", "%DATA/text/calib.txt", "--nsamples", "2", "--seqlen", "16", "--quiet"

static hostile_case output_table[] = {
    /* quantize: what OUT may be */
    {.name = "q_absent", .build = mk_model, .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL},
     .status = 0, .keep = {"@/model"}},
    {.name = "q_empty_folder", .build = mk_empty_out,
     .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL}, .status = 0, .keep = {"@/model"}},
    {.name = "q_ours_replaced", .build = mk_ours,
     .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL}, .status = 0, .keep = {"@/model"}},
    {.name = "q_ours_trailing_dot", .build = mk_ours,
     .argv = {"quantize", "@/model", "-o", "@/out/.", RTN, NULL}, .status = 0,
     .keep = {"@/model"}},
    {.name = "q_ours_trailing_slash", .build = mk_ours,
     .argv = {"quantize", "@/model", "-o", "@/out/", RTN, NULL}, .status = 0,
     .keep = {"@/model"}},
    {.name = "q_foreign_refused", .build = mk_foreign,
     .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL}, .status = 1,
     .msg = "not an output folder of gptq-c (it holds notes.txt", .keep = {"@/out", "@/model"}},
    {.name = "q_foreign_overwrite", .build = mk_foreign,
     .argv = {"quantize", "@/model", "-o", "@/out", "--overwrite", RTN, NULL}, .status = 0,
     .keep = {"@/model"}},
    {.name = "q_ours_plus_user_file", .build = mk_ours_extra,
     .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL}, .status = 1, .msg = "eval.txt",
     .keep = {"@/out", "@/model"}},
    {.name = "q_ours_plus_user_file_overwrite", .build = mk_ours_extra,
     .argv = {"quantize", "@/model", "-o", "@/out", "--overwrite", RTN, NULL}, .status = 0,
     .keep = {"@/model"}},
    {.name = "q_other_quantizer", .build = mk_other_quantizer,
     .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL}, .status = 1,
     .msg = "naming gptq-c as the quantizer", .keep = {"@/out", "@/model"}},
    {.name = "q_foreign_refused_before_calibration", .build = mk_foreign,
     .argv = {"quantize", "@/model", "-o", "@/out", "--calib", "@/no-such-text", NULL},
     .status = 1, .msg = "not an output folder of gptq-c", .keep = {"@/out"}},
    /* quantize: OUT against the model, however spelled */
    {.name = "q_out_is_model", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/model", RTN, NULL}, .status = 1,
     .msg = "model folder itself", .keep = {"@/model"}},
    {.name = "q_out_is_model_overwrite", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/model", "--overwrite", RTN, NULL}, .status = 1,
     .msg = "model folder itself", .keep = {"@/model"}},
    {.name = "q_out_is_model_relative_vs_absolute", .build = mk_model,
     .argv = {"quantize", "model", "-o", "@/model", RTN, NULL}, .status = 1,
     .msg = "model folder itself", .keep = {"@/model"}},
    {.name = "q_out_is_model_dotdot", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/model/../model/", RTN, NULL}, .status = 1,
     .msg = "model folder itself", .keep = {"@/model"}},
    {.name = "q_out_is_model_dot", .build = mk_model,
     .argv = {"quantize", ".", "-o", ".", RTN, NULL}, .cwd = "@/model", .status = 1,
     .msg = "model folder itself", .keep = {"@/model"}},
    {.name = "q_out_is_model_via_symlinked_parent", .build = mk_link_to_self,
     .argv = {"quantize", "@/model", "-o", "@/ln/model", RTN, NULL}, .status = 1,
     .msg = "model folder itself", .keep = {"@/model"}},
    {.name = "q_out_symlink_to_model", .build = mk_link_to_model,
     .argv = {"quantize", "@/model", "-o", "@/link", "--overwrite", RTN, NULL}, .status = 1,
     .msg = "symbolic link", .keep = {"@/model", "@/link"}},
    {.name = "q_out_parent_of_model", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@", RTN, NULL}, .status = 1,
     .msg = "holds the model folder", .keep = {"@/model"}},
    {.name = "q_out_grandparent_of_model", .build = mk_deep_model,
     .argv = {"quantize", "@/a/b/model", "-o", "@/a", RTN, NULL}, .status = 1,
     .msg = "holds the model folder", .keep = {"@/a"}},
    {.name = "q_out_grandparent_overwrite", .build = mk_deep_model,
     .argv = {"quantize", "@/a/b/model", "-o", "@/a", "--overwrite", RTN, NULL}, .status = 1,
     .msg = "holds the model folder", .keep = {"@/a"}},
    {.name = "q_out_parent_via_dotdot", .build = mk_model,
     .argv = {"quantize", ".", "-o", "..", "--overwrite", RTN, NULL}, .cwd = "@/model",
     .status = 1, .msg = "holds the model folder", .keep = {"@/model"}},
    {.name = "q_out_parent_model_via_symlink", .build = mk_deep_model_link,
     .argv = {"quantize", "@/mlink", "-o", "@/a/b", "--overwrite", RTN, NULL}, .status = 1,
     .msg = "holds the model folder", .keep = {"@/a"}},
    {.name = "q_out_inside_model", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/model/out", RTN, NULL}, .status = 1,
     .msg = "inside the model folder", .keep = {"@/model"}},
    {.name = "q_out_inside_model_existing", .build = mk_model_sub,
     .argv = {"quantize", "@/model", "-o", "@/model/sub", "--overwrite", RTN, NULL},
     .status = 1, .msg = "inside the model folder", .keep = {"@/model"}},
    {.name = "q_out_inside_model_via_symlink", .build = mk_link_to_model,
     .argv = {"quantize", "@/model", "-o", "@/link/out", RTN, NULL}, .status = 1,
     .msg = "inside the model folder", .keep = {"@/model"}},
    /* quantize: the current folder, files, links, FIFOs, devices */
    {.name = "q_out_dot_empty_cwd", .build = mk_empty_out,
     .argv = {"quantize", "@/model", "-o", ".", RTN, NULL}, .cwd = "@/out", .status = 1,
     .msg = "current folder", .keep = {"@/out"}},
    {.name = "q_out_dot_ours_cwd", .build = mk_ours,
     .argv = {"quantize", "../model", "-o", ".", RTN, NULL}, .cwd = "@/out", .status = 1,
     .msg = "current folder", .keep = {"@/out"}},
    {.name = "q_out_regular_file", .build = mk_file_out,
     .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL}, .status = 1,
     .msg = "not a folder", .keep = {"@/out"}},
    {.name = "q_out_regular_file_overwrite", .build = mk_file_out,
     .argv = {"quantize", "@/model", "-o", "@/out", "--overwrite", RTN, NULL}, .status = 1,
     .msg = "not a folder", .keep = {"@/out"}},
    {.name = "q_out_regular_file_before_calibration", .build = mk_file_out,
     .argv = {"quantize", "@/model", "-o", "@/out", GPTQ_FAST, NULL}, .status = 1,
     .msg = "not a folder", .keep = {"@/out"}},
    {.name = "q_out_symlink_to_ours", .build = mk_link_to_ours,
     .argv = {"quantize", "@/model", "-o", "@/lnk", RTN, NULL}, .status = 1,
     .msg = "symbolic link", .keep = {"@/out", "@/lnk"}},
    {.name = "q_out_dangling_symlink", .build = mk_dangling,
     .argv = {"quantize", "@/model", "-o", "@/lnk", RTN, NULL}, .status = 1,
     .msg = "symbolic link", .keep = {"@/lnk"}},
    {.name = "q_out_fifo", .build = mk_fifo_out,
     .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL}, .status = 1,
     .msg = "not a folder", .keep = {"@/out"}},
    {.name = "q_out_dev_null", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "/dev/null", "--overwrite", RTN, NULL}, .status = 1,
     .msg = "not a folder", .keep = {"/dev/null"}},
    {.name = "q_out_missing_parent", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/no/such/out", RTN, NULL}, .status = 1,
     .msg = "does not exist", .keep = {"@/model"}},
    {.name = "q_positional_out", .build = mk_model,
     .argv = {"quantize", "@/model", "@/out", RTN, NULL}, .status = 2,
     .msg = "unexpected argument \"@/out\": the output folder is given with -o",
     .keep = {"@/model"}},
    {.name = "q_stale_temp_swept", .build = mk_stale_tmp,
     .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL}, .status = 0,
     .keep = {"@/model"}},
    {.name = "q_stale_temp_other_boot_swept", .build = mk_stale_tmp_other_boot,
     .argv = {"quantize", "@/model", "-o", "@/out", RTN, NULL}, .status = 0,
     .keep = {"@/model"}},
    /* quantize --log-json */
    {.name = "log_in_model", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--log-json", "@/model/log.jsonl", RTN, NULL},
     .status = 1, .msg = "inside the model folder", .keep = {"@/model"}},
    {.name = "log_is_shard", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--log-json", "@/model/model.safetensors",
              RTN, NULL},
     .status = 1, .msg = "inside the model folder", .keep = {"@/model"}},
    {.name = "log_is_shard_via_symlink", .build = mk_link_to_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--log-json", "@/link/model.safetensors",
              RTN, NULL},
     .status = 1, .msg = "inside the model folder", .keep = {"@/model"}},
    {.name = "log_in_replaced_out", .build = mk_ours,
     .argv = {"quantize", "@/model", "-o", "@/out", "--log-json", "@/out/log.jsonl", RTN, NULL},
     .status = 1, .msg = "inside the output folder", .keep = {"@/out"}},
    {.name = "log_is_calib", .build = mk_calib,
     .argv = {"quantize", "@/model", "-o", "@/out", "--calib", "@/c.txt", "--log-json", "@/c.txt",
              "--nsamples", "2", "--seqlen", "16", NULL},
     .status = 1, .msg = "calibration file", .keep = {"@/c.txt"}},
    {.name = "log_is_out", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--log-json", "@/out", RTN, NULL},
     .status = 1, .msg = "output folder's name", .keep = {"@/model"}},
    {.name = "log_missing_folder", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--log-json", "@/no/log.jsonl", RTN, NULL},
     .status = 1, .msg = "does not exist", .keep = {"@/model"}},
    {.name = "log_untouched_bad_calib", .build = mk_log,
     .argv = {"quantize", "@/model", "-o", "@/out", "--log-json", "@/log.jsonl", "--calib",
              "@/no-such-text", NULL},
     .status = 1, .msg = "no-such-text", .keep = {"@/log.jsonl", "@/model"}},
    {.name = "log_untouched_bad_config", .build = mk_log_bad_config,
     .argv = {"quantize", "@/model", "-o", "@/out", "--log-json", "@/log.jsonl", RTN, NULL},
     .status = 1, .msg = "config.json", .keep = {"@/log.jsonl", "@/model"}},
    {.name = "log_untouched_refused_out", .build = mk_log,
     .argv = {"quantize", "@/model", "-o", "@/model", "--log-json", "@/log.jsonl", RTN, NULL},
     .status = 1, .msg = "model folder itself", .keep = {"@/log.jsonl", "@/model"}},
    {.name = "log_written", .build = mk_log,
     .argv = {"quantize", "@/model", "-o", "@/out", "--log-json", "@/log.jsonl", RTN, NULL},
     .status = 0, .keep = {"@/model"}},
    /* layer -o */
    {.name = "l_absent", .build = mk_layer_in,
     .argv = {"layer", "@/in.safetensors", "-o", "@/out.safetensors", "--group-size", "32",
              "--quiet", NULL},
     .status = 0, .keep = {"@/in.safetensors"}},
    {.name = "l_existing_regular_replaced", .build = mk_layer_existing,
     .argv = {"layer", "@/in.safetensors", "-o", "@/out.safetensors", "--group-size", "32",
              "--quiet", NULL},
     .status = 0, .keep = {"@/in.safetensors"}},
    {.name = "l_out_is_in", .build = mk_layer_in,
     .argv = {"layer", "@/in.safetensors", "-o", "@/in.safetensors", "--group-size", "32", NULL},
     .status = 1, .msg = "is the input", .keep = {"@/in.safetensors"}},
    {.name = "l_out_is_in_other_spelling", .build = mk_layer_sub,
     .argv = {"layer", "in.safetensors", "-o", "@/sub/../in.safetensors", "--group-size", "32",
              NULL},
     .status = 1, .msg = "is the input", .keep = {"@/in.safetensors"}},
    {.name = "l_out_hard_link_to_in", .build = mk_layer_hardlink,
     .argv = {"layer", "@/in.safetensors", "-o", "@/out.safetensors", "--group-size", "32", NULL},
     .status = 1, .msg = "is the input", .keep = {"@/in.safetensors", "@/out.safetensors"}},
    {.name = "l_out_symlink_to_in", .build = mk_layer_symlink,
     .argv = {"layer", "@/in.safetensors", "-o", "@/out.safetensors", "--group-size", "32", NULL},
     .status = 1, .msg = "symbolic link", .keep = {"@/in.safetensors", "@/out.safetensors"}},
    {.name = "l_out_fifo", .build = mk_layer_fifo,
     .argv = {"layer", "@/in.safetensors", "-o", "@/out.safetensors", "--group-size", "32", NULL},
     .status = 1, .msg = "a FIFO", .keep = {"@/out.safetensors"}},
    {.name = "l_out_folder", .build = mk_layer_folder,
     .argv = {"layer", "@/in.safetensors", "-o", "@/out.safetensors", "--group-size", "32", NULL},
     .status = 1, .msg = "a folder", .keep = {"@/out.safetensors"}},
    {.name = "l_out_device_or_fifo", .build = mk_layer_device,
     .argv = {"layer", "@/in.safetensors", "-o", "@/dev", "--group-size", "32", NULL},
     .status = 1, .msg = "only a regular file is replaced", .keep = {"@/dev"}},
    {.name = "l_out_missing_folder", .build = mk_layer_in,
     .argv = {"layer", "@/in.safetensors", "-o", "@/no/out.safetensors", NULL}, .status = 1,
     .msg = "does not exist", .keep = {"@/in.safetensors"}},
    {.name = "l_positional_out", .build = mk_layer_in,
     .argv = {"layer", "@/in.safetensors", "@/out.safetensors", NULL}, .status = 2,
     .msg = "the output file is given with -o", .keep = {"@/in.safetensors"}},
    /* matmul -o */
    {.name = "m_ok", .build = mk_matmul,
     .argv = {"matmul", "@/q.safetensors", "-x", "@/x.safetensors", "-o", "@/y.safetensors",
              "--quiet", NULL},
     .status = 0, .keep = {"@/q.safetensors", "@/x.safetensors"}},
    {.name = "m_out_is_source", .build = mk_matmul,
     .argv = {"matmul", "@/q.safetensors", "-x", "@/x.safetensors", "-o", "@/q.safetensors",
              NULL},
     .status = 1, .msg = "is the input", .keep = {"@/q.safetensors"}},
    {.name = "m_out_is_x", .build = mk_matmul,
     .argv = {"matmul", "@/q.safetensors", "-x", "@/x.safetensors", "-o", "@/./x.safetensors",
              NULL},
     .status = 1, .msg = "is the input", .keep = {"@/x.safetensors"}},
    {.name = "m_out_hard_link_to_x", .build = mk_matmul_hardlink_x,
     .argv = {"matmul", "@/q.safetensors", "-x", "@/x.safetensors", "-o", "@/y.safetensors",
              NULL},
     .status = 1, .msg = "is the input", .keep = {"@/x.safetensors"}},
    {.name = "m_out_inside_source_folder", .build = mk_matmul_ckpt,
     .argv = {"matmul", "@/out", "--module", "model.layers.0.mlp.down_proj", "-x",
              "@/x.safetensors", "-o", "@/out/model.safetensors", NULL},
     .status = 1, .msg = "inside the input folder", .keep = {"@/out"}},
    {.name = "m_out_fifo", .build = mk_matmul_fifo,
     .argv = {"matmul", "@/q.safetensors", "-x", "@/x.safetensors", "-o", "@/y.safetensors",
              NULL},
     .status = 1, .msg = "a FIFO", .keep = {"@/y.safetensors"}},
    {.name = "m_out_device_or_fifo", .build = mk_matmul_device,
     .argv = {"matmul", "@/q.safetensors", "-x", "@/x.safetensors", "-o", "@/dev", NULL},
     .status = 1, .msg = "only a regular file is replaced", .keep = {"@/dev"}},
    {.name = "m_positional_out", .build = mk_matmul,
     .argv = {"matmul", "@/q.safetensors", "-x", "@/x.safetensors", "@/y.safetensors", NULL},
     .status = 2, .msg = "the output file is given with -o", .keep = {"@/q.safetensors"}},
};
CH_TABLE(hostile_output, output_table)

/* ------------------------------------------------------------------ */
/* What a table row cannot say                                         */
/* ------------------------------------------------------------------ */

/* A positional OUT gets one line of advice, not the whole --help. */
Test(hostile_output, positional_out_is_short)
{
    char dir[512];
    ch_mkdtemp(dir, "posout");
    mk_model(dir);
    char model[1024], out[1024];
    cli_result r;
    ch_run(&r, 30, "quantize", ch_join(model, dir, "model"), ch_join(out, dir, "out"), "--method",
           "rtn", NULL);
    ch_expect(&r, 2, "the output folder is given with -o");
    cr_assert(!strstr(r.err, "--calib-bytes"), "the whole usage was printed:\n%s", r.err);
    ch_result_free(&r);
    ch_rm_tree(dir);
}

/* The output really is replaced (ours, --overwrite) and the log written:
 * the rows above only see the exit status. */
Test(hostile_output, replaced_and_logged)
{
    char dir[512];
    ch_mkdtemp(dir, "replaced");
    mk_foreign(dir);
    char model[1024], out[1024], log[1024], p[1024];
    ch_join(model, dir, "model");
    ch_join(out, dir, "out");
    ch_join(log, dir, "log.jsonl");
    ch_write_str(log, "old\n");
    cli_result r;
    ch_run(&r, 60, "quantize", model, "-o", out, "--overwrite", "--log-json", log, "--method",
           "rtn", "--quiet", NULL);
    ch_expect(&r, 0, "");
    ch_result_free(&r);
    struct stat st;
    cr_assert_neq(stat(ch_join(p, dir, "out/notes.txt"), &st), 0, "the old contents stayed");
    cr_assert_eq(stat(ch_join(p, dir, "out/quantize_config.json"), &st), 0);
    cr_assert_neq(stat(ch_join(p, dir, "out/.gptq-c-partial"), &st), 0, "the marker was published");
    char *text = ch_slurp(log, NULL);
    cr_assert(text && strstr(text, "\"module\"") && !strstr(text, "old"), "log: %s", text);
    free(text);
    ch_rm_tree(dir);
}

/* Temporaries that are not stale stay: a live run's (its marker names a
 * living process, this one), another machine's, and a folder without a
 * marker that is not a checkpoint (a user's, whatever its name). */
Test(hostile_output, live_and_foreign_temporaries_kept)
{
    char dir[512];
    ch_mkdtemp(dir, "livetmp");
    mk_ours(dir);
    char host[256] = "", boot[64] = "", live[1024], user[1024], other[1024], p[1100];
    gethostname(host, sizeof host - 1);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    cr_assert(f);
    cr_assert(fgets(boot, sizeof boot, f));
    fclose(f);
    boot[strcspn(boot, "\n")] = '\0';
    ch_join(live, dir, "out.tmp.LiVe01");
    ch_join(user, dir, "out.tmp.UsEr01");
    ch_join(other, dir, "out.tmp.H0st01");
    ch_sh("mkdir '%s' '%s' '%s' && echo mine > '%s/data.txt'", live, user, other, user);
    snprintf(p, sizeof p, "%s/.gptq-c-partial", live);
    ch_writef(p, "gptq-c partial output: pid %ld host %s boot %s\n", (long)getpid(), host, boot);
    /* another machine's run on a shared file system: its pid means nothing here */
    snprintf(p, sizeof p, "%s/.gptq-c-partial", other);
    ch_writef(p, "gptq-c partial output: pid 999999 host other-%s boot %s\n", host, boot);
    ch_snap a = ch_snap_take(live), b = ch_snap_take(user), c = ch_snap_take(other);
    char model[1024], out[1024];
    cli_result r;
    ch_run(&r, 60, "quantize", ch_join(model, dir, "model"), "-o", ch_join(out, dir, "out"),
           "--method", "rtn", "--quiet", NULL);
    ch_expect(&r, 0, "");
    ch_snap a2 = ch_snap_take(live), b2 = ch_snap_take(user), c2 = ch_snap_take(other);
    char why[512];
    cr_assert(ch_snap_equal(&a, &a2, why, sizeof why), "live run's temporary: %s", why);
    cr_assert(ch_snap_equal(&b, &b2, why, sizeof why), "user's folder: %s", why);
    cr_assert(ch_snap_equal(&c, &c2, why, sizeof why), "another machine's temporary: %s", why);
    ch_snap_free(&c);
    ch_snap_free(&c2);
    ch_snap_free(&a);
    ch_snap_free(&a2);
    ch_snap_free(&b);
    ch_snap_free(&b2);
    ch_result_free(&r);
    ch_rm_tree(dir);
}
