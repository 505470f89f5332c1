"""Start-up does only what serving needs: the shipped YAML files are read from parsed copies
(`mockpoeti/base/yamlfiles.py`), so a server that reads no other YAML never imports PyYAML;
regular expressions for CJK text and tool arguments are compiled by the first request that
needs them (`mockpoeti/base/lazyregex.py`); and `mockpoeti serve` starts without the garbage
collector and gives it back."""

from __future__ import annotations

import datetime
import gc
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mockpoeti import cli
from mockpoeti.base.catalog import load_catalog, shipped_dir
from mockpoeti.base.errors import ConfigError
from mockpoeti.base.lazyregex import LazyPattern
from mockpoeti.base.yamlfiles import cached_copy, is_plain, load_shipped_yaml, load_yaml

ROOT = Path(__file__).resolve().parents[1]
MODELS = "models:\n  - {id: m1, owned_by: me, context_length: 8, input_price: 1.5, output_price: 2}\n"

SERVER_MODULES = """
import json, sys
from mockpoeti import MockServer
with MockServer(scenarios={scenarios!r}) as server:
    print(json.dumps({{"yaml": "yaml" in sys.modules, "models": sorted(server.state.catalog.models)}}))
"""


def run_server(site: Path, scenarios: list[str] | None = None) -> dict:
    """A MockServer in a fresh interpreter that imports mockpoeti from `site`."""
    done = subprocess.run([sys.executable, "-c", SERVER_MODULES.format(scenarios=scenarios or [])], cwd=site,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the package laid out as in the wheel (fixtures inside it), without parsed copies."""
    shutil.copytree(ROOT / "mockpoeti", tmp_path / "mockpoeti", ignore=shutil.ignore_patterns("__pycache__"))
    for data in ("fixtures", "scenarios"):
        shutil.copytree(ROOT / data, tmp_path / "mockpoeti" / data, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_server_that_reads_only_shipped_yaml_starts_without_pyyaml_from_the_second_start(site):
    first, second = run_server(site), run_server(site)
    assert first["yaml"] and not second["yaml"]  # the first start parsed the fixtures and kept copies
    assert first["models"] == second["models"] and "gpt-4o" in second["models"]
    assert (site / "mockpoeti" / "fixtures" / "__pycache__").is_dir()
    assert run_server(site, ["retry-then-succeed"])["yaml"]  # a scenario file is YAML: PyYAML on first use


def test_the_copies_give_what_the_yaml_gives():
    for name in ("models.yaml", "errors.yaml", "accounts.yaml", "history.yaml", "sentences.yaml"):
        path = shipped_dir("fixtures") / name
        assert load_shipped_yaml(path) == load_yaml(path)
        assert load_shipped_yaml(path) == load_yaml(path)  # from the copy this time
    assert load_catalog() == load_catalog()


def test_a_changed_file_is_read_again_and_its_copy_replaced(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(MODELS, encoding="utf-8")
    assert load_shipped_yaml(path)["models"][0]["input_price"] == 1.5
    assert cached_copy(path).is_file()
    path.write_text(MODELS.replace("1.5", "3.25"), encoding="utf-8")
    assert load_shipped_yaml(path)["models"][0]["input_price"] == 3.25
    assert json.loads(cached_copy(path).read_text())["data"]["models"][0]["input_price"] == 3.25


@pytest.mark.parametrize("damage", [b"", b"{not json", b"[1, 2]", b'{"digest": "0", "data": 1}', b'{"digest": null}'])
def test_a_damaged_copy_is_never_believed(tmp_path, damage):
    path = tmp_path / "models.yaml"
    path.write_text(MODELS, encoding="utf-8")
    load_shipped_yaml(path)
    cached_copy(path).write_bytes(damage)
    assert load_shipped_yaml(path) == load_yaml(path)
    assert json.loads(cached_copy(path).read_text())["data"] == load_yaml(path)  # written again


def test_what_json_would_not_give_back_exactly_is_parsed_at_every_start(tmp_path):
    path = tmp_path / "history.yaml"
    path.write_text("since: 2026-01-02\n404: not found\nratio: .nan\n", encoding="utf-8")
    data = load_shipped_yaml(path)
    assert data["since"] == datetime.date(2026, 1, 2) and data[404] == "not found"
    assert not cached_copy(path).exists()


@pytest.mark.parametrize("value, plain", [
    ({"a": [1, 2.5, "x", True, None, {"b": []}]}, True),
    ({1: "a"}, False),
    ([datetime.date(2026, 1, 2)], False),
    (float("inf"), False),
    (2**64, False),
    (-(2**63), True),
    ((1, 2), False),
])
def test_is_plain_says_what_a_copy_may_hold(value, plain):
    assert is_plain(value) is plain


def test_where_no_copy_can_be_written_the_file_is_parsed_at_every_start(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(MODELS, encoding="utf-8")
    cached_copy(path).parent.write_text("a file where the folder would be")  # as unwritable as it gets, even as root
    assert load_shipped_yaml(path) == load_yaml(path)
    assert load_shipped_yaml(path) == load_yaml(path)
    assert cached_copy(path).parent.read_text() == "a file where the folder would be"


def test_a_shipped_file_that_is_missing_or_not_yaml_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as missing:
        load_shipped_yaml(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as bad:
        load_shipped_yaml(tmp_path / "bad.yaml")
    assert missing.value.problems[0].startswith(f"{tmp_path / 'absent.yaml'}:1: cannot read")
    assert "not valid YAML" in bad.value.problems[0]


def test_serve_gives_the_garbage_collector_back_when_it_cannot_start(capsys):
    assert gc.isenabled()
    assert cli.main(["serve", "--port", "0", "--scenario", "no-such-scenario"]) == 1
    assert gc.isenabled()
    assert "no such scenario file" in capsys.readouterr().err



LAZY_AFTER_AN_ENGLISH_CALL = """
import http.client, json
from mockpoeti import MockServer
from mockpoeti.answers import arguments, generate
from mockpoeti.base.lazyregex import LazyPattern
with MockServer() as server:
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    connection.request("POST", "/v1/chat/completions", json.dumps({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "Hello there, what is on 2026-01-02?"}]}), {"Authorization": "Bearer " + server.api_key})
    assert connection.getresponse().status == 200
    lazy = {f"{m.__name__}.{k}": "_compiled" in v.__dict__ for m in (generate, arguments) for k, v in vars(m).items()
            if isinstance(v, LazyPattern)}
    print(json.dumps(lazy))
"""


def test_a_server_that_sees_no_cjk_and_no_tools_compiles_none_of_their_patterns():
    done = subprocess.run([sys.executable, "-c", LAZY_AFTER_AN_ENGLISH_CALL], capture_output=True, text=True,
                          timeout=60, check=True)
    compiled = json.loads(done.stdout.splitlines()[-1])
    assert len(compiled) >= 8 and "mockpoeti.answers.generate._TOKEN" in compiled
    assert not any(compiled.values()), compiled


def test_a_lazy_pattern_answers_as_the_pattern_it_stands_for():
    text = "Dates: 2026-01-02, 2027-03-04; Mar 5th"
    lazy, eager = LazyPattern(r"(\d{4})-(\d{2})-\d{2}|(mar)", re.IGNORECASE), re.compile(r"(\d{4})-(\d{2})-\d{2}|(mar)", re.I)
    assert lazy.groups == eager.groups == 3  # an attribute of the compiled pattern, before any search
    assert lazy.findall(text) == eager.findall(text)
    assert [m.span() for m in lazy.finditer(text)] == [m.span() for m in eager.finditer(text)]
    assert lazy.search(text).group(1) == "2026" and lazy.match(text) is None and lazy.fullmatch("MAR")
    assert lazy.sub("#", text) == eager.sub("#", text) and lazy.split(text) == eager.split(text)
    assert lazy.__dict__["findall"] == eager.findall  # bound once: later calls go straight to the compiled pattern
    assert lazy.compiled() is lazy.compiled() and repr(lazy).startswith("LazyPattern(")
