"""Protobuf modules generated from proto/ (regenerate: python -m streams.pb.generate)."""
