"""Deployment: the fine-tuned model as files that run without the training code.

`images` reads and resizes images exactly as the training pipeline does, in NumPy;
`runtimes` runs an artifact (Keras, SavedModel, LiteRT, ONNX) behind one interface;
`exporters` writes the artifacts; `evaluation` measures them on a run's test split.
`images` and `runtimes` import TensorFlow only for the Keras and SavedModel formats, so a
LiteRT or ONNX model runs on a machine with neither TensorFlow nor Keras installed.
"""
