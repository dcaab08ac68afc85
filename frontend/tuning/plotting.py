"""The picture of a search: the objective against each parameter on the scale it was
sampled on, so a log-uniform learning rate is read on a log axis and an averaging
beta as 1 - beta on a log axis (0.9, 0.99, 0.999 evenly spaced)."""

from gpudl.frontend.tuning.spaces import Choice

STAGE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def plot_search(space, records, objective_name, stage_names, path):
    """One panel per parameter of `space` (a search's first stage): the `records` of its trials
    (dicts with stage, status, params, objective) against each parameter, coloured by stage
    (`stage_names[stage]` in the legend), pruned trials hollow; writes a PNG."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("search.plot needs matplotlib: pip install 'gpudl[plot]'") from error
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(space.distributions)
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.5 * rows), squeeze=False)
    scored = [r for r in records if r["status"] != "failed"]
    for axis, name in zip(axes.flat, names):
        distribution = space.distributions[name]
        for stage in sorted({r["stage"] for r in scored}):
            for status, fill in (("ok", True), ("pruned", False)):
                points = [(r["params"][name], r["objective"]) for r in scored
                          if r["stage"] == stage and r["status"] == status and name in r["params"]]
                if not points:
                    continue
                xs, ys = zip(*points)
                if isinstance(distribution, Choice):
                    xs = [distribution.values.index(x) for x in xs]
                elif distribution.scale == "one_minus_log":
                    xs = [1.0 - x for x in xs]
                colour = STAGE_COLOURS[stage % len(STAGE_COLOURS)]
                axis.scatter(xs, ys, s=28, edgecolors=colour, facecolors=colour if fill else "none",
                             label=f"stage {stage} ({stage_names[stage]})" + ("" if fill else ", pruned"))
        _set_scale(axis, distribution, name)
        axis.set_ylabel(objective_name)
        axis.grid(True, alpha=0.3)
    for axis in list(axes.flat)[len(names):]:
        axis.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _set_scale(axis, distribution, name):
    if isinstance(distribution, Choice):
        axis.set_xticks(range(len(distribution.values)), [str(v) for v in distribution.values])
        axis.set_xlabel(name)
    elif distribution.scale == "log":
        axis.set_xscale("log")
        axis.set_xlabel(f"{name} (log scale)")
    elif distribution.scale == "one_minus_log":
        axis.set_xscale("log")
        axis.invert_xaxis()  # beta grows to the right
        axis.xaxis.set_major_formatter(lambda t, _: f"{1 - t:g}")
        axis.set_xlabel(f"{name} (log scale of 1 - {name})")
    else:
        axis.set_xlabel(name)
