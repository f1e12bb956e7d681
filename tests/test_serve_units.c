/* Pieces of the server tested alone: Grad-CAM overlay PNG, turbo colormap,
 * multipart parsing and base64. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/overlay.h"
#include "serve/access.h"
#include "serve/base64.h"
#include "serve/multipart.h"
#include "testutil.h"

/* Decodes an RGB PNG from memory; returns malloc'ed pixels. */
static uint8_t *decode_rgb(const unsigned char *png, size_t size, int *w, int *h)
{
    png_image img = {.version = PNG_IMAGE_VERSION};
    assert_true(png_image_begin_read_from_memory(&img, png, size));
    img.format = PNG_FORMAT_RGB;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
    assert_true(png_image_finish_read(&img, NULL, px, 0, NULL));
    *w = (int)img.width;
    *h = (int)img.height;
    return px;
}

static void test_turbo_endpoints(void **state)
{
    uint8_t lo[3], hi[3], mid[3];
    pn_turbo_rgb(0.1f, lo);
    pn_turbo_rgb(1.f, hi);
    pn_turbo_rgb(0.5f, mid);
    assert_true(lo[2] > lo[0]);            /* cold end is blue-ish */
    assert_true(hi[0] > 3 * hi[2]);        /* hot end is red */
    assert_true(mid[1] > mid[0] && mid[1] > mid[2]); /* middle is green */
    uint8_t nan_rgb[3];
    uint8_t zero[3];
    pn_turbo_rgb(0.f / 0.f, nan_rgb);
    pn_turbo_rgb(0.f, zero);
    assert_memory_equal(nan_rgb, zero, 3);
}

static void test_overlay_blend_and_upsample(void **state)
{
    enum { W = 64, H = 48, N = 2 };
    uint8_t gray[W * H];
    for (int i = 0; i < W * H; i++)
        gray[i] = (uint8_t)(i * 7);
    /* Left column cold, right column hot. */
    const float cam[N * N] = {0.f, 1.f, 0.f, 1.f};
    unsigned char *png;
    size_t size;
    pn_error err = {0};
    assert_int_equal(pn_overlay_png(gray, W, H, cam, N, 1.f, &png, &size, &err), PN_OK);
    int w, h;
    uint8_t *px = decode_rgb(png, size, &w, &h);
    assert_int_equal(w, W);
    assert_int_equal(h, H);
    uint8_t cold[3], hot[3];
    pn_turbo_rgb(0.f, cold);
    pn_turbo_rgb(1.f, hot);
    assert_memory_equal(px + 3 * (10 * W + 0), cold, 3);
    assert_memory_equal(px + 3 * (10 * W + W - 1), hot, 3);
    /* Bilinear: the two middle columns straddle 0.5 symmetrically. */
    uint8_t left[3], right[3];
    pn_turbo_rgb(0.5f - 0.5f / W * N, left);
    pn_turbo_rgb(0.5f + 0.5f / W * N, right);
    assert_memory_equal(px + 3 * (W / 2 - 1), left, 3);
    assert_memory_equal(px + 3 * (W / 2), right, 3);
    free(px);
    free(png);

    /* Opacity 0 gives back the X-ray; 0.5 is the average. */
    assert_int_equal(pn_overlay_png(gray, W, H, cam, N, 0.f, &png, &size, &err), PN_OK);
    px = decode_rgb(png, size, &w, &h);
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++)
            assert_int_equal(px[3 * i + c], gray[i]);
    free(px);
    free(png);
    assert_int_equal(pn_overlay_png(gray, W, H, cam, N, 0.5f, &png, &size, &err), PN_OK);
    px = decode_rgb(png, size, &w, &h);
    int i = 5 * W + W - 1;
    for (int c = 0; c < 3; c++) /* x.5 may round either way */
        assert_true(abs(2 * px[3 * i + c] - (gray[i] + hot[c])) <= 1);
    free(px);
    free(png);
}

static void test_heatmap_alpha_follows_map(void **state)
{
    enum { W = 32, H = 16, N = 2 };
    const float cam[N * N] = {0.f, 1.f, 0.f, 1.f};
    unsigned char *png;
    size_t size;
    pn_error err = {0};
    assert_int_equal(pn_heatmap_png(cam, N, W, H, &png, &size, &err), PN_OK);
    png_image img = {.version = PNG_IMAGE_VERSION};
    assert_true(png_image_begin_read_from_memory(&img, png, size));
    assert_int_equal(img.width, W);
    img.format = PNG_FORMAT_RGBA;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
    assert_true(png_image_finish_read(&img, NULL, px, 0, NULL));
    uint8_t hot[3];
    pn_turbo_rgb(1.f, hot);
    assert_int_equal(px[4 * (5 * W + 0) + 3], 0);       /* cold: transparent */
    assert_int_equal(px[4 * (5 * W + W - 1) + 3], 255); /* hot: opaque */
    assert_memory_equal(px + 4 * (5 * W + W - 1), hot, 3);
    free(px);
    free(png);
}

static void test_overlay_rejects_bad_arguments(void **state)
{
    uint8_t gray[4] = {0};
    float cam[1] = {0.5f};
    unsigned char *png = (unsigned char *)1;
    size_t size = 7;
    pn_error err = {0};
    assert_int_equal(pn_overlay_png(gray, 0, 2, cam, 1, 0.5f, &png, &size, &err), PN_EINVAL);
    assert_null(png);
    assert_int_equal(size, 0);
    assert_int_equal(pn_overlay_png(gray, 2, 2, cam, 0, 0.5f, &png, &size, &err), PN_EINVAL);
    assert_int_equal(pn_overlay_png(gray, 2, 2, cam, 1, 1.5f, &png, &size, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "opacity"));
    assert_int_equal(pn_overlay_png(gray, PN_OVERLAY_MAX_SIDE + 1, 1, cam, 1, 0.5f, &png, &size, &err), PN_EINVAL);
}

static void test_base64(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
                 {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}, {"\xff\xfe\x00", "//4A"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = i == 7 ? 3 : strlen(cases[i].in);
        char *b = serve_base64_encode((const unsigned char *)cases[i].in, n);
        assert_string_equal(b, cases[i].out);
        free(b);
    }
}

static void test_multipart_boundary(void **state)
{
    char b[80];
    pn_error err = {0};
    assert_int_equal(serve_multipart_boundary("multipart/form-data; boundary=abc", b, sizeof b, &err), PN_OK);
    assert_string_equal(b, "abc");
    assert_int_equal(serve_multipart_boundary("multipart/form-data;charset=x; BOUNDARY=\"a b;c\"", b, sizeof b, &err),
                     PN_OK);
    assert_string_equal(b, "a b;c");
    assert_int_equal(serve_multipart_boundary("multipart/form-data", b, sizeof b, &err), PN_EFORMAT);
    assert_int_equal(serve_multipart_boundary("multipart/form-data; boundary=", b, sizeof b, &err), PN_EFORMAT);
    char longb[200] = "multipart/form-data; boundary=";
    memset(longb + strlen(longb), 'x', 71);
    assert_int_equal(serve_multipart_boundary(longb, b, sizeof b, &err), PN_EFORMAT);
}

static void test_multipart_parse(void **state)
{
    static const char body[] = "--XY\r\n"
                               "Content-Disposition: form-data; name=\"threshold\"\r\n\r\n"
                               "0.3\r\n"
                               "--XY\r\n"
                               "content-type: image/png\r\n"
                               "content-disposition: form-data; filename=\"a;b.png\"; name=file\r\n\r\n"
                               "\x89PNG\r\n--X\r\n--XYZ\r\n"
                               "--XY--\r\nepilogue";
    multipart_form form;
    pn_error err = {0};
    assert_int_equal(serve_multipart_parse((const unsigned char *)body, sizeof body - 1, "XY", &form, &err), PN_OK);
    assert_int_equal(form.n_parts, 2);
    const multipart_part *t = serve_multipart_find(&form, "threshold");
    assert_non_null(t);
    assert_int_equal(t->size, 3);
    assert_memory_equal(t->data, "0.3", 3);
    assert_int_equal(t->has_filename, 0);
    const multipart_part *f = serve_multipart_find(&form, "file");
    assert_non_null(f);
    assert_string_equal(f->filename, "a;b.png");
    /* "\r\n--XYZ" starts like the delimiter but is data: only "--XY" followed by
     * CRLF or "--" ends the part. */
    assert_int_equal(f->size, 16);
    assert_memory_equal(f->data, "\x89PNG\r\n--X\r\n--XYZ", 16);
    assert_null(serve_multipart_find(&form, "missing"));
}

static void test_multipart_malformed(void **state)
{
    static const char *const bodies[] = {
        "no boundary here",
        "--XY\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
        "--XY\r\nContent-Type: text/plain\r\n\r\nx\r\n--XY--",      /* no Content-Disposition */
        "--XY\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XY--", /* no name */
        "--XY\r\nContent-Disposition: form-data; name=a",           /* headers never end */
        "--XY--\r\n",                                               /* no parts */
        "--XYgarbage\r\n",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        multipart_form form;
        pn_error err = {0};
        pn_status st = serve_multipart_parse((const unsigned char *)bodies[i], strlen(bodies[i]), "XY", &form, &err);
        if (st != PN_EFORMAT)
            fail_msg("body %zu parsed (status %d)", i, st);
        assert_true(strlen(err.msg) > 0);
    }
    /* Too many parts is a limit, not a crash. */
    char *many = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&many, &len);
    for (int i = 0; i <= MULTIPART_MAX_PARTS; i++)
        fprintf(f, "--XY\r\nContent-Disposition: form-data; name=\"p%d\"\r\n\r\nv\r\n", i);
    fputs("--XY--\r\n", f);
    fclose(f);
    multipart_form form;
    pn_error err = {0};
    assert_int_equal(serve_multipart_parse((const unsigned char *)many, len, "XY", &form, &err), PN_ELIMIT);
    free(many);
}

static void test_access_tokens(void **state)
{
    static const char *const tokens[] = {"first-token-0123456789", "second-token-abcdefghij"};
    pn_serve_options o;
    pn_serve_options_default(&o);
    o.tokens = tokens;
    o.n_tokens = 2;
    access_rules a;
    pn_error err = {0};
    assert_int_equal(serve_access_init(&a, &o, &err), PN_OK);
    static const struct {
        const char *header;
        int ok;
    } cases[] = {
        {"Bearer first-token-0123456789", 1}, {"bearer second-token-abcdefghij", 1},
        {"Bearer   first-token-0123456789", 1}, {NULL, 0}, {"", 0}, {"Bearer ", 0},
        {"Bearer first-token-012345678", 0}, {"Bearer first-token-01234567890", 0},
        {"Basic first-token-0123456789", 0}, {"first-token-0123456789", 0},
        {"Bearer second-token-abcdefghiJ", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (serve_access_token_ok(&a, cases[i].header) != cases[i].ok)
            fail_msg("token case %zu (%s): expected %d", i, cases[i].header ? cases[i].header : "NULL", cases[i].ok);
    serve_access_destroy(&a);
    /* No token configured: everything passes. */
    o.n_tokens = 0;
    assert_int_equal(serve_access_init(&a, &o, &err), PN_OK);
    assert_true(serve_access_token_ok(&a, NULL));
    serve_access_destroy(&a);
}

static void test_access_token_file(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tokens.txt", pn_test_tmpdir());
    static const struct {
        const char *text;
        int n; /* -1 = refused */
    } cases[] = {
        {"# ops tokens\n  token-one-0123456789  \n\ntoken-two-0123456789\n", 2},
        {"short\n", -1},
        {"# only a comment\n\n", -1},
        {"token with spaces 0123456789\n", -1},
        {"", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        FILE *f = fopen(path, "w");
        fputs(cases[i].text, f);
        fclose(f);
        char **tokens = NULL;
        int n = 0;
        pn_error err = {0};
        pn_status st = pn_serve_read_tokens(path, &tokens, &n, &err);
        if (cases[i].n < 0) {
            assert_int_not_equal(st, PN_OK);
            assert_true(strlen(err.msg) > 0);
        } else {
            assert_int_equal(st, PN_OK);
            assert_int_equal(n, cases[i].n);
            assert_string_equal(tokens[0], "token-one-0123456789");
        }
        pn_serve_free_tokens(tokens, n);
    }
    char **tokens;
    int n;
    pn_error err = {0};
    assert_int_equal(pn_serve_read_tokens("/nonexistent/tokens", &tokens, &n, &err), PN_EIO);
}

static void test_access_origin_and_host(void **state)
{
    static const char *const allowed[] = {"https://viewer.example"};
    pn_serve_options o;
    pn_serve_options_default(&o);
    o.allow_origins = allowed;
    o.n_allow_origins = 1;
    access_rules a;
    pn_error err = {0};
    assert_int_equal(serve_access_init(&a, &o, &err), PN_OK);
    static const struct {
        const char *origin, *site, *host;
        int tls;
        access_verdict v;
    } cases[] = {
        {NULL, NULL, "localhost:8080", 0, ACCESS_OK},
        {"http://localhost:8080", "same-origin", "localhost:8080", 0, ACCESS_OK},
        {"https://localhost:8080", NULL, "localhost:8080", 1, ACCESS_OK},
        {"http://localhost:8080", NULL, "localhost:8080", 1, ACCESS_FORBIDDEN},
        {"http://localhost:8081", NULL, "localhost:8080", 0, ACCESS_FORBIDDEN},
        {"http://evil.example", NULL, "localhost:8080", 0, ACCESS_FORBIDDEN},
        {"null", NULL, "localhost:8080", 0, ACCESS_FORBIDDEN},
        {"https://viewer.example", "cross-site", "pneumo:8443", 1, ACCESS_OK},
        {"https://viewer.example.evil", NULL, "pneumo:8443", 1, ACCESS_FORBIDDEN},
        {NULL, "cross-site", "localhost:8080", 0, ACCESS_FORBIDDEN},
        {NULL, "same-site", "localhost:8080", 0, ACCESS_FORBIDDEN},
        {NULL, "none", "localhost:8080", 0, ACCESS_OK},
        {"http://localhost:8080", NULL, NULL, 0, ACCESS_FORBIDDEN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (serve_access_check_origin(&a, cases[i].origin, cases[i].site, cases[i].host, cases[i].tls) != cases[i].v)
            fail_msg("origin case %zu", i);
    serve_access_destroy(&a);

    static const struct {
        const char *host;
        int loopback;
    } hosts[] = {
        {"localhost", 1}, {"LOCALHOST:8080", 1}, {"127.0.0.1:8080", 1}, {"127.9.9.9", 1}, {"[::1]:8080", 1},
        {"[::1]", 1}, {"evil.example", 0}, {"localhost.evil.example", 0}, {"128.0.0.1", 0}, {"[::2]:80", 0},
        {"[::1", 0}, {"", 0}, {NULL, 0}, {":8080", 0},
    };
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++)
        if (serve_access_loopback_host(hosts[i].host) != hosts[i].loopback)
            fail_msg("host case %zu (%s)", i, hosts[i].host ? hosts[i].host : "NULL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turbo_endpoints),
        cmocka_unit_test(test_overlay_blend_and_upsample),
        cmocka_unit_test(test_heatmap_alpha_follows_map),
        cmocka_unit_test(test_overlay_rejects_bad_arguments),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_multipart_boundary),
        cmocka_unit_test(test_multipart_parse),
        cmocka_unit_test(test_multipart_malformed),
        cmocka_unit_test(test_access_tokens),
        cmocka_unit_test(test_access_token_file),
        cmocka_unit_test(test_access_origin_and_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
