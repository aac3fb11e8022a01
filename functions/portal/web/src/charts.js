// Charts of the usage view: a uPlot canvas of requests per day (allowed as
// bars, each deny reason as a line), top routes as proportional bars, and a
// quota gauge as SVG. Sizes and colours are set through DOM properties and
// attributes, never inline style text (the CSP forbids it).

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#a4161a", "#7a4b00", "#5a2d82", "#00666b", "#4a5360"];

let plot = null;

/** Days `[{day, allowed, denied_by_reason}]` as one chart in `el`. */
export function requestsChart(el, days) {
  const reasons = [...new Set(days.flatMap((d) => Object.keys(d.denied_by_reason || {})))].sort();
  const xs = days.map((d) => Date.parse(d.day + "T00:00:00Z") / 1000);
  const data = [xs, days.map((d) => d.allowed)];
  const series = [
    {},
    { label: "allowed", stroke: "#0b5cad", fill: "rgba(11, 92, 173, 0.35)", width: 1,
      paths: window.uPlot.paths.bars({ size: [0.7, 40] }) },
  ];
  reasons.forEach((r, i) => {
    data.push(days.map((d) => (d.denied_by_reason || {})[r] || 0));
    series.push({ label: "denied: " + r, stroke: COLOURS[i % COLOURS.length], width: 2 });
  });
  if (plot) plot.destroy();
  el.replaceChildren();
  const width = Math.max(280, el.clientWidth || 600);
  plot = new window.uPlot({
    width,
    height: 300,
    series,
    axes: [{}, { label: "requests" }],
    scales: { x: { time: true } },
  }, data, el);
  return plot;
}

/** Routes `[{route, count}]` as a list with proportional bars. */
export function routeBars(list, routes) {
  list.replaceChildren();
  const max = Math.max(1, ...routes.map((r) => r.count));
  for (const r of routes) {
    const li = document.createElement("li");
    const code = document.createElement("code");
    code.textContent = r.route;
    li.append(code, " ", String(r.count));
    const bar = document.createElementNS(SVG, "svg");
    bar.setAttribute("viewBox", "0 0 100 4");
    bar.setAttribute("preserveAspectRatio", "none");
    bar.setAttribute("width", "100%");
    bar.setAttribute("height", "8");
    bar.setAttribute("aria-hidden", "true");
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("width", String((100 * r.count) / max));
    rect.setAttribute("height", "4");
    rect.setAttribute("fill", "#0b5cad");
    bar.append(rect);
    li.append(bar);
    list.append(li);
  }
  if (!routes.length) {
    const li = document.createElement("li");
    li.textContent = "No requests in this range.";
    list.append(li);
  }
}

/** A half-circle gauge: `used` of `limit` for `label`. */
export function gauge(label, used, limit, period) {
  const fig = document.createElement("figure");
  fig.className = "gauge";
  const share = limit > 0 ? Math.min(1, used / limit) : 0;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 120 70");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label}: ${used} of ${limit} requests used this ${period}`);
  const arc = (cls, part) => {
    const p = document.createElementNS(SVG, "path");
    const angle = Math.PI * (1 - part);
    const x = 60 + 48 * Math.cos(angle);
    const y = 62 - 48 * Math.sin(angle);
    p.setAttribute("d", `M 12 62 A 48 48 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`);
    p.setAttribute("class", cls);
    return p;
  };
  svg.append(arc("track", 1));
  if (share > 0) svg.append(arc(share >= 0.9 ? "fill high" : "fill", share));
  const text = document.createElementNS(SVG, "text");
  text.setAttribute("x", "60");
  text.setAttribute("y", "60");
  text.setAttribute("text-anchor", "middle");
  text.textContent = `${Math.round(share * 100)}%`;
  svg.append(text);
  const cap = document.createElement("figcaption");
  cap.textContent = `${label}: ${used} / ${limit} per ${period}`;
  fig.append(svg, cap);
  return fig;
}
