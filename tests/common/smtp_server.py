#!/usr/bin/python3
"""A real SMTP server for the alert tests (aiosmtpd, Debian's python3-aiosmtpd).

usage: smtp_server.py CERT KEY USER PASSWORD OUT.jsonl

Listens on 127.0.0.1 (a free port, printed as "port N" on the first line of stdout), offers
STARTTLS with CERT/KEY and requires it (and AUTH after it), accepts only USER/PASSWORD, and
appends every message it receives to OUT.jsonl as one JSON object: mail_from, rcpt_tos, the
authenticated user, whether the session was under TLS, and the message text.
"""
import json
import signal
import socket
import ssl
import sys
import threading
import warnings

# aiosmtpd 1.4 warns about its own deprecated Session.login_data on every AUTH.
warnings.filterwarnings("ignore", category=DeprecationWarning)

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

cert, key, user, password, out = sys.argv[1:6]


class Recorder:
    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": session.authenticated and getattr(session, "auth_data", None) and session.auth_data.decode(),
            "tls": session.ssl is not None,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
controller = Controller(
    Recorder(),
    hostname="127.0.0.1",
    port=port,
    tls_context=ctx,
    require_starttls=True,
    auth_required=True,
    auth_require_tls=True,
    authenticator=authenticator,
)
controller.start()
print(f"port {port}", flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
done.wait()
controller.stop()
