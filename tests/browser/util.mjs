// What the browser tests share: checks, a free port, the gateway started on it (its admin
// password read from its log), Debian's Chromium, and signing in.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BIN = process.env.CS_BIN || './callstream';
export const CORPUS = process.env.CS_CORPUS || '../tests/data/speech';
export const ARTIFACTS = process.env.CS_ARTIFACTS || 'test-artifacts';
const CHROMIUM = process.env.CS_CHROMIUM || '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let failures = 0;
/** Throws (and remembers) when `ok` is false. */
export function check(ok, what) {
  if (ok) return;
  failures++;
  throw new Error(`FAIL: ${what}`);
}
export const failed = () => failures > 0;

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** `callstream serve` on `port` with DATA_DIR in `dir` and `args`, once it listens. */
export async function startServer(dir, port, args) {
  const log = join(dir, 'server.log');
  const out = { stdio: ['ignore', 'pipe', 'pipe'] };
  const srv = spawn(BIN, ['serve', '--env-file', '/dev/null', '--port', String(port),
    '--data-dir', join(dir, 'data'), '--log-level', 'info', ...args], out);
  let text = '';
  const collect = (d) => { text += d; };
  srv.stdout.on('data', collect);
  srv.stderr.on('data', collect);
  // generously: decoders load first (seconds each on a busy machine)
  for (const end = Date.now() + 60000; Date.now() < end && !text.includes('listening on');) {
    await sleep(20);
  }
  check(text.includes('listening on'), `the gateway did not start:\n${text}`);
  const m = text.match(/created 'admin' with password ([0-9a-f]+)/);
  check(m, 'no admin password in the log');
  return { srv, password: m[1], log: () => text, logPath: log };
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
  });
}

/** From the list page, which sends us to the login page first. */
export async function signIn(page, base, password) {
  await page.goto(`${base}/calls_monitoring`);
  check(page.url().includes('/login'), `not sent to the login page: ${page.url()}`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL('**/calls_monitoring'), page.click('button[type=submit]')]);
}
