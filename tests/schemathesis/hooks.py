"""schemathesis hooks for tests/schemathesis/run.py: the profile's credential.

The cookie and bearer profiles are admins, so that every route answers them.
A fuzzed admin request may then disable, rename, re-password or delete the
profile's own account (schemathesis reuses ids and addresses it saw in
answers), and a fuzzed logout ends the credential in use. So the credential
is fetched again after any 401 or 403 (schemathesis' `retry_on`), and if
logging in fails or gives no admin, the account is first put back with the `tessera` CLI on the
server's data directory (SQLite takes a second process).

run.py passes what it needs in the environment: TESSERA_ST_PROFILE (cookie
or bearer), TESSERA_ST_BASE (the server's URL), TESSERA_ST_EMAIL,
TESSERA_ST_PASSWORD, TESSERA_BIN and the server's TESSERA_* settings.
"""

from __future__ import annotations

import os
import subprocess

import requests
import schemathesis

PROFILE = os.environ.get("TESSERA_ST_PROFILE", "")
BASE = os.environ.get("TESSERA_ST_BASE", "")
EMAIL = os.environ.get("TESSERA_ST_EMAIL", "")
PASSWORD = os.environ.get("TESSERA_ST_PASSWORD", "")
COOKIE = "__Host-tessera"


def _cli(*args: str, password: bool = False) -> None:
    subprocess.run(
        [os.environ["TESSERA_BIN"], "user", *args],
        input=PASSWORD + "\n" if password else None,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def _heal() -> None:
    """The profile's account as run.py made it: there, enabled, admin, with
    its password (each step a no-op when nothing changed it)."""
    _cli("add", EMAIL, "--role", "admin", "--password-stdin", password=True)
    _cli("enable", EMAIL)
    _cli("set-role", EMAIL, "--role", "admin")
    _cli("passwd", EMAIL, "--password-stdin", password=True)


def _login() -> requests.Response:
    path = "/login" if PROFILE == "cookie" else "/token"
    return requests.post(BASE + path, json={"email": EMAIL, "password": PASSWORD}, timeout=30)


def _credential(response: requests.Response) -> str | None:
    """The credential of a login that checks out as an admin's."""
    if response.status_code != 200:
        return None
    if PROFILE == "cookie":
        credential = response.cookies.get(COOKIE)
        roles = response.json().get("user", {}).get("roles", [])
    else:
        credential = response.json().get("access_token")
        profile = requests.get(BASE + "/profile", headers={"Authorization": f"Bearer {credential}"}, timeout=30)
        roles = profile.json().get("user", {}).get("roles", []) if profile.status_code == 200 else []
    return credential if "admin" in roles else None


if PROFILE in ("cookie", "bearer"):

    # 403 too: a fuzzed role change leaves a working credential without
    # the admin role.
    @schemathesis.auth(retry_on=[401, 403])
    class ProfileCredential:
        def get(self, case, ctx):
            credential = _credential(_login())
            if credential is None:
                _heal()
                credential = _credential(_login())
            if credential is None:
                raise RuntimeError(f"the {PROFILE} profile cannot log in as {EMAIL}")
            return credential

        def set(self, case, data, ctx):
            if PROFILE == "cookie":
                case.cookies = {**(case.cookies or {}), COOKIE: data}
            else:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
