// The call page's summary in a real browser (Debian's Chromium, playwright-core), against
// the real gateway transcribing with pocketsphinx and summarizing with a fake
// OpenAI-compatible model here (JSON mode). A call where something was said shows its
// summary, key points, action items and sentiment; a silent call says nothing was said.
// Exits non-zero on the first failed check.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  ARTIFACTS, BIN, CORPUS, check, failed, freePort, launchBrowser, signIn, sleep, startServer,
} from './util.mjs';

const ANSWER = {
  summary: 'The caller asked the robot to go forward ten meters.',
  key_points: ['go forward', 'ten meters'],
  action_items: ['move the robot forward'],
  sentiment: 'positive',
};

// Chat completions in JSON mode, as OpenAI answers them: one chat.completion.
function fakeModel() {
  const requests = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const j = JSON.parse(body || '{}');
      requests.push(j);
      res.setHeader('Content-Type', 'application/json');
      if (req.url !== '/v1/chat/completions' || j.response_format?.type !== 'json_object') {
        res.statusCode = 400;
        res.end(JSON.stringify({ error: { message: 'expected JSON mode', type: 'invalid_request_error', param: null, code: null } }));
        return;
      }
      res.end(JSON.stringify({
        id: 'chatcmpl-1', object: 'chat.completion', created: 1700000000, model: j.model,
        choices: [{ index: 0, message: { role: 'assistant', content: JSON.stringify(ANSWER) }, finish_reason: 'stop' }],
      }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, requests, url: `http://127.0.0.1:${server.address().port}/v1` }));
  });
}

// Two seconds of digital silence, 8 kHz mono 16-bit.
function silentWav(path) {
  const n = 16000;
  const b = Buffer.alloc(44 + 2 * n);
  b.write('RIFF', 0); b.writeUInt32LE(36 + 2 * n, 4); b.write('WAVE', 8); b.write('fmt ', 12);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(8000, 24);
  b.writeUInt32LE(16000, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34); b.write('data', 36);
  b.writeUInt32LE(2 * n, 40);
  writeFileSync(path, b);
}

function simCall(base, wav, from) {
  const sim = spawn(BIN, ['sim', '--url', base, '--wav', wav, '--from', from], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => sim.on('exit', resolve));
}

async function sidFrom(page, from) {
  for (const end = Date.now() + 20000; Date.now() < end; await sleep(200)) {
    const body = await page.evaluate(() => fetch('/api/v1/calls').then((r) => r.json()));
    const c = (body.calls || []).find((x) => x.from === from);
    if (c) return c.sid;
  }
  check(false, `no call from ${from}`);
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'callstream-browser-'));
  const model = await fakeModel();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await startServer(dir, port, ['--agent', 'none', '--stt', 'pocketsphinx',
    '--stt-max-sessions', '1', '--stt-refine', '0', '--llm-url', model.url, '--llm-model', 'fake-model']);
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await signIn(page, base, server.password);

    // Something said: the summary, its lists and the sentiment.
    check(await simCall(base, join(CORPUS, 'wav/pocketsphinx_goforward.wav'), '+15550009001') === 0, 'the call failed');
    const sid = await sidFrom(page, '+15550009001');
    await page.goto(`${base}/calls_monitoring/${sid}`);
    await page.locator('#summary-body').waitFor({ state: 'visible', timeout: 60000 });
    check(await page.textContent('#summary-text') === ANSWER.summary, 'the summary text');
    check(await page.textContent('#summary-sentiment') === 'positive', 'the sentiment');
    const points = await page.locator('#summary-points li').allTextContents();
    check(points.join('|') === ANSWER.key_points.join('|'), `key points: ${points.join('|')}`);
    const actions = await page.locator('#summary-actions li').allTextContents();
    check(actions.join('|') === ANSWER.action_items.join('|'), `action items: ${actions.join('|')}`);
    check(/forward/.test(model.requests[0]?.messages?.[1]?.content || ''),
      `the model was not sent the transcript: ${JSON.stringify(model.requests[0])}`);
    await page.screenshot({ path: join(ARTIFACTS, 'summary-1-done.png') });

    // Nothing said: the page says so, and the model was not asked.
    const silence = join(dir, 'silence.wav');
    silentWav(silence);
    check(await simCall(base, silence, '+15550009002') === 0, 'the silent call failed');
    const quiet = await sidFrom(page, '+15550009002');
    await page.goto(`${base}/calls_monitoring/${quiet}`);
    await page.waitForFunction(() => /nothing was said/.test(document.querySelector('#summary-status').textContent),
      null, { timeout: 60000 });
    check(await page.locator('#summary-body').isHidden(), 'an empty summary is shown');
    check(model.requests.length === 1, `${model.requests.length} requests to the model`);
    await page.screenshot({ path: join(ARTIFACTS, 'summary-2-no-speech.png') });
    console.log('summary: all checks passed');
  } finally {
    await browser.close().catch(() => {});
    server.srv.kill('SIGTERM');
    await new Promise((r) => server.srv.on('exit', r));
    model.server.close();
    if (failed()) console.error(`kept ${dir}; the gateway said:\n${server.log().slice(-4000)}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
