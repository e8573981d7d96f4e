"""Top-p sampling: the nucleus from a head of the vocabulary is bit for bit the full sort's."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from evalkit.backends.hf.generation import NUCLEUS_HEADS, nucleus  # noqa: E402

VOCAB = 49152


def by_sort(probs, top_p: float):
    """The nucleus as the sampler always computed it: a full descending sort."""
    sorted_p, order = probs.sort(descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p < top_p
    return torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])


def distributions():
    """Peaked to flat, with ties at and around the nucleus' edge."""
    g = torch.Generator().manual_seed(0)
    for scale in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        for _ in range(25):
            yield torch.softmax(torch.randn(VOCAB, generator=g) * scale, -1)
    for _ in range(5):  # 50 equal tokens at random places: the 0.9 nucleus ends among them,
        tied = torch.full((VOCAB,), -20.0)  # and topk and sort order ties differently
        tied[torch.randperm(VOCAB, generator=g)[:50]] = 5.0
        yield torch.softmax(tied, -1)
    step = torch.full((VOCAB,), -30.0)
    step[:3] = torch.tensor([3.0, 2.0, 2.0])  # a tie straddling the edge of a 0.5 nucleus
    yield torch.softmax(step, -1)
    exact = torch.zeros(VOCAB)
    exact[:4] = 0.25  # the sums before each token hit 0.5 exactly
    yield exact


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95])
def test_nucleus_equals_the_full_sort(top_p):
    for probs in distributions():
        assert torch.equal(nucleus(probs, top_p), by_sort(probs, top_p))


def test_nucleus_of_a_peaked_distribution_needs_no_sort(monkeypatch):
    probs = torch.softmax(torch.randn(VOCAB, generator=torch.Generator().manual_seed(1)) * 8, -1)
    expected = by_sort(probs, 0.9)
    assert 0 < int((expected > 0).sum()) < NUCLEUS_HEADS[0]

    def no_sort(*_a, **_k):
        raise AssertionError("sorted the whole vocabulary")

    monkeypatch.setattr(torch.Tensor, "sort", no_sort)
    assert torch.equal(nucleus(probs, 0.9), expected)
