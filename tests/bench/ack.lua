-- ack.lua: the wrk script of the acknowledgement benchmark
-- (tests/bench/ack).  Every request is a valid Podio delivery, posted as
-- a form, and every delivery is unique (never a duplicate the spool would
-- store once).
--
-- Arguments (after -- on wrk's command line): SECRET RUN [SCENARIO]
-- RUN (a small number) keeps the ids of each run apart.  SCENARIO:
--   item     (default) item events: of every 5 deliveries, 3 are
--            item.update of an item drawn from a pool of 2,000 (ids 1 to
--            2000, so that the events of one item coalesce), with a new
--            item_revision_id each; one is item.create and one
--            item.delete of a new item (an id never used before);
--   comment  comment.create of a new comment each.
-- Each wrk thread runs its own Lua state: the ids it makes start at
-- RUN * 1e10 + THREAD * 1e8, so that threads and runs never meet.

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

local POOL = 2000
local secret = ""
local scenario = "item"
local base = 0
local counter = 0
local headers = {
   ["Content-Type"] = "application/x-www-form-urlencoded",
}

function init(args)
   secret = args[1] or ""
   scenario = args[3] or "item"
   -- Up to 1e8 requests per thread and 100 threads per run.
   base = (tonumber(args[2]) or 0) * 1e10 + (tid or 0) * 1e8
   math.randomseed(base + os.time())
end

function request()
   counter = counter + 1
   local id = base + counter
   local body
   if scenario == "comment" then
      body = string.format(
         "type=comment.create&hook_id=1001&comment_id=%.0f&secret=%s",
         id, secret)
   else
      local k = counter % 5
      if k == 0 then
         body = string.format("type=item.create&hook_id=1001" ..
            "&item_id=%.0f&item_revision_id=1&secret=%s", id, secret)
      elseif k == 1 then
         body = string.format("type=item.delete&hook_id=1001" ..
            "&item_id=%.0f&secret=%s", id, secret)
      else
         body = string.format("type=item.update&hook_id=1001" ..
            "&item_id=%d&item_revision_id=%.0f&secret=%s",
            math.random(POOL), id, secret)
      end
   end
   return wrk.format("POST", nil, headers, body)
end
