// Alert rules with their states, and one rule's series and history.

import { enc, getJSON } from "../api.js";
import { fmtTime, h, link, loading, pagedList, replace, table } from "../ui.js";

function rule(r) {
  return (r.op ? r.metric + " " + r.op + " " + r.threshold : r.metric) + " over " + r.window_s + " s" + (r.for_s ? " for " + r.for_s + " s" : "");
}

function value(v) {
  return v === null || v === undefined ? "no data" : String(Math.round(v * 1000) / 1000);
}

function badge(state) {
  return h("span", { class: "badge alert-" + state }, state);
}

export async function render(main, { name } = {}) {
  replace(main, h("h1", {}, "Alerts"), loading());
  if (name) {
    const r = await getJSON("/v1/alerts/" + enc(name));
    replace(
      main,
      h("p", { class: "crumbs" }, h("a", { href: "#/alerts" }, "Alerts"), " / "),
      h("h1", {}, r.name, " ", badge(r.state)),
      h("p", {}, "Watches ", r.function || "budget " + r.budget, ": ", rule(r), ", severity ", r.severity, "."),
      h("h2", {}, "Series"),
      table(
        [
          { label: "Watches", cell: (s) => s.function || s.budget || "–" },
          { label: "State", cell: (s) => badge(s.state) },
          { label: "Value", class: "num", cell: (s) => value(s.value) },
          { label: "Since", cell: (s) => fmtTime(s.since) },
        ],
        r.series || [],
      ),
      h("h2", {}, "History"),
      pagedList(r.history || [], 20, (page, box) =>
        replace(
          box,
          table(
            [
              { label: "Time", cell: (x) => fmtTime(x.time) },
              { label: "Watches", cell: (x) => x.function || "–" },
              { label: "Change", cell: (x) => [badge(x.from), " → ", badge(x.to)] },
              { label: "Value", class: "num", cell: (x) => value(x.value) },
            ],
            page,
            { empty: "No changes yet." },
          ),
        ),
      ),
    );
    return null;
  }
  const list = (await getJSON("/v1/alerts")).alerts;
  replace(
    main,
    h("h1", {}, "Alerts"),
    pagedList(list, 20, (page, box) =>
      replace(
        box,
        table(
          [
            { label: "Rule", cell: (r) => link("#/alerts/" + enc(r.name), r.name) },
            { label: "Tenant", cell: (r) => r.tenant },
            { label: "Watches", cell: (r) => r.function || "budget " + r.budget },
            { label: "Condition", cell: (r) => rule(r) },
            { label: "State", cell: (r) => badge(r.state) },
            { label: "Value", class: "num", cell: (r) => value(r.value) },
            { label: "Severity", cell: (r) => r.severity },
          ],
          page,
          { empty: "No alert rules. `mayfly alert put` makes one." },
        ),
      ),
    ),
  );
  return null;
}
