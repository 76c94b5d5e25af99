-- wrk script for loadtest/writes.sh: thread i posts to channel i (one connection
-- per thread), and the status counts are printed at the end.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("channel", string.format("00000000-0000-4000-8000-%012d", counter))
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  path = "/v1/channels/" .. channel .. "/messages"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
  wrk.body = '{"body":"a post of a busy writer, of ordinary length"}'
end

function request()
  return wrk.format(nil, path)
end

function response(status, headers, body)
  local key = tostring(status)
  if status == 503 then
    key = key .. " " .. (body:match('"code":"([^"]*)"') or "")
  end
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses")) do
      total[k] = (total[k] or 0) + v
    end
  end
  for k, v in pairs(total) do
    io.write(string.format("status %s: %d\n", k, v))
  end
end
