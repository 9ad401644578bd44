// The monitoring pages in a real browser: Debian's Chromium, driven by playwright-core,
// against the real gateway while `callstream sim` plays a real recording into it.
// A hostile `next` on the login page is not kept, and signing in from there lands on
// the list. Sign in; the call appears in the list within 2 s; open it; press play; the page's
// counters show frames decoded and played and the waveform is not blank; the events log
// shows start and the DTMF digit; the transcript pane shows both speakers (the echo agent
// repeats the caller) and a caller's final replaced in place by its refined version; when
// the call ends the page says so. Screenshots go to
// $CS_ARTIFACTS. Exits non-zero on the first failed check.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  ARTIFACTS, BIN, CORPUS, check, failed, freePort, launchBrowser, signIn, sleep, startServer,
} from './util.mjs';

const DIGIT = '7';

// Values of `next` that could lead elsewhere after sign-in (raw, as the page reads them).
const HOSTILE_NEXT = ['/\t/evil.example', '//evil.example', '/\\evil.example', '/%2F/evil.example',
  '/%5Cevil.example', '/%09/evil.example', '/%252F/evil.example', '/x\r\nX-Evil: 1',
  '/%0d%0aX-Evil:%201', 'https://evil.example/', 'javascript:alert(1)', '/', '/%zz'];

// The login page keeps only a path of ours in its form's `next` (the server's rule), and a
// sign-in from the hostile example lands on the list, not on another site.
async function hostileNext(browser, base, password) {
  const context = await browser.newContext();
  const page = await context.newPage();
  for (const next of HOSTILE_NEXT) {
    await page.goto(`${base}/login?next=${encodeURIComponent(next)}`);
    const kept = await page.inputValue('#next');
    check(kept === '/calls_monitoring', `the login page kept next=${JSON.stringify(next)} as ${kept}`);
  }
  const ours = '/calls_monitoring/CA0123456789abcdef0123456789abcdef';
  await page.goto(`${base}/login?next=${encodeURIComponent(ours)}`);
  check(await page.inputValue('#next') === ours, 'the login page dropped a path of ours');
  await page.goto(`${base}/login?next=/%09/evil.example`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(`${base}/calls_monitoring`, { timeout: 10000 }),
    page.click('button[type=submit]')]);
  await context.close();
}

async function canvasHasInk(page) {
  return page.evaluate(() => {
    const c = document.querySelector('#waveform');
    if (!c || !c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    // not blank: pixels of more than one colour
    const first = d.slice(0, 4).join(',');
    let other = 0;
    for (let i = 4; i < d.length; i += 4 * 7) if (d.slice(i, i + 4).join(',') !== first) other++;
    return other > 20;
  });
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'callstream-browser-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await startServer(dir, port,
    ['--agent', 'echo', '--stt', 'pocketsphinx', '--stt-max-sessions', '2']);
  const browser = await launchBrowser();
  let sim;
  const consoleErrors = [];
  try {
    await hostileNext(browser, base, server.password);
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));

    // sign in: the list page sends us to the login page first
    await signIn(page, base, server.password);
    await page.screenshot({ path: join(ARTIFACTS, '1-list.png') });

    // a real recording, as a call; it shows up in the live list within 2 s
    sim = spawn(BIN, ['sim', '--url', base, '--wav', join(CORPUS, 'wav/jfk_inaugural_1961.wav'),
      '--dtmf', DIGIT], { stdio: ['ignore', 'pipe', 'inherit'] });
    const t0 = Date.now();
    const row = page.locator('#live-calls [data-sid]').first();
    await row.waitFor({ timeout: 20000 }); /* how fast is bench/listen's to say, not a test's */
    console.log(`the call appeared after ${Date.now() - t0} ms`);
    const sid = await row.getAttribute('data-sid');
    check(/^CA[0-9a-f]{32}$/.test(sid), `row without a call SID: ${sid}`);
    await page.screenshot({ path: join(ARTIFACTS, '2-list-live.png') });

    // open it and listen
    await Promise.all([page.waitForURL(`**/calls_monitoring/${sid}`),
      page.locator(`#live-calls [data-sid="${sid}"] a`).first().click()]);
    await page.click('#play');
    await page.waitForFunction(() => {
      const s = window.callstream && window.callstream.stats;
      return s && s.framesDecoded > 50 && s.framesPlayed > 50;
    }, null, { timeout: 8000 });
    const shown = JSON.parse(await page.textContent('#stats'));
    check(shown.framesDecoded > 50 && shown.framesPlayed > 50,
      `#stats says ${JSON.stringify(shown)}`);
    await page.waitForFunction(() => {
      const c = document.querySelector('#waveform');
      return c && c.width > 0;
    });
    await sleep(500);
    check(await canvasHasInk(page), 'the waveform canvas is blank');
    check(await page.locator('#events [data-type="start"]').count() >= 1, 'no start in the events log');
    await page.locator('#events [data-type="dtmf"]').first().waitFor({ timeout: 12000 });
    const dtmf = await page.textContent('#events [data-type="dtmf"]');
    check(dtmf.includes(DIGIT), `the dtmf entry does not show ${DIGIT}: ${dtmf}`);
    // the transcript pane: both speakers (the echo agent repeats the caller), finals black
    await page.locator('#transcript li.final[data-speaker="caller"]').first().waitFor({ timeout: 12000 });
    await page.locator('#transcript li[data-speaker="agent"]').first().waitFor({ timeout: 12000 });
    // a final is replaced in place by its refined version: the same id, one line
    const refined = page.locator('#transcript li.refined[data-speaker="caller"]').first();
    await refined.waitFor({ timeout: 12000 });
    const id = await refined.getAttribute('data-id');
    check(await page.locator(`#transcript li[data-id="${id}"]`).count() === 1,
      `segment ${id} is shown more than once`);
    await page.screenshot({ path: join(ARTIFACTS, '3-call-live.png') });

    // the call ends: the page says so
    await page.waitForFunction(() => /ended/i.test(document.querySelector('#state').textContent),
      null, { timeout: 20000 });
    await page.screenshot({ path: join(ARTIFACTS, '4-call-ended.png') });
    const stats = await page.evaluate(() => window.callstream.stats);
    check(stats.framesDropped === 0, `the server dropped ${stats.framesDropped} frames for us`);
    check(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
    console.log(`browser: all checks passed (${stats.framesPlayed} frames played, latency ` +
      `${Math.round(stats.latencyMs)} ms)`);
  } finally {
    await browser.close().catch(() => {});
    if (sim) await new Promise((r) => { if (sim.exitCode !== null) r(); else sim.on('exit', r); });
    server.srv.kill('SIGTERM');
    await new Promise((r) => server.srv.on('exit', r));
    if (failed()) console.error(`kept ${dir}; the gateway said:\n${server.log().slice(-4000)}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
