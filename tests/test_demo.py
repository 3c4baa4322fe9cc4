"""`sat2cap demo` end to end on a tiny SynthWorld: every stage runs, the report holds the score tables and every
figure, and a second run reuses every finished stage."""
import json, re
import numpy as np
from pathlib import Path
import pytest
from sat2cap.demo import demo, PAPER_PROMPTS

TINY = dict(n_samples=900, region_step=3.0, clip_steps=20, train_steps=200, batch_size=16, gallery=60, caption_steps=20)
# 200 Sat2Cap steps (~15 s on one core) are the fewest at which the headline ordering held for seeds 0-3
FIGS = {"fig1_day_night", "fig2_dynamic_captions", "fig3_dynamic_skiing", "fig4_text_to_overhead",
        "fig5_country_horses", "fig6_localize_soccer", "fig8_overhead_to_ground"}

@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo") / "out"
    demo(d, quick=True, **TINY)
    return d

def test_report_has_scores_and_every_figure(out):
    rep = (out / "report.md").read_text()
    for model in ("clip_baseline", "sat2cap_no_meta", "sat2cap_meta"):
        assert f"| overhead_to_ground | {model} |" in rep and f"| ground_to_overhead | {model} |" in rep
    for p in PAPER_PROMPTS: assert f"| {p} |" in rep, p
    assert "| with dynamic encoder |" in rep and "| without dynamic encoder |" in rep       # night share table
    assert "| field | CLIP on overhead | Sat2Cap, no date/time | Sat2Cap + date/time |" in rep   # caption agreement
    from sat2cap.maps import PARAPHRASES
    for p, w in PARAPHRASES: assert f"| {p} | {w} |" in rep, p                          # held-out paraphrase table
    assert "| Bayes ceiling, with date/time |" in rep and "| sat2cap_meta / ceiling |" in rep
    assert "| posterior-mean CLIP query, with date/time |" in rep and "| sat2cap_meta / CLIP query |" in rep
    assert "| embedding | caption | names the coast |" in rep                            # Fig. 2 captions
    imgs = re.findall(r"!\[([^\]]+)\]\(([^)]+)\)", rep)
    assert {name for name, _ in imgs} == FIGS
    for _, rel in imgs: assert (out / rel).read_bytes()[:4] == b"\x89PNG", rel

def test_map_aucs_equal_hand_computed(out):
    "The figures stage's map AUCs equal sklearn's AUC of the map values against the truth, recomputed here."
    from sklearn.metrics import roc_auc_score
    from sat2cap import maps
    from sat2cap.runs import load_run
    from sat2cap.synthworld import SynthWorld
    fig = json.loads(next(out.glob("figures-*/stage.json")).read_text())["result"]
    assert [a["prompt"] for a in fig["map_auc"]] == PAPER_PROMPTS
    run, world = load_run(next(out.glob("train-*"))), SynthWorld.from_manifest(next(out.glob("world-*")))
    conus = maps.region_for(run, "conus", cache_dir=next(out.glob("figures-*")) / "regions")    # cached by the stage
    for a in fig["map_auc"]:
        truth = maps.prompt_truth(world, a["prompt"], conus.lat, conus.lon, a["when"])
        assert a["positives"] == int(truth.sum()) > 0, a["prompt"]
        for key, meta in (("auc", True), ("no_meta_auc", False)):
            sim = maps.similarity_map(conus, run, a["prompt"], a["when"], use_meta=meta)
            assert a[key] == pytest.approx(roc_auc_score(truth, sim), abs=1e-4), (a["prompt"], key)

def test_clip_query_columns_equal_hand_computed(out):
    "The paraphrase table's and Fig. 4's CLIP-query scores are the posterior-mean query's, recomputed here."
    from sklearn.metrics import roc_auc_score
    from sat2cap import maps, retrieval as R
    from sat2cap.runs import load_run
    from sat2cap.synthworld import SynthWorld
    from sat2cap.world import ACTIVITIES
    fig = json.loads(next(out.glob("figures-*/stage.json")).read_text())["result"]
    run, data = load_run(next(out.glob("train-*"))), next(out.glob("world-*"))
    world, means = SynthWorld.from_manifest(data), R.clip_query_means(run, data)
    conus = maps.region_for(run, "conus", cache_dir=next(out.glob("figures-*")) / "regions")
    scored = [a for a in fig["paraphrase_auc"] if a["clip_query_auc"] is not None]
    assert len(scored) >= 10
    for a in scored[:6]:
        truth = maps.prompt_truth(world, a["prompt"], conus.lat, conus.lon, a["when"])
        sim = R.clip_query_map(conus.lat, conus.lon, run, world, a["prompt"], a["when"], means)
        assert a["clip_query_auc"] == pytest.approx(roc_auc_score(truth, sim), abs=1e-4), a["prompt"]
    assert np.mean([a["clip_query_auc"] for a in scored]) > 0.65     # above chance (0.5) even with a 20-step CLIP
    rep = (out / "report.md").read_text()
    assert "| prompt | when | auc | no_meta_auc | clip_query_auc | positives |" in rep
    for row in fig["text_to_overhead"]:                                     # Fig. 4: agreement of the query's top tiles
        assert 0 <= row["activity@4 CLIP query"] <= 1 and row["activity@4 CLIP query"] * 4 == round(row["activity@4 CLIP query"] * 4)
    horses = next(r for r in fig["text_to_overhead"] if r["prompt"] == "people riding horses")
    assert horses["activity@4 CLIP query"] >= 0.75 > horses["activity chance"]

def test_headline_ordering_and_ceiling(out):
    "Held-out overhead->ground retrieval: with date/time > without > CLIP baseline, all below the Bayes ceiling."
    ev = json.loads(next(out.glob("evaluate-*/stage.json")).read_text())["result"]
    assert ev["gallery"] == TINY["gallery"]
    g = ev["overhead_to_ground"]
    meta, no_meta, clip = g["sat2cap_meta"], g["sat2cap_no_meta"], g["clip_baseline"]
    assert meta["R@10"] > no_meta["R@10"] > clip["R@10"] > 10 / ev["gallery"]        # the paper's headline, above chance
    assert meta["median_rank"] < clip["median_rank"] and meta["median_rank"] <= no_meta["median_rank"] <= clip["median_rank"]
    for d in ("overhead_to_ground", "ground_to_overhead"):
        for m, v in ev[d].items():
            assert v["R@1"] <= v["R@5"] <= v["R@10"], (d, m)                          # recall grows with k
            for k in ("R@1", "R@5", "R@10"):                                            # a count of queries out of the gallery
                assert v[k] * ev["gallery"] == pytest.approx(round(v[k] * ev["gallery"]), abs=0.01), (d, m, k)
    c = ev["ceiling"]                                       # the Bayes ceiling: date/time helps, far better than chance
    assert c["gallery"] == ev["gallery"] and c["with_meta"]["R@10"] >= c["no_meta"]["R@10"] > 10 / ev["gallery"]
    assert c["with_meta"]["R@1"] > 2 / ev["gallery"] and c["with_meta"]["median_rank"] <= c["no_meta"]["median_rank"]
    assert c["with_meta"]["R@10"] >= meta["R@10"] and c["no_meta"]["R@10"] >= no_meta["R@10"]   # no model beats the ceiling
    frac = c["fraction_of_ceiling"]["sat2cap_meta"]["R@10"]
    assert frac == pytest.approx(meta["R@10"] / c["with_meta"]["R@10"], abs=1e-3) and frac <= 1
    o = c["clip_oracle"]                                    # the posterior-mean query in the frozen CLIP's space
    assert o["R@1"] <= o["R@5"] <= o["R@10"] <= c["with_meta"]["R@10"] and o["R@10"] > 10 / ev["gallery"]
    assert c["fraction_of_clip_oracle"]["R@10"] == pytest.approx(meta["R@10"] / o["R@10"], abs=1e-3)

def test_rerun_reuses_every_stage(out, capsys):
    before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/stage.json")}
    assert len(before) == 5
    demo(out, quick=True, **TINY)
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/stage.json")}
    assert after == before                            # no stage ran again, no new stage folder
    assert "reusing" in capsys.readouterr().out.lower()

def test_demo_cli_options_reach_the_config_and_bad_ones_are_refused(tmp_path, monkeypatch, capsys):
    "The CLI's step and size options become DemoConfig overrides; options left out keep the (quick) defaults."
    import sat2cap.demo as D
    from sat2cap.core import Sat2CapError
    seen = {}
    def fake(out, quick, **kw):
        seen.update(kw, quick=quick, cfg=D.DemoConfig(**{**(D.QUICK if quick else {}), **kw}))
        (Path(out) / "report.md").write_text("# r\n## Figures\n")
        return Path(out) / "report.md"
    monkeypatch.setattr(D, "demo", fake)
    (tmp_path / "o").mkdir()
    D.demo_cli.__wrapped__(str(tmp_path / "o"), quick=True, clip_steps=7, seed=3, clip_balance=0.02, clip_batch_size=32)
    assert seen["quick"] and seen["cfg"].clip_steps == 7 and seen["cfg"].seed == 3 and seen["cfg"].clip_balance == 0.02
    assert seen["cfg"].clip_batch_size == 32 and D.DemoConfig().clip_batch_size == 64
    assert (seen["cfg"].train_steps, seen["cfg"].n_samples) == (D.QUICK["train_steps"], D.QUICK["n_samples"])
    assert "train_steps" not in seen                                    # not given: not overridden
    for kw, msg in ((dict(clip_steps=0), "--clip-steps must be positive"), (dict(seed=-1), "--seed must be 0 or more"),
                    (dict(n_samples=999), "--n-samples must be 1000 or more"),
                    (dict(clip_balance=1.0), r"--clip-balance must be in \[0, 1\)"),
                    (dict(clip_batch_size=0), "--clip-batch-size must be positive"),
                    (dict(caption_batch_size=0), "--caption-batch-size must be positive"),
                    (dict(image_norm=-1.0), "--image-norm must be 0 or more")):
        with pytest.raises(Sat2CapError, match=msg): D.demo_cli.__wrapped__(str(tmp_path / "o"), **kw)

@pytest.fixture
def stages(monkeypatch):
    "Run each demo stage's work at once, without caching, and record the settings it was given."
    import sat2cap.demo as D
    seen = []
    def fake_stage(out, name, settings, fn):
        seen.append(settings)
        return Path(out) / name, fn(Path(out) / name)
    monkeypatch.setattr(D, "run_stage", fake_stage)
    return seen

def test_clip_balance_and_batch_size_reach_pretraining_and_the_stage_settings(tmp_path, monkeypatch, stages):
    "A balanced or other-batch CLIP is a different stage; the defaults are pretrain-clip's (balance 0.0155, 64 pairs)."
    import sat2cap.demo as D
    calls = []
    monkeypatch.setattr(D, "pretrain_clip", lambda world, d, **kw: calls.append(kw) or dict.fromkeys(("R@10", "chance_R@10", "gallery"), 0))
    for kw in (dict(), dict(clip_balance=0.0), dict(clip_batch_size=128)):
        D.clip_stage(tmp_path, D.DemoConfig(**kw), tmp_path / "world")
    assert [(c["balance"], c["batch_size"]) for c in calls] == [(0.0155, 64), (0.0, 64), (0.0155, 128)]
    assert [(s["balance"], s["batch_size"]) for s in stages] == [(0.0155, 64), (0.0, 64), (0.0155, 128)]
    assert len({D.stage_hash(s) for s in stages}) == 3                   # three CLIP stages, three folders

def test_image_norm_reaches_training_and_the_stage_settings(tmp_path, monkeypatch, stages):
    "Sat2Cap with the image embedding as it comes (0) is a different train stage from the default (1, the preset's)."
    import sat2cap.demo as D
    configs = []
    monkeypatch.setattr(D, "make_config", lambda world, d, **kw: configs.append(kw) or kw)
    monkeypatch.setattr(D, "train", lambda tc: None)
    for r in (None, 0.0):
        D.train_stage(tmp_path, D.DemoConfig() if r is None else D.DemoConfig(image_norm=r), tmp_path / "world", tmp_path / "clip")
    assert [c["image_norm"] for c in configs] == [1.0, 0.0] and D.PRESETS["synthworld"]["image_norm"] == 1.0
    assert [s["image_norm"] for s in stages] == [1.0, 0.0] and D.stage_hash(stages[0]) != D.stage_hash(stages[1])
    assert configs[0]["eval_every"] == configs[0]["ckpt_every"] == 1167     # 3,500 steps: 1,167, 2,334, 3,500; not 4 of each

def test_caption_batch_size_reaches_the_captioner_and_the_stage_settings(tmp_path, monkeypatch, stages):
    "The caption decoder trains with the demo's batch (default 64, train-captioner's), and another batch is another stage."
    import sat2cap.demo as D
    seen = []
    monkeypatch.setattr(D, "load_run", lambda run: None)
    monkeypatch.setattr(D.SynthWorld, "from_manifest", staticmethod(lambda world: None))
    monkeypatch.setattr(D.R, "clip_query_means", lambda r, world: None)
    monkeypatch.setattr(D, "map_figures", lambda *a: {})
    monkeypatch.setattr(D, "retrieval_figures", lambda *a: {})
    monkeypatch.setattr(D, "caption_figures", lambda d, r, w, world, steps, batch_size: seen.append((steps, batch_size)) or {})
    for b in (None, 128):
        D.figures_stage(tmp_path, D.DemoConfig() if b is None else D.DemoConfig(caption_batch_size=b), tmp_path / "w", tmp_path / "r")
    assert seen == [(1500, 64), (1500, 128)]
    assert [s["caption_batch_size"] for s in stages] == [64, 128] and D.stage_hash(stages[0]) != D.stage_hash(stages[1])
