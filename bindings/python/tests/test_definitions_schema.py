"""``docs/definitions.schema.json`` against the parser it describes.

Every definitions document the docs and examples show passes the schema, and so does what
trainstore writes itself (the registry's state, the Python classes' documents). Each document
below goes both to the schema and to the parser, ``Definitions::parse`` and the checks of
``plan``, as ``trainstore features plan -f FILE`` runs them; both must accept it, or both
refuse it, so neither can change without the other. Where they knowingly differ, the cases
are listed too, so that a change there shows as well.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import trainstore as ts

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "docs" / "definitions.schema.json"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "examples" / "README.md"]
GOLDEN_REGISTRY = REPO / "tests/golden/workspace/catalog/items/feature-registry/versions"
TOP_LEVEL = {"entities", "feature_views", "on_demand_feature_views", "feature_services"}

Document = dict[str, Any]
Edit = Callable[[Document], None]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(validator: jsonschema.Draft202012Validator, document: object) -> list[str]:
    return [
        f"{e.json_path}: {e.message}"
        for e in sorted(validator.iter_errors(document), key=lambda e: e.json_path)
    ]


# --- The documents the docs and examples show -------------------------------------------------


def yaml_blocks(page: Path) -> list[tuple[str, str]]:
    """The page's ```yaml and ```json blocks: where each starts, and its text."""
    found: list[tuple[str, str]] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^```(\S*)", lines[i])
        if not match:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if match.group(1) in ("yaml", "json"):
            found.append((f"{page.relative_to(REPO)}:{i + 1}", "\n".join(lines[i + 1 : end])))
        i = end + 1
    return found


def shown_documents() -> list[tuple[str, object]]:
    """Every definitions document of the pages and of ``examples/``: a mapping with one of the
    top-level keys (a misspelt one beside it is left to the schema to refuse)."""
    texts = [block for page in PAGES for block in yaml_blocks(page)]
    for pattern in ("*.yaml", "*.yml"):
        texts += [
            (str(p.relative_to(REPO)), p.read_text()) for p in REPO.glob(f"examples/**/{pattern}")
        ]
    documents: list[tuple[str, object]] = []
    for where, text in texts:
        document = yaml.safe_load(text)
        if isinstance(document, dict) and TOP_LEVEL & set(document):
            documents.append((where, document))
    for manifest in sorted(GOLDEN_REGISTRY.glob("*.json")):
        state = json.loads(manifest.read_text())["metadata"]["definitions"]
        documents.append((str(manifest.relative_to(REPO)), state))
    return documents


SHOWN = shown_documents()


def test_the_docs_readme_and_golden_registry_show_definitions() -> None:
    """The collection above finds what it is meant to, so the next test is not vacuous."""
    places = {where.split(":")[0] for where, _ in SHOWN}
    assert {"docs/definitions.md", "README.md"} <= places
    assert any(where.startswith("tests/golden/") for where in places)


@pytest.mark.parametrize(("where", "document"), SHOWN, ids=[where for where, _ in SHOWN])
def test_every_shown_definitions_document_passes_the_schema(
    validator: jsonschema.Draft202012Validator, where: str, document: object
) -> None:
    assert schema_errors(validator, document) == [], where


# --- One document, edited, for the schema and the parser alike --------------------------------

ENTITY = "entities/0"
VIEW = "feature_views/0"  # typed Parquet: columns read as stored
SOURCE = f"{VIEW}/source"
FIELD = f"{VIEW}/schema/0"
RAW = "feature_views/1"  # raw snapshot files, parsed by a snapshot schema
SNAPSHOTS = f"{RAW}/source/snapshots"
SNAPSHOT_FEATURE = f"{SNAPSHOTS}/features/0"
ON_DEMAND = "on_demand_feature_views/0"
DERIVED = f"{ON_DEMAND}/features/0"
SERVICE = "feature_services/0"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def change(path: str, /, **values: Any) -> Edit:
    """Sets keys of the mapping at ``path`` (``feature_views/0/source``); ``MISSING`` removes
    one."""

    def edit(document: Document) -> None:
        target: Any = document
        for part in path.split("/") if path else []:
            target = target[int(part)] if part.isdigit() else target[part]
        for key, value in values.items():
            if value is MISSING:
                del target[key]
            else:
                target[key] = value

    return edit


def steps(*edits: Edit) -> Edit:
    def edit(document: Document) -> None:
        for step in edits:
            step(document)

    return edit


# Nothing referring to the views' features: an empty schema is filled only at apply time,
# after references are checked.
UNREFERENCED = change("", on_demand_feature_views=[], feature_services=[])


def rename_entity(name: str) -> Edit:
    def edit(document: Document) -> None:
        document["entities"][0]["name"] = name
        for view in document["feature_views"]:
            view["entities"] = [name]

    return edit


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A typed Parquet table and a file of raw snapshots (a JSON document per row)."""
    folder = tmp_path_factory.mktemp("tables")
    typed, raw = folder / "basic.parquet", folder / "raw.parquet"
    pq.write_table(
        pa.table(
            {
                "uuid": ["BDD732262FEB"],
                "nodeId": ["1465"],
                "time": pa.array([0], pa.timestamp("ms", tz="UTC")),
                "meanLf": [1.0],
                "count": pa.array([3], pa.int64()),
            }
        ),
        typed,
    )
    pq.write_table(ts.synthetic_snapshots(devices=2, snapshots=3), raw)
    return typed, raw


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ts.FeatureStore:
    """An empty workspace's feature store; ``plan`` leaves it as it is."""
    return ts.Workspace.open(tmp_path_factory.mktemp("ws") / "ws").features


def base(tables: tuple[Path, Path]) -> Document:
    """A valid document with one of everything."""
    typed, raw = tables
    return {
        "entities": [{"name": "device", "join_keys": ["uuid", "nodeId"]}],
        "feature_views": [
            {
                "name": "basic",
                "entities": ["device"],
                "source": {"type": "files", "location": str(typed)},
                "schema": [{"name": "meanLf", "type": "float64"}],
            },
            {
                "name": "raw",
                "entities": ["device"],
                "source": {
                    "type": "files",
                    "location": str(raw),
                    "snapshots": {
                        "document_column": "feature",
                        "keys": ["uuid", "nodeId"],
                        "time": "time",
                        "tag": "is_tag",
                        "features": [
                            {"name": "meanHf", "type": "number"},
                            {"name": "peakPowers", "type": "array"},
                        ],
                    },
                },
                "ttl": "30d",
                "schema": [
                    {"name": "meanHf", "type": "float64"},
                    {"name": "peakPowers", "type": "list<float32>"},
                ],
            },
        ],
        "on_demand_feature_views": [
            {
                "name": "stats",
                "features": [
                    {"name": "hf_lf", "expression": "raw:meanHf / basic:meanLf"},
                    {"name": "peak_mean", "expression": "mean(raw:peakPowers)"},
                ],
            }
        ],
        "feature_services": [{"name": "model_v1", "features": ["basic:meanLf", "stats:hf_lf"]}],
    }


def edited(tables: tuple[Path, Path], edit: Edit) -> Document:
    document = copy.deepcopy(base(tables))
    edit(document)
    return document


def parser_refusal(store: ts.FeatureStore, document: Document) -> str | None:
    """Why the parser and ``plan`` refuse the document, or None when they accept it. The
    document goes to the binding as text (JSON, which is YAML), as a file goes to the CLI: the
    Python classes cannot write a misspelt key."""
    try:
        store._native.plan(json.dumps(document))
    except ts.TrainstoreError as refused:
        return str(refused)
    return None


# (what, edit): documents the schema and the parser both accept.
ACCEPTED: list[tuple[str, Edit]] = [
    ("the base document", change("")),
    ("a ttl in days", change(VIEW, ttl="30d")),
    ("a ttl in milliseconds", change(VIEW, ttl="250ms")),
    ("a ttl with spaces around", change(VIEW, ttl=" 12h ")),
    ("a ttl of 0", change(VIEW, ttl="0")),
    ("a ttl of integer seconds", change(VIEW, ttl=3600)),
    ("a ttl of integer 0", change(VIEW, ttl=0)),
    ("a value type in capitals", change(FIELD, type="Float64")),
    ("a value type's alias with spaces", change(FIELD, type=" double ")),
    ("a list type in capitals of an alias", change(f"{RAW}/schema/1", type="LIST<Float>")),
    ("a list type with inner spaces", change(f"{RAW}/schema/1", type="list< float32 >")),
    ("no schema", steps(UNREFERENCED, change(VIEW, schema=MISSING))),
    ("an empty schema", steps(UNREFERENCED, change(VIEW, schema=[]))),
    (
        "every optional key of a view",
        change(
            VIEW,
            ttl="1h",
            timestamp_field="time",
            created_timestamp_field=None,
            online=True,
            online_rows=4096,
            tags={"team": "vibration"},
            description="a sensor's features",
        ),
    ),
    ("a view not served online", change(VIEW, online=False)),
    ("an entity with a description", change(ENTITY, description="a sensor node")),
    ("a name of every allowed character", rename_entity("0device-1.v_2")),
    ("a name of 128 characters", rename_entity("d" * 128)),
    ("a files source with null options", change(SOURCE, format=None, snapshots=None)),
    ("a files source with a format", change(f"{RAW}/source", format="parquet")),
    ("snapshots without a tag", change(SNAPSHOTS, tag=None)),
    ("snapshots with their own unknown column", change(SNAPSHOTS, unknown_column="_rest")),
    ("a service with a description", change(SERVICE, description="model v1")),
    ("an on-demand view with a description", change(ON_DEMAND, description="ratios")),
]


@pytest.mark.parametrize(("what", "edit"), ACCEPTED, ids=[what for what, _ in ACCEPTED])
def test_the_schema_and_the_parser_accept_the_same_variants(
    validator: jsonschema.Draft202012Validator,
    store: ts.FeatureStore,
    tables: tuple[Path, Path],
    what: str,
    edit: Edit,
) -> None:
    document = edited(tables, edit)
    assert schema_errors(validator, document) == [], what
    assert parser_refusal(store, document) is None, what


# (what, edit, part of the parser's message): documents both refuse.
REFUSED: list[tuple[str, Edit, str]] = [
    ("an unknown key in a view", change(VIEW, timestamp="time"), "unknown field `timestamp`"),
    ("an unknown key at the top", change("", views=[]), "unknown field `views`"),
    ("an unknown key in an entity", change(ENTITY, keys=["uuid"]), "unknown field `keys`"),
    ("an unknown key in a field", change(FIELD, dtype="float64"), "unknown field `dtype`"),
    ("an unknown key in a source", change(SOURCE, path="x"), "unknown field `path`"),
    ("an unknown key in snapshots", change(SNAPSHOTS, columns=[]), "unknown field `columns`"),
    ("an unknown key in a derived feature", change(DERIVED, type="x"), "unknown field `type`"),
    ("an unknown key in a service", change(SERVICE, model="m"), "unknown field `model`"),
    ("a ttl of true", change(VIEW, ttl=True), "did not match any variant"),
    ("a ttl of 1.5", change(VIEW, ttl=1.5), "did not match any variant"),
    ("a negative ttl", change(VIEW, ttl=-1), "did not match any variant"),
    ("a ttl mapping", change(VIEW, ttl={"days": 30}), "did not match any variant"),
    ("a ttl of null", change(VIEW, ttl=None), "did not match any variant"),
    ("a ttl as text without a unit", change(VIEW, ttl="3600"), 'invalid ttl "3600"'),
    ("a ttl in weeks", change(VIEW, ttl="1w"), 'invalid ttl "1w"'),
    ("a ttl of 00", change(VIEW, ttl="00"), 'invalid ttl "00"'),
    ("an unknown value type", change(FIELD, type="decimal"), 'invalid value type "decimal"'),
    ("a list of text", change(FIELD, type="list<string>"), "invalid value type"),
    ("a list of lists", change(FIELD, type="list<list<float32>>"), "invalid value type"),
    ("a space inside list <", change(FIELD, type="list <float64>"), "invalid value type"),
    ("a source as a bare string", change(VIEW, source="./snaps"), "expected a source"),
    ("a source of an unknown type", change(SOURCE, type="file"), "unknown variant `file`"),
    ("a source without a type", change(SOURCE, type=MISSING), "missing field `type`"),
    ("a location that is a number", change(SOURCE, location=5), "invalid type: integer"),
    ("a view without entities", change(VIEW, entities=MISSING), "missing field `entities`"),
    ("a view without a source", change(VIEW, source=MISSING), "missing field `source`"),
    ("an entity without join keys", change(ENTITY, join_keys=MISSING), "missing field `join_keys`"),
    ("a field without a type", change(FIELD, type=MISSING), "missing field `type`"),
    (
        "a Doris source without a table",
        change(VIEW, source={"type": "doris", "url": "mysql://reader@db:9030/sensors"}),
        "missing field `table`",
    ),
    ("snapshots without a time", change(SNAPSHOTS, time=MISSING), "missing field `time`"),
    ("snapshots without keys", change(SNAPSHOTS, keys=[]), "at least one key field"),
    ("a snapshot kind in capitals", change(SNAPSHOT_FEATURE, type="Number"), "unknown variant"),
    ("a value type as snapshot kind", change(SNAPSHOT_FEATURE, type="float64"), "unknown variant"),
    ("a name with ..", change(ENTITY, name="a..b"), "must not contain '..'"),
    ("a name starting with -", change(ENTITY, name="-device"), "must start with a letter or digit"),
    ("a name with a space", change(ENTITY, name="my device"), "not allowed"),
    ("a name of 129 characters", change(ENTITY, name="d" * 129), "longer than 128"),
    ("a view's name of 121 characters", change(VIEW, name="v" * 121), "at most 120"),
    ("a reference without a view", change(SERVICE, features=["meanLf"]), "expected view:feature"),
    ("a reference without a feature", change(SERVICE, features=["basic:"]), "is empty"),
    ("online as text", change(VIEW, online="yes"), "expected a boolean"),
    ("online_rows of 0", change(VIEW, online_rows=0), "online_rows is 0"),
    ("online_rows over 4096", change(VIEW, online_rows=4097), "online_rows is 4097"),
    ("online_rows as text", change(VIEW, online_rows="2"), "invalid type: string"),
    ("no join keys", change(ENTITY, join_keys=[]), "needs at least one join key"),
    ("an empty join key", change(ENTITY, join_keys=["uuid", ""]), "empty join key"),
    ("a join key twice", change(ENTITY, join_keys=["uuid", "uuid"]), "listed twice"),
    ("a view of no entities", change(VIEW, entities=[]), "needs at least one entity"),
    ("an empty timestamp field", change(VIEW, timestamp_field=""), "timestamp field is empty"),
    ("a field with an empty name", change(FIELD, name=""), "empty name"),
    ("a service of no features", change(SERVICE, features=[]), "names no features"),
    ("an on-demand view of no features", change(ON_DEMAND, features=[]), "derives no features"),
    ("an empty expression", change(DERIVED, expression=""), "invalid on-demand expression"),
]


@pytest.mark.parametrize(("what", "edit", "message"), REFUSED, ids=[what for what, _, _ in REFUSED])
def test_the_schema_and_the_parser_refuse_the_same_mistakes(
    validator: jsonschema.Draft202012Validator,
    store: ts.FeatureStore,
    tables: tuple[Path, Path],
    what: str,
    edit: Edit,
    message: str,
) -> None:
    document = edited(tables, edit)
    assert schema_errors(validator, document) != [], f"the schema accepts {what}"
    refusal = parser_refusal(store, document)
    assert refusal is not None, f"the parser accepts {what}"
    assert message in refusal, refusal


# Checks no schema states (a name defined twice, a reference that resolves, a password in a
# URL, one key depending on another): the schema accepts these, the parser refuses them.
ONLY_THE_PARSER_REFUSES: list[tuple[str, Edit, str]] = [
    (
        "a field declared twice",
        change(VIEW, schema=[{"name": "meanLf", "type": "float64"}] * 2),
        "declared twice",
    ),
    ("a field that is a join key", change(FIELD, name="uuid", type="string"), "is a join key"),
    (
        "an entity defined twice",
        lambda d: d["entities"].append(dict(d["entities"][0])),
        "defined twice",
    ),
    ("an unknown entity", change(VIEW, entities=["devices"]), 'unknown entity "devices"'),
    ("an unknown feature", change(SERVICE, features=["basic:meanLF"]), "basic:meanLF"),
    (
        "an expression that does not parse",
        change(DERIVED, expression="mean("),
        "invalid on-demand expression",
    ),
    ("a ttl past 2^64 nanoseconds", change(VIEW, ttl="213504d"), 'invalid ttl "213504d"'),
    (
        "online_rows with online: false",
        change(VIEW, online=False, online_rows=2),
        "not served online",
    ),
    (
        "a Doris password written out",
        change(
            VIEW, source={"type": "doris", "url": "mysql://reader:secret@db:9030/s", "table": "t"}
        ),
        "would store the Doris password",
    ),
    ("a snapshot field named twice", change(SNAPSHOTS, time="uuid"), "field named twice"),
]

# Where the parser reads more than the format's written form: outside a source, the YAML
# reader takes any scalar where it expects text, as that text (``null`` as "null"); the
# schema asks for a string.
ONLY_THE_SCHEMA_REFUSES: list[tuple[str, Edit]] = [
    ("a number as a description", change(VIEW, description=5)),
    ("a number as a tag's value", change(VIEW, tags={"version": 2})),
    ("null as a description", change(ENTITY, description=None)),
]


@pytest.mark.parametrize(
    ("what", "edit", "message"),
    ONLY_THE_PARSER_REFUSES,
    ids=[what for what, _, _ in ONLY_THE_PARSER_REFUSES],
)
def test_what_only_the_parser_checks_passes_the_schema(
    validator: jsonschema.Draft202012Validator,
    store: ts.FeatureStore,
    tables: tuple[Path, Path],
    what: str,
    edit: Edit,
    message: str,
) -> None:
    document = edited(tables, edit)
    assert schema_errors(validator, document) == [], what
    refusal = parser_refusal(store, document)
    assert refusal is not None, f"the parser accepts {what}"
    assert message in refusal, refusal


@pytest.mark.parametrize(
    ("what", "edit"), ONLY_THE_SCHEMA_REFUSES, ids=[what for what, _ in ONLY_THE_SCHEMA_REFUSES]
)
def test_the_schema_is_stricter_only_where_listed(
    validator: jsonschema.Draft202012Validator,
    store: ts.FeatureStore,
    tables: tuple[Path, Path],
    what: str,
    edit: Edit,
) -> None:
    document = edited(tables, edit)
    assert schema_errors(validator, document) != [], f"the schema accepts {what}"
    assert parser_refusal(store, document) is None, what


def test_what_trainstore_writes_passes_the_schema(
    validator: jsonschema.Draft202012Validator,
    tables: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """The Python classes' documents, and the registry's state as ``features list`` gives it
    (schemas filled, TTLs and expressions in canonical form)."""
    typed, raw = tables
    device = ts.Entity("device", join_keys=["uuid", "nodeId"], description="a sensor node")
    definitions: list[ts.features.Definition] = [
        ts.FeatureView(
            "basic",
            [device],
            str(typed),
            ttl=timedelta(days=30),
            online_rows=2,
            tags={"team": "vibration"},
        ),
        ts.FeatureView(
            "raw",
            [device],
            ts.FileSource(raw),
            schema=[ts.Field("meanHf", ts.Float64), ts.Field("peakPowers", ts.Array(ts.Float32))],
            created_timestamp_field=None,
        ),
        ts.OnDemandFeatureView("stats", {"peak_mean": "mean(raw:peakPowers)"}),
        ts.FeatureService("model_v1", ["raw:meanHf", "stats:peak_mean"]),
    ]
    sent = json.loads(ts.features._definitions_json(definitions))
    assert schema_errors(validator, sent) == []
    ws = ts.Workspace.open(tmp_path / "ws")
    ws.features.apply(definitions)
    assert schema_errors(validator, ws.features.list()) == []
