// The conversation view: one list item per turn holding what the person said
// and the agent's reply as it streams, plus notes (connected, ended, errors).
// Turn ids restart with every session, so turns are keyed by session too.

import { renderWaterfall } from "./waterfall.js";

export class ConversationView {
  constructor(list, emptyHint) {
    this.list = list;
    this.emptyHint = emptyHint;
    this.session = 0;
    this.turns = new Map();
    // Follow the conversation unless the person scrolled up to read.
    this.stick = true;
    // A rotated phone or a resized window keeps following the latest turn.
    new ResizeObserver(() => this.scroll()).observe(list);
    list.addEventListener("scroll", () => {
      this.stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    }, { passive: true });
  }

  beginSession() {
    this.session += 1;
  }

  note(text, kind = "info") {
    const li = document.createElement("li");
    li.className = `note note-${kind}`;
    li.textContent = text;
    this.append(li);
    return li;
  }

  transcription(turnId, text, { typed = false, interim = false } = {}) {
    const turn = this.turn(turnId);
    turn.user.hidden = false;
    turn.user.classList.toggle("interim", interim);
    turn.userWho.textContent = typed ? "You (typed)" : "You";
    turn.userText.textContent = text;
    this.scroll();
  }

  reply(turnId, text, isFinal) {
    const turn = this.turn(turnId);
    if (turn.interrupted) return; // a late chunk must not undo the marker
    turn.agent.hidden = false;
    turn.full = text;
    turn.agentText.textContent = text;
    turn.agent.classList.toggle("streaming", !isFinal);
    this.scroll();
  }

  // `heard` is what actually played before the cut (the server ends a
  // partly played sentence with "…"); the rest was written but never spoken,
  // so it follows the marker, struck through.
  interrupted(turnId, heard) {
    const turn = this.turn(turnId);
    turn.interrupted = true;
    turn.agent.hidden = false;
    turn.agent.classList.remove("streaming");
    turn.agent.classList.add("was-interrupted");
    const full = turn.full || "";
    const spoken = heard.endsWith("…") ? heard.slice(0, -1) : heard;
    turn.agentText.textContent = heard ? `${heard} ` : "";
    const marker = document.createElement("span");
    marker.className = "interrupt-marker";
    marker.dataset.testid = "interrupted-marker";
    marker.textContent = "interrupted";
    marker.title = "You interrupted the agent here";
    turn.agentText.append(marker);
    const unspoken = full.startsWith(spoken) ? full.slice(spoken.length).trim() : "";
    if (unspoken) {
      const rest = document.createElement("del");
      rest.className = "unspoken";
      rest.title = "Written but not spoken";
      rest.textContent = ` ${unspoken}`;
      turn.agentText.append(rest);
    }
    this.scroll();
  }

  metrics(turnId, metrics, browser) {
    const turn = this.turn(turnId);
    turn.agent.classList.remove("streaming");
    turn.done = true;
    const details = document.createElement("details");
    details.className = "turn-latency";
    const summary = document.createElement("summary");
    summary.textContent = "Latency";
    details.append(summary, renderWaterfall(metrics, browser, { compact: true }));
    turn.li.querySelector(".turn-latency")?.remove();
    turn.li.append(details);
    this.scroll();
  }

  // The agent acting: a line under the current turn while a tool runs
  // ("Checking availability…"), then its outcome ("Booked: Tue 8 Dec, 10:00").
  toolCall(callId, name, args) {
    const last = [...this.turns.entries()].pop();
    const turn = last && last[0].startsWith(`${this.session}:`) ? last[1] : null;
    const p = document.createElement("p");
    p.className = "tool-call running";
    p.dataset.testid = "tool-call";
    p.dataset.callId = callId;
    p.dataset.tool = name;
    p.title = `${name}(${JSON.stringify(args ?? {})})`;
    p.textContent = `⚙ ${name.replaceAll("_", " ")}…`;
    if (turn) turn.li.append(p);
    else this.append(p);
    this.scroll();
  }

  toolResult(callId, ok, summary) {
    const p = [...this.list.querySelectorAll(".tool-call")].find((e) => e.dataset.callId === callId);
    if (!p) return;
    p.classList.remove("running");
    p.classList.add(ok ? "tool-ok" : "tool-failed");
    p.textContent = `${ok ? "✓" : "⚠"} ${summary || p.dataset.tool}`;
    this.scroll();
  }

  // A turn's error sits under that turn; one with no turn yet (speech
  // recognition failed, a refused message) becomes a note of its own.
  turnError(message) {
    const last = [...this.turns.entries()].pop();
    const open = last && last[0].startsWith(`${this.session}:`) && !last[1].done ? last[1] : null;
    if (!open) {
      this.note(`⚠ ${message}`, "error");
      return;
    }
    open.agent.classList.remove("streaming");
    const p = document.createElement("p");
    p.className = "turn-error";
    p.textContent = `⚠ ${message}`;
    open.li.append(p);
    open.done = true;
    this.scroll();
  }

  turn(turnId) {
    const key = `${this.session}:${turnId}`;
    let turn = this.turns.get(key);
    if (turn) return turn;

    const li = document.createElement("li");
    li.className = "turn";
    li.dataset.turnId = String(turnId);
    const [user, userWho, userText] = bubble("user", "You");
    const [agent, , agentText] = bubble("agent", "Agent");
    user.hidden = true;
    agent.hidden = true;
    li.append(user, agent);
    turn = { li, user, userWho, userText, agent, agentText, full: "", interrupted: false };
    this.turns.set(key, turn);
    this.append(li);
    return turn;
  }

  setAgentName(name) {
    this.agentName = name;
  }

  append(li) {
    if (this.emptyHint) this.emptyHint.hidden = true;
    // Name the agent in the bubble at creation time: it may change later.
    for (const who of li.querySelectorAll(".msg.agent .who")) who.textContent = this.agentName || "Agent";
    this.list.append(li);
    this.scroll();
  }

  scroll() {
    if (this.stick) this.list.scrollTop = this.list.scrollHeight;
  }
}

function bubble(kind, who) {
  const box = document.createElement("div");
  box.className = `msg ${kind}`;
  box.dataset.testid = `${kind}-message`;
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = who;
  const text = document.createElement("p");
  text.className = "text";
  box.append(name, text);
  return [box, name, text];
}
