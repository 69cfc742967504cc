// Drives dap-sidecar with Microsoft's DebugClient (@vscode/debugadapter-testsupport),
// the client VS Code's own adapter tests use, against real debugpy.
//
// Run: bash tests/node/run.sh (after `cargo build`; uses the debugpy venv the Rust tests
// create in target/tmp, or creates it).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DebugClient } from '@vscode/debugadapter-testsupport';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TOKEN = 'node-test-token-0123456789';
const SOON = 30_000;
const children = [];

/** The python of a venv with the pinned debugpy (shared with the Rust tests). */
function python() {
  if (process.env.DAP_SIDECAR_TEST_PYTHON) return process.env.DAP_SIDECAR_TEST_PYTHON;
  const venv = path.join(repo, 'target/tmp/debugpy-venv');
  const py = path.join(venv, 'bin/python');
  const wanted = fs.readFileSync(path.join(repo, 'tests/requirements.txt'), 'utf8');
  const marker = path.join(venv, '.installed');
  if (!fs.existsSync(marker) || fs.readFileSync(marker, 'utf8') !== wanted) {
    execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
    execFileSync(py, ['-m', 'pip', 'install', '--quiet', '-r', path.join(repo, 'tests/requirements.txt')], { stdio: 'inherit' });
    fs.writeFileSync(marker, wanted);
  }
  return py;
}

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

/** Collects a stream's lines; `wait(pred)` resolves with the first matching line. */
class Lines extends EventEmitter {
  constructor(stream) {
    super();
    this.lines = [];
    readline.createInterface({ input: stream }).on('line', (line) => {
      this.lines.push(line);
      this.emit('line', line);
    });
  }
  wait(pred, timeout = SOON, from = 0) {
    const seen = this.lines.slice(from).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('line', on);
        reject(new Error(`timed out waiting for a line; got:\n${this.lines.slice(-20).join('\n')}`));
      }, timeout);
      const on = (line) => {
        if (pred(line)) {
          clearTimeout(timer);
          this.off('line', on);
          resolve(line);
        }
      };
      this.on('line', on);
    });
  }
}

function breakLine() {
  const src = fs.readFileSync(path.join(repo, 'tests/fixtures/app/main.py'), 'utf8').split('\n');
  return src.findIndex((l) => l.includes('# BREAK')) + 1;
}

/** The fixture app under debugpy in <tmp>/usr/src/app, and a checkout in <tmp>/checkout. */
async function startApp() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dap-sidecar-node-'));
  const remoteRoot = path.join(dir, 'usr/src/app');
  const localRoot = path.join(dir, 'checkout');
  for (const root of [remoteRoot, localRoot]) {
    fs.mkdirSync(root, { recursive: true });
    fs.copyFileSync(path.join(repo, 'tests/fixtures/app/main.py'), path.join(root, 'main.py'));
  }
  const port = await freePort();
  const child = spawn(python(), ['-Xfrozen_modules=off', '-m', 'debugpy', '--listen', `127.0.0.1:${port}`,
    path.join(remoteRoot, 'main.py')], { cwd: remoteRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const stdout = new Lines(child.stdout);
  await stdout.wait((l) => l === 'app started');
  return { dir, remoteRoot, localRoot, port, stdout };
}

async function startSidecar(yaml) {
  const config = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dap-sidecar-cfg-')), 'sidecar.yaml');
  fs.writeFileSync(config, `host: 127.0.0.1\nport: 0\nhttp:\n  host: 127.0.0.1\n  port: 0\n${yaml}`);
  const bin = process.env.DAP_SIDECAR_BIN ?? path.join(repo, 'target/debug/dap-sidecar');
  const child = spawn(bin, ['--config', config, '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  const log = new Lines(child.stderr);
  const bound = JSON.parse(await log.wait((l) => l.includes('DAP listener bound')));
  return { port: Number(bound.addr.split(':').pop()), log };
}

function sidecarConfig(app, localRoot) {
  return `upstream: 127.0.0.1:${app.port}\nupstream_timeout: 20s\n` +
    `path_mappings:\n  - local_root: '${localRoot}'\n    remote_root: '${app.remoteRoot}'\n` +
    `auth:\n  token: ${TOKEN}\n`;
}

function tickAbove(app, n) {
  return app.stdout.wait((l) => l.startsWith('tick ') && Number(l.slice(5)) > n);
}

let app;
before(async () => { app = await startApp(); });
after(() => { for (const c of children) c.kill('SIGKILL'); });

/** Attach without pathMappings, break at a local path, evaluate, continue, disconnect. */
async function debugSession(localRoot, localMain, extraAttach = {}) {
  const sidecar = await startSidecar(sidecarConfig(app, localRoot));
  const dc = new DebugClient('unused', 'unused', 'debugpy');
  dc.defaultTimeout = SOON;
  await dc.start(sidecar.port);
  try {
    await dc.initializeRequest({ adapterID: 'debugpy', clientID: 'vscode', pathFormat: 'path',
      linesStartAt1: true, columnsStartAt1: true, supportsStartDebuggingRequest: true });
    const attached = dc.attachRequest({ connect: { host: '127.0.0.1', port: sidecar.port },
      token: TOKEN, justMyCode: false, ...extraAttach });
    await dc.waitForEvent('initialized');
    // DebugClient only sees events that arrive after it starts waiting.
    const stopped = dc.assertStoppedLocation('breakpoint', { path: localMain, line: breakLine() });
    const bps = await dc.setBreakpointsRequest({ source: { path: localMain }, breakpoints: [{ line: breakLine() }] });
    assert.equal(bps.body.breakpoints[0].verified, true, JSON.stringify(bps.body));
    await dc.configurationDoneRequest();
    await attached;

    const trace = await stopped;
    const frame = trace.body.stackFrames[0];
    assert.equal(frame.source.path, localMain, 'stack frames carry the local path');
    const n = Number((await dc.evaluateRequest({ expression: 'n', frameId: frame.id, context: 'repl' })).body.result);
    const times10 = await dc.evaluateRequest({ expression: 'n * 10', frameId: frame.id, context: 'repl' });
    assert.equal(times10.body.result, String(n * 10));

    await dc.setBreakpointsRequest({ source: { path: localMain }, breakpoints: [] });
    const threadId = (await dc.threadsRequest()).body.threads[0].id;
    await dc.continueRequest({ threadId });
    await tickAbove(app, n);
    await dc.disconnectRequest({ terminateDebuggee: false });
    const after = app.stdout.lines.length;
    await app.stdout.wait((l) => l.startsWith('tick '), SOON, after);
  } finally {
    dc.stopAdapter();
  }
}

test('DebugClient attaches through the sidecar with a POSIX checkout', async () => {
  await debugSession(app.localRoot, path.join(app.localRoot, 'main.py'));
});

test('DebugClient attaches with the seed\'s Windows root, sending C: for c:', async () => {
  const root = 'c:\\Users\\Penny\\Documents\\Software\\home-assistant\\';
  await debugSession(root, 'C:\\Users\\Penny\\Documents\\Software\\home-assistant\\main.py', { clientOS: 'windows' });
});

test('a wrong token is refused with a message saying what to do', async () => {
  const sidecar = await startSidecar(sidecarConfig(app, app.localRoot));
  const dc = new DebugClient('unused', 'unused', 'debugpy');
  dc.defaultTimeout = SOON;
  await dc.start(sidecar.port);
  try {
    await dc.initializeRequest({ adapterID: 'debugpy', clientID: 'vscode' });
    await assert.rejects(
      dc.attachRequest({ connect: { host: '127.0.0.1', port: sidecar.port }, token: 'wrong-wrong-wrong-wrong' }),
      /token is wrong/,
    );
    await sidecar.log.wait((l) => l.includes('wrong_token'));
    // The sidecar answers the disconnect IDEs send after a failed attach.
    await dc.disconnectRequest({});
  } finally {
    dc.stopAdapter();
  }
});
