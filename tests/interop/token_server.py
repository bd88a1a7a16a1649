"""A token server after the distribution token spec, for tests/registry_auth.rs.

token_server.py PORT KEY CERT ISSUER SERVICE USERS-JSON LOG

GET /token?service=&scope=... with Basic credentials (or none), and POST /token with an OAuth2
form (grant_type=password, or grant_type=refresh_token with a refresh token of USERS-JSON's
"refresh_tokens"). Known users get the actions they ask for on repositories under `test/`;
anonymous callers get a token with no access at all (as a public registry does for a private
repository); a wrong password or refresh token is 401 with {"details": ...}. Tokens are ES256
JWTs whose header's x5c is CERT, the certificate the registry trusts (its rootcertbundle).

Every request is appended to LOG as one JSON line (method, user, grant, scopes, result), so a test
can count token requests and see what credentials reached the realm. USERS-JSON:
{"users": {"bob": "password"}, "refresh_tokens": {"token-text": "bob"}}.
"""
import base64
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

PORT, KEY_FILE, CERT_FILE, ISSUER, SERVICE, USERS, LOG = sys.argv[1:8]
CONFIG = json.loads(USERS)
PASSWORDS = CONFIG.get("users", {})
REFRESH = CONFIG.get("refresh_tokens", {})
with open(KEY_FILE, "rb") as f:
    KEY = serialization.load_pem_private_key(f.read(), None)
with open(CERT_FILE, "rb") as f:
    CERT = x509.load_pem_x509_certificate(f.read())
X5C = [base64.b64encode(CERT.public_bytes(serialization.Encoding.DER)).decode()]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(claims):
    header = {"typ": "JWT", "alg": "ES256", "x5c": X5C}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    der = KEY.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def record(entry):
    entry["time"] = time.time()
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


def access_for(user, scopes):
    """The access a token carries: what a known user asks for under test/, nothing otherwise."""
    access = []
    for scope in " ".join(scopes).split():
        parts = scope.split(":")
        if len(parts) < 3 or parts[0] != "repository" or user is None:
            continue
        name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
        if name.startswith("test/"):
            access.append({"type": "repository", "name": name,
                           "actions": [a for a in actions if a in ("pull", "push")]})
    return access


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def grant(self, method, grant, user, ok, scopes, service):
        entry = {"method": method, "grant": grant, "user": user, "scopes": scopes, "service": service}
        if not ok:
            record(dict(entry, result="refused"))
            return self.answer(401, {"details": "incorrect username or password"})
        now = int(time.time())
        access = access_for(user, scopes)
        token = sign_jwt({"iss": ISSUER, "sub": user or "", "aud": service, "exp": now + 300,
                          "nbf": now - 30, "iat": now, "jti": os.urandom(8).hex(), "access": access})
        record(dict(entry, result="token", access=access))
        self.answer(200, {"token": token, "expires_in": 300})

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/healthz":
            return self.answer(200, {})
        if url.path != "/token":
            return self.answer(404, {"details": "not found"})
        query = parse_qs(url.query)
        user, ok = None, True
        authorization = self.headers.get("Authorization", "")
        if authorization.lower().startswith("basic "):
            user, _, password = base64.b64decode(authorization[6:].strip()).decode().partition(":")
            ok = PASSWORDS.get(user) == password
        self.grant("GET", "basic" if user else "anonymous", user, ok, query.get("scope", []),
                   (query.get("service") or [""])[0])

    def do_POST(self):
        if urlparse(self.path).path != "/token":
            return self.answer(404, {"details": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        grant = (form.get("grant_type") or [""])[0]
        scopes = (form.get("scope") or [""])[0].split()
        service = (form.get("service") or [""])[0]
        if grant == "password":
            user = (form.get("username") or [None])[0]
            self.grant("POST", grant, user, PASSWORDS.get(user) == (form.get("password") or [""])[0],
                       scopes, service)
        elif grant == "refresh_token":
            user = REFRESH.get((form.get("refresh_token") or [""])[0])
            self.grant("POST", grant, user, user is not None, scopes, service)
        else:
            self.answer(400, {"error": "unsupported_grant_type"})


ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
