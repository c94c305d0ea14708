--- memcached: is a memcached server ready? Sends `version` and expects `VERSION x.y.z`.
---
---   check: memcached.version{port=11211}
local memcached = {}

--- memcached.version{host="127.0.0.1", port=11211, timeout=nil} → true, version | false, reason
function memcached.version(o)
  o = o or {}
  local host, port = o.host or "127.0.0.1", o.port or 11211
  local reply, err = tcp_exchange(host, port, "version\r\n", { timeout = o.timeout, stop = "\r\n", max = 1024 })
  if not reply then
    return false, string.format("memcached %s:%d: %s", host, port, err)
  end
  local version = reply:match("^VERSION ([^\r\n]+)")
  if version then
    return true, version
  end
  return false, string.format("memcached %s:%d: unexpected reply %q", host, port, reply:sub(1, 60))
end

--- Same as memcached.version: `memcached.ping{port=11211}`.
memcached.ping = memcached.version

return memcached
