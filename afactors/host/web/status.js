// The status page: polls /status.json and renders it.
"use strict";

const POLL_MS = 1000;

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

function table(id, rows, columns) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const item of rows) {
    const row = document.createElement("tr");
    for (const column of columns) cell(row, column(item));
    body.appendChild(row);
  }
  document.getElementById(id).dataset.rows = rows.length;
}

function ago(seconds) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  return s < 60 ? s + " s ago" : Math.round(s / 60) + " min ago";
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

function counters(id, values) {
  const list = document.getElementById(id);
  list.replaceChildren();
  for (const [name, value] of Object.entries(values)) {
    const dt = document.createElement("dt");
    dt.textContent = name.replace(/_/g, " ");
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.dataset.name = name;
    list.append(dt, dd);
  }
}

function show(status) {
  document.getElementById("summary").textContent =
    "afactors " + status.version + " · up " + Math.round(status.uptime) + " s · channels: " +
    (status.channels.join(", ") || "(none)");
  const a = status.actors;
  counters("actor-counts", {
    live: a.active, busy: a.busy, recovering: a.recovering, turns: a.turns, failures: a.failures,
    activations: a.activations, passivations: a.passivations, dead_letters: a.dead_letters,
  });
  counters("outbox-counts", status.outbox);
  const s = status.store;
  counters("store-counts", {
    file: bytes(s.file_bytes), map_usage: (100 * s.map_usage).toFixed(1) + " %", commits: s.commits,
    transactions: s.transactions, largest_batch: s.largest_batch, quarantined: s.quarantined,
  });
  table("live", status.live, [
    (x) => x.conversation, (x) => x.status, (x) => x.mailbox_depth, (x) => x.turns, (x) => ago(x.last_activity),
  ]);
  table("in-flight", status.in_flight, [
    (x) => x.turn_id, (x) => x.conversation, (x) => x.phase, (x) => ago(x.accepted_at),
  ]);
  table("background", status.background, [
    (x) => x.turn_id, (x) => x.conversation, (x) => x.phase, (x) => x.updates + " updates",
  ]);
  table("recent", status.recent_turns, [
    (x) => x.turn_id, (x) => x.conversation, (x) => x.channel, (x) => x.status,
    (x) => (1000 * x.duration).toFixed(1) + " ms", (x) => ago(x.ended_at),
  ]);
  table("records", Object.entries(s.records), [(x) => x[0], (x) => x[1]]);
}

async function poll() {
  for (;;) {
    try {
      const response = await authFetch("/status.json");
      if (response.ok) {
        show(await response.json());
        document.getElementById("error").textContent = "";
      } else document.getElementById("error").textContent = "status: HTTP " + response.status;
    } catch (error) {
      document.getElementById("error").textContent = "host unreachable: " + error;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

poll();
