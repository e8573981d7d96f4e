"""Checkpoint regression testing: paired comparison of run folders and a release gate.

    evalkit compare BASE_RUN NEW_RUN [MORE_RUNS...] [gate=release] [gate.KEY=VALUE...] [-o DIR]

Only run folders are read (``results.json``, ``samples/<task>.jsonl``, ``config.yaml``).
For every task in both runs the per-sample records are matched by item id; a task whose
hash differs (other prompt, shots, data mapping or metric) or whose items hold different
data is refused with a one-line reason. Per row (a card row, or the primary metric of a
task without one):

* 0/1 scores averaged over items: McNemar's exact test; other per-sample scores: a seeded
  paired bootstrap (10,000 resamples by default, BCa interval; stratified by group for a
  macro average). Every delta has a confidence interval.
* Aggregate-only metrics (a bias ratio with no per-sample value, or a value that is not
  the mean of its per-sample scores): the bootstrap recomputes the metric on each
  resample of the paired records, with the registered metric function and the arguments
  the run recorded (``metric_specs`` in results.json). A run folder that does not record
  them, or whose records do not reproduce the recorded value, gets "not testable" with
  the reason; the gate reports such a row and does not fail on it.
* p-values are adjusted with Holm's method across the tested rows of one comparison
  (each new run against the base is its own family).

A gate (``conf/gate/*.yaml``) gives each row an allowed drop in points on the card's scale
and the direction that counts as worse. A row regresses when it moved in its worse
direction by more than the allowed drop *and* the change is significant after Holm. The
command writes ``summary.md`` (a pull-request comment), ``junit.xml`` (one test case per
row), ``comparison.json`` and ``report.html``, and exits 0 (pass), 1 (a row regressed, or
a row could not be compared under a gate: fail closed) or 2 (usage or config error).

Small samples: the bootstrap's p-value is approximate and optimistic on a handful of
items; McNemar's exact test has no such problem. Use limits that give each row a few
hundred items for a release decision.
"""
