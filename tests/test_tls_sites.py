"""The HTTPS sites (tls=letsencrypt and tls=own): accepted by the real nginx and Apache with a certificate in
place, gixy-ng clean, and holding Mozilla's intermediate profile, the redirect and the headers HTTPS makes right.

The live endpoint is graded on a test host (tests/e2e/test_tls.py); here the files are checked by the servers'
own parsers, with a throw-away self-signed certificate at the paths the site names.
"""

import importlib.util
import json
import re
import subprocess
import sys

import pytest
from helpers import bake, default_answers, require, require_tool
from test_front_configs import apache_binary, module_path, nginx_main_config

# Mozilla's intermediate TLS 1.2 suites without DHE; TLS 1.3 suites are not configurable and all allowed.
INTERMEDIATE = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
HSTS = "max-age=63072000"


def tls_stacks():
    stacks = []
    for tls in ("letsencrypt", "own"):
        for web, servers in (("nginx", ("gunicorn", "uwsgi")), ("apache", ("gunicorn", "uwsgi", "mod_wsgi"))):
            for wsgi in servers:
                stacks.append(dict(tls=tls, web_server=web, wsgi_server=wsgi, os_family="debian", url_prefix="/"))
            stacks.append(dict(tls=tls, web_server=web, wsgi_server="gunicorn", os_family="rhel", url_prefix="/sub"))
    return stacks


STACKS = tls_stacks()


def tls_id(stack):
    return "-".join(f"{key}:{value.strip('/') or 'root'}" for key, value in stack.items())


class TlsSite:
    """A baked HTTPS stack: its HTTP and HTTPS site files, with a self-signed certificate in place of the real one."""

    def __init__(self, project, answers, tmp_path):
        self.answers = answers
        folder = project / "deploy" / answers["web_server"]
        self.http_text = (folder / "http.conf").read_text()
        self.text = (folder / f"{answers['project_slug']}.conf").read_text()
        certificate, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            + ["-keyout", str(key), "-out", str(certificate), "-days", "1", "-subj", f"/CN={answers['domain_name']}"],
            check=True,
            capture_output=True,
        )
        self.http_path, self.path = tmp_path / "http.conf", tmp_path / "site.conf"
        self.http_path.write_text(self.http_text)
        self.path.write_text(
            self.text.replace(answers["__tls_certificate"], str(certificate)).replace(answers["__tls_key"], str(key))
        )


@pytest.fixture
def tls_site(cookies, tmp_path):
    def _site(stack):
        project = bake(cookies, **stack)
        return TlsSite(project, default_answers(**stack), tmp_path)

    return _site


class BothFiles:
    """What nginx_main_config includes: the HTTP site first, as the README installs it, then the HTTPS site."""

    def __init__(self, site, tmp_path):
        self.path = tmp_path / "both.conf"
        self.path.write_text(f"include {site.http_path};\ninclude {site.path};\n")


NGINX = [s for s in STACKS if s["web_server"] == "nginx"]
APACHE = [s for s in STACKS if s["web_server"] == "apache"]


@pytest.mark.parametrize("stack", NGINX, ids=tls_id)
def test_nginx_accepts_tls_site(tmp_path, tls_site, stack):
    """`nginx -t` passes without a warning on both files, and gixy-ng finds nothing in them."""
    nginx = require_tool("nginx", "checks the generated nginx site")
    main = nginx_main_config(tmp_path, BothFiles(tls_site(stack), tmp_path))
    result = subprocess.run(
        [nginx, "-t", "-c", str(main), "-p", f"{tmp_path}/"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr
    require(importlib.util.find_spec("gixy"), "gixy-ng is not installed (analyses the nginx site); tox installs it")
    result = subprocess.run(
        [sys.executable, "-m", "gixy", "--format", "json", str(main)], capture_output=True, text=True, check=False
    )
    assert json.loads(result.stdout or "null") == [], result.stdout + result.stderr


@pytest.mark.parametrize("stack", NGINX, ids=tls_id)
def test_nginx_tls_site_content(tls_site, stack):
    """Port 80: the challenge (letsencrypt) and a 308 to the fixed name; 443: intermediate, HSTS, handshake refused
    for unknown names."""
    site = tls_site(stack)
    domain = site.answers["domain_name"]
    assert f"return 308 https://{domain}$request_uri;" in site.http_text
    acme = "location ^~ /.well-known/acme-challenge/ {\n        root /var/www/letsencrypt;" in site.http_text
    assert acme is (stack["tls"] == "letsencrypt")
    assert "listen 80 default_server;" in site.http_text and "return 444;" in site.http_text
    text = site.text
    assert "listen 80" not in text
    catch_all = text.index("listen 443 ssl default_server;")
    assert catch_all < text.index("ssl_reject_handshake on;") < text.index(f"server_name {domain};")
    assert "listen 443 ssl http2;" in text
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert f"ssl_ciphers {INTERMEDIATE};" in text and not re.search(r"\bDHE-", text) and "ssl_dhparam" not in text
    assert "ssl_session_cache shared:" in text and "ssl_session_tickets off;" in text
    assert f'add_header Strict-Transport-Security "{HSTS}" always;' in text
    assert "add_header Content-Security-Policy \"default-src 'self';" in text
    assert 'add_header Permissions-Policy "' in text
    assert f"ssl_certificate {site.answers['__tls_certificate']};" in text


def apache_tls_main(tmp_path, site, stack):
    modules = ["mpm_event", "unixd", "authz_core", "alias", "headers", "reqtimeout", "ssl", "socache_shmcb", "http2"]
    if stack["wsgi_server"] != "mod_wsgi":
        modules += ["proxy", "proxy_http"]
    loads = "".join(f"LoadModule {name}_module {module_path(name)}\n" for name in modules if module_path(name))
    main = tmp_path / "httpd.conf"
    main.write_text(
        f"ServerRoot {tmp_path}\nDefaultRuntimeDir {tmp_path}\nPidFile {tmp_path / 'httpd.pid'}\n"
        f"ErrorLog {tmp_path / 'error.log'}\nServerName localhost\nDocumentRoot {tmp_path}\nListen 80\nListen 443\n"
        f"SSLSessionCache shmcb:{tmp_path / 'scache'}(512000)\n{loads}"
        f"Include {site.http_path}\nInclude {site.path}\n"
    )
    return main


@pytest.mark.parametrize("stack", [s for s in APACHE if s["wsgi_server"] != "mod_wsgi"], ids=tls_id)
def test_apache_accepts_tls_site(tmp_path, tls_site, stack):
    """`apache2 -t` passes on both files; the catch-alls are the default hosts of ports 80 and 443."""
    apache = apache_binary()
    main = apache_tls_main(tmp_path, tls_site(stack), stack)
    result = subprocess.run([apache, "-t", "-f", str(main)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "Syntax OK", result.stderr
    result = subprocess.run(
        [apache, "-t", "-D", "DUMP_VHOSTS", "-f", str(main)], capture_output=True, text=True, check=False
    )
    for port in ("80", "443"):
        assert re.search(rf"^\*:{port} +is a NameVirtualHost\n +default server default\.invalid ", result.stdout, re.M)


@pytest.mark.parametrize("stack", APACHE, ids=tls_id)
def test_apache_tls_site_content(tls_site, stack):
    """Port 80: the challenge (letsencrypt) and a 308; 443: intermediate server-wide, HSTS, HTTP/2."""
    site = tls_site(stack)
    domain = site.answers["domain_name"]
    if stack["tls"] == "letsencrypt":
        assert f"RedirectMatch 308 ^/(?!\\.well-known/acme-challenge/)(.*)$ https://{domain}/$1" in site.http_text
        assert "Alias /.well-known/acme-challenge/ /var/www/letsencrypt/.well-known/acme-challenge/" in site.http_text
    else:
        assert f"Redirect 308 / https://{domain}/" in site.http_text
    text = site.text
    assert "<VirtualHost *:80>" not in text and text.count("<VirtualHost *:443>") == 2
    assert text.index("SSLProtocol -all +TLSv1.2 +TLSv1.3") < text.index("<VirtualHost *:443>")
    assert f"SSLCipherSuite {INTERMEDIATE}\n" in text and not re.search(r"\bDHE-", text)
    assert "SSLSessionTickets off" in text and "SSLHonorCipherOrder off" in text
    assert f'Header always set Strict-Transport-Security "{HSTS}"' in text
    assert "Protocols h2 http/1.1" in text
    assert "Header always set Content-Security-Policy \"default-src 'self';" in text
    assert 'Header always set Permissions-Policy "' in text


def test_plain_http_site_has_no_tls(cookies):
    """tls=none: one site file on http_port, no certificate, no HSTS (it would pin a scheme the site lacks)."""
    project = bake(cookies, tls="none", http_port="8080")
    assert not (project / "deploy" / "nginx" / "http.conf").exists()
    text = (project / "deploy" / "nginx" / "flask_stack_app.conf").read_text()
    assert "listen 8080 default_server;" in text
    assert "ssl_" not in text and "Strict-Transport-Security" not in text
    assert "Content-Security-Policy" in text and "Permissions-Policy" in text
