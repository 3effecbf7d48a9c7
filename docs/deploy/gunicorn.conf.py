"""gunicorn settings for a production host: ``gunicorn -c docs/deploy/gunicorn.conf.py wsgi:app``.

Every line is JSON on stderr (journald or the platform keeps it): gunicorn's own messages here,
the app's (one per request, with the proxy's X-Request-ID) from ``TOUCHBASE_LOG_FORMAT=json``,
which production mode turns on by itself.
"""

import os

# The TLS proxy in front talks to this address; keep it off the public interface.
bind = os.environ.get("TOUCHBASE_BIND", "127.0.0.1:8000")
# Sync workers: each request is short and bounded by the database. Two or three per core.
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "sync"
timeout = 30
graceful_timeout = 30
# Restart a worker now and then, so a slow leak in any library never grows without bound.
max_requests = 5000
max_requests_jitter = 500
# The proxy on the same machine (or the load balancer's address) may set X-Forwarded-*.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# No control socket in $HOME: use systemd (or the platform) to restart and scale.
control_socket_disable = True
# The app logs each request itself, as JSON; gunicorn's access log would say it twice.
accesslog = None
errorlog = "-"
loglevel = "info"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["asctime", "levelname", "name", "message"],
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        }
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # Off: the app's own request line (JSON, with the request id) replaces it.
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        # Alembic announces its plugins when each worker imports it: noise.
        "alembic.runtime.plugins": {"level": "WARNING"},
    },
}
