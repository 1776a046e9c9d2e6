"""`experiments.benchmark --what=recommend`: how long `recommend` takes on a new folder.

Writes `num_images` photo-like JPEGs (500x375, 4 classes that differ in colour and
texture) into a fresh class folder, runs the recommender on it from nothing (folder
preparation, decoding, every candidate's forward pass, the scores), then once more
(everything cached), and compares the recommender's feature-extraction throughput per
candidate with a plain `keras.Model.predict` of the same feature model over the same,
already preprocessed, images (so predict gets the easier job), interleaved, median of 3.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

# Six light candidates: the pretrained EfficientNet-Lite ports and the same architectures
# from random init when they are registered; else six keras.applications from random
# init (timing only: random-init rankings mean nothing).
LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
FALLBACK = ("mobilenet_v3_small@none", "mobilenet_v3_large@none", "efficientnetv2_b0@none",
            "efficientnetv2_b1@none", "efficientnetv2_b2@none", "shufflenet_v2_x2_0@none")


def _log(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def default_candidates() -> list:
  from tfbackbones import backbones
  if all(name in backbones.names() for name in LITE):
    return [c for name in LITE for c in (name, f"{name}@none")]
  return list(FALLBACK)


def write_class_jpegs(root: str, count: int, classes: int = 4, seed: int = 0) -> str:
  """`count` JPEGs in `classes` folders; class c has its own hue and stripe frequency."""
  import numpy as np
  from PIL import Image
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
  for i in range(count):
    c = i % classes
    folder = os.path.join(root, f"class{c}")
    os.makedirs(folder, exist_ok=True)
    freq = 0.02 + 0.03 * c + rng.uniform(0, 0.01)
    angle = rng.uniform(0, np.pi)
    stripes = 127 + 100 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    tint = np.array([[60, 0, 0], [0, 60, 0], [0, 0, 60], [40, 40, 0]][c % 4], np.float32)
    image = stripes[..., None] * 0.7 + tint + rng.normal(0, 15, (375, 500, 3))
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
        os.path.join(folder, f"img_{i:05d}.jpg"), quality=90)
  return root


def _extract_vs_predict(candidate_label: str, sample, batch: int, repeats: int = 3) -> tuple:
  """(recommend's forward pass img/s, plain `keras.Model.predict` img/s), same model.

  Both over the same sampled images, both traced before timing, interleaved `repeats`
  times, medians. The recommender's pass starts from uint8 images (its preprocessing is
  timed); predict gets them already preprocessed.
  """
  import statistics

  import keras
  import numpy as np

  from tfbackbones import backbones
  from tfbackbones.recommend import candidates, features
  cand = candidates.parse([candidate_label], "imagenet")[0]
  spec = backbones.get(cand.name)
  model, _ = features.feature_model(spec, cand, sample.image_size)
  forward = features.make_forward(model, sample.image_size, spec.preprocessing)
  images = sample.images()
  uint8 = np.concatenate([images["train"], images["val"]])
  x = np.asarray(backbones.preprocess_images(uint8, spec.preprocessing))
  model.predict(x[:batch], batch_size=batch, verbose=0)
  features.forward_pass(forward, uint8[:batch], batch)
  ours, plain = [], []
  for _ in range(repeats):
    t = time.perf_counter()
    features.forward_pass(forward, uint8, batch)
    ours.append(len(uint8) / (time.perf_counter() - t))
    t = time.perf_counter()
    model.predict(x, batch_size=batch, verbose=0)
    plain.append(len(x) / (time.perf_counter() - t))
  keras.backend.clear_session()
  return statistics.median(ours), statistics.median(plain)


_TORCH_FIRST_PASS = r"""
import json, os, sys, time
import torch
from PIL import Image
from torchvision import transforms
root, size, listing = sys.argv[1], int(sys.argv[2]), sys.argv[3]
paths = [os.path.join(root, rel) for rel in open(listing).read().split("\n") if rel]
transform = transforms.Compose([transforms.Resize((size, size)), transforms.PILToTensor()])
class Files(torch.utils.data.Dataset):
  def __len__(self):
    return len(paths)
  def __getitem__(self, i):
    return transform(Image.open(paths[i]).convert("RGB"))
t = time.perf_counter()
n = sum(int(x.shape[0]) for x in torch.utils.data.DataLoader(Files(), batch_size=32,
                                                              num_workers=2))
print("RESULT " + json.dumps(n / (time.perf_counter() - t)))
"""


def _torch_first_pass(folder: str, rel_paths: list, size: int):
  """torchvision's first pass over the same files: PIL decode + resize, 2 workers."""
  import subprocess
  listing = os.path.join(os.path.dirname(folder), "sampled.txt")
  with open(listing, "w") as f:
    f.write("\n".join(rel_paths))
  proc = subprocess.run([sys.executable, "-c", _TORCH_FIRST_PASS, folder, str(size),
                         listing], capture_output=True, text=True, timeout=3600)
  results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
  return float(results[-1][7:]) if results else None


def measure_recommend(names: list, num_images: int, size: int, batch: int) -> dict:
  """Times recommend cold and warm on a new JPEG folder; extraction vs predict."""
  from tfbackbones.recommend import RecommendConfig, run
  from tfbackbones.recommend import sample as sample_lib
  names = names or default_candidates()
  tmp = tempfile.mkdtemp(prefix="tfbackbones_recommend_")
  folder = write_class_jpegs(os.path.join(tmp, "photos"), num_images)
  # The folder's 80/20 split leaves 80% for train + val: sample all of it.
  config = RecommendConfig(dataset=f"folder:{folder}", backbones=tuple(names),
                           workdir=os.path.join(tmp, "rec"), data_dir=os.path.join(tmp, "tfds"),
                           max_images=num_images, image_size=size, batch_size=batch)
  t = time.perf_counter()
  sample = sample_lib.draw(config)  # prepares the folder (TFDS), reads no pixels twice
  prepare_s = time.perf_counter() - t
  _log(f"folder prepared in {prepare_s:.1f} s")
  t = time.perf_counter()
  sample.images()
  decode_s = time.perf_counter() - t
  t = time.perf_counter()
  cold = run(config, progress=_log, sample=sample)
  cold_s = prepare_s + decode_s + time.perf_counter() - t
  t = time.perf_counter()
  warm = run(config, progress=lambda _: None)
  warm_s = time.perf_counter() - t
  n = len(sample.train_ids) + len(sample.val_ids)
  torch_img_s = _torch_first_pass(folder, sample.train_ids + sample.val_ids, size)
  rows = []
  for row in cold.rows:
    ours, predict = _extract_vs_predict(row["candidate"], sample, batch)
    _log(f"{row['candidate']}: recommend pass {ours:.1f} img/s, predict {predict:.1f} img/s")
    rows.append({"candidate": row["candidate"], "rank": row["rank"],
                 "cold_extract_img_s": row["img_per_sec"], "extract_img_s": ours,
                 "predict_img_s": predict, "ratio": ours / predict})
  return {"images": n, "prepare_seconds": prepare_s, "decode_seconds": decode_s,
          "first_pass_img_s": n / (prepare_s + decode_s),
          "torch_first_pass_img_s": torch_img_s, "folder_images": num_images,
          "image_size": size, "batch": batch,
          "candidates": names, "ranked": len(cold.rows), "skipped": cold.skipped,
          "cold_seconds": cold_s, "warm_seconds": warm_s, "warm_extracted": warm.extracted,
          "rows": rows, "summary": cold.rows, "folder": folder}


def print_recommend(r: dict) -> None:
  print(f"recommend on a new folder of {r['folder_images']} JPEGs (500x375): "
        f"{r['images']} sampled (train + val), {r['ranked']} candidates ranked at "
        f"{r['image_size']} px, batch {r['batch']}")
  print(f"  cold (prepare folder + decode + extract + score): {r['cold_seconds']:.1f} s")
  torch = r["torch_first_pass_img_s"]
  torch_text = (f"{torch:.1f} img/s, ratio {r['first_pass_img_s'] / torch:.2f}" if torch
                else "n/a (no torch)")
  print(f"  first pass over the new folder (TFDS prepare {r['prepare_seconds']:.1f} s + "
        f"decode/resize {r['decode_seconds']:.1f} s): {r['first_pass_img_s']:.1f} img/s; "
        f"torchvision DataLoader (decode + resize, 2 workers) on the same files: "
        f"{torch_text}")
  print(f"  warm (all features cached, {r['warm_extracted']} extracted): "
        f"{r['warm_seconds']:.1f} s")
  for s in r["skipped"]:
    print(f"  skipped {s['candidate']}: {s['reason'].splitlines()[0]}")
  print(f"  {'candidate':<28}{'rank':>5}{'extract img/s':>15}{'predict img/s':>15}"
        f"{'ratio':>8}")
  for row in r["rows"]:
    print(f"  {row['candidate']:<28}{row['rank']:>5}{row['extract_img_s']:>15.1f}"
          f"{row['predict_img_s']:>15.1f}{row['ratio']:>8.2f}")
  total_extract = sum(r["images"] / x["extract_img_s"] for x in r["rows"])
  total_predict = sum(r["images"] / x["predict_img_s"] for x in r["rows"])
  ratio = total_predict / total_extract if total_extract else float("nan")
  print(f"ratio={ratio:.3f} (recommend feature extraction vs keras Model.predict, "
        f"time-weighted over candidates) cold_seconds={r['cold_seconds']:.1f}")
