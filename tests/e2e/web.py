"""A small HTTP client with cookies and an HTML reader for the checks through the front server."""

import http.client
import json
import secrets
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.text = body.decode("utf-8", errors="replace")

    def header(self, name, default=""):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return f"<{self.status} {self.header('content-type')} {self.text[:300]!r}>"


class Client:
    """Requests to address:port with a fixed Host header; keeps cookies; never follows redirects."""

    def __init__(self, port, host, address="127.0.0.1"):
        self.port = port
        self.host = host
        self.address = address
        self.cookies = {}

    def request(self, method, path, body=None, headers=None, host=None):
        connection = http.client.HTTPConnection(self.address, self.port, timeout=30)
        all_headers = {"Host": host or self.host, "User-Agent": "flask-stack-e2e", "Connection": "close"}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        all_headers.update(headers or {})
        try:
            connection.request(method, path, body=body, headers=all_headers)
            raw = connection.getresponse()
            data = raw.read()
            headers = {}
            for key, value in raw.getheaders():
                headers.setdefault(key.lower(), value)
            for cookie in raw.headers.get_all("Set-Cookie") or []:
                name, _, rest = cookie.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            return Response(raw.status, headers, data)
        finally:
            connection.close()

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post_form(self, path, fields):
        return self.request(
            "POST", path, body=urlencode(fields), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )


class Page(HTMLParser):
    """Links, stylesheets and forms of an HTML page."""

    def __init__(self, text):
        super().__init__()
        self.urls = []  # every href/src/action
        self.links = []  # <a href>
        self.stylesheets = []
        self.forms = []
        self._form = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "src", "action"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "link" and "stylesheet" in (attrs.get("rel") or "").split():
            self.stylesheets.append(attrs.get("href"))
        elif tag == "form":
            self._form = {"action": attrs.get("action"), "method": (attrs.get("method") or "get").lower(), "fields": []}
            self.forms.append(self._form)
        elif tag in ("input", "textarea", "select") and self._form is not None and attrs.get("name"):
            self._form["fields"].append((tag, attrs.get("type", "text").lower(), attrs["name"], attrs.get("value")))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def fill(form, marker):
    """Values for every field of a form: hidden ones kept (CSRF token), text ones set to the marker."""
    values = {}
    for _tag, kind, name, value in form["fields"]:
        if kind in ("hidden",):
            values[name] = value or ""
        elif kind in ("submit", "button", "reset", "checkbox", "radio", "file"):
            continue
        elif kind == "number":
            values[name] = "7"
        elif kind == "email":
            values[name] = f"{marker}@example.com"
        else:
            values[name] = marker
    return values


def new_marker():
    return "e2e" + secrets.token_hex(6)


def local_path(url, base):
    """The path part of a same-site URL, relative URLs resolved against base."""
    parts = urlsplit(urljoin(base, url))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def json_body(response):
    try:
        return json.loads(response.text)
    except ValueError:
        return None
