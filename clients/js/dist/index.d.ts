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
export type PubSubEvent = {
    type: 'message';
    topic: string;
    epoch: string;
    seq: number;
    message: unknown;
    publishedAt: string;
} | {
    type: 'gap';
    topic: string;
    afterSeq: number;
    nextSeq: number;
    missed: number;
    cause: GapCause;
} | {
    type: 'epoch_changed';
    topic: string;
    oldEpoch: string;
    newEpoch: string;
} | {
    type: 'topic_deleted';
    topic: string;
} | {
    type: 'failed';
    topic: string;
    error: PubSubError;
};
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
    onmessage: ((event: {
        data: unknown;
    }) => void) | null;
    onclose: ((event: {
        code: number;
        reason: string;
    }) => void) | null;
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
/** An error with a stable `code`: the server's (`topic_not_found`, ...) or the client's
 * (`connection_lost`, `closed`, `already_subscribed`, `connect_failed`, `too_many_held`). */
export declare class PubSubError extends Error {
    readonly code: string;
    constructor(code: string, message: string);
}
/** The wait before reconnect attempt `attempt` (from 0): between half and all of
 * min(max, initial * multiplier^attempt), `random` in [0, 1). */
export declare function backoffDelay({ initial, max, multiplier }: Backoff, attempt: number, random: number): number;
/** `http://HOST:PORT` (the server's base URL) or `ws://HOST:PORT/ws`, as a WebSocket URL;
 * with `token`, carrying it as the `token` query parameter. */
export declare function websocketUrl(url: string, token?: string): string;
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
export declare function rest(base: string, path: string, options?: RestOptions): Promise<RestResponse>;
export declare class PubSubClient {
    #private;
    /** Connects once (a failure here is returned, not retried), then keeps reconnecting. */
    static connect(url: string, options?: Options): Promise<PubSubClient>;
    status: Status;
    constructor(url: string, options?: Options);
    /**
     * Subscribes to `topic` from `start` ({} for now, { last: N }, or { since: SEQ, epoch }),
     * calling `onEvent` with each event. Resolves with the first ack once the server has given
     * it; rejects with the server's error.
     */
    subscribe(topic: string, start: Start | undefined, onEvent: (event: PubSubEvent) => void): Promise<SubscribeAck>;
    /** Ends the subscription to `topic`. */
    unsubscribe(topic: string): Promise<void>;
    /** Publishes `message` (any JSON value) and resolves with its seq. Rejects with
     * `connection_lost` if the connection drops before the reply: it may have been published. */
    publish(topic: string, message: unknown): Promise<number>;
    /** The protocol's ping: resolves with the round trip in milliseconds. */
    ping(): Promise<number>;
    /** Replaces the token: every later connection carries the new one, and the open connection
     * is sent `{"action":"refresh","token":...}`; resolves on the server's `refreshed`. */
    refresh(token: string): Promise<void>;
    /** Closes the connection; no more reconnects. */
    close(): void;
}
