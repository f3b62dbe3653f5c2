// The call's transcript (GET /api/sessions/{id}), offered for download once
// the call is over. The offer's answer carried the key to it (record_key);
// without one (an older server) there is nothing to offer.

export function offerTranscript(conversation, { sessionId, recordKey }) {
  if (!sessionId || !recordKey) return;
  const li = conversation.note("");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link-button";
  button.dataset.testid = "transcript-download";
  button.textContent = "Download the transcript";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const response = await fetch(`/api/sessions/${encodeURIComponent(sessionId)}`, {
        headers: { Authorization: `Bearer ${recordKey}` },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const record = await response.json();
      const blob = new Blob([JSON.stringify(record, null, 2)], { type: "application/json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `transcript-${sessionId}.json`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      button.textContent = "Transcript downloaded";
    } catch (err) {
      button.textContent = `The transcript could not be fetched (${err.message}); try again`;
      button.disabled = false;
    }
  });
  li.replaceChildren(button);
}
