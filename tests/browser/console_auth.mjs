// The console at / against a server that requires tokens: without one the WebSocket is refused
// (the page says so); with the token typed into its field it connects, creates a topic over REST,
// subscribes and publishes over the WebSocket, and shows the server's `forbidden` for a topic the
// token does not cover.
// Usage: node console_auth.mjs http://HOST:PORT TOKEN   (prints a JSON report; exit 0 = passed)
import { baseUrl, check, launch, run } from './browser.mjs';

const base = baseUrl();
const token = process.argv[3];
const TOPIC = 'console.secured';
const WAIT = { timeout: 15_000 };

/** Clicks `button` and returns the text `result` shows once it changes. */
async function clickFor(page, button, result) {
  await page.locator(result).evaluate((el) => { el.textContent = ''; });
  await page.click(button);
  await page.locator(result, { hasText: /./ }).waitFor(WAIT);
  return (await page.locator(result).textContent()).trim();
}

await run(async (report) => {
  check(Boolean(token), 'a token is given');
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/`);
    // No token yet: the handshake is refused with 401 and the page stays disconnected.
    await page.locator('#status', { hasText: /^disconnected$/ }).waitFor(WAIT);
    report.without_token = (await page.locator('#status').textContent()).trim();
    report.without_token_create = await (async () => {
      await page.fill('#topic', TOPIC);
      return clickFor(page, '#create', '#create-result');
    })();
    check(report.without_token_create.includes('401'), `create without a token: ${report.without_token_create}`);

    await page.fill('#token', token);
    await page.locator('#token').dispatchEvent('change');
    await page.click('#connect');
    await page.locator('#status', { hasText: /^connected$/ }).waitFor(WAIT);
    report.with_token = 'connected';

    report.create = await clickFor(page, '#create', '#create-result');
    check(report.create.startsWith('201'), `created: ${report.create}`);
    report.subscribe = await clickFor(page, '#subscribe', '#subscribe-result');
    check(report.subscribe.startsWith(`subscribed to ${TOPIC}`), `subscribed: ${report.subscribe}`);
    await page.fill('#message', JSON.stringify({ secured: true }));
    report.publish = await clickFor(page, '#publish', '#publish-result');
    check(report.publish === `published to ${TOPIC}, seq 1`, `published: ${report.publish}`);
    const received = page.locator(`#messages li[data-topic="${TOPIC}"][data-seq="1"]`);
    await received.waitFor(WAIT);
    report.received = (await received.textContent()).trim();

    // A topic outside the token's rights: the server's forbidden, shown on the page.
    await page.fill('#topic', 'elsewhere');
    report.forbidden_publish = await clickFor(page, '#publish', '#publish-result');
    check(report.forbidden_publish.startsWith('forbidden'), `forbidden shown: ${report.forbidden_publish}`);
    report.status_after = (await page.locator('#status').textContent()).trim();
    check(report.status_after === 'connected', 'the connection stays open');
  } finally {
    await browser.close();
  }
});
