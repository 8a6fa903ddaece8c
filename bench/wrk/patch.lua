-- The `write` scenario: PATCH with a fresh Idempotency-Key per request and a new product name
-- (so every request really writes: a row update plus its audit event).
-- `write_rows`: BENCH_PATHS (comma-separated) spreads the requests over several passports, in turn.
-- The credential comes from the environment, never from wrk's command line (visible in `ps`).
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/json"

local paths = {}
for item in string.gmatch(os.getenv("BENCH_PATHS") or "", "[^,]+") do
  table.insert(paths, item)
end

local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  math.randomseed(os.time() + (thread_id or 0) * 7919)
  run_id = math.random(1, 1000000000)
end

request = function()
  counter = counter + 1
  local tag = string.format("%d-%d-%d", thread_id or 0, run_id, counter)
  wrk.headers["Idempotency-Key"] = "bench-" .. tag
  local path = nil
  if #paths > 0 then path = paths[(counter % #paths) + 1] end
  return wrk.format(nil, path, nil, '{"product_name": "Bench ' .. tag .. '"}')
end
