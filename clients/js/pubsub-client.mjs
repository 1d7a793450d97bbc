// A JavaScript client for the pubsub broker's WebSocket protocol: browsers, and Node.js 22 or
// later (Node.js 20 with --experimental-websocket). No dependencies.
//
// It behaves like the Rust client (`pubsub::client`): one connection that reconnects by itself
// with exponential backoff and jitter, and resubscribes every topic from the last seq it
// delivered (`since_seq` + `epoch`), so each subscription sees every seq once, in order, while
// history covers the time away; otherwise it gets a `gap` or `epoch_changed` event. Replies are
// matched to requests by `request_id`. A connection silent for `pingInterval` is sent the
// protocol's `ping`; with no frame within `pingTimeout` it is given up and replaced.
//
//   const client = await PubSubClient.connect('ws://localhost:8000/ws');
//   await client.subscribe('news', { last: 10 }, (event) => console.log(event));
//   const seq = await client.publish('news', { text: 'Hello' });
//
// Events: { type: 'message', topic, epoch, seq, message, publishedAt }
//         { type: 'gap', topic, afterSeq, nextSeq, missed, cause }   cause: start | disconnected | lagged | skipped
//         { type: 'epoch_changed', topic, oldEpoch, newEpoch }
//         { type: 'topic_deleted', topic }                 (the subscription ends)
//         { type: 'failed', topic, error }                 (the subscription ends)

/** An error with a stable `code`: the server's (`topic_not_found`, ...) or the client's
 * (`connection_lost`, `closed`, `already_subscribed`, `connect_failed`, `too_many_held`). */
export class PubSubError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'PubSubError';
    this.code = code;
  }
}

/** The wait before reconnect attempt `attempt` (from 0): between half and all of
 * min(max, initial * multiplier^attempt), `random` in [0, 1). */
export function backoffDelay({ initial, max, multiplier }, attempt, random) {
  const ceiling = Math.min(max, initial * Math.max(1, multiplier) ** attempt);
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return (Number.isFinite(ceiling) ? ceiling : max) * (0.5 + 0.5 * r);
}

const DEFAULTS = {
  token: undefined, // Node.js only: browsers cannot set headers on a WebSocket handshake
  backoff: { initial: 100, max: 10000, multiplier: 2 },
  pingInterval: 15000,
  pingTimeout: 10000,
  connectTimeout: 10000,
  maxHeld: 1024, // publishes and pings held while reconnecting
  onStatus: () => {}, // ({ connected, connections, lastError })
  WebSocket: globalThis.WebSocket,
  random: Math.random,
};

/** `http://HOST:PORT` (the server's base URL) or `ws://HOST:PORT/ws`, as a WebSocket URL. */
export function websocketUrl(url) {
  const u = new URL(url);
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    u.protocol = u.protocol === 'http:' ? 'ws:' : 'wss:';
    u.pathname = `${u.pathname.replace(/\/$/, '')}/ws`;
  }
  return u.toString();
}

export class PubSubClient {
  /** Connects once (a failure here is returned, not retried), then keeps reconnecting. */
  static async connect(url, options = {}) {
    const client = new PubSubClient(url, options);
    await client.#reconnectNow();
    return client;
  }

  #url;
  #options;
  #ws = null;
  #subs = new Map(); // topic -> subscription state
  #pending = new Map(); // request_id -> what waits for the reply
  #held = []; // frames (with their waiters) made while disconnected
  #nextId = 0;
  #attempts = 0;
  #answered = false;
  #sessionStart = 0;
  #closed = false;
  #reconnectTimer = null;
  #liveness = { timer: null, lastHeard: 0, pingSent: null };
  status = { connected: false, connections: 0, lastError: null };

  constructor(url, options = {}) {
    this.#url = websocketUrl(url);
    this.#options = { ...DEFAULTS, ...options, backoff: { ...DEFAULTS.backoff, ...options.backoff } };
  }

  /**
   * Subscribes to `topic` from `start` ({} for now, { last: N }, or { since: SEQ, epoch }),
   * calling `onEvent` with each event. Resolves with the first ack ({ topic, epoch, lastSeq,
   * replayed, recovered }) once the server has given it; rejects with the server's error.
   */
  subscribe(topic, start, onEvent) {
    if (this.#closed) return Promise.reject(new PubSubError('closed', 'the client is closed'));
    if (this.#subs.has(topic)) {
      return Promise.reject(new PubSubError('already_subscribed', `already subscribed to '${topic}'`));
    }
    return new Promise((resolve, reject) => {
      const sub = { topic, start: start ?? {}, onEvent, position: null, state: 'detached', requestId: null, cause: 'start', opened: { resolve, reject } };
      this.#subs.set(topic, sub);
      if (this.#ws) this.#request(sub, 'start');
    });
  }

  /** Ends the subscription to `topic`. */
  unsubscribe(topic) {
    this.#subs.delete(topic);
    if (!this.#ws) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#send({ action: 'unsubscribe', topic }, { kind: 'unsubscribe', resolve, reject });
    });
  }

  /** Publishes `message` (any JSON value) and resolves with its seq. Rejects with
   * `connection_lost` if the connection drops before the reply: it may have been published. */
  publish(topic, message) {
    return this.#call({ action: 'publish', topic, message }, 'publish');
  }

  /** The protocol's ping: resolves with the round trip in milliseconds. */
  ping() {
    return this.#call({ action: 'ping' }, 'ping');
  }

  /** Closes the connection; no more reconnects. */
  close() {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#drop('closed', 'the client is closed');
    for (const h of this.#held.splice(0)) h.waiter.reject(new PubSubError('closed', 'the client is closed'));
  }

  #call(frame, kind) {
    if (this.#closed) return Promise.reject(new PubSubError('closed', 'the client is closed'));
    return new Promise((resolve, reject) => {
      const waiter = { kind, resolve, reject, sent: 0 };
      if (this.#ws) {
        this.#send(frame, waiter);
      } else if (this.#held.length < this.#options.maxHeld) {
        this.#held.push({ frame, waiter });
      } else {
        reject(new PubSubError('too_many_held', 'too many requests held while reconnecting'));
      }
    });
  }

  #send(frame, waiter) {
    const request_id = `j${++this.#nextId}`;
    if (waiter) {
      waiter.sent = Date.now();
      this.#pending.set(request_id, waiter);
    }
    this.#ws.send(JSON.stringify({ ...frame, request_id }));
    return request_id;
  }

  // ---- connecting -------------------------------------------------------------------------

  #open() {
    const { WebSocket: Ws, token, connectTimeout } = this.#options;
    return new Promise((resolve, reject) => {
      const ws = token
        ? new Ws(this.#url, { headers: { Authorization: `Bearer ${token}` } })
        : new Ws(this.#url);
      const fail = (why) => {
        clearTimeout(timer);
        ws.onopen = ws.onclose = ws.onerror = null;
        try { ws.close(); } catch { /* already closed */ }
        reject(new PubSubError('connect_failed', `${this.#url}: ${why}`));
      };
      const timer = setTimeout(() => fail(`no connection within ${connectTimeout} ms`), connectTimeout);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve(ws);
      };
      ws.onerror = () => fail('the connection failed');
      ws.onclose = (e) => fail(`closed (${e.code})`);
    });
  }

  async #reconnectNow() {
    const ws = await this.#open();
    if (this.#closed) {
      ws.close();
      return;
    }
    this.#session(ws);
  }

  #scheduleReconnect() {
    if (this.#closed) return;
    const delay = backoffDelay(this.#options.backoff, this.#attempts, this.#options.random());
    this.#attempts += 1;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectNow().catch((e) => {
        this.#setStatus({ lastError: e.message });
        this.#scheduleReconnect();
      });
    }, delay);
  }

  #setStatus(change) {
    this.status = { ...this.status, ...change };
    this.#options.onStatus(this.status);
  }

  #session(ws) {
    this.#ws = ws;
    this.#answered = false;
    this.#sessionStart = Date.now();
    ws.onmessage = (e) => {
      this.#answered = true;
      this.#liveness.lastHeard = Date.now();
      this.#liveness.pingSent = null;
      this.#frame(e.data);
    };
    ws.onclose = (e) => this.#lost(`closed by the server: ${e.code} ${e.reason}`);
    ws.onerror = () => {};
    this.#setStatus({ connected: true, connections: this.status.connections + 1 });
    for (const sub of this.#subs.values()) this.#request(sub, sub.position ? 'disconnected' : 'start');
    for (const { frame, waiter } of this.#held.splice(0)) this.#send(frame, waiter);
    this.#liveness.lastHeard = Date.now();
    this.#liveness.pingSent = null;
    this.#armLiveness(this.#options.pingInterval);
  }

  #armLiveness(after) {
    clearTimeout(this.#liveness.timer);
    this.#liveness.timer = setTimeout(() => this.#checkLiveness(), after);
  }

  // Armed lazily: frames move `lastHeard` without touching the timer.
  #checkLiveness() {
    if (!this.#ws) return;
    const { pingInterval, pingTimeout } = this.#options;
    const now = Date.now();
    const l = this.#liveness;
    if (l.pingSent !== null) {
      if (now - l.pingSent >= pingTimeout) {
        this.#lost(`nothing heard from the server for ${pingInterval + pingTimeout} ms, a ping unanswered`);
        return;
      }
      this.#armLiveness(l.pingSent + pingTimeout - now);
    } else if (now - l.lastHeard >= pingInterval) {
      l.pingSent = now;
      this.#send({ action: 'ping' }, { kind: 'liveness' });
      this.#armLiveness(pingTimeout);
    } else {
      this.#armLiveness(l.lastHeard + pingInterval - now);
    }
  }

  /** Ends the current connection: requests in flight are settled, subscriptions wait for the
   * next connection. */
  #drop(code, why) {
    const ws = this.#ws;
    if (!ws) return false;
    this.#ws = null;
    clearTimeout(this.#liveness.timer);
    ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(1000, 'client closed'); } catch { /* already closed */ }
    for (const waiter of this.#pending.values()) {
      if (waiter.kind === 'unsubscribe') waiter.resolve();
      else if (waiter.kind === 'publish' || waiter.kind === 'ping') {
        waiter.reject(new PubSubError(code, code === 'closed' ? why : 'the connection was lost before the reply (the request may or may not have taken effect)'));
      }
    }
    this.#pending.clear();
    for (const sub of this.#subs.values()) sub.state = 'detached';
    this.#setStatus({ connected: false, lastError: why });
    return true;
  }

  #lost(why) {
    const lasted = Date.now() - this.#sessionStart;
    if (!this.#drop('connection_lost', why)) return;
    // A server that accepts and drops every connection is not retried without backoff.
    if (this.#answered || lasted >= this.#options.backoff.max) this.#attempts = 0;
    this.#scheduleReconnect();
  }

  // ---- frames ---------------------------------------------------------------------------

  #frame(text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (f.action === 'message') this.#onMessage(f);
    else if (f.action === 'lagged') this.#onLagged(f.topic);
    else if (f.action === 'topic_deleted') this.#end(f.topic, { type: 'topic_deleted', topic: f.topic });
    else if (typeof f.request_id === 'string') this.#onReply(f);
  }

  #onReply(f) {
    const waiter = this.#pending.get(f.request_id);
    if (!waiter) return;
    this.#pending.delete(f.request_id);
    const error = f.action === 'error' ? new PubSubError(f.error?.code ?? 'internal', f.error?.message ?? '') : null;
    switch (waiter.kind) {
      case 'publish':
        if (f.action === 'published') waiter.resolve(f.seq);
        else waiter.reject(error ?? new PubSubError('internal', `unexpected reply ${f.action}`));
        break;
      case 'ping':
        if (f.action === 'pong') waiter.resolve(Date.now() - waiter.sent);
        else waiter.reject(error ?? new PubSubError('internal', `unexpected reply ${f.action}`));
        break;
      case 'unsubscribe':
        if (error) waiter.reject(error);
        else waiter.resolve();
        break;
      case 'subscribe':
        this.#onSubscribeReply(waiter.sub, f, error);
        break;
      default: // liveness pings, unsubscribes nobody waits for
    }
  }

  /** (Re)subscribes `sub`: from its last seq delivered, or where the application asked. */
  #request(sub, cause) {
    const frame = { action: 'subscribe', topic: sub.topic };
    if (sub.position) {
      frame.since_seq = sub.position.lastSeq;
      frame.epoch = sub.position.epoch;
    } else if (sub.start.last !== undefined) {
      frame.replay_last = sub.start.last;
    } else if (sub.start.since !== undefined) {
      frame.since_seq = sub.start.since;
      if (sub.start.epoch !== undefined) frame.epoch = sub.start.epoch;
    }
    sub.requestId = this.#send(frame, { kind: 'subscribe', sub });
    sub.state = 'subscribing';
    sub.cause = cause;
  }

  #onSubscribeReply(sub, f, error) {
    if (this.#subs.get(sub.topic) !== sub || sub.requestId !== f.request_id) return; // stale
    if (error) {
      this.#subs.delete(sub.topic);
      if (sub.opened) sub.opened.reject(error);
      else if (error.code === 'topic_not_found') this.#emit(sub, { type: 'topic_deleted', topic: sub.topic });
      else this.#emit(sub, { type: 'failed', topic: sub.topic, error });
      return;
    }
    const beforeReplay = Math.max(0, f.last_seq - f.replayed);
    const gap = (afterSeq) => ({
      type: 'gap', topic: sub.topic, afterSeq, nextSeq: beforeReplay + 1,
      missed: Math.max(0, beforeReplay - afterSeq), cause: sub.cause,
    });
    const epochChanged = (oldEpoch) => {
      this.#emit(sub, { type: 'epoch_changed', topic: sub.topic, oldEpoch, newEpoch: f.epoch });
      if (beforeReplay > 0) this.#emit(sub, gap(0));
    };
    let lastSeq;
    const p = sub.position;
    if (p && p.epoch !== f.epoch) {
      epochChanged(p.epoch);
      lastSeq = beforeReplay;
    } else if (p) {
      if (f.recovered === false && beforeReplay > p.lastSeq) {
        this.#emit(sub, gap(p.lastSeq));
        lastSeq = beforeReplay;
      } else {
        lastSeq = p.lastSeq;
      }
    } else if (sub.start.last !== undefined) {
      lastSeq = beforeReplay;
    } else if (sub.start.since !== undefined) {
      if (f.recovered === false) {
        if (sub.start.epoch !== undefined && sub.start.epoch !== f.epoch) epochChanged(sub.start.epoch);
        else this.#emit(sub, gap(sub.start.since));
        lastSeq = beforeReplay;
      } else {
        lastSeq = sub.start.since;
      }
    } else {
      lastSeq = f.last_seq;
    }
    sub.position = { epoch: f.epoch, lastSeq };
    sub.state = 'live';
    if (sub.opened) {
      const { resolve } = sub.opened;
      sub.opened = null;
      resolve({ topic: f.topic, epoch: f.epoch, lastSeq: f.last_seq, replayed: f.replayed, recovered: f.recovered });
    }
  }

  #onMessage(f) {
    const sub = this.#subs.get(f.topic);
    if (!sub || sub.state !== 'live') return; // before a (re)subscribe's ack its replay holds it
    const p = sub.position;
    if (f.seq <= p.lastSeq) return; // delivered already
    if (f.seq > p.lastSeq + 1) {
      this.#request(sub, 'skipped'); // ask history for what is missing
      return;
    }
    p.lastSeq = f.seq;
    this.#emit(sub, { type: 'message', topic: f.topic, epoch: p.epoch, seq: f.seq, message: f.message, publishedAt: f.published_at });
  }

  #onLagged(topic) {
    const sub = this.#subs.get(topic);
    if (sub && sub.state === 'live') this.#request(sub, 'lagged');
  }

  #end(topic, event) {
    const sub = this.#subs.get(topic);
    if (!sub) return;
    this.#subs.delete(topic);
    this.#emit(sub, event);
  }

  #emit(sub, event) {
    try {
      sub.onEvent(event);
    } catch (e) {
      // The application's error is its own: report it without breaking the client.
      queueMicrotask(() => { throw e; });
    }
  }
}
