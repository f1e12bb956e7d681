"""Checks a graph written by `pneumo export --format onnx` with the ONNX
package's own checker (full check: types and shapes inferred) and its
interface: opset >= 13, input "image" uint8 [N, 1, S, S], output
"probabilities" float [N, 2] and, when CLASSES is 3, "class_probabilities"
float [N, 3], and BATCHNORMS BatchNormalization nodes (those not after a
convolution; the others are folded into it).
Usage: onnx_check.py FILE S CLASSES BATCHNORMS"""
import sys

import onnx

path, size, classes, batchnorms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
onnx.checker.check_model(path, full_check=True)
model = onnx.load(path)
opset = {o.domain: o.version for o in model.opset_import}
assert opset.get("", 0) >= 13, f"opset {opset}"


def dims(value):
    shape = value.type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in shape], value.type.tensor_type.elem_type


inputs, outputs = model.graph.input, model.graph.output
assert [i.name for i in inputs] == ["image"], [i.name for i in inputs]
expect = ["probabilities", "class_probabilities"][: 2 if classes == 3 else 1]
assert [o.name for o in outputs] == expect, [o.name for o in outputs]
assert dims(inputs[0]) == (["N", 1, size, size], onnx.TensorProto.UINT8), dims(inputs[0])
for o, width in zip(outputs, (2, 3)):
    assert dims(o) == (["N", width], onnx.TensorProto.FLOAT), (o.name, dims(o))
ops = {n.op_type for n in model.graph.node}
bn_nodes = sum(n.op_type == "BatchNormalization" for n in model.graph.node)
assert bn_nodes == batchnorms, f"{bn_nodes} BatchNormalization nodes, expected {batchnorms}"
head = {"ReduceLogSumExp", "Sigmoid", "Softmax"} if classes == 3 else {"Softmax"}
assert {"Cast"} | head <= ops, ops
print(f"{path}: checker ok, opset {opset['']}, {len(model.graph.node)} nodes, ops {sorted(ops)}")
