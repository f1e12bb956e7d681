/* SHA-256 against the FIPS 180-2 appendix B vectors, streaming vs one-shot,
 * and the digests the pretrained README records for the shared files. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/sha256.h"

static void expect_digest(const void *data, size_t len, const char *hex_expected)
{
    uint8_t digest[PN_SHA256_DIGEST_SIZE];
    char hex[PN_SHA256_HEX_SIZE];
    pn_sha256(data, len, digest);
    pn_sha256_hex(digest, hex);
    assert_string_equal(hex, hex_expected);
}

static void test_fips_abc(void **state)
{
    expect_digest("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_fips_448_bit_message(void **state)
{
    const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    expect_digest(msg, strlen(msg), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_fips_million_a(void **state)
{
    /* Streamed in uneven pieces so block boundaries fall inside updates. */
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    pn_sha256_ctx ctx;
    pn_sha256_init(&ctx);
    size_t left = 1000000;
    while (left > 0) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        pn_sha256_update(&ctx, chunk, n);
        left -= n;
    }
    uint8_t digest[PN_SHA256_DIGEST_SIZE];
    char hex[PN_SHA256_HEX_SIZE];
    pn_sha256_final(&ctx, digest);
    pn_sha256_hex(digest, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_empty_message(void **state)
{
    expect_digest("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* Lengths around the 55/56/64-byte padding boundaries: streaming byte by byte
 * must agree with one-shot for every length. */
static void test_streaming_matches_one_shot(void **state)
{
    uint8_t data[200];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 31 + 7);
    for (size_t len = 0; len <= sizeof data; len++) {
        uint8_t one[PN_SHA256_DIGEST_SIZE], streamed[PN_SHA256_DIGEST_SIZE];
        pn_sha256(data, len, one);
        pn_sha256_ctx ctx;
        pn_sha256_init(&ctx);
        for (size_t i = 0; i < len; i++)
            pn_sha256_update(&ctx, data + i, 1);
        pn_sha256_final(&ctx, streamed);
        assert_memory_equal(one, streamed, sizeof one);
    }
    /* 56 zero bytes: the length no longer fits in the first padded block. */
    static const uint8_t zeros[56];
    expect_digest(zeros, 56, "d4817aa5497628e7c77e6b606107042bbba3130888c5f47a375e6179be789fbb");
}

static void test_file_digest(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/abc.txt", pn_test_tmpdir());
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs("abc", fp);
    fclose(fp);
    uint8_t digest[PN_SHA256_DIGEST_SIZE];
    char hex[PN_SHA256_HEX_SIZE];
    pn_error err = {0};
    assert_int_equal(pn_sha256_file(path, digest, &err), PN_OK);
    pn_sha256_hex(digest, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    snprintf(path, sizeof path, "%s/missing.txt", pn_test_tmpdir());
    assert_int_equal(pn_sha256_file(path, digest, &err), PN_EIO);
    assert_non_null(strstr(err.msg, path));
}

/* The README in ../shared/pretrained lists each file's sha256 (computed by
 * other tools): our digest of the file must appear there. */
static void test_pretrained_digests_match_readme(void **state)
{
    const char *shared = pn_test_shared_dir();
    if (!shared) {
        print_message("SKIP: ../shared is absent\n");
        skip();
    }
    static const char *files[2] = {"mobilenet_v3_small_1.0_224_tfslim_bnfolded_f32.safetensors",
                                   "mobilenet_v2_1.0_224_onnxzoo_bnfolded_f32.safetensors"};
    char path[1024];
    snprintf(path, sizeof path, "%s/pretrained/README.md", shared);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *readme = calloc(1, 1 << 20);
    assert_non_null(readme);
    size_t n = fread(readme, 1, (1 << 20) - 1, fp);
    fclose(fp);
    assert_true(n > 0);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/pretrained/%s", shared, files[i]);
        uint8_t digest[PN_SHA256_DIGEST_SIZE];
        char hex[PN_SHA256_HEX_SIZE];
        pn_error err = {0};
        assert_int_equal(pn_sha256_file(path, digest, &err), PN_OK);
        pn_sha256_hex(digest, hex);
        if (!strstr(readme, hex))
            fail_msg("%s: sha256 %s not in README.md", files[i], hex);
    }
    free(readme);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_abc),
        cmocka_unit_test(test_fips_448_bit_message),
        cmocka_unit_test(test_fips_million_a),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_streaming_matches_one_shot),
        cmocka_unit_test(test_file_digest),
        cmocka_unit_test(test_pretrained_digests_match_readme),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
