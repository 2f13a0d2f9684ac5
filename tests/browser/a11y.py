"""Accessibility basics, measured in the browser on the page as rendered: a title, the
landmarks, one <h1>, every form control labelled, table headers scoped, charts named, and
text contrast (WCAG 2 ratio of each text's computed colour over its painted background).
`problems(page)` returns what is wrong, as sentences; empty when the page passes.
"""

from __future__ import annotations

from typing import Any

NORMAL, LARGE = 4.5, 3.0  # WCAG AA: normal text; large text (24px, or 18.66px bold)

STRUCTURE = """() => {
  const out = [];
  if (!document.title.trim()) out.push("no <title>");
  if (!document.documentElement.lang) out.push("<html> has no lang");
  for (const landmark of ["header", "nav", "main", "footer"]) {
    if (!document.querySelector(landmark)) out.push(`no <${landmark}> landmark`);
  }
  if (document.querySelectorAll("main").length > 1) out.push("more than one <main>");
  if (document.querySelectorAll("h1").length !== 1) out.push("not exactly one <h1>");
  for (const nav of document.querySelectorAll("nav")) {
    if (document.querySelectorAll("nav").length > 1 && !nav.getAttribute("aria-label"))
      out.push("a <nav> among several without aria-label");
  }
  for (const el of document.querySelectorAll("input, select, textarea, button")) {
    const type = (el.getAttribute("type") || "").toLowerCase();
    if (el.tagName === "INPUT" && type === "hidden") continue;
    const named = el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (el.tagName === "BUTTON" || ["submit", "button", "reset"].includes(type)) {
      if (!(el.textContent.trim() || el.value || named))
        out.push(`unnamed button: ${el.outerHTML.slice(0, 120)}`);
      continue;
    }
    const labelled = [...(el.labels || [])].some(l => l.textContent.trim());
    if (!labelled && !named)
      out.push(`form control without a label: ${el.outerHTML.slice(0, 120)}`);
  }
  for (const th of document.querySelectorAll("th")) {
    if (!th.getAttribute("scope")) out.push(`<th> without scope: ${th.outerHTML.slice(0, 80)}`);
  }
  for (const svg of document.querySelectorAll("svg")) {
    const by = svg.getAttribute("aria-labelledby");
    const name = svg.getAttribute("aria-label")
      || (by && document.getElementById(by)?.textContent.trim());
    if (svg.getAttribute("aria-hidden") !== "true" && !name) out.push("an <svg> without a name");
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) out.push(`<img> without alt: ${img.src}`);
  }
  return out;
}"""

CONTRAST = """() => {
  const parse = (c) => {
    const m = /rgba?\\(([^)]*)\\)/.exec(c);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, under) => ({r: top.r * top.a + under.r * (1 - top.a),
    g: top.g * top.a + under.g * (1 - top.a), b: top.b * top.a + under.b * (1 - top.a), a: 1});
  const channel = (v) => {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const painted = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    const white = {r: 255, g: 255, b: 255, a: 1};
    return layers.reverse().reduce((under, top) => over(top, under), white);
  };
  const out = [];
  const seen = new Set();
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const text = walk.currentNode.textContent.trim();
    const el = walk.currentNode.parentElement;
    if (!text || !el || seen.has(el) || el.closest("svg, script, style")) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    // not painted, or only for screen readers (clipped to a pixel)
    if (style.visibility === "hidden" || box.width <= 1 || box.height <= 1) continue;
    const background = painted(el);
    const colour = parse(style.color);
    if (!colour) continue;
    const fg = over(colour, background);
    const [hi, lo] = [luminance(fg), luminance(background)].sort((x, y) => y - x);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (parseInt(style.fontWeight, 10) >= 700 && size >= 18.66);
    out.push({text: text.slice(0, 60), tag: el.tagName.toLowerCase(), large,
              ratio: (hi + 0.05) / (lo + 0.05), color: style.color,
              background: `rgb(${background.r}, ${background.g}, ${background.b})`});
  }
  return out;
}"""


async def texts(page: Any) -> list[dict[str, Any]]:
    """Every painted text's contrast ratio (for the test to show what it measured)."""
    measured: list[dict[str, Any]] = await page.evaluate(CONTRAST)
    return measured


async def problems(page: Any) -> list[str]:
    found: list[str] = list(await page.evaluate(STRUCTURE))
    measured = await texts(page)
    if not measured:
        found.append("no text measured for contrast")
    for t in measured:
        needed = LARGE if t["large"] else NORMAL
        if t["ratio"] < needed:
            found.append(f"contrast {t['ratio']:.2f} < {needed} for <{t['tag']}> "
                         f"{t['text']!r} ({t['color']} on {t['background']})")
    return found
