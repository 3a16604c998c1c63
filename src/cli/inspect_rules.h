/*
 * inspect_rules.h — what the two engine tables of `gptq inspect` share:
 * cmd_inspect.c's (GPTQ checkpoints) and inspect_ctensors.c's
 * (compressed-tensors ones). Their rows differ in what they ask of the
 * weights (bit sets, zero points, g_idx, format), but each row's shape
 * conditions are the same kind of data, checked in the same order with the
 * same reasons; and both print a verdict per engine and per module shape
 * in the same lines, which the CLI tests read.
 */
#ifndef GPTQ_CLI_INSPECT_RULES_H
#define GPTQ_CLI_INSPECT_RULES_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* The shape conditions of one kernel, for a module of (out, in) features
 * on one GPU (per-partition sizes are the whole module's). */
typedef struct inspect_geom {
    int groups[6], ngroups;  /* group sizes it takes (-1: one group per row) */
    int group_any;           /* any group size; then groups is not read */
    int group_whole_row_ok;  /* a group equal to in_features is taken too */
    int in_div_group;        /* in_features must be a multiple of the group size */
    int in_mult, out_mult;   /* in_features, out_features multiples of these */
} inspect_geom;

/* b's set widths (2..8) as " 4, 8" into buf; returns buf. */
const char *inspect_bit_list(unsigned b, char *buf, size_t size);

/* The reason for bits-wide weights that a kernel running the widths in
 * mask refuses: "3-bit weights (it runs bits 4, 8)". */
void inspect_bits_why(int bits, unsigned mask, char *why, size_t size);

/* 1 when a module of out x in features in groups of group (-1: one per
 * row) meets g; 0 with the reason in why. Checked in this order: the group
 * size, in_features a multiple of it, the in/out multiples. channel_label:
 * the list of group sizes names -1 "-1 (channel)" (compressed-tensors'
 * word for it); mult_note: appended to an in/out multiple reason ("" for
 * none). */
int inspect_geom_check(const inspect_geom *g, int64_t out, int64_t in, int group,
                       int channel_label, const char *mult_note, char *why, size_t size);

/* Text: an engine's line ("yes" when it runs every module shape) and,
 * under it, the line for module shape i (0-based) it refuses. */
void inspect_print_engine(const char *name, int all_ok, const char *platform);
void inspect_print_refusal(int i, const char *why);

/* JSON: {"ok": yes, "reason": why, or null when yes} appended to the array
 * per; 0 when out of memory. */
int inspect_json_verdict(cJSON *per, int yes, const char *why);

#endif
