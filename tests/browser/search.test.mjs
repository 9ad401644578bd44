// The calls page's search box and filters in a real browser (Debian's Chromium,
// playwright-core) against the real gateway transcribing with pocketsphinx: two calls
// played by `callstream sim` with different speech; a word one of them said finds that
// call only, with its matching line (the word in <mark>); the search is in the URL and
// survives a reload; a filter by number; a bad filter's error shown; and while filtered,
// the live panel still shows a new call, which the filtered list leaves out until the
// filters are cleared. Exits non-zero on the first failed check.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  ARTIFACTS, BIN, CORPUS, check, failed, freePort, launchBrowser, signIn, sleep, startServer,
} from './util.mjs';

const A = { from: '+15550004001', clip: 'pocketsphinx_goforward' }; // "go forward ten meters"
const B = { from: '+15550004002', clip: 'librivox_sense_sensibility_01-0880' }; // "he was not…"
const C = { from: '+15550004003', clip: 'pocketsphinx_cards_001' }; // "ten of clubs"

function call(base, c) {
  const sim = spawn(BIN, ['sim', '--url', base, '--from', c.from,
    '--wav', join(CORPUS, `ulaw8k/${c.clip}.wav`)], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => sim.on('exit', (code) => resolve(code)));
}

// The API as the signed-in page sees it.
const api = (page, target) => page.evaluate(async (t) => (await fetch(t)).json(), target);

async function waitFor(what, fn, timeoutMs = 60000) {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(200)) {
    if (await fn()) return;
  }
  check(false, `never: ${what}`);
}

const recentFroms = (page) => page.$$eval('#recent-calls tr[data-sid] td[data-label=From]',
  (tds) => tds.map((td) => td.textContent));

async function search(page, fields) {
  for (const [name, value] of Object.entries(fields)) {
    await page.fill(`#filters [name=${name}]`, value);
  }
  await page.click('#filters button[type=submit]');
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'callstream-browser-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await startServer(dir, port, ['--agent', 'none', '--stt', 'pocketsphinx',
    '--stt-max-sessions', '2']);
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await signIn(page, base, server.password);
    check(await call(base, A) === 0, 'the simulated call A failed');
    check(await call(base, B) === 0, 'the simulated call B failed'); // B is the newer
    // the transcripts are stored once the calls' sessions are done
    await waitFor('both calls transcribed', async () => {
      const [a, b] = await Promise.all([api(page, '/api/v1/calls?q=forward'),
        api(page, '/api/v1/calls?q=young')]);
      return a.calls?.length === 1 && b.calls?.length === 1;
    });

    // A word only A said: A only, with its line.
    await page.reload();
    await page.locator('#recent-calls tr[data-sid]').nth(1).waitFor();
    await search(page, { q: 'forward' });
    await page.waitForURL('**/calls_monitoring?q=forward');
    await waitFor('the search answered', async () => (await recentFroms(page)).join() === A.from, 10000);
    const match = page.locator('#recent-calls tr.match');
    check(await match.count() === 1, 'no matching line shown');
    check(/^Caller: /.test(await match.textContent()), `line: ${await match.textContent()}`);
    check(await match.locator('mark').first().textContent() === 'forward',
      `marked: ${await match.locator('mark').first().textContent()}`);
    await page.screenshot({ path: join(ARTIFACTS, 'search-1-found.png') });

    // The search is the page's URL: a reload (or a link) shows it again.
    await page.reload();
    await waitFor('the search after a reload', async () => (await recentFroms(page)).join() === A.from, 10000);
    check(await page.inputValue('#filters [name=q]') === 'forward', 'the search box lost its text');

    // A number filter, the search cleared; a word nobody said.
    await search(page, { q: '', from: B.from });
    await waitFor('filtered by number', async () => (await recentFroms(page)).join() === B.from, 10000);
    await search(page, { from: '', q: 'elephant' });
    await waitFor('nothing matches', async () => (await recentFroms(page)).length === 0, 10000);
    check(/No calls match/.test(await page.$eval('#recent-calls', (t) => t.dataset.empty)),
      'no "no calls match" note');

    // A bad filter from a link: the API's reason shown.
    await page.goto(`${base}/calls_monitoring?status=bogus`);
    await page.locator('#recent-error').waitFor({ state: 'visible' });
    check(/status 'bogus' is not one of/.test(await page.textContent('#recent-error')),
      `error: ${await page.textContent('#recent-error')}`);

    // Filtered by A's number, a new call from C: live panel shows it, the list does not.
    await page.goto(`${base}/calls_monitoring?from=${encodeURIComponent(A.from)}`);
    await waitFor('filtered by A', async () => (await recentFroms(page)).join() === A.from, 10000);
    const ended = call(base, C);
    await page.locator('#live-calls tr[data-sid]').first().waitFor({ timeout: 20000 });
    check(await ended === 0, 'the simulated call C failed');
    await page.locator('#live-calls tr[data-sid]').first().waitFor({ state: 'detached', timeout: 20000 });
    await sleep(2500); // the list reloads a moment after a call ends
    check((await recentFroms(page)).join() === A.from, `filtered list: ${await recentFroms(page)}`);
    await page.click('#clear');
    await page.waitForURL((u) => u.search === '');
    await waitFor('every call once cleared',
      async () => (await recentFroms(page)).join() === [C.from, B.from, A.from].join(), 10000);
    await page.screenshot({ path: join(ARTIFACTS, 'search-2-cleared.png') });
    // Back: the filter again.
    await page.goBack();
    await waitFor('back to the filter', async () => (await recentFroms(page)).join() === A.from, 10000);
    check(await page.inputValue('#filters [name=from]') === A.from, 'the from box after Back');
    console.log('search: all checks passed');
  } finally {
    await browser.close().catch(() => {});
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
