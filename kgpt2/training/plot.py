"""The loss-curve PNG of a run, drawn from its `metrics.csv`."""

import pathlib

from kgpt2.atomic import atomic_writer


def plot_loss_curve(metrics_csv, png_path, title=None):
    """Draw training loss (and validation loss, if any) against step.

    The y-axis starts at 0, so that a change of 1% looks like one: an
    auto-zoomed axis makes noise look like progress. `title` (e.g. the run's
    name) heads the plot.

    Written atomically (`kgpt2.atomic`), so a reader never sees a
    half-written image. Returns the path, or None when there are no rows.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.training.plot import plot_loss_curve

    folder = pathlib.Path(tempfile.mkdtemp())
    (folder / "metrics.csv").write_text("step,loss,val_loss\\n1,10.5,\\n2,9.75,9.9\\n")
    print(plot_loss_curve(folder / "metrics.csv", folder / "loss.png").name)  # loss.png
    ```
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    from kgpt2.training.callbacks.metrics_csv import read_metrics

    rows = [row for row in read_metrics(metrics_csv) if row["loss"] is not None]
    if not rows:
        return None
    png_path = pathlib.Path(png_path)
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    axes.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="training loss", linewidth=1)
    validation = [r for r in rows if r.get("val_loss") is not None]
    if validation:
        axes.plot(
            [r["step"] for r in validation],
            [r["val_loss"] for r in validation],
            "o-",
            label="validation loss",
        )
    axes.set_xlabel("step")
    axes.set_ylabel("loss (cross-entropy, nats/token)")
    axes.set_ylim(bottom=0)
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    try:
        with atomic_writer(png_path, "wb") as file:
            figure.savefig(file, format="png")
    finally:
        plt.close(figure)
    return png_path
