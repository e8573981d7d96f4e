"""Checkpoint regression testing: paired comparison of run folders and a release gate.

    evalkit compare BASE_RUN NEW_RUN [MORE_RUNS...] [gate=release] [gate.KEY=VALUE...] [-o DIR]

Only run folders are read (``results.json``, ``samples/<task>.jsonl``, ``config.yaml``).
For every task in both runs the per-sample records are matched by item id; a task whose
hash differs (other prompt, shots, data mapping or metric) or whose items hold different
data is refused with a one-line reason. Per row (a card row, or the primary metric of a
task without one):

* 0/1 scores averaged over items: McNemar's exact test and Tango's score interval; other per-sample scores: a seeded
  paired bootstrap (10,000 resamples by default, BCa interval; stratified by group for a
  macro average). Every delta has a confidence interval.
* Aggregate-only metrics (a bias ratio with no per-sample value, or a value that is not
  the mean of its per-sample scores): the bootstrap recomputes the metric on each
  resample of the paired records, with the registered metric function and the arguments
  the run recorded (``metric_specs`` in results.json). A run folder that does not record
  them, or whose records do not reproduce the recorded value, gets "not testable" with
  the reason; under a gate such a row blocks unless ``policy.not_testable: warn``.
* A gate (``conf/gate/*.yaml``) makes every row a non-inferiority test against its
  allowed drop (points on the card's scale, in the direction that counts as worse):
  PASS when the one-sided test shows the drop is smaller than allowed, REGRESSION when
  it shows the drop is larger (Holm across the rows of one comparison; each new run
  against the base is its own family), INCONCLUSIVE otherwise, with about how many items
  would settle it. 0/1 scores use Tango's score test, which stays honest when few or no
  items changed. Rows missing from the new run, not testable, or scored on fewer items
  than the base holds are verdicts of their own; ``policy`` says which block (default:
  all, and inconclusive rows too).

The command writes ``summary.md`` (a pull-request comment), ``junit.xml`` (one test case
per row), ``comparison.json`` and ``report.html``, each with every row's item coverage,
and exits 0 (every gated row passes), 1 (any blocking verdict) or 2 (usage or config
error, one line).

Small samples: no verdict is given for what was not shown; the README's power table says
how many items a release decision needs (thousands per row for a 1-point margin).
"""
