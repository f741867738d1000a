"""The 'protected app' of the forward-auth tests: answers with the identity
headers the proxy passed on, and the names of all the headers it got.
With `app-cookie` in the query it sets a cookie of its own, which must
reach the browser beside tessera's. Usage: echo_app.py PORT"""
import http.server
import json
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        seen = {k: self.headers.get(k) for k in ("X-Auth-User-Id", "X-Auth-Email", "X-Auth-Roles", "X-Auth-Email-Verified")}
        seen["headers"] = sorted(k.lower() for k in self.headers.keys())
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if "app-cookie" in self.path.partition("?")[2]:
            self.send_header("Set-Cookie", "app=seen; Path=/; HttpOnly")
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
