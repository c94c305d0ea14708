--- disk: is there enough free space (for an unprivileged user) on the filesystem of `path`?
---
---   dep: [{name: disk, lua: 'disk.free{path="/var/lib/postgresql", min_mb=500}'}]
local disk = {}

--- disk.free{path="/", min_mb=100} → true | false, reason
function disk.free(o)
  o = o or {}
  local path, min_mb = o.path or "/", o.min_mb or 100
  local bytes, err = disk_free(path)
  if not bytes then
    return false, err
  end
  local mb = bytes // (1024 * 1024)
  if mb < min_mb then
    return false, string.format("%s has %d MB free (min %d MB)", path, mb, min_mb)
  end
  return true
end

return disk
