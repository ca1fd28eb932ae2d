"""`ember train` and the training loop: bitwise-exact resume, Ctrl-C, run-directory outputs, checkpoint
directories, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.cli.main import main
from ember.errors import CheckpointError
from ember.training import checkpoint as ckpt
from ember.training import trainer as trainer_mod
from ember.training.config import TrainConfig, TrainError
from ember.training.metrics import read_metrics
from ember.training.tasks import SHARED_DATA
from ember.training.trainer import train

TINY_GPT = {"n_layer": 1, "n_embd": 16, "n_head": 2, "dropout": 0.1}
TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n") * 2


@pytest.fixture
def text_file(tmp_path) -> str:
    p = tmp_path / "poem.txt"
    p.write_text(TEXT)
    return str(p)


def _quiet(_line):
    pass


def _cfg(text_file, out, **kw) -> TrainConfig:
    base = dict(model="gpt", data=text_file, steps=14, batch_size=8, block_size=8, eval_every=5,
                eval_batches=2, sample_tokens=0, warmup_steps=3, progress=False, out=str(out),
                model_config=dict(TINY_GPT))
    base.update(kw)
    return TrainConfig(**base)


def _train_losses(path) -> list[float]:
    return [r["loss"] for r in read_metrics(path) if r["split"] == "train"]


# --- exact resume ---------------------------------------------------------------------------------


def test_compiled_training_equals_eager_training(tmp_path, text_file):
    """--compile: the same run (dropout drawn from the same generator, AdamW, clipping, warmup + cosine)
    through ember.compile gives the eager run's losses and weights; the step really is replayed (one
    trace, plans run)."""
    cfg = dict(eval_every=0)
    eager = train(_cfg(text_file, tmp_path / "e", **cfg), log=_quiet)
    calls = []
    real = trainer_mod._compiled_step

    def spy(*a):
        fn = real(*a)
        calls.append(fn)
        return fn
    trainer_mod._compiled_step = spy
    try:
        compiled = train(_cfg(text_file, tmp_path / "c", compile=True, **cfg), log=_quiet)
    finally:
        trainer_mod._compiled_step = real
    np.testing.assert_allclose(compiled.losses, eager.losses, rtol=1e-5)
    fn = calls[0]
    assert fn.traces == 1 and all(e.plan is not None for e in fn.entries.values())
    a = ember.load(str(tmp_path / "e" / "checkpoint" / "model.safetensors"))
    b = ember.load(str(tmp_path / "c" / "checkpoint" / "model.safetensors"))
    for k in a:
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-4, atol=1e-6)



def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, text_file):
    """Straight 14 steps vs. stops at steps 4 and 9, each followed by a resume. Dropout (default RNG),
    warmup + cosine, AdamW moments and the data order all carry state across the checkpoint."""
    straight = train(_cfg(text_file, tmp_path / "a"), log=_quiet)
    assert len(straight.losses) == 14
    parts = []
    for i, stop_at in enumerate([4, 9, -1]):
        run = _cfg(text_file, tmp_path / "b", resume=i > 0)
        res = train(run, on_step=lambda s, _l, at=stop_at: s == at, log=_quiet)
        parts.append(res.losses)
        assert res.interrupted == (stop_at > 0) and res.step == (stop_at if stop_at > 0 else 14)
    assert [len(p) for p in parts] == [4, 5, 5]
    assert sum(parts, []) == straight.losses  # == on floats: bitwise
    assert _train_losses(tmp_path / "a/metrics.jsonl") == _train_losses(tmp_path / "b/metrics.jsonl")
    for name in ("model.safetensors", "optim.safetensors"):
        a = (tmp_path / "a/checkpoint" / name).read_bytes()
        assert a == (tmp_path / "b/checkpoint" / name).read_bytes(), name


def test_resume_across_epoch_boundaries_keeps_the_data_order(tmp_path, text_file):
    # 344 characters -> 309 for training -> 301 windows of 8 -> 4 batches of 64 per epoch
    kw = dict(batch_size=64, steps=11, eval_every=0)
    straight = train(_cfg(text_file, tmp_path / "a", **kw), log=_quiet)
    first = train(_cfg(text_file, tmp_path / "b", **kw), on_step=lambda s, _l: s == 4, log=_quiet)
    meta = ckpt.read_meta(tmp_path / "b/checkpoint")
    assert meta["step"] == 4 and meta["epoch"] == 0 and meta["data"]["batch"] == 4
    second = train(_cfg(text_file, tmp_path / "b", resume=True, **kw), on_step=lambda s, _l: s == 6,
                   log=_quiet)
    assert ckpt.read_meta(tmp_path / "b/checkpoint")["epoch"] == 1
    third = train(_cfg(text_file, tmp_path / "b", resume=True, **kw), log=_quiet)
    assert first.losses + second.losses + third.losses == straight.losses
    # negative control: a different data seed changes the losses, so the comparison above can fail
    other = train(_cfg(text_file, tmp_path / "c", seed=1, **kw), log=_quiet)
    assert other.losses != straight.losses


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_resume_is_exact_with_mixed_precision(tmp_path, text_file, amp):
    kw = dict(amp=amp, steps=6, eval_every=0)
    straight = train(_cfg(text_file, tmp_path / "a", **kw), log=_quiet)
    first = train(_cfg(text_file, tmp_path / "b", **kw), on_step=lambda s, _l: s == 3, log=_quiet)
    second = train(_cfg(text_file, tmp_path / "b", resume=True, **kw), log=_quiet)
    assert first.losses + second.losses == straight.losses
    scaler = ckpt.read_meta(tmp_path / "b/checkpoint")["scaler"]
    assert (scaler is not None) == (amp == "fp16")  # GradScaler state travels in meta.json


def test_resume_is_exact_for_a_batchnorm_classifier_on_mnist(tmp_path):
    _fake_mnist(tmp_path / "mnist", n_train=48, n_test=16)
    kw = dict(model="resnet", data="mnist", steps=4, batch_size=16, eval_every=0, eval_batches=1,
              model_config={"width": 4, "layers": [1]}, optimizer="sgd", scheduler="step",
              data_dir=str(tmp_path / "mnist"))
    straight = train(_cfg("mnist", tmp_path / "a", **kw), log=_quiet)
    first = train(_cfg("mnist", tmp_path / "b", **kw), on_step=lambda s, _l: s == 2, log=_quiet)
    second = train(_cfg("mnist", tmp_path / "b", resume=True, **kw), log=_quiet)
    assert first.losses + second.losses == straight.losses
    a, b = (ember.load(tmp_path / d / "checkpoint/model.safetensors") for d in ("a", "b"))
    assert a["bn1.running_var"].numpy().tobytes() == b["bn1.running_var"].numpy().tobytes()
    assert straight.last_eval == second.last_eval


def test_resume_refuses_a_different_model_setting(tmp_path, text_file):
    train(_cfg(text_file, tmp_path / "a", steps=2, eval_every=0), log=_quiet)
    with pytest.raises(TrainError, match="batch_size=8 but this run has batch_size=4"):
        train(_cfg(text_file, tmp_path / "a", steps=4, batch_size=4, resume=True), log=_quiet)
    with pytest.raises(TrainError, match="no checkpoint in"):
        train(_cfg(text_file, tmp_path / "none", resume=True), log=_quiet)


def test_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, text_file):
    cfg = _cfg(text_file, tmp_path / "a", steps=30, optimizer="sgd", lr=1e4, grad_clip=None, eval_every=2,
               model_config={"n_layer": 1, "n_embd": 16, "n_head": 2})
    with np.errstate(all="ignore"):
        res = train(cfg, log=_quiet)
    assert res.diverged and not np.isfinite(res.losses[-1]) and np.all(np.isfinite(res.losses[:-1]))
    saved = ckpt.read_meta(tmp_path / "a/checkpoint")["step"]
    assert saved == (res.step - 1) // 2 * 2  # the last periodic save before the bad step
    weights = ember.load(tmp_path / "a/checkpoint/model.safetensors")
    assert all(np.isfinite(w.numpy()).all() for w in weights.values())


def test_sigint_saves_a_checkpoint_and_stops(tmp_path, text_file):
    def ctrl_c(step, _loss):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
    res = train(_cfg(text_file, tmp_path / "a"), on_step=ctrl_c, log=_quiet)
    assert res.interrupted and res.step == 3
    assert ckpt.read_meta(tmp_path / "a/checkpoint")["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


# --- the command line -------------------------------------------------------------------------------


def test_cli_tiny_lm_run_writes_metrics_plot_checkpoint_and_sample(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--model", "gpt", "--data", text_file, "--steps", "6", "--batch-size", "4",
               "--block-size", "8", "--eval-every", "3", "--eval-batches", "2", "--sample-tokens", "20",
               "--model-config", "n_layer=1", "--model-config", "n_embd=16", "--model-config", "n_head=2",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 6 and summary["perplexity"] == pytest.approx(np.exp(summary["val_loss"]))
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if r["split"] == "val"] == [3, 6]
    assert all("tokens_per_s" in r and "lr" in r for r in records if r["split"] == "train")
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(out / "checkpoint")) == ["meta.json", "model.safetensors", "optim.safetensors"]
    sample = (out / "sample.txt").read_text()
    assert len(sample) == 16 + 20 and set(sample) <= set(TEXT)
    weights = ember.load(out / "checkpoint/model.safetensors")
    assert weights["transformer.wte.weight"].shape == (len(set(TEXT)), 16)


def test_progress_bar_shows_loss_throughput_and_eta(tmp_path, text_file, capsys):
    train(_cfg(text_file, tmp_path / "a", steps=3, eval_every=0, progress=True), log=_quiet)
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "3/3" in last and "loss=" in last and "tok/s=" in last
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", last)  # elapsed<remaining (the ETA)


def test_cli_config_file_with_flag_override_and_resume_from_saved_settings(tmp_path, text_file):
    toml = tmp_path / "run.toml"
    toml.write_text(f'model = "lstm"\ndata = "{text_file}"\nsteps = 4\nbatch-size = 4\nblock_size = 8\n'
                    f'eval_every = 0\nsample_tokens = 5\nout = "{tmp_path / "run"}"\nprogress = false\n'
                    f'[model_config]\nn_embd = 8\nhidden_size = 8\nnum_layers = 1\n')
    assert main(["train", "--config", str(toml), "--lr", "0.003"]) == 0
    meta = ckpt.read_meta(tmp_path / "run/checkpoint")
    assert meta["config"]["model"] == "lstm" and meta["config"]["lr"] == 0.003 and meta["step"] == 4
    # --resume with only --out and a longer --steps: the other settings come from the saved run
    assert main(["train", "--resume", "--out", str(tmp_path / "run"), "--steps", "6", "--no-progress"]) == 0
    meta = ckpt.read_meta(tmp_path / "run/checkpoint")
    assert meta["step"] == 6 and meta["config"]["model_config"]["hidden_size"] == 8


def test_cli_ctrl_c_exits_130_and_resume_finishes(tmp_path, text_file, monkeypatch, capsys):
    calls = {"n": 0}
    real = trainer_mod._ce

    def ce_then_ctrl_c(logits, y):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step, as a real Ctrl-C would
        return real(logits, y)
    monkeypatch.setattr(trainer_mod, "_ce", ce_then_ctrl_c)
    args = ["train", "--data", text_file, "--steps", "4", "--batch-size", "4", "--block-size", "8",
            "--eval-every", "0", "--sample-tokens", "0", "--model-config", "n_layer=1",
            "--model-config", "n_embd=16", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 2/4" in err and "--resume" in err and "Traceback" not in err
    monkeypatch.setattr(trainer_mod, "_ce", real)
    assert main(["train", "--resume", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert ckpt.read_meta(tmp_path / "r/checkpoint")["step"] == 4


def test_real_ctrl_c_on_the_console_command(tmp_path, text_file):
    """A `python -m ember.cli train` process gets SIGINT mid-run: checkpoint, status 130, no traceback."""
    import subprocess
    import sys
    import time
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "ember.cli", "train", "--data", text_file, "--steps", "100000",
            "--batch-size", "4", "--block-size", "8", "--model-config", "n_layer=1", "--model-config",
            "n_embd=16", "--eval-every", "0", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted at step" in err
    step = ckpt.read_meta(out / "checkpoint")["step"]
    assert step >= 2 and step == len(_train_losses(out / "metrics.jsonl"))


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="no shared MNIST folder on this machine")
def test_cli_mlp_on_mnist_reports_accuracy(tmp_path, capsys):
    rc = main(["train", "--model", "mlp", "--data", "mnist", "--steps", "3", "--batch-size", "32",
               "--eval-batches", "2", "--out", str(tmp_path / "m"), "--no-progress"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "first 8000 images" in captured.err and "last 2000" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert 0.0 <= summary["accuracy"] <= 1.0


def _fake_cifar(root: Path, per_file: int = 8) -> None:
    """CIFAR-10 binary files with random records (1 label byte + 3072 pixel bytes each)."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (per_file, 3073), dtype=np.uint8)
        rec[:, 0] %= 10
        (folder / name).write_bytes(rec.tobytes())


def _fake_mnist(root: Path, n_train: int, n_test: int) -> None:
    """MNIST IDX files (uncompressed) with random pixels and labels."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        lab = rng.integers(0, 10, n, dtype=np.uint8)
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(
            bytes([0, 0, 8, 3]) + np.array([n, 28, 28], ">u4").tobytes() + img.tobytes())
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes() + lab.tobytes())


def test_cli_convnet_on_cifar10_folder(tmp_path, capsys):
    _fake_cifar(tmp_path / "cifar")
    rc = main(["train", "--model", "convnet", "--data", "cifar10", "--data-dir", str(tmp_path / "cifar"),
               "--steps", "2", "--batch-size", "8", "--out", str(tmp_path / "r"), "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 2 and 0 <= summary["accuracy"] <= 1
    w = ember.load(tmp_path / "r/checkpoint/model.safetensors")
    assert w["features.0.weight"].shape == (32, 3, 3, 3)
    assert w["classifier.1.weight"].shape == (128, 64 * 8 * 8)
    # a folder without the files: one line that says what to pass
    (tmp_path / "empty").mkdir()
    assert main(["train", "--model", "mlp", "--data", "cifar10", "--data-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "CIFAR-10 in" in err and "--data-dir" in err and len(err.splitlines()) == 1


def test_mnist_uses_the_training_files_when_present(tmp_path):
    from ember.training.tasks import build_task
    _fake_mnist(tmp_path / "mnist", n_train=40, n_test=24)
    task = build_task(TrainConfig(model="mlp", data="mnist", data_dir=str(tmp_path / "mnist")))
    assert (len(task.train), len(task.val)) == (40, 24) and task.note == ""
    x, y = task.train[0]
    assert x.shape == (1, 28, 28) and x.dtype is ember.float32 and y.dtype is ember.int64


def test_mnist_with_only_the_test_files_splits_8000_2000(tmp_path):
    from ember.training.tasks import build_task
    _fake_mnist(tmp_path / "mnist", n_train=0, n_test=10000)
    for f in (tmp_path / "mnist").glob("train-*"):
        f.unlink()
    task = build_task(TrainConfig(model="mlp", data="mnist", data_dir=str(tmp_path / "mnist")))
    assert (len(task.train), len(task.val)) == (8000, 2000)
    assert "first 8000" in task.note and "last 2000" in task.note


@pytest.mark.parametrize("argv, message", [
    (["--model", "gpt", "--data", "mnist"], "--model gpt is a language model and --data mnist is an image"),
    (["--model", "convnet", "--data", "stdlib"], "--model convnet classifies images and --data stdlib is"),
    (["--model", "mlp", "--data", "mnist", "--data-dir", "/no/such/dir"], "MNIST folder /no/such/dir not"),
    (["--data", "/no/such/file.txt"], "--data /no/such/file.txt: no such dataset or file"),
    (["--steps", "3", "--epochs", "1"], "give at most one of them"),
    (["--steps", "-1"], "--steps: expected a positive integer, got -1"),
    (["--amp", "fp8"], "argument --amp: invalid choice: 'fp8'"),
    (["--model", "vgg"], "argument --model: invalid choice: 'vgg'"),
    (["--steps", "many"], "argument --steps: invalid int value: 'many'"),
    (["--config", "/no/run.toml"], "--config /no/run.toml: no such file"),
    (["--model-config", "n_layer"], "expected KEY=VALUE"),
    (["--model-config", "layers=3"], "GPTConfig has no field 'layers'"),
    (["--resume", "--out", "/no/such/run"], "--resume: no checkpoint in /no/such/run/checkpoint"),
    (["--compile", "--amp", "fp16"], "--compile: the compiled step covers single-process training"),
])
def test_cli_errors_are_one_line_with_exit_code_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(["train", *argv, "--no-progress"]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_bad_config_key_and_value(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text('modle = "gpt"\n')
    assert main(["train", "--config", str(toml)]) == 2
    assert "unknown key 'modle'" in capsys.readouterr().err
    toml.write_text('steps = "ten"\n')
    assert main(["train", "--config", str(toml)]) == 2
    assert "--steps: expected a positive integer, got 'ten'" in capsys.readouterr().err
    toml.write_text('steps = [\n')
    assert main(["train", "--config", str(toml)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_cli_corrupt_checkpoint_names_the_file(tmp_path, text_file, capsys):
    out = tmp_path / "r"
    train(_cfg(text_file, out, steps=2, eval_every=0), log=_quiet)
    model_file = out / "checkpoint/model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:100])
    assert main(["train", "--resume", "--out", str(out), "--steps", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "CheckpointError" in err and len(err.strip().splitlines()) == 1


# --- checkpoint directories ----------------------------------------------------------------------------


def test_pack_unpack_round_trips_nested_state():
    state = {"state": {0: {"step": 3, "exp_avg": ember.ones(2)},
                       5: {"m": ember.zeros(1, dtype=ember.float64)}},
             "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 5], "nesterov": False,
                               "x": None, "inf": float("inf")}]}
    tensors = {}
    skeleton = json.loads(json.dumps(ckpt.pack(state, tensors, "optimizer")))
    back = ckpt.unpack(skeleton, tensors)
    assert set(back["state"]) == {0, 5} and back["state"][0]["step"] == 3
    assert back["state"][0]["exp_avg"] is state["state"][0]["exp_avg"]
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["param_groups"][0]["inf"] == float("inf")
    with pytest.raises(TypeError, match="cannot store a set"):
        ckpt.pack({"a": {1, 2}}, {}, "x")


def _tiny_model_and_opt():
    model = ember.models.get_model("mlp", {"in_features": 4, "hidden": (3,), "num_classes": 2})
    opt = ember.optim.AdamW(model.parameters(), lr=0.1)
    model(ember.randn(2, 4)).sum().backward()
    opt.step()
    return model, opt


def test_checkpoint_round_trip_restores_model_optimizer_and_rng(tmp_path):
    import ember.models  # noqa: F401
    model, opt = _tiny_model_and_opt()
    ckpt.save_checkpoint(tmp_path / "ck", model, opt, step=7, epoch=2, config={"a": 1})
    expected_draw = ember.rand(3).numpy()
    m2 = ember.models.get_model("mlp", {"in_features": 4, "hidden": (3,), "num_classes": 2})
    o2 = ember.optim.AdamW(m2.parameters(), lr=0.5)
    ember.manual_seed(99)
    meta = ckpt.load_checkpoint(tmp_path / "ck", m2, o2)
    assert meta["step"] == 7 and meta["epoch"] == 2 and meta["config"] == {"a": 1}
    assert np.array_equal(ember.rand(3).numpy(), expected_draw)  # default RNG restored
    for (k, a), b in zip(model.state_dict().items(), m2.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy()), k
    assert o2.param_groups[0]["lr"] == 0.1
    s1, s2 = opt.state_dict()["state"], o2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for k in s1:
        assert s1[k]["step"] == s2[k]["step"]
        assert np.array_equal(s1[k]["exp_avg_sq"].numpy(), s2[k]["exp_avg_sq"].numpy())


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    import ember.models  # noqa: F401
    model, opt = _tiny_model_and_opt()
    ckpt.save_checkpoint(tmp_path / "ck", model, opt, step=1)
    before = {n: (tmp_path / "ck" / n).read_bytes() for n in os.listdir(tmp_path / "ck")}
    real_save = ckpt.io.save

    def fail_on_optim(sd, path, metadata=None):
        if str(path).endswith("optim.safetensors"):
            raise OSError("disk full (simulated)")
        return real_save(sd, path, metadata)
    monkeypatch.setattr(ckpt.io, "save", fail_on_optim)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path / "ck", model, opt, step=2)
    assert {n: (tmp_path / "ck" / n).read_bytes() for n in os.listdir(tmp_path / "ck")} == before
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # the temporary directory is gone
    assert ckpt.read_meta(tmp_path / "ck")["step"] == 1


def test_checkpoint_interrupted_between_renames_is_still_readable(tmp_path):
    import ember.models  # noqa: F401
    model, opt = _tiny_model_and_opt()
    ckpt.save_checkpoint(tmp_path / "ck", model, opt, step=5)
    os.replace(tmp_path / "ck", tmp_path / "ck.old")  # as if we died after the first rename
    assert ckpt.checkpoint_exists(tmp_path / "ck")
    assert ckpt.read_meta(tmp_path / "ck")["step"] == 5
    ckpt.save_checkpoint(tmp_path / "ck", model, opt, step=6)
    assert sorted(os.listdir(tmp_path)) == ["ck"] and ckpt.read_meta(tmp_path / "ck")["step"] == 6


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        ckpt.read_meta(tmp_path / "nothing")
    (tmp_path / "d").mkdir()
    with pytest.raises(CheckpointError, match="meta.json is missing"):
        ckpt.read_meta(tmp_path / "d")
    (tmp_path / "d/meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"d/meta.json: cannot read meta.json"):
        ckpt.read_meta(tmp_path / "d")
    (tmp_path / "d/meta.json").write_text('{"format": "other"}')
    with pytest.raises(CheckpointError, match="not an ember checkpoint"):
        ckpt.read_meta(tmp_path / "d")


def test_default_run_dir_and_data_kind():
    assert TrainConfig().run_dir == os.path.join("runs", "gpt-stdlib")
    assert TrainConfig(model="mlp", data="mnist").run_dir == os.path.join("runs", "mlp-mnist")
    assert TrainConfig(data="/x/y/corpus.txt").run_dir == os.path.join("runs", "gpt-corpus")
    assert Path(SHARED_DATA).name == "data"
