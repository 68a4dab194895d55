// tunegate's dashboard: confirmation dialogs, the live loss chart and the plan's cost chart.
// Data comes from JSON blocks the server renders into each page; htmx swaps the live panel.
(function () {
  "use strict";
  const charts = {};
  const palette = ["#2457c5", "#c0392b", "#1f7a44", "#a75a00", "#7d3cb5", "#0f7c8c"];

  function json(el) {
    try { return el ? JSON.parse(el.textContent) : null; } catch (e) { return null; }
  }

  // 1500 -> "1.5k", 2000000 -> "2M": the axis labels of a log scale
  function count(v) {
    if (v == null) return "";
    for (const [unit, scale] of [["B", 1e9], ["M", 1e6], ["k", 1e3]]) {
      if (Math.abs(v) >= scale) return +(v / scale).toPrecision(3) + unit;
    }
    return String(+v.toPrecision(3));
  }

  function width(el) { return Math.max(280, el.clientWidth || 600); }

  // confirmation dialogs: every action asks first and shows its command
  document.addEventListener("click", function (ev) {
    const open = ev.target.closest(".open-dialog");
    if (open) {
      const dlg = document.getElementById(open.dataset.dialog);
      if (dlg && dlg.showModal) dlg.showModal();
    }
    const close = ev.target.closest(".close-dialog");
    if (close) close.closest("dialog").close();
  });

  // the loss chart: step against training and validation loss
  function lossChart() {
    const el = document.getElementById("loss-chart");
    const rows = json(document.getElementById("loss-data"));
    if (!el || !rows || !window.uPlot) return;
    const data = [rows.map(r => r[0]), rows.map(r => r[1]), rows.map(r => r[2])];
    charts.loss = new uPlot({
      width: width(el), height: 300,
      scales: { x: { time: false } },
      series: [
        { label: "step" },
        { label: "train loss", stroke: palette[0], spanGaps: true },
        { label: "validation loss", stroke: palette[1], spanGaps: true, points: { size: 6 } },
      ],
      axes: [{ label: "step", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] },
             { label: "loss" }],
    }, data, el);
    el.dataset.points = String(rows.length);
    charts.lossData = data;
  }

  function appendPoints(panel) {
    const el = document.getElementById("loss-chart");
    const rows = json(panel.querySelector(".new-points"));
    if (!el || !rows || !rows.length || !charts.loss) return;
    const d = charts.lossData;
    const seen = new Set(d[0]);
    for (const r of rows) {
      if (seen.has(r[0])) continue;
      d[0].push(r[0]); d[1].push(r[1]); d[2].push(r[2]);
    }
    charts.loss.setData(d);
    el.dataset.points = String(d[0].length);
    const none = document.getElementById("no-loss");
    if (none) none.remove();
  }

  // the plan chart: total cost of each route against tokens/day, both log scales, with the
  // break-even, the job's own estimate and any measured volume drawn as vertical lines
  function costChart() {
    const el = document.getElementById("cost-chart");
    const c = json(document.getElementById("cost-data"));
    if (!el || !c || !window.uPlot) return;
    el.innerHTML = "";
    const pos = v => (v == null || v <= 0 ? null : v);
    const data = [c.x, ...c.series.map(s => s.map(pos))];
    const drawn = [];
    const markers = {
      hooks: {
        draw: [u => {
          const ctx = u.ctx;
          drawn.length = 0;
          for (const m of c.marks) {
            const x = u.valToPos(m.x, "x", true);
            if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) continue;
            ctx.save();
            ctx.strokeStyle = m.label === "break-even" ? "#b3261e" : "#5b6475";
            ctx.setLineDash([6, 4]);
            ctx.lineWidth = 1.5 * devicePixelRatio;
            ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
            ctx.fillStyle = ctx.strokeStyle;
            ctx.font = (11 * devicePixelRatio) + "px system-ui";
            ctx.fillText(m.label, x + 4 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
            ctx.restore();
            drawn.push(m);
          }
          el.dataset.markers = JSON.stringify(drawn);
        }],
      },
    };
    charts.cost = new uPlot({
      width: width(el), height: 340,
      plugins: [markers],
      scales: { x: { time: false, distr: 3 }, y: { distr: 3 } },
      series: [
        { label: "tokens/day", value: (u, v) => v == null ? "-" : v.toLocaleString() },
        ...c.labels.map((l, i) => ({ label: l, stroke: palette[i % palette.length], width: 2,
                                     value: (u, v) => v == null ? "-" : "$" + v.toLocaleString(undefined, { maximumFractionDigits: 2 }) })),
      ],
      axes: [{ label: "serving tokens/day", values: (u, vals) => vals.map(count) },
             { label: "total $", size: 70, values: (u, vals) => vals.map(v => "$" + count(v)) }],
    }, data, el);
  }

  function init() {
    lossChart();
    costChart();
  }

  document.addEventListener("DOMContentLoaded", init);
  // htmx swaps the live panel by outerHTML (the event's target is then the old element) and
  // the plan result by innerHTML: read what is in the document once the swap has settled
  document.addEventListener("htmx:afterSettle", function () {
    const live = document.getElementById("live");
    if (live) appendPoints(live);
    const plan = document.getElementById("plan-result");
    const chart = document.getElementById("cost-chart");
    if (plan && chart && !chart.firstChild) costChart();
  });
  window.addEventListener("resize", function () {
    for (const [name, id] of [["loss", "loss-chart"], ["cost", "cost-chart"]]) {
      const el = document.getElementById(id);
      if (charts[name] && el) charts[name].setSize({ width: width(el), height: charts[name].height });
    }
  });
})();
