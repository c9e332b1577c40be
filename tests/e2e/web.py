"""An HTML reader and form filler for the checks through the front server (helpers.Client sends the requests)."""

import json
import secrets
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit


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
