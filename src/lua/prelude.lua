-- The sandbox prelude (src/lua/sandbox.rs, PRELUDE): run once per Lua state, it makes the
-- function that builds each run's own environment. Compiled into the binary.
local timed_out, auto, MEM, MAX = ...
local G = _G
local rawload, rawpcall, resume, error = load, pcall, coroutine.resume, error
local rawsetmetatable, rawget, rawset, type, next, select, tostring, tonumber, rawequal =
  setmetatable, rawget, rawset, type, next, select, tostring, tonumber, rawequal
local getmetatable = getmetatable
local randomseed, collect = math.randomseed, collectgarbage
local tointeger, ult, maxint = math.tointeger, math.ult, math.maxinteger
local find, gsub, format = string.find, string.gsub, string.format
local function pass(ok, ...)
  if not ok and timed_out() then error((...), 0) end
  return ok, ...
end
pcall = function(...) return pass(rawpcall(...)) end
coroutine.resume = function(...) return pass(resume(...)) end

-- xpcall: Lua runs a message handler before unwinding, and with hooks off when the error is the
-- hook's (the timeout), where nothing could stop it. Here the handler runs after unwinding, as
-- ordinary Lua code; an error in the handler goes to the handler again, as in Lua (at most 200
-- times, then "error in error handling"); a memory error skips it, as in Lua.
local function handled(h, ok, ...)
  if ok then return true, ... end
  local e = ...
  if timed_out() then error(e, 0) end
  if rawequal(e, "not enough memory") then return false, e end
  for _ = 1, 200 do
    local hok, r = rawpcall(h, e)
    if hok then return false, r end
    if timed_out() then error(r, 0) end
    e = r
  end
  return false, "error in error handling"
end
xpcall = function(f, h, ...)
  if type(h) ~= "function" then
    error(format("bad argument #2 to 'xpcall' (function expected, got %s)",
      h == nil and "no value" or type(h)), 2)
  end
  return handled(h, rawpcall(f, ...))
end

-- C library functions whose loop count a chunk chooses without allocating (string.rep of an
-- empty string; the table functions over a range or a `__len` the chunk makes up, with
-- metamethods that are C functions): bounded here, since the hook cannot stop a loop in C.
-- string.rep refuses a result larger than the memory limit and makes an empty one at once;
-- table.move refuses more than MAX elements; on a table with a metatable, the table functions
-- run their loops in Lua (where the hook reaches, metamethods and all); on a plain table they
-- are Lua's own (their loops are bounded by what the table holds).
local S, T = string, table
local rawrep = S.rep
local rawinsert, rawremove, rawmove, rawconcat, rawsort, rawunpack =
  T.insert, T.remove, T.move, T.concat, T.sort, T.unpack
local own = { "^bad argument", "^wrong number of arguments", "^invalid value %(",
  "^invalid order function", "^too many results", "^object length is not",
  "^attempt to compare", "^resulting string too large", "^string slice too long" }
-- The results of `rawpcall(raw, ...)` for the wrapper `name`. An error the C function raised
-- itself (it has no position: its caller was pcall) is raised again at `level` (2 when the
-- wrapper tail-calls this, 3 when it calls it), under the wrapper's name; any other error (a
-- comparator's, the timeout, the memory limit) goes on as it is.
local function finish(name, level, ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "string" and not timed_out() then
    for i = 1, #own do
      if find(e, own[i]) then
        error((gsub(e, "^(bad argument #%d+ to )'[^']*'", "%1'" .. name .. "'")), level)
      end
    end
  end
  error(e, 0)
end
-- A table with a metatable: its metamethods may be C functions, run once per element.
local function meta(t) return type(t) == "table" and getmetatable(t) ~= nil end
-- luaL_checkinteger, for a wrapper (the error is raised at the wrapper's caller).
local function int(v, i, name)
  local n = v ~= nil and tointeger(v)
  if n then return n end
  error(format("bad argument #%d to '%s' (%s)", i, name, tonumber(v)
    and "number has no integer representation"
    or "number expected, got " .. (v == nil and "no value" or type(v))), 3)
end
-- luaL_len.
local function len(t)
  local n = tointeger(#t)
  if n == nil then error("object length is not an integer", 3) end
  return n
end
S.rep = function(s, n, sep)
  local k, ts, tp = tointeger(n), type(s), type(sep)
  if k and k > 0 and (ts == "string" or ts == "number")
      and (sep == nil or tp == "string" or tp == "number") then
    local w = #tostring(s) + (sep == nil and 0 or #tostring(sep))
    if w == 0 then return "" end
    if k > MEM // w then
      error(format("string.rep: result too large (more than %d MiB)", MEM >> 20), 2)
    end
  end
  return finish("rep", 2, rawpcall(rawrep, s, n, sep))
end
T.move = function(a1, f, e, t, a2)
  local fi, ei = tointeger(f), tointeger(e)
  if fi and ei and ei >= fi and (ei + 0.0) - fi >= MAX then
    error(format("table.move: too many elements to move (more than %d)", MAX), 2)
  end
  local dest = a2
  if dest == nil then dest = a1 end
  if not (meta(a1) or meta(dest)) or type(a1) ~= "table" or type(dest) ~= "table" then
    return finish("move", 2, rawpcall(rawmove, a1, f, e, t, a2))
  end
  fi, ei = int(f, 2, "move"), int(e, 3, "move")
  local ti = int(t, 4, "move")
  if ei >= fi then
    if not (fi > 0 or ei < maxint + fi) then
      error("bad argument #3 to 'move' (too many elements to move)", 2)
    end
    local n = ei - fi + 1
    if ti > maxint - n + 1 then error("bad argument #4 to 'move' (destination wrap around)", 2) end
    if ti > ei or ti <= fi or (a2 ~= nil and a1 ~= a2) then
      for i = 0, n - 1 do dest[ti + i] = a1[fi + i] end
    else
      for i = n - 1, 0, -1 do dest[ti + i] = a1[fi + i] end
    end
  end
  return dest
end
T.insert = function(t, ...)
  if not meta(t) then return finish("insert", 2, rawpcall(rawinsert, t, ...)) end
  local nargs = select("#", ...)
  local e = len(t) + 1
  if nargs == 1 then
    t[e] = ...
  elseif nargs == 2 then
    local pos, v = ...
    pos = int(pos, 2, "insert")
    if not ult(pos - 1, e) then error("bad argument #2 to 'insert' (position out of bounds)", 2) end
    for i = e, pos + 1, -1 do t[i] = t[i - 1] end
    t[pos] = v
  else
    error("wrong number of arguments to 'insert'", 2)
  end
end
T.remove = function(t, pos)
  if not meta(t) then return finish("remove", 2, rawpcall(rawremove, t, pos)) end
  local size = len(t)
  if pos == nil then pos = size else pos = int(pos, 2, "remove") end
  if pos ~= size and pos - 1 ~= size and not ult(pos - 1, size) then
    error("bad argument #2 to 'remove' (position out of bounds)", 2)
  end
  local v = t[pos]
  while pos < size do
    t[pos] = t[pos + 1]
    pos = pos + 1
  end
  t[pos] = nil
  return v
end
T.concat = function(t, sep, i, j)
  if not meta(t) then return finish("concat", 2, rawpcall(rawconcat, t, sep, i, j)) end
  local last = len(t)
  if sep == nil then
    sep = ""
  elseif type(sep) ~= "string" and type(sep) ~= "number" then
    error(format("bad argument #2 to 'concat' (string expected, got %s)", type(sep)), 2)
  end
  if i == nil then i = 1 else i = int(i, 3, "concat") end
  if j ~= nil then last = int(j, 4, "concat") end
  local parts, n = {}, 0
  for k = i, last do
    local v = t[k]
    local tv = type(v)
    if tv ~= "string" and tv ~= "number" then
      error(format("invalid value (%s) at index %d in table for 'concat'", tv, k), 2)
    end
    n = n + 1
    parts[n] = v
  end
  return rawconcat(parts, sep)
end
T.sort = function(t, comp)
  if not meta(t) then return finish("sort", 2, rawpcall(rawsort, t, comp)) end
  local n = len(t)
  if n > 1 then
    if n >= 0x7fffffff then error("bad argument #1 to 'sort' (array too big)", 2) end
    if comp ~= nil and type(comp) ~= "function" then
      error(format("bad argument #2 to 'sort' (function expected, got %s)", type(comp)), 2)
    end
    local c = {}
    for i = 1, n do c[i] = t[i] end
    finish("sort", 3, rawpcall(rawsort, c, comp))
    for i = 1, n do t[i] = c[i] end
  end
end
T.unpack = function(t, i, j)
  if not meta(t) then return finish("unpack", 2, rawpcall(rawunpack, t, i, j)) end
  if i == nil then i = 1 else i = int(i, 2, "unpack") end
  if j == nil then j = len(t) else j = int(j, 3, "unpack") end
  if i > j then return end
  local n = j - i
  if not ult(n, 1000000) then error("too many results to unpack", 2) end
  local c = {}
  for k = 0, n do c[k + 1] = t[i + k] end
  return finish("unpack", 2, rawpcall(rawunpack, c, 1, n + 1))
end
setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not available in autoheal's sandbox", 2)
  end
  return rawsetmetatable(t, mt)
end
local gc_ok = { collect = true, count = true, step = true, isrunning = true }
collectgarbage = function(opt, ...)
  if opt == nil or gc_ok[opt] then return collect(opt, ...) end
  error("collectgarbage(\"" .. tostring(opt) .. "\") is not available in autoheal's sandbox", 2)
end
getmetatable("").__metatable = false
load, _G = nil, nil

local function copy(t)
  local c = {}
  for k, v in next, t do
    if type(v) == "table" then v = copy(v) end
    c[k] = v
  end
  return c
end
local meta = { __metatable = false }
meta.__index = function(env, k)
  local v = G[k]
  if v == nil then
    v = auto(k)
  elseif type(v) == "table" then
    if k == "math" then randomseed() end
    v = copy(v)
  end
  if v ~= nil then rawset(env, k, v) end
  return v
end
return function(alive, restart, started, log, print, prims)
  local env = { alive = alive, restart = restart, started = started, log = log, print = print }
  env._G = env
  env.load = function(chunk, name, _, ...)
    if select("#", ...) == 0 then return rawload(chunk, name, "t", env) end
    return rawload(chunk, name, "t", ...)
  end
  local ah = copy(prims)
  ah.alive, ah.restart, ah.started, ah.log = alive, restart, started, log
  return rawsetmetatable(env, meta), { autoheal = ah }
end
