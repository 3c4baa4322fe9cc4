"""Tests of sat2cap.captions: the decoder memorizes captions, save/load round-trips, scoring on hand examples."""
import json, math
import numpy as np, pytest, torch
import torch.nn.functional as F
from sat2cap.core import Sat2CapError, torch_threads
from sat2cap.captions import (WordVocab, CaptionerConfig, ClipCapDecoder, Captioner, fit_captioner, greedy_decode,
                              beam_decode, caption_loss, pad_captions, save_captioner, load_captioner, score_captions,
                              add_noise, noise_for, GPT2ClipCap, when_fields, EOS)
from sat2cap.synthworld import LANDCOVER, ACTIVITIES, PHASES, SEASONS

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    "Tiny models: on a busy shared CPU, thread hand-offs cost more than they save (restored after this module)."
    with torch_threads(1): yield

CAPS = ["a beach at night.", "a snowy mountain in the morning.", "people hiking in a forest at noon.",
        "a busy city street in the evening.", "farmland in summer.", "kids playing in the sand on the beach in summer"]


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(1)
    emb = torch.randn(len(CAPS), 16)
    cap = fit_captioner(emb, CAPS, CaptionerConfig(dropout=0.0), steps=100, batch_size=len(CAPS), lr=3e-3)
    return emb, cap


def test_vocab_round_trip_and_unknown_words():
    v = WordVocab.build(CAPS)
    for c in CAPS: assert v.decode(v.encode(c)) == c.lower()
    assert v.encode("a spaceship")[1] == 2 and v.encode("a")[-1] == EOS
    with pytest.raises(Sat2CapError, match="must start with"): WordVocab(["a", "b", "c"])


def test_overfits_and_reproduces_exactly(toy):
    emb, cap = toy
    assert cap(emb) == [c.lower() for c in CAPS]                  # greedy
    assert cap(emb, beam=3) == [c.lower() for c in CAPS]          # beam search
    assert cap(emb * 5.0) == cap(emb)                             # any scale: inputs are normalized
    with pytest.raises(Sat2CapError, match="width 8"): cap(torch.randn(2, 8))


def test_save_load_identical(toy, tmp_path):
    emb, cap = toy
    cap2 = load_captioner(save_captioner(cap, tmp_path / "c"))
    ids = pad_captions(cap.vocab, CAPS, cap.cfg.max_len)
    with torch.no_grad(): assert torch.equal(cap.model(F.normalize(emb, dim=-1), ids), cap2.model(F.normalize(emb, dim=-1), ids))
    assert cap2(emb) == cap(emb) and cap2.cfg == cap.cfg
    cfg = json.loads((tmp_path / "c" / "captioner.json").read_text()); cfg["bogus"] = 1
    (tmp_path / "c" / "captioner.json").write_text(json.dumps(cfg))
    with pytest.raises(Sat2CapError, match="bogus"): load_captioner(tmp_path / "c")


def test_words_no_caption_repeats_are_written_once(toy, tmp_path):
    emb, cap = toy
    assert "beach" in cap.vocab.once and "in" not in cap.vocab.once     # "in ... in ..." occurs in a training caption
    torch.manual_seed(0)
    m = ClipCapDecoder(CaptionerConfig(embed_dim=8, vocab_size=6, max_len=5, dropout=0.0)).eval()
    with torch.no_grad(): m.head.weight.zero_(); m.head.weight[5] = 1.0; m.norm.bias.fill_(1.0)   # id 5 always wins
    e = F.normalize(torch.randn(1, 8), dim=-1)
    assert greedy_decode(m, e, 5)[0] == [5, 5, 5, 5, 5]
    once = torch.tensor([False, False, False, False, False, True])
    g = greedy_decode(m, e, 5, once)[0]
    assert g[0] == 5 and 5 not in g[1:]
    assert beam_decode(m, e[0], 5, beam=3, once=once).count(5) == 1
    save_captioner(cap, tmp_path / "c")                                   # a captioner saved before `once` existed
    (tmp_path / "c" / "vocab.json").write_text(json.dumps(cap.vocab.itos))
    assert load_captioner(tmp_path / "c").vocab.once == []
    (tmp_path / "c" / "vocab.json").write_text(json.dumps({"once": ["beach"]}))
    with pytest.raises(Sat2CapError, match="no word list"): load_captioner(tmp_path / "c")


def test_decoder_is_causal_and_loss_ignores_padding():
    torch.manual_seed(0)
    m = ClipCapDecoder(CaptionerConfig(embed_dim=8, vocab_size=20, max_len=6, dropout=0.0)).eval()
    e, ids = F.normalize(torch.randn(2, 8), dim=-1), torch.tensor([[5, 6, EOS, 0, 0, 0], [7, 8, 9, 10, EOS, 0]])
    ids2 = ids.clone(); ids2[:, 4:] = 13
    with torch.no_grad():
        assert torch.allclose(m(e, ids)[:, :4], m(e, ids2)[:, :4], atol=1e-6)
        # what follows <eos> never changes the loss
        ids3 = ids.clone(); ids3[0, 3:] = 17
        assert torch.allclose(caption_loss(m, e, ids), caption_loss(m, e, ids3))
    assert len(greedy_decode(m, e, 6)[0]) <= 6
    assert beam_decode(m, e[0], 6, beam=1, length_penalty=0) == greedy_decode(m, e[:1], 6)[0]


def test_noise_sets_the_cosine():
    torch.manual_seed(0)
    e = F.normalize(torch.randn(4000, 64), dim=-1)
    assert abs((e * add_noise(e, 0.75)).sum(-1).mean().item() - 0.8) < 0.01
    assert noise_for(0.8) == pytest.approx(0.75)
    assert torch.equal(add_noise(e, 0.0), e)


def _truth(phase, season_, cover, act, snow=0.0):
    c = np.zeros(len(LANDCOVER)); a = np.zeros(len(ACTIVITIES))
    for k, v in cover.items(): c[LANDCOVER.index(k)] = v
    for k, v in act.items(): a[ACTIVITIES.index(k)] = v
    return dict(phase=PHASES.index(phase), season=SEASONS.index(season_), cover=c, snow=snow, activity=a)


def test_score_captions_hand_examples():
    rows = [_truth("night", "winter", dict(beach=0.7, water=0.3), dict(beachwalk=.5, sailing=.3, scenery=.2)),
            _truth("morning", "spring", dict(mountain=0.9, forest=0.1), dict(hiking=.5, skiing=.3, camping=.1, scenery=.1), snow=0.6),
            _truth("afternoon", "summer", dict(downtown=1.0), dict(street=.6, driving=.4))]
    truth = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    sc = score_captions(["nighttime on the beach in winter",            # night ✓ beach ✓ winter ✓
                         "person on a long hike in the forest at dusk in the snow",  # hike ✓ forest ✗ (0.1 < 0.2) dusk ✗ snow ✓
                         "a busy street in downtown"], truth)            # street ✓
    assert sc["time"] == dict(agree=0.5, mentions=2/3, n=2)
    assert sc["season"] == dict(agree=1.0, mentions=1/3, n=1)
    assert sc["landcover"] == dict(agree=0.5, mentions=2/3, n=2)
    assert sc["snow"]["agree"] == 1.0 and sc["activity"]["agree"] == 1.0
    assert sc["all"]["agree"] == pytest.approx(6/8)
    assert math.isnan(score_captions(["a caption naming nothing"], {k: v[:1] for k, v in truth.items()})["time"]["agree"])


def test_when_fields():
    assert when_fields("2012-05-20 08:00") == dict(year=2012, doy=141, hour=8.0, month=5 + 19/30.4)
    with pytest.raises(Sat2CapError, match="bad date"): when_fields("bad date")


def test_gpt2_plugs_in(toy, tmp_path):
    transformers = pytest.importorskip("transformers", reason="the optional 'hf' extra (transformers) is not installed")
    emb, cap = toy
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=len(cap.vocab), n_positions=32, n_embd=64, n_layer=2, n_head=2,
                                  resid_pdrop=0., embd_pdrop=0., attn_pdrop=0., eos_token_id=EOS, bos_token_id=EOS)
    g = fit_captioner(emb, CAPS, model=GPT2ClipCap(transformers.GPT2LMHeadModel(cfg), embed_dim=16, prefix_len=4, max_len=20),
                      vocab=cap.vocab, steps=100, batch_size=len(CAPS), lr=3e-3)
    assert g(emb) == [c.lower() for c in CAPS]
    import re
    torch.save({re.sub(r"^mapper\.", "clip_project.model.", k): v for k, v in g.model.state_dict().items()}, tmp_path / "cc.pt")
    fresh = GPT2ClipCap(transformers.GPT2LMHeadModel(cfg), embed_dim=16, prefix_len=4, max_len=20).load_clipcap(tmp_path / "cc.pt")
    assert Captioner(fresh, cap.vocab)(emb) == g(emb)
    torch.save({"gpt.nothing": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(Sat2CapError, match="not a ClipCap"): fresh.load_clipcap(tmp_path / "bad.pt")
