// Runs an ONNX model exported by `pneumo export` with ONNX Runtime (the CPU
// library bundled in onnxruntime-node) on raw 8-bit grayscale images (each
// S*S bytes, S the model's input size), as one batch, and prints the output
// "probabilities" as JSON rows. Usage: node ort_run.mjs MODEL.onnx S RAW...
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
const { probabilities } = await session.run({ image });
const classes = probabilities.dims[1];
const rows = [];
for (let i = 0; i < raws.length; i++)
  rows.push(Array.from(probabilities.data.slice(i * classes, (i + 1) * classes)));
console.log(JSON.stringify(rows));
