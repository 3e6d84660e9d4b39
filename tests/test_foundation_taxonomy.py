import pytest

from vibeset.errors import ConfigError, UnknownAttributeError
from vibeset.taxonomy import load_taxonomy, parse_taxonomy

from conftest import DATA

GOOD = """\
name: t
attributes:
  - name: cozy
    definition: Warm, comfortable and relaxing to watch.
    aliases: [cosy, comfy]
  - name: tense
    definition: Keeps viewers on edge with suspense.
"""


def test_bundled_taxonomy_has_enough_vibes():
    taxonomy = load_taxonomy(DATA / "taxonomy.yaml")
    assert 20 <= len(taxonomy) <= 30
    assert {"atmospheric", "dark", "feel-good", "inspirational", "surreal"} <= set(taxonomy.names)
    assert taxonomy.alias_map()["heartwarming"] == "feel-good"
    assert all(a.definition and a.includes and a.excludes and a.aliases for a in taxonomy)


def test_version_is_content_hash():
    first = parse_taxonomy(GOOD)
    assert first.version == parse_taxonomy(GOOD).version
    assert first.version != parse_taxonomy(GOOD.replace("relaxing", "soothing")).version


def test_unknown_attribute_lookup_names_the_known_ones():
    with pytest.raises(UnknownAttributeError, match="unknown attribute 'spooky'.*cozy"):
        parse_taxonomy(GOOD)["spooky"]


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD.replace("  - name: tense", "  - name: cozy"), r"bad.yaml:6: duplicate attribute name 'cozy' \(first at line 3\)"),
        (GOOD.replace("    aliases: [cosy, comfy]", "    colour: red"), r"bad.yaml:5: attributes.0.colour: Extra inputs"),
        (GOOD.replace("attributes:", "attributes: [\n"), r"bad.yaml:\d+: invalid YAML"),
        (GOOD.replace("Keeps viewers on edge with suspense.", "x"), r"bad.yaml:7: attributes.1.definition"),
        (GOOD.replace("definition: Keeps", "aliases: [comfy]\n    definition: Keeps"), r"bad.yaml:7: alias 'comfy'"),
        ("- just a list", r"bad.yaml:1: expected a mapping"),
    ],
)
def test_malformed_taxonomy_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_taxonomy(path)
