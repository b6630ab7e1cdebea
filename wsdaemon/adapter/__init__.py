"""The thin Twisted adapter: the only code that touches transports and the reactor for WebSocket traffic."""
