"""glore predict: checkpoints written through the engine, inputs written as PNGs, outputs compared
with the network run on the same tensors; and the class names every checkpoint stores."""

import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from glore import demo
from glore.checkpoint import checkpoint_class_names, read_checkpoint
from glore.cli import main
from glore.engine import runner
from glore.engine.config import apply_overrides, load_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory):
    """The demo network (+ GloRe, width 8) after a few steps at a high rate, so its outputs vary."""
    run = tmp_path_factory.mktemp("demo_run")
    cfg = demo.variant_config("image", "glore", run, progress=False, epochs=1, train_samples=128, val_samples=32)
    runner.train(apply_overrides(cfg, ["data.batch_size=32", "model.width=8", "optim.lr=0.03",
                                       "trainer.enable_progress_bar=false"]))
    return run / "checkpoints" / "last.ckpt"


def _write_canvases(images: torch.Tensor, folder) -> list:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = os.path.join(folder, f"canvas_{i}.png")
        Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def test_checkpoints_store_the_class_names(demo_checkpoint):
    checkpoint = read_checkpoint(demo_checkpoint)
    assert checkpoint["class_names"] == [str(d) for d in range(10)]
    assert checkpoint["hyper_parameters"]["cfg"]["model"]["num_classes"] == 10
    assert checkpoint_class_names({}, 3) == ["0", "1", "2"]                 # an older checkpoint
    assert checkpoint_class_names({"class_names": ["bg", None, "cat"]}) == ["bg", "1", "cat"]


def test_predict_on_demo_canvases_agrees_with_the_network(demo_checkpoint, tmp_path):
    from glore.data.distant_digits import DistantDigits

    images = DistantDigits("val", num_samples=7, seed=0).images
    _write_canvases(images, tmp_path / "canvases")
    out = tmp_path / "out"
    # the folder, batches of 3 (a last batch of 1), the ten classes ranked
    assert main(["predict", "--checkpoint", str(demo_checkpoint), str(tmp_path / "canvases"),
                 "--output-dir", str(out), "--batch-size", "3", "--topk", "10", "--device", "cpu"]) == 0
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [os.path.basename(r["file"]) for r in rows] == [f"canvas_{i}.png" for i in range(7)]
    assert list(rows[0])[:5] == ["file", "class", "score", "top2_class", "top2_score"]
    network, _ = runner.load_model(str(demo_checkpoint))
    with torch.no_grad():
        probs = torch.softmax(network((images * 255).round() / 255), dim=1)   # the PNGs' 8-bit values
    for row, expected in zip(rows, probs):
        got = torch.zeros(10)
        got[int(row["class"])] = float(row["score"])
        for rank in range(2, 11):
            got[int(row[f"top{rank}_class"])] = float(row[f"top{rank}_score"])
        torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)
    assert len({r["class"] for r in rows}) > 1 or len({r["score"] for r in rows}) > 1
    # the same files again: refused without --overwrite, the earlier file unchanged
    before = (out / "predictions.csv").read_bytes()
    assert main(["predict", "--checkpoint", str(demo_checkpoint), str(tmp_path / "canvases"),
                 "--output-dir", str(out)]) == 2
    assert (out / "predictions.csv").read_bytes() == before


def test_predict_refuses_missing_inputs_in_one_line(demo_checkpoint, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(demo_checkpoint), str(tmp_path / "nothing.png"),
                 "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glore predict: error: input not found") and "\n" not in err
    (tmp_path / "empty").mkdir()
    assert main(["predict", "--checkpoint", str(demo_checkpoint), str(tmp_path / "empty"),
                 "--output-dir", str(tmp_path / "out")]) == 2
    assert "holds no images" in capsys.readouterr().err


def test_segmentation_predictions_are_the_segmenter_argmax(tmp_path):
    from glore.data.seg_digits import SegDigits

    cfg = load_config(os.path.join(CONFIGS, "segmentation", "seg_digits_glore.yaml"),
                      ["data.train_samples=16", "data.val_samples=4", "data.batch_size=8", "trainer.max_epochs=1",
                       "model.channels=16", "model.aux_channels=8", "model.head_kwargs.mid=8",
                       f"output_dir={tmp_path / 'run'}", "trainer.enable_progress_bar=false"])
    runner.train(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(checkpoint)["class_names"] == ["background", "match", "other"]
    images = torch.stack([SegDigits("val", num_samples=3, canvas=64, num_digits=3, digit_size=16)[i][0]
                          for i in range(3)])
    paths = _write_canvases(images, tmp_path / "canvases")
    assert main(["predict", "--checkpoint", str(checkpoint), *paths, "--output-dir", str(tmp_path / "out")]) == 0
    network, _ = runner.load_model(str(checkpoint))
    with torch.no_grad():
        expected = network.predict((images * 255).round() / 255).argmax(1)
    for i in range(3):
        labels = np.asarray(Image.open(tmp_path / "out" / f"canvas_{i}_labels.png"))
        assert labels.shape == (64, 64) and (labels == expected[i].numpy()).all()
        colour = np.asarray(Image.open(tmp_path / "out" / f"canvas_{i}_colour.png"))
        assert colour.shape == (64, 64, 3)


def test_detection_predictions_are_coco_results_and_drawn(tmp_path, capsys):
    from glore.data.det_digits import DetDigits

    digits = dict(canvas=64, num_digits=2, digit_size=12, key_size=8, min_distance=16)
    cfg = load_config(os.path.join(CONFIGS, "detection", "det_digits_baseline.yaml"), [
        "model.min_size=64", "model.max_size=64", "model.fpn_channels=16", "model.box_head_channels=32",
        "model.box_score_thresh=0.0", "model.rpn_post_nms_top_n_test=20", "model.anchor_sizes=[16,32]",
        "data.batch_size=2", "data.val_batch_size=2", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
        "trainer.check_val_every_n_epoch=1", "data.train_samples=2", "data.val_samples=2",
        f"data.options={json.dumps(digits)}", f"output_dir={tmp_path / 'run'}", "trainer.enable_progress_bar=false"])
    runner.train(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(checkpoint)["class_names"] == ["__background__", "match", "other"]
    images = torch.stack([DetDigits("val", num_samples=2, **digits)[i][0][:1] for i in range(2)])
    _write_canvases(images, tmp_path / "canvases")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), str(tmp_path / "canvases"), "--output-dir", str(out),
                 "--score-threshold", "0"]) == 0
    results = json.loads((out / "detections.json").read_text())
    network, _ = runner.load_model(str(checkpoint))
    with torch.no_grad():
        expected = network([(image.expand(3, -1, -1) * 255).round() / 255 for image in images])
    assert len(results) == sum(len(e["boxes"]) for e in expected) > 0
    first = [r for r in results if r["image_id"] == 1]
    assert os.path.basename(first[0]["file"]) == "canvas_0.png"
    torch.testing.assert_close(torch.tensor([r["score"] for r in first]), expected[0]["scores"], atol=1e-5, rtol=0)
    assert {r["category_name"] for r in results} <= {"match", "other"}
    drawn = np.asarray(Image.open(out / "canvases" / "canvas_0_detections.png"))
    assert drawn.shape == (64, 64, 3) and (drawn[..., 0] != drawn[..., 1]).any()   # red boxes on grey
    # the same checkpoint does not export (docs/inference.md): one line with the reason, exit 2
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "pt2", "--output", str(tmp_path / "d.pt2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot export the detector" in err and "batched_nms" in err
    assert not (tmp_path / "d.pt2").exists()


def test_inputs_are_read_as_the_runs_evaluation_reads_them(tmp_path):
    import av

    from glore.data.imagefolder import build_transform, load_rgb
    from glore.engine.predict import _ClassWriter, find_inputs, input_reader

    rgb = (np.arange(40 * 60 * 3) % 251).astype(np.uint8).reshape(40, 60, 3)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    cfg = {"task": "classification", "model": {}, "data": {"name": "imagefolder", "image_size": 32, "resize_size": 36}}
    expected = build_transform(train=False, image_size=32, resize_size=36)(load_rgb(str(tmp_path / "photo.png")))
    torch.testing.assert_close(input_reader(cfg)(tmp_path / "photo.png"), expected)

    video = tmp_path / "clips" / "a.mp4"
    video.parent.mkdir()
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for t in range(20):
            frame = np.full((32, 48, 3), 10 * t, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cfg = {"task": "video", "model": {}, "data": {"name": "kinetics", "num_frames": 4, "stride": 2, "crop": 24,
                                                  "short_side": 28, "num_clips": 3, "num_crops": 2}}
    assert [name for _, name in find_inputs([tmp_path / "clips"], videos=True)] == ["clips/a"]
    views = input_reader(cfg)(video)
    assert views.shape == (6, 3, 4, 24, 24)                  # 3 clips x 2 crops
    # a video's scores are the mean softmax over its views
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 24 * 24, 4))
    writer = _ClassWriter(tmp_path / "out", ["a", "b", "c", "d"], cfg, topk=4, score_threshold=0.5)
    writer.run(network, [(video, "clips/a")], [views], torch.device("cpu"))
    mean = torch.softmax(network(views), dim=1).mean(0)
    assert writer.rows[0][1] == "abcd"[int(mean.argmax())]
    assert float(writer.rows[0][2]) == pytest.approx(float(mean.max()), abs=1e-6)


def test_folder_layouts_name_their_classes(tmp_path):
    """The names a checkpoint stores come from the data: CUB's classes.txt (else its image folders),
    a COCO file's categories at their ids."""
    from glore.data.coco import CocoDetectionSet
    from glore.data.det_digits import DetDigits, write_coco_tree
    from glore.data.imagefolder import CUB200Dataset

    cub = tmp_path / "cub"
    for i, cls in enumerate(["001.Albatross", "002.Auklet"], 1):
        (cub / "images" / cls).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(cub / "images" / cls / f"img{i}.jpg")
    (cub / "images.txt").write_text("1 001.Albatross/img1.jpg\n2 002.Auklet/img2.jpg\n")
    (cub / "image_class_labels.txt").write_text("1 1\n2 2\n")
    (cub / "train_test_split.txt").write_text("1 1\n2 1\n")
    assert CUB200Dataset(str(cub), "train").classes == ["001.Albatross", "002.Auklet"]   # the folders
    (cub / "classes.txt").write_text("2 002.Auklet_renamed\n1 001.Albatross_renamed\n")
    assert CUB200Dataset(str(cub), "train").classes == ["001.Albatross_renamed", "002.Auklet_renamed"]

    images, annotations = write_coco_tree(DetDigits("val", num_samples=2, canvas=64, digit_size=12, key_size=8,
                                                    min_distance=16, num_digits=2), tmp_path / "coco")
    assert CocoDetectionSet(images, annotations).class_names == ["__background__", "match", "other"]


def test_mask_rcnn_detections_carry_masks_and_are_drawn(tmp_path):
    from glore.engine.predict import _DetWriter
    from glore.models.detection import create_detector

    torch.manual_seed(0)
    network = create_detector("maskrcnn", "resnet18", num_classes=3, returned_layers=(1,), anchor_sizes=(16, 32),
                              fpn_channels=16, box_head_channels=32, mask_head_channels=8, min_size=64, max_size=64,
                              box_score_thresh=0.0, rpn_post_nms_top_n_test=20).eval()
    image = torch.rand(3, 64, 64)
    writer = _DetWriter(tmp_path, ["__background__", "match", "other"], {}, topk=1, score_threshold=0.0)
    with torch.no_grad():
        writer.run(network, [(tmp_path / "a.png", "a")], [image], torch.device("cpu"))
    written = writer.close()
    results = json.loads((tmp_path / "detections.json").read_text())
    assert results and all("counts" in r["segmentation"] for r in results)
    drawn = np.asarray(Image.open(tmp_path / "a_detections.png"))
    assert written[1] == tmp_path / "a_detections.png" and drawn.shape == (64, 64, 3)
    assert not np.array_equal(drawn, (image.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
