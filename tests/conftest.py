import os, shutil
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SAT2CAP_NO_PROGRESS", "1")
import pytest


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    "One small SynthWorld dataset (100 pairs, 4-degree region grid) shared by the whole test session; treat it as read-only."
    from sat2cap.synthworld import write_synthworld
    d = tmp_path_factory.mktemp("tiny_world") / "data"
    write_synthworld(d, n_samples=100, seed=3, region_step=4.0, workers=1)
    return d


@pytest.fixture(scope="session")
def tiny_run(tiny_world, tmp_path_factory):
    "A Sat2Cap run trained for 2 steps on `tiny_world` with the tiny CLIP, shared by the session; treat it as read-only."
    from sat2cap.train import make_config, train
    out = tmp_path_factory.mktemp("tiny_run") / "run"
    train(make_config(str(tiny_world), str(out), steps=2, batch_size=16, eval_every=0, ckpt_every=2))
    return out


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path):
    "A private copy of `tiny_run` that a test may change."
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst)
    return dst
