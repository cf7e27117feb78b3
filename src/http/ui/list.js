// The deploy list: the newest deploys the token may read, filtered by release, namespace and status,
// kept up to date from the firehose (`GET /v1/events`) without reloading.

import { api, follow, uiRoot } from "./api.js";
import { ago, cell, chartLabel, duration, h, problemBox, statusBadge } from "./dom.js";

const STATUSES = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"];
const PAGE_SIZE = 50;
/// The firehose events after which a deploy's row may read differently (not its log lines).
const CHANGES_ROW = "deploy.*,phase,rollback.*";

function field(id, label, control) {
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

export function showList(main) {
  document.title = "Deploys · rollcall";
  const query = new URLSearchParams(location.search);
  const release = h("input", { id: "filter-release", type: "search", value: query.get("release") || "", autocomplete: "off" });
  const namespace = h("input", { id: "filter-namespace", type: "search", value: query.get("namespace") || "", autocomplete: "off" });
  const status = h(
    "select",
    { id: "filter-status" },
    h("option", { value: "" }, "any"),
    STATUSES.map((name) => h("option", { value: name, selected: query.get("status") === name }, name)),
  );
  const filters = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter deploys" },
    field("filter-release", "Release", release),
    field("filter-namespace", "Namespace", namespace),
    field("filter-status", "Status", status),
  );
  const live = h("span", { class: "live", role: "status" }, "Connecting…");
  const alerts = h("div", { class: "alerts" });
  const rows = h("tbody");
  const table = h(
    "table",
    { class: "deploys" },
    h("caption", { class: "visually-hidden" }, "Deploys, newest first"),
    h(
      "thead",
      {},
      h("tr", {}, ["Release", "Namespace", "Status", "Verdict", "Requested by", "Created", "Duration"].map((name) => h("th", { scope: "col" }, name))),
    ),
    rows,
  );
  const empty = h("p", { class: "empty", hidden: true });
  const older = h("button", { type: "button", class: "quiet", hidden: true }, "Show older deploys");
  main.replaceChildren(
    h("div", { class: "title-row" }, h("h1", {}, "Deploys"), live),
    filters,
    alerts,
    h("div", { class: "table-wrap" }, table),
    empty,
    older,
  );

  const shown = new Map();
  let cursor = null;
  let stream = null;
  let refreshTimer = null;
  let reloadTimer = null;
  const waiting = new Set();

  const wanted = () => ({ release: release.value.trim(), namespace: namespace.value.trim(), status: status.value });
  const matches = (deploy) => {
    const want = wanted();
    return (
      (!want.release || deploy.release === want.release) &&
      (!want.namespace || deploy.namespace === want.namespace) &&
      (!want.status || deploy.status === want.status)
    );
  };

  function row(deploy) {
    const href = new URL(`deploys/${encodeURIComponent(deploy.id)}`, uiRoot).href;
    const end = deploy.finished_at ? new Date(deploy.finished_at) : null;
    const took = deploy.started_at && end ? duration(end - new Date(deploy.started_at)) : "";
    return h(
      "tr",
      { "data-id": deploy.id, "data-status": deploy.status },
      cell("Release", h("a", { href }, deploy.release), h("div", { class: "muted small" }, chartLabel(deploy.chart))),
      cell("Namespace", deploy.namespace, deploy.cluster === "default" ? null : h("div", { class: "muted small" }, deploy.cluster)),
      cell("Status", statusBadge(deploy.status), deploy.status === "running" && deploy.phase ? h("span", { class: "muted small" }, ` ${deploy.phase}`) : null),
      cell("Verdict", deploy.verdict ? h("code", { title: deploy.verdict.message }, deploy.verdict.reason) : ""),
      cell("Requested by", deploy.requested_by),
      cell("Created", h("time", { datetime: deploy.created_at, class: "ago", title: new Date(deploy.created_at).toLocaleString() }, ago(deploy.created_at))),
      cell("Duration", took),
    );
  }

  function showEmpty() {
    const filtered = Object.values(wanted()).some(Boolean);
    empty.textContent = filtered ? "No deploys match these filters." : "No deploys yet.";
    empty.hidden = shown.size > 0;
  }

  /// Puts the deploy's row in place (newest first), or takes it out when it no longer matches.
  function upsert(deploy, { fresh = false } = {}) {
    const previous = shown.get(deploy.id);
    if (!matches(deploy)) {
      previous?.row.remove();
      shown.delete(deploy.id);
      showEmpty();
      return;
    }
    const next = row(deploy);
    if (previous) {
      previous.row.replaceWith(next);
    } else {
      // Ids are UUIDv7, ordered by creation as the API orders them.
      const older = [...rows.children].find((other) => other.dataset.id < deploy.id);
      rows.insertBefore(next, older ?? null);
      if (fresh) next.classList.add("fresh");
    }
    shown.set(deploy.id, { deploy, row: next });
    showEmpty();
  }

  function listQuery() {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(wanted())) if (value) params.set(name, value);
    return params;
  }

  async function loadPage() {
    const params = listQuery();
    params.set("limit", PAGE_SIZE);
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await api(`v1/deploys?${params}`);
      page.items.forEach((deploy) => upsert(deploy));
      cursor = page.next_cursor;
      older.hidden = !cursor;
      alerts.replaceChildren();
    } catch (error) {
      alerts.replaceChildren(problemBox(error));
    }
  }

  async function refresh() {
    refreshTimer = null;
    const ids = [...waiting];
    waiting.clear();
    for (const id of ids) {
      try {
        upsert(await api(`v1/deploys/${id}`), { fresh: true });
      } catch (error) {
        if (error.status !== 404 && error.status !== 403) alerts.replaceChildren(problemBox(error));
      }
    }
  }

  function onEvent(frame) {
    waiting.add(JSON.parse(frame.data).deploy_id);
    // Events come in bursts (queued, started, phases): one read per deploy and burst.
    refreshTimer ??= setTimeout(refresh, 150);
  }

  let connectedBefore = false;
  function onState(state, error) {
    const words = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", refused: "Not live", ended: "" };
    live.textContent = words[state] ?? "";
    live.dataset.state = state;
    if (state === "refused") alerts.replaceChildren(problemBox(error));
    // Whatever happened while disconnected is read again.
    if (state === "live" && connectedBefore) reload({ keepStream: true });
    if (state === "live") connectedBefore = true;
  }

  /// Reads the first page again (after a filter change).
  async function reload({ keepStream = false } = {}) {
    const params = listQuery();
    history.replaceState(null, "", params.size ? `?${params}` : location.pathname);
    if (!keepStream) {
      stream?.stop();
      connectedBefore = false;
      const firehose = new URLSearchParams({ type: CHANGES_ROW });
      const want = wanted();
      if (want.release) firehose.set("release", want.release);
      if (want.namespace) firehose.set("namespace", want.namespace);
      // Subscribed before the list is read, so that no deploy falls between the two.
      stream = follow(`v1/events?${firehose}`, { onEvent, onState });
    }
    shown.clear();
    rows.replaceChildren();
    cursor = null;
    await loadPage();
    showEmpty();
  }

  const scheduleReload = () => {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(reload, 300);
  };
  release.addEventListener("input", scheduleReload);
  namespace.addEventListener("input", scheduleReload);
  status.addEventListener("change", () => reload());
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    reload();
  });
  older.addEventListener("click", loadPage);
  // "3 minutes ago" stays true.
  const clock = setInterval(() => {
    for (const time of rows.querySelectorAll("time.ago")) time.textContent = ago(time.getAttribute("datetime"));
  }, 30000);

  reload();
  return () => {
    stream?.stop();
    clearInterval(clock);
    clearTimeout(refreshTimer);
    clearTimeout(reloadTimer);
  };
}
