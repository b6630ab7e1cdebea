// The mixed exchange of the interoperability matrix, on the standard WebSocket API.
//
// Shared by Chromium (the page's own WebSocket; this file is added to the page as a script)
// and Node (the `ws` package's WebSocket, which has the same API), so both run exactly the
// same sequence as the Python clients: tests/integration/test_interop_matrix.py makes the
// messages with the same rules (makeMessage below).
"use strict";

function makeMessage(item) {
  if (item.kind === "binary") {
    const bytes = new Uint8Array(item.size);
    for (let i = 0; i < item.size; i++) bytes[i] = (i * 7 + 3) & 255;
    return bytes;
  }
  if (item.kind === "utf8") return "héllo wörld ✓ 🚀 ".repeat(item.size);
  return "abcdefghijklmnopqrstuvwxyz".repeat(Math.ceil(item.size / 26)).slice(0, item.size);
}

function sameMessage(sent, got) {
  if (typeof sent === "string") return typeof got === "string" && got === sent;
  if (typeof got === "string") return false;
  const view = new Uint8Array(got instanceof ArrayBuffer ? got : got.buffer.slice(got.byteOffset, got.byteOffset + got.byteLength));
  if (view.length !== sent.length) return false;
  for (let i = 0; i < view.length; i++) if (view[i] !== sent[i]) return false;
  return true;
}

// Opens a socket with `open()`, sends spec.messages one by one, checks each echo, runs
// `extra(ws, next)` (Node: fragments and pings), closes with spec.closeCode and reports;
// rejects if all that takes longer than spec.timeoutMs.
function exchange(open, spec, extra) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`exchange not done within ${spec.timeoutMs} ms`)), spec.timeoutMs);
  });
  return Promise.race([run(open, spec, extra), timeout]).finally(() => clearTimeout(timer));
}

async function run(open, spec, extra) {
  const ws = open();
  ws.binaryType = "arraybuffer";
  const inbox = [];
  const waiting = [];
  ws.onmessage = (event) => (waiting.length ? waiting.shift()(event.data) : inbox.push(event.data));
  const closed = new Promise((resolve) => {
    ws.onclose = (event) => resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
  });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("WebSocket error before open"));
  });
  ws.onerror = null;
  const next = () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiting.push(resolve)));
  const report = { extensions: ws.extensions, mismatches: [], echoed: 0, extra: null };
  for (const [index, item] of spec.messages.entries()) {
    const message = makeMessage(item);
    ws.send(message);
    const got = await next();
    if (sameMessage(message, got)) report.echoed += 1;
    else report.mismatches.push({ index, kind: item.kind, size: item.size, gotType: typeof got });
  }
  if (extra) report.extra = await extra(ws, next);
  ws.close(spec.closeCode, spec.closeReason);
  report.close = await closed;
  return report;
}

if (typeof module !== "undefined") module.exports = { exchange, makeMessage, sameMessage };
