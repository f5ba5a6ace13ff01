"""FIX/JSON over websockets: messages, signatures, sessions, the gateway server, its plugins and a client (see
protocol/README.md). Imports core only, never actors/ or the rest."""
