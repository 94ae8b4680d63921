// Shared by the chat and status pages: the API key (entered once, kept in this tab's sessionStorage) and fetch.
"use strict";

const KEY_ITEM = "afactors.apiKey";

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  const key = apiKey();
  if (key) headers["Authorization"] = "Bearer " + key;
  return headers;
}

// The key form, added under the page's header the first time a key is needed.
function keyForm() {
  let form = document.getElementById("key-form");
  if (form) return form;
  form = document.createElement("form");
  form.id = "key-form";
  form.hidden = true;
  form.innerHTML =
    '<p id="key-note"></p>' +
    '<input id="key-input" type="password" autocomplete="off" placeholder="API key"> ' +
    '<button class="primary" type="submit">Use key</button> ' +
    "<small>kept in this tab only (sessionStorage)</small>";
  document.querySelector("header").after(form);
  return form;
}

// Shows the key form; resolves once a key was saved.
function askForKey(message) {
  const form = keyForm();
  const note = document.getElementById("key-note");
  note.textContent = message || "This host needs an API key.";
  form.hidden = false;
  document.getElementById("key-input").focus();
  return new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const value = document.getElementById("key-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY_ITEM, value);
      form.hidden = true;
      resolve();
    };
  });
}

// fetch with the key; on 401 asks for a key and tries again.
async function authFetch(url, options) {
  for (;;) {
    const opts = Object.assign({}, options || {});
    opts.headers = authHeaders(opts.headers);
    const response = await fetch(url, opts);
    if (response.status !== 401) return response;
    let message = "This host needs an API key.";
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch (_) { /* not JSON */ }
    sessionStorage.removeItem(KEY_ITEM);
    await askForKey(message);
  }
}
