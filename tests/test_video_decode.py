"""Clip decoding by seeking: the right frames from H.264 with B-frames and long GOPs, bounded work."""

import av
import numpy as np
import pytest

from glore.data import video as video_data
from glore.data.video import read_video_frames, sample_clip_indices

BITS = 8   # frame i shows its index in binary: 8 vertical bands of 8 pixels, white for a 1 bit


def write_video(path, num_frames: int, *, codec="libx264", gop=30, rate=30, h=32, w=64):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.gop_size = gop
        if codec == "libx264":
            stream.options = {"crf": "1", "bf": "2"}       # B-frames: decode order != display order
        for i in range(num_frames):
            image = np.zeros((h, w, 3), np.uint8)
            for bit in range(BITS):
                if (i >> bit) & 1:
                    image[:, 8 * bit:8 * bit + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def indices(frames) -> list[int]:
    bands = frames.float().mean(dim=(1, 3)).view(frames.shape[0], BITS, -1).mean(-1)   # (T, BITS)
    return [sum(1 << b for b in range(BITS) if float(row[b]) > 127) for row in bands]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode")
    out = {}
    for name, kw in (("h264.mp4", {}), ("h264_gop250.mp4", {"gop": 250}), ("mpeg4.avi", {"codec": "mpeg4"}),
                     ("vp8.webm", {"codec": "libvpx"})):
        write_video(root / name, 240, **kw)
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", ["h264.mp4", "h264_gop250.mp4", "mpeg4.avi", "vp8.webm"])
@pytest.mark.parametrize("mode", ["center", "multi", "train"])
def test_seeking_returns_the_sampled_frames(videos, name, mode):
    def clips_fn(n):
        assert n == 240
        return sample_clip_indices(n, 8, 8, mode=mode, num_clips=4)

    clips = read_video_frames(videos[name], clips_fn)
    wanted = clips_fn(240)
    if mode != "train":                                  # train draws a random start each call
        assert [indices(c) for c in clips] == wanted
    for clip in clips:
        got = indices(clip)
        assert got == list(range(got[0], got[0] + 64, 8))


def test_only_the_frames_near_the_clip_are_decoded(videos, monkeypatch):
    decoded = []
    original = video_data._seek_frames

    class Counting:                                      # the container, counting what it decodes
        def __init__(self, container):
            self.container = container

        def seek(self, *args, **kw):
            return self.container.seek(*args, **kw)

        def decode(self, *args, **kw):
            for frame in self.container.decode(*args, **kw):
                decoded.append(frame.pts)
                yield frame

    def counting(container, stream, wanted):
        return original(Counting(container), stream, wanted)

    monkeypatch.setattr(video_data, "_seek_frames", counting)
    # a clip late in the video: only its group of pictures and the clip's span are decoded
    clips = read_video_frames(videos["h264.mp4"], lambda n: [[180 + 8 * i for i in range(8)]])
    assert indices(clips[0]) == [180 + 8 * i for i in range(8)]
    assert 57 <= len(decoded) <= 57 + 30 + 4              # span + one GOP (+ B-frame reordering)


def test_header_that_overstates_the_length_falls_back_to_decoding(videos, monkeypatch):
    monkeypatch.setattr(video_data, "_header_frame_count", lambda container, stream: 1000)
    seen = []

    def clips_fn(n):
        seen.append(n)
        return sample_clip_indices(n, 8, 8, mode="center")

    clips = read_video_frames(videos["h264.mp4"], clips_fn)
    assert seen == [1000, 240]                           # the clip at ~frame 470 is past the end
    assert indices(clips[0]) == sample_clip_indices(240, 8, 8, mode="center")[0]
