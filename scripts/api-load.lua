-- wrk script for the decision API (scripts/api-bench.sh): every request is a
-- new payment (unique event_id per thread and request) over 10,000 accounts,
-- each connection paced to RATE_PER_CONN requests per second (wrk's delay()),
-- and the latency percentiles wrk measured printed at the end. TIMEOUT_MS sets
-- each call's deadline (default: the processor's api.timeout_ms).
-- thread_id is a global that setup() gives each thread (a local would shadow it).
local counter = 0
thread_id = 0
local threads = {}
local rate = tonumber(os.getenv("RATE_PER_CONN") or "100")
local path = "/v1/decisions" .. (os.getenv("TIMEOUT_MS") and ("?timeout_ms=" .. os.getenv("TIMEOUT_MS")) or "")

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(thread_id * 7919 + os.time())
end

function delay()
  -- Exponential gaps: arrivals like independent payments, mean 1/rate.
  return -math.log(1 - math.random()) * 1000 / rate
end

function request()
  counter = counter + 1
  local ts = os.time() * 1000
  local account = math.random(0, 9999)
  local body = string.format(
    '{"event_id":"wrk-%d-%d-%d","ts":%d,"account_id":"acc-%d","terminal_id":"t-%d","amount":%d.%02d,"currency":"EUR"}',
    thread_id, os.time(), counter, ts, account, account % 500, math.random(1, 400), math.random(0, 99))
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("requests %d in %.1f s (%.0f/s), errors %d (non-2xx %d)\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), errors, summary.errors.status))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%s %.3f ms\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("max %.3f ms\n", latency.max / 1000))
end
