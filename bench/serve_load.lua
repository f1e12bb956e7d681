-- wrk script for bench/serve_load.sh: POSTs one JPEG (path in env PNEUMO_BENCH_IMAGE)
-- to /api/v1/predict and reports latency percentiles in a parseable line.
local path = os.getenv("PNEUMO_BENCH_IMAGE")
local f = assert(io.open(path, "rb"))
local image = f:read("*a")
f:close()

wrk.method = "POST"
wrk.path = "/api/v1/predict"
wrk.headers["Content-Type"] = "image/jpeg"
wrk.body = image
-- An API token (env PNEUMO_BENCH_TOKEN), when the server wants one.
local token = os.getenv("PNEUMO_BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d req_per_s=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.requests / secs, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
