#include "nn/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static pn_status add_section(pn_cfg *cfg, const char *kind, int line, pn_error *err)
{
    pn_cfg_section *grown = realloc(cfg->sections, (size_t)(cfg->n_sections + 1) * sizeof *grown);
    if (!grown)
        return pn_fail(err, PN_ENOMEM, "cfg: out of memory");
    cfg->sections = grown;
    pn_cfg_section *s = &cfg->sections[cfg->n_sections++];
    memset(s, 0, sizeof *s);
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    s->line = line;
    return PN_OK;
}

static pn_status parse_line(pn_cfg *cfg, char *line, int lineno, pn_error *err)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    char *t = trim(line);
    if (!*t)
        return PN_OK;
    if (*t == '[') {
        char *close = strchr(t, ']');
        if (!close || close[1] != '\0' || close == t + 1 || close - t > 31)
            return pn_fail(err, PN_EFORMAT, "cfg line %d: bad section header '%s'", lineno, t);
        *close = '\0';
        return add_section(cfg, trim(t + 1), lineno, err);
    }
    char *eq = strchr(t, '=');
    if (!eq)
        return pn_fail(err, PN_EFORMAT, "cfg line %d: expected key = value, got '%s'", lineno, t);
    if (cfg->n_sections == 0)
        return pn_fail(err, PN_EFORMAT, "cfg line %d: key outside a [section]", lineno);
    *eq = '\0';
    char *key = trim(t), *value = trim(eq + 1);
    pn_cfg_section *s = &cfg->sections[cfg->n_sections - 1];
    if (!*key || !*value)
        return pn_fail(err, PN_EFORMAT, "cfg line %d: empty key or value", lineno);
    for (int i = 0; i < s->n_kv; i++)
        if (!strcmp(s->kv[i].key, key))
            return pn_fail(err, PN_EFORMAT, "cfg line %d: key '%s' repeated", lineno, key);
    if (s->n_kv == PN_CFG_MAX_KEYS)
        return pn_fail(err, PN_EFORMAT, "cfg line %d: too many keys in [%s]", lineno, s->kind);
    s->kv[s->n_kv].key = strdup(key);
    s->kv[s->n_kv].value = strdup(value);
    if (!s->kv[s->n_kv].key || !s->kv[s->n_kv].value)
        return pn_fail(err, PN_ENOMEM, "cfg: out of memory");
    s->n_kv++;
    return PN_OK;
}

pn_status pn_cfg_parse(const char *text, pn_cfg *out, pn_error *err)
{
    memset(out, 0, sizeof *out);
    char *copy = strdup(text ? text : "");
    if (!copy)
        return pn_fail(err, PN_ENOMEM, "cfg: out of memory");
    pn_status st = PN_OK;
    int lineno = 0;
    for (char *line = copy, *next; line && st == PN_OK; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        st = parse_line(out, line, ++lineno, err);
    }
    free(copy);
    if (st == PN_OK && out->n_sections == 0)
        st = pn_fail(err, PN_EFORMAT, "cfg: no sections");
    if (st != PN_OK)
        pn_cfg_free(out);
    return st;
}

void pn_cfg_free(pn_cfg *cfg)
{
    for (int i = 0; i < cfg->n_sections; i++)
        for (int k = 0; k < cfg->sections[i].n_kv; k++) {
            free(cfg->sections[i].kv[k].key);
            free(cfg->sections[i].kv[k].value);
        }
    free(cfg->sections);
    memset(cfg, 0, sizeof *cfg);
}

const char *pn_cfg_str(const pn_cfg_section *s, const char *key, const char *def)
{
    for (int i = 0; i < s->n_kv; i++)
        if (!strcmp(s->kv[i].key, key)) {
            ((pn_cfg_section *)s)->kv[i].used = 1; /* bookkeeping only */
            return s->kv[i].value;
        }
    return def;
}

pn_status pn_cfg_int(const pn_cfg_section *s, const char *key, int def, int *out, pn_error *err)
{
    const char *v = pn_cfg_str(s, key, NULL);
    if (!v) {
        *out = def;
        return PN_OK;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < -1000000000L || x > 1000000000L)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [%s]: %s = '%s' is not an integer", s->line,
                       s->kind, key, v);
    *out = (int)x;
    return PN_OK;
}

pn_status pn_cfg_float(const pn_cfg_section *s, const char *key, float def, float *out,
                       pn_error *err)
{
    const char *v = pn_cfg_str(s, key, NULL);
    if (!v) {
        *out = def;
        return PN_OK;
    }
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || *end)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [%s]: %s = '%s' is not a number", s->line,
                       s->kind, key, v);
    *out = x;
    return PN_OK;
}

pn_status pn_cfg_check_unused(const pn_cfg_section *s, pn_error *err)
{
    for (int i = 0; i < s->n_kv; i++)
        if (!s->kv[i].used)
            return pn_fail(err, PN_EFORMAT, "cfg line %d: [%s] has no key '%s'", s->line, s->kind,
                           s->kv[i].key);
    return PN_OK;
}
