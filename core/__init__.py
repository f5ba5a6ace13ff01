"""Pure domain logic of IndexMaker: no Ray, no sockets, no Redis. Imports nothing else of the project."""
from core.money import install_decimal_context

install_decimal_context()
