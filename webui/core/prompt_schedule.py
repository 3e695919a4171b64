"""Prompt editing and alternation over the sampling steps: which text is in force at which step.

Why its own module: this is the step arithmetic of A1111's scheduling (a `when` read as a fraction or a step,
clamped, alternation making every step a boundary), applied to the tree `prompt_grammar` reads. It turns one
sub-prompt into `[(end_step, text), ...]`; attention weights are read from each text afterwards.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from webui.core.errors import ValidationError
from webui.core.prompt_grammar import Alternation, Edit, Node, Seq, parse_schedule_tree


def _when_step(when: str, steps: int, decimal_point_is_fraction: bool) -> int:
    """The last step of the "from" part, as A1111 computes it (clamped to `steps`, may be <= 0)."""
    value = float(when)
    is_fraction = "." in when if decimal_point_is_fraction else value < 1
    if is_fraction:
        value *= steps
    if value >= steps:  # also catches inf from an absurdly long number
        return steps
    return int(value) if value > -steps else -steps


def _walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, the options and both sides of edits included."""
    yield node
    children: Sequence[Node | None] = ()
    if isinstance(node, Seq):
        children = node.items
    elif isinstance(node, Edit):
        children = (node.before, node.after)
    elif isinstance(node, Alternation):
        children = node.options
    for child in children:
        if child is not None:
            yield from _walk(child)


def _boundaries(tree: Seq, steps: int, decimal_point_is_fraction: bool) -> list[int]:
    """The steps at which some part of the prompt may change, plus the last step."""
    found = {steps}
    for node in _walk(tree):
        if isinstance(node, Alternation):
            found.update(range(1, steps + 1))
        elif isinstance(node, Edit):
            when = _when_step(node.when, steps, decimal_point_is_fraction)
            if when >= 1:
                found.add(when)
    return sorted(found)


def _render(node: Node | None, step: int, steps: int, decimal_point_is_fraction: bool) -> str:
    """The prompt text in force at 1-based `step`."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, Seq):
        return "".join(_render(item, step, steps, decimal_point_is_fraction) for item in node.items)
    if isinstance(node, Alternation):
        return _render(node.options[(step - 1) % len(node.options)], step, steps, decimal_point_is_fraction)
    use_before = step <= _when_step(node.when, steps, decimal_point_is_fraction)
    return _render(node.before if use_before else node.after, step, steps, decimal_point_is_fraction)


def parse_prompt_schedule(
    prompt: str, steps: int, *, decimal_point_is_fraction: bool = False
) -> list[tuple[int, str]]:
    """`[(end_step, text), ...]`: the prompt text in force up to and including each `end_step` (1-based).

    Consecutive steps with the same text are merged (A1111 keeps them apart; the lookup result is the same).
    The last `end_step` is always `steps`. Raises ValidationError for `steps` < 1.
    """
    if steps < 1:
        raise ValidationError(f"Steps must be at least 1 to schedule a prompt (got {steps}).")
    tree = parse_schedule_tree(prompt)
    if tree is None:
        return [(steps, prompt)]
    schedule: list[tuple[int, str]] = []
    for step in _boundaries(tree, steps, decimal_point_is_fraction):
        text = _render(tree, step, steps, decimal_point_is_fraction)
        if schedule and schedule[-1][1] == text:
            schedule[-1] = (step, text)
        else:
            schedule.append((step, text))
    return schedule
