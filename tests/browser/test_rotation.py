"""An admin changes a user's roles while the user's page is busy: the
page's parallel fetches with the pre-change cookie all succeed, the browser
takes the one fresh cookie they carry, and the new roles apply. Directly,
and through each shipped forward-auth proxy."""

import json
import urllib.request

import pytest

from conftest import PASSWORD, js_login

BUSY_PAGE = """async () => {
    const first = await Promise.all([...Array(6)].map(() => fetch('%(path)s').then(r => r.status)));
    const then = await fetch('%(path)s');
    const roles = %(roles)s;
    return {parallel: first, then: then.status, roles};
}"""


def admin_changes_roles(base, email, roles):
    """alice (admin) logs in with a plain HTTP client and sets `roles`."""
    login = urllib.request.Request(
        base + "/login", method="POST", headers={"content-type": "application/json"},
        data=json.dumps({"email": "alice@example.com", "password": PASSWORD}).encode(),
    )
    with urllib.request.urlopen(login) as answer:
        cookie = answer.headers["set-cookie"].split(";")[0]
    patch = urllib.request.Request(
        f"{base}/admin/users/{email}", method="PATCH",
        headers={"content-type": "application/json", "cookie": cookie},
        data=json.dumps({"roles": roles}).encode(),
    )
    with urllib.request.urlopen(patch) as answer:
        assert json.load(answer)["sessions_affected"] >= 1


def test_parallel_fetches_after_a_role_change_are_never_logged_out(stack, page):
    tessera = stack.tessera()
    tessera.add_user("bob@example.com", ["member"])
    page.goto(tessera.url + "/health")
    assert page.evaluate(js_login("bob@example.com")) == 200
    admin_changes_roles(tessera.url, "bob@example.com", ["member", "billing"])
    result = page.evaluate(BUSY_PAGE % {
        "path": "/profile",
        "roles": "(await (await fetch('/profile')).json()).user.roles",
    })
    assert result == {"parallel": [200] * 6, "then": 200, "roles": ["billing", "member"]}


@pytest.mark.parametrize("kind", ["nginx", "caddy", "traefik"])
def test_through_each_proxy_the_app_sees_the_new_role_and_nobody_is_logged_out(stack, page, kind):
    tessera = stack.tessera(trusted_proxies="127.0.0.1/32")
    tessera.add_user("bob@example.com", ["member"])
    proxy = stack.forward_auth(kind, tessera, stack.echo_app())
    page.goto(proxy.url + "/login")
    assert page.evaluate(js_login("bob@example.com")) == 200
    admin_changes_roles(tessera.url, "bob@example.com", ["member", "billing"])
    result = page.evaluate(BUSY_PAGE % {
        "path": "/reports",
        "roles": "(await (await fetch('/reports')).json())['X-Auth-Roles']",
    })
    assert result == {"parallel": [200] * 6, "then": 200, "roles": "billing,member"}
