"""The stacks the end-to-end tier deploys, each with its own slug and ports."""

from dataclasses import dataclass, field

from combinations import AXES, STACK, SUPPORTED_COMBINATIONS, context

BASE_PORT = 24100  # each case uses BASE_PORT + 10 * index (+1 for a test proxy)
SHORT = {
    "gunicorn": "gu",
    "uwsgi": "uw",
    "mod_wsgi": "mw",
    "nginx": "ng",
    "apache": "ap",
    "none": "no",
    "systemd": "sd",
    "supervisord": "sv",
    "debian": "d",
    "rhel": "r",
    "sqlite": "sl",
    "postgresql": "pg",
    "mysql": "my",
    "letsencrypt": "le",
    "own": "ow",
}


@dataclass
class Case:
    wsgi_server: str
    web_server: str
    process_manager: str
    os_family: str
    database: str
    url_prefix: str = "/"
    rootless: bool = False
    index: int = 0
    extra: dict = field(default_factory=dict)
    # Plain HTTP unless a case brings an ACME server: TLS ends in front of the site.
    tls: str = "none"

    @property
    def id(self):
        words = [
            f"wsgi:{self.wsgi_server}",
            f"web:{self.web_server}",
            f"pm:{self.process_manager}",
            f"os:{self.os_family}",
            f"db:{self.database}",
        ]
        if self.url_prefix != "/":
            words.append("prefix:" + self.url_prefix.strip("/"))
        if self.tls != "none":
            words.insert(2, f"tls:{self.tls}")
        if self.rootless:
            words.insert(0, "rootless")
        return "-".join(words)

    @property
    def slug(self):
        stack = "".join(
            SHORT[v] for v in (self.wsgi_server, self.web_server, self.process_manager, self.os_family, self.database)
        )
        return f"e2e{self.index:02d}_{stack}"

    @property
    def port(self):
        """The port the generated config listens on (front server, or the app itself with web_server=none)."""
        return BASE_PORT + 10 * self.index

    @property
    def proxy_port(self):
        """Port of the test's own proxy, playing the host's proxy when web_server=none."""
        return self.port + 1

    @property
    def rootless_user(self):
        return f"e2eu{self.index:02d}"

    @property
    def install_dir(self):
        if self.rootless:
            return f"/home/{self.rootless_user}/{self.slug}"
        return f"/opt/{self.slug}"

    @property
    def domain(self):
        return f"{self.slug.replace('_', '-')}.example.com"

    @property
    def project_name(self):
        return f"E2E Stack {self.index:02d}"

    @property
    def front_user(self):
        """The account the front server runs as."""
        return STACK["choices"]["web_server"][self.web_server][self.os_family]["user"]

    def rendered(self):
        """The answers and derived values (__socket, __env_file, ...) this case's bake is rendered with."""
        return context(**self.answers())

    def answers(self):
        """The cookiecutter answers of this case."""
        return {
            "project_name": self.project_name,
            "project_slug": self.slug,
            "domain_name": self.domain,
            "rootless": "yes" if self.rootless else "no",
            "wsgi_server": self.wsgi_server,
            "web_server": self.web_server,
            "tls": self.tls,
            "process_manager": self.process_manager,
            "os_family": self.os_family,
            "database": self.database,
            "url_prefix": self.url_prefix,
            "http_port": str(self.port),
            "install_dir": self.install_dir,
            "create_venv": "no",
            **self.extra,
        }


def _matrix():
    """Every wsgi x web x database the template accepts, on Debian.

    The process manager alternates so that each WSGI server meets both
    systemd and supervisord behind each front; some fronts get a URL prefix.
    """
    cases = []
    debian = [c for c in SUPPORTED_COMBINATIONS if c["os_family"] == "debian"]
    pairs = list(dict.fromkeys((c["wsgi_server"], c["web_server"]) for c in debian))
    prefixed = {
        ("gunicorn", "nginx", "mysql"),
        ("gunicorn", "apache", "sqlite"),
        ("gunicorn", "none", "postgresql"),
        ("uwsgi", "nginx", "postgresql"),
        ("uwsgi", "apache", "mysql"),
        ("mod_wsgi", "apache", "mysql"),
    }
    for pair_index, (wsgi, web) in enumerate(pairs):
        pair = [c for c in debian if (c["wsgi_server"], c["web_server"]) == (wsgi, web)]
        managers = list(dict.fromkeys(c["process_manager"] for c in pair))  # mod_wsgi: systemd only
        for db_index, database in enumerate(AXES["database"]):
            manager = managers[(db_index + pair_index) % len(managers)]
            prefix = "/sub" if (wsgi, web, database) in prefixed else "/"
            cases.append(Case(wsgi, web, manager, "debian", database, url_prefix=prefix))
    return cases


def all_cases():
    """Five reference stacks first (numbered as in the comments), then the Debian matrix and RHEL's gunicorn."""
    cases = [
        Case("uwsgi", "nginx", "systemd", "rhel", "sqlite"),  # stack 1
        Case("uwsgi", "none", "supervisord", "debian", "sqlite", url_prefix="/sub-path", rootless=True),  # stack 2
        Case("mod_wsgi", "apache", "systemd", "rhel", "postgresql"),  # stack 4
        Case("uwsgi", "nginx", "systemd", "rhel", "mysql"),  # stack 5
        Case("gunicorn", "apache", "supervisord", "rhel", "postgresql", url_prefix="/sub"),
    ]
    cases += _matrix()  # stack 3 is wsgi:gunicorn-web:nginx-pm:systemd-os:debian-db:sqlite
    for index, case in enumerate(cases, start=1):
        case.index = index
    return cases


CASES = all_cases()
