/* safetensors reader/writer: round trips, the shared pretrained files, a
 * Python cross-check, and one hand-made corrupt file per validation rule. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pneumo/safetensors.h"

/* ------------------------------------------------------------- helpers */

static void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", pn_test_tmpdir(), name);
}

static void write_bytes(const char *path, const void *bytes, size_t size)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, size, fp), size);
    assert_int_equal(fclose(fp), 0);
}

static uint8_t *read_bytes(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A file image: declared header length, header text, then data_len bytes. */
static uint8_t *build_raw(uint64_t declared_len, const char *header, size_t data_len, size_t *size)
{
    size_t hlen = strlen(header);
    *size = 8 + hlen + data_len;
    uint8_t *buf = malloc(*size);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(declared_len >> (8 * i));
    memcpy(buf + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hlen + i] = (uint8_t)(i * 7 + 1);
    return buf;
}

static uint8_t *build(const char *header, size_t data_len, size_t *size)
{
    return build_raw(strlen(header), header, data_len, size);
}

/* The bytes must be rejected with code, by pn_st_open (message names the
 * file and contains needle) and by pn_st_open_memory alike. */
static void expect_rejected(const uint8_t *bytes, size_t size, pn_status code, const char *needle)
{
    static int counter;
    char path[512], name[64];
    snprintf(name, sizeof name, "corrupt_%d.safetensors", counter++);
    tmp_path(path, sizeof path, name);
    write_bytes(path, bytes, size);

    pn_error err = {0};
    pn_st_file *f = (pn_st_file *)&err; /* must be reset to NULL on failure */
    pn_status st = pn_st_open(path, &f, &err);
    if (st != code || !strstr(err.msg, needle))
        fail_msg("expected %s containing '%s', got %s: %s", pn_status_name(code), needle,
                 pn_status_name(st), err.msg);
    assert_null(f);
    assert_non_null(strstr(err.msg, path));

    pn_error merr = {0};
    assert_int_equal(pn_st_open_memory(bytes, size, "in-memory.st", &f, &merr), code);
    assert_null(f);
    assert_non_null(strstr(merr.msg, "in-memory.st"));
    assert_non_null(strstr(merr.msg, needle));
}

static void expect_header_rejected(const char *header, size_t data_len, pn_status code,
                                   const char *needle)
{
    size_t size;
    uint8_t *bytes = build(header, data_len, &size);
    expect_rejected(bytes, size, code, needle);
    free(bytes);
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ----------------------------------------------------------- round trip */

static void test_round_trip(void **state)
{
    char path[512];
    tmp_path(path, sizeof path, "round_trip.safetensors");
    pn_error err = {0};
    pn_st_writer *w;
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);

    const float weights[6] = {1.5f, -2.25f, 0.0f, 3.0e-38f, 1.0e30f, -0.0f};
    const int64_t wshape[2] = {2, 3};
    /* BF16 rounding cases: halfway ties go to the even mantissa; above-halfway rounds up;
     * FLT_MAX rounds to inf (above the largest bf16 + half an ulp); NaN stays NaN. */
    const float bf_in[7] = {1.0f + 0x1p-8f,          1.0f + 3 * 0x1p-9f, 1.0f + 0x1p-7f + 0x1p-8f,
                            -1.0f - 0x1p-8f - 0x1p-20f, 3.4028235e38f,      NAN,
                            -INFINITY};
    const float bf_expected[6] = {1.0f, 1.0f + 0x1p-7f, 1.0f + 0x1p-6f, -1.0f - 0x1p-7f, INFINITY,
                                  NAN};
    const int64_t bshape[1] = {7};
    const int64_t ints[4] = {INT64_MIN, -1, 0, INT64_MAX};
    const int64_t ishape[2] = {2, 2};
    const uint8_t odd_bytes[3] = {1, 2, 255};
    const int64_t oshape[1] = {3};
    const int64_t zshape[2] = {0, 5};
    const float scalar = 42.0f;

    assert_int_equal(pn_st_writer_add_f32(w, "z.weight", PN_ST_F32, 2, wshape, weights, &err), PN_OK);
    assert_int_equal(pn_st_writer_add_f32(w, "bf", PN_ST_BF16, 1, bshape, bf_in, &err), PN_OK);
    assert_int_equal(pn_st_writer_add(w, "ints", PN_ST_I64, 2, ishape, ints, &err), PN_OK);
    assert_int_equal(pn_st_writer_add(w, "a_bytes", PN_ST_U8, 1, oshape, odd_bytes, &err), PN_OK);
    assert_int_equal(pn_st_writer_add(w, "empty", PN_ST_F32, 2, zshape, NULL, &err), PN_OK);
    assert_int_equal(pn_st_writer_add(w, "scalar", PN_ST_F32, 0, NULL, &scalar, &err), PN_OK);
    assert_int_equal(pn_st_writer_set_metadata(w, "format", "pt", &err), PN_OK);
    assert_int_equal(pn_st_writer_set_metadata(w, "b_key", "first", &err), PN_OK);
    assert_int_equal(pn_st_writer_set_metadata(w, "b_key", "replaced \"quoted\" µ", &err), PN_OK);
    assert_int_equal(pn_st_writer_set_metadata(w, "A", "", &err), PN_OK);
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_OK);
    pn_st_writer_destroy(w);

    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_false(file_exists(tmp));

    /* Header padded to a multiple of 8 with spaces, tensors in name order. */
    size_t size;
    uint8_t *raw = read_bytes(path, &size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | raw[i];
    assert_int_equal(hlen % 8, 0);
    assert_true(raw[8 + hlen - 1] == '}' || raw[8 + hlen - 1] == ' ');
    raw[8 + hlen] = '\0'; /* ends the header text for strstr (data follows) */
    char *h = (char *)raw + 8;
    assert_true(strstr(h, "\"a_bytes\"") < strstr(h, "\"bf\""));
    assert_true(strstr(h, "\"scalar\"") < strstr(h, "\"z.weight\""));
    free(raw);

    pn_st_file *f;
    assert_int_equal(pn_st_open(path, &f, &err), PN_OK);
    assert_int_equal(pn_st_count(f), 6);
    /* Data order = name order, and the data buffer starts 64-byte aligned. */
    const char *order[6] = {"a_bytes", "bf", "empty", "ints", "scalar", "z.weight"};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(pn_st_get(f, i)->name, order[i]);
    assert_null(pn_st_get(f, 6));
    assert_int_equal((uintptr_t)pn_st_get(f, 0)->data % 64, 0);

    const pn_st_tensor *t = pn_st_find(f, "z.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, PN_ST_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->numel, 6);
    assert_int_equal(t->nbytes, 24);
    float got[7];
    assert_int_equal(pn_st_to_f32(t, got, &err), PN_OK);
    assert_memory_equal(got, weights, sizeof weights); /* bit-exact, incl. -0 */

    t = pn_st_find(f, "bf");
    assert_int_equal(t->dtype, PN_ST_BF16);
    assert_int_equal(t->nbytes, 14);
    assert_int_equal(pn_st_to_f32(t, got, &err), PN_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(float_bits(got[i]), float_bits(bf_expected[i]));
    assert_true(isnan(got[5]));
    assert_true(isinf(got[6]) && got[6] < 0);

    t = pn_st_find(f, "ints");
    assert_int_equal(t->dtype, PN_ST_I64);
    assert_memory_equal(t->data, ints, sizeof ints);
    pn_error cerr = {0};
    assert_int_equal(pn_st_to_f32(t, got, &cerr), PN_EINVAL);
    assert_non_null(strstr(cerr.msg, "ints"));

    t = pn_st_find(f, "a_bytes");
    assert_int_equal(t->nbytes, 3);
    assert_memory_equal(t->data, odd_bytes, 3);
    t = pn_st_find(f, "empty");
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->nbytes, 0);
    assert_int_equal(t->shape[0], 0);
    assert_int_equal(t->shape[1], 5);
    t = pn_st_find(f, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    assert_memory_equal(t->data, &scalar, 4);
    assert_null(pn_st_find(f, "missing"));

    assert_int_equal(pn_st_metadata_count(f), 3);
    assert_string_equal(pn_st_metadata_key(f, 0), "A");
    assert_string_equal(pn_st_metadata_key(f, 1), "b_key");
    assert_string_equal(pn_st_metadata_key(f, 2), "format");
    assert_null(pn_st_metadata_key(f, 3));
    assert_string_equal(pn_st_metadata(f, "b_key"), "replaced \"quoted\" µ");
    assert_string_equal(pn_st_metadata(f, "format"), "pt");
    assert_string_equal(pn_st_metadata(f, "A"), "");
    assert_null(pn_st_metadata(f, "absent"));
    pn_st_close(f);
}

static void test_empty_file_round_trip(void **state)
{
    char path[512];
    tmp_path(path, sizeof path, "empty.safetensors");
    pn_st_writer *w;
    pn_error err = {0};
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_OK);
    pn_st_writer_destroy(w);
    pn_st_file *f;
    assert_int_equal(pn_st_open(path, &f, &err), PN_OK);
    assert_int_equal(pn_st_count(f), 0);
    assert_int_equal(pn_st_metadata_count(f), 0);
    pn_st_close(f);
}

/* Every IEEE half value against an independent formula; specials checked bitwise. */
static void test_f16_and_f64_conversion(void **state)
{
    uint16_t *halves = malloc(65536 * 2);
    float *out = malloc(65536 * sizeof *out);
    assert_non_null(halves);
    assert_non_null(out);
    for (uint32_t i = 0; i < 65536; i++)
        halves[i] = (uint16_t)i;
    const int64_t shape[1] = {65536};
    const double doubles[5] = {0.1, 1e300, -1e300, 5e-324, -123.5};
    const int64_t dshape[1] = {5};

    char path[512];
    tmp_path(path, sizeof path, "f16.safetensors");
    pn_error err = {0};
    pn_st_writer *w;
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    assert_int_equal(pn_st_writer_add(w, "h", PN_ST_F16, 1, shape, halves, &err), PN_OK);
    assert_int_equal(pn_st_writer_add(w, "d", PN_ST_F64, 1, dshape, doubles, &err), PN_OK);
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_OK);
    pn_st_writer_destroy(w);

    pn_st_file *f;
    assert_int_equal(pn_st_open(path, &f, &err), PN_OK);
    assert_int_equal(pn_st_to_f32(pn_st_find(f, "h"), out, &err), PN_OK);
    for (uint32_t i = 0; i < 65536; i++) {
        int sign = i >> 15, exponent = (i >> 10) & 31, mantissa = i & 1023;
        double expected = exponent == 0 ? ldexp(mantissa, -24) : ldexp(1024 + mantissa, exponent - 25);
        if (exponent == 31) {
            assert_true(mantissa ? isnan(out[i]) : isinf(out[i]));
            assert_int_equal(!!signbit(out[i]), sign);
            continue;
        }
        if (sign)
            expected = -expected;
        if ((double)out[i] != expected || !signbit(out[i]) != !signbit(expected))
            fail_msg("half 0x%04x: got %.9g, expected %.9g", i, out[i], expected);
    }
    assert_int_equal(float_bits(out[0x3c00]), float_bits(1.0f));
    assert_int_equal(float_bits(out[0x0001]), float_bits(0x1p-24f));
    assert_int_equal(float_bits(out[0x8000]), float_bits(-0.0f));
    assert_int_equal(float_bits(out[0x7bff]), float_bits(65504.0f));

    float d[5];
    assert_int_equal(pn_st_to_f32(pn_st_find(f, "d"), d, &err), PN_OK);
    assert_true(d[0] == (float)0.1);
    assert_true(isinf(d[1]) && d[1] > 0);
    assert_true(isinf(d[2]) && d[2] < 0);
    assert_true(d[3] == 0.0f);
    assert_true(d[4] == -123.5f);
    pn_st_close(f);
    free(halves);
    free(out);
}

static void test_writer_rejects_bad_input(void **state)
{
    pn_st_writer *w;
    pn_error err = {0};
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    const float v[2] = {1, 2};
    const int64_t shape[1] = {2}, negative[1] = {-2};
    const int64_t huge[3] = {INT64_MAX, INT64_MAX, 2};
    assert_int_equal(pn_st_writer_add_f32(w, "x", PN_ST_F32, 1, shape, v, &err), PN_OK);
    assert_int_equal(pn_st_writer_add_f32(w, "x", PN_ST_F32, 1, shape, v, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "twice"));
    assert_int_equal(pn_st_writer_add_f32(w, "__metadata__", PN_ST_F32, 1, shape, v, &err), PN_EINVAL);
    assert_int_equal(pn_st_writer_add_f32(w, "y", PN_ST_F32, 1, negative, v, &err), PN_EINVAL);
    assert_int_equal(pn_st_writer_add(w, "y", PN_ST_U8, 3, huge, v, &err), PN_EINVAL);
    assert_int_equal(pn_st_writer_add(w, "y", PN_ST_F32, PN_ST_MAX_DIMS + 1, shape, v, &err), PN_EINVAL);
    assert_int_equal(pn_st_writer_add(w, "y", (pn_st_dtype)99, 1, shape, v, &err), PN_EINVAL);
    assert_int_equal(pn_st_writer_add_f32(w, "y", PN_ST_I32, 1, shape, v, &err), PN_EINVAL);
    assert_int_equal(pn_st_writer_add(w, "y", PN_ST_F32, 1, shape, NULL, &err), PN_EINVAL);

    /* Invalid UTF-8 names cannot be represented in the JSON header. */
    assert_int_equal(pn_st_writer_add_f32(w, "bad\xff", PN_ST_F32, 1, shape, v, &err), PN_OK);
    char path[512];
    tmp_path(path, sizeof path, "bad_utf8.safetensors");
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "UTF-8"));
    assert_false(file_exists(path));
    pn_st_writer_destroy(w);
}

/* A failed rename (the target is a directory) must leave no temp file behind. */
static void test_writer_cleans_temp_on_failure(void **state)
{
    char path[512], tmp[600];
    tmp_path(path, sizeof path, "is_a_directory.safetensors");
    assert_int_equal(mkdir(path, 0755), 0);
    pn_st_writer *w;
    pn_error err = {0};
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    const float v[2] = {1, 2};
    const int64_t shape[1] = {2};
    assert_int_equal(pn_st_writer_add_f32(w, "x", PN_ST_F32, 1, shape, v, &err), PN_OK);
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "rename"));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_false(file_exists(tmp));

    tmp_path(path, sizeof path, "no/such/dir/x.safetensors");
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_EIO);
    pn_st_writer_destroy(w);
}

/* Saving over an existing file replaces it whole. */
static void test_writer_replaces_existing(void **state)
{
    char path[512];
    tmp_path(path, sizeof path, "replace.safetensors");
    write_bytes(path, "old contents that are not safetensors", 37);
    pn_st_writer *w;
    pn_error err = {0};
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    const float v[1] = {7};
    const int64_t shape[1] = {1};
    assert_int_equal(pn_st_writer_add_f32(w, "x", PN_ST_F32, 1, shape, v, &err), PN_OK);
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_OK);
    pn_st_writer_destroy(w);
    pn_st_file *f;
    assert_int_equal(pn_st_open(path, &f, &err), PN_OK);
    assert_int_equal(pn_st_count(f), 1);
    pn_st_close(f);
}

/* ----------------------------------------------------- shared pretrained */

static void check_pretrained(const char *file, size_t count, const int64_t first_shape[4])
{
    /* Skip only these tests (not the whole binary) when ../shared is absent. */
    const char *shared = pn_test_shared_dir();
    if (!shared) {
        print_message("SKIP: ../shared is absent, so %s cannot be tested here\n", file);
        skip();
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/pretrained/%s", shared, file);
    pn_error err = {0};
    pn_st_file *f;
    if (pn_st_open(path, &f, &err) != PN_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(pn_st_count(f), count);
    const pn_st_tensor *t = pn_st_find(f, "features.0.0.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(t->shape[i], first_shape[i]);
    assert_ptr_equal(pn_st_get(f, 0), t); /* written in forward order */
    assert_string_equal(pn_st_metadata(f, "format"), "pt");
    assert_string_equal(pn_st_metadata(f, "dtype"), "float32");
    for (size_t i = 0; i < count; i++)
        assert_int_equal(pn_st_get(f, i)->dtype, PN_ST_F32);
    float *w = malloc(t->nbytes);
    assert_int_equal(pn_st_to_f32(t, w, &err), PN_OK);
    double sum = 0;
    for (size_t i = 0; i < t->numel; i++) {
        assert_true(isfinite(w[i]));
        sum += fabs(w[i]);
    }
    assert_true(sum > 0);
    free(w);
    pn_st_close(f);
}

static void test_pretrained_v3_small(void **state)
{
    const int64_t shape[4] = {16, 3, 3, 3};
    check_pretrained("mobilenet_v3_small_1.0_224_tfslim_bnfolded_f32.safetensors", 108, shape);
}

static void test_pretrained_v2(void **state)
{
    const int64_t shape[4] = {32, 3, 3, 3};
    check_pretrained("mobilenet_v2_1.0_224_onnxzoo_bnfolded_f32.safetensors", 106, shape);
}

/* --------------------------------------------------- Python cross-check */

/* A reader written with json+struct only, strict like the reference one. It
 * prints {name: [dtype, shape, values]} plus the metadata as JSON. */
static const char python_reader[] =
    "import json, struct, sys\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "n = struct.unpack('<Q', raw[:8])[0]\n"
    "assert n % 8 == 0\n"
    "hdr = json.loads(raw[8:8 + n].decode('utf-8'))\n"
    "meta = hdr.pop('__metadata__', {})\n"
    "fmt = {'F32': ('f', 4), 'I64': ('q', 8), 'BF16': ('H', 2)}\n"
    "out, pos = {}, 0\n"
    "for name in sorted(hdr):\n"
    "    e = hdr[name]; b, end = e['data_offsets']\n"
    "    assert b == pos, name\n"
    "    code, size = fmt[e['dtype']]; count = (end - b) // size\n"
    "    vals = list(struct.unpack('<%d%s' % (count, code), raw[8 + n + b:8 + n + end]))\n"
    "    if e['dtype'] == 'BF16':\n"
    "        vals = [struct.unpack('<f', struct.pack('<I', v << 16))[0] for v in vals]\n"
    "    out[name] = [e['dtype'], e['shape'], vals]; pos = end\n"
    "assert 8 + n + pos == len(raw)\n"
    "print(json.dumps({'tensors': out, 'meta': meta}))\n";

static void test_python_reads_c_file(void **state)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        skip();
    char path[512], script[512], cmd[1200];
    tmp_path(path, sizeof path, "for_python.safetensors");
    tmp_path(script, sizeof script, "reader.py");
    write_bytes(script, python_reader, strlen(python_reader));

    pn_st_writer *w;
    pn_error err = {0};
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    const float conv[6] = {0.5f, -1.25f, 3.0f, 1e-3f, -7e5f, 0.0f};
    const int64_t cshape[4] = {1, 2, 3, 1};
    const float bf[3] = {1.0f + 3 * 0x1p-9f, -2.0f, 100.0f};
    const int64_t bshape[1] = {3};
    const int64_t steps[1] = {123456789012345LL};
    const int64_t sshape[1] = {1};
    assert_int_equal(pn_st_writer_add_f32(w, "net.conv", PN_ST_F32, 4, cshape, conv, &err), PN_OK);
    assert_int_equal(pn_st_writer_add_f32(w, "net.bf", PN_ST_BF16, 1, bshape, bf, &err), PN_OK);
    assert_int_equal(pn_st_writer_add(w, "a.steps", PN_ST_I64, 1, sshape, steps, &err), PN_OK);
    assert_int_equal(pn_st_writer_set_metadata(w, "note", "ünïcode & \"quotes\"\n", &err), PN_OK);
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_OK);
    pn_st_writer_destroy(w);

    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);

    json_error_t jerr;
    json_t *root = json_loads(out, 0, &jerr);
    if (!root)
        fail_msg("python output is not JSON: %s\n%s", jerr.text, out);
    json_t *t = json_object_get(root, "tensors");
    assert_int_equal(json_object_size(t), 3);
    json_t *c = json_object_get(t, "net.conv");
    assert_string_equal(json_string_value(json_array_get(c, 0)), "F32");
    assert_int_equal(json_array_size(json_array_get(c, 1)), 4);
    assert_int_equal(json_integer_value(json_array_get(json_array_get(c, 1), 2)), 3);
    for (size_t i = 0; i < 6; i++)
        assert_true((float)json_number_value(json_array_get(json_array_get(c, 2), i)) == conv[i]);
    json_t *b = json_array_get(json_object_get(t, "net.bf"), 2);
    assert_true(json_number_value(json_array_get(b, 0)) == 1.0 + 0x1p-7);
    assert_true(json_number_value(json_array_get(b, 1)) == -2.0);
    assert_true(json_number_value(json_array_get(b, 2)) == 100.0);
    json_t *s = json_array_get(json_object_get(t, "a.steps"), 2);
    assert_true(json_integer_value(json_array_get(s, 0)) == steps[0]);
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "meta"), "note")),
                        "ünïcode & \"quotes\"\n");
    json_decref(root);
}

/* A file written the way other tools do: unsorted names, header not padded,
 * metadata first, tensor bytes not in name order. */
static void test_reads_foreign_layout(void **state)
{
    const char *header = "{\"__metadata__\":{\"k\":\"v\"},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"a\":{\"data_offsets\":[4,6],\"shape\":[1],\"dtype\":\"BF16\"}}   ";
    size_t size;
    uint8_t *bytes = build(header, 6, &size);
    const float one = 1.0f;
    const uint16_t two_bf16 = 0x4000;
    memcpy(bytes + size - 6, &one, 4);
    memcpy(bytes + size - 2, &two_bf16, 2);
    pn_st_file *f;
    pn_error err = {0};
    assert_int_equal(pn_st_open_memory(bytes, size, "foreign", &f, &err), PN_OK);
    assert_string_equal(pn_st_get(f, 0)->name, "b");
    assert_string_equal(pn_st_get(f, 1)->name, "a");
    float v;
    assert_int_equal(pn_st_to_f32(pn_st_find(f, "a"), &v, &err), PN_OK);
    assert_true(v == 2.0f);
    assert_int_equal(pn_st_to_f32(pn_st_find(f, "b"), &v, &err), PN_OK);
    assert_true(v == 1.0f);
    assert_string_equal(pn_st_metadata(f, "k"), "v");
    pn_st_close(f);
    free(bytes);
}

/* ------------------------------------------------- corrupt files, one per rule */

#define T1 "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void test_corrupt_too_short(void **state)
{
    const uint8_t bytes[5] = {1, 0, 0, 0, 0};
    expect_rejected(bytes, sizeof bytes, PN_EFORMAT, "too short");
    expect_rejected(bytes, 0, PN_EFORMAT, "too short");
}

static void test_corrupt_header_longer_than_file(void **state)
{
    size_t size;
    uint8_t *bytes = build_raw(1000, "{" T1 "}", 8, &size);
    expect_rejected(bytes, size, PN_EFORMAT, "exceeds the file size");
    free(bytes);
}

static void test_corrupt_header_absurd_length(void **state)
{
    size_t size;
    uint8_t *bytes = build_raw(UINT64_MAX - 3, "{}", 0, &size);
    expect_rejected(bytes, size, PN_ELIMIT, "100 MB");
    free(bytes);
    bytes = build_raw((uint64_t)100 * 1024 * 1024 + 1, "{}", 0, &size);
    expect_rejected(bytes, size, PN_ELIMIT, "100 MB");
    free(bytes);
}

static void test_corrupt_invalid_json(void **state)
{
    expect_header_rejected("{\"t\": {\"dtype\": ", 0, PN_EFORMAT, "not valid JSON");
    expect_header_rejected("", 0, PN_EFORMAT, "not valid JSON");
    expect_header_rejected("{} trailing", 0, PN_EFORMAT, "not valid JSON");
}

static void test_corrupt_invalid_utf8(void **state)
{
    expect_header_rejected("{\"t\xc3\x28\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                           PN_EFORMAT, "not valid JSON");
}

static void test_corrupt_embedded_nul(void **state)
{
    expect_header_rejected("{\"t\\u0000x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                           PN_EFORMAT, "not valid JSON");
}

static void test_corrupt_not_an_object(void **state)
{
    expect_header_rejected("[1, 2, 3]", 0, PN_EFORMAT, "not a JSON object");
    expect_header_rejected("\"text\"", 0, PN_EFORMAT, "not a JSON object");
}

static void test_corrupt_entry_not_an_object(void **state)
{
    expect_header_rejected("{\"t\":[0,8]}", 8, PN_EFORMAT, "entry is not a JSON object");
}

static void test_corrupt_missing_dtype(void **state)
{
    expect_header_rejected("{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, PN_EFORMAT,
                           "missing \"dtype\"");
}

static void test_corrupt_missing_shape(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, PN_EFORMAT,
                           "missing \"shape\"");
}

static void test_corrupt_missing_offsets(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, PN_EFORMAT,
                           "missing \"data_offsets\"");
}

static void test_corrupt_dtype_not_string(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, PN_EFORMAT,
                           "\"dtype\" is not a string");
}

static void test_corrupt_shape_not_array(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
                           PN_EFORMAT, "\"shape\" is not an array");
}

static void test_corrupt_offsets_wrong_type(void **state)
{
    const char *what = "\"data_offsets\" is not [begin, end]";
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":\"0-8\"}}", 8,
                           PN_EFORMAT, what);
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8, PN_EFORMAT,
                           what);
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8,
                           PN_EFORMAT, what);
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.0,8.0]}}", 8,
                           PN_EFORMAT, what);
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8,
                           PN_EFORMAT, what);
}

static void test_corrupt_unknown_dtype(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8,
                           PN_EUNSUPPORTED, "unsupported dtype \"F8_E4M3\"");
    expect_header_rejected("{\"t\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                           PN_EUNSUPPORTED, "unsupported dtype");
}

static void test_corrupt_negative_dim(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                           PN_EFORMAT, "dimension 0 is not a non-negative integer");
}

static void test_corrupt_non_integer_dim(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,2.0],\"data_offsets\":[0,8]}}", 8,
                           PN_EFORMAT, "dimension 1 is not a non-negative integer");
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                           PN_EFORMAT, "dimension 0 is not a non-negative integer");
}

static void test_corrupt_too_many_dims(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                           1, PN_EUNSUPPORTED, "9 dimensions");
}

static void test_corrupt_size_overflow(void **state)
{
    /* 2^32 * 2^32 elements overflows 64 bits; 2^62 F32 elements overflow only with the dtype size. */
    expect_header_rejected(
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
        PN_EFORMAT, "overflows");
    expect_header_rejected(
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8,
        PN_EFORMAT, "overflows");
}

static void test_corrupt_integer_too_big_for_json(void **state)
{
    expect_header_rejected(
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999]}}", 8,
        PN_EFORMAT, "not valid JSON");
}

static void test_corrupt_offsets_out_of_bounds(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8,
                           PN_EFORMAT, "beyond the 8-byte data buffer");
    expect_header_rejected(
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9223372036854775800,9223372036854775807]}}",
        8, PN_EFORMAT, "beyond");
}

static void test_corrupt_offsets_end_before_begin(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
                           PN_EFORMAT, "end 0 < begin 8");
}

static void test_corrupt_size_mismatch(void **state)
{
    expect_header_rejected("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                           PN_EFORMAT, "span 8 bytes but shape x F32 needs 12");
}

static void test_corrupt_overlap(void **state)
{
    expect_header_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                           12, PN_EFORMAT, "tensor \"b\" overlaps tensor \"a\"");
    /* Two names for the same bytes. */
    expect_header_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                           8, PN_EFORMAT, "overlaps");
}

static void test_corrupt_hole(void **state)
{
    expect_header_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                           12, PN_EFORMAT, "4 unused bytes in the data buffer before tensor \"b\"");
    expect_header_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                           PN_EFORMAT, "4 unused bytes in the data buffer before tensor \"a\"");
}

static void test_corrupt_trailing_data(void **state)
{
    expect_header_rejected("{" T1 "}", 12, PN_EFORMAT, "4 unused bytes at the end");
    expect_header_rejected("{}", 1, PN_EFORMAT, "1 unused bytes at the end");
}

static void test_corrupt_duplicate_names(void **state)
{
    expect_header_rejected("{" T1 "," T1 "}", 8, PN_EFORMAT, "duplicate");
}

static void test_corrupt_metadata_not_string(void **state)
{
    expect_header_rejected("{\"__metadata__\":{\"ok\":\"x\",\"epochs\":10}," T1 "}", 8, PN_EFORMAT,
                           "__metadata__ value for \"epochs\" is not a string");
    expect_header_rejected("{\"__metadata__\":{\"n\":null}," T1 "}", 8, PN_EFORMAT, "not a string");
}

static void test_corrupt_metadata_not_object(void **state)
{
    expect_header_rejected("{\"__metadata__\":[\"a\"]," T1 "}", 8, PN_EFORMAT,
                           "__metadata__ is not a JSON object");
}

static void test_open_missing_file(void **state)
{
    char path[512];
    tmp_path(path, sizeof path, "does_not_exist.safetensors");
    pn_st_file *f;
    pn_error err = {0};
    assert_int_equal(pn_st_open(path, &f, &err), PN_EIO);
    assert_null(f);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(pn_st_open(pn_test_tmpdir(), &f, &err), PN_EINVAL);
}

/* Every truncation and a sweep of single-byte corruptions of a valid file must
 * either load or fail cleanly (the sanitizers catch any bad access). */
static void test_truncations_and_byte_flips(void **state)
{
    char path[512];
    tmp_path(path, sizeof path, "mutate.safetensors");
    pn_st_writer *w;
    pn_error err = {0};
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    const float v[4] = {1, 2, 3, 4};
    const int64_t shape[2] = {2, 2};
    assert_int_equal(pn_st_writer_add_f32(w, "w", PN_ST_F32, 2, shape, v, &err), PN_OK);
    assert_int_equal(pn_st_writer_add_f32(w, "b", PN_ST_BF16, 2, shape, v, &err), PN_OK);
    assert_int_equal(pn_st_writer_set_metadata(w, "k", "v", &err), PN_OK);
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_OK);
    pn_st_writer_destroy(w);

    size_t size;
    uint8_t *bytes = read_bytes(path, &size);
    pn_st_file *f;
    for (size_t len = 0; len < size; len++) {
        assert_int_not_equal(pn_st_open_memory(bytes, len, "truncated", &f, &err), PN_OK);
        assert_null(f);
    }
    static const uint8_t replacements[] = {0, '"', '{', '}', '[', ']', ',', ':', '-', '9', 0xff};
    int loaded = 0, rejected = 0;
    for (size_t pos = 0; pos < size; pos++) {
        uint8_t saved = bytes[pos];
        for (size_t r = 0; r < sizeof replacements; r++) {
            bytes[pos] = replacements[r];
            if (pn_st_open_memory(bytes, size, "flipped", &f, &err) == PN_OK) {
                for (size_t i = 0; i < pn_st_count(f); i++)
                    assert_true(pn_st_get(f, i)->nbytes <= size);
                pn_st_close(f);
                loaded++;
            } else {
                assert_true(err.msg[0] != '\0');
                rejected++;
            }
        }
        bytes[pos] = saved;
    }
    assert_true(loaded > 0);   /* e.g. changes inside the data buffer */
    assert_true(rejected > 0); /* e.g. changes to the header structure */
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_file_round_trip),
        cmocka_unit_test(test_f16_and_f64_conversion),
        cmocka_unit_test(test_writer_rejects_bad_input),
        cmocka_unit_test(test_writer_cleans_temp_on_failure),
        cmocka_unit_test(test_writer_replaces_existing),
        cmocka_unit_test(test_pretrained_v3_small),
        cmocka_unit_test(test_pretrained_v2),
        cmocka_unit_test(test_python_reads_c_file),
        cmocka_unit_test(test_reads_foreign_layout),
        cmocka_unit_test(test_corrupt_too_short),
        cmocka_unit_test(test_corrupt_header_longer_than_file),
        cmocka_unit_test(test_corrupt_header_absurd_length),
        cmocka_unit_test(test_corrupt_invalid_json),
        cmocka_unit_test(test_corrupt_invalid_utf8),
        cmocka_unit_test(test_corrupt_embedded_nul),
        cmocka_unit_test(test_corrupt_not_an_object),
        cmocka_unit_test(test_corrupt_entry_not_an_object),
        cmocka_unit_test(test_corrupt_missing_dtype),
        cmocka_unit_test(test_corrupt_missing_shape),
        cmocka_unit_test(test_corrupt_missing_offsets),
        cmocka_unit_test(test_corrupt_dtype_not_string),
        cmocka_unit_test(test_corrupt_shape_not_array),
        cmocka_unit_test(test_corrupt_offsets_wrong_type),
        cmocka_unit_test(test_corrupt_unknown_dtype),
        cmocka_unit_test(test_corrupt_negative_dim),
        cmocka_unit_test(test_corrupt_non_integer_dim),
        cmocka_unit_test(test_corrupt_too_many_dims),
        cmocka_unit_test(test_corrupt_size_overflow),
        cmocka_unit_test(test_corrupt_integer_too_big_for_json),
        cmocka_unit_test(test_corrupt_offsets_out_of_bounds),
        cmocka_unit_test(test_corrupt_offsets_end_before_begin),
        cmocka_unit_test(test_corrupt_size_mismatch),
        cmocka_unit_test(test_corrupt_overlap),
        cmocka_unit_test(test_corrupt_hole),
        cmocka_unit_test(test_corrupt_trailing_data),
        cmocka_unit_test(test_corrupt_duplicate_names),
        cmocka_unit_test(test_corrupt_metadata_not_string),
        cmocka_unit_test(test_corrupt_metadata_not_object),
        cmocka_unit_test(test_open_missing_file),
        cmocka_unit_test(test_truncations_and_byte_flips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
