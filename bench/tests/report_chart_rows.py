"""bench/report.py's chart: every label and both of its bars come from the same setup.

Run by `cargo test -p xtask --test bench_report_chart` (xtask/tests/bench_report_chart.rs) with the
repository's Python. Feeds report.py made-up results in which every setup has its own req/s and
its own added latency, draws the chart, and reads the drawn figure back in display coordinates:
beside each y label, the throughput bar, the latency bar and the latency figure written next to it
must be that label's setup's. Exits 1 and names every mismatch otherwise (the latency panel once
stood one row above its labels: passthrough's label beside the noop's bar).
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import report  # noqa: E402

CLOCK_TICKS = 100
PASSTHROUGH_MEAN_US = 300.0
# setup -> (req/s at 16 connections, mean latency added at 1 connection in µs); all different.
FIGURES = {
    "passthrough": (12000, None),
    "noop": (10000, 33),
    "native": (8000, 74),
    "edge": (7000, 148),
    "native-new": (4800, 178),
    "edge-rs256": (2800, 373),
    "edge-es256": (1300, 736),
    "edge-eddsa": (2600, 395),
    "edge-backend": (6900, 155),
    "node-seed": (990, 1849),
}


def result_lines():
    lines = []
    for round_ in (1, 2):
        for setup, (rps, added) in FIGURES.items():
            for connections in (16, 1):
                mean_us = PASSTHROUGH_MEAN_US + (added or 0)
                wrk = {"requests": rps * 10, "duration_us": 10_000_000, "mean_us": mean_us,
                       "p50_us": int(mean_us), "p99_us": int(mean_us * 2), "max_us": int(mean_us * 3),
                       "connect_errors": 0, "read_errors": 0, "write_errors": 0, "timeouts": 0,
                       "non_2xx": 0, "tokens": 0, "wrapped": False}
                lines.append(json.dumps({"setup": setup, "round": round_, "connections": connections,
                                         "edge_cpu_ticks": 100, "backend_cpu_ticks": 0, "wrk": wrk}))
    return "\n".join(lines) + "\n"


def display_y(ax, y):
    return ax.transData.transform((1, y))[1]


def near(rows, y, row_height):
    """The value of rows, a list of (display y, value), drawn in the row at height y (None if none,
    a list if several)."""
    found = [value for at, value in rows if abs(at - y) < row_height / 2]
    return found[0] if len(found) == 1 else found or None


def spaced(number):
    return f"{number:,}".replace(",", " ")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        results = os.path.join(tmp, "results.jsonl")
        with open(results, "w") as f:
            f.write(result_lines())
        runs = report.load(results, CLOCK_TICKS)
        setups = [s for s in report.LABELS if (s, 16) in runs]
        # (report.py before the fix returned nothing: its figure is then pyplot's current one.)
        fig = report.chart(runs, setups, os.path.join(tmp, "chart.png")) or report.plt.gcf()
    fig.canvas.draw()
    left, right = fig.axes
    setup_of = {label: setup for setup, label in report.SHORT.items()}
    labels = [(display_y(left, tick), label.get_text())
              for tick, label in zip(left.get_yticks(), left.get_yticklabels())]
    rps_bars = [(display_y(left, p.get_y() + p.get_height() / 2), p.get_width()) for p in left.patches]
    latency_bars = [(display_y(right, p.get_y() + p.get_height() / 2), p.get_width()) for p in right.patches]
    latency_texts = [(display_y(right, t.get_position()[1]), t.get_text().strip()) for t in right.texts]

    row_height = abs(display_y(left, 1) - display_y(left, 0))
    problems = []
    if sorted(text for _, text in labels) != sorted(report.SHORT[s] for s in FIGURES):
        problems.append(f"the labels are {[text for _, text in labels]}, expected one per setup")
    for y, text in labels:
        setup = setup_of.get(text)
        if setup is None:
            continue
        rps, added = FIGURES[setup]
        bar = near(rps_bars, y, row_height)
        if not isinstance(bar, float) or abs(bar - rps) > 0.5:
            problems.append(f"the req/s bar beside {text!r} is {bar}, expected {rps}")
        bar = near(latency_bars, y, row_height)
        written = near(latency_texts, y, row_height)
        if added is None:
            if bar is not None:
                problems.append(f"beside {text!r} (the baseline) stands a latency bar of {bar} µs")
            if written != "baseline":
                problems.append(f"beside {text!r} the latency panel writes {written!r}, expected 'baseline'")
        else:
            if not isinstance(bar, float) or abs(bar - added) > 0.5:
                problems.append(f"the latency bar beside {text!r} is {bar} µs, expected {added}")
            if written != f"{spaced(added)} µs":
                problems.append(f"beside {text!r} the latency panel writes {written!r}, expected '{spaced(added)} µs'")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"{len(labels)} rows: labels, req/s bars, latency bars and figures line up")


if __name__ == "__main__":
    main()
