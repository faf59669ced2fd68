// The node's page: each camera's latest analysed frame, the last incidents, and a zone editor
// that turns clicks on a frame into a [[cameras.zones]] block. Plain DOM, no framework. Text
// from the node only ever goes in through textContent and attributes, never as HTML.
'use strict';

const REFRESH_MS = 2000;
const SVG = 'http://www.w3.org/2000/svg';
const cameraViews = new Map();
const incidentViews = new Map();

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

async function getJson(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

async function refresh() {
  try {
    const [cameras, incidents] =
      await Promise.all([getJson('/api/cameras'), getJson('/api/incidents')]);
    byId('node').textContent = cameras.node;
    document.title = `cityeye ${cameras.node}`;
    showCameras(cameras.cameras);
    showIncidents(incidents.incidents);
    byId('status').textContent = '';
  } catch (error) {
    byId('status').textContent = `cannot reach the node: ${error.message}`;
  }
  setTimeout(refresh, REFRESH_MS);
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
  byId('cameras').append(node);
  drawEditor(view);
  return view;
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
  view.points.push([
    fraction(event.clientX - box.left, box.width),
    fraction(event.clientY - box.top, box.height),
  ]);
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
    note = `This camera already has a zone named ${tomlString(name)}: pick another name, or ` +
      'replace that zone in the config.';
  } else {
    note = `Paste it under the [[cameras]] block with id = ${tomlString(view.id)}.`;
    warning = false;
  }
  view.part('.note').textContent = note;
  view.part('.note').classList.toggle('warning', warning);
  view.part('button.copy').disabled = !complete;
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
  return node;
}

refresh();
