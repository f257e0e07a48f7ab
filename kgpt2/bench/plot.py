"""A benchmark report as a PNG: generation tokens/s by batch size and sampler."""

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kgpt2.atomic import atomic_writer
from kgpt2.bench.report import series_name
from kgpt2.errors import InputError


def plot_report(report, path):
    """Draw steady generation tokens/s, one panel per batch size, to a PNG.

    Each panel groups bars by sampler, one bar per backend/impl (HF included
    when the report has it), so speed-ups read off directly. Written
    atomically: the PNG appears whole or not at all.

    Example:
    ```python
    import tempfile
    from kgpt2.bench.plot import plot_report
    from kgpt2.bench.report import BenchReport

    # `kgpt2.bench.run` returns a report; a saved one reads back with
    # `BenchReport(**json.load(file))`. Here, a report with one row:
    row = {"what": "generate", "backend": "jax", "impl": "kgpt2", "sampler": "greedy",
           "batch": 1, "steady_tok_per_s": 35.0}
    report = BenchReport(
        settings={"preset": "gpt2_tiny_random", "prompt_length": 4, "new_tokens": 8},
        machine={"cpu": "a CPU", "usable_cores": 2}, backends={}, results=[row], summary=[row])
    print(plot_report(report, tempfile.mkdtemp() + "/bench.png").endswith("bench.png"))  # True
    ```
    """
    rows = report.rows("generate")
    if not rows:
        raise InputError("The report has no generation results to plot.")
    batch_sizes = sorted({row["batch"] for row in rows})
    samplers = list(dict.fromkeys(row["sampler"] for row in rows))
    series = list(dict.fromkeys(series_name(row) for row in rows))
    figure = Figure(figsize=(4 + 3 * len(batch_sizes), 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(batch_sizes), squeeze=False)[0]
    width = 0.8 / len(series)
    for axis, batch_size in zip(axes, batch_sizes):
        for index, name in enumerate(series):
            speeds = {
                row["sampler"]: row["steady_tok_per_s"]
                for row in rows
                if row["batch"] == batch_size and series_name(row) == name
            }
            positions = [s + (index - (len(series) - 1) / 2) * width for s in range(len(samplers))]
            values = [speeds.get(sampler, 0.0) for sampler in samplers]
            bars = axis.bar(positions, values, width, label=name)
            axis.bar_label(bars, fmt="%.0f", fontsize=7)
        axis.set_xticks(range(len(samplers)), samplers)
        axis.set_title(f"batch {batch_size}")
        axis.set_ylabel("steady tokens/s")
    settings = report.settings
    figure.suptitle(
        f"{settings['preset']}: {settings['prompt_length']}-token prompt + "
        f"{settings['new_tokens']} new tokens ({report.machine['cpu']}, "
        f"{report.machine['usable_cores']} cores)",
        fontsize=9,
    )
    handles, labels = axes[0].get_legend_handles_labels()
    # Below the panels, so it never hides a bar.
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(series), 4), fontsize=8)
    with atomic_writer(path, "wb") as file:
        figure.savefig(file, format="png", dpi=120)
    return path
