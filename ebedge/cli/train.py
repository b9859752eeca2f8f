"""`ebedge train`, `ebedge run`, `ebedge flops`: one run, the built-in default, and FLOPs."""
import json
import os

import click

from ebedge.cli.options import load_settings_file, parse_meter_options
from ebedge.errors import EbedgeError
from ebedge.config.settings import DATASETS, DEFAULTS, METHODS, MODEL_NAMES, RETRAIN_MODES
from ebedge.report.summary_table import no_ticket_note


def _meter_choices():
    import meters  # the drivers' registry; loads no torch
    return ["auto", "none"] + meters.names()


@click.command()
@click.option("--method", default="eb", show_default=True, type=click.Choice(METHODS),
              help="EB Train variant or baseline to run")
@click.option("--model", default="vgg16", show_default=True, type=click.Choice(MODEL_NAMES),
              help="network to train")
@click.option("--dataset", default="synthetic", show_default=True, type=click.Choice(DATASETS),
              help="synthetic ships with ebedge; imagefolder is any class-per-folder tree")
@click.option("--data-dir", default=None, help="dataset root (CIFAR files or train/ + test/ tree)")
@click.option("--download", is_flag=True, help="download CIFAR into --data-dir if missing")
@click.option("--prune-ratio", "prune_ratio", multiple=True, type=float,
              help="p; repeat for several detectors (the first is pruned at) [default: 0.5]")
@click.option("--epochs", type=int, help="search schedule length [default: 160]")
@click.option("--retrain-epochs", type=int, help="retrain length [default: remaining epochs]")
@click.option("--batch-size", type=int, help="mini-batch size [default: 256]")
@click.option("--retrain-batch-size", type=int, help="the retrain's own mini-batch size [default: --batch-size]")
@click.option("--lr", type=float, help="initial learning rate [default: 0.1]")
@click.option("--sparsity", type=float, help="L1 strength on BN scales, the paper's s [default: 1e-4]")
@click.option("--retrain-sparsity", type=float,
              help="EB Train's L1 strength while retraining [default: --sparsity]")
@click.option("--epsilon", type=float, help="Early-Bird mask-distance threshold [default: 0.1]")
@click.option("--keep-searching", is_flag=True, default=None,
              help="keep training after the ticket is drawn, for study (the ticket drawn at the "
                   "EB epoch is still the one pruned; the extra epochs count as search FLOPs)")
@click.option("--retrain", type=click.Choice(RETRAIN_MODES),
              help="after pruning: keep the inherited weights or re-initialise [default: finetune]")
@click.option("--width", type=float, help="channel multiplier for small runs [default: 1]")
@click.option("--limit-train", type=int, help="use a seeded random subset of N training images")
@click.option("--limit-test", type=int, help="use a seeded random subset of N test images")
@click.option("--seed", type=int, help="random seed of data order and initialisation [default: 1]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
              help="where to train; auto = cuda when available [default: auto]")
@click.option("--workers",
              help="torchvision pipeline's loader processes, N or auto (cores - 1) [default: auto]")
@click.option("--data-pipeline", type=click.Choice(["auto", "tensor", "torchvision"]),
              help="tensor: images resident on the device, batch augmentation (small images); "
                   "torchvision: per-image; auto picks by image size [default: auto]")
@click.option("--amp", is_flag=True, default=None,
              help="CUDA mixed precision (fp16 autocast, grad scaler)")
@click.option("--channels-last", is_flag=True, default=None, help="NHWC memory format")
@click.option("--cudnn-benchmark/--no-cudnn-benchmark", default=None,
              help="cuDNN kernel autotuning on CUDA [default: on]")
@click.option("--channel-multiple", type=int,
              help="round kept channels per layer up to a multiple of K (beyond the paper) "
                   "[default: 1]")
@click.option("--meter", "meter_names", multiple=True, type=click.Choice(_meter_choices()),
              help="meter to record, repeatable; auto = the most trusted present (the labelled "
                   "'model' estimate when no real meter exists), none = measure nothing "
                   "[default: auto]")
@click.option("--meter-option", multiple=True, help="METER.KEY=VALUE driver option, e.g. wattsup.port=/dev/ttyUSB0")
@click.option("--meter-interval", type=float, help="sampling interval in seconds")
@click.option("--idle-seconds", type=float, help="idle power window before and after [default: 0]")
@click.option("--allow", is_flag=True, default=None,
              help="record power-mode/clock changes mid-run instead of refusing")
@click.option("--cooldown", "cooldown_temp_c", type=float,
              help="wait until every thermal zone is below this many degrees C first")
@click.option("--milestones", help="epochs where lr *= --lr-gamma, e.g. 30,60 "
              "[default: the paper's: 50%,75% of --epochs; ImageNet models 1/3,2/3]")
@click.option("--lr-gamma", type=float, help="lr factor at each milestone [default: 0.1]")
@click.option("--lr-schedule", help="EPOCH:LR steps, e.g. 0:0.01,100:0.001 (the paper's "
              "[0LR0.01, 100LR0.001]); overrides --lr and --milestones")
@click.option("--retrain-lr-schedule", help="the retrain's own EPOCH:LR steps (Table 1)")
@click.option("--draw-at", type=int, help="EB variants: draw the ticket after exactly this many "
              "epochs, prune, retrain for the rest of the schedule")
@click.option("--reinit-epochs", type=click.Choice(["full", "remaining"]),
              help="re-init retrain length [default: full, the paper's]")
@click.option("--resnet-prune-scope", type=click.Choice(["all-bn", "inner-only"]),
              help="ResNet-18/50: every BN with block-input selection (official) or only the BNs "
                   "inside blocks [default: all-bn]")
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(min=1),
              help="train on N processes of this machine with DistributedDataParallel (torchrun; "
                   "one GPU each on CUDA, gloo on the CPU); --batch-size stays the global batch")
@click.option("--repeats", default=1, show_default=True, type=click.IntRange(1),
              help="run N times (seed + i) into --out/r<i> and report mean, std and 95% interval")
@click.option("--settings", "settings_file", type=click.File("r"),
              help="JSON object of settings (what `ebedge remote` pushes); flags given here win")
@click.option("--out", type=click.Path(file_okay=False), help="run directory [default: results/<id>]")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="continue the run in this directory from its last checkpoint")
@click.option("--overwrite", is_flag=True, help="replace a run already in --out")
@click.option("--quiet", is_flag=True, help="no progress output")
def train(method, model, dataset, data_dir, download, prune_ratio, meter_names, meter_option,
          settings_file, resume_dir, out, overwrite, quiet, repeats, nproc, **options):
    """Search, draw the ticket, prune and retrain; writes a run directory."""
    if nproc > 1 and resume_dir:
        _launch(nproc, ["--resume", resume_dir] + (["--quiet"] if quiet else []), resume_dir)
        return
    if resume_dir:
        from ebedge.run.runner import execute
        summary = execute(None, out=resume_dir, resume=True, quiet=quiet)
        out = resume_dir
    else:
        given = dict(options, method=method, model=model, dataset=dataset, data_dir=data_dir,
                     download=download or None, prune_ratio=list(prune_ratio) or None,
                     meters=list(meter_names) or None,
                     meter_options=parse_meter_options(meter_option) or None)
        settings = load_settings_file(settings_file) if settings_file else {}
        ctx = click.get_current_context()
        settings.update({k: v for k, v in given.items()
                         if v is not None and (not settings_file
                                               or _given(ctx, _PARAM_NAMES.get(k, k)))})
        data_dir = settings.get("data_dir")
        if data_dir is not None and not os.path.isdir(data_dir) and not download:
            raise EbedgeError("data directory not found: %s" % data_dir)
        from ebedge.config.settings import resolve
        resolved = resolve(settings)  # every value is checked before torch loads
        from ebedge.run.runner import default_out, execute
        out = out or default_out(resolved)
        if repeats != 1:
            _repeat(settings, out, repeats, overwrite, quiet)
            return
        if nproc > 1:
            _launch_settings(nproc, settings, out, overwrite, quiet)
            return
        summary = execute(settings, out=out, overwrite=overwrite, quiet=quiet)
    from ebedge.training.distributed import is_main_process
    if not is_main_process():  # torchrun's other ranks: rank 0 reports
        return
    click.echo(_one_line(summary))
    click.echo("results: %s" % out)

def _repeat(settings, out, repeats, overwrite, quiet):
    from ebedge.run.runner import execute_repeats
    summaries, statistics = execute_repeats(settings, out, repeats, overwrite=overwrite,
                                            quiet=quiet)
    for summary in summaries:
        click.echo(_one_line(summary))
    click.echo("%-18s %4s %14s %14s %14s" % ("over repeats", "n", "mean", "std", "95% +-"))
    for name, row in statistics.items():
        click.echo("%-18s %4d %14.6g %14s %14s" % (
            name, row["n"], row["mean"], "-" if row["std"] is None else "%.6g" % row["std"],
            "-" if row["ci95"] is None else "%.6g" % row["ci95"]))
    click.echo("results: %s (repeats.json)" % out)

def _launch_settings(nproc, settings, out, overwrite, quiet):
    from ebedge.training.distributed import settings_file
    path = settings_file(settings)
    try:
        _launch(nproc, ["--settings", path, "--out", out] + (["--overwrite"] if overwrite else [])
                + (["--quiet"] if quiet else []), out)
    finally:
        os.remove(path)

def _launch(nproc, args, out):
    """The run as `nproc` torchrun processes (rank 0 prints its line and the results path)."""
    from ebedge.training.distributed import launch
    code = launch(nproc, args)
    if code != 0:
        raise EbedgeError("training on %d processes into %s failed (torchrun exit code %d)"
                          % (nproc, out, code))

_PARAM_NAMES = {"meters": "meter_names", "meter_options": "meter_option"}


class PassesTrainOptions(click.Command):
    """A command that passes `ebedge train`'s setting options on (`remote run`): its --help
    lists them after its own options."""

    def format_options(self, ctx, formatter):
        click.Command.format_options(self, ctx, formatter)
        setting_of = {v: k for k, v in _PARAM_NAMES.items()}
        own = {opt for p in self.params for opt in p.opts}
        rows = [p.get_help_record(ctx) for p in train.params
                if isinstance(p, click.Option) and setting_of.get(p.name, p.name) in DEFAULTS
                and not own.intersection(p.opts)]
        with formatter.section("Train options (passed on to the run)"):
            formatter.write_dl(rows)

def _given(ctx, name):
    """True when the user typed the option (not its default) on the command line."""
    source = getattr(ctx, "get_parameter_source", None)
    if source is None:  # click 7: treat any non-default value as given
        return True
    return source(name) is not None and source(name).name == "COMMANDLINE"

def _one_line(summary):
    energy = summary.get("energy")
    text = "%s %s: test acc %.2f%%, EB epoch %s, train %.4g PFLOPs, %.1fs" % (
        summary["method"], summary["model"], 100 * (summary.get("test_acc") or 0),
        summary.get("eb_epoch"), (summary.get("train_flops_total") or 0) / 1e15,
        summary.get("runtime_s", 0))
    if energy:
        text += ", train energy %.4g kJ (%s, %s)" % (energy["kj"].get("train_total", 0.0),
                                                    energy["method"], energy["meter"])
    return text + no_ticket_note(summary)

@click.command()
@click.option("--model", default="vgg16", show_default=True, type=click.Choice(MODEL_NAMES),
              help="network to count")
@click.option("--dataset", default="cifar10", show_default=True,
              type=click.Choice(("cifar10", "cifar100", "imagenet", "synthetic")),
              help="cifar10, cifar100 (50,000 images), imagenet (1,281,167), or synthetic")
@click.option("--epochs", default=160, show_default=True, type=int, help="training epochs")
@click.option("--images", type=int, help="training images per epoch [default: the dataset's]")
@click.option("--prune-ratio", type=float, help="count the network pruned at p by a uniform mask")
@click.option("--width", default=1.0, show_default=True, type=float, help="channel multiplier")
@click.option("--method", help="total training FLOPs of this method's schedule (" +
              ", ".join(METHODS) + ")")
@click.option("--eb-epoch", type=int, help="with --method: epochs searched before the ticket")
@click.option("--pruned-fraction", type=float,
              help="with --method: the pruned network's forward FLOPs / the dense one's "
                   "[default: the uniform mask of --prune-ratio]")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def flops(model, dataset, epochs, images, prune_ratio, width, method, eb_epoch, pruned_fraction,
          as_json):
    """Forward MACs/FLOPs, parameters and training FLOPs (FLOPs = 2 x MACs, step = 3 x forward)."""
    from ebedge.training.flops import method_training_flops, training_cost
    result = training_cost(model, dataset, epochs, images=images, prune_ratio=prune_ratio,
                           width=width)
    if method is not None:
        result["method_cost"] = method_training_flops(result, method, eb_epoch=eb_epoch,
                                                      pruned_fraction=pruned_fraction)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    click.echo("model %s on %s (%d classes, %d images x %d epochs)" % (
        model, dataset, result["num_classes"], result["images"], epochs))
    click.echo("  params          %14d" % result["params"])
    click.echo("  forward MACs    %14.4g per image" % result["forward_macs"])
    click.echo("  forward FLOPs   %14.4g per image" % result["forward_flops"])
    click.echo("  training FLOPs  %14.4g (%.4g PFLOPs)" % (result["train_flops"],
                                                         result["train_flops"] / 1e15))
    cost = result.get("method_cost")
    if cost:
        click.echo("  %s total      %14.4g (%.4g PFLOPs: %s)" % (
            method, cost["total"], cost["total"] / 1e15, cost["structure"]))

@click.command()
@click.option("--out", default=os.path.join("results", "default"), show_default=True,
              type=click.Path(file_okay=False), help="where the two runs land (<out>/eb, <out>/dense)")
@click.option("--overwrite/--no-overwrite", default=True, show_default=True,
              help="replace an earlier default run in --out")
@click.option("--quiet", is_flag=True, help="no progress output")
def run(out, overwrite, quiet):
    """The built-in default: EB Train and dense training side by side on the synthetic set."""
    from ebedge.defaults import run_default
    from ebedge.report.summary_table import side_by_side
    summaries = run_default(out, overwrite=overwrite, quiet=quiet)
    click.echo(side_by_side([s for _, s in summaries]))
    click.echo("results: %s" % out)
    from ebedge.report import MissingHostDependencies, build_report_checked
    report_dir = os.path.join(out, "report")
    try:
        build_report_checked([path for path, _ in summaries], report_dir)
    except MissingHostDependencies as exc:  # a board without pandas still finishes its runs
        click.echo("report not written: %s" % exc, err=True)
        return
    click.echo("report: %s" % os.path.abspath(os.path.join(report_dir, "index.html")))
