"use strict";
// The explorer page. Served, it asks the API (/api/models, /api/run); exported, it reads the inlined
// window.ATTNLAB_EXPORT = {models, runs}. Either way one panel per checkpoint shows the model's output and a
// heatmap of one attention kind, layer and head (or every head of the layer as a grid).

const CELL = 24; // px per query row of a heatmap
const HEAD_COLUMNS = 4; // heads per row of the "all heads" grid
const MAX_TICKS = 30; // labels per axis; longer axes label every n-th token (hovering names every cell)
const PLACEHOLDERS = {
  translation: "a sentence to translate, e.g. he's calm .",
  bert_pretraining: "a sentence, with [MASK] for words to guess",
  bert_classifier: "a sentence to classify",
  nadaraya_watson: "numbers, e.g. 0.5 1 2.5",
};
const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attributes);
  node.append(...children);
  return node;
}

// Plotly reads labels as pseudo-HTML: tokens such as <eos> must be escaped to show.
const escapeHtml = (text) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const percent = (p) => `${(100 * p).toFixed(1)}%`;
const range = (n) => Array.from({ length: n }, (_, i) => i);

// Numeric axes labelled with the tokens: categorical axes would merge repeated tokens into one row.
function ticks(labels) {
  const step = Math.ceil(labels.length / MAX_TICKS);
  const at = range(labels.length).filter((i) => i % step === 0);
  return { tickvals: at, ticktext: at.map((i) => labels[i]) };
}

function showMessage(text) {
  $("message").replaceChildren(text ? element("div", { className: "error", textContent: text }) : "");
}

function showModels(entries) {
  const families = entries.filter((e) => e.describe).map((e) => e.describe.family);
  $("text").placeholder = families.map((f) => PLACEHOLDERS[f]).filter(Boolean)[0] || "";
  $("second").hidden = !families.some((f) => f.startsWith("bert"));
  $("panels").replaceChildren(...entries.map((entry, i) => {
    const d = entry.describe;
    const title = d ? `${d.experiment || d.model} · ${d.family.replaceAll("_", " ")}` : "checkpoint not shown";
    return element("section", { className: "panel", id: `panel-${i}` },
      element("h2", { textContent: title }),
      element("div", { className: "path", textContent: entry.path }),
      element("div", { className: "body" }, entry.error ? element("div", { className: "error", textContent: entry.error }) : ""));
  }));
}

function outputView(output) {
  const rows = [];
  if ("translation" in output) rows.push(element("div", { textContent: `→ ${output.translation}` }));
  if ("prediction" in output) rows.push(element("div", { textContent: output.prediction }));
  if ("label" in output) {
    rows.push(element("div", { textContent: `label: ${output.label}` }));
    const sorted = Object.entries(output.probs).sort((a, b) => b[1] - a[1]);
    rows.push(element("table", {}, ...sorted.map(([name, p]) =>
      element("tr", {}, element("td", { textContent: name }), element("td", { textContent: percent(p) })))));
  }
  (output.fill_mask || []).forEach((candidates, i) => {
    rows.push(element("div", { textContent: `[MASK] ${i + 1}: ` +
      candidates.map((c) => `${c.token} (${percent(c.prob)})`).join(", ") }));
  });
  if (output.next_sentence) {
    const { is_next, prob } = output.next_sentence;
    rows.push(element("div", { textContent: `second sentence follows the first: ${is_next ? "yes" : "no"} ` +
      `(P = ${percent(prob)})` }));
  }
  return element("div", { className: "output" }, ...rows);
}

function select(className, label, options, value) {
  const node = element("select", { className },
    ...options.map(([v, text]) => element("option", { value: String(v), textContent: text })));
  node.value = String(value);
  return element("label", {}, label, node);
}

function heatmaps(map, layer, head) {
  const heads = head === "all" ? range(map.weights[layer].length) : [Number(head)];
  const queries = map.query_tokens.map(escapeHtml);
  const keys = map.key_tokens.map(escapeHtml);
  const hover = queries.map((q) => keys.map((k) => `query: ${q}<br>key: ${k}`));
  const columns = Math.min(heads.length, HEAD_COLUMNS);
  const rows = Math.ceil(heads.length / columns);
  const layout = {
    grid: { rows, columns, pattern: "independent", xgap: 0.12, ygap: 0.25 },
    coloraxis: { colorscale: "Blues", reversescale: true, cmin: 0,
      cmax: Math.max(...heads.flatMap((h) => map.weights[layer][h].flat())) },
    margin: { t: 30, l: 10, r: 10, b: 10 },
    height: rows * (map.query_tokens.length * CELL + 110) + 40,
    annotations: [],
    font: { size: 12 },
  };
  const traces = heads.map((h, j) => {
    const n = j ? String(j + 1) : "";
    layout[`xaxis${n}`] = { ...ticks(keys), tickangle: -45, automargin: true, showgrid: false };
    layout[`yaxis${n}`] = { ...ticks(queries), autorange: "reversed", automargin: true, showgrid: false,
      showticklabels: j % columns === 0 }; // the queries once per row
    layout.annotations.push({ text: `head ${h + 1}`, showarrow: false, xref: `x${n} domain`, yref: `y${n} domain`,
      x: 0.5, y: 1, yanchor: "bottom" });
    return { type: "heatmap", z: map.weights[layer][h], x: range(keys.length), y: range(queries.length),
      text: hover, hovertemplate: "%{text}<br>weight: %{z:.4f}<extra></extra>", coloraxis: "coloraxis",
      xaxis: `x${n}`, yaxis: `y${n}` };
  });
  return { traces, layout };
}

function mapView(maps) {
  const kinds = Object.keys(maps);
  const view = element("div", { className: "maps" });
  const controls = element("div", { className: "controls" });
  const plot = element("div", { className: "plot" });
  let state = { kind: kinds.includes("cross") ? "cross" : kinds[0], layer: 0, head: "all" }; // alignment first
  function draw() {
    const map = maps[state.kind];
    const layers = map.weights.length;
    const heads = map.weights[0].length;
    state.layer = Math.min(state.layer, layers - 1);
    if (state.head !== "all") state.head = Math.min(Number(state.head), heads - 1);
    controls.replaceChildren(
      select("kind", "map", kinds.map((k) => [k, k.replaceAll("_", " ")]), state.kind),
      select("layer", "layer", range(layers).map((l) => [l, `${l + 1} of ${layers}`]), state.layer),
      select("head", "head", [["all", "all heads"], ...range(heads).map((h) => [h, `${h + 1} of ${heads}`])], state.head));
    controls.querySelectorAll("select").forEach((node) => node.addEventListener("change", () => {
      state = { ...state, [node.className]: node.className === "layer" ? Number(node.value) : node.value };
      draw();
    }));
    const { traces, layout } = heatmaps(map, state.layer, state.head);
    Plotly.react(plot, traces, layout, { displaylogo: false, responsive: true });
    plot.dataset.drawn = String(Number(plot.dataset.drawn || 0) + 1);
  }
  view.append(controls, plot);
  return { view, draw };
}

function showResults(response) {
  response.results.forEach((result, i) => {
    const body = document.querySelector(`#panel-${i} .body`);
    if (result.error) {
      body.replaceChildren(element("div", { className: "error", textContent: result.error }));
      return;
    }
    const { view, draw } = mapView(result.maps);
    body.replaceChildren(outputView(result.output),
      ...result.notices.map((n) => element("div", { className: "notice", textContent: n })), view);
    draw();
  });
}

async function ask(event) {
  event.preventDefault();
  showMessage("");
  $("run").disabled = true;
  try {
    const response = await fetch("api/run", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: $("text").value, text_b: $("text_b").value || null }) });
    const answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (answer.error) showMessage(answer.error);
    else showResults(answer);
  } catch (error) {
    showMessage(`the server did not answer: ${error}`);
  } finally {
    $("run").disabled = false;
  }
}

async function start() {
  const data = window.ATTNLAB_EXPORT;
  if (!data) {
    $("ask").addEventListener("submit", ask);
    showModels(await (await fetch("api/models")).json());
    return;
  }
  $("ask").hidden = true;
  $("inputs").hidden = false;
  showModels(data.models);
  const choice = $("input");
  choice.append(...data.runs.map((run, i) =>
    element("option", { value: String(i), textContent: run.text_b ? `${run.text} | ${run.text_b}` : run.text })));
  choice.addEventListener("change", () => showResults(data.runs[Number(choice.value)]));
  showResults(data.runs[0]);
}

start();
