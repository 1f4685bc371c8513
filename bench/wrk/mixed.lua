-- mixed.lua: wrk script for edge (and any proxy routing the same way).
--
-- Sends GET requests that alternate between the /app/ and /auth/ routes of
-- host example.com, each with a bearer token when one is given, and prints
-- a one-line JSON summary (WRK_JSON ...) after wrk's own report.
--
--   TOKEN=$(bin/edge token -alg HS256 -key hs256.key -sub alice -aud example.com \
--           -iss https://auth.example.com -scope app:read)
--   TOKEN=$TOKEN wrk -t1 -c64 -d30s -s bench/wrk/mixed.lua http://127.0.0.1:8080/
--
-- Environment:
--   TOKEN       a JWT sent as "Authorization: Bearer TOKEN"
--   TOKEN_FILE  a file with one JWT per line (used when TOKEN is empty);
--               requests cycle through them, e.g. to spread per-user limits
--   HOST        Host header (default example.com; a -H 'Host: ...' flag wins)
--   PATHS       comma-separated paths (default /app/dashboard,/auth/userinfo)
--
-- wrk's -H flags are kept, so -H 'Connection: close' makes every request a
-- new connection (over https://, one TLS handshake per request).

local function split(s, sep)
  local out = {}
  for part in string.gmatch(s, "([^" .. sep .. "]+)") do
    part = part:gsub("^%s+", ""):gsub("%s+$", "")
    if part ~= "" then out[#out + 1] = part end
  end
  return out
end

local function tokens()
  local t = os.getenv("TOKEN")
  if t and t ~= "" then return { t } end
  local file = os.getenv("TOKEN_FILE")
  if not file or file == "" then return { false } end
  local f = assert(io.open(file, "r"), "mixed.lua: cannot open TOKEN_FILE " .. file)
  local list = {}
  for line in f:lines() do
    line = line:gsub("%s+$", "")
    if line ~= "" then list[#list + 1] = line end
  end
  f:close()
  assert(#list > 0, "mixed.lua: TOKEN_FILE " .. file .. " has no token")
  return list
end

local requests = {}
local next_request = 0

function init(args)
  local paths = split(os.getenv("PATHS") or "/app/dashboard,/auth/userinfo", ",")
  local host = os.getenv("HOST") or "example.com"
  local toks = tokens()
  -- Build every request once; request() only hands them out: every path
  -- with the first token, then every path with the next, and so on.
  for _, tok in ipairs(toks) do
    for _, path in ipairs(paths) do
      local headers = {}
      for name, value in pairs(wrk.headers) do headers[name] = value end
      -- wrk fills Host from the URL before init(); only a -H 'Host: ...'
      -- flag, which differs from that, beats HOST.
      local h = headers["Host"]
      if h == nil or h == wrk.host or h == wrk.host .. ":" .. tostring(wrk.port) then
        headers["Host"] = host
      end
      if tok then headers["Authorization"] = "Bearer " .. tok end
      requests[#requests + 1] = wrk.format("GET", path, headers)
    end
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
