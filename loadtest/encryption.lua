-- wrk script for loadtest/encryption.sh: METHOD (POST: one ordinary message;
-- GET) to REQ_PATH as TOKEN, and counts the statuses at the end.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  wrk.method = os.getenv("METHOD") or "POST"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
  if wrk.method == "POST" then
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = '{"body":"a post of a busy writer, of ordinary length"}'
  end
end

function request()
  return wrk.format(nil, os.getenv("REQ_PATH"))
end

function response(status, headers, body)
  local key = tostring(status)
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
