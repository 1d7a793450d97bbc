// Unit tests of the JavaScript client as built (clients/js/dist, compiled from clients/js/src)
// with a fake WebSocket: backoff, URLs, the resume bookkeeping (each seq once, gaps, epoch
// changes, lagged), reply matching, liveness, the token and its refresh, the REST helper.
// Run by tests/js_client.rs: `node --test tests/clients/js_client_unit.mjs`.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { PubSubClient, PubSubError, backoffDelay, rest, websocketUrl } from '../../clients/js/dist/index.js';

/** A WebSocket the test plays the server of. */
class FakeSocket {
  static all = [];
  constructor(url, init) {
    this.url = url;
    this.init = init;
    this.sent = [];
    this.closed = false;
    FakeSocket.all.push(this);
    setTimeout(() => this.onopen?.(), 0);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.closed = true; }
  /** The server sends `frame`. */
  push(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  /** The connection breaks. */
  cut() { this.onclose?.({ code: 1006, reason: '' }); }
  /** The frames sent since the last look. */
  take() { return this.sent.splice(0); }
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

async function connected(options = {}) {
  FakeSocket.all = [];
  const client = await PubSubClient.connect('http://localhost:8000', {
    WebSocket: FakeSocket,
    backoff: { initial: 1, max: 4, multiplier: 2 },
    ...options,
  });
  return client;
}

const socket = () => FakeSocket.all.at(-1);

function ack(ws, request, { epoch = 'E1', lastSeq, replayed = 0, recovered }) {
  ws.push({
    action: 'subscribed', topic: request.topic, epoch, replayed, last_seq: lastSeq,
    ...(recovered === undefined ? {} : { recovered }), request_id: request.request_id,
  });
}

function messages(ws, topic, seqs) {
  for (const seq of seqs) ws.push({ action: 'message', topic, seq, message: seq, published_at: 't' });
}

function describe(events) {
  return events.map((e) => {
    switch (e.type) {
      case 'message': return `${e.seq}@${e.epoch}`;
      case 'gap': return `gap ${e.afterSeq}..${e.nextSeq} ${e.cause} (${e.missed})`;
      case 'epoch_changed': return `epoch ${e.oldEpoch}->${e.newEpoch}`;
      default: return e.type;
    }
  });
}

/** A reconnect after a cut: the resubscribe the new connection sent. */
async function reconnect() {
  const before = FakeSocket.all.length;
  socket().cut();
  while (FakeSocket.all.length === before) await tick(1);
  await tick();
  const sent = socket().take();
  assert.equal(sent.length, 1, JSON.stringify(sent));
  return sent[0];
}

test('backoff doubles to its ceiling, with jitter between half and all of it', () => {
  const b = { initial: 100, max: 1000, multiplier: 2 };
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(b, n, 1)), [100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual([0, 1, 4].map((n) => backoffDelay(b, n, 0)), [50, 100, 500]);
  assert.equal(backoffDelay(b, 10000, 1), 1000);
  assert.equal(backoffDelay(b, 2, Number.NaN), 200);
});

test('one URL gives the WebSocket endpoint', () => {
  assert.equal(websocketUrl('http://127.0.0.1:8000'), 'ws://127.0.0.1:8000/ws');
  assert.equal(websocketUrl('http://example.com/pubsub/'), 'ws://example.com/pubsub/ws');
  assert.equal(websocketUrl('ws://127.0.0.1:8000/ws'), 'ws://127.0.0.1:8000/ws');
});

test('resumes after each reconnect from the last seq delivered, each seq once', async () => {
  const client = await connected();
  const events = [];
  const opened = client.subscribe('news', {}, (e) => events.push(e));
  const [request] = socket().take();
  assert.deepEqual([request.action, request.since_seq, request.replay_last], ['subscribe', undefined, undefined]);
  ack(socket(), request, { lastSeq: 5 });
  assert.equal((await opened).lastSeq, 5);
  messages(socket(), 'news', [6, 7, 7, 5, 8]);

  let again = await reconnect();
  assert.deepEqual([again.since_seq, again.epoch], [8, 'E1']);
  messages(socket(), 'news', [9]); // before the ack: its replay carries it
  ack(socket(), again, { lastSeq: 10, replayed: 2, recovered: true });
  messages(socket(), 'news', [9, 10, 11]);
  for (let i = 0; i < 3; i += 1) again = await reconnect();
  assert.equal(again.since_seq, 11);
  ack(socket(), again, { lastSeq: 11, replayed: 0, recovered: true });
  messages(socket(), 'news', [12]);
  assert.deepEqual(describe(events), ['6@E1', '7@E1', '8@E1', '9@E1', '10@E1', '11@E1', '12@E1']);
  assert.equal(client.status.connections, 5);
  client.close();
});

test('a gap history did not cover, an epoch change and a deletion are events', async () => {
  const client = await connected();
  const events = [];
  client.subscribe('news', {}, (e) => events.push(e));
  ack(socket(), socket().take()[0], { lastSeq: 0 });
  messages(socket(), 'news', [1, 2, 3]);
  let again = await reconnect();
  ack(socket(), again, { lastSeq: 20, replayed: 5, recovered: false });
  messages(socket(), 'news', [16, 17, 18, 19, 20]);
  again = await reconnect();
  ack(socket(), again, { epoch: 'E2', lastSeq: 2, replayed: 2, recovered: false });
  messages(socket(), 'news', [1, 2]);
  socket().push({ action: 'topic_deleted', topic: 'news' });
  messages(socket(), 'news', [3]);
  assert.deepEqual(describe(events), [
    '1@E1', '2@E1', '3@E1', 'gap 3..16 disconnected (12)', '16@E1', '17@E1', '18@E1', '19@E1', '20@E1',
    'epoch E1->E2', '1@E2', '2@E2', 'topic_deleted',
  ]);
  client.close();
});

test('start positions, and lagged or skipped seqs asked for again', async () => {
  const client = await connected();
  const last = [];
  client.subscribe('last', { last: 3 }, (e) => last.push(e));
  let [request] = socket().take();
  assert.equal(request.replay_last, 3);
  ack(socket(), request, { lastSeq: 10, replayed: 3 });
  messages(socket(), 'last', [7, 8, 9, 10]);
  assert.deepEqual(describe(last), ['8@E1', '9@E1', '10@E1']);

  const resumed = [];
  const opened = client.subscribe('old', { since: 2, epoch: 'E0' }, (e) => resumed.push(e));
  [request] = socket().take();
  assert.deepEqual([request.since_seq, request.epoch], [2, 'E0']);
  ack(socket(), request, { lastSeq: 50, replayed: 10, recovered: false });
  assert.equal((await opened).recovered, false);
  messages(socket(), 'old', [41]);
  assert.deepEqual(describe(resumed), ['epoch E0->E1', 'gap 0..41 start (40)', '41@E1']);

  socket().push({ action: 'lagged', topic: 'last', dropped: 3 });
  [request] = socket().take();
  assert.deepEqual([request.since_seq, request.epoch], [10, 'E1']);
  messages(socket(), 'last', [14]);
  ack(socket(), request, { lastSeq: 14, replayed: 4, recovered: true });
  messages(socket(), 'last', [11, 12, 13, 14]);
  messages(socket(), 'last', [16]); // 15 skipped without notice
  [request] = socket().take();
  assert.equal(request.since_seq, 14);
  ack(socket(), request, { lastSeq: 30, replayed: 2, recovered: false });
  assert.deepEqual(describe(last).slice(3), ['11@E1', '12@E1', '13@E1', '14@E1', 'gap 14..29 skipped (14)']);
  await assert.rejects(client.subscribe('last', {}, () => {}), { code: 'already_subscribed' });
  client.close();
});

test('replies go to the request with their request_id; a lost connection settles the rest', async () => {
  const client = await connected();
  const first = client.publish('news', { n: 1 });
  const second = client.publish('news', { n: 2 });
  const refused = client.publish('nope', 1);
  const ping = client.ping();
  const [a, b, c, p] = socket().take();
  assert.deepEqual(a.message, { n: 1 });
  assert.notEqual(a.request_id, b.request_id);
  socket().push({ action: 'pong', request_id: p.request_id });
  socket().push({ action: 'published', topic: 'news', seq: 8, request_id: b.request_id });
  socket().push({ action: 'error', error: { code: 'topic_not_found', message: 'no' }, request_id: c.request_id });
  socket().push({ action: 'published', topic: 'news', seq: 7, request_id: a.request_id });
  assert.deepEqual([await first, await second], [7, 8]);
  await assert.rejects(refused, { code: 'topic_not_found' });
  assert.ok((await ping) >= 0);

  const inFlight = client.publish('news', 3);
  socket().cut();
  await assert.rejects(inFlight, { code: 'connection_lost' });
  // Made while reconnecting: held, and sent on the next connection.
  const held = client.publish('news', 4);
  while (!client.status.connected) await tick(1);
  const [h] = socket().take();
  assert.equal(h.message, 4);
  socket().push({ action: 'published', topic: 'news', seq: 9, request_id: h.request_id });
  assert.equal(await held, 9);
  client.close();
  await assert.rejects(client.publish('news', 5), { code: 'closed' });
});

test('a silent connection is pinged, then replaced', async () => {
  const client = await connected({ pingInterval: 20, pingTimeout: 20 });
  const silent = socket();
  await tick(30);
  assert.deepEqual(silent.take().map((f) => f.action), ['ping']);
  while (FakeSocket.all.length === 1) await tick(2);
  assert.ok(silent.closed);
  assert.match(client.status.lastError, /ping unanswered/);
  client.close();
});

test('the token goes out as the token query parameter of every connection', async () => {
  const client = await connected({ token: 's3 cr&t' });
  assert.equal(socket().url, 'ws://localhost:8000/ws?token=s3+cr%26t');
  assert.equal(socket().init, undefined, 'no second argument: browsers take no headers');
  const before = FakeSocket.all.length;
  socket().cut();
  while (FakeSocket.all.length === before) await tick(1);
  assert.equal(new URL(socket().url).searchParams.get('token'), 's3 cr&t');
  client.close();
  const plain = await connected();
  assert.equal(socket().url, 'ws://localhost:8000/ws');
  plain.close();
  assert.equal(websocketUrl('http://h:1/base/', 't'), 'ws://h:1/base/ws?token=t');
});

test('refresh sends the new token, resolves on refreshed, and later connections carry it', async () => {
  const client = await connected({ token: 'old' });
  const refreshed = client.refresh('new');
  const [frame] = socket().take();
  assert.deepEqual({ ...frame, request_id: undefined }, { action: 'refresh', token: 'new', request_id: undefined });
  let settled = false;
  refreshed.then(() => { settled = true; }, () => { settled = true; });
  await tick();
  assert.equal(settled, false, 'not before the server answers');
  socket().push({ action: 'refreshed', request_id: frame.request_id });
  assert.equal(await refreshed, undefined);

  const refused = client.refresh('expired');
  const [second] = socket().take();
  socket().push({ action: 'error', error: { code: 'unauthorized', message: 'token expired' }, request_id: second.request_id });
  await assert.rejects(refused, (e) => e instanceof PubSubError && e.code === 'unauthorized' && /token expired/.test(e.message));

  const lost = client.refresh('third');
  socket().take();
  const before = FakeSocket.all.length;
  socket().cut();
  await assert.rejects(lost, { code: 'connection_lost' });
  while (FakeSocket.all.length === before) await tick(1);
  assert.equal(new URL(socket().url).searchParams.get('token'), 'third');
  client.close();
  await assert.rejects(client.refresh('late'), { code: 'closed' });
});

test('a runtime without WebSocket gets a clear error', async () => {
  await assert.rejects(PubSubClient.connect('http://localhost:1', { WebSocket: null }), (e) =>
    e.code === 'connect_failed' && /no WebSocket/.test(e.message));
});

test('rest sends JSON with the token as a bearer token and returns errors as answers', async () => {
  const calls = [];
  const fakeFetch = async (url, init) => {
    calls.push({ url, init });
    if (init.method === 'POST') return new Response(JSON.stringify({ name: 'news' }), { status: 201 });
    if (url.endsWith('/empty')) return new Response(null, { status: 204 });
    return new Response(JSON.stringify({ error: { code: 'unauthorized', message: 'no token' } }), { status: 401 });
  };
  const created = await rest('http://h:1', '/topics', { method: 'POST', body: { name: 'news' }, token: 't0k', fetch: fakeFetch });
  assert.deepEqual(created, { status: 201, ok: true, body: { name: 'news' } });
  assert.equal(calls[0].url, 'http://h:1/topics');
  assert.deepEqual(calls[0].init, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer t0k' }, body: '{"name":"news"}',
  });
  const denied = await rest('http://h:1', '/stats', { fetch: fakeFetch });
  assert.deepEqual(denied, { status: 401, ok: false, body: { error: { code: 'unauthorized', message: 'no token' } } });
  assert.deepEqual(calls[1].init, { method: 'GET', headers: {} });
  assert.equal((await rest('http://h:1', '/empty', { fetch: fakeFetch })).body, null);
});
