/* The ONNX exporter without external tools: a layer without a mapping fails
 * naming it, and the graphs of tests/onnx/all_kinds.cfg (every layer kind and
 * activation) read back with protobuf-c are well formed: opset, typed input
 * and outputs, every node input defined before use, batch norms as nodes in
 * an unfused net and folded into their convolutions after
 * pn_net_fuse_for_inference; an ensemble is its members' Mean; a three-class
 * head gives the binary and the three-class outputs (the binary only in an
 * ensemble with a two-class member); other class counts are refused. ONNX
 * Runtime's numbers are checked by tests/onnx_export_test.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/onnx_internal.h"
#include "nn_testctx.h"
#include "testutil.h"

static void emit_fails_naming(pn_layer_desc *d, const char *expect)
{
    pn_error err = {0};
    onnx_builder b;
    assert_int_equal(onnx_builder_init(&b, "t", &err), PN_OK);
    pn_layer_desc in_desc = {.kind = PN_LAYER_INPUT, .name = "input", .c = 4, .h = 8, .w = 8};
    const pn_layer_desc *in_descs[1] = {&in_desc};
    onnx_tensor in = {"x", 4}, out = {0};
    assert_int_equal(pn_onnx_emit_layer(&b, "", d, in_descs, &in, &out), PN_EUNSUPPORTED);
    if (!strstr(err.msg, expect))
        fail_msg("'%s' does not contain '%s'", err.msg, expect);
    onnx_builder_free(&b);
}

static void test_unmapped_layers_are_named(void **state)
{
    (void)state;
    pn_layer_desc d = {.kind = PN_LAYER_INPUT, .name = "stem", .n_inputs = 1, .c = 4, .h = 8, .w = 8};
    emit_fails_naming(&d, "layer 'stem' (input) has no ONNX mapping");
    d.kind = PN_LAYER_KIND_COUNT; /* a kind added to the registry without an ONNX mapping */
    emit_fails_naming(&d, "layer 'stem' (unknown)");
    d.kind = PN_LAYER_ACTIVATION;
    d.act = (pn_act_kind)99;
    emit_fails_naming(&d, "layer 'stem': activation 99 has no ONNX mapping");
}

static pn_net *all_kinds_net_with(int input_size, int classes)
{
    char path[4096], *text = NULL;
    pn_error err = {0};
    pn_net *net = NULL;
    snprintf(path, sizeof path, "%s/tests/onnx/all_kinds.cfg", pn_test_source_dir());
    pn_net_options opt = {.seed = 3, .input_size = input_size, .classes = classes};
    assert_int_equal(pn_arch_read(path, &text, &err), PN_OK);
    if (pn_net_create(g_ctx, text, &opt, &net, &err))
        fail_msg("%s", err.msg);
    free(text);
    return net;
}

static pn_net *all_kinds_net_sized(int input_size) { return all_kinds_net_with(input_size, 0); }
static pn_net *all_kinds_net(void) { return all_kinds_net_with(0, 0); }

static Onnx__ModelProto *export_members_and_read(const pn_export_member *m, int n)
{
    char path[4096];
    pn_error err = {0};
    snprintf(path, sizeof path, "%s/model.onnx", pn_test_tmpdir());
    pn_kv meta[] = {{"pneumo.threshold", "0.5"}};
    if (pn_export_onnx(m, n, meta, 1, path, &err))
        fail_msg("%s", err.msg);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)size); /* [size] the file */
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, (size_t)size, buf);
    free(buf);
    assert_non_null(model);
    return model;
}

static Onnx__ModelProto *export_and_read(const pn_net *net, float temperature)
{
    pn_export_member m = {net, temperature};
    return export_members_and_read(&m, 1);
}

static int defined(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return 1;
    return 0;
}

static int64_t output_width(const Onnx__ValueInfoProto *v)
{
    const Onnx__TensorShapeProto *shape = v->type->tensor_type->shape;
    assert_int_equal(shape->n_dim, 2);
    assert_string_equal(shape->dim[0]->dim_param, "N");
    return shape->dim[1]->dim_value;
}

/* Structure of the graph: "probabilities" N x 2 and, with three, also
 * "class_probabilities" N x 3, each written by the node of op last_op;
 * returns its number of BatchNormalization nodes. */
static int check_graph_outputs(const Onnx__ModelProto *model, float temperature, int three, const char *last_op)
{
    assert_int_equal(model->n_opset_import, 1);
    assert_int_equal(model->opset_import[0]->version, PN_ONNX_OPSET);
    assert_int_equal(model->n_metadata_props, 1);
    const Onnx__GraphProto *g = model->graph;
    assert_int_equal(g->n_input, 1);
    assert_string_equal(g->input[0]->name, "image");
    const Onnx__TypeProto__Tensor *in = g->input[0]->type->tensor_type;
    assert_int_equal(in->elem_type, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8);
    assert_int_equal(in->shape->n_dim, 4);
    assert_string_equal(in->shape->dim[0]->dim_param, "N");
    assert_int_equal(in->shape->dim[1]->dim_value, 1);
    assert_int_equal(in->shape->dim[2]->dim_value, 40);
    assert_int_equal(g->n_output, three ? 2 : 1);
    assert_string_equal(g->output[0]->name, "probabilities");
    assert_int_equal(output_width(g->output[0]), 2);
    if (three) {
        assert_string_equal(g->output[1]->name, "class_probabilities");
        assert_int_equal(output_width(g->output[1]), 3);
    }
    /* every node reads the input, an initializer or an earlier node's output */
    size_t cap = 1 + g->n_initializer + g->n_node, n = 0;
    char **known = malloc(cap * sizeof *known); /* [cap] names defined so far */
    known[n++] = g->input[0]->name;
    for (size_t i = 0; i < g->n_initializer; i++) {
        known[n++] = g->initializer[i]->name;
        if (!strcmp(g->initializer[i]->name, "head.temperature")) {
            float t;
            memcpy(&t, g->initializer[i]->raw_data.data, sizeof t);
            assert_true(t == temperature);
        }
    }
    int batchnorms = 0, writers = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *node = g->node[i];
        for (size_t k = 0; k < g->n_output; k++)
            if (!strcmp(node->output[0], g->output[k]->name)) {
                assert_string_equal(node->op_type, last_op);
                writers++;
            }
        for (size_t k = 0; k < node->n_input; k++)
            if (!defined(known, n, node->input[k]))
                fail_msg("node %s (%s) reads undefined '%s'", node->name, node->op_type, node->input[k]);
        assert_int_equal(node->n_output, 1);
        assert_false(defined(known, n, node->output[0]));
        known[n++] = node->output[0];
        batchnorms += !strcmp(node->op_type, "BatchNormalization");
    }
    assert_int_equal(writers, (int)g->n_output);
    free(known);
    return batchnorms;
}

static int check_graph(const Onnx__ModelProto *model, float temperature)
{
    return check_graph_outputs(model, temperature, 0, "Softmax");
}

static void test_all_kinds_unfused_and_fused(void **state)
{
    (void)state;
    pn_net *net = all_kinds_net();
    Onnx__ModelProto *model = export_and_read(net, 1.5f);
    /* six batch norms: stem, branch_a, dw and project after convolutions, norm and flat_norm alone */
    assert_int_equal(check_graph(model, 1.5f), 6);
    onnx__model_proto__free_unpacked(model, NULL);
    pn_error err = {0};
    assert_int_equal(pn_net_fuse_for_inference(net, &err), PN_OK);
    model = export_and_read(net, 0.25f);
    assert_int_equal(check_graph(model, 0.25f), 2);
    onnx__model_proto__free_unpacked(model, NULL);
    pn_net_destroy(net);
}

/* Two members: their own nodes under m0/ and m1/, then the Mean of their probabilities. */
static void test_ensemble_is_the_mean_of_members(void **state)
{
    (void)state;
    pn_net *a = all_kinds_net(), *b = all_kinds_net();
    pn_export_member m[2] = {{a, 1.5f}, {b, 0.5f}};
    Onnx__ModelProto *model = export_members_and_read(m, 2);
    const Onnx__GraphProto *g = model->graph;
    const Onnx__NodeProto *last = g->node[g->n_node - 1];
    assert_string_equal(last->op_type, "Mean");
    assert_string_equal(last->output[0], "probabilities");
    assert_int_equal(last->n_input, 2);
    assert_string_equal(last->input[0], "m0/probabilities");
    assert_string_equal(last->input[1], "m1/probabilities");
    int temperatures = 0;
    for (size_t i = 0; i < g->n_initializer; i++) {
        float t;
        memcpy(&t, g->initializer[i]->raw_data.data, sizeof t);
        if (!strcmp(g->initializer[i]->name, "m0/head.temperature"))
            temperatures += t == 1.5f;
        if (!strcmp(g->initializer[i]->name, "m1/head.temperature"))
            temperatures += t == 0.5f;
    }
    assert_int_equal(temperatures, 2);
    onnx__model_proto__free_unpacked(model, NULL);
    pn_net_destroy(a);
    pn_net_destroy(b);
}

/* One graph input, so members must share the input size. */
static void test_ensemble_sizes_must_match(void **state)
{
    (void)state;
    pn_net *a = all_kinds_net(), *b = all_kinds_net_sized(48);
    pn_export_member m[2] = {{a, 1}, {b, 1}};
    pn_error err = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/never.onnx", pn_test_tmpdir());
    assert_int_equal(pn_export_onnx(m, 2, NULL, 0, path, &err), PN_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "member 1 takes 48 pixels"));
    assert_int_equal(pn_export_onnx(m, 0, NULL, 0, path, &err), PN_EINVAL);
    pn_net_destroy(a);
    pn_net_destroy(b);
}

static void test_bad_temperature_is_refused(void **state)
{
    (void)state;
    pn_net *net = all_kinds_net();
    pn_error err = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/never.onnx", pn_test_tmpdir());
    pn_export_member m = {net, 0};
    assert_int_equal(pn_export_onnx(&m, 1, NULL, 0, path, &err), PN_EINVAL);
    FILE *f = fopen(path, "rb");
    assert_null(f);
    pn_net_destroy(net);
}

static int count_ops(const Onnx__GraphProto *g, const char *op)
{
    int n = 0;
    for (size_t i = 0; i < g->n_node; i++)
        n += !strcmp(g->node[i]->op_type, op);
    return n;
}

/* NORMAL/BACTERIAL/VIRAL: P(pneumonia) = sigmoid((logsumexp(z1, z2) - z0) / T) as
 * "probabilities" and its split by softmax(z1, z2) as "class_probabilities". */
static void test_three_class_head(void **state)
{
    (void)state;
    pn_net *net = all_kinds_net_with(0, 3);
    pn_error err = {0};
    assert_int_equal(pn_net_fuse_for_inference(net, &err), PN_OK);
    Onnx__ModelProto *model = export_and_read(net, 1.25f);
    assert_int_equal(check_graph_outputs(model, 1.25f, 1, "Concat"), 2);
    const Onnx__GraphProto *g = model->graph;
    assert_int_equal(count_ops(g, "ReduceLogSumExp"), 1);
    assert_int_equal(count_ops(g, "Slice"), 2);
    int sigmoid = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!strcmp(n->output[0], "head:pneumonia")) { /* sigmoid of the scaled positive logit */
            assert_string_equal(n->op_type, "Sigmoid");
            assert_string_equal(n->input[0], "head:scaled_positive_logit");
            sigmoid = 1;
        }
        if (!strcmp(n->op_type, "ReduceLogSumExp")) /* over the two subtype logits */
            assert_string_equal(n->input[0], "head:subtype_logits");
        if (!strcmp(n->op_type, "Div") && !strcmp(n->output[0], "head:scaled_positive_logit"))
            assert_string_equal(n->input[1], "head.temperature");
        if (!strcmp(n->op_type, "Softmax")) /* the subtype split, never the temperature-scaled logits */
            assert_string_equal(n->input[0], "head:subtype_logits");
    }
    assert_true(sigmoid);
    onnx__model_proto__free_unpacked(model, NULL);
    pn_net_destroy(net);
}

/* Three-class members average both outputs; with a two-class member only the binary one exists. */
static void test_three_class_ensembles(void **state)
{
    (void)state;
    pn_net *a = all_kinds_net_with(0, 3), *b = all_kinds_net_with(0, 3), *c = all_kinds_net();
    pn_export_member m[3] = {{a, 1.5f}, {b, 0.5f}, {c, 2.0f}};
    Onnx__ModelProto *model = export_members_and_read(m, 2);
    const Onnx__GraphProto *g = model->graph;
    assert_int_equal(g->n_output, 2);
    const Onnx__NodeProto *last = g->node[g->n_node - 1];
    assert_string_equal(last->op_type, "Mean");
    assert_string_equal(last->output[0], "class_probabilities");
    assert_string_equal(last->input[0], "m0/class_probabilities");
    assert_string_equal(last->input[1], "m1/class_probabilities");
    assert_string_equal(g->node[g->n_node - 2]->output[0], "probabilities");
    onnx__model_proto__free_unpacked(model, NULL);
    model = export_members_and_read(m, 3);
    g = model->graph;
    assert_int_equal(g->n_output, 1);
    assert_int_equal(count_ops(g, "Mean"), 1);
    assert_int_equal(count_ops(g, "ReduceLogSumExp"), 2);
    for (size_t i = 0; i < g->n_node; i++) /* no member computes the unused split */
        assert_null(strstr(g->node[i]->output[0], "class_probabilities"));
    onnx__model_proto__free_unpacked(model, NULL);
    pn_net_destroy(a);
    pn_net_destroy(b);
    pn_net_destroy(c);
}

/* Heads other than NORMAL/PNEUMONIA and NORMAL/BACTERIAL/VIRAL are refused by member. */
static void test_other_class_counts_are_refused(void **state)
{
    (void)state;
    pn_net *a = all_kinds_net(), *b = all_kinds_net_with(0, 4);
    pn_export_member m[2] = {{a, 1}, {b, 1}};
    pn_error err = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/never.onnx", pn_test_tmpdir());
    assert_int_equal(pn_export_onnx(m, 2, NULL, 0, path, &err), PN_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "member 1 has 4 classes"));
    FILE *f = fopen(path, "rb");
    assert_null(f);
    pn_net_destroy(a);
    pn_net_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unmapped_layers_are_named),
        cmocka_unit_test(test_all_kinds_unfused_and_fused),
        cmocka_unit_test(test_ensemble_is_the_mean_of_members),
        cmocka_unit_test(test_ensemble_sizes_must_match),
        cmocka_unit_test(test_bad_temperature_is_refused),
        cmocka_unit_test(test_three_class_head),
        cmocka_unit_test(test_three_class_ensembles),
        cmocka_unit_test(test_other_class_counts_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
