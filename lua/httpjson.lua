--- httpjson: does a field of a JSON document served over HTTP have the expected value?
--- `path` is dotted (`"db.status"`, array items by number: `"checks.1.ok"`). Without `equals`,
--- the field must be present and truthy.
---
---   check: httpjson.field{url="http://127.0.0.1:8080/actuator/health", path="status", equals="UP"}
local httpjson = {}

--- httpjson.field{url=, path=, equals=nil, timeout=nil, headers=nil} → true | false, reason
function httpjson.field(o)
  assert(type(o) == "table" and o.url and o.path, "httpjson.field needs url= and path=")
  local r, err = http_get(o.url, { timeout = o.timeout, headers = o.headers })
  if not r then
    return false, o.url .. ": " .. err
  end
  if r.status < 200 or r.status > 299 then
    return false, string.format("%s: HTTP %d", o.url, r.status)
  end
  local doc, jerr = json.decode(r.body)
  if doc == nil then
    return false, o.url .. ": " .. jerr
  end
  local v = doc
  for key in tostring(o.path):gmatch("[^.]+") do
    if type(v) ~= "table" then
      v = nil
      break
    end
    v = v[tonumber(key) or key]
  end
  if o.equals ~= nil then
    if v == o.equals or (v ~= nil and tostring(v) == tostring(o.equals)) then
      return true
    end
    return false, string.format("%s: %s is %s, want %s", o.url, o.path, tostring(v), tostring(o.equals))
  end
  if v == nil or v == false or v == json.null then
    return false, string.format("%s: %s is %s", o.url, o.path, v == json.null and "null" or tostring(v))
  end
  return true
end

return httpjson
