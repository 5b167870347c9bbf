import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { connect, Signaling, SignalingError } from "../switchboard.js";
import { collect, FakeBroker, FAST, messages, until } from "./fakes.js";

const open = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((sig) => sig.close()));
});

// join connects a peer of room "r" to broker and closes it after the test.
async function join(broker, peer, options = {}) {
  const sig = await connect({ url: "http://broker.test", room: "r", peer, transport: "websocket", WebSocketImpl: broker.WebSocket, fetchImpl: broker.fetch, ...FAST, ...options });
  open.push(sig);
  return sig;
}

describe("framing", () => {
  test("the WebSocket URL comes from the base URL, and the first frame is join", async () => {
    const broker = new FakeBroker();
    const sig = new Signaling({ url: "https://example.test/signal/", room: "r", peer: "alice", token: "t0k", meta: { transport: "websocket" }, transport: "websocket", WebSocketImpl: broker.WebSocket, ...FAST });
    open.push(sig);
    const states = collect(sig, "state");
    await sig.open();
    const socket = broker.sockets[0];
    assert.equal(socket.url, "wss://example.test/signal/v1/ws");
    assert.deepEqual(socket.sent[0], { v: 1, type: "join", room: "r", payload: { peer: "alice", token: "t0k", meta: { transport: "websocket" } } });
    assert.deepEqual(states, [{ state: "open" }]);
    assert.equal(sig.peer, "alice");
    assert.equal(sig.session, broker.session("alice").id);
    assert.equal(sig.transport, "websocket");
    assert.equal(sig.state, "open");
  });

  test("send writes one envelope per frame, with v and an id, and the payload as given", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const bob = await join(broker, "bob");
    const got = messages(bob);
    const sent = await alice.send({ type: "message", to: "bob", payload: null });
    await alice.send({ type: "message", payload: { text: "hi all" }, id: "mine-1" });
    await alice.send({ type: "message" });
    assert.match(sent.id, /^[0-9a-f]{16}-\d+$/);
    const frames = broker.socket("alice").sent.filter((e) => e.type === "message");
    assert.deepEqual(frames, [
      { v: 1, type: "message", id: sent.id, to: "bob", payload: null },
      { v: 1, type: "message", id: "mine-1", payload: { text: "hi all" } },
      { v: 1, type: "message", id: frames[2].id },
    ]);
    await until(() => got.length === 3);
    assert.deepEqual(got.map((e) => [e.from, "payload" in e, e.payload]), [["alice", true, null], ["alice", true, { text: "hi all" }], ["alice", false, undefined]]);
  });

  test("send refuses what the client sends itself, and anything after close", async () => {
    const broker = new FakeBroker();
    const sig = await join(broker, "alice");
    await assert.rejects(sig.send({ type: "ack", payload: { seq: 1 } }), TypeError);
    await assert.rejects(sig.send({}), TypeError);
    await sig.close();
    await assert.rejects(sig.send({ type: "message" }), { code: "closed" });
  });

  test("a refused join rejects connect with the error code", async () => {
    for (const transport of ["websocket", "longpoll"]) {
      const broker = new FakeBroker();
      broker.joinError = "room-full";
      const error = await connect({ url: "http://broker.test", room: "r", transport, WebSocketImpl: broker.WebSocket, fetchImpl: broker.fetch, ...FAST }).catch((e) => e);
      assert.ok(error instanceof SignalingError, transport);
      assert.equal(error.code, "room-full", transport);
    }
  });

  test("a taken peer id rejects connect with peer-id-taken", async () => {
    const broker = new FakeBroker();
    await join(broker, "alice");
    await assert.rejects(join(broker, "alice"), { code: "peer-id-taken" });
  });

  test("an unreachable broker rejects connect with unreachable", async () => {
    const broker = new FakeBroker();
    broker.offline = true;
    for (const transport of ["websocket", "longpoll", "auto"]) {
      await assert.rejects(join(broker, "alice", { transport }), { code: "unreachable" }, transport);
    }
  });
});

describe("peers", () => {
  test("peers come from the welcome and follow peer-joined and peer-left", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice", { meta: { transport: "websocket" } });
    const bob = await join(broker, "bob");
    assert.deepEqual(bob.peers, [{ peer: "alice", meta: { transport: "websocket" } }]);
    const events = collect(bob, "peer-joined", "peer-left");
    const carol = await join(broker, "carol", { transport: "longpoll", meta: { transport: "longpoll" } });
    await until(() => events.length === 1);
    assert.deepEqual(bob.peers.map((p) => p.peer), ["alice", "carol"]);
    await carol.close();
    await alice.close();
    await until(() => events.length === 3);
    assert.deepEqual(events.map((e) => [e.type, e.payload.peer]), [["peer-joined", "carol"], ["peer-left", "carol"], ["peer-left", "alice"]]);
    assert.deepEqual(bob.peers, []);
  });
});

describe("seq", () => {
  test("a seq delivered before is not delivered again", async () => {
    const broker = new FakeBroker();
    const sig = await join(broker, "alice");
    const got = messages(sig);
    const s = broker.session("alice");
    const m2 = broker.push(s, { v: 1, type: "message", from: "bob", payload: 2 });
    await until(() => got.length === 1);
    broker.socket("alice").sendRaw(m2);
    broker.socket("alice").sendRaw({ ...m2, seq: 1 });
    broker.push(s, { v: 1, type: "message", from: "bob", payload: 3 });
    await until(() => got.length === 2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(got.map((e) => e.seq), [2, 3]);
  });

  test("a gap makes the WebSocket resume and fetch the missing messages", async () => {
    const broker = new FakeBroker();
    const sig = await join(broker, "alice");
    const got = messages(sig);
    const errors = collect(sig, "error");
    const s = broker.session("alice");
    // The broker has seq 2 and 3, but the network loses 2 on the way.
    broker.socket("alice").lose = 1;
    broker.push(s, { v: 1, type: "message", from: "bob", payload: "two" });
    broker.push(s, { v: 1, type: "message", from: "bob", payload: "three" });
    await until(() => got.length === 2);
    assert.deepEqual(got.map((e) => [e.seq, e.payload]), [[2, "two"], [3, "three"]]);
    assert.deepEqual(errors, []);
    const rejoin = broker.socket("alice").sent[0];
    assert.deepEqual(rejoin.payload.resume, { session: s.id, last_seq: 1 });
  });

  test("a gap that comes back after the resume is reported, then delivery goes on", async () => {
    const broker = new FakeBroker();
    const sig = await join(broker, "alice");
    const got = messages(sig);
    const errors = collect(sig, "error");
    const s = broker.session("alice");
    // The broker lost seq 2 for good.
    s.nextSeq = 3;
    broker.push(s, { v: 1, type: "message", from: "bob", payload: "three" });
    await until(() => got.length === 1);
    assert.equal(got[0].seq, 3);
    assert.deepEqual(errors.map((e) => [e.code, e.message]), [["gap", "messages 2 to 2 were lost"]]);
  });

  test("an error envelope is delivered and raised as an error event with its ref", async () => {
    const broker = new FakeBroker();
    const sig = await join(broker, "alice");
    const errors = collect(sig, "error");
    const sent = await sig.send({ type: "offer", to: "nobody", payload: { type: "offer", sdp: "v=0" } });
    await until(() => errors.length === 1);
    assert.equal(errors[0].code, "peer-unavailable");
    assert.equal(errors[0].ref, sent.id);
    assert.equal(errors[0].envelope.type, "error");
  });
});

describe("acks", () => {
  test("the WebSocket acks at once after ackEvery messages", async () => {
    const broker = new FakeBroker();
    const sig = await join(broker, "alice", { ackInterval: 60_000 });
    const got = messages(sig);
    const s = broker.session("alice");
    for (let i = 0; i < 40; i++) broker.push(s, { v: 1, type: "message", from: "bob", payload: i });
    await until(() => got.length === 40);
    const acks = broker.socket("alice").sent.filter((e) => e.type === "ack");
    assert.deepEqual(acks, [{ v: 1, type: "ack", payload: { seq: 32 } }]);
    assert.equal(s.acked, 32);
  });

  test("the WebSocket acks what is left after ackInterval, and only once", async () => {
    const broker = new FakeBroker();
    const sig = await join(broker, "alice", { ackInterval: 30 });
    const got = messages(sig);
    const s = broker.session("alice");
    const acks = () => broker.socket("alice").sent.filter((e) => e.type === "ack");
    // The welcome (seq 1) is acked too.
    await until(() => acks().length === 1);
    assert.deepEqual(acks()[0].payload, { seq: 1 });
    for (let i = 0; i < 5; i++) broker.push(s, { v: 1, type: "message", from: "bob", payload: i });
    await until(() => got.length === 5);
    assert.equal(acks().length, 1);
    await until(() => acks().length === 2);
    assert.deepEqual(acks()[1].payload, { seq: 6 });
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(acks().length, 2);
  });
});

describe("close", () => {
  test("close waits for sent messages, then sends leave and rejects what is queued", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const bob = await join(broker, "bob");
    const left = collect(bob, "peer-left");
    const states = collect(alice, "state");
    const sent = alice.send({ type: "message", to: "bob", payload: "last words" });
    await alice.close();
    assert.equal((await sent).payload, "last words");
    const frames = broker.socket("alice").sent.map((e) => e.type);
    assert.deepEqual(frames.slice(-3), ["message", "ping", "leave"]);
    assert.equal(broker.socket("alice").readyState, 3);
    assert.deepEqual(states, [{ state: "closed" }]);
    await until(() => left.length === 1);
    assert.equal(left[0].payload.reason, "leave");
  });
});
