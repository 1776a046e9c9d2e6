"""A model.keras with the ports' custom layers loads in a fresh process.

The ports define their layers only when a model is first built
(`ports.blocks.layer_classes`), so a process that just
loads a saved ShuffleNet, WaveMix, Swin or ViT (`python -m tfbackbones.predict`, the
export and deploy evaluation) found no such class until `artifacts.load_model` called
`backbones.register_layers()`.
"""

import os
import subprocess
import sys

import keras
import numpy as np

from tfbackbones.backbones.ports import shufflenet, vit, wavemix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_port_layer_loads_in_a_fresh_process(tmp_path):
  keras.utils.set_random_seed(0)
  port = vit.layer_classes()
  inputs = keras.Input((8, 8, 4))
  x = shufflenet.channel_slice(shufflenet.channel_shuffle(inputs, 2, name="shuffle"), 0, 2,
                               name="slice")
  (dwt,) = wavemix.layer_classes().HaarDWT(1, name="dwt")(x)
  tokens = port.ClassToken(name="cls")(keras.layers.Reshape((16, 8))(dwt))
  outputs = port.TakeToken(name="take")(port.PositionEmbedding(name="pos")(tokens))
  model = keras.Model(inputs, outputs)
  path = str(tmp_path / "ports.keras")
  model.save(path)
  x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
  np.save(tmp_path / "x.npy", x)
  np.save(tmp_path / "y.npy", keras.ops.convert_to_numpy(model(x)))
  script = (
      "import sys, numpy as np\n"
      "from tfbackbones import artifacts\n"
      "model = artifacts.load_model(sys.argv[1] + '/ports.keras')\n"
      "y = np.asarray(model(np.load(sys.argv[1] + '/x.npy')))\n"
      "np.testing.assert_allclose(y, np.load(sys.argv[1] + '/y.npy'), rtol=1e-6, atol=1e-6)\n"
      "print('LOADED', sorted(type(layer).__name__ for layer in model.layers[1:]))\n")
  proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert ("LOADED ['ChannelShuffle', 'ChannelSlice', 'ClassToken', 'HaarDWT', "
          "'PositionEmbedding', 'Reshape', 'TakeToken']") in proc.stdout, proc.stdout
