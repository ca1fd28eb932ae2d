"""Text for language models: character and byte-level BPE tokenizers, corpora, and (x, y) windows.

Corpora: 'shakespeare' (Tiny Shakespeare, read from a data folder) and 'stdlib' (the source of this
Python's standard library, a deterministic, always-present corpus of code). `LMDataset` serves
`block_size` windows of token ids with the targets shifted by one.
"""

from __future__ import annotations

import json
import os
import re
import sysconfig
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ... import dtype as dt
from ...tensor import Tensor
from ..dataset import Dataset

# The repo's sibling folder `shared/data` (../shared/data relative to the repository root).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"

# GPT-2's pre-tokenizer with `re` instead of `regex`: contractions, letters, digits, punctuation runs and
# whitespace, each piece merged separately. The final `[\s\S]` makes every character belong to a piece.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+|[\s\S]"""


def _save_json(path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False))
    os.replace(tmp, path)


def _load_json(path, kind: str) -> dict:
    obj = json.loads(Path(path).read_text())
    if obj.get("kind") != kind:
        raise ValueError(f"{path}: holds a {obj.get('kind')!r} tokenizer, expected {kind!r}")
    return obj


class CharTokenizer:
    """One token per distinct character of the corpus (ids in sorted character order)."""

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(set(text))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """str -> list of ids; characters outside the vocabulary raise KeyError naming them."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise KeyError(f"CharTokenizer.encode: character {e.args[0]!r} is not in the vocabulary of "
                           f"{self.vocab_size} characters. Hint: build the tokenizer from a text that "
                           "contains it") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def save(self, path) -> None:
        _save_json(path, {"kind": "char", "chars": self.chars})

    @classmethod
    def load(cls, path) -> CharTokenizer:
        return cls(_load_json(path, "char")["chars"])


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i, n = [], 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-level byte-pair encoding (GPT-2 style): ids 0-255 are bytes, id 256 + k is merge k.

    Any string round-trips (`decode(encode(s)) == s`). Train with `BPETokenizer.train(text, vocab_size)`."""

    def __init__(self, merges, pattern: str = GPT2_PATTERN):
        self.merges = [tuple(int(x) for x in m) for m in merges]
        self.pattern = pattern
        self._re = re.compile(pattern)
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        vocab = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            vocab.append(vocab[a] + vocab[b])
        self.vocab = vocab
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str = GPT2_PATTERN) -> BPETokenizer:
        """Learn vocab_size - 256 merges from `text`.

        Works on distinct pre-tokenized words weighted by their counts, and after each merge updates
        the pair counts of only the words that held the merged pair, so a 512-token vocabulary on 1 MB
        trains in a few seconds. Ties go to the pair seen first."""
        if vocab_size < 256:
            raise ValueError(f"BPETokenizer.train: vocab_size must be >= 256 (the byte alphabet), got "
                             f"{vocab_size}")
        word_counts = Counter(re.findall(pattern, text))
        words = [list(w.encode("utf-8")) for w in word_counts]
        counts = list(word_counts.values())
        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for wi, syms in enumerate(words):
            for p in zip(syms, syms[1:]):
                pair_counts[p] += counts[wi]
                where[p].add(wi)
        merges = []
        for new_id in range(256, vocab_size):
            if not pair_counts:
                break
            best = max(pair_counts, key=pair_counts.__getitem__)
            merges.append(best)
            touched = set()
            for wi in where.pop(best):
                syms, c = words[wi], counts[wi]
                new = _merge(syms, best, new_id)
                if len(new) == len(syms):
                    continue  # stale entry: an earlier merge already consumed this pair here
                for p in zip(syms, syms[1:]):
                    pair_counts[p] -= c
                    touched.add(p)
                for p in zip(new, new[1:]):
                    pair_counts[p] += c
                    where[p].add(wi)
                words[wi] = new
            for p in touched:
                if pair_counts.get(p, 1) <= 0:
                    del pair_counts[p]
                    where.pop(p, None)
        return cls(merges, pattern)

    def _encode_word(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        ids = list(word.encode("utf-8"))
        ranks = self.ranks
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 60))
            rank = ranks.get(pair)
            if rank is None:
                break
            ids = _merge(ids, pair, 256 + rank)
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """str -> list of token ids."""
        out: list[int] = []
        for word in self._re.findall(text):
            out.extend(self._encode_word(word))
        return out

    def decode(self, ids) -> str:
        """Token ids -> str (invalid UTF-8 from a partial sequence becomes U+FFFD)."""
        vocab = self.vocab
        return b"".join(vocab[int(i)] for i in ids).decode("utf-8", errors="replace")

    def save(self, path) -> None:
        _save_json(path, {"kind": "bpe", "pattern": self.pattern, "merges": [list(m) for m in self.merges]})

    @classmethod
    def load(cls, path) -> BPETokenizer:
        obj = _load_json(path, "bpe")
        return cls(obj["merges"], obj["pattern"])


# --- corpora ------------------------------------------------------------------------------------


def shakespeare_text(data_dir: str | os.PathLike | None = None) -> str:
    """Tiny Shakespeare (about 1.1 MB) from `data_dir/tinyshakespeare.txt` (default ../shared/data
    relative to the repository)."""
    folder = Path(data_dir).expanduser() if data_dir is not None else DEFAULT_DATA_DIR
    path = folder if folder.is_file() else folder / "tinyshakespeare.txt"
    if not path.is_file():
        raise FileNotFoundError(f"shakespeare corpus: {path} not found. Hint: pass data_dir= the folder "
                                "holding tinyshakespeare.txt")
    return path.read_text(encoding="utf-8")


def stdlib_text(max_bytes: int = 2_000_000) -> str:
    """The .py files of this Python's standard library (site-packages excluded), concatenated in sorted
    path order and cut at `max_bytes` bytes of UTF-8: the same text on every run on this machine."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__")]
        files.extend(Path(dirpath, f).relative_to(root) for f in filenames if f.endswith(".py"))
    parts, size = [], 0
    for rel in sorted(files, key=lambda p: p.as_posix()):
        data = (root / rel).read_bytes()
        room = max_bytes - size
        if len(data) >= room:
            parts.append(data[:room].decode("utf-8", errors="ignore"))
            break
        parts.append(data.decode("utf-8", errors="replace"))
        size += len(data)
    return "".join(parts)


def load_corpus(name: str, split: str | None = None, data_dir=None, val_fraction: float = 0.1,
                max_bytes: int = 2_000_000) -> str:
    """The text of corpus `name` ('shakespeare', 'stdlib', or a path to a UTF-8 file).

    split None gives it all; 'train' the first 1 - val_fraction of the characters, 'val' the rest."""
    if name == "shakespeare":
        text = shakespeare_text(data_dir)
    elif name == "stdlib":
        text = stdlib_text(max_bytes)
    elif Path(name).expanduser().is_file():
        text = Path(name).expanduser().read_text(encoding="utf-8")
    else:
        raise ValueError(f"load_corpus: unknown corpus {name!r}; expected 'shakespeare', 'stdlib' or "
                         "the path of a text file")
    if split is None:
        return text
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"load_corpus: val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(len(text) * (1.0 - val_fraction))
    if split == "train":
        return text[:cut]
    if split == "val":
        return text[cut:]
    raise ValueError(f"load_corpus: split must be 'train', 'val' or None, got {split!r}")


# --- datasets -----------------------------------------------------------------------------------


class LMDataset(Dataset):
    """Next-token windows over a token sequence: sample i is (x, y) with x = tokens[i : i + T] and
    y = tokens[i + 1 : i + T + 1], both int64 tensors of shape (T,) with T = block_size."""

    def __init__(self, tokens, block_size: int):
        if isinstance(tokens, Tensor):
            tokens = tokens.detach().numpy()
        self.tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if block_size < 1 or len(self.tokens) <= block_size:
            raise ValueError(f"LMDataset: {len(self.tokens)} tokens cannot make a window of block_size "
                             f"{block_size} plus its shifted target (needs at least block_size + 1 tokens)")
        self.block_size = int(block_size)
        self._offsets = np.arange(self.block_size + 1)

    def __len__(self) -> int:
        return len(self.tokens) - self.block_size

    def __getitem__(self, i: int):
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"LMDataset: index {i} out of range for {n} windows")
        w = self.tokens[i:i + self.block_size + 1]
        return Tensor._make(w[:-1].copy(), dt.int64), Tensor._make(w[1:].copy(), dt.int64)

    def _gather(self, indices):
        """(x, y) for a whole batch in one fancy index: two (B, T) int64 tensors."""
        w = self.tokens[np.asarray(indices, dtype=np.int64)[:, None] + self._offsets]
        return [Tensor._make(w[:, :-1].copy(), dt.int64), Tensor._make(w[:, 1:].copy(), dt.int64)]


class TextDataset(LMDataset):
    """LMDataset over a named corpus: `TextDataset('shakespeare', block_size=64, split='train')`.

    tokenizer: 'char' (built from the whole corpus, so train and val share ids), 'bpe' (trained on the
    training split with `vocab_size`), or a tokenizer object with encode/decode. `.tokenizer` holds it."""

    def __init__(self, corpus: str, block_size: int, split: str = "train", tokenizer="char",
                 vocab_size: int = 512, data_dir=None, val_fraction: float = 0.1, max_bytes: int = 2_000_000):
        text = load_corpus(corpus, None, data_dir=data_dir, max_bytes=max_bytes)
        part = load_corpus(corpus, split, data_dir=data_dir, val_fraction=val_fraction, max_bytes=max_bytes)
        if tokenizer == "char":
            tokenizer = CharTokenizer.from_text(text)
        elif tokenizer == "bpe":
            train_text = load_corpus(corpus, "train", data_dir=data_dir, val_fraction=val_fraction,
                                     max_bytes=max_bytes)
            tokenizer = BPETokenizer.train(train_text, vocab_size)
        self.tokenizer = tokenizer
        self.split = split
        super().__init__(tokenizer.encode(part), block_size)
