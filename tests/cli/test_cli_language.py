"""The CLI's help texts come from its catalogues (telemetry_cli/i18n) in Bahasa Indonesia and English:
no help text written in the code, every command's and option's help in the language of CITY_LANGUAGE
(or the shell's locale), read in a fresh `city` process as a technician's shell would start it."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "telemetry_cli"

WALK = """
import json, typer.main
from telemetry_cli.main import app
found = []
def walk(command, path):
    found.append([path, "command", command.help or ""])
    for param in command.params:
        # --help, --install-completion, --show-completion: typer's own words, not ours
        if getattr(param, "help", None) and param.name not in ("help", "install_completion", "show_completion"):
            found.append([path, param.name, param.help])
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        walk(sub, path + " " + name)
walk(typer.main.get_command(app), "city")
print(json.dumps(found))
"""


def _catalogue(lang: str) -> dict[str, str]:
    return json.loads((CLI / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def _helps(lang: str) -> list[list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANG")} | {"CITY_LANGUAGE": lang}
    done = subprocess.run([sys.executable, "-c", WALK], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("lang", ["id", "en"])
def test_every_help_text_comes_from_the_catalogue_of_the_chosen_language(lang):
    texts = set(_catalogue(lang).values())
    one_of = _catalogue(lang)["cli.one_of"].split("{")[0]
    helps = _helps(lang)
    assert len(helps) > 100, "the walk found the commands"
    foreign = [h for h in helps if h[2] and h[2].strip() not in {t.strip() for t in texts}
               and not h[2].startswith(one_of)]
    assert foreign == [], f"help texts not from the {lang} catalogue: {foreign[:10]}"
    commands = [h for h in helps if h[1] == "command" and h[0] != "city" and " " in h[0]]
    assert all(h[2] for h in commands), [h[0] for h in commands if not h[2]]  # every command explains itself


def test_the_indonesian_help_is_indonesian():
    helps = {(h[0], h[1]): h[2] for h in _helps("id")}
    assert helps[("city device", "command")] == "Daftarkan, atur, flash, pantau, dan pensiunkan perangkat."
    assert helps[("city device add", "district")] == "slug kecamatan dari profil kota (CITY_PROFILE)"
    assert helps[("city device list", "as_json")] == "cetak JSON untuk skrip, bukan tabel"


def test_both_catalogues_have_the_same_keys_and_fields():
    en, id_ = _catalogue("en"), _catalogue("id")
    assert set(en) == set(id_)
    import string

    for key in en:
        fields = {f for _, f, _, _ in string.Formatter().parse(en[key]) if f}
        assert fields == {f for _, f, _, _ in string.Formatter().parse(id_[key]) if f}, key


def test_no_help_text_is_written_in_the_code():
    """Every help= is a say(...) lookup, and every command names its help (typer would take the docstring)."""
    for path in CLI.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "help":
                value = node.value
                assert isinstance(value, ast.Call) and getattr(value.func, "id", "") == "say", \
                    f"{path.name}:{node.lineno}: help text written in the code"
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Typer":
                assert any(k.arg == "help" for k in node.keywords), f"{path.name}:{node.lineno}: a group with no help"
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for dec in node.decorator_list:
                    if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "command":
                        assert any(k.arg == "help" for k in dec.keywords), f"{path.name}: {node.name} has no help="


SENTENCE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")  # two words: text someone would have to translate
MARKER = "not for people"  # on a statement (or the line above it): InfluxQL, board code, ids in --json


def _hard_coded(path: Path) -> list[str]:
    """String literals with words in them outside say(...) calls and docstrings."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))  # a docstring is for us
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "say":
            skip |= {id(sub) for sub in ast.walk(node)}
        simple = isinstance(node, ast.stmt) and not hasattr(node, "body")  # not a def, if, for, with, ...
        if simple and any(MARKER in line for line in lines[max(0, node.lineno - 2):node.end_lineno]):
            skip |= {id(sub) for sub in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            skip |= {id(part) for part in node.values}
            text = "".join(part.value if isinstance(part, ast.Constant) else " " for part in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if SENTENCE.search(re.sub(r"\[/?[a-z ]*\]", " ", text)):  # rich markup is not words
            found.append(f"{path.name}:{node.lineno}: {text[:60]!r}")
    return found


def test_no_message_is_written_in_the_code():
    """Every sentence the CLI prints comes through say() from the catalogues (like the pages' test)."""
    found = [hit for path in sorted(CLI.glob("*.py")) for hit in _hard_coded(path)]
    assert found == [], "text written in the code, not in telemetry_cli/i18n:\n" + "\n".join(found)


def test_the_scanner_finds_a_hard_coded_message(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def f():\n    """A docstring is fine."""\n    fail(f"no such device {x}", 3)\n'
                      '    say("device.ok")\n    q = f"SELECT x FROM y"  # not for people\n')
    assert _hard_coded(sample) == ["sample.py:3: 'no such device  '"]
