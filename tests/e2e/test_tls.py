"""HTTPS with certificates that renew themselves, deployed by the README verbatim on a test host.

Let's Encrypt is played by pebble (its test CA, Debian's package) inside the host, where the site's domain
resolves to the host itself (/etc/hosts) and pebble's HTTP-01 validation goes to port 80, as Let's Encrypt's
does. The host trusts pebble's own listener certificate (so certbot may talk to it) and pebble's issuing root
(as a server trusts Let's Encrypt's), both in its system store. Then: certbot obtains the certificate through
the generated port-80 site by the README's steps; the HTTPS site serves the index, the form (its session
cookie Secure) and the health check; HTTP answers 308 to HTTPS; `certbot renew --force-renewal` replaces the
certificate and its deploy hook reloads the front server while a bounded load counts every failed request;
sslyze grades the live endpoint against Mozilla's intermediate profile.
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from functools import partial

import pytest
from faults import results
from faults.load import Load
from helpers import Client, require, wait_for

from .cases import Case
from .on_host import WORK_ROOT, HostDeployment
from .pebble import ACME_DIRECTORY, start_pebble

pytestmark = pytest.mark.e2e

# Mozilla's intermediate TLS 1.2 suites (no DHE), as OpenSSL names them; TLS 1.3 suites are all allowed.
INTERMEDIATE_TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
}
REFUSED_PROTOCOLS = ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1")


def tls_case(web_server, index):
    return Case(
        "gunicorn",
        web_server,
        "systemd",
        "debian",
        "sqlite",
        index=index,
        tls="letsencrypt",
        extra={"http_port": "80", "acme_server": ACME_DIRECTORY},
    )


TLS_CASES = [tls_case("nginx", 90), tls_case("apache", 91)]


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with the site's name for SNI and certificate checks."""

    def __init__(self, address, name, context, timeout):
        super().__init__(name, address[1], context=context, timeout=timeout)
        self.address = address

    def connect(self):
        sock = socket.create_connection(self.address, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class HTTPSClient(Client):
    """helpers.Client over HTTPS, trusting only the given CA file."""

    def __init__(self, address, host, timeout=30, cafile=None):
        super().__init__(address, host, timeout)
        self.context = ssl.create_default_context(cafile=cafile)

    def connection(self):
        return PinnedHTTPSConnection(self.address, self.host, self.context, self.timeout)


class TlsDeployment(HostDeployment):
    """A HostDeployment whose host has a local ACME server before the README's first step."""

    def before_readme(self):
        self.cafile = self.work / "pebble-root.pem"
        self.cafile.write_text(start_pebble(self.host, self.case.domain))
        self.checked.append("pebble on the host plays Let's Encrypt")

    def https_client(self):
        return HTTPSClient((self.host.address, 443), self.case.domain, cafile=str(self.cafile))

    def served_certificate(self):
        """The serial of the certificate the site shows now, and its issuer."""
        context = ssl.create_default_context(cafile=str(self.cafile))
        with socket.create_connection((self.host.address, 443), 10) as sock:
            with context.wrap_socket(sock, server_hostname=self.case.domain) as tls:
                certificate = tls.getpeercert()
                return certificate["serialNumber"], dict(part[0] for part in certificate["issuer"])

    def check_https(self):
        """The HTTPS site serves the app with its certificate from pebble; its session cookie is Secure."""
        self.client = self.https_client()
        serial, issuer = self.served_certificate()
        assert "Pebble" in issuer.get("commonName", ""), f"not pebble's certificate: {issuer}"
        response = self.check_index()
        assert response.header("strict-transport-security") == "max-age=63072000", response.headers
        assert "default-src 'self'" in (response.header("content-security-policy") or ""), response.headers
        assert response.header("permissions-policy"), response.headers
        notes = self.client.get(self.url("notes/"))
        cookies = notes.set_cookies
        assert cookies and all("Secure" in cookie for cookie in cookies), f"session cookie not Secure: {cookies}"
        self.check_form()
        self.check_health()
        self.checked.append(f"HTTPS: certificate {serial} from {issuer.get('commonName')}, HSTS, CSP, Secure cookie")

    def check_redirect(self):
        """Port 80 sends every request but the ACME challenge to HTTPS with 308, path and query kept."""
        response = Client((self.host.address, 80), self.case.domain).get("/notes/?page=2")
        assert response.status == 308, response
        assert response.header("location") == f"https://{self.case.domain}/notes/?page=2", response.headers
        self.checked.append("HTTP: 308 to https, path and query kept")

    def check_unknown_name(self):
        """An unknown name gets no page of ours: nginx refuses the handshake, Apache answers 404."""
        client = HTTPSClient((self.host.address, 443), "unknown.invalid", cafile=str(self.cafile))
        client.context.check_hostname = False
        client.context.verify_mode = ssl.CERT_NONE
        if self.case.web_server == "nginx":
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME|unrecognized name"):
                client.get("/")
            self.checked.append("unknown name: handshake refused")
        else:
            response = client.get("/")
            assert response.status in (404, 421) and self.case.project_name not in response.text, response
            self.checked.append(f"unknown name: {response.status}")

    def check_renewal(self, seconds=3.0):
        """`certbot renew --force-renewal` replaces the certificate and reloads the front server; under a bounded
        HTTPS load no request fails."""
        before, _ = self.served_certificate()
        make_client = partial(HTTPSClient, cafile=str(self.cafile))
        with Load(
            (self.host.address, 443), self.case.domain, [self.url("health"), self.url()], 3, 30, make_client
        ) as load:
            time.sleep(seconds / 3)
            renewed = self.host.run(["certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew"], timeout=180)
            time.sleep(seconds * 2 / 3)
        assert "Congratulations, all renewals succeeded" in renewed.stdout + renewed.stderr, renewed.stdout
        after = wait_for(lambda: (s := self.served_certificate()[0]) != before and s, 20, 0.5)
        assert after, f"still serving certificate {before} after the renewal"
        results.record("certbot renew + deploy hook reload", self.case.id, load.requests, load.failed, f"{after}")
        assert load.requests > 0 and load.failed == 0, f"{load.failed} of {load.requests} failed: {load.outcomes}"
        self.checked.append(f"renewal: {before} -> {after}, {load.failed} of {load.requests} requests failed")


def sslyze_command():
    found = shutil.which("sslyze", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    require(found, "sslyze is not installed (grades the live TLS endpoint); tox installs it")
    return found


def grade(deployment):
    """sslyze's scan of the live endpoint: the protocols and suites it accepted, and the HSTS header.
    The whole scan stays in the case's work folder (sslyze.json) beside its deploy log."""
    out = deployment.work / "sslyze.json"
    target = f"{deployment.case.domain}:443{{{deployment.host.address}}}"
    commands = ["--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--http_headers"]
    subprocess.run([sslyze_command(), *commands, f"--json_out={out}", target], capture_output=True, check=True)
    scan = json.loads(out.read_text())["server_scan_results"][0]
    assert scan["scan_status"] == "COMPLETED", scan.get("connectivity_error_trace")
    found = scan["scan_result"]
    accepted = {
        protocol: sorted(
            s["cipher_suite"]["name"] for s in found[f"{protocol}_cipher_suites"]["result"]["accepted_cipher_suites"]
        )
        for protocol in (*REFUSED_PROTOCOLS, "tls_1_2", "tls_1_3")
    }
    openssl_names = {
        s["cipher_suite"]["openssl_name"] for s in found["tls_1_2_cipher_suites"]["result"]["accepted_cipher_suites"]
    }
    hsts = found["http_headers"]["result"]["strict_transport_security_header"]
    return accepted, openssl_names, hsts


@pytest.mark.parametrize("case", TLS_CASES, ids=[case.id for case in TLS_CASES])
def test_https_by_the_readme_with_a_local_acme_server(case, hosts, package_mirror, timing):
    """certbot gets the certificate through the generated port-80 site by the README's steps; the HTTPS site serves
    the app; HTTP redirects with 308; a forced renewal reloads without a failed request; sslyze grades it clean."""
    sslyze_command()
    deployment = TlsDeployment(case, hosts, package_mirror, WORK_ROOT / case.slug, timing)
    start = time.monotonic()
    with deployment.reporting():
        deployment.deploy()
        first = wait_for(lambda: deployment.https_client().get(deployment.url("health")).status == 200, 30, 0.2)
        assert first, "the HTTPS site does not answer 200 after the README's steps"
        to_first_200 = time.monotonic() - start
        deployment.checked.append(f"fresh bake to the first HTTPS 200: {to_first_200:.1f} s")
        with deployment.step("checks"):
            deployment.check_https()
            deployment.check_redirect()
            deployment.check_unknown_name()
        with deployment.step("renewal"):
            deployment.check_renewal()
        with deployment.step("sslyze"):
            accepted, openssl_names, hsts = grade(deployment)
        findings = {"accepted": accepted, "hsts": hsts, "fresh bake to first HTTPS 200 (s)": round(to_first_200, 1)}
        (deployment.work / "tls-findings.json").write_text(json.dumps(findings, indent=2))
        for protocol in REFUSED_PROTOCOLS:
            assert accepted[protocol] == [], f"{protocol} accepted: {accepted[protocol]}"
        assert accepted["tls_1_2"] and accepted["tls_1_3"], accepted
        assert openssl_names <= INTERMEDIATE_TLS12, (
            f"outside the intermediate profile: {openssl_names - INTERMEDIATE_TLS12}"
        )
        assert hsts and hsts["max_age"] >= 63072000, hsts
        deployment.checked.append(
            f"sslyze: TLS 1.2 {len(accepted['tls_1_2'])} suites, TLS 1.3 {len(accepted['tls_1_3'])}, nothing older"
        )
    print(f"{case.id}: " + "; ".join(deployment.checked))
    print(f"sslyze {case.id}: {json.dumps(accepted)} HSTS {hsts}")
