// wsdaemon echo demo: connect, send, show each echo and its round-trip time.
// No dependencies. The endpoint is /echo unless the page URL says ?endpoint=/path.
"use strict";

(function () {
  const MAX_LOG_ENTRIES = 200;
  // Arrow shown on screen, words read by screen readers.
  const DIRECTIONS = { sent: ["→", "sent: "], received: ["←", "received: "] };
  const $ = (id) => document.getElementById(id);
  const statusEl = $("status");
  const endpointEl = $("endpoint");
  const form = $("send-form");
  const input = $("message");
  const sendButton = $("send");
  const reconnectButton = $("reconnect");
  const log = $("log");
  const rttSummary = $("rtt-summary");

  let socket = null;
  // An echo server answers in order, so each echo matches the oldest unanswered send.
  let pendingSends = [];
  let rttCount = 0;
  let rttTotal = 0;

  function endpointUrl() {
    const requested = new URLSearchParams(location.search).get("endpoint");
    // Only a path on this same host: never let the query string pick another server.
    const path = requested && requested.startsWith("/") ? requested : "/echo";
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + path;
  }

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
    const open = state === "connected";
    sendButton.disabled = !open;
    reconnectButton.hidden = open || state === "connecting";
  }

  function addLogEntry(kind, text, rttMs) {
    const item = document.createElement("li");
    item.className = kind;
    const direction = DIRECTIONS[kind];
    if (direction) {
      const arrow = document.createElement("span");
      arrow.setAttribute("aria-hidden", "true");
      arrow.textContent = direction[0];
      const spoken = document.createElement("span");
      spoken.className = "visually-hidden";
      spoken.textContent = direction[1];
      item.append(arrow, spoken);
    }
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.appendChild(body);
    if (rttMs !== undefined) {
      const rtt = document.createElement("span");
      rtt.className = "rtt";
      rtt.textContent = rttMs.toFixed(1) + " ms";
      item.dataset.rttMs = rttMs.toFixed(3);
      item.appendChild(rtt);
    }
    log.appendChild(item);
    while (log.children.length > MAX_LOG_ENTRIES) log.removeChild(log.firstElementChild);
    item.scrollIntoView({ block: "nearest" });
  }

  function describe(data) {
    if (typeof data === "string") return data;
    return "[binary, " + data.byteLength + " bytes]";
  }

  function onMessage(event) {
    const sentAt = pendingSends.shift();
    let rttMs;
    if (sentAt !== undefined) {
      rttMs = performance.now() - sentAt;
      rttCount += 1;
      rttTotal += rttMs;
      rttSummary.textContent = "average round trip " + (rttTotal / rttCount).toFixed(1) + " ms";
    }
    addLogEntry("received", describe(event.data), rttMs);
  }

  function onClose(event) {
    pendingSends = [];
    let text = "closed (code " + event.code + ")";
    if (event.reason) text += ": " + event.reason;
    setStatus("closed", text);
    addLogEntry("info", text);
  }

  function connect() {
    const url = endpointUrl();
    endpointEl.textContent = url;
    setStatus("connecting", "connecting…");
    try {
      socket = new WebSocket(url);
    } catch (err) {
      setStatus("error", "error: " + err.message);
      reconnectButton.hidden = false;
      return;
    }
    const ws = socket;
    ws.binaryType = "arraybuffer";
    // Events from a socket that a reconnect has replaced are ignored.
    const current = (handler) => (event) => { if (ws === socket) handler(event); };
    ws.addEventListener("open", current(() => {
      setStatus("connected", "connected");
      addLogEntry("info", "connected to " + url);
    }));
    ws.addEventListener("message", current(onMessage));
    ws.addEventListener("close", current(onClose));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const text = input.value;
    pendingSends.push(performance.now());
    socket.send(text);
    addLogEntry("sent", text);
    input.value = "";
    input.focus();
  });

  reconnectButton.addEventListener("click", () => {
    if (socket && socket.readyState !== WebSocket.CLOSED) socket.close(1000);
    connect();
  });

  connect();
})();
