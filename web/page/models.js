/*
 * models.js — which model is writing, and the picker that switches it.
 *
 * GET /api/models gives the running model's facts (name, size, context,
 * chat template) and the models of the server's folder; every
 * `.model-name` and `.model-facts` element shows them. The picker (in the
 * start section) sends POST /api/models; the stories already written keep
 * their model: opening one of another model switches the server back to
 * it, so a state whose "model" is not the one shown makes the page ask
 * again (render.js calls modelSeen).
 * Cost: one GET when the page opens and after a switch; nothing polled.
 */
import { $, S, showError, targetsChanged } from './state.js';
import { api } from './api.js';

const size = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.ceil(n / 1e3)} KB`);
const label = (m) => (m.name && m.name !== m.arch ? m.name : m.file.replace(/\.gguf$/i, ''));

/* "1.2 MB · context 2048 · chat template: no" */
export function modelFacts(m) {
  if (!m || m.error) return m ? m.error : '';
  return `${size(m.size_bytes)} · context ${m.n_ctx_train || '?'} · chat template: ${m.chat_template ? 'yes' : 'no'}`;
}

function show(data) {
  S.models = data;
  const cur = data.current || {};
  S.model = cur.file ? label(cur) : '';
  S.modelFile = cur.file || '';
  for (const el of document.querySelectorAll('.model-name')) el.textContent = S.model || 'unknown';
  for (const el of document.querySelectorAll('.model-facts')) el.textContent = modelFacts(cur);
  const pick = $('model-pick');
  const usable = (data.models || []).filter((m) => m.weights && !m.error);
  if (!usable.some((m) => m.path === cur.path) && cur.path) usable.unshift(cur);
  pick.replaceChildren(...usable.map((m) => {
    const o = document.createElement('option');
    o.value = m.path;
    o.textContent = `${label(m)} (${m.file}, ${modelFacts(m)})`;
    o.selected = m.path === cur.path;
    return o;
  }));
  const can = data.can_switch !== false && usable.length > 1;
  $('model-picker').hidden = usable.length < 2;
  pick.disabled = !can;
  $('model-switch').disabled = !can;
  $('model-msg').textContent = data.can_switch === false ? data.why_not || '' : '';
  targetsChanged();
}

export async function loadModels() {
  try {
    show(await api('GET', '/api/models'));
  } catch (e) {
    show({ current: {}, models: [] }); // an older server: nothing to pick
  }
}

/* A story's state names its model: when that is not the one shown, the
 * server switched (this story reopened with its own): ask again. */
export function modelSeen(file) {
  if (file && S.modelFile && file !== S.modelFile) loadModels();
}

/* The picker's button: switch, then the start section writes with it. */
export async function switchModel() {
  const path = $('model-pick').value;
  if (!path || (S.models && S.models.current && S.models.current.path === path)) return;
  const btn = $('model-switch'), msg = $('model-msg');
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  msg.textContent = 'Loading the model…';
  try {
    show(await api('POST', '/api/models', { path }));
    msg.textContent = `Now writing with ${S.model}. Stories keep the model they were written with.`;
  } catch (e) {
    msg.textContent = e.message;
    showError(e.message);
    await loadModels();
  } finally {
    btn.removeAttribute('aria-busy');
    btn.disabled = $('model-pick').disabled;
  }
}
