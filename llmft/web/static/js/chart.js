// A line chart drawn as SVG by hand: round ticks on both axes, the series as a line, a dot per point.
//   lineChart({ id: "loss", title: "Training loss", points: [[1, 2.3], [2, 2.1]] })
import { h, num, svg } from "./dom.js";
import { t } from "./i18n.js";

const WIDTH = 520;
const HEIGHT = 220;
const MARGIN = { left: 58, right: 16, top: 14, bottom: 34 };

export function lineChart({ id, title, points, color = "#2563eb" }) {
  const latest = points.length ? h("span", { class: "latest" }, num(points[points.length - 1][1])) : null;
  const plot = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title });
  const figure = h("figure", { class: "chart", "data-chart": id, "data-points": points.length },
    h("figcaption", {}, h("span", {}, title), latest), plot);
  if (!points.length) {
    plot.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "chart-empty" },
      t("waiting_for_points")));
    return figure;
  }
  const x = axis(points.map((p) => p[0]), 6, true);
  const y = axis(points.map((p) => p[1]), 4, false);
  const left = MARGIN.left, right = WIDTH - MARGIN.right, top = MARGIN.top, bottom = HEIGHT - MARGIN.bottom;
  const sx = (value) => left + ((value - x.lo) / (x.hi - x.lo)) * (right - left);
  const sy = (value) => bottom - ((value - y.lo) / (y.hi - y.lo)) * (bottom - top);

  for (const tick of y.ticks) {
    plot.append(svg("line", { x1: left, x2: right, y1: sy(tick), y2: sy(tick), class: "grid" }),
      svg("text", { x: left - 6, y: sy(tick) + 4, "text-anchor": "end", class: "tick" }, tickLabel(tick, y)));
  }
  for (const tick of x.ticks) {
    plot.append(svg("text", { x: sx(tick), y: bottom + 16, "text-anchor": "middle", class: "tick" }, num(tick)));
  }
  plot.append(
    svg("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "axis" }),
    svg("line", { x1: left, x2: left, y1: top, y2: bottom, class: "axis" }),
    svg("text", { x: right, y: HEIGHT - 4, "text-anchor": "end", class: "axis-label" }, t("step")),
    svg("polyline", { points: points.map(([px, py]) => `${sx(px)},${sy(py)}`).join(" "), fill: "none",
      stroke: color, "stroke-width": 2, "stroke-linejoin": "round" }),
    ...points.map(([px, py]) => svg("circle", { cx: sx(px), cy: sy(py), r: 3, fill: color, class: "point" },
      svg("title", {}, `${t("step")} ${px}: ${num(py)}`))),
  );
  return figure;
}

// The axis range widened to round ticks: {lo, hi, ticks}.
function axis(values, count, integer) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) {
    const pad = integer ? 1 : Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  let step = niceStep((hi - lo) / count);
  if (integer) step = Math.max(1, Math.round(step));
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let i = 0; lo + i * step <= hi + step / 2; i++) ticks.push(Number((lo + i * step).toPrecision(12)));
  return { lo, hi, step, ticks };
}

// As many digits as the tick step needs, so neighbouring ticks never read the same.
function tickLabel(value, { lo, hi, step }) {
  if (value === 0) return "0";
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  if (decimals <= 3) return value.toFixed(decimals);
  const digits = Math.floor(Math.log10(Math.max(Math.abs(lo), Math.abs(hi)))) - Math.floor(Math.log10(step));
  return value.toExponential(Math.max(1, digits));
}

// 1, 2 or 5 times a power of ten: the tick step nearest above `raw`.
function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}
