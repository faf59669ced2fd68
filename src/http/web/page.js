// The node's page: each camera's latest analysed frame, the last incidents with verdict buttons,
// the suppressions, and an editor that saves zones, lines and algorithm settings to the config
// (installers only). Plain DOM, no framework. Text from the node only ever goes in through
// textContent and attributes, never as HTML.
'use strict';

const REFRESH_MS = 2000;
const SVG = 'http://www.w3.org/2000/svg';
const cameraViews = new Map();
const incidentViews = new Map();
// Who is signed in: {signin, user, role, csrf}.
let session = null;
// The config's cameras as the editor reads them: zones and algorithms as written.
let configCameras = new Map();

function byId(id) {
  return document.getElementById(id);
}

function fromTemplate(id) {
  return byId(id).content.firstElementChild.cloneNode(true);
}

function svgElement(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
}

function localTime(rfc3339) {
  return new Date(rfc3339).toLocaleString();
}

class SignedOut extends Error {}

async function getJson(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (response.status === 401) throw new SignedOut();
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

// A change: JSON with the session's CSRF token. Its status and JSON answer.
async function post(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf || '' },
    body: JSON.stringify(body),
  });
  let json = {};
  try {
    json = await response.json();
  } catch {
    // An answer without JSON: the status says it all.
  }
  if (response.status === 401) showSignIn('Your session ended: sign in again.');
  return { ok: response.ok, status: response.status, json };
}

function installer() {
  return session && session.role === 'installer';
}

async function start() {
  session = await getJson('/api/session');
  if (session.signin && !session.user) {
    showSignIn('');
    return;
  }
  byId('signin').hidden = true;
  document.querySelector('main').hidden = false;
  byId('user').textContent = session.signin ? `${session.user} (${session.role})` : '';
  byId('signout').hidden = !session.signin;
  document.body.classList.toggle('installer', installer());
  await loadConfig();
  refresh();
}

function showSignIn(message) {
  byId('signin').hidden = false;
  document.querySelector('main').hidden = true;
  byId('signout').hidden = true;
  byId('user').textContent = '';
  byId('signin-error').textContent = message;
}

byId('signin').addEventListener('submit', async (event) => {
  event.preventDefault();
  const response = await fetch('/api/signin', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: byId('signin-name').value, password: byId('signin-password').value }),
  });
  const json = await response.json().catch(() => ({}));
  byId('signin-password').value = '';
  if (!response.ok) {
    byId('signin-error').textContent = json.error || `refused (${response.status})`;
    return;
  }
  start();
});

byId('signout').addEventListener('click', async () => {
  await post('/api/signout', {});
  location.reload();
});

let refreshing = null;

async function refresh() {
  clearTimeout(refreshing);
  try {
    const [cameras, incidents, suppressions] = await Promise.all([
      getJson('/api/cameras'), getJson('/api/incidents'), getJson('/api/suppressions'),
    ]);
    byId('node').textContent = cameras.node;
    document.title = `cityeye ${cameras.node}`;
    showCameras(cameras.cameras);
    showIncidents(incidents.incidents);
    showSuppressions(suppressions);
    byId('status').textContent = '';
  } catch (error) {
    if (error instanceof SignedOut) {
      showSignIn('Your session ended: sign in again.');
      return;
    }
    byId('status').textContent = `cannot reach the node: ${error.message}`;
  }
  refreshing = setTimeout(refresh, REFRESH_MS);
}

async function loadConfig() {
  try {
    const config = await getJson('/api/config');
    configCameras = new Map(config.cameras.map((c) => [c.id, c]));
  } catch {
    // A node without a config file to edit: the editor only copies.
    configCameras = new Map();
  }
  for (const view of cameraViews.values()) showAlgorithms(view);
}

// --- Cameras ---------------------------------------------------------------------------------

function showCameras(cameras) {
  const ids = new Set(cameras.map((c) => c.id));
  for (const [id, view] of cameraViews) {
    if (!ids.has(id)) {
      view.node.remove();
      cameraViews.delete(id);
    }
  }
  for (const camera of cameras) {
    let view = cameraViews.get(camera.id);
    if (!view) {
      view = cameraView(camera.id);
      cameraViews.set(camera.id, view);
    }
    showCamera(view, camera);
  }
}

function cameraView(id) {
  const node = fromTemplate('camera-template');
  node.dataset.camera = id;
  const part = (selector) => node.querySelector(selector);
  const view = {
    node,
    id,
    part,
    svg: part('svg.editor'),
    name: part('input.zone-name'),
    toml: part('pre.toml'),
    size: null,
    zones: [],
    points: [],
    shownFrame: null,
    // While a line is drawn: the input that gets it, and its points.
    line: null,
  };
  part('.id').textContent = id;
  view.svg.addEventListener('click', (event) => addPoint(view, event));
  view.name.addEventListener('input', () => drawEditor(view));
  part('button.undo').addEventListener('click', () => {
    view.points.pop();
    drawEditor(view);
  });
  part('button.clear').addEventListener('click', () => {
    view.points = [];
    drawEditor(view);
  });
  part('button.copy').addEventListener('click', () => copy(view));
  part('button.save-zone').addEventListener('click', () => saveZone(view));
  part('select.zone-pick').addEventListener('change', (event) => pickZone(view, event.target.value));
  byId('cameras').append(node);
  drawEditor(view);
  showAlgorithms(view);
  return view;
}

function pickZone(view, name) {
  const zone = view.zones.find((z) => z.name === name);
  view.name.value = zone ? zone.name : 'zone1';
  view.points = zone ? zone.polygon.map(([x, y]) => [x, y]) : [];
  drawEditor(view);
}

function showZonePicker(view) {
  const pick = view.part('select.zone-pick');
  const names = view.zones.map((z) => z.name);
  const shown = [...pick.options].slice(1).map((o) => o.value);
  if (names.join('\n') === shown.join('\n')) return;
  const chosen = pick.value;
  pick.replaceChildren(pick.options[0]);
  for (const name of names) {
    const option = document.createElement('option');
    option.value = name;
    option.textContent = name;
    pick.append(option);
  }
  pick.value = names.includes(chosen) ? chosen : '';
}

async function saveZone(view) {
  const error = view.part('.zone-error');
  error.textContent = '';
  const name = view.name.value.trim();
  const answer = await post('/api/config/edit', {
    camera: view.id, changes: [{ zone: name, polygon: view.points }],
  });
  if (answer.ok) {
    view.part('.copied').textContent = 'saved';
    setTimeout(() => { view.part('.copied').textContent = ''; }, 3000);
    view.points = [];
    drawEditor(view);
    loadConfig();
    return;
  }
  error.textContent = explain(answer);
}

// What went wrong, in the node's words: each mistake with its key.
function explain(answer) {
  if (answer.json.errors) {
    return answer.json.errors.map((e) => (e.key ? `${e.key}: ${e.message}` : e.message)).join('\n');
  }
  return answer.json.error || `refused (${answer.status})`;
}

// --- Algorithm editor ----------------------------------------------------------------------

function showAlgorithms(view) {
  const list = view.part('.algorithm-list');
  const camera = configCameras.get(view.id);
  const algorithms = camera ? camera.algorithms : [];
  const shown = JSON.stringify(algorithms);
  if (list.dataset.shown === shown) return;
  list.dataset.shown = shown;
  list.replaceChildren(...algorithms.map((fields, index) => algorithmForm(view, index, fields)));
  view.part('.algorithms').hidden = algorithms.length === 0;
}

function algorithmForm(view, index, fields) {
  const form = fromTemplate('algorithm-template');
  form.dataset.algorithm = index;
  form.querySelector('.type').textContent = (fields.type || '').replace(/^"|"$/g, '');
  form.querySelector('.index').textContent = `#${index}`;
  const box = form.querySelector('.fields');
  for (const [key, value] of Object.entries(fields)) {
    if (key === 'type') continue;
    const field = fromTemplate('field-template');
    field.dataset.key = key;
    field.querySelector('.key').textContent = key;
    const input = field.querySelector('input.value');
    input.value = value;
    input.dataset.original = value;
    input.disabled = !installer();
    const draw = field.querySelector('button.draw-line');
    draw.hidden = key !== 'line' || !installer();
    draw.addEventListener('click', () => {
      view.line = { input, points: [] };
      view.part('.note').textContent = 'Click the two ends of the line on the picture.';
    });
    box.append(field);
  }
  form.querySelector('.add').hidden = !installer();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    saveAlgorithm(view, form, index);
  });
  return form;
}

async function saveAlgorithm(view, form, index) {
  for (const e of form.querySelectorAll('.error')) e.textContent = '';
  const changes = [];
  for (const input of form.querySelectorAll('input.value')) {
    const value = input.value.trim();
    if (value === input.dataset.original) continue;
    const key = input.closest('.field').dataset.key;
    changes.push({ algorithm: index, key, value: value === '' ? null : value });
  }
  const newKey = form.querySelector('.new-key').value.trim();
  if (newKey) {
    changes.push({ algorithm: index, key: newKey, value: form.querySelector('.new-value').value.trim() });
  }
  if (!changes.length) return;
  const answer = await post('/api/config/edit', { camera: view.id, changes });
  if (answer.ok) {
    form.querySelector('.saved').textContent = 'saved';
    configCameras = new Map();
    loadConfig();
    return;
  }
  // Each mistake next to its field when it names one of this algorithm's settings.
  for (const e of answer.json.errors || []) {
    const match = /^cameras\[\d+\]\.algorithms\[(\d+)\]\.([a-z0-9_]+)/.exec(e.key);
    const field = match && Number(match[1]) === index &&
      [...form.querySelectorAll('.field')].find((f) => f.dataset.key === match[2]);
    const where = field ? field.querySelector('.field-error') : form.querySelector('.algorithm-error');
    where.textContent = [where.textContent, field ? e.message : `${e.key}: ${e.message}`]
      .filter(Boolean).join('\n');
  }
  if (!answer.json.errors) form.querySelector('.algorithm-error').textContent = explain(answer);
}

function showCamera(view, camera) {
  const state = view.part('.state');
  state.textContent = camera.state;
  state.className = `state ${camera.state}`;
  const frame = camera.frame;
  view.part('.waiting').hidden = Boolean(frame);
  view.part('.stage').hidden = !frame;
  if (!frame) return;
  view.part('.time').textContent =
    `${localTime(frame.captured_at)} · ${frame.objects} objects tracked`;
  if (frame.captured_at !== view.shownFrame) {
    view.shownFrame = frame.captured_at;
    // The browser keeps showing the previous picture until this one has loaded.
    view.part('img.frame').src = `${frame.url}?at=${encodeURIComponent(frame.captured_at)}`;
  }
  view.zones = camera.zones;
  showZonePicker(view);
  const lines = camera.lines.length;
  const names = camera.zones.map((z) => z.name).join(', ');
  view.part('.overlay').textContent =
    `Zones: ${names || 'none'}. Lines: ${lines || 'none'}. Drawn in yellow, tracked objects in green.`;
  if (!view.size || view.size.width !== frame.width || view.size.height !== frame.height) {
    view.size = { width: frame.width, height: frame.height };
    view.svg.setAttribute('viewBox', `0 0 ${frame.width} ${frame.height}`);
  }
  drawEditor(view);
}

// --- Zone editor -----------------------------------------------------------------------------

// Config coordinates: fractions of the frame, 3 decimals (a pixel of a 1000-pixel-wide frame).
function fraction(offset, length) {
  return Math.round(Math.min(1, Math.max(0, offset / length)) * 1000) / 1000;
}

function addPoint(view, event) {
  const box = view.svg.getBoundingClientRect();
  const point = [
    fraction(event.clientX - box.left, box.width),
    fraction(event.clientY - box.top, box.height),
  ];
  if (view.line) {
    view.line.points.push(point);
    if (view.line.points.length === 2) {
      const [[x1, y1], [x2, y2]] = view.line.points;
      view.line.input.value =
        `[[${tomlNumber(x1)}, ${tomlNumber(y1)}], [${tomlNumber(x2)}, ${tomlNumber(y2)}]]`;
      view.line = null;
      drawEditor(view);
    }
    return;
  }
  view.points.push(point);
  drawEditor(view);
}

// TOML floats: 1.0 rather than 1, the way the config's examples write them.
function tomlNumber(value) {
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

function tomlString(text) {
  const escaped = text
    .replace(/[\\"]/g, (c) => `\\${c}`)
    .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `"${escaped}"`;
}

function zoneToml(name, points) {
  const polygon = points.map(([x, y]) => `[${tomlNumber(x)}, ${tomlNumber(y)}]`).join(', ');
  return `[[cameras.zones]]\nname = ${tomlString(name)}\npolygon = [${polygon}]`;
}

function drawEditor(view) {
  const name = view.name.value.trim();
  const complete = view.points.length >= 3 && name !== '';
  view.toml.textContent = complete ? zoneToml(name, view.points) : '';
  let note;
  let warning = true;
  if (view.points.length < 3) {
    note = `Click at least 3 points on the picture (${view.points.length} so far).`;
  } else if (!name) {
    note = 'Give the zone a name.';
  } else if (view.zones.some((z) => z.name === name)) {
    note = `Saving replaces the camera's zone ${tomlString(name)}.`;
    warning = false;
  } else {
    note = `Paste it under the [[cameras]] block with id = ${tomlString(view.id)}.`;
    warning = false;
  }
  view.part('.note').textContent = note;
  view.part('.note').classList.toggle('warning', warning);
  view.part('button.copy').disabled = !complete;
  view.part('button.save-zone').disabled = !complete;
  view.svg.replaceChildren();
  if (!view.size) return;
  const { width, height } = view.size;
  for (const zone of view.zones) {
    const [x, y] = zone.polygon[0];
    const label = svgElement('text', {
      class: 'label', x: x * width + 4, y: y * height + height / 24, 'font-size': height / 28,
    });
    label.textContent = zone.name;
    view.svg.append(label);
  }
  const pixels = view.points.map(([x, y]) => `${x * width},${y * height}`).join(' ');
  if (view.points.length > 1) {
    view.svg.append(svgElement('polygon', {
      class: 'draft', points: pixels, 'vector-effect': 'non-scaling-stroke',
    }));
  }
  for (const [x, y] of view.points) {
    view.svg.append(svgElement('circle', {
      class: 'vertex', cx: x * width, cy: y * height, r: Math.max(width, height) / 150,
    }));
  }
}

async function copy(view) {
  const text = view.toml.textContent;
  if (!text) return;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // The clipboard API needs a secure context: plain HTTP on another address than loopback
    // is not one. Selecting the text lets the older command copy it.
    const range = document.createRange();
    range.selectNodeContents(view.toml);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand('copy');
  }
  const copied = view.part('.copied');
  copied.textContent = 'copied';
  setTimeout(() => { copied.textContent = ''; }, 1500);
}

// --- Incidents -------------------------------------------------------------------------------

function showIncidents(incidents) {
  const list = byId('incidents');
  const ids = new Set(incidents.map((i) => i.message.id));
  for (const [id, node] of incidentViews) {
    if (!ids.has(id)) {
      node.remove();
      incidentViews.delete(id);
    }
  }
  incidents.forEach((incident, index) => {
    const message = incident.message;
    let node = incidentViews.get(message.id);
    if (!node) {
      node = incidentView(incident);
      incidentViews.set(message.id, node);
    }
    const part = (selector) => node.querySelector(selector);
    part('.state').textContent = message.state;
    const objects = message.objects.map((o) => `${o.class} #${o.track_id}`).join(', ');
    part('.objects').textContent = objects ? `Objects: ${objects}` : '';
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  });
  byId('no-incidents').hidden = incidents.length > 0;
}

function incidentView(incident) {
  const message = incident.message;
  const node = fromTemplate('incident-template');
  node.dataset.incident = message.id;
  const part = (selector) => node.querySelector(selector);
  part('.name-en').textContent = message.name_en;
  part('.name-zh').textContent = message.name_zh;
  const severity = part('.severity');
  severity.textContent = message.severity;
  severity.classList.add(message.severity);
  const zone = message.zone ? ` · zone ${message.zone}` : '';
  part('.where').textContent = `Camera ${message.camera}${zone} · ${message.algorithm}`;
  part('.when').textContent = `Started ${localTime(incident.started_at)}`;
  part('.snapshot-link').hidden = !incident.snapshot;
  part('.no-snapshot').hidden = Boolean(incident.snapshot);
  if (incident.snapshot) {
    part('.snapshot-link').href = incident.snapshot;
    part('img.snapshot').src = incident.snapshot;
  }
  for (const [selector, verdict] of [['button.confirm', 'confirmed'], ['button.false-positive', 'false_positive']]) {
    part(selector).addEventListener('click', async () => {
      const answer = await post(`/api/incidents/${message.id}/verdict`, {
        camera: message.camera, verdict, note: part('.verdict-note').value.trim() || null,
      });
      part('.verdict').textContent = answer.ok
        ? (verdict === 'false_positive' ? 'marked a false alarm: its place is silenced' : 'confirmed')
        : explain(answer);
      if (answer.ok) refresh();
    });
  }
  return node;
}

// --- Suppressions ----------------------------------------------------------------------------

function showSuppressions(answer) {
  const list = byId('suppressions');
  const shown = JSON.stringify(answer);
  if (list.dataset.shown === shown) return;
  list.dataset.shown = shown;
  list.replaceChildren(...answer.suppressions.map((s) => {
    const node = fromTemplate('suppression-template');
    node.dataset.suppression = s.id;
    const part = (selector) => node.querySelector(selector);
    const classes = [...new Set(s.objects.map((o) => o.class))].join(', ');
    part('.what').textContent = `${s.camera} · ${s.algorithm} · ${classes}`;
    part('.why').textContent = `False alarm by ${s.by}${s.note ? `: ${s.note}` : ''}`;
    part('.until').textContent = `Silenced until ${localTime(s.expires_at)}`;
    part('img.snapshot').hidden = !s.snapshot_url;
    if (s.snapshot_url) part('img.snapshot').src = s.snapshot_url;
    part('button.remove').hidden = !answer.can_remove;
    part('button.remove').addEventListener('click', async () => {
      const removed = await post(`/api/suppressions/${s.id}/remove`, {});
      if (removed.ok) refresh();
      else part('.until').textContent = explain(removed);
    });
    return node;
  }));
  byId('no-suppressions').hidden = answer.suppressions.length > 0;
}

start().catch((error) => {
  byId('status').textContent = `cannot reach the node: ${error.message}`;
});
