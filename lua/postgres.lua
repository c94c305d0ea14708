--- postgres: is a PostgreSQL server accepting connections? Does what `pg_isready` does: sends a
--- real StartupMessage (protocol 3.0) and reads the server's answer. An authentication
--- request ('R') means ready; an error ('E') means ready too (wrong user or database, no
--- pg_hba.conf entry: the server answered as a running server), except SQLSTATE 57P03
--- ("the database system is starting up", shutting down, in recovery), which is not ready.
---
--- The answer is read whole before the connection is closed, so that a ping leaves nothing in
--- the server's log: closing with unread data would reset the connection ("could not receive
--- data from client: Connection reset by peer" on every ping). Whole means: up to
--- ReadyForQuery after an AuthenticationOk (trust), the whole authentication request (the server
--- then waits for a password, and a client that closes there is not logged: psql does it), or
--- the whole ErrorResponse (the server then closes). No Terminate ('X') is sent: it would have
--- to go with the startup packet (one request a connection), and a server that asks for a
--- password would read it as one and log "expected password response"; a clean close after
--- ReadyForQuery is an ordinary disconnection, logged at DEBUG1 only.
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

--- The backend messages at the start of `r`, as {kind, body} (whole messages only), and
--- whether the answer is complete: a ReadyForQuery, an ErrorResponse or an authentication
--- request other than AuthenticationOk ends it, and so does anything that is not a message
--- (not PostgreSQL: no point waiting for more).
local function messages(r)
  local list, at = {}, 1
  while #r >= at do
    local kind = r:sub(at, at)
    if not kind:match("^[REKSNZv]$") then
      return list, true
    end
    if #r < at + 4 then
      return list, false
    end
    local len = string.unpack(">I4", r, at + 1)
    if len < 4 or len > 65536 then
      return list, true
    end
    if #r < at + len then
      return list, false
    end
    local body = r:sub(at + 5, at + len)
    list[#list + 1] = { kind = kind, body = body }
    at = at + 1 + len
    if kind == "Z" or kind == "E" then
      return list, true
    end
    if kind == "R" and (#body < 4 or string.unpack(">I4", body) ~= 0) then
      return list, true
    end
  end
  return list, false
end

local function complete(r)
  local _, done = messages(r)
  return done
end

--- postgres.ping{host="127.0.0.1", port=5432, user="postgres", database=user, timeout=nil}
--- → true | false, reason
function postgres.ping(o)
  o = o or {}
  local host, port = o.host or "127.0.0.1", o.port or 5432
  local user = o.user or "postgres"
  local where = string.format("postgres %s:%d", host, port)
  local request = startup(user, o.database or user)
  local reply, err = tcp_exchange(host, port, request, { timeout = o.timeout, max = 65536, done = complete })
  if not reply then
    return false, where .. ": " .. err
  end
  -- The first message that answers the startup (a NegotiateProtocolVersion or a notice may
  -- come before it).
  for _, m in ipairs((messages(reply))) do
    if m.kind == "R" and #m.body >= 4 then
      return true
    elseif m.kind == "E" then
      local f = fields(m.body)
      if f.C == "57P03" or f.C == "57P01" or f.C == "57P02" then
        return false, string.format("%s: %s", where, f.M or "not accepting connections")
      end
      return true
    elseif m.kind ~= "N" and m.kind ~= "v" then
      break
    end
  end
  return false, string.format("%s: not a PostgreSQL reply (%q)", where, reply:sub(1, 20))
end

return postgres
