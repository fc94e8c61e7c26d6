// Functions: each function's health at a glance, a page at a time. The
// sparklines and figures of a page's functions come from the series
// endpoint (one hour, by minute), the cost from the usage report, the alert
// state from the alert rules.

import { enc, getJSON, series } from "../api.js";
import { sparkline } from "../charts.js";
import { errorBox, fmtCalls, fmtMB, fmtMoney, fmtMs, fmtPct, h, link, loading, pagedList, replace, table } from "../ui.js";

const PAGE = 20;
const STATE_RANK = { firing: 3, pending: 2, resolved: 1, ok: 0 };

function sum(answer) {
  if (!answer || !answer.points) return null;
  return answer.points.reduce((a, p) => a + (p[1] || 0), 0);
}

function alertStates(alerts) {
  const by = new Map();
  for (const rule of alerts) {
    for (const s of rule.series || []) {
      if (!s.function) continue;
      const prev = by.get(s.function);
      if (!prev || STATE_RANK[s.state] > STATE_RANK[prev.state]) by.set(s.function, { state: s.state, rule: rule.name });
    }
  }
  return by;
}

export async function render(main) {
  const body = h("div", {}, loading());
  replace(main, h("h1", {}, "Functions"), body);
  const now = Date.now();
  const today = new Date(now);
  today.setUTCHours(0, 0, 0, 0);
  const [list, usage, alerts] = await Promise.all([
    getJSON("/v1/functions"),
    getJSON("/v1/usage", { from: today.getTime(), to: now, granularity: "day", group_by: "function" }).catch(() => null),
    getJSON("/v1/alerts").catch(() => ({ alerts: [] })),
  ]);
  const fns = list.functions.slice().sort((a, b) => a.name.localeCompare(b.name));
  const cost = new Map();
  for (const r of usage ? usage.rows : []) cost.set(r.function, (cost.get(r.function) || 0) + r.cost);
  const currency = usage ? usage.currency : "USD";
  const states = alertStates(alerts.alerts || []);
  if (!fns.length) {
    replace(body, h("p", { class: "muted" }, "No functions yet. Deploy one with `mayfly deploy NAME PATH --runtime RT`."));
    return;
  }
  const from = now - 3600 * 1000;
  replace(
    body,
    h("p", { class: "muted" }, "Calls and errors over the last hour, by minute; p99 duration over the latest clock hour with calls, cold starts over the last hour; cost since midnight UTC."),
    pagedList(fns, PAGE, (page, box) => {
      const stats = new Map();
      const cells = new Map();
      for (const f of page) {
        const c = {
          calls: h("span", { class: "spark-cell" }, loading("…")),
          errors: h("span", { class: "spark-cell" }),
          p99: h("span", {}, "…"),
          cold: h("span", {}, "…"),
        };
        cells.set(f.name, c);
        stats.set(
          f.name,
          Promise.allSettled([
            series(f.name, "invocations", from, now, 60),
            series(f.name, "errors", from, now, 60),
            series(f.name, "duration_p99", from, now, 3600),
            series(f.name, "cold_starts", from, now, 60),
          ]).then(([inv, err, p99, cold]) => {
            const ok = (r) => (r.status === "fulfilled" ? r.value : null);
            const calls = sum(ok(inv));
            const errors = sum(ok(err));
            replace(c.calls, sparkline(ok(inv), `calls in the last hour: ${fmtCalls(calls)}`), h("span", { class: "spark-total" }, fmtCalls(calls)));
            replace(c.errors, sparkline(ok(err), `errors in the last hour: ${fmtCalls(errors)}`), h("span", { class: errors ? "spark-total bad" : "spark-total" }, fmtCalls(errors)));
            const p = ok(p99);
            const p99v = p && p.points.length ? p.points.map((x) => x[1]).filter((v) => v !== null).pop() : null;
            replace(c.p99, p99v === undefined ? "–" : fmtMs(p99v));
            const colds = sum(ok(cold));
            replace(c.cold, calls ? fmtPct(colds / calls) : "–");
            if (inv.status === "rejected") replace(c.calls, errorBox(inv.reason));
          }),
        );
      }
      replace(
        box,
        table(
          [
            { label: "Function", cell: (f) => link("#/functions/" + enc(f.name), f.name, { class: "fn-link" }) },
            { label: "Runtime", cell: (f) => f.runtime },
            { label: "Version", cell: (f) => "v" + f.version },
            { label: "Memory", class: "num", cell: (f) => fmtMB(f.memory_mb) },
            { label: "Calls (1 h)", cell: (f) => cells.get(f.name).calls },
            { label: "Errors (1 h)", cell: (f) => cells.get(f.name).errors },
            { label: "p99 duration", class: "num", cell: (f) => cells.get(f.name).p99 },
            { label: "Cold starts", class: "num", cell: (f) => cells.get(f.name).cold },
            { label: "Cost today", class: "num", cell: (f) => fmtMoney(cost.get(f.name) || 0, currency) },
            {
              label: "Alerts",
              cell: (f) => {
                const s = states.get(f.name);
                return s ? h("a", { href: "#/alerts/" + enc(s.rule), class: "badge alert-" + s.state }, s.state) : h("span", { class: "muted" }, "no rules");
              },
            },
          ],
          page,
          { class: "functions" },
        ),
      );
    }),
  );
}
