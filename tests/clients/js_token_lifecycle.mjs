// `node js_token_lifecycle.mjs URL SECRET`: the JavaScript client (clients/js/dist) against a
// real server verifying HS256 tokens with SECRET, through several expiries of 3-second tokens.
// Prints one JSON report; tests/token_lifecycle.rs judges it.
//  - refreshing: getToken makes a new token each call; the client refreshes before each exp.
//  - caching: getToken returns the same token until it has expired, so the connection is
//    closed with 4001 and the client reconnects with the next one.
//  - revoke: a refresh to a token without 'other' ends that subscription with `revoked`.
//  - plain: no getToken: the expiry is reported and nothing retried until refresh(token).
import { createHmac } from 'node:crypto';
import { PubSubClient, rest } from '../../clients/js/dist/index.js';

const [url, secret] = process.argv.slice(2);
const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sign(claims) {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}
const token = (sub, ttl, subscribe, publish = []) => sign({ sub, exp: now() + ttl, subscribe, publish });

const admin = sign({ sub: 'ops', exp: now() + 600, admin: true, publish: ['*'], subscribe: ['*'] });
for (const name of ['news', 'other']) {
  const r = await rest(url, '/topics', { method: 'POST', body: { name }, token: admin });
  if (!r.ok) throw new Error(`create ${name}: ${r.status} ${JSON.stringify(r.body)}`);
}
const publisher = await PubSubClient.connect(url, { token: admin });

/** A subscriber to `topics`, recording its events and statuses. */
async function subscriber(options, topics) {
  const seen = { events: [], statuses: [] };
  const client = await PubSubClient.connect(url, { ...options, onStatus: (s) => seen.statuses.push({ ...s }) });
  for (const topic of topics) {
    await client.subscribe(topic, {}, (e) => seen.events.push(e.type === 'message' ? { type: e.type, topic, seq: e.seq } : { type: e.type, topic, code: e.error?.code }));
  }
  return { client, seen };
}

const calls = { refreshing: 0, caching: 0 };
const refreshing = await subscriber({
  getToken: () => { calls.refreshing += 1; return token('alice', 3, ['news']); },
}, ['news']);
let cached = null;
const caching = await subscriber({
  getToken: () => {
    calls.caching += 1;
    if (!cached || cached.exp * 1000 <= Date.now()) {
      cached = { exp: now() + 3, token: token('carol', 3, ['news']) };
    }
    return cached.token;
  },
  backoff: { initial: 50, max: 500 },
}, ['news']);
const revoke = await subscriber({ token: token('bob', 600, ['news', 'other']) }, ['news', 'other']);
const plain = await subscriber({ token: token('dave', 2, ['news']) }, ['news']);

// Publish 10 a second for 8 seconds: two or three expiries of each short token.
let published = 0;
const started = Date.now();
let revoked = false;
let plainExpiredAt = null;
let plainConnectionsAtExpiry = null;
while (Date.now() - started < 8000) {
  published = await publisher.publish('news', { n: published + 1 });
  if (!revoked && Date.now() - started > 1000) {
    revoked = true;
    await revoke.client.refresh(token('bob', 600, ['news']));
    await publisher.publish('other', 'after the revocation');
  }
  if (plain.client.status.tokenExpired && plainExpiredAt === null) {
    plainExpiredAt = Date.now() - started;
    plainConnectionsAtExpiry = plain.client.status.connections;
  }
  await sleep(100);
}
const plainConnectionsAtEnd = plain.client.status.connections;
// Given a new token, the plain client comes back and resumes.
await plain.client.refresh(token('dave', 60, ['news']));
published = await publisher.publish('news', { n: published + 1 });
await sleep(1000);

const seqs = (seen, topic) => seen.events.filter((e) => e.type === 'message' && e.topic === topic).map((e) => e.seq);
const report = {
  published,
  refreshing: { seqs: seqs(refreshing.seen, 'news'), getToken: calls.refreshing, connections: refreshing.client.status.connections, other: refreshing.seen.events.filter((e) => e.type !== 'message') },
  caching: { seqs: seqs(caching.seen, 'news'), getToken: calls.caching, connections: caching.client.status.connections, other: caching.seen.events.filter((e) => e.type !== 'message') },
  revoke: { news: seqs(revoke.seen, 'news'), other: revoke.seen.events.filter((e) => e.topic === 'other') },
  plain: {
    seqs: seqs(plain.seen, 'news'),
    expiredAt: plainExpiredAt,
    connectionsAtExpiry: plainConnectionsAtExpiry,
    connectionsAtEnd: plainConnectionsAtEnd,
    connectionsAfterRefresh: plain.client.status.connections,
    lastErrors: plain.seen.statuses.filter((s) => s.tokenExpired).map((s) => s.lastError),
  },
};
for (const c of [publisher, refreshing.client, caching.client, revoke.client, plain.client]) c.close();
console.log(JSON.stringify(report));
process.exit(0);
