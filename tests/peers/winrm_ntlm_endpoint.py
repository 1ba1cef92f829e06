#!/usr/bin/env python3
"""A minimal WinRM HTTP endpoint built on pyspnego's acceptor, for interop tests.

It authenticates each connection with NTLM, SPNEGO or Kerberos as WinRM does (a handshake
under the `Negotiate` scheme, `Kerberos` for raw Kerberos, on empty POSTs; the last leg may
also come with the first sealed request, which is then answered with the final token), then
unseals each request with pyspnego's `unwrap_winrm` after checking its MS-WSMV 2.2.9.1 framing byte for byte, records it, and
answers with the next canned SOAP page sealed by pypsrp's WinRMEncryption. None of cimrun's
code is involved on this side. Kerberos is accepted by MIT's GSSAPI (python-gssapi) with the
service key in $KRB5_KTNAME.

Prints the listening port on the first line of stdout, then serves until --lifetime expires.
"""

import argparse
import base64
import os
import hashlib
import re
import socket
import ssl
import struct
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import spnego
from pypsrp.encryption import WinRMEncryption
from spnego.channel_bindings import GssChannelBindings

BOUNDARY = b"--Encrypted Boundary"


def sealed_protocol(protocol):
    """The protocol named in sealed bodies (MS-WSMV 2.2.9.1): raw Kerberos has its own."""
    return WinRMEncryption.KERBEROS if protocol == "kerberos" else WinRMEncryption.SPNEGO


def content_type(protocol):
    return 'multipart/encrypted;protocol="%s";boundary="Encrypted Boundary"' % sealed_protocol(protocol)


def seal(ctx, protocol, plaintext):
    # pypsrp's own framing code, so our parser meets a real client library's bytes.
    content_type, body = WinRMEncryption(ctx, sealed_protocol(protocol)).wrap_message(plaintext)
    assert content_type == "multipart/encrypted"
    return body


def unseal(ctx, protocol, body):
    # Strict on purpose: exactly the bytes Windows and pypsrp send, part by part.
    parts = [p for p in body.split(BOUNDARY + b"\r\n") if p]
    if len(parts) != 2:
        raise ValueError("expected 2 MIME parts, got %d" % len(parts))
    match = re.search(rb"Length=(\d+)", parts[0])
    if not match or sealed_protocol(protocol).encode() not in parts[0]:
        raise ValueError("bad header part: %r" % parts[0])
    payload = parts[1]
    if not payload.endswith(BOUNDARY + b"--\r\n"):
        raise ValueError("no closing boundary")
    payload = payload[: -len(BOUNDARY + b"--\r\n")]
    prefix = b"\tContent-Type: application/octet-stream\r\n"
    if not payload.startswith(prefix):
        raise ValueError("bad data part header")
    payload = payload[len(prefix):]
    sig_len = struct.unpack("<i", payload[:4])[0]
    plaintext = ctx.unwrap_winrm(payload[4 : 4 + sig_len], payload[4 + sig_len :])
    if len(plaintext) != int(match.group(1)):
        raise ValueError("length %d != declared %s" % (len(plaintext), match.group(1)))
    return plaintext


class State:
    def __init__(self, args):
        self.args = args
        self.pages = [open(p, "rb").read() for p in args.pages]
        self.lock = threading.Lock()
        self.served = 0
        self.bindings = None
        if args.tls_cert and args.bindings != "none":
            der = ssl.PEM_cert_to_DER_cert(open(args.tls_cert).read())
            if args.bindings == "wrong":
                der = der + b"\0"
            # RFC 5929 tls-server-end-point with SHA-256 (the certificate is signed with it).
            data = b"tls-server-end-point:" + hashlib.sha256(der).digest()
            self.bindings = GssChannelBindings(application_data=data)
        self.requests = 0
        self.connections = 0
        self.last_leg_bodies = 0
        self.ignored_bodies = 0
        self.failed_logons = 0
        self.mechanisms = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set in main

    def log_message(self, fmt, *args):
        sys.stderr.write("peer: " + (fmt % args) + "\n")

    def setup(self):
        super().setup()
        self.ctx = None
        with self.state.lock:
            self.state.connections += 1
            sys.stderr.write("peer: connection %d\n" % self.state.connections)

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        auth = self.headers.get("Authorization")
        protocol = self.state.args.protocol
        scheme_name = "Kerberos" if protocol == "kerberos" else "Negotiate"
        # The final handshake token, when the request that finished the handshake has a body.
        final = []
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != scheme_name.lower():
                return self.reply(401, headers=[("WWW-Authenticate", scheme_name)])
            if self.ctx is None or self.ctx.complete:
                self.ctx = spnego.server(protocol=protocol, channel_bindings=self.state.bindings)
            try:
                out = self.ctx.step(base64.b64decode(token))
            except Exception as e:  # wrong password, bad token: what Windows does is a bare 401
                sys.stderr.write("peer: authentication failed: %s\n" % e)
                self.ctx = None
                with self.state.lock:
                    self.state.failed_logons += 1
                    self.write_counts()
                return self.reply(401, headers=[("WWW-Authenticate", scheme_name)])
            headers = [("WWW-Authenticate", scheme_name + " " + base64.b64encode(out).decode())] if out else []
            if self.ctx.complete and self.state.args.record_dir:
                # The mechanism each handshake settled on (SPNEGO may pick NTLM or Kerberos).
                with self.state.lock:
                    self.state.mechanisms.append(self.ctx.negotiated_protocol)
                    with open(os.path.join(self.state.args.record_dir, "mechanisms"), "w") as f:
                        f.write("\n".join(self.state.mechanisms))
            if not self.ctx.complete:
                return self.reply(401, headers=headers)
            if not body or self.state.args.ignore_last_leg_body:
                # --ignore-last-leg-body: a server that takes the handshake and drops the body.
                with self.state.lock:
                    self.state.ignored_bodies += 1 if body else 0
                    self.write_counts()
                return self.reply(200, headers=headers)
            with self.state.lock:
                self.state.last_leg_bodies += 1
                self.write_counts()
            final = headers
        if self.ctx is None or not self.ctx.complete:
            return self.reply(401, headers=[("WWW-Authenticate", scheme_name)])
        tls = self.state.args.tls_cert is not None
        if tls:
            # Over HTTPS WinRM does not seal messages: TLS protects them.
            if not self.headers.get("Content-Type", "").startswith("application/soap+xml"):
                return self.reply(400, b"expected a plain SOAP body over HTTPS")
            plaintext = body
        elif not self.headers.get("Content-Type", "").startswith("multipart/encrypted"):
            return self.reply(400, b"message encryption required")
        else:
            try:
                plaintext = unseal(self.ctx, protocol, body)
            except Exception as e:
                sys.stderr.write("peer: request failed to unseal: %s\n" % e)
                return self.reply(500, b"bad sealed request")
        with self.state.lock:
            received = self.state.requests
            self.state.requests += 1
            drop = received == self.state.args.drop_request
            index = self.state.served
            if not drop:
                self.state.served += 1
        if drop:
            # The connection breaks under the request: no reply at all.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.state.args.record_dir:
            with open(os.path.join(self.state.args.record_dir, "request_%03d.xml" % received), "wb") as f:
                f.write(plaintext)
        if index >= len(self.state.pages):
            return self.reply(500, b"no more pages")
        page = self.state.pages[index]
        if self.state.args.relate:
            # Answer this request, not the one recorded: RelatesTo names its MessageID.
            message_id = re.search(rb"<(?:\w+:)?MessageID[^>]*>\s*([^<\s]+)\s*<", plaintext)
            if message_id:
                page = re.sub(rb"(<(?:\w+:)?RelatesTo[^>]*>)[^<]*(<)", lambda m: m.group(1) + message_id.group(1) + m.group(2), page, count=1)
        if tls:
            return self.reply(200, page, headers=final + [("Content-Type", "application/soap+xml;charset=UTF-8")])
        sealed = seal(self.ctx, protocol, page)
        if self.state.args.tamper_reply == index:
            # Flip one bit inside the sealed data, after the 16-byte signature.
            start = sealed.index(b"octet-stream\r\n") + len(b"octet-stream\r\n") + 4 + 16
            sealed = sealed[:start] + bytes([sealed[start] ^ 0x01]) + sealed[start + 1 :]
        status = 500 if index == self.state.args.fault_reply else 200
        self.reply(status, sealed, headers=final + [("Content-Type", content_type(protocol))])

    def write_counts(self):
        """How handshakes ended, for the tests: the last leg with a body taken or dropped, and
        the failed logons. Called with the state's lock held."""
        if self.state.args.record_dir:
            with open(os.path.join(self.state.args.record_dir, "handshakes"), "w") as f:
                f.write("bodies=%d ignored=%d failed=%d connections=%d" % (
                    self.state.last_leg_bodies, self.state.ignored_bodies, self.state.failed_logons,
                    self.state.connections))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", required=True, help="DOMAIN\\user or user")
    parser.add_argument("--password", required=True)
    parser.add_argument("--protocol", default="ntlm", choices=["ntlm", "negotiate", "kerberos"])
    parser.add_argument("--lifetime", type=float, default=60.0, help="seconds before exiting")
    parser.add_argument("--record-dir", help="write each unsealed request here")
    parser.add_argument("--relate", action="store_true", help="rewrite each page's RelatesTo to the request's MessageID")
    parser.add_argument("--fault-reply", type=int, default=-1, help="0-based reply sent as HTTP 500 (a SOAP fault)")
    parser.add_argument("--tamper-reply", type=int, default=-1, help="0-based reply to corrupt")
    parser.add_argument("--drop-request", type=int, default=-1, help="0-based request to drop the connection on")
    parser.add_argument("--ignore-last-leg-body", action="store_true",
                        help="answer a request that finishes the handshake with an empty 200, dropping its body")
    parser.add_argument("--tls-cert", help="PEM certificate: serve HTTPS with it")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-ciphers", help="OpenSSL cipher list; also limits TLS to 1.2")
    parser.add_argument("--bindings", default="none", choices=["none", "right", "wrong"],
                        help="over HTTPS, require tls-server-end-point channel bindings (wrong: of another certificate)")
    parser.add_argument("pages", nargs="+", help="SOAP pages answered in order")
    args = parser.parse_args()

    domain, _, user = args.user.rpartition("\\")
    user_file = tempfile.NamedTemporaryFile("w", suffix=".ntlm", delete=False)
    user_file.write("%s:%s:%s\n" % (domain, user, args.password))
    user_file.close()
    os.environ["NTLM_USER_FILE"] = user_file.name

    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_ciphers:
            tls.maximum_version = ssl.TLSVersion.TLSv1_2
            tls.set_ciphers(args.tls_ciphers)
        server.socket = tls.wrap_socket(server.socket, server_side=True)

    def stop():
        os.unlink(user_file.name)
        os._exit(0)

    timer = threading.Timer(args.lifetime, stop)
    timer.daemon = True
    timer.start()
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        stop()


if __name__ == "__main__":
    main()
