"""``robust audit``: evaluate a model file against a threat matrix and write the report."""

from __future__ import annotations

from pathlib import Path

import click

from robustbench_lite.api import (
    DEFAULT_MATRIX,
    DEFAULT_TASK,
    DEFAULT_TRANSFER_ATTACK,
    AuditJob,
    ModelOptions,
    run_job,
)
from robustbench_lite.api import prepare as prepare_job
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.cli.errors import command_line, configure_output, explain_errors
from robustbench_lite.cli.options import (
    cell_time_limit_option,
    check_output_folder,
    parse_model_options,
    refuse_given,
    template_dir_option,
)
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.engine.store import ResultStore
from robustbench_lite.file_set import complete_interrupted_write
from robustbench_lite.gan.api import audit_gan, open_pair
from robustbench_lite.gan.matrices import gan_matrix
from robustbench_lite.gan.task import GanTask
from robustbench_lite.gates import (
    GATE_FAILED_EXIT_CODE,
    Gate,
    evaluate_gates,
    parse_gate_at,
    parse_threshold,
)
from robustbench_lite.plugin_host import default_plugin_manager
from robustbench_lite.reports.outputs import write_outputs
from robustbench_lite.reports.render import check_templates
from robustbench_lite.results import AuditResult, threat_label

#: Exit code of ``robust audit --strict`` when a sanity check fails (3: a gate failed).
CHECK_FAILED_EXIT_CODE = 4

EPILOG = """\b
Examples:
  robust audit                                  # built-in default model on digits
  robust audit --matrix quick                   # a one-minute audit
  robust audit model.pt --arch preact-resnet18 --data cifar10:./cifar-10-batches-py \\
      --mean 0.4914,0.4822,0.4465 --std 0.2471,0.2435,0.2616
  robust audit scripted.pt --data test.npz --threat linf:2/255,8/255 --attack pgd:steps=40
  robust audit --threat linf:0.2:targeted=least-likely --attack pgd   # targeted attacks
  robust audit a.pt --compare b.pt --compare c.pt --data test.npz   # transferability
  robust audit model.pt --data test.npz --fail-under 0.5            # CI gate (exit 3)
  robust audit model.pt --data test.npz --strict    # exit 4 if a sanity check fails
  robust audit whole_model.pt --trust-model     # pickled nn.Module: runs code from the file
  robust audit --template-dir ./our-templates   # restyled report (see robust report --help)
  robust audit --task gan                       # the bundled digits GAN's discriminator
  robust audit --task gan --generator G.pt --discriminator D.pt --data real.npz
"""


@click.command("audit", epilog=EPILOG)
@click.argument("model", required=False)
@click.option("--arch", help="Architecture for a state_dict/safetensors file: a built-in name "
              "or package.module:ClassName.")
@click.option("--arch-kwargs", help="JSON keyword arguments for --arch, e.g. "
              "'{\"num_classes\": 100}'.")
@click.option("--trust-model", is_flag=True, help="Allow loading a pickled nn.Module. This "
              "runs code from the file: only for files you trust.")
@click.option("--format", "format_name", help="Force a model adapter instead of detecting "
              "the format by content (see `robust plugins`).")
@click.option("--mean", help="Per-channel normalisation mean folded into the model, e.g. "
              "0.4914,0.4822,0.4465.")
@click.option("--std", help="Per-channel normalisation std folded into the model.")
@click.option("--data", "data_spec", help="Dataset: an embedded name (digits), a path "
              "(.npz, image folder, CIFAR-10 batches, MNIST IDX) or NAME:PATH. "
              "[default: digits]")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--n-samples", type=click.IntRange(min=1), help="Audit only the first N samples.")
@click.option("--matrix", default=DEFAULT_MATRIX, show_default=True,
              help="Threat matrix: a preset (see `robust matrix list`) or a .toml file.")
@click.option("--attack", "attack_specs", multiple=True, metavar="NAME[:k=v,...]",
              help="Replace the matrix's attacks (repeatable), e.g. pgd:steps=40.")
@click.option("--threat", "threat_specs", multiple=True,
              metavar="NORM:EPS[,EPS...][:targeted[=MODE]]",
              help="Replace the matrix's threat models (repeatable), e.g. linf:0.1,8/255. "
              "Append :targeted for targets drawn at random, or :targeted=MODE with MODE "
              "next-likely, least-likely or a class index.")
@click.option("--task", default=DEFAULT_TASK, show_default=True,
              help="How the model is judged: a registered task (see `robust plugins`); "
              "gan audits a GAN's discriminator (MODEL: one file holding G and D).")
@click.option("--generator", "gan_generator", metavar="FILE",
              help="--task gan: the generator (safetensors or TorchScript).")
@click.option("--discriminator", "gan_discriminator", metavar="FILE",
              help="--task gan: the discriminator (safetensors or TorchScript).")
@click.option("--feature-model", metavar="FILE[@ARCH]",
              help="--task gan: a classifier of the real images whose penultimate layer "
              "measures image quality. [default: the bundled digits classifier for 8x8 "
              "digits]")
@click.option("--fast", is_flag=True, help="Cascade mode: each attack runs only on samples "
              "the earlier ones left robust (same worst case, cumulative per-attack cells).")
@click.option("--compare", "compare_models", multiple=True, metavar="MODEL",
              help="Another model for the transferability table (repeatable; loaded with the "
              "same --arch/--mean/--std options).")
@click.option("--transfer/--no-transfer", default=True, show_default=True,
              help="Build the transferability table (with no --compare: against a surrogate "
              "distilled from the model's predictions).")
@click.option("--transfer-attack", default=DEFAULT_TRANSFER_ATTACK, show_default=True,
              help="Attack crafting the transferred examples.")
@click.option("--fail-under", metavar="ACC", help="Exit with code 3 if the worst-case robust "
              "accuracy at any threat model is below ACC (0.6 or 60%).")
@click.option("--fail-under-at", "fail_under_at", multiple=True, metavar="NORM:EPS=ACC",
              help="Exit with code 3 if the worst-case robust accuracy at this threat model "
              "is below ACC (repeatable), e.g. linf:8/255=0.5.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Halved automatically on CUDA out-of-memory.")
@click.option("--shard-size", type=click.IntRange(min=1), help="Split each cell into units of "
              "this many samples (the unit of resumption). [default: one unit per cell]")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N or mps, where present.")
@cell_time_limit_option
@click.option("--draws", type=click.IntRange(min=2), metavar="N",
              help="Forward draws per judged example when the model is randomised (each "
              "example is judged in expectation). [default: enough for a standard error "
              "under one point, 16 to 128]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("robust-out"), show_default=True, help="Output directory.")
@click.option("--store/--no-store", "use_store", default=True, show_default=True,
              help="Keep finished cells in OUT/results.sqlite so a rerun resumes.")
@click.option("--name", help="Model name shown in the report. [default: the file name]")
@click.option("--examples", "n_examples", type=click.IntRange(min=0), default=6,
              show_default=True, help="Example images in the report (0: none).")
@click.option("--checks/--no-checks", "run_checks", default=True, show_default=True,
              help="Run the sanity checks (gradient masking, randomness, convergence, ...) "
              "and their adaptive fallback attacks.")
@click.option("--strict", is_flag=True, help="Exit with code 4 if a sanity check fails.")
@click.option("--smoothing-sigma", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Add the randomized-smoothing certificate (Cohen et al. 2019) of the model "
              "smoothed with Gaussian noise of std S (off unless given).")
@click.option("--smoothing-n0", type=click.IntRange(min=1), metavar="N0",
              default=AuditSettings.smoothing_n0, show_default=True,
              help="Noise draws per sample choosing the smoothed prediction.")
@click.option("--smoothing-n", type=click.IntRange(min=1), metavar="N",
              default=AuditSettings.smoothing_n, show_default=True,
              help="Noise draws per sample bounding its probability (more: larger radii).")
@click.option("--smoothing-alpha", type=click.FloatRange(min=0, max=0.5, min_open=True,
                                                         max_open=True),
              metavar="A", default=AuditSettings.smoothing_alpha, show_default=True,
              help="Failure probability of the smoothing certificate.")
@template_dir_option
@click.option("--quiet", "-q", is_flag=True, help="Only warnings, errors and the output paths.")
@explain_errors
def audit_command(model: str | None, arch: str | None, arch_kwargs: str | None,
                  trust_model: bool, format_name: str | None, mean: str | None,
                  std: str | None, data_spec: str | None, split: str, n_samples: int | None,
                  matrix: str, attack_specs: tuple[str, ...], threat_specs: tuple[str, ...],
                  task: str, gan_generator: str | None, gan_discriminator: str | None,
                  feature_model: str | None, fast: bool, compare_models: tuple[str, ...],
                  transfer: bool,
                  transfer_attack: str, fail_under: str | None, fail_under_at: tuple[str, ...],
                  seed: int, batch_size: int, shard_size: int | None, device: str,
                  cell_time_limit: float, draws: int | None, out_dir: Path, use_store: bool,
                  name: str | None, n_examples: int, run_checks: bool, strict: bool,
                  smoothing_sigma: float | None, smoothing_n0: int, smoothing_n: int,
                  smoothing_alpha: float, template_dirs: tuple[Path, ...],
                  quiet: bool) -> None:
    """Audit the robustness of MODEL (a model file or a built-in model name).

    With no MODEL, audits the built-in default model on the embedded digits data. The
    format of MODEL is detected by content: TorchScript, a torch.save state_dict or
    checkpoint (with --arch), safetensors (with --arch), or a pickled nn.Module (only with
    --trust-model). Writes report.html, results.json and CSV tables into --out; finished
    cells are kept in --out/results.sqlite, so an interrupted audit resumes where it stopped.
    """
    configure_output(quiet)
    complete_interrupted_write(out_dir)  # a killed earlier run's outputs: one set again
    target, kwargs, mean_values, std_values = parse_model_options(device, arch_kwargs, mean,
                                                                  std)
    gates = _parse_gates(fail_under, fail_under_at)
    manager = default_plugin_manager()
    sections = catalogue_for(manager).report_sections_for(task)
    check_templates(template_dirs, sections)
    check_output_folder(out_dir)
    if task != GanTask.name and (gan_generator or gan_discriminator or feature_model):
        raise click.UsageError("--generator, --discriminator and --feature-model describe a "
                               "GAN; add --task gan")
    if task == GanTask.name:
        refuse_given(click.get_current_context(), NOT_FOR_GAN, "with --task gan: the GAN "
                     "matrix (--matrix quick or standard) sets its attacks and threat models "
                     "(docs/gan.md)")
        gan_matrix(matrix)  # a typo fails before any file is read
        pair = open_pair(model, generator=gan_generator, discriminator=gan_discriminator)
        click.echo(f"Auditing the discriminator of {pair.name} ({pair.format}), matrix "
                   f"gan-{matrix}")
        result = audit_gan(pair, data=data_spec, split=split, matrix=matrix,
                           samples=n_samples, feature_model=feature_model, seed=seed,
                           batch_size=batch_size, device=target,
                           store=out_dir / ResultStore.FILENAME if use_store else None,
                           checks=run_checks, show_progress=not quiet,
                           cell_time_limit=cell_time_limit or None,
                           command=command_line(click.get_current_context()), manager=manager)
    else:
        job = prepare_job(
            model, data_spec, matrix=matrix, attacks=attack_specs, threats=threat_specs,
            options=ModelOptions(arch=arch, arch_kwargs=kwargs, trust_model=trust_model,
                                 mean=mean_values, std=std_values, format_name=format_name,
                                 name=name),
            compare=compare_models, transfer=transfer, transfer_attack=transfer_attack, seed=seed,
            batch_size=batch_size, device=target, fast=fast, shard_size=shard_size,
            store=out_dir / ResultStore.FILENAME if use_store else None, split=split,
            n_samples=n_samples, examples=n_examples, checks=run_checks, task=task,
            cell_time_limit=cell_time_limit or None, draws=draws, show_progress=not quiet,
            command=command_line(click.get_current_context()), manager=manager,
            smoothing_sigma=smoothing_sigma, smoothing_n0=smoothing_n0, smoothing_n=smoothing_n,
            smoothing_alpha=smoothing_alpha)
        click.echo(_first_line(job, model))
        result = run_job(job)
    result.gates = evaluate_gates(result, gates)
    try:
        paths = write_outputs(result, out_dir, template_dirs, sections)
    except OSError as exc:  # a full disk, a folder made read-only meanwhile
        kept = "; the finished cells are kept in the result store, so a rerun resumes" \
            if use_store else ""
        raise click.ClickException(f"cannot write the outputs to {out_dir}: "
                                   f"{exc.strerror or exc}; no output file was half-written"
                                   f"{kept}") from exc
    if not quiet:
        _print_summary(result)
    click.echo(f"Report:  {paths['report'].resolve()}")
    click.echo(f"Results: {paths['results'].resolve()}")
    for note in result.notes:
        subject = f" ({note.subject})" if note.subject else ""
        click.echo(f"Warning: {note.stage}{subject} {note.status}: {note.reason}", err=True)
    for check in result.checks:
        if check.status != "pass":
            click.echo(f"Check {'FAILED' if check.status == 'fail' else 'warning'}: "
                       f"{check.name}: {check.message}", err=True)
    failed = [gate for gate in result.gates if not gate["passed"]]
    for gate in result.gates:
        click.echo(f"Gate {'passed' if gate['passed'] else 'FAILED'}: {gate['message']}",
                   err=not gate["passed"])
    if failed:
        raise SystemExit(GATE_FAILED_EXIT_CODE)
    if strict and any(check.status == "fail" for check in result.checks):
        raise SystemExit(CHECK_FAILED_EXIT_CODE)


#: Options of a classifier audit that a GAN audit does not use (its views, attacks and
#: threat models come from the GAN matrix: robustbench_lite.gan.matrices).
NOT_FOR_GAN = ("arch", "arch_kwargs", "trust_model", "format_name", "mean", "std",
               "attack_specs", "threat_specs", "fast", "compare_models", "transfer_attack",
               "shard_size", "draws", "smoothing_sigma", "name")


def _first_line(job: AuditJob, model: str | None) -> str:
    data = f"on {job.data.name!r} ({job.split} split, {len(job.data.x)} samples), " \
           f"matrix {job.matrix.name!r}"
    if job.bundled is not None:
        what = "the built-in default model" if model is None else "the built-in model"
        return f"Auditing {what} {job.bundled.name!r} (bundled weights) {data}"
    return f"Auditing {model} {data}"


def _parse_gates(fail_under: str | None, fail_under_at: tuple[str, ...]) -> list[Gate]:
    gates = [parse_gate_at(spec) for spec in fail_under_at]
    if fail_under is not None:
        try:
            gates.insert(0, Gate(parse_threshold(fail_under)))
        except ValueError as exc:
            raise click.ClickException(f"--fail-under: {exc}") from exc
    return gates


def _print_gan_summary(result: AuditResult) -> None:
    """D's quality numbers, then one accuracy table per view (objective)."""
    gan = result.gan
    quality = (f"   FD {gan['fd']:.4g}, KID {gan['kid']:.4g} ({gan['feature_extractor']})"
               if gan.get("fd") is not None else "")
    click.echo(f"\nD accuracy on held-out real vs generated: {result.clean_accuracy:.2%}"
               f"{quality}")
    table = result.accuracy_table()
    for view in gan.get("views", []):
        prefix = f"{view['objective']} "
        columns = [column for column in table.columns if str(column).startswith(prefix)]
        part = table[columns].dropna(how="all")
        part.columns = [str(column)[len(prefix):] for column in part.columns]
        click.echo(f"\n{view['objective']} (clean: D keeps its decision on "
                   f"{view['clean_accuracy']:.1%} of {view['n_samples']}):")
        click.echo(part.map(lambda v: "-" if v != v else f"{v:.2%}").to_string())


def _print_summary(result: AuditResult) -> None:
    if result.gan:
        _print_gan_summary(result)
        return
    click.echo(f"\nClean accuracy: {result.clean_accuracy:.2%}   mode: {result.mode}")
    table = result.accuracy_table()
    click.echo(table.map(lambda v: "-" if v != v else f"{v:.2%}").to_string())
    targeted = [cell for cell in result.cells if cell.targeted and cell.success_rate is not None]
    if targeted:
        click.echo("\nTargeted success (attacked samples the model put in their target class):")
        for cell in targeted:
            label = threat_label(cell.norm, cell.eps, True, cell.target_mode)
            click.echo(f"  {cell.attack} {label}: {cell.success_rate:.2%} of {cell.n_attacked}")
    for cell in result.cells:
        if cell.error:
            click.echo(f"Cell failed: {cell.attack} {cell.norm} {cell.eps:g}: {cell.error}",
                       err=True)
        elif cell.violations:
            click.echo(f"Invalid output not counted: {cell.attack} {cell.norm} {cell.eps:g}: "
                       f"{'; '.join(cell.violation_details)}", err=True)
    if result.transfer:
        click.echo("\nTransferability (target accuracy on the source's adversarial examples):")
        for row in result.transfer:
            click.echo(f"  {row['source']} -> {row['target']} at {row['norm']} "
                       f"eps={row['eps']:g}: {row['accuracy']:.2%}")
