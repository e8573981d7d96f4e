"""Planning of the prefix-sharing path, without a model: the token trie, row packing and prefill calls."""

from __future__ import annotations

import random

import pytest

from evalkit.backends.hf.packing import build_batch, context_segments, continuation_segment, pack_rows
from evalkit.backends.hf.prefix_tree import build_prefix_tree, common_prefix_len


def _nodes(root):
    return list(root.walk())


def _items(root):
    return sorted(i for n in root.walk() for i in n.items)


@pytest.mark.parametrize("a,b,n", [([1, 2, 3], [1, 2, 4], 2), ([1, 2], [1, 2, 3], 2), ([5], [6], 0), ([], [1], 0),
                                   (list(range(100)), list(range(57)) + [0] * 43, 57)])
def test_common_prefix_len(a, b, n):
    assert common_prefix_len(a, b) == n


def test_fewshot_groups_share_their_exemplars_and_nothing_shorter():
    rng = random.Random(0)
    header = [7, 7]  # shared by all 15 contexts, but saves only 14 x 2 tokens: not worth a pass
    shots = {g: [rng.randrange(100, 200) for _ in range(40)] for g in range(3)}
    contexts = [header + shots[g] + [rng.randrange(300, 400) for _ in range(rng.randrange(2, 9))]
                for g in range(3) for _ in range(5)]
    root = build_prefix_tree(contexts, min_saved=100)  # each group's exemplars save 4 x 40
    assert _items(root) == list(range(15))  # every context exactly once
    assert root.length == 0 and not root.items
    assert sorted(n.length for n in root.children) == [42, 42, 42]
    for node in root.children:
        members = [i for n in node.walk() for i in n.items]
        assert len(members) == 5
        assert all(contexts[i][:42] == contexts[node.anchor][:42] for i in members)


def test_each_context_keeps_a_token_of_its_own():
    # Identical contexts, and one context that is a prefix of the others.
    contexts = [[1] * 20, [1] * 20, [1] * 20 + [2, 3], [1] * 20 + [2, 4]]
    for min_saved, lengths in ((2, [0, 19, 21]), (4, [0, 19])):
        root = build_prefix_tree(contexts, min_saved=min_saved)
        for node in root.walk():
            for i in node.items:
                assert len(contexts[i]) > node.length
        assert _items(root) == [0, 1, 2, 3]
        # [1]*19 is shared by all; [1]*20 + [2] by the last two, 2 tokens further
        assert sorted(n.length for n in _nodes(root)) == lengths


def test_nested_prefixes_form_a_chain_and_short_steps_fold_into_the_parent():
    base = list(range(50))
    contexts = [base + [900 + i] for i in range(3)] + [base + list(range(100, 130)) + [i] for i in range(3)]
    contexts += [base + [60, 61, 62] + [i] for i in range(2)]  # saves 1 x 3 tokens: not its own node
    root = build_prefix_tree(contexts, min_saved=50)  # base saves 7 x 50, the 30 more tokens 2 x 30
    (top,) = root.children
    assert top.length == 50 and len(top.children) == 1 and top.children[0].length == 80
    assert sorted(top.items) == [0, 1, 2, 6, 7]
    assert sorted(top.children[0].items) == [3, 4, 5]
    assert top.children[0].parent is top


def test_empty_context_is_rejected():
    with pytest.raises(ValueError):
        build_prefix_tree([[1, 2], []], min_saved=1)


def test_pack_rows_fills_rows_up_to_width():
    lengths = [100, 30, 250, 60, 60, 300, 5]
    rows = pack_rows(lengths, 256)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    for r in rows:
        assert len(r) == 1 or sum(lengths[i] for i in r) <= 256
    assert len(rows) <= 4


def test_continuations_with_common_first_tokens_share_them():
    import torch

    seg = continuation_segment([1, 2], [([5, 6, 7], 0), ([5, 6, 8], 1), ([5, 9], 2), ([5, 8, 3], 3)])
    assert seg.tokens == [1, 2, 5, 6, 8]  # 5 and 5-6 computed once
    assert seg.parents == [-1, 0, 1, 2, 2] and seg.depths() == [0, 1, 2, 3, 3]
    assert seg.outputs == [(1, 5, 0), (2, 6, 0), (3, 7, 0), (1, 5, 1), (2, 6, 1), (3, 8, 1),
                           (1, 5, 2), (2, 9, 2), (1, 5, 3), (2, 8, 3), (4, 3, 3)]
    batch = build_batch([seg], [[0]], prefix_len=0, pad_id=0, dtype=torch.float32, device="cpu")
    allowed = (batch.attention_mask[0, 0] == 0).tolist()
    assert allowed[3] == [True, True, True, True, False]  # 6 sees trunk, 5, itself
    assert allowed[4] == [True, True, True, False, True]  # 8 (after 5) does not see 6
    assert batch.position_ids[0].tolist() == [0, 1, 2, 3, 3]


def test_packed_mask_lets_branches_see_prefix_and_trunk_but_not_each_other():
    import torch

    # Trunk [11, 12]; continuations [21, 22, 23] and [31]: branches are [21, 22] and [].
    seg = continuation_segment([11, 12], [([21, 22, 23], 0), ([31], 1)])
    assert seg.tokens == [11, 12, 21, 22] and seg.parents == [-1, 0, 1, 2] and seg.trunk == 2
    assert seg.outputs == [(1, 21, 0), (2, 22, 0), (3, 23, 0), (1, 31, 1)]
    other = continuation_segment([41], [([51, 52], 2)])
    batch = build_batch([seg, other], [[0, 1], [1]], prefix_len=3, pad_id=0, dtype=torch.float32, device="cpu")
    assert batch.input_ids.tolist() == [[11, 12, 21, 22, 41, 51], [0, 0, 0, 0, 41, 51]]
    assert batch.position_ids[0].tolist() == [3, 4, 5, 6, 3, 4]
    allowed = (batch.attention_mask[:, 0] == 0)
    assert allowed.shape == (2, 6, 3 + 6)
    row = allowed[0]
    assert row[:, :3].all()  # every real token sees the prefix
    assert row[3, 3:].tolist() == [True, True, True, True, False, False]  # 22 sees trunk, 21, itself
    assert row[4, 3:].tolist() == [False, False, False, False, True, False]  # 41 starts a new segment
    assert row[5, 3:].tolist() == [False, False, False, False, True, True]
    pad = allowed[1]
    assert not pad[0, :3].any() and pad[0, 3:].tolist() == [True, False, False, False, False, False]
    assert batch.owners == [0, 0, 0, 1, 2, 2, 2, 2]
    assert batch.out_cols.tolist() == [1, 2, 3, 1, 4, 5, 4, 5]
    assert batch.out_rows.tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert batch.targets.tolist() == [21, 22, 23, 31, 51, 52, 51, 52]
    assert batch.n_tokens == 6 + 2


def test_prefix_sharing_switch_is_validated(tmp_path):
    from evalkit.config import validate
    from evalkit.errors import ConfigError
    from tests.conftest import run_config

    assert run_config(tmp_path)["model"]["prefix_sharing"] is True  # the default
    validate(run_config(tmp_path, "model.prefix_sharing=false"))
    with pytest.raises(ConfigError, match="model.prefix_sharing"):
        validate(run_config(tmp_path, "model.prefix_sharing=sometimes"))


def test_many_continuations_of_one_context_are_split_into_bounded_segments():
    # 3,000 sentences after one empty context (CrowS-Pairs) must not become one huge row.
    conts = [([100 + i, 7, 8, 9, 10], i) for i in range(3000)]
    segs = context_segments([1], conts, max_tokens=256)
    assert all(len(s) <= 256 for s in segs) and len(segs) > 10
    assert all(s.tokens[:1] == [1] and s.trunk == 1 for s in segs)  # each recomputes the context
    owners = [o for s in segs for _, _, o in s.outputs]
    assert sorted(set(owners)) == list(range(3000)) and len(owners) == 3000 * 5
    # A long context keeps its few continuations together: it is computed once.
    (one,) = context_segments(list(range(1000)), [([7, 8, 9], i) for i in range(4)], max_tokens=256)
    assert len(one.outputs) == 12 and one.trunk == 1000
    # A single continuation longer than the bound still gets its own segment.
    (long_seg,) = context_segments([1, 2], [(list(range(10, 400)), 0)], max_tokens=256)
    assert len(long_seg) == 2 + 389


def test_prefill_calls_split_where_padding_outweighs_a_call():
    from evalkit.backends.hf.batching import first_call

    def anything(n, w):
        return True

    assert first_call([], 40, anything) == 0
    assert first_call([50] * 8, 40, anything) == 8  # equal widths: one call, no padding
    # A long row alone, then the short ones: 240 + 20x10 + 2 calls of 40, not 21 x 200 + 40.
    assert first_call([200] + [10] * 20, 40, anything) == 1
    # Close widths share a call: 3 x 4 padded positions cost less than a second call.
    assert first_call([100, 96, 96, 96, 10], 40, anything) == 4
    # A fixed cost as large as a GPU's keeps everything in one call.
    assert first_call([200] + [10] * 20, 4096, anything) == 21
    # The limit on a call holds, and the rows still split evenly.
    assert first_call([30] * 10, 40, lambda n, w: n * w <= 100) == 3
    assert first_call([300, 10], 40, lambda n, w: n * w <= 100) == 1  # one row always fits
