"""gunicorn settings; gunicorn reads ./gunicorn.conf.py from the working directory by default.

Command-line flags (workers, bind) still win; only what must hold everywhere is set here.
"""

# gunicorn refuses header lines over 8190 bytes with its own HTML 431. Let lines up to 16 KiB
# through, so an over-long Authorization header (8 KiB of garbage, say) gets the API's JSON 401.
limit_request_field_size = 16 * 1024
