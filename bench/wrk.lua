-- wrk script of scripts/bench.sh: POSTs the benchmark's tools/call and prints one JSON line of
-- results. Read from the environment:
--   BENCH_BODY          the request body, or
--   BENCH_BODY_FILE     a file of bodies, one a line, taken in turn (the write rows spread their
--                       create_task calls over the seeded projects)
--   BENCH_TOKEN         a bearer token sent on every request, or
--   BENCH_TOKEN_FILE    a file of tokens, one a line: every request takes the next one; the result
--                       says `"wrapped": true` when the run needed more tokens than the file has
--                       (then tokens repeat and a token cache may have served them).
--   BENCH_MAX_REQUESTS  stop sending after this many answers (the memory row: each token sent
--                       once) and create the file BENCH_DONE_FILE; wrk itself still waits for its
--                       -d to pass, so the caller interrupts it (SIGINT) once the file is there.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"

local token = os.getenv("BENCH_TOKEN")
local token_file = os.getenv("BENCH_TOKEN_FILE")
local body_file = os.getenv("BENCH_BODY_FILE")
local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "")
local done_file = os.getenv("BENCH_DONE_FILE")

local function lines_of(path, prefix)
  local out = {}
  if path and path ~= "" then
    for line in io.lines(path) do
      if line ~= "" then
        out[#out + 1] = prefix .. line
      end
    end
  end
  return out
end

local tokens = lines_of(token_file, "Bearer ")
local bodies = lines_of(body_file, "")

if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

if #tokens > 0 or #bodies > 0 then
  local sent = 0
  request = function()
    sent = sent + 1
    if #tokens > 0 then
      wrk.headers["Authorization"] = tokens[(sent - 1) % #tokens + 1]
    end
    local body = nil
    if #bodies > 0 then
      body = bodies[(sent - 1) % #bodies + 1]
    end
    return wrk.format(nil, nil, nil, body)
  end
end

if max_requests then
  local answered = 0
  response = function()
    answered = answered + 1
    if answered == max_requests then
      if done_file and done_file ~= "" then
        io.open(done_file, "w"):close()
      end
      wrk.thread:stop()
    end
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"mean_us":%.1f,"p50_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"non_2xx":%d,'
      .. '"tokens":%d,"wrapped":%s}\n',
    summary.requests, summary.duration, latency.mean, latency:percentile(50),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout, e.status,
    #tokens, tostring(#tokens > 0 and summary.requests > #tokens)))
end
