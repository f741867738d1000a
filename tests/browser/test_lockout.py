"""Targeted lockout: an attacker on another address empties an account's
login budget and keeps polling it; the account's owner, in the browser she
logged in with before, still logs in at once (the device cookie), while a
browser that never logged in to the account is held off with the attacker."""

import http.client
import json

from conftest import PASSWORD, js_login


def attack(tessera, password="wrong guess", source="127.0.0.2"):
    """One login attempt from another loopback address, as a script would."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", tessera.port, timeout=10, source_address=(source, 0)
    )
    body = json.dumps({"email": "alice@example.com", "password": password})
    connection.request("POST", "/login", body, {"content-type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    return status


def test_the_owner_logs_in_from_her_browser_while_an_attacker_empties_her_budget(
    stack, chromium
):
    tessera = stack.tessera(login_account_burst=3, login_account_per_minute=1)
    owner = chromium.new_context()
    page = owner.new_page()
    page.goto(tessera.url + "/health")
    assert page.evaluate(js_login()) == 200
    assert page.evaluate("fetch('/logout', {method: 'POST'}).then(r => r.status)") == 200

    assert [attack(tessera) for _ in range(3)] == [401, 401, 401]
    assert attack(tessera) == 429
    # A browser that never logged in to alice shares the empty budget.
    stranger = chromium.new_context()
    other = stranger.new_page()
    other.goto(tessera.url + "/health")
    assert other.evaluate(js_login()) == 429

    for _ in range(3):
        assert attack(tessera) == 429
        assert page.evaluate(js_login()) == 200
        assert page.evaluate("fetch('/profile').then(r => r.status)") == 200
    # Even with the right password, the attacker gets nowhere.
    assert attack(tessera, PASSWORD) == 429
    owner.close()
    stranger.close()
