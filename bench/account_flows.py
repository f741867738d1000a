#!/usr/bin/env python3
"""End-to-end latency of the account flows against a real SMTP sink.

Starts `tessera serve` (the binary given, SQLite in a fresh data directory,
`registration = open`, `require_verified_email = true`, mail through SMTP to
crates/tessera-axum/tests/support/smtp_sink.py on loopback) and times, N
times each:

  sign-up:  POST /signup -> the verification mail at the sink -> POST
            /email/verify -> POST /login (200)
  recovery: POST /password/forgot -> the reset mail at the sink -> POST
            /password/reset -> POST /login with the new password (200)

Prints median, p90 and max per flow, and how much of each was waiting for
the mail. Loopback only; stops by itself.

    bench/account_flows.py [--bin target/release/tessera] [--rounds 20]
"""

import argparse
import email
import email.policy
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SINK = os.path.join(ROOT, "crates/tessera-axum/tests/support/smtp_sink.py")
PASSWORD = "a long and fresh passphrase"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def post(base, path, body):
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def mail_token(sink_dir, to, seen, deadline_s=30):
    """The token of the first not yet seen message to `to`."""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        for name in sorted(os.listdir(sink_dir)):
            if not name.endswith(".eml") or name in seen:
                continue
            raw = open(os.path.join(sink_dir, name), "rb").read()
            message = email.message_from_bytes(raw, policy=email.policy.default)
            if to not in str(message["X-Sink-Rcpt-To"]):
                continue
            seen.add(name)
            text = message.get_body(preferencelist=("plain",)).get_content()
            match = re.search(r"token=([A-Za-z0-9_-]{43})", text)
            if match:
                return match.group(1)
        time.sleep(0.005)
    sys.exit(f"no mail to {to}")


def summary(name, totals, waits):
    totals = sorted(totals)
    p90 = totals[int(len(totals) * 0.9) - 1]
    print(
        f"{name:9} median {statistics.median(totals) * 1000:7.1f} ms  "
        f"p90 {p90 * 1000:7.1f} ms  max {totals[-1] * 1000:7.1f} ms  "
        f"(of which waiting for the mail: median {statistics.median(waits) * 1000:6.1f} ms)"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(ROOT, "target/release/tessera"))
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="tessera-flows-")
    sink_dir = os.path.join(work, "sink")
    os.makedirs(sink_dir)
    smtp_port, http_port = free_port(), free_port()
    sink = subprocess.Popen(
        [sys.executable, SINK, str(smtp_port), sink_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = dict(
        os.environ,
        TESSERA_REGISTRATION="open",
        TESSERA_REQUIRE_VERIFIED_EMAIL="true",
        TESSERA_MAIL="smtp",
        TESSERA_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        TESSERA_SMTP_INSECURE="true",
        TESSERA_PUBLIC_URL="https://auth.example.test",
        TESSERA_LOGIN_IP_BURST="100000",
        TESSERA_MAIL_ADDRESS_BURST="1000",
        TESSERA_LOG="warn",
    )
    server = subprocess.Popen(
        [args.bin, "serve", "--listen", f"127.0.0.1:{http_port}", "--data-dir", work],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(smtp_port)
        wait_port(http_port)
        base = f"http://127.0.0.1:{http_port}"
        seen = set()
        signup, signup_wait, recovery, recovery_wait = [], [], [], []
        for n in range(args.rounds):
            address = f"user{n}@example.com"
            start = time.perf_counter()
            assert post(base, "/signup", {"email": address, "password": PASSWORD}) == 202
            asked = time.perf_counter()
            token = mail_token(sink_dir, address, seen)
            mailed = time.perf_counter()
            assert post(base, "/email/verify", {"token": token}) == 200
            assert post(base, "/login", {"email": address, "password": PASSWORD}) == 200
            signup.append(time.perf_counter() - start)
            signup_wait.append(mailed - asked)

            start = time.perf_counter()
            assert post(base, "/password/forgot", {"email": address}) == 202
            asked = time.perf_counter()
            token = mail_token(sink_dir, address, seen)
            mailed = time.perf_counter()
            new = f"{PASSWORD} {n}"
            assert post(base, "/password/reset", {"token": token, "password": new}) == 200
            assert post(base, "/login", {"email": address, "password": new}) == 200
            recovery.append(time.perf_counter() - start)
            recovery_wait.append(mailed - asked)
        print(f"{args.rounds} rounds, {args.bin}")
        summary("sign-up", signup, signup_wait)
        summary("recovery", recovery, recovery_wait)
    finally:
        server.terminate()
        sink.terminate()
        server.wait(30)
        sink.wait(30)


if __name__ == "__main__":
    main()
