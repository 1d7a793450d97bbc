// What a test subscriber prints, in the shape `pubsub sub --output json` prints, so that
// tests/client_reconnect.rs checks the JavaScript client (in Node, js_subscriber.mjs, and in
// Chromium, tests/browser/js_subscriber_chromium.mjs) exactly as it checks the command line:
// one JSON line per event on stdout; reconnects on stderr as `reconnected (reconnect N)`.

/** The printer of a subscriber to `topics`; `done` runs once every subscription ended. */
export function subscriberLines(topics, done) {
  const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
  let connections = 1;
  let live = topics.length;
  return {
    status(s) {
      if (s.connections > connections) {
        connections = s.connections;
        process.stderr.write(`reconnected (reconnect ${connections - 1})\n`);
      }
    },
    subscribed(topic, ack) {
      print({ event: 'subscribed', topic, epoch: ack.epoch, last_seq: ack.lastSeq, replayed: ack.replayed });
    },
    event(e) {
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
          if (live === 0) done();
      }
    },
  };
}
