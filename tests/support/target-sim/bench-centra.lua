-- bench-centra.lua: wrk script POSTing a rendered Centra invoices_Update to target-sim.
-- usage: wrk -t2 -c64 -d10s -s tests/support/target-sim/bench-centra.lua \
--            http://127.0.0.1:PORT/amsdocs/system/service/module/soap/api
-- BODY=path overrides the request body (default: the valid Centra fixture).
-- Every request carries its own X-Request-ID, as the worker's would.

local path = os.getenv("BODY") or "tests/fixtures/sim/centra_soap-valid.xml"
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
function request()
  n = n + 1
  local id = string.format("bench-%d-%d", tid or 0, n)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "text/xml; charset=utf-8",
    ["SOAPAction"] = '"http://www.centra.com/webservices/Invoices_Update"',
    ["X-Request-ID"] = id .. ":centra_soap:1",
    ["Idempotency-Key"] = id .. ":centra_soap",
  }, body)
end

local non200 = 0
function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("requests=%d errors(connect/read/write/status/timeout)=%d/%d/%d/%d/%d\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
