"""Pipelines (``ws.pipelines``): documents in the design document's format (``apiVersion:
train-platform/v1``, ``kind: Pipeline``; ``docs/pipelines.md`` is the reference) validated
with every problem located, versioned in the workspace's catalog, and run here: independent
tasks in parallel within the machine's budget, with retries, timeouts, a persisted state per
run and resume.

Wherever a method takes ``doc``, it is either a path to the document (a ``str`` without a line
break, or any ``os.PathLike``) or the document's text itself (a ``str`` holding at least one
line break, as every document does).

Besides the built-in task types, a task of ``type: python`` calls a Python callable: the one
registered under its ``config.function`` in the ``functions`` given to :meth:`Pipelines.run`
or :meth:`Pipelines.resume`, or, when the name has the form ``module:attr``, the callable
imported from there. It is given one :class:`TaskInvocation` and returns a mapping of output
name to text (or ``None``: the outputs are their declared destinations). An exception fails
the attempt, which is retried as the task's ``retries`` allow; its message is the task's
error and its traceback goes to the task's log.

>>> import trainstore as ts
>>> ws = ts.Workspace.open("memory://pipelines-doctest")
>>> doc = '''
... apiVersion: train-platform/v1
... kind: Pipeline
... metadata: {name: hello}
... spec:
...   tasks:
...     - {name: greet, type: python, config: {function: greet}, outputs: [{name: text}]}
... '''
>>> run = ws.pipelines.run(doc, functions={"greet": lambda task: {"text": "hi"}})
>>> run.ok, run.tasks[0].outputs
(True, {'text': 'hi'})
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from . import _html, _native
from .sources import _utc


@dataclass(frozen=True)
class Issue:
    """One problem of a pipeline document: where it is (a path such as
    ``spec.tasks[3].inputs[0].source`` and a line from 1, 0 when unknown), what kind of
    problem it is (``cycle``, ``dangling_input``, ``bad_quantity``, ``unknown_key``, …) and
    what was expected."""

    path: str
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        where = (f"line {self.line}: " if self.line else "") + (
            f"{self.path}: " if self.path else ""
        )
        return where + self.message

    def _repr_html_(self) -> str:
        return _html.title(
            "pipeline issue", self.kind, f"line {self.line}" if self.line else None
        ) + _html.fields([("path", self.path), ("message", self.message)])


@dataclass(frozen=True)
class AppliedPipeline:
    """A document applied: the pipeline's name, the version holding it, and whether this
    apply made that version (``False``: the latest version held the same text)."""

    name: str
    version: int
    changed: bool

    def _repr_html_(self) -> str:
        made = "applied" if self.changed else "unchanged: the latest version holds this text"
        return _html.title("pipeline", self.name, f"v{self.version}", made)


@dataclass(frozen=True)
class PipelineVersion:
    """One version of a pipeline's document: who applied it, when, and the document's own
    ``metadata.version``."""

    version: int
    author: str
    created_at: datetime
    document_version: str | None

    def _repr_html_(self) -> str:
        return _html.title(
            "pipeline version",
            f"v{self.version}",
            f"by {self.author}",
            _html.iso(self.created_at),
            None if self.document_version is None else f"document {self.document_version}",
        )


@dataclass(frozen=True)
class TaskInvocation:
    """What a ``python`` task's callable is given: the task's inputs (name → value: a
    parameter's value, another task's recorded output, or a path), its outputs (name → the
    declared destination, for those that declare one), its ``config`` and the run's
    parameters, every reference rendered; ``attempt`` counts from 1 over the run's life."""

    run_id: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, str]
    config: dict[str, Any]
    parameters: dict[str, Any]
    attempt: int

    def _repr_html_(self) -> str:
        return _html.title(
            "python task", self.name, f"run {self.run_id}", f"attempt {self.attempt}"
        ) + _html.fields(
            [
                ("inputs", self.inputs),
                ("outputs", self.outputs),
                ("config", self.config),
                ("parameters", self.parameters),
            ]
        )


@dataclass(frozen=True)
class TaskRun:
    """One task of a run: where it stands (``pending``, ``running``, ``succeeded``,
    ``failed``, ``skipped``, ``cancelled``), its attempts over the run's life, how long its
    latest attempt took, what it produced (output name → location or value) and why it failed,
    was skipped or cancelled."""

    name: str
    status: str
    attempts: int
    duration: timedelta | None
    outputs: dict[str, str]
    error: str | None

    def _repr_html_(self) -> str:
        return _html.title(
            "pipeline task",
            self.name,
            self.status,
            _html.count(self.attempts, "attempt"),
            _seconds(self.duration),
        ) + _html.fields([("outputs", self.outputs), ("error", self.error)])


@dataclass(frozen=True)
class PipelineRun:
    """A run of a pipeline: the definition it ran (``pipeline-<name>@v<N>``), the parameters
    in effect, its status (``running``, ``succeeded``, ``failed``, ``cancelled``) and its
    tasks in document order. A failed task fails the run without raising: check :attr:`ok`."""

    run_id: str
    pipeline: str
    definition: str
    status: str
    parameters: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None
    tasks: list[TaskRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the run succeeded (every task succeeded or was skipped)."""
        return self.status == "succeeded"

    @property
    def duration(self) -> timedelta | None:
        """From the run's start to its latest end."""
        return None if self.finished_at is None else self.finished_at - self.started_at

    def task(self, name: str) -> TaskRun:
        """The task called ``name``."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"run {self.run_id} has no task {name!r}")

    @classmethod
    def _from_json(cls, text: str) -> PipelineRun:
        s = json.loads(text)
        return cls(
            run_id=s["run_id"],
            pipeline=s["pipeline"],
            definition=s["definition"],
            status=s["status"],
            parameters=s["parameters"],
            started_at=_utc(s["started_at"]),
            finished_at=None if s["finished_at"] is None else _utc(s["finished_at"]),
            tasks=[
                TaskRun(
                    name=t["name"],
                    status=t["status"],
                    attempts=t["attempts"],
                    duration=None
                    if t["duration_ms"] is None
                    else timedelta(milliseconds=t["duration_ms"]),
                    outputs=t["outputs"],
                    error=t["error"],
                )
                for t in s["tasks"]
            ],
        )

    def _repr_html_(self) -> str:
        head = _html.title(
            "pipeline run",
            _html.code(self.run_id),
            self.status,
            self.definition,
            f"started {_html.iso(self.started_at)}",
            _seconds(self.duration),
        )
        rows = [
            [
                t.name,
                t.status,
                t.attempts,
                _seconds(t.duration),
                ", ".join(f"{k}: {v}" for k, v in t.outputs.items()),
                t.error,
            ]
            for t in self.tasks
        ]
        return head + _html.table(
            ["task", "status", "attempts", "duration", "outputs", "error"], rows, limit=None
        )


@dataclass(frozen=True)
class RunSummary:
    """One run in the history: its id, pipeline, definition, status and times."""

    run_id: str
    pipeline: str
    definition: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration: timedelta | None

    def _repr_html_(self) -> str:
        return _html.title(
            "pipeline run",
            _html.code(self.run_id),
            self.status,
            self.definition,
            f"started {_html.iso(self.started_at)}",
            _seconds(self.duration),
        )

    @classmethod
    def _from_dict(cls, s: dict[str, Any]) -> RunSummary:
        return cls(
            run_id=s["run_id"],
            pipeline=s["pipeline"],
            definition=s["definition"],
            status=s["status"],
            started_at=_utc(s["started_at"]),
            finished_at=None if s["finished_at"] is None else _utc(s["finished_at"]),
            duration=None if s["duration_ms"] is None else timedelta(milliseconds=s["duration_ms"]),
        )


@dataclass(frozen=True)
class ArgoVolume:
    """A persistent volume claim ``claim_name`` mounted into every task's pod at
    ``mount_path`` (an absolute path), called ``name`` in the manifest."""

    name: str
    claim_name: str
    mount_path: str
    read_only: bool = False


@dataclass(frozen=True)
class SecretRef:
    """An environment variable's value read from key ``key`` of the Kubernetes secret
    ``secret``: only the reference is written into a manifest."""

    secret: str
    key: str


Doc = str | os.PathLike[str]
"""A document: a path to it, or its text (a ``str`` with a line break)."""

Function = Callable[[TaskInvocation], Mapping[str, str] | None]
"""What a ``python`` task calls."""


def _seconds(duration: timedelta | None) -> str | None:
    return None if duration is None else f"{duration.total_seconds():.1f} s"


def _text(doc: Doc) -> str:
    """The text of ``doc``: a ``str`` with a line break is the text, anything else a path."""
    if isinstance(doc, str) and "\n" in doc:
        return doc
    if not isinstance(doc, (str, os.PathLike)):
        raise TypeError(f"expected a document's text or a path to it, got {doc!r}")
    with open(doc, encoding="utf-8") as f:
        return f.read()


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"a pipeline parameter cannot hold {value!r}: give JSON values")


class Pipelines:
    """A workspace's pipelines (``ws.pipelines``): validate, apply, history, rollback, run,
    resume, and what runs did."""

    def __init__(self, native: _native.Pipelines, url: str) -> None:
        self._native = native
        self._url = url

    def validate(self, doc: Doc) -> builtins.list[Issue]:
        """Every problem of ``doc`` at once, in the document's order, each with its path and
        line; empty when it is valid. ``type: python`` tasks are valid here."""
        return [Issue(*issue) for issue in self._native.validate(_text(doc))]

    def apply(self, doc: Doc) -> AppliedPipeline:
        """Stores ``doc`` as the next version of its pipeline (named by ``metadata.name``),
        unless the latest version holds the same text. A document with problems raises
        :class:`InvalidInputError` whose message lists every one, with its path and line."""
        return AppliedPipeline(**json.loads(self._native.apply(_text(doc))))

    def history(self, name: str) -> builtins.list[PipelineVersion]:
        """Every version of pipeline ``name``, oldest first; :class:`NotFoundError` if it
        has none."""
        return [
            PipelineVersion(
                version=v["version"],
                author=v["author"],
                created_at=_utc(v["created_at"]),
                document_version=v["document_version"],
            )
            for v in json.loads(self._native.history(name))
        ]

    def document(self, name: str, version: int | str = "latest") -> str:
        """The text of pipeline ``name`` at ``version`` (a number, ``"v3"`` or
        ``"latest"``)."""
        return self._native.document(name, str(version))[1]

    def rollback(self, name: str, version: int) -> AppliedPipeline:
        """Makes version ``version`` of pipeline ``name`` the latest again, as a new
        version (history is never rewritten)."""
        return AppliedPipeline(**json.loads(self._native.rollback(name, version)))

    def run(
        self,
        doc: Doc,
        parameters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        functions: Mapping[str, Function] | None = None,
    ) -> PipelineRun:
        """Applies ``doc`` (see :meth:`apply`) and runs it to its end, here: ``parameters``
        (JSON values; datetimes as ISO-8601 text) override the document's defaults, and
        ``python`` tasks call ``functions`` by name. The run id is ``run_id`` or generated
        (``<pipeline>-<time>-<random>``). A failed task does not raise: the run ends
        ``failed``, its state says why, and :meth:`resume` runs again what did not succeed.

        Ctrl-C (any signal whose handler raises) cancels the run: running tasks are recorded
        ``cancelled``, the state is saved, then the exception (``KeyboardInterrupt``) is
        raised; :meth:`resume` goes on from there. A ``python`` callable cannot be stopped
        from outside and runs on in its thread until it returns.
        """
        native_params = (
            None if parameters is None else json.dumps(dict(parameters), default=_json_default)
        )
        native_functions = None if functions is None else dict(functions)
        return PipelineRun._from_json(
            self._native.run(_text(doc), run_id, native_params, native_functions)
        )

    def resume(self, run_id: str, functions: Mapping[str, Function] | None = None) -> PipelineRun:
        """Resumes run ``run_id`` (failed, cancelled, or stopped by a dead process) with the
        definition and parameters it started with: only the tasks that did not succeed run
        again, and the succeeded ones' outputs serve their references."""
        native_functions = None if functions is None else dict(functions)
        return PipelineRun._from_json(self._native.resume(run_id, native_functions))

    def runs(self) -> builtins.list[RunSummary]:
        """Every run of every pipeline of the workspace, newest first."""
        return [RunSummary._from_dict(r) for r in json.loads(self._native.runs())]

    def get(self, run_id: str) -> PipelineRun:
        """What run ``run_id`` did so far (while it runs elsewhere, too)."""
        return PipelineRun._from_json(self._native.run_state(run_id))

    def logs(self, run_id: str, task: str | None = None) -> str:
        """What the tasks of run ``run_id`` logged (only ``task``'s when given), every
        attempt under a ``== <task> attempt <n>`` line."""
        run = self.get(run_id)
        tasks = [t for t in run.tasks if task is None or t.name == task]
        if task is not None and not tasks:
            raise KeyError(f"run {run_id} has no task {task!r}")
        parts = []
        for t in tasks:
            for attempt in range(1, t.attempts + 1):
                parts.append(f"== {t.name} attempt {attempt}\n")
                parts.append(self._native.log(run_id, t.name, attempt))
        return "".join(parts)

    def export(
        self,
        doc: Doc,
        format: Literal["argo"] = "argo",
        *,
        workspace: str | None = None,
        image: str | None = None,
        pipeline_path: str | None = None,
        volumes: Sequence[ArgoVolume] = (),
        env: Mapping[str, str | SecretRef] | None = None,
        service_account: str | None = None,
        image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None,
        image_pull_secrets: Sequence[str] = (),
        parallelism: int | None = None,
    ) -> dict[str, Any]:
        """``doc`` as an Argo Workflows ``Workflow`` manifest (a dict; dump it as YAML or
        JSON to submit it): one DAG task per pipeline task, each a pod running ``trainstore
        task run`` on the document.

        Every pod opens ``workspace`` (by default this workspace's URL: it must be storage
        all pods share), runs ``image`` where a task names none (``trainstore:<version>``),
        finds the document at ``pipeline_path``, mounts ``volumes`` and gets ``env``: a
        value that looks like a credential must be a :class:`SecretRef`, a literal one is
        refused. ``python`` tasks need their callables importable (``module:attr``) in the
        image.
        """
        if format != "argo":
            raise ValueError(f"unknown export format {format!r}: argo")
        options = {
            "workspace": self._url if workspace is None else workspace,
            "image": image,
            "pipeline_path": pipeline_path,
            "volumes": [
                {
                    "name": v.name,
                    "claim_name": v.claim_name,
                    "mount_path": v.mount_path,
                    "read_only": v.read_only,
                }
                for v in volumes
            ],
            "env": [
                {"name": name, "secret": value.secret, "key": value.key}
                if isinstance(value, SecretRef)
                else {"name": name, "value": value}
                for name, value in (env or {}).items()
            ],
            "service_account": service_account,
            "image_pull_policy": image_pull_policy,
            "image_pull_secrets": list(image_pull_secrets),
            "parallelism": parallelism,
        }
        manifest: dict[str, Any] = json.loads(
            self._native.export_argo(_text(doc), json.dumps(options))
        )
        return manifest

    def __repr__(self) -> str:
        return f"Pipelines({self._url!r})"


def _call(functions: Mapping[str, Any] | None, name: str, invocation: str) -> str:
    """Runs one attempt of a ``python`` task for the native runner: finds the callable
    ``name``, calls it with the :class:`TaskInvocation` ``invocation`` (JSON) describes, and
    answers (JSON) its outputs, or its error with whether a retry may help and the traceback
    for the task's log."""

    def failed(error: str, retryable: bool, log: str | None = None) -> str:
        return json.dumps({"error": error, "retryable": retryable, "log": log})

    try:
        function = _resolve(functions, name)
    except LookupError as e:
        return failed(str(e), retryable=False)
    task = TaskInvocation(**json.loads(invocation))
    try:
        outputs = function(task)
    except Exception as e:
        return failed(f"{type(e).__name__}: {e}", retryable=True, log=traceback.format_exc())
    if outputs is None:
        return json.dumps({"outputs": {}})
    if not isinstance(outputs, Mapping):
        return failed(
            f"the python task's function {name!r} returned {type(outputs).__name__}: it "
            "returns a mapping of output name to text, or None",
            retryable=False,
        )
    bad = sorted(
        str(k) for k, v in outputs.items() if not isinstance(k, str) or not isinstance(v, str)
    )
    if bad:
        return failed(
            f"the python task's function {name!r} returned outputs that are not text: "
            f"{', '.join(bad)}; an output is a location or a value written as text",
            retryable=False,
        )
    return json.dumps({"outputs": dict(outputs)})


def _resolve(functions: Mapping[str, Any] | None, name: str) -> Callable[[TaskInvocation], Any]:
    """The callable ``name`` names: from ``functions``, else imported when it is
    ``module:attr``."""
    if functions is not None and name in functions:
        found: Any = functions[name]
    elif ":" in name:
        module, _, attr = name.partition(":")
        try:
            found = importlib.import_module(module)
            for part in attr.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as e:
            raise LookupError(f"the python task's function {name!r} cannot be imported: {e}") from e
    else:
        given = ", ".join(sorted(functions)) if functions else "none"
        raise LookupError(
            f"no function {name!r} was given for the python task (given: {given}); pass "
            f"functions={{{name!r}: callable}} to run() or resume(), or name an importable "
            "module:attr"
        )
    if not callable(found):
        raise LookupError(f"the python task's function {name!r} is not callable: {found!r}")
    result: Callable[[TaskInvocation], Any] = found
    return result
