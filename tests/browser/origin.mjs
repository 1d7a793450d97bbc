// Pages on two other origins use the server from Chromium: the allowed one creates a topic
// (a preflighted POST), lists topics and runs a WebSocket round trip; the foreign one tries
// the same and must fail. Usage: node origin.mjs API_BASE ALLOWED_PAGE FOREIGN_PAGE
import { launch, run, check } from './browser.mjs';

const [api, allowedPage, foreignPage] = process.argv.slice(2).map((u) => u.replace(/\/$/, ''));
if (!api || !allowedPage || !foreignPage) {
  console.error('usage: node origin.mjs API_BASE ALLOWED_PAGE FOREIGN_PAGE');
  process.exit(2);
}

// Runs in the page: every step's outcome, errors as their names (what a page can see).
async function usePubsub({ api, topic }) {
  const outcome = {};
  const call = async (what, url, init) => {
    try {
      const response = await fetch(url, init);
      outcome[what] = { status: response.status, body: await response.json() };
    } catch (error) {
      outcome[what] = { error: error.name };
    }
  };
  const json = { 'Content-Type': 'application/json' };
  await call('create', `${api}/topics`, { method: 'POST', headers: json, body: JSON.stringify({ name: topic }) });
  await call('list', `${api}/topics`);
  outcome.ws = await new Promise((resolve) => {
    const result = { opened: false };
    const ws = new WebSocket(api.replace(/^http/, 'ws') + '/ws');
    const done = () => { try { ws.close(); } catch {} resolve(result); };
    const timer = setTimeout(done, 5000);
    ws.onopen = () => {
      result.opened = true;
      ws.send(JSON.stringify({ action: 'subscribe', topic }));
    };
    ws.onmessage = async (event) => {
      const frame = JSON.parse(event.data);
      if (frame.action === 'subscribed') {
        result.subscribed = frame.topic;
        await fetch(`${api}/topics/${topic}/messages`, {
          method: 'POST', headers: json, body: JSON.stringify({ message: { hello: 'page' } }),
        });
      } else if (frame.action === 'message') {
        result.message = frame.message;
        clearTimeout(timer);
        done();
      }
    };
    ws.onclose = () => { clearTimeout(timer); resolve(result); };
  });
  return outcome;
}

await run(async (report) => {
  const browser = await launch();
  try {
    for (const [name, pageUrl, topic] of [
      ['allowed', allowedPage, 'from-page'],
      ['foreign', foreignPage, 'from-foreign-page'],
    ]) {
      const page = await browser.newPage();
      const response = await page.goto(pageUrl + '/');
      check(response.ok(), `the ${name} page loads`);
      report[name] = await page.evaluate(usePubsub, { api, topic });
      await page.close();
    }
  } finally {
    await browser.close();
  }
});
