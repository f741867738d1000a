"""The browser suite: Debian's Chromium driven by Playwright, against the
real `tessera` binary, the shipped proxy configurations and a small echo
app. A browser runs parallel requests, follows cookies and enforces CORS
and SameSite: what an HTTP client sending one request at a time hides.

Run by scripts/test after the Rust suite (it uses target/debug/tessera, or
$TESSERA_BIN). Every process is started on free ports in a temporary
directory and stopped when its test ends.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("TESSERA_BIN", ROOT / "target" / "debug" / "tessera"))
DEPLOY = ROOT / "deploy"
ECHO_APP = ROOT / "crates" / "tessera" / "tests" / "forward_auth" / "echo_app.py"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Processes:
    """Children in their own process groups, stopped at the end of a test."""

    def __init__(self):
        self.children = []

    def start(self, args, **kwargs):
        child = subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL, **kwargs)
        self.children.append(child)
        return child

    def stop_all(self):
        for child in reversed(self.children):
            try:
                os.killpg(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                child.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


class Tessera:
    """A `tessera serve` on a data directory of its own, with alice (admin)."""

    def __init__(self, processes, workdir, env=None, data=None):
        self.data = data or Path(tempfile.mkdtemp(dir=workdir))
        self.env = {**os.environ, **(env or {})}
        self.env.pop("RUST_LOG", None)
        self.env["TESSERA_LOG"] = "warn,tessera::serve=info"
        if data is None:
            self.add_user("alice@example.com", ["admin"])
        self.port = free_port()
        log = open(self.data / "serve.log", "wb")
        self.process = processes.start(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data],
            env=self.env, stdout=subprocess.DEVNULL, stderr=log,
        )
        wait_for_port(self.port, self.process)
        self.url = f"http://127.0.0.1:{self.port}"

    def cli(self, *args, stdin=""):
        out = subprocess.run(
            [BIN, *args, "--data-dir", self.data], input=stdin.encode(),
            env=self.env, capture_output=True, timeout=30,
        )
        assert out.returncode == 0, out.stderr.decode()
        return out.stdout.decode()

    def add_user(self, email, roles=()):
        args = ["user", "add", email, "--password-stdin"]
        for role in roles:
            args += ["--role", role]
        self.cli(*args, stdin=PASSWORD + "\n")


def rewrite(template, listen, upstreams):
    """A shipped nginx config with only its marker lines rewritten: the
    `# LISTEN` line gets `listen`, each `# NAME` upstream line one server
    line per address in upstreams[NAME]."""
    out, seen = [], set()
    for line in template.splitlines():
        marker = re.search(r"#\s*([A-Z]+)\s*$", line)
        name = marker.group(1) if marker and not line.lstrip().startswith("#") else None
        if name == "LISTEN":
            out.append(re.sub(r"listen\s+\S+;", f"listen 127.0.0.1:{listen};", line))
        elif name in upstreams:
            if name not in seen:
                seen.add(name)
                for address in upstreams[name]:
                    out.append(re.sub(r"server\s+[^\s;]+", f"server {address}", line, count=1))
        else:
            out.append(line)
    missing = set(upstreams) - seen
    assert not missing, f"the config has no {missing} markers"
    return "\n".join(out) + "\n"


class Nginx:
    def __init__(self, processes, workdir, config, upstreams):
        if shutil.which("nginx") is None:
            pytest.fail("nginx is not installed (scripts/test installs it)")
        self.prefix = Path(tempfile.mkdtemp(dir=workdir))
        (self.prefix / "tmp").mkdir()
        self.port = free_port()
        text = rewrite((DEPLOY / "nginx" / config).read_text(), self.port, upstreams)
        (self.prefix / "nginx.conf").write_text(text)
        self.process = processes.start(
            ["nginx", "-p", self.prefix, "-c", self.prefix / "nginx.conf", "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)
        self.url = f"http://127.0.0.1:{self.port}"


class TlsFront:
    def __init__(self, processes, workdir, tessera, names):
        self.prefix = Path(tempfile.mkdtemp(dir=workdir))
        (self.prefix / "tmp").mkdir()
        san = ",".join(f"DNS:{name}" for name in names)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={san}",
             "-keyout", self.prefix / "key.pem", "-out", self.prefix / "cert.pem"],
            check=True, capture_output=True, timeout=60,
        )
        self.port = free_port()
        config = f"""
pid nginx.pid;
error_log error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp;
    uwsgi_temp_path tmp; scgi_temp_path tmp;
    server {{
        listen 127.0.0.1:{self.port} ssl;
        server_name {' '.join(names)};
        ssl_certificate cert.pem;
        ssl_certificate_key key.pem;
        location / {{
            proxy_pass http://127.0.0.1:{tessera.port};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""
        (self.prefix / "nginx.conf").write_text(config)
        self.process = processes.start(
            ["nginx", "-p", self.prefix, "-c", self.prefix / "nginx.conf", "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def url(self, name):
        return f"https://{name}:{self.port}"


ADDRESS = re.compile(r"127\.0\.0\.1:\d+")


class ForwardAuthProxy:
    """One of the shipped forward-auth configurations, run as shipped but
    for its addresses: nginx and Traefik by their marker lines, Caddy by
    the environment placeholders its Caddyfile reads."""

    def __init__(self, processes, workdir, kind, tessera, app):
        self.kind = kind
        self.dir = Path(tempfile.mkdtemp(dir=workdir))
        self.port = free_port()
        listen = f"127.0.0.1:{self.port}"
        if kind == "nginx":
            nginx = Nginx(processes, workdir, "forward-auth.conf", {"TESSERA": [tessera], "APP": [app]})
            self.port, self.process = nginx.port, nginx.process
        elif kind == "caddy":
            shutil.copy(DEPLOY / "caddy" / "Caddyfile", self.dir / "Caddyfile")
            env = {**os.environ, "LISTEN_ADDR": listen, "AUTH_UPSTREAM": tessera, "APP_UPSTREAM": app,
                   "XDG_DATA_HOME": str(self.dir / "data"), "XDG_CONFIG_HOME": str(self.dir / "config")}
            self.process = processes.start(
                ["caddy", "run", "--adapter", "caddyfile", "--config", self.dir / "Caddyfile"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir,
            )
            wait_for_port(self.port, self.process)
        elif kind == "traefik":
            addresses = {"LISTEN": listen, "TESSERA": tessera, "APP": app}
            for name in ("traefik.yml", "dynamic.yml"):
                lines = []
                for line in (DEPLOY / "traefik" / name).read_text().splitlines():
                    marker = re.search(r"#\s*([A-Z]+)\s*$", line)
                    if marker and marker.group(1) in addresses and not line.lstrip().startswith("#"):
                        line = ADDRESS.sub(addresses[marker.group(1)], line)
                    lines.append(line)
                (self.dir / name).write_text("\n".join(lines) + "\n")
            self.process = processes.start(
                ["traefik", "--configFile=traefik.yml"], cwd=self.dir,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            wait_for_port(self.port, self.process)
            # The entry point listens before the file provider's routes exist.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://{listen}/login", timeout=1)
                except urllib.error.HTTPError as e:
                    if e.code != 404:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
        else:
            raise ValueError(kind)
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture
def stack(tmp_path):
    """Starts tessera nodes, nginx and the echo app; stops them all after."""
    processes = Processes()

    class Stack:
        def tessera(self, data=None, **env):
            """A node; `data`: the data directory of another node to share."""
            return Tessera(processes, tmp_path, {"TESSERA_" + k.upper(): str(v) for k, v in env.items()}, data)

        def nginx(self, config, **upstreams):
            return Nginx(processes, tmp_path, config, upstreams)

        def forward_auth(self, kind, tessera, app):
            """`kind` (nginx, caddy, traefik) in front of `tessera` and `app`."""
            return ForwardAuthProxy(processes, tmp_path, kind, f"127.0.0.1:{tessera.port}", app)

        def echo_app(self):
            port = free_port()
            child = processes.start(["python3", ECHO_APP, str(port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_port(port, child)
            return f"127.0.0.1:{port}"

        def tls_front(self, tessera, names):
            """nginx terminating TLS (a self-signed certificate for `names`)
            on one port for several host names, all proxied to `tessera`."""
            return TlsFront(processes, tmp_path, tessera, names)

        def static_site(self, directory):
            """Serves `directory` over HTTP on a port of its own (a SPA's origin)."""
            port = free_port()
            child = processes.start(
                ["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", directory],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            wait_for_port(port, child)
            return f"http://127.0.0.1:{port}"

    try:
        yield Stack()
    finally:
        processes.stop_all()


# *.example.test are the host names of the subdomain tests.
CHROMIUM_ARGS = ["--no-sandbox", "--host-resolver-rules=MAP *.example.test 127.0.0.1"]


@pytest.fixture(scope="session")
def playwright():
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def chromium(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def restartable_browser(playwright, tmp_path):
    """Opens Chromium on a profile directory of its own; each call closes the
    previous window and starts the browser again on the same profile, as a
    person quitting and reopening it."""
    profile = tmp_path / "profile"
    open_contexts = []

    def start():
        for context in open_contexts:
            context.close()
        open_contexts.clear()
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
        )
        open_contexts.append(context)
        return context.pages[0] if context.pages else context.new_page()

    yield start
    for context in open_contexts:
        context.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    yield context.new_page()
    context.close()


def js_login(email="alice@example.com", password=PASSWORD, base=""):
    """A page script that logs in with fetch, as a web app would."""
    return f"""fetch('{base}/login', {{
        method: 'POST', credentials: 'include',
        headers: {{'content-type': 'application/json'}},
        body: JSON.stringify({{email: '{email}', password: '{password}'}}),
    }}).then(r => r.status)"""
