"""Compares ONNX Runtime's outputs (tests/onnx/ort_run.mjs) with `pneumo
predict --format json` on the same images: P(PNEUMONIA) against
probabilities[:, 1] and, where the graph has it, P(NORMAL), P(BACTERIAL),
P(VIRAL) against class_probabilities. With several PREDICT files (the
members of an ensemble graph, each predicted alone) the reference is their
mean. Fails when any difference exceeds 1e-4.
Usage: compare.py NAME ORT.json PREDICT.json..."""
import json
import sys

TOLERANCE = 1e-4
name, ort = sys.argv[1], json.load(open(sys.argv[2]))
members = [json.load(open(p)) for p in sys.argv[3:]]
assert all(len(m) == len(ort) for m in members) and len(ort) > 0, [len(m) for m in members] + [len(ort)]


def mean(values):
    return sum(values) / len(values)


diffs, diffs3, p = [], [], []
for i, row in enumerate(ort):  # every file in image order 0..n-1
    probs = row["probabilities"]
    assert len(probs) == 2 and abs(sum(probs) - 1) < 1e-5, probs
    p.append(mean([m[i]["probability"] for m in members]))
    diffs.append(abs(p[-1] - probs[1]))
    if "class_probabilities" in row:
        three = row["class_probabilities"]
        assert len(three) == 3 and abs(sum(three) - 1) < 1e-5, three
        ref = [mean([m[i]["classes"][k] for m in members]) for k in ("NORMAL", "BACTERIAL", "VIRAL")]
        diffs3.append(max(abs(a - b) for a, b in zip(ref, three)))
line = f"{name}: P(pneumonia) by pneumo predict {[round(x, 4) for x in p]}, max |predict - ONNX Runtime| = {max(diffs):.2e}"
if diffs3:
    assert len(diffs3) == len(ort), "class_probabilities missing for some rows"
    line += f"; three classes max {max(diffs3):.2e}"
print(line)
assert max(diffs) <= TOLERANCE, f"{name}: ONNX Runtime differs from pneumo predict by {max(diffs):.3g}"
assert not diffs3 or max(diffs3) <= TOLERANCE, f"{name}: three-class outputs differ by {max(diffs3):.3g}"
