// `node js_subscriber.mjs URL TOPIC...`: subscribes with the JavaScript client (clients/js/dist)
// in Node and prints every event as one JSON line (subscriber_lines.mjs). Exits once every
// subscription ended, or on SIGTERM.
import { PubSubClient } from '../../clients/js/dist/index.js';
import { subscriberLines } from './subscriber_lines.mjs';

const [url, ...topics] = process.argv.slice(2);
let client = null;
const lines = subscriberLines(topics, () => {
  client.close();
  process.exit(0);
});
client = await PubSubClient.connect(url, { onStatus: (s) => lines.status(s) });
for (const topic of topics) {
  const ack = await client.subscribe(topic, {}, (e) => lines.event(e));
  lines.subscribed(topic, ack);
}
process.on('SIGTERM', () => {
  client.close();
  process.exit(0);
});
