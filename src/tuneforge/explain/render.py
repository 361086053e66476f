"""Pictures of attributions: the text with its tokens highlighted (HTML) and a bar per token (PNG)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from tuneforge.explain.attributions import METHOD, Explanation
from tuneforge.training.checkpoint import write_atomic_text

MAX_BARS = 40  # a longer text shows its strongest tokens (in text order) in the PNG; the HTML shows all
MIN_SCALE = 0.05  # full colour is the page's largest score, but at least 5 points of probability: near-zero
                  # scores stay pale instead of being stretched to full colour

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }}
.text {{ font-size: 1.25rem; line-height: 2.2; border: 1px solid #ddd; padding: .6rem 1rem; border-radius: 6px; }}
.text span {{ padding: .15rem .05rem; border-radius: 3px; }}
.meta {{ color: #555; font-size: .9rem; }}
.legend span {{ padding: .1rem .5rem; border-radius: 3px; }}
</style></head><body>
<h1>{title}</h1>
<p class="meta">{method}; red pushes toward the explained label, blue away from it; full colour is a score of
{scale:.3f} (the largest on the page, at least {min_scale}); hover a word for its score.
The scores of a text add up to the change in that label's probability from the baseline (every word replaced by
the pad token) to the text.</p>
<p class="legend"><span style="background: rgba(220,38,38,.8)">toward</span>
<span style="background: rgba(37,99,235,.8)">away</span></p>
{sections}
</body></html>
"""


def _colour(score: float, scale: float) -> str:
    alpha = min(1.0, abs(score) / scale) * 0.8 if scale > 0 else 0.0
    rgb = "220,38,38" if score >= 0 else "37,99,235"
    return f"rgba({rgb},{alpha:.3f})"


def _highlighted(e: Explanation, scale: float) -> str:
    """The original text with each token's characters on its colour; the tokens if there are no offsets."""
    words = list(zip(e.scores, e.offsets))
    spans = [(o[0], o[1], s) for s, o in words if o[1] > o[0]]
    if not spans:  # a slow tokenizer gives no character offsets: show the tokens themselves
        return " ".join(f'<span style="background:{_colour(s, scale)}" title="{s:+.4f}">{html.escape(t)}</span>'
                        for s, t in zip(e.scores, e.tokens))
    parts, pos = [], 0
    for start, end, score in spans:
        if start < pos:  # overlapping spans (byte-level tokenizers): keep the first
            continue
        parts.append(html.escape(e.text[pos:start]))
        parts.append(f'<span style="background:{_colour(score, scale)}" title="{score:+.4f}">'
                     f"{html.escape(e.text[start:end])}</span>")
        pos = end
    parts.append(html.escape(e.text[pos:]))
    return "".join(parts)


def write_html(explanations: Sequence[Explanation], path: Path, title: str) -> Path:
    sections = []
    scale = max([MIN_SCALE] + [abs(s) for e in explanations for s in e.scores])
    for e in explanations:
        sections.append(
            f'<h2>predicted <b>{html.escape(e.label)}</b> ({e.probabilities[e.label]:.3f})</h2>\n'
            f'<div class="text">{_highlighted(e, scale)}</div>\n'
            f'<p class="meta">scores explain <b>{html.escape(e.target)}</b>: probability {e.probability:.4f} for '
            f"the text, {e.baseline_probability:.4f} for the baseline; the scores sum to {sum(e.scores):+.4f} "
            f"(difference {e.probability - e.baseline_probability:+.4f}, delta {e.convergence_delta:+.2e} with "
            f"{e.steps} steps)</p>")
    page = PAGE.format(title=html.escape(title), method=html.escape(METHOD), sections="\n".join(sections),
                       scale=scale, min_scale=MIN_SCALE)
    write_atomic_text(path, page)
    return path


def write_png(explanations: Sequence[Explanation], path: Path, title: str) -> Path:
    from tuneforge.evaluation.plots import plt

    shown = [_strongest(e) for e in explanations]
    heights = [max(1.5, 0.28 * len(rows) + 0.9) for rows in shown]
    fig, axes = plt.subplots(len(shown), 1, figsize=(7, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, e, rows in zip(axes[:, 0], explanations, shown):
        ys = range(len(rows))
        ax.barh(list(ys), [s for _, s in rows], color=["tab:red" if s >= 0 else "tab:blue" for _, s in rows])
        ax.set_yticks(list(ys), [t for t, _ in rows])
        ax.invert_yaxis()  # first token on top
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(f"predicted {e.label} ({e.probabilities[e.label]:.2f}); scores toward {e.target}, "
                     f"sum {sum(e.scores):+.3f}", fontsize=9)
    axes[-1, 0].set_xlabel("attribution (change in probability)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _strongest(e: Explanation) -> list[tuple[str, float]]:
    """(token, score) of the real tokens in text order; the MAX_BARS strongest of a long text."""
    if any(b > a for a, b in e.offsets):  # label each bar with the text it covers ([UNK] shows its word)
        rows = [(e.text[a:b], s) for s, (a, b) in zip(e.scores, e.offsets) if b > a]
    else:
        rows = list(zip(e.tokens, e.scores))
    if len(rows) > MAX_BARS:
        keep = set(sorted(range(len(rows)), key=lambda i: -abs(rows[i][1]))[:MAX_BARS])
        rows = [r for i, r in enumerate(rows) if i in keep]
    return rows
