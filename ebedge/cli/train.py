"""`ebedge train`, `ebedge run`, `ebedge flops`: one run, the built-in default, and FLOPs."""
import json
import os

import click

from ebedge.cli.options import load_settings_file, setting_options, typed_settings
from ebedge.config import catalog
from ebedge.config.spec import DEFAULTS, MODEL_NAMES
from ebedge.errors import EbedgeError
from ebedge.report.summary_table import no_ticket_note


@click.command()
@setting_options
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(min=1),
              help="train on N processes of this machine with DistributedDataParallel (torchrun; "
                   "one GPU each on CUDA, gloo on the CPU); --batch-size stays the global batch")
@click.option("--repeats", default=1, show_default=True, type=click.IntRange(1),
              help="run N times (seed + i) into --out/r<i> and report mean, std and 95% interval")
@click.option("--settings", "settings_file", type=click.File("r"),
              help="JSON object of settings (what `ebedge remote` pushes); flags given here win")
@click.option("--log-to", multiple=True, metavar="KIND:TARGET",
              help="also send each phase's energy and the summary to tensorboard:DIR, "
                   "mlflow:URI or wandb:PROJECT; repeatable (extra: ebedge[trackers])")
@click.option("--prometheus-port", metavar="[ADDR:]PORT",
              help="serve ebedge_power_watts and ebedge_energy_joules_total in the Prometheus "
                   "text format while the run samples (address 127.0.0.1 unless given)")
@click.option("--out", type=click.Path(file_okay=False), help="run directory [default: results/<id>]")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="continue the run in this directory from its last checkpoint")
@click.option("--overwrite", is_flag=True, help="replace a run already in --out")
@click.option("--quiet", is_flag=True, help="no progress output")


def train(settings_file, resume_dir, out, overwrite, quiet, repeats, nproc, log_to, prometheus_port,
          **options):
    """Search, draw the ticket, prune and retrain; writes a run directory."""
    exports = _exports(log_to, prometheus_port, nproc)
    if nproc > 1 and resume_dir:
        _launch(nproc, ["--resume", resume_dir] + (["--quiet"] if quiet else []), resume_dir)
        return
    if resume_dir:
        from ebedge.run.runner import execute
        summary = execute(None, out=resume_dir, resume=True, quiet=quiet, **exports)
        out = resume_dir
    else:
        from ebedge.config.settings import merge, resolve
        base = load_settings_file(settings_file) if settings_file else {}
        settings = resolve(merge(base, typed_settings(options)))  # checked before torch loads
        if (settings.data_dir is not None and not os.path.isdir(settings.data_dir)
                and not settings.download):
            raise EbedgeError("data directory not found: %s" % settings.data_dir)
        from ebedge.run.runner import default_out, execute
        out = out or default_out(settings)
        if repeats != 1:
            _repeat(settings, out, repeats, overwrite, quiet, exports)
            return
        if nproc > 1:
            _launch_settings(nproc, settings, out, overwrite, quiet)
            return
        summary = execute(settings, out=out, overwrite=overwrite, quiet=quiet, **exports)
    from ebedge.training.distributed import is_main_process
    if not is_main_process():  # torchrun's other ranks: rank 0 reports
        return
    click.echo(_one_line(summary))
    click.echo("results: %s" % out)


def _exports(log_to, prometheus_port, nproc):
    """execute()'s tracker and Prometheus arguments, checked before anything runs."""
    if not log_to and prometheus_port is None:
        return {}
    if nproc > 1:
        raise EbedgeError("--log-to and --prometheus-port work with one process (not --nproc)")
    from ebedge.export.prometheus import parse_address
    from ebedge.export.trackers import parse_spec
    for spec in log_to:
        parse_spec(spec)
    if prometheus_port is not None:
        parse_address(prometheus_port)
    return {"log_to": list(log_to), "prometheus": prometheus_port}


def _repeat(settings, out, repeats, overwrite, quiet, exports):
    from ebedge.run.repeats import execute_repeats
    summaries, statistics = execute_repeats(settings, out, repeats, overwrite=overwrite,
                                            quiet=quiet, **exports)
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


class PassesTrainOptions(click.Command):
    """A command that passes `ebedge train`'s setting options on (`remote run`): its --help
    lists them after its own options."""

    def format_options(self, ctx, formatter):
        click.Command.format_options(self, ctx, formatter)
        own = {opt for p in self.params for opt in p.opts}
        rows = [p.get_help_record(ctx) for p in train.params
                if isinstance(p, click.Option) and p.name in DEFAULTS
                and not own.intersection(p.opts)]
        with formatter.section("Train options (passed on to the run)"):
            formatter.write_dl(rows)


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
              ", ".join(catalog.method_names()) + ")")
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
    """The built-in default (the shipped `quick` suite): EB Train and dense training side by side
    on the synthetic set."""
    from ebedge.run.quick import run_quick
    from ebedge.report.summary_table import side_by_side
    summaries = run_quick(out, overwrite=overwrite, quiet=quiet)
    click.echo(side_by_side([s for _, s in summaries]))
    click.echo("results: %s" % out)
    from ebedge.report import MissingHostDependencies, build_report_checked
    report_dir = os.path.join(out, "report")
    try:
        build_report_checked([path for path, _ in summaries], report_dir)
        click.echo("report: %s" % os.path.abspath(os.path.join(report_dir, "index.html")))
    except MissingHostDependencies as exc:  # a board without pandas still finishes its runs
        click.echo("report not written: %s" % exc, err=True)
    from ebedge.report.answer import sentences
    for line in sentences([s for _, s in summaries]):  # the answer, last
        click.echo(line)
