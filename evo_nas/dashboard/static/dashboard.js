// evo-nas dashboard: polls the server's JSON and redraws what changed. No framework; plotly.js
// (served from the plotly package, no CDN) draws the figures. Text from the run is always set
// with textContent, never as HTML.
"use strict";

const REFRESH_MS = Number(document.body.dataset.refresh) || 2000;
const PAGE_ROWS = 100;
// points drawn at most in a scatter by default (SVG: thousands more would slow every update)
const MAX_POINTS = 1000;
const MAX_ROUNDS = 200;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04",
  "#db2777", "#4b5563", "#65a30d"];
const PLOT_CONFIG = {displaylogo: false, responsive: true};

const $ = (id) => document.getElementById(id);
// what each update of the run took (fetch and parse, then drawing), newest last: read by
// benchmarks/bench_dashboard.py and handy in the browser's console
window.dashboardTimings = [];
const state = {
  overview: null, overviewVersion: null, runId: null,
  epoch: null, version: null, rows: [], summary: null,
  sort: {col: "i", dir: -1}, page: 0, selected: null, dirty: true, view: [],
  bestIndex: null, drawn: {},
};

// -- formatting ------------------------------------------------------------------------------
function fmtObjective(x) {  // as `evo-nas show` prints it (reports.summary.format_objective)
  if (x === null || x === undefined) return "inf";
  const a = Math.abs(x);
  if (x !== 0 && (a < 1 || a >= 1e6)) return Number(x.toPrecision(4)).toString();
  return x.toFixed(4);
}
function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 90) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
function fmtLarge(x) {  // an objective in a note: 15,000 rather than 15000.0000
  return Math.abs(x) >= 1000 ? Math.round(x).toLocaleString("en-US") : fmtObjective(x);
}
function fmtCount(n) { return n === null || n === undefined ? "–" : n.toLocaleString("en-US"); }
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

// -- data ------------------------------------------------------------------------------------
async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store", credentials: "same-origin"});
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

async function tick() {
  try {
    const ov = await getJSON(`/api/overview?v=${encodeURIComponent(state.overviewVersion || "")}`);
    if (!ov.unchanged) {
      state.overview = ov;
      state.overviewVersion = ov.version;
      if (state.runId === null && ov.runs.length) state.runId = pickRun(ov.runs);
      renderRunSelect();
      if (!ov.runs.length) renderWaiting(ov.waiting);
    }
    const ran = state.runId !== null && (await pollRun());
    if (!ov.unchanged && !ran) renderBestPlot();
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("updated").textContent = `no answer from the dashboard server (${e.message})`;
  } finally {
    setTimeout(tick, REFRESH_MS);
  }
}

function pickRun(runs) {  // the first running run, else the first
  const running = runs.find((r) => r.state === "running");
  return (running || runs[0]).id;
}

async function pollRun() {
  const id = state.runId;
  const q = `epoch=${state.epoch ?? ""}&n=${state.rows.length}&v=${state.version ?? ""}`;
  const start = performance.now();
  const p = await getJSON(`/api/run/${id}?${q}`);
  if (id !== state.runId || p.unchanged) return false;
  if (p.restart) state.rows = p.rows;
  else state.rows.push(...p.rows);
  state.epoch = p.epoch;
  state.version = p.version;
  state.summary = p;
  state.dirty = true;
  const fetched = performance.now();
  renderRun();
  const drawn = performance.now();
  window.dashboardTimings.push({rows: state.rows.length, new_rows: p.rows.length,
    fetch_ms: fetched - start, render_ms: drawn - fetched, at_ms: drawn});
  return true;
}

function selectRun(id) {
  state.runId = id;
  state.epoch = state.version = null;
  state.rows = [];
  state.summary = null;
  state.selected = null;
  state.bestIndex = null;
  state.page = 0;
  state.dirty = true;
  pollRun();
}

// -- header ----------------------------------------------------------------------------------
function renderRunSelect() {
  const sel = $("run-select");
  const runs = state.overview ? state.overview.runs : [];
  sel.replaceChildren();
  const groups = new Map();
  for (const r of runs) {
    const label = `${r.name} — ${r.state}, ${fmtCount(r.evaluations)} evals` +
      (r.best === null ? "" : `, best ${fmtObjective(r.best)}`);
    const opt = el("option", label);
    opt.value = r.id;
    if (r.group === null) sel.append(opt);
    else {
      if (!groups.has(r.group)) {
        const g = document.createElement("optgroup");
        g.label = r.group;
        groups.set(r.group, g);
        sel.append(g);
      }
      groups.get(r.group).append(opt);
    }
  }
  if (state.runId !== null) sel.value = String(state.runId);
}

function renderRun() {
  const s = state.summary;
  if (!s) return;
  const badge = $("run-state");
  badge.textContent = s.state;
  badge.className = `badge ${s.state}`;
  $("run-holder").textContent = s.holder ? `written by ${s.holder}` : "";
  $("run-path").textContent = s.path;
  renderStop(s.state, s.reason);
  renderNotices(s.notices.concat(waitingNotices()));
  renderScreening(s.screen);
  renderSpend(s.spend);
  renderHonesty();
  renderTable();
  renderBest(s.best);
  $("config").textContent = s.config || "(no config.yaml)";
  const log = $("log");
  log.replaceChildren(...s.log.slice().reverse().map((e) =>
    el("li", `${fmtDuration(e.t)}: ${e.text}`)));
  if (!s.log.length) {
    log.append(el("li", "nothing notable yet (resumes, refits, errors, the end)", "muted"));
  }
  renderBestPlot();
}

// the run is not running: why (finished, crashed, stopped), in a banner under the header
function renderStop(kind, text) {
  const box = $("stop");
  box.hidden = !text;
  box.className = `banner ${kind}`;
  box.textContent = text ? `This run ${text}` : "";
}

function waitingNotices() {
  const waiting = state.overview ? state.overview.waiting || [] : [];
  return waiting.map((p) => `still waiting for ${p}: no run there yet`);
}

// no run yet: every path given is waited for; every panel says so
function renderWaiting(paths) {
  const why = `waiting for ${paths.join(", ")} to be created: the page shows the run as soon ` +
    "as it writes its config (nothing to show yet)";
  $("run-state").textContent = "waiting";
  $("run-state").className = "badge waiting";
  renderStop("waiting", null);
  $("stop").hidden = false;
  $("stop").textContent = `Waiting for ${paths.join(", ")}: no run there yet.`;
  $("spend").replaceChildren(el("p", "nothing spent yet: no run", "placeholder short"));
  for (const id of ["best-plot", "honesty-scatter", "honesty-tau"]) showEmpty(id, why);
  $("evals-empty").hidden = false;
  $("evals-empty").textContent = why;
  $("best").textContent = why;
}

// a plot with nothing to draw: its placeholder says why instead of bare axes
function showEmpty(id, why) {
  const plot = $(id), note = $(`${id}-empty`);
  if (!why) {
    note.hidden = true;
    plot.hidden = false;
    return false;
  }
  if (!plot.hidden) {
    Plotly.purge(plot);
    plot.hidden = true;
  }
  delete state.drawn[id];
  note.textContent = why;
  note.hidden = false;
  return true;
}

// -- robust axes -----------------------------------------------------------------------------
function quantile(sorted, p) {
  const i = p * (sorted.length - 1), j = Math.floor(i);
  return sorted[j] + (sorted[Math.min(j + 1, sorted.length - 1)] - sorted[j]) * (i - j);
}

// an axis range that outliers (a perplexity of 15,000 among 100s) cannot squash: the values
// within 6 robust standard deviations of the median (1.4826 median absolute deviations: no
// value of a normal sample is left out, a quarter of wild values changes nothing), padded;
// what lies beyond, the page draws on the edge and says so
function robustRange(values) {
  const v = values.filter((x) => x !== null && isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  let lo = v[0], hi = v[v.length - 1];
  const med = quantile(v, 0.5);
  const sigma = 1.4826 * quantile(v.map((x) => Math.abs(x - med)).sort((a, b) => a - b), 0.5);
  if (v.length >= 3 && sigma > 0) {
    lo = v.find((x) => x >= med - 6 * sigma);
    hi = v.filter((x) => x <= med + 6 * sigma).pop();
  }
  const pad = (hi - lo) * 0.06 || Math.abs(hi) * 0.01 || 1;
  return {range: [lo - pad, hi + pad], lo, hi};
}

function clip(x, range) { return Math.min(range[1], Math.max(range[0], x)); }

function renderNotices(notices) {
  const box = $("notices");
  box.hidden = !notices.length;
  box.replaceChildren(...notices.map((n) => el("div", n)));
}

function renderScreening(screen) {
  const box = $("screening");
  box.hidden = !screen;
  if (!screen) return;
  let text = `The surrogate is screening candidate cells: ${fmtCount(screen.done)} of ` +
    `${fmtCount(screen.total)}`;
  if (screen.cells_per_s) {
    text += ` (${screen.cells_per_s} cells/s, about ${fmtDuration(screen.left_s)} left)`;
  }
  $("screening-text").textContent = text;
  $("screening-bar").value = screen.total ? screen.done / screen.total : 0;
}

// -- best so far -----------------------------------------------------------------------------
function xAxisKind() { return document.querySelector("input[name=xaxis]:checked").value; }

function unchanged(plot, signature) {  // Plotly redraws in full: skip what has not changed
  if (state.drawn[plot] === signature) return true;
  state.drawn[plot] = signature;
  return false;
}

function valueAt(xs, ys, x) {  // a step curve's value at x (its first value before its start)
  let i = 0;
  while (i + 1 < xs.length && xs[i + 1] <= x) i += 1;
  return ys.length ? ys[i] : null;
}

function renderBestPlot() {
  const ov = state.overview;
  if (!ov || !ov.runs.length) return;
  const sig = [ov.version, state.runId, state.epoch, state.rows.length, xAxisKind(),
    $("logx").checked].join();
  if (unchanged("best-plot", sig)) return;
  const hasPoints = ov.series.some((s) => s.y.some((y) => y !== null)) || state.rows.length;
  const why = state.summary && state.summary.empty.evaluations;
  if (!hasPoints && showEmpty("best-plot", why || "no ground-truth result yet")) return;
  showEmpty("best-plot", null);
  const byTime = xAxisKind() === "time";
  const axes = ov.axes.length ? ov.axes : [{label: "objective", runs: []}];
  const traces = [];
  // per axis, the y range: from the lowest value to the highest from the tenth evaluation on
  // (one dreadful first cell must not flatten every curve; earlier values run off the top)
  const lows = axes.map(() => []), settled = axes.map(() => []);
  const yref = (k) => (k ? `y${k + 1}` : "y");
  ov.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const xs = byTime ? s.t : s.x;
    const yaxis = yref(s.axis);
    if (s.kind === "run") {
      traces.push({x: xs, y: s.y, name: s.label, mode: "lines", line: {shape: "hv", color},
        yaxis, hovertemplate: "%{y:.4f}<extra>" + s.label + "</extra>"});
      lows[s.axis].push(...s.y);
      settled[s.axis].push(valueAt(s.x, s.y, 10));
    } else {
      const lo = byTime ? s.tlo : s.lo, hi = byTime ? s.thi : s.hi, med = byTime ? s.ty : s.y;
      traces.push({x: xs, y: lo, mode: "lines", line: {width: 0, shape: "hv", color}, yaxis,
        showlegend: false, hoverinfo: "skip", legendgroup: s.label});
      traces.push({x: xs, y: hi, mode: "lines", line: {width: 0, shape: "hv", color}, yaxis,
        fill: "tonexty", fillcolor: color + "33", showlegend: false, hoverinfo: "skip",
        legendgroup: s.label});
      traces.push({x: xs, y: med, name: `${s.label} (median of ${s.runs.length}, quartiles)`,
        mode: "lines", line: {shape: "hv", color}, legendgroup: s.label, yaxis,
        hovertemplate: "%{y:.4f}<extra>" + s.label + "</extra>"});
      lows[s.axis].push(...s.lo);
      settled[s.axis].push(valueAt(s.x, s.hi, 10));
    }
  });
  const own = Math.max(0, axes.findIndex((a) => a.runs.includes(state.runId)));
  let pts = [];
  if (state.rows.length && state.summary) {  // the selected run's latest answers, faint
    const recent = state.rows.slice(-MAX_POINTS);
    pts = recent.filter((r) => r.o !== null);
    const drawn = ov.series.filter((s) => s.y.length).length;
    if (drawn <= 1 && pts.length >= 4) {  // one run: all but the outliers of its answers too
      settled[own].push(robustRange(pts.map((r) => r.o)).hi);
    }
  }
  const finite = (v) => v !== null && v !== undefined && isFinite(v);
  const n = axes.length, gap = n > 1 ? 0.06 : 0;
  const layout = {
    margin: {l: 70, r: 10, t: 10, b: 45}, uirevision: xAxisKind(),
    xaxis: {title: {text: byTime ? "wall time (s)" : "ground-truth queries"}, anchor: yref(n - 1),
      type: $("logx").checked ? "log" : "linear", dtick: $("logx").checked ? "D2" : undefined},
    legend: {orientation: "h", y: n > 1 ? -0.12 : -0.2}, hovermode: "closest",
  };
  const ranges = axes.map((a, k) => {
    const at = n - 1 - k;  // the first axis on top, the x axis under the last
    const axis = {title: {text: `${n > 1 ? a.label : "objective"}<br>(lower is better)`},
      zeroline: false, anchor: "x",
      domain: [at / n + (at ? gap / 2 : 0), (at + 1) / n - (at < n - 1 ? gap / 2 : 0)]};
    if (lows[k].some(finite) && settled[k].some(finite)) {
      const lo = Math.min(...lows[k].filter(finite)), hi = Math.max(...settled[k].filter(finite));
      const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.01 || 1;
      axis.range = [lo - pad, hi + pad];
    }
    layout[k ? `yaxis${k + 1}` : "yaxis"] = axis;
    return axis.range;
  });
  const notes = [];
  if (n > 1) {
    const labels = axes.map((a) => a.label).join("; ");
    notes.push(`These runs measure ${n} different objectives (${labels}): their values cannot ` +
      "be compared, so each has its own axis.");
  }
  if (pts.length) {
    const range = ranges[own] || robustRange(pts.map((r) => r.o)).range;
    const over = pts.filter((r) => r.o > range[1]);
    const which = state.rows.length > MAX_POINTS ?
      `the last ${fmtCount(MAX_POINTS)} evaluations` : "each evaluation";
    traces.push({x: pts.map((r) => (byTime ? r.t : r.i)), y: pts.map((r) => clip(r.o, range)),
      type: "scatter", mode: "markers", name: `${state.summary.name}: ${which}`, yaxis: yref(own),
      marker: {size: pts.map((r) => (r.o > range[1] ? 7 : 4)),
        symbol: pts.map((r) => (r.o > range[1] ? "triangle-up" : "circle")),
        color: "rgba(75,85,99,0.35)"}, hoverinfo: "skip"});
    if (over.length) {
      notes.push(`${fmtCount(over.length)} of these evaluations lie above the axis (up to ` +
        `${fmtLarge(Math.max(...over.map((r) => r.o)))}): drawn on its top edge as triangles.`);
    }
  }
  const note = $("best-note");
  note.hidden = !notes.length;
  note.textContent = notes.join(" ");
  $("best-plot").style.height = `${340 + 200 * (n - 1)}px`;
  Plotly.react($("best-plot"), traces, layout, PLOT_CONFIG);
}

// -- spend -----------------------------------------------------------------------------------
function stat(title, value, detail, items) {
  const box = el("div", null, "stat");
  box.append(el("span", title, "muted small"), el("b", value));
  if (detail) box.append(el("div", detail, "small"));
  if (items && items.length) {
    const ul = el("ul", null, "small");
    ul.append(...items.map((t) => el("li", t)));
    box.append(ul);
  }
  return box;
}

function renderSpend(sp) {
  const statuses = Object.entries(sp.statuses).map(([k, v]) => `${k} ${v}`).join(", ");
  const now = Date.now() / 1000;
  const flight = sp.in_flight.map((c) => `${c.key.slice(0, 60)} (${c.phase}, round ${c.round}` +
    `, for ${fmtDuration(now - c.seen_at)}+)`);
  const where = `${sp.backend}${sp.address ? " at " + sp.address : ""}, ` +
    `${sp.workers} worker${sp.workers === 1 ? "" : "s"}`;
  const budget = [];
  if (sp.budget_evaluations !== null && sp.budget_evaluations !== undefined) {
    budget.push(`${fmtCount(sp.evaluations_left)} of ${fmtCount(sp.budget_evaluations)} queries`);
  }
  if (sp.budget_wall_s) budget.push(`${fmtDuration(sp.wall_left_s)} of ${fmtDuration(sp.budget_wall_s)}`);
  const saved = sp.saved_s === null ? "" : `; about ${fmtDuration(sp.saved_s)} of training saved`;
  const kept = sp.kept_from_truth === null ? "nothing trained yet, so nothing kept from training" :
    `${fmtCount(sp.kept_from_truth)} kept from the ground truth${saved}`;
  $("spend").replaceChildren(el("div", null, "stats"));
  $("spend").firstChild.append(
    stat("real trainings (ground-truth queries)", fmtCount(sp.evaluations),
      `${statuses || "none yet"}; ${fmtDuration(sp.ground_truth_s)} in all` +
      (sp.mean_cost_s === null ? "" : `, ${fmtDuration(sp.mean_cost_s)} each`)),
    stat("cells screened by the surrogate", fmtCount(sp.screened),
      `${fmtDuration(sp.surrogate_s)} of surrogate time; ${kept}`),
    stat("budget left", budget.join(", ") || "no limit",
      `${fmtDuration(sp.elapsed_s)} elapsed; ${sp.rounds} refits, ${sp.generations} generations`),
    stat("trainings in flight", fmtCount(sp.in_flight.length), `on ${where} (at the last checkpoint)`,
      flight),
    stat("failures and retries", `${sp.failures.length} / ${sp.retry_count}`,
      "failed or diverged evaluations / resubmissions",
      sp.failures.slice(-5).map((f) => `#${f.i} ${f.s}: ${f.m || "no message"}`).concat(
        sp.retries.slice(-5).map((r) => `retry ${r.attempt} of ${r.key.slice(0, 40)}: ${r.reason}`))),
  );
}

// -- surrogate honesty -----------------------------------------------------------------------
// Each refit predicts on a scale of its own (a dish's loss, a rank score), so predictions of
// different rounds cannot share an axis. Within its round, the cell predicted k-th best is
// drawn at the round's k-th best true objective: the objective's units, the diagonal where the
// rank was right, and a tie of predictions at the mean of the objectives it spans.
function rankMatched(rows) {
  const rounds = new Map();
  for (const r of rows) {
    if (!rounds.has(r.r)) rounds.set(r.r, []);
    rounds.get(r.r).push(r);
  }
  const out = new Map();
  for (const cells of rounds.values()) {
    const truth = cells.map((r) => r.o).sort((a, b) => a - b);
    const byPrediction = cells.slice().sort((a, b) => a.pr - b.pr || a.i - b.i);
    for (let k = 0; k < byPrediction.length;) {
      let end = k + 1;
      while (end < byPrediction.length && byPrediction[end].pr === byPrediction[k].pr) end += 1;
      const y = truth.slice(k, end).reduce((a, b) => a + b, 0) / (end - k);
      for (let j = k; j < end; j += 1) {
        out.set(byPrediction[j].i, {y, rank: k + 1, n: cells.length});
      }
      k = end;
    }
  }
  return out;
}

function renderHonesty() {
  const s = state.summary;
  const sel = $("round-select");
  const rounds = [...new Set(state.rows.filter((r) => r.pr !== null).map((r) => r.r))];
  const keep = sel.value;
  if (sel.options.length - 2 !== rounds.length) {
    sel.replaceChildren(el("option", `latest ${fmtCount(MAX_POINTS)} cells`), el("option", "all"));
    sel.options[0].value = "";
    sel.options[1].value = "all";
    for (const r of rounds) {
      const o = el("option", String(r));
      o.value = String(r);
      sel.append(o);
    }
    sel.value = keep;
  }
  $("min-tau-cells").textContent = String(s.min_tau_cells);
  const predicted = state.rows.filter((r) => r.pr !== null && r.o !== null);
  const sig = [state.runId, state.epoch, predicted.length, s.honesty.length, sel.value,
    s.empty.predictions, s.empty.tau];
  if (unchanged("honesty-scatter", sig.join())) return;
  renderScatter(predicted, sel.value);
  renderTau(s);
}

function renderScatter(predicted, which) {
  const s = state.summary;
  const note = $("honesty-note");
  note.hidden = true;
  if (showEmpty("honesty-scatter", s.empty.predictions)) return;
  const matched = rankMatched(predicted);
  let pts = predicted.filter((r) => which === "" || which === "all" || String(r.r) === which);
  if (which === "") pts = pts.slice(-MAX_POINTS);
  if (!pts.length) {
    showEmpty("honesty-scatter", `no cell of round ${which} has a finite result to check`);
    return;
  }
  const box = robustRange(pts.map((r) => r.o));
  const range = box.range;
  const out = (r) => r.o > box.hi || r.o < box.lo || matched.get(r.i).y > box.hi ||
    matched.get(r.i).y < box.lo;
  const clipped = pts.filter(out);
  const notes = [];
  if (clipped.length) {
    const far = clipped.map((r) => r.o).concat(clipped.map((r) => matched.get(r.i).y))
      .filter((x) => x > box.hi || x < box.lo);
    const worst = far.reduce((a, b) => (Math.abs(b - box.hi) > Math.abs(a - box.hi) ? b : a));
    notes.push(`${fmtCount(clipped.length)} of ${fmtCount(pts.length)} points lie beyond the ` +
      `axes (as far as ${fmtLarge(worst)}): drawn on their edge as triangles.`);
  }
  const diverged = state.rows.filter((r) => r.pr !== null && r.o === null).length;
  if (diverged) {
    notes.push(`${fmtCount(diverged)} predicted cells diverged or failed (inf): not drawn.`);
  }
  note.hidden = !notes.length;
  note.textContent = notes.join(" ");
  Plotly.react($("honesty-scatter"), [{
    x: range, y: range, mode: "lines", name: "ranked right", hoverinfo: "skip",
    line: {color: "#9ca3af", dash: "dot", width: 1}, showlegend: false,
  }, {
    x: pts.map((r) => clip(r.o, range)), y: pts.map((r) => clip(matched.get(r.i).y, range)),
    text: pts.map((r) => {
      const m = matched.get(r.i);
      const raw = Number(r.pr.toPrecision(4));
      return `#${r.i}, round ${r.r}: predicted ${m.rank} of ${m.n} (${raw})` +
        `<br>true ${fmtObjective(r.o)}`;
    }),
    type: "scatter", mode: "markers",
    marker: {size: pts.map((r) => (out(r) ? 9 : 6)),
      symbol: pts.map((r) => (out(r) ? "triangle-up" : "circle")),
      color: pts.map((r) => r.r), colorscale: "Viridis", showscale: true,
      cmin: Math.min(...pts.map((r) => r.r)), cmax: Math.max(1 + Math.min(...pts.map((r) => r.r)),
        ...pts.map((r) => r.r)),
      colorbar: {title: {text: "round", side: "right"}, thickness: 10}},
    hovertemplate: "%{text}<extra></extra>", showlegend: false,
  }], {margin: {l: 60, r: 10, t: 10, b: 40},
    xaxis: {title: {text: "true objective (lower is better)"}, range},
    yaxis: {title: {text: "predicted rank in its round,<br>as the objective at that rank"}, range},
    uirevision: "h"}, PLOT_CONFIG);
}

function renderTau(s) {
  if (showEmpty("honesty-tau", s.empty.tau)) return;
  const h = s.honesty.filter((r) => r.tau !== null || r.pooled_tau !== null || r.fit_tau !== null);
  const rounds = h.filter((r) => r.tau !== null);
  const dots = rounds.slice(-MAX_ROUNDS);  // the lines show every round, the dots the latest
  let name = rounds.length > dots.length ? `tau of the last ${MAX_ROUNDS} rounds` : "round's tau";
  const annotations = rounds.length ? [] : [{xref: "paper", yref: "paper", x: 0.5, y: 0.02,
    showarrow: false, font: {size: 11, color: "#6b7480"},
    text: `no round has ${s.min_tau_cells} or more cells yet: only the pooled tau`}];
  Plotly.react($("honesty-tau"), [
    {x: dots.map((r) => r.round), y: dots.map((r) => r.tau), mode: "markers", name,
      marker: {size: dots.map((r) => 4 + Math.min(10, r.n))},
      text: dots.map((r) => `${r.n} cells`),
      hovertemplate: "round %{x}: %{y:.3f} (%{text})<extra></extra>"},
    {x: h.map((r) => r.round), y: h.map((r) => r.pooled_tau), mode: "lines",
      name: "pooled so far", connectgaps: true},
    {x: h.map((r) => r.round), y: h.map((r) => r.fit_tau), mode: "lines",
      name: "refit, in sample", line: {dash: "dot"}, connectgaps: true},
  ], {margin: {l: 60, r: 10, t: 10, b: 40}, yaxis: {title: {text: "Kendall tau"}, range: [-1.05, 1.05]},
    xaxis: {title: {text: "round"}}, legend: {orientation: "h", y: -0.3}, uirevision: "t",
    annotations}, PLOT_CONFIG);
}

// -- evaluations table -----------------------------------------------------------------------
function refreshFilters() {
  for (const [id, col] of [["f-status", "s"], ["f-phase", "p"]]) {
    const sel = $(id);
    const values = [...new Set(state.rows.map((r) => r[col]))].sort();
    if (sel.options.length - 1 === values.length) continue;
    const keep = sel.value;
    sel.replaceChildren(el("option", "all"));
    sel.firstChild.value = "";
    for (const v of values) sel.append(el("option", v));
    sel.value = values.includes(keep) ? keep : "";
  }
}

function computeView() {
  const fs = $("f-status").value, fp = $("f-phase").value;
  const text = $("f-text").value.trim().toLowerCase();
  const {col, dir} = state.sort;
  const view = state.rows.filter((r) => (!fs || r.s === fs) && (!fp || r.p === fp) &&
    (!text || r.k.toLowerCase().includes(text)));
  const missing = dir > 0 ? Infinity : -Infinity;  // an unknown value sorts last either way
  view.sort((a, b) => {
    let x = a[col], y = b[col];
    if (typeof x === "string" || typeof y === "string") {
      return dir * String(x).localeCompare(String(y)) || a.i - b.i;
    }
    x = x === null ? missing : x;
    y = y === null ? missing : y;
    return dir * (x - y) || a.i - b.i;
  });
  state.view = view;
  state.dirty = false;
}

function renderTable() {
  refreshFilters();
  if (state.dirty) computeView();
  const pages = Math.max(1, Math.ceil(state.view.length / PAGE_ROWS));
  state.page = Math.min(state.page, pages - 1);
  const shown = state.view.slice(state.page * PAGE_ROWS, (state.page + 1) * PAGE_ROWS);
  $("eval-count").textContent = `${fmtCount(state.view.length)} of ${fmtCount(state.rows.length)}`;
  $("page").textContent = `page ${state.page + 1} of ${pages}`;
  for (const th of document.querySelectorAll("#evals th")) {
    th.className = th.dataset.col === state.sort.col ? (state.sort.dir > 0 ? "asc" : "desc") : "";
  }
  const empty = $("evals-empty");
  empty.hidden = state.rows.length > 0;
  empty.textContent = state.rows.length ? "" : state.summary.empty.evaluations;
  const body = document.querySelector("#evals tbody");
  body.replaceChildren(...shown.map((r) => {
    const tr = el("tr", null, r.s);
    tr.dataset.index = r.i;
    if (r.i === state.selected) tr.classList.add("selected");
    const cells = [
      [String(r.i), "num"], [fmtObjective(r.o), "num"], [r.s], [r.p], [String(r.r), "num"],
      [r.pr === null ? "" : Number(r.pr.toPrecision(4)).toString(), "num"],
      [fmtDuration(r.c), "num"], [fmtDuration(r.t), "num"], [r.k, "geno"],
    ];
    for (const [text, cls] of cells) tr.append(el("td", text, cls));
    tr.lastChild.title = r.k;
    if (r.m) tr.title = r.m;
    return tr;
  }));
}

async function showCell(index) {
  state.selected = index;
  for (const tr of document.querySelectorAll("#evals tbody tr")) {
    tr.classList.toggle("selected", Number(tr.dataset.index) === index);
  }
  const id = state.runId;
  $("cell-title").textContent = `evaluation ${index}`;
  const img = $("cell-img");
  img.hidden = false;
  img.alt = `drawing of the cell of evaluation ${index}`;
  img.src = `/api/run/${id}/cell/${index}.png?epoch=${state.epoch}`;
  const cell = await getJSON(`/api/run/${id}/cell/${index}`);
  const r = cell.row;
  $("cell-genotype").textContent = `objective ${fmtObjective(r.o)} (${r.s}), ${r.p} round ${r.r}` +
    (r.pr === null ? "" : `, predicted ${r.pr.toPrecision(4)}`) + (r.m ? `\n${r.m}` : "") +
    `\n\nkey: ${r.k}\n\ngenotype as the run stored it (node names of its own):\n` +
    JSON.stringify(cell.genotype, null, 1);
}

// -- best cell and export --------------------------------------------------------------------
function renderBest(best) {
  const box = $("best");
  const img = $("best-img");
  if (!best) {
    const n = state.rows.length;
    box.className = "placeholder short";
    box.textContent = n ? `no finite result yet: all ${fmtCount(n)} evaluations diverged or failed` :
      state.summary.empty.evaluations;
    img.hidden = true;
    state.bestIndex = null;
    updateExportLink();
    return;
  }
  box.className = "";
  box.replaceChildren(
    el("div", `objective ${fmtObjective(best.o)}, evaluation ${best.i} (${best.p}, round ${best.r})`),
    el("pre", best.k, "small"));
  if (state.bestIndex !== best.i) {
    state.bestIndex = best.i;
    img.hidden = false;
    img.alt = `drawing of the best cell, evaluation ${best.i}`;
    img.src = `/api/run/${state.runId}/cell/${best.i}.png?epoch=${state.epoch}`;
  }
  updateExportLink();
}

function updateExportLink() {
  const top = Math.max(1, Math.min(1000, Number($("export-top").value) || 5));
  $("export").href = `/api/run/${state.runId}/export.zip?top=${top}`;
}

// -- wiring ----------------------------------------------------------------------------------
function wire() {
  $("run-select").addEventListener("change", (e) => selectRun(Number(e.target.value)));
  for (const input of document.querySelectorAll("input[name=xaxis]")) {
    input.addEventListener("change", renderBestPlot);
  }
  $("logx").addEventListener("change", renderBestPlot);
  $("round-select").addEventListener("change", renderHonesty);
  for (const id of ["f-status", "f-phase", "f-text"]) {
    $(id).addEventListener("input", () => { state.dirty = true; state.page = 0; renderTable(); });
  }
  $("prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); renderTable(); });
  $("next").addEventListener("click", () => { state.page += 1; renderTable(); });
  for (const th of document.querySelectorAll("#evals th")) {
    th.addEventListener("click", () => {
      const col = th.dataset.col;
      state.sort = {col, dir: state.sort.col === col ? -state.sort.dir : 1};
      state.dirty = true;
      renderTable();
    });
  }
  document.querySelector("#evals tbody").addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (tr) showCell(Number(tr.dataset.index));
  });
  $("cell-img").addEventListener("error", () => {
    $("cell-img").hidden = true;
    $("cell-error").hidden = false;
    $("cell-error").textContent = "this cell could not be drawn";
  });
  $("cell-img").addEventListener("load", () => { $("cell-error").hidden = true; });
  $("export-top").addEventListener("input", updateExportLink);
}

wire();
tick();
