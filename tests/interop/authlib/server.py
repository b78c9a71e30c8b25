# Loopback Authlib (Flask) authorization server plus a protected API, for the interop tests.
#
#   python3.11 -m venv .venv
#   .venv/bin/pip install --require-hashes --only-binary=:all: -r requirements.txt
#   .venv/bin/python server.py [--port 0] [--redirect-uri URL] [--access-token-ttl 60]
#                              [--tls-cert CERT.pem --tls-key KEY.pem] [--client-jwks JWKS.json]
#                              [--device-interval 5] [--device-expires-in 600]
#   env (defaults for the flags): PORT, REDIRECT_URI, ACCESS_TOKEN_TTL, CLIENT_JWKS, DEVICE_INTERVAL,
#                                 DEVICE_EXPIRES_IN
#
# Binds 127.0.0.1 only; port 0 (the default) picks a free port. Once listening it prints exactly one
# JSON line on stdout (issuer, endpoint URLs, clients and their secrets, the user); logs go to stderr.
# Its fields: issuer, base_url, authorization_url, token_url, revocation_url, introspection_url,
# device_authorization_url, device_verification_url, device_interval, device_expires_in, api_url,
# redirect_uri, access_token_ttl, tls, scopes, clients {id: secret or null}, client_auth {id: method},
# users {name: password}, client_assertion_audiences (the aud values a client assertion may carry:
# [token URL, issuer]), jwt_bearer_audiences ([token URL]).
# Plain http unless --tls-cert/--tls-key are given (then https with that certificate, which must name
# 127.0.0.1). Exits on SIGTERM/SIGINT, and when stdin is a pipe (or socket) that closes, so a test
# that spawns it with a piped stdin never leaks it.
#
# Endpoints (all under the issuer URL):
#   GET  /authorize    login + consent form (username, password, Allow / Deny), posts back to itself
#   POST /authorize    checks the user, then redirects to the client with a code or access_denied
#   POST /token        password, client_credentials, authorization_code (PKCE S256 required),
#                      refresh_token (rotating: the used refresh token is revoked, reuse -> invalid_grant),
#                      urn:ietf:params:oauth:grant-type:device_code (RFC 8628), and with --client-jwks
#                      urn:ietf:params:oauth:grant-type:jwt-bearer (RFC 7523 §2.1, below)
#   POST /revoke       RFC 7009 (revoking a refresh token also revokes its access token)
#   POST /introspect   RFC 7662 (a client may introspect only its own tokens)
#   POST /device_authorization   RFC 8628 §3.1: device_code, user_code (like "BCDF-GHJK"),
#                      verification_uri (/device), verification_uri_complete (/device?user_code=...),
#                      expires_in (--device-expires-in), interval (--device-interval)
#   GET  /device       the user's page: user_code (prefilled from ?user_code=), username, password,
#                      Allow / Deny buttons, posting to POST /device
#   POST /device       form user_code (case, spaces and '-' ignored), action=allow|deny, and for allow
#                      username + password. 200 page with <h1 id="result" data-result="approved|denied">;
#                      401 page (form again, #error) for a wrong user/password; 400 page for an unknown,
#                      expired or already decided code. Deny needs no sign-in.
#   GET  /api/me       protected API: 200 {ok, client_id, sub, scope} for an active bearer token,
#                      else 401 with WWW-Authenticate: Bearer error="invalid_token"
#   GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
#   GET  /stats        {"tokens": {grant_type: tokens issued}, "refresh_replays": refreshes that
#                      presented a refresh token already rotated out}
#
# Clients (token_endpoint_auth_method is enforced: a client must authenticate the way it is registered):
#   cc-basic    client_secret_basic  client_credentials, password, refresh_token
#   cc-post     client_secret_post   client_credentials, password, refresh_token
#   web-client  client_secret_basic  authorization_code, refresh_token (redirect URI: --redirect-uri)
#   public-web  none (public)        authorization_code, refresh_token (redirect URI: --redirect-uri)
#   device-client  none (public)     device_code, refresh_token
# and only with --client-jwks FILE (a public JWKS, as make_keys.py writes):
#   pkjwt-client       private_key_jwt (keys: the JWKS)     client_credentials, password,
#   sjwt-client        client_secret_jwt (HS256, secret     authorization_code (redirect URI:
#                      sjwt-secret-for-hs256-0123456789abcdef)  --redirect-uri), refresh_token
#   jwt-bearer-client  private_key_jwt (keys: the JWKS)     jwt-bearer only (its assertion is the
#                      authentication there; private_key_jwt is for /revoke and /introspect)
# Client assertions (private_key_jwt: RS256, PS256, ES256; client_secret_jwt: HS256), at /token,
# /revoke, /introspect and /device_authorization: iss = sub = client_id, aud = the token URL or the
# issuer (a string, or a list holding one), exp required, jti required and single-use (replay ->
# invalid_client "JWT ID is used before."), 60 s leeway on exp/nbf/iat. The key is the JWS header's
# kid, else the JWKS key whose x5t#S256 equals the header's x5t#S256, else the only key of the alg's
# type. Every refusal is invalid_client (HTTP 400, error_description from the check that failed).
# JWT bearer grant: assertion iss = jwt-bearer-client, aud = the token URL only, exp required, sub
# optional (if present it must be alice: alice's token; absent: the client's own token, sub null at
# /api/me), scope within "read write" (else invalid_scope), no client authentication, no refresh
# token; a bad signature, aud, exp, iss or sub -> invalid_grant with a description.
# Device flow: polling sooner than the interval after the previous poll -> slow_down, and the
# interval grows by 5 s for that code (RFC 8628 §3.5); the first poll may come at once. Pending ->
# authorization_pending, denied -> access_denied, past expires_in -> expired_token; a device code
# gives one token response (then, like an unknown code, invalid_grant).
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
parser.add_argument("--client-jwks", default=os.environ.get("CLIENT_JWKS"))
parser.add_argument(
    "--device-interval", type=int, default=int(os.environ.get("DEVICE_INTERVAL", "5"))
)
parser.add_argument(
    "--device-expires-in", type=int, default=int(os.environ.get("DEVICE_EXPIRES_IN", "600"))
)
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
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError  # noqa: E402
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list  # noqa: E402
from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError  # noqa: E402
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidScopeError  # noqa: E402
from authlib.oauth2.rfc7009 import RevocationEndpoint  # noqa: E402
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion, JWTBearerGrant  # noqa: E402
from authlib.oauth2.rfc7636 import CodeChallenge  # noqa: E402
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # noqa: E402
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.errors import InvalidKeyIdError, JoseError  # noqa: E402
from joserfc.jwk import KeySet, OctKey  # noqa: E402
from authlib.integrations.flask_oauth2 import current_token  # noqa: E402
from flask import Flask, Response, jsonify, request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

HOST = "127.0.0.1"
SCOPES = ["read", "write"]
REFRESH_TOKEN_TTL = 24 * 3600
CODE_TTL = 60
SPECIAL_SECRET = "s3cr:t/+&%= ~"
USERS = {"alice": "wonderland"}
SJWT_SECRET = "sjwt-secret-for-hs256-0123456789abcdef"  # 38 characters: HS256 wants >= 32 bytes
ASSERTION_LEEWAY = 60  # seconds of clock skew allowed on exp/nbf/iat of client and bearer assertions
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_JWKS = None
if args.client_jwks:
    with open(args.client_jwks) as f:
        CLIENT_JWKS = json.load(f)

# ---------------------------------------------------------------- in-memory store (one lock)
LOCK = threading.RLock()


class Client(ClientMixin):
    def __init__(self, client_id, secret, auth_method, grant_types, redirect_uris=(), jwks=None):
        self.client_id = client_id
        self.client_secret = secret
        self.token_endpoint_auth_method = auth_method
        self.grant_types = list(grant_types)
        self.redirect_uris = list(redirect_uris)
        self.scope = " ".join(SCOPES)
        self.jwks = jwks  # public JWKS (dict) for private_key_jwt and the JWT bearer grant

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
        Client("device-client", None, "none", [DEVICE_GRANT, "refresh_token"]),
    ]
}
if CLIENT_JWKS is not None:
    _all_grants = ["client_credentials", "password", "authorization_code", "refresh_token"]
    for _c in [
        Client("pkjwt-client", None, "private_key_jwt", _all_grants, [args.redirect_uri], CLIENT_JWKS),
        Client("sjwt-client", SJWT_SECRET, "client_secret_jwt", _all_grants, [args.redirect_uri]),
        # Authenticates at /revoke and /introspect with private_key_jwt (same keys); its grant needs none.
        Client("jwt-bearer-client", None, "private_key_jwt", [JWT_BEARER_GRANT], [], CLIENT_JWKS),
    ]:
        CLIENTS[_c.client_id] = _c
ACCESS_TOKENS = {}  # access token string -> Token
REFRESH_TOKENS = {}  # refresh token string -> Token
# GET /stats: token responses by grant type, and refreshes that presented a rotated-out token.
STATS = {"tokens": {}, "refresh_replays": 0}
CODES = {}  # code -> AuthorizationCode


def query_client(client_id):
    return CLIENTS.get(client_id)


def save_token(token, req):
    with LOCK:
        STATS["tokens"][req.grant_type] = STATS["tokens"].get(req.grant_type, 0) + 1
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

JWT_AUTH = ["private_key_jwt", "client_secret_jwt"]
TOKEN_AUTH = ["client_secret_basic", "client_secret_post"] + JWT_AUTH
ASYMMETRIC_ALGS = ["RS256", "PS256", "ES256"]
KTY_FOR_ALG = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}


def jwks_resolver(jwks):
    """A joserfc key callable for a public JWKS: the key named by the JWS header's kid, else the one
    whose x5t#S256 member equals the header's x5t#S256, else the only key of the alg's type."""
    keyset = KeySet.import_key_set(jwks)
    by_kid = {k.kid: k for k in keyset}
    thumbs = {raw.get("x5t#S256"): raw.get("kid") for raw in jwks["keys"] if raw.get("x5t#S256")}

    def resolve(obj):
        headers = obj.headers()
        kid = headers.get("kid")
        if kid is None and headers.get("x5t#S256") in thumbs:
            kid = thumbs[headers["x5t#S256"]]
        if kid is not None:
            if kid in by_kid:
                return by_kid[kid]
            raise InvalidKeyIdError(f"No key for kid: '{kid}'")
        kty = KTY_FOR_ALG.get(headers.get("alg"))
        candidates = [k for k in keyset if k.key_type == kty]
        if len(candidates) == 1:
            return candidates[0]
        raise InvalidKeyIdError("No kid or x5t#S256 in the JWS header naming a key of the client")

    return resolve


JTI_SEEN = {}  # (client_id, jti) -> when it may be forgotten (its exp plus the leeway)


class ClientAssertion(JWTBearerClientAssertion):
    """private_key_jwt / client_secret_jwt (RFC 7523 §2.2, OIDC Core §9): iss = sub = client_id,
    aud = the token endpoint URL or the issuer, exp and a never-seen jti required."""

    ALGORITHMS = []

    def __call__(self, query_client, request):
        # Leave assertions of clients registered with the other JWT method to that method (the
        # library would raise instead, ending the search through the endpoint's methods).
        claims_sub = None
        assertion = request.form.get("client_assertion")
        if request.form.get("client_assertion_type") == self.CLIENT_ASSERTION_TYPE and assertion:
            try:
                claims_sub = self.extract_assertion(assertion)[1].get("sub")
            except OAuth2Error:
                claims_sub = None
            client = query_client(claims_sub) if isinstance(claims_sub, str) else None
            if client is not None and client.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD:
                return None
        return super().__call__(query_client, request)

    def get_audiences(self):
        return [f"{ISSUER}/token", ISSUER]

    def process_assertion_claims(self, assertion, resolve_key):
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=self.ALGORITHMS)
        except JoseError as e:
            raise InvalidClientError(description=e.description or e.error) from e
        except ValueError as e:
            raise InvalidClientError(description=f"Invalid JWT assertion: {e}") from e
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims, jti):
        now = time.time()
        key = (claims["sub"], str(jti))
        with LOCK:
            for k in [k for k, until in JTI_SEEN.items() if until < now]:
                del JTI_SEEN[k]
            if key in JTI_SEEN:
                return False
            exp = claims.get("exp")
            JTI_SEEN[key] = (exp if isinstance(exp, (int, float)) else now) + ASSERTION_LEEWAY + 1
            return True


class PrivateKeyJWT(ClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"
    ALGORITHMS = ASYMMETRIC_ALGS

    def resolve_client_public_key(self, client):
        if not client.jwks:
            raise InvalidClientError(description="The client has no registered keys")
        return jwks_resolver(client.jwks)


class ClientSecretJWT(ClientAssertion):
    CLIENT_AUTH_METHOD = "client_secret_jwt"
    ALGORITHMS = ["HS256"]

    def resolve_client_public_key(self, client):
        return OctKey.import_key(client.client_secret)


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
            if t and t.refresh_revoked:
                STATS["refresh_replays"] += 1
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


class JWTBearer(JWTBearerGrant):
    """RFC 7523 §2.1: the assertion (iss = a client with a JWKS, aud = the token URL, exp required,
    sub optional and then a user) is the only authentication. No refresh token."""

    LEEWAY = ASSERTION_LEEWAY

    def resolve_issuer_client(self, issuer):
        client = CLIENTS.get(issuer)
        return client if client is not None and client.jwks else None

    def resolve_client_public_key(self, client):
        return jwks_resolver(client.jwks)

    def get_audiences(self):
        return [f"{ISSUER}/token"]

    def process_assertion_claims(self, assertion):
        # As upstream, but RS256, PS256 and ES256 (joserfc's default list lacks PS256).
        _headers, claims = self.extract_assertion(assertion)
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise InvalidGrantError(description="Missing or invalid claim: 'iss'")
        client = self.resolve_issuer_client(issuer)
        if not client:
            raise InvalidGrantError(description="The client does not exist on this server.")
        try:
            token = jwt.decode(assertion, self.resolve_client_public_key(client), algorithms=ASYMMETRIC_ALGS)
        except JoseError as e:
            raise InvalidGrantError(description=e.description or e.error) from e
        except ValueError:
            raise InvalidGrantError(description="Invalid JWT assertion") from None
        self.verify_claims(token.claims)
        return token.claims

    def validate_requested_scope(self):
        scope = self.request.payload.scope
        allowed = set(scope_to_list(self.request.client.scope))
        if scope and not set(scope_to_list(scope)) <= allowed:
            raise InvalidScopeError()
        super().validate_requested_scope()

    def authenticate_user(self, subject):
        return subject if subject in USERS else None

    def has_granted_permission(self, client, user):
        return user in USERS


class DeviceCredential:
    def __init__(self, client_id, scope, data):
        self.client_id = client_id
        self.scope = scope
        self.device_code = data["device_code"]
        self.user_code = data["user_code"]
        self.expires_at = time.time() + data["expires_in"]
        self.interval = data["interval"]
        self.last_poll = None
        self.user = None
        self.approved = None  # None pending, True approved, False denied
        self.used = False

    def get_client_id(self):
        return self.client_id

    def get_scope(self):
        return self.scope

    def get_user_code(self):
        return self.user_code

    def is_expired(self):
        return time.time() >= self.expires_at


DEVICE_CODES = {}  # device_code -> DeviceCredential
USER_CODES = {}  # normalized user code -> DeviceCredential


def normalize_user_code(code):
    return "".join(ch for ch in (code or "").upper() if ch.isalnum())


class DeviceAuthorization(DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = TOKEN_AUTH + ["none"]
    EXPIRES_IN = args.device_expires_in
    INTERVAL = args.device_interval

    def get_verification_uri(self):
        return f"{ISSUER}/device"

    def save_device_credential(self, client_id, scope, data):
        cred = DeviceCredential(client_id, scope, data)
        with LOCK:
            DEVICE_CODES[cred.device_code] = cred
            USER_CODES[normalize_user_code(cred.user_code)] = cred


class DeviceGrant(DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH + ["none"]

    def query_device_credential(self, device_code):
        with LOCK:
            cred = DEVICE_CODES.get(device_code)
        if cred is None or cred.used:
            raise InvalidGrantError(description="Unknown or already used 'device_code'")
        return cred

    def query_user_grant(self, user_code):
        with LOCK:
            cred = USER_CODES.get(normalize_user_code(user_code))
        if cred is None or cred.approved is None:
            return None
        return cred.user, cred.approved

    def should_slow_down(self, credential):
        # RFC 8628 §3.5: polled sooner than the interval after the previous poll -> slow_down, and
        # the interval grows by 5 s for this and all later polls.
        now = time.time()
        with LOCK:
            last, credential.last_poll = credential.last_poll, now
            if last is not None and now - last < credential.interval:
                credential.interval += 5
                return True
        return False

    def create_token_response(self):
        with LOCK:
            if self.request.credential.used:
                raise InvalidGrantError(description="Unknown or already used 'device_code'")
            self.request.credential.used = True  # one token response per device code
        return super().create_token_response()


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
        DEVICE_GRANT: TTL,
        JWT_BEARER_GRANT: TTL,
    },
)
server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
server.register_grant(ClientCredentialsGrant)
server.register_grant(PasswordGrant)
server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
server.register_grant(RefreshTokenGrant)
server.register_grant(DeviceGrant)
server.register_endpoint(Revocation)
server.register_endpoint(Introspection)
server.register_endpoint(DeviceAuthorization)
server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())
server.register_client_auth_method(ClientSecretJWT.CLIENT_AUTH_METHOD, ClientSecretJWT())
if CLIENT_JWKS is not None:
    server.register_grant(JWTBearer)
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


DEVICE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Authlib test server: device sign-in</title></head>
<body>
<h1>Connect a device</h1>
{error}
<form method="post" action="/device">
  <label>Code shown on the device <input type="text" name="user_code" id="user_code" value="{user_code}"
    autocomplete="off"></label><br>
  <label>Username <input type="text" name="username" id="username" autocomplete="username"></label><br>
  <label>Password <input type="password" name="password" id="password" autocomplete="current-password"></label><br>
  <button type="submit" name="action" value="allow" id="allow">Allow</button>
  <button type="submit" name="action" value="deny" id="deny">Deny</button>
</form>
</body></html>
"""

DEVICE_DONE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Authlib test server: device {result}</title></head>
<body><h1 id="result" data-result="{result}">Device {result}</h1><p>{message}</p></body></html>
"""


def device_page(user_code="", error="", status=200):
    body = DEVICE_PAGE.format(
        user_code=html.escape(user_code),
        error=f'<p id="error" style="color:red">{html.escape(error)}</p>' if error else "",
    )
    return Response(body, status=status, mimetype="text/html")


@app.route("/device_authorization", methods=["POST"])
def device_authorization():
    return server.create_endpoint_response(DeviceAuthorization.ENDPOINT_NAME)


@app.route("/device", methods=["GET", "POST"])
def device():
    if request.method == "GET":
        return device_page(request.args.get("user_code", ""))
    user_code = request.form.get("user_code", "")
    with LOCK:
        cred = USER_CODES.get(normalize_user_code(user_code))
    if cred is None:
        return device_page(user_code, "Unknown code.", 400)
    if cred.is_expired():
        return device_page(user_code, "This code has expired.", 400)
    if cred.approved is not None:
        return device_page(user_code, "This code has already been used.", 400)
    if request.form.get("action") != "allow":
        with LOCK:
            cred.approved = False
        body = DEVICE_DONE.format(result="denied", message="The device was refused access.")
        return Response(body, mimetype="text/html")
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    expected = USERS.get(username)
    if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
        return device_page(user_code, "Invalid username or password.", 401)
    with LOCK:
        cred.user, cred.approved = username, True
    body = DEVICE_DONE.format(result="approved", message="You may return to your device.")
    return Response(body, mimetype="text/html")


@app.route("/token", methods=["POST"])
def issue_token():
    return server.create_token_response()


@app.route("/stats")
def stats():
    with LOCK:
        return jsonify(STATS)


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
        device_authorization_endpoint=f"{ISSUER}/device_authorization",
        scopes_supported=SCOPES,
        response_types_supported=["code"],
        grant_types_supported=["authorization_code", "refresh_token", "password", "client_credentials",
                               DEVICE_GRANT] + ([JWT_BEARER_GRANT] if CLIENT_JWKS is not None else []),
        token_endpoint_auth_methods_supported=TOKEN_AUTH + ["none"],
        token_endpoint_auth_signing_alg_values_supported=ASYMMETRIC_ALGS + ["HS256"],
        revocation_endpoint_auth_methods_supported=TOKEN_AUTH + ["none"],
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
        "device_authorization_url": f"{ISSUER}/device_authorization",
        "device_verification_url": f"{ISSUER}/device",
        "device_interval": args.device_interval,
        "device_expires_in": args.device_expires_in,
        "api_url": f"{ISSUER}/api/me",
        "redirect_uri": args.redirect_uri,
        "access_token_ttl": TTL,
        "tls": TLS,
        "scopes": SCOPES,
        "clients": {c.client_id: c.client_secret for c in CLIENTS.values()},
        "client_auth": {c.client_id: c.token_endpoint_auth_method for c in CLIENTS.values()},
        "users": USERS,
        "client_assertion_audiences": [f"{ISSUER}/token", ISSUER],
        "jwt_bearer_audiences": [f"{ISSUER}/token"],
    }), flush=True)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
