// The Switchboard demo page: join a room, see who is there, call one of them (camera and mic,
// or a data channel only), chat over the data channel, and watch every signaling envelope go
// by. window.demo holds the live objects, for browser tests and for poking at in the console.

import { PeerLink, Signaling } from "/client/switchboard.js";

const $ = (id) => document.getElementById(id);
const el = {
  form: $("join-form"),
  room: $("room"),
  name: $("name"),
  transport: $("transport"),
  media: $("media"),
  join: $("join"),
  leave: $("leave"),
  status: $("status"),
  banners: $("banners"),
  peers: $("peers"),
  peersEmpty: $("peers-empty"),
  callState: $("call-state"),
  localVideo: $("local-video"),
  remoteVideo: $("remote-video"),
  videoHint: $("video-hint"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  chatSend: $("chat-send"),
  chatLog: $("chat-log"),
  log: $("log"),
  logControl: $("log-control"),
};

const LOG_ROWS = 500;
const CONTROL_TYPES = new Set(["ack", "ping", "pong", "ice-servers"]);
const RELAYED_TYPES = new Set(["offer", "answer", "candidate", "bye", "message"]);
const params = new URLSearchParams(location.search);
// The STUN/TURN servers are the broker's (PeerLink takes them from the Signaling); ?relay=1
// allows relayed candidates only, to try the broker's TURN server.
const RTC_CONFIG = params.get("relay") === "1" ? { iceTransportPolicy: "relay" } : {};

/**
 * demo is the page's state: sig (the Signaling), link (the PeerLink of the call), channel (its
 * chat data channel), path (the call's selected ICE candidate types, {local, remote}, once
 * connected), localStream, log (every envelope drawn, newest last) and chat (every chat line),
 * plus the actions the buttons take.
 */
const demo = {
  sig: null,
  link: null,
  channel: null,
  path: null,
  localStream: null,
  log: [],
  chat: [],
  join,
  leave,
  call,
  hangup,
  say,
};
window.demo = demo;

// transports remembers each peer's transport from its join meta, also after it left.
const transports = new Map();

for (const key of ["room", "name", "transport", "media"]) {
  if (params.has(key)) el[key].value = params.get(key);
}
listTransports();
// listTransports adds the node's other transports (GET /v1/transports), custom ones included,
// beside the built-in choices; those the browser client cannot speak are shown but disabled.
async function listTransports() {
  let names = [];
  try {
    const res = await fetch("/v1/transports");
    if (res.ok) names = (await res.json()).transports ?? [];
  } catch {
    return;
  }
  for (const name of names) {
    if ([...el.transport.options].some((o) => o.value === name)) continue;
    const option = new Option(canUse(name) ? name : `${name} (not from a browser)`, name);
    option.disabled = !canUse(name);
    option.dataset.custom = "";
    el.transport.add(option);
  }
  if (params.has("transport")) el.transport.value = params.get("transport");
}

// canUse reports whether the browser client speaks the transport name.
function canUse(name) {
  return ["auto", "websocket", "longpoll"].includes(name);
}

el.form.addEventListener("submit", (e) => {
  e.preventDefault();
  join();
});
el.leave.addEventListener("click", () => leave());
el.chatForm.addEventListener("submit", (e) => {
  e.preventDefault();
  say(el.chatInput.value);
});
el.peers.addEventListener("click", (e) => {
  const button = e.target.closest("button[data-peer]");
  if (!button) return;
  if (demo.link?.remote === button.dataset.peer) hangup();
  else call(button.dataset.peer);
});
// Acks and pings are hidden until asked for: the offers, answers and candidates are the story.
const renderLogControl = () => el.log.classList.toggle("hide-control", !el.logControl.checked);
el.logControl.addEventListener("change", renderLogControl);
renderLogControl();
addEventListener("pagehide", () => demo.sig?.close());

/** join gets the camera if asked, then joins the room the form names. */
async function join() {
  if (demo.sig || !el.form.reportValidity()) return;
  clearBanners();
  setJoined(true);
  if (el.media.value === "av") demo.localStream = await getMedia();
  el.localVideo.srcObject = demo.localStream;
  renderVideos();
  const sig = new Signaling({
    url: location.origin,
    room: el.room.value,
    peer: el.name.value || undefined,
    token: params.get("token") ?? undefined,
    transport: el.transport.value,
    meta: (transport) => ({ transport }),
  });
  demo.sig = sig;
  sig.addEventListener("trace", ({ detail }) => drawEnvelope(detail));
  sig.addEventListener("message", ({ detail }) => onMessage(detail));
  sig.addEventListener("peer-joined", renderPeers);
  sig.addEventListener("peer-left", renderPeers);
  sig.addEventListener("error", ({ detail }) => onError(detail));
  sig.addEventListener("session-reset", () => {
    banner("session-reset", "warn", "The connection was away too long: rejoined the room as a new session. Calls were ended.");
    renderPeers();
  });
  renderStatus();
  try {
    await sig.open();
  } catch (error) {
    joinFailed(error);
    return;
  }
  sig.addEventListener("state", ({ detail }) => onState(sig, detail.state));
  el.name.value = sig.peer;
  renderStatus();
  renderPeers();
}

/** leave hangs up and leaves the room. */
async function leave() {
  const sig = demo.sig;
  hangup();
  demo.sig = null;
  stopMedia();
  setJoined(false);
  renderPeers();
  await sig?.close();
  renderStatus();
}

/** call calls a peer in the room, with the camera if there is one, and a chat channel. */
function call(peer) {
  if (!demo.sig || demo.link) return;
  const link = startLink(new PeerLink(demo.sig, peer, { rtcConfig: RTC_CONFIG }));
  useChannel(link.createDataChannel("chat"));
}

/** hangup ends the call, if there is one. */
function hangup() {
  demo.link?.close();
}

/** say sends a chat line over the data channel. */
function say(text) {
  if (!text || demo.channel?.readyState !== "open") return;
  demo.channel.send(text);
  addChat(demo.sig.peer, text);
  el.chatInput.value = "";
}

async function getMedia() {
  if (!navigator.mediaDevices?.getUserMedia) {
    banner("insecure", "warn", "This browser gives the camera only to pages on HTTPS or localhost: joined without media.");
    return null;
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (error) {
    const text = {
      NotAllowedError: "Camera or microphone access was denied: joined without media. Allow it in the site settings and join again.",
      NotFoundError: "No camera or microphone was found: joined without media.",
      NotReadableError: "The camera or microphone is in use by another program: joined without media.",
    }[error.name] ?? `The camera could not start (${error.message}): joined without media.`;
    banner("camera-denied", "warn", text);
    return null;
  }
}

function stopMedia() {
  for (const track of demo.localStream?.getTracks() ?? []) track.stop();
  demo.localStream = null;
  el.localVideo.srcObject = null;
  renderVideos();
}

function joinFailed(error) {
  const text = {
    "room-full": "That room is full. Try another room.",
    "peer-id-taken": "Someone in that room already has this name. If it was you, in a tab just closed or reloaded, " +
      "the broker holds that session for up to its resume window (30 seconds by default) in case it comes back: " +
      "join again after that, or pick another name.",
    unauthorized: "The broker wants a token: open this page with ?token=… in its address.",
    forbidden: "The token does not allow this room or name.",
    unreachable: "The broker cannot be reached. Is it running?",
    "bad-request": `The broker refused the join: ${error.message}`,
  }[error.code] ?? `Could not join: ${error.message}`;
  banner(error.code === "unreachable" ? "broker-down" : error.code ?? "join-failed", "error", text);
  demo.sig = null;
  stopMedia();
  setJoined(false);
  renderStatus();
}

function onMessage(envelope) {
  // Answer the first offer of a peer we are not in a call with; decline when busy.
  if (envelope.type !== "offer" || demo.link?.remote === envelope.from) return;
  if (demo.link) {
    demo.sig.send({ type: "bye", to: envelope.from, payload: { reason: "busy" } }).catch(() => {});
    return;
  }
  startLink(PeerLink.accept(demo.sig, envelope, { rtcConfig: RTC_CONFIG }));
}

function startLink(link) {
  demo.link = link;
  if (demo.localStream) link.addStream(demo.localStream);
  link.addEventListener("track", ({ detail }) => {
    el.remoteVideo.srcObject = detail.streams[0] ?? new MediaStream([detail.track]);
    renderVideos();
  });
  link.addEventListener("datachannel", ({ detail }) => useChannel(detail.channel));
  link.addEventListener("state", ({ detail }) => {
    renderCall(detail.state);
    if (detail.state === "connected") showPath(link);
  });
  link.addEventListener("error", ({ detail }) => banner("call-error", "error", `Call: ${detail.message}`));
  link.addEventListener("close", ({ detail }) => endCall(link, detail.reason));
  renderCall("new");
  renderPeers();
  renderVideos();
  return link;
}

// showPath finds which candidates the call's connection selected, and says whether it goes
// straight to the other side or through a TURN relay.
async function showPath(link) {
  const stats = await link.pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  });
  stats.forEach((r) => {
    if (!pair && r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r;
  });
  if (!pair || demo.link !== link) return;
  const local = stats.get(pair.localCandidateId)?.candidateType;
  const remote = stats.get(pair.remoteCandidateId)?.candidateType;
  demo.path = { local, remote };
  const via = local === "relay" || remote === "relay" ? "through a TURN relay" : "direct";
  el.callState.textContent = `with ${link.remote}: connected, ${via}`;
  el.callState.dataset.path = local;
}

function endCall(link, reason) {
  if (demo.link !== link) return;
  demo.link = null;
  demo.channel = null;
  demo.path = null;
  el.remoteVideo.srcObject = null;
  setChatOpen(false);
  renderCall("");
  renderPeers();
  renderVideos();
  const text = { bye: `${link.remote} hung up.`, "peer-left": `${link.remote} left the room.` }[reason];
  if (text) banner("call-ended", "info", text);
}

function useChannel(channel) {
  demo.channel = channel;
  channel.addEventListener("open", () => setChatOpen(true));
  channel.addEventListener("close", () => setChatOpen(false));
  channel.addEventListener("message", ({ data }) => addChat(demo.link?.remote ?? "?", String(data)));
}

function onState(sig, state) {
  renderStatus();
  if (state === "reconnecting") banner("reconnecting", "warn", "Lost the connection to the broker: reconnecting…");
  else clearBanner("reconnecting");
  if (state === "closed" && demo.sig === sig) {
    banner("broker-down", "error", "Disconnected from the broker.");
    leave();
  }
}

function onError(error) {
  if (error.code === "peer-unavailable") banner("peer-unavailable", "warn", "That peer is not in the room any more.");
  else banner(`error-${error.code}`, "error", `${error.code}: ${error.message}`);
}

// drawEnvelope adds one row to the signaling log: direction, type, seq, and who sent it to whom
// over which transport.
function drawEnvelope({ direction, envelope, transport }) {
  const me = `${demo.sig?.peer ?? "me"} (${transport})`;
  const other = (peer) => (peer ? `${peer} (${transports.get(peer) ?? "?"})` : RELAYED_TYPES.has(envelope.type) ? "room" : "broker");
  const route = direction === "in" ? `${other(envelope.from)} → ${me}` : `${me} → ${other(envelope.to)}`;
  const entry = { direction, type: envelope.type, seq: envelope.seq ?? null, route, transport, time: new Date() };
  demo.log.push(entry);
  if (demo.log.length > LOG_ROWS) demo.log.shift();

  const row = document.createElement("li");
  row.dataset.dir = direction;
  row.dataset.type = envelope.type;
  if (envelope.seq !== undefined) row.dataset.seq = envelope.seq;
  if (CONTROL_TYPES.has(envelope.type)) row.classList.add("control");
  if (envelope.type === "error") row.classList.add("error");
  row.append(
    cell("time", entry.time.toLocaleTimeString([], { hour12: false })),
    cell("dir", direction === "in" ? "in ←" : "out →"),
    cell("type", envelope.type),
    cell("seq", envelope.seq === undefined ? "" : `#${envelope.seq}`),
    cell("route", route),
  );
  // Join and welcome carry the token and the session secret: keep them off the screen.
  if (envelope.type !== "join" && envelope.type !== "welcome" && envelope.payload !== undefined) {
    row.title = JSON.stringify(envelope.payload).slice(0, 400);
  }
  el.log.prepend(row);
  if (el.log.children.length > LOG_ROWS) el.log.lastElementChild.remove();
}

function cell(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text;
  return span;
}

function addChat(from, text) {
  demo.chat.push({ from, text });
  const line = document.createElement("li");
  line.dataset.from = from === demo.sig?.peer ? "me" : "remote";
  line.append(cell("who", from), cell("text", text));
  el.chatLog.append(line);
  line.scrollIntoView({ block: "nearest" });
}

function renderPeers() {
  const peers = demo.sig?.peers ?? [];
  for (const { peer, meta } of peers) transports.set(peer, meta?.transport ?? "?");
  el.peers.replaceChildren(
    ...peers.map(({ peer }) => {
      const item = document.createElement("li");
      item.dataset.peer = peer;
      const inCall = demo.link?.remote === peer;
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.peer = peer;
      button.className = inCall ? "hangup" : "call";
      button.textContent = inCall ? "Hang up" : "Call";
      button.disabled = Boolean(demo.link) && !inCall;
      item.append(cell("peer-name", peer), cell("badge", transports.get(peer)), button);
      return item;
    }),
  );
  el.peersEmpty.hidden = peers.length > 0 || !demo.sig;
}

function renderStatus() {
  const sig = demo.sig;
  const state = sig?.state ?? "idle";
  el.status.dataset.state = state;
  el.status.textContent = !sig ? "not connected"
    : state === "open" ? `${sig.peer} in ${el.room.value} · ${sig.transport} · ${iceSummary(sig.iceServers)}`
    : state;
}

function iceSummary(servers) {
  const turn = servers.some((s) => s.urls.some((u) => u.startsWith("turn")));
  if (servers.length === 0) return "no STUN/TURN";
  return turn ? "STUN/TURN from the broker" : "STUN from the broker";
}

function renderCall(state) {
  el.callState.textContent = demo.link ? `with ${demo.link.remote}: ${state}` : "";
  if (!demo.link) delete el.callState.dataset.path;
}

function renderVideos() {
  el.localVideo.hidden = !demo.localStream;
  // A data-only call draws no empty video box, only the hint.
  el.remoteVideo.hidden = !demo.link || !el.remoteVideo.srcObject;
  const hint = !demo.link ? "Not in a call" : el.remoteVideo.srcObject ? "" : "Data only: no video from the other side";
  el.videoHint.textContent = hint;
  el.videoHint.hidden = hint === "";
}

function setJoined(joined) {
  for (const input of [el.room, el.name, el.transport, el.media, el.join]) input.disabled = joined;
  el.join.hidden = joined;
  el.leave.hidden = !joined;
}

function setChatOpen(open) {
  el.chatInput.disabled = !open;
  el.chatSend.disabled = !open;
  el.chatInput.placeholder = open ? "Say something" : "Call someone to chat";
}

// banner shows a message of a kind (one at a time per kind) until it is dismissed or cleared.
function banner(kind, level, text) {
  clearBanner(kind);
  const box = document.createElement("div");
  box.className = `banner ${level}`;
  box.dataset.kind = kind;
  box.setAttribute("role", level === "error" ? "alert" : "status");
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "×";
  close.setAttribute("aria-label", "dismiss");
  close.addEventListener("click", () => box.remove());
  box.append(cell("text", text), close);
  el.banners.append(box);
}

function clearBanner(kind) {
  el.banners.querySelector(`[data-kind="${kind}"]`)?.remove();
}

function clearBanners() {
  el.banners.replaceChildren();
}
