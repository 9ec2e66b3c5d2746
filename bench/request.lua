-- wrk script for bench/run.sh.
-- BENCH_PATH: what goes on the request line. An absolute URL ("http://127.0.0.1:PORT/1k.bin")
--   makes an absolute-form request for a forward proxy; a path ("/1k.bin") is origin-form
--   (the direct-to-origin baseline).
-- BENCH_HOST: the Host header (the origin's host:port in both cases).
-- done() prints one line "BENCHJSON {...}" that run.sh parses.

local path = os.getenv("BENCH_PATH")
local host = os.getenv("BENCH_HOST")
if path and path ~= "" then wrk.path = path end
if host and host ~= "" then wrk.headers["Host"] = host end
wrk.headers["User-Agent"] = "portcullis-bench"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"bytes":%d,"duration_us":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
