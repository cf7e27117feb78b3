// Building the DOM without HTML strings: text always goes in as text, so nothing the API returns
// (log lines, Kubernetes messages) can become markup.

/// `h("a", {href, class: "x"}, "text", child)`: an element with attributes and children. Attribute
/// values `false`/`null`/`undefined` are left out; `on<event>` values become listeners.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/// `12:03:45`, with the full date in a <time> element's title and datetime.
export function timeOf(iso, { withDate = false } = {}) {
  if (!iso) return h("span", { class: "muted" }, "–");
  const date = new Date(iso);
  return h("time", { datetime: iso, title: dateTime.format(date) }, withDate ? dateTime.format(date) : time.format(date));
}

/// "3 minutes ago".
export function ago(iso, now = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const steps = [[60, "second"], [60, "minute"], [24, "hour"], [Infinity, "day"]];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(value, unit);
    value = Math.round(value / size);
  }
  return "";
}

/// "850 ms", "12.4 s", "3 min 05 s", "1 h 02 min".
export function duration(millis) {
  if (!(millis >= 0)) return "";
  if (millis < 1000) return `${Math.round(millis)} ms`;
  const seconds = millis / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/// A table cell labelled for narrow screens, where rows become cards (`ui.css`); its content is one
/// block, beside the label.
export function cell(label, ...children) {
  return h("td", { "data-label": label }, h("div", {}, ...children));
}

/// A status word as a badge (text and colour, so colour is never the only cue).
export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

/// The chart as people name it: its catalog path, `name version`, or `oci-ref:version`.
export function chartLabel(chart) {
  if (chart.path) return chart.path;
  if (chart.oci) return `${chart.oci}:${chart.version}`;
  return `${chart.name} ${chart.version}`;
}

/// "Deployment demo/web"
export function resourceName(ref) {
  return ref.namespace ? `${ref.kind} ${ref.namespace}/${ref.name}` : `${ref.kind} ${ref.name}`;
}

/// A message in the page's alert region.
export function problemBox(error) {
  const problem = error.problem || {};
  const fields = (problem.errors || []).map((field) => h("li", {}, `${field.field}: ${field.message}`));
  return h(
    "div",
    { class: "problem", role: "alert" },
    h("strong", {}, problem.title || "Error"),
    " ",
    error.message,
    fields.length ? h("ul", {}, fields) : null,
  );
}
