// mape status page: draws the chart and refreshes the page from /api/status every few
// seconds. Text goes in with textContent only (never as HTML). Nothing is fetched from
// anywhere but this router.
"use strict";
(function () {
  const POLL_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  function rows(id, data, cells) {
    const body = $(id).tBodies[0];
    body.replaceChildren();
    for (const d of data) {
      const tr = document.createElement("tr");
      for (const [text, num] of cells(d)) {
        const td = document.createElement("td");
        td.textContent = String(text);
        if (num) td.className = "num";
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function chart(history, total) {
    const svg = $("chart");
    svg.replaceChildren();
    const W = 600, H = 160;
    const top = Math.max(total, 1);
    const y = (v) => H - (v / top) * (H - 14) - 2;
    const limit = document.createElementNS(SVG, "line");
    limit.setAttribute("class", "limit");
    limit.setAttribute("x1", 0); limit.setAttribute("x2", W);
    limit.setAttribute("y1", y(total)); limit.setAttribute("y2", y(total));
    svg.appendChild(limit);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", 4); label.setAttribute("y", 11);
    label.textContent = total + " ports";
    svg.appendChild(label);
    if (history.length === 0) return;
    // The last hour at most; at least ten minutes, so a young daemon's few samples read.
    const now = history[history.length - 1].t;
    const span = Math.min(3600, Math.max(600, now - history[0].t));
    const x = (t) => W - ((now - t) / span) * W;
    const pts = history.map((s) => x(s.t).toFixed(1) + "," + y(s.used).toFixed(1));
    const area = document.createElementNS(SVG, "polygon");
    area.setAttribute("class", "area");
    area.setAttribute("points", x(history[0].t).toFixed(1) + "," + H + " " + pts.join(" ") + " " + W + "," + H);
    svg.appendChild(area);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", "line");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(line);
    const from = document.createElementNS(SVG, "text");
    from.setAttribute("x", 4); from.setAttribute("y", H - 4);
    from.textContent = "-" + Math.round(span / 60) + " min";
    svg.appendChild(from);
    const to = document.createElementNS(SVG, "text");
    to.setAttribute("x", W - 4); to.setAttribute("y", H - 4); to.setAttribute("text-anchor", "end");
    to.textContent = "now " + history[history.length - 1].used;
    svg.appendChild(to);
  }

  function render(d) {
    const b = d.budget;
    const pct = b.total ? Math.min(100, Math.floor((b.used * 100) / b.total)) : 0;
    $("gauge-used").textContent = b.used;
    $("gauge-total").textContent = b.total;
    $("gauge-fill").style.width = pct + "%";
    $("gauge").dataset.level = pct >= 95 ? "crit" : pct >= 80 ? "warn" : "ok";
    $("gauge-peak").textContent = "peak " + b.peak + " (" + b.peak_ago + "), " + b.sessions + " sessions, " + b.refusals + " refused";
    $("uptime").textContent = "up " + d.uptime_s + " s";
    rows("protocols", b.protocols, (p) => [[p.proto], [p.used, 1], [p.total, 1], [p.peak, 1]]);
    rows("hosts", d.hosts, (h) => [[h.addr], [h.ports, 1], [h.flows, 1], [h.refused, 1], [h.score.toFixed(2), 1]]);
    rows("destinations", d.destinations, (x) => [[x.proto], [x.dst], [x.flows, 1], [x.total, 1], [x.hosts, 1], [x.filtered, 1]]);
    rows("drops", d.drops.length ? d.drops : [["none", ""]], (r) => [[r[0]], [r[1], 1]]);
    const banner = $("culprit-banner");
    banner.className = "banner " + (d.culprit.host ? "alert" : "calm");
    banner.replaceChildren();
    d.culprit.lines.forEach((l, i) => {
      const e = document.createElement(i === 0 ? "strong" : "p");
      e.textContent = l;
      banner.appendChild(e);
    });
    chart(d.history, b.total);
  }

  async function poll() {
    try {
      const r = await fetch("/api/status", { cache: "no-store" });
      if (r.status === 401) { window.location.assign("/login"); return; }
      if (r.ok) render(await r.json());
    } catch (e) { /* the router may be restarting: try again at the next tick */ }
  }

  const initial = JSON.parse($("initial").textContent);
  if (initial) chart(initial.history, initial.budget.total);
  setInterval(poll, POLL_MS);
})();
