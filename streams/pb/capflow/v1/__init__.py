"""Generated protobuf modules (python -m streams.pb.generate)."""
