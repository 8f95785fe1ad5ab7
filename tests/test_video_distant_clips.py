"""distant-clips: objects far apart in space and time; the demo network's receptive field; why the
baseline cannot use the marker."""

import pytest
import torch

from glore.data.distant_clips import DistantClips
from glore.data.distant_digits import box_gap
from glore.models.video import DistantClipsNet, distant_clips_net


@pytest.fixture(scope="module")
def clips():
    return DistantClips("train", num_samples=100, seed=1)


def test_objects_far_apart_in_space_and_time(clips):
    assert clips.clips.shape == (100, 1, 8, 36, 36) and clips.labels.shape == (100,)
    for boxes in clips.boxes.tolist():
        assert min(box_gap(boxes[i], boxes[j]) for i, j in ((0, 1), (0, 2), (1, 2))) >= clips.min_distance
    digits, marker = clips.frames[:, 0], clips.frames[:, 1]
    # nearest frames of the two flashes (each on_frames long) differ by at least min_gap
    gap = torch.maximum(marker - (digits + clips.on_frames - 1), digits - (marker + clips.on_frames - 1))
    assert int(gap.min()) >= clips.min_gap == 3
    assert set((digits < marker).tolist()) == {True, False}        # the marker comes first or last
    for i in range(20):                                           # only those frames are lit
        lit = clips.clips[i, 0].flatten(1).amax(1) > 0
        on = {int(digits[i]), int(digits[i]) + 1, int(marker[i]), int(marker[i]) + 1}
        assert set(torch.nonzero(lit).flatten().tolist()) == on


def test_the_marker_shows_the_targets_intensity(clips):
    for i in range(50):
        (t0, l0, s0), (t1, l1, s1), (tm, lm, sm) = clips.boxes[i].tolist()
        td, tmk = clips.frames[i].tolist()
        target = clips.clips[i, 0, td, t0:t0 + s0, l0:l0 + s0].max()
        other = clips.clips[i, 0, td, t1:t1 + s1, l1:l1 + s1].max()
        marker = clips.clips[i, 0, tmk, tm:tm + sm, lm:lm + sm].max()
        assert float(marker) == pytest.approx(float(target)) and float(target) != pytest.approx(float(other))
        assert int(clips.labels[i]) == int(clips.digit_classes[i, 0])


def test_the_demo_clips_of_6_frames_keep_the_gap():
    # the demo's budget (glore.demo.VIDEO_DEFAULTS): 6 frames, the fewest for two 2-frame flashes 3 apart;
    # the flashes are then at frames 0-1 and 4-5, the marker first or last
    six = DistantClips("val", num_samples=64, num_frames=6, seed=2)
    assert six.clips.shape == (64, 1, 6, 36, 36)
    assert {tuple(f) for f in six.frames.tolist()} == {(0, 4), (4, 0)}
    lit = six.clips[:, 0].flatten(2).amax(2) > 0                    # (N, T): lit frames
    assert not lit[:, 2:4].any() and lit[:, [0, 1, 4, 5]].all()


def test_deterministic_and_validated():
    a, b = DistantClips("val", num_samples=8, seed=3), DistantClips("val", num_samples=8, seed=3)
    assert torch.equal(a.clips, b.clips) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.clips, DistantClips("val", num_samples=8, seed=4).clips)
    with pytest.raises(ValueError, match="num_frames=5 is too short.*need at least 6"):
        DistantClips(num_samples=2, num_frames=5)
    with pytest.raises(ValueError, match="canvas=20 is too small"):
        DistantClips(num_samples=2, canvas=20)


def test_receptive_field_is_3_frames_by_13_pixels():
    torch.manual_seed(0)
    net = distant_clips_net(width=8).eval()
    x = torch.rand(1, 1, 8, 36, 36, requires_grad=True)
    features = net.stem(x)
    assert features.shape[2:] == (4, 9, 9)
    features[0, :, 2, 4, 4].sum().backward()
    support = torch.nonzero(x.grad[0, 0].abs() > 0)
    extent = (support.max(0).values - support.min(0).values + 1).tolist()
    assert tuple(extent) == DistantClipsNet.receptive_field == (3, 13, 13)
    # the demo's clips (6 frames, width 32): 3 x 9 x 9 stem outputs, each seeing 3 frames x 13 x 13
    net = distant_clips_net(width=32).eval()
    x = torch.rand(1, 1, 6, 36, 36, requires_grad=True)
    features = net.stem(x)
    assert features.shape[1:] == (32, 3, 9, 9)
    features[0, :, 1, 4, 4].sum().backward()
    support = torch.nonzero(x.grad[0, 0].abs() > 0)
    extent = (support.max(0).values - support.min(0).values + 1).tolist()
    assert tuple(extent) == (3, 13, 13) and support[:, 0].min() == 1 and support[:, 0].max() == 3


def _randomize(net, seed=0):
    """Trained-looking BN statistics and affine terms; every unit away from its identity start."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("running_mean") or name.endswith(".bias"):
                t.copy_(0.05 * torch.randn(t.shape, generator=g))
            elif name.endswith(".weight") and t.dim() == 1:     # BN / LN scales, the unit's zero one too
                t.copy_(0.8 + 0.4 * torch.rand(t.shape, generator=g))
    return net.eval()


def _digit(clips, i):
    (t, l, size), frame = clips.boxes[i, 0].tolist(), int(clips.frames[i, 0])
    return clips.clips[i, 0, frame, t:t + size, l:l + size]


@pytest.mark.parametrize("frames, width", [(8, 8), (6, 32)])        # (6, 32): the demo's clips and net
@pytest.mark.parametrize("block, additive", [(None, True), ("glore", False)])
def test_the_baseline_adds_up_a_marker_term_that_ignores_the_digits(clips, block, additive, frames, width):
    """The baseline's pooled features average windows that each hold pixels of at most one object, so
    adding the marker changes its logits by the same amount whatever the digits are: the marker cannot
    pick one of them. With a GloRe unit (weights away from the identity) the change depends on them."""
    # float64: a marker moves a few of the 324 pooled positions, its effect on the logits is small
    net = _randomize(distant_clips_net(block=block, width=width)).double()
    with torch.no_grad():
        for p in net.block.parameters():                  # a unit far from its identity start
            p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    marker = torch.zeros(1, frames, 36, 36, dtype=torch.float64)
    marker[0, frames - 2:frames, 28:32, 28:32] = 0.45    # the last 2 frames, bottom right
    pairs = []
    for (a, b), frame, places in (((0, 1), 0, ((0, 0), (0, 20))), ((2, 3), frames - 6, ((20, 0), (3, 12)))):
        digits = torch.zeros(1, frames, 36, 36, dtype=torch.float64)
        for i, (t, l) in zip((a, b), places):            # >= 3 frames and >= 13 pixels from the marker
            digits[0, frame:frame + 2, t:t + 8, l:l + 8] = _digit(clips, i)
        pairs.append((digits, digits + marker))
    with torch.no_grad():
        deltas = [net(m[None]) - net(d[None]) for d, m in pairs]
        assert not torch.allclose(net(pairs[0][0][None]), net(pairs[1][0][None]))
    scale = float(deltas[0].abs().max())
    assert scale > 1e-7                                   # the marker does move the logits
    differ = float((deltas[0] - deltas[1]).abs().max()) / scale
    if additive:                                          # equal up to float64 rounding
        assert differ < 1e-9
    else:                                                 # small at this initialisation, but there
        assert differ > 1e-6


def test_a_split_is_made_once_per_process_and_each_dataset_owns_its_tensors():
    from glore.data.distant_clips import _generate

    _generate.cache_clear()
    a = DistantClips("val", num_samples=12, num_frames=6, seed=5)
    b = DistantClips("val", num_samples=12, num_frames=6, seed=5)
    assert _generate.cache_info().hits == 1 and torch.equal(a.clips, b.clips)
    a.clips.zero_()                                    # changing one dataset leaves the other and the cache
    assert b.clips.abs().sum() > 0 and DistantClips("val", num_samples=12, num_frames=6, seed=5).clips.abs().sum() > 0
