// Charts with uPlot (vendored, see vendor/uplot-1.6.32/README.md). Every
// chart reads one of the server's aggregated series (GET
// /v1/functions/{name}/series), never records.

import uPlot from "../vendor/uplot-1.6.32/uPlot.esm.js";
import { h } from "./ui.js";

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

const PALETTE = ["--chart-1", "--chart-2", "--chart-3", "--chart-4"];

function toColumns(seriesList) {
  const xs = seriesList[0].points.map((p) => p[0] / 1000);
  const cols = [xs];
  for (const s of seriesList) cols.push(s.points.map((p) => p[1]));
  return cols;
}

// A sparkline: no axes, no legend, no cursor; its label says what it sums to.
export function sparkline(answer, label) {
  const box = h("span", { class: "spark", role: "img", "aria-label": label });
  if (!answer || !answer.points || !answer.points.length) return box;
  const stroke = cssVar("--chart-1", "#3366cc");
  const opts = {
    width: 120,
    height: 30,
    pxAlign: false,
    cursor: { show: false },
    legend: { show: false },
    select: { show: false },
    scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [{ show: false }, { show: false }],
    series: [{}, { stroke, fill: stroke + "33", width: 1.5, spanGaps: false }],
  };
  // uPlot measures its container; build it once the box is in the page.
  requestAnimationFrame(() => new uPlot(opts, toColumns([answer]), box));
  return box;
}

// A chart of one or more series over the same time steps, with a legend
// and the series' unit on the y axis.
export function timeChart(title, seriesList, names) {
  const box = h("figure", { class: "chart" }, h("figcaption", {}, title));
  const unit = seriesList[0] && seriesList[0].unit ? seriesList[0].unit : "";
  const grid = cssVar("--border", "#ddd");
  const text = cssVar("--fg", "#222");
  const series = [{}];
  seriesList.forEach((s, i) => {
    const color = cssVar(PALETTE[i % PALETTE.length], "#3366cc");
    series.push({
      label: names ? names[i] : s.metric,
      stroke: color,
      width: 2,
      value: (u, v) => (v === null || v === undefined ? "–" : (Math.round(v * 100) / 100) + (unit ? " " + unit : "")),
    });
  });
  const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
  const opts = {
    width: 560,
    height: 220,
    series,
    axes: [axis, { ...axis, label: unit, size: 60 }],
    scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
  };
  requestAnimationFrame(() => {
    const width = Math.max(260, Math.min(box.clientWidth || 560, 900));
    opts.width = width;
    const plot = new uPlot(opts, toColumns(seriesList), box);
    box.chart = plot;
  });
  return box;
}

// A bar chart over categories (the tuning run's sizes), y in one unit.
export function categoryChart(title, labels, values, unit) {
  const box = h("figure", { class: "chart" }, h("figcaption", {}, title));
  const color = cssVar("--chart-2", "#dc3912");
  const grid = cssVar("--border", "#ddd");
  const text = cssVar("--fg", "#222");
  const xs = labels.map((_, i) => i);
  const opts = {
    width: 560,
    height: 220,
    legend: { show: false },
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { stroke: text, grid: { show: false }, splits: () => xs, values: () => labels },
      { stroke: text, grid: { stroke: grid }, label: unit, size: 60 },
    ],
    series: [
      { value: (u, v) => (v === null ? "" : labels[v]) },
      { label: title, stroke: color, fill: color + "99", paths: uPlot.paths.bars({ size: [0.6, 60] }), points: { show: false },
        value: (u, v) => (v === null || v === undefined ? "–" : v + " " + unit) },
    ],
  };
  requestAnimationFrame(() => {
    opts.width = Math.max(260, Math.min(box.clientWidth || 560, 900));
    new uPlot(opts, [xs, values], box);
  });
  return box;
}
