/**
 * Switchboard browser client: signaling over WebSocket or HTTP long-polling, with automatic
 * reconnect and resume, and {@link PeerLink}, the W3C "perfect negotiation" pattern on an
 * RTCPeerConnection over that signaling channel. It speaks version 1 of the Switchboard
 * signaling protocol (docs/protocol.md in the repository).
 *
 * Calling a peer:
 *
 *     import { connect, PeerLink } from "/client/switchboard.js";
 *     const sig = await connect({ url: location.origin, room: "demo", peer: "alice" });
 *     const link = new PeerLink(sig, "bob", { rtcConfig });
 *     link.addStream(await navigator.mediaDevices.getUserMedia({ video: true }));
 *     link.addEventListener("track", (e) => (video.srcObject = e.detail.streams[0]));
 *
 * Answering: create the callee's PeerLink from the first offer a peer sends, with
 * {@link PeerLink.accept}, in the "message" listener itself. Tracks added right after accept()
 * returns go into the answer.
 *
 *     sig.addEventListener("message", ({ detail: env }) => {
 *       if (env.type === "offer" && !links.has(env.from)) {
 *         const link = PeerLink.accept(sig, env, { rtcConfig });
 *         link.addStream(localStream);
 *         links.set(env.from, link);
 *       }
 *     });
 *
 * To see the join and welcome envelopes in "trace" events, create a {@link Signaling} with
 * `new Signaling(options)`, add listeners, then `await sig.open()`: that is all connect() does.
 *
 * @module switchboard
 */

/** PROTOCOL_VERSION is the version of the signaling protocol this client speaks. */
export const PROTOCOL_VERSION = 1;

/** TRANSPORTS lists the built-in values of the `transport` option. */
export const TRANSPORTS = Object.freeze(["auto", "websocket", "longpoll"]);

// registered holds the transports added with registerTransport, by name.
const registered = new Map();

/**
 * registerTransport adds a custom transport, so that `connect({transport: name})` uses it, as
 * the Go client's RegisterTransport does. A transport is an object `{name, open}`:
 *
 * - `name`: its name, as the broker's transport of the same wire is registered;
 * - `open({base, options, signal, receive, closed})`: connects to the broker at `base` (its
 *   http(s) base URL, no trailing slash) and returns, or resolves with, a channel
 *   `{send(envelope), close()}` once envelopes can be sent. `send` writes one envelope to the
 *   broker (it may return a promise; envelopes must reach the broker in the order sent), the
 *   first one being the join; `close` ends the connection. The transport calls
 *   `receive(envelope)` with every envelope from the broker, in order (an object, or its JSON
 *   text), the welcome or error answering the join included, and `closed(error)` once if the
 *   connection ends by itself. `signal` aborts when the client gives up before open settles.
 *   Reject (or call closed) with a SignalingError of code "unreachable" for a broker that
 *   cannot be reached: "auto" then tries the next transport, and reconnecting tries again.
 *
 * The client does the rest as on WebSocket: it acknowledges what it delivered with `ack`
 * envelopes, confirms its writes and finds dead connections with `ping`, reconnects and
 * resumes. A transport object may also be given to connect() directly, unregistered.
 * @param {{name: string, open: Function}} transport
 */
export function registerTransport(transport) {
  checkTransport(transport);
  if (TRANSPORTS.includes(transport.name) || registered.has(transport.name)) {
    throw new TypeError(`switchboard: transport ${transport.name} is already registered`);
  }
  registered.set(transport.name, transport);
}

function checkTransport(t) {
  if (typeof t?.name !== "string" || t.name === "" || typeof t.open !== "function") {
    throw new TypeError("switchboard: a transport is an object with a name and an open function");
  }
}

const DEFAULTS = Object.freeze({
  transport: "auto",
  connectTimeout: 10_000,
  reconnectDelay: 500,
  reconnectDelayMax: 10_000,
  ackEvery: 32,
  ackInterval: 1_000,
  heartbeatInterval: 25_000,
  pongTimeout: 10_000,
  pollWait: 25,
  requestTimeout: 15_000,
});

// POST_BATCH_SIZE bounds one long-poll POST body, in characters of JSON, well under the
// broker's body limit; a single larger envelope goes alone.
const POST_BATCH_SIZE = 64 * 1024;

// ICE_RETRY is how long (ms) an automatic refresh of the ICE servers waits for its answer
// before it asks again.
const ICE_RETRY = 30_000;

// CONTROL_TYPES are the envelopes the client sends itself; send() refuses them.
const CONTROL_TYPES = new Set(["join", "ack", "leave"]);

// FATAL_CODES end reconnecting: trying again cannot help.
const FATAL_CODES = new Set([
  "bad-request",
  "too-large",
  "unsupported-version",
  "unknown-type",
  "unauthorized",
  "forbidden",
]);

/**
 * SignalingError is an error from the broker (an `error` envelope, or a refused join) or from
 * the client itself. `code` is one of the protocol's error codes (room-full, unauthorized,
 * peer-id-taken, session-expired, ...) or one of the client's own: `unreachable` (the broker
 * could not be reached), `closed` (the Signaling was closed first), `gap` (messages were lost
 * and could not be fetched again), `protocol` (the broker sent something unreadable).
 */
export class SignalingError extends Error {
  /**
   * @param {string} code the protocol's or the client's error code.
   * @param {string} message human-readable text.
   * @param {{ref?: string, envelope?: object}} [details] the id of the message the error answers,
   *   and the error envelope it came in.
   */
  constructor(code, message, { ref, envelope } = {}) {
    super(message);
    this.name = "SignalingError";
    /** The error code. */
    this.code = code;
    /** The `id` of the message this error answers, when the broker gave one. */
    this.ref = ref;
    /** The `error` envelope this error came in, when it came from the broker. */
    this.envelope = envelope;
  }

  /**
   * fromEnvelope turns an `error` envelope into a SignalingError.
   * @param {object} envelope an envelope of type `error`.
   * @returns {SignalingError}
   */
  static fromEnvelope(envelope) {
    const { code = "internal", message = code, ref } = envelope.payload ?? {};
    return new SignalingError(code, message, { ref, envelope });
  }
}

/**
 * connect joins a room and resolves with the open {@link Signaling} once the broker welcomed
 * it. It rejects with a {@link SignalingError} whose `code` says why: a refused join
 * (room-full, unauthorized, peer-id-taken, ...) or `unreachable`.
 * @param {object} options see {@link Signaling}.
 * @returns {Promise<Signaling>}
 */
export function connect(options) {
  return new Signaling(options).open();
}

/**
 * Signaling is one peer's session in one room of a Switchboard broker. It is an EventTarget:
 *
 * - `message`: e.detail is every envelope delivered to this peer, in order, each once;
 * - `peer-joined`, `peer-left`: e.detail is that envelope; {@link Signaling#peers} is already
 *   updated;
 * - `error`: e.detail is a {@link SignalingError}: an `error` envelope from the broker (`ref`
 *   names the message it refused), lost messages (`gap`), or the reason reconnecting stopped;
 * - `state`: e.detail is `{state}`, one of "connecting", "open", "reconnecting", "closed";
 * - `session-reset`: e.detail is `{previous, session}`: the session expired while the client
 *   was away, so it joined afresh. Calls made in the old session are over; {@link Signaling#peers}
 *   is replaced by the new welcome's list;
 * - `trace`: e.detail is `{direction: "in" | "out", envelope, transport}`, for every envelope
 *   written or read on the wire, acks and pings included, before de-duplication;
 * - `ice-servers`: e.detail is `{iceServers, expires}`: the broker handed out STUN/TURN servers
 *   (in a welcome, resumed or not, or answering {@link Signaling#refreshIceServers}).
 *   {@link Signaling#iceServers} is already updated.
 *
 * The broker's STUN/TURN servers and credentials are kept in {@link Signaling#iceServers},
 * and refreshed at three quarters of their lifetime; {@link PeerLink} uses them unless the
 * page gives servers of its own.
 *
 * When the connection drops, the client reconnects with exponential backoff and resumes the
 * session: nothing is lost and nothing is delivered twice, and messages sent meanwhile are
 * queued and sent after the resume.
 */
export class Signaling extends EventTarget {
  #options;
  #state = "connecting";
  #transport = null;
  #using = null; // the transport in use: a name or a transport object
  #conn = null;
  #peer;
  #session = null;
  #peers = new Map();
  #lastSeq = 0;
  #refetched = false;
  #outbox = new Set();
  #idPrefix = randomHex(8);
  #idCount = 0;
  #opening = null;
  #wake = null;
  #iceServers = [];
  #iceExpires = null;
  #iceTimer = null;
  #iceWaiters = [];

  /**
   * @param {object} options
   * @param {string} options.url the broker's base URL, like "http://localhost:8080"; ws:// or
   *   wss:// is derived from it.
   * @param {string} options.room the room to join.
   * @param {string} [options.peer] this peer's id; absent, the broker picks one.
   * @param {string | (() => string | Promise<string>)} [options.token] the join token, or a
   *   function that returns a fresh one for each join (reconnects included).
   * @param {"auto" | "websocket" | "longpoll" | string | {name: string, open: Function}}
   *   [options.transport] default "auto": WebSocket, or long-polling when a WebSocket cannot
   *   connect; or the name of a transport added with {@link registerTransport}, or such a
   *   transport object itself.
   * @param {object | ((transport: string) => object)} [options.meta] shown to other peers; a
   *   function gets the name of the transport being tried.
   * @param {typeof WebSocket} [options.WebSocketImpl] default globalThis.WebSocket.
   * @param {typeof fetch} [options.fetchImpl] default globalThis.fetch.
   * @param {number} [options.connectTimeout] ms to get a welcome; default 10000.
   * @param {number} [options.reconnectDelay] ms before the first reconnect; it doubles up to
   *   reconnectDelayMax, with jitter; default 500.
   * @param {number} [options.reconnectDelayMax] ms; default 10000.
   * @param {number} [options.ackEvery] WebSocket: ack after this many messages; default 32.
   * @param {number} [options.ackInterval] WebSocket: ms after which a message is acked at the
   *   latest; default 1000.
   * @param {number} [options.heartbeatInterval] WebSocket: ms between pings on an idle
   *   connection; default 25000.
   * @param {number} [options.pongTimeout] WebSocket: ms to wait for a pong before the
   *   connection counts as dead; default 10000.
   * @param {number} [options.pollWait] long-poll: seconds a GET waits for messages; default 25.
   * @param {number} [options.requestTimeout] long-poll: ms a request may take beyond its wait;
   *   default 15000.
   */
  constructor(options) {
    super();
    const given = Object.fromEntries(Object.entries(options ?? {}).filter(([, v]) => v !== undefined));
    const o = { ...DEFAULTS, ...given };
    if (!o.url || !o.room) throw new TypeError("switchboard: url and room are required");
    if (typeof o.transport === "object") checkTransport(o.transport);
    else if (!TRANSPORTS.includes(o.transport) && !registered.has(o.transport)) {
      const names = [...TRANSPORTS, ...registered.keys()].join(", ");
      throw new TypeError(`switchboard: transport must be one of ${names}, or a transport object`);
    }
    o.base = httpBase(o.url);
    o.WebSocketImpl ??= globalThis.WebSocket;
    o.fetchImpl ??= globalThis.fetch?.bind(globalThis);
    this.#options = o;
    this.#peer = o.peer;
  }

  /** peer is this peer's id, as the broker confirmed it (undefined before the welcome). */
  get peer() {
    return this.#peer;
  }

  /** peers lists the other peers now in the room, as `{peer, meta}` objects (a copy). */
  get peers() {
    return [...this.#peers.values()];
  }

  /** session is the session secret, the credential for resuming: keep it out of logs. */
  get session() {
    return this.#session;
  }

  /** transport is the name of the transport in use, such as "websocket" (null before the welcome). */
  get transport() {
    return this.#transport;
  }

  /**
   * iceServers are the STUN and TURN servers the broker handed this peer, as RTCIceServer
   * objects (`urls`, `username`, `credential`) with the newest credentials: what an
   * RTCPeerConnection's `iceServers` takes. Empty before the welcome and when the broker has
   * none. A copy.
   */
  get iceServers() {
    return this.#iceServers.map((s) => ({ ...s, urls: [...s.urls] }));
  }

  /** iceExpires is when the credentials of iceServers expire (a Date), or null if never. */
  get iceExpires() {
    return this.#iceExpires && new Date(this.#iceExpires);
  }

  /**
   * refreshIceServers asks the broker for fresh STUN/TURN credentials (an `ice-servers`
   * envelope). The Signaling does so by itself before they expire.
   * @returns {Promise<object[]>} the new iceServers, once they arrive; rejects with code
   *   `closed` if the Signaling closes first.
   */
  refreshIceServers() {
    if (this.#state === "closed") return Promise.reject(closedError());
    const answered = new Promise((resolve, reject) => this.#iceWaiters.push({ resolve, reject }));
    this.send({ type: "ice-servers" }).catch(() => {});
    return answered;
  }

  // #setIce takes the ice_servers of a welcome or an ice-servers answer, and plans the next
  // refresh at three quarters of their lifetime.
  #setIce(payload) {
    const servers = payload?.ice_servers;
    if (!Array.isArray(servers)) return;
    this.#iceServers = servers.filter((s) => s && s.urls).map((s) => ({ ...s, urls: [].concat(s.urls) }));
    const ttl = typeof payload.ice_ttl === "number" && payload.ice_ttl > 0 ? payload.ice_ttl * 1000 : 0;
    this.#iceExpires = ttl ? Date.now() + ttl : null;
    clearTimeout(this.#iceTimer);
    this.#iceTimer = ttl ? setTimeout(() => this.#autoRefreshIce(), ttl * 0.75) : null;
    const waiters = this.#iceWaiters.splice(0);
    for (const w of waiters) w.resolve(this.iceServers);
    this.#emit("ice-servers", { iceServers: this.iceServers, expires: this.iceExpires });
  }

  // #autoRefreshIce asks for fresh credentials, and asks again after a while if no answer came.
  #autoRefreshIce() {
    if (this.#state === "closed") return;
    this.#iceTimer = setTimeout(() => this.#autoRefreshIce(), ICE_RETRY);
    this.send({ type: "ice-servers" }).catch(() => {});
  }

  /** state is "connecting", "open", "reconnecting" or "closed". */
  get state() {
    return this.#state;
  }

  /**
   * open joins the room; it resolves with this Signaling when the broker welcomed it and
   * rejects with a {@link SignalingError} (see {@link connect}). Calling it again returns the
   * same promise.
   * @returns {Promise<Signaling>}
   */
  open() {
    this.#opening ??= this.#join(undefined).then(
      () => this,
      (error) => {
        this.#shutdown();
        throw error;
      },
    );
    return this.#opening;
  }

  /**
   * send sends an envelope. `id` is filled in when absent, so that a retry after a reconnect is
   * dropped by the broker if the first try got through. While reconnecting, the message waits
   * and goes out after the resume.
   * @param {{type: string, to?: string, payload?: any, id?: string}} message `payload` is sent
   *   as given, null included; absent, the envelope has none.
   * @returns {Promise<object>} the envelope as sent, once the broker has it; a refusal arrives
   *   as an "error" event whose `ref` is its id. Rejects with code `closed` if the Signaling
   *   closes first.
   */
  async send({ type, to, payload, id } = {}) {
    if (typeof type !== "string" || type === "") throw new TypeError("switchboard: send needs a type");
    if (CONTROL_TYPES.has(type)) throw new TypeError(`switchboard: the client sends ${type} itself`);
    if (this.#state === "closed") throw closedError();
    const envelope = { v: PROTOCOL_VERSION, type, id: id ?? `${this.#idPrefix}-${++this.#idCount}` };
    if (to !== undefined) envelope.to = to;
    if (payload !== undefined) envelope.payload = payload;
    const entry = { envelope, conn: null };
    entry.done = new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
    this.#outbox.add(entry);
    this.#flush();
    return entry.done;
  }

  /**
   * close leaves the room: it waits (up to connectTimeout) for the broker to take what was
   * already sent, then sends `leave` (WebSocket) or DELETEs the session (long-poll). Messages
   * still queued are rejected with code `closed`.
   * @returns {Promise<void>}
   */
  async close() {
    if (this.#state === "closed") return;
    const conn = this.#conn;
    this.#conn = null;
    this.#setState("closed");
    this.#wake?.();
    if (conn) {
      const written = [...this.#outbox].filter((e) => e.conn === conn).map((e) => e.done);
      await settledWithin(written, this.#options.connectTimeout);
    }
    this.#shutdown();
    await conn?.leave();
  }

  // #join dials the transport in use, or, before the first welcome, the ones the transport
  // option allows: "auto" tries long-polling when a WebSocket is unreachable.
  async #join(resume) {
    const o = this.#options;
    const kinds = this.#using ? [this.#using]
      : o.transport === "auto" ? ["websocket", "longpoll"] : [o.transport];
    for (const [i, kind] of kinds.entries()) {
      try {
        return await this.#dial(kind, resume);
      } catch (error) {
        if (error.code !== "unreachable") throw error;
        if (i === kinds.length - 1) throw this.#using ? error : await this.#refusedOrigin(error);
      }
    }
  }

  // #refusedOrigin tells a broker that refuses this page's origin from one that is down: a
  // browser hides the 403 of a refused WebSocket upgrade or CORS request, but a no-cors
  // request still reaches a broker that is up. It returns a "forbidden" error naming
  // allowed_origins then, else error as it is.
  async #refusedOrigin(error) {
    const page = globalThis.location?.origin;
    let broker;
    try {
      broker = new URL(this.#options.url, globalThis.location?.href).origin;
    } catch {
      return error;
    }
    if (!page || page === "null" || page === broker) return error;
    try {
      const probe = (this.#options.fetchImpl ?? globalThis.fetch)(new URL("/healthz", broker), { mode: "no-cors", cache: "no-store" });
      await Promise.race([probe, new Promise((_, reject) => setTimeout(reject, this.#options.connectTimeout))]);
    } catch {
      return error;
    }
    return new SignalingError("forbidden",
      `the broker at ${broker} is up but refuses pages of ${page}: list ${page} in its allowed_origins ` +
      `(SWITCHBOARD_ALLOWED_ORIGINS)`);
  }

  async #dial(kind, resume) {
    const o = this.#options;
    const transport = typeof kind === "object" ? kind : kind === "websocket" ? webSocketTransport : registered.get(kind);
    const name = transport?.name ?? kind;
    const token = typeof o.token === "function" ? await o.token() : o.token;
    const meta = typeof o.meta === "function" ? o.meta(name) : o.meta;
    const payload = withoutUndefined({ peer: this.#peer, token, meta, resume });
    const join = { v: PROTOCOL_VERSION, type: "join", room: o.room, payload };
    const conn = transport ? new StreamConnection(o, join, this.#hooks(name), transport)
      : new LongPollConnection(o, join, this.#hooks(name));
    const welcome = await conn.welcome;
    if (this.#state === "closed") {
      conn.leave();
      throw closedError();
    }
    this.#transport = name;
    this.#using = kind;
    this.#welcomed(conn, welcome);
  }

  #welcomed(conn, welcome) {
    const { peer, session, peers = [], resumed } = welcome.payload;
    const previous = this.#session;
    if (!resumed) {
      this.#peer = peer;
      this.#session = session;
      this.#peers = new Map(peers.map((p) => [p.peer, p]));
      this.#lastSeq = 0;
      this.#refetched = false;
    }
    // A resumed session keeps its peer list: the replay that follows brings it up to date.
    this.#setIce(welcome.payload);
    this.#conn = conn;
    this.#receive(welcome);
    if (previous && !resumed) {
      this.dispatchEvent(new CustomEvent("session-reset", { detail: { previous, session } }));
    }
    this.#setState("open");
    conn.start();
    this.#flush();
  }

  // #hooks is what a connection may call back; calls from a connection that is no longer the
  // current one are ignored.
  #hooks(transport) {
    return {
      lastSeq: () => this.#lastSeq,
      receive: (conn, envelope) => conn !== this.#conn || this.#receive(envelope),
      dropped: (conn, error) => this.#dropped(conn, error),
      error: (error) => this.#emit("error", error),
      trace: (direction, envelope) => this.#emit("trace", { direction, envelope, transport }),
    };
  }

  // #receive delivers one envelope unless its seq was delivered before. It returns false on a
  // gap, asking the connection to fetch again from the last delivered seq; if the same gap
  // comes back, the loss is reported as a "gap" error and delivery goes on.
  #receive(envelope) {
    if (envelope.type === "ice-servers" && envelope.seq === undefined) {
      this.#setIce(envelope.payload);
      return true;
    }
    const { seq } = envelope;
    if (typeof seq === "number") {
      if (seq <= this.#lastSeq) return true;
      if (seq > this.#lastSeq + 1) {
        if (!this.#refetched) {
          this.#refetched = true;
          return false;
        }
        this.#emit("error", new SignalingError("gap", `messages ${this.#lastSeq + 1} to ${seq - 1} were lost`));
      }
      this.#refetched = false;
      this.#lastSeq = seq;
    }
    this.#deliver(envelope);
    return true;
  }

  #deliver(envelope) {
    const p = envelope.payload;
    if (envelope.type === "peer-joined") this.#peers.set(p.peer, { peer: p.peer, meta: p.meta });
    if (envelope.type === "peer-left") this.#peers.delete(p.peer);
    this.#emit("message", envelope);
    if (envelope.type === "peer-joined" || envelope.type === "peer-left") this.#emit(envelope.type, envelope);
    if (envelope.type === "error") this.#emit("error", SignalingError.fromEnvelope(envelope));
  }

  // #flush writes every queued envelope that the current connection has not taken yet.
  #flush() {
    const conn = this.#conn;
    if (!conn) return;
    const batch = [...this.#outbox].filter((e) => e.conn !== conn);
    if (batch.length === 0) return;
    for (const e of batch) e.conn = conn;
    conn.write(batch.map((e) => e.envelope)).then(
      () => {
        for (const e of batch) {
          this.#outbox.delete(e);
          e.resolve(e.envelope);
        }
      },
      () => {}, // the connection dropped: the next one writes these again, with the same ids
    );
  }

  #dropped(conn, error) {
    if (conn !== this.#conn) return;
    this.#conn = null;
    this.#recover(error);
  }

  // #recover reconnects with exponential backoff. It resumes the session; if that expired,
  // it joins afresh at once. It gives up only on errors that no retry can mend.
  async #recover(cause) {
    this.#setState("reconnecting");
    let resume = cause.code !== "session-expired";
    let failures = 0;
    for (;;) {
      if (resume || failures > 0) await this.#pause(this.#backoff(failures));
      if (this.#state === "closed") return;
      try {
        await this.#join(resume ? { session: this.#session, last_seq: this.#lastSeq } : undefined);
        return;
      } catch (error) {
        if (this.#state === "closed") return;
        if (error.code === "session-expired" && resume) {
          resume = false;
          continue;
        }
        if (FATAL_CODES.has(error.code)) {
          this.#emit("error", error);
          this.#shutdown();
          return;
        }
        failures++;
      }
    }
  }

  #backoff(failures) {
    const { reconnectDelay, reconnectDelayMax } = this.#options;
    const delay = Math.min(reconnectDelayMax, reconnectDelay * 2 ** failures);
    return delay * (0.5 + Math.random() / 2);
  }

  // #pause sleeps for ms, or until close() wakes it.
  #pause(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  // #shutdown makes the Signaling closed for good and rejects what is still queued.
  #shutdown() {
    this.#setState("closed");
    clearTimeout(this.#iceTimer);
    for (const w of this.#iceWaiters.splice(0)) w.reject(closedError());
    for (const e of this.#outbox) e.reject(closedError());
    this.#outbox.clear();
  }

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit("state", { state });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// webSocketTransport is the WebSocket transport (GET /v1/ws, one envelope per text frame), a
// transport object like a custom one.
const webSocketTransport = Object.freeze({
  name: "websocket",
  open({ base, options, signal, receive, closed }) {
    return new Promise((resolve, reject) => {
      const ws = new options.WebSocketImpl(base.replace(/^http/, "ws") + "/v1/ws");
      let opened = false;
      const fail = (why) => (opened ? closed(unreachable(why)) : reject(unreachable(why)));
      signal.addEventListener("abort", () => ws.close(1000));
      ws.addEventListener("open", () => {
        opened = true;
        resolve({ send: (envelope) => ws.send(JSON.stringify(envelope)), close: () => ws.close(1000) });
      });
      ws.addEventListener("message", (e) => receive(e.data));
      ws.addEventListener("error", () => fail("the WebSocket failed"));
      ws.addEventListener("close", () => fail("the WebSocket closed"));
    });
  },
});

// StreamConnection carries one session over a transport object's channel: WebSocket, or a
// custom transport. It acks what was delivered, at least every ackEvery messages or
// ackInterval ms, and confirms what it wrote with a ping: the broker handles a connection's
// envelopes in order, so its pong proves that everything written before the ping arrived. The
// same ping, sent when idle, detects a dead connection.
class StreamConnection {
  #options;
  #hooks;
  #join;
  #name;
  #channel = null;
  #abort = new AbortController();
  #settle; // resolve and reject of welcome, until it settles
  #connectTimer;
  #closed = false;
  #started = false;
  #early = []; // envelopes that arrived after the welcome, before start()
  #acked = 0;
  #ackTimer = null;
  #written = 0;
  #ping = null; // {n, timer}: the ping awaiting its pong
  #confirms = []; // {n, resolve, reject}: writes awaiting a pong for n
  #heartbeat = null;

  constructor(options, join, hooks, transport) {
    this.#options = options;
    this.#join = join;
    this.#hooks = hooks;
    this.#name = transport.name;
    this.welcome = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    this.#connectTimer = setTimeout(() => this.#fail(unreachable("no welcome in time")), options.connectTimeout);
    const lost = () => unreachable(`the ${this.#name} connection closed`);
    let opening;
    try {
      opening = Promise.resolve(transport.open({
        base: options.base,
        options,
        signal: this.#abort.signal,
        receive: (data) => this.#frame(data),
        closed: (error) => this.#fail(error instanceof SignalingError ? error : lost()),
      }));
    } catch (error) {
      opening = Promise.reject(error);
    }
    opening.then(
      (channel) => {
        if (this.#closed) {
          channel.close();
          return;
        }
        this.#channel = channel;
        this.#write(join);
      },
      (error) => this.#fail(error instanceof SignalingError ? error : unreachable(`${this.#name}: ${error?.message ?? error}`)),
    );
  }

  start() {
    this.#started = true;
    for (const envelope of this.#early.splice(0)) {
      if (this.#closed) return;
      this.#deliver(envelope);
    }
    this.#scheduleAck();
    this.#heartbeat = setInterval(() => this.#sendPing(), this.#options.heartbeatInterval);
  }

  write(envelopes) {
    if (this.#closed) return Promise.reject(unreachable(`the ${this.#name} connection closed`));
    for (const envelope of envelopes) this.#write(envelope);
    const n = (this.#written += envelopes.length);
    const confirmed = new Promise((resolve, reject) => this.#confirms.push({ n, resolve, reject }));
    this.#sendPing();
    return confirmed;
  }

  leave() {
    if (!this.#closed) this.#write({ v: PROTOCOL_VERSION, type: "leave" });
    this.close();
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#ackTimer);
    clearTimeout(this.#ping?.timer);
    clearInterval(this.#heartbeat);
    for (const c of this.#confirms) c.reject(unreachable(`the ${this.#name} connection closed`));
    this.#confirms = [];
    this.#abort.abort();
    this.#channel?.close();
  }

  #fail(error) {
    if (this.#closed) return;
    const joining = this.#settle !== null;
    this.close();
    if (joining) this.#settle.reject(error);
    else this.#hooks.dropped(this, error);
  }

  #frame(data) {
    if (this.#closed) return;
    const envelope = typeof data === "string" ? parseEnvelope(data) : data !== null && typeof data === "object" ? data : null;
    if (!envelope) {
      this.#hooks.error(new SignalingError("protocol", "the broker sent a frame that is not an envelope"));
      return;
    }
    this.#hooks.trace("in", envelope);
    if (this.#settle) this.#answerJoin(envelope);
    else if (envelope.type === "pong" && this.#ping && envelope.payload?.confirm === this.#ping.n) this.#confirm();
    else if (!this.#started) this.#early.push(envelope);
    else this.#deliver(envelope);
  }

  #answerJoin(envelope) {
    if (envelope.type !== "welcome" && envelope.type !== "error") return;
    clearTimeout(this.#connectTimer);
    const { resolve, reject } = this.#settle;
    this.#settle = null;
    if (envelope.type === "error") {
      this.close();
      reject(SignalingError.fromEnvelope(envelope));
      return;
    }
    this.#acked = envelope.payload?.resumed ? this.#join.payload.resume.last_seq : 0;
    resolve(envelope);
  }

  #deliver(envelope) {
    if (!this.#hooks.receive(this, envelope)) {
      this.#fail(new SignalingError("gap", "messages are missing: resuming to fetch them again"));
      return;
    }
    this.#scheduleAck();
  }

  #scheduleAck() {
    const unacked = this.#hooks.lastSeq() - this.#acked;
    if (unacked >= this.#options.ackEvery) this.#ack();
    else if (unacked > 0) this.#ackTimer ??= setTimeout(() => this.#ack(), this.#options.ackInterval);
  }

  #ack() {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    const seq = this.#hooks.lastSeq();
    if (this.#closed || seq <= this.#acked) return;
    this.#acked = seq;
    this.#write({ v: PROTOCOL_VERSION, type: "ack", payload: { seq } });
  }

  // #sendPing asks the broker to confirm every write so far, unless a ping is out already.
  #sendPing() {
    if (this.#ping || this.#closed) return;
    const n = this.#written;
    const timer = setTimeout(() => this.#fail(unreachable("no pong in time")), this.#options.pongTimeout);
    this.#ping = { n, timer };
    this.#write({ v: PROTOCOL_VERSION, type: "ping", payload: { confirm: n } });
  }

  #confirm() {
    const { n, timer } = this.#ping;
    clearTimeout(timer);
    this.#ping = null;
    const waiting = [];
    for (const c of this.#confirms) {
      if (c.n <= n) c.resolve();
      else waiting.push(c);
    }
    this.#confirms = waiting;
    if (waiting.length > 0) this.#sendPing();
  }

  #write(envelope) {
    if (!this.#channel) return; // not open yet: the join goes first, then what is queued
    let sent;
    try {
      sent = this.#channel.send(envelope);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent?.catch?.(() => this.#fail(unreachable(`the ${this.#name} connection could not send`)));
    this.#hooks.trace("out", envelope);
  }
}

// LongPollConnection carries one session over HTTP long-polling: POST /v1/sessions to join,
// a loop of GET .../messages?after=N (which acknowledges N), POSTs of envelope arrays one at a
// time (so they stay in order), and DELETE to leave.
class LongPollConnection {
  #options;
  #hooks;
  #path = null; // /v1/sessions/{session}
  #closed = false;
  #poll = null; // AbortController of the GET in flight
  #queue = []; // {json, envelope, resolve, reject} waiting for a POST
  #posting = false;

  constructor(options, join, hooks) {
    this.#options = options;
    this.#hooks = hooks;
    this.welcome = this.#open(join);
  }

  start() {
    this.#pollLoop();
  }

  write(envelopes) {
    if (this.#closed) return Promise.reject(unreachable("the session's connection closed"));
    const posted = envelopes.map(
      (envelope) => new Promise((resolve, reject) => {
        this.#queue.push({ envelope, json: JSON.stringify(envelope), resolve, reject });
      }),
    );
    this.#pump();
    return Promise.all(posted);
  }

  async leave() {
    const joined = this.#path !== null && !this.#closed;
    this.close();
    if (!joined) return;
    this.#hooks.trace("out", { v: PROTOCOL_VERSION, type: "leave" });
    const signal = AbortSignal.timeout(this.#options.requestTimeout);
    await this.#request("DELETE", this.#path, { signal, keepalive: true }).catch(() => {});
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#poll?.abort();
    for (const item of this.#queue) item.reject(unreachable("the session's connection closed"));
    this.#queue = [];
  }

  #fail(error) {
    if (this.#closed) return;
    this.close();
    this.#hooks.dropped(this, error);
  }

  async #open(join) {
    this.#hooks.trace("out", join);
    const signal = AbortSignal.timeout(this.#options.connectTimeout);
    const res = await this.#request("POST", "/v1/sessions", { body: JSON.stringify(join), signal });
    const body = await readJSON(res);
    if ((res.status === 201 || res.status === 200) && body?.type === "welcome") {
      this.#hooks.trace("in", body);
      this.#path = `/v1/sessions/${encodeURIComponent(body.payload.session)}`;
      return body;
    }
    throw this.#refusal(res, body);
  }

  async #pollLoop() {
    while (!this.#closed) {
      let envelopes;
      try {
        envelopes = await this.#get();
      } catch (error) {
        this.#fail(error);
        return;
      }
      for (const envelope of envelopes) {
        if (this.#closed) return;
        this.#hooks.trace("in", envelope);
        // A gap: drop the rest and ask again from the last delivered seq.
        if (!this.#hooks.receive(this, envelope)) break;
      }
    }
  }

  async #get() {
    const { pollWait, requestTimeout } = this.#options;
    const query = `?after=${this.#hooks.lastSeq()}&wait=${pollWait}`;
    const controller = new AbortController();
    this.#poll = controller;
    const timer = setTimeout(() => controller.abort(), pollWait * 1000 + requestTimeout);
    try {
      const res = await this.#request("GET", `${this.#path}/messages${query}`, { signal: controller.signal });
      const body = await readJSON(res);
      if (res.status === 200 && Array.isArray(body)) return body;
      throw this.#refusal(res, body);
    } finally {
      clearTimeout(timer);
    }
  }

  // #pump POSTs the queue, one request at a time, in batches of at most POST_BATCH_SIZE.
  async #pump() {
    if (this.#posting) return;
    this.#posting = true;
    while (this.#queue.length > 0 && !this.#closed) {
      const batch = takeBatch(this.#queue, POST_BATCH_SIZE);
      try {
        await this.#post(batch);
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
        this.#fail(error);
      }
    }
    this.#posting = false;
  }

  // #post sends one batch. A refusal of the whole request (4xx) is reported as an error and
  // not retried; a lost connection, an ended session or a broker failure is thrown.
  async #post(batch) {
    for (const item of batch) this.#hooks.trace("out", item.envelope);
    const body = `[${batch.map((item) => item.json).join(",")}]`;
    const signal = AbortSignal.timeout(this.#options.requestTimeout);
    const res = await this.#request("POST", `${this.#path}/messages`, { body, signal });
    if (res.status === 202) return;
    const error = this.#refusal(res, await readJSON(res));
    const retry = res.status >= 500 || res.status === 429 || ["unreachable", "session-expired"].includes(error.code);
    if (retry) throw error;
    this.#hooks.error(error);
  }

  async #request(method, path, { body, signal, keepalive }) {
    const headers = body === undefined ? undefined : { "content-type": "application/json" };
    try {
      return await this.#options.fetchImpl(this.#options.base + path, { method, headers, body, signal, keepalive });
    } catch (error) {
      throw unreachable(`${method} ${path}: ${error.message}`);
    }
  }

  // #refusal turns an unexpected answer into an error: the broker's, when it sent an error
  // envelope, else "unreachable" (a proxy's page, a broker that is down).
  #refusal(res, body) {
    if (body?.type !== "error") return unreachable(`HTTP ${res.status}`);
    this.#hooks.trace("in", body);
    return SignalingError.fromEnvelope(body);
  }
}

/** The label of a PeerLink's hand-over channel (docs/protocol.md). */
export const HAND_OVER_LABEL = "switchboard-signaling";

/**
 * PeerLink is an RTCPeerConnection to one remote peer, negotiated over a {@link Signaling}
 * with the W3C "perfect negotiation" pattern: either side may add tracks or data channels at
 * any time, and offers that cross (glare) are settled by the roles: the polite peer rolls its
 * own offer back and takes the other's, the impolite one ignores the other's. ICE candidates
 * trickle as `candidate` envelopes (null for the end of candidates) unless gatherAll is set;
 * when ICE fails, the link restarts it. It is an EventTarget:
 *
 * - `track`: e.detail is `{track, streams, transceiver}`, as in RTCTrackEvent;
 * - `datachannel`: e.detail is `{channel}`, a channel the remote peer opened;
 * - `state`: e.detail is `{state}`, the RTCPeerConnection's connectionState;
 * - `close`: e.detail is `{reason}`: "local" (close() was called), "bye" (the remote peer hung
 *   up), "peer-left" (it left the room) or "session-reset" (our own session was reset);
 * - `error`: e.detail is the Error that a negotiation step raised.
 *
 * To call, create a PeerLink and add tracks or a data channel: that starts the offer. To answer,
 * use {@link PeerLink.accept} on the first offer a peer sends.
 *
 * Unless `rtcConfig` names `iceServers` of its own, the RTCPeerConnection uses the STUN/TURN
 * servers the broker handed out ({@link Signaling#iceServers}), and is given the fresh
 * credentials whenever the Signaling gets new ones (for its next ICE restart).
 */
export class PeerLink extends EventTarget {
  #sig;
  #gatherAll;
  #handOver = null;
  #makingOffer = false;
  #ignoreOffer = false;
  #settingAnswer = false;
  #closed = false;
  #brokerIce;

  /**
   * @param {Signaling} sig the open signaling channel.
   * @param {string} remote the remote peer's id.
   * @param {object} [options]
   * @param {RTCConfiguration} [options.rtcConfig] for the RTCPeerConnection (ICE servers,
   *   iceTransportPolicy, ...). Without `iceServers`, the broker's are used.
   * @param {boolean} [options.polite] this side's role; by default the peer whose id sorts
   *   first is polite, so both sides agree without talking.
   * @param {boolean} [options.gatherAll] wait for ICE gathering to complete and send each offer
   *   and answer with every candidate in it, and no trickle: for email peers. Default false.
   * @param {boolean} [options.handOver] open a data channel labelled "switchboard-signaling"
   *   over which the link's later negotiation (new tracks, channels) goes once it is open and
   *   ICE is connected, instead of the broker: for peers on slow transports. A link always
   *   takes such a channel that the remote peer opens. Ignored by {@link PeerLink.accept}.
   *   Default false.
   * @param {typeof RTCPeerConnection} [options.RTCPeerConnectionImpl] default
   *   globalThis.RTCPeerConnection.
   */
  constructor(sig, remote, options = {}) {
    super();
    const {
      rtcConfig,
      polite = sig.peer < remote,
      gatherAll = false,
      handOver = false,
      RTCPeerConnectionImpl = globalThis.RTCPeerConnection,
    } = options;
    this.#sig = sig;
    this.#gatherAll = gatherAll;
    /** The remote peer's id. */
    this.remote = remote;
    /** Whether this side is the polite one. */
    this.polite = polite;
    this.#brokerIce = rtcConfig?.iceServers === undefined;
    const config = this.#brokerIce ? { ...rtcConfig, iceServers: sig.iceServers ?? [] } : rtcConfig;
    /** The RTCPeerConnection, for anything the link does not wrap. */
    this.pc = new RTCPeerConnectionImpl(config);

    const pc = this.pc;
    pc.addEventListener("negotiationneeded", () => this.#guard(this.#offer()));
    pc.addEventListener("icecandidate", ({ candidate }) => {
      if (!this.#gatherAll || this.handedOver) this.#send("candidate", candidate ? candidate.toJSON() : null);
    });
    pc.addEventListener("iceconnectionstatechange", () => {
      if (pc.iceConnectionState === "failed") pc.restartIce();
    });
    pc.addEventListener("connectionstatechange", () => this.#emit("state", { state: pc.connectionState }));
    pc.addEventListener("track", ({ track, streams, transceiver }) => this.#emit("track", { track, streams, transceiver }));
    pc.addEventListener("datachannel", ({ channel }) => {
      if (channel.label === HAND_OVER_LABEL) this.#adopt(channel);
      else this.#emit("datachannel", { channel });
    });
    if (handOver) this.#adopt(pc.createDataChannel(HAND_OVER_LABEL));
    sig.addEventListener("message", this.#onMessage);
    sig.addEventListener("peer-left", this.#onPeerLeft);
    sig.addEventListener("session-reset", this.#onReset);
    if (this.#brokerIce) sig.addEventListener("ice-servers", this.#onIceServers);
  }

  /**
   * accept answers an incoming call: it creates the PeerLink for the peer that sent `offer`
   * (an `offer` envelope) and takes the offer. Call it from the "message" listener that saw
   * the offer; tracks added right after it returns are in the answer.
   * @param {Signaling} sig
   * @param {object} offer the `offer` envelope.
   * @param {object} [options] as for the constructor.
   * @returns {PeerLink}
   */
  static accept(sig, offer, options) {
    const link = new PeerLink(sig, offer.from, { ...options, handOver: false });
    queueMicrotask(() => link.#receive(offer));
    return link;
  }

  /**
   * addTrack adds a local track to send; see RTCPeerConnection.addTrack.
   * @param {MediaStreamTrack} track
   * @param {...MediaStream} streams
   * @returns {RTCRtpSender}
   */
  addTrack(track, ...streams) {
    return this.pc.addTrack(track, ...streams);
  }

  /**
   * addStream adds every track of a local stream.
   * @param {MediaStream} stream
   * @returns {RTCRtpSender[]}
   */
  addStream(stream) {
    return stream.getTracks().map((track) => this.pc.addTrack(track, stream));
  }

  /**
   * createDataChannel opens a data channel to the remote peer; see
   * RTCPeerConnection.createDataChannel.
   * @param {string} label
   * @param {RTCDataChannelInit} [init]
   * @returns {RTCDataChannel}
   */
  createDataChannel(label, init) {
    return this.pc.createDataChannel(label, init);
  }

  /** close hangs up: it sends `bye` to the remote peer and closes the RTCPeerConnection. */
  close() {
    if (this.#closed) return;
    this.#send("bye");
    this.#end("local");
  }

  #onMessage = ({ detail: envelope }) => {
    if (envelope.from === this.remote) this.#receive(envelope);
  };

  #onPeerLeft = ({ detail: envelope }) => {
    if (envelope.payload?.peer === this.remote) this.#end("peer-left");
  };

  #onReset = () => this.#end("session-reset");

  // #onIceServers gives the connection the broker's fresh credentials, for its next gathering.
  #onIceServers = ({ detail }) => {
    if (this.#closed || typeof this.pc.setConfiguration !== "function") return;
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: detail.iceServers });
    } catch (error) {
      this.#emit("error", error);
    }
  };

  #receive(envelope) {
    if (this.#closed) return;
    switch (envelope.type) {
      case "offer":
      case "answer":
        this.#guard(this.#takeDescription(envelope.payload));
        break;
      case "candidate":
        this.#guard(this.#takeCandidate(envelope.payload));
        break;
      case "bye":
        this.#end("bye");
        break;
    }
  }

  async #offer() {
    try {
      this.#makingOffer = true;
      await this.pc.setLocalDescription();
    } finally {
      this.#makingOffer = false;
    }
    await this.#sendLocalDescription("offer");
  }

  async #takeDescription(description) {
    const pc = this.pc;
    const readyForOffer = !this.#makingOffer && (pc.signalingState === "stable" || this.#settingAnswer);
    const collision = description.type === "offer" && !readyForOffer;
    this.#ignoreOffer = !this.polite && collision;
    if (this.#ignoreOffer) return;
    this.#settingAnswer = description.type === "answer";
    try {
      // On a collision this rolls our own offer back first (implicit rollback).
      await pc.setRemoteDescription(description);
    } finally {
      this.#settingAnswer = false;
    }
    if (description.type === "offer") {
      await pc.setLocalDescription();
      await this.#sendLocalDescription("answer");
    }
  }

  async #takeCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate ?? undefined);
    } catch (error) {
      // Candidates of an offer we ignored fail to apply; that is expected.
      if (!this.#ignoreOffer) throw error;
    }
  }

  // #sendLocalDescription sends the local description if it is still of the given type: while
  // gathering, a crossing offer may have replaced it.
  async #sendLocalDescription(type) {
    if (this.#gatherAll && !this.handedOver) await gatheringComplete(this.pc);
    const description = this.pc.localDescription;
    if (description?.type === type) this.#send(type, { type, sdp: description.sdp });
  }

  #send(type, payload) {
    if (type !== "bye" && this.handedOver) {
      try {
        this.#handOver.send(JSON.stringify({ type, payload }));
        return;
      } catch {
        // The channel is closing: the broker still carries it.
      }
    }
    this.#sig.send({ type, to: this.remote, payload }).catch((error) => this.#emit("error", error));
  }

  /**
   * handedOver tells whether the link's signals now go over its hand-over channel rather than
   * the broker: the channel is open and ICE is connected.
   * @type {boolean}
   */
  get handedOver() {
    const state = this.pc.iceConnectionState;
    return this.#handOver?.readyState === "open" && (state === "connected" || state === "completed");
  }

  // #adopt takes the hand-over channel: what comes on it is a signal from the remote peer.
  #adopt(channel) {
    this.#handOver = channel;
    channel.addEventListener("message", ({ data }) => {
      let frame;
      try {
        frame = JSON.parse(data);
      } catch {
        return;
      }
      if (typeof frame?.type === "string" && frame.type !== "bye") {
        this.#receive({ type: frame.type, from: this.remote, payload: frame.payload });
      }
    });
  }

  #guard(promise) {
    promise.catch((error) => this.#emit("error", error));
  }

  #end(reason) {
    if (this.#closed) return;
    this.#closed = true;
    this.#sig.removeEventListener("message", this.#onMessage);
    this.#sig.removeEventListener("peer-left", this.#onPeerLeft);
    this.#sig.removeEventListener("session-reset", this.#onReset);
    this.#sig.removeEventListener("ice-servers", this.#onIceServers);
    this.pc.close();
    this.#emit("state", { state: "closed" });
    this.#emit("close", { reason });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function gatheringComplete(pc) {
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", check);
    check();
  });
}

// httpBase is the broker's http(s) base URL without a trailing slash; a ws(s) URL is taken too.
function httpBase(url) {
  const u = new URL(url);
  if (u.protocol === "ws:") u.protocol = "http:";
  if (u.protocol === "wss:") u.protocol = "https:";
  return u.origin + u.pathname.replace(/\/+$/, "");
}

function parseEnvelope(data) {
  if (typeof data !== "string") return null;
  try {
    const value = JSON.parse(data);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

async function readJSON(res) {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

// takeBatch removes from queue the longest head whose JSON array fits in limit characters
// (at least one envelope).
function takeBatch(queue, limit) {
  let size = 2;
  let n = 0;
  while (n < queue.length && (n === 0 || size + queue[n].json.length + 1 <= limit)) {
    size += queue[n].json.length + 1;
    n++;
  }
  return queue.splice(0, n);
}

async function settledWithin(promises, ms) {
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(resolve, ms)));
  await Promise.race([Promise.allSettled(promises), timeout]);
  clearTimeout(timer);
}

function withoutUndefined(object) {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined));
}

function randomHex(bytes) {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function unreachable(message) {
  return new SignalingError("unreachable", message);
}

function closedError() {
  return new SignalingError("closed", "the signaling channel is closed");
}
