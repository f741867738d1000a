#!/usr/bin/env python3
"""Stalled clients against a tessera binary (issue 10): what they cost, how
long they live, and how long SIGTERM takes while they hang on.

    cargo build --release -p tessera
    python3 bench/stalled.py                              # this tree's release binary
    python3 bench/stalled.py --bin /path/to/old/tessera   # another binary

Three measurements, each on a fresh server at its default settings:

  memory   RSS of the server per stalled connection: N sockets (from 50
           loopback source addresses, so no per-client cap applies) that
           sent part of a request head, (RSS after - RSS before) / N, taken
           before any of them times out; and how many the server still
           holds open when they are read.
  drop     seconds until the server closes each kind of stalled connection
           (all at once, each on its own socket), capped at --max-wait.
  sigterm  seconds from SIGTERM to exit with stalled clients connected
           (partial heads and bodies stalled mid-way), capped at --max-wait.

Only loopback addresses are used; every wait is bounded. Prints a table and
writes the figures as JSON (--json).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

EXTRA_ENV = {}
LOGIN_BODY = b'{"email": "nobody@example.com", "password": "not a real password"}'


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    """`tessera serve` on a free loopback port with its own data directory."""

    def __init__(self, binary, env=None):
        self.data = tempfile.TemporaryDirectory(prefix="tessera-stalled-")
        environment = dict(os.environ)
        environment.pop("RUST_LOG", None)
        environment["TESSERA_LOG"] = "info"
        environment.update(EXTRA_ENV)
        environment.update(env or {})
        self.process = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data.name],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log = []
        found = threading.Event()

        def read_log():
            for line in self.process.stderr:
                self.log.append(line.rstrip())
                if "listening on http://" in line and not found.is_set():
                    self.address = line.split("listening on http://")[1].split()[0]
                    found.set()

        threading.Thread(target=read_log, daemon=True).start()
        if not found.wait(30):
            self.process.kill()
            raise RuntimeError("server did not start:\n" + "\n".join(self.log))
        host, port = self.address.rsplit(":", 1)
        self.addr = (host, int(port))

    def rss_kib(self):
        return rss_kib(self.process.pid)

    def terminate(self, max_wait):
        """Seconds from SIGTERM to exit, or None after `max_wait` (then SIGKILL)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=max_wait)
            return time.monotonic() - started
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.data.cleanup()


def connect(addr, source=None, rcvbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        sock.bind((source, 0))
    sock.connect(addr)
    return sock


def sources(count):
    return [f"127.0.{1 + i // 250}.{2 + i % 250}" for i in range(count)]


def open_sockets(server):
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def wait_closed(sock, max_wait):
    """Seconds until the peer closes `sock` (EOF or reset), or None."""
    started = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - started < max_wait:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def measure_memory(binary, count):
    server = Server(binary)
    try:
        time.sleep(1)
        before = server.rss_kib()
        fds_before = open_sockets(server)
        socks = []
        addresses = sources(50)
        started = time.monotonic()
        for i in range(count):
            sock = connect(server.addr, addresses[i % len(addresses)])
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: tessera\r\nUser-Agent: stalled\r\n")
            socks.append(sock)
        time.sleep(2)
        after = server.rss_kib()
        held = open_sockets(server) - fds_before
        elapsed = time.monotonic() - started
        for sock in socks:
            sock.close()
        return {
            "stalled": count,
            "held_by_server": held,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "bytes_per_connection": round((after - before) * 1024 / max(held, 1)),
            "measured_after_s": round(elapsed, 1),
        }
    finally:
        server.stop()


def trickle(sock, body, every, stop):
    for byte in body:
        if stop.wait(every):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def measure_drop(binary, max_wait):
    server = Server(binary)
    results = {}
    stop = threading.Event()
    try:
        kinds = {}

        def silent():
            return connect(server.addr, "127.0.0.2")

        def partial_head():
            sock = connect(server.addr, "127.0.0.3")
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: tes")
            return sock

        def idle_keep_alive():
            sock = connect(server.addr, "127.0.0.6")
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: tessera\r\n\r\n")
            sock.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            return sock

        def trickled_login():
            sock = connect(server.addr, "127.0.0.7")
            body = LOGIN_BODY * 4
            sock.sendall(
                b"POST /login HTTP/1.1\r\nHost: tessera\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            threading.Thread(target=trickle, args=(sock, body, 5.0, stop), daemon=True).start()
            return sock

        def never_reads():
            sock = connect(server.addr, "127.0.0.8", rcvbuf=4096)
            pipelined = b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n" * 60000

            def send():
                try:
                    sock.sendall(pipelined)
                except OSError:
                    pass

            threading.Thread(target=send, daemon=True).start()
            return sock

        for name, make in [
            ("silent socket", silent),
            ("partial request head", partial_head),
            ("idle keep-alive", idle_keep_alive),
            ("login body, 1 byte / 5 s", trickled_login),
            ("never reads (pipelined)", never_reads),
        ]:
            kinds[name] = make()

        def watch(name, sock):
            if name == "never reads (pipelined)":
                # Reading would unblock the server: look at the socket instead.
                started = time.monotonic()
                while time.monotonic() - started < max_wait:
                    state = tcp_state(server, sock)
                    if state is None:
                        results[name] = time.monotonic() - started
                        return
                    time.sleep(0.25)
                results[name] = None
                return
            results[name] = wait_closed(sock, max_wait)

        threads = [threading.Thread(target=watch, args=item) for item in kinds.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for sock in kinds.values():
            sock.close()
        return results
    finally:
        stop.set()
        server.stop()


def tcp_state(server, sock):
    """Whether the server still holds its end of `sock`: its local port as
    the server sees it, looked up in /proc/net/tcp (None once closed)."""
    host, port = sock.getsockname()
    wanted_remote = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if remote == wanted_remote and local.endswith(f":{server.addr[1]:04X}"):
                # 01 ESTABLISHED; anything else is on its way out.
                return state if state == "01" else None
    return None


def measure_sigterm(binary, stalled, max_wait):
    server = Server(binary)
    try:
        socks = []
        addresses = sources(10)
        for i in range(stalled):
            sock = connect(server.addr, addresses[i % len(addresses)])
            if i % 2:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: tes")
            else:
                sock.sendall(
                    b"POST /login HTTP/1.1\r\nHost: tessera\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(LOGIN_BODY)}\r\n\r\n".encode()
                    + LOGIN_BODY[:10]
                )
            socks.append(sock)
        time.sleep(1)
        took = server.terminate(max_wait)
        for sock in socks:
            sock.close()
        return {"stalled": stalled, "exit_s": took}
    finally:
        server.stop()


def seconds(value, max_wait):
    return f"{value:6.1f}" if value is not None else f">{max_wait:.0f} (still open)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default="target/release/tessera")
    parser.add_argument("--stalled", type=int, default=2000, help="sockets for the memory figure")
    parser.add_argument("--max-wait", type=float, default=60.0, help="seconds before giving up on a close or an exit")
    parser.add_argument("--only", choices=["memory", "drop", "sigterm"], action="append")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra server environment (e.g. TESSERA_HEADER_READ_TIMEOUT=2)")
    args = parser.parse_args()
    global EXTRA_ENV
    EXTRA_ENV = dict(item.split("=", 1) for item in args.env)
    wanted = args.only or ["memory", "drop", "sigterm"]
    figures = {"binary": args.bin}
    print(f"# {args.bin}  ({os.cpu_count()} cores)")
    if "memory" in wanted:
        memory = measure_memory(args.bin, args.stalled)
        figures["memory"] = memory
        print(
            f"memory   {memory['stalled']} stalled heads, {memory['held_by_server']} held: "
            f"RSS {memory['rss_before_kib']} -> {memory['rss_after_kib']} KiB, "
            f"{memory['bytes_per_connection']} bytes per connection"
        )
    if "drop" in wanted:
        drops = measure_drop(args.bin, args.max_wait)
        figures["drop_s"] = drops
        for name, value in drops.items():
            print(f"drop     {name:28} {seconds(value, args.max_wait)} s")
    if "sigterm" in wanted:
        sigterm = measure_sigterm(args.bin, 100, args.max_wait)
        figures["sigterm"] = sigterm
        print(f"sigterm  {sigterm['stalled']} stalled clients: exit after {seconds(sigterm['exit_s'], args.max_wait)} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
