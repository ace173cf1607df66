"""What ``hgprune run`` prints: one line per stage and the summary table at the end."""

from __future__ import annotations


def log(message: str) -> None:
    print(message, flush=True)


def row_line(label: str, row: dict) -> str:
    """``[label] PCKh …, MMACs (…), params, latency`` for one metrics row."""
    latency = f", {row['latency_ms']:.1f} ms" if row.get("latency_ms") is not None else ""
    return (
        f"[{label}] PCKh {row['pckh_mean']:.2f} (seed protocol {row['pckh_seed_mean']:.2f}), "
        f"{row['macs_fvcore'] / 1e6:,.1f} MMACs ({100 * row['macs_ratio']:.1f} %), {row['params']:,} params{latency}"
    )


def kept_text(result, kind: str) -> str:
    """The kept fraction of ``kind`` a prune step reached, from its :class:`~hgprune.prune.PruneResult`."""
    value = {"macs": "kept_macs", "params": "kept_params", "channels": "kept_channels"}.get(kind, "kept_cost")
    return f"{getattr(result, value, float('nan')):.3f}"


def summary_table(rows: list[dict]) -> str:
    head = f"{'step':>4} {'kept MACs':>9} {'MMACs':>10} {'params':>10} {'latency ms':>10} {'PCKh':>6} {'PCKh seed':>9}"
    lines = [head, "-" * len(head)]
    for row in rows:
        latency = f"{row['latency_ms']:.2f}" if row.get("latency_ms") is not None else "-"
        lines.append(
            f"{row['step']:>4} {100 * row['macs_ratio']:>8.1f}% {row['macs_fvcore'] / 1e6:>10.1f} "
            f"{row['params']:>10,} {latency:>10} {row['pckh_mean']:>6.2f} {row['pckh_seed_mean']:>9.2f}"
        )
    return "\n".join(lines)
