"use strict";
const $ = (id) => document.getElementById(id);
let files = [];

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function form() {
  const fd = new FormData();
  for (const f of files) fd.append("file", f, f.name);
  return fd;
}

async function call(path) {
  const headers = {};
  if ($("key").value) headers["X-API-Key"] = $("key").value;
  const res = await fetch(path, { method: "POST", body: form(), headers });
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { const j = await res.json(); if (j.error) msg = j.error.message; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return res;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function showSvg(container, svgText, alt) {
  const url = URL.createObjectURL(new Blob([svgText], { type: "image/svg+xml" }));
  const img = document.createElement("img");
  img.src = url;
  img.alt = alt;
  container.replaceChildren(img);
}

async function analyse() {
  if (!files.length) return;
  setStatus("Reading " + files.map((f) => f.name).join(", ") + " ...");
  $("explain-card").hidden = true;
  try {
    const [pred, plot] = await Promise.all([call("/v1/predict"), call("/v1/plot?format=svg")]);
    const p = await pred.json();
    showSvg($("ecg"), await plot.text(), "ECG " + p.record);
    const body = $("findings").querySelector("tbody");
    body.replaceChildren();
    for (const f of p.top_findings) {
      const tr = document.createElement("tr");
      cell(tr, f.label, f.positive ? "pos" : "");
      cell(tr, f.probability.toFixed(3));
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = Math.round(120 * f.probability) + "px";
      cell(tr, "").appendChild(bar);
      body.appendChild(tr);
    }
    $("flags").textContent = p.quality_flags.length ? "Quality warnings: " + p.quality_flags.join(", ") : "";
    $("prov").querySelector("small").textContent =
      "model " + p.provenance.model + "; " + p.provenance.preprocessing + "; " + p.n_windows + " window(s), " +
      p.duration_s + " s";
    $("findings-card").hidden = false;
    $("explain-btn").disabled = false;
    $("explain-btn").dataset.label = p.top_findings[0].label;
    setStatus(p.record + ": " + p.top_findings[0].label + " " + p.top_findings[0].probability.toFixed(2));
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function explainTop() {
  const label = $("explain-btn").dataset.label;
  setStatus("Explaining " + label + " ...");
  try {
    const q = "/v1/explain?label=" + encodeURIComponent(label) + "&method=" + encodeURIComponent($("method").value);
    const e = await (await call(q)).json();
    showSvg($("explain-img"), e.svg, e.method + " for " + e.label);
    const body = $("importance").querySelector("tbody");
    body.replaceChildren();
    const pairs = Object.entries(e.lead_importance).sort((a, b) => b[1] - a[1]);
    for (const [lead, share] of pairs) {
      const tr = document.createElement("tr");
      cell(tr, lead);
      cell(tr, (100 * share).toFixed(1) + " %");
      body.appendChild(tr);
    }
    $("explain-card").hidden = false;
    setStatus(e.method + " for " + e.label + " (score " + e.score.toFixed(2) + ")");
  } catch (err) {
    setStatus(err.message, true);
  }
}

$("file").addEventListener("change", (ev) => { files = Array.from(ev.target.files); analyse(); });
$("explain-btn").addEventListener("click", explainTop);
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  files = Array.from(ev.dataTransfer.files);
  analyse();
});
