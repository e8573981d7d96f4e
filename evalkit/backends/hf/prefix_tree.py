"""Which token prefixes to compute once: a compressed trie over request contexts.

Contexts are sorted as token sequences; neighbours' longest common prefixes then describe
the trie (a node is a run of contexts whose shortest pairwise common prefix is longer
than their parent's). A node becomes a *shared prefix* (its key/value cache computed once
and reused by everything below it) only when that saves at least ``min_saved`` token
computations: ``(contexts below - 1) x (tokens it adds to its nearest shared ancestor)``.
Other nodes are folded into that ancestor, whose contexts then recompute those tokens.

The trie is built over each context minus its last token, so every context keeps at
least one token of its own below its prefix: the model's output at a context's last
token is what scores its first continuation token (or starts its generation).

Pure Python, no model: planning only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

#: A prefix is shared (computed once, its cache reused) when sharing it saves at least
#: this many token computations: below that, one more forward pass and batches split by
#: prefix cost more than recomputing the tokens.
MIN_SAVED_TOKENS = 256


@dataclass
class PrefixNode:
    """A shared prefix: the first ``length`` tokens of context ``anchor`` (and of every
    context below this node). ``items`` are the contexts attached directly here (their own
    tokens start at ``length``); ``children`` are longer shared prefixes below it."""

    length: int
    anchor: int
    items: list[int] = field(default_factory=list)
    children: list["PrefixNode"] = field(default_factory=list)
    parent: "PrefixNode | None" = field(default=None, repr=False)

    def walk(self) -> Iterator["PrefixNode"]:
        """This node and its descendants, parents before children (depth first)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def n_items(self) -> int:
        return sum(len(n.items) for n in self.walk())


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the common case for few-shot contexts: one C-level comparison
        return n
    lo, hi = 0, n  # invariant: a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def build_prefix_tree(contexts: Sequence[Sequence[int]], min_saved: int) -> PrefixNode:
    """The trie of ``contexts`` (token lists, each at least one token long).

    Returns the root (``length`` 0, nothing shared); every context index appears in the
    ``items`` of exactly one node.
    """
    if any(len(c) == 0 for c in contexts):
        raise ValueError("every context needs at least one token")
    keys = [list(c[:-1]) for c in contexts]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    lcp = [common_prefix_len(keys[order[i]], keys[order[i + 1]]) for i in range(len(order) - 1)]
    root = PrefixNode(0, order[0] if order else -1)
    # Explicit stack: the trie of nested contexts can be deeper than Python's recursion limit.
    stack: list[tuple[int, int, PrefixNode]] = [(0, len(order), root)] if order else []
    while stack:
        lo, hi, shared = stack.pop()
        if hi - lo == 1:
            shared.items.append(order[lo])
            continue
        m = min(lcp[lo : hi - 1])
        if m > shared.length and (hi - lo - 1) * (m - shared.length) >= min_saved:
            node = PrefixNode(m, order[lo], parent=shared)
            shared.children.append(node)
            shared = node
        # Runs of contexts that share more than m tokens are the node's sub-tries.
        start = lo
        for i in range(lo, hi - 1):
            if lcp[i] == m:
                stack.append((start, i + 1, shared))
                start = i + 1
        stack.append((start, hi, shared))
    return root
