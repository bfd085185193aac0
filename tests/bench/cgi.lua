-- cgi.lua: the wrk script of the CGI benchmark (tests/bench/cgi).  Every
-- request posts a valid `item.delete` delivery of an item never used
-- before (no API call is needed for it), as a form with the secret.
--
-- Arguments (after -- on wrk's command line): SECRET RUN HOOK_ID
-- RUN (a small number) keeps the ids of each run apart.  Each wrk thread
-- runs its own Lua state: the ids it makes start at
-- RUN * 1e10 + THREAD * 1e8, so that threads and runs never meet.

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

local secret = ""
local hook = "1001"
local base = 0
local counter = 0
local headers = {
   ["Content-Type"] = "application/x-www-form-urlencoded",
}

function init(args)
   secret = args[1] or ""
   hook = args[3] or "1001"
   base = (tonumber(args[2]) or 0) * 1e10 + (tid or 0) * 1e8
end

function request()
   counter = counter + 1
   local body = string.format("type=item.delete&hook_id=%s" ..
      "&item_id=%.0f&secret=%s", hook, base + counter, secret)
   return wrk.format("POST", nil, headers, body)
end
