--- postgres: is a PostgreSQL server accepting connections? Does what `pg_isready` does: sends a
--- real StartupMessage (protocol 3.0) and reads the server's first reply. An authentication
--- request ('R') means ready; an error ('E') means ready too (wrong user or database, no
--- pg_hba.conf entry: the server answered as a running server), except SQLSTATE 57P03
--- ("the database system is starting up", shutting down, in recovery), which is not ready.
---
---   check: postgres.ping{port=5432}
local postgres = {}

local function startup(user, database)
  local params = "user\0" .. user .. "\0database\0" .. database .. "\0application_name\0autoheal\0\0"
  return string.pack(">I4I4", 8 + #params, 196608) .. params
end

--- The fields of an ErrorResponse body: {S=severity, C=sqlstate, M=message, ...}.
local function fields(body)
  local f = {}
  for code, value in body:gmatch("(%a)([^\0]*)\0") do
    f[code] = value
  end
  return f
end

--- postgres.ping{host="127.0.0.1", port=5432, user="postgres", database=user, timeout=nil}
--- → true | false, reason
function postgres.ping(o)
  o = o or {}
  local host, port = o.host or "127.0.0.1", o.port or 5432
  local user = o.user or "postgres"
  local where = string.format("postgres %s:%d", host, port)
  local request = startup(user, o.database or user)
  -- 9 bytes: type, length, and the authentication code of an 'R'. A server waits for our
  -- password after an 'R', so we must not read further; after an 'E' it closes.
  local reply, err = tcp_exchange(host, port, request, { timeout = o.timeout, max = 9 })
  if not reply then
    return false, where .. ": " .. err
  end
  local kind = reply:sub(1, 1)
  if #reply < 5 then
    return false, string.format("%s: not a PostgreSQL reply (%q)", where, reply)
  end
  local len = string.unpack(">I4", reply, 2)
  if kind == "R" and len >= 8 and len < 1024 then
    return true
  elseif kind == "E" and len >= 4 and len < 65536 then
    -- Ask again and read the whole error (the server closes after it).
    local full = tcp_exchange(host, port, request, { timeout = o.timeout, max = len + 1 }) or reply
    local f = fields(full:sub(6))
    if f.C == "57P03" or f.C == "57P01" or f.C == "57P02" then
      return false, string.format("%s: %s", where, f.M or "not accepting connections")
    end
    return true
  end
  return false, string.format("%s: not a PostgreSQL reply (%q)", where, reply:sub(1, 20))
end

return postgres
