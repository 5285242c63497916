// The operator page's live parts: one EventSource for the whole page.
// Events that change what a fragment shows fire htmx's `refresh` (debounced); readings feed the
// uPlot charts. EventSource reconnects by itself (the server sends `retry:`), so a daemon
// restart under an open page only shows the "not answering" banner until it is back.
(function () {
  "use strict";
  const body = document.body;
  const units = JSON.parse(body.dataset.units || "{}");
  const WINDOW = 600;           // samples kept per channel
  const DEFAULT_PLOTTED = 6;    // channels plotted before the operator chooses
  const REFRESHING = ["queued", "dropped", "queue", "run_start", "run_state", "point_start",
                      "point_end", "run_end", "alarm", "interlocks", "instrument"];
  const link = document.getElementById("link");
  let refreshTimer = null;
  let chosen = null;            // null: the default (what the run acquires)
  const series = new Map();     // channel -> {t: [], v: []}
  const plots = new Map();      // channel -> uPlot

  function refresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; htmx.trigger(body, "refresh"); }, 250);
  }
  function linkUp(up) { link.hidden = up; }

  function setCsrf(token) {
    const headers = JSON.parse(body.getAttribute("hx-headers") || "{}");
    headers["X-CSRF-Token"] = token;
    body.setAttribute("hx-headers", JSON.stringify(headers));
  }

  function plotted() {
    const all = Array.from(series.keys()).sort();
    return chosen === null ? all.slice(0, DEFAULT_PLOTTED) : all.filter((c) => chosen.has(c));
  }

  function drawChooser() {
    const box = document.getElementById("channels");
    if (!box) return;
    const shown = new Set(plotted());
    const names = Array.from(series.keys()).sort();
    if (box.dataset.names === names.join(",") && box.dataset.shown === Array.from(shown).join(",")) return;
    box.dataset.names = names.join(",");
    box.dataset.shown = Array.from(shown).join(",");
    box.replaceChildren(...names.map((name) => {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.checked = shown.has(name);
      input.addEventListener("change", () => {
        chosen = new Set(plotted());
        if (input.checked) chosen.add(name); else chosen.delete(name);
        drawPlots();
      });
      label.append(input, ` ${name}`);
      return label;
    }));
  }

  function makePlot(name, box) {
    const unit = units[name] || "";
    const label = unit ? `${name} (${unit})` : name;
    const opts = {
      title: label, width: 400, height: 200,
      scales: { x: { time: true } },
      legend: { show: false },
      series: [{}, { label, stroke: "#2563eb", width: 1.5 }],
      axes: [{}, { label: unit, size: 80 }],
    };
    const s = series.get(name);
    return new uPlot(opts, [s.t, s.v], box);
  }

  function drawPlots() {
    const box = document.getElementById("plots");
    drawChooser();
    if (!box) { plots.clear(); return; }
    const wanted = plotted();
    for (const [name, plot] of plots) {
      if (!wanted.includes(name) || !box.contains(plot.root)) { plot.destroy(); plots.delete(name); }
    }
    for (const name of wanted) {
      if (!plots.has(name)) {
        const cell = document.createElement("div");
        cell.className = "plot";
        cell.dataset.channel = name;
        box.append(cell);
        plots.set(name, makePlot(name, cell));
      }
      const s = series.get(name);
      plots.get(name).setData([s.t, s.v]);
      plots.get(name).root.parentElement.dataset.points = String(s.t.length);
    }
  }

  function onReadings(data) {
    for (const [name, value] of Object.entries(data.values)) {
      let s = series.get(name);
      if (!s) { s = { t: [], v: [] }; series.set(name, s); }
      s.t.push(data.t); s.v.push(value);
      if (s.t.length > WINDOW) { s.t.shift(); s.v.shift(); }
    }
    drawPlots();
  }

  function connect() {
    const source = new EventSource("/events");
    source.addEventListener("hello", (e) => {
      setCsrf(JSON.parse(e.data).csrf);
      linkUp(true);
      refresh();              // after a reconnect everything may have changed
    });
    source.addEventListener("readings", (e) => {
      const data = JSON.parse(e.data);
      if (data.point !== null) onReadings(data);  // a run's; an idle instrument's probe is not plotted
    });
    source.addEventListener("run_start", () => { series.clear(); drawPlots(); });
    for (const name of REFRESHING) source.addEventListener(name, refresh);
    source.onerror = () => { if (source.readyState !== EventSource.OPEN) linkUp(false); };
  }

  body.addEventListener("htmx:sendError", () => linkUp(false));
  body.addEventListener("htmx:afterRequest", (e) => {
    if (e.detail.successful || (e.detail.xhr && e.detail.xhr.status)) linkUp(true);
  });
  body.addEventListener("htmx:afterSettle", (e) => {
    // A confirmation fades after a while; an error stays until the next action replaces it.
    const flash = document.getElementById("flash");
    if (e.detail.target === flash && flash.querySelector(".ok")) {
      const shown = flash.firstElementChild;
      setTimeout(() => { if (flash.firstElementChild === shown) flash.replaceChildren(); }, 10000);
    }
    // A view swap brings a fresh #plots: draw into it.
    if (e.detail.target && e.detail.target.id === "view") { plots.clear(); drawPlots(); }
    for (const a of document.querySelectorAll("nav a[data-view]")) {
      a.classList.toggle("active", location.search.includes(`view=${a.dataset.view}`) ||
        (!location.search.includes("view=") && a.dataset.view === "current"));
    }
  });
  // An uploaded file is shown in the paste box, so what is checked is what is on screen.
  body.addEventListener("change", (e) => {
    const input = e.target;
    if (!input.matches || !input.matches("#submit input[name=file]") || !input.files.length) return;
    const file = input.files[0];
    const form = input.form;
    file.text().then((text) => {
      form.querySelector("textarea[name=recipe]").value = text;
      form.querySelector("input[name=name]").value = file.name;
    });
  });
  connect();
})();
