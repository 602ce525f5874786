from pathlib import Path

import pytest

from photobox.settings import SETTINGS, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults():
    s = load_settings(env={})
    assert s.data_dir == Path("./photobox-data")
    assert (s.host, s.port) == ("127.0.0.1", 8080)


def test_precedence_toml_env_flags(tmp_path):
    cfg = tmp_path / "photobox.toml"
    cfg.write_text('port = 9001\nhost = "0.0.0.0"\nworkers = 3\n')
    s = load_settings({"workers": "4"}, env={"PHOTOBOX_PORT": "9002"}, config_file=cfg)
    assert s.host == "0.0.0.0"   # from the file
    assert s.port == 9002        # env beats the file
    assert s.workers == 4        # flag beats both


def test_config_file_in_data_dir_is_found(tmp_path):
    (tmp_path / "photobox.toml").write_text("port = 9100\n")
    assert load_settings({"data_dir": tmp_path}, env={}).port == 9100


def test_bad_values_are_clear(tmp_path):
    with pytest.raises(SettingsError, match="port"):
        load_settings({"port": "eighty"}, env={})
    cfg = tmp_path / "x.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(env={}, config_file=cfg)


def test_every_setting_is_a_field_and_documented_in_readme():
    """Datasette's test_docs idea: an undocumented setting fails the build."""
    fields = set(Settings.__dataclass_fields__)
    assert fields == {s.name for s in SETTINGS}
    readme = (ROOT / "README.md").read_text()
    for s in SETTINGS:
        assert f"| `{s.name}` | `{s.default}` |" in readme, f"README settings table lacks {s.name}"
        assert s.help.strip(), s.name


def test_to_env_round_trips(tmp_path):
    s = load_settings({"data_dir": tmp_path, "port": 1234}, env={})
    assert load_settings(env=s.to_env()) == s
