import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { connect, registerTransport, Signaling } from "../switchboard.js";
import { FakeBroker, FAST, messages, until } from "./fakes.js";

const open = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((sig) => sig.close()));
});

// objectTransport is a custom transport over the fake broker's sockets that hands envelopes to
// the client as objects, not text; it counts its opens.
function objectTransport(broker, name = "objects") {
  const t = {
    name,
    opens: 0,
    open({ base, options, signal, receive, closed }) {
      t.opens++;
      assert.equal(base, "http://broker.test");
      assert.equal(typeof options.connectTimeout, "number");
      return new Promise((resolve, reject) => {
        const socket = new broker.WebSocket(`${base}/custom`);
        signal.addEventListener("abort", () => socket.close());
        let opened = false;
        socket.addEventListener("open", () => {
          opened = true;
          resolve({ send: async (envelope) => socket.send(JSON.stringify(envelope)), close: () => socket.close() });
        });
        socket.addEventListener("message", (e) => receive(JSON.parse(e.data)));
        socket.addEventListener("close", () => (opened ? closed() : reject(new Error("refused"))));
      });
    },
  };
  return t;
}

async function join(broker, peer, options = {}) {
  const sig = await connect({ url: "http://broker.test", room: "r", peer, transport: "websocket", WebSocketImpl: broker.WebSocket, fetchImpl: broker.fetch, ...FAST, ...options });
  open.push(sig);
  return sig;
}

describe("custom transports", () => {
  test("a transport object carries a session: join, relay both ways, acks, trace names it", async () => {
    const broker = new FakeBroker();
    const t = objectTransport(broker);
    const bob = await join(broker, "bob");
    const sig = new Signaling({ url: "http://broker.test", room: "r", peer: "alice", transport: t, meta: (name) => ({ via: name }), ...FAST });
    open.push(sig);
    const traced = [];
    sig.addEventListener("trace", (e) => traced.push(e.detail.transport));
    await sig.open();
    assert.equal(sig.transport, "objects");
    assert.equal(broker.socket("alice").url, "http://broker.test/custom");
    assert.deepEqual(broker.socket("alice").sent[0].payload, { peer: "alice", meta: { via: "objects" } });
    assert.ok(traced.length > 0 && traced.every((name) => name === "objects"));
    const toAlice = messages(sig);
    const toBob = messages(bob);
    await sig.send({ type: "message", to: "bob", payload: "hi bob" });
    await bob.send({ type: "message", to: "alice", payload: "hi alice" });
    await until(() => toAlice.length === 1 && toBob.length === 1);
    assert.equal(toAlice[0].payload, "hi alice");
    assert.equal(toBob[0].payload, "hi bob");
    await until(() => broker.socket("alice").sent.some((e) => e.type === "ack"));
  });

  test("a registered transport is picked by name, and resumes on it after a drop", async () => {
    const broker = new FakeBroker();
    const t = objectTransport(broker, "registered-objects");
    registerTransport(t);
    assert.throws(() => registerTransport(t), TypeError);
    assert.throws(() => registerTransport({ name: "websocket", open() {} }), TypeError);
    assert.throws(() => registerTransport({ name: "x" }), TypeError);
    const sig = await connect({ url: "http://broker.test", room: "r", peer: "alice", transport: "registered-objects", ...FAST });
    open.push(sig);
    const bob = await join(broker, "bob");
    const got = messages(sig);
    const session = sig.session;
    broker.socket("alice").drop();
    await until(() => t.opens === 2 && sig.state === "open");
    await bob.send({ type: "message", to: "alice", payload: "after the drop" });
    await until(() => got.length === 1);
    assert.equal(sig.session, session, "the session was resumed, not replaced");
    assert.equal(sig.transport, "registered-objects");
  });

  test("an unknown name or a malformed object is refused at once", () => {
    assert.throws(() => new Signaling({ url: "http://broker.test", room: "r", transport: "nosuch" }), /transport must be one of/);
    assert.throws(() => new Signaling({ url: "http://broker.test", room: "r", transport: { name: "x" } }), TypeError);
  });

  test("a transport that cannot connect rejects connect with unreachable", async () => {
    const broker = new FakeBroker();
    broker.offline = true;
    const t = objectTransport(broker);
    await assert.rejects(connect({ url: "http://broker.test", room: "r", transport: t, ...FAST }), { code: "unreachable" });
    const throwing = { name: "throws", open() { throw new Error("no such wire"); } };
    await assert.rejects(connect({ url: "http://broker.test", room: "r", transport: throwing, ...FAST }), { code: "unreachable" });
  });
});
