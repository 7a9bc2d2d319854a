"""Notebooks to hand out: each chapter's source as an unexecuted .ipynb, with or without the solutions.

Exercises are `sphinx-exercise` directives in the MyST sources: an `{exercise}` block, then either a
`{solution}` block or a `{solution-start}` ... `{solution-end}` pair whose cells in between (prose and
code) are the solution. `strip_solutions` removes every solution and keeps every exercise.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"^(`{3,}|:{3,})\{([a-z-]+)\}")


def _skip_block(lines: list[str], i: int, fence: str) -> int:
    """Index of the line after the block opened at lines[i] by `fence` (its closing fence line)."""
    j = i + 1
    while j < len(lines) and lines[j].strip() != fence:
        j += 1
    return j + 1


def strip_solutions(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells (jupytext/nbformat cells: cell_type, source) without any exercise solution.

    >>> cells = [{"cell_type": "markdown", "source": "```{exercise}\\nQ?\\n```\\n\\n```{solution-start} x\\n```"},
    ...          {"cell_type": "code", "source": "answer()"},
    ...          {"cell_type": "markdown", "source": "Why.\\n\\n```{solution-end}\\n```\\n\\nAfter."}]
    >>> [c["source"] for c in strip_solutions(cells)]
    ['```{exercise}\\nQ?\\n```', 'After.']
    """
    out: list[dict[str, Any]] = []
    inside = False
    for cell in cells:
        if cell["cell_type"] != "markdown":
            if not inside:
                out.append(cell)
            continue
        lines, kept, i = cell["source"].splitlines(), [], 0
        while i < len(lines):
            match = _FENCE.match(lines[i])
            name = match.group(2) if match else None
            if name == "solution-start" and not inside:
                inside, i = True, _skip_block(lines, i, match.group(1))
            elif name == "solution-end" and inside:
                inside, i = False, _skip_block(lines, i, match.group(1))
            elif name == "solution" and not inside:
                i = _skip_block(lines, i, match.group(1))
            else:
                if not inside:
                    kept.append(lines[i])
                i += 1
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")
        if text.strip():
            out.append({**cell, "source": text})
    return out


def export(root: Path, folder: Path | str, *, student: bool, chapters: list[str] | None = None) -> list[Path]:
    """Write `<folder>/<chapter>.ipynb` for each chapter (default: every written one), unexecuted, without
    outputs; student=True removes the exercise solutions. Returns the paths written."""
    import jupytext
    import nbformat

    from .runner import RunError, available, source_path

    folder = Path(folder)
    names = chapters or available(root)
    sources = {c: source_path(c, root) for c in names}  # unknown or unwritten chapters fail before any write
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for chapter, source in sources.items():
        nb = jupytext.read(source)
        if student:
            nb.cells = [nbformat.from_dict(c) for c in strip_solutions([dict(c) for c in nb.cells])]
            if any(_FENCE.match(line) and "solution" in line for c in nb.cells for line in c.source.splitlines()):
                raise RunError(f"{chapter}: a solution is left after stripping (unbalanced solution-start/end?)")
        nb.metadata.pop("jupytext", None)
        path = folder / f"{chapter}.ipynb"
        nbformat.write(nb, path)
        written.append(path)
    return written
