# Loopback Authlib (Flask) authorization server plus a protected API, for the interop tests.
#
#   python3.11 -m venv .venv
#   .venv/bin/pip install --require-hashes --only-binary=:all: -r requirements.txt
#   .venv/bin/python server.py [--port 0] [--redirect-uri URL] [--access-token-ttl 60]
#                              [--tls-cert CERT.pem --tls-key KEY.pem]
#   env (defaults for the flags): PORT, REDIRECT_URI, ACCESS_TOKEN_TTL
#
# Binds 127.0.0.1 only; port 0 (the default) picks a free port. Once listening it prints exactly one
# JSON line on stdout (issuer, endpoint URLs, clients and their secrets, the user); logs go to stderr.
# Plain http unless --tls-cert/--tls-key are given (then https with that certificate, which must name
# 127.0.0.1). Exits on SIGTERM/SIGINT, and when stdin is a pipe (or socket) that closes, so a test
# that spawns it with a piped stdin never leaks it.
#
# Endpoints (all under the issuer URL):
#   GET  /authorize    login + consent form (username, password, Allow / Deny), posts back to itself
#   POST /authorize    checks the user, then redirects to the client with a code or access_denied
#   POST /token        password, client_credentials, authorization_code (PKCE S256 required),
#                      refresh_token (rotating: the used refresh token is revoked, reuse -> invalid_grant)
#   POST /revoke       RFC 7009 (revoking a refresh token also revokes its access token)
#   POST /introspect   RFC 7662 (a client may introspect only its own tokens)
#   GET  /api/me       protected API: 200 {ok, client_id, sub, scope} for an active bearer token,
#                      else 401 with WWW-Authenticate: Bearer error="invalid_token"
#   GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
#
# Clients (token_endpoint_auth_method is enforced: a client must authenticate the way it is registered):
#   cc-basic    client_secret_basic  client_credentials, password, refresh_token
#   cc-post     client_secret_post   client_credentials, password, refresh_token
#   web-client  client_secret_basic  authorization_code, refresh_token (redirect URI: --redirect-uri)
#   public-web  none (public)        authorization_code, refresh_token (redirect URI: --redirect-uri)
# The cc-* secret contains characters that need encoding in HTTP Basic (RFC 6749 §2.3.1).
# Note: Authlib decodes Basic credentials with urllib.parse.unquote (not unquote_plus), so a client that
# form-urlencodes a space as '+' is rejected; '%20' works, and so does the raw secret here (it has no
# valid %XX sequence).
# User: alice / wonderland. Scopes: read write (anything else -> invalid_scope).
import argparse
import html
import json
import os
import secrets
import signal
import stat
import threading
import time

parser = argparse.ArgumentParser(description="Loopback Authlib authorization server for interop tests")
parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
parser.add_argument(
    "--redirect-uri", default=os.environ.get("REDIRECT_URI", "http://127.0.0.1:8765/callback")
)
parser.add_argument(
    "--access-token-ttl", type=int, default=int(os.environ.get("ACCESS_TOKEN_TTL", "60"))
)
parser.add_argument("--tls-cert")
parser.add_argument("--tls-key")
args = parser.parse_args()
if bool(args.tls_cert) != bool(args.tls_key):
    parser.error("--tls-cert and --tls-key go together")
TLS = bool(args.tls_cert)
if not TLS:
    # Authlib refuses plain http unless told otherwise (loopback only, tests only).
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

from authlib.integrations.flask_oauth2 import AuthorizationServer  # noqa: E402
from authlib.integrations.flask_oauth2 import ResourceProtector  # noqa: E402
from authlib.oauth2 import OAuth2Error  # noqa: E402
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants  # noqa: E402
from authlib.oauth2.rfc6749.errors import InvalidRequestError  # noqa: E402
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list  # noqa: E402
from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError  # noqa: E402
from authlib.oauth2.rfc7009 import RevocationEndpoint  # noqa: E402
from authlib.oauth2.rfc7636 import CodeChallenge  # noqa: E402
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # noqa: E402
from authlib.integrations.flask_oauth2 import current_token  # noqa: E402
from flask import Flask, Response, jsonify, request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

HOST = "127.0.0.1"
SCOPES = ["read", "write"]
REFRESH_TOKEN_TTL = 24 * 3600
CODE_TTL = 60
SPECIAL_SECRET = "s3cr:t/+&%= ~"
USERS = {"alice": "wonderland"}

# ---------------------------------------------------------------- in-memory store (one lock)
LOCK = threading.RLock()


class Client(ClientMixin):
    def __init__(self, client_id, secret, auth_method, grant_types, redirect_uris=()):
        self.client_id = client_id
        self.client_secret = secret
        self.token_endpoint_auth_method = auth_method
        self.grant_types = list(grant_types)
        self.redirect_uris = list(redirect_uris)
        self.scope = " ".join(SCOPES)

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope):
        allowed = set(scope_to_list(self.scope))
        if not scope:
            return self.scope  # RFC 6749 §3.3: no scope requested -> the client's default scope
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris  # exact string match

    def check_client_secret(self, client_secret):
        return self.client_secret is not None and secrets.compare_digest(
            self.client_secret.encode(), client_secret.encode()
        )

    def check_endpoint_auth_method(self, method, endpoint):
        # Strict, like many real servers: the registered method on every endpoint.
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type):
        return grant_type in self.grant_types


class Token(TokenMixin):
    def __init__(self, client_id, user, token):
        self.client_id = client_id
        self.user = user  # username or None
        self.access_token = token["access_token"]
        self.refresh_token = token.get("refresh_token")
        self.scope = token.get("scope", "")
        self.expires_in = int(token.get("expires_in", 0))
        self.issued_at = time.time()
        self.access_revoked = False
        self.refresh_revoked = False

    # TokenMixin
    def check_client(self, client):
        return self.client_id == client.get_client_id()

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def get_expires_at(self):
        return self.issued_at + self.expires_in

    def is_expired(self):
        return time.time() >= self.get_expires_at()

    def is_revoked(self):
        return self.access_revoked

    def get_user(self):
        return self.user

    def get_client(self):
        return CLIENTS[self.client_id]

    def refresh_active(self):
        return (
            self.refresh_token is not None
            and not self.refresh_revoked
            and time.time() < self.issued_at + REFRESH_TOKEN_TTL
        )


class AuthorizationCode:
    def __init__(self, code, client_id, redirect_uri, scope, user, challenge, method):
        self.code = code
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.user = user
        self.code_challenge = challenge
        self.code_challenge_method = method
        self.expires_at = time.time() + CODE_TTL

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


CLIENTS = {
    c.client_id: c
    for c in [
        Client("cc-basic", SPECIAL_SECRET, "client_secret_basic",
               ["client_credentials", "password", "refresh_token"]),
        Client("cc-post", SPECIAL_SECRET, "client_secret_post",
               ["client_credentials", "password", "refresh_token"]),
        Client("web-client", "web-secret-1", "client_secret_basic",
               ["authorization_code", "refresh_token"], [args.redirect_uri]),
        Client("public-web", None, "none",
               ["authorization_code", "refresh_token"], [args.redirect_uri]),
    ]
}
ACCESS_TOKENS = {}  # access token string -> Token
REFRESH_TOKENS = {}  # refresh token string -> Token
CODES = {}  # code -> AuthorizationCode


def query_client(client_id):
    return CLIENTS.get(client_id)


def save_token(token, req):
    with LOCK:
        t = Token(req.client.get_client_id(), req.user, token)
        ACCESS_TOKENS[t.access_token] = t
        if t.refresh_token:
            REFRESH_TOKENS[t.refresh_token] = t


def find_token(token_string, hint=None):
    with LOCK:
        if hint == "refresh_token":
            order = (REFRESH_TOKENS, ACCESS_TOKENS)
        else:
            order = (ACCESS_TOKENS, REFRESH_TOKENS)
        for table in order:
            if token_string in table:
                return table[token_string]
    return None


# ---------------------------------------------------------------- grants

TOKEN_AUTH = ["client_secret_basic", "client_secret_post"]


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH

    def authenticate_user(self, username, password):
        expected = USERS.get(username)
        if expected is not None and secrets.compare_digest(expected.encode(), password.encode()):
            return username
        return None

    def create_token_response(self):
        # As upstream, but a refresh token only for clients allowed the refresh_token grant.
        client = self.request.client
        token = self.generate_token(
            user=self.request.user,
            scope=self.request.payload.scope,
            include_refresh_token=client.check_grant_type("refresh_token"),
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH + ["none"]

    def save_authorization_code(self, code, req):
        with LOCK:
            CODES[code] = AuthorizationCode(
                code,
                req.client.get_client_id(),
                req.payload.redirect_uri,  # None if the request had none (then none is allowed later)
                req.scope,
                req.user,
                req.payload.data.get("code_challenge"),
                req.payload.data.get("code_challenge_method"),
            )

    def query_authorization_code(self, code, client):
        with LOCK:
            item = CODES.get(code)
        if item and item.client_id == client.get_client_id() and time.time() < item.expires_at:
            return item
        return None

    def delete_authorization_code(self, authorization_code):
        with LOCK:
            CODES.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return authorization_code.user


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH + ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token):
        with LOCK:
            t = REFRESH_TOKENS.get(refresh_token)
        if t and t.refresh_active():
            return t
        return None  # -> invalid_grant

    def authenticate_user(self, refresh_token):
        return refresh_token.user  # refresh tokens come only from password and authorization_code

    def revoke_old_credential(self, refresh_token):
        with LOCK:
            refresh_token.refresh_revoked = True


class S256CodeChallenge(CodeChallenge):
    """PKCE required for every client (Authlib's required=True only forces it for public clients),
    S256 only, method explicit."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE (S256) is required")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.code_challenge_method


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = TOKEN_AUTH + ["none"]

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token, req):
        with LOCK:
            if req.form["token"] == token.refresh_token:
                token.refresh_revoked = True  # a refresh token: its access token goes too
            token.access_revoked = True


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = TOKEN_AUTH + ["none"]

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def check_permission(self, token, client, req):
        return token.client_id == client.get_client_id()

    def introspect_token(self, token):
        as_refresh = token.refresh_token == request.form.get("token")
        active = token.refresh_active() if as_refresh else not (token.is_expired() or token.is_revoked())
        if not active:
            return {"active": False}
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": "refresh_token" if as_refresh else "Bearer",
            "username": token.user,
            "sub": token.user,
            "scope": token.scope,
            "iat": int(token.issued_at),
            "exp": int(token.issued_at + (REFRESH_TOKEN_TTL if as_refresh else token.expires_in)),
            "iss": ISSUER,
        }


class Validator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        with LOCK:
            return ACCESS_TOKENS.get(token_string)


class Protector(ResourceProtector):
    def raise_error_response(self, error):
        # Missing or malformed Authorization is also answered as invalid_token (RFC 6750 §3.1 would
        # allow no error code there; one uniform answer is simpler to assert on).
        if error.status_code == 401 and not isinstance(error, InvalidTokenError):
            error = InvalidTokenError(description=error.get_error_description())
        super().raise_error_response(error)


# ---------------------------------------------------------------- app

app = Flask(__name__)
TTL = args.access_token_ttl
app.config.update(
    OAUTH2_REFRESH_TOKEN_GENERATOR=True,
    OAUTH2_SCOPES_SUPPORTED=SCOPES,
    OAUTH2_TOKEN_EXPIRES_IN={
        "authorization_code": TTL,
        "implicit": TTL,
        "password": TTL,
        "client_credentials": TTL,
        "refresh_token": TTL,
    },
)
server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
server.register_grant(ClientCredentialsGrant)
server.register_grant(PasswordGrant)
server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
server.register_grant(RefreshTokenGrant)
server.register_endpoint(Revocation)
server.register_endpoint(Introspection)
require_oauth = Protector()
require_oauth.register_token_validator(Validator())

ISSUER = None  # set once the port is known

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Authlib test server: sign in</title></head>
<body>
<h1>Sign in to authorize {client}</h1>
<p>Requested scope: <code>{scope}</code></p>
{error}
<form method="post" action="{action}">
  <label>Username <input type="text" name="username" id="username" autocomplete="username"></label><br>
  <label>Password <input type="password" name="password" id="password" autocomplete="current-password"></label><br>
  <button type="submit" name="action" value="allow" id="allow">Allow</button>
  <button type="submit" name="action" value="deny" id="deny">Deny</button>
</form>
</body></html>
"""


def error_page(error):
    body = f"<!doctype html><h1>Authorization error</h1><p>{html.escape(error.error)}: " \
           f"{html.escape(error.get_error_description() or '')}</p>"
    return Response(body, status=400, mimetype="text/html")


@app.route("/authorize", methods=["GET", "POST"])
def authorize():
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        if getattr(error, "redirect_uri", None):
            return server.handle_error_response(None, error)  # e.g. invalid_scope -> client
        return error_page(error)  # bad client or redirect URI: never redirect

    # the original query, kept in the form's action
    action = "/authorize?" + request.query_string.decode("ascii", "replace")
    if request.method == "GET":
        return render_page(grant, action)

    if request.form.get("action") != "allow":
        return server.create_authorization_response(grant_user=None, grant=grant)
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    expected = USERS.get(username)
    if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
        return render_page(grant, action, "Invalid username or password."), 401
    return server.create_authorization_response(grant_user=username, grant=grant)


def render_page(grant, action, error=""):
    return PAGE.format(
        client=html.escape(grant.client.get_client_id()),
        scope=html.escape(grant.request.scope or ""),
        action=html.escape(action),
        error=f'<p id="error" style="color:red">{html.escape(error)}</p>' if error else "",
    )


@app.route("/token", methods=["POST"])
def issue_token():
    return server.create_token_response()


@app.route("/revoke", methods=["POST"])
def revoke_token():
    return server.create_endpoint_response(Revocation.ENDPOINT_NAME)


@app.route("/introspect", methods=["POST"])
def introspect_token():
    return server.create_endpoint_response(Introspection.ENDPOINT_NAME)


@app.route("/api/me")
@require_oauth()
def api_me():
    return jsonify(ok=True, client_id=current_token.client_id, sub=current_token.user,
                   scope=current_token.scope)


@app.route("/.well-known/oauth-authorization-server")
def metadata():
    return jsonify(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize",
        token_endpoint=f"{ISSUER}/token",
        revocation_endpoint=f"{ISSUER}/revoke",
        introspection_endpoint=f"{ISSUER}/introspect",
        scopes_supported=SCOPES,
        response_types_supported=["code"],
        grant_types_supported=["authorization_code", "refresh_token", "password", "client_credentials"],
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post", "none"],
        code_challenge_methods_supported=["S256"],
    )


# ---------------------------------------------------------------- serve


def main():
    global ISSUER
    ssl_context = (args.tls_cert, args.tls_key) if TLS else None
    srv = make_server(HOST, args.port, app, threaded=True, ssl_context=ssl_context)
    port = srv.server_port
    ISSUER = f"{'https' if TLS else 'http'}://{HOST}:{port}"

    def stop(signum=None, frame=None):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    mode = os.fstat(0).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        def watch_stdin():
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch_stdin, daemon=True).start()

    print(json.dumps({
        "issuer": ISSUER,
        "base_url": ISSUER,
        "authorization_url": f"{ISSUER}/authorize",
        "token_url": f"{ISSUER}/token",
        "revocation_url": f"{ISSUER}/revoke",
        "introspection_url": f"{ISSUER}/introspect",
        "api_url": f"{ISSUER}/api/me",
        "redirect_uri": args.redirect_uri,
        "access_token_ttl": TTL,
        "tls": TLS,
        "scopes": SCOPES,
        "clients": {c.client_id: c.client_secret for c in CLIENTS.values()},
        "client_auth": {c.client_id: c.token_endpoint_auth_method for c in CLIENTS.values()},
        "users": USERS,
    }), flush=True)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
