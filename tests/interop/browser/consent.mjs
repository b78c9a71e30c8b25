// Completes an authorization server's login and consent pages in a real browser: Debian's headless
// Chromium (/usr/bin/chromium), driven by playwright-core. Used by the interop tests' browser consent
// (host-harness/cli/tests/interop/authorization_code.rs) against oidc-provider's dev interactions
// and the Authlib/Flask server.
//
//   node consent.mjs AUTH_URL [--deny] [--user alice] [--password wonderland]
//                    [--redirect-prefix URL] [--screenshot PATH] [--timeout SECONDS]
//                    [--chromium PATH] [--ignore-https-errors]
//
// Opens AUTH_URL, then on each page until the browser reaches the redirect URI (at most 10 pages):
//   - fills every visible input named login/username/email/user with --user, and every visible
//     password input with --password;
//   - allow (default): clicks a visible submit button whose text matches ALLOW (below);
//     --deny: clicks a visible button matching DENY; on a page without login fields a link matching
//     DENY also counts (oidc-provider's "[ Cancel ]" abort link). A login page with no deny button
//     is signed in first, so that the denial happens at the consent step.
// The redirect URI defaults to AUTH_URL's redirect_uri parameter; --redirect-prefix overrides it.
//
// Every request to a host other than 127.0.0.1, localhost or [::1] is aborted (oidc-provider's dev
// pages import Google fonts; nothing may leave the machine).
//
// On success prints one JSON line on stdout and exits 0 (also when the server redirected back with an
// error such as access_denied: the browser did its part, the caller checks the outcome):
//   {"url": redirect URL without query/fragment, "status": HTTP status of that page,
//    "text": first non-empty line of its visible text, "params": query parameter names,
//    "error": the error parameter or null, "steps": [...], "blocked": n, "elapsed_ms": n}
// The code and state never appear in the output. Progress goes to stderr.
// Exit 1 with a message on stderr on failure (no button to click, navigation error, timeout: 30 s
// overall by default); exit 2 on bad usage. The browser is always closed.
//
// --screenshot PATH saves a PNG of the last page acted on (normally the consent page), or of the
// current page when the run fails.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { launchLoopbackOnly, within } from './launch.mjs';

const USAGE = 'usage: node consent.mjs AUTH_URL [--deny] [--user NAME] [--password PW] [--redirect-prefix URL] '
  + '[--screenshot PATH] [--timeout SECONDS] [--chromium PATH] [--ignore-https-errors]';

const ALLOW = /allow|continue|sign-in|sign in|log ?in|authori[sz]e|yes|accept|approve|grant|confirm/i;
const DENY = /deny|cancel|abort|reject|decline|do not|don't|\bno\b/i;
const LOGIN_FIELDS = ['login', 'username', 'user', 'email'];
const MAX_STEPS = 10;

let opts;
let positionals;
try {
  ({ values: opts, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      deny: { type: 'boolean', default: false },
      user: { type: 'string', default: 'alice' },
      password: { type: 'string', default: 'wonderland' },
      'redirect-prefix': { type: 'string' },
      screenshot: { type: 'string' },
      timeout: { type: 'string', default: '30' },
      chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
      'ignore-https-errors': { type: 'boolean', default: false },
    },
  }));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (positionals.length !== 1) {
  console.error(USAGE);
  process.exit(2);
}
const authUrl = positionals[0];
const timeoutMs = Number(opts.timeout) * 1000;
if (!(timeoutMs > 0)) {
  console.error(`--timeout must be a positive number of seconds\n${USAGE}`);
  process.exit(2);
}
let redirectPrefix = opts['redirect-prefix'];
try {
  redirectPrefix ??= new URL(authUrl).searchParams.get('redirect_uri');
  if (!redirectPrefix) throw new Error('AUTH_URL has no redirect_uri parameter: pass --redirect-prefix');
  redirectPrefix = new URL(redirectPrefix).href;
} catch (err) {
  console.error(`bad AUTH_URL or --redirect-prefix: ${err.message}`);
  process.exit(2);
}
if (!fs.existsSync(opts.chromium)) {
  console.error(`no browser at ${opts.chromium}: install Debian's chromium (apt-get install -y chromium) or pass --chromium`);
  process.exit(1);
}

const started = Date.now();
const log = (msg) => console.error(`consent [${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const withoutQuery = (href) => { const u = new URL(href); return `${u.origin}${u.pathname}`; };
const atRedirect = (href) => href.startsWith(redirectPrefix) || withoutQuery(href) === withoutQuery(redirectPrefix);

let browser;
let page;
let blocked = 0;
let lastShot = null; // PNG of the last page acted on
let failed = null;
let result = null;
let lastStatus = null; // status of the main frame's last document response
let navError = null; // main-frame navigation failure (e.g. nothing listening at the redirect URI)
const steps = [];

async function visible(locator) {
  const out = [];
  for (const el of await locator.all()) {
    if (await el.isVisible().catch(() => false)) out.push(el);
  }
  return out;
}

async function label(el) {
  const text = (await el.innerText().catch(() => '')).trim();
  return text || (await el.getAttribute('value')) || (await el.getAttribute('aria-label')) || '';
}

// Starts waiting for the next document load of the main frame, to be awaited after the click.
// (URL changes are no signal: oidc-provider's login POST ends at the same /interaction/UID URL.)
function nextDocument() {
  return page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: 0 })
    .then(() => page.waitForLoadState('load'));
}

async function act(stepNo) {
  const url = page.url();
  const title = await page.title().catch(() => '');
  const done = [];

  const userFields = await visible(page.locator(LOGIN_FIELDS.map((n) => `input[name="${n}"]`).join(', ')));
  const passwordFields = await visible(page.locator('input[type="password"], input[name="password"]'));
  for (const f of userFields) { await f.fill(opts.user); done.push(`filled ${await f.getAttribute('name')}`); }
  for (const f of passwordFields) { await f.fill(opts.password); done.push(`filled ${await f.getAttribute('name') ?? 'password'}`); }
  const loginPage = userFields.length + passwordFields.length > 0;
  const prev = steps.at(-1);
  if (loginPage && prev?.login && prev.page === withoutQuery(url)) {
    // the login form came back after signing in: the credentials were refused
    const text = (await page.locator('body').innerText().catch(() => '')).replace(/\s+/g, ' ').trim().slice(0, 200);
    throw new Error(`step ${stepNo}: the login was refused (${withoutQuery(url)} shown again after signing in as `
      + `${JSON.stringify(opts.user)}): ${text}`);
  }

  const buttons = await visible(page.locator('button, input[type="submit"], input[type="button"], [role="button"]'));
  const named = [];
  for (const b of buttons) named.push({ el: b, text: await label(b) });
  const allowButtons = named.filter((b) => ALLOW.test(b.text) && !DENY.test(b.text));
  const denyButtons = named.filter((b) => DENY.test(b.text));
  let target;
  if (opts.deny) {
    target = denyButtons[0];
    if (!target && !loginPage) {
      const links = await visible(page.locator('a'));
      for (const a of links) {
        const text = await label(a);
        if (DENY.test(text)) { target = { el: a, text }; break; }
      }
    }
    if (!target && loginPage) target = allowButtons[0]; // sign in first, deny at the consent page
  } else {
    target = allowButtons[0];
    if (!target) {
      // a lone submit button with an unknown label (e.g. "Submit")
      const submits = named.filter((b) => !DENY.test(b.text));
      if (submits.length === 1) target = submits[0];
    }
  }
  if (!target) {
    const seen = named.map((b) => JSON.stringify(b.text)).join(', ') || 'none';
    throw new Error(`step ${stepNo}: no ${opts.deny ? 'deny' : 'allow'} control on ${withoutQuery(url)} `
      + `("${title}"); visible buttons: ${seen}`);
  }

  if (opts.screenshot) lastShot = await page.screenshot({ fullPage: true });
  done.push(`clicked ${JSON.stringify(target.text)}`);
  const step = { page: withoutQuery(url), title, actions: done };
  Object.defineProperty(step, 'login', { value: loginPage }); // not in the JSON output
  steps.push(step);
  log(`step ${stepNo}: ${step.page} ("${title}"): ${done.join(', ')}`);
  const loaded = nextDocument();
  await target.el.click();
  await loaded;
}

async function run() {
  let context;
  ({ browser, context } = await launchLoopbackOnly({
    executablePath: opts.chromium,
    timeoutMs,
    ignoreHTTPSErrors: opts['ignore-https-errors'],
    onBlocked: (method, origin) => {
      blocked += 1;
      log(`blocked ${method} ${origin}`);
    },
  }));
  page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  page.on('response', (res) => {
    if (res.request().isNavigationRequest() && res.frame() === page.mainFrame()) lastStatus = res.status();
  });
  page.on('requestfailed', (req) => {
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      navError = `${req.failure()?.errorText ?? 'failed'} loading ${withoutQuery(req.url())}`;
      log(`navigation failed: ${navError}`);
    }
  });

  log(`opening ${withoutQuery(authUrl)} (redirect target ${redirectPrefix}, ${opts.deny ? 'deny' : 'allow'})`);
  await page.goto(authUrl, { waitUntil: 'load' });
  for (let step = 1; ; step += 1) {
    if (navError) throw new Error(`navigation failed: ${navError}`);
    if (atRedirect(page.url())) break;
    if (step > MAX_STEPS) throw new Error(`still at ${withoutQuery(page.url())} after ${MAX_STEPS} steps`);
    await act(step);
  }
  if (navError) throw new Error(`navigation failed: ${navError}`);

  const final = new URL(page.url());
  const text = (await page.locator('body').innerText().catch(() => '')).split('\n').map((l) => l.trim()).find(Boolean) ?? '';
  return {
    url: withoutQuery(final.href),
    status: lastStatus,
    text,
    params: [...new Set(final.searchParams.keys())],
    error: final.searchParams.get('error'),
    steps,
    blocked,
    elapsed_ms: Date.now() - started,
  };
}

try {
  result = await within(timeoutMs, run,
    () => `${page ? ` at ${withoutQuery(page.url())}` : ' launching the browser'} (${steps.length} steps done)`);
} catch (err) {
  failed = err;
} finally {
  if (failed && opts.screenshot && page) {
    lastShot = await Promise.race([
      page.screenshot({ fullPage: true }).catch(() => null),
      new Promise((r) => { setTimeout(() => r(null), 3000); }),
    ]) ?? lastShot;
  }
  if (opts.screenshot && lastShot) {
    fs.writeFileSync(opts.screenshot, lastShot);
    log(`screenshot written to ${opts.screenshot}`);
  }
  await browser?.close().catch((e) => log(`closing the browser: ${e.message}`));
}
if (failed) {
  console.error(`consent: ${failed.message.split('\n')[0]}`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
