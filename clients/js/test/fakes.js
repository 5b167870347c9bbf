// Fakes for testing the client without a browser or a broker: FakeBroker is a small in-memory
// broker that speaks protocol version 1 over a fake WebSocket class and a fake fetch, and
// FakePeerConnection models the signaling states of an RTCPeerConnection.

/**
 * FAST holds client options that make timers short enough for tests, yet long enough for a
 * loaded machine: a test about a timeout sets a shorter one itself.
 */
export const FAST = Object.freeze({
  connectTimeout: 3_000,
  reconnectDelay: 5,
  reconnectDelayMax: 20,
  ackInterval: 50,
  heartbeatInterval: 1_000,
  pongTimeout: 3_000,
  pollWait: 1,
  requestTimeout: 500,
});

/** until resolves once check() returns a truthy value, polling; it fails after ms. */
export async function until(check, ms = 5_000, what = check.toString()) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** collect records the detail of every event of the given types that target dispatches. */
export function collect(target, ...types) {
  const seen = [];
  for (const type of types) target.addEventListener(type, (e) => seen.push(e.detail));
  return seen;
}

/** messages records the envelopes of type "message" that sig delivers. */
export function messages(sig) {
  const seen = [];
  sig.addEventListener("message", ({ detail }) => detail.type === "message" && seen.push(detail));
  return seen;
}

const nextTask = () => new Promise((resolve) => setImmediate(resolve));

/**
 * FakeBroker keeps sessions with seq-numbered mailboxes, resumes them, drops retried ids and
 * relays between peers. Its WebSocket and fetch properties are what a client is given.
 */
export class FakeBroker {
  sessions = new Map(); // session id → session
  sockets = []; // every FakeSocket ever opened
  requests = []; // every HTTP request: {method, path, query, body}
  received = []; // every envelope taken from a client other than join: {peer, envelope}
  refuseWebSocket = false; // upgrades fail, as behind a proxy that strips them
  offline = false; // nothing connects
  joinError = null; // refuse every join with this code
  postError = null; // refuse every long-poll POST of messages with this code, as a 413
  maxPollMs = 100; // how long a GET waits for messages at most
  iceTtl = 0; // seconds the ICE credentials it hands out are valid; 0: none are handed out
  #iceCount = 0;
  #count = 0;

  constructor() {
    const broker = this;
    this.WebSocket = class extends FakeSocket {
      constructor(url) {
        super(broker, url);
      }
    };
    this.fetch = (url, init) => this.#fetch(url, init);
  }

  /** session returns the live session of a peer, if any. */
  session(peer) {
    return [...this.sessions.values()].find((s) => s.peer === peer && !s.ended);
  }

  /** socket returns the latest socket of a peer. */
  socket(peer) {
    return this.sockets.findLast((s) => s.session?.peer === peer);
  }

  /** expire ends a session silently, as when its resume window passed. */
  expire(peer) {
    const s = this.session(peer);
    this.#end(s, "timeout");
    s.socket?.drop();
  }

  /** push appends an envelope to a session's mailbox with the next seq. */
  push(s, envelope) {
    const stamped = { ...envelope, room: s.room, seq: s.nextSeq++ };
    s.mailbox.push(stamped);
    s.socket?.pump();
    this.#wake(s);
    return stamped;
  }

  join(envelope, transport) {
    const p = envelope.payload ?? {};
    if (this.joinError) return { error: this.#error(this.joinError, envelope.id) };
    if (p.resume) {
      const s = this.sessions.get(p.resume.session);
      if (!s || s.ended) return { error: this.#error("session-expired", envelope.id) };
      s.transport = transport;
      return { session: s, welcome: { v: 1, type: "welcome", room: s.room, payload: { peer: s.peer, session: s.id, peers: this.#others(s), resumed: true, ...this.ice(s.peer) } }, after: p.resume.last_seq };
    }
    const peer = p.peer ?? `peer${++this.#count}`;
    if ([...this.sessions.values()].some((s) => s.room === envelope.room && s.peer === peer && !s.ended)) {
      return { error: this.#error("peer-id-taken", envelope.id) };
    }
    const s = { id: `secret-${++this.#count}`, peer, room: envelope.room, meta: p.meta, transport, mailbox: [], direct: [], nextSeq: 1, acked: 0, seen: new Set(), socket: null, waiters: [], ended: false };
    const welcome = { v: 1, type: "welcome", payload: { peer, session: s.id, peers: this.#others(s), resumed: false, ...this.ice(peer) } };
    for (const other of this.#room(s)) this.push(other, { v: 1, type: "peer-joined", payload: { peer, meta: p.meta } });
    this.sessions.set(s.id, s);
    return { session: s, welcome: this.push(s, welcome), after: 1 };
  }

  /**
   * ice is the ICE part of a welcome or ice-servers answer: a STUN server, and when iceTtl is
   * set a TURN server whose credential counts the times it was handed out.
   */
  ice(peer) {
    if (!this.iceTtl) return { ice_servers: [] };
    const n = ++this.#iceCount;
    return {
      ice_servers: [{ urls: ["stun:stun.test:3478"] }, { urls: ["turn:turn.test:3478"], username: `${n}:${peer}`, credential: `c${n}` }],
      ice_ttl: this.iceTtl,
    };
  }

  /** handle takes one envelope from a session's peer. */
  handle(s, envelope) {
    switch (envelope.type) {
      case "ice-servers":
        s.direct.push({ v: 1, type: "ice-servers", payload: this.ice(s.peer) });
        s.socket?.pump();
        this.#wake(s);
        return;
      case "ping":
        s.direct.push({ v: 1, type: "pong", payload: envelope.payload });
        s.socket?.pump();
        this.#wake(s);
        return;
      case "ack":
        s.acked = envelope.payload.seq;
        return;
      case "leave":
        this.#end(s, "leave");
        return;
    }
    if (envelope.id !== undefined) {
      if (s.seen.has(envelope.id)) return;
      s.seen.add(envelope.id);
    }
    this.received.push({ peer: s.peer, envelope });
    const out = { v: 1, type: envelope.type, from: s.peer };
    if (envelope.to !== undefined) out.to = envelope.to;
    if ("payload" in envelope) out.payload = envelope.payload;
    const targets = this.#room(s).filter((o) => envelope.to === undefined || o.peer === envelope.to);
    if (targets.length === 0) this.push(s, this.#error("peer-unavailable", envelope.id));
    for (const target of targets) this.push(target, out);
  }

  #room(s) {
    return [...this.sessions.values()].filter((o) => o.room === s.room && o !== s && !o.ended);
  }

  #others(s) {
    return this.#room(s).map((o) => ({ peer: o.peer, meta: o.meta }));
  }

  #end(s, reason) {
    s.ended = true;
    for (const other of this.#room(s)) this.push(other, { v: 1, type: "peer-left", payload: { peer: s.peer, reason } });
    this.#wake(s);
  }

  #error(code, ref) {
    return { v: 1, type: "error", payload: { code, message: `refused: ${code}`, ...(ref ? { ref } : {}) } };
  }

  #wake(s) {
    for (const wake of s.waiters.splice(0)) wake();
  }

  async #fetch(url, init = {}) {
    await nextTask();
    if (this.offline) throw new TypeError("fetch failed");
    const { pathname, searchParams } = new URL(url);
    const body = init.body === undefined ? undefined : JSON.parse(init.body);
    const method = init.method ?? "GET";
    this.requests.push({ method, path: pathname, query: Object.fromEntries(searchParams), body });
    const json = (status, value) => new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });
    if (method === "POST" && pathname === "/v1/sessions") {
      const { error, session, welcome } = this.join(body, "longpoll");
      if (error) return json(error.payload.code === "session-expired" ? 404 : 409, error);
      return json(welcome.payload.resumed ? 200 : 201, welcome);
    }
    const [, id, messages] = pathname.match(/^\/v1\/sessions\/([^/]+)(\/messages)?$/) ?? [];
    const s = this.sessions.get(decodeURIComponent(id));
    if (!s || s.ended) return json(404, this.#error("session-expired"));
    if (method === "DELETE" && !messages) {
      this.#end(s, "leave");
      return new Response(null, { status: 204 });
    }
    if (method === "POST" && messages) {
      if (this.postError) return json(413, this.#error(this.postError));
      const list = Array.isArray(body) ? body : [body];
      for (const envelope of list) this.handle(s, envelope);
      return json(202, { accepted: list.length });
    }
    if (method === "GET" && messages) {
      const after = Number(searchParams.get("after"));
      s.acked = after;
      const ready = () => s.direct.length > 0 || s.mailbox.some((e) => e.seq > after) || s.ended;
      if (!ready()) {
        await new Promise((resolve, reject) => {
          const timer = setTimeout(resolve, this.maxPollMs);
          s.waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
          init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
        });
      }
      if (s.ended) return json(404, this.#error("session-expired"));
      return json(200, [...s.direct.splice(0), ...s.mailbox.filter((e) => e.seq > after)]);
    }
    return json(400, this.#error("bad-request"));
  }
}

/**
 * FakeSocket is the client's side of a fake WebSocket, with handles for the test to act as the
 * network: drop(), blackhole, sendRaw().
 */
class FakeSocket extends EventTarget {
  readyState = 0;
  sent = []; // every frame the client wrote, parsed
  session = null;
  blackhole = false; // the network silently loses everything both ways
  lose = 0; // the network loses this many of the next frames to the client
  #broker;
  #delivered = 0; // the highest seq written to the client

  constructor(broker, url) {
    super();
    this.url = url;
    this.#broker = broker;
    broker.sockets.push(this);
    setImmediate(() => {
      if (broker.offline || broker.refuseWebSocket) {
        this.readyState = 3;
        this.dispatchEvent(new Event("error"));
        this.dispatchEvent(new Event("close"));
        return;
      }
      this.readyState = 1;
      this.dispatchEvent(new Event("open"));
    });
  }

  send(data) {
    if (this.readyState === 0) throw new DOMException("still connecting", "InvalidStateError");
    if (this.readyState !== 1) return; // a closing socket drops what it is given, as browsers do
    const envelope = JSON.parse(data);
    this.sent.push(envelope);
    if (this.blackhole) return;
    if (this.session) {
      this.#broker.handle(this.session, envelope);
      return;
    }
    const { error, session, welcome, after } = this.#broker.join(envelope, "websocket");
    if (error) {
      this.sendRaw(error);
      setImmediate(() => this.drop());
      return;
    }
    session.socket?.drop();
    session.socket = this;
    this.session = session;
    this.#delivered = after;
    this.sendRaw(welcome);
    this.pump();
  }

  close() {
    if (this.readyState === 3) return;
    if (this.session?.socket === this) this.session.socket = null;
    this.readyState = 3;
    setImmediate(() => this.dispatchEvent(new Event("close")));
  }

  /** pump writes the session's pongs and every message not yet written. */
  pump() {
    const s = this.session;
    for (const envelope of s.direct.splice(0)) this.sendRaw(envelope);
    for (const envelope of s.mailbox) {
      if (envelope.seq > this.#delivered) {
        this.#delivered = envelope.seq;
        this.sendRaw(envelope);
      }
    }
  }

  /** sendRaw writes a frame to the client as it is, each in its own task. */
  sendRaw(value) {
    if (this.lose > 0) {
      this.lose--;
      return;
    }
    const data = typeof value === "string" ? value : JSON.stringify(value);
    setImmediate(() => {
      if (this.readyState === 1 && !this.blackhole) this.dispatchEvent(new MessageEvent("message", { data }));
    });
  }

  /** drop ends the connection from the network's side; the session stays, for a resume. */
  drop() {
    if (this.session?.socket === this) this.session.socket = null;
    if (this.readyState === 3) return;
    this.readyState = 3;
    setImmediate(() => this.dispatchEvent(new Event("close")));
  }
}

/**
 * FakePeerConnection models what perfect negotiation depends on: signaling states, implicit
 * rollback, negotiationneeded, candidates and gathering. The test drives ICE with
 * gather(candidates) and reads what was applied in remoteCandidates.
 */
export class FakePeerConnection extends EventTarget {
  signalingState = "stable";
  connectionState = "new";
  iceConnectionState = "new";
  iceGatheringState = "new";
  localDescription = null;
  remoteDescription = null;
  remoteCandidates = [];
  restarts = 0;
  closed = false;
  #offers = 0;

  constructor(config) {
    super();
    this.config = config;
  }

  getConfiguration() {
    return { ...this.config };
  }

  setConfiguration(config) {
    this.config = config;
  }

  addTrack(track) {
    this.#negotiationNeeded();
    return { track };
  }

  createDataChannel(label) {
    this.#negotiationNeeded();
    return { label };
  }

  async setLocalDescription(description) {
    await nextTask();
    if (description?.type === "rollback") {
      this.localDescription = null;
      this.signalingState = "stable";
      return;
    }
    const type = this.signalingState === "have-remote-offer" ? "answer" : "offer";
    this.localDescription = { type, sdp: `${type} ${++this.#offers}` };
    this.signalingState = type === "offer" ? "have-local-offer" : "stable";
  }

  async setRemoteDescription(description) {
    await nextTask();
    if (description.type === "offer") {
      if (this.signalingState === "have-local-offer") this.localDescription = null; // implicit rollback
      this.signalingState = "have-remote-offer";
    } else {
      if (this.signalingState !== "have-local-offer") throw new Error(`answer in state ${this.signalingState}`);
      this.signalingState = "stable";
    }
    this.remoteDescription = description;
  }

  async addIceCandidate(candidate) {
    await nextTask();
    if (!this.remoteDescription) throw new Error("candidate before remote description");
    this.remoteCandidates.push(candidate ?? null);
  }

  restartIce() {
    this.restarts++;
    this.#negotiationNeeded();
  }

  /** gather emits local candidates (RTCIceCandidateInit objects), then the end of them. */
  gather(candidates) {
    this.iceGatheringState = "gathering";
    this.dispatchEvent(new Event("icegatheringstatechange"));
    for (const init of candidates) {
      this.dispatchEvent(Object.assign(new Event("icecandidate"), { candidate: { toJSON: () => init } }));
    }
    this.dispatchEvent(Object.assign(new Event("icecandidate"), { candidate: null }));
    this.iceGatheringState = "complete";
    this.dispatchEvent(new Event("icegatheringstatechange"));
  }

  /** setIceState sets iceConnectionState and fires its event. */
  setIceState(state) {
    this.iceConnectionState = state;
    this.dispatchEvent(new Event("iceconnectionstatechange"));
  }

  close() {
    this.closed = true;
    this.connectionState = "closed";
    this.signalingState = "closed";
  }

  #negotiationNeeded() {
    setImmediate(() => {
      if (this.signalingState === "stable") this.dispatchEvent(new Event("negotiationneeded"));
    });
  }
}
