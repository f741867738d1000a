"""Remember me: a login with "remember": false lasts until the browser is
closed; a remembered one survives a restart of the browser."""

import pytest

REMEMBER = """fetch('/login', {
    method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({email: 'alice@example.com', password: 'correct horse battery staple',
                          remember: %s}),
}).then(r => r.status)"""


@pytest.mark.parametrize("remember, after_restart", [("false", 401), ("true", 200)])
def test_a_browser_restart_ends_only_a_login_that_asked_not_to_be_remembered(
    stack, restartable_browser, remember, after_restart
):
    tessera = stack.tessera()
    page = restartable_browser()
    page.goto(tessera.url + "/health")
    assert page.evaluate(REMEMBER % remember) == 200
    assert page.evaluate("fetch('/profile').then(r => r.status)") == 200
    page = restartable_browser()
    page.goto(tessera.url + "/health")
    assert page.evaluate("fetch('/profile').then(r => r.status)") == after_restart
