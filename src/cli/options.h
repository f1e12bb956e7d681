/* The one checked option parser of the CLI: every subcommand describes its
 * options in a table and hands argv (and recipe files) to pn_opts_parse /
 * pn_opts_set. A value that does not parse or is out of range is a usage
 * error, never a silent default. */
#ifndef PNEUMO_CLI_OPTIONS_H
#define PNEUMO_CLI_OPTIONS_H

#include <stdint.h>

typedef enum pn_opt_kind {
    PN_OPTK_FLAG,   /* no value: stores flag_value into an int */
    PN_OPTK_STRING, /* const char *, points into argv (or the recipe's copy) */
    PN_OPTK_INT,    /* int in [min, max] */
    PN_OPTK_U64,    /* uint64_t in [min, max] */
    PN_OPTK_FLOAT,  /* finite float in [min, max], or (min, max] with open_min */
    PN_OPTK_CHOICE, /* one of the names in choices: stores its value into an int */
    PN_OPTK_CUSTOM  /* parse(value, dest) returns 0, or -1 for "expected <expect>" */
} pn_opt_kind;

typedef struct pn_opt_choice {
    const char *name;
    int value;
} pn_opt_choice;

typedef struct pn_option {
    const char *name; /* long name without "--" (also the recipe key) */
    pn_opt_kind kind;
    void *dest;
    double min, max;
    int open_min;
    int flag_value;
    const pn_opt_choice *choices; /* terminated by {NULL, 0} */
    int (*parse)(const char *value, void *dest);
    const char *expect;
} pn_option;

/* Table entries; the dest pointer's type is checked at compile time. */
#define PN_OPT_FLAG(n, p, v) {.name = (n), .kind = PN_OPTK_FLAG, .dest = (1 ? (p) : (int *)0), .flag_value = (v)}
#define PN_OPT_STRING(n, p) {.name = (n), .kind = PN_OPTK_STRING, .dest = (1 ? (p) : (const char **)0)}
#define PN_OPT_INT(n, p, lo, hi) \
    {.name = (n), .kind = PN_OPTK_INT, .dest = (1 ? (p) : (int *)0), .min = (lo), .max = (hi)}
#define PN_OPT_U64(n, p, lo, hi) \
    {.name = (n), .kind = PN_OPTK_U64, .dest = (1 ? (p) : (uint64_t *)0), .min = (lo), .max = (hi)}
#define PN_OPT_FLOAT(n, p, lo, hi) \
    {.name = (n), .kind = PN_OPTK_FLOAT, .dest = (1 ? (p) : (float *)0), .min = (lo), .max = (hi)}
/* A float in (lo, hi]: learning rates, scales, fractions that must be positive. */
#define PN_OPT_FLOAT_ABOVE(n, p, lo, hi) \
    {.name = (n), .kind = PN_OPTK_FLOAT, .dest = (1 ? (p) : (float *)0), .min = (lo), .max = (hi), .open_min = 1}
#define PN_OPT_CHOICE(n, p, c) {.name = (n), .kind = PN_OPTK_CHOICE, .dest = (1 ? (p) : (int *)0), .choices = (c)}
#define PN_OPT_CUSTOM(n, p, fn, what) \
    {.name = (n), .kind = PN_OPTK_CUSTOM, .dest = (p), .parse = (fn), .expect = (what)}
#define PN_OPT_END {.name = NULL}

/* Outcome of parsing: go on, --help was asked for, or a usage error (exit 2). */
typedef enum pn_opts_result { PN_OPTS_OK = 0, PN_OPTS_HELP = 1, PN_OPTS_BAD = 2 } pn_opts_result;

/* Parses argv[first..argc) against table: `--name value`, `--name=value` and
 * flags; -h/--help gives PN_OPTS_HELP. Arguments not starting with '-' are
 * stored in positional[] (room for argc entries) and counted in *n_positional;
 * with positional == NULL they are an error. A bad option prints one line
 * "prog: --name 'value': expected ..." to stderr and gives PN_OPTS_BAD. */
pn_opts_result pn_opts_parse(const char *prog, const pn_option *table, int argc, char **argv, int first,
                             const char **positional, int *n_positional);

/* Sets one option by name (no "--"): recipe files go through this. where
 * ("recipe.recipe:3") prefixes the error line; value must outlive the config. */
pn_opts_result pn_opts_set(const char *prog, const pn_option *table, const char *name, const char *value,
                           const char *where);

#endif
