"""Text: char and byte-level BPE tokenizers, the corpora and the (x, y) language-model windows."""

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.data import DataLoader, default_collate
from ember.data.datasets import BPETokenizer, CharTokenizer, LMDataset, TextDataset, load_corpus
from ember.data.datasets.text import GPT2_PATTERN, shakespeare_text, stdlib_text

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def shakespeare():
    return shakespeare_text(DATA_DIR)


@pytest.fixture(scope="module")
def bpe(shakespeare):
    return BPETokenizer.train(shakespeare, 512)


def test_char_tokenizer_round_trip_and_save_load(tmp_path, shakespeare):
    tok = CharTokenizer.from_text(shakespeare)
    assert tok.vocab_size == 65  # Tiny Shakespeare's well-known character set
    ids = tok.encode(shakespeare[:1000])
    assert tok.decode(ids) == shakespeare[:1000]
    tok.save(tmp_path / "char.json")
    again = CharTokenizer.load(tmp_path / "char.json")
    assert again.encode("To be, or not") == tok.encode("To be, or not")
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tok.encode("€")


def test_bpe_round_trips_shakespeare_and_compresses_better_than_characters(bpe, shakespeare):
    assert bpe.vocab_size == 512
    ids = bpe.encode(shakespeare)
    assert bpe.decode(ids) == shakespeare
    assert max(ids) < 512 and min(ids) >= 0
    assert len(ids) < 0.6 * len(shakespeare)  # about 1.9 characters per token
    assert bpe.vocab[bpe.encode(" the")[0]] == b" the"  # a common word became one token


def test_bpe_round_trips_any_unicode(bpe):
    for s in ["héllo wörld 😀", "__init__(self)\n\n\t  x = 1_000", "", "   ", "日本語のテキスト", "a'll've"]:
        assert bpe.decode(bpe.encode(s)) == s


def test_bpe_save_load_gives_the_same_ids(tmp_path, bpe, shakespeare):
    bpe.save(tmp_path / "bpe.json")
    again = BPETokenizer.load(tmp_path / "bpe.json")
    assert again.merges == bpe.merges
    assert again.encode(shakespeare[:5000]) == bpe.encode(shakespeare[:5000])
    with pytest.raises(ValueError, match="expected 'char'"):
        CharTokenizer.load(tmp_path / "bpe.json")


def test_incremental_bpe_training_picks_the_most_frequent_pair_each_step():
    """Replay the learned merges with a from-scratch pair count at every step: each chosen pair must
    have the highest count (what the incremental counts claim)."""
    text = "low lower lowest newer newest wider wide widest " * 3 + "the theme then there"
    tok = BPETokenizer.train(text, 256 + 25)
    words = [list(w.encode()) for w in re.findall(GPT2_PATTERN, text)]
    for k, pair in enumerate(tok.merges):
        counts = Counter(p for w in words for p in zip(w, w[1:]))
        assert counts[pair] == max(counts.values()), f"merge {k}: {pair} is not a most frequent pair"
        new_id = 256 + k
        merged = []
        for w in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == pair:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged.append(out)
        words = merged


def test_bpe_rejects_a_vocab_smaller_than_the_bytes():
    with pytest.raises(ValueError, match="256"):
        BPETokenizer.train("abc", 100)


def test_lm_dataset_windows_are_shifted_by_one():
    ds = LMDataset(list(range(20)), block_size=5)
    assert len(ds) == 15
    x, y = ds[3]
    assert x.numpy().tolist() == [3, 4, 5, 6, 7] and y.numpy().tolist() == [4, 5, 6, 7, 8]
    assert x.dtype is ember.int64
    fast = ds._gather([0, 14, 7])
    slow = default_collate([ds[i] for i in [0, 14, 7]])
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    xb, yb = next(iter(DataLoader(ds, batch_size=4, shuffle=True)))
    assert xb.shape == (4, 5) and np.array_equal(xb.numpy()[:, 1:], yb.numpy()[:, :-1])
    with pytest.raises(ValueError, match="block_size"):
        LMDataset([1, 2, 3], block_size=3)


def test_corpora_splits_and_stdlib_determinism(shakespeare):
    train = load_corpus("shakespeare", "train", data_dir=DATA_DIR)
    val = load_corpus("shakespeare", "val", data_dir=DATA_DIR)
    assert train + val == shakespeare and abs(len(val) / len(shakespeare) - 0.1) < 1e-3
    assert shakespeare.startswith("First Citizen:")
    code = stdlib_text(300_000)
    assert len(code.encode()) <= 300_000 and len(code) > 200_000
    assert code == stdlib_text(300_000) and "def " in code and "import " in code
    assert stdlib_text(100_000) == code[:len(stdlib_text(100_000))]  # a prefix: sorted, deterministic
    with pytest.raises(FileNotFoundError, match="data_dir"):
        load_corpus("shakespeare", data_dir="/nonexistent")
    with pytest.raises(ValueError, match="unknown corpus"):
        load_corpus("wikipedia")


def test_text_dataset_over_a_corpus():
    ds = TextDataset("shakespeare", block_size=32, split="val", data_dir=DATA_DIR)
    x, y = ds[0]
    assert ds.tokenizer.decode(x.numpy()) == load_corpus("shakespeare", "val", data_dir=DATA_DIR)[:32]
    code = TextDataset("stdlib", block_size=16, split="train", max_bytes=50_000)
    assert code.tokenizer.decode(code[0][0].numpy()) == stdlib_text(50_000)[:16]
