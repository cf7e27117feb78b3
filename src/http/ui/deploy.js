// One deploy as it happens: its phases, a row per resource (readiness bar, pods, Kubernetes Events,
// logs), the verdict with its evidence, and cancel for tokens allowed to. Everything comes from
// `GET /v1/deploys/{id}` and the deploy's event stream, replayed from its first event.

import { api, follow, uiRoot } from "./api.js";
import { cell, chartLabel, duration, h, problemBox, resourceName, statusBadge, timeOf } from "./dom.js";

const CANCELLABLE = new Set(["queued", "running"]);
/// What the page keeps in the DOM, so that a long deploy does not slow the browser down.
const LOG_LINES_KEPT = 500;
const K8S_EVENTS_KEPT = 200;
const EVENTS_KEPT = 1000;

const STEP_NAMES = {
  "deploy.queued": "Queued",
  "deploy.started": "Started",
  "deploy.recovered": "Taken over",
  "deploy.cancelling": "Cancelling",
  "deploy.succeeded": "Succeeded",
  "deploy.failed": "Failed",
  "deploy.cancelled": "Cancelled",
  "rollback.started": "Rolling back",
  "rollback.succeeded": "Rolled back",
  "rollback.failed": "Rollback failed",
};
const PHASE_NAMES = { rendering: "Rendering", upgrading: "Upgrading (helm)", tracking: "Tracking", rolling_back: "Rolling back" };
const TERMINAL = new Set(["deploy.succeeded", "deploy.failed", "deploy.cancelled"]);

export function showDeploy(main, id) {
  const page = new DeployPage(main, id);
  page.start();
  return () => page.stop();
}

/// "2/3" → [2, 3]
function fraction(text) {
  const match = /^(\d+)\/(\d+)$/.exec(text || "");
  return match ? [Number(match[1]), Number(match[2])] : null;
}

/// A collapsible part of the page; `hidden` until it has something to show.
function details(summaryText, content, className, { hidden = false } = {}) {
  const summary = h("summary", {}, summaryText);
  return { element: h("details", { class: className, hidden }, summary, content), summary };
}

/// Appends to a bounded list element, dropping its oldest children beyond `keep`. A scrolling pane
/// that shows its end keeps showing it; one that is collapsed costs no layout.
function appendBounded(parent, child, keep) {
  const scrolls = parent.matches("pre.log, ul.k8s-events") && !parent.closest("details:not([open])");
  const atEnd = scrolls && parent.scrollHeight - parent.scrollTop - parent.clientHeight < 8;
  parent.append(child);
  while (parent.childElementCount > keep) parent.firstElementChild.remove();
  if (atEnd) parent.scrollTop = parent.scrollHeight;
}

function logLine(source, text) {
  return h("span", { class: "line" }, source ? h("span", { class: "source" }, `${source} `) : null, text, "\n");
}

function k8sEventItem(event) {
  return h(
    "li",
    { class: event.type === "Warning" ? "warning" : "" },
    h("span", { class: "k8s-reason" }, event.reason),
    " ",
    h("span", { class: "muted" }, `${event.involved_kind} ${event.involved_name}`),
    event.count > 1 ? h("span", { class: "muted" }, ` ×${event.count}`) : null,
    ": ",
    event.message,
    event.ignored_because ? h("span", { class: "muted" }, ` (not counted: ${event.ignored_because})`) : null,
  );
}

/// One tracked resource: its row and what it shows.
class ResourceView {
  constructor(ref) {
    this.ref = ref;
    this.state = "pending";
    this.pods = new Map();
    this.openedOnFailure = false;
    const label = resourceName(ref);
    this.badge = h("span", { class: "badge" });
    this.bar = h("progress", { "aria-label": `Readiness of ${label}`, max: 1, value: 0, hidden: true });
    this.readyText = h("span", { class: "ready-text" });
    this.failuresText = h("span", { class: "failures-text muted" });
    this.message = h("p", { class: "message" });
    this.podRows = h("tbody");
    this.podsBox = details(
      "Pods",
      h(
        "div",
        { class: "table-wrap" },
        h("table", { class: "pods" }, h("thead", {}, h("tr", {}, ["Pod", "Phase", "Ready", "Restarts", "Reason"].map((name) => h("th", { scope: "col" }, name)))), this.podRows),
      ),
      "pods",
      { hidden: true },
    );
    this.eventList = h("ul", { class: "k8s-events" });
    this.eventsBox = details("Kubernetes Events", this.eventList, "events", { hidden: true });
    this.logs = h("pre", { class: "log", tabindex: 0, "aria-label": `Logs of ${label}` });
    this.logsBox = details("Logs", this.logs, "logs", { hidden: true });
    this.logCount = 0;
    this.eventCount = 0;
    this.element = h(
      "li",
      { class: "resource", "data-kind": ref.kind, "data-name": ref.name },
      h("div", { class: "resource-head" }, h("h3", {}, ref.kind, " ", h("span", { class: "name" }, ref.name)), this.badge),
      h("div", { class: "readiness" }, this.bar, this.readyText, this.failuresText),
      this.message,
      this.podsBox.element,
      this.eventsBox.element,
      this.logsBox.element,
    );
    this.setState("pending");
  }

  setState(state, message) {
    this.state = state;
    this.badge.textContent = state;
    this.badge.className = `badge state-${state}`;
    this.element.dataset.state = state;
    if (message !== undefined) this.message.textContent = message;
    if (state === "failed" && !this.openedOnFailure) {
      // The evidence is what a person looks for first.
      this.openedOnFailure = true;
      this.eventsBox.element.open = true;
      this.logsBox.element.open = true;
    }
  }

  setStatus(status) {
    this.setState(status.state, status.message);
    const ready = fraction(status.ready);
    this.bar.hidden = !ready;
    if (ready) {
      this.bar.max = Math.max(ready[1], 1);
      this.bar.value = ready[0];
      this.readyText.textContent = `${ready[0]}/${ready[1]} ready`;
    } else {
      this.readyText.textContent = "";
    }
    this.failuresText.textContent = status.failures ? `failures ${status.failures}` : "";
  }

  setPod(pod) {
    const row = h(
      "tr",
      { class: pod.terminating || !pod.current_revision ? "muted" : "" },
      cell("Pod", pod.name, pod.current_revision ? null : h("span", { class: "small" }, " (old revision)")),
      cell("Phase", pod.phase, pod.terminating ? " (terminating)" : ""),
      cell("Ready", pod.ready),
      cell("Restarts", String(pod.restarts)),
      cell("Reason", pod.reason || ""),
    );
    const previous = this.pods.get(pod.name);
    if (previous) previous.replaceWith(row);
    else this.podRows.append(row);
    this.pods.set(pod.name, row);
    this.podsBox.element.hidden = false;
    this.podsBox.summary.textContent = `Pods (${this.pods.size})`;
  }

  addEvent(item) {
    this.eventCount += 1;
    appendBounded(this.eventList, item, K8S_EVENTS_KEPT);
    this.eventsBox.element.hidden = false;
    this.eventsBox.summary.textContent = `Kubernetes Events and incidents (${this.eventCount})`;
  }

  addLog(source, text) {
    this.logCount += 1;
    appendBounded(this.logs, logLine(source, text), LOG_LINES_KEPT);
    this.logsBox.element.hidden = false;
    this.logsBox.summary.textContent = `Logs (${this.logCount} lines${this.logCount > LOG_LINES_KEPT ? `, last ${LOG_LINES_KEPT} shown` : ""})`;
  }
}

class DeployPage {
  constructor(main, id) {
    this.main = main;
    this.id = id;
    this.resources = new Map();
    this.steps = [];
    this.reports = [];
    this.eventCount = 0;
    this.reasonDescriptions = null;
  }

  async start() {
    this.main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      this.deploy = await api(`v1/deploys/${encodeURIComponent(this.id)}`);
    } catch (error) {
      const back = h("a", { href: uiRoot.href }, "Back to the deploys");
      this.main.replaceChildren(h("h1", {}, "Deploy"), problemBox(error), h("p", {}, back));
      return;
    }
    this.build();
    this.showDeploy();
    for (const resource of this.deploy.resources) this.view(resource).setStatus(resource);
    this.stream = follow(`v1/deploys/${encodeURIComponent(this.id)}/events`, {
      onEvent: (frame) => this.onFrame(frame),
      onState: (state, error) => this.onStreamState(state, error),
    });
    this.clock = setInterval(() => this.showTimeline(), 1000);
  }

  stop() {
    this.stream?.stop();
    clearInterval(this.clock);
  }

  build() {
    const deploy = this.deploy;
    document.title = `${deploy.release} · deploys · rollcall`;
    this.title = h("h1", {}, deploy.release, h("span", { class: "muted" }, ` in ${deploy.namespace}`));
    this.statusBox = h("span", { class: "status" });
    this.live = h("span", { class: "live", role: "status" });
    this.cancelButton = h("button", { type: "button", class: "danger", hidden: true }, "Cancel deploy…");
    this.alerts = h("div", { class: "alerts", "aria-live": "polite" });
    this.facts = h("dl", { class: "facts" });
    this.verdict = h("section", { class: "verdict", "aria-labelledby": "verdict-title", hidden: true });
    this.timeline = h("ol", { class: "timeline" });
    this.resourceList = h("ul", { class: "resources" });
    this.noResources = h("p", { class: "empty" }, "No resources tracked yet.");
    this.helm = h("pre", { class: "log", tabindex: 0, "aria-label": "helm output" });
    this.helmBox = details("helm output", this.helm, "helm", { hidden: true });
    this.eventRows = h("tbody");
    this.eventsBox = details(
      "All events",
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "events" },
          h("thead", {}, h("tr", {}, ["#", "Time", "Type", "Resource", "Message"].map((name) => h("th", { scope: "col" }, name)))),
          this.eventRows,
        ),
      ),
      "all-events",
    );
    this.buildCancelDialog();
    this.main.replaceChildren(
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: uiRoot.href }, "Deploys"), " › ", h("span", { "aria-current": "page" }, deploy.release)),
      h("div", { class: "title-row" }, this.title, this.statusBox, this.live, this.cancelButton),
      this.alerts,
      this.facts,
      this.verdict,
      h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), this.timeline, this.helmBox.element),
      h("section", { "aria-labelledby": "resources-title" }, h("h2", { id: "resources-title" }, "Resources"), this.noResources, this.resourceList),
      h("section", { "aria-labelledby": "events-title" }, h("h2", { id: "events-title" }, "Events"), this.eventsBox.element),
      this.dialog,
    );
  }

  buildCancelDialog() {
    const reason = h("textarea", { id: "cancel-reason", name: "reason", maxlength: 1024, rows: 3 });
    this.dialog = h(
      "dialog",
      { "aria-labelledby": "cancel-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "cancel-title" }, "Cancel this deploy?"),
        h("p", {}, "A queued deploy is cancelled at once. A running one has helm stopped and the release repaired."),
        h("label", { for: "cancel-reason" }, "Reason (recorded with the cancellation)"),
        reason,
        h(
          "div",
          { class: "buttons" },
          h("button", { value: "keep", class: "quiet" }, "Keep it"),
          h("button", { value: "cancel", class: "danger" }, "Cancel deploy"),
        ),
      ),
    );
    this.cancelButton.addEventListener("click", () => this.dialog.showModal());
    this.dialog.addEventListener("close", () => {
      if (this.dialog.returnValue === "cancel") this.cancel(reason.value.trim());
      this.dialog.returnValue = "";
      this.cancelButton.focus();
    });
  }

  async cancel(reason) {
    try {
      const body = reason ? { reason } : {};
      const deploy = await api(`v1/deploys/${encodeURIComponent(this.id)}/cancel`, { method: "POST", body });
      Object.assign(this.deploy, deploy);
      this.showDeploy();
      const said = deploy.status === "cancelled" ? "Cancelled." : "Cancelling: helm is being stopped and the release repaired.";
      this.alerts.replaceChildren(h("p", { class: "notice", role: "status" }, said));
    } catch (error) {
      this.alerts.replaceChildren(problemBox(error));
    }
  }

  async refresh() {
    try {
      this.deploy = await api(`v1/deploys/${encodeURIComponent(this.id)}`);
      this.showDeploy();
    } catch (error) {
      this.alerts.replaceChildren(problemBox(error));
    }
  }

  showDeploy() {
    const deploy = this.deploy;
    this.statusBox.replaceChildren(statusBadge(deploy.status), deploy.status === "running" && deploy.phase ? h("span", { class: "muted" }, ` ${PHASE_NAMES[deploy.phase] || deploy.phase}`) : "");
    this.cancelButton.hidden = !(deploy.permissions?.cancel && CANCELLABLE.has(deploy.status));
    const end = deploy.finished_at ? new Date(deploy.finished_at) : null;
    const facts = [
      ["Chart", chartLabel(deploy.chart)],
      ["Namespace", deploy.namespace],
      ["Cluster", deploy.cluster],
      ["Revision", deploy.revision == null ? "–" : String(deploy.revision)],
      deploy.rolled_back_to != null ? ["Rolled back to", String(deploy.rolled_back_to)] : null,
      ["Requested by", deploy.requested_by],
      ["Created", timeOf(deploy.created_at, { withDate: true })],
      ["Duration", deploy.started_at && end ? duration(end - new Date(deploy.started_at)) : deploy.started_at ? "running" : "–"],
      deploy.cancel_reason ? ["Cancelled by", `${deploy.cancelled_by || "?"}: ${deploy.cancel_reason}`] : null,
      Object.keys(deploy.labels || {}).length ? ["Labels", Object.entries(deploy.labels).map(([key, value]) => h("code", { class: "label" }, `${key}=${value}`))] : null,
      ["Deploy id", h("code", {}, deploy.id)],
    ].filter(Boolean);
    this.facts.replaceChildren(...facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
    this.showVerdict();
  }

  view(ref) {
    const key = `${ref.kind}/${ref.namespace}/${ref.name}`;
    let view = this.resources.get(key);
    if (!view) {
      view = new ResourceView(ref);
      this.resources.set(key, view);
      this.resourceList.append(view.element);
      this.noResources.hidden = true;
    }
    return view;
  }

  onStreamState(state, error) {
    const words = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", refused: "Not live", ended: "" };
    this.live.textContent = this.finished ? "" : words[state] ?? "";
    this.live.dataset.state = state;
    if (state === "refused") this.alerts.replaceChildren(problemBox(error));
  }

  onFrame(frame) {
    if (frame.event === "end") {
      this.finished = true;
      this.stream.stop();
      clearInterval(this.clock);
      this.live.textContent = "";
      this.refresh();
      return;
    }
    this.apply(JSON.parse(frame.data));
  }

  apply(event) {
    this.addToEventTable(event);
    const data = event.data || {};
    const type = event.type;
    if (STEP_NAMES[type] || type === "phase") {
      this.steps.push({ name: type === "phase" ? PHASE_NAMES[data.phase] || data.phase : STEP_NAMES[type], at: event.at, level: event.level, message: event.message, type });
      this.showTimeline();
      if (type === "deploy.started" || type === "deploy.cancelling" || type === "phase") this.refresh();
    }
    if (type === "helm.output") {
      appendBounded(this.helm, logLine(data.command ? `helm ${data.command}` : "", event.message), LOG_LINES_KEPT);
      this.helmBox.element.hidden = false;
    }
    if (type === "report") {
      this.reports.push(data);
      this.showVerdict();
    }
    if (!event.resource) return;
    const view = this.view(event.resource);
    switch (type) {
      case "resource.status":
        view.setStatus(data);
        break;
      case "resource.ready":
        view.setState("ready", event.message);
        break;
      case "resource.failed":
        view.setState("failed", event.message);
        break;
      case "pod.status":
        view.setPod(data);
        break;
      case "k8s.event":
        view.addEvent(k8sEventItem(data));
        break;
      case "resource.failure":
      case "resource.warning":
      case "tracker.warning":
        view.addEvent(h("li", { class: event.level }, h("span", { class: "k8s-reason" }, type === "resource.failure" ? "Incident" : "Warning"), " ", event.message));
        break;
      case "container.log":
        view.addLog(`${data.pod}/${data.container}`, event.message);
        break;
      case "log.capped":
        view.addLog("rollcall", event.message);
        break;
    }
  }

  addToEventTable(event) {
    this.eventCount += 1;
    const row = h(
      "tr",
      { class: `level-${event.level}` },
      cell("#", String(event.seq)),
      cell("Time", timeOf(event.at)),
      cell("Type", h("code", {}, event.type)),
      cell("Resource", event.resource ? resourceName(event.resource) : ""),
      cell("Message", event.message),
    );
    appendBounded(this.eventRows, row, EVENTS_KEPT);
    this.eventsBox.summary.textContent = `All events (${this.eventCount}${this.eventCount > EVENTS_KEPT ? `, last ${EVENTS_KEPT} shown` : ""})`;
  }

  showTimeline() {
    const running = !this.steps.some((step) => TERMINAL.has(step.type));
    const items = this.steps.map((step, index) => {
      const next = this.steps[index + 1];
      const last = !next;
      const took = next ? new Date(next.at) - new Date(step.at) : running ? Date.now() - new Date(step.at) : null;
      return h(
        "li",
        { class: `step level-${step.level}${last && running ? " current" : ""}`, "aria-current": last && running ? "step" : false, title: step.message },
        h("span", { class: "step-name" }, step.name),
        " ",
        timeOf(step.at),
        took === null ? null : h("span", { class: "muted small" }, ` ${duration(took)}${last ? " so far" : ""}`),
      );
    });
    this.timeline.replaceChildren(...items);
  }

  /// The verdict and, from the `report` events, the evidence of each failed resource: Kubernetes'
  /// words, the container's last log lines and the relevant Events.
  showVerdict() {
    const deploy = this.deploy;
    const verdict = deploy.verdict;
    // Without a verdict: a success, or a deploy cancelled before it ran.
    const plain = {
      succeeded: "Every tracked resource became ready.",
      cancelled: `Cancelled by ${deploy.cancelled_by || "?"} before it started: ${deploy.cancel_reason || "no reason given"}`,
    }[deploy.status];
    if (!verdict && !plain) {
      this.verdict.hidden = true;
      return;
    }
    this.verdict.hidden = false;
    this.verdict.className = `verdict status-${deploy.status}`;
    if (!verdict) {
      this.verdict.replaceChildren(h("h2", { id: "verdict-title" }, `Verdict: ${deploy.status}`), h("p", {}, plain));
      return;
    }
    const detail = verdict.detail || {};
    const facts = [
      ["Resource", verdict.resource ? resourceName(verdict.resource) : null],
      ["Pod", detail.pod],
      ["Container", detail.container],
      ["Exit code", detail.exit_code],
      ["Signal", detail.signal],
      ["Termination reason", detail.termination_reason],
      ["Restarts", detail.restart_count],
      ["Kubernetes' reason", detail.original_reason],
    ].filter(([, value]) => value !== null && value !== undefined);
    const description = h("p", { class: "muted reason-description" });
    this.describeReason(verdict.reason, description);
    this.verdict.replaceChildren(
      h("h2", { id: "verdict-title" }, `Verdict: ${deploy.status} `, h("code", {}, verdict.reason)),
      description,
      h("p", { class: "verdict-message" }, verdict.message),
      facts.length ? h("dl", { class: "facts" }, facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, String(value))])) : "",
      ...this.evidence(),
    );
  }

  evidence() {
    const failures = [];
    for (const report of this.reports) {
      for (const resource of report.resources || []) {
        if (resource.failure) failures.push(resource);
      }
    }
    return failures.map(({ resource, failure }) => {
      const evidence = failure.evidence || {};
      const whose = [evidence.container && `container ${evidence.container}`, evidence.pod && `pod ${evidence.pod}`].filter(Boolean).join(" of ");
      const instance = evidence.previous_instance ? " (previous instance)" : "";
      return h(
        "div",
        { class: "evidence" },
        h("h3", {}, `${resourceName(resource)}: `, h("code", {}, failure.reason)),
        h("p", {}, failure.message),
        h("h4", {}, `Last log lines${whose ? ` of ${whose}` : ""}${instance}`),
        evidence.log_lines?.length
          ? h("pre", { class: "log", tabindex: 0, "aria-label": `Last log lines of ${whose || resourceName(resource)}` }, evidence.log_lines.map((line) => logLine("", line)))
          : h("p", { class: "muted" }, "No log lines were captured."),
        evidence.events?.length ? [h("h4", {}, "Kubernetes Events"), h("ul", { class: "k8s-events" }, evidence.events.map(k8sEventItem))] : null,
      );
    });
  }

  /// The reason's meaning, from the API reference (the `VerdictReason` schema documents each).
  async describeReason(reason, into) {
    try {
      this.reasonDescriptions ??= api("openapi.json").then((spec) => {
        const schema = spec.components.schemas.VerdictReason;
        return Object.fromEntries(schema.enum.map((name, index) => [name, schema["x-enum-descriptions"][index]]));
      });
      into.textContent = (await this.reasonDescriptions)[reason] || "";
    } catch {
      into.textContent = "";
    }
  }
}
