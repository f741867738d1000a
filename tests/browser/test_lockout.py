"""Targeted lockout: an attacker on another address empties an account's
login budget and keeps polling it; the account's owner, in the browser she
logged in with before, still logs in at once (the device cookie), while a
browser that never logged in to the account is held off with the attacker.
Directly, through each shipped forward-auth proxy configuration, and behind
the shipped nginx balancer in front of two nodes."""

import http.client
import json

import pytest

from conftest import PASSWORD, js_login

PROXIES = ["nginx", "caddy", "traefik"]
BUDGET = {"login_account_burst": 3, "login_account_per_minute": 1}
PROXIED = {**BUDGET, "trusted_proxies": "127.0.0.1/32"}


def attack(port, password="wrong guess", source="127.0.0.2"):
    """One login attempt from another loopback address, as a script would."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    body = json.dumps({"email": "alice@example.com", "password": password})
    connection.request("POST", "/login", body, {"content-type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    return status


def owner_keeps_logging_in(chromium, url, port, attempts=3):
    """The owner logs in once; the attacker empties the budget (`attempts`
    wrong passwords: a balancer spreads them over its nodes); then the
    owner's browser logs in each round while the attacker polls, and a
    browser without her device cookie is refused."""
    owner = chromium.new_context()
    page = owner.new_page()
    page.goto(url + "/health")
    assert page.evaluate(js_login()) == 200
    assert "__Host-tessera-device" in [c["name"] for c in owner.cookies()]
    assert page.evaluate("fetch('/logout', {method: 'POST'}).then(r => r.status)") == 200

    statuses = [attack(port) for _ in range(attempts)]
    assert statuses.count(401) >= 3, statuses
    assert [attack(port) for _ in range(2)] == [429, 429]
    stranger = chromium.new_context()
    other = stranger.new_page()
    other.goto(url + "/health")
    assert [other.evaluate(js_login()) for _ in range(2)] == [429, 429]

    for _ in range(3):
        assert attack(port) == 429
        assert page.evaluate(js_login()) == 200
        assert page.evaluate("fetch('/profile').then(r => r.status)") == 200
    # Even with the right password, the attacker gets nowhere.
    assert attack(port, PASSWORD) == 429
    owner.close()
    stranger.close()


def test_the_owner_logs_in_from_her_browser_while_an_attacker_empties_her_budget(
    stack, chromium
):
    tessera = stack.tessera(**BUDGET)
    owner_keeps_logging_in(chromium, tessera.url, tessera.port)


@pytest.mark.parametrize("kind", PROXIES)
def test_through_each_shipped_proxy_the_owner_is_not_locked_out(stack, chromium, kind):
    tessera = stack.tessera(**PROXIED)
    proxy = stack.forward_auth(kind, tessera, stack.echo_app())
    owner_keeps_logging_in(chromium, proxy.url, proxy.port)


def test_behind_the_shipped_balancer_the_owner_is_not_locked_out(stack, chromium):
    # Two SQLite nodes keep their own buckets: the attack must empty both.
    first = stack.tessera(**PROXIED)
    second = stack.tessera(data=first.data, **PROXIED)
    nginx = stack.nginx(
        "round-robin.conf", NODE=[f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    )
    owner_keeps_logging_in(chromium, nginx.url, nginx.port, attempts=8)
