"""Charts drawn on the server as inline SVG: no script, no CDN, readable without colour (values are
printed on every bar) and allowed by the Content-Security-Policy."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

BAR_HEIGHT = 18
GAP = 6
LABEL_WIDTH = 220
BAR_WIDTH = 360
VALUE_WIDTH = 90


def _format(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.1f} %"
    if value >= 100:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:.2f} {unit}".strip()


def bar_chart(title: str, items: list[tuple[str, float | None]], *, unit: str = "") -> SafeString:
    """A horizontal bar chart of ``(label, value)``; a missing value is shown as "no data"."""
    shown = [(label, value) for label, value in items]
    top = max((value for _, value in shown if value is not None), default=0) or 1
    height = max(1, len(shown)) * (BAR_HEIGHT + GAP) + 28
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f'<title>{escape(title)}</title>',
        f'<text x="0" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(shown):
        y = 24 + index * (BAR_HEIGHT + GAP)
        length = 0 if value is None else max(1, round(BAR_WIDTH * value / top))
        text = "no data" if value is None else _format(value, unit)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{escape(label[:34])}</text>')
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length}" height="{BAR_HEIGHT}" fill="#3b6ea5"/>')
        parts.append(f'<text x="{LABEL_WIDTH + length + 4}" y="{y + 13}" font-size="12">{escape(text)}</text>')
    if not shown:
        parts.append('<text x="0" y="40" font-size="12">No data for this period.</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)


def metric_charts(rows: list[dict], approvers: list[dict]) -> list[SafeString]:
    def label(row):
        return f"{row['service']} / {row['environment']}"

    return [
        bar_chart("Deployment frequency (per day)", [(label(r), r["deployment_frequency_per_day"]) for r in rows]),
        bar_chart("Lead time for changes, median (hours)", [(label(r), r["lead_time_p50_hours"]) for r in rows],
                  unit="h"),
        bar_chart("Change failure rate", [(label(r), r["change_failure_rate"]) for r in rows], unit="%"),
        bar_chart("Time to restore, median (hours)", [(label(r), r["time_to_restore_p50_hours"]) for r in rows],
                  unit="h"),
        bar_chart("Approval wait, p95 per environment (hours)",
                  [(label(r), r["approval_wait_p95_hours"]) for r in rows], unit="h"),
        bar_chart("Approval wait, p95 per approver (hours)",
                  [(a["approver"], a["wait_p95_hours"]) for a in approvers], unit="h"),
    ]
