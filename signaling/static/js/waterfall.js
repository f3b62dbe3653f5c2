// A turn's latency as a small waterfall: each stage is a bar that starts
// where the previous one ended, all measured from the moment the person
// stopped speaking (the server's t0). The last bar is the browser's share —
// half the round trip, the jitter buffer and the playout path — so the total
// is when the reply was actually heard.

export function formatMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return "–";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

// [label, metrics field where the stage ends, css class]
const STAGES = [
  ["Waiting for silence", "end_of_turn_wait_ms", "wait"],
  ["Transcript", "transcript_ms", "stt"],
  ["First reply text", "first_token_ms", "llm"],
  ["First voice audio", "first_tts_byte_ms", "tts"],
  ["Audio leaves server", "first_audio_ms", "send"],
];

// A turn that failed before any reply has nothing worth drawing.
export function hasTimings(metrics) {
  return typeof metrics.first_token_ms === "number" || typeof metrics.first_audio_ms === "number";
}

// Rows of {label, start, end, cls}; missing stages are skipped, so a failed
// turn still shows how far it got.
export function waterfallRows(metrics, browser) {
  const rows = [];
  let at = 0;
  for (const [label, field, cls] of STAGES) {
    const end = metrics[field];
    if (typeof end !== "number" || end < at) continue;
    if (field === "transcript_ms" && end === 0) continue; // a typed turn: nothing to transcribe
    rows.push({ label, start: at, end, cls });
    at = end;
  }
  if (typeof metrics.first_audio_ms === "number" && browser) {
    const oneWay = (browser.rttMs ?? 0) / 2;
    const buffers = (browser.jitterBufferMs ?? 0) + (browser.playoutMs ?? 0);
    if (oneWay + buffers > 0) {
      rows.push({
        label: "Network + browser",
        start: at,
        end: at + oneWay + buffers,
        cls: "net",
        title: `half the round trip ${formatMs(oneWay)}, jitter buffer ${formatMs(browser.jitterBufferMs)}, ` +
          `playout ${formatMs(browser.playoutMs)}`,
      });
    }
  }
  return rows;
}

export function renderWaterfall(metrics, browser, { compact = false } = {}) {
  const rows = waterfallRows(metrics, browser);
  const wrap = document.createElement("div");
  wrap.className = compact ? "waterfall compact" : "waterfall";
  if (!rows.length) {
    wrap.textContent = "No timings for this turn.";
    return wrap;
  }
  const span = Math.max(...rows.map((r) => r.end), 1);
  const heard = rows[rows.length - 1];

  const summary = document.createElement("p");
  summary.className = "waterfall-summary";
  if (typeof metrics.first_audio_ms === "number") {
    const typed = metrics.end_of_turn_wait_ms == null && metrics.transcript_ms === 0;
    summary.innerHTML = `First sound ${heard.cls === "net" ? "heard" : "sent"} after <strong>${formatMs(heard.end)}</strong>`;
    summary.append(typed ? " (from Send)" : " (from the end of your speech)");
  } else {
    summary.textContent = "This turn produced no audio.";
  }
  wrap.append(summary);

  const list = document.createElement("ol");
  list.className = "waterfall-rows";
  for (const r of rows) {
    const li = document.createElement("li");
    li.className = `wf-${r.cls}`;
    const label = document.createElement("span");
    label.className = "wf-label";
    label.textContent = r.label;
    const track = document.createElement("span");
    track.className = "wf-track";
    track.setAttribute("aria-hidden", "true");
    const bar = document.createElement("span");
    bar.className = "wf-bar";
    bar.style.left = `${(r.start / span) * 100}%`;
    // A 0 ms stage still gets a sliver so the row doesn't look broken.
    bar.style.width = `max(2px, ${((r.end - r.start) / span) * 100}%)`;
    track.append(bar);
    const value = document.createElement("span");
    value.className = "wf-value";
    value.textContent = `+${formatMs(r.end - r.start)}`;
    value.title = `done at ${formatMs(r.end)}`;
    if (r.title) li.title = r.title;
    li.append(label, track, value);
    list.append(li);
  }
  wrap.append(list);

  if (!compact && (typeof metrics.total_ms === "number" || typeof metrics.llm_done_ms === "number")) {
    const foot = document.createElement("p");
    foot.className = "hint";
    const parts = [];
    if (typeof metrics.llm_done_ms === "number") parts.push(`reply text complete at ${formatMs(metrics.llm_done_ms)}`);
    if (typeof metrics.total_ms === "number") parts.push(`whole turn ${formatMs(metrics.total_ms)}`);
    foot.textContent = parts.join(" · ");
    wrap.append(foot);
  }
  return wrap;
}
