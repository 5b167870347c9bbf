import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { connect, PeerLink } from "../switchboard.js";
import { collect, FakeBroker, FakePeerConnection, FAST, until } from "./fakes.js";

const open = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((sig) => sig.close()));
});

const options = { RTCPeerConnectionImpl: FakePeerConnection };

// pair connects alice and bob and, unless answer is false, makes bob answer alice's first
// offer with PeerLink.accept.
async function pair(linkOptions = options, answer = true) {
  const broker = new FakeBroker();
  const dial = (peer) => connect({ url: "http://broker.test", room: "r", peer, transport: "websocket", WebSocketImpl: broker.WebSocket, ...FAST });
  const alice = await dial("alice");
  const bob = await dial("bob");
  open.push(alice, bob);
  const accepted = new Promise((resolve) => {
    if (!answer) return;
    const onOffer = ({ detail: env }) => {
      if (env.type !== "offer") return;
      bob.removeEventListener("message", onOffer);
      resolve(PeerLink.accept(bob, env, linkOptions));
    };
    bob.addEventListener("message", onOffer);
  });
  const trace = [];
  for (const [name, sig] of [["alice", alice], ["bob", bob]]) {
    sig.addEventListener("trace", ({ detail }) => {
      if (detail.direction === "out" && ["offer", "answer", "candidate", "bye"].includes(detail.envelope.type)) trace.push([name, detail.envelope]);
    });
  }
  return { alice, bob, accepted, trace };
}

const stable = (link) => link.pc.signalingState === "stable" && link.pc.remoteDescription !== null;

describe("PeerLink", () => {
  test("the peer whose id sorts first is polite, unless told", async () => {
    const { alice, bob } = await pair();
    assert.equal(new PeerLink(alice, "bob", options).polite, true);
    assert.equal(new PeerLink(bob, "alice", options).polite, false);
    assert.equal(new PeerLink(bob, "alice", { ...options, polite: true }).polite, true);
  });

  test("a call: offer and answer are RTCSessionDescriptionInit, candidates trickle", async () => {
    const { accepted, trace, alice } = await pair();
    const caller = new PeerLink(alice, "bob", { ...options, rtcConfig: { iceServers: [] } });
    assert.deepEqual(caller.pc.config, { iceServers: [] });
    caller.createDataChannel("chat");
    const callee = await accepted;
    await until(() => stable(caller) && stable(callee));
    const [offer, answer] = trace;
    assert.deepEqual([offer[0], offer[1].type, offer[1].to, offer[1].payload], ["alice", "offer", "bob", { type: "offer", sdp: "offer 1" }]);
    assert.deepEqual([answer[0], answer[1].type, answer[1].to, answer[1].payload], ["bob", "answer", "alice", { type: "answer", sdp: "answer 1" }]);
    const candidate = { candidate: "candidate:1 1 udp 1 192.0.2.1 9 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" };
    caller.pc.gather([candidate]);
    await until(() => callee.pc.remoteCandidates.length === 2);
    assert.deepEqual(callee.pc.remoteCandidates, [candidate, null]);
    assert.deepEqual(trace.slice(2).map(([, e]) => e.payload), [candidate, null]);
  });

  test("crossing offers: the impolite side ignores, the polite side rolls back and answers", async () => {
    const { alice, bob, trace } = await pair(options, false);
    const polite = new PeerLink(alice, "bob", options);
    const impolite = new PeerLink(bob, "alice", options);
    const errors = collect(polite, "error").concat(collect(impolite, "error"));
    polite.createDataChannel("a");
    impolite.createDataChannel("b");
    await until(() => stable(polite) && stable(impolite));
    assert.deepEqual(trace.map(([who, e]) => [who, e.type]), [["alice", "offer"], ["bob", "offer"], ["alice", "answer"]]);
    assert.equal(polite.pc.remoteDescription.type, "offer");
    assert.equal(impolite.pc.remoteDescription.type, "answer");
    assert.equal(impolite.pc.remoteDescription.sdp, polite.pc.localDescription.sdp);
    assert.deepEqual(errors, []);
  });

  test("gatherAll sends one offer after gathering, and no candidates", async () => {
    const { alice, accepted, trace } = await pair({ ...options, gatherAll: true });
    const caller = new PeerLink(alice, "bob", { ...options, gatherAll: true });
    caller.createDataChannel("chat");
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.deepEqual(trace, []);
    caller.pc.gather([{ candidate: "candidate:1", sdpMid: "0", sdpMLineIndex: 0 }]);
    const callee = await accepted;
    await until(() => callee.pc.localDescription !== null);
    callee.pc.gather([]);
    await until(() => stable(caller));
    assert.deepEqual(trace.map(([who, e]) => [who, e.type]), [["alice", "offer"], ["bob", "answer"]]);
  });

  test("ICE failure restarts ICE with a new offer", async () => {
    const { alice, accepted, trace } = await pair();
    const caller = new PeerLink(alice, "bob", options);
    caller.createDataChannel("chat");
    const callee = await accepted;
    await until(() => stable(caller) && stable(callee));
    caller.pc.setIceState("failed");
    assert.equal(caller.pc.restarts, 1);
    await until(() => trace.filter(([, e]) => e.type === "answer").length === 2);
    assert.deepEqual(trace.map(([who, e]) => [who, e.type]), [["alice", "offer"], ["bob", "answer"], ["alice", "offer"], ["bob", "answer"]]);
  });

  test("close sends bye, and the other side closes too", async () => {
    const { alice, accepted, trace } = await pair();
    const caller = new PeerLink(alice, "bob", options);
    caller.createDataChannel("chat");
    const callee = await accepted;
    const ended = collect(callee, "close", "state");
    caller.close();
    assert.equal(caller.pc.closed, true);
    await until(() => ended.length === 2);
    assert.deepEqual(ended, [{ state: "closed" }, { reason: "bye" }]);
    assert.equal(callee.pc.closed, true);
    assert.deepEqual(trace.at(-1)[1].type, "bye");
  });

  test("the link closes when the remote peer leaves the room", async () => {
    const { alice, bob } = await pair();
    const link = new PeerLink(alice, "bob", options);
    const ended = collect(link, "close");
    await bob.close();
    await until(() => ended.length === 1);
    assert.deepEqual(ended, [{ reason: "peer-left" }]);
  });

  test("track and datachannel events carry what the RTCPeerConnection gave", async () => {
    const { alice } = await pair();
    const link = new PeerLink(alice, "bob", options);
    const seen = collect(link, "track", "datachannel");
    const track = { kind: "video" };
    link.pc.dispatchEvent(Object.assign(new Event("track"), { track, streams: ["s"], transceiver: "t" }));
    link.pc.dispatchEvent(Object.assign(new Event("datachannel"), { channel: "c" }));
    assert.deepEqual(seen, [{ track, streams: ["s"], transceiver: "t" }, { channel: "c" }]);
  });
});
