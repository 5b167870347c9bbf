import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { connect } from "../switchboard.js";
import { collect, FakeBroker, FAST, messages, until } from "./fakes.js";

const open = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((sig) => sig.close()));
});

async function join(broker, peer, options = {}) {
  const sig = await connect({ url: "http://broker.test/", room: "r", peer, transport: "longpoll", fetchImpl: broker.fetch, ...FAST, ...options });
  open.push(sig);
  return sig;
}

const polls = (broker, session) =>
  broker.requests.filter((r) => r.method === "GET" && r.path === `/v1/sessions/${session}/messages`);

describe("long-polling", () => {
  test("joins with a POST, then polls with after set to the last delivered seq", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice", { meta: { transport: "longpoll" } });
    assert.deepEqual(broker.requests[0], { method: "POST", path: "/v1/sessions", query: {}, body: { v: 1, type: "join", room: "r", payload: { peer: "alice", meta: { transport: "longpoll" } } } });
    assert.equal(alice.transport, "longpoll");
    const got = messages(alice);
    const bob = await join(broker, "bob");
    await bob.send({ type: "message", to: "alice", payload: "one" });
    await bob.send({ type: "message", to: "alice", payload: "two" });
    await until(() => got.length === 2);
    const afters = polls(broker, alice.session).map((r) => r.query);
    assert.deepEqual(afters[0], { after: "1", wait: "1" });
    assert.ok(afters.some((q) => q.after === "2"), "polled after the peer-joined");
    await until(() => polls(broker, alice.session).at(-1).query.after === "4");
    assert.equal(broker.session("alice").acked, 4);
  });

  test("sends go out one POST at a time, batching what waited, in order", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const bob = await join(broker, "bob");
    const got = messages(bob);
    const sent = await Promise.all([1, 2, 3, 4].map((n) => alice.send({ type: "message", to: "bob", payload: n })));
    const posts = broker.requests.filter((r) => r.method === "POST" && r.path.endsWith("/messages"));
    assert.deepEqual(posts.map((r) => r.body.map((e) => e.payload)), [[1], [2, 3, 4]]);
    assert.deepEqual(posts[0].body[0], sent[0]);
    await until(() => got.length === 4);
    assert.deepEqual(got.map((e) => e.payload), [1, 2, 3, 4]);
  });

  test("a large batch is split across POSTs", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    await join(broker, "bob");
    const big = "x".repeat(30_000);
    await Promise.all([1, 2, 3, 4].map((n) => alice.send({ type: "message", to: "bob", payload: `${n}${big}` })));
    const posts = broker.requests.filter((r) => r.method === "POST" && r.path.endsWith("/messages"));
    assert.deepEqual(posts.map((r) => r.body.length), [1, 2, 1]);
  });

  test("a POST the broker refuses is reported, not retried", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const errors = collect(alice, "error");
    broker.postError = "too-large";
    await alice.send({ type: "message", payload: "too big" });
    assert.deepEqual(errors.map((e) => e.code), ["too-large"]);
    assert.equal(alice.state, "open");
    assert.equal(broker.requests.filter((r) => r.method === "POST" && r.path.endsWith("/messages")).length, 1);
  });

  test("a lost connection resumes with a join, and nothing is lost", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const bob = await join(broker, "bob", { transport: "websocket", WebSocketImpl: broker.WebSocket });
    const got = messages(alice);
    const seen = collect(alice, "state");
    broker.offline = true;
    await until(() => alice.state === "reconnecting");
    await bob.send({ type: "message", to: "alice", payload: "while away" });
    const queued = alice.send({ type: "message", to: "bob", payload: "from away" });
    broker.offline = false;
    await queued;
    await until(() => got.length === 1);
    assert.deepEqual(got.map((e) => e.payload), ["while away"]);
    assert.deepEqual(seen, [{ state: "reconnecting" }, { state: "open" }]);
    const rejoin = broker.requests.filter((r) => r.path === "/v1/sessions").at(-1);
    assert.deepEqual(rejoin.body.payload.resume, { session: alice.session, last_seq: 2 });
  });

  test("a 404 for the session starts a fresh one", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const old = alice.session;
    const resets = collect(alice, "session-reset");
    broker.expire("alice");
    await until(() => resets.length === 1);
    assert.notEqual(alice.session, old);
    // No resume is tried for a session the broker said is gone.
    const joins = broker.requests.filter((r) => r.path === "/v1/sessions");
    assert.deepEqual(joins.map((r) => r.body.payload.resume), [undefined, undefined]);
  });

  test("a gap is fetched again with the same after", async () => {
    const broker = new FakeBroker();
    // The network loses seq 2 from one answer.
    let lost = false;
    const fetchImpl = async (url, init) => {
      const res = await broker.fetch(url, init);
      if (lost || init?.method !== "GET") return res;
      const list = await res.json();
      lost = list.some((e) => e.seq === 2);
      return Response.json(list.filter((e) => e.seq !== 2));
    };
    const alice = await join(broker, "alice", { fetchImpl });
    const got = messages(alice);
    const errors = collect(alice, "error");
    const s = broker.session("alice");
    for (const n of [2, 3]) broker.push(s, { v: 1, type: "message", from: "bob", payload: n });
    await until(() => got.length === 2);
    assert.ok(lost);
    assert.deepEqual(got.map((e) => e.seq), [2, 3]);
    assert.deepEqual(errors, []);
    const afters = polls(broker, alice.session).map((r) => r.query.after);
    assert.deepEqual(afters.slice(0, 2), ["1", "1"]);
  });

  test("close deletes the session and stops polling", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice");
    const session = alice.session;
    await alice.close();
    assert.deepEqual(broker.requests.at(-1), { method: "DELETE", path: `/v1/sessions/${session}`, query: {}, body: undefined });
    const n = broker.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(broker.requests.length, n);
  });
});
