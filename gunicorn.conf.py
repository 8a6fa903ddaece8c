"""gunicorn settings; gunicorn reads ./gunicorn.conf.py from the working directory by default.

Command-line flags (workers, bind) still win; only what must hold everywhere is set here.
"""

# gunicorn refuses header lines over 8190 bytes with its own HTML 431. Let lines up to 16 KiB
# through, so an over-long Authorization header (8 KiB of garbage, say) gets the API's JSON 401.
limit_request_field_size = 16 * 1024

# gunicorn's default request-line limit (4094 bytes) answered an HTML 414 before Django saw the
# request. 8190 is gunicorn's maximum short of 0 ("unlimited"), which its pure-Python parser
# reads by re-copying the buffer on every read: a megabyte line would cost real CPU. Lines up to
# 8190 bytes reach the API, which refuses URLs over 4096 bytes with a JSON 414
# (gateway/middleware.py); a longer line gets the JSON 414 of the worker class below.
limit_request_line = 8190
worker_class = "config.gunicorn_worker.SyncWorker"
