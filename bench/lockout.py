#!/usr/bin/env python3
"""The victim's logins under a targeted-lockout attack (issue 10).

An attacker on another address (127.0.0.2) makes 10 wrong attempts on the
victim's account, then keeps polling it every 0.2 s with wrong passwords.
The victim, on 127.0.0.1, logged in once before the attack and keeps the
cookies that login gave (a browser would); during the attack she logs in
LOGINS times, one every 3 s. Prints how many of her logins succeeded and
their latency, and what the attacker got.

    bench/lockout.py                       # target/release/tessera
    bench/lockout.py --bin OLD --bin NEW   # several binaries, one after another

Default settings of the binary (login_account_burst 10, 4 per minute).
Starts and stops everything it uses; loopback only.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

PASSWORD = "correct horse battery staple"
EMAIL = "victim@example.com"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def login(port, password, source="127.0.0.1", cookies=None):
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    headers = {"content-type": "application/json"}
    if cookies:
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = json.dumps({"email": EMAIL, "password": password})
    started = time.perf_counter()
    connection.request("POST", "/login", body, headers)
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    jar = dict(cookies or {})
    for header in response.headers.get_all("set-cookie") or []:
        name, _, rest = header.partition("=")
        jar[name] = rest.split(";", 1)[0]
    connection.close()
    return response.status, elapsed, jar


def run(binary, logins):
    data = Path(tempfile.mkdtemp())
    env = {**os.environ, "TESSERA_LOG": "warn,tessera::serve=info"}
    subprocess.run(
        [binary, "user", "add", EMAIL, "--password-stdin", "--data-dir", data],
        input=(PASSWORD + "\n").encode(), env=env, check=True, capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        status, _, jar = login(port, PASSWORD)
        assert status == 200, status
        jar = {k: v for k, v in jar.items() if k.endswith("-device")}
        attacker = {"attempts": 0, "429": 0}
        stop = threading.Event()

        def attack():
            for _ in range(10):
                login(port, "wrong guess", source="127.0.0.2")
                attacker["attempts"] += 1
            while not stop.is_set():
                status, _, _ = login(port, "wrong guess", source="127.0.0.2")
                attacker["attempts"] += 1
                attacker["429"] += status == 429
                stop.wait(0.2)

        thread = threading.Thread(target=attack)
        thread.start()
        time.sleep(3)
        results = []
        for _ in range(logins):
            status, elapsed, new = login(port, PASSWORD, cookies=jar)
            jar.update({k: v for k, v in new.items() if k.endswith("-device")})
            results.append((status, elapsed))
            time.sleep(3)
        stop.set()
        thread.join()
    finally:
        server.terminate()
        server.wait()
    ok = [elapsed for status, elapsed in results if status == 200]
    print(f"{binary}:")
    print(f"  victim: {len(ok)} of {logins} logins succeeded"
          + (f", latency median {statistics.median(ok) * 1000:.0f} ms,"
             f" max {max(ok) * 1000:.0f} ms" if ok else "")
          + f"; statuses {sorted({s for s, _ in results})}")
    print(f"  attacker: {attacker['attempts']} attempts, {attacker['429']} answered 429")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", action="append", default=[])
    parser.add_argument("--logins", type=int, default=15)
    args = parser.parse_args()
    for binary in args.bin or ["target/release/tessera"]:
        run(binary, args.logins)


if __name__ == "__main__":
    main()
