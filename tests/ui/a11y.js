// The basic accessibility rules every page keeps: each form control and progress bar has a label,
// each button and link a name, and visible text reaches WCAG AA contrast against what is behind it
// (4.5:1; 3:1 for large text). Returns one line per problem.
const problems = [];
const describe = (e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}${e.className ? "." + String(e.className).split(" ").join(".") : ""} "${(e.textContent || "").trim().slice(0, 40)}"`;
const shown = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden" && !e.closest("[hidden], details:not([open]) > :not(summary)");
const labelled = (e) =>
  Boolean((e.getAttribute("aria-label") || "").trim()) ||
  Boolean(e.getAttribute("aria-labelledby") && document.getElementById(e.getAttribute("aria-labelledby"))?.textContent.trim()) ||
  [...(e.labels || [])].some((label) => label.textContent.trim());

for (const control of document.querySelectorAll("input, select, textarea, progress")) {
  if (control.type !== "hidden" && !labelled(control)) problems.push(`no label: ${describe(control)}`);
}
for (const named of document.querySelectorAll("button, a[href], summary")) {
  if (shown(named) && !labelled(named) && !named.textContent.trim() && !named.title) problems.push(`no name: ${describe(named)}`);
}

const parse = (color) => {
  const [r, g, b, a = 1] = color.match(/[\d.]+/g).map(Number);
  return { r, g, b, a };
};
const over = (top, bottom) => ({
  r: top.r * top.a + bottom.r * (1 - top.a),
  g: top.g * top.a + bottom.g * (1 - top.a),
  b: top.b * top.a + bottom.b * (1 - top.a),
  a: 1,
});
const background = (e) => {
  const layers = [];
  for (let node = e; node; node = node.parentElement) {
    const color = parse(getComputedStyle(node).backgroundColor);
    if (color.a > 0) layers.push(color);
    if (color.a >= 1) break;
  }
  return layers.reverse().reduce((below, layer) => over(layer, below), { r: 255, g: 255, b: 255, a: 1 });
};
const luminance = ({ r, g, b }) => {
  const linear = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
};
for (const element of document.querySelectorAll("body *")) {
  const ownText = [...element.childNodes].some((node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim());
  if (!ownText || !shown(element) || element.closest("option, .visually-hidden, noscript")) continue;
  const style = getComputedStyle(element);
  const back = background(element);
  const fore = over(parse(style.color), back);
  const [light, dark] = [luminance(fore), luminance(back)].sort((x, y) => y - x);
  const ratio = (light + 0.05) / (dark + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: ${describe(element)} (${style.color} on rgb(${back.r}, ${back.g}, ${back.b}))`);
}
return problems;
