/* libFuzzer target: the checked option parser with `pneumo train`'s real
 * option table, through a recipe file and the command line. The input is a
 * recipe text, optionally followed by a NUL and NUL-separated extra argv
 * words. Whatever the input, parsing must end in "parsed", "--help" or a
 * usage error, and a parsed config must hold only values in range. */
#include "fuzz_util.h"

#include "cli/commands.h"
#include "pneumo/train.h"

#define MAX_WORDS 32

/* The "run" step of pneumo train: only checks the parsed config. */
static int check_config(const pn_train_config *c)
{
    if (c->epochs < 1 || c->batch < 1 || !(c->lr > 0) || c->channels < 0 || c->channels > 3 ||
        c->classes < 2 || c->classes > 3 || !(c->val_fraction > 0 && c->val_fraction <= 0.9f) ||
        !(c->label_smoothing >= 0 && c->label_smoothing <= 0.5f) || !c->data_dir)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t recipe_len = nul ? (size_t)(nul - data) : size;
    char path[64];
    int fd = fuzz_memfd(data, recipe_len, path, sizeof path);
    char *words = nul ? fuzz_strndup(nul + 1, size - recipe_len - 1) : NULL;
    if (fd < 0 || (nul && !words)) {
        if (fd >= 0)
            close(fd);
        free(words);
        return 0;
    }
    char *argv[MAX_WORDS + 6] = {"train", "--data", "fuzz-data", "--recipe", path};
    int argc = 5;
    size_t words_len = nul ? size - recipe_len - 1 : 0;
    for (size_t i = 0; words && i < words_len && argc < MAX_WORDS + 5; i += strlen(words + i) + 1)
        argv[argc++] = words + i;
    argv[argc] = NULL;
    int rc = pn_cli_train_main(argc, argv, pn_train_defaults(), check_config);
    if (rc != 0 && rc != 2)
        abort();
    free(words);
    close(fd);
    return 0;
}
