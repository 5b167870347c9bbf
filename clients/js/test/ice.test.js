import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { connect, PeerLink } from "../switchboard.js";
import { collect, FakeBroker, FakePeerConnection, FAST, until } from "./fakes.js";

const open = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((sig) => sig.close()));
});

async function join(broker, peer, transport, options = {}) {
  const sig = await connect({ url: "http://broker.test", room: "r", peer, transport, WebSocketImpl: broker.WebSocket, fetchImpl: broker.fetch, ...FAST, ...options });
  open.push(sig);
  return sig;
}

const turnUser = (sig) => sig.iceServers.find((s) => s.username)?.username;

describe("ICE servers from the broker", () => {
  for (const transport of ["websocket", "longpoll"]) {
    test(`${transport}: the welcome's servers, and fresh ones on request`, async () => {
      const broker = new FakeBroker();
      broker.iceTtl = 3600;
      const alice = await join(broker, "alice", transport);
      assert.deepEqual(alice.iceServers, [{ urls: ["stun:stun.test:3478"] }, { urls: ["turn:turn.test:3478"], username: "1:alice", credential: "c1" }]);
      const left = alice.iceExpires.getTime() - Date.now();
      assert.ok(left > 3500_000 && left <= 3600_000, `expires in ${left} ms`);
      const seen = collect(alice, "ice-servers", "message");
      const fresh = await alice.refreshIceServers();
      assert.equal(fresh[1].username, "2:alice");
      assert.equal(turnUser(alice), "2:alice");
      // The answer is an event of its own, not a message, and takes no seq.
      assert.deepEqual(seen.map((d) => d.iceServers?.[1].username ?? d.type), ["2:alice"]);
      const sent = broker.received.filter((r) => r.envelope.type === "ice-servers");
      assert.equal(sent.length, 0, "the fake broker answers ice-servers itself, like the real one");
    });
  }

  test("credentials are refreshed by themselves before they expire", async () => {
    const broker = new FakeBroker();
    broker.iceTtl = 0.2; // refreshed after 150 ms
    const alice = await join(broker, "alice", "websocket");
    assert.equal(turnUser(alice), "1:alice");
    await until(() => turnUser(alice) === "3:alice", 5_000, "two automatic refreshes");
  });

  test("a resumed welcome brings fresh credentials", async () => {
    const broker = new FakeBroker();
    broker.iceTtl = 3600;
    const alice = await join(broker, "alice", "websocket");
    broker.socket("alice").drop();
    await until(() => turnUser(alice) === "2:alice" && alice.state === "open", 5_000, "the resume");
  });

  test("a broker without servers hands out none", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice", "websocket");
    assert.deepEqual(alice.iceServers, []);
    assert.equal(alice.iceExpires, null);
    assert.deepEqual(await alice.refreshIceServers(), []);
    const link = new PeerLink(alice, "bob", { RTCPeerConnectionImpl: FakePeerConnection });
    assert.deepEqual(link.pc.config, { iceServers: [] });
  });

  test("a refresh still waiting is refused when the Signaling closes", async () => {
    const broker = new FakeBroker();
    const alice = await join(broker, "alice", "websocket");
    broker.socket("alice").blackhole = true;
    const waiting = alice.refreshIceServers();
    await alice.close();
    await assert.rejects(waiting, { code: "closed" });
  });
});

describe("PeerLink and the broker's ICE servers", () => {
  test("uses them unless the page gives its own, and takes fresh ones", async () => {
    const broker = new FakeBroker();
    broker.iceTtl = 3600;
    const alice = await join(broker, "alice", "websocket");
    const link = new PeerLink(alice, "bob", { RTCPeerConnectionImpl: FakePeerConnection, rtcConfig: { iceTransportPolicy: "relay" } });
    assert.deepEqual(link.pc.config, { iceTransportPolicy: "relay", iceServers: alice.iceServers });
    const own = [{ urls: ["stun:own.test"] }];
    const pinned = new PeerLink(alice, "carol", { RTCPeerConnectionImpl: FakePeerConnection, rtcConfig: { iceServers: own } });
    await alice.refreshIceServers();
    assert.equal(link.pc.config.iceServers[1].username, "2:alice");
    assert.equal(link.pc.config.iceTransportPolicy, "relay");
    assert.deepEqual(pinned.pc.config.iceServers, own);
    // A closed link is left alone.
    link.close();
    await alice.refreshIceServers();
    assert.equal(link.pc.config.iceServers[1].username, "2:alice");
  });
});
