// The console at / in headless Chromium, as two people would use it: page A creates a topic and
// publishes, page B subscribes and shows the message. Also: the links, and what the page shows
// for a taken topic name, a message that is not JSON and a topic that does not exist.
// Usage: node console.mjs http://HOST:PORT   (prints a JSON report; exit 0 = all checks passed)
import { baseUrl, check, launch, run } from './browser.mjs';

const base = baseUrl();
const TOPIC = 'console-demo';
const WAIT = { timeout: 15_000 };

async function open(browser) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  // The browser logs every 4xx the page fetches as an error; those are expected here.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  await page.goto(`${base}/`);
  await page.locator('#status', { hasText: /^connected$/ }).waitFor(WAIT);
  return { page, errors };
}

/** Clicks `button` and returns the text `result` shows once it changes. */
async function clickFor(page, button, result) {
  await page.locator(result).evaluate((el) => { el.textContent = ''; });
  await page.click(button);
  await page.locator(result, { hasText: /./ }).waitFor(WAIT);
  return (await page.locator(result).textContent()).trim();
}

await run(async (report) => {
  const browser = await launch();
  try {
    const a = await open(browser);
    const b = await open(browser);

    report.links = await a.page.locator('nav a').evaluateAll((links) => links.map((l) => l.getAttribute('href')));

    await a.page.fill('#topic', TOPIC);
    report.create = await clickFor(a.page, '#create', '#create-result');
    check(report.create.startsWith('201'), `created: ${report.create}`);
    report.create_again = await clickFor(a.page, '#create', '#create-result');
    check(report.create_again.includes('409') && report.create_again.includes('topic_exists'),
      `409 shown: ${report.create_again}`);

    await b.page.fill('#topic', TOPIC);
    report.subscribe = await clickFor(b.page, '#subscribe', '#subscribe-result');
    check(report.subscribe.startsWith(`subscribed to ${TOPIC}`), `subscribed: ${report.subscribe}`);
    await b.page.locator(`#subscriptions li[data-topic="${TOPIC}"]`).waitFor(WAIT);

    const message = { text: 'hello from page A', n: [1, 2] };
    await a.page.fill('#message', JSON.stringify(message));
    report.publish = await clickFor(a.page, '#publish', '#publish-result');
    check(report.publish === `published to ${TOPIC}, seq 1`, `published: ${report.publish}`);

    const received = b.page.locator(`#messages li[data-topic="${TOPIC}"][data-seq="1"]`);
    await received.waitFor(WAIT);
    report.received = (await received.textContent()).trim();
    check(report.received.includes(JSON.stringify(message)), `B shows the message: ${report.received}`);
    report.a_messages = await a.page.locator('#messages li').count();
    check(report.a_messages === 0, 'A, not subscribed, shows no message');

    // Mistakes a person makes, shown on the page instead of sent.
    await a.page.fill('#message', '{not json');
    report.not_json = await clickFor(a.page, '#publish', '#publish-result');
    check(report.not_json.startsWith('not JSON'), `not JSON shown: ${report.not_json}`);
    await a.page.fill('#topic', 'no-such-topic');
    await a.page.fill('#message', '1');
    report.missing_topic = await clickFor(a.page, '#publish', '#publish-result');
    check(report.missing_topic.startsWith('topic_not_found'), `error shown: ${report.missing_topic}`);

    report.b_messages = await b.page.locator('#messages li').count();
    check(report.b_messages === 1, `B got exactly one message, not ${report.b_messages}`);
    report.page_errors = [...a.errors, ...b.errors];
    check(report.page_errors.length === 0, `no script errors: ${report.page_errors}`);
  } finally {
    await browser.close();
  }
});
