// Plays the user of oidc-provider's device flow (RFC 8628) in a real browser: Debian's headless
// Chromium (/usr/bin/chromium), driven by playwright-core (installed in ../browser: run
// tests/interop/setup.sh first).
//
//   node device.mjs VERIFICATION_URL [--deny] [--deny-at confirm|consent] [--user-code CODE]
//                   [--login alice] [--timeout SECONDS] [--chromium PATH]
//
// VERIFICATION_URL is normally the verification_uri_complete of the device authorization response
// (…/device?user_code=XXXX-XXXX); with the plain verification_uri, give --user-code. The pages, in
// order: the user code input page (only without the code in the URL), the "Confirm Device" page
// (Continue / [ Abort ]), the dev interactions' login page (any login and password; --login, default
// alice, becomes the account id, i.e. the token's sub), their consent page (Continue / [ Cancel ]),
// then the "Sign-in Success" page.
//   default             approves: Continue, sign in, Continue -> "Sign-in Success"
//   --deny              denies at the confirm page ([ Abort ]; --deny-at confirm, the default), or with
//                       --deny-at consent signs in and cancels at the consent page ([ Cancel ]). Either
//                       way the device's next poll answers access_denied and the browser ends on a page
//                       saying "The Sign-in request was interrupted".
// Every request to a host other than 127.0.0.1, localhost or [::1] is aborted (the pages import
// Google fonts; nothing may leave the machine).
//
// Prints one JSON line on stdout and exits 0 when the browser reached the expected end page:
//   {"result": "approved" | "denied", "url": last URL without query, "title": its <title>,
//    "text": its visible text (first 200 characters), "steps": [...], "blocked": n, "elapsed_ms": n}
// Exits 1 with a message on stderr otherwise (unknown, expired or already used code: the page says
// "The code you entered is incorrect" or "There was an error processing your request"; an approval
// ending on the interrupted page or the reverse; timeout, 30 s overall by default), 2 on bad usage.
// Progress goes to stderr. The browser is always closed.
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const USAGE = 'usage: node device.mjs VERIFICATION_URL [--deny] [--deny-at confirm|consent] [--user-code CODE] '
  + '[--login NAME] [--timeout SECONDS] [--chromium PATH]';
const MAX_STEPS = 10;

let opts;
let positionals;
try {
  ({ values: opts, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      deny: { type: 'boolean', default: false },
      'deny-at': { type: 'string', default: 'confirm' },
      'user-code': { type: 'string' },
      login: { type: 'string', default: 'alice' },
      timeout: { type: 'string', default: '30' },
      chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
    },
  }));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
const timeoutMs = Number(opts.timeout) * 1000;
if (positionals.length !== 1 || !(timeoutMs > 0) || !['confirm', 'consent'].includes(opts['deny-at'])) {
  console.error(USAGE);
  process.exit(2);
}
const startUrl = positionals[0];
try {
  if (!['http:', 'https:'].includes(new URL(startUrl).protocol)) throw new Error('not http(s)');
} catch (err) {
  console.error(`bad VERIFICATION_URL: ${err.message}\n${USAGE}`);
  process.exit(2);
}
if (!fs.existsSync(opts.chromium)) {
  console.error(`no browser at ${opts.chromium}: install Debian's chromium (apt-get install -y chromium) or pass --chromium`);
  process.exit(1);
}
// playwright-core lives in the browser kit beside this one, with the launcher.
const { launchLoopbackOnly, within } = await import('../browser/launch.mjs');

const started = Date.now();
const log = (msg) => console.error(`device [${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const withoutQuery = (href) => { const u = new URL(href); return `${u.origin}${u.pathname}`; };

let browser;
let page;
let blocked = 0;
const steps = [];

async function visibleText() {
  return (await page.locator('body').innerText().catch(() => '')).replace(/\s+/g, ' ').trim();
}

async function visibleOne(selector) {
  for (const el of await page.locator(selector).all()) {
    if (await el.isVisible().catch(() => false)) return el;
  }
  return null;
}

// Click, then wait for the main frame's next document to load (and any auto-submitting form_post
// page after it to move on).
async function clickAndWait(el) {
  const loaded = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: 0 })
    .then(() => page.waitForLoadState('load'));
  await el.click();
  await loaded;
  await settle();
}

async function settle() {
  for (let i = 0; i < 5 && (await page.title().catch(() => '')) === 'Submitting Callback'; i += 1) {
    await page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() });
    await page.waitForLoadState('load');
  }
}

// What the current page is, and the end result if it is an end page.
async function classify() {
  const title = await page.title().catch(() => '');
  const text = await visibleText();
  if (/Sign-in Success/.test(title) || /^Sign-in Success/.test(text)) return { end: 'approved', title, text };
  if (/request was interrupted/i.test(text)) return { end: 'denied', title, text };
  if (/code you entered is incorrect|error processing your request|oops! something went wrong/i.test(text)) {
    return { end: 'error', title, text };
  }
  return { end: null, title, text };
}

async function act(stepNo) {
  const url = withoutQuery(page.url());
  const title = await page.title().catch(() => '');
  const actions = [];
  const record = () => {
    steps.push({ page: url, title, actions });
    log(`step ${stepNo}: ${url} ("${title}"): ${actions.join(', ')}`);
  };

  const login = await visibleOne('input[name="login"]');
  if (login) {
    await login.fill(opts.login);
    actions.push('filled login');
    const password = await visibleOne('input[name="password"]');
    if (password) { await password.fill('any-password'); actions.push('filled password'); }
    const submit = await visibleOne('button[type="submit"], input[type="submit"]');
    actions.push(`clicked ${JSON.stringify((await submit.innerText()).trim())}`);
    record();
    await clickAndWait(submit);
    return;
  }

  if (await page.locator('form[id="op.deviceConfirmForm"]').count()) {
    const deny = opts.deny && opts['deny-at'] === 'confirm';
    const button = deny ? await visibleOne('button[name="abort"]') : await visibleOne('button[autofocus]');
    actions.push(`clicked ${JSON.stringify((await button.innerText()).trim())}`);
    record();
    await clickAndWait(button);
    return;
  }

  if (await page.locator('form[id="op.deviceInputForm"]').count()) {
    const input = page.locator('input[name="user_code"]');
    if (!opts['user-code']) throw new Error(`step ${stepNo}: the user code input page: give --user-code or the complete URL`);
    await input.fill(opts['user-code']);
    actions.push('filled user_code');
    const button = await visibleOne('button[type="submit"]');
    actions.push(`clicked ${JSON.stringify((await button.innerText()).trim())}`);
    record();
    await clickAndWait(button);
    return;
  }

  // the dev interactions' consent page: a form with a Continue button and a [ Cancel ] abort link
  if (opts.deny && opts['deny-at'] === 'consent') {
    const cancel = await visibleOne('a[href*="abort"]');
    if (cancel) {
      actions.push(`clicked ${JSON.stringify((await cancel.innerText()).trim())}`);
      record();
      await clickAndWait(cancel);
      return;
    }
  }
  const button = await visibleOne('button[type="submit"], button[autofocus], input[type="submit"]');
  if (!button) {
    throw new Error(`step ${stepNo}: nothing to click on ${url} ("${title}"): ${(await visibleText()).slice(0, 200)}`);
  }
  actions.push(`clicked ${JSON.stringify((await button.innerText()).trim())}`);
  record();
  await clickAndWait(button);
}

async function run() {
  let context;
  ({ browser, context } = await launchLoopbackOnly({
    executablePath: opts.chromium,
    timeoutMs,
    onBlocked: () => {
      blocked += 1;
    },
  }));
  page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);

  log(`opening ${withoutQuery(startUrl)} (${opts.deny ? `deny at ${opts['deny-at']}` : 'approve'})`);
  await page.goto(startUrl, { waitUntil: 'load' });
  await settle();
  for (let step = 1; ; step += 1) {
    const state = await classify();
    if (state.end) {
      const expected = opts.deny ? 'denied' : 'approved';
      if (state.end !== expected) {
        throw new Error(`ended ${state.end === 'error' ? 'on an error page' : state.end} (wanted ${expected}) at `
          + `${withoutQuery(page.url())} ("${state.title}"): ${state.text.slice(0, 200)}`);
      }
      return {
        result: state.end,
        url: withoutQuery(page.url()),
        title: state.title,
        text: state.text.slice(0, 200),
        steps,
        blocked,
        elapsed_ms: Date.now() - started,
      };
    }
    if (step > MAX_STEPS) throw new Error(`still at ${withoutQuery(page.url())} after ${MAX_STEPS} steps`);
    await act(step);
  }
}

let result;
let failed;
try {
  result = await within(timeoutMs, run,
    () => `${page ? ` at ${withoutQuery(page.url())}` : ' launching the browser'} (${steps.length} steps done)`);
} catch (err) {
  failed = err;
} finally {
  await browser?.close().catch((e) => log(`closing the browser: ${e.message}`));
}
if (failed) {
  console.error(`device: ${failed.message.split('\n')[0]}`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
