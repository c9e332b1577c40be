"""pebble (Let's Encrypt's test CA, Debian's package) inside a test host, where the site's domain resolves to the
host itself (/etc/hosts) and pebble's HTTP-01 validation goes to port 80, as Let's Encrypt's does. The host trusts
pebble's own listener certificate (so certbot may talk to it) and pebble's issuing root (as a server trusts Let's
Encrypt's), both in its system store."""

import json

ACME_DIRECTORY = "https://localhost:14000/dir"
PEBBLE_CONFIG = {
    "pebble": {
        "listenAddress": "127.0.0.1:14000",
        "managementListenAddress": "127.0.0.1:15000",
        "certificate": "/etc/pebble/listener.pem",
        "privateKey": "/etc/pebble/listener.key",
        "httpPort": 80,  # where Let's Encrypt sends the HTTP-01 challenge
        "tlsPort": 443,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }
}
PEBBLE_ROOT = "/usr/local/share/ca-certificates/pebble-root.crt"


def start_pebble(host, domain):
    """Start pebble on the host for `domain`; return its issuing root (PEM), for clients on this machine."""
    host.sh(
        f"echo '127.0.0.1 {domain}' >> /etc/hosts\n"
        "install -d -m 0700 /etc/pebble && cd /etc/pebble\n"
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost"
        " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout listener.key -out listener.pem 2>/dev/null\n"
        f"cat > pebble.json <<'EOF'\n{json.dumps(PEBBLE_CONFIG, indent=2)}\nEOF\n"
        "cp listener.pem /usr/local/share/ca-certificates/pebble-listener.crt\n"
        # No sleep before validating, no nonce rejected at random: the real CA does neither.
        "systemd-run --unit pebble --setenv PEBBLE_VA_NOSLEEP=1 --setenv PEBBLE_WFE_NONCEREJECT=0"
        " /usr/bin/pebble -config /etc/pebble/pebble.json\n"
        "for _ in $(seq 100); do"
        f" curl -sf --cacert listener.pem https://localhost:15000/roots/0 -o {PEBBLE_ROOT} && break; sleep 0.1;"
        " done\n"
        f"test -s {PEBBLE_ROOT}\n"
        "update-ca-certificates >/dev/null\n"
    )
    return host.read(PEBBLE_ROOT)
