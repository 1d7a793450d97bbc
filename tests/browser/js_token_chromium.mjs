// `node js_token_chromium.mjs URL SECRET`: the JavaScript client in headless Chromium against a
// server verifying HS256 tokens with SECRET. A page of the server imports the client as the
// broker serves it (/console/pubsub-client.js) and subscribes to `news` and `other` with a
// `getToken` that hands out 3-second tokens made here; from its third token on they allow only
// `news`. Publishes to `news` for 7 seconds and prints a JSON report (tests/token_lifecycle.rs).
import { createHmac } from 'node:crypto';
import { baseUrl, check, launch, run } from './browser.mjs';

const base = baseUrl();
const secret = process.argv[3];
const now = () => Math.floor(Date.now() / 1000);
function sign(claims) {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}
const admin = sign({ sub: 'ops', exp: now() + 600, admin: true, publish: ['*'], subscribe: ['*'] });
const call = async (path, body) => {
  const r = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${admin}` },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
};

await run(async (report) => {
  check(Boolean(secret), 'a secret is given');
  for (const name of ['news', 'other']) check((await call('/topics', { name })).status === 201, `create ${name}`);
  const browser = await launch();
  try {
    const page = await browser.newPage();
    page.on('pageerror', (error) => process.stderr.write(`page error: ${error}\n`));
    report.getToken = 0;
    await page.exposeFunction('nextToken', () => {
      report.getToken += 1;
      const topics = report.getToken <= 2 ? ['news', 'other'] : ['news'];
      return sign({ sub: 'browser', exp: now() + 3, subscribe: topics });
    });
    await page.goto(`${base}/health`);
    await page.evaluate(async (url) => {
      const { PubSubClient } = await import('/console/pubsub-client.js');
      window.seen = [];
      window.client = await PubSubClient.connect(url, { getToken: () => window.nextToken() });
      for (const topic of ['news', 'other']) {
        await window.client.subscribe(topic, {}, (e) => window.seen.push(
          e.type === 'message' ? `${e.topic} ${e.seq}` : `${e.topic} ${e.type}`));
      }
    }, base);
    let published = 0;
    const started = Date.now();
    while (Date.now() - started < 7000) {
      const r = await call('/topics/news/messages', { message: published + 1 });
      check(r.status === 201, `publish: ${JSON.stringify(r)}`);
      published = r.body.seq;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    report.published = published;
    report.seen = await page.evaluate(() => window.seen);
    report.status = await page.evaluate(() => window.client.status);
  } finally {
    await browser.close();
  }
});
