-- wrk script. Two uses:
--   wrk ... -s replay.lua URL                       plain requests to URL (the unsigned baseline)
--   wrk ... -s replay.lua URL FILE THREADS DELAY_MS COUNT_STATUS
-- FILE holds pre-built requests, one per line: METHOD <tab> PATH <tab> AUTHORIZATION <tab> BODY.
-- Thread k of THREADS sends lines k, k+THREADS, ...; when its share runs out it starts again
-- (replays, which totpd refuses, so they show up as non-2xx and the runner notices).
-- DELAY_MS > 0 paces each connection; COUNT_STATUS = 1 counts responses by status code.
-- done() prints one JSON line prefixed "BENCH " for the runner.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

statuses = {}

function init(args)
  local file = args[1]
  if file == nil then return end
  local nthreads, delay_ms = tonumber(args[2]), tonumber(args[3])
  local id = wrk.thread:get("id")
  local queue, line_no = {}, 0
  for line in io.lines(file) do
    if line_no % nthreads == id then
      local method, path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {}
      if body ~= "" then headers["Content-Type"] = "application/json" else body = nil end
      if auth ~= "" then headers["Authorization"] = auth end
      queue[#queue + 1] = wrk.format(method, path, headers, body)
    end
    line_no = line_no + 1
  end
  local position = 0
  request = function()
    position = position % #queue + 1
    return queue[position]
  end
  if delay_ms > 0 then
    delay = function() return delay_ms end
  end
  if args[4] == "1" then
    response = function(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
    end
  end
end

function done(summary, latency, requests)
  local counts, parts = {}, {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  for status, n in pairs(counts) do parts[#parts + 1] = string.format('"%d": %d', status, n) end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d,'
      .. ' "write_errors": %d, "timeouts": %d, "non_2xx": %d, "p50_us": %d, "p90_us": %d,'
      .. ' "p99_us": %d, "max_us": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, ", ")))
end
