"""The 'protected app' of the forward-auth test: answers with the identity
headers nginx passed on. Usage: echo_app.py PORT"""
import http.server
import json
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        body = json.dumps({k: self.headers.get(k) for k in ("X-Auth-User-Id", "X-Auth-Email", "X-Auth-Roles")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
