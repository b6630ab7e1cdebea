// Node's `ws` client in the interoperability matrix: node interop.js URL SPEC_JSON [CA_FILE]
// prints the exchange's report as JSON (see exchange.js), with fragments and pings added,
// which the browser API cannot send.
"use strict";
const fs = require("fs");
const WebSocket = require("ws");
const { exchange, makeMessage, sameMessage } = require("./exchange.js");

async function fragmentsAndPings(ws, next) {
  const result = { fragmented: false, pong: false };
  const parts = ["frag", "ment", "ed ✓"];
  parts.forEach((part, i) => ws.send(part, { fin: i === parts.length - 1 }));
  result.fragmented = (await next()) === parts.join("");
  const pong = new Promise((resolve) => ws.once("pong", (data) => resolve(data.toString())));
  ws.ping("are you there");
  result.pong = (await pong) === "are you there";
  const big = makeMessage({ kind: "binary", size: 200000 });
  ws.send(big.subarray(0, 100000), { binary: true, fin: false });
  ws.send(big.subarray(100000), { binary: true, fin: true });
  result.fragmentedBinary = sameMessage(big, await next());
  return result;
}

async function main() {
  const [url, specText, caFile] = process.argv.slice(2);
  const spec = JSON.parse(specText);
  const options = { perMessageDeflate: true, maxPayload: 2 * 1024 * 1024 };
  if (caFile) options.ca = fs.readFileSync(caFile);
  const report = await exchange(() => new WebSocket(url, options), spec, fragmentsAndPings);
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((error) => {
  process.stderr.write(`interop.js: ${error.stack || error}\n`);
  process.exit(1);
});
