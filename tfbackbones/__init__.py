"""tfbackbones: which pretrained backbone should I fine-tune for my domain's small dataset?

Fair, reproducible fine-tuning benchmarks of ImageNet backbones on small, domain-specific
datasets, after "Which Backbone to Use" (Jeevan & Sethi), in Keras 3 / TensorFlow.
"""

__version__ = "0.1.0"
