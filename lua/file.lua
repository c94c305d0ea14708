--- file: is a file fresh, i.e. modified less than `max_age` seconds ago (a heartbeat, a
--- backup stamp, a spool written by a running service)? Relative paths resolve against the
--- config file's directory.
---
---   check: file.fresh{path="/var/run/worker.heartbeat", max_age=60}
local file = {}

--- file.fresh{path=, max_age=60} → true | false, reason
function file.fresh(o)
  assert(type(o) == "table" and o.path, "file.fresh needs path=")
  local max_age = o.max_age or 60
  local age, err = file_age(o.path)
  if not age then
    return false, err
  end
  if age > max_age then
    return false, string.format("%s is %ds old (max %ds)", o.path, math.floor(age), max_age)
  end
  return true
end

--- file.exists{path=} → true | false, reason
function file.exists(o)
  local age, err = file_age(o.path)
  if not age then
    return false, err
  end
  return true
end

return file
