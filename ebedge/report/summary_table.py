"""A plain-text side-by-side table of run summaries (no pandas: it also prints on a board)."""

COLUMNS = ("method", "p", "test acc", "EB epoch", "params", "train PFLOPs", "runtime s", "train energy")


def no_ticket_note(summary):
    """What a one-line summary adds for an EB run that drew no ticket (its accuracy is the pruned,
    un-retrained network's), else ''."""
    return ", NO TICKET (pruned after the last epoch, not retrained)" if summary.get("no_ticket") else ""


def _energy_cell(summary):
    energy = summary.get("energy")
    if not energy or energy.get("kj", {}).get("train_total") is None:
        return "not measured"
    return "%.4g kJ (%s, %s)" % (energy["kj"]["train_total"], energy["method"], energy["meter"])


def _row(summary):
    eb = summary.get("eb_epoch")
    acc = summary.get("test_acc")
    ratio = summary.get("prune_ratio")
    return (summary.get("method", "?"),
            "-" if ratio is None or summary.get("method") == "dense" else "%g" % ratio,
            "%.2f%%" % (100 * acc) if acc is not None else "-",
            str(eb) if eb is not None else "-",
            "%d" % summary["params_pruned"] if summary.get("params_pruned") else "-",
            "%.4g" % ((summary.get("train_flops_total") or 0) / 1e15),
            "%.1f" % summary.get("runtime_s", 0.0),
            _energy_cell(summary))


def side_by_side(summaries):
    """Rows of method, accuracy, EB epoch, params, FLOPs, runtime and labelled energy."""
    rows = [COLUMNS] + [_row(s) for s in summaries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
