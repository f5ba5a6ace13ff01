"""A Binance-spot-compatible exchange simulator (REST + market streams + WebSocket API) for the demo and tests.

`server.Simulator` is the entry point; `engine.MatchingEngine` is the pure matching core; `python -m
exchange.simulator` runs it standalone. Nothing here imports ccxt: the simulator is tested through the real ccxt
client (exchange/gateway.py), as the rest of the system uses it.
"""
