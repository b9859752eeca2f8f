"""Read back what W&B wrote in offline mode: the run's `.wandb` file, parsed with W&B's own
protobuf `Record`. The file is a LevelDB-style log (7-byte file header `:W&B` + magic + version,
then 32 KiB blocks of records, each `crc32(4) length(2, little-endian) type(1)` + data, a record
split over blocks as FIRST/MIDDLE/LAST pieces); the wandb package ships no Python reader now."""
import glob
import os
import struct

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _records(data):
    pos, piece = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the block's tail is padding
            pos += left
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        piece = chunk if kind in (FULL, FIRST) else piece + chunk
        if kind in (FULL, LAST):
            yield piece


def read_offline_run(wandb_dir):
    """({key: [values logged, in order]}, {summary key: value}, project) of the one offline run."""
    import json
    from wandb.proto import wandb_internal_pb2 as pb
    paths = glob.glob(os.path.join(wandb_dir, "wandb", "offline-run-*", "run-*.wandb"))
    assert len(paths) == 1, paths
    with open(paths[0], "rb") as f:
        data = f.read()
    history, summary, project = {}, {}, None
    for raw in _records(data):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            project = record.run.project
        elif kind == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                history.setdefault(key, []).append(json.loads(item.value_json))
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return history, summary, project
