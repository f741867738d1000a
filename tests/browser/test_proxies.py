"""Log in, change state and log out the way a browser does, through each
shipped proxy configuration: forward auth in front of an app (nginx, Caddy,
Traefik), and nodes behind an nginx balancer on a non-default port."""

import urllib.parse

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


PROXIES = ["nginx", "caddy", "traefik"]


@pytest.mark.parametrize("kind", PROXIES)
def test_forward_auth_a_browser_logs_in_posts_to_the_app_and_logs_out(stack, page, kind):
    tessera = stack.tessera(trusted_proxies="127.0.0.1/32")
    proxy = stack.forward_auth(kind, tessera, stack.echo_app())
    assert journey(page, proxy.url, "/reports") == [
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


LOGIN_PAGE = """<!doctype html><title>sign in</title>
<script>
async function signIn() {
    const rd = new URL(new URLSearchParams(location.search).get('rd'));
    const answer = await fetch(rd.origin + '/login', {
        method: 'POST', credentials: 'include', headers: {'content-type': 'application/json'},
        body: JSON.stringify({email: 'alice@example.com', password: 'correct horse battery staple'}),
    });
    if (answer.ok) location.href = rd.href;
    return answer.status;
}
</script>"""


@pytest.mark.parametrize("kind", PROXIES)
def test_a_page_load_is_sent_to_the_login_page_and_back(stack, page, kind, tmp_path):
    site = tmp_path / "login-site"
    site.mkdir()
    (site / "signin.html").write_text(LOGIN_PAGE)
    login_origin = stack.static_site(site)
    tessera = stack.tessera(
        trusted_proxies="127.0.0.1/32",
        login_url=login_origin + "/signin.html",
        allowed_origins=login_origin,
    )
    proxy = stack.forward_auth(kind, tessera, stack.echo_app())
    asked = proxy.url + "/reports/7?view=full,compact"
    page.goto(asked)
    assert page.url.startswith(login_origin + "/signin.html?rd="), page.url
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["rd"] == [asked]
    with page.expect_navigation(url=asked):
        assert page.evaluate("signIn()") == 200
    assert page.evaluate("JSON.parse(document.body.innerText)")["X-Auth-Email"] == "alice@example.com"
    # Logged out again, a script gets the 401: only page loads are redirected.
    assert page.evaluate("""async () => {
        await fetch('/logout', {method: 'POST'});
        return (await fetch('/reports')).status;
    }""") == 401


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
