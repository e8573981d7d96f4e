"""Execute untrusted, model-written programs (HumanEval, MBPP) without risk to the host.

Each program runs in its own process tree with a fresh private working folder, hard
limits on CPU time, wall time, memory, processes, file size and open files, no network,
no view of the user's home, the project or the data, a scrubbed environment, and every
process killed at the end. ``isolation.py`` says which OS mechanism provides this here
(bubblewrap, util-linux unshare, or, loudly, resource limits only); ``_boot.py`` is the
code that runs first inside the sandbox; ``process.py`` runs one program and classifies
its outcome; ``pool.py`` runs many in parallel. Execution is opt-in:
``sandbox.allow_code_execution=true``.
"""

from evalkit.sandbox.isolation import Isolation, choose
from evalkit.sandbox.pool import run_programs
from evalkit.sandbox.process import OUTCOMES, Execution, run_program
from evalkit.sandbox.settings import FLAG, Limits, SandboxSettings

__all__ = ["FLAG", "OUTCOMES", "Execution", "Isolation", "Limits", "SandboxSettings", "choose", "run_program",
           "run_programs"]
