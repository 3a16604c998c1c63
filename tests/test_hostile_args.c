/*
 * test_hostile_args.c — hostile-input rows for the command line itself:
 * unknown commands and options, missing and malformed values. Each row runs
 * the built `gptq` and checks the exit status (2: usage, 1: bad input), the
 * message, and that nothing the user had was touched (tests/cli_harness.h).
 */
#include "cli_harness.h"
#include "gptq.h" /* kernels: mk_fast writes its inputs */

static void mk_model(const char *dir)
{
    ch_sh("cp -a '%s/data/tiny-llama' '%s/model'", ch_source_root(), dir);
}

/* -- kernels (issue 12): a `gptq layer` output (4-bit g32, 64 x 128), X
 * (8, 128), X of the wrong width and 1-D, and the declines plugin (no
 * matmul_q_fast) -- */
static void mk_fast(const char *dir)
{
    static float W[64 * 128], X[8 * 128], Xw[8 * 100], X1[128];
    for (size_t i = 0; i < sizeof W / sizeof *W; i++) W[i] = (float)((i * 37) % 101) / 50.0f - 1;
    for (size_t i = 0; i < sizeof X / sizeof *X; i++) X[i] = (float)(i % 17) / 17.0f - 0.5f;
    const char *wn = "W", *xn = "X";
    char p[1024];
    const gptq_tensor tw = {GPTQ_F32, 2, {64, 128}, W, 0}, tx = {GPTQ_F32, 2, {8, 128}, X, 0},
                      txw = {GPTQ_F32, 2, {8, 100}, Xw, 0}, tx1 = {GPTQ_F32, 1, {128}, X1, 0};
    cr_assert_eq(gptq_st_save(ch_join(p, dir, "in.safetensors"), 1, &wn, &tw), GPTQ_OK);
    cr_assert_eq(gptq_st_save(ch_join(p, dir, "x.safetensors"), 1, &xn, &tx), GPTQ_OK);
    cr_assert_eq(gptq_st_save(ch_join(p, dir, "xw.safetensors"), 1, &xn, &txw), GPTQ_OK);
    cr_assert_eq(gptq_st_save(ch_join(p, dir, "x1.safetensors"), 1, &xn, &tx1), GPTQ_OK);
    ch_sh("'%s' layer '%s/in.safetensors' -o '%s/q.safetensors' --method rtn --group-size 32 "
          "--quiet", ch_cli(), dir, dir);
    const char *pd = getenv("GPTQ_TEST_PLUGIN_DIR");
    cr_assert(pd && *pd, "GPTQ_TEST_PLUGIN_DIR is not set (run through meson test)");
    ch_sh("ln -s '%s/libgptq-testdeclines.so' '%s/declines.so'", pd, dir);
}

/* -- genfast (issue 12): a 4-bit RTN checkpoint of tiny-llama, and the
 * nofast plugin (generates, but has no matmul_q_fast) -- */
static void mk_ckpt(const char *dir)
{
    ch_sh("'%s' quantize '%s/data/tiny-llama' -o '%s/ck' --method rtn --quiet", ch_cli(),
          ch_source_root(), dir);
    const char *pd = getenv("GPTQ_TEST_PLUGIN_DIR");
    cr_assert(pd && *pd, "GPTQ_TEST_PLUGIN_DIR is not set (run through meson test)");
    ch_sh("ln -s '%s/libgptq-testnofast.so' '%s/nofast.so'", pd, dir);
}

/* what `--backend hip` says where it cannot run: no plugin built, or no GPU */
#define HIP_ABSENT ((const char *const[]){"backend \"hip\" is not available", "initialisation failed", NULL})

static hostile_case args_table[] = {
    {.name = "no_command", .argv = {NULL}, .status = 2, .msg = "usage"},
    {.name = "unknown_command", .argv = {"frobnicate", NULL}, .status = 2, .msg = "frobnicate"},
    {.name = "quantize_no_model", .argv = {"quantize", "-o", "@/out", NULL}, .status = 2,
     .msg = "no model folder"},
    {.name = "quantize_no_output", .build = mk_model,
     .argv = {"quantize", "@/model", "--method", "rtn", NULL}, .status = 2, .msg = "-o",
     .keep = {"@/model"}},
    {.name = "quantize_unknown_option", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--bogus", NULL}, .status = 2,
     .msg = "bogus", .keep = {"@/model"}},
    {.name = "quantize_bits_5", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--method", "rtn", "--bits", "5", NULL},
     .status = 2, .msg = "--bits", .keep = {"@/model"}},

    /* every command: required arguments, unknown options, extra positionals, bad enums */
#define Q "quantize", "@/model", "-o", "@/out", "--method", "rtn"
#define E "eval", "@/model", "--text", "%DATA/text/eval.txt"
#define D "diff", "@/model", "--calib", "%DATA/text/calib.txt"
    {.name = "option_value_missing", .build = mk_model, .argv = {"quantize", "@/model", "-o", NULL},
     .status = 2, .msg = "requires an argument", .keep = {"@/model"}},
    {.name = "quantize_two_models", .build = mk_model,
     .argv = {"quantize", "@/model", "@/model", "-o", "@/out", "--method", "rtn", NULL},
     .status = 2, .msg = "more than one model folder", .keep = {"@/model"}},
    {.name = "quantize_gptq_without_calib", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", NULL}, .status = 2, .msg = "--calib",
     .keep = {"@/model"}},
    {.name = "quantize_method_unknown", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--method", "awq", NULL}, .status = 2,
     .msg = "--method awq", .keep = {"@/model"}},
    {.name = "quantize_format_unknown", .build = mk_model, .argv = {Q, "--format", "v9", NULL},
     .status = 2, .msg = "--format v9", .keep = {"@/model"}},
    {.name = "quantize_shard_unit", .build = mk_model,
     .argv = {Q, "--max-shard-size", "12XB", NULL}, .status = 2, .msg = "XB",
     .keep = {"@/model"}},
    {.name = "quantize_batch_tokens_zero", .build = mk_model,
     .argv = {Q, "--batch-tokens", "0", NULL}, .status = 2, .msg = "--batch-tokens",
     .keep = {"@/model"}},
    {.name = "quantize_forward_math", .build = mk_model, .argv = {Q, "--forward-math", "f64", NULL},
     .status = 2, .msg = "--forward-math f64", .keep = {"@/model"}},
    {.name = "quantize_group_size_48", .build = mk_model, .argv = {Q, "--group-size", "48", NULL},
     .status = 2, .msg = "--group-size 48", .keep = {"@/model"}},
    {.name = "quantize_bits_text", .build = mk_model, .argv = {Q, "--bits", "four", NULL},
     .status = 2, .msg = "--bits", .keep = {"@/model"}},
    {.name = "quantize_seed_negative", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--calib", "%DATA/text/calib.txt", "--seed",
              "-1", NULL},
     .status = 2, .msg = "--seed", .keep = {"@/model"}},
    {.name = "eval_no_model", .argv = {"eval", NULL}, .status = 2, .msg = "no model folder"},
    {.name = "eval_no_text", .build = mk_model, .argv = {"eval", "@/model", NULL}, .status = 2,
     .msg = "--text", .keep = {"@/model"}},
    {.name = "eval_two_models", .build = mk_model,
     .argv = {"eval", "@/model", "@/model", "--text", "%DATA/text/eval.txt", NULL}, .status = 2,
     .msg = "more than one model folder", .keep = {"@/model"}},
    {.name = "eval_unknown_option", .build = mk_model, .argv = {E, "--bogus", NULL}, .status = 2,
     .msg = "bogus", .keep = {"@/model"}},
    {.name = "eval_seqlen_1", .build = mk_model, .argv = {E, "--seqlen", "1", NULL}, .status = 2,
     .msg = "--seqlen 1", .keep = {"@/model"}},
    {.name = "eval_max_windows_0", .build = mk_model, .argv = {E, "--max-windows", "0", NULL},
     .status = 2, .msg = "--max-windows 0", .keep = {"@/model"}},
    {.name = "eval_batch_negative", .build = mk_model, .argv = {E, "--batch", "-3", NULL},
     .status = 2, .msg = "--batch -3", .keep = {"@/model"}},
    {.name = "eval_forward_math", .build = mk_model, .argv = {E, "--forward-math", "fp8", NULL},
     .status = 2, .msg = "--forward-math fp8", .keep = {"@/model"}},
    {.name = "diff_no_model", .argv = {"diff", NULL}, .status = 2, .msg = "no model folder"},
    {.name = "diff_no_calib", .build = mk_model, .argv = {"diff", "@/model", NULL}, .status = 2,
     .msg = "--calib", .keep = {"@/model"}},
    {.name = "diff_one_backend", .build = mk_model, .argv = {D, "--backends", "cpu", NULL},
     .status = 2, .msg = "--backends cpu", .keep = {"@/model"}},
    {.name = "diff_feed_unknown", .build = mk_model, .argv = {D, "--feed", "mine", NULL},
     .status = 2, .msg = "--feed mine", .keep = {"@/model"}},
    {.name = "diff_threshold_metric", .build = mk_model, .argv = {D, "--thresholds", "bogus=1", NULL},
     .status = 2, .msg = "unknown metric 'bogus'", .keep = {"@/model"}},
    {.name = "diff_layers_0", .build = mk_model, .argv = {D, "--layers", "0", NULL}, .status = 2,
     .msg = "--layers 0", .keep = {"@/model"}},
    {.name = "layer_no_input", .argv = {"layer", NULL}, .status = 2, .msg = "no input file"},
    {.name = "layer_no_output", .argv = {"layer", "@/in.safetensors", NULL}, .status = 2,
     .msg = "-o"},
    {.name = "layer_format_unknown",
     .argv = {"layer", "@/in.safetensors", "-o", "@/o.safetensors", "--format", "v3", NULL},
     .status = 2, .msg = "--format v3"},
    {.name = "compare_one_file", .argv = {"compare", "@/a", NULL}, .status = 2,
     .msg = "two files"},
    {.name = "compare_three_files", .argv = {"compare", "@/a", "@/b", "@/c", NULL}, .status = 2,
     .msg = "two files"},
    {.name = "compare_share_text", .argv = {"compare", "@/a", "@/b", "--max-code-mismatch", "x", NULL},
     .status = 2, .msg = "--max-code-mismatch x"},
    {.name = "matmul_no_source", .argv = {"matmul", NULL}, .status = 2, .msg = "no SOURCE"},
    {.name = "matmul_no_x", .build = mk_model, .argv = {"matmul", "@/model", NULL}, .status = 2,
     .msg = "-x", .keep = {"@/model"}},
    {.name = "matmul_no_output", .build = mk_model,
     .argv = {"matmul", "@/model", "-x", "@/x.safetensors", NULL}, .status = 2, .msg = "-o",
     .keep = {"@/model"}},
    /* -- per-module control (issue 11) -- */
    {.name = "quantize_dynamic_bad_regex", .build = mk_model,
     .argv = {Q, "--dynamic", "{\"-:model\\\\.layers\\\\.(0\": {}}", NULL}, .status = 1,
     .msg = "--dynamic: dynamic rule \"-:model\\.layers\\.(0\": bad regex",
     .keep = {"@/model"}},
    {.name = "quantize_dynamic_unknown_key", .build = mk_model,
     .argv = {Q, "--dynamic", "{\"mlp\": {\"damp\": 0.1}}", NULL}, .status = 1,
     .msg = "unknown key \"damp\"", .keep = {"@/model"}},
    {.name = "quantize_dynamic_bits_5", .build = mk_model,
     .argv = {Q, "--dynamic", "{\"+:.*mlp\": {\"bits\": 5}}", NULL}, .status = 1,
     .msg = "dynamic rule \"+:.*mlp\": bits 5: must be 2, 3, 4 or 8", .keep = {"@/model"}},
    {.name = "quantize_dynamic_missing_file", .build = mk_model,
     .argv = {Q, "--dynamic", "@/none.json", NULL}, .status = 1, .msg = "none.json",
     .keep = {"@/model"}},
    /* -- generate (issue 12) -- */
#define G "generate", "@/model", "--prompt", "The kernel"
    {.name = "generate_no_model", .argv = {"generate", "--prompt", "x", NULL}, .status = 2,
     .msg = "no model folder"},
    {.name = "generate_no_prompt", .build = mk_model, .argv = {"generate", "@/model", NULL},
     .status = 2, .msg = "no --prompt TEXT or --prompt-file FILE", .keep = {"@/model"}},
    {.name = "generate_prompt_and_file", .build = mk_model,
     .argv = {G, "--prompt-file", "@/p.txt", NULL}, .status = 2,
     .msg = "--prompt and --prompt-file together", .keep = {"@/model"}},
    {.name = "generate_two_models", .build = mk_model,
     .argv = {"generate", "@/model", "@/model", "--prompt", "x", NULL}, .status = 2,
     .msg = "more than one model folder", .keep = {"@/model"}},
    {.name = "generate_n_negative", .build = mk_model, .argv = {G, "-n", "-1", NULL},
     .status = 2, .msg = "-n", .keep = {"@/model"}},
    {.name = "generate_n_text", .build = mk_model, .argv = {G, "-n", "ten", NULL}, .status = 2,
     .msg = "-n", .keep = {"@/model"}},
    {.name = "generate_temperature_negative", .build = mk_model,
     .argv = {G, "--temperature", "-0.5", NULL}, .status = 2, .msg = "--temperature",
     .keep = {"@/model"}},
    {.name = "generate_temperature_nan", .build = mk_model,
     .argv = {G, "--temperature", "nan", NULL}, .status = 2, .msg = "--temperature",
     .keep = {"@/model"}},
    {.name = "generate_top_p_zero", .build = mk_model, .argv = {G, "--top-p", "0", NULL},
     .status = 2, .msg = "--top-p 0: must be in (0, 1]", .keep = {"@/model"}},
    {.name = "generate_top_p_above_one", .build = mk_model, .argv = {G, "--top-p", "1.5", NULL},
     .status = 2, .msg = "--top-p", .keep = {"@/model"}},
    {.name = "generate_top_k_negative", .build = mk_model, .argv = {G, "--top-k", "-3", NULL},
     .status = 2, .msg = "--top-k", .keep = {"@/model"}},
    {.name = "generate_repeat_penalty_zero", .build = mk_model,
     .argv = {G, "--repeat-penalty", "0", NULL}, .status = 2,
     .msg = "--repeat-penalty 0: must be > 0", .keep = {"@/model"}},
    {.name = "generate_seed_negative", .build = mk_model, .argv = {G, "--seed", "-1", NULL},
     .status = 2, .msg = "--seed", .keep = {"@/model"}},
    {.name = "generate_unknown_option", .build = mk_model, .argv = {G, "--beam", "4", NULL},
     .status = 2, .msg = "beam", .keep = {"@/model"}},
    {.name = "generate_threads_zero", .build = mk_model, .argv = {G, "--threads", "0", NULL},
     .status = 2, .msg = "gptq generate: error: --threads 0", .keep = {"@/model"}},
    /* -- genfast (issue 12): --linears auto|fast|f32 -- */
    {.name = "generate_linears_unknown", .build = mk_model,
     .argv = {G, "--linears", "exact", NULL}, .status = 2,
     .msg = "--linears exact: must be auto, fast or f32", .keep = {"@/model"}},
    {.name = "generate_linears_upper_case", .build = mk_model,
     .argv = {G, "--linears", "FAST", NULL}, .status = 2, .msg = "--linears FAST",
     .keep = {"@/model"}},
    {.name = "generate_linears_empty", .build = mk_model, .argv = {G, "--linears", "", NULL},
     .status = 2, .msg = "--linears : must be auto, fast or f32", .keep = {"@/model"}},
    {.name = "generate_linears_missing", .build = mk_model, .argv = {G, "--linears", NULL},
     .status = 2, .msg = "requires an argument", .keep = {"@/model"}},
    /* --no-join takes no value */
    {.name = "generate_no_join_with_a_value", .build = mk_model, .argv = {G, "--no-join=1", NULL},
     .status = 2, .msg = "option '--no-join' doesn't allow an argument", .keep = {"@/model"}},
    {.name = "generate_linears_fast_fp_model", .build = mk_model,
     .argv = {G, "--linears", "fast", NULL}, .status = 1,
     .msg = "has no GPTQ-packed linear: the fast linears have nothing to run",
     .keep = {"@/model"}},
    {.name = "generate_linears_fast_backend_without_it", .build = mk_ckpt,
     .argv = {"generate", "@/ck", "--prompt", "The kernel", "--linears", "fast", "--backend",
              "@/nofast.so", NULL},
     .status = 1, .msg = "backend nofast has no fast A16 matmul (matmul_q_fast)",
     .keep = {"@/ck"}},
#undef G
    /* -- api (issue 13) -- */
    /* --threads N on every command: [1, 1024], a whole integer */
    {.name = "threads_zero", .build = mk_model, .argv = {Q, "--threads", "0", NULL}, .status = 2,
     .msg = "--threads 0: must be an integer in [1, 1024]", .keep = {"@/model"}},
    {.name = "threads_negative", .build = mk_model, .argv = {Q, "--threads", "-4", NULL},
     .status = 2, .msg = "--threads -4", .keep = {"@/model"}},
    {.name = "threads_huge", .build = mk_model,
     .argv = {Q, "--threads", "99999999999999999999", NULL}, .status = 2,
     .msg = "--threads 99999999999999999999", .keep = {"@/model"}},
    {.name = "threads_above_limit", .build = mk_model, .argv = {Q, "--threads", "1025", NULL},
     .status = 2, .msg = "[1, 1024]", .keep = {"@/model"}},
    {.name = "threads_text", .build = mk_model, .argv = {Q, "--threads", "four", NULL},
     .status = 2, .msg = "--threads four", .keep = {"@/model"}},
    {.name = "threads_trailing", .build = mk_model, .argv = {Q, "--threads", "4x", NULL},
     .status = 2, .msg = "--threads 4x", .keep = {"@/model"}},
    {.name = "threads_empty", .build = mk_model, .argv = {Q, "--threads", "", NULL}, .status = 2,
     .msg = "--threads", .keep = {"@/model"}},
    {.name = "threads_float", .build = mk_model, .argv = {Q, "--threads", "2.5", NULL},
     .status = 2, .msg = "--threads 2.5", .keep = {"@/model"}},
    {.name = "threads_missing", .build = mk_model, .argv = {Q, "--threads", NULL}, .status = 2,
     .msg = "requires an argument", .keep = {"@/model"}},
    {.name = "threads_eval", .build = mk_model, .argv = {E, "--threads", "0", NULL}, .status = 2,
     .msg = "gptq eval: error: --threads 0", .keep = {"@/model"}},
    {.name = "threads_diff", .build = mk_model, .argv = {D, "--threads", "-1", NULL}, .status = 2,
     .msg = "gptq diff: error: --threads -1", .keep = {"@/model"}},
    {.name = "threads_layer", .argv = {"layer", "@/in.safetensors", "-o", "@/o", "--threads", "0",
                                       NULL},
     .status = 2, .msg = "gptq layer: error: --threads 0"},
    {.name = "threads_compare", .argv = {"compare", "@/a", "@/b", "--threads", "x", NULL},
     .status = 2, .msg = "gptq compare: error: --threads x"},
    {.name = "threads_matmul", .argv = {"matmul", "@/a", "--threads", "0", NULL}, .status = 2,
     .msg = "gptq matmul: error: --threads 0"},
    /* a Hugging Face hub id is no folder: only local folders are read, and how to get one */
    {.name = "hub_id_quantize",
     .argv = {"quantize", "meta-llama/Llama-3.2-1B", "-o", "@/out", "--method", "rtn", NULL},
     .status = 1, .msg = "huggingface-cli download meta-llama/Llama-3.2-1B --local-dir Llama-3.2-1B"},
    {.name = "hub_id_eval",
     .argv = {"eval", "Qwen/Qwen3-0.6B", "--text", "%DATA/text/eval.txt", NULL}, .status = 1,
     .msg = "reads only local model folders"},
    {.name = "hub_id_diff",
     .argv = {"diff", "org/model", "--calib", "%DATA/text/calib.txt", "--backends", "cpu,cpu",
              NULL},
     .status = 1, .msg = "git clone https://huggingface.co/org/model"},
    /* a plain missing path keeps the plain message */
    {.name = "missing_model_not_hub", .argv = {"eval", "./nope", "--text", "%DATA/text/eval.txt",
                                               NULL},
     .status = 1, .msg = "./nope/config.json: cannot open"},
    /* --backend cuda: the NVIDIA build is the hip plugin with an sm_NN offload_arch */
    {.name = "backend_cuda_advice", .build = mk_model, .argv = {Q, "--backend", "cuda", NULL},
     .status = 1, .msg = "-Dhip=enabled -Doffload_arch=sm_90", .keep = {"@/model"}},
    /* -- ecoformat (issue 13): gptq inspect's command line -- */
    {.name = "inspect_no_checkpoint", .argv = {"inspect", NULL}, .status = 2,
     .msg = "no checkpoint folder"},
    {.name = "inspect_two_checkpoints", .argv = {"inspect", "@", "@", NULL}, .status = 2,
     .msg = "more than one checkpoint folder"},
    {.name = "inspect_unknown_option", .argv = {"inspect", "@", "--yaml", NULL}, .status = 2,
     .msg = "yaml"},
    {.name = "inspect_missing_folder", .argv = {"inspect", "@/none", NULL}, .status = 1,
     .msg = "none: not a folder"},
    /* -- kernels: matmul --fast (issue 12) -- */
#define FAST "matmul", "@/q.safetensors", "-o", "@/y.safetensors", "--fast"
    {.name = "matmul_fast_backend_without_it", .build = mk_fast,
     .argv = {FAST, "-x", "@/x.safetensors", "--backend", "@/declines.so", NULL}, .status = 1,
     .msg = "backend declines has no fast A16 matmul (matmul_q_fast)",
     .keep = {"@/q.safetensors", "@/x.safetensors"}},
    {.name = "matmul_fast_x_wrong_width", .build = mk_fast,
     .argv = {FAST, "-x", "@/xw.safetensors", NULL}, .status = 1,
     .msg = "X must be (M, 128) for this module (in_features 128); it is 2-D with another width",
     .keep = {"@/q.safetensors"}},
    {.name = "matmul_fast_x_1d", .build = mk_fast, .argv = {FAST, "-x", "@/x1.safetensors", NULL},
     .status = 1, .msg = "it is 1-D", .keep = {"@/q.safetensors"}},
    {.name = "matmul_fast_takes_no_value", .build = mk_fast,
     .argv = {"matmul", "@/q.safetensors", "-x", "@/x.safetensors", "-o", "@/y.safetensors",
              "--fast=avx2", NULL},
     .status = 2, .msg = "--fast' doesn't allow an argument", .keep = {"@/q.safetensors"}},
    {.name = "matmul_fast_no_x", .build = mk_fast, .argv = {FAST, NULL}, .status = 2,
     .msg = "no activations (-x X.safetensors)", .keep = {"@/q.safetensors"}},
    {.name = "matmul_fast_output_is_input", .build = mk_fast,
     .argv = {"matmul", "@/q.safetensors", "-x", "@/x.safetensors", "-o", "@/x.safetensors",
              "--fast", NULL},
     .status = 1, .msg = "x.safetensors", .keep = {"@/q.safetensors", "@/x.safetensors"}},
    /* the HIP plugin's knobs of matmul_q_fast, each a bad value: refused with its name,
     * nothing written (run where the plugin loads, e.g. the device's build-gpu; skip
     * elsewhere) */
#define HIPROW(nm, var, want)                                                                    \
    {.name = "matmul_fast_hip_bad_" nm, .build = mk_fast,                                        \
     .argv = {FAST, "-x", "@/x.safetensors", "--backend", "hip", NULL}, .status = 1,             \
     .msg = want, .keep = {"@/q.safetensors", "@/x.safetensors", "@/y.safetensors"},             \
     .env = (const char *const[]){var, NULL}, .skip_on = HIP_ABSENT}
    HIPROW("w4a16", "GPTQ_HIP_W4A16=fastest", "GPTQ_HIP_W4A16=fastest is none of auto, simt, gemm, mma"),
    HIPROW("gvm", "GPTQ_HIP_GVM=smem", "GPTQ_HIP_GVM=smem is neither reg nor async"),
    HIPROW("pdl", "GPTQ_HIP_PDL=yes", "GPTQ_HIP_PDL=yes is neither 0 nor 1"),
#undef HIPROW
#undef FAST
    /* -- gar (issue 13): --act-group-aware excludes --desc-act and --group-size -1, in
     * either order and in every command that quantizes; refused before any work -- */
    {.name = "gar_with_desc_act", .build = mk_model,
     .argv = {Q, "--act-group-aware", "--desc-act", NULL}, .status = 2,
     .msg = "--act-group-aware and --desc-act exclude each other", .keep = {"@/model"}},
    {.name = "gar_after_desc_act", .build = mk_model,
     .argv = {Q, "--desc-act", "--act-group-aware", NULL}, .status = 2,
     .msg = "--act-group-aware and --desc-act exclude each other", .keep = {"@/model"}},
    {.name = "gar_group_size_row", .build = mk_model,
     .argv = {Q, "--group-size", "-1", "--act-group-aware", NULL}, .status = 2,
     .msg = "--act-group-aware needs a --group-size", .keep = {"@/model"}},
    {.name = "gar_layer_with_desc_act",
     .argv = {"layer", "@/in.safetensors", "-o", "@/o.safetensors", "--desc-act",
              "--act-group-aware", NULL},
     .status = 2, .msg = "--act-group-aware and --desc-act exclude each other"},
    {.name = "gar_diff_with_desc_act", .build = mk_model,
     .argv = {D, "--act-group-aware", "--desc-act", NULL}, .status = 2,
     .msg = "--act-group-aware and --desc-act exclude each other", .keep = {"@/model"}},
    {.name = "gar_takes_no_value", .build = mk_model,
     .argv = {Q, "--act-group-aware=1", NULL}, .status = 2, .msg = "act-group-aware",
     .keep = {"@/model"}},
    /* a rule's act_group_aware: a bool, never beside desc_act true or group_size -1; nor
     * on a module whose desc_act is on */
    {.name = "gar_dynamic_with_desc_act", .build = mk_model,
     .argv = {Q, "--dynamic", "{\"+:.*mlp\": {\"desc_act\": true, \"act_group_aware\": true}}",
              NULL},
     .status = 1, .msg = "dynamic rule \"+:.*mlp\": act_group_aware true with desc_act true",
     .keep = {"@/model"}},
    {.name = "gar_dynamic_group_row", .build = mk_model,
     .argv = {Q, "--dynamic",
              "{\"+:.*mlp\": {\"group_size\": -1, \"act_group_aware\": true}}", NULL},
     .status = 1, .msg = "act_group_aware true with group_size -1", .keep = {"@/model"}},
    {.name = "gar_dynamic_not_bool", .build = mk_model,
     .argv = {Q, "--dynamic", "{\"+:.*mlp\": {\"act_group_aware\": \"yes\"}}", NULL},
     .status = 1, .msg = "act_group_aware", .keep = {"@/model"}},
    {.name = "gar_dynamic_on_act_order_module", .build = mk_model,
     .argv = {Q, "--desc-act", "--dynamic", "{\"+:.*mlp\": {\"act_group_aware\": true}}",
              NULL},
     .status = 1, .msg = "model.layers.0.mlp.gate_proj: --act-group-aware and --desc-act",
     .keep = {"@/model"}},
#undef Q
#undef E
#undef D
};
CH_TABLE(hostile_args, args_table)
