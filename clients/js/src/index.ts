// A client of the pubsub broker's WebSocket protocol, for browsers and Node.js 22 or later
// (Node.js 20 with --experimental-websocket). No dependencies.
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
// One file on purpose: the broker serves this module as it is to its console page.

/** Where a subscription starts: now (`{}`), the last N messages, or after a seq of an epoch. */
export interface Start {
  last?: number;
  since?: number;
  epoch?: string;
}

/** Why a gap happened: history did not cover the first subscribe (`start`), a reconnect
 * (`disconnected`), a `lagged` notice, or a seq skipped without notice (`skipped`). */
export type GapCause = 'start' | 'disconnected' | 'lagged' | 'skipped';

/** What a subscription's callback receives. `topic_deleted` and `failed` end it. */
export type PubSubEvent =
  | { type: 'message'; topic: string; epoch: string; seq: number; message: unknown; publishedAt: string }
  | { type: 'gap'; topic: string; afterSeq: number; nextSeq: number; missed: number; cause: GapCause }
  | { type: 'epoch_changed'; topic: string; oldEpoch: string; newEpoch: string }
  | { type: 'topic_deleted'; topic: string }
  | { type: 'failed'; topic: string; error: PubSubError };

/** The first subscribe's ack. */
export interface SubscribeAck {
  topic: string;
  epoch: string;
  lastSeq: number;
  replayed: number;
  recovered: boolean | undefined;
}

/** The connection as the application sees it; `connections` counts every connection made. */
export interface Status {
  connected: boolean;
  connections: number;
  lastError: string | null;
}

/** Reconnect delays in milliseconds. */
export interface Backoff {
  initial: number;
  max: number;
  multiplier: number;
}

/** What the client needs of a WebSocket: the browser's and Node.js's fit, and so does a fake. */
export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type SocketConstructor = new (url: string) => SocketLike;

export interface Options {
  /** Sent as the `token` query parameter of the WebSocket URL (browsers cannot set headers
   * on a WebSocket handshake); `refresh` replaces it. */
  token?: string;
  backoff?: Partial<Backoff>;
  pingInterval?: number;
  pingTimeout?: number;
  connectTimeout?: number;
  /** Publishes, pings and refreshes held while reconnecting. */
  maxHeld?: number;
  onStatus?: (status: Status) => void;
  WebSocket?: SocketConstructor;
  random?: () => number;
}

type Settings = Required<Omit<Options, 'token' | 'backoff'>> & { token: string | undefined; backoff: Backoff };

const DEFAULTS: Omit<Settings, 'WebSocket'> = {
  token: undefined,
  backoff: { initial: 100, max: 10000, multiplier: 2 },
  pingInterval: 15000,
  pingTimeout: 10000,
  connectTimeout: 10000,
  maxHeld: 1024,
  onStatus: () => {},
  random: Math.random,
};

/** An error with a stable `code`: the server's (`topic_not_found`, ...) or the client's
 * (`connection_lost`, `closed`, `already_subscribed`, `connect_failed`, `too_many_held`). */
export class PubSubError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = 'PubSubError';
    this.code = code;
  }
}

/** The wait before reconnect attempt `attempt` (from 0): between half and all of
 * min(max, initial * multiplier^attempt), `random` in [0, 1). */
export function backoffDelay({ initial, max, multiplier }: Backoff, attempt: number, random: number): number {
  const ceiling = Math.min(max, initial * Math.max(1, multiplier) ** attempt);
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return (Number.isFinite(ceiling) ? ceiling : max) * (0.5 + 0.5 * r);
}

/** `http://HOST:PORT` (the server's base URL) or `ws://HOST:PORT/ws`, as a WebSocket URL;
 * with `token`, carrying it as the `token` query parameter. */
export function websocketUrl(url: string, token?: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    u.protocol = u.protocol === 'http:' ? 'ws:' : 'wss:';
    u.pathname = `${u.pathname.replace(/\/$/, '')}/ws`;
  }
  if (token !== undefined && token !== '') u.searchParams.set('token', token);
  return u.toString();
}

/** A REST answer: the status and the body as JSON (the text where it is not JSON, null if empty). */
export interface RestResponse {
  status: number;
  ok: boolean;
  body: unknown;
}

export interface RestOptions {
  method?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as `Authorization: Bearer TOKEN`. */
  token?: string;
  fetch?: typeof fetch;
}

/** A request to the REST API at `base` (`http://HOST:PORT`); an error answer is returned, not
 * thrown (its body is the server's `{ error: { code, message } }`). */
export async function rest(base: string, path: string, options: RestOptions = {}): Promise<RestResponse> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.token !== undefined && options.token !== '') headers.Authorization = `Bearer ${options.token}`;
  const init: RequestInit = { method: options.method ?? 'GET', headers };
  if (options.body !== undefined) init.body = JSON.stringify(options.body);
  const response = await (options.fetch ?? fetch)(new URL(path, base).toString(), init);
  const text = await response.text();
  let body: unknown = null;
  if (text !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  return { status: response.status, ok: response.ok, body };
}

type Waiter =
  | { kind: 'publish'; resolve: (seq: number) => void; reject: (e: PubSubError) => void; sent: number }
  | { kind: 'ping'; resolve: (ms: number) => void; reject: (e: PubSubError) => void; sent: number }
  | { kind: 'refresh'; resolve: () => void; reject: (e: PubSubError) => void; sent: number }
  | { kind: 'unsubscribe'; resolve: () => void; reject: (e: PubSubError) => void }
  | { kind: 'subscribe'; sub: Subscription }
  | { kind: 'liveness' };

type Call = Extract<Waiter, { kind: 'publish' | 'ping' | 'refresh' }>;

interface Subscription {
  topic: string;
  start: Start;
  onEvent: (event: PubSubEvent) => void;
  position: { epoch: string; lastSeq: number } | null;
  state: 'detached' | 'subscribing' | 'live';
  requestId: string | null;
  cause: GapCause;
  opened: { resolve: (ack: SubscribeAck) => void; reject: (e: PubSubError) => void } | null;
}

/** A frame from the server, as far as the client reads it. */
interface Frame {
  action?: string;
  request_id?: unknown;
  topic?: string;
  seq?: number;
  epoch?: string;
  last_seq?: number;
  replayed?: number;
  recovered?: boolean;
  message?: unknown;
  published_at?: string;
  error?: { code?: string; message?: string };
}

export class PubSubClient {
  /** Connects once (a failure here is returned, not retried), then keeps reconnecting. */
  static async connect(url: string, options: Options = {}): Promise<PubSubClient> {
    const client = new PubSubClient(url, options);
    await client.#reconnectNow();
    return client;
  }

  readonly #url: string;
  readonly #options: Settings;
  #ws: SocketLike | null = null;
  readonly #subs = new Map<string, Subscription>();
  readonly #pending = new Map<string, Waiter>();
  #held: { frame: Record<string, unknown>; waiter: Call }[] = [];
  #nextId = 0;
  #attempts = 0;
  #answered = false;
  #sessionStart = 0;
  #closed = false;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  readonly #liveness: { timer: ReturnType<typeof setTimeout> | undefined; lastHeard: number; pingSent: number | null } = {
    timer: undefined,
    lastHeard: 0,
    pingSent: null,
  };
  status: Status = { connected: false, connections: 0, lastError: null };

  constructor(url: string, options: Options = {}) {
    this.#url = websocketUrl(url);
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.#options = {
      ...DEFAULTS,
      WebSocket: globalThis.WebSocket as unknown as SocketConstructor,
      ...defined,
      backoff: { ...DEFAULTS.backoff, ...options.backoff },
    };
  }

  /**
   * Subscribes to `topic` from `start` ({} for now, { last: N }, or { since: SEQ, epoch }),
   * calling `onEvent` with each event. Resolves with the first ack once the server has given
   * it; rejects with the server's error.
   */
  subscribe(topic: string, start: Start | undefined, onEvent: (event: PubSubEvent) => void): Promise<SubscribeAck> {
    if (this.#closed) return Promise.reject(new PubSubError('closed', 'the client is closed'));
    if (this.#subs.has(topic)) {
      return Promise.reject(new PubSubError('already_subscribed', `already subscribed to '${topic}'`));
    }
    return new Promise((resolve, reject) => {
      const sub: Subscription = {
        topic, start: start ?? {}, onEvent, position: null, state: 'detached', requestId: null, cause: 'start',
        opened: { resolve, reject },
      };
      this.#subs.set(topic, sub);
      if (this.#ws) this.#request(sub, 'start');
    });
  }

  /** Ends the subscription to `topic`. */
  unsubscribe(topic: string): Promise<void> {
    this.#subs.delete(topic);
    if (!this.#ws) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#send({ action: 'unsubscribe', topic }, { kind: 'unsubscribe', resolve, reject });
    });
  }

  /** Publishes `message` (any JSON value) and resolves with its seq. Rejects with
   * `connection_lost` if the connection drops before the reply: it may have been published. */
  publish(topic: string, message: unknown): Promise<number> {
    return this.#call({ action: 'publish', topic, message }, (resolve, reject) => ({ kind: 'publish', resolve, reject, sent: 0 }));
  }

  /** The protocol's ping: resolves with the round trip in milliseconds. */
  ping(): Promise<number> {
    return this.#call({ action: 'ping' }, (resolve, reject) => ({ kind: 'ping', resolve, reject, sent: 0 }));
  }

  /** Replaces the token: every later connection carries the new one, and the open connection
   * is sent `{"action":"refresh","token":...}`; resolves on the server's `refreshed`. */
  refresh(token: string): Promise<void> {
    if (this.#closed) return Promise.reject(new PubSubError('closed', 'the client is closed'));
    this.#options.token = token;
    return this.#call({ action: 'refresh', token }, (resolve, reject) => ({ kind: 'refresh', resolve, reject, sent: 0 }));
  }

  /** Closes the connection; no more reconnects. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#drop('closed', 'the client is closed');
    for (const h of this.#held.splice(0)) h.waiter.reject(new PubSubError('closed', 'the client is closed'));
  }

  #call<T>(
    frame: Record<string, unknown>,
    make: (resolve: (value: T) => void, reject: (e: PubSubError) => void) => Call,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new PubSubError('closed', 'the client is closed'));
    return new Promise<T>((resolve, reject) => {
      const waiter = make(resolve, reject);
      if (this.#ws) {
        this.#send(frame, waiter);
      } else if (this.#held.length < this.#options.maxHeld) {
        this.#held.push({ frame, waiter });
      } else {
        reject(new PubSubError('too_many_held', 'too many requests held while reconnecting'));
      }
    });
  }

  #send(frame: Record<string, unknown>, waiter?: Waiter): string {
    const ws = this.#ws;
    if (!ws) throw new PubSubError('connection_lost', 'not connected');
    const request_id = `j${++this.#nextId}`;
    if (waiter) {
      if ('sent' in waiter) waiter.sent = Date.now();
      this.#pending.set(request_id, waiter);
    }
    ws.send(JSON.stringify({ ...frame, request_id }));
    return request_id;
  }

  // ---- connecting -------------------------------------------------------------------------

  #open(): Promise<SocketLike> {
    const { WebSocket: Ws, token, connectTimeout } = this.#options;
    const url = websocketUrl(this.#url, token);
    // What an error says: the URL without the token.
    const shown = this.#url;
    return new Promise((resolve, reject) => {
      if (typeof Ws !== 'function') {
        reject(new PubSubError('connect_failed',
          'this runtime has no WebSocket (Node.js 20 needs --experimental-websocket): pass options.WebSocket'));
        return;
      }
      const ws = new Ws(url);
      const fail = (why: string) => {
        clearTimeout(timer);
        ws.onopen = ws.onclose = ws.onerror = null;
        try { ws.close(); } catch { /* already closed */ }
        reject(new PubSubError('connect_failed', `${shown}: ${why}`));
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

  async #reconnectNow(): Promise<void> {
    const ws = await this.#open();
    if (this.#closed) {
      ws.close();
      return;
    }
    this.#session(ws);
  }

  #scheduleReconnect(): void {
    if (this.#closed) return;
    const delay = backoffDelay(this.#options.backoff, this.#attempts, this.#options.random());
    this.#attempts += 1;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectNow().catch((e: unknown) => {
        this.#setStatus({ lastError: e instanceof Error ? e.message : String(e) });
        this.#scheduleReconnect();
      });
    }, delay);
  }

  #setStatus(change: Partial<Status>): void {
    this.status = { ...this.status, ...change };
    this.#options.onStatus(this.status);
  }

  #session(ws: SocketLike): void {
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

  #armLiveness(after: number): void {
    clearTimeout(this.#liveness.timer);
    this.#liveness.timer = setTimeout(() => this.#checkLiveness(), after);
  }

  // Armed lazily: frames move `lastHeard` without touching the timer.
  #checkLiveness(): void {
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
  #drop(code: string, why: string): boolean {
    const ws = this.#ws;
    if (!ws) return false;
    this.#ws = null;
    clearTimeout(this.#liveness.timer);
    ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(1000, 'client closed'); } catch { /* already closed */ }
    for (const waiter of this.#pending.values()) {
      if (waiter.kind === 'unsubscribe') waiter.resolve();
      else if (waiter.kind === 'publish' || waiter.kind === 'ping' || waiter.kind === 'refresh') {
        waiter.reject(new PubSubError(code, code === 'closed'
          ? why
          : 'the connection was lost before the reply (the request may or may not have taken effect)'));
      }
    }
    this.#pending.clear();
    for (const sub of this.#subs.values()) sub.state = 'detached';
    this.#setStatus({ connected: false, lastError: why });
    return true;
  }

  #lost(why: string): void {
    const lasted = Date.now() - this.#sessionStart;
    if (!this.#drop('connection_lost', why)) return;
    // A server that accepts and drops every connection is not retried without backoff.
    if (this.#answered || lasted >= this.#options.backoff.max) this.#attempts = 0;
    this.#scheduleReconnect();
  }

  // ---- frames ---------------------------------------------------------------------------

  #frame(data: unknown): void {
    let f: Frame;
    try {
      f = JSON.parse(String(data)) as Frame;
    } catch {
      return;
    }
    if (typeof f !== 'object' || f === null) return;
    if (f.action === 'message') this.#onMessage(f);
    else if (f.action === 'lagged' && f.topic !== undefined) this.#onLagged(f.topic);
    else if (f.action === 'topic_deleted' && f.topic !== undefined) this.#end(f.topic, { type: 'topic_deleted', topic: f.topic });
    else if (typeof f.request_id === 'string') this.#onReply(f, f.request_id);
  }

  #onReply(f: Frame, requestId: string): void {
    const waiter = this.#pending.get(requestId);
    if (!waiter) return;
    this.#pending.delete(requestId);
    const error = f.action === 'error' ? new PubSubError(f.error?.code ?? 'internal', f.error?.message ?? '') : null;
    const unexpected = () => error ?? new PubSubError('internal', `unexpected reply ${f.action}`);
    switch (waiter.kind) {
      case 'publish':
        if (f.action === 'published' && typeof f.seq === 'number') waiter.resolve(f.seq);
        else waiter.reject(unexpected());
        break;
      case 'ping':
        if (f.action === 'pong') waiter.resolve(Date.now() - waiter.sent);
        else waiter.reject(unexpected());
        break;
      case 'refresh':
        if (f.action === 'refreshed') waiter.resolve();
        else waiter.reject(unexpected());
        break;
      case 'unsubscribe':
        if (error) waiter.reject(error);
        else waiter.resolve();
        break;
      case 'subscribe':
        this.#onSubscribeReply(waiter.sub, f, requestId, error);
        break;
      default: // liveness pings
    }
  }

  /** (Re)subscribes `sub`: from its last seq delivered, or where the application asked. */
  #request(sub: Subscription, cause: GapCause): void {
    const frame: Record<string, unknown> = { action: 'subscribe', topic: sub.topic };
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

  #onSubscribeReply(sub: Subscription, f: Frame, requestId: string, error: PubSubError | null): void {
    if (this.#subs.get(sub.topic) !== sub || sub.requestId !== requestId) return; // stale
    if (error) {
      this.#subs.delete(sub.topic);
      if (sub.opened) sub.opened.reject(error);
      else if (error.code === 'topic_not_found') this.#emit(sub, { type: 'topic_deleted', topic: sub.topic });
      else this.#emit(sub, { type: 'failed', topic: sub.topic, error });
      return;
    }
    const epoch = f.epoch ?? '';
    const ackLastSeq = f.last_seq ?? 0;
    const replayed = f.replayed ?? 0;
    const beforeReplay = Math.max(0, ackLastSeq - replayed);
    const gap = (afterSeq: number): PubSubEvent => ({
      type: 'gap', topic: sub.topic, afterSeq, nextSeq: beforeReplay + 1,
      missed: Math.max(0, beforeReplay - afterSeq), cause: sub.cause,
    });
    const epochChanged = (oldEpoch: string) => {
      this.#emit(sub, { type: 'epoch_changed', topic: sub.topic, oldEpoch, newEpoch: epoch });
      if (beforeReplay > 0) this.#emit(sub, gap(0));
    };
    let lastSeq: number;
    const p = sub.position;
    if (p && p.epoch !== epoch) {
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
        if (sub.start.epoch !== undefined && sub.start.epoch !== epoch) epochChanged(sub.start.epoch);
        else this.#emit(sub, gap(sub.start.since));
        lastSeq = beforeReplay;
      } else {
        lastSeq = sub.start.since;
      }
    } else {
      lastSeq = ackLastSeq;
    }
    sub.position = { epoch, lastSeq };
    sub.state = 'live';
    if (sub.opened) {
      const { resolve } = sub.opened;
      sub.opened = null;
      resolve({ topic: sub.topic, epoch, lastSeq: ackLastSeq, replayed, recovered: f.recovered });
    }
  }

  #onMessage(f: Frame): void {
    const sub = f.topic === undefined ? undefined : this.#subs.get(f.topic);
    if (!sub || sub.state !== 'live' || !sub.position || typeof f.seq !== 'number') return; // before a (re)subscribe's ack its replay holds it
    const p = sub.position;
    if (f.seq <= p.lastSeq) return; // delivered already
    if (f.seq > p.lastSeq + 1) {
      this.#request(sub, 'skipped'); // ask history for what is missing
      return;
    }
    p.lastSeq = f.seq;
    this.#emit(sub, {
      type: 'message', topic: sub.topic, epoch: p.epoch, seq: f.seq, message: f.message, publishedAt: f.published_at ?? '',
    });
  }

  #onLagged(topic: string): void {
    const sub = this.#subs.get(topic);
    if (sub && sub.state === 'live') this.#request(sub, 'lagged');
  }

  #end(topic: string, event: PubSubEvent): void {
    const sub = this.#subs.get(topic);
    if (!sub) return;
    this.#subs.delete(topic);
    this.#emit(sub, event);
  }

  #emit(sub: Subscription, event: PubSubEvent): void {
    try {
      sub.onEvent(event);
    } catch (e) {
      // The application's error is its own: report it without breaking the client.
      queueMicrotask(() => { throw e; });
    }
  }
}
