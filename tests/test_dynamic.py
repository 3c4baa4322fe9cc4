"""Dynamic encoder: hand-checked time/place features, metadata dropout, one image embedding reused for any time."""
import math
import pytest, torch
import torch.nn.functional as F
from sat2cap.dynamic import features, days_in_year, when_meta, DynamicEncoder, Sat2Cap
from sat2cap.core import Sat2CapError

def f(**kw): return features(**{**dict(lat=40., lon=-100., year=2012, doy=180, hour=12.), **kw})

def test_hour_wraps_at_24_not_23():
    torch.testing.assert_close(f(hour=0.), f(hour=24.), atol=1e-6, rtol=0)
    assert (f(hour=0.) - f(hour=23.)).abs().max() > 0.2
    # 23:00 is as far from midnight as 01:00
    torch.testing.assert_close((f(hour=23.) - f(hour=0.)).norm(), (f(hour=1.) - f(hour=0.)).norm())

def test_hand_values():
    x = f(lat=30., lon=-90., year=2025, doy=1, hour=6.)
    # [sin lat, sin lon, sin doy, sin hour, cos lat, cos lon, cos doy, cos hour, (year-2000)/50]
    want = torch.tensor([0.5, -1., 0., 1., math.sqrt(3) / 2, 0., 1., 0., 0.5])
    torch.testing.assert_close(x, want, atol=1e-6, rtol=0)

def test_years_differ_and_leap_years():
    assert f(year=2000)[-1] != f(year=2015)[-1]
    assert days_in_year(torch.tensor([2000, 1900, 2012, 2013])).tolist() == [366, 365, 366, 365]
    # 31 Dec is one day before 1 Jan in both leap and common years
    for y, last in ((2012, 366), (2013, 365)):
        d = (f(year=y, doy=last)[[2, 6]] - f(year=y, doy=1)[[2, 6]]).norm()
        torch.testing.assert_close(d, torch.tensor(2 * math.sin(math.pi / last)), atol=1e-5, rtol=0)

def test_when_meta():
    assert when_meta("2012-07-04 23:15") == dict(year=2012, doy=186, hour=23.25)
    with pytest.raises(Sat2CapError, match="noon"): when_meta("noon")

def test_dropout_only_in_training():
    torch.manual_seed(0)
    dyn = DynamicEncoder(4); torch.nn.init.normal_(dyn.mlp[-1].weight)
    m = [torch.full((2000,), v) for v in (40., -100., 2012., 180., 12.)]
    dropped = (dyn.train()(*m, drop_p=0.3).abs().sum(-1) == 0).float().mean().item()
    assert abs(dropped - 0.3) < 0.04
    assert (dyn.eval()(*m, drop_p=0.3).abs().sum(-1) == 0).sum() == 0
    assert (dyn.train()(*m, drop_p=0.0).abs().sum(-1) == 0).sum() == 0

@pytest.fixture(scope="module")
def model():
    from sat2cap.encoders import load_clip
    clip = load_clip("tiny")
    m = Sat2Cap.from_clip(clip).eval()
    torch.nn.init.normal_(m.dynamic.mlp[-1].weight, std=0.1)
    return m, clip

def test_embed_reuses_image_embedding(model):
    m, clip = model
    x = torch.randn(3, 3, clip.image_size, clip.image_size)
    meta = [torch.tensor([40., 30, 45]), torch.tensor([-100., -90, -120]), torch.tensor([2012, 2015, 2020]),
            torch.tensor([10, 200, 355]), torch.tensor([0., 12, 23])]
    with torch.no_grad():
        img = m.encode_image(x)
        torch.testing.assert_close(m.embed(img, *meta), m(x, *meta))
        torch.testing.assert_close(m.embed(img, use_meta=False), F.normalize(img, dim=-1))
        # a scalar date/time broadcasts over all tiles, and changes the embedding
        night, day = m.embed(img, meta[0], meta[1], 2020, 355, 23.), m.embed(img, meta[0], meta[1], 2020, 355, 11.)
    assert night.shape == (3, clip.embed_dim) and not torch.allclose(night, day)
    torch.testing.assert_close(night.norm(dim=-1), torch.ones(3))
    with pytest.raises(Sat2CapError): m.embed(img, use_meta=True)

def test_zero_init_starts_at_clip():
    from sat2cap.encoders import load_clip
    clip = load_clip("tiny"); m = Sat2Cap.from_clip(clip).eval()
    x = torch.randn(2, 3, clip.image_size, clip.image_size)
    with torch.no_grad():
        torch.testing.assert_close(m(x, 40., -100., 2012, 100, 3.), F.normalize(clip.model.visual(x), dim=-1))

def test_image_norm_scales_the_image_embedding_before_the_offset():
    "With image_norm r the tile embedding is normalize(r * x / |x| + d); 0 keeps the paper's normalize(x + d)."
    from sat2cap.encoders import load_clip
    clip = load_clip("tiny"); torch.manual_seed(0)
    paper, scaled = Sat2Cap.from_clip(clip).eval(), Sat2Cap.from_clip(clip, image_norm=2.0).eval()
    scaled.load_state_dict(paper.state_dict())                        # same weights: image_norm is no parameter
    torch.nn.init.normal_(paper.dynamic.mlp[-1].weight, std=0.5); scaled.dynamic.load_state_dict(paper.dynamic.state_dict())
    x = torch.randn(3, 3, clip.image_size, clip.image_size)
    meta = (40., -100., 2012, 190, 14.)
    with torch.no_grad():
        raw = clip.model.visual(x)                                    # (3, D)
        d = paper.dynamic(*[torch.full((3,), float(v)) for v in meta])  # (3, D)
        torch.testing.assert_close(scaled.encode_image(x).norm(dim=-1), torch.full((3,), 2.0))
        torch.testing.assert_close(scaled(x, *meta), F.normalize(2.0 * raw / raw.norm(dim=-1, keepdim=True) + d, dim=-1))
        torch.testing.assert_close(paper(x, *meta), F.normalize(raw + d, dim=-1))
        assert not torch.allclose(scaled(x, *meta), paper(x, *meta), atol=1e-3)   # |raw| is not 2: the two differ
        torch.testing.assert_close(scaled(x, use_meta=False), paper(x, use_meta=False))  # without the offset: same
