/* libFuzzer target: any byte string must either load as a safetensors file
 * whose every tensor lies inside the buffer, or fail with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every byte of every tensor so ASan checks the data pointers. */
static void exercise(const pn_st_file *f)
{
    for (size_t i = 0; i < pn_st_count(f); i++) {
        const pn_st_tensor *t = pn_st_get(f, i);
        if (pn_st_find(f, t->name) != t || t->nbytes != t->numel * pn_st_dtype_size(t->dtype))
            abort();
        const uint8_t *bytes = t->data;
        unsigned sum = 0;
        for (size_t j = 0; j < t->nbytes; j++)
            sum += bytes[j];
        float *values = malloc(t->numel ? t->numel * sizeof *values : 1);
        if (values) {
            pn_error err;
            pn_st_to_f32(t, values, &err);
            free(values);
        }
        (void)sum;
    }
    for (size_t i = 0; i < pn_st_metadata_count(f); i++)
        if (!pn_st_metadata(f, pn_st_metadata_key(f, i)))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pn_st_file *f;
    pn_error err;
    if (pn_st_open_memory(data, size, "fuzz", &f, &err) == PN_OK) {
        exercise(f);
        pn_st_close(f);
    } else if (f != NULL || err.msg[0] == '\0') {
        abort();
    }
    return 0;
}
