"""Reading a batch of questions from a file: plain text, YAML, JSON or CSV.

- ``.txt``: one question per line; blank lines and lines starting with ``#`` are skipped.
- ``.yaml``/``.yml``/``.json``: a list whose items are questions (strings) or mappings
  ``{question, metadata, id}`` (``id`` matches the question across a report's runs), or a
  mapping ``{questions: [...]}``.
- ``.csv``: a header row with a ``question`` column; every other column becomes per-question
  metadata.

Every problem is one line naming the file and where in it (line, row or item), and a file with any
problem is refused whole, so a batch is never half-submitted. Sizes are checked again by
``Client.submit_batch``; they are checked here too so the error can point at the line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml

from agentq.batches import BatchItem
from agentq.errors import BadRequest

FORMATS = {".txt": "text", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".csv": "csv"}
ITEM_KEYS = frozenset({"question", "metadata", "id"})


def load_batch_file(path: Path, *, max_questions: int) -> list[BatchItem]:
    """The questions in ``path``; BadRequest (one line) if the file is unusable."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise BadRequest(
            f"{path.name}: unknown file type {path.suffix or '(none)'!r}; "
            "use .txt, .yaml, .yml, .json or .csv"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    items = parse_batch_text(text, kind, path.name)
    if not items:
        raise BadRequest(f"{path.name}: no questions in the file")
    if len(items) > max_questions:
        raise BadRequest(
            f"{path.name}: {len(items):,} questions; the limit is {max_questions:,} "
            "(AGENTQ_MAX_BATCH_QUESTIONS)"
        )
    return items


def parse_batch_text(text: str, kind: str, name: str) -> list[BatchItem]:
    if kind == "text":
        return _text_items(text, name)
    if kind == "csv":
        return _csv_items(text, name)
    if kind == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"{name}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "cannot be parsed"
            raise BadRequest(f"{name}: invalid YAML{where}: {problem}") from None
    return _structured_items(data, name)


def _text_items(text: str, name: str) -> list[BatchItem]:
    items = []
    for line in text.splitlines():
        question = line.strip()
        if question and not question.startswith("#"):
            items.append(BatchItem(question))
    return items


def _csv_items(text: str, name: str) -> list[BatchItem]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = reader.fieldnames or []
    if "question" not in fields:
        raise BadRequest(f"{name}: the header row has no 'question' column")
    items = []
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise BadRequest(f"{name}: line {line} has more cells than the header")
            question = (row.get("question") or "").strip()
            if not question:
                raise BadRequest(f"{name}: line {line}: the question is empty")
            metadata = {k: v for k, v in row.items() if k != "question" and v not in (None, "")}
            items.append(BatchItem(question, metadata or None))
    except csv.Error as exc:
        raise BadRequest(f"{name}: invalid CSV at line {reader.line_num}: {exc}") from None
    return items


def _structured_items(data: Any, name: str) -> list[BatchItem]:
    if isinstance(data, dict):
        unknown = set(data) - {"questions"}
        if unknown or "questions" not in data:
            raise BadRequest(f"{name}: expected a list of questions or a mapping with 'questions'")
        data = data["questions"]
    if not isinstance(data, list):
        raise BadRequest(f"{name}: expected a list of questions")
    items = []
    for number, entry in enumerate(data, start=1):
        question: Any
        metadata: Any = None
        question_id: Any = None
        if isinstance(entry, str):
            question = entry
        elif isinstance(entry, dict):
            unknown = set(entry) - ITEM_KEYS
            if unknown:
                raise BadRequest(
                    f"{name}: item {number}: unknown key {sorted(unknown)[0]!r} "
                    "(allowed: question, metadata, id)"
                )
            question, metadata = entry.get("question"), entry.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                raise BadRequest(f"{name}: item {number}: metadata must be a mapping")
            question_id = entry.get("id")
            if question_id is not None and not isinstance(question_id, str | int):
                raise BadRequest(f"{name}: item {number}: id must be a string")
        else:
            raise BadRequest(f"{name}: item {number}: expected a question or a mapping")
        if not isinstance(question, str) or not question.strip():
            raise BadRequest(f"{name}: item {number}: the question is empty")
        items.append(
            BatchItem(question.strip(), metadata, None if question_id is None else str(question_id))
        )
    return items
