"""One login across subdomains: with cookie_domain the session cookie is
`__Secure-tessera; Domain=...`, sent to every subdomain over HTTPS.
Chromium resolves *.example.test to 127.0.0.1 (see conftest)."""

import pytest

from conftest import js_login

AUTH, APP = "auth.example.test", "app.example.test"


@pytest.fixture
def https_page(chromium):
    context = chromium.new_context(ignore_https_errors=True)
    yield context.new_page()
    context.close()


def login_then_profile_elsewhere(stack, page, **settings):
    tessera = stack.tessera(**settings)
    front = stack.tls_front(tessera, [AUTH, APP])
    page.goto(front.url(AUTH) + "/health")
    assert page.evaluate(js_login()) == 200
    cookies = page.context.cookies()
    page.goto(front.url(APP) + "/health")
    return cookies, page.evaluate("fetch('/profile').then(r => r.status)")


def test_with_a_cookie_domain_a_login_on_one_subdomain_holds_on_another(stack, https_page):
    cookies, status = login_then_profile_elsewhere(stack, https_page, cookie_domain="example.test")
    session = [c for c in cookies if c["name"] == "__Secure-tessera"]
    assert len(session) == 1, cookies
    assert session[0]["domain"] in (".example.test", "example.test")
    assert session[0]["secure"] and session[0]["httpOnly"]
    # The device cookie stays host-only whatever cookie_domain says.
    device = [c for c in cookies if c["name"] == "__Host-tessera-device"]
    assert [c["domain"] for c in device] == [AUTH], cookies
    assert status == 200


def test_without_one_the_host_only_cookie_stays_on_its_host(stack, https_page):
    cookies, status = login_then_profile_elsewhere(stack, https_page)
    assert sorted(c["name"] for c in cookies) == ["__Host-tessera", "__Host-tessera-device"]
    assert {c["domain"] for c in cookies} == {AUTH}
    assert status == 401
