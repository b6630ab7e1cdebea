// wsdaemon demo: an echo panel (round-trip times) and a chat panel (a broadcast endpoint with
// the JSON envelope, docs/recovery.md). No dependencies, no build step.
//
// The first half is pure logic (backoff, the envelope stream with its dedupe, close
// descriptions, the reconnecting socket with its clock and WebSocket passed in); Node's test
// runner loads this file as a module and tests it (tests/integration/node/demo.test.js). The
// second half wires it to the page and runs only in a browser.
"use strict";

(function (root) {
  // --- pure logic --------------------------------------------------------------------------

  // Exponential backoff with full jitter: the n-th delay is uniform in [0, min(cap, initial * 2^n)).
  // Full jitter spreads the pages a restart dropped together over the whole window.
  class Backoff {
    constructor({ initialMs = 1000, capMs = 30000, random = Math.random } = {}) {
      this.initialMs = initialMs;
      this.capMs = capMs;
      this.random = random;
      this.attempts = 0;
    }

    nextDelayMs() {
      const windowMs = Math.min(this.capMs, this.initialMs * 2 ** Math.min(this.attempts, 32));
      this.attempts += 1;
      return this.random() * windowMs;
    }

    reset() {
      this.attempts = 0;
    }
  }

  // What a close means to a person: "code 1006", "code 4000: bye".
  function describeClose(code, reason) {
    return "code " + code + (reason ? ": " + reason : "");
  }

  // A normal close our user asked for ends the session; anything else is worth a retry.
  function shouldReconnect(requested) {
    return !requested;
  }

  const NOTICES = ["subscribed", "recovered", "not_recovered", "heartbeat"];
  // The close codes the page sends when it gives up on a connection (a browser may send only
  // 1000 or 3000-4999, so not the protocol's own 1002).
  const CLOSE_SILENT = 4000;
  const CLOSE_BROKEN_STREAM = 4002;

  // The envelope stream of one channel (docs/recovery.md §5): the position (epoch, offset) of
  // the last message or notice, kept across reconnects, and what each incoming text means.
  class EnvelopeStream {
    constructor() {
      this.position = null;
    }

    // The query of the next connection: from the position, or the recent history on a first visit.
    query() {
      if (this.position === null) return "?since=0";
      return "?since=" + this.position.offset + "&epoch=" + encodeURIComponent(this.position.epoch);
    }

    // One text message -> {kind: "message", channel, epoch, offset, data} | {kind: "notice", notice}
    // | {kind: "duplicate"} | {kind: "ignored"} | {kind: "error", reason}. The position moves only
    // for messages and notices, so after an error the reconnect asks from the last good one.
    receive(text) {
      let value;
      try {
        value = JSON.parse(text);
      } catch (error) {
        return { kind: "error", reason: "not JSON" };
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        return { kind: "error", reason: "not a JSON object" };
      }
      if (typeof value.epoch !== "string" || !Number.isSafeInteger(value.offset) || value.offset < 0) {
        return { kind: "error", reason: "no epoch and offset" };
      }
      if ("type" in value) {
        if (!NOTICES.includes(value.type)) return { kind: "ignored" };
        this.position = { epoch: value.epoch, offset: value.offset };
        return { kind: "notice", notice: value };
      }
      const position = this.position;
      if (position !== null && value.epoch === position.epoch && value.offset <= position.offset) {
        return { kind: "duplicate" };
      }
      if (position !== null && (value.epoch !== position.epoch || value.offset !== position.offset + 1)) {
        return { kind: "error", reason: "message " + value.offset + " does not follow " + position.offset };
      }
      if (typeof value.data !== "string" && typeof value.b64 !== "string") {
        return { kind: "error", reason: "no data" };
      }
      this.position = { epoch: value.epoch, offset: value.offset };
      const data = typeof value.data === "string" ? value.data : "[binary, " + Math.floor(value.b64.length * 3 / 4) + " bytes]";
      return { kind: "message", channel: value.channel, epoch: value.epoch, offset: value.offset, data };
    }
  }

  // A chat line as the page sends it: JSON text {"name", "text"}. Anything else (a backend's plain
  // publish) is shown as it came, without a name.
  function parseChatLine(data) {
    try {
      const value = JSON.parse(data);
      if (value && typeof value.name === "string" && typeof value.text === "string") {
        return { name: value.name, text: value.text };
      }
    } catch (error) {
      // not JSON: a plain line
    }
    return { name: "", text: data };
  }

  // One WebSocket kept open: reconnects after every close the user did not ask for, with backoff;
  // a watchdog closes a connection on which the server has been silent for `silenceMs` (browsers
  // cannot see pings: the server's heartbeat notices are the traffic it waits for).
  //
  // deps: {WebSocket, setTimeout, clearTimeout, now, random}; events: onState({state, ...}),
  // onOpen(), onMessage(data), onClose(code, reason).
  class ReconnectingSocket {
    constructor(urlFor, deps, events, { stableMs = 10000, silenceMs = 0 } = {}) {
      this.urlFor = urlFor;
      this.deps = deps;
      this.events = events;
      this.stableMs = stableMs;
      this.silenceMs = silenceMs;
      this.backoff = new Backoff({ random: deps.random || Math.random });
      this.socket = null;
      this.requested = false;
      this.retryTimer = null;
      this.watchdog = null;
      this.openedAt = 0;
    }

    start() {
      this.requested = false;
      this._cancelRetry();
      this._connect();
    }

    // A close the user asked for: 1000, and no reconnect.
    stop() {
      this.requested = true;
      this._cancelRetry();
      if (this.socket !== null) {
        this.socket.close(1000, "closed by the user");
      } else {
        this._state({ state: "closed", code: 1000, reason: "closed by the user" });
      }
    }

    send(data) {
      if (this.socket === null || this.socket.readyState !== 1) return false;
      this.socket.send(data);
      return true;
    }

    // Close this connection (a protocol error, a dead link) and let the reconnect follow. A page may
    // only send 1000 or 3000-4999, with a reason of at most 123 bytes: anything else throws.
    fail(code, reason) {
      if (this.socket !== null) this.socket.close(code, reason.slice(0, 40));
    }

    _connect() {
      this.retryTimer = null;
      this._state({ state: "connecting" });
      let socket;
      try {
        socket = new this.deps.WebSocket(this.urlFor());
      } catch (error) {
        this._closed(1006, String(error.message || error));
        return;
      }
      this.socket = socket;
      socket.binaryType = "arraybuffer";
      const mine = (handler) => (event) => { if (this.socket === socket) handler(event); };
      socket.onopen = mine(() => {
        this.openedAt = this.deps.now();
        this._alive();
        this._state({ state: "open" });
        if (this.events.onOpen) this.events.onOpen();
      });
      socket.onmessage = mine((event) => {
        this._alive();
        this.events.onMessage(event.data);
      });
      socket.onclose = mine((event) => {
        this.socket = null;
        // The server echoes our close code but need not echo its reason: say whose close it was.
        this._closed(event.code, event.reason || (this.requested ? "closed by the user" : ""));
      });
      // An error event is always followed by a close event, which decides what happens next.
      socket.onerror = () => {};
    }

    _closed(code, reason) {
      this._stopWatchdog();
      if (this.openedAt && this.deps.now() - this.openedAt >= this.stableMs) this.backoff.reset();
      this.openedAt = 0;
      if (this.events.onClose) this.events.onClose(code, reason);
      if (!shouldReconnect(this.requested)) {
        this._state({ state: "closed", code, reason });
        return;
      }
      const delayMs = this.backoff.nextDelayMs();
      this._state({ state: "reconnecting", delayMs, code, reason, at: this.deps.now() + delayMs });
      this.retryTimer = this.deps.setTimeout(() => this._connect(), delayMs);
    }

    _alive() {
      if (!this.silenceMs) return;
      this._stopWatchdog();
      this.watchdog = this.deps.setTimeout(() => {
        this.watchdog = null;
        this.fail(CLOSE_SILENT, "no traffic from the server");
      }, this.silenceMs);
    }

    _stopWatchdog() {
      if (this.watchdog !== null) this.deps.clearTimeout(this.watchdog);
      this.watchdog = null;
    }

    _cancelRetry() {
      if (this.retryTimer !== null) this.deps.clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }

    _state(state) {
      if (this.events.onState) this.events.onState(state);
    }
  }

  // How a state reads on the page; `nowMs` counts down a pending reconnect.
  function describeState(state, nowMs) {
    switch (state.state) {
      case "connecting":
        return "connecting…";
      case "open":
        return "open";
      case "reconnecting": {
        const seconds = Math.max(0, Math.ceil((state.at - nowMs) / 1000));
        return "reconnecting in " + seconds + " s (" + describeClose(state.code, state.reason) + ")";
      }
      default:
        return "closed (" + describeClose(state.code, state.reason) + ")";
    }
  }

  const logic = { CLOSE_BROKEN_STREAM, CLOSE_SILENT, Backoff, EnvelopeStream, ReconnectingSocket, describeClose, describeState, parseChatLine, shouldReconnect };
  if (typeof module !== "undefined" && module.exports) module.exports = logic;
  if (typeof document === "undefined") return;

  // --- the page ------------------------------------------------------------------------------

  const MAX_ENTRIES = 200;
  // The server sends a heartbeat notice on a quiet channel about every ping interval (20 s by
  // default); three of them missed means the link is dead (docs/recovery.md §6).
  const SILENCE_MS = 3 * 20000;
  const $ = (id) => document.getElementById(id);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const browserDeps = {
    WebSocket: root.WebSocket,
    setTimeout: (fn, ms) => root.setTimeout(fn, ms),
    clearTimeout: (id) => root.clearTimeout(id),
    now: () => Date.now(),
    random: Math.random,
  };

  // Only a path on this same host: never let the query string pick another server.
  function pathParam(name, fallback) {
    const requested = new URLSearchParams(location.search).get(name);
    return requested && requested.startsWith("/") && !requested.startsWith("//") ? requested : fallback;
  }

  function entry(list, className, parts) {
    const item = document.createElement("li");
    item.className = className;
    for (const [cls, text] of parts) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      item.appendChild(span);
    }
    list.appendChild(item);
    while (list.children.length > MAX_ENTRIES) list.removeChild(list.firstElementChild);
    list.scrollTop = list.scrollHeight;
    return item;
  }

  // The state line and Connect/Disconnect button of one panel, with a countdown while reconnecting.
  function statusView(prefix, socket) {
    const statusEl = $(prefix + "-status");
    const toggle = $(prefix + "-toggle");
    let current = { state: "connecting" };
    let ticker = null;
    const render = () => {
      statusEl.dataset.state = current.state;
      statusEl.textContent = describeState(current, Date.now());
      toggle.textContent = current.state === "closed" ? "Connect" : "Disconnect";
    };
    toggle.addEventListener("click", () => (current.state === "closed" ? socket().start() : socket().stop()));
    return (state) => {
      current = state;
      if (ticker !== null) root.clearInterval(ticker);
      ticker = state.state === "reconnecting" ? root.setInterval(render, 250) : null;
      render();
    };
  }

  function echoPanel() {
    const path = pathParam("endpoint", "/echo");
    const url = scheme + "//" + location.host + path;
    const log = $("echo-log");
    const send = $("echo-send");
    const summary = $("echo-rtt");
    // An echo server answers in order, so each echo matches the oldest unanswered send.
    let pending = [];
    let count = 0;
    let total = 0;
    $("echo-endpoint").textContent = url;
    const state = statusView("echo", () => socket);
    const socket = new ReconnectingSocket(() => url, browserDeps, {
      onState: (s) => {
        send.disabled = s.state !== "open";
        state(s);
      },
      onOpen: () => entry(log, "info", [["text", "connected to " + url]]),
      onMessage: (data) => {
        const sentAt = pending.shift();
        const text = typeof data === "string" ? data : "[binary, " + data.byteLength + " bytes]";
        const item = entry(log, "received", [["dir", "←"], ["text", text]]);
        if (sentAt !== undefined) {
          const rttMs = performance.now() - sentAt;
          count += 1;
          total += rttMs;
          item.dataset.rttMs = rttMs.toFixed(3);
          const rtt = document.createElement("span");
          rtt.className = "rtt";
          rtt.textContent = rttMs.toFixed(1) + " ms";
          item.appendChild(rtt);
          summary.textContent = "average " + (total / count).toFixed(1) + " ms";
        }
      },
      onClose: (code, reason) => {
        pending = [];
        entry(log, "info", [["text", "closed (" + describeClose(code, reason) + ")"]]);
      },
    });
    $("echo-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("echo-message");
      const sentAt = performance.now();
      if (!socket.send(input.value)) return;
      pending.push(sentAt);
      entry(log, "sent", [["dir", "→"], ["text", input.value]]);
      input.value = "";
      input.focus();
    });
    socket.start();
  }

  function chatPanel() {
    const path = pathParam("chat", "/chat/lobby");
    const base = scheme + "//" + location.host + path;
    const list = $("chat-log");
    const send = $("chat-send");
    const nameInput = $("chat-name");
    const stream = new EnvelopeStream();
    $("chat-endpoint").textContent = base;
    nameInput.value = "guest-" + Math.floor(Math.random() * 9000 + 1000);
    const state = statusView("chat", () => socket);
    const socket = new ReconnectingSocket(() => base + stream.query(), browserDeps, {
      onState: (s) => {
        send.disabled = s.state !== "open";
        state(s);
      },
      onMessage: (data) => {
        if (typeof data !== "string") {
          socket.fail(CLOSE_BROKEN_STREAM, "binary message on an envelope endpoint");
          return;
        }
        const got = stream.receive(data);
        if (got.kind === "message") {
          const line = parseChatLine(got.data);
          const item = entry(list, "message", [["name", line.name || "—"], ["text", line.text]]);
          item.dataset.offset = String(got.offset);
          item.dataset.epoch = got.epoch;
        } else if (got.kind === "notice" && got.notice.type === "not_recovered" && got.notice.reason !== "no_epoch") {
          entry(list, "info missed", [["text", "Some messages could not be recovered (" + got.notice.reason +
            "); showing the channel's recent history."]]);
        } else if (got.kind === "notice" && got.notice.type === "recovered") {
          entry(list, "info recovered", [["text", "Reconnected; nothing was missed."]]);
        } else if (got.kind === "error") {
          socket.fail(CLOSE_BROKEN_STREAM, got.reason);
        }
      },
    }, { silenceMs: SILENCE_MS });
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("chat-message");
      const name = nameInput.value.trim() || "guest";
      if (!socket.send(JSON.stringify({ name, text: input.value }))) return;
      input.value = "";
      input.focus();
    });
    socket.start();
  }

  echoPanel();
  chatPanel();
})(typeof globalThis !== "undefined" ? globalThis : this);
