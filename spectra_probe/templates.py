"""Prompt templates as data, and the prompt builder that renders them.

Every template is a plain :meth:`str.format` string (no Jinja). Probing prompts are split into a **prefix**
that depends only on the user (the context) and a **suffix** that carries the per-category part, so the
backend can encode the prefix once and share it across the K categories:

* ``yesno``: prefix ``probe_prefix`` {context}; suffix ``probe_suffix`` {category}.
* hierarchical L2 probes: prefix ``probe_prefix`` + ``branch_prefix`` {parent}; suffix ``probe_suffix``.
* ``name``: prefix ``name_prefix`` {context}; suffix ``name_suffix`` {category} (the scored continuation).
* ``choice``: prefix ``probe_prefix``; then ``choice_suffix`` {options}, the options being one
  ``choice_option`` {label} {category} line each; in likelihood mode the scored continuations are
  ``choice_answer`` {label}.
* ``reranker``: prefix ``reranker_prefix`` {system} {instruction} {context}; suffix ``reranker_suffix``
  {category}.
* ``dg`` (generation): the prompt ``dg`` {context} {k} {categories}.
* steering (``spectra probe --requests``): the user's context becomes ``steer_context`` {context} {statement}
  before any of the above is rendered, with the statement ``steer_positive`` / ``steer_negative`` {target}
  (several target categories joined by ``steer_join``), or in the multi-statement form ``steer_multi``
  {statements}, one ``steer_item`` {statement} line per target category (:meth:`PromptTemplates.steered_context`).

The multi-choice prompt reuses ``probe_prefix`` so that it shares the context encoding of the yes/no probe
(as in the paper's Algorithm 2). The reranker template reproduces the published Qwen3-Reranker format::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n<Instruct>: {instruction}\\n<Query>: {query}
    \\n<Document>: {document}<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n

with the query being the user's context and the document the category label; the split point is after
``<Document>:`` so the per-category document (with its leading space) is the suffix.

Chat models (``chat=True``): the user turn is rendered with ``tokenizer.apply_chat_template`` around a
sentinel placed where the per-category text goes; the text after the sentinel (end of the user turn and the
generation prompt) is appended to every suffix, so the per-category part stays a suffix and the shared part
stays a prefix. In chat mode, answers scored as continuations (``name_suffix``, ``choice_answer``) lose their
leading whitespace, since the assistant turn starts on a fresh line. ``chat_kwargs`` is passed to
``apply_chat_template`` (e.g. ``{"enable_thinking": false}`` for Qwen3). The reranker prompt is literal
chat markup already and ignores ``chat``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from spectra_eval.validation import SpectraInputError

RERANKER_SYSTEM = (
    'Judge whether the Document meets the requirements based on the Query and the Instruct provided. '
    'Note that the answer can only be "yes" or "no".'
)
RERANKER_INSTRUCTION = "Given a user's recent activity, judge whether the user will engage with the item category"

# Fields each template may (and, first set, must) use.
_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "probe_prefix": ({"context"}, {"context"}),
    "probe_suffix": ({"category"}, {"category"}),
    "branch_prefix": ({"parent"}, {"parent"}),
    "name_prefix": ({"context"}, {"context"}),
    "name_suffix": ({"category"}, {"category"}),
    "choice_suffix": ({"options"}, {"options"}),
    "choice_option": ({"label", "category"}, {"label", "category"}),
    "choice_answer": ({"label"}, {"label"}),
    "dg": ({"context", "k"}, {"context", "k", "categories"}),
    "reranker_prefix": ({"context"}, {"context", "system", "instruction"}),
    "reranker_suffix": ({"category"}, {"category"}),
    "steer_positive": ({"target"}, {"target"}),
    "steer_negative": ({"target"}, {"target"}),
    "steer_multi": ({"statements"}, {"statements"}),
    "steer_item": ({"statement"}, {"statement"}),
    "steer_context": ({"context", "statement"}, {"context", "statement"}),
}
#: The steering templates: part of a run's fingerprint only when it has requests.
STEER_FIELDS = ("steer_positive", "steer_negative", "steer_join", "steer_multi", "steer_item", "steer_context")

_SENTINEL = "\u2063SPECTRA-SUFFIX\u2063"


@dataclass(frozen=True)
class PromptTemplates:
    """All prompt templates of a probe run (see the module docstring for the prefix/suffix layout)."""

    probe_prefix: str = "A user's recent activity:\n{context}\n"
    probe_suffix: str = 'Question: will the user engage with the category "{category}" next? Answer Yes or No.\nAnswer:'
    branch_prefix: str = 'The user is considering the domain "{parent}".\n'
    name_prefix: str = "A user's recent activity:\n{context}\nThe category the user will engage with next is:"
    name_suffix: str = " {category}\n"
    choice_suffix: str = "Which category will the user engage with next?\n{options}\nAnswer:"
    choice_option: str = "{label}. {category}"
    choice_answer: str = " {label}\n"
    dg: str = (
        "A user's recent activity:\n{context}\n"
        "List the {k} categories the user is most likely to engage with next, most likely first, "
        "as one comma-separated line. Choose from: {categories}.\nAnswer:"
    )
    reranker_prefix: str = (
        "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
        "<Instruct>: {instruction}\n<Query>: {context}\n<Document>:"
    )
    reranker_suffix: str = " {category}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    reranker_system: str = RERANKER_SYSTEM
    reranker_instruction: str = RERANKER_INSTRUCTION
    chat: bool = False
    system: str | None = None
    chat_kwargs: dict = field(default_factory=dict)
    steer_positive: str = "The user says they want more {target} next."
    steer_negative: str = "The user says they want no {target} next."
    steer_join: str = " or "
    steer_multi: str = "The user has stated these preferences:\n{statements}"
    steer_item: str = "- {statement}"
    steer_context: str = "{context}\n{statement}"

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ data round trip

    def validate(self, source: str = "templates") -> None:
        """Check every template names exactly the fields it may use (and at least the required ones)."""
        for name, (required, allowed) in _FIELDS.items():
            text = getattr(self, name)
            if not isinstance(text, str):
                raise SpectraInputError(f"{source}: template {name!r} must be a string")
            try:
                used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as exc:
                raise SpectraInputError(f"{source}: template {name!r} is not a valid format string ({exc})") from None
            if missing := required - used:
                raise SpectraInputError(f"{source}: template {name!r} lacks the field {{{sorted(missing)[0]}}}")
            if extra := used - allowed:
                raise SpectraInputError(
                    f"{source}: template {name!r} uses unknown field {{{sorted(extra)[0]}}} "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        if not isinstance(self.chat_kwargs, dict):
            raise SpectraInputError(f"{source}: 'chat_kwargs' must be a JSON object")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ steering

    def steer_statement(self, targets: Sequence[str], direction: str, form: str = "single") -> str:
        """The preference statement of a request: ``+`` -> ``steer_positive``, ``-`` -> ``steer_negative``;
        ``single`` names the targets joined by ``steer_join``, ``multi`` makes one ``steer_item`` per target
        inside ``steer_multi``."""
        one = self.steer_positive if direction == "+" else self.steer_negative
        if form == "multi":
            items = "\n".join(self.steer_item.format(statement=one.format(target=t)) for t in targets)
            return self.steer_multi.format(statements=items)
        return one.format(target=self.steer_join.join(targets))

    def steered_context(self, context: str, targets: Sequence[str], direction: str, form: str = "single") -> str:
        """The context a steered probe renders its prompts from: ``steer_context`` {context} {statement}."""
        return self.steer_context.format(context=context, statement=self.steer_statement(targets, direction, form))

    @classmethod
    def from_dict(cls, data: dict, source: str = "templates") -> "PromptTemplates":
        """Build from a (possibly partial) mapping; absent fields keep their defaults, unknown ones are errors."""
        if not isinstance(data, dict):
            raise SpectraInputError(f"{source}: expected a JSON object of templates")
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - known):
            raise SpectraInputError(
                f"{source}: unknown template field {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        try:
            return cls(**data)
        except SpectraInputError as exc:  # name the file rather than the generic source
            raise SpectraInputError(str(exc).replace("templates: ", f"{source}: ", 1)) from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PromptTemplates":
        path = Path(path)
        if not path.is_file():
            raise SpectraInputError(f"{path}: no such template file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpectraInputError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))

    def save(self, path: str | os.PathLike) -> None:
        from spectra_eval.io import write_json

        write_json(path, self.to_dict())


class PromptBuilder:
    """Render :class:`PromptTemplates` for one tokenizer (needed only in chat mode).

    Every ``*_prefix`` method returns the shared prefix for a user, every ``*_suffix`` method the suffix for
    one category or answer; ``prefix + suffix`` is the full prompt.
    """

    def __init__(self, templates: PromptTemplates, tokenizer=None):
        self.t = templates
        self.tokenizer = tokenizer
        if templates.chat and (tokenizer is None or not getattr(tokenizer, "chat_template", None)):
            raise SpectraInputError("templates: chat=true but the model's tokenizer has no chat template")
        self._tail = self._chat_split("")[1] if templates.chat else ""

    def _chat_split(self, user_head: str) -> tuple[str, str]:
        """Render a chat user turn ``user_head + <suffix>``; return (text before the suffix, text after it)."""
        messages = ([{"role": "system", "content": self.t.system}] if self.t.system else []) + [
            {"role": "user", "content": user_head + _SENTINEL}
        ]
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.t.chat_kwargs
        )
        if text.count(_SENTINEL) != 1:
            raise SpectraInputError("templates: the chat template alters the user message; cannot split prefix/suffix")
        head, tail = text.split(_SENTINEL)
        return head, tail

    def _prefix(self, user_head: str) -> str:
        return self._chat_split(user_head)[0] if self.t.chat else user_head

    def _answer(self, text: str) -> str:
        return text.lstrip() if self.t.chat else text

    # yes/no probing (flat and hierarchical)
    def probe_prefix(self, context: str, parent: str | None = None) -> str:
        head = self.t.probe_prefix.format(context=context)
        if parent is not None:
            head += self.t.branch_prefix.format(parent=parent)
        return self._prefix(head)

    def probe_suffix(self, category: str) -> str:
        return self.t.probe_suffix.format(category=category) + self._tail

    # category-name likelihood: the name is the answer, so in chat mode it follows the generation prompt
    def name_prefix(self, context: str) -> str:
        head = self.t.name_prefix.format(context=context)
        return self._prefix(head) + self._tail if self.t.chat else head

    def name_suffix(self, category: str) -> str:
        return self._answer(self.t.name_suffix.format(category=category))

    # multi-choice classification
    def choice_options(self, labels: Sequence[str], categories: Sequence[str]) -> str:
        return "\n".join(self.t.choice_option.format(label=lab, category=c) for lab, c in zip(labels, categories))

    def choice_question(self, labels: Sequence[str], categories: Sequence[str]) -> str:
        """The per-prompt question (after the shared context prefix), ending where the answer starts."""
        return self.t.choice_suffix.format(options=self.choice_options(labels, categories)) + self._tail

    def choice_answer(self, label: str) -> str:
        return self._answer(self.t.choice_answer.format(label=label))

    # direct generation
    def dg_prompt(self, context: str, k: int, categories: Sequence[str]) -> str:
        head = self.t.dg.format(context=context, k=k, categories=", ".join(categories))
        return self._prefix(head) + self._tail if self.t.chat else head

    # Qwen3-Reranker-style relevance
    def reranker_prefix(self, context: str) -> str:
        return self.t.reranker_prefix.format(
            context=context, system=self.t.reranker_system, instruction=self.t.reranker_instruction
        )

    def reranker_suffix(self, category: str) -> str:
        return self.t.reranker_suffix.format(category=category)
