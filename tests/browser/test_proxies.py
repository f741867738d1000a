"""Log in, change state and log out the way a browser does, through each
shipped nginx configuration (forward auth in front of an app, and nodes
behind a balancer on a non-default port)."""

import pytest

from conftest import js_login

JOURNEY = """async () => {
    const status = [];
    const call = async (method, path) => {
        const r = await fetch(path, {method, credentials: 'include'});
        status.push([method, path, r.status]);
        return r;
    };
    status.push(['POST', '/login', await (%s)]);
    await call('GET', '%s');
    await call('POST', '%s');
    await call('POST', '/logout');
    await call('GET', '%s');
    return status;
}"""


def journey(page, url, protected):
    page.goto(url + "/health")
    return page.evaluate(JOURNEY % (js_login(), protected, protected, protected))


def test_forward_auth_a_browser_logs_in_posts_to_the_app_and_logs_out(stack, page):
    tessera = stack.tessera()
    nginx = stack.nginx("forward-auth.conf", TESSERA=[f"127.0.0.1:{tessera.port}"], APP=[stack.echo_app()])
    assert journey(page, nginx.url, "/reports") == [
        ["POST", "/login", 200],
        ["GET", "/reports", 200],
        ["POST", "/reports", 200],
        ["POST", "/logout", 200],
        ["GET", "/reports", 401],
    ]
    # The app was told who called.
    page.evaluate(js_login())
    seen = page.evaluate("fetch('/reports').then(r => r.json())")
    assert seen["X-Auth-Email"] == "alice@example.com"
    assert seen["X-Auth-Roles"] == "admin"


@pytest.mark.parametrize("config", ["round-robin.conf", "sticky.conf"])
def test_behind_a_balancer_on_another_port_a_browser_logs_in_and_out(stack, page, config):
    first = stack.tessera(trusted_proxies="127.0.0.1/32")
    second = stack.tessera(data=first.data, trusted_proxies="127.0.0.1/32")
    nginx = stack.nginx(config, NODE=[f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"])
    assert journey(page, nginx.url, "/session") == [
        ["POST", "/login", 200],
        ["GET", "/session", 200],
        ["POST", "/session", 405],
        ["POST", "/logout", 200],
        ["GET", "/session", 401],
    ]
