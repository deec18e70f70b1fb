// Podium's editor additions (ComfyUI frontend 1.27+):
// - an upload button for the pack's audio file combos (core's audio button works only on an
//   input named "audio"; ours are "file" and "reference_audio", names the graphs bind);
// - "choose an installed model" on Podium Ollama Settings: the models of the Ollama hosts the
//   operator allows (GET /podium/ollama/models), written into the model text, which still takes
//   any name typed.
// Both buttons are added last and are not saved (serialize: false), so the node's saved widget
// values keep their order.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const AUDIO_FLAG = "podium_audio_upload";

async function uploadAudio(file) {
  const body = new FormData();
  body.append("image", file); // ComfyUI's upload route takes any file under this field name
  body.append("type", "input");
  const resp = await api.fetchApi("/upload/image", { method: "POST", body });
  if (resp.status !== 200) throw new Error(`${resp.status} ${resp.statusText}`);
  const data = await resp.json();
  return data.subfolder ? `${data.subfolder}/${data.name}` : data.name;
}

function addAudioUpload(node, inputName) {
  const widget = node.widgets?.find((w) => w.name === inputName);
  if (!widget) return;
  const picker = document.createElement("input");
  Object.assign(picker, { type: "file", accept: "audio/*,video/*" });
  picker.style.display = "none";
  picker.onchange = async () => {
    const file = picker.files?.[0];
    picker.value = "";
    if (!file) return;
    try {
      const name = await uploadAudio(file);
      const values = widget.options?.values;
      if (Array.isArray(values) && !values.includes(name)) values.push(name);
      widget.value = name;
      widget.callback?.(name);
      node.graph?.setDirtyCanvas(true);
    } catch (err) {
      alert(`Podium: the upload failed (${err.message})`);
    }
  };
  document.body.append(picker);
  const button = node.addWidget("button", `upload ${inputName}`, null, () => picker.click(),
                                { serialize: false });
  button.label = `choose ${inputName.replace("_", " ")} to upload`;
  button.serialize = false; // LiteGraph reads this on the widget, not in its options
  const onRemoved = node.onRemoved;
  node.onRemoved = function () {
    picker.remove();
    return onRemoved?.apply(this, arguments);
  };
}

async function chooseOllamaModel(node, event) {
  const model = node.widgets?.find((w) => w.name === "model");
  const host = node.widgets?.find((w) => w.name === "host");
  if (!model) return;
  let items;
  try {
    const query = host?.value ? `?host=${encodeURIComponent(host.value)}` : "";
    const resp = await api.fetchApi(`/podium/ollama/models${query}`);
    const data = await resp.json();
    items = data.models?.length ? data.models
      : [data.error || "no models found: is Ollama running? (ollama pull llama3.2)"];
    if (!data.models?.length) items = items.map((t) => ({ content: t, disabled: true }));
  } catch (err) {
    items = [{ content: `cannot list models (${err.message})`, disabled: true }];
  }
  new LiteGraph.ContextMenu(items, {
    event,
    title: "Ollama models",
    callback: (value) => {
      if (typeof value !== "string") return;
      model.value = value;
      model.callback?.(value);
      node.graph?.setDirtyCanvas(true);
    },
  });
}

app.registerExtension({
  name: "Podium.Widgets",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const required = nodeData?.input?.required ?? {};
    const audio = Object.entries(required)
      .filter(([, spec]) => Array.isArray(spec) && spec[1]?.[AUDIO_FLAG] === true)
      .map(([name]) => name);
    const ollama = nodeData?.name === "PodiumOllamaSettings";
    if (!audio.length && !ollama) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      for (const name of audio) addAudioUpload(this, name);
      if (ollama) {
        const button = this.addWidget("button", "choose model", null,
                                      (_w, _canvas, _node, _pos, event) => chooseOllamaModel(this, event),
                                      { serialize: false });
        button.label = "choose an installed model";
        button.serialize = false;
      }
      return result;
    };
  },
});
