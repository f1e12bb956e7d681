/* The checked option parser shared by every subcommand (see options.h). */
#include "cli/options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pn_option *find(const pn_option *table, const char *name, size_t len)
{
    for (const pn_option *o = table; o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
    return NULL;
}

static int parse_number(const pn_option *o, const char *v)
{
    char *end;
    errno = 0;
    if (o->kind == PN_OPTK_FLOAT) {
        float x = strtof(v, &end);
        if (end == v || *end || errno || !isfinite(x) || x > o->max || x < o->min || (o->open_min && x <= o->min))
            return -1;
        *(float *)o->dest = x;
    } else if (o->kind == PN_OPTK_U64) {
        if (*v == '-')
            return -1;
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || *end || errno || (double)x < o->min || (double)x > o->max)
            return -1;
        *(uint64_t *)o->dest = x;
    } else {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < o->min || x > o->max)
            return -1;
        *(int *)o->dest = (int)x;
    }
    return 0;
}

static int parse_choice(const pn_option *o, const char *v)
{
    for (const pn_opt_choice *c = o->choices; c->name; c++)
        if (!strcmp(c->name, v)) {
            *(int *)o->dest = c->value;
            return 0;
        }
    return -1;
}

/* "expected an integer in 1..100000", "expected one of sgd|adam|adamw", ... */
static void describe(const pn_option *o, char *out, size_t size)
{
    switch (o->kind) {
    case PN_OPTK_INT:
    case PN_OPTK_U64: snprintf(out, size, "an integer in %.0f..%.0f", o->min, o->max); break;
    case PN_OPTK_FLOAT:
        snprintf(out, size, "a number in %s%g, %g]", o->open_min ? "(" : "[", o->min, o->max);
        break;
    case PN_OPTK_CHOICE: {
        size_t n = (size_t)snprintf(out, size, "one of ");
        for (const pn_opt_choice *c = o->choices; c->name && n < size; c++)
            n += (size_t)snprintf(out + n, size - n, "%s%s", c == o->choices ? "" : "|", c->name);
        break;
    }
    case PN_OPTK_CUSTOM: snprintf(out, size, "%s", o->expect); break;
    default: snprintf(out, size, "a value"); break;
    }
}

static int apply(const pn_option *o, const char *v)
{
    switch (o->kind) {
    case PN_OPTK_FLAG: *(int *)o->dest = o->flag_value; return 0;
    case PN_OPTK_STRING: *(const char **)o->dest = v; return 0;
    case PN_OPTK_CHOICE: return parse_choice(o, v);
    case PN_OPTK_CUSTOM: return o->parse(v, o->dest);
    default: return parse_number(o, v);
    }
}

static pn_opts_result bad_value(const char *prog, const char *where, const pn_option *o, const char *v)
{
    char what[256];
    describe(o, what, sizeof what);
    fprintf(stderr, "%s: %s%s--%s '%s': expected %s\n", prog, where ? where : "", where ? ": " : "", o->name, v,
            what);
    return PN_OPTS_BAD;
}

pn_opts_result pn_opts_set(const char *prog, const pn_option *table, const char *name, const char *value,
                           const char *where)
{
    const pn_option *o = find(table, name, strlen(name));
    if (!o) {
        fprintf(stderr, "%s: %s%sunknown option '%s'\n", prog, where ? where : "", where ? ": " : "", name);
        return PN_OPTS_BAD;
    }
    if (o->kind == PN_OPTK_FLAG) {
        fprintf(stderr, "%s: %s%s'%s' takes no value\n", prog, where ? where : "", where ? ": " : "", name);
        return PN_OPTS_BAD;
    }
    return apply(o, value) ? bad_value(prog, where, o, value) : PN_OPTS_OK;
}

/* One "--name[=value]" at argv[*i]; advances *i past a separate value. */
static pn_opts_result parse_one(const char *prog, const pn_option *table, int argc, char **argv, int *i)
{
    const char *arg = argv[*i] + 2, *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const pn_option *o = find(table, arg, len);
    if (!o) {
        fprintf(stderr, "%s: unknown option '--%.*s' (%s --help lists them)\n", prog, (int)len, arg, prog);
        return PN_OPTS_BAD;
    }
    if (o->kind == PN_OPTK_FLAG) {
        if (eq) {
            fprintf(stderr, "%s: --%s takes no value\n", prog, o->name);
            return PN_OPTS_BAD;
        }
        return apply(o, NULL) ? PN_OPTS_BAD : PN_OPTS_OK;
    }
    const char *v = eq ? eq + 1 : *i + 1 < argc ? argv[++*i] : NULL;
    if (!v) {
        fprintf(stderr, "%s: --%s needs a value\n", prog, o->name);
        return PN_OPTS_BAD;
    }
    return apply(o, v) ? bad_value(prog, NULL, o, v) : PN_OPTS_OK;
}

pn_opts_result pn_opts_parse(const char *prog, const pn_option *table, int argc, char **argv, int first,
                             const char **positional, int *n_positional)
{
    if (n_positional)
        *n_positional = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return PN_OPTS_HELP;
        pn_opts_result r;
        if (!strncmp(a, "--", 2) && a[2]) {
            if ((r = parse_one(prog, table, argc, argv, &i)))
                return r;
        } else if (a[0] != '-' && positional) {
            positional[(*n_positional)++] = a;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s' (%s --help lists the options)\n", prog, a, prog);
            return PN_OPTS_BAD;
        }
    }
    return PN_OPTS_OK;
}
