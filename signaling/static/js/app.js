// The demo page: wires the agent picker, the call buttons, the microphone,
// one VoiceConnection at a time, and the views that show what the server says.

import { accessLinkUsedUp, fetchAgents } from "./api.js";
import { VoiceConnection } from "./connection.js";
import { ConversationView } from "./conversation.js";
import { LevelMeter, MicError, openMic, silentStream } from "./mic.js";
import { StatsPoller } from "./stats.js";
import { offerTranscript } from "./transcript.js";
import { Banner, setMicLevel, setStatus, showNetwork, showProviders } from "./ui.js";
import { hasTimings, renderWaterfall } from "./waterfall.js";

const $ = (id) => document.getElementById(id);
const el = {
  agent: $("agent-select"),
  agentDescription: $("agent-description"),
  start: $("start-button"),
  stop: $("stop-button"),
  interrupt: $("interrupt-button"),
  status: $("status"),
  micLevel: $("mic-level"),
  micNote: $("mic-note"),
  providers: $("providers"),
  form: $("text-form"),
  input: $("text-input"),
  send: $("send-button"),
  latency: $("latency"),
  network: $("network"),
  audio: $("agent-audio"),
};

const banner = new Banner($("error"));
const conversation = new ConversationView($("transcript"), $("empty-hint"));

// Plain words for the server's session_end reasons.
const END_REASONS = {
  idle_timeout: "The call ended after a long silence.",
  max_duration: "The call reached its maximum length.",
  connect_timeout: "The audio connection never came up. A firewall may be blocking it.",
  peer_gone: "The server stopped hearing from this page.",
  shutdown: "The server is shutting down.",
};

// A server with AUTH_SECRET is opened through a link whose token opens one
// session (api.js keeps it). Once used, Start again or Reconnect would only
// be refused, so the page says what will work instead.
const NEW_LINK = "This link was for one conversation. Ask for a new link to talk again.";

// The server speaks of access tokens; the person holds a link.
const LINK_ERRORS = {
  token_used: NEW_LINK,
  token_expired: "This link has expired. Ask for a new one.",
  token_invalid: "This link isn't valid. Ask for a new one.",
};

const TALKING = new Set(["processing", "generating_audio", "speaking"]);

const state = {
  agents: new Map(),
  phase: "disconnected", // disconnected | connecting | connected | lost | ended
  serverStatus: "idle",
  conn: null,
  agentId: null, // the agent of the current (or last) session: Reconnect reuses it
  typingOnly: false,
  stream: null,
  audioContext: null,
  meter: null,
  poller: null,
  pendingTyped: [], // texts we sent, to label their turns "typed"
  lastTurnTyped: false,
  lastTyped: "",
  keyboardStart: false,
  toldLinkUsedUp: false, // the page said a new link is needed (once is enough)
};

// ---- rendering --------------------------------------------------------

function render() {
  const connected = state.phase === "connected";
  const busy = state.phase === "connecting";
  setStatus(el.status, connected ? state.serverStatus : state.phase);
  const linkUsedUp = accessLinkUsedUp(); // another session would need a new link
  el.start.disabled = busy || connected || !el.agent.value || linkUsedUp;
  // Switching mid-connect would race; switching on a used link would end the
  // call and then be refused.
  el.agent.disabled = busy || state.agents.size === 0 || linkUsedUp;
  el.stop.disabled = !(busy || connected);
  el.interrupt.disabled = !(connected && TALKING.has(state.serverStatus));
  el.input.disabled = !connected;
  el.input.placeholder = connected ? "Type a message…" : "Start a call to type";
  el.send.disabled = !connected || !el.input.value.trim();
}

function describeAgent() {
  const agent = state.agents.get(el.agent.value);
  el.agentDescription.textContent = agent ? agent.description : "";
}

// ---- agents -----------------------------------------------------------

async function loadAgents() {
  try {
    const agents = await fetchAgents();
    el.agent.replaceChildren();
    for (const a of agents) {
      state.agents.set(a.id, a);
      const option = new Option(a.name, a.id);
      option.title = a.description;
      el.agent.append(option);
    }
    const wanted = new URLSearchParams(location.search).get("agent");
    if (wanted && state.agents.has(wanted)) el.agent.value = wanted;
    describeAgent();
  } catch (err) {
    el.agent.replaceChildren(new Option("No agents available", ""));
    banner.show(`Couldn't load the list of agents: ${err.message}`, {
      scope: "agents",
      actions: [{ label: "Try again", testid: "retry-button", run: loadAgents }],
    });
  }
  render();
}

// ---- the call ---------------------------------------------------------

async function start(agentId, { typingOnly = false } = {}) {
  if (!agentId || state.phase === "connecting" || state.phase === "connected") return;
  banner.hide();
  state.phase = "connecting";
  state.agentId = agentId;
  state.serverStatus = "idle";
  render();

  // Created inside the click: browsers only let audio start from a gesture.
  state.audioContext ??= new AudioContext();
  if (state.audioContext.state === "suspended") state.audioContext.resume().catch(() => {});

  if (!liveStream()) {
    try {
      state.stream = typingOnly ? silentStream(state.audioContext) : await openMic();
      state.typingOnly = typingOnly;
    } catch (err) {
      state.phase = "disconnected";
      render();
      if (!(err instanceof MicError)) throw err;
      banner.show(err.message, {
        scope: "mic",
        actions: [
          { label: "Try again", testid: "retry-button", run: () => start(agentId) },
          { label: "Continue by typing", testid: "typing-only-button", run: () => start(agentId, { typingOnly: true }) },
        ],
      });
      return;
    }
    if (state.phase !== "connecting") return stopMic(); // Stop pressed while the prompt was up
    if (!state.typingOnly) {
      state.meter = new LevelMeter(state.audioContext, state.stream, (l) => setMicLevel(el.micLevel, l));
    }
    el.micNote.textContent = state.typingOnly
      ? "No microphone: type your messages below."
      : "Microphone on — echo cancellation, noise suppression and auto gain requested.";
  }

  const conn = new VoiceConnection();
  state.conn = conn;
  conversation.beginSession();
  conn.addEventListener("message", (e) => conn === state.conn && onServerEvent(e.detail));
  conn.addEventListener("track", (e) => conn === state.conn && playAgent(e.detail));
  conn.addEventListener("lost", (e) => conn === state.conn && onLost(e.detail));
  conn.addEventListener("ended", (e) => conn === state.conn && onEnded(e.detail));
  try {
    await conn.connect(agentId, state.stream);
  } catch (err) {
    if (conn !== state.conn || conn.closed) return stoppedWhileStarting();
    conn.close({ notify: false });
    state.conn = null;
    state.phase = "disconnected";
    stopMic();
    render();
    showStartFailed(err, () => start(agentId, { typingOnly }));
    return;
  }
  if (conn !== state.conn) return stoppedWhileStarting();
  state.phase = "connected";
  state.poller = new StatsPoller(conn.pc, (stats) => showNetwork(el.network, stats));
  render();
  // Start just went disabled under a keyboard user's focus: the message box
  // is where they act next. Not after a tap — a phone would pop its keyboard
  // over the conversation of someone who meant to speak.
  if (state.typingOnly || state.keyboardStart) el.input.focus();
}

function showStartFailed(err, retry) {
  const message = err.message || "Couldn't start the call.";
  const linkError = LINK_ERRORS[err.code];
  if (linkError) {
    banner.show(linkError, { scope: "connect" }); // the link is dead: nothing to retry
  } else if (accessLinkUsedUp()) {
    // The server accepted the offer, spending the link, and then the call
    // didn't come up: a retry would only be refused.
    showLinkUsedUp(message, "error");
  } else {
    const retryable = err.retryable !== false;
    banner.show(message, {
      scope: "connect",
      actions: retryable ? [{ label: "Try again", testid: "retry-button", run: retry }] : [],
    });
  }
}

// Stop was pressed while a start was under way, and the offer may still
// have spent a one-use link (the server accepted it just after): if so, the
// page, already stopped, now says so and stops offering Start.
function stoppedWhileStarting() {
  if (state.phase !== "disconnected" || !accessLinkUsedUp() || state.toldLinkUsedUp) return;
  render();
  showLinkUsedUp("");
}

// Ends the current session; the mic stays on only when another session is
// about to take over (switching agents).
function endSession({ keepMic = false, notify = true } = {}) {
  const conn = state.conn;
  state.conn = null;
  state.lastCall = conn ? { sessionId: conn.sessionId, recordKey: conn.recordKey } : null;
  if (conn) conn.close({ notify });
  if (state.poller) state.poller.stop();
  state.poller = null;
  el.audio.srcObject = null;
  state.pendingTyped = [];
  if (!keepMic) stopMic();
}

function stopMic() {
  if (state.meter) state.meter.stop();
  state.meter = null;
  if (state.stream) for (const t of state.stream.getTracks()) t.stop();
  state.stream = null;
  setMicLevel(el.micLevel, 0);
  el.micNote.textContent = "The microphone turns on when you press Start.";
}

function liveStream() {
  const s = state.stream;
  return s && s.getAudioTracks().some((t) => t.readyState === "live") ? s : null;
}

function stop() {
  const wasConnected = state.phase === "connected";
  endSession();
  state.phase = "disconnected";
  if (wasConnected) {
    conversation.note("Call ended.");
    offerTranscript(conversation, state.lastCall || {});
  }
  render();
  if (accessLinkUsedUp()) showLinkUsedUp("");
  else el.start.focus();
}

function reconnect() {
  const agentId = state.agentId || el.agent.value;
  el.agent.value = agentId;
  describeAgent();
  state.phase = "disconnected";
  start(agentId, { typingOnly: state.typingOnly });
}

async function switchAgent() {
  describeAgent();
  const agentId = el.agent.value;
  if (state.phase !== "connected" || agentId === state.agentId) {
    render();
    return;
  }
  const typingOnly = state.typingOnly;
  endSession({ keepMic: true });
  state.phase = "disconnected";
  conversation.note(`Switching to ${state.agents.get(agentId)?.name || agentId}…`);
  await start(agentId, { typingOnly });
}

function playAgent(stream) {
  el.audio.srcObject = stream;
  el.audio.play().catch(() => {
    // Autoplay refused (no gesture left on this page): ask for one.
    banner.show("Your browser blocked the agent's voice. Press Play to hear it.", {
      scope: "audio",
      kind: "info",
      actions: [{ label: "Play", testid: "play-button", run: () => el.audio.play() }],
    });
  });
}

function onLost(why) {
  endSession({ notify: false });
  state.phase = "lost";
  render();
  conversation.note("Connection lost.", "error");
  offerTranscript(conversation, state.lastCall || {});
  offerAnotherCall(`Lost the connection to the server. ${why}`, { kind: "error", label: "Reconnect" });
}

function onEnded(reason) {
  endSession({ notify: false });
  state.phase = "ended";
  render();
  conversation.note("Call ended by the server.");
  offerTranscript(conversation, state.lastCall || {});
  // The server may have said why in an error just before (a provider that
  // is down, say): keep those words and offer a fresh start under them.
  const known = END_REASONS[reason];
  const message = known || (banner.visible ? banner.message : "");
  offerAnotherCall(message, { kind: known ? "info" : "error", label: "Start again" });
}

// After a call ended or was lost: a button for the next one — unless the
// page's one-use link is spent, when that button could only be refused.
function offerAnotherCall(message, { kind, label }) {
  if (accessLinkUsedUp()) {
    showLinkUsedUp(message, kind);
  } else if (message) {
    banner.show(message, {
      scope: "session",
      kind,
      actions: [{ label, testid: "reconnect-button", run: reconnect }],
    });
  }
}

// Said in the conversation too, so it outlives a dismissed banner.
function showLinkUsedUp(message, kind = "info") {
  state.toldLinkUsedUp = true;
  conversation.note(NEW_LINK);
  banner.show(message ? `${message} ${NEW_LINK}` : NEW_LINK, {
    scope: "session",
    kind: message ? kind : "info",
  });
}

// ---- server events ----------------------------------------------------

function onServerEvent(event) {
  switch (event.type) {
    case "connection_established": {
      const name = event.agent || state.agents.get(event.agent_id)?.name || "the agent";
      conversation.setAgentName(name);
      conversation.note(`Connected to ${name}. Speak, or type below.`);
      showProviders(el.providers, event.providers);
      break;
    }
    case "status_update":
      state.serverStatus = event.status;
      render();
      break;
    case "transcription": {
      if (event.is_final === false) {
        // Heard so far, while the person still talks: shown greyed, replaced
        // by the final transcript when the turn is over.
        conversation.transcription(event.turn_id, event.text, { interim: true });
        break;
      }
      const i = state.pendingTyped.indexOf(event.text);
      const typed = i >= 0;
      if (typed) state.pendingTyped.splice(i, 1);
      state.lastTurnTyped = typed;
      banner.hide("turn"); // a new turn: the last turn's problem is history
      conversation.transcription(event.turn_id, event.text, { typed });
      break;
    }
    case "llm_response":
      if (event.interrupted) conversation.interrupted(event.turn_id, event.text || "");
      else conversation.reply(event.turn_id, event.text || "", event.is_final);
      break;
    case "turn_metrics": {
      if (!hasTimings(event)) break;
      const browser = state.poller && state.poller.steady;
      conversation.metrics(event.turn_id, event, browser);
      const title = document.createElement("p");
      title.className = "latency-title";
      title.textContent = `Turn ${event.turn_id}`;
      el.latency.dataset.turnId = String(event.turn_id);
      el.latency.replaceChildren(title, renderWaterfall(event, browser));
      break;
    }
    case "tool_call":
      conversation.toolCall(event.call_id, event.name, event.arguments);
      break;
    case "tool_result":
      conversation.toolResult(event.call_id, event.ok, event.summary || "");
      break;
    case "error":
      onTurnError(event);
      break;
    case "notice":
      conversation.note(event.message || "");
      break;
    case "provider_fallback":
      // A backup engine took over (another voice, maybe): say so once, plainly.
      conversation.note(event.message || "A backup engine took over.");
      showProviders(el.providers, event.providers);
      break;
    default:
      break; // newer servers may add events; ignoring them keeps old pages working
  }
}

function onTurnError(event) {
  const message = event.message || "Something went wrong.";
  conversation.turnError(message);
  const typed = event.stage !== "stt" && state.lastTurnTyped && state.lastTyped;
  const actions = [];
  if (event.retryable && typed) {
    actions.push({ label: "Send again", testid: "retry-button", run: () => sendText(state.lastTyped) });
  }
  const hint = event.retryable && !typed && event.stage ? " Say it again when you're ready." : "";
  banner.show(message + hint, { scope: "turn", actions, focus: false });
}

// ---- typing -----------------------------------------------------------

function sendText(text) {
  text = text.trim();
  if (!text || !state.conn) return false;
  if (!state.conn.send({ type: "text_input", text })) return false;
  state.pendingTyped.push(text);
  state.lastTyped = text;
  return true;
}

// ---- wiring -----------------------------------------------------------

el.agent.addEventListener("change", switchAgent);
el.start.addEventListener("click", (e) => {
  state.keyboardStart = e.detail === 0; // Enter/Space clicks carry no pointer detail
  start(el.agent.value);
});
el.stop.addEventListener("click", stop);
el.interrupt.addEventListener("click", () => state.conn && state.conn.send({ type: "interrupt" }));
el.input.addEventListener("input", render);
el.form.addEventListener("submit", (e) => {
  e.preventDefault();
  if (sendText(el.input.value)) el.input.value = "";
  render();
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !el.interrupt.disabled) {
    e.preventDefault();
    el.interrupt.click();
  }
});
// Tell the server at once when the tab goes away, so the session is freed
// now rather than at its ping deadline.
window.addEventListener("pagehide", () => endSession());

// For devtools and the browser tests: read-only views of the live call.
window.voiceDemo = {
  get phase() {
    return state.phase;
  },
  get sessionId() {
    return state.conn ? state.conn.sessionId : null;
  },
  stats: () => (state.poller ? state.poller.latest : null),
  pollStats: async () => {
    if (!state.poller) return null;
    await state.poller.poll();
    return state.poller.latest;
  },
};

render();
loadAgents();
