// The page's Profiles card: create one (portraits, a voice sample, the consent), see its
// transcript and correct it, delete it; and the profile choice of New video. Uses app.js's
// api() and showError(); the server answers with the signed-in user's profiles only.
"use strict";

(() => {
  const el = (id) => document.getElementById(id);
  let shown = null;  // the name of the profile whose detail is open

  async function refreshProfiles() {
    let listing;
    try {
      listing = await api("GET", "/api/profiles");
    } catch (err) {
      return;  // signed out: team.js says so
    }
    const names = listing.profiles.map((p) => p.name);
    el("profile-list").replaceChildren(...listing.profiles.map(item));
    el("no-profiles").hidden = names.length > 0;
    const select = el("profile");
    const chosen = select.value;
    select.replaceChildren(new Option("none", ""), ...names.map((n) => new Option(n, n, false, n === chosen)));
    if (shown && !names.includes(shown)) { shown = null; el("profile-detail").hidden = true; }
    portraitChoice();
  }

  function item(profile) {
    const li = document.createElement("li");
    li.dataset.name = profile.name;
    const name = document.createElement("button");
    name.type = "button";
    name.className = "link";
    name.textContent = profile.name;
    name.addEventListener("click", () => show(profile.name));
    const about = document.createElement("span");
    about.className = "quiet";
    about.textContent = ` ${profile.images} image${profile.images === 1 ? "" : "s"}, `
      + (profile.voice_seconds ? `voice ${profile.voice_seconds.toFixed(1)} s, ` : "no voice, ")
      + `consent ${profile.consent_date}`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link";
    remove.textContent = "delete";
    remove.addEventListener("click", () => drop(profile.name));
    li.append(name, about, remove);
    return li;
  }

  async function show(name) {
    showError("");
    try {
      const profile = await api("GET", `/api/profiles/${encodeURIComponent(name)}`);
      shown = profile.name;
      el("profile-detail-name").textContent = profile.name;
      el("profile-portrait").src = profile.links.portrait;
      const voice = profile.voice;
      el("profile-voice-info").textContent = voice
        ? `Voice: ${voice.seconds.toFixed(1)} s kept of ${voice.source_seconds.toFixed(1)} s; transcript ${voice.transcript_source}.`
        : "No voice sample: videos use the chosen voice.";
      el("profile-transcript").value = voice ? voice.transcript : "";
      el("profile-transcript").disabled = !voice;
      el("profile-save-text").disabled = !voice;
      el("profile-saved").textContent = "";
      const c = profile.consent;
      el("profile-consent").textContent = `Consent of ${c.date} by ${c.who || c.account || "(no name given)"}: "${c.text}"`;
      el("profile-detail").hidden = false;
    } catch (err) {
      showError(err.message);
    }
  }

  async function saveText() {
    showError("");
    try {
      await api("PUT", `/api/profiles/${encodeURIComponent(shown)}/voice-text`, { text: el("profile-transcript").value });
      await show(shown);  // as stored now: "corrected by the user"
      el("profile-saved").textContent = "saved";
    } catch (err) {
      showError(err.message);
    }
  }

  async function drop(name) {
    showError("");
    try {
      await api("DELETE", `/api/profiles/${encodeURIComponent(name)}`);
    } catch (err) {
      showError(err.message);
    }
    refreshProfiles();
  }

  async function create(event) {
    event.preventDefault();
    showError("");
    const form = new FormData();
    form.append("name", el("profile-name").value.trim());
    for (const file of el("profile-images").files) form.append("image", file);
    if (el("profile-voice").files[0]) form.append("voice", el("profile-voice").files[0]);
    if (el("profile-voice-text").value.trim()) form.append("voice_text", el("profile-voice-text").value.trim());
    form.append("consent", el("profile-consent-text").value);
    const button = el("profile-create");
    button.disabled = true;
    button.textContent = "Creating (checking the faces, transcribing the voice)...";
    try {
      const made = await api("POST", "/api/profiles", form);
      el("profile-form").reset();
      await refreshProfiles();
      await show(made.name);  // the transcript, for correction
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
      button.textContent = "Create the profile";
    }
  }

  function portraitChoice() {
    // a profile brings the portrait: no upload beside it
    el("image").disabled = Boolean(el("profile").value);
  }

  document.addEventListener("DOMContentLoaded", () => {
    el("profile-form").addEventListener("submit", create);
    el("profile-save-text").addEventListener("click", saveText);
    el("profile").addEventListener("change", portraitChoice);
    document.addEventListener("podium:signed-in", refreshProfiles);
    refreshProfiles();
  });
})();
