// A function's settings and its charts over a chosen window.

import { enc, series } from "../api.js";
import { timeChart } from "../charts.js";
import { errorBox, facts, fmtBytes, fmtMB, fmtSeconds, fmtTime, h, loading, pretty, replace } from "../ui.js";

const WINDOWS = [
  ["1h", "last hour", 3600, 60],
  ["6h", "last 6 hours", 6 * 3600, 300],
  ["24h", "last 24 hours", 24 * 3600, 900],
  ["7d", "last 7 days", 7 * 24 * 3600, 3600],
];

const CHARTS = [
  ["Invocations", ["invocations"], ["calls"]],
  ["Errors and throttles", ["errors", "throttles"], ["errors", "throttles"]],
  ["Duration", ["duration_p50", "duration_p99", "duration_avg"], ["p50", "p99", "mean"]],
  ["Cold starts", ["cold_starts"], ["cold starts"]],
  ["Concurrency", ["concurrency"], ["calls at once"]],
];

function settings(fn) {
  return facts([
    ["Runtime", fn.runtime],
    ["Handler", fn.handler || "–"],
    ["Version", "v" + fn.version],
    ["Memory", fmtMB(fn.memory_mb)],
    ["Timeout", fmtSeconds(fn.timeout_s)],
    ["/tmp", fmtMB(fn.tmp_mb)],
    ["Max concurrency", fn.max_concurrency + " calls"],
    ["Instance concurrency", ((n) => n + (n === 1 ? " call" : " calls") + " per instance")(fn.instance_concurrency || 1)],
    ["Async retries", fn.async ? fn.async.max_retries + " retries, events kept " + fn.async.max_event_age_s + " s" : "–"],
    ["On success / failure", fn.async ? (fn.async.on_success || "–") + " / " + (fn.async.on_failure || "–") : "–"],
    ["Keep warm", fn.keep_warm ? fn.keep_warm.policy + ", " + fn.keep_warm.keep_alive_s + " s" : "–"],
    ["Egress", fn.egress && fn.egress.length ? fn.egress.map((e) => (typeof e === "string" ? e : JSON.stringify(e))).join(", ") : "none"],
    ["Permissions", fn.permissions && fn.permissions.length ? fn.permissions.join(", ") : "none"],
    ["Volumes", fn.volumes && fn.volumes.length ? fn.volumes.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ") : "none"],
    ["Records keep", fn.record ? fn.record.payloads + " payloads, up to " + fn.record.max_payload_kb + " KiB" : "–"],
    ["Created", fmtTime(fn.created)],
    ["Updated", fmtTime(fn.updated)],
  ]);
}

function code(fn) {
  return h(
    "div",
    {},
    facts([
      ["Package size", fmtBytes(fn.code_size)],
      ["SHA-256", h("code", { class: "hash" }, fn.code_sha256 || "–")],
    ]),
    h("p", { class: "muted" }, "Its files and the zip: ", h("a", { href: "#/functions/" + enc(fn.name) + "/code" }, "Code"), "."),
  );
}

export function render(panel, fn) {
  const charts = h("div", { class: "charts" });
  const picker = h(
    "select",
    { id: "chart-window", "aria-label": "chart window", onchange: () => draw(picker.value) },
    WINDOWS.map(([id, label]) => h("option", { value: id }, label)),
  );
  async function draw(id) {
    const [, , span, step] = WINDOWS.find((w) => w[0] === id);
    replace(charts, loading());
    const to = Date.now();
    const from = to - span * 1000;
    try {
      const figs = await Promise.all(
        CHARTS.map(async ([title, metrics, names]) => {
          const answers = await Promise.all(metrics.map((m) => series(fn.name, m, from, to, step)));
          const unit = answers[0].unit ? " (" + answers[0].unit + ")" : "";
          return timeChart(title + unit, answers, names);
        }),
      );
      replace(charts, figs);
    } catch (e) {
      replace(charts, errorBox(e));
    }
  }
  replace(
    panel,
    h("div", { class: "cols" }, h("section", { class: "card" }, h("h2", {}, "Settings"), settings(fn)), h("section", { class: "card" }, h("h2", {}, "Code"), code(fn), fn.env && Object.keys(fn.env).length ? [h("h3", {}, "Environment"), h("pre", {}, pretty(fn.env))] : null)),
    h("section", {}, h("div", { class: "row" }, h("h2", {}, "Charts"), h("label", { for: "chart-window" }, "Window "), picker), charts),
  );
  draw(WINDOWS[0][0]);
  return null;
}

export { enc };
