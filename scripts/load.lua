-- wrk script: every request is the documented invite for a call of its own, so each
-- one starts a replay session (match, bind, mint, rewrite, schedule notifications).
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end

local function guid(prefix, n)
  return string.format("%08x-0000-4000-8000-%012x", prefix, n)
end

function request()
  counter = counter + 1
  local n = tid * 100000000 + counter
  local body = string.format(
    '{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","replacesCallId":"%s","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"%s","identityProvider":"AAD"}}}],"clientContext":"%s"}',
    guid(0x9292, n), guid(0x05e7, n), guid(0xc0c0, n))
  local path = "/beta/communications/calls/" .. guid(0xca11, n) .. "/participants/invite"
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end
