{% set stop_timeout = "systemd's TimeoutStopSec=30" if cookiecutter.process_manager == "systemd" else "supervisord's stopwaitsecs=30" %}
"""gunicorn settings for {{ cookiecutter.project_slug }}, read at every start by {{ cookiecutter.process_manager }}'s `gunicorn --config` command."""

import os

from gunicorn.glogging import Logger

wsgi_app = "wsgi:app"
# Import wsgi.py from the install directory, whichever directory gunicorn is started in.
chdir = "{{ cookiecutter.install_dir }}"
{% if cookiecutter.process_manager == "systemd" %}
# No bind: systemd's {{ cookiecutter.project_slug }}.socket hands gunicorn the listening socket ({{ cookiecutter.__socket or "127.0.0.1:" ~ cookiecutter.http_port }})
# and keeps it open across restarts, so requests wait for the next master instead of failing.
{% elif cookiecutter.__socket %}
# The socket {{ cookiecutter.web_server }} proxies to; its directory belongs to the group {{ cookiecutter.__front_group }}.
bind = ["unix:{{ cookiecutter.__socket }}"]
{% else %}
# Loopback only: the host's proxy forwards to this port, the outside world cannot reach it.
bind = ["127.0.0.1:{{ cookiecutter.http_port }}"]
{% endif %}
{% if cookiecutter.__socket and cookiecutter.process_manager == "supervisord" %}
# No umask: gunicorn gives the socket its own group ({{ cookiecutter.project_slug }}), not the setgid directory's, so
# {{ cookiecutter.web_server }} connects as "other"; the directory (2750, group {{ cookiecutter.__front_group }}) keeps everyone else out.
{% else %}
# Nothing gunicorn creates is open to other users.
umask = 0o007
{% endif %}
{% if cookiecutter.__prefix %}
# The app lives under {{ cookiecutter.__prefix }}: gunicorn strips it from PATH_INFO and url_for() puts it back.
raw_env = ["SCRIPT_NAME={{ cookiecutter.__prefix }}"]
{% endif %}

# Sync workers, two per CPU this process may use plus one (gunicorn's rule of thumb).
workers = 2 * len(os.sched_getaffinity(0)) + 1
# Kill a worker stuck on one request after 30 s: after the app gives up on a sick database (at most
# 12 s, config.py), before the front server gives up at 60 s.
timeout = 30
# On stop or reload, in-flight requests get 25 s: under {{ stop_timeout }}.
graceful_timeout = 25
# Recycle each worker after 100,000 requests, against slow leaks. A new worker imports the app again
# (0.8 s of CPU on 2 cores, more than 1000 small requests take), so every 1000 it halved the
# throughput; every 100,000 it costs about 1 %.
max_requests = 100000
# Up to 10,000 more per worker, so the workers do not all restart at once.
max_requests_jitter = 10000
# The worker heartbeat file lives in RAM: a busy disk must not make gunicorn kill healthy workers.
worker_tmp_dir = "/dev/shm"
# preload_app stays off: each worker imports the app, so no database connection crosses a fork.

# Logs go to stdout/stderr, which {{ "the journal" if cookiecutter.process_manager == "systemd" else "supervisord" }} collects.
accesslog = "-"
errorlog = "-"
# The client's address comes first, from X-Forwarded-For: the peer is always the proxy.
access_log_format = (
    '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
)


class FailedRequestsLog(Logger):
    """gunicorn's logger, writing access lines for failed requests (4xx and 5xx) only."""

    def access(self, resp, req, environ, request_time):
        # {{ "The host's proxy logs" if cookiecutter.web_server == "none" else cookiecutter._stack.choices.web_server[cookiecutter.web_server].name ~ "'s access log has" }} every request; a second line per success here only adds
        # CPU and {{ "journal" if cookiecutter.process_manager == "systemd" else "log file" }} volume.
        if not str(resp.status).startswith(("1", "2", "3")):
            super().access(resp, req, environ, request_time)


logger_class = FailedRequestsLog

# Trust X-Forwarded-Proto only from the proxy on this machine (connections on a unix socket always are).
forwarded_allow_ips = "127.0.0.1"
# Never let a request header set SCRIPT_NAME or PATH_INFO: the mount point is configured here only.
forwarder_headers = ""
# No control socket (its default lies in $HOME): {{ cookiecutter.process_manager }} reloads (HUP) and stops (TERM) gunicorn.
control_socket_disable = True
