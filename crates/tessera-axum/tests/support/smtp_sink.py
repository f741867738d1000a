#!/usr/bin/env python3
"""An SMTP sink for tessera's mail tests and the outbox benchmark.

Listens on 127.0.0.1:PORT (aiosmtpd) and writes every message it receives
to DIR as <n>.eml (through a temporary file, so a reader never sees half a
message), with the envelope in X-Sink-Mail-From / X-Sink-Rcpt-To headers,
and beside it <n>.json: the envelope, whether STARTTLS was used, and the
message as Python's email parser reads it (headers decoded; the text and
HTML parts decoded from their transfer encoding).

    smtp_sink.py PORT DIR [--cert CERT --key KEY]   # STARTTLS offered and required
    smtp_sink.py PORT DIR --raw                     # .eml only (benchmarks)
"""

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory, raw=False):
        self.directory = directory
        self.raw = raw
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            n = next(self.counter)
        head = (
            f"X-Sink-Mail-From: {envelope.mail_from}\r\n"
            f"X-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
            f"X-Sink-TLS: {'yes' if session.ssl else 'no'}\r\n"
        ).encode()
        final = os.path.join(self.directory, f"{n:06d}.eml")
        partial = os.path.join(self.directory, f".{n:06d}.tmp")
        with open(partial, "wb") as f:
            f.write(head + envelope.original_content)
        if self.raw:
            os.rename(partial, final)
            return "250 OK"
        message = email.message_from_bytes(
            envelope.original_content, policy=email.policy.default
        )
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_type()] = part.get_content()
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": bool(session.ssl),
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "content_type": message.get_content_type(),
            "auto_submitted": str(message["Auto-Submitted"]),
            "message_id": str(message["Message-ID"]),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        json_partial = os.path.join(self.directory, f".{n:06d}.json.tmp")
        with open(json_partial, "w") as f:
            json.dump(summary, f)
        os.rename(partial, final)
        os.rename(json_partial, os.path.join(self.directory, f"{n:06d}.json"))
        return "250 OK"


class TlsController(Controller):
    def __init__(self, handler, context, **kwargs):
        self.tls = context
        super().__init__(handler, **kwargs)

    def factory(self):
        return SMTP(
            self.handler,
            tls_context=self.tls,
            require_starttls=self.tls is not None,
            hostname="sink.test",
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("directory")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--raw", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.directory, exist_ok=True)
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    controller = TlsController(
        Sink(args.directory, args.raw), context, hostname="127.0.0.1", port=args.port
    )
    controller.start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
