// `node js_subscriber_chromium.mjs URL TOPIC...`: the JavaScript client in headless Chromium.
// A page of the server at URL imports the client as the broker serves it
// (/console/pubsub-client.js, which is clients/js/dist), subscribes to each topic, and hands
// every event to this script, which prints it as js_subscriber.mjs does in Node
// (tests/clients/subscriber_lines.mjs). Exits once every subscription ended, or on SIGTERM.
import { launch } from './browser.mjs';
import { subscriberLines } from '../clients/subscriber_lines.mjs';

const [url, ...topics] = process.argv.slice(2);
const browser = await launch();
const quit = async (code) => {
  await browser.close().catch(() => {});
  process.exit(code);
};
process.on('SIGTERM', () => quit(0));
const lines = subscriberLines(topics, () => quit(0));
const page = await browser.newPage();
page.on('pageerror', (error) => process.stderr.write(`page error: ${error}\n`));
// Called by the page in order; the bindings keep that order.
await page.exposeFunction('pubsubStatus', (s) => lines.status(s));
await page.exposeFunction('pubsubSubscribed', (topic, ack) => lines.subscribed(topic, ack));
await page.exposeFunction('pubsubEvent', (e) => lines.event(e));
// Any page of the server gives its origin; /health is the smallest.
await page.goto(`${url.replace(/\/$/, '')}/health`);
try {
  await page.evaluate(async ([base, names]) => {
    const { PubSubClient } = await import('/console/pubsub-client.js');
    const client = await PubSubClient.connect(base, {
      onStatus: (s) => window.pubsubStatus({ ...s }),
    });
    for (const topic of names) {
      const ack = await client.subscribe(topic, {}, (e) =>
        window.pubsubEvent(e.type === 'failed' ? { ...e, error: e.error.message } : e));
      await window.pubsubSubscribed(topic, ack);
    }
  }, [url, topics]);
} catch (error) {
  process.stderr.write(`cannot subscribe in Chromium: ${error}\n`);
  await quit(1);
}
