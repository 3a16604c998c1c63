/*
 * test_hostile_input.c — hostile-input rows for the readers (issue 9):
 * FIFOs, directories, devices and symlink loops where a file is read;
 * empty files; duplicate JSON keys; absurd config sizes; models that lack
 * a tensor, or hold one of the wrong shape or dtype, or a layer more than
 * their config says; tokenizers with impossible ids; and the messages for
 * all of it. Each row runs the built `gptq` (tests/cli_harness.h): it must
 * finish within its limit (a FIFO must never be waited on), exit with the
 * status and message given, and leave the input model byte-identical.
 *
 * Inputs are made per row from data/tiny-llama (3 layers, D 256, V 1536,
 * BF16) by edit.py below: it rewrites a safetensors file (drop a tensor,
 * change a shape or dtype with the same bytes, copy a layer, repeat a
 * header key) or a JSON file (set or delete a key, or insert a duplicate
 * key as raw text, which Python's json would otherwise merge).
 */
#include "cli_harness.h"

#include "synth_model.h"

static const char k_edit_py[] =
    "import json, struct, sys\n"
    "def rd(p):\n"
    "    b = open(p, 'rb').read()\n"
    "    n = struct.unpack('<Q', b[:8])[0]\n"
    "    h = json.loads(b[8:8 + n])\n"
    "    meta = h.pop('__metadata__', None)\n"
    "    d = b[8 + n:]\n"
    "    t = {k: [v['dtype'], v['shape'], d[v['data_offsets'][0]:v['data_offsets'][1]]]\n"
    "         for k, v in h.items()}\n"
    "    return meta, t\n"
    "def wr(p, meta, t, dup=None):\n"
    "    h, parts, off = {}, [], 0\n"
    "    if meta is not None: h['__metadata__'] = meta\n"
    "    for k in sorted(t):\n"
    "        dt, s, b = t[k]\n"
    "        h[k] = {'dtype': dt, 'shape': s, 'data_offsets': [off, off + len(b)]}\n"
    "        parts.append(b)\n"
    "        off += len(b)\n"
    "    hs = json.dumps(h)\n"
    "    if dup: hs = '{' + json.dumps({dup: h[dup]})[1:-1] + ', ' + hs[1:]\n"
    "    hb = hs.encode()\n"
    "    hb += b' ' * (-len(hb) % 8)\n"
    "    open(p, 'wb').write(struct.pack('<Q', len(hb)) + hb + b''.join(parts))\n"
    "def jset(o, path, v, delete):\n"
    "    ks = path.split('.')\n"
    "    for k in ks[:-1]: o = o.setdefault(k, {})\n"
    "    if delete: o.pop(ks[-1], None)\n"
    "    else: o[ks[-1]] = v\n"
    "mode, p = sys.argv[1], sys.argv[2]\n"
    "if mode == 'st':\n"
    "    meta, t = rd(p)\n"
    "    dup = None\n"
    "    for op in sys.argv[3:]:\n"
    "        a = op.split(':')\n"
    "        if a[0] == 'drop': del t[a[1]]\n"
    "        elif a[0] == 'shape': t[a[1]][1] = [int(x) for x in a[2].split(',')]\n"
    "        elif a[0] == 'dtype': t[a[1]][0] = a[2]\n"
    "        elif a[0] == 'copyprefix':\n"
    "            for k in [k for k in t if k.startswith(a[1])]:\n"
    "                t[a[2] + k[len(a[1]):]] = list(t[k])\n"
    "        elif a[0] == 'dupkey': dup = a[1]\n"
    "        else: sys.exit('unknown op ' + op)\n"
    "    wr(p, meta, t, dup)\n"
    "elif mode == 'json':\n"
    "    o = json.load(open(p))\n"
    "    for op in sys.argv[3:]:\n"
    "        a = op.split(':', 2)\n"
    "        jset(o, a[1], json.loads(a[2]) if a[0] == 'set' else None, a[0] == 'del')\n"
    "    json.dump(o, open(p, 'w'), indent=2)\n"
    "elif mode == 'dup':\n"
    "    # dup FILE OBJ KEY VALUE: '\"KEY\": VALUE, ' first in object OBJ ('' top level)\n"
    "    s = open(p).read()\n"
    "    obj, key, val = sys.argv[3:6]\n"
    "    at = s.index('{') + 1 if not obj else s.index('\"%s\": {' % obj) + len(obj) + 5\n"
    "    s = s[:at] + '\"%s\": %s, ' % (key, val) + s[at:]\n"
    "    open(p, 'w').write(s)\n"
    "elif mode == 'index':\n"
    "    # index DIR SHARD: model.safetensors becomes SHARD, named by an index\n"
    "    meta, t = rd(p + '/model.safetensors')\n"
    "    import os\n"
    "    os.rename(p + '/model.safetensors', p + '/' + sys.argv[3])\n"
    "    m = {'metadata': {}, 'weight_map': {k: sys.argv[3] for k in t}}\n"
    "    json.dump(m, open(p + '/model.safetensors.index.json', 'w'), indent=2)\n"
    "elif mode == 'x':\n"
    "    m, k = int(sys.argv[3]), int(sys.argv[4])\n"
    "    v = struct.pack('<%df' % (m * k), *[((i * 7) % 13 - 6) / 8 for i in range(m * k)])\n"
    "    wr(p, None, {'X': ['F32', [m, k], v]})\n"
    "else:\n"
    "    sys.exit('unknown mode ' + mode)\n";

/* ------------------------------------------------------------------ */
/* Builders                                                            */
/* ------------------------------------------------------------------ */

/* @/model: a copy of data/tiny-llama; @/edit.py */
static void mk_model(const char *d)
{
    ch_sh("cp -a '%s/data/tiny-llama' '%s/model'", ch_source_root(), d);
    char p[1024];
    ch_write_str(ch_join(p, d, "edit.py"), k_edit_py);
}

/* Run edit.py in the row's folder: ed(d, "st model/model.safetensors drop:lm_head.weight") */
__attribute__((format(printf, 2, 3))) static void ed(const char *d, const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    ch_sh("cd '%s' && python3 edit.py %s", d, args);
}

/* @/model and @/ckpt, its 4-bit RTN checkpoint made by the built gptq */
static void mk_ckpt(const char *d)
{
    mk_model(d);
    ch_sh("cd '%s' && '%s' quantize model -o ckpt --method rtn --quiet", d, ch_cli());
}

/* @/x.safetensors: X (2, 256) F32 */
static void mk_x(const char *d) { ed(d, "x x.safetensors 2 256"); }

#define BUILD(fn, ...)                \
    static void fn(const char *d)     \
    {                                 \
        mk_model(d);                  \
        __VA_ARGS__;                  \
    }
#define BUILD_CKPT(fn, ...)           \
    static void fn(const char *d)     \
    {                                 \
        mk_ckpt(d);                   \
        __VA_ARGS__;                  \
    }

/* "model/NAME" replaced by a FIFO, a folder, a symlink loop, nothing */
#define FIFO_AT(rel) ch_sh("cd '%s' && rm -f " rel " && mkfifo " rel, d)
#define DIR_AT(rel) ch_sh("cd '%s' && rm -f " rel " && mkdir " rel, d)
#define LOOP_AT(rel) ch_sh("cd '%s' && rm -f " rel " && ln -s $(basename " rel ") " rel, d)
#define EMPTY_AT(rel) ch_sh("cd '%s' && : > " rel, d)

/* --- FIFOs ---------------------------------------------------------- */
static void b_fifo_plain(const char *d) { ch_sh("cd '%s' && mkfifo in.fifo", d); }
BUILD(b_fifo_calib, ch_sh("cd '%s' && mkfifo calib.fifo", d))
BUILD(b_fifo_tok, FIFO_AT("model/tokenizer.json"))
BUILD(b_fifo_tokcfg, FIFO_AT("model/tokenizer_config.json"))
BUILD(b_fifo_shard, FIFO_AT("model/model.safetensors"))
BUILD(b_fifo_config, FIFO_AT("model/config.json"))
BUILD(b_fifo_qcfg, FIFO_AT("model/quantize_config.json"))
BUILD(b_fifo_index, ch_sh("cd '%s' && rm model/model.safetensors && mkfifo "
                          "model/model.safetensors.index.json", d))
BUILD(b_fifo_shard_in_index, ed(d, "index model model-00001-of-00001.safetensors");
      FIFO_AT("model/model-00001-of-00001.safetensors"))
BUILD(b_fifo_text, ch_sh("cd '%s' && mkfifo text.fifo", d))
BUILD_CKPT(b_fifo_x, mk_x(d); FIFO_AT("x.safetensors"))

/* --- folders, devices, symlink loops ------------------------------- */
static void b_dir_plain(const char *d) { ch_sh("cd '%s' && mkdir in.dir", d); }
BUILD(b_dir_calib, ch_sh("cd '%s' && mkdir calib.dir", d))
BUILD(b_dir_shard, DIR_AT("model/model.safetensors"))
BUILD(b_dir_config, DIR_AT("model/config.json"))
BUILD(b_dir_tok, DIR_AT("model/tokenizer.json"))
BUILD(b_dir_text, ch_sh("cd '%s' && mkdir text.dir", d))
BUILD(b_loop_shard, LOOP_AT("model/model.safetensors"))
BUILD(b_loop_config, LOOP_AT("model/config.json"))
BUILD(b_loop_tok, LOOP_AT("model/tokenizer.json"))
BUILD(b_loop_calib, ch_sh("cd '%s' && ln -s calib.txt calib.txt", d))
BUILD(b_dangling_shard,
      ch_sh("cd '%s' && rm model/model.safetensors && ln -s gone.safetensors "
            "model/model.safetensors", d))
static void b_loop_plain(const char *d) { ch_sh("cd '%s' && ln -s in.loop in.loop", d); }

/* --- --calib-bytes reads only what it keeps ------------------------- */
/* 30 kB of text, then 64 GiB of (sparse) zero bytes: reading it all would
 * take minutes and more memory than the machine has. */
BUILD(b_sparse_text, ch_sh("cd '%s' && head -c 30000 '%s/data/text/calib.txt' > big.txt && "
                           "truncate -s 64G big.txt", d, ch_source_root()))
/* JSON lines, then 64 GiB of zeros without a newline (one endless line) */
BUILD(b_sparse_jsonl,
      ch_sh("cd '%s' && head -c 40000 '%s/data/text/calib.txt' | python3 -c \"import json,sys\n"
            "for l in sys.stdin.read().split('\\n'): print(json.dumps({'text': l}))\" > big.jsonl "
            "&& truncate -s 64G big.jsonl", d, ch_source_root()))

/* --- empty files ---------------------------------------------------- */
BUILD(b_empty_calib, EMPTY_AT("calib.txt"))
BUILD(b_space_calib, ch_sh("cd '%s' && printf '  \\n\\n\\t ' > calib.txt", d))
BUILD(b_empty_jsonl, ch_sh("cd '%s' && printf '\\n\\n' > calib.jsonl", d))
BUILD(b_empty_config, EMPTY_AT("model/config.json"))
BUILD(b_empty_tok, EMPTY_AT("model/tokenizer.json"))
BUILD(b_empty_shard, EMPTY_AT("model/model.safetensors"))
BUILD(b_empty_index, ch_sh("cd '%s' && rm model/model.safetensors && : > "
                           "model/model.safetensors.index.json", d))
static void b_empty_plain(const char *d) { ch_sh("cd '%s' && : > in.safetensors", d); }

/* --- duplicate keys ------------------------------------------------- */
BUILD(b_dup_config, ed(d, "dup model/config.json '' vocab_size 99"))
BUILD(b_dup_config_nested, ed(d, "json model/config.json 'set:rope_scaling:{\"rope_type\": \"default\"}'");
      ed(d, "dup model/config.json rope_scaling rope_type '\"linear\"'"))
BUILD(b_dup_tok, ed(d, "dup model/tokenizer.json vocab '!' 7"))
BUILD(b_dup_tok_top, ed(d, "dup model/tokenizer.json '' normalizer null"))
BUILD(b_dup_tokcfg, ed(d, "dup model/tokenizer_config.json '' add_bos_token true"))
BUILD(b_dup_index, ed(d, "index model model-00001-of-00001.safetensors");
      ed(d, "dup model/model.safetensors.index.json weight_map lm_head.weight "
            "'\"model-00001-of-00001.safetensors\"'"))
BUILD(b_dup_jsonl, ch_sh("cd '%s' && printf '{\"text\": \"a b c\", \"text\": \"d e f\"}\\n' > "
                         "calib.jsonl", d))
static void b_dup_header(const char *d)
{
    mk_model(d);
    ch_sh("cp '%s/model/model.safetensors' '%s/in.safetensors'", d, d);
    ed(d, "st in.safetensors dupkey:lm_head.weight");
}
BUILD_CKPT(b_dup_ckpt_quant, ed(d, "dup ckpt/config.json quantization_config bits 8"))
BUILD_CKPT(b_dup_qcfg, ed(d, "json ckpt/config.json del:quantization_config");
           ed(d, "dup ckpt/quantize_config.json '' bits 8"))

/* --- absurd config values ------------------------------------------- */
#define CFG(fn, ops) BUILD(fn, ed(d, "json model/config.json " ops))
CFG(b_cfg_layers, "set:num_hidden_layers:1e9")
CFG(b_cfg_vocab, "set:vocab_size:2147483647")
CFG(b_cfg_hidden, "set:hidden_size:1000000")
CFG(b_cfg_inter, "set:intermediate_size:100000000")
CFG(b_cfg_heads, "set:num_attention_heads:100000")
CFG(b_cfg_kv, "set:num_key_value_heads:100000")
CFG(b_cfg_headdim, "set:head_dim:100000")
CFG(b_cfg_maxpos, "set:max_position_embeddings:1e12")
CFG(b_cfg_negative, "set:hidden_size:-256")
CFG(b_cfg_fraction, "set:num_hidden_layers:2.5")
CFG(b_cfg_vocab_x_hidden, "set:vocab_size:16777216 set:hidden_size:131072")
CFG(b_cfg_inter_x_hidden, "set:intermediate_size:1048576 set:hidden_size:131072")
CFG(b_cfg_layers_total,
    "set:num_hidden_layers:1024 set:hidden_size:131072 set:intermediate_size:131072")
static void b_cfg_opt_ffn(const char *d)
{
    ch_sh("mkdir '%s/model'", d);
    char p[1024];
    ch_write_str(ch_join(p, d, "model/config.json"),
                 "{\"architectures\": [\"OPTForCausalLM\"], \"hidden_size\": 64, "
                 "\"ffn_dim\": 100000000, \"num_hidden_layers\": 2, "
                 "\"num_attention_heads\": 4, \"vocab_size\": 96}");
}

/* --- incomplete models ---------------------------------------------- */
#define ST(fn, ops) BUILD(fn, ed(d, "st model/model.safetensors " ops))
ST(b_no_norm, "drop:model.norm.weight")
ST(b_no_lm_head, "drop:lm_head.weight")
ST(b_no_q_proj, "drop:model.layers.1.self_attn.q_proj.weight")
ST(b_no_embed, "drop:model.embed_tokens.weight")
ST(b_no_post_norm, "drop:model.layers.2.post_attention_layernorm.weight")
ST(b_shape_q, "shape:model.layers.0.self_attn.q_proj.weight:128,512")
ST(b_shape_norm, "shape:model.norm.weight:2,128")
ST(b_shape_embed, "shape:model.embed_tokens.weight:3072,128")
ST(b_dtype_norm, "dtype:model.norm.weight:I16")
ST(b_dtype_q, "dtype:model.layers.0.mlp.up_proj.weight:I16")
ST(b_dtype_lm_head, "dtype:lm_head.weight:I16")
ST(b_extra_layer, "copyprefix:model.layers.2.:model.layers.3.")
CFG(b_fewer_layers, "set:num_hidden_layers:2")
CFG(b_more_layers, "set:num_hidden_layers:4")
BUILD(b_tied_no_lm_head, ed(d, "st model/model.safetensors drop:lm_head.weight");
      ed(d, "json model/config.json set:tie_word_embeddings:true"))
BUILD_CKPT(b_ckpt_gidx_shape,
           ed(d, "st ckpt/model.safetensors shape:model.layers.0.self_attn.q_proj.g_idx:2,128"))
BUILD_CKPT(b_ckpt_no_qzeros, ed(d, "st ckpt/model.safetensors drop:model.layers.1.mlp.up_proj.qzeros"))
BUILD_CKPT(b_ckpt_scales_dtype,
           ed(d, "st ckpt/model.safetensors dtype:model.layers.2.mlp.down_proj.scales:BF16"))

/* --- Qwen3: the synthetic one of synth_model.h (q_norm, k_norm (32)) -- */
static void mk_qwen3(const char *d)
{
    char p[1024];
    ch_sh("mkdir '%s/model'", d);
    cr_assert_eq(syn_write_model(ch_join(p, d, "model"), SYN_QWEN3, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    ch_write_str(ch_join(p, d, "edit.py"), k_edit_py);
}
#define QWEN3_ST(fn, ops)                              \
    static void fn(const char *d)                      \
    {                                                  \
        mk_qwen3(d);                                   \
        ed(d, "st model/model.safetensors " ops);      \
    }
QWEN3_ST(b_qwen3_shape_q_norm, "shape:model.layers.0.self_attn.q_norm.weight:2,16")
QWEN3_ST(b_qwen3_no_k_norm, "drop:model.layers.1.self_attn.k_norm.weight")

/* --- tokenizers ----------------------------------------------------- */
#define TOK(fn, ops) BUILD(fn, ed(d, "json model/tokenizer.json " ops))
TOK(b_tok_big_id, "'set:model.vocab.zzz:2147483647'")
TOK(b_tok_neg_id, "'set:model.vocab.zzz:-1'")
TOK(b_tok_empty_vocab, "'set:model.vocab:{}' 'set:model.merges:[]' 'set:added_tokens:[]'")
TOK(b_tok_added_big_id,
    "'set:added_tokens:[{\"id\": 2147483647, \"content\": \"<x>\", \"special\": true}]'")

/* --- matmul on our own shard ---------------------------------------- */
BUILD_CKPT(b_matmul_shard, mk_x(d))
BUILD_CKPT(b_matmul_shard_noquant, mk_x(d); ed(d, "json ckpt/config.json del:quantization_config");
           ch_sh("rm '%s/ckpt/quantize_config.json'", d))
BUILD_CKPT(b_matmul_shard_qcfg_only, mk_x(d);
           ed(d, "json ckpt/config.json del:quantization_config"))

/* -- Phi-3 (issue 11): the synthetic one of synth_model.h (fused qkv_proj
 * (128, 64) and gate_up_proj, 8 of 16 dims rotating, longrope) -- */
static void mk_phi3(const char *d)
{
    char p[1024];
    ch_sh("mkdir '%s/model'", d);
    cr_assert_eq(syn_write_model(ch_join(p, d, "model"), SYN_PHI3, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    ch_write_str(ch_join(p, d, "edit.py"), k_edit_py);
}
static void b_phi3_shape_qkv(const char *d)
{
    mk_phi3(d);
    ed(d, "st model/model.safetensors shape:model.layers.1.self_attn.qkv_proj.weight:64,128");
}
static void b_phi3_bad_prf(const char *d)
{
    mk_phi3(d);
    ed(d, "json model/config.json set:partial_rotary_factor:0.7");
}

/* -- rope scaling (issue 11) -- */
#define ROPE(fn, obj) CFG(fn, "'set:rope_scaling:" obj "'")
ROPE(b_rope_type, "{\"rope_type\": \"llama4\", \"factor\": 8}")
ROPE(b_rope_negative, "{\"rope_type\": \"linear\", \"factor\": -8}")
ROPE(b_rope_no_factor, "{\"rope_type\": \"llama3\", \"low_freq_factor\": 1, "
                       "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 64}")
ROPE(b_rope_string, "{\"rope_type\": \"dynamic\", \"factor\": \"eight\"}")
ROPE(b_rope_longrope, "{\"rope_type\": \"longrope\", \"short_factor\": [1], "
                      "\"long_factor\": [1]}")

/* -- sliding windows (issue 11): tiny-llama (3 layers) as Mistral / Qwen2 -- */
#define MISTRAL "'set:architectures:[\"MistralForCausalLM\"]' "
#define QWEN2 "'set:architectures:[\"Qwen2ForCausalLM\"]' set:use_sliding_window:true "
CFG(b_sw_negative, MISTRAL "set:sliding_window:-4")
CFG(b_sw_string, MISTRAL "'set:sliding_window:\"4k\"'")
CFG(b_sw_max_layers, QWEN2 "set:sliding_window:16 set:max_window_layers:-1")
CFG(b_sw_types_short, QWEN2 "set:sliding_window:16 'set:layer_types:[\"full_attention\"]'")
CFG(b_sw_types_unknown, QWEN2 "set:sliding_window:16 'set:layer_types:[\"full_attention\", "
                        "\"chunked_attention\", \"sliding_attention\"]'")
CFG(b_sw_types_number, QWEN2 "set:sliding_window:16 'set:layer_types:[0, 1, 2]'")
CFG(b_sw_types_no_window, "'set:architectures:[\"Qwen2ForCausalLM\"]' "
                          "'set:layer_types:[\"full_attention\", \"sliding_attention\", "
                          "\"full_attention\"]'")
/* a window shorter than the sequence runs (it used to be refused) */
CFG(b_sw_runs, MISTRAL "set:sliding_window:16")

/* -- gemma (issue 11): tests/data/families/gemma2 and gemma3 (transformers
 * 5 configs, tokenizer links followed) with one config key broken -- */
static void mk_gemma(const char *d, const char *fam)
{
    char p[1024];
    ch_sh("cp -rL '%s/tests/data/families/%s' '%s/model' && rm '%s/model/refs.safetensors'",
          ch_source_root(), fam, d, d);
    ch_write_str(ch_join(p, d, "edit.py"), k_edit_py);
}
#define GEMMA(fn, fam, ops)                                 \
    static void fn(const char *d)                           \
    {                                                       \
        mk_gemma(d, fam);                                   \
        ed(d, "json model/config.json " ops);               \
    }
GEMMA(b_gemma_types, "gemma2", "'set:layer_types:[\"sliding_attention\", \"chunked_attention\"]'")
GEMMA(b_gemma_attn_cap, "gemma2", "set:attn_logit_softcapping:-2")
GEMMA(b_gemma_final_cap, "gemma2", "set:final_logit_softcapping:0")
GEMMA(b_gemma_qpas, "gemma2", "set:query_pre_attn_scalar:0")
GEMMA(b_gemma_act, "gemma2", "'set:hidden_activation:\"gelu\"'")
GEMMA(b_gemma_bidir, "gemma2", "set:use_bidirectional_attention:true")
GEMMA(b_gemma_sw_null, "gemma2", "set:sliding_window:null")
GEMMA(b_gemma3_rope_type, "gemma3", "'set:rope_parameters.sliding_attention.rope_type:\"su\"'")
GEMMA(b_gemma3_rope_layer, "gemma3",
      "'set:rope_parameters.chunked_attention:{\"rope_type\": \"default\"}'")
GEMMA(b_gemma3_rope_flat, "gemma3",
      "'set:rope_parameters:{\"rope_type\": \"linear\", \"factor\": 8}'")
GEMMA(b_gemma3_pattern, "gemma3", "del:layer_types set:sliding_window_pattern:0")
GEMMA(b_gemma3_multimodal, "gemma3", "'set:architectures:[\"Gemma3ForConditionalGeneration\"]'")
/* --- generate (issue 12) --------------------------------------------- */
BUILD(b_gen_prompt_fifo, ch_sh("cd '%s' && mkfifo p.fifo", d))
BUILD(b_gen_prompt_dir, ch_sh("cd '%s' && mkdir p.d", d))
BUILD(b_gen_prompt_empty, EMPTY_AT("p.txt"))
BUILD(b_gen_prompt_not_utf8, ch_sh("cd '%s' && printf 'The \\377\\376 kernel' > p.txt", d))
/* 400 words: more tokens than tiny-llama's 256 positions */
BUILD(b_gen_prompt_long,
      ch_sh("cd '%s' && for i in $(seq 400); do printf 'kernel '; done > p.txt", d))
BUILD(b_gen_eos_string, ch_sh("cd '%s' && printf '{\"eos_token_id\": \"x\"}' > "
                              "model/generation_config.json", d))
BUILD(b_gen_eos_out_of_range, ch_sh("cd '%s' && printf '{\"eos_token_id\": [0, 99999]}' > "
                                    "model/generation_config.json", d))
BUILD(b_gen_genconfig_fifo, FIFO_AT("model/generation_config.json"))

/* ------------------------------------------------------------------ */
/* The rows                                                            */
/* ------------------------------------------------------------------ */

#define M "@/model"
#define CK "@/ckpt"
#define CALIB "%DATA/text/calib.txt"
#define TEXT "%DATA/text/eval.txt"
/* quantize with RTN (no tokenizer, no calibration) / with GPTQ, small */
#define Q_RTN "quantize", M, "-o", "@/out", "--method", "rtn"
#define Q_GPTQ(calib) "quantize", M, "-o", "@/out", "--calib", calib, "--nsamples", "2", \
                      "--seqlen", "64"
#define EVAL(dir) "eval", dir, "--text", TEXT, "--max-windows", "1"
#define DIFF "diff", M, "--backends", "cpu,cpu", "--calib", CALIB, "--nsamples", "2", \
             "--seqlen", "64"
#define MATMUL_SHARD "matmul", CK "/model.safetensors", "--module", \
                     "model.layers.0.self_attn.q_proj", "-x", "@/x.safetensors", "-o", "@/y.safetensors"
#define NOT_REG "not a regular file"
#define LOOP_MSG "Too many levels of symbolic links"

/* -- per-module control (issue 11) -- */
/* @/model and @/dyn.json, a --dynamic file that is not JSON */
static void b_dynamic_not_json(const char *d)
{
    mk_model(d);
    char p[1024];
    ch_write_str(ch_join(p, d, "dyn.json"), "-:model.layers.0: skip\n");
}

/* @/model whose config.json carries a quantization_config "dynamic" with a
 * bad regex: eval refuses it naming the file and the rule */
static void b_ckpt_dynamic_bad_regex(const char *d)
{
    mk_ckpt(d);
    ch_sh("cd '%s' && python3 -c \"import json; p='ckpt/config.json'; c=json.load(open(p)); "
          "c['quantization_config']['dynamic']={'+:model(': {'bits': 8}}; "
          "json.dump(c, open(p, 'w'))\"", d);
}

/* -- ecoformat (issue 13): gptq inspect's inputs, the format keys, the
 * group-size limit -- */
/* @/ckpt without config.json or quantize_config.json */
BUILD_CKPT(b_eco_no_config, ch_sh("cd '%s' && rm ckpt/config.json ckpt/quantize_config.json", d))
BUILD_CKPT(b_eco_bits_string, ed(d, "json ckpt/config.json 'set:quantization_config.bits:\"four\"'"))
BUILD_CKPT(b_eco_no_qweight,
           ed(d, "st ckpt/model.safetensors drop:model.layers.1.mlp.up_proj.qweight"))
BUILD_CKPT(b_eco_truncated, ch_sh("cd '%s' && truncate -s 100000 ckpt/model.safetensors", d))
BUILD_CKPT(b_eco_format_unknown,
           ed(d, "json ckpt/config.json 'set:quantization_config.checkpoint_format:\"gptq_v9\"' "
                 "'set:quantization_config.format:\"gptq_v9\"'"))
BUILD_CKPT(b_eco_format_disagree,
           ed(d, "json ckpt/config.json 'set:quantization_config.format:\"gptq_v2\"'"))
BUILD_CKPT(b_eco_skip_rule_on_qweight,
           ed(d, "json ckpt/config.json "
                 "'set:quantization_config.dynamic:{\"-:model\\\\.layers\\\\.0\\\\.mlp\\\\.up_proj$\": {}}'"))
/* @/ckpt quantized with one group per row, its config then saying group
 * 512: one group of 256 (or 384) inputs, as the tensors hold */
static void b_eco_group_over_in(const char *d)
{
    mk_model(d);
    ch_sh("cd '%s' && '%s' quantize model -o ckpt --method rtn --group-size -1 --quiet", d,
          ch_cli());
    ed(d, "json ckpt/config.json 'set:quantization_config.group_size:512'");
}

/* -- gar (issue 13) -- */
/* @/ckpt whose quantization_config says act_group_aware (top level, or in meta where
 * GPTQModel writes it) true beside desc_act true, or a non-bool */
static void b_ckpt_gar(const char *d, const char *edit)
{
    mk_ckpt(d);
    ch_sh("cd '%s' && python3 -c \"import json; p='ckpt/config.json'; c=json.load(open(p)); "
          "q=c['quantization_config']; %s; json.dump(c, open(p, 'w'))\"", d, edit);
}
static void b_ckpt_gar_desc(const char *d)
{
    b_ckpt_gar(d, "q['desc_act']=True; q['act_group_aware']=True");
}
static void b_ckpt_gar_meta_desc(const char *d)
{
    b_ckpt_gar(d, "q['desc_act']=True; q['meta']['act_group_aware']=True");
}
static void b_ckpt_gar_text(const char *d) { b_ckpt_gar(d, "q['act_group_aware']='yes'"); }
/* GPTQModel's own spelling: meta.act_group_aware true, desc_act false: read as it is */
static void b_ckpt_gar_meta_ok(const char *d)
{
    b_ckpt_gar(d, "q['desc_act']=False; q['meta']['act_group_aware']=True; "
                  "q['dynamic']={'+:.*mlp': {'act_group_aware': False}}");
}

static hostile_case input_table[] = {
    /* FIFOs: each refused at once (limit 10 s; a blocking open would hang) */
    {.name = "fifo_layer_input", .build = b_fifo_plain,
     .argv = {"layer", "@/in.fifo", "-o", "@/out.safetensors", NULL}, .status = 1,
     .msg = "@/in.fifo: " NOT_REG " (a FIFO)", .keep = {"@/in.fifo"}, .timeout = 10},
    {.name = "fifo_calib", .build = b_fifo_calib,
     .argv = {Q_GPTQ("@/calib.fifo"), NULL}, .status = 1,
     .msg = "calib.fifo: " NOT_REG " (a FIFO)", .keep = {M, "@/calib.fifo"}, .timeout = 10},
    {.name = "fifo_tokenizer_json_quantize", .build = b_fifo_tok,
     .argv = {Q_GPTQ(CALIB), NULL}, .status = 1,
     .msg = "tokenizer.json: " NOT_REG " (a FIFO)", .keep = {M}, .timeout = 10},
    {.name = "fifo_tokenizer_json_eval", .build = b_fifo_tok, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "tokenizer.json: " NOT_REG " (a FIFO)", .keep = {M}, .timeout = 10},
    {.name = "fifo_tokenizer_config", .build = b_fifo_tokcfg, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "tokenizer_config.json: " NOT_REG " (a FIFO)", .keep = {M},
     .timeout = 10},
    {.name = "fifo_shard", .build = b_fifo_shard, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "model.safetensors: " NOT_REG " (a FIFO)", .keep = {M}, .timeout = 10},
    {.name = "fifo_shard_eval", .build = b_fifo_shard, .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "model.safetensors: " NOT_REG " (a FIFO)", .keep = {M}, .timeout = 10},
    {.name = "fifo_config_json", .build = b_fifo_config, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "config.json: " NOT_REG " (a FIFO)", .keep = {M}, .timeout = 10},
    {.name = "fifo_quantize_config_json", .build = b_fifo_qcfg, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "quantize_config.json: " NOT_REG " (a FIFO)", .keep = {M},
     .timeout = 10},
    {.name = "fifo_index_json", .build = b_fifo_index, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "model.safetensors.index.json: " NOT_REG " (a FIFO)", .keep = {M}, .timeout = 10},
    {.name = "fifo_shard_in_index", .build = b_fifo_shard_in_index, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "model-00001-of-00001.safetensors: " NOT_REG " (a FIFO)",
     .keep = {M}, .timeout = 10},
    {.name = "fifo_eval_text", .build = b_fifo_text,
     .argv = {"eval", M, "--text", "@/text.fifo", NULL}, .status = 1,
     .msg = "text.fifo: " NOT_REG " (a FIFO)", .keep = {M}, .timeout = 10},
    {.name = "fifo_matmul_x", .build = b_fifo_x, .argv = {MATMUL_SHARD, NULL}, .status = 1,
     .msg = "x.safetensors: " NOT_REG " (a FIFO)", .keep = {CK}, .timeout = 10},
    {.name = "fifo_compare", .build = b_fifo_plain,
     .argv = {"compare", "@/in.fifo", "@/in.fifo", NULL}, .status = 1,
     .msg = NOT_REG " (a FIFO)", .keep = {"@/in.fifo"}, .timeout = 10},

    /* folders, devices and symlink loops: said as such, not "missing" or "read error" */
    {.name = "dir_layer_input", .build = b_dir_plain,
     .argv = {"layer", "@/in.dir", "-o", "@/out.safetensors", NULL}, .status = 1,
     .msg = NOT_REG " (a directory)", .keep = {"@/in.dir"}},
    {.name = "dir_calib", .build = b_dir_calib, .argv = {Q_GPTQ("@/calib.dir"), NULL},
     .status = 1, .msg = "calib.dir: " NOT_REG " (a directory)", .keep = {M}},
    {.name = "dir_shard", .build = b_dir_shard, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "model.safetensors: " NOT_REG " (a directory)", .keep = {M}},
    {.name = "dir_config_json", .build = b_dir_config, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "config.json: " NOT_REG " (a directory)", .keep = {M}},
    {.name = "dir_tokenizer_json", .build = b_dir_tok, .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "tokenizer.json: " NOT_REG " (a directory)", .keep = {M}},
    {.name = "dir_eval_text", .build = b_dir_text,
     .argv = {"eval", M, "--text", "@/text.dir", NULL}, .status = 1,
     .msg = "text.dir: " NOT_REG " (a directory)", .keep = {M}},
    {.name = "loop_shard", .build = b_loop_shard, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "model.safetensors: cannot open: " LOOP_MSG, .keep = {M}},
    {.name = "loop_config_json", .build = b_loop_config, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "config.json: cannot open: " LOOP_MSG, .keep = {M}},
    {.name = "loop_tokenizer_json", .build = b_loop_tok, .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "tokenizer.json: cannot open: " LOOP_MSG, .keep = {M}},
    {.name = "loop_calib", .build = b_loop_calib, .argv = {Q_GPTQ("@/calib.txt"), NULL},
     .status = 1, .msg = "calib.txt: cannot open: " LOOP_MSG, .keep = {M}},
    {.name = "loop_layer_input", .build = b_loop_plain,
     .argv = {"layer", "@/in.loop", "-o", "@/out.safetensors", NULL}, .status = 1,
     .msg = "in.loop: cannot open: " LOOP_MSG},
    {.name = "dangling_shard", .build = b_dangling_shard, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "model.safetensors: cannot open: No such file or directory", .keep = {M}},
    {.name = "devzero_calib_bytes", .build = mk_model,
     .argv = {Q_GPTQ("/dev/zero"), "--calib-bytes", "1000", NULL}, .status = 1,
     .msg = "/dev/zero: " NOT_REG " (a character device)", .keep = {M}, .timeout = 10},
    {.name = "devzero_calib", .build = mk_model, .argv = {Q_GPTQ("/dev/zero"), NULL},
     .status = 1, .msg = "/dev/zero: " NOT_REG " (a character device)", .keep = {M},
     .timeout = 10},
    {.name = "devnull_layer_input", .argv = {"layer", "/dev/null", "-o", "@/o.safetensors", NULL},
     .status = 1, .msg = "/dev/null: " NOT_REG " (a character device)", .timeout = 10},
    {.name = "devzero_eval_text", .build = mk_model,
     .argv = {"eval", M, "--text", "/dev/zero", NULL}, .status = 1,
     .msg = "/dev/zero: " NOT_REG " (a character device)", .keep = {M}, .timeout = 10},

    /* --calib-bytes reads only what it keeps: a 64 GiB file costs nothing */
    {.name = "calib_bytes_sparse_text", .build = b_sparse_text,
     .argv = {Q_GPTQ("@/big.txt"), "--calib-bytes", "20000", "--quiet", NULL}, .status = 0,
     .keep = {M}, .timeout = 60},
    {.name = "calib_bytes_sparse_jsonl", .build = b_sparse_jsonl,
     .argv = {Q_GPTQ("@/big.jsonl"), "--calib-bytes", "20000", "--quiet", NULL}, .status = 0,
     .keep = {M}, .timeout = 60},

    /* empty files */
    {.name = "empty_calib", .build = b_empty_calib, .argv = {Q_GPTQ("@/calib.txt"), NULL},
     .status = 1, .msg = "calib.txt is empty", .keep = {M}},
    {.name = "whitespace_calib", .build = b_space_calib, .argv = {Q_GPTQ("@/calib.txt"), NULL},
     .status = 1, .msg = "calib.txt is empty (only whitespace)", .keep = {M}},
    {.name = "empty_jsonl", .build = b_empty_jsonl, .argv = {Q_GPTQ("@/calib.jsonl"), NULL},
     .status = 1, .msg = "calib.jsonl: no text in its JSON lines", .keep = {M}},
    {.name = "empty_config_json", .build = b_empty_config, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "config.json: empty JSON", .keep = {M}},
    {.name = "empty_tokenizer_json", .build = b_empty_tok, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "tokenizer.json: empty JSON", .keep = {M}},
    {.name = "empty_shard", .build = b_empty_shard, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "model.safetensors: file is 0 bytes, too short", .keep = {M}},
    {.name = "empty_index_json", .build = b_empty_index, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "model.safetensors.index.json: empty JSON", .keep = {M}},
    {.name = "empty_layer_input", .build = b_empty_plain,
     .argv = {"layer", "@/in.safetensors", "-o", "@/out.safetensors", NULL}, .status = 1,
     .msg = "in.safetensors: file is 0 bytes", .keep = {"@/in.safetensors"}},

    /* duplicate keys: Python keeps the last, cJSON the first; refused */
    {.name = "dup_config_json", .build = b_dup_config, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "config.json: duplicate key \"vocab_size\" in the top-level object", .keep = {M}},
    {.name = "dup_config_json_nested", .build = b_dup_config_nested, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "duplicate key \"rope_type\" in \"rope_scaling\"", .keep = {M}},
    {.name = "dup_tokenizer_vocab", .build = b_dup_tok, .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "tokenizer.json: duplicate key \"!\" in \"model.vocab\"", .keep = {M}},
    {.name = "dup_tokenizer_top", .build = b_dup_tok_top, .argv = {Q_GPTQ(CALIB), NULL},
     .status = 1, .msg = "tokenizer.json: duplicate key \"normalizer\"", .keep = {M}},
    {.name = "dup_tokenizer_config", .build = b_dup_tokcfg, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "tokenizer_config.json: duplicate key \"add_bos_token\"", .keep = {M}},
    {.name = "dup_index_json", .build = b_dup_index, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "index.json: duplicate key \"lm_head.weight\" in \"weight_map\"", .keep = {M}},
    {.name = "dup_calib_jsonl", .build = b_dup_jsonl, .argv = {Q_GPTQ("@/calib.jsonl"), NULL},
     .status = 1, .msg = "calib.jsonl, line 1: duplicate key \"text\"", .keep = {M}},
    {.name = "dup_safetensors_header", .build = b_dup_header,
     .argv = {"layer", "@/in.safetensors", "-o", "@/out.safetensors", NULL}, .status = 1,
     .msg = "header: duplicate key \"lm_head.weight\"", .keep = {"@/in.safetensors"}},
    {.name = "dup_quantization_config", .build = b_dup_ckpt_quant, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = "duplicate key \"bits\" in \"quantization_config\"", .keep = {CK}},
    {.name = "dup_quantize_config_json", .build = b_dup_qcfg, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = "quantize_config.json: duplicate key \"bits\"", .keep = {CK}},

    /* absurd sizes: refused by key before anything is allocated */
    {.name = "cfg_num_hidden_layers_1e9", .build = b_cfg_layers, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "\"num_hidden_layers\" = 1000000000 is out of range (it must be 1 .. 1024)",
     .keep = {M}},
    {.name = "cfg_vocab_size_2e31", .build = b_cfg_vocab, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "\"vocab_size\" = 2147483647 is out of range", .keep = {M}},
    {.name = "cfg_hidden_size", .build = b_cfg_hidden, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "\"hidden_size\" = 1000000 is out of range", .keep = {M}},
    {.name = "cfg_intermediate_size", .build = b_cfg_inter, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "\"intermediate_size\" = 100000000 is out of range", .keep = {M}},
    {.name = "cfg_num_attention_heads", .build = b_cfg_heads, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "\"num_attention_heads\" = 100000 is out of range", .keep = {M}},
    {.name = "cfg_num_key_value_heads", .build = b_cfg_kv, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "\"num_key_value_heads\" = 100000 is out of range", .keep = {M}},
    {.name = "cfg_head_dim", .build = b_cfg_headdim, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "\"head_dim\" = 100000 is out of range", .keep = {M}},
    {.name = "cfg_max_position_embeddings", .build = b_cfg_maxpos, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "\"max_position_embeddings\" = 1000000000000 is out of range",
     .keep = {M}},
    {.name = "cfg_negative_hidden_size", .build = b_cfg_negative, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "\"hidden_size\" = -256 is out of range", .keep = {M}},
    {.name = "cfg_fractional_layers", .build = b_cfg_fraction, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "\"num_hidden_layers\" must be an integer (got 2.5)", .keep = {M}},
    {.name = "cfg_vocab_x_hidden", .build = b_cfg_vocab_x_hidden, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "vocab_size x hidden_size (embed_tokens, lm_head) = 2199023255552",
     .keep = {M}},
    {.name = "cfg_intermediate_x_hidden", .build = b_cfg_inter_x_hidden, .argv = {DIFF, NULL},
     .status = 1, .msg = "intermediate_size x hidden_size (the MLP) = 137438953472",
     .keep = {M}},
    {.name = "cfg_layers_total", .build = b_cfg_layers_total, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "num_hidden_layers 1024 x", .keep = {M}},
    {.name = "cfg_opt_ffn_dim", .build = b_cfg_opt_ffn, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "\"ffn_dim\" = 100000000 is out of range", .keep = {M}},

    /* incomplete models: refused before any work, naming the tensor */
    {.name = "missing_norm_rtn", .build = b_no_norm, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "tensor 'model.norm.weight' not found", .keep = {M}},
    {.name = "missing_norm_gptq", .build = b_no_norm, .argv = {Q_GPTQ(CALIB), NULL},
     .status = 1, .msg = "tensor 'model.norm.weight' not found", .keep = {M}},
    {.name = "missing_norm_eval", .build = b_no_norm, .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "tensor 'model.norm.weight' not found", .keep = {M}},
    {.name = "missing_norm_diff", .build = b_no_norm, .argv = {DIFF, NULL}, .status = 1,
     .msg = "tensor 'model.norm.weight' not found", .keep = {M}},
    {.name = "missing_lm_head", .build = b_no_lm_head, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "tensor 'lm_head.weight' not found", .keep = {M}},
    {.name = "missing_q_proj", .build = b_no_q_proj, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "layer 1: tensor 'model.layers.1.self_attn.q_proj.weight' not found", .keep = {M}},
    {.name = "missing_embed_tokens", .build = b_no_embed, .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "tensor 'model.embed_tokens.weight' not found", .keep = {M}},
    {.name = "missing_post_attention_layernorm", .build = b_no_post_norm,
     .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "layer 2: tensor 'model.layers.2.post_attention_layernorm.weight' not found",
     .keep = {M}},
    {.name = "tied_without_lm_head_is_fine", .build = b_tied_no_lm_head, .argv = {Q_RTN, NULL},
     .status = 0, .keep = {M}},
    {.name = "wrong_shape_q_proj", .build = b_shape_q, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "'model.layers.0.self_attn.q_proj.weight' has shape [128, 512], expected [256, 256]",
     .keep = {M}},
    {.name = "wrong_shape_norm_1d", .build = b_shape_norm, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "'model.norm.weight' has shape [2, 128], expected [256]", .keep = {M}},
    {.name = "wrong_shape_embed", .build = b_shape_embed, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "'model.embed_tokens.weight' has shape [3072, 128], expected [1536, 256]",
     .keep = {M}},
    {.name = "wrong_dtype_norm", .build = b_dtype_norm, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "'model.norm.weight' has dtype I16", .keep = {M}},
    {.name = "wrong_dtype_up_proj", .build = b_dtype_q, .argv = {DIFF, NULL}, .status = 1,
     .msg = "'model.layers.0.mlp.up_proj.weight' has dtype I16", .keep = {M}},
    {.name = "wrong_dtype_lm_head", .build = b_dtype_lm_head, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "'lm_head.weight' has dtype I16",
     .keep = {M}},
    {.name = "extra_layer", .build = b_extra_layer, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "belongs to layer 3, but config.json has num_hidden_layers = 3", .keep = {M}},
    {.name = "extra_layer_eval", .build = b_extra_layer, .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "belongs to layer 3, but config.json has num_hidden_layers = 3", .keep = {M}},
    {.name = "num_hidden_layers_smaller", .build = b_fewer_layers, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "belongs to layer 2, but config.json has num_hidden_layers = 2",
     .keep = {M}},
    {.name = "num_hidden_layers_larger", .build = b_more_layers, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "layer 3: tensor 'model.layers.3.self_attn.q_proj.weight' not found",
     .keep = {M}},
    {.name = "ckpt_g_idx_shape_1d_message", .build = b_ckpt_gidx_shape, .argv = {EVAL(CK), NULL},
     .status = 1,
     .msg = "'model.layers.0.self_attn.q_proj.g_idx' is I32 [2, 128], expected I32 [256]",
     .keep = {CK}},
    {.name = "ckpt_missing_qzeros", .build = b_ckpt_no_qzeros, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = "tensor 'model.layers.1.mlp.up_proj.qzeros' not found", .keep = {CK}},
    {.name = "ckpt_scales_dtype", .build = b_ckpt_scales_dtype, .argv = {EVAL(CK), NULL},
     .status = 1,
     .msg = "'model.layers.2.mlp.down_proj.scales' is BF16 [3, 256], expected F16 [3, 256]",
     .keep = {CK}},

    /* Qwen3's per-head norms are checked as every other norm, (head_dim) long */
    {.name = "qwen3_wrong_shape_q_norm", .build = b_qwen3_shape_q_norm, .argv = {Q_RTN, NULL},
     .status = 1,
     .msg = "'model.layers.0.self_attn.q_norm.weight' has shape [2, 16], expected [32]",
     .keep = {M}},
    {.name = "qwen3_missing_k_norm", .build = b_qwen3_no_k_norm, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "layer 1: tensor 'model.layers.1.self_attn.k_norm.weight' not found",
     .keep = {M}},

    /* tokenizers */
    {.name = "token_id_2e31_minus_1", .build = b_tok_big_id, .argv = {EVAL(M), NULL},
     .status = 1,
     .msg = "model.vocab[\"zzz\"] = 2147483647: a token id must be an integer in [0, 16777215]",
     .keep = {M}},
    {.name = "token_id_negative", .build = b_tok_neg_id, .argv = {Q_GPTQ(CALIB), NULL},
     .status = 1, .msg = "model.vocab[\"zzz\"] = -1: a token id must be", .keep = {M}},
    {.name = "empty_vocabulary", .build = b_tok_empty_vocab, .argv = {Q_GPTQ(CALIB), NULL},
     .status = 1, .msg = "model.vocab is empty", .keep = {M}},
    {.name = "added_token_id_too_big", .build = b_tok_added_big_id, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "added token \"<x>\" needs \"content\" and an integer \"id\" in [0, 16777215]",
     .keep = {M}},

    /* gptq matmul CKPT/model.safetensors --module ...: the settings come from the folder */
    {.name = "matmul_on_our_shard", .build = b_matmul_shard, .argv = {MATMUL_SHARD, NULL},
     .status = 0, .keep = {CK, "@/x.safetensors"}},
    {.name = "matmul_on_shard_quantize_config_json", .build = b_matmul_shard_qcfg_only,
     .argv = {MATMUL_SHARD, NULL}, .status = 0, .keep = {CK, "@/x.safetensors"}},
    {.name = "matmul_on_shard_without_settings", .build = b_matmul_shard_noquant,
     .argv = {MATMUL_SHARD, NULL}, .status = 1,
     .msg = "has no quantization_config (config.json) nor quantize_config.json",
     .keep = {CK, "@/x.safetensors"}},

    /* -- rope scaling (issue 11): refused by key and value, before any work -- */
    {.name = "rope_type_unknown", .build = b_rope_type, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "config.json: rope_scaling.rope_type \"llama4\" is not supported", .keep = {M}},
    {.name = "rope_factor_negative", .build = b_rope_negative, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "config.json: rope_scaling.factor = -8 must be positive", .keep = {M}},
    {.name = "rope_factor_missing", .build = b_rope_no_factor, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "config.json: rope_scaling: \"factor\" is missing", .keep = {M}},
    {.name = "rope_factor_not_a_number", .build = b_rope_string, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "config.json: rope_scaling: \"factor\" must be a number", .keep = {M}},
    {.name = "rope_longrope", .build = b_rope_longrope, .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "rope_scaling.rope_type \"longrope\" is not supported", .keep = {M}},
    /* sliding windows (issue 11) */
    {.name = "sliding_window_negative", .build = b_sw_negative, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "config.json: \"sliding_window\" = -4 must be positive", .keep = {M}},
    {.name = "sliding_window_string", .build = b_sw_string, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "\"sliding_window\" must be an integer", .keep = {M}},
    {.name = "max_window_layers_negative", .build = b_sw_max_layers, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "\"max_window_layers\" = -1 must not be negative", .keep = {M}},
    {.name = "layer_types_short", .build = b_sw_types_short, .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "\"layer_types\" has 1 entries, num_hidden_layers is 3", .keep = {M}},
    {.name = "layer_types_unknown", .build = b_sw_types_unknown, .argv = {EVAL(M), NULL},
     .status = 1,
     .msg = "\"layer_types\"[1] = \"chunked_attention\" is not supported (only "
            "\"full_attention\" and \"sliding_attention\")",
     .keep = {M}},
    {.name = "layer_types_number", .build = b_sw_types_number, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "\"layer_types\"[0] must be a string", .keep = {M}},
    {.name = "layer_types_sliding_without_window", .build = b_sw_types_no_window,
     .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "\"layer_types\"[1] is \"sliding_attention\" but no sliding_window is set",
     .keep = {M}},
    {.name = "sliding_window_shorter_than_seqlen", .build = b_sw_runs,
     .argv = {EVAL(M), "--seqlen", "64", NULL}, .status = 0, .keep = {M}},
    /* -- per-module control (issue 11) -- */
    {.name = "dynamic_file_not_json", .build = b_dynamic_not_json,
     .argv = {Q_RTN, "--dynamic", "@/dyn.json", NULL}, .status = 1, .msg = "dyn.json",
     .keep = {M}},
    {.name = "dynamic_ckpt_bad_regex", .build = b_ckpt_dynamic_bad_regex,
     .argv = {EVAL(CK), NULL}, .status = 1,
     .msg = "config.json: dynamic rule \"+:model(\": bad regex", .keep = {CK}},
    /* -- gar (issue 13) -- */
    {.name = "gar_ckpt_with_desc_act", .build = b_ckpt_gar_desc, .argv = {EVAL(CK), NULL},
     .status = 1,
     .msg = "config.json: quantization_config: act_group_aware and desc_act are both true",
     .keep = {CK}},
    {.name = "gar_ckpt_meta_with_desc_act", .build = b_ckpt_gar_meta_desc,
     .argv = {EVAL(CK), NULL}, .status = 1,
     .msg = "config.json: quantization_config.meta: act_group_aware and desc_act are both true",
     .keep = {CK}},
    {.name = "gar_ckpt_not_bool", .build = b_ckpt_gar_text, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = "act_group_aware", .keep = {CK}},
    {.name = "gar_ckpt_gptqmodel_spelling", .build = b_ckpt_gar_meta_ok,
     .argv = {EVAL(CK), NULL}, .status = 0, .keep = {CK}},

    /* -- Phi-3 (issue 11): the fused qkv_proj checked as one linear of
     * (H + 2 Hk) * head_dim rows; a partial_rotary_factor giving 11.2 dims -- */
    {.name = "phi3_wrong_shape_qkv_proj", .build = b_phi3_shape_qkv, .argv = {Q_RTN, NULL},
     .status = 1,
     .msg = "'model.layers.1.self_attn.qkv_proj.weight' has shape [64, 128], expected [128, 64]",
     .keep = {M}},
    {.name = "phi3_bad_partial_rotary_factor", .build = b_phi3_bad_prf, .argv = {EVAL(M), NULL},
     .status = 1,
     .msg = "config.json: partial_rotary_factor = 0.7 must be in (0, 1] and give an even number "
            "(at least 2) of rotary dims of head_dim 16 (it gives 11.2)",
     .keep = {M}},
    /* -- generate (issue 12): prompts and generation_config.json -- */
#define GEN(...) "generate", M, __VA_ARGS__, "-n", "4"
    {.name = "generate_prompt_empty", .build = mk_model, .argv = {GEN("--prompt", ""), NULL},
     .status = 1, .msg = "the prompt is empty", .keep = {M}},
    {.name = "generate_prompt_file_missing", .build = mk_model,
     .argv = {GEN("--prompt-file", "@/none.txt"), NULL}, .status = 1, .msg = "@/none.txt",
     .keep = {M}},
    {.name = "generate_prompt_file_fifo", .build = b_gen_prompt_fifo,
     .argv = {GEN("--prompt-file", "@/p.fifo"), NULL}, .status = 1, .msg = "@/p.fifo",
     .keep = {M}},
    {.name = "generate_prompt_file_folder", .build = b_gen_prompt_dir,
     .argv = {GEN("--prompt-file", "@/p.d"), NULL}, .status = 1, .msg = "@/p.d", .keep = {M}},
    {.name = "generate_prompt_file_empty", .build = b_gen_prompt_empty,
     .argv = {GEN("--prompt-file", "@/p.txt"), NULL}, .status = 1,
     .msg = "@/p.txt: the prompt is empty", .keep = {M, "@/p.txt"}},
    {.name = "generate_prompt_not_utf8", .build = b_gen_prompt_not_utf8,
     .argv = {GEN("--prompt-file", "@/p.txt"), NULL}, .status = 1, .msg = "UTF-8",
     .keep = {M, "@/p.txt"}},
    {.name = "generate_prompt_too_long", .build = b_gen_prompt_long,
     .argv = {GEN("--prompt-file", "@/p.txt"), NULL}, .status = 1,
     .msg = "longer than the model's max_position_embeddings (256)", .keep = {M, "@/p.txt"}},
    {.name = "generate_eos_not_a_number", .build = b_gen_eos_string,
     .argv = {GEN("--prompt", "x"), NULL}, .status = 1,
     .msg = "generation_config.json: \"eos_token_id\" must be a token id in [0, 1536)",
     .keep = {M}},
    {.name = "generate_eos_out_of_range", .build = b_gen_eos_out_of_range,
     .argv = {GEN("--prompt", "x"), NULL}, .status = 1, .msg = "eos_token_id", .keep = {M}},
    {.name = "generate_generation_config_fifo", .build = b_gen_genconfig_fifo,
     .argv = {GEN("--prompt", "x"), NULL}, .status = 1, .msg = "generation_config.json",
     .keep = {M}},
    {.name = "generate_backend_unknown", .build = mk_model,
     .argv = {GEN("--prompt", "x", "--backend", "nosuch"), NULL}, .status = 1, .msg = "nosuch",
     .keep = {M}},
    {.name = "generate_model_missing", .argv = {"generate", "@/none", "--prompt", "x", NULL},
     .status = 1, .msg = "@/none"},
#undef GEN

    /* -- ecoformat (issue 13): gptq inspect on bad checkpoints; format and
     * checkpoint_format that disagree; group sizes no loader runs -- */
    {.name = "inspect_not_a_folder", .build = mk_ckpt,
     .argv = {"inspect", CK "/config.json", NULL}, .status = 1,
     .msg = "ckpt/config.json: not a folder", .keep = {CK}},
    {.name = "inspect_no_config", .build = b_eco_no_config, .argv = {"inspect", CK, NULL},
     .status = 1, .msg = "not a GPTQ checkpoint: no quantization_config", .keep = {CK}},
    {.name = "inspect_broken_quantization_config", .build = b_eco_bits_string,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = "ckpt/config.json: \"bits\" must be an integer", .keep = {CK}},
    {.name = "inspect_missing_qweight", .build = b_eco_no_qweight, .argv = {"inspect", CK, NULL},
     .status = 1,
     .msg = "model.layers.1.mlp.up_proj has qzeros but no tensor "
            "'model.layers.1.mlp.up_proj.qweight'",
     .keep = {CK}},
    {.name = "inspect_truncated_safetensors", .build = b_eco_truncated,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = "ckpt/model.safetensors: tensor 'lm_head.weight': data_offsets [0, 786432) reach "
            "past the end of the data", .keep = {CK}},
    {.name = "inspect_group_size_over_in_features", .build = b_eco_group_over_in,
     .argv = {"inspect", CK, NULL}, .status = 0,
     .msg = "group size 512 exceeds its 256 input features", .keep = {CK}},
    {.name = "inspect_unknown_format", .build = b_eco_format_unknown,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = "checkpoint_format \"gptq_v9\" is not supported", .keep = {CK}},
    {.name = "inspect_format_keys_disagree", .build = b_eco_format_disagree,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = "checkpoint_format \"gptq\" and format \"gptq_v2\" disagree", .keep = {CK}},
    {.name = "eval_format_keys_disagree", .build = b_eco_format_disagree,
     .argv = {EVAL(CK), NULL}, .status = 1,
     .msg = "checkpoint_format \"gptq\" and format \"gptq_v2\" disagree", .keep = {CK}},
    {.name = "inspect_skip_rule_on_a_quantized_module", .build = b_eco_skip_rule_on_qweight,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = "model.layers.0.mlp.up_proj has a qweight, but the dynamic rule", .keep = {CK}},
    {.name = "quantize_group_size_2048", .build = mk_model,
     .argv = {Q_RTN, "--group-size", "2048", NULL}, .status = 1,
     .msg = "model.layers.0.self_attn.q_proj: group size 2048 with 256 input features: no "
            "loader's kernel runs a group above 1024 unless it is the whole row",
     .keep = {M}},
    {.name = "quantize_dynamic_group_size_2048", .build = mk_model,
     .argv = {Q_RTN, "--dynamic",
              "{\"+:model\\\\.layers\\\\.1\\\\.mlp\\\\.down_proj$\": {\"group_size\": 2048}}",
              NULL},
     .status = 1, .msg = "model.layers.1.mlp.down_proj: group size 2048 with 384 input features",
     .keep = {M}},
    {.name = "quantize_asym_format_gptq_warns", .build = mk_model,
     .argv = {Q_RTN, "--asym", "--format", "gptq", "--quiet", NULL}, .status = 0,
     .msg = "GPTQModel's loader refuses an asymmetric v1", .keep = {M}},
    /* -- gemma (issue 11): refused by key and value, before any work -- */
    {.name = "gemma_layer_type_unknown", .build = b_gemma_types, .argv = {Q_RTN, NULL},
     .status = 1,
     .msg = "config.json: \"layer_types\"[1] = \"chunked_attention\" is not supported for "
            "Gemma2ForCausalLM",
     .keep = {M}},
    {.name = "gemma_attn_softcap_negative", .build = b_gemma_attn_cap, .argv = {EVAL(M), NULL},
     .status = 1,
     .msg = "config.json: \"attn_logit_softcapping\" = -2 must be positive (or null: none)",
     .keep = {M}},
    {.name = "gemma_final_softcap_zero", .build = b_gemma_final_cap, .argv = {EVAL(M), NULL},
     .status = 1,
     .msg = "config.json: \"final_logit_softcapping\" = 0 must be positive (or null: none)",
     .keep = {M}},
    {.name = "gemma_query_pre_attn_scalar_zero", .build = b_gemma_qpas, .argv = {Q_RTN, NULL},
     .status = 1, .msg = "config.json: \"query_pre_attn_scalar\" = 0 must be positive",
     .keep = {M}},
    {.name = "gemma_hidden_activation", .build = b_gemma_act, .argv = {EVAL(M), NULL},
     .status = 1,
     .msg = "config.json: hidden_activation \"gelu\" is not supported for Gemma2ForCausalLM "
            "(only \"gelu_pytorch_tanh\")",
     .keep = {M}},
    {.name = "gemma_bidirectional", .build = b_gemma_bidir, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "config.json: \"use_bidirectional_attention\" = true is not supported",
     .keep = {M}},
    {.name = "gemma_sliding_layer_without_window", .build = b_gemma_sw_null,
     .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "config.json: layer 0 is a sliding_attention layer but \"sliding_window\" is null",
     .keep = {M}},
    {.name = "gemma3_rope_type_per_layer_type", .build = b_gemma3_rope_type,
     .argv = {Q_RTN, NULL}, .status = 1,
     .msg = "config.json: rope_parameters.sliding_attention.rope_type \"su\" is not supported",
     .keep = {M}},
    {.name = "gemma3_rope_unknown_layer_type", .build = b_gemma3_rope_layer,
     .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "config.json: rope_parameters.chunked_attention is not supported for "
            "Gemma3ForCausalLM",
     .keep = {M}},
    {.name = "gemma3_rope_parameters_flat", .build = b_gemma3_rope_flat, .argv = {EVAL(M), NULL},
     .status = 1, .msg = "config.json: rope_parameters.rope_type is not supported", .keep = {M}},
    {.name = "gemma3_sliding_window_pattern_zero", .build = b_gemma3_pattern,
     .argv = {EVAL(M), NULL}, .status = 1,
     .msg = "config.json: \"sliding_window_pattern\" = 0 must be positive", .keep = {M}},
    /* the multimodal wrapper reads its text model's keys from text_config */
    {.name = "gemma3_multimodal_without_text_config", .build = b_gemma3_multimodal,
     .argv = {Q_RTN, NULL}, .status = 1, .msg = "config.json: \"text_config\" is missing",
     .keep = {M}},
};
CH_TABLE(hostile_input, input_table)

/* ------------------------------------------------------------------ */
/* famproof: gptq eval --kl-divergence, --logits, --save-logits        */
/* (issue 12)                                                          */
/* ------------------------------------------------------------------ */

/* eval of the bundled model: 2 windows of 64 tokens (KL_EVAL_AT: other options) */
#define KL_EVAL_AT(seq, win, text) "eval", "%DATA/tiny-llama", "--text", text, "--seqlen", seq, \
                                   "--max-windows", win
#define KL_EVAL KL_EVAL_AT("64", "2", TEXT)
#define KL_FROM(file) "--kl-divergence", "--logits", file

/* @/fp.logits: the bundled model's logits on KL_EVAL's windows */
static void b_kl_saved(const char *d)
{
    ch_sh("cd '%s' && '%s' eval '%s/data/tiny-llama' --text '%s/data/text/eval.txt' --seqlen 64 "
          "--max-windows 2 --save-logits fp.logits >/dev/null 2>&1",
          d, ch_cli(), ch_source_root(), ch_source_root());
}
static void b_kl_truncated(const char *d)
{
    b_kl_saved(d);
    ch_sh("cd '%s' && truncate -s -1000 fp.logits", d);
}
/* its metadata's version changed in place (same length) */
static void b_kl_version(const char *d)
{
    b_kl_saved(d);
    ch_sh("cd '%s' && python3 -c \"p='fp.logits'; b=open(p,'rb').read(); "
          "open(p,'wb').write(b.replace(b'\\\"version\\\":\\\"1\\\"', b'\\\"version\\\":\\\"9\\\"', 1))\"",
          d);
}
/* a safetensors file that is no logits file: the model's weights */
static void b_kl_weights(const char *d)
{
    ch_sh("cp '%s/data/tiny-llama/model.safetensors' '%s/fp.logits'", ch_source_root(), d);
}
static void b_kl_text(const char *d)
{
    char p[1024];
    ch_write_str(ch_join(p, d, "fp.logits"), "hello\n");
}
static void b_kl_fifo(const char *d) { ch_sh("cd '%s' && mkfifo fp.logits", d); }
/* @/model: tiny-llama whose tokenizer keeps only its first 300 merges */
static void b_kl_other_tokenizer(const char *d)
{
    mk_model(d);
    ch_sh("cd '%s' && python3 -c \"import json; p='model/tokenizer.json'; t=json.load(open(p)); "
          "t['model']['merges']=t['model']['merges'][:300]; json.dump(t, open(p, 'w'))\"", d);
}
/* @/old.logits: an earlier file that a failing run must leave as it was */
static void b_kl_old(const char *d)
{
    char p[1024];
    ch_write_str(ch_join(p, d, "old.logits"), "an earlier file\n");
}

static hostile_case famproof_table[] = {
    /* the command line: the base of a KL divergence, one of two, only with it */
    {.name = "kl_without_base", .argv = {KL_EVAL, "--kl-divergence", NULL}, .status = 2,
     .msg = "--kl-divergence needs its base: --kl-base FP_DIR or --logits FILE"},
    {.name = "kl_logits_without_kl", .build = b_kl_saved,
     .argv = {KL_EVAL, "--logits", "@/fp.logits", NULL}, .status = 2,
     .msg = "--logits FILE needs --kl-divergence", .keep = {"@/fp.logits"}},
    {.name = "kl_base_without_kl", .argv = {KL_EVAL, "--kl-base", "%DATA/tiny-llama", NULL},
     .status = 2, .msg = "--kl-base FP_DIR needs --kl-divergence"},
    {.name = "kl_base_and_logits", .build = b_kl_saved,
     .argv = {KL_EVAL, KL_FROM("@/fp.logits"), "--kl-base", "%DATA/tiny-llama", NULL},
     .status = 2, .msg = "--kl-base and --logits both give the base: give one"},
    {.name = "kl_with_save_logits", .build = b_kl_saved,
     .argv = {KL_EVAL, KL_FROM("@/fp.logits"), "--save-logits", "@/new.logits", NULL},
     .status = 2, .msg = "--save-logits saves MODEL_DIR's own logits"},
    /* the saved file: damaged, not ours, or made for other windows */
    {.name = "kl_logits_missing", .argv = {KL_EVAL, KL_FROM("@/fp.logits"), NULL}, .status = 1,
     .msg = "@/fp.logits: cannot open"},
    {.name = "kl_logits_truncated", .build = b_kl_truncated,
     .argv = {KL_EVAL, KL_FROM("@/fp.logits"), NULL}, .status = 1,
     .msg = "tensor 'logits': data_offsets [512, 774656) reach past the end of the data",
     .keep = {"@/fp.logits"}},
    {.name = "kl_logits_text_file", .build = b_kl_text,
     .argv = {KL_EVAL, KL_FROM("@/fp.logits"), NULL}, .status = 1,
     .msg = "@/fp.logits: file is 6 bytes, too short for a safetensors file"},
    {.name = "kl_logits_fifo", .build = b_kl_fifo, .argv = {KL_EVAL, KL_FROM("@/fp.logits"), NULL},
     .status = 1, .msg = NOT_REG, .timeout = 10},
    {.name = "kl_logits_not_ours", .build = b_kl_weights,
     .argv = {KL_EVAL, KL_FROM("@/fp.logits"), NULL}, .status = 1,
     .msg = "@/fp.logits: not a logits file of gptq eval --save-logits (no \"magic\": "
            "\"gptq-c-logits\" in its metadata)"},
    {.name = "kl_logits_version", .build = b_kl_version,
     .argv = {KL_EVAL, KL_FROM("@/fp.logits"), NULL}, .status = 1,
     .msg = "@/fp.logits: logits file version 9; this gptq reads version 1"},
    {.name = "kl_logits_other_seqlen", .build = b_kl_saved,
     .argv = {KL_EVAL_AT("32", "2", TEXT), KL_FROM("@/fp.logits"), NULL}, .status = 1,
     .msg = "@/fp.logits holds windows of 64 tokens (saved from", .keep = {"@/fp.logits"}},
    {.name = "kl_logits_other_windows", .build = b_kl_saved,
     .argv = {KL_EVAL_AT("64", "3", TEXT), KL_FROM("@/fp.logits"), NULL}, .status = 1,
     .msg = "@/fp.logits holds 2 windows", .keep = {"@/fp.logits"}},
    {.name = "kl_logits_other_text", .build = b_kl_saved,
     .argv = {KL_EVAL_AT("64", "2", CALIB), KL_FROM("@/fp.logits"), NULL}, .status = 1,
     .msg = "@/fp.logits was saved for other tokens: window 0, position ",
     .keep = {"@/fp.logits"}},
    /* the base model */
    {.name = "kl_base_missing", .argv = {KL_EVAL, "--kl-divergence", "--kl-base", "@/nope", NULL},
     .status = 1, .msg = "--kl-base: @/nope/config.json: cannot open"},
    {.name = "kl_base_other_tokenizer", .build = b_kl_other_tokenizer,
     .argv = {KL_EVAL, "--kl-divergence", "--kl-base", M, NULL}, .status = 1,
     .msg = "--kl-base @/model's tokenizer encodes", .keep = {M}},
    /* --save-logits: where it may write (checked before any work) */
    {.name = "save_logits_no_folder", .argv = {KL_EVAL, "--save-logits", "@/no/fp.logits", NULL},
     .status = 1, .msg = "the folder that would hold it does not exist"},
    {.name = "save_logits_unwritable", .argv = {KL_EVAL, "--save-logits", "/proc/fp.logits", NULL},
     .status = 1, .msg = "/proc/fp.logits: cannot create a temporary file beside it"},
    {.name = "save_logits_onto_the_text", .build = b_kl_old,
     .argv = {KL_EVAL_AT("64", "2", "@/old.logits"), "--save-logits", "@/old.logits", NULL},
     .status = 1, .msg = "is the input", .keep = {"@/old.logits"}},
    {.name = "save_logits_inside_the_model", .build = mk_model,
     .argv = {"eval", M, "--text", TEXT, "--seqlen", "64", "--max-windows", "2", "--save-logits",
              "@/model/fp.logits", NULL},
     .status = 1, .msg = "is inside the input folder", .keep = {M}},
    {.name = "save_logits_a_folder", .build = mk_model,
     .argv = {KL_EVAL, "--save-logits", M, NULL}, .status = 1,
     .msg = "exists and is a folder", .keep = {M}},
    {.name = "save_logits_failed_run_keeps_old", .build = b_kl_old,
     .argv = {KL_EVAL_AT("100000", "2", TEXT), "--save-logits", "@/old.logits", NULL},
     .status = 1, .msg = "fewer than one window of 100000", .keep = {"@/old.logits"}},
    {.name = "save_logits_replaces_old", .build = b_kl_old,
     .argv = {KL_EVAL, "--save-logits", "@/old.logits", NULL}, .status = 0,
     .msg = "saved the logits of 2 windows of 64 tokens to @/old.logits"},
};
CH_TABLE(hostile_input, famproof_table)

/* ------------------------------------------------------------------ */
/* -- ctensors (issue 13): compressed-tensors export and its reader --  */
/* ------------------------------------------------------------------ */

/* @/ckpt: tiny-llama's asymmetric 4-bit RTN checkpoint as compressed-tensors */
static void mk_ct(const char *d)
{
    mk_model(d);
    ch_sh("cd '%s' && '%s' quantize model -o ckpt --method rtn --asym --group-size 64 "
          "--format compressed-tensors --quiet", d, ch_cli());
}
#define BUILD_CT(fn, ...)             \
    static void fn(const char *d)     \
    {                                 \
        mk_ct(d);                     \
        __VA_ARGS__;                  \
    }
#define QC "quantization_config.config_groups"
#define CT_Q0 "model.layers.0.self_attn.q_proj"
BUILD_CT(b_ct_two_groups, ed(d, "json ckpt/config.json set:" QC ".group_1:{}"))
BUILD_CT(b_ct_groups_list, ed(d, "json ckpt/config.json set:quantization_config.config_groups:[]"))
BUILD_CT(b_ct_actorder_group, ed(d, "json ckpt/config.json 'set:" QC ".group_0.weights.actorder:"
                                 "\"group\"'"))
BUILD_CT(b_ct_bits3, ed(d, "json ckpt/config.json set:" QC ".group_0.weights.num_bits:3"))
BUILD_CT(b_ct_format, ed(d, "json ckpt/config.json 'set:quantization_config.format:"
                         "\"marlin-24\"'"))
BUILD_CT(b_ct_activations, ed(d, "json ckpt/config.json 'set:" QC ".group_0.input_activations:"
                              "{\"num_bits\":8}'"))
/* down_proj's weight_shape {256, 384} put in q_proj's place (256 x 256) */
BUILD_CT(b_ct_weight_shape, ed(d, "st ckpt/model.safetensors copyprefix:model.layers.0.mlp."
                               "down_proj.weight_shape:" CT_Q0 ".weight_shape"))
/* weight_packed truncated: o_proj's zero points (I32 [32, 4]) in its place */
BUILD_CT(b_ct_packed_short, ed(d, "st ckpt/model.safetensors drop:" CT_Q0 ".weight_packed");
         ed(d, "st ckpt/model.safetensors copyprefix:model.layers.0.self_attn.o_proj."
               "weight_zero_point:" CT_Q0 ".weight_packed"))
BUILD_CT(b_ct_scale_bf16, ed(d, "st ckpt/model.safetensors dtype:" CT_Q0 ".weight_scale:BF16"))
BUILD_CT(b_ct_no_zero_point, ed(d, "st ckpt/model.safetensors drop:" CT_Q0
                                ".weight_zero_point"))

static hostile_case ctensors_table[] = {
    /* the writer: act-order groups and widths it cannot store, before any work */
    {.name = "ct_desc_act", .build = mk_model,
     .argv = {"quantize", M, "-o", "@/out", "--desc-act", "--format", "compressed-tensors", NULL},
     .status = 2, .msg = "--format compressed-tensors with --desc-act: act-order groups",
     .keep = {M}},
    {.name = "ct_bits3", .build = mk_model,
     .argv = {Q_RTN, "--bits", "3", "--format", "compressed-tensors", NULL}, .status = 2,
     .msg = "compressed-tensors: 3 bits: pack-quantized is written for 4 or 8 bits",
     .keep = {M}},
    {.name = "ct_format_name", .build = mk_model,
     .argv = {Q_RTN, "--format", "compressed_tensors", NULL}, .status = 2,
     .msg = "must be auto, gptq, gptq_v2 or compressed-tensors", .keep = {M}},
    /* --dynamic rules that change settings: section "ecogaps" (refused
     * before any work) */
    /* the reader: broken quantization_config */
    {.name = "ct_two_config_groups", .build = b_ct_two_groups, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = "config_groups has 2 groups; one is read", .keep = {CK}},
    {.name = "ct_config_groups_list", .build = b_ct_groups_list, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = "config_groups", .keep = {CK}},
    {.name = "ct_actorder_group", .build = b_ct_actorder_group, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = "weights actorder \"group\": only null or \"weight\"", .keep = {CK}},
    {.name = "ct_num_bits_3", .build = b_ct_bits3, .argv = {EVAL(CK), NULL}, .status = 1,
     .msg = "compressed-tensors: 3 bits", .keep = {CK}},
    {.name = "ct_format_other", .build = b_ct_format, .argv = {EVAL(CK), NULL}, .status = 1,
     .msg = "compressed-tensors format \"marlin-24\" is not read", .keep = {CK}},
    {.name = "ct_input_activations", .build = b_ct_activations, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = "quantizes activations; only weight-only", .keep = {CK}},
    /* the reader: broken tensors */
    {.name = "ct_wrong_weight_shape", .build = b_ct_weight_shape, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = CT_Q0 ".weight_shape' = {256, 384}, but the module is (256, 256)",
     .keep = {CK}},
    {.name = "ct_weight_packed_short", .build = b_ct_packed_short, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = CT_Q0 ".weight_packed' is I32 with 2 dims, expected I32 [256, 32]",
     .keep = {CK}},
    {.name = "ct_weight_scale_bf16", .build = b_ct_scale_bf16, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = CT_Q0 ".weight_scale' is BF16", .keep = {CK}},
    {.name = "ct_no_zero_point", .build = b_ct_no_zero_point, .argv = {EVAL(CK), NULL},
     .status = 1, .msg = CT_Q0 ".weight_zero_point", .keep = {CK}},
    /* inspect on compressed-tensors checkpoints: section "ecogaps" */
};
CH_TABLE(hostile_input, ctensors_table)

/* ------------------------------------------------------------------ */
/* -- ecogaps (issue 13): inspect on compressed-tensors checkpoints,   */
/*    --dynamic rules under --format compressed-tensors --             */
/* ------------------------------------------------------------------ */

/* @/ckpt of mk_ct (asym 4-bit g64) with config.json cut to its first 300
 * bytes, or contradicting its tensors, or a tensor gone */
BUILD_CT(b_eco_ct_truncated, ch_sh("cd '%s' && head -c 300 ckpt/config.json > c && "
                                   "mv c ckpt/config.json", d))
BUILD_CT(b_eco_ct_group128,
         ed(d, "json ckpt/config.json set:" QC ".group_0.weights.group_size:128"))
BUILD_CT(b_eco_ct_bits8, ed(d, "json ckpt/config.json set:" QC ".group_0.weights.num_bits:8"))
BUILD_CT(b_eco_ct_sym, ed(d, "json ckpt/config.json set:" QC ".group_0.weights.symmetric:true"))
BUILD_CT(b_eco_ct_no_group_size,
         ed(d, "json ckpt/config.json del:" QC ".group_0.weights.group_size"))
BUILD_CT(b_eco_ct_no_weights, ed(d, "json ckpt/config.json del:" QC ".group_0.weights"))
BUILD_CT(b_eco_ct_no_groups, ed(d, "json ckpt/config.json set:" QC ":{}"))
BUILD_CT(b_eco_ct_ignore_quantized, ed(d, "json ckpt/config.json 'set:quantization_config.ignore:"
                                       "[\"lm_head\", \"" CT_Q0 "\"]'"))
BUILD_CT(b_eco_ct_ignore_regex, ed(d, "json ckpt/config.json 'set:quantization_config.ignore:"
                                   "[\"re:model.(\"]'"))
BUILD_CT(b_eco_ct_no_packed, ed(d, "st ckpt/model.safetensors drop:" CT_Q0 ".weight_packed"))
BUILD_CT(b_eco_ct_no_shape, ed(d, "st ckpt/model.safetensors drop:" CT_Q0 ".weight_shape"))

#define Q_CT_NOMODEL "quantize", "@/nomodel", "-o", "@/out", "--method", "rtn", \
    "--format", "compressed-tensors", "--dynamic"

static hostile_case ecogaps_table[] = {
    /* inspect reads it: facts and the WNA16 table, in text and JSON */
    {.name = "eco_ct_inspect", .build = mk_ct, .argv = {"inspect", CK, NULL}, .status = 0,
     .keep = {CK}},
    {.name = "eco_ct_inspect_json", .build = mk_ct, .argv = {"inspect", CK, "--json", NULL},
     .status = 0, .keep = {CK}},
    /* truncated or contradictory quantization_config */
    {.name = "eco_ct_inspect_truncated_config", .build = b_eco_ct_truncated,
     .argv = {"inspect", CK, NULL}, .status = 1, .msg = "ckpt/config.json: invalid JSON",
     .keep = {CK}},
    {.name = "eco_ct_inspect_group_size_contradicts_scales", .build = b_eco_ct_group128,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = CT_Q0 ".weight_scale' is F16 with 2 dims, expected F16 [256, 2]", .keep = {CK}},
    {.name = "eco_ct_inspect_bits_contradict_packed", .build = b_eco_ct_bits8,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = CT_Q0 ".weight_packed' is I32 with 2 dims, expected I32 [256, 64]", .keep = {CK}},
    {.name = "eco_ct_inspect_symmetric_with_zero_points", .build = b_eco_ct_sym,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = CT_Q0 ".weight_zero_point' is stored, but quantization_config says symmetric",
     .keep = {CK}},
    /* the reader's check: eval refuses it too (it would read zero 8 for all) */
    {.name = "eco_ct_eval_symmetric_with_zero_points", .build = b_eco_ct_sym,
     .argv = {EVAL(CK), NULL}, .status = 1,
     .msg = "the config and the tensors disagree", .keep = {CK}},
    {.name = "eco_ct_inspect_no_group_size", .build = b_eco_ct_no_group_size,
     .argv = {"inspect", CK, NULL}, .status = 1, .msg = "\"group_size\" is missing",
     .keep = {CK}},
    {.name = "eco_ct_inspect_no_weights", .build = b_eco_ct_no_weights,
     .argv = {"inspect", CK, NULL}, .status = 1, .msg = "\"weights\" is missing", .keep = {CK}},
    {.name = "eco_ct_inspect_no_config_groups", .build = b_eco_ct_no_groups,
     .argv = {"inspect", CK, NULL}, .status = 1, .msg = "config_groups has 0 groups",
     .keep = {CK}},
    {.name = "eco_ct_inspect_ignore_names_a_quantized_module", .build = b_eco_ct_ignore_quantized,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = CT_Q0 " has a weight_packed, but quantization_config.ignore leaves it unquantized",
     .keep = {CK}},
    {.name = "eco_ct_inspect_ignore_bad_regex", .build = b_eco_ct_ignore_regex,
     .argv = {"inspect", CK, NULL}, .status = 1, .msg = "bad regex", .keep = {CK}},
    {.name = "eco_ct_inspect_scale_without_packed", .build = b_eco_ct_no_packed,
     .argv = {"inspect", CK, NULL}, .status = 1,
     .msg = CT_Q0 " has weight_scale but no tensor '" CT_Q0 ".weight_packed'", .keep = {CK}},
    {.name = "eco_ct_inspect_no_weight_shape", .build = b_eco_ct_no_shape,
     .argv = {"inspect", CK, NULL}, .status = 1, .msg = CT_Q0 ".weight_shape' not found",
     .keep = {CK}},
    /* --dynamic under compressed-tensors: refused before any work (the
     * model folder does not even exist: nothing was read) */
    {.name = "eco_ct_dynamic_bits", .argv = {Q_CT_NOMODEL,
     "{\"model.layers.0.mlp.down_proj\": {\"bits\": 8}}", NULL}, .status = 2,
     .msg = "the --dynamic rule \"model.layers.0.mlp.down_proj\" gives bits 8, but "
            "compressed-tensors is written with one config group for every quantized module "
            "(4 bits, group 128, sym; no act-order groups): use --format gptq_v2"},
    {.name = "eco_ct_dynamic_group_size", .argv = {Q_CT_NOMODEL,
     "{\"+:model\\\\.layers\\\\.0\\\\.\": {\"group_size\": 64}}", NULL}, .status = 2,
     .msg = "gives group_size 64, but compressed-tensors is written with one config group"},
    {.name = "eco_ct_dynamic_sym", .argv = {Q_CT_NOMODEL, "{\"x\": {\"sym\": false}}", NULL},
     .status = 2, .msg = "the --dynamic rule \"x\" gives sym false"},
    {.name = "eco_ct_dynamic_desc_act", .argv = {Q_CT_NOMODEL,
     "{\"x\": {\"desc_act\": true}}", NULL}, .status = 2,
     .msg = "gives desc_act true (act-order groups, a permuted g_idx)"},
    /* a bad rule: the rules' own message, still before the model is read */
    {.name = "eco_ct_dynamic_bad_regex", .argv = {Q_CT_NOMODEL, "{\"+:x(\": {}}", NULL},
     .status = 1, .msg = "dynamic rule \"+:x(\": bad regex"},
    /* rules that keep the one group pass: "-:" (written as ignore) and an
     * override equal to the run's settings */
    {.name = "eco_ct_dynamic_same_settings", .build = mk_model,
     .argv = {Q_RTN, "--format", "compressed-tensors", "--dynamic",
              "{\"-:model\\\\.layers\\\\.0\\\\.mlp\\\\.up_proj$\": {}, "
              "\"+:model\\\\.layers\\\\.1\\\\.\": {\"bits\": 4, \"sym\": true}}",
              NULL},
     .status = 0, .keep = {M}},
};
CH_TABLE(hostile_input, ecogaps_table)
