"""The ``gan`` task: objectives, views, the audit through the engine, results.json, the
report and the CLI (``robust audit --task gan``)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import Catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.gan.audit import run_gan_audit
from robustbench_lite.gan.matrices import GanMatrix, gan_matrix
from robustbench_lite.gan.networks import make_digits_gan
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.gan.quality import default_features
from robustbench_lite.gan.task import KEEP_FAKE, KEEP_REAL, GanTask, LatentZFoolD, keeps
from robustbench_lite.gan.views import ViewPlan, build_views
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.robust_model import state_dict_sha256
from robustbench_lite.reports.outputs import write_outputs
from robustbench_lite.reports.render import render_html
from robustbench_lite.results import AuditResult, read_results
from robustbench_lite.threat import Norm
from robustbench_lite.verdict import verdict
from tests.cli_runner import invoke

TINY = GanMatrix("tiny", "1", ("fgsm", "pgd:steps=10"), ("fgsm", "pgd:steps=10"),
                 (Norm.LINF,), (0.5, 1.0), 24)


@pytest.fixture(scope="module")
def pair() -> GanPair:
    """An untrained pair whose D is shifted to reject half of G's samples (so every view has
    samples to attack)."""
    generator, discriminator = make_digits_gan(seed=3)
    made = GanPair(generator, discriminator, "untrained", "", "python")
    _, fakes = made.sample(256, seed=9)
    last = [m for m in discriminator.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.bias -= made.realness(fakes).median()
    made.sha256 = state_dict_sha256(generator, discriminator)
    return made


@pytest.fixture(scope="module")
def audited(pair: GanPair, digits_test: EvalData) -> AuditResult:
    from robustbench_lite.catalogue import catalogue_for
    from robustbench_lite.plugin_host import get_plugin_manager

    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    return run_gan_audit(pair, digits_test, TINY, AuditSettings(show_progress=False),
                         catalogue, [], features=default_features((1, 8, 8)),
                         checks=[cls() for cls in catalogue.checks.values()])


def test_flip_decision_success_and_margin_agree() -> None:
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0], [float("nan")]])
    labels = torch.tensor([KEEP_FAKE, KEEP_FAKE, KEEP_REAL, KEEP_REAL, KEEP_REAL])
    goal = LatentZFoolD(labels)
    assert goal.success(logits).tolist() == [True, False, False, True, True]
    finite = goal.select(torch.arange(4))
    margin = finite.margin(logits[:4])
    assert ((margin <= 0) == finite.success(logits[:4])).all()
    assert not bool(keeps(logits, labels)[4])  # a NaN logit keeps no decision
    assert finite.loss(logits[:4]).tolist() == [2.0, -1.0, -0.5, 3.0]  # signed toward a flip


def test_task_refuses_targeted_threats_and_unknown_objectives() -> None:
    from robustbench_lite.errors import ThreatModelError
    from robustbench_lite.threat import ThreatModel

    with pytest.raises(ThreatModelError, match="no GAN objective"):
        GanTask("latent-q")
    with pytest.raises(ThreatModelError, match="targeted"):
        GanTask().objective_type(ThreatModel(Norm.LINF, 0.1, targeted=True))


def test_views_standardise_w_and_label_the_decisions(pair: GanPair,
                                                     digits_test: EvalData) -> None:
    plan = ViewPlan({Norm.LINF: (0.25,)}, {Norm.LINF: (0.1,)}, 16)
    views = {view.objective: view for view in build_views(pair, digits_test, plan, seed=1)}
    assert set(views) == {"latent-z-fool-d", "latent-z-rejected", "latent-w-fool-d",
                          "latent-w-rejected", "pixel-real-rejected", "pixel-fake-accepted"}
    w_view = views["latent-w-fool-d"]
    z = torch.randn((16, pair.z_dim), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the w view at u computes D(synthesis(mean + std * u)) = D(G(z))
        direct = pair.realness(pair.generate(z))
        through = w_view.model(w_view.data.x)[:, 0]
    assert torch.allclose(direct, through, atol=1e-5)
    threat = w_view.threats[0]
    assert math.isinf(threat.lower) and math.isinf(threat.upper)
    assert (views["pixel-real-rejected"].data.y == KEEP_REAL).all()
    assert (views["pixel-fake-accepted"].data.y == KEEP_FAKE).all()
    assert (views["latent-z-rejected"].data.y == KEEP_REAL).all()  # G's samples, accepted
    assert (views["latent-z-fool-d"].data.y == KEEP_FAKE).all()


def test_latent_pgd_stays_in_its_ball_and_raises_realness_with_eps(
        pair: GanPair, digits_test: EvalData, catalogue: Catalogue) -> None:
    """Host-verified: every example lies in its latent ball; D's mean realness on a fixed
    batch grows with eps."""
    eps = (0.0, 0.1, 0.25, 0.5, 1.0)
    plan = ViewPlan({Norm.LINF: eps, Norm.L2: (0.5, 2.0)}, {Norm.LINF: (0.1,)}, 32)
    view = next(v for v in build_views(pair, digits_test, plan, seed=0)
                if v.objective == "latent-z-fool-d")
    attack = build_attack("pgd:steps=20", catalogue)
    mean_realness = []
    for threat in view.threats:
        result = attack_batch(attack, view.model, view.data.x, view.data.y, threat, seed=0,
                              task=GanTask(view.objective))
        assert result.valid.all(), result.problems
        assert threat.contains(result.x_adv, view.data.x).all()
        if threat.norm is Norm.LINF:
            mean_realness.append(float(result.outputs.mean()))
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(mean_realness)), mean_realness
    assert mean_realness[-1] > mean_realness[0], mean_realness


def test_audit_names_every_cell_and_worst_case_by_objective(audited: AuditResult) -> None:
    objectives = {cell.objective for cell in audited.cells}
    assert objectives == {"latent-z-fool-d", "latent-z-rejected", "latent-w-fool-d",
                          "latent-w-rejected", "pixel-real-rejected", "pixel-fake-accepted"}
    assert all(row.objective in objectives for row in audited.robust_accuracy)
    table = audited.accuracy_table()
    assert "latent-z-fool-d Linf 0.25" in table.columns  # views sharing an eps never mix
    assert all(cell.error is None for cell in audited.cells)
    attacked = [c for c in audited.cells if c.n_attacked]
    assert attacked and all(c.success_rate is not None for c in attacked)
    gan = audited.gan
    assert gan["feature_extractor"].startswith("digits-cnn")
    assert gan["fd"] > 0 and 0 <= gan["d_accuracy"] <= 1
    assert {row["objective"] for row in gan["movement"]} >= {"latent-z-fool-d",
                                                             "latent-w-fool-d"}
    assert all(row["pixel_l2"] >= 0 for row in gan["movement"])
    assert gan["grids"] and gan["grids"][0]["image"].startswith("data:image/png;base64,")
    assert audited.checks and not any("probabilities" in c.name for c in audited.checks)
    assert "latent-z-fool-d success at the median threshold, Linf 0.25" in \
        audited.task.metrics  # the threshold-free number, compared by robust diff


def test_results_round_trip_and_report(audited: AuditResult, tmp_path: Path,
                                       catalogue: Catalogue) -> None:
    paths = write_outputs(audited, tmp_path, sections=catalogue.report_sections_for("gan"))
    document = json.loads(paths["results"].read_text())
    assert document["schema_version"] == 4
    assert {"fd", "kid", "d_accuracy", "feature_extractor"} <= set(document["gan"])
    assert all("objective" in cell and "success_rate" in cell for cell in document["cells"])
    again = read_results(paths["results"])
    assert again.gan["fd"] == pytest.approx(audited.gan["fd"])
    assert [r.objective for r in again.robust_accuracy] == \
        [r.objective for r in audited.robust_accuracy]
    html = render_html(again, sections=catalogue.report_sections_for("gan"))
    assert "Fréchet distance" in html and "latent-w-fool-d" in html
    assert "prior standard deviations" in html
    headlines = verdict(again).threats
    assert {h.objective for h in headlines} == {cell.objective for cell in again.cells}
    latent = next(h for h in headlines if h.objective == "latent-z-fool-d")
    assert latent.family == "gan-latent" and latent.standard  # Linf 0.25 sigma is standard


def test_a_tampered_gan_object_is_one_clear_error(audited: AuditResult, tmp_path: Path) -> None:
    from robustbench_lite.errors import ResultsFileError

    paths = write_outputs(audited, tmp_path)
    document = json.loads(paths["results"].read_text())
    document["gan"]["d_accuracy"] = "0.9"
    paths["results"].write_text(json.dumps(document))
    with pytest.raises(ResultsFileError, match=r"gan\.d_accuracy"):
        read_results(paths["results"])


def test_the_gan_matrices_exist() -> None:
    from robustbench_lite.errors import GanError

    assert gan_matrix("quick").latent_eps()[Norm.LINF] == (0.125, 0.25)
    with pytest.raises(GanError, match="quick, standard"):
        gan_matrix("huge")


class _ScriptedGenerator(nn.Module):
    """A TorchScript-able generator with a mapping network."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 4
        self.map_net = nn.Linear(4, 6)
        self.synth = nn.Linear(6, 64)

    @torch.jit.export
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.map_net(z))

    @torch.jit.export
    def synthesis(self, w: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.synth(w)).view(-1, 1, 8, 8)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.mapping(z))


@pytest.mark.usefixtures("isolated_cli")
def test_a_torchscript_pair_audits_end_to_end_through_the_cli(tmp_path: Path) -> None:
    torch.manual_seed(0)
    generator = torch.jit.script(_ScriptedGenerator())
    discriminator = torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 1)))
    torch.jit.save(generator, str(tmp_path / "G.pt"))
    torch.jit.save(discriminator, str(tmp_path / "D.pt"))
    out = tmp_path / "out"
    result = invoke("audit", "--task", "gan", "--generator", tmp_path / "G.pt",
                    "--discriminator", tmp_path / "D.pt", "--matrix", "quick",
                    "--n-samples", "20", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    assert document["task"]["name"] == "gan"
    assert document["gan"]["w_dim"] == 6 and document["gan"]["z_dim"] == 4
    assert {cell["objective"] for cell in document["cells"]} >= {"latent-z-fool-d",
                                                                 "latent-w-fool-d",
                                                                 "pixel-fake-accepted"}
    assert "GAN: discriminator" in (out / "report.html").read_text()


@pytest.mark.usefixtures("isolated_cli")
@pytest.mark.parametrize(("args", "message"), [
    (("--generator", "G.pt"), "add --task gan"),
    (("--task", "gan", "--attack", "pgd"), "--attack cannot be used with --task gan"),
    (("--task", "gan", "--matrix", "huge"), "no GAN threat matrix 'huge'"),
    (("--task", "gan", "--generator", "missing.pt", "--discriminator", "missing.pt"),
     "missing.pt"),
    (("--task", "gan", "--generator", "missing.pt"), "--discriminator"),
])
def test_gan_usage_errors_are_one_line(args: tuple[str, ...], message: str) -> None:
    result = invoke("audit", *args)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], \
        result.output


@pytest.mark.usefixtures("isolated_cli")
def test_harden_with_d_at_writes_the_pair_log_and_comparison(tmp_path: Path,
                                                             pair: GanPair) -> None:
    from robustbench_lite.gan.files import load_gan, save_gan

    start = tmp_path / "gan.safetensors"
    save_gan(start, pair.generator, pair.discriminator)
    out = tmp_path / "hardened"
    args = ("harden", start, "--task", "gan", "--defense",
            "d-at:steps=2,curriculum_epochs=1,spaces=latent-z+pixel", "--epochs", "1",
            "--matrix", "quick", "--n-samples", "16", "--out", out, "-q")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    hardened = load_gan(combined=out / "gan.safetensors")
    assert hardened.metadata["hardened_with"].startswith("d-at")
    log = json.loads((out / "training_log.json").read_text())
    assert len(log["records"]) == 1 and log["adversarial"]["spaces"] == ["latent-z", "pixel"]
    after = read_results(out / "after" / "results.json")
    assert after.gan["training"][0]["epoch"] == 1
    assert "fd" in after.task.metrics
    comparison = (out / "comparison.html").read_text()
    assert "Task metrics" in comparison and "latent-z-fool-d" in comparison
    again = invoke(*args)  # a finished run's checkpoint is not silently overwritten
    assert again.exit_code == 1 and "--resume" in again.output


@pytest.mark.usefixtures("isolated_cli")
@pytest.mark.parametrize(("args", "message"), [
    (("--defense", "d-at:nope=1"), "has no parameter 'nope'"),
    (("--defense", "pgd-at"), "not 'pgd-at'"),
    (("--defense", "d-at", "--defense", "d-at"), "exactly one --defense"),
    (("--defense", "d-at", "--arch", "digits-cnn"), "--arch cannot be used with --task gan"),
    (("--defense", "d-at:mix=2"), "mix"),
    (("--defense", "d-at:steps=2.5"), "steps must be an integer"),
    (("--defense", "d-at:spaces=latent-q"), "spaces"),
])
def test_gan_harden_usage_errors_are_one_line(args: tuple[str, ...], message: str) -> None:
    result = invoke("harden", "--task", "gan", *args)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], \
        result.output


def test_a_style_generator_plugs_in_through_the_wrapper(digits_test: EvalData,
                                                        catalogue: Catalogue) -> None:
    """A user's style-based generator (as for StyleGAN2) through `WrappedStyleGenerator`."""
    from robustbench_lite.gan.pair import StyleGeneratorModule
    from robustbench_lite.semantic.wrap import WrappedStyleGenerator

    torch.manual_seed(0)
    mapping_net, synthesis_net = nn.Linear(4, 6), nn.Linear(6, 64)
    style = WrappedStyleGenerator(
        mapping=mapping_net, synthesis=lambda ws: torch.sigmoid(synthesis_net(ws[:, 0]))
        .view(-1, 1, 8, 8), encoder=None, z_dim=4, style_dim=6, num_layers=2,
        coarse_layers=(0,), fine_layers=(1,), image_shape=(1, 8, 8),
        modules=[mapping_net, synthesis_net])
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    pair = GanPair(StyleGeneratorModule(style), discriminator, "wrapped", "0" * 64, "python")
    assert pair.has_mapping and pair.z_dim == 4
    result = run_gan_audit(pair, digits_test, TINY, AuditSettings(show_progress=False),
                           catalogue, [], features=None, samples=12)
    assert result.gan["w_dim"] == 6 and result.gan["fd"] is None
    assert any(note.stage == "quality" for note in result.notes)  # no features: said so
    assert {cell.objective for cell in result.cells} >= {"latent-w-fool-d"}


def test_a_rerun_reuses_the_stored_cells(pair: GanPair, digits_test: EvalData,
                                         catalogue: Catalogue, tmp_path: Path) -> None:
    from robustbench_lite.engine.store import ResultStore

    def run() -> AuditResult:
        store = ResultStore(tmp_path / "results.sqlite")
        try:
            return run_gan_audit(pair, digits_test, TINY, AuditSettings(show_progress=False),
                                 catalogue, [], features=None, samples=12, store=store)
        finally:
            store.close()

    first, second = run(), run()
    assert [c.accuracy for c in first.cells] == [c.accuracy for c in second.cells]
    assert all(cell.batch_size is None for cell in second.cells if cell.skipped is None)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_bundled_gan_audits_on_cuda_as_on_the_cpu() -> None:
    from robustbench_lite.gan.api import audit_gan

    cpu = audit_gan(matrix="quick", samples=32, device="cpu", checks=False)
    cuda = audit_gan(matrix="quick", samples=32, device="cuda", checks=False)
    for a, b in zip(cpu.cells, cuda.cells, strict=True):
        assert a.objective == b.objective
        assert a.accuracy is not None and b.accuracy is not None
        assert abs(a.accuracy - b.accuracy) <= 1 / 32 + 1e-9


def test_a_stricter_d_cannot_move_the_median_threshold_success(
        pair: GanPair, digits_test: EvalData, catalogue: Catalogue) -> None:
    """Lowering D's bias makes it reject more generated samples (plain success falls) but
    leaves the success at the median threshold exactly as it was."""
    import copy

    stricter = copy.deepcopy(pair)
    last = [m for m in stricter.discriminator.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.bias -= 0.05
    stricter.sha256 = "1" * 64
    rows = []
    for candidate in (pair, stricter):
        result = run_gan_audit(candidate, digits_test, TINY, AuditSettings(show_progress=False),
                               catalogue, [], features=None, samples=24)
        rows.append({(r["objective"], r["eps"]): r for r in result.gan["movement"]})
    key = ("latent-z-fool-d", 0.25)
    assert rows[0][key]["median_threshold_success_rate"] == \
        rows[1][key]["median_threshold_success_rate"]
    assert rows[1][key]["median_threshold"] == pytest.approx(rows[0][key]["median_threshold"]
                                                             - 0.05, abs=1e-5)


@pytest.fixture(scope="module")
def bundled_views(digits_test: EvalData) -> dict[str, object]:
    from robustbench_lite.gan.api import open_pair

    plan = ViewPlan({Norm.LINF: (0.0, 2.0), Norm.L2: (4.0,)},
                    {Norm.LINF: (0.0, 0.3), Norm.L2: (3.0,)}, 64)
    return {view.objective: view for view in build_views(open_pair(), digits_test, plan, 0)}


@pytest.mark.parametrize("objective", ["latent-z-fool-d", "latent-w-fool-d",
                                       "latent-z-rejected", "latent-w-rejected",
                                       "pixel-real-rejected", "pixel-fake-accepted"])
def test_a_strong_attack_reaches_every_objective_on_the_bundled_gan(
        objective: str, bundled_views: dict[str, object], catalogue: Catalogue) -> None:
    """PGD-50 with 3 restarts at a large budget flips D's decision on (nearly) every sample
    it attacks: fools D with moved latents or pixels, or makes it reject; at eps 0 it flips
    none."""
    from robustbench_lite.gan.views import View

    view = bundled_views[objective]
    assert isinstance(view, View)
    task = GanTask(objective)
    with torch.no_grad():
        attacked = task.correct(view.model(view.data.x), view.data.y)
    assert int(attacked.sum()) >= 16  # the bundled D keeps enough decisions to attack
    attack = build_attack("pgd:steps=50,restarts=3", catalogue)
    for threat in view.threats:
        result = attack_batch(attack, view.model, view.data.x, view.data.y, threat, seed=0,
                              task=task)
        assert result.valid.all(), result.problems
        reached = float((result.success & attacked).sum() / attacked.sum())
        if threat.eps == 0:
            assert reached == 0.0
        else:
            assert reached >= 0.95, (threat.label, reached)
