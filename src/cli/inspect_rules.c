/*
 * inspect_rules.c — the shape checks and verdict lines both engine tables
 * of `gptq inspect` use (inspect_rules.h). The reasons are the tool's
 * output: the CLI tests compare them byte for byte.
 */
#include "inspect_rules.h"

#include <stdio.h>

const char *inspect_bit_list(unsigned b, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 2; i <= 8; i++)
        if (b & 1u << i) n += (size_t)snprintf(buf + n, size - n, "%s%d", n ? ", " : " ", i);
    return buf;
}

void inspect_bits_why(int bits, unsigned mask, char *why, size_t size)
{
    char l[32];
    snprintf(why, size, "%d-bit weights (it runs bits%s)", bits,
             inspect_bit_list(mask, l, sizeof l));
}

int inspect_geom_check(const inspect_geom *g, int64_t out, int64_t in, int group,
                       int channel_label, const char *mult_note, char *why, size_t size)
{
    const int G = group;
    if (!g->group_any) {
        int ok = g->group_whole_row_ok && G == in;
        for (int i = 0; i < g->ngroups; i++) ok |= g->groups[i] == G;
        if (!ok) {
            size_t n = (size_t)snprintf(why, size, "group size %d (it takes", G);
            for (int i = 0; i < g->ngroups; i++)
                n += (size_t)snprintf(why + n, size - n, "%s%d%s", i ? ", " : " ", g->groups[i],
                                      channel_label && g->groups[i] == -1 ? " (channel)" : "");
            snprintf(why + n, size - n, "%s)", g->group_whole_row_ok ? " or the whole row" : "");
            return 0;
        }
    }
    if (g->in_div_group && G > 0 && in % G) {
        snprintf(why, size, "in_features %lld is not a multiple of the group size %d",
                 (long long)in, G);
        return 0;
    }
    if (in % g->in_mult || out % g->out_mult) {
        const int in_bad = in % g->in_mult != 0;
        snprintf(why, size, "%s %lld is not a multiple of %d%s",
                 in_bad ? "in_features" : "out_features", (long long)(in_bad ? in : out),
                 in_bad ? g->in_mult : g->out_mult, mult_note);
        return 0;
    }
    return 1;
}

void inspect_print_engine(const char *name, int all_ok, const char *platform)
{
    printf("  %-30s %s   [%s]\n", name, all_ok ? "yes" : "no ", platform);
}

void inspect_print_refusal(int i, const char *why)
{
    printf("      no  [%d] %s\n", i + 1, why);
}

int inspect_json_verdict(cJSON *per, int yes, const char *why)
{
    cJSON *v = cJSON_CreateObject();
    return v && cJSON_AddItemToArray(per, v) && cJSON_AddBoolToObject(v, "ok", yes) &&
           (yes ? cJSON_AddNullToObject(v, "reason") != NULL
                : cJSON_AddStringToObject(v, "reason", why) != NULL);
}
