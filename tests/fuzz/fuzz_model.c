/* libFuzzer target: model load validation. Any byte string given to
 * pn_model_load as a model file must load into a consistent 2-class model
 * (network rebuilt from the file's own cfg text, every tensor present,
 * well-shaped and finite, metadata in range) or fail with a message. */
#include "fuzz_util.h"

#include "pneumo/infer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    pn_model *m = NULL;
    pn_error err = {0};
    pn_status st = pn_model_load(path, 1, &m, &err);
    fuzz_check_error(st, &err);
    if (!st) {
        const pn_model_info *info = pn_model_get_info(m);
        if (!info->id || !info->card_json || !info->metrics_json || info->input_size < 1 ||
            !(info->channels == 1 || info->channels == 3) || !(info->threshold >= 0 && info->threshold <= 1))
            abort();
        pn_history h;
        if (pn_model_history(m, &h))
            pn_history_free(&h);
        pn_model_free(m);
    } else if (m) {
        abort();
    }
    close(fd);
    return 0;
}
