"""The layers of ember.nn, one family per module; import them from ember.nn."""

from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from .attention import MultiheadAttention
from .conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .embedding import Embedding
from .linear import Flatten, Linear, Unflatten
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, RMSNorm
from .pooling import AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .rnn import GRU, LSTM, GRUCell, LSTMCell, RNNBase
from .transformer import TransformerBlock, TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "ELU", "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "SiLU", "Softmax", "Softplus", "Tanh",
    "MultiheadAttention", "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "Dropout", "Dropout2d",
    "Embedding", "Flatten", "Linear", "Unflatten", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
    "L1Loss", "MSELoss", "NLLLoss", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "RMSNorm",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "MaxPool1d", "MaxPool2d", "GRU",
    "LSTM", "GRUCell", "LSTMCell", "RNNBase", "TransformerBlock", "TransformerEncoder",
    "TransformerEncoderLayer",
]
