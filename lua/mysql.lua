--- mysql: is a MySQL or MariaDB server ready? Reads the server's greeting (the handshake packet
--- it sends first) and checks protocol version 10; a server that refuses connections (too many,
--- host blocked) sends an error packet instead, whose message is the reason.
---
---   check: mysql.ping{port=3306}
local mysql = {}

-- A packet is a 4-byte header (3 bytes length, little-endian, then 1 byte sequence number) and
-- that many bytes of payload. The server keeps the connection open after its greeting (it waits
-- for the client's answer), so reading stops as soon as the packet is complete, or as soon as
-- its first payload byte says it is no MySQL packet at all.
local function complete(reply)
  if #reply < 5 then
    return false
  end
  local kind = reply:byte(5)
  if kind ~= 10 and kind ~= 0xff then
    return true
  end
  return #reply >= 4 + reply:byte(1) + reply:byte(2) * 256 + reply:byte(3) * 65536
end

--- mysql.ping{host="127.0.0.1", port=3306, timeout=nil} → true, server_version | false, reason
function mysql.ping(o)
  o = o or {}
  local host, port = o.host or "127.0.0.1", o.port or 3306
  local where = string.format("mysql %s:%d", host, port)
  local reply, err = tcp_exchange(host, port, "", { timeout = o.timeout, max = 4096, done = complete })
  if not reply then
    return false, where .. ": " .. err
  end
  if #reply < 5 then
    return false, where .. ": no server greeting"
  end
  local len = reply:byte(1) + reply:byte(2) * 256 + reply:byte(3) * 65536
  local kind = reply:byte(5)
  if kind == 10 then
    local version = reply:match("^([^\0]*)", 6)
    return true, version
  elseif kind == 0xff then
    -- error packet: 0xff, 2-byte code, (maybe '#' + 5-byte state), message
    local code = reply:byte(6) + reply:byte(7) * 256
    local msg = reply:sub(8, 4 + len):gsub("^#%w%w%w%w%w", "")
    return false, string.format("%s: error %d: %s", where, code, msg)
  end
  return false, string.format("%s: not a MySQL greeting (first byte %d)", where, kind)
end

return mysql
