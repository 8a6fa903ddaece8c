-- PATCH with a fresh Idempotency-Key per request (the `write` scenario).
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + thread_id * 7919)
end

request = function()
  counter = counter + 1
  local key = string.format("bench-%d-%d-%d", thread_id, counter, math.random(1, 1000000000))
  wrk.headers["Idempotency-Key"] = key
  wrk.headers["Content-Type"] = "application/json"
  return wrk.format("PATCH", nil, nil, '{"product_name": "Bench ' .. counter .. '"}')
end
