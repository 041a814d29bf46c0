// The detection page's video part: one clip sent to POST /scan, its verdict in words, the
// timeline (P(fake) of each sampled frame over time, the clip threshold, frames with no face
// as grey ticks) as inline SVG, the most suspicious frames under it, and one frame at a time
// in the detail area, explained on request (POST /explain?framed=true). Uses app.js's
// helpers (el, fmt, text, verdictText, post, postRetrying, requestExplanation, ...).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
let scanned = null;  // the clip on show: {file, result (POST /scan's body), explained: Map}

const VIDEO_REASONS = {
  in_band: "the clip's P(fake) is too close to its threshold to call",
  out_of_domain: "most of its frames are unlike the model's training data",
  no_faces: "no sampled frame had a face the model could score",
};
const VIDEO_ERRORS = {
  zero_bytes: "the file is empty",
  too_large: "the video is larger than the service accepts",
  not_video: "not a video file (MP4, MOV, M4V, WebM, MKV or AVI expected)",
  no_video_stream: "the file has no video track",
  undecodable: "the video could not be decoded",
  too_many_pixels: "its frames have more pixels than the service accepts",
  too_long: "the video is longer than the service accepts",
  no_frames: "no frame of it could be read",
};

// An SVG element: attributes set as attributes, strings become text nodes.
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// The largest video the page sends: GET /model's video.max_video_mb within the request limit.
function maxVideoBytes() {
  const request = (card && card.limits && card.limits.max_request_mb) || 100;
  const video = card && card.video && card.video.max_video_mb;
  return Math.min(request, video || request) * MB;
}

// What went wrong with a scan, in words (415 names its reason; 413 too large; 503 busy).
function scanErrorText(reply, body) {
  const d = body && body.detail;
  if (reply.status === 415 && d && VIDEO_ERRORS[d.reason]) {
    return VIDEO_ERRORS[d.reason] + (d.detail ? ` (${d.detail})` : "");
  }
  if (reply.status === 413) return `the video is larger than the service accepts: ${detailOf(body)}`;
  if (reply.status === 503) return "the service is busy scanning another video; try again shortly";
  return detailOf(body);
}

async function scanVideo(file) {
  $("error").textContent = "";
  $("results").hidden = true;
  $("detail").hidden = true;
  $("video").hidden = true;
  scanned = null;
  if (file.size > maxVideoBytes()) {
    $("error").textContent = `Could not scan ${file.name}: the video is larger than the ` +
      `service accepts (${fmt(maxVideoBytes() / MB, 0)} MB).`;
    $("status").textContent = "";
    return;
  }
  const progress = $("progress");
  progress.hidden = false;
  progress.removeAttribute("value");  // indeterminate: one request, no steps to count
  let answer;
  try {
    answer = await postRetrying("/scan", "file", [file], {
      onAttempt: () => { $("status").textContent = `Scanning ${file.name}…`; },
      onWait: (wait) => { $("status").textContent = "The service is busy scanning another " +
        `video; trying again in ${wait} s…`; } });
  } catch (err) {
    answer = null;
    $("error").textContent = `Could not reach the service: ${err}`;
  } finally {
    progress.hidden = true;
  }
  if (answer && !answer.reply.ok) {
    $("error").textContent = `Could not scan ${file.name}: ` +
      scanErrorText(answer.reply, answer.body);
  }
  if (!answer || !answer.reply.ok) {
    $("status").textContent = `Not scanned: ${file.name}.`;
    return;
  }
  scanned = { file, result: answer.body, explained: new Map() };
  renderVideo();
  const r = scanned.result;
  $("status").textContent = `Done: ${r.frames_scored} of ${r.frames_sampled} sampled frames ` +
    "scored.";
}

function renderVideo() {
  const r = scanned.result;
  $("video-summary").replaceChildren(...summaryNodes(r).filter(Boolean));
  $("top-frames").replaceChildren(...topFrameNodes(r));
  $("video").hidden = false;
  // drawn at about the width it is shown at, so its text reads the same on a phone
  const width = Math.max(320, Math.min(760, $("timeline").clientWidth || 640));
  $("timeline").replaceChildren(timeline(r, width));
}

function summaryNodes(r) {
  const faces = (r.faces_found === null || r.faces_found === undefined)
    ? "whole frames scored (this model does not look for faces)"
    : `a face in ${r.faces_found} of them`;
  const share = r.domain_out_share;
  const trained = text(r.trained_on, "unknown data");
  const domain = (share === null || share === undefined)
    ? el("p", { className: "domain" }, `trained on ${trained}; no domain check for this model`)
    : el("p", { className: `domain ${share > 0.5 ? "out" : "in"}` }, `${fmt(100 * share, 0)}% ` +
      `of the scored frames are outside its training data (trained on ${trained})`);
  return [
    el("h2", {}, text(r.file, scanned.file.name)),
    el("p", { className: `verdict ${r.verdict}` }, verdictText(r, r.threshold)),
    r.reason ? el("p", {}, VIDEO_REASONS[r.reason] || r.reason) : null,
    el("p", { className: "video-facts" }, `${r.frames_scored} of ${r.frames_sampled} sampled ` +
      `frames scored; ${faces}. The clip: ${fmt(r.duration, 1)} s, ${text(r.width, "?")}×` +
      `${text(r.height, "?")} pixels; scanned in ${fmt(r.seconds, 1)} s.`),
    domain,
    provenanceNode(r.provenance, "p"),
    r.warning ? el("p", { className: "unreliable" }, `Warning: ${r.warning}`) : null,
    el("p", { className: "note" }, `The clip's P(fake): ${text(r.rule, "–")}. File sha256 ` +
      `${text(r.sha256, "–")}.`),
  ];
}

// The plot's margins in viewBox units (about pixels: see renderVideo).
const PLOT = { height: 250, left: 48, right: 14, top: 34, bottom: 40 };

// A tick step giving at most about `ticks` ticks over `span` seconds.
function tickStep(span, ticks) {
  const steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600];
  return steps.find((s) => span / s <= ticks) || Math.ceil(span / ticks / 600) * 600;
}

// The timeline as an SVG: axes, the threshold (dashed), the scored frames joined in time
// order as focusable points, the frames with no face as grey ticks on the time axis.
function timeline(r, width) {
  const frames = r.frames || [];
  const end = Math.max(r.duration || 0, ...frames.map((f) => f.t), 1e-3);
  const w = width - PLOT.left - PLOT.right, h = PLOT.height - PLOT.top - PLOT.bottom;
  const x = (t) => PLOT.left + (t / end) * w;
  const y = (p) => PLOT.top + (1 - p) * h;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${PLOT.height}`, role: "group",
    "aria-label": "Timeline: P(fake) of each sampled frame over time" });
  chart.append(svg("rect", { class: "plot", x: PLOT.left, y: PLOT.top, width: w, height: h }));
  for (const p of [0, 0.5, 1]) {
    chart.append(svg("line", { class: "grid", x1: PLOT.left, x2: PLOT.left + w, y1: y(p),
      y2: y(p) }), svg("text", { class: "axis", x: PLOT.left - 6, y: y(p) + 4,
      "text-anchor": "end" }, String(p)));
  }
  const step = tickStep(end, Math.max(3, Math.floor(w / 70)));
  for (let t = 0; t <= end + 1e-9; t += step) {
    chart.append(svg("text", { class: "axis", x: x(t), y: PLOT.top + h + 18,
      "text-anchor": "middle" }, `${+t.toFixed(1)} s`));
  }
  chart.append(svg("text", { class: "axis", x: 4, y: PLOT.top - 14 }, "P(fake)"));
  const threshold = `clip threshold ${fmt(r.threshold)}`;  // the line, its key above the plot
  chart.append(svg("line", { class: "threshold", x1: PLOT.left, x2: PLOT.left + w,
    y1: y(r.threshold), y2: y(r.threshold) }, svg("title", {}, threshold)),
    svg("line", { class: "threshold-key", x1: PLOT.left + w - 175, x2: PLOT.left + w - 145,
      y1: PLOT.top - 19, y2: PLOT.top - 19 }),
    svg("text", { class: "threshold-label", x: PLOT.left + w, y: PLOT.top - 14,
      "text-anchor": "end" }, threshold));
  for (const f of frames.filter((f) => f.p_fake === null || f.p_fake === undefined)) {
    chart.append(svg("line", { class: "noface", x1: x(f.t), x2: x(f.t), y1: y(0) - 7,
      y2: y(0) + 7 }, svg("title", {}, `${fmt(f.t)} s: no face, not scored`)));
  }
  const scored = frames.map((f, index) => ({ ...f, index }))
    .filter((f) => f.p_fake !== null && f.p_fake !== undefined);
  if (scored.length > 1) {
    chart.append(svg("polyline", { class: "trace",
      points: scored.map((f) => `${x(f.t)},${y(f.p_fake)}`).join(" ") }));
  }
  const top = new Set((r.top || []).map((item) => item.index));
  for (const f of scored) chart.append(point(f, x(f.t), y(f.p_fake), top.has(f.index)));
  return chart;
}

// One scored frame: a dot (with a larger invisible target) that shows the frame on a click,
// or on Enter or Space when focused.
function point(f, cx, cy, isTop) {
  const label = `frame at ${fmt(f.t)} s, P(fake) ${fmt(f.p_fake, 3)}`;
  const g = svg("g", { class: isTop ? "point top" : "point", tabindex: "0", role: "button",
    "aria-label": label, "data-index": String(f.index) },
    svg("title", {}, label), svg("circle", { class: "hit", cx, cy, r: 14 }),
    svg("circle", { class: "dot", cx, cy, r: isTop ? 7 : 5 }));
  g.addEventListener("click", () => showFrame(f.index));
  g.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); showFrame(f.index); }
  });
  return g;
}

function topFrameNodes(r) {
  const top = r.top || [];
  if (!top.length) return [];
  return [el("h3", {}, "The most suspicious frames"), el("div", { className: "top-list" },
    ...top.map((item) => {
      const button = el("button", { type: "button", className: "top-frame" },
        el("img", { src: item.thumbnail, alt: `frame at ${fmt(item.t)} s` }),
        el("span", {}, `${fmt(item.t)} s · P(fake) ${fmt(item.p_fake, 3)}`));
      button.addEventListener("click", () => showFrame(item.index));
      return button;
    }))];
}

// A scored frame in the detail area: its crop (what the model saw), time and P(fake), and
// "Explain this frame".
function showFrame(index) {
  const r = scanned.result;
  const f = r.frames[index];
  const top = (r.top || []).find((item) => item.index === index);
  const crop = f.crop || (top && top.crop);
  document.querySelectorAll("#timeline .point").forEach((g) =>
    g.classList.toggle("selected", g.dataset.index === String(index)));
  const maps = el("div", { className: "frame-maps" });
  const button = el("button", { type: "button", textContent: "Explain this frame" });
  button.addEventListener("click", () => explainFrame(index, crop, button, maps));
  const detail = $("detail");
  detail.replaceChildren(
    el("h2", {}, `Frame at ${fmt(f.t)} s of ${text(r.file, scanned.file.name)}`),
    el("div", { className: "frame" },
      crop ? el("img", { className: "crop", src: crop,
        alt: `the frame at ${fmt(f.t)} s as the model saw it` }) : null,
      el("div", {},
        el("p", { className: "frame-time" }, `Time ${fmt(f.t)} s`),
        el("p", { className: "frame-score" }, `P(fake) ${fmt(f.p_fake, 3)} (clip threshold ` +
          `${fmt(r.threshold)})`),
        f.domain ? el("p", { className: `domain ${f.domain}` },
          domainText({ domain: f.domain, trained_on: r.trained_on })) : null,
        crop ? button : null)),
    maps);
  detail.hidden = false;
  if (scanned.explained.has(index)) showFrameExplanation(index, maps);
}

// A data: URL as a Blob (the page's policy lets it fetch only from this server).
function dataUrlBlob(url) {
  const [head, b64] = url.split(",", 2);
  const type = (/^data:([^;,]+)/.exec(head) || [])[1] || "application/octet-stream";
  return new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type });
}

async function explainFrame(index, crop, button, maps) {
  if (explaining) return;
  explaining = true;
  button.disabled = true;
  const clip = scanned;
  try {
    if (!clip.explained.has(index)) {
      const t = fmt(clip.result.frames[index].t);
      const file = new File([dataUrlBlob(crop)], `frame-${t}s.png`, { type: "image/png" });
      const x = await requestExplanation(maps, file, `the frame at ${t} s`,
                                         "/explain?framed=true");
      if (!x) return;
      clip.explained.set(index, x);
    }
    if (clip === scanned) showFrameExplanation(index, maps);
  } finally {
    explaining = false;
    button.disabled = false;
  }
}

function showFrameExplanation(index, maps) {
  const r = scanned.result;
  maps.replaceChildren(...explanationNodes(scanned.explained.get(index),
    `the frame at ${fmt(r.frames[index].t)} s`, `Clip sha256 ${text(r.sha256, "–")}.`));
}
