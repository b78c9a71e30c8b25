// Drives the `oauth2-host ui` page in Debian's headless Chromium (playwright-core) as a user
// would: fills in the form, stores the secrets, clicks "Test connection" (giving consent in the
// tab the page opens, for authorization code), waits for the checklist, saves the connection.
//
//   node ui.mjs PAGE_URL SPEC_JSON OUT_DIR
//
// SPEC_JSON: {"name": "...", "fields": {id: value}, "secrets": [{"field", "name", "value"}],
//             "api": URL, "file": "x.json", "consent": bool, "bad_token_url": URL}
// Writes OUT_DIR/NAME.png (the whole page), OUT_DIR/NAME-checklist.png (its Test section),
// OUT_DIR/NAME.html and OUT_DIR/NAME-responses.txt (every body the page received), and prints
// one JSON line: {"result", "status", "steps", "saved", "consent", "check_error"}.
// Exit 1 with a message on stderr on failure; the browser is always closed.
import fs from 'node:fs';
import path from 'node:path';
import { launchLoopbackOnly } from './launch.mjs';

const TIMEOUT_MS = 45_000;

const [pageUrl, specJson, outDir] = process.argv.slice(2);
if (!pageUrl || !specJson || !outDir) {
  console.error('usage: node ui.mjs PAGE_URL SPEC_JSON OUT_DIR');
  process.exit(2);
}
const spec = JSON.parse(specJson);
const log = (message) => console.error(`ui: ${message}`);

let browser;
try {
  let context;
  ({ browser, context } = await launchLoopbackOnly({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    timeoutMs: TIMEOUT_MS,
  }));
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  const origin = new URL(pageUrl).origin;
  const bodies = [];
  page.on('response', async (response) => {
    if (new URL(response.url()).origin !== origin) return;
    try { bodies.push(`${response.url()}\n${await response.text()}\n`); } catch (_) { /* redirects */ }
  });
  // The consent tab: the provider's page, whose Allow button sends the browser back to the
  // redirect URI, where oauth2-host waits.
  const consented = new Promise((resolve) => {
    context.on('page', async (tab) => {
      try {
        await tab.waitForLoadState('load');
        log(`consent tab at ${new URL(tab.url()).pathname}`);
        await tab.getByRole('button', { name: /allow/i }).click();
        await tab.waitForLoadState('load');
        resolve((await tab.locator('body').innerText()).trim());
      } catch (error) {
        resolve(`consent failed: ${error.message}`);
      }
    });
  });

  await page.goto(pageUrl);
  await page.waitForFunction(() => document.querySelectorAll('#preset option').length > 1);
  if (spec.fields.grant_type) await page.selectOption('#grant_type', spec.fields.grant_type);
  for (const [id, value] of Object.entries(spec.fields)) {
    if (id === 'grant_type') continue;
    const field = page.locator(`#${id}`);
    if ((await field.evaluate((el) => el.tagName)) === 'SELECT') await field.selectOption(value);
    else await field.fill(value);
  }
  // A wrong value first, when asked: "Check" must put its problem next to the field.
  let checkError = null;
  if (spec.bad_token_url) {
    await page.fill('#token_url', spec.bad_token_url);
    await page.click('#check');
    await page.waitForFunction(() => document.querySelector('.error[data-for="token_url"]').textContent !== '');
    checkError = await page.textContent('.error[data-for="token_url"]');
    await page.fill('#token_url', spec.fields.token_url);
  }
  for (const secret of spec.secrets ?? []) {
    await page.fill(`#${secret.field}`, secret.name);
    await page.fill(`#${secret.field}_value`, secret.value);
    await page.click(`button[data-store="${secret.field}"]`);
    await page.waitForFunction(
      (field) => document.querySelector(`[data-stored="${field}"]`).textContent.startsWith('Stored'),
      secret.field,
    );
    const left = await page.inputValue(`#${secret.field}_value`);
    if (left !== '') throw new Error(`the ${secret.field} value stayed in the page after storing`);
  }
  await page.fill('#api', spec.api);
  await page.click('#test');
  await page.waitForSelector('#test-status[data-result]');
  const result = await page.getAttribute('#test-status', 'data-result');
  const status = await page.textContent('#test-status');
  const steps = await page.$$eval('#checklist li', (items) => items.map((li) => ({
    step: li.querySelector('strong').textContent, passed: li.className === 'pass',
    detail: li.querySelector('.detail').textContent,
  })));
  fs.mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, `${spec.name}.png`), fullPage: true });
  await page.locator('fieldset', { has: page.locator('#checklist') })
    .screenshot({ path: path.join(outDir, `${spec.name}-checklist.png`) });
  let consent = null;
  if (spec.consent) consent = await consented;
  await page.fill('#file', spec.file);
  await page.click('#save');
  await page.waitForFunction(() => document.querySelector('#save-status').textContent !== '');
  const saved = await page.textContent('#save-status');
  fs.writeFileSync(path.join(outDir, `${spec.name}-responses.txt`), bodies.join('\n'));
  fs.writeFileSync(path.join(outDir, `${spec.name}.html`), await page.content());
  console.log(JSON.stringify({ result, status, steps, saved, consent, check_error: checkError }));
} catch (error) {
  console.error(`ui: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser?.close();
}
