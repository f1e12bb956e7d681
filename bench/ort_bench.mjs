// ONNX Runtime peer benchmark: times an ONNX graph written by `pneumo export`
// (uint8 grayscale N x 1 x S x S in, probabilities out) with onnxruntime-node's
// bundled CPU library, as a deployment would run it: graph optimisation "all",
// intra-op threads N, one inter-op thread, the CPU execution provider, fp32.
// Prints one JSON line in the shape of `pneumo bench` (bench/README.md).
//
//   node bench/ort_bench.mjs --model FILE.onnx --arch NAME [--batch 1] [--threads 1]
//        [--iters 50] [--warmup 5]
//
// onnxruntime-node is the one pinned in tests/onnx (installed there by
// scripts/install-deps.sh with ONNXRUNTIME_NODE_INSTALL=skip).
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const require = createRequire(new URL("../tests/onnx/package.json", import.meta.url));
const ort = require("onnxruntime-node");
const ortVersion = require("onnxruntime-node/package.json").version;

const { values: opt } = parseArgs({
  options: {
    model: { type: "string" }, arch: { type: "string", default: "custom" },
    batch: { type: "string", default: "1" }, threads: { type: "string", default: "1" },
    iters: { type: "string", default: "50" }, warmup: { type: "string", default: "5" },
  },
});
const count = (name, lo) => {
  const v = Number(opt[name]);
  if (!Number.isInteger(v) || v < lo) {
    console.error(`ort_bench: --${name} must be an integer >= ${lo}, not '${opt[name]}'`);
    process.exit(2);
  }
  return v;
};
if (!opt.model) {
  console.error("usage: node bench/ort_bench.mjs --model FILE.onnx --arch NAME [--batch N] [--threads N] " +
                "[--iters N] [--warmup N]");
  process.exit(2);
}
const batch = count("batch", 1), threads = count("threads", 1), iters = count("iters", 1);
const warmup = count("warmup", 0);

const session = await ort.InferenceSession.create(opt.model, {
  executionProviders: ["cpu"], graphOptimizationLevel: "all",
  intraOpNumThreads: threads, interOpNumThreads: 1 });
// S, the model's input size, from the graph input's declared shape [N, 1, S, S]
const shape = session.inputMetadata[0]?.shape ?? [];
const size = Number(shape[3]);
if (!(size > 0)) {
  console.error(`ort_bench: ${opt.model}: input shape ${JSON.stringify(shape)} is not N x 1 x S x S`);
  process.exit(2);
}

// Random pixels (fixed LCG seed): the work does not depend on the values.
const pixels = new Uint8Array(batch * size * size); // [batch][1][size][size]
let state = 12345;
for (let i = 0; i < pixels.length; i++) {
  state = (state * 1103515245 + 12345) >>> 0;
  pixels[i] = state >>> 24;
}
const image = new ort.Tensor("uint8", pixels, [batch, 1, size, size]);
const times = [], cpu = []; // wall and process CPU seconds (all threads) per timed iteration
for (let it = 0; it < warmup + iters; it++) {
  const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
  await session.run({ image });
  const dt = Number(process.hrtime.bigint() - t0) / 1e9, dc = process.cpuUsage(c0);
  if (it >= warmup) {
    times.push(dt);
    cpu.push((dc.user + dc.system) / 1e6);
  }
}
times.sort((a, b) => a - b);
cpu.sort((a, b) => a - b);
const med = times[Math.floor(iters / 2)];
console.log(JSON.stringify({
  impl: "onnxruntime", arch: opt.arch, mode: "infer", config: "fp32", threads, batch,
  median_s: Number(med.toFixed(6)), imgs_per_s: Number((batch / med).toFixed(2)),
  ms_per_batch: Number((med * 1e3).toFixed(3)), min_s: Number(times[0].toFixed(6)),
  cpu_s: Number(cpu[Math.floor(iters / 2)].toFixed(6)), peak_rss_mb: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
  onnxruntime: ortVersion }));

