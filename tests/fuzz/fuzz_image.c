/* libFuzzer target: image decode and the preprocessing inference applies.
 * Any byte string must decode through pn_image_decode_memory (which sniffs
 * JPEG, PNG and every other format it knows) into a consistent image, or
 * fail with a message; a decoded image then goes through resizing (both
 * modes), CLAHE and normalisation as `pneumo predict` and training do. */
#include "fuzz_util.h"

#include "pneumo/data.h"

/* The model input side used for DCT down-scaling and resizing. */
#define INPUT 224

static void preprocess(const pn_image *img)
{
    for (int mode = PN_RESIZE_SQUASH; mode <= PN_RESIZE_LETTERBOX; mode++) {
        pn_image resized = {0};
        pn_error err = {0};
        pn_status st = pn_image_resize(img, INPUT, INPUT, (pn_resize_mode)mode, &resized, &err);
        fuzz_check_error(st, &err);
        if (st)
            continue;
        if (resized.w != INPUT || resized.h != INPUT)
            abort();
        st = pn_image_clahe(&resized, PN_CLAHE_TILES, PN_CLAHE_CLIP, &err);
        fuzz_check_error(st, &err);
        pn_norm norm = pn_norm_default(3);
        float *x = malloc((size_t)INPUT * INPUT * 3 * sizeof *x); /* [INPUT, INPUT, 3] NHWC */
        if (x) {
            st = pn_normalize(resized.pixels, INPUT, INPUT, &norm, x, &err);
            fuzz_check_error(st, &err);
            free(x);
        }
        pn_image_free(&resized);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pn_image img;
    pn_error err = {0};
    pn_status st = pn_image_decode_memory(data, size, "fuzz", INPUT, INPUT, &img, &err);
    fuzz_check_error(st, &err);
    if (st) {
        if (img.pixels)
            abort();
        return 0;
    }
    if (img.w < 1 || img.h < 1 || (uint64_t)img.w * (uint64_t)img.h > PN_IMAGE_MAX_PIXELS || !img.pixels ||
        img.src_w < 1 || img.src_h < 1)
        abort();
    unsigned sum = 0; /* every pixel must be readable */
    for (size_t i = 0; i < (size_t)img.w * (size_t)img.h; i++)
        sum += img.pixels[i];
    (void)sum;
    preprocess(&img);
    pn_image_free(&img);
    return 0;
}
