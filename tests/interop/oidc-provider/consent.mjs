// Plays the browser through oidc-provider's dev login and consent pages with a cookie jar.
//
//   node consent.mjs AUTHORIZATION_URL [--login NAME] [--abort]
//
// Follows redirects by hand, submits the login form (dev interactions accept any login/password)
// and the consent form (or the abort link with --abort), and finally requests the redirect URI, so
// that whoever listens there (oauth2-host authorize) receives the code. Prints the final URL on
// stdout, and the last response's status and body on stderr. Exit 0 when the final answer is 2xx.
import { parseArgs } from 'node:util';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { login: { type: 'string', default: 'alice' }, abort: { type: 'boolean', default: false } },
});
if (positionals.length !== 1) {
  console.error('usage: node consent.mjs AUTHORIZATION_URL [--login NAME] [--abort]');
  process.exit(2);
}

const jar = new Map(); // origin -> Map(cookie name -> value); paths ignored, enough for one provider
function remember(url, res) {
  const { origin } = new URL(url);
  const cookies = jar.get(origin) ?? new Map();
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i).trim();
    const expired = attrs.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now());
    if (expired) cookies.delete(name); else cookies.set(name, pair.slice(i + 1).trim());
  }
  jar.set(origin, cookies);
}
const cookieHeader = (url) => [...(jar.get(new URL(url).origin) ?? [])].map(([k, v]) => `${k}=${v}`).join('; ');

async function request(url, { method = 'GET', form } = {}) {
  const headers = { cookie: cookieHeader(url), accept: 'text/html' };
  let body;
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const res = await fetch(url, { method, headers, body, redirect: 'manual' });
  remember(url, res);
  console.error(`${method} ${url} -> ${res.status}`);
  return res;
}

// Follow redirects; return the final non-redirect response and its URL.
async function follow(url, init) {
  let res = await request(url, init);
  for (let hops = 0; res.status >= 300 && res.status < 400; hops += 1) {
    if (hops > 20) throw new Error('too many redirects');
    url = new URL(res.headers.get('location'), url).href;
    res = await request(url);
  }
  return { url, res, text: await res.text() };
}

const attr = (tag, name) => new RegExp(`${name}="([^"]*)"`).exec(tag)?.[1];
const unescape = (s) => s.replace(/&amp;/g, '&').replace(/&#x2F;/g, '/').replace(/&quot;/g, '"').replace(/&#39;/g, "'");
// A page's text without markup: oidc-provider's error page puts 2 KB of CSS before the error.
const visibleText = (html) => unescape(html.replace(/<(style|script)\b[\s\S]*?<\/\1>/gi, '')
  .replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim());

// The page's POST form: its action and its inputs (hidden values kept, login fields filled).
function parseForm(html, pageUrl) {
  const form = /<form[^>]*method="post"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return null;
  const action = new URL(unescape(attr(form[0], 'action')), pageUrl).href;
  const fields = {};
  for (const [input] of form[1].matchAll(/<input[^>]*>/g)) {
    const name = attr(input, 'name');
    if (name) fields[name] = unescape(attr(input, 'value') ?? '');
  }
  if ('login' in fields) fields.login = opts.login;
  if ('password' in fields) fields.password = 'any-password';
  return { action, fields };
}

let page = await follow(positionals[0]);
for (let step = 0; step < 5; step += 1) {
  if (opts.abort && /<a[^>]*href="([^"]*abort[^"]*)"/.test(page.text)) {
    const href = unescape(/<a[^>]*href="([^"]*abort[^"]*)"/.exec(page.text)[1]);
    page = await follow(new URL(href, page.url).href);
    break;
  }
  const form = parseForm(page.text, page.url);
  if (!form) break; // left the provider's pages: we are at the redirect URI
  console.error(`submitting ${form.fields.prompt ?? 'form'} at ${form.action}`);
  page = await follow(form.action, { method: 'POST', form: form.fields });
}

console.log(page.url);
console.error(`final ${page.res.status}: ${visibleText(page.text).slice(0, 500)}`);
process.exit(page.res.ok ? 0 : 1);
