"""The laptop side of ebedge: OpenSSH transport, detached runs on boards, collection, fleet sweeps."""
