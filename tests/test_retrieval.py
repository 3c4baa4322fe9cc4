"""Retrieval: top-k against hand computation, the night-share and land-cover scores on hand examples, and the
dynamic encoder's effect on day/night rankings (none without metadata)."""
import types
import numpy as np, pytest, torch
from sat2cap.core import Sat2CapError
from sat2cap.dynamic import Sat2Cap
from sat2cap.retrieval import (Gallery, Queries, topk, night_share, landcover_agreement, activity_agreement,
                               activity_landcovers, photo_is_night, query_embeddings, night_scores, prompt_activity)

def test_topk_matches_hand_computation():
    q = np.array([[3., 4.], [0., -2.]])
    g = np.array([[1., 0.], [0., 1.], [1., 1.], [-1., 0.], [0., -5.]])
    # cosines of q0=(.6,.8): [.6, .8, 1.4/sqrt2=.98995, -.6, -.8]; of q1=(0,-1): [0, -1, -.7071, 0, 1]
    idx, sim = topk(q, g, k=3)
    assert idx[0].tolist() == [2, 1, 0]
    assert idx[1, 0] == 4 and set(idx[1, 1:].tolist()) == {0, 3}        # tie of cosine 0
    np.testing.assert_allclose(sim[0], [1.4 / np.sqrt(2), .8, .6], atol=1e-6)
    np.testing.assert_allclose(sim[1], [1, 0, 0], atol=1e-6)

def test_topk_errors_name_the_problem():
    with pytest.raises(Sat2CapError, match="gallery size 2"): topk([[1., 0.]], [[1., 0.], [0., 1.]], k=3)
    with pytest.raises(Sat2CapError, match="does not match"): topk([[1., 0., 0.]], [[1., 0.]], k=1)

def test_night_share_hand_example():
    night = np.array([1, 0, 0, 1, 1, 0], bool)
    assert night_share([[0, 1, 2]], night) == pytest.approx(1 / 3)
    assert night_share([[0, 3, 4], [1, 2, 5]], night) == pytest.approx(0.5)
    assert night_share(np.array([[3, 4]]), night) == 1.0

def test_landcover_and_activity_agreement_hand_example():
    # classes: 0 water, 1 farmland, 2 city
    cover = np.array([[.6, .3, .1], [.1, .5, .4], [.2, .2, .6], [.0, .9, .1], [.4, .35, .25]])
    assert landcover_agreement([1, 3, 4], cover, [1]) == pytest.approx(2 / 3)    # dominant: farm, farm, water
    assert landcover_agreement([[2], [4]], cover, [0, 2]) == 1.0
    p = np.arange(10) / 10                                                      # 0.0 .. 0.9; half the best = .45
    assert activity_agreement([9, 8, 0], p) == pytest.approx(2 / 3)
    assert activity_agreement([9, 4], p) == 0.5                                 # .4 < .45
    assert activity_agreement([9, 7], p, frac=0.85) == 0.5                      # .7 < .765
    # mean activity probability by dominant class: water (.1+.3)/2=.2, farm (.8+.6)/2=.7, city .3
    assert activity_landcovers(cover, [.1, .8, .3, .6, .3]) == [1]
    assert activity_landcovers(cover, [.1, .8, .4, .6, .3], frac=0.5) == [1, 2]

def test_night_from_truth_or_hour():
    assert photo_is_night(dict(truth=dict(phase="night"), hour=19.0))
    assert not photo_is_night(dict(truth=dict(phase="dusk"), hour=21.0))
    assert photo_is_night(dict(hour=2.5)) and not photo_is_night(dict(hour=12.0))

def test_prompt_activity():
    assert prompt_activity("person on a long hike") == "hiking"
    with pytest.raises(Sat2CapError, match="names no SynthWorld activity"): prompt_activity("a purple cow")

def _toy(seed=0, D=8, T=6, N=40):
    torch.manual_seed(seed); rng = np.random.default_rng(seed)
    model = Sat2Cap(torch.nn.Identity(), D).eval()
    run = types.SimpleNamespace(model=model)
    emb = rng.normal(size=(N, D)); emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    g = Gallery([str(i) for i in range(N)], emb.astype(np.float32), np.zeros((N, 4, 4, 3), np.uint8),
                rng.random(N) < 0.3, rng.uniform(0, 24, N), [""] * N, [str(i % T) for i in range(N)])
    q = Queries([str(i) for i in range(T)], rng.normal(size=(T, D)).astype(np.float32), np.zeros((T, 4, 4, 3), np.uint8),
                rng.uniform(25, 49, T), rng.uniform(-120, -70, T), ["2012-07-04"] * T)
    return run, g, q

def test_no_meta_rankings_ignore_the_hour_and_meta_ones_do_not():
    run, g, q = _toy()
    a, b = query_embeddings(run, q, 23, use_meta=False), query_embeddings(run, q, 8, use_meta=False)
    np.testing.assert_array_equal(a, b)
    torch.nn.init.normal_(run.model.dynamic.mlp[-1].weight, std=1.0)
    m23, m8 = query_embeddings(run, q, 23), query_embeddings(run, q, 8)
    assert not np.allclose(m23, m8)
    # hand computation of one query at 23:00 through the model's own embed
    e = run.model.embed(torch.tensor(q.emb[:1]), torch.tensor([q.lat[0]], dtype=torch.float32), torch.tensor([q.lon[0]], dtype=torch.float32),
                        torch.tensor([2012.]), torch.tensor([186.]), torch.tensor([23.]))
    np.testing.assert_allclose(m23[0], e[0].detach().numpy(), atol=1e-6)
    s = night_scores(run, g, q, k=5)
    assert s["without dynamic encoder"]["23:00"] == s["without dynamic encoder"]["08:00"]
    assert s["gallery night share"] == pytest.approx(g.night.mean())

def test_meta_query_needs_an_hour():
    run, g, q = _toy()
    with pytest.raises(Sat2CapError, match="needs an hour"): query_embeddings(run, q, None)
