"""spdc: Sparse Progressive Distillation Compressor for BERT-class classifiers."""

__version__ = "0.1.0"
