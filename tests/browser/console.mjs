// The console at / in headless Chromium, as two people would use it: page A creates a topic and
// publishes, page B subscribes and shows the message. Also: the links, what the page shows for a
// taken topic name, a message that is not JSON and a topic that does not exist, the live chart
// of /stats (the numbers it drew, and that it drew them), and the token field (kept in
// sessionStorage, sent as a bearer token on REST and as the WebSocket's token parameter).
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

    // The chart: samples of /stats with real numbers, drawn on the canvas.
    for (let i = 0; i < 5; i += 1) {
      await a.page.fill('#topic', TOPIC);
      await a.page.fill('#message', String(i));
      await clickFor(a.page, '#publish', '#publish-result');
    }
    await a.page.waitForFunction(() => {
      const samples = JSON.parse(document.getElementById('chart').dataset.samples ?? '[]');
      return samples.some((s) => s.rate > 0) && samples.at(-1).published === 6;
    }, null, WAIT);
    report.chart = JSON.parse(await a.page.locator('#chart').getAttribute('data-samples'));
    report.chart_legend = (await a.page.locator('#chart-legend').textContent()).trim();
    // Pixels of the two lines' colours on the canvas.
    report.chart_pixels = await a.page.locator('#chart').evaluate((canvas) => {
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      const count = { rate: 0, connections: 0 };
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
        if (Math.abs(r - 0x1f) < 24 && Math.abs(g - 0x5f) < 24 && Math.abs(b - 0xbf) < 24) count.rate += 1;
        if (Math.abs(r - 0xc0) < 24 && Math.abs(g - 0x5a) < 24 && b < 40) count.connections += 1;
      }
      return count;
    });
    check(report.chart_pixels.rate > 50 && report.chart_pixels.connections > 50,
      `both lines drawn: ${JSON.stringify(report.chart_pixels)}`);

    report.b_messages = await b.page.locator('#messages li').count();
    check(report.b_messages === 6, `B got exactly six messages, not ${report.b_messages}`);

    // The token: kept in the tab across a reload, on every REST call and the WebSocket's URL.
    await a.page.fill('#token', 'console-t0ken');
    await a.page.locator('#token').dispatchEvent('change');
    const sent = { rest: [], ws: [] };
    a.page.on('request', (r) => {
      if (new URL(r.url()).pathname !== '/console/pubsub-client.js') sent.rest.push([new URL(r.url()).pathname, r.headers().authorization]);
    });
    a.page.on('websocket', (ws) => sent.ws.push(new URL(ws.url()).searchParams.get('token')));
    await a.page.reload();
    await a.page.locator('#status', { hasText: /^connected$/ }).waitFor(WAIT);
    await a.page.waitForFunction(() => document.getElementById('topics').children.length > 0, null, WAIT);
    await a.page.waitForTimeout(1200); // a /stats poll
    report.token_field = await a.page.locator('#token').inputValue();
    report.token_sent = sent;
    check(report.token_field === 'console-t0ken', 'the token survives a reload');
    check(sent.ws.length === 1 && sent.ws[0] === 'console-t0ken', `the WebSocket carries it: ${sent.ws}`);
    const api = sent.rest.filter(([path]) => path === '/topics' || path === '/stats');
    check(api.length >= 2 && api.every(([, auth]) => auth === 'Bearer console-t0ken'),
      `REST calls carry it: ${JSON.stringify(sent.rest)}`);
    report.page_errors = [...a.errors, ...b.errors];
    check(report.page_errors.length === 0, `no script errors: ${report.page_errors}`);
  } finally {
    await browser.close();
  }
});
