# Plays the browser through server.py's login + consent page with a cookie jar (stdlib only).
#
#   python3 consent.py AUTHORIZATION_URL [--username alice] [--password wonderland] [--deny]
#                      [--ca-cert CA.pem] [--no-follow]
#
# Follows redirects by hand, fills the form on the authorization page (username, password) and presses
# Allow (or Deny with --deny), then requests the redirect location so that whoever listens there
# (oauth2-host authorize) receives the code or the error; --no-follow stops before that request.
# Prints the final URL on stdout, and each step plus the last response's status and body on stderr.
# Exit 0 when the final answer is 2xx (with --no-follow: when a redirect location was reached).
import argparse
import html
import http.cookiejar
import re
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--username", default="alice")
parser.add_argument("--password", default="wonderland")
parser.add_argument("--deny", action="store_true")
parser.add_argument("--ca-cert", help="CA bundle for an https authorization server")
parser.add_argument("--no-follow", action="store_true",
                    help="print the redirect location that leaves the server, without requesting it")
opts = parser.parse_args()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # hand 3xx back to us


handlers = [urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect()]
if opts.ca_cert:
    handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=opts.ca_cert)))
opener = urllib.request.build_opener(*handlers)


def request(url, form=None):
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, headers={"Accept": "text/html"})
    try:
        res = opener.open(req, timeout=30)
    except urllib.error.HTTPError as err:
        res = err  # 3xx (not followed) and 4xx/5xx alike
    body = res.read().decode("utf-8", "replace")
    print(f"{'POST' if form is not None else 'GET'} {url} -> {res.status}", file=sys.stderr)
    return res.status, res.headers, body


origin = urllib.parse.urlsplit(opts.url)[:2]


def same_server(url):
    return urllib.parse.urlsplit(url)[:2] == origin


def follow(url, form=None):
    """Request url; follow redirects while they stay on the authorization server. Returns
    (url, status, body, location_leaving_the_server_or_None)."""
    status, headers, body = request(url, form)
    for _ in range(20):
        if not (300 <= status < 400 and headers.get("Location")):
            return url, status, body, None
        nxt = urllib.parse.urljoin(url, headers["Location"])
        if not same_server(nxt):
            return url, status, body, nxt
        url = nxt
        status, headers, body = request(url)
    raise SystemExit("too many redirects")


url, status, body, leaving = follow(opts.url)
if leaving is None:
    form = re.search(r'<form[^>]*method="post"[^>]*action="([^"]*)"', body, re.I)
    if not form:
        print(url)
        print(f"final {status}: {body[:500]}", file=sys.stderr)
        sys.exit(1)
    action = urllib.parse.urljoin(url, html.unescape(form.group(1)))
    fields = {"username": opts.username, "password": opts.password,
              "action": "deny" if opts.deny else "allow"}
    print(f"submitting {fields['action']} as {opts.username} at {action}", file=sys.stderr)
    url, status, body, leaving = follow(action, fields)

if leaving is None:  # still on the server: e.g. the form again (wrong password) or an error page
    print(url)
    print(f"final {status}: {body[:500]}", file=sys.stderr)
    sys.exit(1)

print(f"redirect to {leaving}", file=sys.stderr)
if opts.no_follow:
    print(leaving)
    sys.exit(0)
# The redirect URI (oauth2-host's loopback listener): a plain request, no cookies of ours needed.
try:
    with urllib.request.urlopen(leaving, timeout=30) as res:
        status, body = res.status, res.read().decode("utf-8", "replace")
except urllib.error.HTTPError as err:
    status, body = err.code, err.read().decode("utf-8", "replace")
except urllib.error.URLError as err:
    status, body = 0, f"cannot reach the redirect URI: {err.reason}"
print(leaving)
print(f"final {status}: {body[:500]}", file=sys.stderr)
sys.exit(0 if 200 <= status < 300 else 1)
