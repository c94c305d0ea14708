--- redis: is a Redis server ready? Sends `PING` and expects `+PONG`. A server that is still
--- loading its dataset answers `-LOADING ...`: not ready. A server that wants a password
--- answers `-NOAUTH ...`: it is up and serving, so that counts as ready.
---
---   check: redis.ping{port=6379}
local redis = {}

--- redis.ping{host="127.0.0.1", port=6379, timeout=nil} → true | false, reason
function redis.ping(o)
  o = o or {}
  local host, port = o.host or "127.0.0.1", o.port or 6379
  local reply, err = tcp_exchange(host, port, "PING\r\n", { timeout = o.timeout, stop = "\r\n", max = 4096 })
  if not reply then
    return false, string.format("redis %s:%d: %s", host, port, err)
  end
  if reply:find("^%+PONG\r\n") or reply:find("^%-NOAUTH") then
    return true
  end
  local line = reply:match("^[^\r\n]*") or ""
  if line == "" then
    return false, string.format("redis %s:%d: no reply to PING", host, port)
  end
  return false, string.format("redis %s:%d: %s", host, port, line)
end

return redis
