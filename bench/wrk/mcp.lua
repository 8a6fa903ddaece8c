-- The `mcp_read` scenario: one MCP `tools/call` of get_passport per request (POST /mcp, a
-- JSON-RPC message), with the API key of `apikey`. BENCH_PASSPORT is the passport's id.
-- The credential comes from the environment, never from wrk's command line (visible in `ps`).
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
wrk.body = '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": '
  .. '"get_passport", "arguments": {"passport_id": "' .. (os.getenv("BENCH_PASSPORT") or "")
  .. '"}}}'
