// The advisor's recommendation and a tuning run: the function called at
// several memory sizes, shown as a table and a chart.

import { enc, getJSON, sendJSON } from "../api.js";
import { categoryChart } from "../charts.js";
import { errorBox, facts, fmtMB, fmtMoney, fmtMs, fmtPct, h, loading, replace, table } from "../ui.js";

function advice(a) {
  return h(
    "div",
    {},
    h("p", { id: "advice-message" }, a.message),
    facts([
      ["Confidence", a.confidence],
      ["Now", fmtMB(a.current.memory_mb) + ", " + fmtMs(a.current.duration_ms) + ", " + fmtMoney(a.current.cost_per_million, a.currency) + " per million calls"],
      a.recommended ? ["Recommended", fmtMB(a.recommended.memory_mb) + " (" + a.recommended.change + "), about " + fmtMs(a.recommended.duration_ms) + ", " + fmtMoney(a.recommended.cost_per_million, a.currency) + " per million calls"] : null,
      a.memory ? ["Memory peak (p99)", (a.memory.peak_p99_mb ?? "–") + " MB, " + fmtPct(a.memory.used_ratio) + " of the size"] : null,
      a.cpu ? ["CPU", (a.cpu.cpu_bound ? "CPU-bound" : "not CPU-bound") + ", " + fmtPct(a.cpu.used_ratio) + " of its share"] : null,
      a.evidence ? ["Evidence", a.evidence.records + " calls since " + a.evidence.since] : null,
    ]),
  );
}

function tuneResult(t) {
  const sizes = t.sizes;
  return h(
    "div",
    { id: "tune-result" },
    h("p", {}, t.message || ""),
    table(
      [
        { label: "Memory", cell: (s) => fmtMB(s.memory_mb) },
        { label: "Cold", class: "num", cell: (s) => fmtMs(s.cold_ms) },
        { label: "p50", class: "num", cell: (s) => fmtMs(s.p50_ms) },
        { label: "p90", class: "num", cell: (s) => fmtMs(s.p90_ms) },
        { label: "Cost / million calls", class: "num", cell: (s) => fmtMoney(s.cost_per_million, t.currency) },
        { label: "Succeeded", class: "num", cell: (s) => s.successes + "/" + s.runs + " calls" },
        { label: "Errors", cell: (s) => (s.error_types.length ? s.error_types.join(", ") : "–") },
      ],
      sizes,
    ),
    h(
      "div",
      { class: "charts" },
      categoryChart("p50 duration", sizes.map((s) => s.memory_mb + " MB"), sizes.map((s) => s.p50_ms), "ms"),
      categoryChart("Cost per million calls", sizes.map((s) => s.memory_mb + " MB"), sizes.map((s) => s.cost_per_million), t.currency),
    ),
  );
}

export async function render(panel, fn) {
  const adviceBox = h("div", {}, loading());
  const sizes = h("input", { id: "tune-sizes", type: "text", value: "128,256,512,1024" });
  const runs = h("input", { id: "tune-runs", type: "number", min: "1", max: "100", value: "5" });
  const event = h("textarea", { id: "tune-event", rows: 3, class: "code" }, "{}");
  const out = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (ev) => {
        ev.preventDefault();
        let body;
        try {
          body = { event: JSON.parse(event.value), memory_mb: sizes.value.split(",").map((s) => Number(s.trim())), runs: Number(runs.value) };
        } catch (e) {
          return replace(out, errorBox("The event is not JSON: " + e.message));
        }
        replace(out, loading("Tuning: the function runs " + runs.value + " times at each size…"));
        try {
          replace(out, tuneResult(await sendJSON("POST", `/v1/functions/${enc(fn.name)}/tune`, body)));
        } catch (e) {
          replace(out, errorBox(e));
        }
      },
    },
    h("h2", {}, "Tune"),
    h("p", { class: "muted" }, "Calls the function with this event at each size (it really runs: its side effects happen each time)."),
    h("label", { for: "tune-sizes" }, "Sizes (MB, comma-separated)"),
    sizes,
    h("label", { for: "tune-runs" }, "Calls per size"),
    runs,
    h("label", { for: "tune-event" }, "Event (JSON)"),
    event,
    h("button", { type: "submit", class: "primary" }, "Run"),
  );
  replace(panel, h("section", { class: "card" }, h("h2", {}, "Advice"), adviceBox), form, out);
  getJSON(`/v1/functions/${enc(fn.name)}/advice`).then((a) => replace(adviceBox, advice(a)), (e) => replace(adviceBox, errorBox(e)));
  return null;
}
