// Type declarations for switchboard.js, the Switchboard browser client.

/** The version of the signaling protocol this client speaks. */
export const PROTOCOL_VERSION: 1;

/** The built-in values of the `transport` option. */
export const TRANSPORTS: readonly ("auto" | "websocket" | "longpoll")[];

/**
 * What connect() may use: "auto" tries WebSocket, then long-polling; the name of a built-in
 * transport or of one added with registerTransport(); or a Transport object itself.
 */
export type TransportOption = "auto" | "websocket" | "longpoll" | (string & {}) | Transport;

/** The name of the transport a Signaling is using: "websocket", "longpoll" or a custom one's. */
export type TransportName = "websocket" | "longpoll" | (string & {});

/**
 * A custom transport, as the Go client's RegisterTransport takes one: the wire that a broker
 * transport of the same name serves. It only moves envelopes; the client acknowledges
 * (`ack` envelopes), confirms its writes and detects dead connections (`ping`), reconnects
 * and resumes, as on WebSocket.
 *
 *     const sse: Transport = {
 *       name: "sse",
 *       async open({ base, signal, receive, closed }) {
 *         // connect; call receive(envelope) for each envelope from the broker, in order, and
 *         // closed(error) if the connection ends by itself
 *         return { send: (envelope) => post(envelope), close: () => source.close() };
 *       },
 *     };
 *     registerTransport(sse); // then connect({ url, room, transport: "sse" }), or:
 *     await connect({ url, room, transport: sse });
 */
export interface Transport {
  /** The transport's name, as the broker's transport of the same wire is registered. */
  readonly name: string;
  /**
   * Connects to the broker and resolves once envelopes can be sent. Reject, or call
   * `closed`, with a SignalingError of code "unreachable" when the broker cannot be reached:
   * "auto" and reconnecting then try again.
   */
  open(context: TransportContext): TransportChannel | Promise<TransportChannel>;
}

/** What Transport.open gets. */
export interface TransportContext {
  /** The broker's http(s) base URL, without a trailing slash. */
  base: string;
  /** The Signaling's options, defaults applied (fetchImpl, WebSocketImpl, timeouts...). */
  options: Readonly<ConnectOptions>;
  /** Aborts when the client gives up before open settles. */
  signal: AbortSignal;
  /** Call with every envelope from the broker, in order: an object, or its JSON text. */
  receive(envelope: Envelope | string): void;
  /** Call once when the connection ends by itself (not after close()). */
  closed(error?: SignalingError): void;
}

/** An open connection of a custom transport. */
export interface TransportChannel {
  /** Writes one envelope; the first is the join. Envelopes must reach the broker in order. */
  send(envelope: Envelope): void | Promise<void>;
  /** Ends the connection. */
  close(): void;
}

/** Adds a custom transport, so that connect({ transport: name }) uses it. Throws a TypeError for a name taken. */
export function registerTransport(transport: Transport): void;

/** The state of a Signaling. */
export type SignalingState = "connecting" | "open" | "reconnecting" | "closed";

/** Error codes of the protocol, and the client's own. */
export type ErrorCode =
  | "bad-request"
  | "too-large"
  | "unsupported-version"
  | "unknown-type"
  | "unauthorized"
  | "forbidden"
  | "peer-id-taken"
  | "peer-unavailable"
  | "rate-limited"
  | "room-full"
  | "session-expired"
  | "slow-consumer"
  | "internal"
  | "unreachable"
  | "closed"
  | "gap"
  | "protocol";

/** A signaling message, as on the wire (docs/protocol.md in the Switchboard repository, section 1). */
export interface Envelope<P = unknown> {
  v?: number;
  type: string;
  id?: string;
  room?: string;
  from?: string;
  to?: string;
  seq?: number;
  payload?: P;
}

/** A peer in the room, as welcome and peer-joined describe it. */
export interface PeerInfo {
  peer: string;
  meta?: Record<string, unknown>;
}

/** What send() takes. */
export interface OutgoingMessage {
  type: string;
  to?: string;
  payload?: unknown;
  id?: string;
}

/** The options of connect() and new Signaling(). Times are in milliseconds unless noted. */
export interface ConnectOptions {
  /** The broker's base URL, like "http://localhost:8080"; ws:// or wss:// is derived from it. */
  url: string;
  /** The room to join. */
  room: string;
  /** This peer's id; absent, the broker picks one. */
  peer?: string;
  /** The join token, or a function that returns a fresh one for each join. */
  token?: string | (() => string | Promise<string>);
  /** Default "auto". A registered transport's name, or a Transport object, picks a custom one. */
  transport?: TransportOption;
  /** Shown to other peers; a function gets the name of the transport being tried. */
  meta?: Record<string, unknown> | ((transport: TransportName) => Record<string, unknown>);
  /** Default globalThis.WebSocket. */
  WebSocketImpl?: typeof WebSocket;
  /** Default globalThis.fetch. */
  fetchImpl?: typeof fetch;
  /** Time to get a welcome. Default 10000. */
  connectTimeout?: number;
  /** Delay before the first reconnect; it doubles up to reconnectDelayMax, with jitter. Default 500. */
  reconnectDelay?: number;
  /** Default 10000. */
  reconnectDelayMax?: number;
  /** WebSocket: ack after this many messages. Default 32. */
  ackEvery?: number;
  /** WebSocket: a message is acked this long after it arrived at the latest. Default 1000. */
  ackInterval?: number;
  /** WebSocket: time between pings on an idle connection. Default 25000. */
  heartbeatInterval?: number;
  /** WebSocket: time to wait for a pong before the connection counts as dead. Default 10000. */
  pongTimeout?: number;
  /** Long-poll: seconds a GET waits for messages. Default 25. */
  pollWait?: number;
  /** Long-poll: time a request may take beyond its wait. Default 15000. */
  requestTimeout?: number;
}

/** An error from the broker or from the client; `code` says which. */
export class SignalingError extends Error {
  constructor(code: ErrorCode | string, message: string, details?: { ref?: string; envelope?: Envelope });
  readonly name: "SignalingError";
  /** The error code. */
  readonly code: ErrorCode | string;
  /** The id of the message this error answers, when the broker gave one. */
  readonly ref?: string;
  /** The error envelope this error came in, when it came from the broker. */
  readonly envelope?: Envelope<{ code: string; message: string; ref?: string }>;
  /** Turns an `error` envelope into a SignalingError. */
  static fromEnvelope(envelope: Envelope): SignalingError;
}

/** The events of a Signaling, by name. */
export interface SignalingEventMap {
  message: CustomEvent<Envelope>;
  "peer-joined": CustomEvent<Envelope<PeerInfo>>;
  "peer-left": CustomEvent<Envelope<{ peer: string; reason: "leave" | "timeout" | "kicked" }>>;
  error: CustomEvent<SignalingError>;
  state: CustomEvent<{ state: SignalingState }>;
  "session-reset": CustomEvent<{ previous: string; session: string }>;
  trace: CustomEvent<{ direction: "in" | "out"; envelope: Envelope; transport: TransportName }>;
  "ice-servers": CustomEvent<{ iceServers: IceServer[]; expires: Date | null }>;
}

/** A STUN or TURN server as the broker hands it out: an RTCIceServer. */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/**
 * Joins a room and resolves with the open Signaling; rejects with a SignalingError: code
 * "unreachable" when the broker cannot be reached, "forbidden" naming allowed_origins when
 * it is up but refuses the page's origin (which browsers otherwise hide).
 */
export function connect(options: ConnectOptions): Promise<Signaling>;

/** One peer's session in one room, reconnecting and resuming by itself. */
export class Signaling extends EventTarget {
  constructor(options: ConnectOptions);
  /** This peer's id (undefined before the welcome when the broker picks it). */
  readonly peer: string | undefined;
  /** The other peers now in the room (a copy). */
  readonly peers: PeerInfo[];
  /** The session secret: keep it out of logs. */
  readonly session: string | null;
  /** The transport in use (null before the welcome). */
  readonly transport: TransportName | null;
  /** The current state. */
  readonly state: SignalingState;
  /** The broker's STUN/TURN servers with the newest credentials (a copy; [] before the welcome). */
  readonly iceServers: IceServer[];
  /** When the credentials of iceServers expire; null if never. */
  readonly iceExpires: Date | null;
  /** Asks the broker for fresh STUN/TURN credentials; resolves with the new iceServers. */
  refreshIceServers(): Promise<IceServer[]>;
  /** Joins the room; calling it again returns the same promise. */
  open(): Promise<Signaling>;
  /** Sends an envelope; resolves with it, as sent, once the broker has it. */
  send(message: OutgoingMessage): Promise<Envelope>;
  /** Leaves the room. */
  close(): Promise<void>;

  addEventListener<K extends keyof SignalingEventMap>(
    type: K,
    listener: (this: Signaling, event: SignalingEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SignalingEventMap>(
    type: K,
    listener: (this: Signaling, event: SignalingEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** The options of a PeerLink. */
export interface PeerLinkOptions {
  /** For the RTCPeerConnection. Without iceServers, the broker's (Signaling.iceServers) are used. */
  rtcConfig?: RTCConfiguration;
  /** This side's role; by default the peer whose id sorts first is polite. */
  polite?: boolean;
  /** Send offers and answers with every candidate in them, and no trickle (for email peers). */
  gatherAll?: boolean;
  /** Default globalThis.RTCPeerConnection. */
  RTCPeerConnectionImpl?: typeof RTCPeerConnection;
}

/** Why a PeerLink closed. */
export type PeerLinkCloseReason = "local" | "bye" | "peer-left" | "session-reset";

/** The events of a PeerLink, by name. */
export interface PeerLinkEventMap {
  track: CustomEvent<{ track: MediaStreamTrack; streams: readonly MediaStream[]; transceiver: RTCRtpTransceiver }>;
  datachannel: CustomEvent<{ channel: RTCDataChannel }>;
  state: CustomEvent<{ state: RTCPeerConnectionState }>;
  close: CustomEvent<{ reason: PeerLinkCloseReason }>;
  error: CustomEvent<Error>;
}

/** An RTCPeerConnection to one remote peer, negotiated with perfect negotiation. */
export class PeerLink extends EventTarget {
  constructor(sig: Signaling, remote: string, options?: PeerLinkOptions);
  /** Answers an incoming call: the link for the offer's sender, which takes the offer. */
  static accept(sig: Signaling, offer: Envelope<RTCSessionDescriptionInit>, options?: PeerLinkOptions): PeerLink;
  /** The remote peer's id. */
  readonly remote: string;
  /** Whether this side is the polite one. */
  readonly polite: boolean;
  /** The RTCPeerConnection. */
  readonly pc: RTCPeerConnection;
  /** Adds a local track to send. */
  addTrack(track: MediaStreamTrack, ...streams: MediaStream[]): RTCRtpSender;
  /** Adds every track of a local stream. */
  addStream(stream: MediaStream): RTCRtpSender[];
  /** Opens a data channel to the remote peer. */
  createDataChannel(label: string, init?: RTCDataChannelInit): RTCDataChannel;
  /** Hangs up: sends bye and closes the RTCPeerConnection. */
  close(): void;

  addEventListener<K extends keyof PeerLinkEventMap>(
    type: K,
    listener: (this: PeerLink, event: PeerLinkEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof PeerLinkEventMap>(
    type: K,
    listener: (this: PeerLink, event: PeerLinkEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}
