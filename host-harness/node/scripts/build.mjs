// Builds the package: the component as the Rust host's build script builds it, transpiled by jco
// into gen/oauth2, TypeScript types generated from wit/ into gen/types, then src/ compiled to dist/
// and examples/ to dist-examples/.
//
//   node scripts/build.mjs [--component FILE] [--with-command]
//
// Without --component (or OAUTH2_PLUGIN_WASM), it runs the same cargo command as
// host-harness/runtime/build.rs, into the same target directory: the .wasm the Rust host embeds is
// the one transpiled here, and cargo rebuilds nothing when the Rust build already made it.
// --with-command also builds the oauth2-host command (debug, as `cargo test` leaves it) when it is
// missing: the tests compare components with it and run it as the Rust worker of a shared store.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, '..');
const workspace = resolve(pkg, '../..');
const gen = join(pkg, 'gen');

const { values } = parseArgs({
  options: { component: { type: 'string' }, 'with-command': { type: 'boolean', default: false } },
});

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (result.error) throw new Error(`could not run ${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status})`);
}

function buildComponent() {
  const targetDir = join(workspace, 'target', 'component');
  const env = { ...process.env, CARGO_TARGET_DIR: targetDir };
  // As the Rust build script: the component's build ignores flags meant for a host build.
  for (const name of Object.keys(env)) {
    if (name.startsWith('CARGO_PROFILE_')) delete env[name];
  }
  for (const name of ['CARGO_ENCODED_RUSTFLAGS', 'RUSTFLAGS', 'CARGO_BUILD_RUSTFLAGS',
    'RUSTC_WORKSPACE_WRAPPER', 'CARGO_BUILD_TARGET']) delete env[name];
  run('cargo', ['build', '--quiet', '--profile', 'component', '--target', 'wasm32-wasip2',
    '-p', 'oauth2-plugin', '--manifest-path', join(workspace, 'Cargo.toml')], { env });
  return join(targetDir, 'wasm32-wasip2', 'component', 'oauth2_plugin.wasm');
}

const { transpile, generateHostTypes } = await import('@bytecodealliance/jco-transpile');
// The type generator is itself a component on preview2-shim, which starts with no preopened
// directories: it may read the WIT directory and nothing else.
const { _setPreopens } = await import('@bytecodealliance/preview2-shim/filesystem');

const component = resolve(values.component ?? process.env.OAUTH2_PLUGIN_WASM ?? buildComponent());
if (!existsSync(component)) throw new Error(`no component at ${component}`);
const bytes = readFileSync(component);

rmSync(gen, { recursive: true, force: true });
mkdirSync(gen, { recursive: true });

// Sync instantiation: the host gives the imports and each instance is made on demand; the WASI
// clock and randomness are the host's own, not preview2-shim's.
const { files } = await transpile(component, {
  name: 'oauth2',
  instantiation: 'sync',
  wasiShim: false,
  outDir: join(gen, 'oauth2'),
  quiet: true,
});
for (const [name, data] of Object.entries(files)) {
  mkdirSync(dirname(name), { recursive: true });
  writeFileSync(name, patch(name, data));
}

const wit = join(workspace, 'wit');
_setPreopens({ [wit]: wit });
const types = await generateHostTypes(wit, {
  worldName: 'oauth2-plugin',
  instantiation: 'sync',
  outDir: join(gen, 'types') + '/',
});
for (const [name, data] of Object.entries(types)) {
  mkdirSync(dirname(name), { recursive: true });
  writeFileSync(name, data);
}

// The shared store's Redis scripts, the very files the Rust host compiles in.
mkdirSync(join(gen, 'redis'), { recursive: true });
for (const script of ['compare_and_swap.lua', 'release.lua']) {
  writeFileSync(join(gen, 'redis', script), readFileSync(join(workspace, 'host-harness/runtime/src/redis', script)));
}

writeFileSync(join(gen, 'component.json'), `${JSON.stringify({
  sha256: createHash('sha256').update(bytes).digest('hex'),
  bytes: bytes.length,
}, null, 2)}\n`);

const tsc = join(pkg, 'node_modules', 'typescript', 'bin', 'tsc');
run(process.execPath, [tsc, '-p', join(pkg, 'tsconfig.json')]);
// The example compiles against the package as a platform imports it, by name.
run(process.execPath, [tsc, '-p', join(pkg, 'examples', 'tsconfig.json')]);

if (values['with-command'] && !process.env.OAUTH2_HOST_BIN && !existsSync(join(workspace, 'target', 'debug', 'oauth2-host'))) {
  run('cargo', ['build', '--quiet', '-p', 'oauth2-host', '--manifest-path', join(workspace, 'Cargo.toml')]);
}

/**
 * Two changes to jco's sync-instantiation module, for speed only:
 *  - instantiate() probes for JSPI ten times with `try { WebAssembly.promising(f) } catch {}`.
 *    Node 20 has no JSPI, and each failed probe costs V8 about 9 ms building its TypeError's
 *    message: a test of the function's type first gives the same answer for free, and an instance
 *    costs about half a millisecond instead of 100 ms.
 *  - its debug logger reads process.env.JCO_DEBUG on every call; process.env is a slow getter,
 *    and reading it once at load takes a third off a warm call.
 * Each pattern must be found exactly as often as this jco version writes it, so a jco upgrade
 * that changes the output fails the build instead of silently losing the fix.
 */
function patch(name, data) {
  if (!name.endsWith('oauth2.js')) return data;
  let source = Buffer.from(data).toString('utf8');
  const replace = (from, to, expected) => {
    const found = source.split(from).length - 1;
    if (found !== expected) {
      throw new Error(`jco output changed: ${JSON.stringify(from)} found ${found} times, not ${expected}`);
    }
    source = source.replaceAll(from, to);
  };
  replace('WebAssembly.promising(', '_promisingIfAvailable(', 10);
  replace('if (!globalThis?.process?.env?.JCO_DEBUG) { return; }', 'if (!_jcoDebug) { return; }', 1);
  replace('\nexport function instantiate(',
    "\nconst _promisingIfAvailable = (f) => (typeof WebAssembly.promising === 'function' ? WebAssembly.promising(f) : f);\n"
    + 'const _jcoDebug = !!globalThis?.process?.env?.JCO_DEBUG;\n'
    + 'export function instantiate(', 1);
  return source;
}
