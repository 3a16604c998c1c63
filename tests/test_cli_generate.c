/*
 * test_cli_generate.c — `gptq generate` as a user runs it (issue 12): the
 * streamed stdout against the library's final text, -n 0, EOS stops, seeds,
 * a GPTQ checkpoint, the timings line. The hostile rows are in
 * test_hostile_args.c and test_hostile_input.c under "generate".
 */
#include "cli_checks.h"

static char *tiny(char *buf) { return cc_data(buf, "tiny-llama"); }

/* The greedy continuation of prompt by the library: n tokens (EOS not
 * stopping it), the ids into ids[n] and the final text (malloc'd). */
static char *lib_greedy(const char *dir, const char *prompt, int n, int32_t *ids)
{
    gptq_backend *be = NULL;
    gptq_generator *g = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    cr_assert_eq(gptq_generator_open(dir, be, &g), GPTQ_OK, "%s", gptq_last_error());
    int32_t *p = NULL;
    int64_t np = 0;
    cr_assert_eq(gptq_generator_encode(g, prompt, strlen(prompt), &p, &np), GPTQ_OK);
    cr_assert_eq(gptq_generator_prefill(g, p, np, np + n), GPTQ_OK, "%s", gptq_last_error());
    gptq_sampling s;
    gptq_sampling_init(&s);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(gptq_generator_sample(g, &s, &ids[i]), GPTQ_OK);
        cr_assert_eq(gptq_generator_step(g, ids[i]), GPTQ_OK);
    }
    char *text = NULL;
    cr_assert_eq(gptq_generator_text(g, &text, NULL), GPTQ_OK);
    free(p);
    gptq_generator_close(g);
    gptq_backend_close(be);
    return text;
}

/* stdout is exactly the final text (what was streamed adds up to it); the
 * timings line is on stderr and stdout holds nothing else. tiny-llama's
 * EOS (0) is not among its first 24 greedy tokens here (checked). */
Test(cli_generate, stdout_is_the_final_text)
{
    char dir[1024];
    tiny(dir);
    int32_t ids[24];
    char *want = lib_greedy(dir, "The kernel", 24, ids);
    for (int i = 0; i < 24; i++) cr_assert_neq(ids[i], 0, "EOS among the tokens: a weak check");
    cli_result r;
    cc_ok(&r, "generate", dir, "--prompt", "The kernel", "-n", "24");
    cr_assert_str_eq(r.out, want, "stdout \"%s\", the library's text \"%s\"", r.out, want);
    cr_assert(strlen(want) > 10, "a short text: \"%s\"", want);
    cr_assert(strstr(r.err, "generated 24 tokens") && strstr(r.err, "tokens/s") &&
                  strstr(r.err, "stopped: -n"),
              "stderr: %s", r.err);
    ch_result_free(&r);
    free(want);
}

Test(cli_generate, n_zero)
{
    char dir[1024];
    cli_result r;
    cc_ok(&r, "generate", tiny(dir), "--prompt", "The kernel", "-n", "0");
    cr_assert_str_eq(r.out, "");
    cr_assert(strstr(r.err, "generated 0 tokens"), "%s", r.err);
    ch_result_free(&r);
}

/* A copy of tiny-llama whose generation_config.json names the first
 * greedy token that differs from all before it (k >= 1) as EOS (in a list,
 * after an id that never comes): the output is the text of the k tokens
 * before it, and stderr says it stopped at EOS. */
Test(cli_generate, eos_stops)
{
    char src[1024], tmp[512], dst[1024], p[1024];
    tiny(src);
    int32_t ids[16];
    free(lib_greedy(src, "The kernel", 16, ids));
    int k = 1;
    for (; k < 16; k++) {
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= ids[j] == ids[k];
        if (!seen) break;
    }
    cr_assert(k < 16, "16 greedy tokens of one kind: a weak check");
    ch_mkdtemp(tmp, "gen-eos");
    ch_join(dst, tmp, "model");
    ch_sh("cp -a '%s' '%s'", src, dst);
    char json[128];
    snprintf(json, sizeof json, "{\"eos_token_id\": [1535, %d]}", ids[k]);
    ch_write_str(ch_join(p, dst, "generation_config.json"), json);
    int32_t before[16];
    char *want = lib_greedy(dst, "The kernel", k, before);
    cli_result r;
    cc_ok(&r, "generate", dst, "--prompt", "The kernel", "-n", "16");
    cr_assert_str_eq(r.out, want);
    char gen[64];
    snprintf(gen, sizeof gen, "generated %d tokens", k);
    cr_assert(strstr(r.err, gen) && strstr(r.err, "stopped: eos"), "want \"%s\": %s", gen,
              r.err);
    ch_result_free(&r);
    free(want);
    ch_rm_tree(tmp);
}

/* The same seed, the same text; the prompt from a file gives what
 * --prompt gives. */
Test(cli_generate, seed_and_prompt_file)
{
    char dir[1024], tmp[512], pf[1024];
    tiny(dir);
    ch_mkdtemp(tmp, "gen-seed");
    ch_write_str(ch_join(pf, tmp, "p.txt"), "The kernel");
    cli_result a, b, c;
    cc_ok(&a, "generate", dir, "--prompt", "The kernel", "-n", "20", "--temperature", "0.9",
          "--top-k", "40", "--top-p", "0.9", "--repeat-penalty", "1.1", "--seed", "7");
    cc_ok(&b, "generate", dir, "--prompt-file", pf, "-n", "20", "--temperature", "0.9",
          "--top-k", "40", "--top-p", "0.9", "--repeat-penalty", "1.1", "--seed", "7");
    cc_ok(&c, "generate", dir, "--prompt", "The kernel", "-n", "20", "--temperature", "0.9",
          "--top-k", "40", "--top-p", "0.9", "--repeat-penalty", "1.1", "--seed", "8");
    cr_assert_str_eq(a.out, b.out);
    cr_assert_str_neq(a.out, c.out, "seeds 7 and 8 gave the same 20 tokens");
    ch_result_free(&a);
    ch_result_free(&b);
    ch_result_free(&c);
    ch_rm_tree(tmp);
}

/* GPTQ checkpoints (RTN 4-bit: v1 "gptq" symmetric, and gptq_v2 asymmetric
 * with 3-bit g32 as GPTQModel writes v2) generate through the reader of
 * eval; the CLI's greedy text is the library's on the same checkpoint. */
Test(cli_generate, gptq_checkpoints)
{
    char dir[1024], tmp[512], ck[1024];
    tiny(dir);
    ch_mkdtemp(tmp, "gen-ckpt");
    const char *const opts[2][6] = {{"--sym", "--bits", "4", "--format", "gptq", NULL},
                                   {"--asym", "--bits", "3", "--format", "gptq_v2", NULL}};
    for (int f = 0; f < 2; f++) {
        ch_join(ck, tmp, f ? "v2" : "v1");
        cc_ok_run("quantize", dir, "-o", ck, "--method", "rtn", "--quiet", "--group-size", "32",
                  opts[f][0], opts[f][1], opts[f][2], opts[f][3], opts[f][4]);
        int32_t ids[12];
        char *want = lib_greedy(ck, "The kernel", 12, ids);
        cli_result r;
        cc_ok(&r, "generate", ck, "--prompt", "The kernel", "-n", "12");
        cr_assert_str_eq(r.out, want, "%s", opts[f][4]);
        cr_assert(strlen(r.out) > 0);
        ch_result_free(&r);
        free(want);
    }
    ch_rm_tree(tmp);
}

/* A backend without attention_kv (the test plugin that declines it) is
 * refused before any work, naming the op. */
Test(cli_generate, backend_without_attention_kv)
{
    char dir[1024], plug[1024];
    cli_result r;
    ch_run(&r, 120.0, "generate", tiny(dir), "--prompt", "x", "--backend",
           cc_plugin(plug, "declines"), NULL);
    ch_expect(&r, 1, "attention_kv");
    ch_result_free(&r);
}

/* A prompt that leaves k < -n positions of max_position_embeddings (256):
 * k tokens are made, a note says so, and the reason is "positions". */
Test(cli_generate, positions_end_generation)
{
    char dir[1024], tmp[512], pf[1024];
    tiny(dir);
    char text[4096] = "";
    for (int i = 0; i < 48; i++) strcat(text, "the kernel ");
    gptq_backend *be = NULL;
    gptq_generator *g = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    cr_assert_eq(gptq_generator_open(dir, be, &g), GPTQ_OK);
    int32_t *ids = NULL;
    int64_t np = 0;
    cr_assert_eq(gptq_generator_encode(g, text, strlen(text), &ids, &np), GPTQ_OK);
    const int64_t k = gptq_generator_max_positions(g) - np;
    cr_assert(k > 0 && k < 40, "the prompt is %lld tokens: pick another length", (long long)np);
    free(ids);
    gptq_generator_close(g);
    gptq_backend_close(be);
    ch_mkdtemp(tmp, "gen-pos");
    ch_write_str(ch_join(pf, tmp, "p.txt"), text);
    cli_result r;
    cc_ok(&r, "generate", dir, "--prompt-file", pf, "-n", "40");
    char want[128];
    snprintf(want, sizeof want, "only %lld new tokens fit", (long long)k);
    cr_assert(strstr(r.err, want), "want \"%s\": %s", want, r.err);
    cr_assert(strstr(r.err, "stopped: positions") || strstr(r.err, "stopped: eos"), "%s", r.err);
    ch_result_free(&r);
    ch_rm_tree(tmp);
}
