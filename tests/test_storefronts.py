"""storefronts.yaml: parsing, the errors it gives, and the CLI syncing every storefront."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alter_pipeline.cli import app
from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.lake.locate import for_storefront
from alter_pipeline.storefronts import (
    StorefrontsError,
    lake_root,
    link_name,
    load_storefronts,
    parse_storefronts,
    root_of,
    storefront_roots,
)

VALID = """
storefronts:
  - name: berlin
    api_key_env: BERLIN_KEY
    api_token_env: BERLIN_TOKEN
  - name: paris
    base_url: http://127.0.0.1:9/public-api/v1/
    api_key_env: PARIS_KEY
    api_token_env: PARIS_TOKEN
"""


def parse(text: str):
    return parse_storefronts(yaml.safe_load(text))


def test_a_valid_file_lists_names_urls_and_variable_names():
    storefronts = parse(VALID)
    assert storefronts.names == ["berlin", "paris"]
    assert storefronts.get("berlin").base_url == "https://alterproduct.com/public-api/v1"
    assert storefronts.get("paris").base_url == "http://127.0.0.1:9/public-api/v1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("storefronts: []", "the `storefronts:` list is empty"),
        ("shops: []", "expected a top-level `storefronts:` list"),
        (VALID.replace("name: paris", "name: Paris!"), "storefronts[1].name: 'Paris!'"),
        (VALID.replace("name: paris", "name: berlin"), "'berlin' appears twice"),
        (VALID.replace("    api_key_env: PARIS_KEY\n", ""), "(paris).api_key_env: expected"),
        (VALID.replace("api_token_env: PARIS", "token: PARIS"), "unknown key 'token'"),
        (VALID.replace("http://127.0.0.1:9", "ftp://x"), "(paris).base_url must be an http(s)"),
    ],
)
def test_a_mistake_is_named_with_its_entry_and_field(text, message):
    with pytest.raises(StorefrontsError) as error:
        parse(text)
    assert message in str(error.value)


def test_a_missing_credential_names_the_variable_not_a_value():
    berlin = parse(VALID).get("berlin")
    with pytest.raises(ConfigError, match="storefront berlin: environment variable BERLIN_TOKEN"):
        berlin.credentials({"BERLIN_KEY": "k"})
    assert berlin.credentials({"BERLIN_KEY": "k", "BERLIN_TOKEN": "t"}) == ("k", "t")


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(StorefrontsError) as error:
        parse(VALID).get("rome")
    assert "no storefront named 'rome' (known: berlin, paris)" in str(error.value)


def test_a_name_links_to_its_storefront_id_root_and_relinks_atomically(tmp_path):
    (tmp_path / "storefront_id=12" / "lake").mkdir(parents=True)
    assert root_of(tmp_path, "berlin") is None
    link_name(tmp_path, "berlin", 12)
    assert root_of(tmp_path, "berlin") == lake_root(tmp_path, 12).resolve()
    link_name(tmp_path, "berlin", 77)
    assert root_of(tmp_path, "berlin") == lake_root(tmp_path, 77).resolve()
    assert storefront_roots(tmp_path) == [tmp_path / "storefront_id=12"]


def test_cli_sync_runs_every_storefront_and_names_the_one_that_failed(
    emulator_factory, tmp_path: Path
):
    berlin = emulator_factory(orders=15, seed=4, storefront_id=12, key="kb", token="tb")
    paris = emulator_factory(orders=10, seed=5, storefront_id=77, key="kp", token="tp")
    path = tmp_path / "storefronts.yaml"
    path.write_text(
        VALID.replace(
            "base_url: http://127.0.0.1:9/public-api/v1/", f"base_url: {paris.base_url}"
        ).replace("  - name: berlin\n", f"  - name: berlin\n    base_url: {berlin.base_url}\n")
    )
    env = {
        "ALTER_STOREFRONTS_FILE": str(path),
        "ALTER_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "BERLIN_KEY": "kb",
        "BERLIN_TOKEN": "tb",
        "PARIS_KEY": "wrong",
        "PARIS_TOKEN": "tp",
    }
    (tmp_path / "dagster").mkdir()
    result = CliRunner(env=env).invoke(app, ["sync"])
    assert result.exit_code == 1, result.output
    assert "berlin: full sync: 15 orders" in result.stdout, result.output + str(result.stderr)
    assert "sync_job failed for paris (the others succeeded)" in result.output
    only_berlin = CliRunner(env=env).invoke(app, ["sync", "--storefront", "berlin"])
    assert only_berlin.exit_code == 0, only_berlin.output
    assert "berlin: incremental sync: 15 orders" in only_berlin.stdout


def test_commands_on_one_storefronts_state_need_alter_storefront(tmp_path: Path):
    path = tmp_path / "storefronts.yaml"
    path.write_text(VALID)
    base = Settings(data_dir=tmp_path, storefronts_file=path)
    with pytest.raises(ConfigError, match="set ALTER_STOREFRONT to one of berlin, paris"):
        for_storefront(base)
    with pytest.raises(ConfigError, match="storefront paris has no lake yet"):
        for_storefront(dataclasses.replace(base, storefront="paris"))
    (tmp_path / "storefront_id=77").mkdir()
    link_name(tmp_path, "paris", 77)
    paris = for_storefront(dataclasses.replace(base, storefront="paris"))
    assert paris.data_dir == (tmp_path / "storefront_id=77").resolve()


def test_without_storefronts_yaml_settings_stay_as_they_are(tmp_path: Path):
    base = Settings(data_dir=tmp_path, storefronts_file=tmp_path / "absent.yaml")
    assert for_storefront(base) is base
    with pytest.raises(ConfigError, match="ALTER_STOREFRONT is set but"):
        for_storefront(dataclasses.replace(base, storefront="berlin"))


def test_the_example_file_parses():
    example = Path(__file__).parent.parent / "storefronts.example.yaml"
    assert load_storefronts(example).names == ["berlin", "paris"]
