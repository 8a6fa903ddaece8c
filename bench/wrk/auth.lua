-- The credential comes from the environment, never from wrk's command line (visible in `ps`).
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end
