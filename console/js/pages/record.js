// One call's record: its event, result, logs, attempts, egress calls, the
// cold start as a bar, its cost, and a replay with the diff of results.

import { enc, getJSON, request } from "../api.js";
import { callLogs } from "../records.js";
import {
  canonical, diffView, errorBox, facts, fmtBytes, fmtGBs, fmtMB, fmtMoney, fmtMs, fmtTime, h, link, loading, logLines, pretty, replace, statusBadge, table,
} from "../ui.js";

let pricesOnce = null;
function prices() {
  if (!pricesOnce) pricesOnce = getJSON("/v1/usage", { granularity: "month" }).then((u) => u.prices).catch(() => null);
  return pricesOnce;
}

// What the call cost at the server's prices (docs/metering.md): a request,
// its GB-seconds, CPU, egress and KV operations.
function cost(rec, p) {
  if (!p || rec.status === "queued" || rec.status === "running" || rec.status === "throttled") return null;
  return (
    (p.request_per_million || 0) / 1e6 +
    (rec.gb_seconds || 0) * (p.gb_second || 0) +
    ((rec.cpu_ms || 0) / 1000) * (p.cpu_second || 0) +
    ((rec.egress_bytes || 0) / 1e9) * (p.egress_gb || 0) +
    ((rec.kv_ops || 0) / 1e6) * (p.kv_ops_per_million || 0)
  );
}

export function recordSummary(rec) {
  return facts([
    ["Request id", h("code", { class: "request-id" }, rec.request_id)],
    ["Function", link("#/functions/" + enc(rec.function), rec.function + " v" + rec.version)],
    ["Status", statusBadge(rec.status)],
    ["Trigger", rec.trigger || "–"],
    ["Start", fmtTime(rec.start)],
    ["Duration", fmtMs(rec.duration_ms)],
    ["Billed", rec.billed_ms + " ms"],
    ["Memory", fmtMB(rec.memory_mb) + " given, " + fmtBytes((rec.max_rss_kb || 0) * 1024) + " peak"],
    ["CPU", (rec.cpu_ms ?? "–") + " ms"],
    ["Start kind", rec.cold_start ? "cold" + (rec.prewarmed ? " (prewarmed)" : "") : "warm"],
    rec.error_type ? ["Error", h("span", { class: "error-text" }, rec.error_type + ": " + (rec.error_message || ""))] : null,
    ["Attempts", String(rec.attempts ?? 1)],
    rec.replay_of ? ["Replay of", link("#/invocations/" + enc(rec.replay_of), rec.replay_of)] : null,
  ]);
}

// Where the call's time went, as a bar (docs/observability.md): the wait
// before its instance started (queue_ms less the start), making the
// sandbox, the runtime's init (init_ms less the sandbox), then the handler.
// A warm call has only the wait and the handler.
export function phases(rec) {
  const known = (v) => typeof v === "number" && v >= 0;
  const run = rec.duration_ms || 0;
  if (!rec.cold_start) {
    return known(rec.queue_ms) ? [["queue", "waiting", rec.queue_ms], ["run", "handler", run]] : [["run", "handler", run]];
  }
  const init = rec.init_ms || 0;
  const sandbox = known(rec.sandbox_ms) ? Math.min(rec.sandbox_ms, init) : null;
  const out = [];
  if (known(rec.queue_ms)) out.push(["queue", "waiting", Math.max(0, rec.queue_ms - init)]);
  if (sandbox === null) out.push(["init", "start", init]); // a record older than the breakdown
  else out.push(["sandbox", "sandbox", sandbox], ["init", "runtime init", init - sandbox]);
  out.push(["run", "handler", run]);
  return out;
}

function coldBar(rec) {
  const parts = phases(rec);
  const total = parts.reduce((a, p) => a + p[2], 0) || 1;
  const seg = ([cls, label, ms]) => {
    const el = h("span", { class: "seg " + cls, "data-phase": cls, title: label + ": " + fmtMs(ms) });
    el.style.width = ((ms / total) * 100).toFixed(2) + "%"; // CSSOM, allowed by the CSP
    return el;
  };
  const said = parts.map(([, label, ms]) => label + " " + fmtMs(ms)).join(", ");
  return h(
    "div",
    { class: "cold", id: "phases" },
    h("p", { class: "muted" }, rec.cold_start ? "A cold start: a new instance started for this call." : "A warm start: the call found an instance ready, no start-up time."),
    h("div", { class: "bar", role: "img", "aria-label": (rec.cold_start ? "cold start: " : "warm start: ") + said }, parts.map(seg)),
    h(
      "ul",
      { class: "legend phases" },
      parts.map(([cls, label, ms]) => h("li", { "data-phase": cls }, h("span", { class: "key " + cls }), " " + label + " ", h("span", { class: "ms" }, fmtMs(ms)))),
    ),
  );
}

function payload(rec, which) {
  const v = rec[which];
  const notes = [];
  if (rec[which + "_truncated"]) notes.push("cut at " + fmtBytes(String(pretty(v)).length) + " of " + fmtBytes(rec[which + "_bytes"]));
  if (rec[which + "_redacted"]) notes.push("redacted");
  if (rec[which + "_withheld"]) notes.push("withheld (nested too deeply)");
  if (v === undefined || v === null) return h("p", { class: "muted" }, "Not kept (the function's record settings).");
  return h("div", {}, notes.length ? h("p", { class: "muted" }, notes.join(", ")) : null, h("pre", { class: "payload", id: "record-" + which }, pretty(v)));
}

function egress(rec) {
  const list = rec.egress || [];
  if (!list.length) return h("p", { class: "muted" }, "No outbound connections.");
  const keys = Array.from(new Set(list.flatMap((e) => Object.keys(e))));
  return table(
    keys.map((k) => ({ label: k, cell: (e) => (typeof e[k] === "object" ? JSON.stringify(e[k]) : String(e[k] ?? "–")) })),
    list,
  );
}

function attempts(rec) {
  const list = rec.attempt_history;
  if (!list || !list.length) return h("p", { class: "muted" }, "One attempt" + (rec.trigger ? " (" + rec.trigger + ")" : "") + ".");
  return table(
    [
      { label: "Attempt", cell: (a) => String(a.attempt) },
      { label: "Start", cell: (a) => fmtTime(a.start) },
      { label: "Status", cell: (a) => statusBadge(a.status) },
      { label: "Duration", class: "num", cell: (a) => fmtMs(a.duration_ms) },
      { label: "Error", cell: (a) => (a.error_type ? a.error_type + ": " + (a.error_message || "") : "–") },
    ],
    list,
  );
}

async function replay(rec, out, button) {
  button.disabled = true;
  replace(out, loading("Running the recorded event again…"));
  try {
    const resp = await request("POST", `/v1/invocations/${enc(rec.request_id)}/replay`);
    const id = resp.headers.get("X-Mayfly-Request-Id");
    const text = await resp.text();
    let now = text;
    try {
      now = JSON.parse(text);
    } catch (_) {
      /* a result that is not JSON is compared as text */
    }
    const before = canonical(rec.result === undefined ? "" : rec.result);
    const after = canonical(now);
    replace(
      out,
      h("h3", {}, resp.headers.get("X-Mayfly-Function-Error") ? "Replayed: function error" : "Replayed"),
      facts([
        ["New request id", link("#/invocations/" + enc(id), id, { class: "replay-link" })],
        ["Duration", fmtMs(Number(resp.headers.get("X-Mayfly-Duration-Ms")))],
      ]),
      before === after
        ? h("p", { id: "replay-same" }, "The result is the same as the recorded one.")
        : h("div", { id: "replay-diff" }, h("p", {}, "Recorded (−) against replayed (+):"), diffView(before, after)),
    );
  } catch (e) {
    replace(out, errorBox(e));
  } finally {
    button.disabled = false;
  }
}

export async function render(main, { id }) {
  replace(main, h("p", { class: "crumbs" }, h("a", { href: "#/functions" }, "Functions")), h("h1", {}, "Invocation"), loading());
  const [rec, p] = await Promise.all([getJSON("/v1/invocations/" + enc(id)), prices()]);
  const c = cost(rec, p);
  const logsBox = h("div", { id: "record-logs" }, loading());
  const replayOut = h("div", { id: "replay-result", "aria-live": "polite" });
  const replayButton = h("button", { type: "button", id: "replay", class: "primary", onclick: () => replay(rec, replayOut, replayButton) }, "Replay");
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/functions" }, "Functions"), " / ", link("#/functions/" + enc(rec.function) + "/records", rec.function), " / "),
    h("h1", {}, "Invocation ", statusBadge(rec.status)),
    h(
      "div",
      { class: "cols" },
      h("section", { class: "card" }, h("h2", {}, "Call"), recordSummary(rec)),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Cost"),
        facts([
          ["Cost", c === null ? "–" : fmtMoney(c, p.currency)],
          ["Compute", fmtGBs(rec.gb_seconds)],
          ["Egress", fmtBytes(rec.egress_bytes || 0)],
          ["KV operations", (rec.kv_ops || 0) + " ops"],
          ["Log lines", fmtBytes(rec.log_bytes || 0)],
        ]),
        h("h2", {}, "Start"),
        coldBar(rec),
      ),
    ),
    h("section", { class: "card" }, h("h2", {}, "Event"), payload(rec, "event")),
    h("section", { class: "card" }, h("h2", {}, rec.error_type ? "Error" : "Result"), payload(rec, "result")),
    h("section", { class: "card" }, h("h2", {}, "Replay"), h("p", { class: "muted" }, "Runs the recorded event again on the function's current version."), replayButton, replayOut),
    h("section", { class: "card" }, h("h2", {}, "Log lines"), logsBox),
    h("section", { class: "card" }, h("h2", {}, "Attempts"), attempts(rec)),
    h("section", { class: "card" }, h("h2", {}, "Egress calls"), egress(rec)),
  );
  const lines = await callLogs(rec.function, rec.request_id, 2000).catch((e) => e);
  replace(logsBox, lines instanceof Error ? errorBox(lines) : lines.length ? logLines(lines) : h("p", { class: "muted" }, "No log lines."));
  return null;
}
