// The embedding guide's Node.js example works as shown: compiled from examples/minimal.ts, run
// against Authlib, and the guide holds the file as it is.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { authlib, SPECIAL_SECRET, workspace } from './support.mjs';

const example = fileURLToPath(new URL('../examples/minimal.ts', import.meta.url));

test('the minimal example gets a token and calls the API', async (t) => {
  const server = await authlib();
  t.after(() => server.stop());
  const out = spawnSync(process.execPath, [fileURLToPath(new URL('../dist-examples/minimal.js', import.meta.url)),
    server.info.token_url, server.info.api_url, 'cc-basic'],
  { encoding: 'utf8', env: { ...process.env, CLIENT_SECRET: SPECIAL_SECRET }, timeout: 30_000 });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /^200 /);
  assert.equal(JSON.parse(out.stdout.slice(4)).client_id, 'cc-basic');

  const refused = spawnSync(process.execPath, [fileURLToPath(new URL('../dist-examples/minimal.js', import.meta.url)),
    server.info.token_url, server.info.api_url, 'cc-basic'],
  { encoding: 'utf8', env: { ...process.env, CLIENT_SECRET: 'wrong' }, timeout: 30_000 });
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /^provider: token endpoint answered 40\d invalid_client/);
});

test('docs/embedding.md shows the example as it is', () => {
  const guide = readFileSync(`${workspace}/docs/embedding.md`, 'utf8');
  const start = '<!-- host-harness/node/examples/minimal.ts: start -->\n```ts\n';
  const end = '```\n<!-- host-harness/node/examples/minimal.ts: end -->';
  assert.ok(guide.includes(start) && guide.includes(end), 'the guide marks where the example starts and ends');
  const shown = guide.split(start)[1].split(end)[0];
  assert.equal(shown, readFileSync(example, 'utf8'),
    'docs/embedding.md shows an old copy of host-harness/node/examples/minimal.ts; paste the file in again');
});
