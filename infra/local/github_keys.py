#!/usr/bin/env python3
"""A local stand-in for GitHub's secret-scanning public keys, and its signer.

GitHub signs each secret-scanning report with ECDSA P-256 / SHA-256 and
publishes the public keys at
https://api.github.com/meta/public_keys/secret_scanning. Locally (make dev,
make test) the leaks function reads them from this stand-in instead
(KEYGATE_GITHUB_KEYS_URL), so a report signed here is accepted exactly as
GitHub's would be.

  github_keys.py serve --dir D --port-file F   # publish D's key (made once)
  github_keys.py sign --dir D < body.json      # the Github-Public-Key-Signature

The private key stays in D (mode 600) and signs local reports only.
"""

import argparse
import base64
import http.server
import json
import os
import sys
import threading

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_ID = "keygate-local"
PATH = "/meta/public_keys/secret_scanning"


def private_key(directory):
    path = os.path.join(directory, "github-signing-key.pem")
    if not os.path.exists(path):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def key_list(key):
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return json.dumps(
        {"public_keys": [{"key_identifier": KEY_ID, "key": public.decode(), "is_current": True}]}
    ).encode()


def serve(args):
    body = key_list(private_key(args.dir))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = 200 if self.path.split("?")[0] == PATH else 404
            payload = body if status == 200 else b'{"message":"Not Found"}'
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    with open(args.port_file, "w") as f:
        f.write(str(server.server_address[1]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


def sign(args):
    body = sys.stdin.buffer.read()
    signature = private_key(args.dir).sign(body, ec.ECDSA(hashes.SHA256()))
    print(base64.b64encode(signature).decode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--dir", required=True)
    s.add_argument("--port-file", required=True)
    s.add_argument("--port", type=int, default=0)
    g = sub.add_parser("sign")
    g.add_argument("--dir", required=True)
    args = parser.parse_args()
    {"serve": serve, "sign": sign}[args.command](args)


if __name__ == "__main__":
    main()
