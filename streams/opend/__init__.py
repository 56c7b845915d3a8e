"""Futu OpenD protocol: framing, security codes, errors, an asyncio client."""
