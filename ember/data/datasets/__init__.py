"""Ready-made datasets: MNIST and CIFAR-10 readers, text corpora and tokenizers."""

from .cifar10 import CIFAR10
from .mnist import MNIST, read_idx
from .text import BPETokenizer, CharTokenizer, LMDataset, TextDataset, load_corpus

__all__ = ["CIFAR10", "MNIST", "BPETokenizer", "CharTokenizer", "LMDataset", "TextDataset", "load_corpus",
           "read_idx"]
