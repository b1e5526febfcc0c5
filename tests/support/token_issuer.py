#!/usr/bin/env python3
"""A test token issuer for the distribution registry's `auth.token` (the GHCR flow).

Usage: token_issuer.py DIR SERVICE ISSUER USERS_JSON
  USERS_JSON: {"user": {"password": "...", "actions": ["pull", "push"]}, ...}
Writes DIR/cert.pem (the registry's rootcertbundle), listens on 127.0.0.1 (a free port), prints
the port on the first line of stdout, and serves GET /token?service=..&scope=..: Basic creds are
checked (401 if wrong), each requested scope is granted the intersection of what was asked and
what the user may do, and the answer is {"token", "access_token", "expires_in"} with an RS256 JWT
whose x5c header holds the DER certificate.
"""
import base64, datetime, json, sys, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

out_dir, service, issuer, users = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
with open(f"{out_dir}/cert.pem", "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/token":
            self.send_error(404)
            return
        q = parse_qs(url.query)
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if name not in users or users[name]["password"] != password:
                self.send_response(401)
                self.end_headers()
                return
            user = name
        allowed = set(users[user]["actions"]) if user else set()
        access = []
        for scope in q.get("scope", []):
            typ, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a in allowed]
            access.append({"type": typ, "name": repo, "actions": granted})
        t = int(time.time())
        claims = {"iss": issuer, "sub": user or "", "aud": q.get("service", [service])[0], "exp": t + 300,
                  "nbf": t - 10, "iat": t, "jti": uuid.uuid4().hex, "access": access}
        token = jwt.encode(claims, pem_key, algorithm="RS256", headers={"x5c": x5c})
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
