/*
 * The job_queue dashboard page.  It polls /api/snapshot once a second (the
 * program queries the database at most once a second for all pages
 * together), keeps the chart samples it gets, and redraws.  Everything
 * that comes from the database is put in the page as text, never as HTML.
 */
'use strict';

const POLL_MS = 1000;
const MAX_SAMPLES = 600;
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

let samples = [];		// {t, q: {queue: [ready, running, ok_1m, failed_1m, pickup_p95, run_p95]}}
let lastSample = 0;
let detailId = null;
let snapshot = null;

/* ---- small helpers ---- */

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function seconds(s) {
  if (s === null || s === undefined) return '';
  if (s < 1) return Math.round(s * 1000) + ' ms';
  if (s < 120) return s.toFixed(s < 10 ? 1 : 0) + ' s';
  if (s < 7200) return Math.round(s / 60) + ' min';
  if (s < 172800) return Math.round(s / 3600) + ' h';
  return Math.round(s / 86400) + ' d';
}

function since(ts, now) {
  return ts ? seconds(now - Date.parse(ts) / 1000) : '';
}

function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return d.toLocaleString();
}

function num(n) {
  return n === null || n === undefined ? '–' : String(n);
}

function jobLink(id) {
  return el('a', {href: '#job-' + id, class: 'job-link', 'data-job-id': id,
                  onclick: (ev) => { ev.preventDefault(); openDetail(id); }}, '#' + id);
}

function fill(tableId, rows, empty) {
  const body = document.querySelector('#' + tableId + ' tbody');
  const cols = document.querySelectorAll('#' + tableId + ' thead th').length;
  body.replaceChildren(...(rows.length ? rows :
    [el('tr', {class: 'empty'}, el('td', {colspan: cols}, empty))]));
}

function flash(message, isError) {
  const f = document.getElementById('flash');
  f.textContent = message;
  f.className = isError ? 'error' : 'ok';
  f.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { f.hidden = true; }, 6000);
}

function progressCell(p) {
  if (!p) return '';
  const fraction = typeof p.fraction === 'number' ? p.fraction : null;
  const message = p.message ?? (p.data !== undefined ? JSON.stringify(p.data) : '');
  const cell = el('div', {class: 'progress'});
  if (fraction !== null) {
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    const bar = el('div', {class: 'bar'});
    bar.style.width = pct + '%';
    cell.append(el('div', {class: 'track'}, bar), el('span', {class: 'pct'}, pct + '%'));
  }
  if (message) cell.append(el('span', {class: 'progress-message'}, message));
  return cell;
}

/* ---- actions ---- */

async function act(action, id) {
  if (action === 'cancel' && !confirm('Cancel job ' + id + '?')) return;
  try {
    const r = await fetch('/api/' + action + '?id=' + encodeURIComponent(id), {
      method: 'POST', headers: {'X-CSRF-Token': csrfToken}, credentials: 'same-origin'});
    const text = await r.text();
    let body = {};
    try { body = JSON.parse(text); } catch (e) { body = {error: text}; }
    if (!r.ok) flash('job ' + id + ': ' + (body.error || r.statusText), true);
    else if (action === 'retry') flash('job ' + id + ' queued again', false);
    else flash(body.done ? 'job ' + id + ' cancelled' : 'job ' + id + ' had already finished', !body.done);
  } catch (e) {
    flash('job ' + id + ': ' + e.message, true);
  }
  poll();
  if (detailId === id) openDetail(id);
}

function button(label, action, id) {
  return el('button', {type: 'button', class: action, 'data-job-id': id,
                       onclick: () => act(action, id)}, label);
}

/* ---- tables ---- */

function renderQueues(s) {
  const rows = s.queues.map((q) => {
    const limits = [];
    if (q.concurrency) limits.push('concurrency ' + q.concurrency);
    if (q.rate_limit) limits.push(q.rate_limit + ' per ' + seconds(q.rate_period));
    if (q.max_ready) limits.push('max ready ' + q.max_ready);
    if (q.external_only) limits.push('external workers only');
    return el('tr', {'data-queue': q.queue},
      el('td', {class: 'name'}, q.queue),
      el('td', {}, el('span', {class: q.paused ? 'badge paused' : 'badge active'}, q.paused ? 'paused' : 'active')),
      el('td', {class: 'n'}, q.waiting), el('td', {class: 'n'}, q.scheduled),
      el('td', {class: 'n'}, q.ready), el('td', {class: 'n'}, q.running),
      el('td', {class: 'n'}, q.retrying), el('td', {class: 'n'}, seconds(q.oldest_ready_age)),
      el('td', {class: 'n'}, num(q.succeeded_1m)), el('td', {class: 'n'}, num(q.failed_1m)),
      el('td', {class: 'n'}, num(q.succeeded_1h)), el('td', {class: 'n'}, num(q.failed_1h)),
      el('td', {class: 'n'}, seconds(q.pickup_p95_1m)), el('td', {class: 'n'}, seconds(q.run_p95_1m)),
      el('td', {}, limits.join(', ')));
  });
  fill('queues', rows, 'no queue has jobs or settings');
}

function renderRunning(s) {
  const rows = s.running.map((j) => el('tr', {'data-job-id': j.id},
    el('td', {}, jobLink(j.id)), el('td', {}, j.queue),
    el('td', {class: 'command'}, j.command),
    el('td', {}, j.owner),
    el('td', {}, j.executor_pid ? 'executor ' + j.executor_pid : (j.lease_owner || '')),
    el('td', {class: 'n'}, j.attempt + '/' + j.max_attempts),
    el('td', {class: 'n'}, since(j.started_at, s.time)),
    el('td', {class: 'progress-cell'}, progressCell(j.progress)),
    el('td', {}, button('Cancel', 'cancel', j.id))));
  document.getElementById('running-count').textContent = s.running.length ? '(' + s.running.length + ')' : '';
  fill('running', rows, 'no job is running');
}

function errorList(errors) {
  const list = el('ol', {class: 'errors'});
  for (const e of errors || []) {
    list.append(el('li', {value: e.attempt || ''},
      el('span', {class: 'error-message'}, e.message || ''),
      e.code ? el('span', {class: 'code'}, ' [' + e.code + ']') : null,
      e.timeout ? el('span', {class: 'code'}, ' timeout') : null));
  }
  return list;
}

function renderFailed(s) {
  const rows = s.failed.map((j) => el('tr', {'data-job-id': j.id},
    el('td', {}, jobLink(j.id)), el('td', {}, j.queue),
    el('td', {class: 'command'}, j.command), el('td', {}, j.owner),
    el('td', {}, when(j.finished_at)),
    el('td', {}, errorList(j.errors)),
    el('td', {}, button('Retry', 'retry', j.id))));
  document.getElementById('failed-count').textContent =
    s.failed.length >= 50 ? '(the last 50)' : s.failed.length ? '(' + s.failed.length + ')' : '';
  fill('failed', rows, 'no failed job');
}

function renderRecent(s) {
  const rows = s.recent.map((j) => el('tr', {'data-job-id': j.id, 'data-state': j.state},
    el('td', {}, jobLink(j.id)), el('td', {}, j.queue),
    el('td', {class: 'command'}, j.command),
    el('td', {}, el('span', {class: 'badge ' + j.state}, j.state)),
    el('td', {class: 'n'}, j.attempts + '/' + j.max_attempts),
    el('td', {}, when(j.finished_at)),
    el('td', {class: 'n'}, j.started_at ? seconds((Date.parse(j.finished_at) - Date.parse(j.started_at)) / 1000) : ''),
    el('td', {class: 'error-message'}, j.last_error || '')));
  fill('recent', rows, 'no job has finished yet');
}

function renderSchedules(s) {
  const rows = s.schedules.map((c) => el('tr', {'data-schedule': c.name},
    el('td', {class: 'name'}, c.name), el('td', {}, c.schedule + ' (' + c.time_zone + ')'),
    el('td', {}, c.queue), el('td', {}, c.owner),
    el('td', {}, c.next_run ? when(c.next_run) : 'never'),
    el('td', {}, when(c.last_run)),
    el('td', {}, c.last_job ? jobLink(c.last_job) : '', c.last_state ? ' ' + c.last_state : ''),
    el('td', {class: 'n'}, c.skipped_runs),
    el('td', {class: 'error-message'}, c.last_error || '')));
  fill('schedules', rows, 'no schedule');
}

/* ---- charts ---- */

function queueColors() {
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.q)))].filter((n) => n !== '').sort();
  const colors = {'': '#111827'};
  names.forEach((n, i) => { colors[n] = COLORS[i % COLORS.length]; });
  return colors;
}

function drawChart(id, value, colors) {
  const canvas = document.getElementById(id);
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 44, bottom = h - 18, top = 8, right = w - 8;
  const now = samples.length ? samples[samples.length - 1].t : Date.now() / 1000;
  const t0 = now - MAX_SAMPLES;
  let max = 0;
  for (const s of samples)
    for (const n in colors) {
      const v = s.q[n] ? value(s.q[n]) : null;
      if (v !== null && v > max) max = v;
    }
  max = max > 0 ? max * 1.1 : 1;
  g.strokeStyle = '#e5e7eb';
  g.fillStyle = '#6b7280';
  g.font = '11px sans-serif';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = bottom - (bottom - top) * i / 4;
    g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke();
    const label = max * i / 4;
    g.fillText(label >= 10 ? Math.round(label) : label.toFixed(label >= 1 ? 1 : 2), 2, y + 4);
  }
  g.fillText('-10 min', left, h - 4);
  g.fillText('now', right - 20, h - 4);
  const x = (t) => left + (right - left) * (t - t0) / (now - t0 || 1);
  const y = (v) => bottom - (bottom - top) * v / max;
  for (const [n, color] of Object.entries(colors)) {
    g.strokeStyle = color;
    g.lineWidth = n === '' ? 2 : 1.5;
    g.beginPath();
    let drawing = false, prev = null;
    for (const s of samples) {
      const v = s.q[n] ? value(s.q[n]) : null;
      // a gap in the samples (no page was open) is a gap in the line
      if (v === null || (prev !== null && s.t - prev > 10)) drawing = false;
      if (v !== null) {
        if (drawing) g.lineTo(x(s.t), y(v)); else g.moveTo(x(s.t), y(v));
        drawing = true;
      }
      prev = s.t;
    }
    g.stroke();
  }
}

function drawCharts() {
  const colors = queueColors();
  drawChart('chart-depth', (v) => v[0], colors);
  drawChart('chart-rate', (v) => v[2] === null && v[3] === null ? null : (v[2] || 0) + (v[3] || 0), colors);
  drawChart('chart-latency', (v) => v[4], colors);
  const legend = document.getElementById('legend');
  legend.replaceChildren(...Object.entries(colors).map(([n, c]) => {
    const swatch = el('span', {class: 'swatch'});
    swatch.style.background = c;
    return el('span', {class: 'legend-item'}, swatch, n === '' ? 'all queues' : n);
  }));
}

/* ---- polling ---- */

let polling = null;

async function poll() {
  clearTimeout(polling);
  try {
    const r = await fetch('/api/snapshot?since=' + lastSample, {credentials: 'same-origin'});
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    snapshot = body.snapshot;
    for (const s of body.samples) {
      if (s.t > lastSample) { samples.push(s); lastSample = s.t; }
    }
    if (samples.length > MAX_SAMPLES) samples = samples.slice(-MAX_SAMPLES);
    render();
    const status = document.getElementById('status');
    status.textContent = 'live · ' + new Date(snapshot.time * 1000).toLocaleTimeString();
    status.className = 'status live';
  } catch (e) {
    const status = document.getElementById('status');
    status.textContent = 'not updating: ' + e.message;
    status.className = 'status down';
  }
  polling = setTimeout(poll, POLL_MS);
}

function render() {
  const s = snapshot;
  document.getElementById('who').textContent = 'as ' + s.role + (s.admin ? ' (jq_admin: every job)' : ' (own jobs)');
  renderQueues(s);
  renderRunning(s);
  renderFailed(s);
  renderRecent(s);
  renderSchedules(s);
  drawCharts();
}

/* ---- a job's detail ---- */

function field(label, value) {
  if (value === null || value === undefined || value === '') return null;
  return el('tr', {}, el('th', {}, label), el('td', {}, value));
}

function pre(value) {
  if (value === null || value === undefined) return null;
  return el('pre', {}, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
}

function duration(a, b) {
  return a && b ? seconds((Date.parse(b) - Date.parse(a)) / 1000) : null;
}

function renderDetail(d) {
  const j = d.job;
  document.getElementById('detail-title').textContent = 'Job ' + j.id;
  document.getElementById('detail-retry').hidden = !(j.state === 'failed' || j.state === 'cancelled');
  document.getElementById('detail-cancel').hidden = ['succeeded', 'failed', 'cancelled'].includes(j.state);
  const attempts = el('table', {class: 'attempts'},
    el('thead', {}, el('tr', {}, el('th', {}, 'attempt'), el('th', {}, 'at'), el('th', {}, 'error'),
                                 el('th', {}, 'code'), el('th', {}, 'timeout'))),
    el('tbody', {}, ...(j.errors || []).map((e) => el('tr', {},
      el('td', {class: 'n'}, e.attempt), el('td', {}, when(e.at)), el('td', {class: 'error-message'}, e.message || ''),
      el('td', {}, e.code || ''), el('td', {}, e.timeout ? 'yes' : '')))));
  const deps = d.dependencies.length ? el('span', {}, ...d.dependencies.flatMap((x) => [jobLink(x.id), ' ' + x.state + '  '])) : null;
  const group = d.group ? el('span', {}, (d.group.name || 'group ' + d.group.id) + ': ' + d.group.state + ' (' +
    d.group.succeeded + ' succeeded, ' + d.group.failed + ' failed, ' + d.group.running + ' running, of ' + d.group.total + ') ',
    ...d.group_jobs.flatMap((x) => [jobLink(x.id), ' ' + x.state + '  '])) : null;
  const progress = d.running ? d.running.progress : j.progress;
  document.getElementById('detail-body').replaceChildren(...[
    el('table', {class: 'fields'}, el('tbody', {},
      field('state', el('span', {class: 'badge ' + j.state, id: 'detail-state'}, j.state)),
      field('queue', j.queue), field('kind', j.kind), field('owner', j.owner),
      field('priority', j.priority),
      field('attempts', j.attempts + ' of ' + j.max_attempts),
      field('timeout', j.timeout),
      field('progress', progress ? progressCell(progress) : null),
      field('created', when(j.created_at)), field('due', when(j.run_at)),
      field('started', when(j.started_at)), field('finished', when(j.finished_at)),
      field('waited', duration(j.run_at, j.started_at)), field('ran', duration(j.started_at, j.finished_at)),
      field('run by', d.running && d.running.executor_pid ? 'executor ' + d.running.executor_pid : j.lease_owner),
      field('schedule', j.schedule_name), field('unique key', j.unique_key),
      field('depends on', deps), field('on dependency failure', j.on_dependency_failure),
      field('group', group))),
    el('h3', {}, 'Command'), pre(j.command ?? j.argv),
    j.payload ? el('h3', {}, 'Payload') : null, pre(j.payload),
    j.result ? el('h3', {}, 'Result') : null, pre(j.result),
    el('h3', {}, 'Errors, per attempt'), (j.errors || []).length ? attempts : el('p', {}, 'none'),
  ].filter((c) => c !== null));
}

async function openDetail(id) {
  detailId = id;
  const panel = document.getElementById('detail');
  panel.hidden = false;
  try {
    const r = await fetch('/api/job?id=' + encodeURIComponent(id), {credentials: 'same-origin'});
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    if (detailId === id) renderDetail(body);
  } catch (e) {
    document.getElementById('detail-title').textContent = 'Job ' + id;
    document.getElementById('detail-body').replaceChildren(el('p', {class: 'error-message'}, e.message));
  }
}

document.getElementById('detail-close').addEventListener('click', () => {
  detailId = null;
  document.getElementById('detail').hidden = true;
});
document.getElementById('detail-refresh').addEventListener('click', () => openDetail(detailId));
document.getElementById('detail-retry').addEventListener('click', () => act('retry', detailId));
document.getElementById('detail-cancel').addEventListener('click', () => act('cancel', detailId));
window.addEventListener('resize', () => { if (snapshot) drawCharts(); });

poll();
