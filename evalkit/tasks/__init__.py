"""Declarative tasks: YAML specs in ``tasks/`` turned into samples that describe requests.

Tasks never call a model. ``build_samples`` returns, per dataset item, the prompt(s) and
what to ask of them; the runner turns those into backend requests in bulk.
"""

from evalkit.tasks.samples import Prompt, Sample, build_samples
from evalkit.tasks.spec import TaskSpec, available_tasks, load_task

__all__ = ["Prompt", "Sample", "TaskSpec", "available_tasks", "build_samples", "load_task"]
