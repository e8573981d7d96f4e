"""From a task's ``Prompt`` to the exact context string a model sees (plain or chat).

Chat formatting lives here, not in tasks (which know no model) nor in backends (which
know no few-shot structure): a backend only renders a list of messages with its template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.backends import Backend, GenerateRequest, LoglikelihoodRequest, Request, RollingRequest
from evalkit.tasks import Prompt, Sample, TaskSpec


@dataclass(frozen=True)
class ChatSettings:
    """``enabled``: apply the model's chat template. ``multiturn``: few-shot exemplars as
    alternating user/assistant turns; otherwise the whole few-shot prompt is one user turn."""

    enabled: bool = False
    multiturn: bool = True

    def describe(self) -> dict[str, Any]:
        return {"chat_template": self.enabled, "fewshot_as_multiturn": self.multiturn if self.enabled else None}


def render_context(prompt: Prompt, chat: ChatSettings, backend: Backend) -> str:
    """The context string for ``prompt``."""
    if not chat.enabled:
        return prompt.as_text()
    if not chat.multiturn or not prompt.shots:
        return backend.apply_chat_template([{"role": "user", "content": prompt.as_text()}])
    # The description opens the first user turn: some templates (Gemma) reject a system role.
    messages = []
    for i, (q, a) in enumerate(prompt.shots):
        messages.append({"role": "user", "content": (prompt.description if i == 0 else "") + q})
        messages.append({"role": "assistant", "content": a})
    messages.append({"role": "user", "content": prompt.query})
    return backend.apply_chat_template(messages)


def sample_requests(sample: Sample, spec: TaskSpec, chat: ChatSettings, backend: Backend, seed: int) -> list[Request]:
    """The backend requests that answer ``sample``."""
    if spec.type == "rolling":
        return [RollingRequest(sample.text or "")]
    if spec.type == "generate":
        g = spec.generation
        return [
            GenerateRequest(
                context=render_context(sample.prompt, chat, backend),
                stop=tuple(g["until"]),
                max_new_tokens=int(g["max_new_tokens"]),
                temperature=float(g["temperature"]),
                top_p=float(g["top_p"]),
                n=int(g["n"]),
                seed=seed,
            )
        ]
    # In chat mode the answer is the assistant's turn itself, so no delimiter precedes it.
    delim = "" if chat.enabled else sample.prompt.target_delimiter
    prompts = sample.option_prompts or [sample.prompt] * len(sample.continuations)
    contexts: dict[Prompt, str] = {}
    reqs: list[Request] = []
    for p, cont in zip(prompts, sample.continuations):
        if p not in contexts:
            contexts[p] = render_context(p, chat, backend)
        reqs.append(LoglikelihoodRequest(contexts[p], delim + cont))
    return reqs
