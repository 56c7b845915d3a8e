"""OpenD simulator: a TCP server speaking the OpenD protocol over a deterministic market."""
