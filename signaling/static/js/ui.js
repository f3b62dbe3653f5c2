// Small pieces of the page that only display things: the status pill, the
// error banner, the mic meter, the engines line and the network numbers.

import { formatMs } from "./waterfall.js";

const STATUS_LABELS = {
  disconnected: "Not connected",
  connecting: "Connecting…",
  idle: "Idle — ready",
  listening: "Listening",
  still_listening: "Still listening…",
  processing: "Processing",
  generating_audio: "Generating audio",
  speaking: "Speaking",
  lost: "Connection lost",
  ended: "Call ended",
};

// The element's text is for people; data-status carries the raw value for
// styling and for tests.
export function setStatus(el, status) {
  el.dataset.status = status;
  el.textContent = STATUS_LABELS[status] || status;
}

export class Banner {
  constructor(root) {
    this.root = root;
    this.text = root.querySelector("#error-message");
    this.action = root.querySelector("#error-action");
    this.secondary = root.querySelector("#error-secondary");
    this.scope = null;
    root.querySelector("#error-dismiss").addEventListener("click", () => this.hide());
    for (const button of [this.action, this.secondary]) {
      button.addEventListener("click", () => {
        const run = button.run;
        this.hide();
        if (run) run();
      });
    }
  }

  // scope: what the message is about ("mic", "connect", "turn", "session"),
  // so e.g. a new turn can clear a turn's error without hiding a lost link.
  // actions: [{label, testid, run}] — at most two buttons.
  show(message, { scope = "general", kind = "error", actions = [], focus = true } = {}) {
    this.scope = scope;
    this.root.dataset.kind = kind;
    this.root.dataset.scope = scope;
    this.text.textContent = message;
    [this.action, this.secondary].forEach((button, i) => {
      const a = actions[i];
      button.hidden = !a;
      button.run = a ? a.run : null;
      if (a) {
        button.textContent = a.label;
        button.dataset.testid = a.testid || "error-action";
      }
    });
    this.root.hidden = false;
    // Put keyboard users on the way out of the problem — unless the call goes
    // on (focus: false) and they may be typing their next message.
    if (focus && actions.length) this.action.focus({ preventScroll: true });
  }

  get visible() {
    return !this.root.hidden;
  }

  get message() {
    return this.text.textContent;
  }

  hide(scope) {
    if (scope && this.scope !== scope) return;
    this.root.hidden = true;
    this.scope = null;
  }
}

export function setMicLevel(el, level) {
  const pct = Math.round(level * 100);
  el.style.setProperty("--level", `${pct}%`);
  el.dataset.level = String(pct);
  // Screen readers don't need 60 updates a second; tens are plenty.
  const coarse = String(Math.round(pct / 10) * 10);
  if (el.getAttribute("aria-valuenow") !== coarse) el.setAttribute("aria-valuenow", coarse);
}

const OFFLINE_ENGINES = new Set(["whisper", "pocketsphinx", "scripted", "piper", "espeak"]);

export function showProviders(el, providers) {
  if (!providers) {
    el.hidden = true;
    return;
  }
  const names = [providers.stt, providers.llm, providers.tts].filter(Boolean);
  const offline = names.every((n) => OFFLINE_ENGINES.has(n));
  el.textContent = `${offline ? "offline engines" : "engines"}: ${names.join(" · ")}`;
  if (providers.llm === "scripted") {
    el.textContent += " — replies are scripted, not a language model";
  }
  el.hidden = false;
}

function routeKind(stats) {
  const types = [stats.localCandidateType, stats.remoteCandidateType];
  if (types.includes("relay")) return "relay";
  return types.every((t) => t === "host") ? "direct" : types.some((t) => t) ? "nat" : "";
}

function describeRoute(stats) {
  return { relay: "TURN relay", direct: "direct", nat: "direct, through NAT" }[routeKind(stats)] || "—";
}

export function showNetwork(dl, stats) {
  const rows = stats
    ? [
        ["Round trip", formatMs(stats.rttMs), "Network round trip to the server (ICE)"],
        ["Jitter buffer", formatMs(stats.jitterBufferMs), "How long the browser holds audio to smooth the network"],
        ["Playout", formatMs(stats.playoutMs), "From the jitter buffer to the speaker"],
        ["Jitter", formatMs(stats.jitterMs), "Variation in packet arrival"],
        ["Packets lost", String(stats.packetsLost), "Agent audio packets that never arrived"],
        ["Route", describeRoute(stats), "How the audio travels: directly, or through a TURN relay"],
      ]
    : [];
  dl.dataset.route = stats ? routeKind(stats) : "";
  dl.replaceChildren();
  for (const [term, value, title] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    dt.title = title;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }
}
