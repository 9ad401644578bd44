// The call page's Hang up and Transfer buttons in a real browser (Debian's Chromium,
// playwright-core), against the real gateway whose call control speaks to a fake of
// Twilio's REST API here, while `callstream sim` plays a call into it. Transfer asks for
// a number and a confirm (dismissed: nothing is sent; a number that is not E.164: nothing
// is sent), then sends <Dial>; Hang up asks for a confirm, ends the call at Twilio and
// closes our side: the page says the call ended. Exits non-zero on the first failed check.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  ARTIFACTS, BIN, CORPUS, check, failed, freePort, launchBrowser, signIn, startServer,
} from './util.mjs';

const ACCOUNT = 'AC00000000000000000000000000000000';
const KEY = 'SK00000000000000000000000000000001';
const SECRET = 'api-secret';

// Twilio's Calls update, as far as the page needs it: Basic auth checked, the form kept.
function fakeTwilio() {
  const requests = [];
  const auth = `Basic ${Buffer.from(`${KEY}:${SECRET}`).toString('base64')}`;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const m = req.url.match(/^\/2010-04-01\/Accounts\/(AC[0-9a-f]{32})\/Calls\/(CA[0-9a-f]{32})\.json$/);
      res.setHeader('Content-Type', 'application/json');
      if (req.headers.authorization !== auth) {
        res.statusCode = 401;
        res.end(JSON.stringify({ code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 }));
        return;
      }
      if (req.method !== 'POST' || !m || m[1] !== ACCOUNT) {
        res.statusCode = 404;
        res.end(JSON.stringify({ code: 20404, message: 'The requested resource was not found', more_info: 'https://www.twilio.com/docs/errors/20404', status: 404 }));
        return;
      }
      const form = new URLSearchParams(body);
      requests.push({ sid: m[2], form });
      res.end(JSON.stringify({ sid: m[2], account_sid: ACCOUNT, status: form.get('Status') || 'in-progress' }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, requests, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'callstream-browser-'));
  const twilio = await fakeTwilio();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await startServer(dir, port, ['--agent', 'none', '--stt', 'none',
    '--twilio-account-sid', ACCOUNT, '--twilio-api-key', KEY, '--twilio-api-secret', SECRET,
    '--twilio-api-url', twilio.url]);
  const browser = await launchBrowser();
  let sim;
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await signIn(page, base, server.password);
    sim = spawn(BIN, ['sim', '--url', base, '--wav', join(CORPUS, 'wav/jfk_inaugural_1961.wav')],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    const row = page.locator('#live-calls [data-sid]').first();
    await row.waitFor({ timeout: 20000 });
    const sid = await row.getAttribute('data-sid');
    await Promise.all([page.waitForURL(`**/calls_monitoring/${sid}`),
      page.locator(`#live-calls [data-sid="${sid}"] a`).first().click()]);
    await page.locator('#control').waitFor({ state: 'visible', timeout: 10000 });

    // Transfer: the prompt dismissed, then a number that is not one: nothing sent.
    page.once('dialog', (d) => d.dismiss());
    await page.click('#transfer');
    page.once('dialog', (d) => d.accept('reception'));
    await page.click('#transfer');
    await page.waitForFunction(() => /not an E\.164/.test(document.querySelector('#control-status').textContent));
    check(twilio.requests.length === 0, 'a dismissed or bad transfer reached Twilio');
    // Then a number, confirmed: <Dial> as the call's TwiML.
    const dialogs = [];
    const answer = (d) => { dialogs.push(d.type()); d.type() === 'prompt' ? d.accept('+15550001111') : d.accept(); };
    page.on('dialog', answer);
    await page.click('#transfer');
    await page.waitForFunction(() => /Transfer: done/.test(document.querySelector('#control-status').textContent),
      null, { timeout: 10000 });
    page.off('dialog', answer);
    check(dialogs.join() === 'prompt,confirm', `transfer asked ${dialogs.join()}`);
    const t = twilio.requests[0];
    check(t && t.sid === sid && /<Dial>\+15550001111<\/Dial>/.test(t.form.get('Twiml') || ''),
      `transfer sent ${t && t.form.toString()}`);
    await page.screenshot({ path: join(ARTIFACTS, 'control-1-transfer.png') });

    // Hang up, confirmed: Twilio is told and the call ends on the page.
    page.once('dialog', (d) => { check(d.type() === 'confirm', 'hang up without a confirm'); d.accept(); });
    await page.click('#hangup');
    await page.waitForFunction(() => /ended/i.test(document.querySelector('#state').textContent),
      null, { timeout: 20000 });
    const h = twilio.requests[1];
    check(h && h.sid === sid && h.form.get('Status') === 'completed', `hang-up sent ${h && h.form.toString()}`);
    check(await page.locator('#control').isHidden(), 'the buttons stay after the call ended');
    await page.screenshot({ path: join(ARTIFACTS, 'control-2-hung-up.png') });
    console.log('control: all checks passed');
  } finally {
    await browser.close().catch(() => {});
    if (sim) await new Promise((r) => { if (sim.exitCode !== null) r(); else sim.on('exit', r); });
    server.srv.kill('SIGTERM');
    await new Promise((r) => server.srv.on('exit', r));
    twilio.server.close();
    if (failed()) console.error(`kept ${dir}; the gateway said:\n${server.log().slice(-4000)}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
