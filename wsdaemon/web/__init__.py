"""twisted.web integration: the WebSocket Resource and the site tree."""
