// The demo page's pure logic (wsdaemon/web/static/demo.js) under Node's test runner:
// backoff, the envelope stream's order and dedupe, and the reconnecting socket's states,
// driven by a fake WebSocket and a fake clock. Run by tests/integration/test_demo_logic.py.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const demo = require(path.resolve(__dirname, "../../../wsdaemon/web/static/demo.js"));

const envelope = (offset, data, epoch = "e1") => JSON.stringify({ channel: "/chat/lobby", epoch, offset, data });
const notice = (type, offset, epoch = "e1", reason) =>
  JSON.stringify({ type, channel: "/chat/lobby", epoch, offset, ...(reason ? { reason } : {}) });

test("backoff windows double from one second up to thirty, with full jitter", () => {
  const backoff = new demo.Backoff({ random: () => 0.999 });
  const delays = Array.from({ length: 8 }, () => Math.round(backoff.nextDelayMs() / 100) / 10);
  assert.deepEqual(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
  const low = new demo.Backoff({ random: () => 0 });
  assert.equal(low.nextDelayMs(), 0);
});

test("backoff reset starts again within the first second", () => {
  const backoff = new demo.Backoff({ random: () => 0.999 });
  for (let i = 0; i < 6; i++) backoff.nextDelayMs();
  backoff.reset();
  assert.ok(backoff.nextDelayMs() < 1000);
});

test("first visit asks for recent history; later connections ask from the position", () => {
  const stream = new demo.EnvelopeStream();
  assert.equal(stream.query(), "?since=0");
  stream.receive(notice("not_recovered", 0, "e1", "no_epoch"));
  stream.receive(envelope(1, "a"));
  assert.equal(stream.query(), "?since=1&epoch=e1");
});

test("messages come in order and duplicates are dropped by offset", () => {
  const stream = new demo.EnvelopeStream();
  stream.receive(notice("subscribed", 3));
  const kinds = [envelope(4, "four"), envelope(4, "four"), envelope(2, "old"), envelope(5, "five")].map(
    (text) => stream.receive(text).kind,
  );
  assert.deepEqual(kinds, ["message", "duplicate", "duplicate", "message"]);
  assert.deepEqual(stream.position, { epoch: "e1", offset: 5 });
});

test("not_recovered moves to the new epoch and its history follows", () => {
  const stream = new demo.EnvelopeStream();
  stream.receive(notice("subscribed", 7));
  const told = stream.receive(notice("not_recovered", 0, "e2", "epoch_changed"));
  assert.equal(told.notice.reason, "epoch_changed");
  const got = stream.receive(envelope(1, "after restart", "e2"));
  assert.deepEqual([got.kind, got.offset, got.data], ["message", 1, "after restart"]);
});

test("a gap, an unannounced epoch change or a non-envelope is an error that keeps the position", () => {
  for (const bad of [envelope(3, "skips 2"), envelope(2, "other epoch", "e9"), "not json", "[1]", '{"x":1}']) {
    const stream = new demo.EnvelopeStream();
    stream.receive(notice("subscribed", 0));
    stream.receive(envelope(1, "one"));
    assert.equal(stream.receive(bad).kind, "error", bad);
    assert.deepEqual(stream.position, { epoch: "e1", offset: 1 });
  }
});

test("heartbeats move the position; unknown notices are ignored", () => {
  const stream = new demo.EnvelopeStream();
  stream.receive(notice("heartbeat", 9));
  assert.equal(stream.receive(notice("shiny", 99)).kind, "ignored");
  assert.deepEqual(stream.position, { epoch: "e1", offset: 9 });
});

test("chat lines carry a name; a backend's plain text has none", () => {
  assert.deepEqual(demo.parseChatLine('{"name":"ann","text":"hi"}'), { name: "ann", text: "hi" });
  assert.deepEqual(demo.parseChatLine("plain"), { name: "", text: "plain" });
});

// --- the reconnecting socket -------------------------------------------------------------

class FakeClock {
  constructor() {
    this.nowMs = 0;
    this.timers = new Map();
    this.next = 1;
  }
  setTimeout(fn, ms) {
    const id = this.next++;
    this.timers.set(id, { fn, at: this.nowMs + ms });
    return id;
  }
  clearTimeout(id) {
    this.timers.delete(id);
  }
  advance(ms) {
    const until = this.nowMs + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.nowMs = due[1].at;
      due[1].fn();
    }
    this.nowMs = until;
  }
}

function harness(options) {
  const clock = new FakeClock();
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    open() {
      this.readyState = 1;
      this.onopen({});
    }
    send(data) {
      this.sent.push(data);
    }
    close(code, reason) {
      this.closedWith = [code, reason];
    }
    serverClose(code, reason = "") {
      this.readyState = 3;
      this.onclose({ code, reason });
    }
  }
  const states = [];
  const received = [];
  let count = 0;
  const socket = new demo.ReconnectingSocket(
    () => "ws://h/chat/lobby?n=" + count++,
    {
      WebSocket: FakeSocket,
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
      clearTimeout: (id) => clock.clearTimeout(id),
      now: () => clock.nowMs,
      random: () => 0.999,
    },
    { onState: (s) => states.push(s), onMessage: (d) => received.push(d) },
    options,
  );
  return { clock, sockets, states, received, socket };
}

test("an abnormal close reconnects after the backoff, showing reconnecting with the close code", () => {
  const h = harness();
  h.socket.start();
  h.sockets[0].open();
  h.sockets[0].serverClose(1006);
  const last = h.states.at(-1);
  assert.equal(last.state, "reconnecting");
  assert.ok(last.delayMs < 1000);
  assert.match(demo.describeState(last, h.clock.nowMs), /^reconnecting in 1 s \(code 1006\)$/);
  h.clock.advance(1000);
  assert.equal(h.sockets.length, 2);
  assert.equal(h.sockets[1].url, "ws://h/chat/lobby?n=1");
});

test("a server's 1000 or 1001 is reconnected too; only the user's close is final", () => {
  const h = harness();
  h.socket.start();
  h.sockets[0].open();
  h.sockets[0].serverClose(1001, "server shutting down");
  assert.equal(h.states.at(-1).state, "reconnecting");
  h.clock.advance(1000);
  h.sockets[1].open();
  h.socket.stop();
  assert.deepEqual(h.sockets[1].closedWith, [1000, "closed by the user"]);
  h.sockets[1].serverClose(1000); // the echo of our close, without a reason
  assert.equal(h.states.at(-1).state, "closed");
  assert.equal(demo.describeState(h.states.at(-1), 0), "closed (code 1000: closed by the user)");
  h.clock.advance(60000);
  assert.equal(h.sockets.length, 2);
});

test("failed attempts back off further; a stable connection resets the backoff", () => {
  const h = harness({ stableMs: 10000 });
  h.socket.start();
  for (let i = 0; i < 4; i++) {
    h.sockets.at(-1).serverClose(1006);
    h.clock.advance(h.states.at(-1).delayMs);
  }
  assert.ok(h.states.filter((s) => s.state === "reconnecting").at(-1).delayMs > 7000);
  h.sockets.at(-1).open();
  h.clock.advance(10000);
  h.sockets.at(-1).serverClose(1006);
  assert.ok(h.states.at(-1).delayMs < 1000);
});

test("the watchdog closes a silent connection, and traffic keeps it alive", () => {
  const h = harness({ silenceMs: 60000 });
  h.socket.start();
  h.sockets[0].open();
  h.clock.advance(50000);
  h.sockets[0].onmessage({ data: notice("heartbeat", 0) });
  h.clock.advance(50000);
  assert.equal(h.sockets[0].closedWith, null);
  h.clock.advance(10001);
  assert.deepEqual(h.sockets[0].closedWith, [demo.CLOSE_SILENT, "no traffic from the server"]);
  assert.deepEqual(h.received, [notice("heartbeat", 0)]);
});

test("events of a replaced socket are ignored", () => {
  const h = harness();
  h.socket.start();
  const first = h.sockets[0];
  first.serverClose(1006);
  h.clock.advance(1000);
  first.onmessage({ data: "stale" });
  assert.deepEqual(h.received, []);
});

test("the page's own close codes are ones a browser may send, with short reasons", () => {
  for (const code of [demo.CLOSE_SILENT, demo.CLOSE_BROKEN_STREAM]) assert.ok(code >= 3000 && code <= 4999);
  const h = harness();
  h.socket.start();
  h.sockets[0].open();
  h.socket.fail(demo.CLOSE_BROKEN_STREAM, "x".repeat(500));
  assert.ok(new TextEncoder().encode(h.sockets[0].closedWith[1]).length <= 123);
});
