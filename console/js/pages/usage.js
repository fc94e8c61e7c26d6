// Usage and budgets: cost and GB-seconds per day and per function (the
// usage report), and each budget's spend and forecast.

import { getJSON } from "../api.js";
import { categoryChart } from "../charts.js";
import { errorBox, fmtCalls, fmtGBs, fmtMoney, fmtPct, fmtTime, h, loading, pagedList, replace, table } from "../ui.js";

function byKey(rows, key) {
  const m = new Map();
  for (const r of rows) {
    const k = r[key];
    const t = m.get(k) || { key: k, requests: 0, gb_seconds: 0, cost: 0 };
    t.requests += r.requests;
    t.gb_seconds += r.gb_seconds;
    t.cost += r.cost;
    m.set(k, t);
  }
  return Array.from(m.values());
}

function budgets(list, box) {
  replace(
    box,
    table(
      [
        { label: "Budget", cell: (b) => b.name },
        { label: "Covers", cell: (b) => "tenant " + b.tenant + (b.function ? ", function " + b.function : "") },
        { label: "Period", cell: (b) => b.period + " from " + fmtTime(b.period_start) },
        { label: "Amount", class: "num", cell: (b) => fmtMoney(b.amount, b.currency) },
        { label: "Spend", class: "num", cell: (b) => fmtMoney(b.spend, b.currency) + " (" + fmtPct(b.spend / b.amount) + ")" },
        { label: "Forecast", class: "num", cell: (b) => fmtMoney(b.forecast, b.currency) },
        { label: "Action", cell: (b) => b.action + (b.blocking ? " — blocking" : "") },
      ],
      list,
      { empty: "No budgets. `mayfly budget put` makes one." },
    ),
  );
}

export async function render(main) {
  const report = h("div", {}, loading());
  const budgetBox = h("div", {}, loading());
  replace(main, h("h1", {}, "Usage and budgets"), h("section", {}, h("h2", {}, "Budgets"), budgetBox), h("section", {}, h("h2", {}, "This month"), report));
  getJSON("/v1/budgets").then((b) => budgets(b.budgets, budgetBox), (e) => replace(budgetBox, errorBox(e)));
  let u;
  try {
    u = await getJSON("/v1/usage", { granularity: "day", group_by: "function" });
  } catch (e) {
    replace(report, errorBox(e));
    return null;
  }
  const days = byKey(u.rows, "period").sort((a, b) => a.key.localeCompare(b.key));
  const fns = byKey(u.rows, "function").sort((a, b) => b.cost - a.cost);
  const c = u.currency;
  replace(
    report,
    h("p", { class: "muted" }, "From " + fmtTime(u.from) + " to " + fmtTime(u.to) + ", at " + (u.prices.request_per_million ?? 0) + " " + c + " per million requests and " + u.prices.gb_second + " " + c + " per GB-second."),
    h(
      "div",
      { class: "charts" },
      categoryChart("Cost per day", days.map((d) => d.key.slice(5, 10)), days.map((d) => d.cost), c),
      categoryChart("GB-seconds per day", days.map((d) => d.key.slice(5, 10)), days.map((d) => d.gb_seconds), "GB-s"),
    ),
    h("h3", {}, "Per function"),
    pagedList(fns, 20, (page, box) =>
      replace(
        box,
        table(
          [
            { label: "Function", cell: (r) => r.key },
            { label: "Requests", class: "num", cell: (r) => fmtCalls(r.requests) },
            { label: "Compute", class: "num", cell: (r) => fmtGBs(r.gb_seconds) },
            { label: "Cost", class: "num", cell: (r) => fmtMoney(r.cost, c) },
          ],
          page,
          { empty: "No calls this month." },
        ),
      ),
    ),
    h("h3", {}, "Per day"),
    pagedList(days.slice().reverse(), 31, (page, box) =>
      replace(
        box,
        table(
          [
            { label: "Day (UTC)", cell: (r) => r.key.slice(0, 10) },
            { label: "Requests", class: "num", cell: (r) => fmtCalls(r.requests) },
            { label: "Compute", class: "num", cell: (r) => fmtGBs(r.gb_seconds) },
            { label: "Cost", class: "num", cell: (r) => fmtMoney(r.cost, c) },
          ],
          page,
          { empty: "No calls this month." },
        ),
      ),
    ),
  );
  return null;
}
