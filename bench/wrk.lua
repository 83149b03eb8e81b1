-- wrk script of scripts/bench.sh: POSTs the benchmark's tools/call and prints one JSON line of
-- results. Read from the environment:
--   BENCH_BODY         the request body
--   BENCH_TOKEN        a bearer token sent on every request, or
--   BENCH_TOKEN_FILE   a file of tokens, one a line: every request takes the next one; the result
--                      says `"wrapped": true` when the run needed more tokens than the file has
--                      (then tokens repeat and a token cache may have served them).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"

local token = os.getenv("BENCH_TOKEN")
local token_file = os.getenv("BENCH_TOKEN_FILE")
local tokens = {}

if token_file and token_file ~= "" then
  for line in io.lines(token_file) do
    if line ~= "" then
      tokens[#tokens + 1] = "Bearer " .. line
    end
  end
  local next_token = 0
  request = function()
    next_token = next_token + 1
    wrk.headers["Authorization"] = tokens[(next_token - 1) % #tokens + 1]
    return wrk.format()
  end
elseif token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
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
