// The console at / in headless Chromium across a token's life, on a server verifying HS256
// tokens with SECRET. Tokens are signed here, when they are pasted, so a 3-second one still
// has its 3 seconds when the page connects. The page subscribes with a 3-second token and is
// shown messages; at `exp` the server closes with 4001 and the page must say `token expired`
// and stay away; a fresh token pasted into the field reconnects it and the subscription
// resumes (every seq once, read from the page's list); a token pasted with fewer rights ends
// the subscription with the revoked notice. Messages are published over REST with an admin
// token made here.
// Usage: node console_token.mjs http://HOST:PORT SECRET   (prints a JSON report; exit 0 = passed)
import { createHmac } from 'node:crypto';

import { baseUrl, check, launch, run } from './browser.mjs';

const base = baseUrl();
const secret = process.argv[3];
const TOPIC = 'console.expiry';
const WAIT = { timeout: 20_000 };
const now = () => Math.floor(Date.now() / 1000);

function sign(claims) {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

const admin = sign({ sub: 'ops', exp: now() + 600, admin: true, publish: ['*'], subscribe: ['*'] });
const reader = (ttl, topics) => sign({ sub: 'console', exp: now() + ttl, subscribe: topics });

async function call(method, path, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${admin}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

async function publish(from, to) {
  for (let i = from; i <= to; i += 1) {
    const r = await call('POST', `/topics/${TOPIC}/messages`, { message: { i } });
    check(r.status === 201 && r.body.seq === i, `published ${i}: ${JSON.stringify(r)}`);
  }
}

/** What the page lists under "Messages received", oldest first: seqs, and notices as text. */
const shown = (page) => page.locator('#messages li').evaluateAll((items) => items.reverse().map((li) => (
  li.dataset.seq ? Number(li.dataset.seq) : li.textContent
)));
const text = async (page, selector) => (await page.locator(selector).textContent()).trim();

/** Pastes `token` into the token field and leaves it, as a person would: the browser fires
 * `change` on leaving a field whose value changed. */
async function paste(page, token) {
  await page.fill('#token', token);
  await page.locator('#token').blur();
}

await run(async (report) => {
  check(Boolean(secret), 'a secret is given');
  check((await call('POST', '/topics', { name: TOPIC })).status === 201, 'topic created');
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(`${base}/`);
    await page.locator('#status', { hasText: /^disconnected$/ }).waitFor(WAIT);

    await paste(page, reader(3, ['console.*']));
    const pasted = Date.now();
    await page.click('#connect');
    await page.locator('#status', { hasText: /^connected$/ }).waitFor(WAIT);
    await page.fill('#topic', TOPIC);
    await page.click('#subscribe');
    await page.locator('#subscribe-result', { hasText: `subscribed to ${TOPIC}` }).waitFor(WAIT);
    await publish(1, 3);
    await page.locator('#messages li[data-seq="3"]').waitFor(WAIT);

    // At exp the server closes with 4001; the page says so and makes no attempt of its own.
    await page.locator('#status', { hasText: /^token expired$/ }).waitFor(WAIT);
    report.expired_after_ms = Date.now() - pasted;
    report.expired_log = await page.locator('#log li.error').first().textContent();
    await publish(4, 6);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    report.status_while_expired = await text(page, '#status');
    report.reconnects_while_expired = await text(page, '#reconnects');
    report.connections_while_expired = (await call('GET', '/stats')).body.connections;
    report.shown_while_expired = await shown(page);

    // A fresh token pasted: the page reconnects and the subscription resumes after seq 3.
    await paste(page, reader(600, ['console.*']));
    await page.locator('#status', { hasText: /^connected$/ }).waitFor(WAIT);
    await page.locator('#log li', { hasText: 'token refreshed on the WebSocket' }).waitFor(WAIT);
    await page.locator('#messages li[data-seq="6"]').waitFor(WAIT);
    await publish(7, 8);
    await page.locator('#messages li[data-seq="8"]').waitFor(WAIT);
    report.reconnects_after_refresh = await text(page, '#reconnects');

    // A token with fewer rights pasted: the open connection takes it as a refresh, and the
    // server revokes the subscription it no longer allows.
    await paste(page, reader(600, ['elsewhere']));
    await page.locator('#messages li[data-notice]', { hasText: 'subscription revoked' }).waitFor(WAIT);
    await publish(9, 9);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    report.subscriptions_after_revoke = await page.locator('#subscriptions li').count();
    report.status_after_revoke = await text(page, '#status');
    report.shown = await shown(page);
    report.log = await page.locator('#log li').evaluateAll((items) => items.reverse().map((li) => li.textContent));
    report.page_errors = errors;
    check(errors.length === 0, `no script errors: ${errors}`);
  } finally {
    await browser.close();
  }
});
