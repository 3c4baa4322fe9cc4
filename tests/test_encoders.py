"""Tests for sat2cap.encoders: CLIP loading/saving, the three encoders, the HF converter and CLIP pretraining."""
import io, json
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sat2cap.core import Sat2CapError
from sat2cap import encoders as E


@pytest.fixture(scope="module")
def clip():
    return E.load_clip("tiny", seed=0)


def _write_pairs(out: Path, split: str, n: int, seed: int):
    "Write one shard of coloured-pattern photos with captions naming colour and pattern."
    import webdataset as wds
    rng = np.random.default_rng(seed)
    colors = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}
    (out/split).mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(out/split/"shard-000000.tar")) as w:
        for i in range(n):
            name, rgb = list(colors.items())[i % 4]
            stripes = (i // 4) % 2 == 0
            a = rng.integers(0, 60, (64, 64, 3)).astype(np.uint8)
            mask = (np.arange(64)[:, None] // 8 % 2 == 0) if stripes else ((np.indices((64, 64)) // 8).sum(0) % 2 == 0)
            a[np.broadcast_to(mask, (64, 64))] = rgb
            buf = io.BytesIO(); Image.fromarray(a).save(buf, format="JPEG")
            w.write({"__key__": f"{split}{i:05d}", "groundlevel.jpg": buf.getvalue(),
                     "caption.txt": f"{name} {'stripes' if stripes else 'dots'}"})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    _write_pairs(d, "train", 96, 0); _write_pairs(d, "val", 32, 1)
    return d


def _outputs(model, x, t):
    with torch.no_grad(): return model.encode_image(x), model.encode_text(t)


# --- loading and saving ---------------------------------------------------------------------------

def test_tiny_is_seeded_and_leaves_global_rng_alone(clip):
    torch.manual_seed(123); a = torch.rand(1)
    torch.manual_seed(123); E.load_clip("tiny", seed=5); b = torch.rand(1)
    assert torch.equal(a, b)
    assert torch.equal(E.load_clip("tiny", seed=0).model.visual.proj, clip.model.visual.proj)
    assert not torch.equal(E.load_clip("tiny", seed=1).model.visual.proj, clip.model.visual.proj)
    assert (clip.embed_dim, clip.image_size) == (128, 64)


def test_save_load_round_trip(clip, tmp_path):
    E.save_clip(clip, tmp_path/"c")
    assert sorted(p.name for p in (tmp_path/"c").iterdir()) == [E.CONFIG_NAME, E.WEIGHTS_NAME]
    back = E.load_clip(str(tmp_path/"c"))
    x, t = torch.randn(3, 3, 64, 64), clip.tokenizer(["a red market", "snowy road", "x"])
    for a, b in zip(_outputs(clip.model, x, t), _outputs(back.model, x, t)): assert torch.equal(a, b)
    assert back.embed_dim == clip.embed_dim and back.image_size == clip.image_size
    img = Image.fromarray(np.zeros((70, 90, 3), np.uint8))
    assert torch.equal(back.preprocess(img), clip.preprocess(img))


def test_arch_colon_checkpoint(clip, tmp_path):
    from safetensors.torch import save_file
    sd = {k: v.contiguous() for k, v in clip.model.state_dict().items()}
    save_file(sd, str(tmp_path/"w.safetensors")); torch.save(sd, tmp_path/"w.pt")
    x, t = torch.randn(2, 3, 64, 64), clip.tokenizer(["a", "b"])
    for f in ["w.safetensors", "w.pt"]:
        b = E.load_clip(f"{E.TINY}:{tmp_path/f}")
        for u, v in zip(_outputs(clip.model, x, t), _outputs(b.model, x, t)): assert torch.equal(u, v)


class Evil:
    "A class a weights-only loader must refuse to build."


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    torch.save({"x": Evil()}, tmp_path/"evil.pt")
    with pytest.raises(Sat2CapError, match="could not load CLIP"):
        E.load_clip(f"{E.TINY}:{tmp_path/'evil.pt'}")


@pytest.mark.parametrize("spec,msg", [
    ("ViT-Q-99", "unknown CLIP model 'ViT-Q-99'"),
    ("ViT-B-32:nope", "neither a pretrained tag of ViT-B-32"),
    ("no/such/dir", "no such file or directory"),
    ("ckpt.safetensors", "no such file or directory"),
])
def test_unknown_specs(spec, msg):
    with pytest.raises(Sat2CapError, match=msg): E.load_clip(spec)


def test_bare_checkpoint_and_non_clip_folder(tmp_path):
    (tmp_path/"m.safetensors").write_bytes(b"")
    with pytest.raises(Sat2CapError, match="needs its architecture: pass ARCH:"):
        E.load_clip(str(tmp_path/"m.safetensors"))
    with pytest.raises(Sat2CapError, match="is not a saved CLIP"):
        E.load_clip(str(tmp_path))


# --- encoders -------------------------------------------------------------------------------------

def test_ground_frozen_overhead_trainable():
    clip = E.load_clip("tiny")
    ground, overhead = E.GroundEncoder(clip), E.OverheadEncoder(clip)
    sd_g, sd_o = ground.state_dict(), overhead.state_dict()
    assert sd_g.keys() == sd_o.keys() and all(torch.equal(sd_g[k], sd_o[k]) for k in sd_g)
    assert ground.visual is clip.model.visual and overhead.visual is not clip.model.visual
    x = torch.randn(4, 3, 64, 64)
    torch.testing.assert_close(overhead.eval()(x).detach(), ground(x), atol=1e-5, rtol=0)
    overhead.train(); ground.train()
    assert not ground.training and not ground.visual.training and overhead.training
    before = {k: v.clone() for k, v in ground.state_dict().items()}
    g = ground(x)
    assert g.shape == (4, 128) and not g.requires_grad
    loss = -(F.normalize(overhead(x), dim=-1) * F.normalize(g, dim=-1)).sum()
    loss.backward()
    assert all(p.grad is None for p in ground.parameters())
    assert all(p.grad is not None for p in overhead.parameters() if p.requires_grad)
    torch.optim.SGD(overhead.parameters(), lr=0.1).step()
    assert all(torch.equal(before[k], v) for k, v in ground.state_dict().items())
    assert not torch.equal(overhead.visual.proj, ground.visual.proj)


def test_overhead_output_is_unnormalized(clip):
    o = E.OverheadEncoder(clip).eval()
    with torch.no_grad(): y = o(torch.randn(3, 3, 64, 64))
    assert not torch.allclose(y.norm(dim=-1), torch.ones(3))


def test_text_encoder(clip):
    t = E.TextEncoder(clip)
    e = t.encode(["a farmers market", "a quiet forest", "a farmers market"])
    assert e.shape == (3, 128) and not e.requires_grad
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(e[0], e[2])
    assert not torch.allclose(e[0], e[1])
    assert all(not p.requires_grad for n, p in clip.model.named_parameters() if not n.startswith("visual."))


def test_overhead_preprocess(clip):
    img = Image.fromarray(np.full((64, 64, 3), 128, np.uint8))
    assert torch.equal(E.overhead_preprocess(clip)(img), clip.preprocess(img))
    y = E.overhead_preprocess(clip, E.SAT2CAP_OVERHEAD_MEAN, E.SAT2CAP_OVERHEAD_STD)(img)
    expected = (128/255 - torch.tensor(E.SAT2CAP_OVERHEAD_MEAN)) / torch.tensor(E.SAT2CAP_OVERHEAD_STD)
    torch.testing.assert_close(y[:, 0, 0], expected.float(), atol=1e-5, rtol=0)


# --- Hugging Face converter -----------------------------------------------------------------------

def _hf_model(act="quick_gelu", seed=0):
    transformers = pytest.importorskip("transformers", reason="transformers (extra 'hf') is not installed")
    cfg = transformers.CLIPVisionConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=3,
                                        num_attention_heads=4, image_size=48, patch_size=16, projection_dim=40,
                                        hidden_act=act)
    torch.manual_seed(seed)
    return transformers.CLIPVisionModelWithProjection(cfg).eval()


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_hf_conversion_matches(act):
    hf = _hf_model(act)
    with torch.no_grad():   # make layer norms and biases non-trivial so a swapped key would show
        for n, p in hf.named_parameters():
            if p.ndim == 1: p.add_(torch.randn_like(p) * 0.1)
    visual = E.visual_from_hf(hf)
    x = torch.randn(4, 3, 48, 48)
    with torch.no_grad(): ref, got = hf(pixel_values=x).image_embeds, visual(x)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    assert visual.output_dim == 40


def test_load_sat2cap_hf_from_folder(tmp_path):
    hf = _hf_model()
    hf.save_pretrained(tmp_path/"hf")
    enc = E.load_sat2cap_hf(str(tmp_path/"hf"))
    assert isinstance(enc, E.OverheadEncoder) and enc.training
    assert all(p.requires_grad for p in enc.parameters())
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad(): torch.testing.assert_close(enc.eval()(x), hf(pixel_values=x).image_embeds, atol=1e-5, rtol=0)


def test_load_sat2cap_hf_refuses_missing_projection_and_paths(tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers (extra 'hf') is not installed")
    hf = _hf_model()
    transformers.CLIPVisionModel(hf.config).save_pretrained(tmp_path/"bare")
    with pytest.raises(Sat2CapError, match="no visual_projection"):
        E.load_sat2cap_hf(str(tmp_path/"bare"))
    with pytest.raises(Sat2CapError, match="could not load"):
        E.load_sat2cap_hf(str(tmp_path/"missing"), local_files_only=True)


def test_convert_rejects_unknown_keys():
    pytest.importorskip("transformers", reason="transformers (extra 'hf') is not installed")
    sd = dict(_hf_model().state_dict()); sd["vision_model.encoder.layers.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(Sat2CapError, match="unknown keys"): E.convert_hf_clip_vision(sd)


# --- retrieval metric and pretraining -------------------------------------------------------------

def test_retrieval_metrics_by_hand():
    t = F.normalize(torch.tensor([[1., 0.], [0., 1.], [1., 1.]]), dim=-1)
    i = F.normalize(torch.tensor([[1., 0.1], [1., 0.], [1., 1.]]), dim=-1)
    # caption 0: own photo sim .995 < photo 1's 1.0 -> rank 2; caption 1: photos 2 (.707), 0 (.0995) beat 1 (0) -> rank 3;
    # caption 2: own photo (1.0) is best -> rank 1
    assert E.pair_ranks(t, i).tolist() == [2, 3, 1]
    assert E.retrieval_metrics(t, i, ks=(1, 2)) == {"R@1": 0.3333, "R@2": 0.6667, "median_rank": 2.0}   # R@k rounded to 4 places


def test_read_pairs(toy, clip):
    ims, toks, caps = E.read_pairs(E.split_shards(toy, "val"), clip, limit=10)
    assert ims.shape == (10, 3, 64, 64) and ims.dtype == torch.float16 and toks.shape == (10, 24)
    assert caps[:2] == ["red stripes", "green stripes"]
    with pytest.raises(Sat2CapError, match="no shards"): E.split_shards(toy, "test")


def test_pretraining_reduces_loss_and_saves(toy, tmp_path):
    m = E.pretrain_clip(toy, tmp_path/"clip", steps=16, batch_size=32, lr=1e-3, warmup=2, gallery=32, device="cpu")
    saved = json.loads((tmp_path/"clip"/"pretrain_metrics.json").read_text())
    losses = saved["losses"]
    assert len(losses) == 16 and np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.2
    assert m["gallery"] == 32 and m["chance_R@10"] == pytest.approx(10/32)
    assert set(m["caption_to_ground"]) == {"R@1", "R@5", "R@10", "median_rank"}
    back = E.load_clip(str(tmp_path/"clip"))
    assert back.embed_dim == 128


def test_balance_weights_by_hand():
    caps = ["people riding horses in the morning"] * 4 + ["ongoing basketball match in the morning",
                                                          "kids playing in the sand"]
    w = E.balance_weights(caps, 1/6)   # t = 1 pair per concept; horses named 4 times, the morning 5 times
    # horses + morning: 1 - (1 - 1/4)(1 - 1/5) = 0.4; basketball (once) and sand play (once) keep their pairs
    assert w.tolist() == pytest.approx([0.4] * 4 + [1.0, 1.0])
    assert E.balance_weights(caps, 0).tolist() == [1.0] * 6


def test_weighted_batches_follow_the_weights():
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([next(b) for b in [E._weighted_batches(torch.tensor([1., 1., .25, .25]), 1, g)] for _ in range(4000)])
    freq = torch.bincount(draws, minlength=4) / len(draws)
    assert freq.tolist() == pytest.approx([0.4, 0.4, 0.1, 0.1], abs=0.03)   # weight / 2.5
    batch = next(E._weighted_batches(torch.tensor([1., 1., .25, .25]), 4, g))
    assert sorted(batch.tolist()) == [0, 1, 2, 3]                            # without replacement within a batch


def test_balanced_pretraining_samples_fewer_pairs(toy, tmp_path):
    m = E.pretrain_clip(toy, tmp_path/"clip", steps=2, batch_size=16, warmup=1, gallery=16, device="cpu", balance=0.5)
    # the toy captions ("red stripes") name no concept, so they form one concept of 96 pairs kept with 48 / 96
    assert m["train_pairs"] == 96 and m["sampled_pairs"] == 48.0 and m["config"]["balance"] == 0.5


def test_cli_requires_out_and_reports_missing_data(toy, tmp_path):
    f = getattr(E.pretrain_clip_cli, "__wrapped__", E.pretrain_clip_cli)
    with pytest.raises(Sat2CapError, match="--out DIR is required"): f(str(toy))
    with pytest.raises(Sat2CapError, match="no shards"): f(str(tmp_path/"nope"), out=str(tmp_path/"o"))
