// The console at / in headless Chromium across outages: the page is loaded through a TCP proxy
// of this script's own (the browser is driven from here, so the outages are timed from here
// too), subscribes, and the proxy goes down while messages are published straight to the
// server. With a history shorter than what was published meanwhile the page must show the gap;
// with one that covers it, every seq once. It must show its reconnects either way.
// Usage: node console_reconnect.mjs http://HOST:PORT   (a server with --history-size 3)
import net from 'node:net';

import { baseUrl, check, launch, run } from './browser.mjs';

const base = baseUrl();
const TOPIC = 'reconnect-demo';
const WAIT = { timeout: 20_000 };

/** A proxy to `target` that can go down (every connection closed, the port closed) and up. */
async function startProxy(target) {
  const sockets = new Set();
  let server = null;
  let port = 0;
  const track = (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const up = () => new Promise((resolve, reject) => {
    server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      track(client);
      track(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      port = server.address().port;
      resolve();
    });
  });
  const down = () => new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
  await up();
  return { url: () => `http://127.0.0.1:${port}`, up, down };
}

async function publish(n) {
  for (let i = 0; i < n; i += 1) {
    const r = await fetch(`${base}/topics/${TOPIC}/messages`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ message: { i } }),
    });
    check(r.status === 201, `published: ${r.status}`);
  }
}

const shown = (page) => page.locator('#messages li').evaluateAll((items) => items.reverse().map((li) => (
  li.dataset.seq ? Number(li.dataset.seq) : li.textContent
)));

await run(async (report) => {
  const proxy = await startProxy(new URL(base));
  const created = await fetch(`${base}/topics`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: TOPIC }),
  });
  check(created.status === 201, `topic created: ${created.status}`);
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(`${proxy.url()}/`);
    await page.locator('#status', { hasText: /^connected$/ }).waitFor(WAIT);
    await page.fill('#topic', TOPIC);
    await page.click('#subscribe');
    await page.locator('#subscribe-result', { hasText: `subscribed to ${TOPIC}` }).waitFor(WAIT);
    await publish(2);
    await page.locator('#messages li[data-seq="2"]').waitFor(WAIT);

    // Away while 10 are published: history (3) holds 10..12 only.
    await proxy.down();
    await page.locator('#status', { hasText: /^reconnecting$/ }).waitFor(WAIT);
    report.while_away = (await page.locator('#status').textContent()).trim();
    await publish(10);
    await proxy.up();
    await page.locator('#messages li[data-seq="12"]').waitFor(WAIT);
    report.reconnects_after_first = (await page.locator('#reconnects').textContent()).trim();

    // Away while 2 are published: history covers it.
    await proxy.down();
    await page.locator('#status', { hasText: /^reconnecting$/ }).waitFor(WAIT);
    await publish(2);
    await proxy.up();
    await page.locator('#messages li[data-seq="14"]').waitFor(WAIT);
    await page.locator('#status', { hasText: /^connected$/ }).waitFor(WAIT);

    report.shown = await shown(page);
    report.reconnects = (await page.locator('#reconnects').textContent()).trim();
    report.gaps = (await page.locator('#gaps').textContent()).trim();
    report.log = await page.locator('#log li').evaluateAll((items) => items.reverse().map((li) => li.textContent));
    report.page_errors = errors;
    check(errors.length === 0, `no script errors: ${errors}`);
  } finally {
    await browser.close();
    await proxy.down();
  }
});
