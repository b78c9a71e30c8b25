// The cost of a connector step in Node.js, to set beside the Rust host's (BENCHMARKS.md): the
// same component and configuration, a token already in the store.
//
//   npm run bench            (builds, then prints one line per case: µs per call)
// Each case runs in a process of its own (V8's optimisations and the collector's debt from one
// case would colour the next): 2,000 calls to warm up, then 15 samples of 2,000 calls. The cases
// take turns for three rounds, so the machine's drift reaches them all; reported is the median of
// the rounds' median samples, with the lowest and highest of them.
import { spawn, spawnSync } from 'node:child_process';
import { unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connection, MemoryTokenStore, OAuth2Plugin, RedisTokenStore, SealingKeys } from '../dist/index.js';
import { REDIS_PASSWORD, redisServer } from '../test/support.mjs';

const ROUNDS = 3;
const SAMPLES = 15;
const PER_SAMPLE = 2_000;
const CASES = {
  'authorization-headers': 'authorization-headers, reused instance',
  'decorate-request': 'decorate-request, reused instance',
  step: 'step: fresh instance + decorate-request',
  instantiate: 'fresh instance + validate-config',
  'redis-near': 'authorization-headers, Redis, near cache',
  'redis-direct': 'authorization-headers, Redis, every read',
};

const [, , only] = process.argv;
if (only === undefined) {
  console.log(`node ${process.version}, ${PER_SAMPLE} calls x ${SAMPLES} samples x ${ROUNDS} rounds; `
    + 'median µs per call [lowest .. highest round]');
  const rounds = Object.fromEntries(Object.keys(CASES).map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of Object.keys(CASES)) {
      const out = spawnSync(process.execPath, [fileURLToPath(import.meta.url), name], { encoding: 'utf8' });
      if (out.status !== 0) throw new Error(`${name}: ${out.stderr}`);
      rounds[name].push(JSON.parse(out.stdout).median);
    }
  }
  const results = {};
  for (const [name, label] of Object.entries(CASES)) {
    const sorted = rounds[name].sort((a, b) => a - b);
    results[name] = sorted[Math.floor(ROUNDS / 2)];
    console.log(`${label.padEnd(44)} ${results[name].toFixed(2).padStart(8)} µs   [${sorted[0].toFixed(2)} .. ${sorted[ROUNDS - 1].toFixed(2)}]`);
  }
  const ratio = (a, b) => (results[a] / results[b]).toFixed(2);
  console.log(`ratios: step / authorization-headers ${ratio('step', 'authorization-headers')}, `
    + `redis-near / memory ${ratio('redis-near', 'authorization-headers')}, `
    + `redis-direct / memory ${ratio('redis-direct', 'authorization-headers')}`);
  process.exit(0);
}

// A token endpoint in its own process (calls into the component block this thread), issuing a
// JWT-sized access token once; every measured call finds it in the store.
const jwt = `eyJ${Buffer.alloc(360, 'abcdefghij').toString('base64url').slice(0, 357)}`;
const provider = spawn(process.execPath, [fileURLToPath(new URL('../test/fixtures/echo-provider.mjs', import.meta.url)),
  jwt, 'refresh-token-bench'], { stdio: ['pipe', 'pipe', 'inherit'] });
const { url } = JSON.parse(await new Promise((done) => createInterface({ input: provider.stdout }).once('line', done)));

// The Rust benchmark's configuration, but for the token URL, which must be reachable here.
const config = connection({
  grantType: 'client-credentials',
  tokenUrl: `${url}/token`,
  clientId: 'connector-7f3a',
  clientSecretName: 'client-secret',
  audience: 'https://api.example.com',
  resourceIndicators: ['https://api.example.com/v1'],
  scope: 'openid profile email orders:read',
});
const apiUrl = 'https://api.example.com/v1/orders?status=open&limit=50';
const request = {
  method: 'GET',
  url: apiUrl,
  headers: [{ name: 'Accept', value: 'application/json' }, { name: 'User-Agent', value: 'connector-runtime/1.0' }],
  body: new Uint8Array(),
};
const secrets = (name) => (name === 'client-secret' ? 'bench-secret' : undefined);

let redis;
let store = new MemoryTokenStore();
if (only.startsWith('redis-')) {
  redis = await redisServer();
  const keyFile = join(tmpdir(), `oauth2-bench-${process.pid}.key`);
  writeFileSync(keyFile, `${SealingKeys.newKeyLine()}\n`, { mode: 0o600 });
  store = await RedisTokenStore.open({
    url: redis.url,
    password: REDIS_PASSWORD,
    keys: SealingKeys.fromFile(keyFile),
    nearCacheMs: only === 'redis-near' ? 2_000 : 0,
  });
  unlinkSync(keyFile);
}
const plugin = new OAuth2Plugin({ secrets, store, instancePerCall: only === 'step' || only === 'instantiate' });
plugin.ensureToken(config);
const call = {
  'authorization-headers': () => plugin.authorizationHeaders(config, apiUrl),
  'decorate-request': () => plugin.decorateRequest(config, request),
  step: () => plugin.decorateRequest(config, request),
  instantiate: () => plugin.validateConfig(config),
  'redis-near': () => plugin.authorizationHeaders(config, apiUrl),
  'redis-direct': () => plugin.authorizationHeaders(config, apiUrl),
}[only];

for (let i = 0; i < PER_SAMPLE; i++) call();
const samples = [];
for (let s = 0; s < SAMPLES; s++) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < PER_SAMPLE; i++) call();
  samples.push(Number(process.hrtime.bigint() - start) / 1000 / PER_SAMPLE);
}
samples.sort((a, b) => a - b);
console.log(JSON.stringify({ median: samples[Math.floor(SAMPLES / 2)] }));
await plugin.close();
if (redis) {
  await store.close();
  await redis.stop();
}
provider.kill();
