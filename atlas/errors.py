"""User-facing errors.

Every problem caused by what the user asked for (an unknown model, method, class, layer; a missing data
folder; weights that are not available offline) is raised as :class:`AtlasError`. The CLI prints its
message on one line and exits with status 2; nothing is written before the error is raised.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class AtlasError(Exception):
    """An error the user can fix; ``str(err)`` is a single line naming the value and what is accepted."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def unknown_choice(kind: str, value: object, choices: Iterable[str]) -> AtlasError:
    """Return an error for ``value`` not among ``choices``, naming the closest matches or all choices."""
    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif len(choices) <= 20:
        hint = "choose from: " + ", ".join(choices)
    else:
        hint = f"choose from {len(choices)} names, e.g. " + ", ".join(choices[:8]) + ", ..."
    return AtlasError(f"unknown {kind} {value!r}; {hint}")


class Unsupported(AtlasError):
    """A method cannot visualise a target on the loaded model (e.g. DeepInversion on a model without
    BatchNorm). The runner records the job as failed with this one-line reason and goes on."""


class SourceSkipped(Exception):
    """Raised by a target source that does not apply to a model (its one-line reason): the plan records it
    and goes on, as a multi-model preset asks for e.g. concepts only where a model has a concept layer."""
