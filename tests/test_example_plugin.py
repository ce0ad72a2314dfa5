"""The example plugin package, from outside: pip-installed, found through its entry point.

``plugins/example-attack`` is installed once into a temporary folder (``pip --target``, no
index, no build isolation) and the real ``robust`` script runs with that folder on
``PYTHONPATH``, from a temporary working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robustbench_lite.plugin_host import LOAD_PLUGINS_ENV

pytestmark = pytest.mark.slow

EXAMPLE_PLUGIN_DIR = Path(__file__).resolve().parent.parent / "plugins" / "example-attack"


def robust_command() -> list[str]:
    """The installed ``robust`` script beside this interpreter (or its entry function)."""
    script = shutil.which("robust", path=str(Path(sys.executable).parent))
    if script is not None:
        return [script]
    return [sys.executable, "-c", "from robustbench_lite.cli import main; main()"]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed example plugin (its code and its ``.dist-info``)."""
    site = tmp_path_factory.mktemp("example-plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", "--target", str(site),
         str(EXAMPLE_PLUGIN_DIR)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    assert (site / "robustbench_lite_example_attack" / "__init__.py").is_file()
    return site


def robust(plugin_site: Path, cwd: Path, *args: str,
           load_plugins: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {LOAD_PLUGINS_ENV, "PYTHONPATH"}}
    env["PYTHONPATH"] = str(plugin_site)
    if load_plugins is not None:
        env[LOAD_PLUGINS_ENV] = load_plugins
    return subprocess.run([*robust_command(), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_plugins_lists_the_example(plugin_site: Path, tmp_path: Path) -> None:
    result = robust(plugin_site, tmp_path, "plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines.index("example_attack 0.1.0 (robustbench-lite-example-attack)")
    assert lines[header + 1:header + 4] == ["  hooks: register_attacks, register_report_sections",
                                            "  attacks: random-sign",
                                            "  report sections: random-sign-baseline"]


def test_audit_runs_the_plugin_attack(plugin_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = robust(plugin_site, tmp_path, "audit", "--matrix", "quick", "--attack",
                    "random-sign", "--n-samples", "40", "--no-transfer", "--out", str(out), "-q")
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    cells = [cell for cell in results["cells"] if cell["attack"] == "random-sign"]
    assert cells
    for cell in cells:
        assert cell["error"] is None and cell["skipped"] is None
        assert cell["params"] == {"samples": 8}
        assert cell["violations"] == 0 and cell["queries"] > 0
    assert {"name": "example_attack", "version": "0.1.0"} in results["run"]["plugins"]
    html = (out / "report.html").read_text()
    section = html[html.index('<section id="random-sign-baseline"'):]
    section = section[:section.index("</section>")]
    assert "<h2>Random-sign baseline</h2>" in section
    for cell in cells:  # the plugin's template shows the plugin's cells
        assert f"{100 * cell['accuracy']:.1f}%" in section
    assert html.index('id="adversarial-accuracy"') < html.index('id="random-sign-baseline"') \
        < html.index('id="curves"')


def test_report_rerender_keeps_the_plugin_section(plugin_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    audited = robust(plugin_site, tmp_path, "audit", "--matrix", "quick", "--n-samples", "20",
                     "--no-transfer", "--examples", "0", "--out", str(out), "-q")
    assert audited.returncode == 0, audited.stderr
    result = robust(plugin_site, tmp_path, "report", str(out / "results.json"), "-o",
                    str(tmp_path / "again.html"))
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "again.html").read_text()
    assert '<section id="random-sign-baseline"' in html
    assert "Not run; add <code>--attack random-sign</code>" in html


def test_unknown_attack_lists_the_plugin_attack(plugin_site: Path, tmp_path: Path) -> None:
    result = robust(plugin_site, tmp_path, "audit", "--attack", "no-such-attack",
                    "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()  # INFO logging may come before the error
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "no-such-attack" in errors[0]
    assert all(name in errors[0] for name in ("random-sign", "fgsm", "pgd"))
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


def test_allow_list_keeps_the_plugin_out(plugin_site: Path, tmp_path: Path) -> None:
    result = robust(plugin_site, tmp_path, "plugins", load_plugins="")
    assert result.returncode == 0, result.stderr
    assert "example_attack" not in result.stdout
    assert "random-sign" not in result.stdout
