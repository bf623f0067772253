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

// ---- the case page -----------------------------------------------------------------------------------
const caseBox = document.getElementById("case");
if (caseBox) {
  const id = caseBox.dataset.alert;
  const base = `/v1/alerts/${encodeURIComponent(id)}`;
  const text = document.getElementById("reply-text");
  const findings = document.getElementById("findings");
  const result = document.getElementById("reply-result");
  const actionResult = document.getElementById("action-result");

  function showFindings(list) {
    findings.replaceChildren(...list.map((f) => {
      const item = document.createElement("li");
      item.className = `finding finding-${f.code}`;
      item.dataset.code = f.code;
      const quoted = text.value.slice(f.start, f.end);
      item.textContent = `${f.code}${quoted ? ` “${quoted}”` : ""}: ${f.hint}`;
      return item;
    }));
  }

  let timer = null;
  text.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!text.value.trim()) { showFindings([]); return; }
      const r = await post(`${base}/replies`, {text: text.value, channel: "email", send: false});
      if (r.ok) showFindings((await r.json()).findings);
    }, 250);
  });

  document.getElementById("reply-send").addEventListener("click", async () => {
    const r = await post(`${base}/replies`, {
      text: text.value, channel: document.getElementById("reply-channel").value, send: true,
      override: document.getElementById("reply-override").checked,
    });
    const body = await r.json();
    if (r.ok) {
      result.textContent = "Sent.";
      document.getElementById("case-status").textContent = body.status;
    } else {
      if (body.findings) showFindings(body.findings);
      result.textContent = typeof body.detail === "string" ? body.detail : "Not sent.";
    }
  });

  async function act(path, body) {
    const r = await post(`${base}/${path}`, body);
    const answer = await r.json();
    if (r.ok) {
      document.getElementById("case-status").textContent = answer.status;
      actionResult.textContent = "Done.";
    } else {
      actionResult.textContent = typeof answer.detail === "string" ? answer.detail : "Refused.";
    }
  }
  document.getElementById("note-add").addEventListener("click", () =>
    act("notes", {text: document.getElementById("note-text").value}));
  document.getElementById("root-cause-set").addEventListener("click", () =>
    act("root-cause", {need: document.getElementById("root-cause").value}));
  document.getElementById("reassign").addEventListener("click", () =>
    act("reassign", {csm_id: document.getElementById("reassign-to").value}));
  document.getElementById("ack").addEventListener("click", () => act("ack"));
  document.getElementById("waiting").addEventListener("click", () => act("waiting"));
  document.getElementById("resolve").addEventListener("click", () =>
    act("resolve", {outcome: document.getElementById("outcome").value}));
}
