// Run by sse_test.go against a node with the sse transport: SWITCHBOARD_URL is its base URL.
import assert from "node:assert/strict";
import { test } from "node:test";
import { connect, registerTransport } from "../../../clients/js/switchboard.js";
import { sse } from "../sse.js";

const url = process.env.SWITCHBOARD_URL;

function nextMessage(sig) {
  return new Promise((resolve) => {
    sig.addEventListener("message", function listener(e) {
      if (e.detail.type !== "message") return;
      sig.removeEventListener("message", listener);
      resolve(e.detail);
    });
  });
}

test("a peer on sse and a peer on long-polling signal each other", { skip: !url }, async () => {
  registerTransport(sse);
  const alice = await connect({ url, room: "sse", peer: "alice", transport: "sse" });
  const bob = await connect({ url, room: "sse", peer: "bob", transport: "longpoll", pollWait: 1 });
  try {
    assert.equal(alice.transport, "sse");
    const toBob = nextMessage(bob);
    await alice.send({ type: "message", to: "bob", payload: { text: "hello from sse" } });
    assert.deepEqual((await toBob).payload, { text: "hello from sse" });
    for (let i = 0; i < 20; i++) {
      const toAlice = nextMessage(alice);
      await bob.send({ type: "message", to: "alice", payload: i });
      const got = await toAlice;
      assert.equal(got.payload, i);
      assert.equal(got.from, "bob");
    }
  } finally {
    await alice.close();
    await bob.close();
  }
});

test("a transport object works unregistered too, and a refused join is an error", { skip: !url }, async () => {
  const carol = await connect({ url, room: "sse", peer: "carol", transport: sse });
  try {
    await assert.rejects(connect({ url, room: "sse", peer: "carol", transport: sse, connectTimeout: 5000 }), { code: "peer-id-taken" });
  } finally {
    await carol.close();
  }
});
