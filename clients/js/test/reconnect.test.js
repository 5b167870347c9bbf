import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { connect } from "../switchboard.js";
import { collect, FakeBroker, FAST, messages, until } from "./fakes.js";

const open = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((sig) => sig.close()));
});

async function join(broker, peer, options = {}) {
  const sig = await connect({ url: "http://broker.test", room: "r", peer, transport: "websocket", WebSocketImpl: broker.WebSocket, fetchImpl: broker.fetch, ...FAST, ...options });
  open.push(sig);
  return sig;
}

describe("reconnect and resume", () => {
  test("a dropped WebSocket resumes and loses nothing, delivering nothing twice", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const bob = await join(broker, "bob");
    const got = messages(alice);
    const seen = collect(alice, "state", "peer-left");
    await bob.send({ type: "message", to: "alice", payload: 1 });
    await until(() => got.length === 1);
    const s = broker.session("alice");
    broker.socket("alice").drop();
    await bob.send({ type: "message", to: "alice", payload: 2 });
    await bob.send({ type: "message", to: "alice", payload: 3 });
    await until(() => got.length === 3);
    assert.deepEqual(got.map((e) => [e.seq, e.payload]), [[3, 1], [4, 2], [5, 3]]);
    assert.deepEqual(seen, [{ state: "reconnecting" }, { state: "open" }]);
    assert.deepEqual(broker.socket("alice").sent[0].payload.resume, { session: s.id, last_seq: 3 });
    assert.equal(alice.session, s.id);
    assert.equal(broker.sockets.filter((k) => k.session === s).length, 2);
  });

  test("sends made while reconnecting are queued and go out after the resume, in order", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const bob = await join(broker, "bob");
    const got = messages(bob);
    broker.offline = true;
    broker.socket("alice").drop();
    await until(() => alice.state === "reconnecting");
    const sends = [1, 2, 3].map((n) => alice.send({ type: "message", to: "bob", payload: n }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(got.length, 0);
    broker.offline = false;
    const sent = await Promise.all(sends);
    await until(() => got.length === 3);
    assert.deepEqual(got.map((e) => e.payload), [1, 2, 3]);
    assert.deepEqual(broker.received.map((r) => r.envelope.id), sent.map((e) => e.id));
  });

  test("writes the broker did not confirm are sent again with the same id, and arrive once", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice", { pongTimeout: 100 });
    const bob = await join(broker, "bob");
    const got = messages(bob);
    // The broker takes the message, but its pong is lost: the client cannot know.
    broker.socket("alice").lose = Infinity;
    const sent = await alice.send({ type: "message", to: "bob", payload: "once" });
    const frames = broker.sockets.filter((k) => k.session?.peer === "alice").map((k) => k.sent.filter((e) => e.type === "message"));
    assert.deepEqual(frames, [[sent], [sent]]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(got.map((e) => e.payload), ["once"]);
  });

  test("a silent connection is found dead by the heartbeat and replaced", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice", { heartbeatInterval: 30, pongTimeout: 50 });
    const seen = collect(alice, "state");
    broker.socket("alice").blackhole = true;
    await until(() => seen.length === 2);
    assert.deepEqual(seen, [{ state: "reconnecting" }, { state: "open" }]);
    assert.equal(broker.socket("alice").sent[0].payload.resume.session, alice.session);
  });

  test("the client keeps trying while the broker is down", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    broker.offline = true;
    broker.socket("alice").drop();
    await until(() => broker.sockets.length >= 4);
    assert.equal(alice.state, "reconnecting");
    broker.offline = false;
    await until(() => alice.state === "open");
  });

  test("an expired session is replaced by a fresh one, and the app is told", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const old = alice.session;
    await join(broker, "bob");
    const resets = collect(alice, "session-reset");
    const got = messages(alice);
    broker.expire("alice");
    await until(() => resets.length === 1);
    assert.deepEqual(resets, [{ previous: old, session: broker.session("alice").id }]);
    assert.notEqual(alice.session, old);
    assert.deepEqual(alice.peers.map((p) => p.peer), ["bob"]);
    const joins = broker.sockets.filter((k) => k.sent[0]?.payload?.peer === "alice").map((k) => k.sent[0].payload.resume);
    assert.deepEqual(joins, [undefined, { session: old, last_seq: 2 }, undefined]);
    // The new session numbers from 1 again.
    await open[1].send({ type: "message", to: "alice", payload: "hello again" });
    await until(() => got.length === 1);
    assert.equal(got[0].seq, 2);
  });

  test("an error that no retry can mend stops reconnecting and closes", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const seen = collect(alice, "state", "error");
    broker.joinError = "unauthorized";
    broker.socket("alice").drop();
    await until(() => alice.state === "closed");
    assert.deepEqual(seen.map((e) => e.state ?? e.code), ["reconnecting", "unauthorized", "closed"]);
  });

  test("close while reconnecting rejects queued sends", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    broker.offline = true;
    broker.socket("alice").drop();
    await until(() => alice.state === "reconnecting");
    const queued = alice.send({ type: "message", payload: "never" });
    await alice.close();
    await assert.rejects(queued, { code: "closed" });
    const tries = broker.sockets.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(broker.sockets.length, tries);
  });

  test("a token function is asked for a token on every join", async () => {
    const broker = new FakeBroker();
    let n = 0;
    const alice = await join(broker, "alice", { token: async () => `token-${++n}` });
    broker.socket("alice").drop();
    await until(() => alice.state === "open" && broker.sockets.length === 2);
    assert.deepEqual(broker.sockets.map((k) => k.sent[0].payload.token), ["token-1", "token-2"]);
  });
});

describe("auto", () => {
  test("auto uses a WebSocket when it connects", async () => {
    const broker = new FakeBroker();
    const sig = await join(broker, "alice", { transport: "auto" });
    assert.equal(sig.transport, "websocket");
    assert.equal(broker.requests.length, 0);
  });

  test("auto falls back to long-polling when the WebSocket cannot connect", async () => {
    const broker = new FakeBroker();
    broker.refuseWebSocket = true;
    const tried = [];
    const sig = await join(broker, "alice", { transport: "auto", meta: (transport) => (tried.push(transport), { transport }) });
    assert.equal(sig.transport, "longpoll");
    assert.deepEqual(tried, ["websocket", "longpoll"]);
    assert.deepEqual(broker.requests[0].body.payload.meta, { transport: "longpoll" });
    assert.equal(broker.session("alice").transport, "longpoll");
  });

  test("auto does not fall back when the broker refused the join", async () => {
    const broker = new FakeBroker();
    broker.joinError = "room-full";
    await assert.rejects(join(broker, "alice", { transport: "auto" }), { code: "room-full" });
    assert.equal(broker.requests.length, 0);
  });

  test("auto keeps the transport it found when it reconnects", async () => {
    const broker = new FakeBroker();
    broker.refuseWebSocket = true;
    const sig = await join(broker, "alice", { transport: "auto" });
    const sockets = broker.sockets.length;
    broker.offline = true;
    await until(() => sig.state === "reconnecting");
    broker.offline = false;
    await until(() => sig.state === "open");
    assert.equal(sig.transport, "longpoll");
    assert.equal(broker.sockets.length, sockets);
  });
});
