-- wrk script: POST the JSON body read from the file named by the first script argument,
-- and print one JSON line with the summary when the run is done (bench/wrk.py parses it).
-- Usage: wrk -t1 -cN -dDs --timeout 10s -s bench/report.lua URL -- BODY_FILE

function init(args)
   local file = assert(io.open(args[1], "rb"))
   wrk.method = "POST"
   wrk.body = file:read("*a")
   file:close()
   wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"latency_p50_us": %d, "latency_p99_us": %d, "latency_max_us": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout, e.status))
end

-- With BENCH_IDS_FILE set (bench/overhead.py), also append each answer's X-Feedback-Id
-- to that file, one a line, for the feedback sender. wrk decides whether to parse the
-- response headers by whether `response` exists when the script loads, so it is defined
-- only then: the matrix's runs do not pay for it.
local ids_path = os.getenv("BENCH_IDS_FILE")
if ids_path then
   local ids = nil
   function response(status, headers, body)
      local id = headers["x-feedback-id"] or headers["X-Feedback-Id"]
      if id then
         if not ids then
            ids = assert(io.open(ids_path, "a"))
            ids:setvbuf("full", 4096)
         end
         ids:write(id, "\n")
      end
   end
end
