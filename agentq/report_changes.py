"""What changed between two runs of a report: per question, per item, per word.

The morning question about a nightly report is "what changed since yesterday?". Two runs are
compared question by question, matched by the question's ``id`` from the schedules file when it
has one (so rewording a question keeps its history) and by its text otherwise. Each question is
``unchanged``, ``changed``, ``added``, ``removed``, ``newly_failing`` or ``recovered``; a changed
one says what changed so that a reader sees at a glance what appeared and what disappeared:

- answers given as items (``agentq.answers``) are compared by item key: items added, removed,
  and changed field by field: exact, whatever words the model chose;
- free-text answers get a word diff, with both the removed and the added words listed.

The comparison reads rows through :class:`ComparableRow`, so this module needs no report type
and ``agentq.reports`` can embed a :class:`RunChanges` ("Changes since the previous run") in
every scheduled run's report. The text, markdown and JSON renderings live here too: ``agentq
reports diff``, the API and the report files all print the same thing.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from agentq.answers import Item, item_identity
from agentq.text import code_span, md_text, printable, utc_time

ChangeKind = Literal["changed", "added", "removed", "newly_failing", "recovered", "unchanged"]
KINDS: tuple[ChangeKind, ...] = (
    "changed",
    "added",
    "removed",
    "newly_failing",
    "recovered",
    "unchanged",
)
DiffFormat = Literal["text", "md", "json"]
DIFF_FORMATS: tuple[DiffFormat, ...] = ("text", "md", "json")
# A word with the comma or semicolon and spacing after it (or, alone, a separator or spacing).
_UNIT = re.compile(r"[^\s,;]+[,;]?\s*|[,;]\s*|\s+")
_SEPARATORS = " ,;\n\t\r"


class ComparableRow(Protocol):
    """What a comparison reads of a report row."""

    @property
    def question(self) -> str: ...
    @property
    def question_id(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def answer(self) -> str | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def items(self) -> list[Item] | None: ...
    @property
    def item_key(self) -> str | None: ...


class Segment(BaseModel):
    """A run of words in a free-text diff: in both answers, only the older, or only the newer."""

    op: Literal["same", "removed", "added"]
    text: str


class FieldChange(BaseModel):
    field: str
    before: str | int | float | bool | None = None
    after: str | int | float | bool | None = None


class ItemChange(BaseModel):
    """One item present in both runs whose fields differ."""

    key: str
    fields: list[FieldChange]


class QuestionChange(BaseModel):
    """One question across the two runs."""

    key: str  # its id from the schedules file, or its text
    question: str  # as the newer run asked it (the older, for a removed question)
    kind: ChangeKind
    before_status: str | None = None
    after_status: str | None = None
    before: str | None = None  # the answer, or "error_code: message"
    after: str | None = None
    removed: list[str] = Field(default_factory=list)  # words or item keys only in the older
    added: list[str] = Field(default_factory=list)  # words or item keys only in the newer
    segments: list[Segment] = Field(default_factory=list)  # a free-text answer's word diff
    item_key: str | None = None
    items_added: list[Item] = Field(default_factory=list)
    items_removed: list[Item] = Field(default_factory=list)
    items_changed: list[ItemChange] = Field(default_factory=list)

    @property
    def shows_outcomes(self) -> bool:
        """Whether the change reads as the two outcomes side by side (a question that appeared,
        went, began or stopped failing, or fails differently) rather than as what differs
        between two answers."""
        return self.kind != "changed" or self.before_status != "succeeded"


class RunChanges(BaseModel):
    """Two runs compared: counts per kind, and each question (those that changed, in a report's
    own "Changes since the previous run"; every one in ``reports diff``)."""

    report: str | None = None
    run: str
    started_at: float
    previous_run: str | None = None  # None: there is no earlier run to compare with
    previous_started_at: float | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    questions: list[QuestionChange] = Field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything at all differs (``reports diff`` exits 1, ``when: changed`` sends)."""
        return any(n for kind, n in self.counts.items() if kind != "unchanged")

    def only_changes(self) -> RunChanges:
        return self.model_copy(
            update={"questions": [q for q in self.questions if q.kind != "unchanged"]}
        )

    def summary(self) -> dict[str, object]:
        """What a webhook carries: the runs, the counts, and which questions changed how."""
        return {
            "report": self.report,
            "run": self.run,
            "previous_run": self.previous_run,
            "counts": self.counts,
            "changed": [
                {"key": q.key, "question": q.question, "kind": q.kind}
                for q in self.questions
                if q.kind != "unchanged"
            ],
        }


def row_keys(rows: Sequence[ComparableRow]) -> list[str]:
    """Each row's matching key: its id, or its text; a repeat gets ``#2``, ``#3``..."""
    seen: Counter[str] = Counter()
    keys = []
    for row in rows:
        base = row.question_id or " ".join(row.question.split())
        seen[base] += 1
        keys.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return keys


def compare_runs(
    before: Sequence[ComparableRow] | None,
    after: Sequence[ComparableRow],
    *,
    run: str,
    started_at: float,
    previous_run: str | None = None,
    previous_started_at: float | None = None,
    report: str | None = None,
) -> RunChanges:
    """Every question of ``after`` (then those only in ``before``) with what changed.

    ``before`` None means there is no earlier run: nothing is compared and no question counts
    as changed (the report says there was nothing to compare with)."""
    changes = RunChanges(
        report=report,
        run=run,
        started_at=started_at,
        previous_run=previous_run,
        previous_started_at=previous_started_at,
    )
    if before is None:
        changes.counts = {kind: 0 for kind in KINDS}
        return changes
    old = dict(zip(row_keys(before), before, strict=True))
    questions = []
    for key, row in zip(row_keys(after), after, strict=True):
        questions.append(_question(key, old.pop(key, None), row))
    for key, row in old.items():
        questions.append(
            QuestionChange(
                key=key,
                question=row.question,
                kind="removed",
                before_status=row.status,
                before=_outcome(row),
            )
        )
    counts = Counter(q.kind for q in questions)
    changes.counts = {kind: counts.get(kind, 0) for kind in KINDS}
    changes.questions = questions
    return changes


def _succeeded(row: ComparableRow) -> bool:
    return row.status == "succeeded"


def _outcome(row: ComparableRow) -> str | None:
    if _succeeded(row):
        return row.answer
    if row.error_code:
        return f"{row.error_code}: {row.error_message or ''}".rstrip(": ")
    return row.status


def _question(key: str, old: ComparableRow | None, new: ComparableRow) -> QuestionChange:
    change = QuestionChange(
        key=key,
        question=new.question,
        kind="unchanged",
        before_status=None if old is None else old.status,
        after_status=new.status,
        before=None if old is None else _outcome(old),
        after=_outcome(new),
    )
    if old is None:
        change.kind = "added"
        return change
    if _succeeded(old) != _succeeded(new):
        change.kind = "recovered" if _succeeded(new) else "newly_failing"
        return change
    if not _succeeded(new):  # failing both times: a change only if it fails differently
        change.kind = "unchanged" if old.error_code == new.error_code else "changed"
        return change
    if old.items is not None and new.items is not None:
        _compare_items(change, old.items, new.items, new.item_key)
    elif (old.answer or "") != (new.answer or ""):
        change.kind = "changed"
        change.segments = word_diff(old.answer or "", new.answer or "")
        change.removed = _words(change.segments, "removed")
        change.added = _words(change.segments, "added")
    return change


def _compare_items(
    change: QuestionChange, old: list[Item], new: list[Item], item_key: str | None
) -> None:
    change.item_key = item_key
    before = {item_identity(item, item_key): item for item in old}
    after = {item_identity(item, item_key): item for item in new}
    change.items_added = [item for key, item in after.items() if key not in before]
    change.items_removed = [item for key, item in before.items() if key not in after]
    for key, item in after.items():
        previous = before.get(key)
        if previous is None or previous == item:
            continue
        fields = [
            FieldChange(field=name, before=previous.get(name), after=item.get(name))
            for name in dict.fromkeys([*previous, *item])
            if previous.get(name) != item.get(name)
        ]
        change.items_changed.append(ItemChange(key=key, fields=fields))
    change.added = [item_identity(i, item_key) for i in change.items_added]
    change.removed = [item_identity(i, item_key) for i in change.items_removed]
    if change.items_added or change.items_removed or change.items_changed:
        change.kind = "changed"


def word_diff(before: str, after: str) -> list[Segment]:
    """The two texts as runs of same, removed and added words.

    Words are compared without the comma, semicolon and spacing that follow them, so that in
    "a, b, c" -> "a, c, d" the change is "b" removed and "d" added (compared with separators as
    words, a diff pairs the commas and reports "b" -> "c", "c" -> "d")."""
    old, new = _UNIT.findall(before), _UNIT.findall(after)
    matcher = difflib.SequenceMatcher(
        None, [_word(u) for u in old], [_word(u) for u in new], autojunk=False
    )
    segments: list[Segment] = []

    def push(op: Literal["same", "removed", "added"], text: str) -> None:
        if not text:
            return
        if segments and segments[-1].op == op:
            segments[-1].text += text
        else:
            segments.append(Segment(op=op, text=text))

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            push("same", "".join(new[j1:j2]))
            continue
        removed, added = "".join(old[i1:i2]), "".join(new[j1:j2])
        # A change's own separators belong to the text around it, not to the change.
        push("removed", removed.rstrip(_SEPARATORS))
        push("added", added.rstrip(_SEPARATORS))
        tail = added or removed
        push("same", tail[len(tail.rstrip(_SEPARATORS)) :])
    return segments


def _word(unit: str) -> str:
    return unit.strip().rstrip(",;")


def _words(segments: list[Segment], op: str) -> list[str]:
    """Each word of the segments of kind ``op``, in order (a run of removed words lists each)."""
    return [
        word
        for segment in segments
        if segment.op == op
        for word in (_word(unit) for unit in _UNIT.findall(segment.text))
        if word
    ]


# --- rendering ----------------------------------------------------------------------------

_KIND_LABEL = {
    "changed": "changed",
    "added": "added",
    "removed": "removed",
    "newly_failing": "newly failing",
    "recovered": "recovered",
    "unchanged": "unchanged",
}
Mark = Callable[[str, str], str]  # (what: removed|added|heading, text) -> the text, marked


def plain_mark(what: str, text: str) -> str:
    """Markers like ``git diff --word-diff=plain``: readable with no colour."""
    if what == "removed":
        return f"[-{text}-]"
    if what == "added":
        return f"{{+{text}+}}"
    return text


def counts_line(changes: RunChanges) -> str:
    return ", ".join(f"{changes.counts.get(k, 0)} {_KIND_LABEL[k]}" for k in KINDS)


def render_changes(changes: RunChanges, fmt: DiffFormat, mark: Mark = plain_mark) -> str:
    if fmt == "json":
        return changes.model_dump_json(indent=2) + "\n"
    if fmt == "md":
        return "\n".join(changes_markdown(changes, level=1)) + "\n"
    return changes_text(changes, mark)


def changes_text(changes: RunChanges, mark: Mark = plain_mark) -> str:
    """For a terminal: a heading, the counts, then each question that is not unchanged."""
    name = f"{printable(changes.report)}: " if changes.report else ""
    if changes.previous_run is None:
        return (
            f"{name}run {changes.run} ({utc_time(changes.started_at)}) has no earlier run "
            "to compare with\n"
        )
    lines = [
        f"{name}run {changes.previous_run} ({utc_time(changes.previous_started_at)}) -> "
        f"run {changes.run} ({utc_time(changes.started_at)})",
        counts_line(changes),
    ]
    for q in changes.questions:
        if q.kind == "unchanged":
            continue
        lines += ["", mark("heading", f"{_KIND_LABEL[q.kind]}: {printable(q.question)}")]
        lines += [f"    {line}" for line in _detail_lines(q, mark)]
    if not changes.changed:
        lines += ["", "nothing changed"]
    return "\n".join(lines) + "\n"


def _detail_lines(q: QuestionChange, mark: Mark) -> list[str]:
    if q.shows_outcomes:
        lines = []
        if q.before is not None:
            lines.append("before: " + mark("removed", printable(q.before)))
        if q.after is not None:
            lines.append("now:    " + mark("added", printable(q.after)))
        return lines
    if q.item_key is not None:
        lines = [mark("removed", f"- {_item_line(i, q.item_key)}") for i in q.items_removed]
        lines += [mark("added", f"+ {_item_line(i, q.item_key)}") for i in q.items_added]
        for item in q.items_changed:
            fields = "; ".join(
                f"{printable(f.field)}: {mark('removed', _value(f.before))} -> "
                f"{mark('added', _value(f.after))}"
                for f in item.fields
            )
            lines.append(f"~ {printable(item.key)}: {fields}")
        return lines
    lines = []
    if q.removed:
        lines.append("removed: " + ", ".join(mark("removed", printable(w)) for w in q.removed))
    if q.added:
        lines.append("added:   " + ", ".join(mark("added", printable(w)) for w in q.added))
    inline = "".join(
        printable(s.text) if s.op == "same" else mark(s.op, printable(s.text)) for s in q.segments
    )
    lines += inline.splitlines() or [""]
    return lines


def _value(value: object) -> str:
    return "(none)" if value is None else printable(str(value))


def _item_line(item: Item, item_key: str) -> str:
    key = _value(item.get(item_key))
    rest = ", ".join(f"{printable(k)}={_value(v)}" for k, v in item.items() if k != item_key)
    return f"{key} ({rest})" if rest else key


def _md_removed(text: str) -> str:
    return f"~~{md_text(text)}~~" if text.strip() else ""


def _md_added(text: str) -> str:
    return f"**{md_text(text)}**" if text.strip() else ""


def changes_markdown(changes: RunChanges, level: int = 2) -> list[str]:
    """The "Changes since the previous run" section (``level``: its heading's depth)."""
    hashes = "#" * level
    title = "Changes since the previous run"
    if changes.report and level == 1:
        title = f"Changes in {md_text(changes.report)}"
    lines = [f"{hashes} {title}", ""]
    if changes.previous_run is None:
        lines += ["No earlier run to compare with: this is the first run kept for this report.", ""]
        return lines
    lines += [
        f"Run {code_span(changes.run)} ({utc_time(changes.started_at)}) compared with run "
        f"{code_span(changes.previous_run)} ({utc_time(changes.previous_started_at)}).",
        "",
        "| " + " | ".join(_KIND_LABEL[k] for k in KINDS) + " |",
        "|" + " --- |" * len(KINDS),
        "| " + " | ".join(str(changes.counts.get(k, 0)) for k in KINDS) + " |",
        "",
    ]
    if not changes.changed:
        return [*lines, "Nothing changed.", ""]
    for q in changes.questions:
        if q.kind == "unchanged":
            continue
        lines += [f"{hashes}# {_KIND_LABEL[q.kind]}: {md_text(q.question)}", ""]
        lines += _md_detail(q)
        lines.append("")
    return lines


def _md_detail(q: QuestionChange) -> list[str]:
    if q.shows_outcomes:
        lines = []
        if q.before is not None:
            lines.append(f"- before: {_md_removed(q.before)}")
        if q.after is not None:
            lines.append(f"- now: {_md_added(q.after)}")
        return lines
    if q.item_key is not None:
        lines = ["| change | item | fields |", "| --- | --- | --- |"]
        for item in q.items_removed:
            key = _md_removed(str(item.get(q.item_key)))
            lines.append(f"| removed | {key} | {_md_fields(item, q.item_key)} |")
        for item in q.items_added:
            key = _md_added(str(item.get(q.item_key)))
            lines.append(f"| added | {key} | {_md_fields(item, q.item_key)} |")
        for changed in q.items_changed:
            fields = "; ".join(
                f"{md_text(f.field)}: {_md_removed(_value(f.before))} → "
                f"{_md_added(_value(f.after))}"
                for f in changed.fields
            )
            lines.append(f"| changed | {md_text(changed.key)} | {fields} |")
        return lines
    lines = []
    if q.removed:
        lines.append("- removed: " + ", ".join(_md_removed(w) for w in q.removed))
    if q.added:
        lines.append("- added: " + ", ".join(_md_added(w) for w in q.added))
    inline = "".join(
        md_text(s.text)
        if s.op == "same"
        else (_md_removed(s.text) if s.op == "removed" else _md_added(s.text))
        for s in q.segments
    )
    return [*lines, "", inline]


def _md_fields(item: Item, item_key: str) -> str:
    return ", ".join(
        f"{md_text(k)}: {md_text(_value(v))}" for k, v in item.items() if k != item_key
    )
