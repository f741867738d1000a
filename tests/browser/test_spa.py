"""A single-page app on another origin (here: another port of the same
site) using tessera with `credentials: 'include'`: CORS for the origins in
allowed_origins, nothing for the others."""

SPA = """async () => {
    const out = {};
    const api = (path, init = {}) => fetch('%(api)s' + path, {credentials: 'include', ...init});
    out.login = (await api('/login', {
        method: 'POST', headers: {'content-type': 'application/json'},
        body: JSON.stringify({email: 'alice@example.com', password: 'correct horse battery staple'}),
    })).status;
    const profile = await api('/profile');
    out.profile = [profile.status, (await profile.json()).user.email];
    const patched = await api('/session', {
        method: 'PATCH', headers: {'content-type': 'application/json'},
        body: JSON.stringify({theme: 'dark'}),
    });
    out.patch = [patched.status, (await patched.json()).data];
    out.logout = (await api('/logout', {method: 'POST'})).status;
    const after = await api('/profile');
    out.after = [after.status, (await after.json()).error.code];
    return out;
}"""

BLOCKED = """async () => {
    try {
        await fetch('%(api)s/login', {
            method: 'POST', credentials: 'include', headers: {'content-type': 'application/json'},
            body: JSON.stringify({email: 'alice@example.com', password: 'correct horse battery staple'}),
        });
        return 'answered';
    } catch (e) {
        return 'blocked';
    }
}"""


def site(tmp_path, stack, name):
    directory = tmp_path / name
    directory.mkdir()
    (directory / "index.html").write_text("<!doctype html><title>%s</title>" % name)
    return stack.static_site(directory)


def test_a_spa_on_an_allowed_origin_logs_in_reads_patches_and_logs_out(stack, page, tmp_path):
    spa = site(tmp_path, stack, "spa")
    tessera = stack.tessera(allowed_origins=spa)
    page.goto(spa + "/index.html")
    assert page.evaluate(SPA % {"api": tessera.url}) == {
        "login": 200,
        "profile": [200, "alice@example.com"],
        "patch": [200, {"theme": "dark"}],
        "logout": 200,
        "after": [401, "unauthenticated"],
    }


def test_a_page_on_an_origin_not_allowed_is_blocked_by_the_browser(stack, page, tmp_path):
    spa = site(tmp_path, stack, "spa")
    other = site(tmp_path, stack, "other")
    tessera = stack.tessera(allowed_origins=spa)
    page.goto(other + "/index.html")
    assert page.evaluate(BLOCKED % {"api": tessera.url}) == "blocked"
    # Without any allowed origin, even the SPA is blocked.
    bare = stack.tessera()
    page.goto(spa + "/index.html")
    assert page.evaluate(BLOCKED % {"api": bare.url}) == "blocked"
