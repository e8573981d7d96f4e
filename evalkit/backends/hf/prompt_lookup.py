"""Draft tokens by prompt lookup: a row's next tokens guessed from its own earlier text.

Chain-of-thought answers copy a great deal from their prompt (numbers and names of a
GSM8K question, the items a BBH question lists) and from themselves (a small model's
repeated lines). If the row's last ``n`` tokens occurred before, the tokens that followed
them then are a cheap guess at what follows now. A decoding step runs the guesses after
the row's next token in the same forward call; the row keeps the guesses its own picks
agree with (``continuous``), so its text is exactly the one decoding token by token
gives, and a step that guessed right yields several tokens for one read of the weights
and of the prefix keys/values. No draft model: the index is a dict per n-gram length.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Longest n-gram matched; shorter ones are tried when it has not occurred before.
MAX_NGRAM = 3


class PromptLookup:
    """The tokens of one row (prompt, then what it generated) and where each n-gram
    (``1..MAX_NGRAM`` tokens) last occurred with a token after it."""

    def __init__(self, tokens: Sequence[int]) -> None:
        self.tokens: list[int] = []
        self._after: list[dict[tuple[int, ...], int]] = [{} for _ in range(MAX_NGRAM)]
        for tok in tokens:
            self.append(tok)

    def append(self, tok: int) -> None:
        """Add the row's next token: the n-grams that end just before it now have a follower."""
        seq = self.tokens
        i = len(seq)
        seq.append(tok)
        for n in range(1, min(MAX_NGRAM, i) + 1):
            self._after[n - 1][tuple(seq[i - n : i])] = i

    def draft(self, k: int) -> tuple[int, list[int]]:
        """``(n, up to k tokens)``: the tokens that followed the latest earlier occurrence
        of the row's last ``n`` tokens (the longest ``n`` that occurred before); ``(0, [])``
        when none did."""
        seq = self.tokens
        if k > 0:
            for n in range(min(MAX_NGRAM, len(seq)), 0, -1):
                at = self._after[n - 1].get(tuple(seq[-n:]))
                if at is not None:
                    return n, seq[at : at + k]
        return 0, []


class DraftPlanner:
    """How many guessed tokens a decoding step runs per row (the step's width ``q``).

    A step costs about ``a + b * positions`` (positions: slots x ``q``). A guess pays when
    the tokens it is expected to add are worth more than the positions it costs: few rows
    in flight (the weights' read dominates a step), or rows whose guesses keep being right
    (a model repeating itself). Each row's chance that a guessed token is kept is its own
    record so far, pulled towards every row's record for matches of the same n-gram
    length; the step costs ``a`` and ``b`` are fitted to the steps timed so far (they
    differ by machine: a GPU reads its weights so fast that wide steps cost little more
    than narrow ones). The choice changes only the speed: the texts are the same for any.
    """

    #: Weight of the shared record, in guesses, when estimating one row's chance.
    PRIOR = 4.0
    #: Memory of the cost fit: each new step counts this much more than the one before.
    DECAY = 0.97

    def __init__(self, most: int, knee: float) -> None:
        """``most``: guessed tokens per row at most; ``knee``: the cost of a step's fixed
        part in positions (``a / b``) assumed until steps have been timed. The fitted knee
        stays within 4x of it: steps of one width for a while (all slots full) leave the
        slope to noise."""
        self.most, self.prior_knee = most, knee
        self.kept = [1.0] * (MAX_NGRAM + 1)  # per match length: guessed tokens kept ...
        self.tried = [2.0] * (MAX_NGRAM + 1)  # ... of those run (a prior of one half)
        self._sums = [0.0] * 5  # exponentially weighted n, x, y, xx, xy of (positions, seconds)

    def chance(self, matched: int, kept: int, tried: int) -> float:
        """The chance that a guessed token of a row (``kept`` of its ``tried`` guesses so
        far, this one from a match of ``matched`` tokens) is kept."""
        shared = self.kept[matched] / self.tried[matched]
        return (kept + self.PRIOR * shared) / (tried + self.PRIOR)

    def width(self, slots: int, rows: list[tuple[float, int]]) -> int:
        """The step's ``q`` for ``rows`` (``(chance, tokens guessed)`` per live row) among
        ``slots`` running slots: the one with the most tokens expected per second."""
        knee = self.knee
        best_q, best = 1, len(rows) / (knee + slots)
        for q in range(2, min(self.most, max((n for _, n in rows), default=0)) + 2):
            expected = sum(sum(p**i for i in range(min(n, q - 1) + 1)) for p, n in rows)
            rate = expected / (knee + slots * q)
            if rate > best:
                best_q, best = q, rate
        return best_q

    def record(self, matched: int, kept: int, tried: int) -> None:
        """A row's step: ``kept`` of the ``tried`` tokens guessed from a ``matched`` match."""
        if tried:
            self.kept[matched] += kept
            self.tried[matched] += tried

    def timed(self, positions: int, seconds: float) -> None:
        """A step of ``positions`` took ``seconds``."""
        x, y = float(positions), seconds
        self._sums = [s * self.DECAY + v for s, v in zip(self._sums, (1.0, x, y, x * x, x * y))]

    @property
    def knee(self) -> float:
        """``a / b`` of the step cost fitted to the timed steps and two pseudo-steps on the
        prior line (scaled to the steps' mean time), in positions."""
        n, x, y, xx, xy = self._sums
        k0 = self.prior_knee
        if n < 1:
            return k0
        scale = (y / n) / (k0 + x / n)  # seconds per position on the prior line through the mean
        for px in (1.0, 2 * k0 + 1):
            py = scale * (k0 + px)
            n, x, y, xx, xy = n + 1, x + px, y + py, xx + px * px, xy + px * py
        var = n * xx - x * x
        b = (n * xy - x * y) / var
        a = (y - b * x) / n
        knee = a / b if b > 0 else float("inf")
        return min(4 * k0, max(k0 / 4, knee))
