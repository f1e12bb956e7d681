/* pn_export_onnx: the graph input (uint8 images), the members' nodes (and
 * their mean for an ensemble), the outputs, the model header (IR version, opset, producer, metadata) and the
 * file, serialised by protobuf-c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/onnx_internal.h"

/* IR version 8 is what ONNX 1.10-1.12 write for opsets up to 17. */
#define PN_ONNX_IR_VERSION 8

static Onnx__StringStringEntryProto *entry(const char *key, const char *value)
{
    Onnx__StringStringEntryProto *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = strdup(key);
    e->value = strdup(value);
    if (!e->key || !e->value) {
        protobuf_c_message_free_unpacked(&e->base, NULL);
        return NULL;
    }
    return e;
}

/* The model around the graph (which it takes over from b). */
static pn_status make_model(onnx_builder *b, const pn_kv *meta, size_t n_meta, Onnx__ModelProto **out)
{
    Onnx__ModelProto *model = calloc(1, sizeof *model);
    Onnx__OperatorSetIdProto *opset = calloc(1, sizeof *opset);
    if (!model || !opset) {
        free(model);
        free(opset);
        return onnx_fail(b, PN_ENOMEM, "out of memory");
    }
    onnx__model_proto__init(model);
    onnx__operator_set_id_proto__init(opset);
    model->graph = b->graph;
    b->graph = NULL;
    model->has_ir_version = 1;
    model->ir_version = PN_ONNX_IR_VERSION;
    opset->domain = strdup("");
    opset->has_version = 1;
    opset->version = PN_ONNX_OPSET;
    model->producer_name = strdup("pneumo");
    model->producer_version = strdup(PNEUMO_VERSION);
    model->doc_string = strdup("pneumo chest X-ray classifier: input uint8 grayscale N x 1 x S x S at the "
                               "model's input size; output probabilities N x 2 (NORMAL, PNEUMONIA) and, for a three-class model, "
                               "class_probabilities N x 3 (NORMAL, BACTERIAL, VIRAL). Research and "
                               "screening-assist tool, not a diagnostic device.");
    model->opset_import = calloc(1, sizeof *model->opset_import);
    model->metadata_props = calloc(n_meta ? n_meta : 1, sizeof *model->metadata_props);
    if (model->opset_import)
        model->opset_import[model->n_opset_import++] = opset;
    else
        protobuf_c_message_free_unpacked(&opset->base, NULL);
    int ok = opset->domain && model->producer_name && model->producer_version && model->doc_string &&
             model->opset_import && model->metadata_props;
    for (size_t i = 0; ok && i < n_meta; i++)
        ok = (model->metadata_props[model->n_metadata_props++] = entry(meta[i].key, meta[i].value)) != NULL;
    if (!ok) {
        protobuf_c_message_free_unpacked(&model->base, NULL);
        return onnx_fail(b, PN_ENOMEM, "out of memory");
    }
    *out = model;
    return PN_OK;
}

static pn_status write_model(const Onnx__ModelProto *model, const char *path, pn_error *err)
{
    size_t size = onnx__model_proto__get_packed_size(model);
    uint8_t *buf = malloc(size ? size : 1); /* [size] serialised model */
    if (!buf)
        return pn_fail(err, PN_ENOMEM, "out of memory serialising the ONNX model (%zu bytes)", size);
    onnx__model_proto__pack(model, buf);
    pn_status st = PN_OK;
    FILE *f = fopen(path, "wb");
    if (!f) {
        st = pn_fail(err, PN_EIO, "%s: %s", path, strerror(errno));
    } else if (fwrite(buf, 1, size, f) != size || fclose(f) != 0) {
        st = pn_fail(err, PN_EIO, "%s: write failed", path);
        remove(path);
    }
    free(buf);
    return st;
}

/* Graph outputs: the binary probabilities, and the three-class ones when every member has that head. */
#define OUT_BINARY "probabilities"
#define OUT_THREE "class_probabilities"

/* Sets *three when every member has the 3-class head. */
static pn_status check_members(const pn_export_member *members, int n, int *three, pn_error *err)
{
    if (n < 1)
        return pn_fail(err, PN_EINVAL, "ONNX export needs at least one network");
    *three = 1;
    for (int i = 0; i < n; i++) {
        const pn_net *net = members[i].net, *first = members[0].net;
        if (!net || !(members[i].temperature > 0))
            return pn_fail(err, PN_EINVAL, "ONNX export: member %d needs a network and a positive temperature", i);
        int classes = pn_net_classes(net);
        if (classes != 2 && classes != 3)
            return pn_fail(err, PN_EUNSUPPORTED,
                           "ONNX export: member %d has %d classes; the graph's heads are NORMAL/PNEUMONIA "
                           "(2 classes) and NORMAL/BACTERIAL/VIRAL (3 classes)", i, classes);
        *three &= classes == 3;
        if (pn_net_input_size(net) != pn_net_input_size(first))
            return pn_fail(err, PN_EUNSUPPORTED,
                           "ONNX export: member %d takes %d pixels, member 0 %d: one graph input needs one input size",
                           i, pn_net_input_size(net), pn_net_input_size(first));
    }
    return PN_OK;
}

/* The members' nodes; for an ensemble, members "m<i>/" and the Mean of their
 * outputs (pneumo averages the members' temperature-scaled probabilities). */
static void emit_members(onnx_builder *b, const pn_export_member *members, int n, int three)
{
    if (n == 1) {
        pn_onnx_add_member(b, &members[0], "", "image", OUT_BINARY, three ? OUT_THREE : NULL);
        return;
    }
    char (*out)[PN_ONNX_NAME_MAX] = calloc(2 * (size_t)n, sizeof *out); /* [2n] binary, then three-class outputs */
    const char **names = calloc(2 * (size_t)n, sizeof *names);          /* [2n] the same as pointers */
    if (!out || !names)
        onnx_fail(b, PN_ENOMEM, "out of memory");
    for (int i = 0; !b->st && i < n; i++) {
        char prefix[PN_ONNX_NAME_MAX];
        onnx_name(b, prefix, "m%d/", i);
        names[i] = onnx_name(b, out[i], "m%d/" OUT_BINARY, i);
        names[n + i] = onnx_name(b, out[n + i], "m%d/" OUT_THREE, i);
        pn_onnx_add_member(b, &members[i], prefix, "image", names[i], three ? names[n + i] : NULL);
    }
    if (!b->st)
        onnx_node(b, "Mean", OUT_BINARY, n, names);
    if (!b->st && three)
        onnx_node(b, "Mean", OUT_THREE, n, names + n);
    free(out);
    free(names);
}

pn_status pn_export_onnx(const pn_export_member *members, int n_members, const pn_kv *meta,
                         size_t n_meta, const char *path, pn_error *err)
{
    int three = 0;
    pn_status st = check_members(members, n_members, &three, err);
    if (st)
        return st;
    const pn_net *net = members[0].net;
    int size = pn_net_input_size(net);
    onnx_builder b;
    Onnx__ModelProto *model = NULL;
    if (onnx_builder_init(&b, "pneumo", err))
        return b.st;
    onnx_value_info(&b, 0, "image", ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
                    (const int64_t[]){-1, 1, size, size}, 4);
    emit_members(&b, members, n_members, three);
    onnx_value_info(&b, 1, OUT_BINARY, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, (const int64_t[]){-1, 2}, 2);
    if (three)
        onnx_value_info(&b, 1, OUT_THREE, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, (const int64_t[]){-1, 3}, 2);
    st = b.st;
    if (!st)
        st = make_model(&b, meta, n_meta, &model);
    if (!st)
        st = write_model(model, path, err);
    if (model)
        protobuf_c_message_free_unpacked(&model->base, NULL);
    onnx_builder_free(&b);
    return st;
}
