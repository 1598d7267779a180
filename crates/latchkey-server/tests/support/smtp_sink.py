"""A real SMTP server for the tests (aiosmtpd): it accepts every message and writes it,
as received, to <dir>/<n>.eml, with X-Sink-* lines first telling whether the session
used TLS and who authenticated. Optional STARTTLS and required AUTH.

usage: smtp_sink.py --port P --dir D [--cert C --key K] [--auth USER:PASSWORD]
Prints READY once it accepts connections.
"""

import argparse
import itertools
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        lines = [
            f"X-Sink-TLS: {'yes' if session.ssl else 'no'}",
            f"X-Sink-Auth: {session.auth_data.login.decode() if session.authenticated and session.auth_data else '-'}",
            f"X-Sink-Rcpt: {','.join(envelope.rcpt_tos)}",
        ]
        partial = os.path.join(self.directory, f".{n}.partial")
        with open(partial, "wb") as out:
            out.write(("\r\n".join(lines) + "\r\n").encode())
            out.write(envelope.original_content or envelope.content)
        os.rename(partial, os.path.join(self.directory, f"{n}.eml"))
        return "250 OK"


def authenticator(expected):
    user, password = expected.split(":", 1)

    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
            and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth")
    args = parser.parse_args()
    kwargs = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        kwargs.update(tls_context=context, require_starttls=True)
    if args.auth:
        kwargs.update(authenticator=authenticator(args.auth), auth_required=True, auth_require_tls=True)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
