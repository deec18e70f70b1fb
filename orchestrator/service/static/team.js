// Who uses the page of a shared `podium serve`: sign in with a token (the server answers with
// an HttpOnly, SameSite=Strict session cookie this script never sees), show who is signed in,
// sign out, and for admins the users with their usage. app.js asks for the jobs; the server
// answers with the signed-in user's only.
"use strict";

(() => {
  const el = (id) => document.getElementById(id);

  async function call(method, path, body) {
    const options = { method, headers: {} };
    if (body) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body); }
    const response = await fetch(path, options);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    return { status: response.status, data };
  }

  function showSignedIn(me) {
    el("who-name").textContent = me.name;
    el("who-role").textContent = me.implicit ? "(this machine's admin: nothing to sign in to)" : `(${me.role})`;
    el("sign-out").hidden = me.implicit;
    el("who").hidden = false;
    el("sign-in").hidden = true;
    el("admin").hidden = me.role !== "admin";
    if (me.role === "admin") loadUsers();
  }

  function showSignedOut(note) {
    el("who").hidden = true;
    el("admin").hidden = true;
    el("sign-in").hidden = false;
    el("jobs").tBodies[0].replaceChildren();
    if (note !== undefined) el("sign-in-note").textContent = note;
  }

  async function whoAmI() {
    const answer = await call("GET", "/api/me");
    if (answer.status === 200) { showSignedIn(answer.data); return; }
    showSignedOut(answer.data && answer.data.detail && answer.data.field === "session" ? answer.data.detail : "");
  }

  async function signIn(event) {
    event.preventDefault();
    const answer = await call("POST", "/api/session", { token: el("token").value.trim() });
    el("token").value = "";
    if (answer.status !== 200) {
      el("sign-in-note").textContent = (answer.data && answer.data.detail) || `refused (${answer.status})`;
      return;
    }
    el("sign-in-note").textContent = "";
    showSignedIn(answer.data);
    document.dispatchEvent(new CustomEvent("podium:signed-in"));
  }

  async function signOut() {
    await call("DELETE", "/api/session");
    showSignedOut("signed out");
  }

  async function loadUsers() {
    const answer = await call("GET", "/api/users");
    if (answer.status !== 200) return;
    const rows = answer.data.users.map((user) => {
      const row = document.createElement("tr");
      row.dataset.name = user.name;
      for (const value of [user.name, user.role, user.tokens, user.usage.jobs, user.usage.active,
                           user.usage.render_minutes_today, user.usage.upload_mb_today]) {
        const td = document.createElement("td");
        td.textContent = String(value);
        row.append(td);
      }
      return row;
    });
    el("users").tBodies[0].replaceChildren(...rows);
    const trail = await call("GET", "/api/audit?limit=5000");
    if (trail.status !== 200) return;
    const events = trail.data.audit.slice(-50).reverse().map((event) => {
      const row = document.createElement("tr");
      for (const value of [new Date(event.at * 1000).toLocaleString(), event.actor, event.action, event.target || ""]) {
        const td = document.createElement("td");
        td.textContent = value;
        row.append(td);
      }
      return row;
    });
    el("audit").tBodies[0].replaceChildren(...events);
  }

  document.addEventListener("podium:unauthorized", () => { if (el("sign-in").hidden) whoAmI(); });
  document.addEventListener("DOMContentLoaded", () => {
    el("sign-in").addEventListener("submit", signIn);
    el("sign-out").addEventListener("click", signOut);
    whoAmI();
  });
})();
