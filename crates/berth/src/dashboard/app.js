// Berth's dashboard: polls /api/state and /api/metrics, follows logs over server-sent events,
// and acts through POSTs carrying the dashboard's header. Rows are kept by key and updated in
// place, so a click or a value being typed survives the next refresh. Text goes in through
// textContent only.
'use strict';

const REFRESH_MS = 2000;
const MAX_LOG_LINES = 2000;
let state = null;
let metrics = { containers: {}, pods: {} };
let logSource = null;

const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k);
  return e;
}

function bytes(n) {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
}

function age(seconds) {
  const s = Math.max(0, Math.floor(Date.now() / 1000 - seconds));
  if (s < 120) return s + 's';
  if (s < 7200) return Math.floor(s / 60) + 'm';
  if (s < 172800) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

function toast(msg, ok) {
  const t = $('#toast');
  t.textContent = msg;
  t.className = ok ? 'ok' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

async function api(path, opts) {
  const r = await fetch(path, opts);
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).message || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

async function act(path, body, done) {
  try {
    await api(path, {
      method: 'POST',
      headers: { 'X-Berth-Dashboard': '1', 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
    toast(done, true);
    refresh();
  } catch (e) {
    toast(e.message);
  }
}

function button(label, onclick, act_name) {
  const b = el('button', { class: 'act', textContent: label, 'data-act': act_name || label.toLowerCase() });
  b.addEventListener('click', onclick);
  return b;
}

// Keep a tbody's rows in step with `items`: existing rows (by key) are updated, new ones made,
// gone ones removed.
function sync(section, items, key, make, update, empty) {
  const body = $('#' + section + ' tbody');
  const rows = new Map([...body.children].filter(r => r.dataset.key).map(r => [r.dataset.key, r]));
  const keep = new Set();
  let prev = null;
  for (const item of items) {
    const k = key(item);
    keep.add(k);
    let row = rows.get(k);
    if (!row) {
      row = make(item);
      row.dataset.key = k;
    }
    update(row, item);
    const at = prev ? prev.nextSibling : body.firstChild;
    if (row !== at) body.insertBefore(row, at);
    prev = row;
  }
  for (const [k, r] of rows) if (!keep.has(k)) r.remove();
  const placeholder = body.querySelector('td.empty');
  if (!items.length && !placeholder) {
    const cols = $('#' + section + ' thead tr').children.length;
    body.append(el('tr', {}, el('td', { class: 'empty', colSpan: cols, textContent: empty })));
  } else if (items.length && placeholder) {
    placeholder.parentElement.remove();
  }
}

function cells(row, n) {
  while (row.children.length < n) row.append(el('td'));
  return [...row.children];
}

function setText(td, text, cls) {
  if (td.textContent !== String(text)) td.textContent = text;
  if (cls !== undefined && td.className !== cls) td.className = cls;
}

// A sparkline of CPU (blue, scaled to at least one CPU) and memory (green, to its own peak).
function plot(svg, points) {
  const W = 180, H = 34;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('width', W);
  svg.setAttribute('height', H);
  const line = (cls, values, top) => {
    let p = svg.querySelector('polyline.' + cls);
    if (!p) {
      p = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
      p.setAttribute('class', cls);
      svg.append(p);
    }
    const n = values.length;
    const pts = values.map((v, i) => {
      const x = n < 2 ? W : (i / (n - 1)) * W;
      const y = H - 2 - (top > 0 ? (v / top) * (H - 4) : 0);
      return x.toFixed(1) + ',' + y.toFixed(1);
    });
    p.setAttribute('points', pts.join(' '));
  };
  const cpu = points.map(p => p[1]);
  const mem = points.map(p => p[2]);
  line('cpu', cpu, Math.max(100, ...cpu));
  line('mem', mem, Math.max(1, ...mem));
  svg.dataset.samples = points.length;
}

function plotCell(td) {
  let svg = td.querySelector('svg');
  if (!svg) {
    svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'plot');
    td.append(svg);
  }
  return svg;
}

function latest(points) {
  return points && points.length ? points[points.length - 1] : null;
}

function openLogs(id, title) {
  if (logSource) logSource.close();
  const pane = $('#logs');
  const pre = $('#log-lines');
  pre.textContent = '';
  $('#log-title').textContent = 'Logs: ' + title;
  $('#log-state').textContent = 'following';
  pane.hidden = false;
  pane.dataset.container = id;
  const src = new EventSource('/api/logs/' + encodeURIComponent(id));
  logSource = src;
  src.onmessage = (ev) => {
    pre.append(document.createTextNode(ev.data + '\n'));
    while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
    if ($('#log-follow').checked) pre.scrollTop = pre.scrollHeight;
  };
  src.addEventListener('end', () => {
    $('#log-state').textContent = 'the container stopped';
    src.close();
  });
  src.onerror = () => {
    if (src.readyState === EventSource.CLOSED || logSource !== src) return;
    $('#log-state').textContent = 'disconnected';
    src.close();
  };
}

function closeLogs() {
  if (logSource) logSource.close();
  logSource = null;
  $('#logs').hidden = true;
}

function renderContainers() {
  const list = state.containers || [];
  sync('containers', list, c => c.Id, (c) => {
    const row = el('tr');
    cells(row, 7);
    return row;
  }, (row, c) => {
    const name = (c.Names && c.Names[0] || c.Id).replace(/^\//, '');
    row.dataset.name = name;
    row.dataset.id = c.Id;
    const td = cells(row, 7);
    setText(td[0], name);
    setText(td[1], c.Image);
    setText(td[2], c.Status || c.State, 'state ' + c.State);
    const pts = metrics.containers[c.Id] || [];
    const last = latest(pts);
    setText(td[3], last ? last[1].toFixed(1) + '%' : '', 'cpu');
    setText(td[4], last ? bytes(last[2]) : '', 'mem');
    plot(plotCell(td[5]), pts);
    const running = c.State === 'running';
    const want = running ? 'running' : 'stopped';
    if (td[6].dataset.mode !== want) {
      td[6].dataset.mode = want;
      td[6].replaceChildren(
        button('Logs', () => openLogs(c.Id, name)),
        running
          ? button('Stop', () => act(`/api/containers/${c.Id}/stop`, null, `stopped ${name}`))
          : button('Start', () => act(`/api/containers/${c.Id}/start`, null, `started ${name}`)),
        button('Restart', () => act(`/api/containers/${c.Id}/restart`, null, `restarted ${name}`)),
      );
    }
  }, 'no containers');
}

function renderImages() {
  sync('images', state.images || [], i => i.Id, () => el('tr'), (row, i) => {
    const td = cells(row, 4);
    const tags = (i.RepoTags || []).filter(t => t !== '<none>:<none>');
    row.dataset.name = tags[0] || '<none>';
    setText(td[0], tags.length ? tags.join(', ') : '<none>');
    setText(td[1], i.Id.replace('sha256:', '').slice(0, 12));
    setText(td[2], bytes(i.Size));
    setText(td[3], i.Created ? age(i.Created) + ' ago' : '');
  }, 'no images');
}

function renderCompose() {
  sync('compose', state.compose || [], p => p.Project, () => el('tr'), (row, p) => {
    const td = cells(row, 4);
    row.dataset.name = p.Project;
    setText(td[0], p.Project);
    const svc = Object.entries(p.Services).map(([n, s]) => `${n} ${s.Running}/${s.Total}`).join(', ');
    setText(td[1], svc);
    setText(td[2], p.WorkingDir, 'muted');
    if (!td[3].children.length) {
      const name = p.Project;
      td[3].append(
        button('Stop', () => act(`/api/compose/${encodeURIComponent(name)}/stop`, null, `stopped ${name}`)),
        button('Start', () => act(`/api/compose/${encodeURIComponent(name)}/start`, null, `started ${name}`)),
        button('Restart', () => act(`/api/compose/${encodeURIComponent(name)}/restart`, null, `restarted ${name}`)),
      );
    }
  }, 'no compose projects');
}

function renderPods() {
  sync('pods', state.pods || [], p => p.Namespace + '/' + p.Name, () => el('tr'), (row, p) => {
    const key = p.Namespace + '/' + p.Name;
    row.dataset.name = p.Name;
    const td = cells(row, 10);
    setText(td[0], p.Namespace, 'muted');
    setText(td[1], p.Name);
    setText(td[2], p.Ready);
    const shown = p.Status + '\n' + (p.Message || '');
    if (td[3].dataset.shown !== shown) {
      td[3].dataset.shown = shown;
      td[3].className = 'status ' + p.Status;
      td[3].replaceChildren(p.Status, ...(p.Message ? [el('div', { class: 'why', textContent: p.Message })] : []));
    }
    setText(td[4], p.Restarts);
    setText(td[5], p.IP);
    const pts = metrics.pods[key] || [];
    const last = latest(pts);
    setText(td[6], last ? last[1].toFixed(1) + '%' : '', 'cpu');
    setText(td[7], last ? bytes(last[2]) : '', 'mem');
    plot(plotCell(td[8]), pts);
    const ids = p.Containers.map(c => c.Name + '=' + (c.Id || '')).join(',');
    if (td[9].dataset.ids !== ids) {
      td[9].dataset.ids = ids;
      td[9].replaceChildren(...p.Containers.filter(c => c.Id).map(c =>
        button(p.Containers.length > 1 ? c.Name : 'Logs', () => openLogs(c.Id, `${p.Name}/${c.Name}`), 'logs')));
    }
  }, 'no pods');
}

function renderDeployments() {
  sync('deployments', state.deployments || [], d => d.Namespace + '/' + d.Name, (d) => {
    const row = el('tr');
    const td = cells(row, 9);
    const path = `/api/deployments/${encodeURIComponent(d.Namespace)}/${encodeURIComponent(d.Name)}`;
    const input = el('input', { class: 'replicas', type: 'number', min: 0, value: d.Replicas });
    td[7].append(input, button('Scale', () => {
      const n = parseInt(input.value, 10);
      if (!(n >= 0)) { toast('replicas: a whole number'); return; }
      act(path + '/scale', { replicas: n }, `scaled ${d.Name} to ${n}`);
    }));
    td[8].append(button('Roll back', () => act(path + '/rollback', null, `rolling ${d.Name} back`), 'rollback'));
    return row;
  }, (row, d) => {
    row.dataset.name = d.Name;
    const td = cells(row, 9);
    setText(td[0], d.Namespace, 'muted');
    setText(td[1], d.Name);
    setText(td[2], `${d.Ready}/${d.Replicas}`, 'ready');
    setText(td[3], d.Updated);
    setText(td[4], d.Available);
    setText(td[5], d.Revision, 'revision');
    setText(td[6], d.Images.join(', '));
    const input = td[7].querySelector('input');
    if (document.activeElement !== input && input.dataset.shown !== String(d.Replicas)) {
      input.value = d.Replicas;
      input.dataset.shown = d.Replicas;
    }
  }, 'no deployments');
}

function renderServices() {
  sync('services', state.services || [], s => s.Namespace + '/' + s.Name, () => el('tr'), (row, s) => {
    row.dataset.name = s.Name;
    const td = cells(row, 6);
    setText(td[0], s.Namespace, 'muted');
    setText(td[1], s.Name);
    setText(td[2], s.Type);
    setText(td[3], s.ClusterIP);
    setText(td[4], s.Ports);
    setText(td[5], s.Selector ? Object.entries(s.Selector).map(([k, v]) => k + '=' + v).join(',') : '', 'muted');
  }, 'no services');
}

async function refresh() {
  try {
    const [s, m] = await Promise.all([api('/api/state'), api('/api/metrics')]);
    state = s;
    metrics = m;
    for (const b of document.querySelectorAll('nav button.kube')) b.classList.toggle('off', !s.kube);
    renderContainers();
    renderImages();
    renderCompose();
    if (s.kube) {
      renderPods();
      renderDeployments();
      renderServices();
    }
    $('#status').textContent = 'updated ' + new Date().toLocaleTimeString();
    if (!refresh.drawn) {
      refresh.drawn = true;
      performance.mark('berth-first-render');  // for bench/dashboard.sh
    }
  } catch (e) {
    $('#status').textContent = 'cannot reach the daemon: ' + e.message;
  }
}

for (const b of document.querySelectorAll('nav button')) {
  b.addEventListener('click', () => {
    for (const x of document.querySelectorAll('nav button')) x.classList.toggle('active', x === b);
    for (const t of document.querySelectorAll('.tab')) t.classList.toggle('active', t.id === b.dataset.tab);
  });
}
$('#log-close').addEventListener('click', closeLogs);
refresh();
setInterval(refresh, REFRESH_MS);
