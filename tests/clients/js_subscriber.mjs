// `node js_subscriber.mjs URL TOPIC...`: subscribes with the JavaScript client (clients/js/dist) and prints
// every event as one JSON line, in the shape `pubsub sub --output json` prints, so that
// tests/client_reconnect.rs checks the JavaScript client exactly as it checks the command line.
// Reconnects go to stderr as `reconnected (reconnect N)`. Exits once every subscription ended,
// or on SIGTERM.
import { PubSubClient } from '../../clients/js/dist/index.js';

const [url, ...topics] = process.argv.slice(2);
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

let connections = 1;
const client = await PubSubClient.connect(url, {
  onStatus: (s) => {
    if (s.connections > connections) {
      connections = s.connections;
      process.stderr.write(`reconnected (reconnect ${connections - 1})\n`);
    }
  },
});
let live = topics.length;
for (const topic of topics) {
  const ack = await client.subscribe(topic, {}, (e) => {
    switch (e.type) {
      case 'message':
        print({ event: 'message', topic: e.topic, seq: e.seq, message: e.message, published_at: e.publishedAt });
        break;
      case 'gap':
        print({ event: 'gap', topic: e.topic, after_seq: e.afterSeq, next_seq: e.nextSeq, missed: e.missed, cause: e.cause });
        break;
      case 'epoch_changed':
        print({ event: 'epoch_changed', topic: e.topic, old_epoch: e.oldEpoch, new_epoch: e.newEpoch });
        break;
      default:
        print({ event: e.type, topic: e.topic });
        live -= 1;
        if (live === 0) {
          client.close();
          process.exit(0);
        }
    }
  });
  print({ event: 'subscribed', topic, epoch: ack.epoch, last_seq: ack.lastSeq, replayed: ack.replayed });
}
process.on('SIGTERM', () => {
  client.close();
  process.exit(0);
});
