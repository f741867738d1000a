#!/usr/bin/env python3
"""schemathesis against a throwaway tessera, with three auth profiles.

Starts the binary (TESSERA_BIN, default target/debug/tessera) on a free port
with its own data directory, generous login and mail budgets (the run logs in
and asks for mail far more often than any person: a throttled answer is a
documented 429, but a throttled run tests nothing else), open registration
and mail to files. Then runs `schemathesis run` on the server's own
`/openapi.json`, once per profile:

- anonymous: no credential;
- cookie: a session cookie from `POST /login`, with the `Origin` a browser
  sends on a same-origin request (the CSRF check compares it with `Host`);
- bearer: an access token from `POST /token`.

The two credentials come from hooks.py: fetched by logging in, fetched
again after a 401 (a fuzzed logout ends the one in use), the account put
back first if a fuzzed admin request changed it.

Each profile runs every phase (examples, coverage, fuzzing, and the stateful
phase that follows the document's links: login → profile / sessions /
logout, token → refresh → revoke) with every check (`--checks all`: no 5xx,
no undocumented status, every body conforms to its schema, ...), bounded by
`--max-examples` per operation so that a run stays within a couple of
minutes. Exit status: non-zero if any profile found a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

PASSWORD = "schemathesis-profile-secret-42"
# The document's example credentials (`Credentials` in routes/login.rs): an
# account with them lets the examples and the stateful phase log in and
# follow the links from `POST /login` and `POST /token`.
EXAMPLE_USER = ("alice@example.com", "an example passphrase 42")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data_dir: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    generous = "1000000"
    env.update(
        {
            "TESSERA_LISTEN": f"127.0.0.1:{port}",
            "TESSERA_DATA_DIR": data_dir,
            "TESSERA_LOGIN_IP_BURST": generous,
            "TESSERA_LOGIN_IP_PER_MINUTE": generous,
            "TESSERA_LOGIN_ACCOUNT_BURST": generous,
            "TESSERA_LOGIN_ACCOUNT_PER_MINUTE": generous,
            "TESSERA_MAIL_ADDRESS_BURST": generous,
            "TESSERA_MAIL_ADDRESS_PER_MINUTE": generous,
            # Every request comes from 127.0.0.1, one client: its share of
            # the hashing pool would answer 503 `busy` to most of a burst.
            "TESSERA_HASH_QUEUE": "256",
            "TESSERA_HASH_PER_CLIENT": "256",
            "TESSERA_REGISTRATION": "open",
            "TESSERA_MAIL": "file",
            "RUST_LOG": env.get("RUST_LOG", "warn"),
        }
    )
    return env


def call(base: str, method: str, path: str, body: object | None = None, headers: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


def add_user(binary: str, env: dict[str, str], email: str, roles: list[str], password: str = PASSWORD) -> None:
    command = [binary, "user", "add", email, "--password-stdin"]
    for role in roles:
        command += ["--role", role]
    subprocess.run(command, input=password + "\n", text=True, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def wait_until_up(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"tessera exited with {server.returncode} before serving")
        try:
            status, _, _ = call(base, "GET", "/health")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("tessera did not come up within 30 s")


def schemathesis(base: str, profile: str, headers: list[str], args, report_dir: str, env: dict[str, str], binary: str) -> int:
    """One schemathesis run. The credentialed profiles are admins (every
    route answers them), so they skip the stateful phase: its inferred
    links (`GET /admin/v1/users` → `DELETE /admin/v1/users/{id}`) would
    delete or disable the profile's own account. The anonymous profile
    runs it, logging in with the document's example credentials."""
    command = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", os.path.join(HERE, "schemathesis.toml"),
        "run", f"{base}/openapi.json",
        "--checks", "all",
        "--max-examples", str(args.max_examples),
        "--workers", str(args.workers),
        "--seed", str(args.seed),
        "--generation-database", "none",
        "--request-timeout", "20",
        "--report", "junit",
        "--report-junit-path", os.path.join(report_dir, f"{profile}.xml"),
        "--no-color",
    ]
    if profile != "anonymous":
        command += ["--phases", "examples,coverage,fuzzing"]
    for header in headers:
        command += ["--header", header]
    command += args.extra
    # The profile's credential comes from hooks.py.
    env = dict(env)
    env.update(
        {
            "SCHEMATHESIS_HOOKS": "hooks",
            "PYTHONPATH": os.pathsep.join(filter(None, [HERE, env.get("PYTHONPATH")])),
            "TESSERA_BIN": binary,
            "TESSERA_ST_PROFILE": profile,
            "TESSERA_ST_BASE": base,
            "TESSERA_ST_EMAIL": f"{profile}-admin@example.com",
            "TESSERA_ST_PASSWORD": PASSWORD,
        }
    )
    print(f"==> schemathesis, profile {profile}", flush=True)
    return subprocess.run(command, cwd=report_dir, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15")))
    # One worker: CPython before 3.11.8 / 3.12.1 cannot run `ast.parse` in
    # two threads at once (hypothesis describes its filters with it), and
    # schemathesis reports that as an error.
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SCHEMATHESIS_SEED", "12")))
    parser.add_argument("--profiles", default="anonymous,cookie,bearer")
    parser.add_argument("extra", nargs="*", help="more schemathesis arguments (after --)")
    args = parser.parse_args()
    binary = os.path.abspath(os.environ.get("TESSERA_BIN", os.path.join(ROOT, "target/debug/tessera")))
    if shutil.which(binary) is None:
        sys.exit(f"no tessera binary at {binary} (cargo build -p tessera)")

    with tempfile.TemporaryDirectory(prefix="tessera-schemathesis-") as work:
        data_dir = os.path.join(work, "data")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = server_env(data_dir, port)
        # One user per profile: a fuzzed "log out everywhere" by one profile
        # does not end another's credential.
        for who in ("cookie", "bearer"):
            add_user(binary, env, f"{who}-admin@example.com", ["admin"])
        add_user(binary, env, EXAMPLE_USER[0], [], EXAMPLE_USER[1])
        log = open(os.path.join(work, "tessera.log"), "w")
        server = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(base, server)
            # The headers a browser adds to a same-origin request; the
            # CSRF check compares `Origin` with `Host`.
            browser = [f"Origin: {base}", "Sec-Fetch-Site: same-origin"]
            profiles = {"anonymous": [], "cookie": browser, "bearer": []}
            failed = []
            for profile in args.profiles.split(","):
                if schemathesis(base, profile, profiles[profile], args, work, env, binary) != 0:
                    failed.append(profile)
                if server.poll() is not None:
                    failed.append(f"server exited ({server.returncode})")
                    break
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
        server_log = open(os.path.join(work, "tessera.log")).read().splitlines()
        panics = [line for line in server_log if "panicked" in line]
        if panics:
            failed.append("server panicked")
            print("".join(panics[:20]), file=sys.stderr)
        if failed:
            print("--- the server's log, last lines:", file=sys.stderr)
            print("\n".join(server_log[-40:]), file=sys.stderr)
            print(f"schemathesis failed: {', '.join(failed)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
