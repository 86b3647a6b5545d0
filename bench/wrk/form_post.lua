-- POSTs pre-generated form submissions, each used once, and counts response statuses.
-- Written by bench/form_load.py; run as
--   wrk -t2 -c16 -d20s --latency -s bench/wrk/form_post.lua http://127.0.0.1:PORT -- DATA.lua THREADS MODE
-- DATA.lua returns {path = "/t/<slug>/refund", entries = {{body=…, cookie=…, lang=…, ip=…}, …}}:
-- ip, the customer's own address, goes in X-Forwarded-For (the app trusts one proxy).
-- wrk thread k of THREADS takes entries k+1, k+1+THREADS, …; a thread that runs out stops
-- and counts what it had to resend in "reused" (the run is then not valid). With MODE
-- "cycle" (the bare baseline, which has no one-time tokens) a thread starts its share
-- again; with "once" it does not. (No delay(): with gunicorn's sync workers every response
-- closes its connection, and wrk 4.1 then reconnects and sends at once, so a delay()
-- does not pace the requests; bench/form_load.py paces its half-rate run itself.)
-- "sent" counts requests written, answered or not: wrk closes its connections at the end
-- of the run with up to one request each still in flight, which the server completes.
-- wrk calls request() once more, in thread 0 before the run, to check the script; that
-- call sends nothing, so done() takes it off.

local threads = {}
local started = 0

function setup(thread)
   thread:set("id", started)
   started = started + 1
   table.insert(threads, thread)
end

function init(args)
   local data = dofile(args[1])
   local stride = tonumber(args[2]) or 1
   cycle = args[3] == "cycle"
   path = data.path
   mine = {}
   for i = id + 1, #data.entries, stride do
      local entry = data.entries[i]
      local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
      if entry.cookie ~= "" then headers["Cookie"] = entry.cookie end
      if entry.lang ~= "" then headers["Accept-Language"] = entry.lang end
      if entry.ip ~= nil and entry.ip ~= "" then headers["X-Forwarded-For"] = entry.ip end
      mine[#mine + 1] = wrk.format("POST", path, headers, entry.body)
   end
   next_entry = 1
   statuses = {}
   reused = 0
   sent = 0
end

function request()
   sent = sent + 1
   local formatted = mine[next_entry]
   if formatted == nil and cycle then
      next_entry, formatted = 1, mine[1]
   end
   if formatted == nil then
      reused = reused + 1
      return mine[#mine]
   end
   next_entry = next_entry + 1
   return formatted
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if next_entry > #mine and not cycle then wrk.thread:stop() end
end

function done(summary, latency, requests)
   local total, resent, written = {}, 0, 0
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         total[status] = (total[status] or 0) + n
      end
      resent = resent + thread:get("reused")
      written = written + thread:get("sent")
   end
   io.write(string.format(
      "BENCH requests=%d sent=%d seconds=%.3f errors=%d timeouts=%d reused=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
      summary.requests, written - 1, summary.duration / 1e6,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status,
      summary.errors.timeout, resent,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000))
   for status, n in pairs(total) do
      io.write(string.format("BENCH status %d %d\n", status, n))
   end
end
