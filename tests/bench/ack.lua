-- ack.lua: the wrk script of the acknowledgement benchmark
-- (tests/bench/ack).  Every request is a valid Podio delivery of a new
-- comment, posted as a form: type=comment.create&hook_id=1001&
-- comment_id=N&secret=S, with N distinct across threads and runs.
--
-- Arguments (after -- on wrk's command line): SECRET RUN
-- RUN (a small number) keeps the comment ids of each run apart.

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

local secret = ""
local base = 0
local counter = 0
local headers = {
   ["Content-Type"] = "application/x-www-form-urlencoded",
}

function init(args)
   secret = args[1] or ""
   -- Up to 1e8 requests per thread and 100 threads per run.
   base = (tonumber(args[2]) or 0) * 1e10 + (tid or 0) * 1e8
end

function request()
   counter = counter + 1
   local body = string.format(
      "type=comment.create&hook_id=1001&comment_id=%.0f&secret=%s",
      base + counter, secret)
   return wrk.format("POST", nil, headers, body)
end
