// The inbox's only script, served from the app (the Content-Security-Policy allows no inline script).
// Case actions go with the session cookie and the page's CSRF token; no key is stored in the browser.
"use strict";
const csrf = document.querySelector('meta[name="csrf-token"]').content;

async function post(url, body) {
  return fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: {"X-CSRF-Token": csrf, ...(body ? {"Content-Type": "application/json"} : {})},
    body: body ? JSON.stringify(body) : undefined,
  });
}

async function act(id, action) {
  const r = await post(`/v1/alerts/${encodeURIComponent(id)}/${action}`);
  if (!r.ok) { alert((await r.json()).detail); return; }
  const body = await r.json();
  const row = document.querySelector(`tr[data-alert="${CSS.escape(id)}"]`);
  row.querySelector(".status").textContent = body.status;
  if (body.status === "resolved") row.remove();
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest("tr[data-alert]");
  if (row) act(row.dataset.alert, button.dataset.action);
});

const logout = document.getElementById("logout");
if (logout) logout.addEventListener("click", async () => {
  await post("/logout");
  window.location.assign("/");
});
