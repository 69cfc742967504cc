// Attach on demand with Microsoft's DebugClient: an app started as plain
// `python3.14 main.py` in the Debian sid root of scripts/py314-root.sh (chroot, its own
// /proc; no debugpy anywhere in it), dap-sidecar on the host with `inject.mode: auto`.
// Needs root; skipped otherwise.
//
// Run: bash tests/node/run.sh (after `cargo build`).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DebugClient } from '@vscode/debugadapter-testsupport';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TOKEN = 'node-inject-token-0123456789';
const SOON = 30_000;
const cache = process.env.DAP_SIDECAR_PY314_CACHE ?? '/var/cache/dap-sidecar';
const children = [];
const cleanups = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const f of cleanups) f();
});

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** The lines of a stream; `wait(pred, from)` resolves with the first match. */
function lines(stream) {
  const all = [];
  const waiters = new Set();
  readline.createInterface({ input: stream }).on('line', (line) => {
    all.push(line);
    for (const w of waiters) w(line);
  });
  const wait = (pred, from = 0) => {
    const seen = all.slice(from).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(on);
        reject(new Error(`timed out; last lines:\n${all.slice(-20).join('\n')}`));
      }, SOON);
      const on = (line) => {
        if (pred(line)) {
          clearTimeout(timer);
          waiters.delete(on);
          resolve(line);
        }
      };
      waiters.add(on);
    });
  };
  return { all, wait };
}

const fixture = path.join(repo, 'tests/fixtures/app/main.py');
const breakLine = fs.readFileSync(fixture, 'utf8').split('\n').findIndex((l) => l.includes('# BREAK')) + 1;

/** The fixture app as plain python3.14 in the sid root; its checkout on the host. */
function startApp() {
  execFileSync('bash', [path.join(repo, 'scripts/py314-root.sh')], { stdio: 'inherit' });
  const root = path.join(cache, 'sid-minbase-python3.14-v1');
  const name = `node-${process.pid}`;
  const inside = `/srv/${name}`;
  fs.mkdirSync(path.join(root, inside), { recursive: true });
  fs.copyFileSync(fixture, path.join(root, inside, 'main.py'));
  const checkout = fs.mkdtempSync(path.join(os.tmpdir(), 'dap-sidecar-node-inject-'));
  fs.copyFileSync(fixture, path.join(checkout, 'main.py'));
  cleanups.push(() => fs.rmSync(path.join(root, inside), { recursive: true, force: true }));
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
    'root=$1; shift; mount -t proc proc "$root/proc" && exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin "$@"',
    'sh', root, 'python3.14', '-u', `${inside}/main.py`], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return { pid: child.pid, inside, checkout, stdout: lines(child.stdout) };
}

async function startSidecar(app) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dap-sidecar-cfg-'));
  const config = path.join(dir, 'sidecar.yaml');
  fs.writeFileSync(config, `host: 127.0.0.1\nport: 0\nhttp:\n  host: 127.0.0.1\n  port: 0\n` +
    `upstream: 127.0.0.1:${await freePort()}\nupstream_timeout: 20s\nauth:\n  token: ${TOKEN}\n` +
    `target:\n  pid: ${app.pid}\npath_mappings:\n  - local_root: '${app.checkout}'\n    remote_root: '${app.inside}'\n` +
    `inject:\n  mode: auto\n  debugpy: '${path.join(cache, 'debugpy-1.8.22-cp314/site')}'\n`);
  const bin = process.env.DAP_SIDECAR_BIN ?? path.join(repo, 'target/debug/dap-sidecar');
  const child = spawn(bin, ['--config', config, '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  const log = lines(child.stderr);
  const bound = JSON.parse(await log.wait((l) => l.includes('DAP listener bound')));
  return { port: Number(bound.addr.split(':').pop()), log };
}

/** One session; returns the console output the client saw. */
async function debugSession(app, sidecar) {
  const localMain = path.join(app.checkout, 'main.py');
  const dc = new DebugClient('unused', 'unused', 'debugpy');
  dc.defaultTimeout = SOON;
  const console = [];
  dc.on('output', (e) => console.push(e.body.output));
  await dc.start(sidecar.port);
  try {
    await dc.initializeRequest({ adapterID: 'debugpy', clientID: 'vscode', pathFormat: 'path',
      linesStartAt1: true, columnsStartAt1: true });
    const attached = dc.attachRequest({ connect: { host: '127.0.0.1', port: sidecar.port },
      token: TOKEN, justMyCode: false });
    await dc.waitForEvent('initialized');
    const stopped = dc.assertStoppedLocation('breakpoint', { path: localMain, line: breakLine });
    const bps = await dc.setBreakpointsRequest({ source: { path: localMain }, breakpoints: [{ line: breakLine }] });
    assert.equal(bps.body.breakpoints[0].verified, true, JSON.stringify(bps.body));
    await dc.configurationDoneRequest();
    await attached;
    const frame = (await stopped).body.stackFrames[0];
    const n = Number((await dc.evaluateRequest({ expression: 'n', frameId: frame.id, context: 'repl' })).body.result);
    assert.ok(n > 0);
    await dc.setBreakpointsRequest({ source: { path: localMain }, breakpoints: [] });
    const threadId = (await dc.threadsRequest()).body.threads[0].id;
    await dc.continueRequest({ threadId });
    await app.stdout.wait((l) => l.startsWith('tick ') && Number(l.slice(5)) > n);
    await dc.disconnectRequest({ terminateDebuggee: false });
  } finally {
    dc.stopAdapter();
  }
  return console.join('');
}

const isRoot = process.getuid?.() === 0;

test('DebugClient attaches on demand to a plain python3.14 app, twice, injecting once', { skip: !isRoot && 'needs root' }, async () => {
  const app = startApp();
  await app.stdout.wait((l) => l === 'app started');
  const sidecar = await startSidecar(app);
  const first = await debugSession(app, sidecar);
  assert.match(first, /started debugpy in the app/);
  const second = await debugSession(app, sidecar);
  assert.doesNotMatch(second, /started debugpy in the app/);
  const injected = sidecar.log.all.filter((l) => l.includes('debugpy started in the app on demand'));
  assert.equal(injected.length, 1);
  const from = app.stdout.all.length;
  await app.stdout.wait((l) => l.startsWith('tick '), from);
});
