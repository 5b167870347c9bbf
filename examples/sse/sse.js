// sse is a custom transport for the Switchboard browser client: Server-Sent Events down and
// HTTP POST up, served by the Go transport in this directory (package sse). It reads the event
// stream with fetch, so it works in browsers and in Node alike.
//
//     import { connect, registerTransport } from "/client/switchboard.js";
//     import { sse } from "./sse.js";
//     registerTransport(sse);
//     const sig = await connect({ url: location.origin, room: "demo", transport: "sse" });
//
// or, without registering it: connect({ url, room, transport: sse }).

/** sse is the transport object: give it to registerTransport() or connect({transport}). */
export const sse = Object.freeze({
  name: "sse",
  open({ base, options, signal, receive, closed }) {
    const fetchImpl = options.fetchImpl ?? globalThis.fetch.bind(globalThis);
    const stop = new AbortController();
    signal.addEventListener("abort", () => stop.abort());
    let session = null; // from the welcome
    let posting = Promise.resolve(); // POSTs go one after another, so they arrive in order
    let ended = false;
    const end = (error) => {
      if (ended) return;
      ended = true;
      stop.abort();
      closed(error);
    };

    // stream POSTs the join and reads the events that answer it, until the stream ends.
    async function stream(join) {
      let res;
      try {
        res = await fetchImpl(`${base}/v1/sse`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(join),
          signal: stop.signal,
        });
      } catch {
        end();
        return;
      }
      if (!res.ok) {
        // A refused join: its error envelope is the body.
        const text = await res.text().catch(() => "");
        if (text) receive(text);
        end();
        return;
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const event = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const data = event
              .split("\n")
              .filter((line) => line.startsWith("data:"))
              .map((line) => line.slice(5).trimStart())
              .join("\n");
            if (!data) continue; // a keepalive comment
            if (session === null) {
              try {
                session = JSON.parse(data).payload?.session ?? null;
              } catch {}
            }
            receive(data);
          }
        }
      } catch {}
      end();
    }

    async function post(envelope) {
      const res = await fetchImpl(`${base}/v1/sse/${encodeURIComponent(session)}/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(envelope),
        keepalive: true, // a leave still goes out while the page closes
      });
      if (res.status !== 202) {
        end();
        throw new Error(`POST answered ${res.status}`);
      }
    }

    return {
      send(envelope) {
        if (envelope.type === "join") {
          stream(envelope);
          return;
        }
        const sent = posting.then(() => post(envelope));
        posting = sent.catch(() => {});
        return sent;
      },
      close() {
        ended = true;
        stop.abort();
      },
    };
  },
});
