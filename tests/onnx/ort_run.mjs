// Runs an ONNX model exported by `pneumo export` with ONNX Runtime (the CPU
// library bundled in onnxruntime-node) on raw 8-bit grayscale images (each
// S*S bytes, S the model's input size), as one batch, and prints the output
// outputs as JSON, one object per image: {"probabilities": [P(NORMAL),
// P(PNEUMONIA)]} and, for a three-class model, "class_probabilities" [P(NORMAL),
// P(BACTERIAL), P(VIRAL)]. Usage: node ort_run.mjs MODEL.onnx S RAW...
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";

const [model, sizeArg, ...raws] = process.argv.slice(2);
const size = Number(sizeArg);
if (!model || !(size > 0) || raws.length === 0) {
  console.error("usage: node ort_run.mjs MODEL.onnx S RAW...");
  process.exit(2);
}
const pixels = new Uint8Array(raws.length * size * size);
raws.forEach((path, i) => {
  const data = readFileSync(path);
  if (data.length !== size * size) throw new Error(`${path}: ${data.length} bytes, expected ${size * size}`);
  pixels.set(data, i * size * size);
});
const session = await ort.InferenceSession.create(model, {
  executionProviders: ["cpu"], intraOpNumThreads: 1, graphOptimizationLevel: "all" });
const image = new ort.Tensor("uint8", pixels, [raws.length, 1, size, size]);
const outputs = await session.run({ image });
const rows = raws.map(() => ({}));
for (const name of session.outputNames) {
  const t = outputs[name], width = t.dims[1];
  rows.forEach((row, i) => { row[name] = Array.from(t.data.slice(i * width, (i + 1) * width)); });
}
console.log(JSON.stringify(rows));
