"""The real-data examples in examples/: their mappings, models and the gate they give."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadgate.adapters.files import load_mapping
from leadgate.cli import app
from leadgate.domain.mapping import MappingError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
XEDU_LEADS = DATA / "xeducation_leads.csv"
OLIST_MQL = DATA / "olist" / "olist_marketing_qualified_leads_dataset.csv"
OLIST_DEALS = DATA / "olist" / "olist_closed_deals_dataset.csv"
LEAKY = {"Tags", "Lead Quality"}

runner = CliRunner()


def _need(*paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            pytest.skip(f"real data not found at {path} (the ../shared/data folder is absent)")


@dataclass(frozen=True)
class Run:
    rows: list[dict[str, str]]
    output: str

    def stages(self) -> Counter[str]:
        return Counter(row["stage"] for row in self.rows)

    def conversion(self, converted: set[str], stages: set[str]) -> float:
        ids = [row["lead_id"] for row in self.rows if row["stage"] in stages]
        assert ids, f"no lead in {sorted(stages)}"
        return sum(lead_id in converted for lead_id in ids) / len(ids)


def _score(out: Path, *argv: str) -> Run:
    result = runner.invoke(app, ["score", "--out", str(out), *argv])
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        return Run(list(csv.DictReader(f)), result.output)


def _column(path: Path, name: str) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return [row[name] for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def xedu(tmp_path_factory: pytest.TempPathFactory) -> Run:
    _need(XEDU_LEADS)
    out = tmp_path_factory.mktemp("xeducation") / "scored.csv"
    return _score(
        out,
        "--leads",
        str(XEDU_LEADS),
        "--mapping",
        str(EXAMPLES / "xeducation" / "mapping.yaml"),
        "--model",
        str(EXAMPLES / "xeducation" / "model.yaml"),
    )


@pytest.fixture(scope="module")
def olist(tmp_path_factory: pytest.TempPathFactory) -> Run:
    _need(OLIST_MQL, OLIST_DEALS)
    out = tmp_path_factory.mktemp("olist") / "scored.csv"
    return _score(
        out,
        "--leads",
        str(OLIST_MQL),
        "--mapping",
        str(EXAMPLES / "olist" / "mapping.yaml"),
        "--model",
        str(EXAMPLES / "olist" / "model.yaml"),
        "--outcomes",
        str(OLIST_DEALS),
        "--outcome-id",
        "mql_id",
    )


@pytest.mark.parametrize("example", ["xeducation", "olist"])
def test_example_model_passes_model_check(example: str) -> None:
    result = runner.invoke(app, ["model", "check", str(EXAMPLES / example / "model.yaml")])
    assert result.exit_code == 0, result.output
    assert "is a valid model" in result.output


def test_xeducation_mapping_never_reads_the_post_outcome_columns() -> None:
    mapping = load_mapping(EXAMPLES / "xeducation" / "mapping.yaml")
    assert set(mapping.post_outcome) == LEAKY
    assert mapping.outcome is not None and mapping.outcome.column == "Converted"
    read = {spec.column for spec in mapping.attributes.values()}
    read |= {column for event in mapping.events for column in event.columns()}
    assert read.isdisjoint(LEAKY | {"Converted"})
    assert not mapping.keep_other_columns


def test_olist_mapping_reads_only_what_every_mql_has() -> None:
    mapping = load_mapping(EXAMPLES / "olist" / "mapping.yaml")
    read = {spec.column for spec in mapping.attributes.values()}
    read |= {column for event in mapping.events for column in event.columns()}
    assert read <= {"first_contact_date", "landing_page_id", "origin"}
    assert mapping.lead_id == "mql_id" and not mapping.keep_other_columns


def test_the_mapping_refuses_tags_as_an_attribute(tmp_path: Path) -> None:
    text = (EXAMPLES / "xeducation" / "mapping.yaml").read_text(encoding="utf-8")
    text = text.replace("attributes:\n", "attributes:\n  tags: Tags\n", 1)
    bad = tmp_path / "leaky.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(bad)
    assert "attributes.tags: column 'Tags' is post_outcome" in str(caught.value)


@pytest.mark.realdata
def test_xeducation_scores_every_lead_under_its_own_id(xedu: Run) -> None:
    assert len(xedu.rows) == 9240
    assert [row["lead_id"] for row in xedu.rows] == sorted(_column(XEDU_LEADS, "Prospect ID"))
    assert "; 0 unreadable rows;" in xedu.output
    assert "converted overall 38.5%" in xedu.output


@pytest.mark.realdata
def test_xeducation_gate_separates_converters(xedu: Run) -> None:
    converted = {
        lead_id
        for lead_id, value in zip(
            _column(XEDU_LEADS, "Prospect ID"), _column(XEDU_LEADS, "Converted"), strict=True
        )
        if value == "1"
    }
    stages = xedu.stages()
    assert stages["mql"] + stages["sql"] > 0.25 * len(xedu.rows)
    ready = xedu.conversion(converted, {"mql", "sql"})
    nurturing = xedu.conversion(converted, {"nurturing"})
    assert ready > 3 * nurturing, (ready, nurturing)
    assert xedu.conversion(converted, {"sql"}) > xedu.conversion(converted, {"mql"})


@pytest.mark.realdata
def test_olist_scores_every_mql_under_its_own_id(olist: Run) -> None:
    assert len(olist.rows) == 8000
    assert [row["lead_id"] for row in olist.rows] == sorted(_column(OLIST_MQL, "mql_id"))
    assert "; 0 unreadable rows;" in olist.output
    assert "converted overall 10.5%" in olist.output


@pytest.mark.realdata
def test_olist_gate_separates_converters(olist: Run) -> None:
    converted = set(_column(OLIST_DEALS, "mql_id"))
    ready = olist.conversion(converted, {"mql", "sql"})
    nurturing = olist.conversion(converted, {"nurturing"})
    assert ready > 1.5 * nurturing, (ready, nurturing)
