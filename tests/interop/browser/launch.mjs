// Debian's headless Chromium for the kit's drivers (consent.mjs, ui.mjs, ../oidc-provider/device.mjs):
// launched off the network, with a context in which every request to a host other than this
// machine is aborted (oidc-provider's dev pages import Google fonts; nothing may leave).
import { chromium } from 'playwright-core';

// Chromium flags that keep a headless run off the network (Chromium's own background traffic is
// refused by a closed network, noisily). Playwright adds its own fresh --user-data-dir (a temporary
// profile it deletes on close) and refuses one in args; it also adds --no-sandbox (needed as root).
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * The browser and a loopback-only context. `onBlocked(method, url)` hears of each aborted request;
 * `ignoreHTTPSErrors` is playwright's option of that name.
 */
export async function launchLoopbackOnly({ executablePath, timeoutMs, ignoreHTTPSErrors = false, onBlocked = () => {} }) {
  const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: timeoutMs });
  const context = await browser.newContext({ ignoreHTTPSErrors });
  await context.route('**/*', (route) => {
    const { protocol, hostname } = new URL(route.request().url());
    if (!['http:', 'https:'].includes(protocol) || LOOPBACK.has(hostname)) return route.continue();
    onBlocked(route.request().method(), `${protocol}//${hostname}`);
    return route.abort('blockedbyclient');
  });
  return { browser, context };
}

/**
 * `work()`, or a rejection once `timeoutMs` has passed, saying how far the driver got: `where()`
 * is read then (" at <page>" or " launching the browser", and the steps done).
 */
export async function within(timeoutMs, work, where) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs / 1000} s${where()}`)), timeoutMs);
  });
  try {
    return await Promise.race([work(), late]);
  } finally {
    clearTimeout(timer);
  }
}
