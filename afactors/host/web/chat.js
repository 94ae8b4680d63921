// The chat page: talks to the host's Responses API (POST /v1/responses, stream: true) in one named conversation.
"use strict";

const CHAT_ITEM = "afactors.chat";

function newChat() {
  const id = "web-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  return { conversation: id, messages: [] };
}

function loadChat() {
  try {
    const saved = JSON.parse(localStorage.getItem(CHAT_ITEM));
    if (saved && typeof saved.conversation === "string" && Array.isArray(saved.messages)) return saved;
  } catch (_) { /* start afresh */ }
  return newChat();
}

let chat = loadChat();
const log = document.getElementById("log");
const stateLine = document.getElementById("state");

function save() {
  localStorage.setItem(CHAT_ITEM, JSON.stringify(chat));
}

function render() {
  document.getElementById("conversation").textContent = chat.conversation;
  log.replaceChildren();
  for (const message of chat.messages) addBubble(message);
}

function addBubble(message) {
  const bubble = document.createElement("div");
  bubble.className = "msg " + message.role + (message.error ? " error" : "");
  bubble.textContent = message.text;
  log.appendChild(bubble);
  log.scrollTop = log.scrollHeight;
  return bubble;
}

function setState(text, kind) {
  stateLine.textContent = text;
  stateLine.dataset.kind = kind || "";
}

// Yields {event, data} for each server-sent event of a fetch response body.
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// While a turn waits for its first text, asks /status.json whether it is queued behind another turn.
function watchQueue(turn) {
  let stopped = false;
  (async () => {
    while (!stopped) {
      if (turn.id) {
        try {
          const response = await authFetch("/status.json");
          if (response.ok) {
            const status = await response.json();
            const mine = status.in_flight.find((t) => t.turn_id === turn.id);
            if (!stopped && mine) {
              if (mine.phase === "queued") setState("queued behind another turn of this conversation", "queued");
              else setState("thinking…", "running");
            }
          }
        } catch (_) { /* the next poll tries again */ }
      }
      await new Promise((r) => setTimeout(r, 400));
    }
  })();
  return () => { stopped = true; };
}

async function send(text) {
  chat.messages.push({ role: "user", text });
  save();
  addBubble({ role: "user", text });
  const answer = { role: "assistant", text: "" };
  const bubble = addBubble(answer);
  bubble.classList.add("pending");
  setState("sending…", "running");
  const turn = { id: null };
  const stopWatching = watchQueue(turn);
  let failure = null;
  try {
    const response = await authFetch("/v1/responses", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ input: text, conversation: chat.conversation, stream: true }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || "HTTP " + response.status);
    }
    for await (const { event, data } of sseEvents(response)) {
      if (event === "response.created") turn.id = data.response.id;
      else if (event === "response.output_text.delta") {
        stopWatching();
        setState("streaming…", "running");
        answer.text += data.delta;
        bubble.textContent = answer.text;
        log.scrollTop = log.scrollHeight;
      } else if (event === "response.failed" || event === "response.incomplete") {
        const error = data.response.error || data.response.incomplete_details || {};
        failure = error.message || error.reason || event;
      } else if (event === "error") failure = data.message || "error";
    }
  } catch (error) {
    failure = String(error.message || error);
  } finally {
    stopWatching();
  }
  bubble.classList.remove("pending");
  if (failure) {
    answer.error = true;
    answer.text = (answer.text ? answer.text + "\n" : "") + "⚠ " + failure;
    bubble.classList.add("error");
    bubble.textContent = answer.text;
    setState("failed", "failed");
  } else setState("", "");
  chat.messages.push(answer);
  save();
}

document.getElementById("compose").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  send(text);
});

document.getElementById("new-chat").addEventListener("click", () => {
  chat = newChat();
  save();
  render();
  setState("", "");
});

render();
