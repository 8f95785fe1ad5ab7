"""Time to sample one 8x8 clip from a short and a long video: seeking vs decoding the whole file.

    python benchmarks/decode.py [--codec libx264] [--gop 60] [--repeats 7]

Writes two H.264 videos with PyAV (3 s and 30 s at 30 fps, 340x256, a key frame every ``--gop``
frames, B-frames on), then times ``glore.data.video.read_video_frames`` drawing one 8-frame,
stride-8 clip (``mode="train"``: a random start, the same sequence of starts for both videos), and,
for contrast, the former reader that decodes every frame and keeps the clip's. Interleaved timing
(``_common.time_interleaved``); the ratio long / short is that of the medians. Results go to
``results/benchmarks/decode.json``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

import _common as common
from glore.data import video as video_data


def write_video(path: Path, seconds: float, *, codec: str, gop: int, rate: int = 30, size=(256, 340)) -> int:
    h, w = size
    n = int(seconds * rate)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.gop_size = gop
        if codec == "libx264":
            stream.options = {"bf": "2", "preset": "veryfast"}
        for i in range(n):                               # a moving texture: real motion to encode
            image = np.roll(base, shift=(2 * i, 3 * i), axis=(0, 1))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return n


def decode_all(path: Path, clips_fn):
    decoded = video_data._decode_file(path)
    clips = clips_fn(len(decoded))
    return [np.stack([decoded[i].to_ndarray(format="rgb24") for i in clip]) for clip in clips]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--gop", type=int, default=60, help="frames between key frames (2 s at 30 fps)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    machine = common.setup(threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        paths, counts = {}, {}
        for name, seconds in (("3s", 3), ("30s", 30)):
            paths[name] = Path(tmp) / f"{name}.mp4"
            counts[name] = write_video(paths[name], seconds, codec=args.codec, gop=args.gop)
        cases = {}
        for name, path in paths.items():
            gen = torch.Generator().manual_seed(0)

            def clips_fn(n, gen=gen):
                return video_data.sample_clip_indices(n, 8, 8, mode="train", generator=gen)

            cases[f"seek {name}"] = lambda p=path, f=clips_fn: video_data.read_video_frames(p, f)
            cases[f"decode all {name}"] = lambda p=path, f=clips_fn: decode_all(p, f)
        before = common.load()
        times = common.time_interleaved(cases, repeats=args.repeats, warmup=1)
        after = common.load()
    rows = [{"case": k, "median ms": 1e3 * v["median"], "min ms": 1e3 * v["min"]} for k, v in times.items()]
    print(common.fmt_table(rows, ["case", "median ms", "min ms"]))
    ratio = {kind: times[f"{kind} 30s"]["median"] / times[f"{kind} 3s"]["median"] for kind in ("seek", "decode all")}
    print(f"ratio 30 s / 3 s: seek {ratio['seek']:.2f}, decode all {ratio['decode all']:.2f}; load {before} -> {after}")
    common.write_json("decode", {"machine": machine, "args": vars(args), "frames": counts, "load": [before, after],
                                 "times": times, "ratio": ratio})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
